#include "db/db_impl.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <map>
#include <set>
#include <span>
#include <unordered_map>

#include "db/fallback.h"
#include "model/event_codec.h"
#include "segment/segment_hash.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/hash.h"
#include "util/int128.h"

namespace usagedb {

// Sentinel for a conflict against an event accepted earlier in the same unit: its stored
// ingested_at_ms is the unit's own stamp, unknown until the leader assigns it.
constexpr int64_t kSameUnitStamp = INT64_MIN;
constexpr uint32_t kDefaultBucketCount = 64;

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kAccepted: return "accepted";
    case Outcome::kDuplicate: return "duplicate";
    case Outcome::kConflict: return "conflict";
    case Outcome::kRejected: return "rejected";
  }
  return "unknown";
}

Result<const SegmentReader*> SegmentHandle::Reader() {
  std::lock_guard<std::mutex> l(mu_);
  Status s;
  if (!reader_) {
    auto r = SegmentReader::Open(fs_, path_);
    if (r.ok()) {
      reader_ = std::move(r).value();
    } else {
      s = r.status();
    }
  } else if (!reader_->has_file()) {
    s = reader_->OpenFile(fs_);  // the footer was decoded by Warm
  }
  if (!s.ok()) {
    if (s.IsNotFound()) return Status::Corruption("segment file missing: " + path_);
    return s;
  }
  return static_cast<const SegmentReader*>(reader_.get());
}

size_t SegmentHandle::Warm() {
  std::lock_guard<std::mutex> l(mu_);
  if (!reader_) {
    auto r = SegmentReader::OpenFooter(fs_, path_);
    if (!r.ok()) return 0;
    reader_ = std::move(r).value();
  }
  return reader_->FooterMemoryUsage();
}

// Resolves dedupe run candidates against committed segment rows: compares the full event_id
// (hashes only route) and, on a match, reads that one row (SegmentReader::ReadRow: no other
// row of the block is decoded) to recompute its payload digest. Decodes a block's event_id
// column first (a mismatch is a routing collision, the common case) and keeps the last
// decoded one, since the candidates of one batch often share blocks.
class SegmentRowResolver : public DedupeRowResolver {
 public:
  explicit SegmentRowResolver(DBImpl* db) : db_(db) {}

  Result<std::optional<DedupeEntry>> Resolve(const RowLocation& loc,
                                             std::string_view event_id) override {
    size_t block, row;
    const SegmentReader* reader;
    db_->dedupe_segment_lookups_.fetch_add(1, std::memory_order_relaxed);
    RETURN_IF_ERROR(Locate(loc.segment_file_number, loc.row, &reader, &block, &row));
    if (!(cached_file_ == loc.segment_file_number && cached_block_ == block)) {
      cached_block_ = SIZE_MAX;  // until the read below succeeds
      RETURN_IF_ERROR(reader->ReadBlock(block, ColumnBit(Column::kEventId), &cached_));
      cached_file_ = loc.segment_file_number;
      cached_block_ = block;
    }
    if (row >= cached_.rows) return Status::Corruption(reader->path() + ": row out of range");
    if (cached_.event_id.Get(row) != event_id) return std::optional<DedupeEntry>();
    Event& e = row_;  // reused: its strings keep their capacity from row to row
    RETURN_IF_ERROR(reader->ReadRow(block, row, &e));
    return std::optional<DedupeEntry>(DedupeEntry{e.event_id, PayloadDigest(e), e.ingested_at_ms,
                                                  e.timestamp_ms, e.kind, e.commit_seq});
  }

  Status ReadEventIds(uint64_t segment_file_number, const std::vector<uint32_t>& rows,
                      std::vector<std::string>* ids) override {
    ids->clear();
    ids->reserve(rows.size());
    return ForEachEventId(segment_file_number, rows,
                          [ids](std::string_view id) { ids->emplace_back(id); });
  }

  // The merge's path: hashes each id where the decoded block holds it (no string per row).
  Status ReadEventIdHashes(uint64_t segment_file_number, const std::vector<uint32_t>& rows,
                           DedupeHashFn hash, std::vector<uint64_t>* hashes) override {
    hashes->clear();
    hashes->reserve(rows.size());
    return ForEachEventId(segment_file_number, rows,
                          [&](std::string_view id) { hashes->push_back(hash(id)); });
  }

 private:
  // Calls f(event_id) for each of `rows` (strictly ascending) of one segment: one segment
  // lookup, each block's event_id column decoded once, blocks walked forward with the rows.
  template <typename F>
  Status ForEachEventId(uint64_t file_number, const std::vector<uint32_t>& rows, const F& f) {
    if (rows.empty()) return Status::OK();
    std::shared_ptr<SegmentHandle> h = db_->SegmentByNumber(file_number);
    if (!h) {
      return Status::Corruption("dedupe run references segment " + std::to_string(file_number) +
                                ", which is not committed");
    }
    ASSIGN_OR_RETURN(const SegmentReader* reader, h->Reader());
    DecodedBlock b;
    size_t block = 0, start = 0;  // block `block` holds rows [start, start + its row_count)
    size_t loaded = SIZE_MAX;
    for (size_t i = 0; i < rows.size(); i++) {
      const uint32_t r = rows[i];
      if (i > 0 && r <= rows[i - 1]) {
        return Status::InvalidArgument("event id rows of segment " + std::to_string(file_number) +
                                       " not ascending");
      }
      while (block < reader->num_blocks() && r >= start + reader->zone_map(block).row_count) {
        start += reader->zone_map(block).row_count;
        block++;
      }
      if (block == reader->num_blocks()) {
        return Status::Corruption(reader->path() + ": row " + std::to_string(r) +
                                  " beyond the segment's rows (dedupe run reference)");
      }
      if (block != loaded) {
        RETURN_IF_ERROR(reader->ReadBlock(block, ColumnBit(Column::kEventId), &b));
        loaded = block;
      }
      if (r - start >= b.rows) return Status::Corruption(reader->path() + ": row out of range");
      f(b.event_id.Get(r - start));
    }
    return Status::OK();
  }

  Status Locate(uint64_t file_number, uint32_t row, const SegmentReader** reader, size_t* block,
                size_t* row_in_block) {
    std::shared_ptr<SegmentHandle> h = db_->SegmentByNumber(file_number);
    if (!h) {
      return Status::Corruption("dedupe run references segment " +
                                std::to_string(file_number) + ", which is not committed");
    }
    handles_.push_back(h);  // keep it alive while its reader is used
    ASSIGN_OR_RETURN(*reader, h->Reader());
    size_t start = 0;
    for (size_t b = 0; b < (*reader)->num_blocks(); b++) {
      size_t n = (*reader)->zone_map(b).row_count;
      if (row < start + n) {
        *block = b;
        *row_in_block = row - start;
        return Status::OK();
      }
      start += n;
    }
    return Status::Corruption((*reader)->path() + ": row " + std::to_string(row) +
                              " beyond the segment's rows (dedupe run reference)");
  }

  DBImpl* db_;
  std::vector<std::shared_ptr<SegmentHandle>> handles_;
  uint64_t cached_file_ = 0;
  size_t cached_block_ = SIZE_MAX;  // SIZE_MAX: nothing cached
  DecodedBlock cached_;             // the event_id column of that block
  Event row_;                       // the last row read by Resolve
};

std::shared_ptr<SegmentHandle> DBImpl::SegmentByNumber(uint64_t file_number) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = segments_by_number_.find(file_number);
  return it == segments_by_number_.end() ? nullptr : it->second;
}

Result<std::unique_ptr<DB>> DB::Open(const Options& options, const std::string& dir) {
  auto db = std::make_unique<DBImpl>(options, dir);
  RETURN_IF_ERROR(db->OpenImpl());
  return std::unique_ptr<DB>(std::move(db));
}

DBImpl::DBImpl(const Options& options, std::string dir)
    : options_(options),
      dir_(std::move(dir)),
      fs_(options.file_system ? options.file_system : FileSystem::Default()),
      clock_(options.clock ? options.clock : Clock::Real()) {
  sync_lat_ns_.reserve(4096);
}

DBImpl::~DBImpl() {
  if (!closed_) Close().IgnoreError();
}

std::shared_ptr<const Version> DBImpl::CurrentVersion() {
  std::lock_guard<std::mutex> l(mu_);
  return version_;
}

void DBImpl::InstallVersionLocked(std::shared_ptr<const Version> v) { version_ = std::move(v); }

// ---------------------------------------------------------------------------------------
// Open and recovery

Status DBImpl::OpenImpl() {
  RETURN_IF_ERROR(fs_->CreateDirs(dir_));
  // The root's own directory entry must be durable too (a fresh database).
  RETURN_IF_ERROR(fs_->SyncDir(DirName(dir_)));
  ASSIGN_OR_RETURN(lock_, fs_->LockFile(Path(kLockFile)));
  for (const char* sub : {kWalDir, kSegmentDir, kDedupeDir, kConflictDir}) {
    RETURN_IF_ERROR(fs_->CreateDir(Path(sub)));
  }
  RETURN_IF_ERROR(fs_->SyncDir(dir_));
  dedupe_ = std::make_unique<DedupeIndex>(options_.dedupe_cache_bytes);
  manifest_store_ = std::make_unique<ManifestStore>(fs_, dir_);
  RETURN_IF_ERROR(Recover());
  if (options_.background_flush) bg_thread_ = std::thread([this] { BackgroundLoop(); });
  return Status::OK();
}

Status DBImpl::Recover() {
  int64_t t0 = clock_->MonotonicNs();
  ASSIGN_OR_RETURN(ManifestLoad load, manifest_store_->Load());
  ManifestState state = load.state;
  if (load.created) {
    if (!options_.create_if_missing) {
      return Status::InvalidArgument(dir_ + ": no database here (create_if_missing is off)");
    }
    state.bucket_count = options_.bucket_count ? options_.bucket_count : kDefaultBucketCount;
    state.next_file_number = 1;
    ASSIGN_OR_RETURN(state, manifest_store_->Commit(state));
  } else if (options_.bucket_count != 0 && state.bucket_count != options_.bucket_count) {
    return Status::InvalidArgument(
        "bucket_count " + std::to_string(options_.bucket_count) + " differs from the " +
        std::to_string(state.bucket_count) + " this database was created with");
  }
  report_.manifest_generation = state.generation;
  for (const auto& [gen, why] : load.skipped) {
    report_.skipped_generations.push_back(ManifestFileName(gen) + ": " + why);
  }

  // WAL files present (sorted) decide whether a fallback to an older generation is safe.
  ASSIGN_OR_RETURN(std::vector<std::string> wal_names, fs_->ListDir(Path(kWalDir)));
  std::vector<uint64_t> wal_numbers;
  for (const std::string& name : wal_names) {
    uint64_t n;
    if (wal::ParseWalFileName(name, &n)) wal_numbers.push_back(n);
  }
  std::sort(wal_numbers.begin(), wal_numbers.end());
  // Files of every readable retained generation stay (a later fallback may need them).
  std::set<ManifestFileRef> referenced;
  for (const ManifestState* st : [&] {
         std::vector<const ManifestState*> all{&state};
         for (const ManifestState& o : load.older) all.push_back(&o);
         return all;
       }()) {
    for (const ManifestFileRef& r : ReferencedFiles(*st)) referenced.insert(r);
  }
  if (!load.skipped.empty()) {
    // Re-adopt, by origin, the flushes the skipped generations committed (their segments,
    // dedupe runs and conflict logs are orphans now), then check that the WAL holds every
    // unit above the flushed prefix reached: the oldest live WAL file must start at or
    // below it.
    std::vector<std::string> adopted;
    RETURN_IF_ERROR(AdoptOrphanFlushes(fs_, dir_, referenced, &state, &adopted));
    for (const ManifestFileRef& r : ReferencedFiles(state)) referenced.insert(r);
    report_.adopted = adopted;
    bool covered = false;
    for (uint64_t n : wal_numbers) {
      if (n < state.min_wal_file_number) continue;
      auto r = wal::ReadWalFile(fs_, Path(kWalDir) + "/" + wal::WalFileName(n), true);
      if (r.ok()) covered = r->start_sequence <= state.flushed_sequence;
      break;
    }
    if (!covered) {
      std::string names;
      for (const auto& s : report_.skipped_generations) names += s + "; ";
      return Status::Corruption(
          "newest manifest generation unreadable (" + names + "), and falling back to " +
          ManifestFileName(state.generation) +
          (adopted.empty() ? std::string()
                           : " (with " + std::to_string(adopted.size()) +
                                 " orphan files re-adopted up to sequence " +
                                 std::to_string(state.flushed_sequence) + ")") +
          " would lose events whose WAL was already retired and whose flushed files are not "
          "all present");
    }
    if (!adopted.empty()) {
      // Make the re-adoption durable before anything else deletes or writes files.
      ASSIGN_OR_RETURN(state, manifest_store_->Commit(state));
      report_.manifest_generation = state.generation;
    }
  }

  RETURN_IF_ERROR(RemoveTemporariesAndOrphans(referenced, state.min_wal_file_number));

  // Dedupe runs.
  std::vector<std::shared_ptr<DedupeRun>> runs;
  for (const DedupeRunMeta& m : state.dedupe_runs) {
    auto r = DedupeRun::Open(fs_, Path(kDedupeDir) + "/" + DedupeRunFileName(m.file_number),
                             m.file_number);
    if (!r.ok()) return r.status();
    runs.push_back(std::move(r).value());
  }
  dedupe_->SetRuns(runs);

  last_seq_ = state.last_sequence;
  visible_seq_ = state.last_sequence;
  last_ingested_at_ms_ = state.last_ingested_at_ms;
  next_file_number_ = state.next_file_number;
  for (uint64_t n : wal_numbers) next_file_number_ = std::max(next_file_number_, n + 1);

  active_ = std::make_shared<MemTable>(clock_->NowMs(), &Hash64, state.bucket_count);
  auto v = std::make_shared<Version>();
  v->manifest = state;
  for (const SegmentMeta& m : state.segments) {
    v->segments.push_back(std::make_shared<SegmentHandle>(
        fs_, Path(kSegmentDir) + "/" + SegmentFileName(m.file_number), m));
    segments_by_number_[m.file_number] = v->segments.back();
  }
  v->memtables.push_back(active_);
  version_ = v;
  // Every segment's footer and zone maps are decoded now, not by the first query touching the
  // file (~25K instructions and three reads each: the cold first pass's p99).
  const uint64_t warm_t0 = clock_->MonotonicNs();
  for (const auto& h : v->segments) report_.footer_bytes += h->Warm();
  report_.warm_seconds = static_cast<double>(clock_->MonotonicNs() - warm_t0) / 1e9;

  std::vector<uint64_t> live_wal;
  for (uint64_t n : wal_numbers) {
    if (n >= state.min_wal_file_number) live_wal.push_back(n);
  }
  RETURN_IF_ERROR(ReplayWal(live_wal, state.flushed_sequence));

  // New writes go to a fresh WAL file.
  {
    std::lock_guard<std::mutex> l(mu_);
    RETURN_IF_ERROR(NewWalFileLocked());
  }
  report_.replay_seconds = static_cast<double>(clock_->MonotonicNs() - t0) / 1e9;
  return Status::OK();
}

