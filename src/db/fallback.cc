#include "db/fallback.h"

#include <algorithm>
#include <map>

#include "db/db_impl.h"
#include "dedupe/dedupe.h"
#include "util/coding.h"
#include "wal/wal.h"

namespace usagedb {

SegmentMeta SegmentMetaFromInfo(uint64_t file_number, const SegmentInfo& info) {
  SegmentMeta m;
  m.file_number = file_number;
  m.bucket = info.bucket;
  m.partition = info.partition;
  m.row_count = info.row_count;
  m.file_size = info.file_size;
  m.min_timestamp_ms = info.min_timestamp_ms;
  m.max_timestamp_ms = info.max_timestamp_ms;
  m.min_commit_seq = info.min_commit_seq;
  m.max_commit_seq = info.max_commit_seq;
  m.min_account_id = info.min_account_id;
  m.max_account_id = info.max_account_id;
  m.origin_min_seq = info.origin_min_seq;
  m.origin_max_seq = info.origin_max_seq;
  m.origin_replaced = info.origin_replaced;
  return m;
}

namespace {

struct OrphanSegment {
  uint64_t file_number;
  SegmentInfo info;
};

// Reads a conflict log whole; false when it is damaged or torn (then it is not adopted).
bool ReadConflictLog(FileSystem* fs, const std::string& path, uint64_t file_number,
                     ConflictLogMeta* meta) {
  auto r = wal::ReadWalFile(fs, path, /*repair=*/false);
  if (!r.ok() || r->torn_tail) return false;
  auto size = fs->FileSize(path);
  if (!size.ok() || *size != r->valid_length) return false;
  meta->file_number = file_number;
  meta->entry_count = 0;
  meta->file_size = *size;
  meta->min_commit_seq = UINT64_MAX;
  meta->max_commit_seq = 0;
  for (const wal::Record& rec : r->records) {
    if (rec.type != wal::RecordType::kUnit) return false;
    Decoder d(rec.payload);
    uint64_t seq;
    if (!d.GetVarint64(&seq)) return false;
    meta->entry_count++;
    meta->min_commit_seq = std::min(meta->min_commit_seq, seq);
    meta->max_commit_seq = std::max(meta->max_commit_seq, seq);
  }
  return meta->entry_count > 0;
}

}  // namespace

Status AdoptOrphanFlushes(FileSystem* fs, const std::string& db_root,
                          const std::set<ManifestFileRef>& referenced, ManifestState* state,
                          std::vector<std::string>* adopted) {
  const std::string seg_dir = db_root + "/" + kSegmentDir;
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs->ListDir(seg_dir));
  // Orphan segments written by flushes (merge outputs carry no receipt), by origin start.
  std::multimap<uint64_t, OrphanSegment> by_origin;
  for (const std::string& name : names) {
    uint64_t n;
    if (!ParseSegmentFileName(name, &n)) continue;
    if (referenced.count(ManifestFileRef{ManifestFileKind::kSegment, n})) continue;
    auto reader = SegmentReader::Open(fs, seg_dir + "/" + name);
    if (!reader.ok()) continue;  // damaged: never adopted
    const SegmentInfo& info = (*reader)->info();
    if (info.receipt.segment_count == 0 || !info.origin_replaced.empty()) continue;
    by_origin.emplace(info.origin_min_seq, OrphanSegment{n, info});
  }

  for (;;) {
    const uint64_t start = state->flushed_sequence + 1;
    auto [lo, hi] = by_origin.equal_range(start);
    if (lo == hi) return Status::OK();
    // Every segment of one flush carries the same origin and receipt.
    const SegmentInfo& first = lo->second.info;
    const FlushReceipt receipt = first.receipt;
    std::vector<const OrphanSegment*> segs;
    uint64_t rows = 0;
    bool consistent = true;
    for (auto it = lo; it != hi; ++it) {
      const SegmentInfo& info = it->second.info;
      if (info.origin_max_seq != first.origin_max_seq || !(info.receipt == receipt)) {
        consistent = false;
      }
      segs.push_back(&it->second);
      rows += info.row_count;
    }
    if (!consistent || segs.size() != receipt.segment_count || rows != receipt.event_count ||
        first.origin_max_seq < start) {
      return Status::OK();
    }
    ManifestState next = *state;
    std::vector<std::string> files;
    for (const OrphanSegment* s : segs) {
      next.segments.push_back(SegmentMetaFromInfo(s->file_number, s->info));
      files.push_back(std::string(kSegmentDir) + "/" + SegmentFileName(s->file_number));
    }
    if (receipt.dedupe_run != 0) {
      if (referenced.count(ManifestFileRef{ManifestFileKind::kDedupeRun, receipt.dedupe_run})) {
        return Status::OK();
      }
      const std::string rel = std::string(kDedupeDir) + "/" + DedupeRunFileName(receipt.dedupe_run);
      auto run = DedupeRun::Open(fs, db_root + "/" + rel, receipt.dedupe_run);
      if (!run.ok() || (*run)->info().key_count != receipt.event_count) return Status::OK();
      auto size = fs->FileSize(db_root + "/" + rel);
      if (!size.ok()) return Status::OK();
      const DedupeRunInfo& ri = (*run)->info();
      next.dedupe_runs.push_back(DedupeRunMeta{receipt.dedupe_run, ri.key_count, *size,
                                               ri.min_commit_seq, ri.max_commit_seq});
      files.push_back(rel);
    } else if (receipt.event_count != 0) {
      return Status::OK();
    }
    if (receipt.conflict_log != 0) {
      if (referenced.count(ManifestFileRef{ManifestFileKind::kConflictLog, receipt.conflict_log})) {
        return Status::OK();
      }
      const std::string rel =
          std::string(kConflictDir) + "/" + wal::WalFileName(receipt.conflict_log);
      ConflictLogMeta cm;
      if (!ReadConflictLog(fs, db_root + "/" + rel, receipt.conflict_log, &cm) ||
          cm.entry_count != receipt.conflict_count || cm.min_commit_seq < start ||
          cm.max_commit_seq > first.origin_max_seq) {
        return Status::OK();
      }
      next.conflict_logs.push_back(cm);
      files.push_back(rel);
    } else if (receipt.conflict_count != 0) {
      return Status::OK();
    }
    next.flushed_sequence = first.origin_max_seq;
    next.last_sequence =
        std::max({next.last_sequence, first.origin_max_seq, receipt.last_sequence});
    next.last_ingested_at_ms = std::max(next.last_ingested_at_ms, receipt.max_ingested_at_ms);
    uint64_t max_file = std::max({receipt.dedupe_run, receipt.conflict_log});
    for (const OrphanSegment* s : segs) max_file = std::max(max_file, s->file_number);
    next.next_file_number = std::max(next.next_file_number, max_file + 1);
    *state = std::move(next);
    adopted->insert(adopted->end(), files.begin(), files.end());
    by_origin.erase(lo, hi);
  }
}

}  // namespace usagedb