Status DBImpl::RemoveTemporariesAndOrphans(const std::set<ManifestFileRef>& live,
                                           uint64_t min_wal_file_number) {
  std::unordered_map<std::string, bool> referenced;
  for (const ManifestFileRef& r : live) {
    switch (r.kind) {
      case ManifestFileKind::kSegment: referenced[SegmentFileName(r.file_number)] = true; break;
      case ManifestFileKind::kDedupeRun:
        referenced[DedupeRunFileName(r.file_number)] = true;
        break;
      case ManifestFileKind::kConflictLog:
        referenced[wal::WalFileName(r.file_number)] = true;
        break;
    }
  }
  auto ends_with = [](const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(),
                                                  suffix) == 0;
  };
  // Root: manifest temporaries.
  ASSIGN_OR_RETURN(auto root_names, fs_->ListDir(dir_));
  for (const std::string& name : root_names) {
    if (ends_with(name, ".tmp")) {
      RETURN_IF_ERROR(fs_->RemoveFile(Path(name)));
      report_.temporaries_removed++;
    }
  }
  for (const char* sub : {kSegmentDir, kDedupeDir, kConflictDir, kWalDir}) {
    ASSIGN_OR_RETURN(auto names, fs_->ListDir(Path(sub)));
    for (const std::string& name : names) {
      std::string path = Path(sub) + "/" + name;
      if (ends_with(name, ".tmp")) {
        RETURN_IF_ERROR(fs_->RemoveFile(path));
        report_.temporaries_removed++;
        continue;
      }
      if (std::string_view(sub) == kWalDir) {
        uint64_t n;
        if (wal::ParseWalFileName(name, &n) && n < min_wal_file_number) {
          // Retired by the manifest but not yet deleted when the process stopped.
          RETURN_IF_ERROR(fs_->RemoveFile(path));
        }
        continue;
      }
      if (!referenced.count(name)) {
        // Written by a flush whose manifest commit did not happen (its events are still in
        // the WAL, which recovery replays), or no longer referenced by any retained
        // generation: removed.
        report_.orphans.push_back(std::string(sub) + "/" + name);
        RETURN_IF_ERROR(fs_->RemoveFile(path));
      }
    }
    RETURN_IF_ERROR(fs_->SyncDir(Path(sub)));
  }
  return fs_->SyncDir(dir_);
}

void DBImpl::RemoveReleasedFiles() {
  std::vector<ManifestFileRef> released = manifest_store_->TakeReleased();
  if (released.empty()) return;
  std::set<const char*> dirs;
  for (const ManifestFileRef& r : released) {
    std::string path;
    switch (r.kind) {
      case ManifestFileKind::kSegment:
        path = Path(kSegmentDir) + "/" + SegmentFileName(r.file_number);
        dirs.insert(kSegmentDir);
        break;
      case ManifestFileKind::kDedupeRun:
        path = Path(kDedupeDir) + "/" + DedupeRunFileName(r.file_number);
        dirs.insert(kDedupeDir);
        break;
      case ManifestFileKind::kConflictLog:
        path = Path(kConflictDir) + "/" + wal::WalFileName(r.file_number);
        dirs.insert(kConflictDir);
        break;
    }
    // A failure leaves an unreferenced file, which the next recovery removes.
    fs_->RemoveFile(path).IgnoreError();
  }
  for (const char* d : dirs) fs_->SyncDir(Path(d)).IgnoreError();
}

Status DBImpl::ReplayWal(const std::vector<uint64_t>& wal_numbers, uint64_t flushed_sequence) {
  struct PendingReplay {
    uint64_t seq;
    std::string payload;
  };
  std::vector<PendingReplay> units;
  std::unordered_map<uint64_t, bool> voided;
  for (uint64_t n : wal_numbers) {
    std::string path = Path(kWalDir) + "/" + wal::WalFileName(n);
    ASSIGN_OR_RETURN(wal::ReadResult rr, wal::ReadWalFile(fs_, path, options_.repair_wal));
    report_.wal_files_replayed++;
    report_.repaired_bytes += rr.repaired_bytes;
    report_.unsynced_records_dropped += rr.unsynced_records_dropped;
    ASSIGN_OR_RETURN(uint64_t size, fs_->FileSize(path));
    if (rr.valid_length < size) {
      // A torn tail: cut it off so nothing is ever glued to it.
      RETURN_IF_ERROR(fs_->Truncate(path, rr.valid_length));
      ASSIGN_OR_RETURN(auto f, fs_->NewAppendableFile(path));
      RETURN_IF_ERROR(f->Sync());
      RETURN_IF_ERROR(f->Close());
      report_.torn_tails_truncated++;
    }
    uint64_t max_seq = 0;
    for (wal::Record& rec : rr.records) {
      if (rec.type == wal::RecordType::kVoid) {
        uint64_t seq;
        RETURN_IF_ERROR(DecodeVoid(rec.payload, &seq).WithContext(path));
        voided[seq] = true;
        last_seq_ = std::max(last_seq_, seq);
        continue;
      }
      Decoder d(rec.payload);
      uint64_t seq;
      if (!d.GetVarint64(&seq)) return Status::Corruption(path + ": bad unit header");
      max_seq = std::max(max_seq, seq);
      units.push_back(PendingReplay{seq, std::move(rec.payload)});
    }
    wal_files_.push_back(WalFileInfo{n, max_seq});
  }
  std::stable_sort(units.begin(), units.end(),
                   [](const PendingReplay& a, const PendingReplay& b) { return a.seq < b.seq; });
  // Decide which units apply (in sequence order; a sequence present twice — rewritten after
  // an fsync error — applies once), then decode them in parallel windows and apply in order.
  std::vector<PendingReplay*> apply;
  uint64_t last_applied = 0;
  for (PendingReplay& u : units) {
    last_seq_ = std::max(last_seq_, u.seq);
    if (voided.count(u.seq)) {
      report_.void_units++;
      continue;
    }
    if (u.seq <= flushed_sequence || u.seq == last_applied) continue;  // flushed, or rewritten
    last_applied = u.seq;
    apply.push_back(&u);
  }
  SegmentRowResolver resolver(this);
  constexpr size_t kWindow = 64;
  const size_t workers = std::max<size_t>(1, std::min<size_t>(4, std::thread::hardware_concurrency()));
  std::vector<PeekedUnit> decoded(kWindow);
  std::vector<Status> statuses(kWindow);
  for (size_t base = 0; base < apply.size(); base += kWindow) {
    const size_t n = std::min(kWindow, apply.size() - base);
    auto decode_range = [&](size_t w) {
      for (size_t i = w; i < n; i += workers) {
        statuses[i] = PeekUnit(apply[base + i]->payload, &decoded[i]);
      }
    };
    std::vector<std::thread> pool;
    for (size_t w = 1; w < workers && w < n; w++) pool.emplace_back(decode_range, w);
    decode_range(0);
    for (auto& t : pool) t.join();
    for (size_t i = 0; i < n; i++) {
      RETURN_IF_ERROR(statuses[i].WithContext("WAL replay"));
      PeekedUnit& unit = decoded[i];
      last_ingested_at_ms_ = std::max(last_ingested_at_ms_, unit.header.ingested_at_ms);
      active_->NoteSequence(unit.header.seq, unit.header.ingested_at_ms);
      std::vector<RowMeta> rows;
      rows.reserve(unit.events.size());
      for (size_t k = 0; k < unit.events.size(); k++) {
        const EventPeek& e = unit.events[k];
        // Restored unless an event with its id is already stored (no §1/clock checks again).
        if (active_->Contains(e.event_id)) continue;
        ASSIGN_OR_RETURN(auto found, dedupe_->Lookup(e.event_id, 0, 0, &resolver));
        if (found.has_value()) continue;
        RowMeta m;
        m.offset = unit.record_spans[k].first;
        m.length = unit.record_spans[k].second;
        m.timestamp_ms = e.timestamp_ms;
        m.account_hash = Hash64(e.account_id);
        m.digest = unit.digests[k];
        m.kind = e.kind;
        rows.push_back(m);
        report_.events_replayed++;
      }
      active_->AddUnit(unit.header.seq, unit.header.ingested_at_ms,
                       apply[base + i]->payload, rows);
      for (ConflictEntry& c : unit.conflicts) {
        if (c.stored_ingested_at_ms == kSameUnitStamp) {
          c.stored_ingested_at_ms = unit.header.ingested_at_ms;
        }
        active_->AddConflict(std::move(c));
      }
      report_.units_replayed++;
      apply[base + i]->payload.clear();
      apply[base + i]->payload.shrink_to_fit();
    }
  }
  visible_seq_ = last_seq_;
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// Write path

uint64_t DBImpl::LastSequence() {
  std::lock_guard<std::mutex> l(mu_);
  return visible_seq_;
}

Status DBImpl::NewWalFileLocked() {
  uint64_t number = next_file_number_++;
  std::unique_ptr<wal::Writer> w;
  if (!wal_recycle_pool_.empty()) {
    const std::string recycled = std::move(wal_recycle_pool_.back());
    wal_recycle_pool_.pop_back();
    auto r = wal::Writer::CreateRecycled(fs_, Path(kWalDir), recycled, number, last_seq_);
    if (r.ok()) {
      w = std::move(r).value();
      wal_files_recycled_++;
    } else {
      // Left under its pool name (a temporary) or under this number's name with a synced
      // header and no records, which Create below truncates and rewrites.
      fs_->RemoveFile(recycled).IgnoreError();
    }
  }
  if (!w) {
    ASSIGN_OR_RETURN(w, wal::Writer::Create(fs_, Path(kWalDir), number, last_seq_));
    wal_files_created_++;
  }
  if (wal_) wal_->Close().IgnoreError();  // sealed or complete: never appended to again
  wal_ = std::move(w);
  wal_files_.push_back(WalFileInfo{number, 0});
  unsynced_framed_.clear();
  return Status::OK();
}

// After a WAL write or fsync error: seal the file, then make a new one durable that voids the
// failed units (and, in fast mode, re-holds the acknowledged but unsynced ones) before anything
// else is acknowledged (SPEC §2.3).
Status DBImpl::RecoverWalAfterErrorLocked() {
  std::string carry = std::move(unsynced_framed_);
  Status s = NewWalFileLocked();
  if (!s.ok()) {
    unsynced_framed_ = std::move(carry);
    return s;
  }
  // The carried units (framed for the sealed file) are framed again for the new one: records
  // carry their file's tag and checksum seed. Their durable_length becomes the new file's
  // synced size: they are written while only its header is durable.
  std::string framed;
  framed.reserve(carry.size() + pending_voids_.size() * 32);
  uint64_t max_seq = 0;  // the carried units' sequences now also live in the new file
  {
    Decoder d(carry);
    while (!d.empty()) {
      uint32_t len, crc, tag;
      uint8_t type;
      std::string_view payload;
      if (!d.GetFixed32(&len) || !d.GetFixed32(&crc) || !d.GetFixed32(&tag) ||
          !d.GetByte(&type) || !d.GetBytes(len, &payload)) {
        break;
      }
      std::string head;
      if (type == static_cast<uint8_t>(wal::RecordType::kDurableUnit)) {
        payload.remove_prefix(std::min<size_t>(payload.size(), wal::kDurableLengthSize));
        PutFixed64(&head, wal_->synced_size());
      }
      wal::Writer::FrameRecord(wal_->file_number(), static_cast<wal::RecordType>(type), head,
                               payload, &framed);
      Decoder p(payload);
      uint64_t seq;
      if (p.GetVarint64(&seq)) max_seq = std::max(max_seq, seq);
    }
  }
  for (uint64_t seq : pending_voids_) {
    std::string payload;
    PutFixed64(&payload, wal_->synced_size());  // durable_length (wal_format.h)
    EncodeVoid(seq, &payload);
    wal::Writer::FrameRecord(wal_->file_number(), wal::RecordType::kDurableVoid, payload,
                             &framed);
  }
  s = wal_->AppendFramed(framed);
  if (s.ok()) s = wal_->Sync();
  if (!s.ok()) {
    unsynced_framed_ = std::move(carry);
    return s;
  }
  wal_syncs_++;
  wal_files_.back().max_seq = std::max(wal_files_.back().max_seq, max_seq);
  pending_voids_.clear();
  wal_broken_ = false;
  wal_error_ = Status::OK();
  return Status::OK();
}

Status DBImpl::SwitchMemtableLocked() {
  RETURN_IF_ERROR(NewWalFileLocked());
  imms_.push_back(active_);
  // Records in one sub-arena per bucket: a flushed partition's records lie together.
  active_ = std::make_shared<MemTable>(clock_->NowMs(), &Hash64, version_->manifest.bucket_count);
  auto v = std::make_shared<Version>(*version_);
  v->memtables.push_back(active_);
  InstallVersionLocked(v);
  bg_cv_.notify_all();
  return Status::OK();
}

Status DBImpl::MakeRoomForWrite(std::unique_lock<std::mutex>& lock, bool force_switch) {
  bool waited = false;
  for (;;) {
    if (wal_broken_) {
      Status s = RecoverWalAfterErrorLocked();
      if (!s.ok()) {
        return Status::Unavailable("WAL unavailable after an I/O error (" + wal_error_.ToString() +
                                   "); retry later: " + s.ToString());
      }
    }
    bool full = active_->ApproximateBytes() >= options_.memtable_bytes;
    if (!force_switch && !full) return Status::OK();
    if (inserted_tickets_ != insert_tickets_) {  // earlier groups still inserting into active_
      WaitForInsertsLocked(lock);
      continue;
    }
    if (force_switch && active_->max_seq() == 0 && active_->size() == 0) return Status::OK();
    if (static_cast<int>(imms_.size()) >= options_.max_immutable_memtables) {
      if (!options_.background_flush) {
        return Status::Unavailable("memtables full and background flush disabled");
      }
      if (waited) {
        return Status::Unavailable("flushing is falling behind ingest; retry later");
      }
      backpressure_waits_++;
      bg_cv_.notify_all();
      done_cv_.wait_for(lock, std::chrono::milliseconds(options_.backpressure_wait_ms), [&] {
        return static_cast<int>(imms_.size()) < options_.max_immutable_memtables ||
               shutting_down_;
      });
      if (shutting_down_) return Status::Unavailable("shutting down");
      waited = static_cast<int>(imms_.size()) >= options_.max_immutable_memtables;
      continue;
    }
    return SwitchMemtableLocked();
  }
}

void DBImpl::WaitForInsertsLocked(std::unique_lock<std::mutex>& lock) {
  insert_cv_.wait(lock, [&] { return inserted_tickets_ == insert_tickets_; });
}

void DBImpl::RecordSyncLatency(int64_t ns) {
  std::lock_guard<std::mutex> l(lat_mu_);
  if (sync_lat_ns_.size() < 4096) {
    sync_lat_ns_.push_back(ns);
  } else {
    sync_lat_ns_[sync_lat_pos_++ % 4096] = ns;
  }
}

Status DBImpl::Commit(PendingUnit* w) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return Status::Unavailable("database is closed");
  writers_.push_back(w);
  // A follower waits until its group's leader marks it done, or until it heads the queue. (A
  // group leaves the queue before its inserts finish, so the queue can be empty meanwhile.)
  while (!w->done && (writers_.empty() || w != writers_.front())) w->cv.wait(lock);
  if (w->done) return w->status;

  // Leader.
  Status s = MakeRoomForWrite(lock, w->kind == PendingUnit::Kind::kSwitchMemtable);
  std::vector<PendingUnit*> group;
  if (!s.ok() || w->kind != PendingUnit::Kind::kUnit) {
    group.push_back(w);
    if (s.ok() && w->kind == PendingUnit::Kind::kSyncWal && !wal_broken_) {
      int64_t t = clock_->MonotonicNs();
      s = wal_->Sync();
      RecordSyncLatency(clock_->MonotonicNs() - t);
      wal_syncs_++;
      if (s.ok()) {
        unsynced_framed_.clear();
      } else {
        wal_broken_ = true;
        wal_error_ = s;
        Status r = RecoverWalAfterErrorLocked();
        s = Status::Unavailable("WAL fsync failed: " + s.ToString() +
                                (r.ok() ? "" : "; " + r.ToString()));
      }
    }
  } else {
    size_t bytes = 0;
    for (PendingUnit* p : writers_) {
      if (p->kind != PendingUnit::Kind::kUnit) break;
      group.push_back(p);
      bytes += p->body.view().size();
      if (bytes > (8u << 20)) break;
    }
    int64_t now = clock_->NowMs();
    int64_t stamp = std::max(now, last_ingested_at_ms_);
    for (PendingUnit* p : group) {
      p->seq = ++last_seq_;
      p->ingested_at_ms = stamp;
    }
    last_ingested_at_ms_ = stamp;
    std::shared_ptr<MemTable> mem = active_;
    lock.unlock();

    // Record i is framed[head_end[i - 1], head_end[i]) (record header + unit header) then
    // unit i's body, written with one gathered write: the bodies are not copied. The leader's
    // buffers are kept between groups (only the leader of the queue's front group uses them).
    std::string& framed = leader_framed_;
    std::vector<std::string_view>& parts = leader_parts_;
    framed.clear();
    parts.clear();
    // Each unit says how much of the file was durable when it was written, so a reader can
    // tell this group's bytes persisted out of order by an OS crash (unsynced: torn) from
    // damage to synced data.
    const uint64_t durable_length = wal_->synced_size();
    std::string header;
    std::vector<size_t> head_end;
    head_end.reserve(group.size());
    for (PendingUnit* p : group) {
      header.clear();
      PutFixed64(&header, durable_length);
      EncodeUnitHeader(UnitHeader{p->seq, p->ingested_at_ms, p->request_time_ms}, &header);
      wal::Writer::FrameRecordWithoutTail(wal_->file_number(), wal::RecordType::kDurableUnit,
                                          header, p->body.view().size(), p->body_crc, &framed);
      head_end.push_back(framed.size());
    }
    for (size_t i = 0, start = 0; i < group.size(); start = head_end[i], i++) {
      parts.push_back(std::string_view(framed).substr(start, head_end[i] - start));
      parts.push_back(group[i]->body.view());
    }
    s = wal_->AppendFramedV(parts);
    if (s.ok() && options_.durability == Durability::kStrict) {
      int64_t t = clock_->MonotonicNs();
      s = wal_->Sync();
      RecordSyncLatency(clock_->MonotonicNs() - t);
      wal_syncs_++;
    }
    lock.lock();
    if (s.ok()) {
      wal_files_.back().max_seq = group.back()->seq;
      if (options_.durability == Durability::kFast) {
        for (std::string_view part : parts) unsynced_framed_.append(part);
      }
      // Durable: hand the queue to the next group now, so its WAL write and fsync overlap
      // this group's memtable inserts (the commit chain is write + fsync, not write + fsync
      // + inserts). Groups insert in ticket order; the members are acknowledged once their
      // rows are in the memtable and visible.
      const uint64_t ticket = insert_tickets_++;
      for (size_t i = 0; i < group.size(); i++) writers_.pop_front();
      if (!writers_.empty()) writers_.front()->cv.notify_one();
      insert_cv_.wait(lock, [&] { return inserted_tickets_ == ticket; });
      // Units in sequence order; each member is acknowledged as soon as its own unit is in
      // and visible (a later unit of the group does not hold it back). The leader's unit is
      // the group's first; the leader returns after the last.
      for (PendingUnit* p : group) {
        lock.unlock();
        // AddUnit notes the sequence (also for a unit of conflicts only): one exclusive
        // lock per unit, not two.
        mem->AddUnit(p->seq, p->ingested_at_ms, p->body.view(), p->rows);
        for (ConflictEntry& c : p->conflicts) {
          c.commit_seq = p->seq;
          if (c.stored_ingested_at_ms == kSameUnitStamp) {
            c.stored_ingested_at_ms = p->ingested_at_ms;
          }
          mem->AddConflict(std::move(c));
        }
        lock.lock();
        visible_seq_ = p->seq;
        if (p != w) {  // p is not touched again: its writer may return at once
          p->status = s;
          p->done = true;
          p->cv.notify_one();
        }
      }
      inserted_tickets_++;
      insert_cv_.notify_all();
      w->status = s;
      w->done = true;
      return s;
    } else {
      wal_broken_ = true;
      wal_error_ = s;
      for (PendingUnit* p : group) pending_voids_.push_back(p->seq);
      Status r = RecoverWalAfterErrorLocked();
      s = Status::Unavailable("WAL write failed, nothing of this batch was acknowledged: " +
                              s.ToString() + (r.ok() ? "" : "; WAL recovery: " + r.ToString()));
    }
  }

  for (PendingUnit* p : group) {
    writers_.pop_front();
    p->status = s;
    p->done = true;
    if (p != w) p->cv.notify_one();
  }
  if (!writers_.empty()) writers_.front()->cv.notify_one();
  return s;
}

Status DBImpl::IngestJson(std::string_view body, bool ndjson, IngestResult* result) {
  std::vector<DecodedEvent> decoded;
  if (ndjson) {
    DecodeBatchNdjson(body, &decoded);
  } else {
    RETURN_IF_ERROR(DecodeBatchJson(body, &decoded));
  }
  IngestOptions opts;
  opts.prevalidated = true;
  std::vector<Event> events;
  events.reserve(decoded.size());
  bool any_rejected = false;
  for (DecodedEvent& d : decoded) {
    if (!d.ok()) any_rejected = true;
  }
  if (any_rejected) opts.reject_reasons.resize(decoded.size());
  for (size_t i = 0; i < decoded.size(); i++) {
    if (!decoded[i].ok()) {
      opts.reject_reasons[i] = std::move(decoded[i].reject_reason);
      decoded[i].event.event_id = decoded[i].event_id_for_report;
    }
    events.push_back(std::move(decoded[i].event));
  }
  return Ingest(std::move(events), opts, result);
}

namespace {
// Ingest's per-batch arrays, kept per thread between batches. Allocated per batch they were a
// dozen requests of 1-200 KB (a batch of 1,000: hashes, probes, digests, the ~200 KB unit
// body), too large for glibc's thread cache: each went through the arena's bins and, while the
// batch's freed events sat in the fastbins, consolidated them first (malloc_consolidate).
// Capacity beyond kKeepBytes (a batch far larger than usual) is given back after the batch.
struct IngestScratch {
  static constexpr size_t kKeepBytes = 8u << 20;
  std::vector<uint8_t> valid, accepted_here;
  std::vector<uint64_t> id_hash;
  std::vector<uint32_t> first, probe_of;
  std::vector<ReservationTable::HashedId> ids;
  std::vector<MemTable::Probe> probes;
  std::vector<Digest128> accepted_digest;
  ReservationTable::Grouping grouping;
  IdTable seen;
  std::string body;
  std::vector<RowMeta> rows;
  bool in_use = false;

  void Trim() {
    if (body.capacity() > kKeepBytes) std::string().swap(body);
    if (rows.capacity() * sizeof(RowMeta) > kKeepBytes) std::vector<RowMeta>().swap(rows);
    if (probes.capacity() * sizeof(MemTable::Probe) > kKeepBytes) *this = IngestScratch();
  }
};
}  // namespace

Status DBImpl::Ingest(std::vector<Event> events, const IngestOptions& options,
                      IngestResult* result) {
  *result = IngestResult();
  const size_t n = events.size();
  result->results.resize(n);
  // This thread's scratch (a fresh one if this thread is already inside Ingest, which only a
  // callback could cause). Declared first: released after everything below that uses it.
  thread_local IngestScratch tls_scratch;
  std::optional<IngestScratch> own_scratch;
  IngestScratch& sc = tls_scratch.in_use ? own_scratch.emplace() : tls_scratch;
  struct ScratchUser {
    IngestScratch* sc;
    explicit ScratchUser(IngestScratch* s) : sc(s) { sc->in_use = true; }
    ~ScratchUser() {
      sc->Trim();
      sc->in_use = false;
    }
  } scratch_user(&sc);
  int64_t request_time = options.request_time_ms ? options.request_time_ms : clock_->NowMs();

  // Every return passes here last: the results name their events by taking the ids out of the
  // consumed batch (no copy), after the reservations (views into those ids, see `releaser`,
  // declared later and so destroyed first) are released.
  struct IdMover {
    std::vector<Event>* events;
    IngestResult* result;
    ~IdMover() {
      for (size_t i = 0; i < events->size(); i++) {
        result->results[i].event_id = std::move((*events)[i].event_id);
      }
    }
  } id_mover{&events, result};

  // 1. Clock-free §1 rules.
  std::vector<uint8_t>& valid = sc.valid;
  valid.assign(n, 1);
  for (size_t i = 0; i < n; i++) {
    EventResult& r = result->results[i];
    r.index = static_cast<uint32_t>(i);
    std::string reason;
    if (!options.reject_reasons.empty() && !options.reject_reasons[i].empty()) {
      reason = options.reject_reasons[i];
    } else if (!options.prevalidated) {
      reason = ValidateEvent(&events[i]);
    }
    if (!reason.empty()) {
      r.outcome = Outcome::kRejected;
      r.reason = std::move(reason);
      valid[i] = 0;
    }
  }

  // 2. Hash every id once (Hash64, reused by every table on the path: in-batch repeats,
  // reservations, memtable indexes, dedupe routing); find the batch's distinct ids.
  // first[i]: the first valid event with event i's id; probe_of[first]: its distinct-id slot.
  constexpr uint32_t kNone = IdTable::kNone;
  std::vector<uint64_t>& id_hash = sc.id_hash;
  std::vector<uint32_t>& first = sc.first;
  std::vector<uint32_t>& probe_of = sc.probe_of;
  id_hash.assign(n, 0);
  first.assign(n, kNone);
  probe_of.assign(n, kNone);
  // Views into `events`, which outlives the reservations (released by `releaser` below).
  std::vector<ReservationTable::HashedId>& ids = sc.ids;
  ids.clear();
  ids.reserve(n);
  {
    IdTable& seen = sc.seen;
    if (seen.memory_bytes() > 64 * std::max<size_t>(n, 1024)) seen = IdTable();
    seen.Clear();
    seen.Reserve(n);
    auto id_of = [&events](uint32_t j) { return std::string_view(events[j].event_id); };
    for (size_t i = 0; i < n; i++) {
      if (!valid[i]) continue;
      const std::string_view id = events[i].event_id;
      id_hash[i] = Hash64(id);
      first[i] = seen.Insert(id_hash[i], id, static_cast<uint32_t>(i), id_of);
      if (first[i] == i) {
        probe_of[i] = static_cast<uint32_t>(ids.size());
        ids.push_back({id, id_hash[i]});
      }
    }
  }
  uint64_t token;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return Status::Unavailable("database is closed");
    token = next_token_++;
  }
  ReservationTable::Grouping& grouping = sc.grouping;  // by shard, for ReserveAll and ReleaseAll
  reservations_.ReserveAll(ids, token, &grouping);
  struct Releaser {
    ReservationTable* t;
    const std::vector<ReservationTable::HashedId>* ids;
    uint64_t token;
    const ReservationTable::Grouping* grouping;
    ~Releaser() { t->ReleaseAll(*ids, token, *grouping); }
  } releaser{&reservations_, &ids, token, &grouping};

  // 3. What is stored under each distinct id (same snapshot for all): the memtables newest
  // first, one shared lock per memtable for the whole batch, then the dedupe index.
  Snapshot snap = GetSnapshot(std::nullopt);
  const int64_t now = clock_->NowMs();
  const int64_t window_ms = options_.dedupe_window_days * 86400000LL;
  std::vector<MemTable::Probe>& probes = sc.probes;
  probes.resize(ids.size());
  for (size_t k = 0; k < ids.size(); k++) probes[k] = MemTable::Probe{ids[k].id, ids[k].hash};
  for (auto it = snap.version->memtables.rbegin(); it != snap.version->memtables.rend(); ++it) {
    (*it)->FindDigests(probes.data(), probes.size());
  }
  SegmentRowResolver resolver(this);
  const std::shared_ptr<const DedupeIndex::RunSet> runs = dedupe_->PinRuns();
  // Each lookup probes one filter line per run (a cache miss each): start the lines of the
  // lookup a few ids ahead before testing this one.
  constexpr size_t kAhead = 4;
  const size_t lookahead = runs->runs.empty() ? 0 : kAhead;
  for (size_t k = 0; k < std::min(lookahead, probes.size()); k++) {
    if (!probes[k].found) DedupeIndex::PrefetchIn(*runs, probes[k].hash);
  }
  for (size_t k = 0; k < probes.size(); k++) {
    if (k + lookahead < probes.size() && !probes[k + lookahead].found) {
      DedupeIndex::PrefetchIn(*runs, probes[k + lookahead].hash);
    }
    MemTable::Probe& p = probes[k];
    if (p.found) continue;
    ASSIGN_OR_RETURN(auto d,
                     dedupe_->LookupIn(*runs, p.id, p.hash, now, window_ms, &resolver));
    if (d) {
      p.found = true;
      p.stored = MemTable::Stored{d->payload_digest, d->ingested_at_ms};
    }
  }

  // 4. Classify in request order. An id accepted earlier in this batch is stored with this
  // unit's stamp (kSameUnitStamp until the leader assigns it).
  struct Stored {
    Digest128 digest;
    int64_t ingested_at_ms;
  };
  // Each candidate is encoded into the unit body with its digest in one pass (writer thread,
  // in parallel with other writers); one that is not accepted is overwritten by the next.
  std::vector<uint8_t>& accepted_here = sc.accepted_here;
  std::vector<Digest128>& accepted_digest = sc.accepted_digest;
  accepted_here.assign(ids.size(), 0);
  accepted_digest.resize(ids.size());
  PendingUnit unit;
  unit.request_time_ms = request_time;
  // The unit borrows the scratch's body and row buffers (AddUnit copies what it keeps).
  unit.body.bytes.swap(sc.body);
  unit.rows.swap(sc.rows);
  struct BufferReturn {
    PendingUnit* unit;
    IngestScratch* sc;
    ~BufferReturn() {
      unit->body.bytes.swap(sc->body);
      unit->rows.swap(sc->rows);
    }
  } buffer_return{&unit, &sc};
  UnitBodyBuilder body(&unit.body, &unit.rows, ids.size());
  for (size_t i = 0; i < n; i++) {
    if (!valid[i]) continue;
    Event& e = events[i];
    EventResult& r = result->results[i];
    const Digest128 digest = body.Encode(e);
    const uint32_t k = probe_of[first[i]];
    std::optional<Stored> stored;
    if (accepted_here[k]) {
      stored = Stored{accepted_digest[k], kSameUnitStamp};
    } else if (probes[k].found) {
      stored = Stored{probes[k].stored.digest, probes[k].stored.ingested_at_ms};
    }
    if (stored) {
      if (stored->digest == digest) {
        r.outcome = Outcome::kDuplicate;
      } else {
        r.outcome = Outcome::kConflict;
        ConflictEntry c;
        c.reason = ConflictReason::kConflict;
        c.request_time_ms = request_time;
        c.stored_ingested_at_ms = stored->ingested_at_ms;
        c.event = e;
        unit.conflicts.push_back(std::move(c));
      }
      continue;
    }
    // New event: the clock-dependent checks.
    if (e.timestamp_ms > now + options_.max_future_skew_ms) {
      r.outcome = Outcome::kRejected;
      r.reason = "timestamp_ms: more than max_future_skew_ms (" +
                 std::to_string(options_.max_future_skew_ms) + ") in the future";
      continue;
    }
    if (window_ms > 0 && e.kind == EventKind::kUsage && e.timestamp_ms < now - window_ms) {
      r.outcome = Outcome::kRejected;
      r.reason = "timestamp_ms: older than the dedupe window";
      continue;
    }
    r.outcome = Outcome::kAccepted;
    accepted_here[k] = 1;
    accepted_digest[k] = digest;
    body.Accept(e, digest, id_hash[i]);
  }

  for (const EventResult& r : result->results) {
    switch (r.outcome) {
      case Outcome::kAccepted: result->accepted++; break;
      case Outcome::kDuplicate: result->duplicates++; break;
      case Outcome::kConflict: result->conflicts++; break;
      case Outcome::kRejected: result->rejected++; break;
    }
  }
  if (body.accepted() == 0 && unit.conflicts.empty()) {
    result->commit_sequence = snap.seq;
    return Status::OK();
  }

  // 5. Finish the unit body, then commit.
  {
    std::vector<const ConflictEntry*> cf;
    for (const ConflictEntry& c : unit.conflicts) cf.push_back(&c);
    body.Finish(cf);
  }
  // Checksummed here, in parallel with other writers: the leader combines it with the header's
  // (serial work per unit O(log size) instead of O(size)).
  unit.body_crc = crc32c::Value(unit.body.view());
  // The body's records are (for the memtable) offsets relative to the body, which the unit
  // payload prefixes with its header; AddUnit receives the body itself.
  Status s = Commit(&unit);
  if (!s.ok()) return s;  // nothing acknowledged; reservations released unpublished
  result->commit_sequence = unit.seq;
  result->ingested_at_ms = unit.ingested_at_ms;
  return Status::OK();
}

// ---------------------------------------------------------------------------------------
// Flush

Status DBImpl::Flush() {
  // Fast mode: fsync the WAL first (a flush is a durability point).
  if (options_.durability == Durability::kFast) {
    PendingUnit sync;
    sync.kind = PendingUnit::Kind::kSyncWal;
    RETURN_IF_ERROR(Commit(&sync));
  }
  uint64_t target;
  {
    std::lock_guard<std::mutex> l(mu_);
    target = visible_seq_;
  }
  if (!options_.background_flush) {
    // Make room first: the switch below needs a free immutable slot.
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (imms_.empty()) break;
      }
      RETURN_IF_ERROR(FlushOldestImmutable());
    }
  }
  PendingUnit sw;
  sw.kind = PendingUnit::Kind::kSwitchMemtable;
  RETURN_IF_ERROR(Commit(&sw));
  return WaitForFlushed(target);
}

Status DBImpl::WaitForFlushed(uint64_t seq) {
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (imms_.empty() || imms_.front()->min_seq() > seq) return Status::OK();
      if (options_.background_flush) {
        if (!bg_error_.ok()) return bg_error_;
        bg_cv_.notify_all();
        done_cv_.wait_for(l, std::chrono::milliseconds(100));
        continue;
      }
    }
    RETURN_IF_ERROR(FlushOldestImmutable());
  }
}

void DBImpl::BackgroundLoop() {
  std::unique_lock<std::mutex> l(mu_);
  int64_t last_sync_ms = clock_->NowMs();
  while (!shutting_down_) {
    if (imms_.empty()) {
      bg_cv_.wait_for(l, std::chrono::milliseconds(
                             options_.durability == Durability::kFast
                                 ? std::max<int64_t>(1, options_.fast_sync_interval_ms)
                                 : 200));
    }
    if (shutting_down_) break;
    if (!imms_.empty()) {
      l.unlock();
      Status s = FlushOldestImmutable();
      l.lock();
      if (!s.ok()) {
        bg_error_ = s;
        done_cv_.notify_all();
        bg_cv_.wait_for(l, std::chrono::milliseconds(1000));  // back off, then retry
      } else {
        bg_error_ = Status::OK();
      }
      continue;
    }
    int64_t now = clock_->NowMs();
    bool aged = active_->size() > 0 && now - active_->created_ms() >= options_.flush_interval_ms;
    bool need_sync = options_.durability == Durability::kFast && !unsynced_framed_.empty() &&
                     now - last_sync_ms >= options_.fast_sync_interval_ms;
    if (aged || need_sync) {
      l.unlock();
      if (need_sync) {
        PendingUnit sync;
        sync.kind = PendingUnit::Kind::kSyncWal;
        Commit(&sync).IgnoreError();  // a failure is handled (and reported) by the write path
        last_sync_ms = now;
      }
      if (aged) {
        PendingUnit sw;
        sw.kind = PendingUnit::Kind::kSwitchMemtable;
        Commit(&sw).IgnoreError();
      }
      l.lock();
    }
  }
}

namespace {
[[maybe_unused]] bool BillingLess(const EventView& x, const EventView& y) {
  if (int c = x.account_id.compare(y.account_id)) return c < 0;
  if (int c = x.product_id.compare(y.product_id)) return c < 0;
  if (int c = x.meter_id.compare(y.meter_id)) return c < 0;
  std::string_view mx = x.model_id.value_or(std::string_view());
  std::string_view my = y.model_id.value_or(std::string_view());
  if (int c = mx.compare(my)) return c < 0;
  if (x.timestamp_ms != y.timestamp_ms) return x.timestamp_ms < y.timestamp_ms;
  return x.event_id < y.event_id;
}

// Dense ids for the distinct values of one key among a partition's rows, through a flat
// open-addressing table (hashes route, bytes decide), then renumbered in the values' order.
template <typename Value>
class RankTable {
 public:
  void Clear() {
    map_.Clear();
    values_.clear();
  }
  // REQUIRES: eq(a, b) is consistent with the hashes passed for a and b.
  template <typename Eq>
  uint32_t Id(uint64_t hash, const Value& v, const Eq& eq) {
    bool inserted;
    const uint32_t id = map_.FindOrInsert(
        hash, static_cast<uint32_t>(values_.size()), [&](uint32_t k) { return eq(values_[k], v); },
        &inserted);
    if (inserted) values_.push_back(v);
    return id;
  }
  // The distinct values, by id.
  const std::vector<Value>& values() const { return values_; }
  // rank[id] = position of value `id` among the distinct values sorted by `less`.
  template <typename Less>
  void Ranks(const Less& less, std::vector<uint32_t>* rank) {
    by_value_.resize(values_.size());
    for (uint32_t k = 0; k < by_value_.size(); k++) by_value_[k] = k;
    std::sort(by_value_.begin(), by_value_.end(),
              [&](uint32_t a, uint32_t b) { return less(values_[a], values_[b]); });
    rank->resize(values_.size());
    for (uint32_t r = 0; r < by_value_.size(); r++) (*rank)[by_value_[r]] = r;
  }

 private:
  segment::FlatIdMap map_;
  std::vector<Value> values_;
  std::vector<uint32_t> by_value_;
};

// Billing order (account, product, meter, model, timestamp, event_id) of one partition's rows.
// Strings are replaced by their rank among the partition's distinct values first (a partition
// has few distinct accounts and (product, meter, model) triples), so the sort compares one
// 64-bit key and the timestamp, and event_id bytes only on ties. Reuses its buffers.
// Rows are added one by one right after they are decoded (their record bytes still in cache),
// then Sort orders them.
class BillingSorter {
 public:
  // Starts a partition of n rows.
  void Begin(size_t n) {
    accounts_.Clear();
    triples_.Clear();
    keys_.resize(n);
  }
  // Row i (< n) of the partition; account_hash = Hash64(e.account_id) (the memtable keeps it).
  void Add(size_t i, const EventView& e, uint64_t account_hash) {
    auto same_triple = [](const Triple& x, const Triple& y) {
      return segment::BytesEqual(x.product, y.product) && segment::BytesEqual(x.meter, y.meter) &&
             segment::BytesEqual(x.model, y.model);
    };
    const uint32_t a = accounts_.Id(
        account_hash, e.account_id,
        [](std::string_view x, std::string_view y) { return segment::BytesEqual(x, y); });
    // A missing model is "" (model ids are never empty), as the order treats it.
    const Triple t{e.product_id, e.meter_id, e.model_id.value_or(std::string_view())};
    const uint64_t h =
        segment::Mum(segment::HashBytes(t.product) ^ segment::HashBytes(t.meter, segment::kHashK0),
                     segment::HashBytes(t.model, segment::kHashK1) ^ segment::kHashK2);
    const uint32_t p = triples_.Id(h, t, same_triple);
    keys_[i] = Key{(uint64_t{a} << 32) | p, e.timestamp_ms, static_cast<uint32_t>(i)};
  }
  // REQUIRES: rows[0, n) added since Begin(n); rows.size() == n.
  // rows[0, n): the views added (Add's i indexes them).
  void Sort(const EventView* rows, size_t n, std::vector<const EventView*>* order) {
    accounts_.Ranks([](std::string_view x, std::string_view y) { return x < y; }, &account_rank_);
    TripleRanks();
    auto less = [&](const Key& x, const Key& y) {
      if (x.key != y.key) return x.key < y.key;
      if (x.timestamp_ms != y.timestamp_ms) return x.timestamp_ms < y.timestamp_ms;
      return rows[x.row].event_id < rows[y.row].event_id;
    };
    const size_t triples = triple_rank_.size();
    const size_t groups = account_rank_.size() * triples;
    const bool counted = groups <= 4 * n + 1024;  // numbering: see the flags below
    if (counted) {
      // A stable counting sort by (account rank, triple rank) group, then each group (a few
      // rows) by timestamp and event id: rows come in arrival order, nearly sorted by time,
      // so an insertion sort barely moves them (std::sort of the whole partition spent most
      // of its time on mispredicted comparisons). Groups over 256 rows take std::sort, which
      // bounds the insertion sort's worst case (random order) at 256^2/4 moves per group.
      start_.assign(groups + 1, 0);
      for (Key& k : keys_) {
        k.key = uint64_t{account_rank_[k.key >> 32]} * triples + triple_rank_[k.key & 0xffffffffu];
        ++start_[k.key + 1];
      }
      for (size_t g = 0; g < groups; ++g) start_[g + 1] += start_[g];
      grouped_.resize(n);
      for (const Key& k : keys_) grouped_[start_[k.key]++] = k;
      keys_.swap(grouped_);
      for (size_t b = 0, e = 0; b < n; b = e) {
        e = b + 1;
        while (e < n && keys_[e].key == keys_[b].key) ++e;
        if (e - b > 256) {
          std::sort(keys_.begin() + b, keys_.begin() + e, less);
          continue;
        }
        for (size_t i = b + 1; i < e; ++i) {
          const Key k = keys_[i];
          size_t j = i;
          for (; j > b && less(k, keys_[j - 1]); --j) keys_[j] = keys_[j - 1];
          keys_[j] = k;
        }
      }
    } else {
      for (Key& k : keys_) {
        k.key = (uint64_t{account_rank_[k.key >> 32]} << 32) | triple_rank_[k.key & 0xffffffffu];
      }
      std::sort(keys_.begin(), keys_.end(), less);
    }
    order->resize(n);
    for (size_t i = 0; i < n; i++) (*order)[i] = &rows[keys_[i].row];
    // Run flags for the segment writer (SegmentRowHints), from the group keys: the account
    // rank is key / triples and the triple rank key % triples in the counting sort's
    // numbering, key >> 32 and the low 32 bits in the other.
    same_account_.resize(n);
    same_triple_.resize(n);
    for (size_t i = 0; i < n; i++) {
      if (i == 0) {
        same_account_[i] = same_triple_[i] = 0;
        continue;
      }
      const uint64_t a = keys_[i].key, b = keys_[i - 1].key;
      same_account_[i] = counted ? a / triples == b / triples : (a >> 32) == (b >> 32);
      same_triple_[i] =
          counted ? a % triples == b % triples : (a & 0xffffffffu) == (b & 0xffffffffu);
    }
  }
  // After Sort: hints for the rows in `order`.
  SegmentRowHints Hints() const {
    return SegmentRowHints{same_account_.data(), same_triple_.data()};
  }

 private:
  struct Triple {
    std::string_view product, meter, model;
  };

  // triple_rank_[id] = rank of triple `id` in (product, meter, model) byte order. Each field
  // has few distinct values: they are ranked alone, and the triples sorted by the three ranks
  // packed into one integer (a partition has hundreds of triples; sorting them by three
  // string comparisons cost ~100 instructions per flushed row).
  void TripleRanks() {
    const std::vector<Triple>& t = triples_.values();
    const size_t count = t.size();
    if (count >= (size_t{1} << 21)) {  // ranks would not fit 21 bits each
      triples_.Ranks(
          [](const Triple& x, const Triple& y) {
            if (int c = x.product.compare(y.product)) return c < 0;
            if (int c = x.meter.compare(y.meter)) return c < 0;
            return x.model < y.model;
          },
          &triple_rank_);
      return;
    }
    packed_.assign(count, 0);
    for (int f = 0; f < 3; f++) {
      auto field = [f](const Triple& x) { return f == 0 ? x.product : f == 1 ? x.meter : x.model; };
      field_.Clear();
      field_id_.resize(count);
      for (size_t j = 0; j < count; j++) {
        const std::string_view v = field(t[j]);
        field_id_[j] = field_.Id(
            segment::HashBytes(v), v,
            [](std::string_view x, std::string_view y) { return segment::BytesEqual(x, y); });
      }
      field_.Ranks([](std::string_view x, std::string_view y) { return x < y; }, &field_rank_);
      for (size_t j = 0; j < count; j++) {
        packed_[j] = (packed_[j] << 21) | field_rank_[field_id_[j]];
      }
    }
    by_packed_.resize(count);
    for (size_t j = 0; j < count; j++) by_packed_[j] = {packed_[j], static_cast<uint32_t>(j)};
    std::sort(by_packed_.begin(), by_packed_.end());
    triple_rank_.resize(count);
    for (size_t r = 0; r < count; r++) {
      triple_rank_[by_packed_[r].second] = static_cast<uint32_t>(r);
    }
  }

  struct Key {
    uint64_t key;  // account id << 32 | triple id; Sort turns it into ranks (same order)
    int64_t timestamp_ms;
    uint32_t row;
  };
  RankTable<std::string_view> accounts_;
  RankTable<Triple> triples_;
  RankTable<std::string_view> field_;
  std::vector<uint32_t> account_rank_, triple_rank_, start_, field_id_, field_rank_;
  std::vector<uint64_t> packed_;
  std::vector<std::pair<uint64_t, uint32_t>> by_packed_;
  std::vector<Key> keys_, grouped_;
  std::vector<uint8_t> same_account_, same_triple_;
};

// A memtable row as the flush needs it, copied out of the row store in partition order: the
// rows of one partition lie scattered over the store (arrival order), and fetching them there
// in partition order stalled the decode on a cache miss per row (a third of the partition
// loop's time). The grouping pass reads the store sequentially and writes one sequential
// stream per bucket, which the hardware handles well.
struct PartitionKey {
  uint32_t bucket;
  int32_t partition;
  const char* record;
  uint32_t record_length;
  EventKind kind;
  uint64_t commit_seq;
  int64_t ingested_at_ms;
  uint64_t account_hash;
  uint64_t id_hash;
  int64_t timestamp_ms;  // 64 bytes in all: the run entry of a row reads one line
};

// The memtable's rows grouped by (bucket, month partition), rows in insertion order within a
// group: a counting sort by bucket, then (rarely needed) a stable sort by month per bucket.
// Fills (*keys)[0, rows.size()); both vectors are only grown (kept by the caller between
// flushes, so their pages are not faulted in and zeroed again).
void GroupByPartition(const MemRowStore& rows, uint32_t bucket_count,
                      std::vector<PartitionKey>* keys, std::vector<uint32_t>* bucket_of) {
  std::vector<uint32_t> start(size_t{bucket_count} + 1, 0);
  if (bucket_of->size() < rows.size()) bucket_of->resize(rows.size());
  uint32_t* bucket = bucket_of->data();
  for (size_t i = 0; i < rows.size(); i++) {
    bucket[i] = static_cast<uint32_t>(rows[i].account_hash % bucket_count);
    start[bucket[i] + 1]++;
  }
  for (uint32_t b = 0; b < bucket_count; b++) start[b + 1] += start[b];
  if (keys->size() < rows.size()) keys->resize(rows.size());
  std::vector<uint32_t> next(start.begin(), start.end() - 1);
  // Consecutive rows are mostly from the same day: the month is computed once per day run.
  constexpr int64_t kDayMs = 86400000;
  int64_t last_day = INT64_MIN;
  int32_t month = 0;
  for (size_t i = 0; i < rows.size(); i++) {
    const int64_t ts = rows[i].timestamp_ms;
    const int64_t day = ts >= 0 ? ts / kDayMs : -((-(ts + 1)) / kDayMs) - 1;  // floor
    if (day != last_day) {
      month = MonthPartition(ts);
      last_day = day;
    }
    const MemRow& r = rows[i];
    (*keys)[next[bucket[i]]++] =
        PartitionKey{bucket[i],       month,           r.record,       r.record_length, r.kind,
                     r.commit_seq,    r.ingested_at_ms, r.account_hash, r.id_hash,
                     r.timestamp_ms};
  }
  for (uint32_t b = 0; b < bucket_count; b++) {
    auto first = keys->begin() + start[b], last = keys->begin() + start[b + 1];
    bool one_month = std::all_of(
        first, last, [&](const PartitionKey& k) { return k.partition == first->partition; });
    if (!one_month) {
      std::stable_sort(first, last, [](const PartitionKey& x, const PartitionKey& y) {
        return x.partition < y.partition;
      });
    }
  }
}
}  // namespace

namespace {
uint64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

namespace {
// One encoding thread's buffers (see DBImpl::flush_scratch_).
struct alignas(64) FlushWorkerScratch {
  std::vector<EventView> events;  // grown only
  std::vector<const EventView*> order;
  BillingSorter sorter;
  SegmentWriterScratch segment;
};
}  // namespace

struct DBImpl::FlushScratch {
  std::vector<PartitionKey> keys;           // grown only
  std::vector<uint32_t> buckets;            // grown only
  std::vector<DedupeRunEntry> run_entries;  // grown only
  FlushWorkerScratch workers[2];
};

void DBImpl::FlushScratchDeleter::operator()(FlushScratch* p) const { delete p; }

Status DBImpl::FlushOldestImmutable() {
  std::lock_guard<std::mutex> flush_lock(flush_mu_);
  // This thread's CPU time in the flush, added at every return (helpers add their own).
  struct CpuMeter {
    std::atomic<uint64_t>* sum;
    uint64_t start = ThreadCpuNs();
    ~CpuMeter() { sum->fetch_add(ThreadCpuNs() - start, std::memory_order_relaxed); }
  } cpu_meter{&flush_cpu_ns_};
  // Runs f on a new thread whose CPU time counts as the flush's.
  auto metered_thread = [this](auto f) {
    return std::thread([this, f] {
      CpuMeter meter{&flush_cpu_ns_};
      f();
    });
  };
  std::shared_ptr<MemTable> imm;
  ManifestState base;
  uint32_t bucket_count;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (imms_.empty()) return Status::OK();
    imm = imms_.front();
    base = version_->manifest;
    bucket_count = base.bucket_count;
  }

  // Group the rows by partition (bucket, month) from their headers; each partition's events
  // are decoded, sorted in billing order and written as one file, so the flush holds at most
  // two partitions decoded (one per flushing thread).
  const auto& rows = imm->rows_for_flush();
  const auto& conflicts = imm->conflicts_for_flush();
  if (flush_scratch_ == nullptr) flush_scratch_.reset(new FlushScratch());
  std::vector<PartitionKey>& keys = flush_scratch_->keys;  // [0, rows.size()) are this flush's
  GroupByPartition(rows, bucket_count, &keys, &flush_scratch_->buckets);
  const size_t nkeys = rows.size();
  size_t partitions = 0;
  for (size_t i = 0; i < nkeys; i++) {
    if (i == 0 || keys[i].bucket != keys[i - 1].bucket ||
        keys[i].partition != keys[i - 1].partition) {
      partitions++;
    }
  }
  uint64_t first_number;
  // Every segment of this flush names everything the flush writes (the fallback re-adopts a
  // flush only when all of it is present): segments take first_number.., then the run, then
  // the conflict log.
  FlushReceipt receipt;
  {
    std::lock_guard<std::mutex> l(mu_);
    first_number = next_file_number_;
    next_file_number_ += partitions + 2;
    receipt.last_sequence = last_seq_;
    receipt.max_ingested_at_ms = std::max(imm->max_ingested_at_ms(), last_ingested_at_ms_);
  }
  receipt.segment_count = static_cast<uint32_t>(partitions);
  receipt.event_count = rows.size();
  receipt.dedupe_run = rows.empty() ? 0 : first_number + partitions;
  receipt.conflict_log = conflicts.empty() ? 0 : first_number + partitions + 1;
  receipt.conflict_count = conflicts.size();
  std::vector<std::string> written;
  // A written segment's fsync and rename run on a third thread (sync_segments below), so the
  // two encoding threads go on to the next partition instead of waiting on the disk (~1 ms per
  // file; a flush writes up to bucket_count files per month). Nothing is committed before
  // every queued file is synced and renamed (the syncer is joined before the directory
  // syncs); after a failure, files still queued are removed, not committed.
  struct PendingSync {
    size_t partition;
    std::unique_ptr<UnsyncedSegment> segment;
  };
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  std::deque<PendingSync> sync_queue;
  bool encoding_done = false;
  std::atomic<bool> failed{false};
  std::thread syncer;
  auto stop_syncer = [&] {
    {
      std::lock_guard<std::mutex> l(sync_mu);
      encoding_done = true;
    }
    sync_cv.notify_one();
    if (syncer.joinable()) syncer.join();
  };
  auto cleanup = [&](const Status& s) {
    failed = true;
    stop_syncer();
    for (const std::string& p : written) fs_->RemoveFile(p).IgnoreError();
    return s;
  };

  ManifestState next = base;
  std::vector<std::shared_ptr<SegmentHandle>> new_handles;
  const uint64_t origin_min = imm->min_seq();
  const uint64_t origin_max = imm->max_seq();
  // Partition p is rows keys[ranges[p].first, ranges[p].second) and file first_number + p.
  std::vector<std::pair<size_t, size_t>> ranges;
  ranges.reserve(partitions);
  for (size_t i = 0; i < nkeys;) {
    size_t j = i;
    while (j < nkeys && keys[j].bucket == keys[i].bucket &&
           keys[j].partition == keys[i].partition) {
      j++;
    }
    ranges.emplace_back(i, j);
    i = j;
  }
  for (size_t p = 0; p < partitions; p++) {
    written.push_back(Path(kSegmentDir) + "/" + SegmentFileName(first_number + p));
  }
  // Partitions are independent files: two threads write them (the flusher alone cannot keep up
  // with the writers on two cores), each with its own scratch. Outputs land in per-partition
  // slots, so files, numbers and the run's entries are the same as written one by one.
  std::vector<SegmentInfo> infos(partitions);
  // Partition p's run entries are run_entries[ranges[p]] (its rows, in billing order); every
  // one is assigned below (the array is kept between flushes, grown only).
  std::vector<DedupeRunEntry>& run_entry_store = flush_scratch_->run_entries;
  if (run_entry_store.size() < rows.size()) run_entry_store.resize(rows.size());
  const std::span<DedupeRunEntry> run_entries(run_entry_store.data(), rows.size());
  std::vector<Status> part_status(partitions);
  SegmentWriterOptions writer_options;
  writer_options.event_ids_distinct = true;  // a memtable holds one row per event id
  const bool ids_hash64 = imm->ids_hashed_with_hash64();
  std::atomic<size_t> next_partition{0};
  auto sync_segments = [&] {
    for (;;) {
      PendingSync job;
      {
        std::unique_lock<std::mutex> l(sync_mu);
        sync_cv.wait(l, [&] { return !sync_queue.empty() || encoding_done; });
        if (sync_queue.empty()) return;
        job = std::move(sync_queue.front());
        sync_queue.pop_front();
      }
      if (failed.load()) continue;  // job.segment's destructor removes the temporary
      Status st = job.segment->Commit();
      if (!st.ok()) {
        part_status[job.partition] = st;
        failed = true;
      }
    }
  };
  auto write_partitions = [&](FlushWorkerScratch* ws) {
    std::vector<EventView>& events = ws->events;
    std::vector<const EventView*>& order = ws->order;
    BillingSorter& sorter = ws->sorter;
    SegmentWriterScratch& scratch = ws->segment;
    for (;;) {
      const size_t p = next_partition.fetch_add(1);
      if (p >= partitions || failed.load()) return;
      const auto [i, j] = ranges[p];
      // Grown only (every field of a view is assigned by the decode): value-initializing
      // ~200-byte views per partition showed in profiles.
      if (events.size() < j - i) events.resize(j - i);
      sorter.Begin(j - i);
      bool decoded = true;
      // Keys are read in order; records lie in per-bucket arenas in insertion order (the
      // decode order): fetch them kRecordAhead rows ahead.
      constexpr size_t kRecordAhead = 8;
      for (size_t k = i; k < j && decoded; k++) {
        if (k + kRecordAhead < j) {
          const PartitionKey& ahead = keys[k + kRecordAhead];
          for (uint32_t off = 0; off < std::min(ahead.record_length, 256u); off += 64) {
            __builtin_prefetch(ahead.record + off);
          }
        }
        const PartitionKey& key = keys[k];
        EventView& view = events[k - i];
        decoded = DecodeEventBinaryView(std::string_view(key.record, key.record_length), &view);
        view.commit_seq = key.commit_seq;
        view.ingested_at_ms = key.ingested_at_ms;
        if (decoded) sorter.Add(k - i, view, key.account_hash);
      }
      if (!decoded) {
        part_status[p] = Status::Internal("undecodable memtable row");
        failed = true;
        return;
      }
      sorter.Sort(events.data(), j - i, &order);
      // Debug builds (the test suite) check the rank-based sort against the plain definition.
      assert(std::is_sorted(order.begin(), order.end(),
                            [](const EventView* a, const EventView* b) {
                              return BillingLess(*a, *b);
                            }));
      SegmentInfo& info = infos[p];
      info.bucket = keys[i].bucket;
      info.partition = keys[i].partition;
      info.origin_min_seq = origin_min;
      info.origin_max_seq = origin_max;
      info.receipt = receipt;
      const uint64_t fnum = first_number + p;
      std::unique_ptr<UnsyncedSegment> unsynced;
      part_status[p] =
          WriteSegmentUnsynced(fs_, written[p], order, writer_options, &info, &scratch, &unsynced,
                               sorter.Hints());
      if (!part_status[p].ok()) {
        failed = true;
        return;
      }
      {
        std::lock_guard<std::mutex> l(sync_mu);
        sync_queue.push_back(PendingSync{p, std::move(unsynced)});
      }
      sync_cv.notify_one();
      DedupeRunEntry* entries = run_entries.data() + i;
      for (size_t k = 0; k < order.size(); k++) {
        // From the row's key (one cache line), not its view (a few lines, long evicted by the
        // encoding).
        const PartitionKey& pk = keys[i + (order[k] - events.data())];
        // The run routes by Hash64(event_id), which the memtable row already holds (computed
        // once on the write path) unless a test gave the memtable another hash.
        const uint64_t id_hash = ids_hash64 ? pk.id_hash : Hash64(order[k]->event_id);
        assert(id_hash == Hash64(order[k]->event_id));
        entries[k] = DedupeRunEntry{id_hash, RowLocation{fnum, static_cast<uint32_t>(k)},
                                    pk.commit_seq, pk.kind != EventKind::kUsage,
                                    std::max(pk.ingested_at_ms, pk.timestamp_ms)};
      }
    }
  };
  if (partitions > 0) syncer = metered_thread(sync_segments);
  {
    std::thread helper;
    if (partitions > 1) {
      helper = metered_thread([&] { write_partitions(&flush_scratch_->workers[1]); });
    }
    write_partitions(&flush_scratch_->workers[0]);
    if (helper.joinable()) helper.join();
  }
  // The syncer drains its queue while this thread writes the dedupe run and conflict log.
  auto first_error = [&]() -> Status {
    for (const Status& st : part_status) {
      if (!st.ok()) return st;
    }
    return Status::OK();
  };
  if (failed.load()) {
    stop_syncer();
    return cleanup(first_error());
  }

  std::shared_ptr<DedupeRun> new_run;
  if (!run_entries.empty()) {
    const uint64_t fnum = receipt.dedupe_run;
    std::string path = Path(kDedupeDir) + "/" + DedupeRunFileName(fnum);
    DedupeRunInfo info;
    Status s = WriteDedupeRun(fs_, path, std::span<const DedupeRunEntry>(run_entries), &info);
    if (!s.ok()) return cleanup(s);
    written.push_back(path);
    auto run = DedupeRun::Open(fs_, path, fnum);
    if (!run.ok()) return cleanup(run.status());
    new_run = std::move(run).value();
    next.dedupe_runs.push_back(DedupeRunMeta{fnum, info.key_count, info.file_size,
                                             info.min_commit_seq, info.max_commit_seq});
  }
  if (!conflicts.empty()) {
    const uint64_t fnum = receipt.conflict_log;
    auto w = wal::Writer::Create(fs_, Path(kConflictDir), fnum, origin_min);
    if (!w.ok()) return cleanup(w.status());
    written.push_back(Path(kConflictDir) + "/" + wal::WalFileName(fnum));
    std::string framed;
    for (const ConflictEntry& c : conflicts) {
      std::string payload;
      PutVarint64(&payload, c.commit_seq);
      PutVarint64(&payload, ZigZagEncode64(c.request_time_ms));
      payload.push_back(static_cast<char>(c.reason));
      PutVarint64(&payload, ZigZagEncode64(c.stored_ingested_at_ms));
      EncodeEventBinary(c.event, &payload);
      wal::Writer::FrameRecord(fnum, wal::RecordType::kUnit, payload, &framed);
    }
    Status s = (*w)->AppendFramed(framed);
    if (s.ok()) s = (*w)->Sync();
    if (s.ok()) s = (*w)->Close();
    if (!s.ok()) return cleanup(s);
    auto size = fs_->FileSize(written.back());
    if (!size.ok()) return cleanup(size.status());
    next.conflict_logs.push_back(
        ConflictLogMeta{fnum, conflicts.size(), *size, origin_min, origin_max});
  }
  stop_syncer();  // every segment synced and renamed (or a failure recorded)
  if (Status s = first_error(); !s.ok()) return cleanup(s);
  for (size_t p = 0; p < partitions; p++) {
    const uint64_t fnum = first_number + p;
    const SegmentMeta m = SegmentMetaFromInfo(fnum, infos[p]);  // origin: the flushed range
    next.segments.push_back(m);
    new_handles.push_back(std::make_shared<SegmentHandle>(fs_, written[p], m));
  }
  for (const char* sub : {kSegmentDir, kDedupeDir, kConflictDir}) {
    Status s = fs_->SyncDir(Path(sub));
    if (!s.ok()) return cleanup(s);
  }

  std::vector<uint64_t> retire;
  {
    std::lock_guard<std::mutex> l(mu_);
    next.flushed_sequence = std::max(base.flushed_sequence, origin_max);
    // Everything assigned so far (voided sequences included), so a restart after the WAL is
    // retired never reuses a sequence or moves the stamp back.
    next.last_sequence = std::max({base.last_sequence, next.flushed_sequence, last_seq_});
    next.last_ingested_at_ms =
        std::max({base.last_ingested_at_ms, imm->max_ingested_at_ms(), last_ingested_at_ms_});
    next.next_file_number = next_file_number_;
    // WAL files are retired as a prefix: every unit in them is flushed (void records only name
    // units in older files, which go first).
    uint64_t min_wal = wal_files_.back().number;
    for (const WalFileInfo& f : wal_files_) {
      if (f.number == wal_files_.back().number || f.max_seq > next.flushed_sequence) {
        min_wal = f.number;
        break;
      }
      retire.push_back(f.number);
    }
    next.min_wal_file_number = std::max(base.min_wal_file_number, min_wal);
  }
  auto committed = manifest_store_->Commit(next);
  // On failure the files stay: the new generation may exist on disk complete (only CURRENT
  // failed) and a restart would then use it. Unreferenced ones are removed by recovery.
  if (!committed.ok()) return committed.status();

  // Publish: segments to the resolver, then runs, then the version without the memtable, so
  // an id is always findable in a memtable or through the index.
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& h : new_handles) segments_by_number_[h->meta().file_number] = h;
  }
  if (new_run) {
    auto runs = dedupe_->runs();
    runs.push_back(new_run);
    dedupe_->SetRuns(std::move(runs));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    auto v = std::make_shared<Version>(*version_);
    v->manifest = *committed;
    for (auto& h : new_handles) v->segments.push_back(h);
    v->memtables.erase(std::find(v->memtables.begin(), v->memtables.end(), imm));
    InstallVersionLocked(v);
    imms_.pop_front();
    while (!wal_files_.empty() && wal_files_.front().number < committed->min_wal_file_number) {
      wal_files_.pop_front();
    }
  }
  flushes_++;
  done_cv_.notify_all();
  // The new segments' footers are decoded here (after publishing, so waiters are not delayed)
  // rather than by the first query touching them.
  for (const auto& h : new_handles) h->Warm();
  RemoveReleasedFiles();
  // Retire WAL files: into the recycling pool while it has room (renamed to a temporary name
  // that no replay reads and recovery removes), else removed. A failure leaves them for the
  // next recovery to remove (their numbers are below the manifest's min_wal_file_number).
  bool changed = false;
  for (uint64_t n : retire) {
    const std::string path = Path(kWalDir) + "/" + wal::WalFileName(n);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!shutting_down_ &&
          static_cast<int>(wal_recycle_pool_.size()) < options_.wal_recycle_files) {
        std::string pooled = Path(kWalDir) + "/" + wal::WalRecycleFileName(n);
        if (fs_->Rename(path, pooled).ok()) {
          wal_recycle_pool_.push_back(std::move(pooled));
          changed = true;
          continue;
        }
      }
    }
    if (fs_->RemoveFile(path).ok()) changed = true;
  }
  if (changed) fs_->SyncDir(Path(kWalDir)).IgnoreError();
  // Keep the number of runs (each costs every miss a filter probe) small. A failed merge
  // changes nothing durable; the next flush tries again.
  Status m = MaybeMergeDedupeRuns();
  if (!m.ok()) return m.WithContext("merging dedupe runs");
  return Status::OK();
}

// Size-tiered: whenever more than kMaxRuns runs exist, the kMergeWidth smallest are merged
// into one, so a key is rewritten O(log(keys)) times and a miss probes at most ~kMaxRuns
// filters. REQUIRES: flush_mu_ held (flushes and merges are the only manifest writers).
Status DBImpl::MaybeMergeDedupeRuns() {
  constexpr size_t kMaxRuns = 8;
  constexpr size_t kMergeWidth = 4;
  for (;;) {
    std::vector<std::shared_ptr<DedupeRun>> runs = dedupe_->runs();
    if (runs.size() <= kMaxRuns) return Status::OK();
    std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
      return a->info().key_count < b->info().key_count;
    });
    std::vector<std::shared_ptr<DedupeRun>> inputs(runs.begin(), runs.begin() + kMergeWidth);
    uint64_t fnum;
    {
      std::lock_guard<std::mutex> l(mu_);
      fnum = next_file_number_++;
    }
    const std::string path = Path(kDedupeDir) + "/" + DedupeRunFileName(fnum);
    SegmentRowResolver resolver(this);
    DedupeRunInfo info;
    Status s = MergeDedupeRuns(fs_, inputs, path, &resolver, &info);
    if (s.ok()) s = fs_->SyncDir(Path(kDedupeDir));
    std::shared_ptr<DedupeRun> merged;
    if (s.ok()) {
      auto r = DedupeRun::Open(fs_, path, fnum);
      if (r.ok()) {
        merged = std::move(r).value();
      } else {
        s = r.status();
      }
    }
    if (!s.ok()) {
      fs_->RemoveFile(path).IgnoreError();
      return s;
    }
    ManifestState next;
    {
      std::lock_guard<std::mutex> l(mu_);
      next = version_->manifest;
      next.next_file_number = next_file_number_;
    }
    auto is_input = [&](uint64_t n) {
      for (const auto& in : inputs) {
        if (in->file_number() == n) return true;
      }
      return false;
    };
    std::erase_if(next.dedupe_runs, [&](const DedupeRunMeta& m) { return is_input(m.file_number); });
    next.dedupe_runs.push_back(DedupeRunMeta{fnum, info.key_count, info.file_size,
                                             info.min_commit_seq, info.max_commit_seq});
    auto committed = manifest_store_->Commit(next);
    if (!committed.ok()) return committed.status();  // the output stays for recovery to judge
    std::vector<std::shared_ptr<DedupeRun>> now = dedupe_->runs();
    std::erase_if(now, [&](const auto& r) { return is_input(r->file_number()); });
    now.push_back(merged);
    dedupe_->SetRuns(std::move(now));
    {
      std::lock_guard<std::mutex> l(mu_);
      auto v = std::make_shared<Version>(*version_);
      v->manifest = *committed;
      InstallVersionLocked(v);
    }
    // The inputs stay on disk while a retained (fallback) generation references them;
    // lookups that started before SetRuns keep their runs (and open files) alive.
    RemoveReleasedFiles();
  }
}

// ---------------------------------------------------------------------------------------
// Reads

DBImpl::Snapshot DBImpl::GetSnapshot(const std::optional<uint64_t>& as_of) {
  std::lock_guard<std::mutex> l(mu_);
  Snapshot s{version_, visible_seq_};
  if (as_of && *as_of < s.seq) s.seq = *as_of;
  return s;
}

namespace {
bool Matches(const std::vector<std::string>& allowed, const std::string* value) {
  if (allowed.empty()) return true;
  if (value == nullptr) return false;  // a missing optional column never matches
  return std::find(allowed.begin(), allowed.end(), *value) != allowed.end();
}
bool SetIntersects(const std::vector<std::string>& allowed, const std::vector<std::string>& set) {
  if (allowed.empty()) return true;
  for (const auto& a : allowed) {
    if (std::find(set.begin(), set.end(), a) != set.end()) return true;
  }
  return false;
}
bool EventMatches(const ReadFilter& f, const Event& e, uint64_t seq) {
  if (e.commit_seq > seq) return false;
  if (f.as_of_ms && e.ingested_at_ms > *f.as_of_ms) return false;
  if (f.account_id && e.account_id != *f.account_id) return false;
  if (f.from_ms && e.timestamp_ms < *f.from_ms) return false;
  if (f.to_ms && e.timestamp_ms >= *f.to_ms) return false;
  if (!Matches(f.product_ids, &e.product_id)) return false;
  if (!Matches(f.meter_ids, &e.meter_id)) return false;
  if (!Matches(f.model_ids, e.model_id ? &*e.model_id : nullptr)) return false;
  if (!f.kinds.empty() && std::find(f.kinds.begin(), f.kinds.end(), e.kind) == f.kinds.end()) {
    return false;
  }
  return true;
}
}  // namespace

Status DBImpl::ScanInternal(const ReadFilter& f, ColumnMask columns, const Snapshot& snap,
                            const std::function<bool(const DecodedBlock&, size_t)>& visit_row,
                            const std::function<bool(const Event&)>& visit_mem,
                            const SegmentHandle* only_segment,
                            const std::function<void()>& on_new_block, ReadDeadline* deadline) {
  // Row visitors may read the row's commit_seq and timestamp (ScanInternal's contract).
  columns |= ColumnBit(Column::kCommitSeq) | ColumnBit(Column::kTimestampMs);
  ScanPart part;
  part.only_segment = only_segment;
  part.deadline = deadline;
  return ScanBlocks(
      f, columns, snap,
      [&](const DecodedBlock& b, const uint32_t* rows, size_t n) {
        if (on_new_block) on_new_block();
        for (size_t i = 0; i < n; i++) {
          if (!visit_row(b, rows[i])) return false;
        }
        return true;
      },
      visit_mem, part);
}

Status DBImpl::ScanBlocks(const ReadFilter& f, ColumnMask columns, const Snapshot& snap,
                          const BlockVisitor& visit_block,
                          const std::function<bool(const Event&)>& visit_mem,
                          const ScanPart& part) {
  if (f.from_ms && f.to_ms && *f.from_ms > *f.to_ms) {
    return Status::InvalidArgument("from is after to");
  }
  const ManifestState& m = snap.version->manifest;
  std::optional<uint32_t> bucket;
  if (f.account_id) bucket = static_cast<uint32_t>(Hash64(*f.account_id) % m.bucket_count);
  if (f.account_id) columns |= ColumnBit(Column::kAccountId);
  if (!f.product_ids.empty()) columns |= ColumnBit(Column::kProductId);
  if (!f.meter_ids.empty()) columns |= ColumnBit(Column::kMeterId);
  if (!f.model_ids.empty()) columns |= ColumnBit(Column::kModelId);
  if (!f.kinds.empty()) columns |= ColumnBit(Column::kKind);
  if (f.as_of_ms) columns |= ColumnBit(Column::kIngestedAtMs);

  bool stop = false;
  DecodedBlock block;
  std::vector<uint32_t> sel;
  std::vector<uint8_t> ok_product, ok_meter, ok_model;
  // String filters are evaluated once per distinct value of the block's dictionary; rows then
  // test a code.
  auto allowed_codes = [](const StringColumn& c, const std::vector<std::string>& allowed,
                          std::vector<uint8_t>* ok) {
    ok->assign(c.dict.size(), 0);
    bool any = false;
    for (size_t i = 0; i < c.dict.size(); i++) {
      (*ok)[i] = std::find(allowed.begin(), allowed.end(), c.dict[i]) != allowed.end();
      any |= (*ok)[i] != 0;
    }
    return any;
  };
  auto code_ok = [](const StringColumn& c, const std::vector<uint8_t>& ok, size_t r) {
    uint32_t code = c.codes[r];
    return code != StringColumn::kNullCode && ok[code];  // null never matches
  };
  const auto& segments = snap.version->segments;
  const size_t first = part.memtables_only ? segments.size() : part.by_bucket ? 0 : part.part;
  const size_t step = part.by_bucket ? 1 : part.parts;
  for (size_t si = first; si < segments.size() && !stop; si += step) {
    const auto& h = segments[si];
    if (part.only_segment && h.get() != part.only_segment) continue;
    const SegmentMeta& sm = h->meta();
    if (part.by_bucket && sm.bucket % part.parts != part.part) continue;
    if (bucket && sm.bucket != *bucket) continue;
    if (sm.min_commit_seq > snap.seq) continue;
    if (f.from_ms && sm.max_timestamp_ms < *f.from_ms) continue;
    if (f.to_ms && sm.min_timestamp_ms >= *f.to_ms) continue;
    if (f.account_id && (*f.account_id < sm.min_account_id || *f.account_id > sm.max_account_id)) {
      continue;
    }
    if (part.deadline) RETURN_IF_ERROR(part.deadline->Check());
    ASSIGN_OR_RETURN(const SegmentReader* reader, h->Reader());
    for (size_t b = 0; b < reader->num_blocks() && !stop; b++) {
      const BlockZoneMap& z = reader->zone_map(b);
      if (z.min_commit_seq > snap.seq) continue;
      if (f.from_ms && z.max_timestamp_ms < *f.from_ms) continue;
      if (f.to_ms && z.min_timestamp_ms >= *f.to_ms) continue;
      if (f.account_id &&
          (*f.account_id < z.min_account_id || *f.account_id > z.max_account_id)) {
        continue;
      }
      if (!SetIntersects(f.product_ids, z.product_ids) ||
          !SetIntersects(f.meter_ids, z.meter_ids) || !SetIntersects(f.model_ids, z.model_ids)) {
        continue;
      }
      // Row checks the zone map cannot settle for the whole block; their columns are read
      // only then.
      const bool check_seq = z.max_commit_seq > snap.seq;
      const bool check_from = f.from_ms && z.min_timestamp_ms < *f.from_ms;
      const bool check_to = f.to_ms && z.max_timestamp_ms >= *f.to_ms;
      if (part.deadline) RETURN_IF_ERROR(part.deadline->Check());
      ColumnMask need = columns;
      if (check_seq) need |= ColumnBit(Column::kCommitSeq);
      if (check_from || check_to) need |= ColumnBit(Column::kTimestampMs);
      size_t lo = 0, hi = 0;
      uint32_t account_code = 0;
      if (f.account_id) {
        // Only the account's rows of the quantity column are decoded.
        RETURN_IF_ERROR(reader->ReadAccountRows(b, need, *f.account_id, &block, &lo, &hi));
        if (lo == hi) continue;
        account_code = block.account_id.codes[lo];
        if (account_code == StringColumn::kNullCode ||
            block.account_id.dict[account_code] != *f.account_id) {
          continue;
        }
      } else {
        RETURN_IF_ERROR(reader->ReadBlock(b, need, &block));
        hi = block.rows;
      }
      if (!f.product_ids.empty() && !allowed_codes(block.product_id, f.product_ids, &ok_product)) {
        continue;
      }
      if (!f.meter_ids.empty() && !allowed_codes(block.meter_id, f.meter_ids, &ok_meter)) continue;
      if (!f.model_ids.empty() && !allowed_codes(block.model_id, f.model_ids, &ok_model)) continue;
      sel.resize(hi - lo);
      size_t n = 0;
      const bool row_checks = check_seq || check_from || check_to || f.as_of_ms ||
                              !f.product_ids.empty() || !f.meter_ids.empty() ||
                              !f.model_ids.empty() || !f.kinds.empty();
      if (!row_checks) {
        // The common case: the zone map settled time and sequence; only the account remains.
        const uint32_t* codes = f.account_id ? block.account_id.codes.data() : nullptr;
        for (size_t r = lo; r < hi; r++) {
          sel[n] = static_cast<uint32_t>(r);
          n += codes == nullptr || codes[r] == account_code;
        }
      }
      for (size_t r = row_checks ? lo : hi; r < hi; r++) {
        if (check_seq && block.commit_seq[r] > snap.seq) continue;
        if (f.as_of_ms && block.ingested_at_ms[r] > *f.as_of_ms) continue;
        if (check_from && block.timestamp_ms[r] < *f.from_ms) continue;
        if (check_to && block.timestamp_ms[r] >= *f.to_ms) continue;
        // Inside the range every row should carry the account; checked, as the range came from
        // a binary search that assumes the file's sort order.
        if (f.account_id && block.account_id.codes[r] != account_code) continue;
        if (!f.product_ids.empty() && !code_ok(block.product_id, ok_product, r)) continue;
        if (!f.meter_ids.empty() && !code_ok(block.meter_id, ok_meter, r)) continue;
        if (!f.model_ids.empty() && !code_ok(block.model_id, ok_model, r)) continue;
        if (!f.kinds.empty() && std::find(f.kinds.begin(), f.kinds.end(),
                                          static_cast<EventKind>(block.kind[r])) ==
                                    f.kinds.end()) {
          continue;
        }
        sel[n++] = static_cast<uint32_t>(r);
      }
      if (n > 0 && !visit_block(block, sel.data(), n)) stop = true;
    }
  }
  if (stop || part.only_segment) return Status::OK();
  if (!part.memtables_only && (part.by_bucket || part.part != 0)) return Status::OK();
  const uint64_t account_hash = f.account_id ? Hash64(*f.account_id) : 0;
  Event scratch;
  Status deadline_status;
  uint32_t rows_to_check = 0;
  for (const auto& mem : snap.version->memtables) {
    mem->ForEachRow(snap.seq, [&](const MemRow& r) {
      if (part.deadline && rows_to_check-- == 0) {
        rows_to_check = 1023;
        deadline_status = part.deadline->Check();
        if (!deadline_status.ok()) {
          stop = true;
          return false;
        }
      }
      // Prefilter on the row header; decode only candidates.
      if (f.as_of_ms && r.ingested_at_ms > *f.as_of_ms) return true;
      if (f.from_ms && r.timestamp_ms < *f.from_ms) return true;
      if (f.to_ms && r.timestamp_ms >= *f.to_ms) return true;
      if (f.account_id && r.account_hash != account_hash) return true;
      if (!MemTable::DecodeRow(r, &scratch)) return true;
      if (!EventMatches(f, scratch, snap.seq)) return true;
      if (!visit_mem(scratch)) {
        stop = true;
        return false;
      }
      return true;
    });
    if (stop) break;
  }
  return deadline_status;
}

Status DBImpl::Aggregate(const ReadFilter& filter, bool group_by_account,
                         AggregateResult* result) {
  Snapshot snap = GetSnapshot(filter.as_of_seq);
  result->snapshot_sequence = snap.seq;
  result->rows.clear();
  struct Acc {
    WideSum sum;
    uint64_t count = 0;
  };
  Acc total;
  std::map<std::string, Acc, std::less<>> groups;
  ColumnMask cols = ColumnBit(Column::kQuantity);
  if (group_by_account) cols |= ColumnBit(Column::kAccountId);
  ScanPart part;
  RETURN_IF_ERROR(ScanBlocks(
      filter, cols, snap,
      [&](const DecodedBlock& b, const uint32_t* rows, size_t n) {
        // Rows come sorted by account: one map lookup per run of an account, and the run's
        // quantities summed in 128 bits, spilling into the wide sum only on overflow.
        size_t i = 0;
        while (i < n) {
          Acc* a = &total;
          size_t j = i + 1;
          if (group_by_account) {
            const uint32_t code = b.account_id.codes[rows[i]];
            while (j < n && b.account_id.codes[rows[j]] == code) j++;
            const std::string_view account = b.account_id.Get(rows[i]);
            auto it = groups.find(account);
            if (it == groups.end()) it = groups.emplace(std::string(account), Acc{}).first;
            a = &it->second;
          } else {
            j = n;
          }
          __int128 run = 0;
          for (size_t k = i; k < j; k++) {
            AddToRun(b.quantity[rows[k]], &run, &a->sum);
          }
          a->sum.Add(run);
          a->count += j - i;
          i = j;
        }
        return true;
      },
      [&](const Event& e) {
        Acc& a = group_by_account ? groups[e.account_id] : total;
        a.sum.Add(e.quantity);
        a.count++;
        return true;
      },
      part));
  auto emit = [&](const std::string& account, const Acc& a) -> Status {
    auto v = a.sum.Value();
    if (!v) return Status::Overflow("sum does not fit in ±(2^127-1)");
    result->rows.push_back(AggregateRow{account, *v, a.count});
    return Status::OK();
  };
  if (group_by_account) {
    for (const auto& [acc, a] : groups) RETURN_IF_ERROR(emit(acc, a));
  } else {
    RETURN_IF_ERROR(emit(filter.account_id.value_or(""), total));
  }
  return Status::OK();
}

Status DBImpl::ScanEvents(const ReadFilter& filter,
                          const std::function<bool(const Event&)>& visit) {
  Snapshot snap = GetSnapshot(filter.as_of_seq);
  Event scratch;
  Status row_status;
  RETURN_IF_ERROR(ScanInternal(
      filter, kAllColumns, snap,
      [&](const DecodedBlock& b, size_t r) {
        row_status = b.MaterializeRow(r, &scratch);
        if (!row_status.ok()) return false;
        return visit(scratch);
      },
      visit));
  return row_status;
}

class SnapshotReaderImpl : public SnapshotReader {
 public:
  SnapshotReaderImpl(DBImpl* db, DBImpl::Snapshot snap) : db_(db), snap_(std::move(snap)) {
    for (const auto& h : snap_.version->segments) {
      const SegmentMeta& m = h->meta();
      if (m.min_commit_seq > snap_.seq) continue;
      infos_.push_back(SegmentFileInfo{h->path(), m.file_number, m.bucket, m.partition,
                                       m.row_count, m.file_size, m.min_timestamp_ms,
                                       m.max_timestamp_ms});
      handles_.push_back(h.get());
      pinned_ += m.file_size;
    }
  }
  uint64_t sequence() const override { return snap_.seq; }
  const std::vector<SegmentFileInfo>& segments() const override { return infos_; }
  uint64_t pinned_bytes() const override { return pinned_; }
  Status ScanSegment(size_t i, const ReadFilter& filter,
                     const std::function<bool(const Event&)>& visit) override {
    if (i >= handles_.size()) return Status::InvalidArgument("segment index out of range");
    Event scratch;
    Status row_status;
    RETURN_IF_ERROR(db_->ScanInternal(
        filter, kAllColumns, snap_,
        [&](const DecodedBlock& b, size_t r) {
          row_status = b.MaterializeRow(r, &scratch);
          if (!row_status.ok()) return false;
          return visit(scratch);
        },
        [](const Event&) { return true; }, handles_[i]));
    return row_status;
  }

 private:
  DBImpl* db_;
  DBImpl::Snapshot snap_;  // pins the Version, hence the segment files
  std::vector<SegmentFileInfo> infos_;
  std::vector<const SegmentHandle*> handles_;
  uint64_t pinned_ = 0;
};

Result<std::unique_ptr<SnapshotReader>> DBImpl::OpenSnapshot(std::optional<uint64_t> as_of_seq) {
  uint64_t seq = LastSequence();
  if (as_of_seq && *as_of_seq > seq) {
    return Status::InvalidArgument("as_of " + std::to_string(*as_of_seq) +
                                   " is above the latest committed sequence " +
                                   std::to_string(seq));
  }
  // Flush() covers at least everything acknowledged before this call (sequence <= seq).
  RETURN_IF_ERROR(Flush());
  Snapshot snap = GetSnapshot(as_of_seq ? as_of_seq : std::optional<uint64_t>(seq));
  // Every event with a sequence <= snap.seq is now in a segment of snap.version (sequences
  // above flushed_sequence may exist only as voided or event-less units).
  return std::unique_ptr<SnapshotReader>(new SnapshotReaderImpl(this, std::move(snap)));
}

DbStats DBImpl::Stats() {
  DbStats s;
  std::shared_ptr<const Version> v;
  {
    std::lock_guard<std::mutex> l(mu_);
    v = version_;
    s.last_sequence = visible_seq_;
    s.immutable_memtables = imms_.size();
    s.wal_files = wal_files_.size();
  }
  s.flushed_sequence = v->manifest.flushed_sequence;
  for (const auto& m : v->memtables) {
    s.memtable_events += m->size();
    s.memtable_bytes += m->ApproximateBytes();
  }
  s.segment_count = v->segments.size();
  for (const auto& h : v->segments) s.segment_bytes += h->meta().file_size;
  s.dedupe_runs = dedupe_->runs().size();
  s.dedupe_keys = dedupe_->key_count();
  s.dedupe_cache_capacity_bytes = dedupe_->cache_capacity_bytes();
  s.dedupe_filter_bytes = dedupe_->filter_memory_bytes();
  s.wal_syncs = wal_syncs_.load();
  s.wal_files_recycled = wal_files_recycled_.load();
  s.wal_files_created = wal_files_created_.load();
  s.flushes = flushes_.load();
  s.backpressure_waits = backpressure_waits_.load();
  s.dedupe_segment_lookups = dedupe_segment_lookups_.load();
  s.flush_cpu_ns = flush_cpu_ns_.load();
  {
    std::lock_guard<std::mutex> l(lat_mu_);
    std::vector<int64_t> lat = sync_lat_ns_;
    if (!lat.empty()) {
      std::sort(lat.begin(), lat.end());
      s.wal_sync_p50_us = static_cast<double>(lat[lat.size() / 2]) / 1000.0;
      s.wal_sync_p99_us = static_cast<double>(lat[std::min(lat.size() - 1, lat.size() * 99 / 100)]) / 1000.0;
    }
  }
  return s;
}

Status DBImpl::Close() {
  if (closed_) return Status::OK();
  Status s;
  if (manifest_store_ && wal_) s = Flush();
  {
    std::lock_guard<std::mutex> l(mu_);
    shutting_down_ = true;
    closed_ = true;
  }
  bg_cv_.notify_all();
  done_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (wal_) {
      Status c = wal_->Close();
      if (s.ok()) s = c;
      // A recycled file's old bytes past this file's records go (not synced: a reader skips
      // them anyway), and so do the pooled files: a closed database takes no spare space.
      auto size = fs_->FileSize(wal_->path());
      if (size.ok() && *size > wal_->size()) {
        fs_->Truncate(wal_->path(), wal_->size()).IgnoreError();
      }
    }
    for (const std::string& p : wal_recycle_pool_) fs_->RemoveFile(p).IgnoreError();
    wal_recycle_pool_.clear();
  }
  lock_.reset();
  return s;
}

}  // namespace usagedb
