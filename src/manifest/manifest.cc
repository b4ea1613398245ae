#include "manifest/manifest.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>

#include "manifest/manifest_format.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace usagedb {

namespace {

using manifest::SectionTag;

void PutSection(std::string* dst, SectionTag tag, const std::string& payload) {
  PutVarint32(dst, static_cast<uint32_t>(tag));
  PutLengthPrefixed(dst, payload);
}

void PutSigned(std::string* dst, int64_t v) { PutVarint64(dst, ZigZagEncode64(v)); }

std::string EncodeCounters(const ManifestState& s) {
  std::string p;
  PutVarint64(&p, s.generation);
  PutVarint32(&p, s.bucket_count);
  PutVarint64(&p, s.flushed_sequence);
  PutVarint64(&p, s.last_sequence);
  PutSigned(&p, s.last_ingested_at_ms);
  PutVarint64(&p, s.next_file_number);
  PutVarint64(&p, s.min_wal_file_number);
  return p;
}

std::string EncodeSegment(const SegmentMeta& m) {
  std::string p;
  PutVarint64(&p, m.file_number);
  PutVarint32(&p, m.bucket);
  PutSigned(&p, m.partition);
  PutVarint64(&p, m.row_count);
  PutVarint64(&p, m.file_size);
  PutSigned(&p, m.min_timestamp_ms);
  PutSigned(&p, m.max_timestamp_ms);
  PutVarint64(&p, m.min_commit_seq);
  PutVarint64(&p, m.max_commit_seq);
  PutLengthPrefixed(&p, m.min_account_id);
  PutLengthPrefixed(&p, m.max_account_id);
  PutVarint64(&p, m.origin_min_seq);
  PutVarint64(&p, m.origin_max_seq);
  PutVarint64(&p, m.origin_replaced.size());
  for (uint64_t f : m.origin_replaced) PutVarint64(&p, f);
  return p;
}

std::string EncodeDedupeRun(const DedupeRunMeta& m) {
  std::string p;
  PutVarint64(&p, m.file_number);
  PutVarint64(&p, m.key_count);
  PutVarint64(&p, m.file_size);
  PutVarint64(&p, m.min_commit_seq);
  PutVarint64(&p, m.max_commit_seq);
  return p;
}

std::string EncodeConflictLog(const ConflictLogMeta& m) {
  std::string p;
  PutVarint64(&p, m.file_number);
  PutVarint64(&p, m.entry_count);
  PutVarint64(&p, m.file_size);
  PutVarint64(&p, m.min_commit_seq);
  PutVarint64(&p, m.max_commit_seq);
  return p;
}

// Field readers: each returns false when the payload is short or malformed.
bool GetSigned64(Decoder* d, int64_t* v) {
  uint64_t u;
  if (!d->GetVarint64(&u)) return false;
  *v = ZigZagDecode64(u);
  return true;
}

bool GetSigned32(Decoder* d, int32_t* v) {
  int64_t w;
  if (!GetSigned64(d, &w) || w < INT32_MIN || w > INT32_MAX) return false;
  *v = static_cast<int32_t>(w);
  return true;
}

bool GetString(Decoder* d, std::string* v) {
  std::string_view s;
  if (!d->GetLengthPrefixed(&s)) return false;
  v->assign(s.data(), s.size());
  return true;
}

bool DecodeCounters(Decoder* d, ManifestState* s) {
  return d->GetVarint64(&s->generation) && d->GetVarint32(&s->bucket_count) &&
         d->GetVarint64(&s->flushed_sequence) && d->GetVarint64(&s->last_sequence) &&
         GetSigned64(d, &s->last_ingested_at_ms) && d->GetVarint64(&s->next_file_number) &&
         d->GetVarint64(&s->min_wal_file_number);
}

bool DecodeSegment(Decoder* d, SegmentMeta* m) {
  uint64_t replaced_count;
  if (!(d->GetVarint64(&m->file_number) && d->GetVarint32(&m->bucket) &&
        GetSigned32(d, &m->partition) && d->GetVarint64(&m->row_count) &&
        d->GetVarint64(&m->file_size) && GetSigned64(d, &m->min_timestamp_ms) &&
        GetSigned64(d, &m->max_timestamp_ms) && d->GetVarint64(&m->min_commit_seq) &&
        d->GetVarint64(&m->max_commit_seq) && GetString(d, &m->min_account_id) &&
        GetString(d, &m->max_account_id) && d->GetVarint64(&m->origin_min_seq) &&
        d->GetVarint64(&m->origin_max_seq) && d->GetVarint64(&replaced_count))) {
    return false;
  }
  // Every entry takes at least one byte: a count above the remaining bytes is damage, and
  // checking it first keeps a corrupt count from reserving gigabytes.
  if (replaced_count > d->remaining()) return false;
  m->origin_replaced.resize(replaced_count);
  for (uint64_t& f : m->origin_replaced) {
    if (!d->GetVarint64(&f)) return false;
  }
  return true;
}

bool DecodeDedupeRun(Decoder* d, DedupeRunMeta* m) {
  return d->GetVarint64(&m->file_number) && d->GetVarint64(&m->key_count) &&
         d->GetVarint64(&m->file_size) && d->GetVarint64(&m->min_commit_seq) &&
         d->GetVarint64(&m->max_commit_seq);
}

bool DecodeConflictLog(Decoder* d, ConflictLogMeta* m) {
  return d->GetVarint64(&m->file_number) && d->GetVarint64(&m->entry_count) &&
         d->GetVarint64(&m->file_size) && d->GetVarint64(&m->min_commit_seq) &&
         d->GetVarint64(&m->max_commit_seq);
}

const char* SectionName(SectionTag tag) {
  switch (tag) {
    case SectionTag::kCounters:
      return "counters";
    case SectionTag::kSegment:
      return "segment";
    case SectionTag::kDedupeRun:
      return "dedupe run";
    case SectionTag::kConflictLog:
      return "conflict log";
  }
  return "unknown";
}

bool IsKnownTag(uint32_t tag) {
  return tag >= static_cast<uint32_t>(SectionTag::kCounters) &&
         tag <= static_cast<uint32_t>(SectionTag::kConflictLog);
}

std::string U64(uint64_t v) { return std::to_string(v); }

Status Invalid(const std::string& what) { return Status::InvalidArgument(what); }

// Checks one listed file number and records it for the uniqueness check.
Status CheckFileNumber(const char* kind, uint64_t number, const ManifestState& s,
                       std::set<uint64_t>* seen) {
  if (number == 0 || number >= s.next_file_number) {
    return Invalid(std::string(kind) + " file number " + U64(number) + " outside [1, " +
                   U64(s.next_file_number) + ")");
  }
  if (!seen->insert(number).second) {
    return Invalid(std::string(kind) + " file number " + U64(number) + " listed twice");
  }
  return Status::OK();
}

Status CheckSeqRange(const char* kind, uint64_t number, uint64_t min_seq, uint64_t max_seq,
                     const ManifestState& s) {
  if (min_seq > max_seq || max_seq > s.last_sequence) {
    return Invalid(std::string(kind) + " " + U64(number) + ": commit sequences [" + U64(min_seq) +
                   ", " + U64(max_seq) + "] not within [0, last_sequence " + U64(s.last_sequence) +
                   "]");
  }
  return Status::OK();
}

}  // namespace

Status ValidateManifestState(const ManifestState& s) {
  if (s.bucket_count == 0) return Invalid("bucket_count is 0");
  if (s.flushed_sequence > s.last_sequence) {
    return Invalid("flushed_sequence " + U64(s.flushed_sequence) + " > last_sequence " +
                   U64(s.last_sequence));
  }
  if (s.next_file_number == 0) return Invalid("next_file_number is 0");
  if (s.min_wal_file_number > s.next_file_number) {
    return Invalid("min_wal_file_number " + U64(s.min_wal_file_number) + " > next_file_number " +
                   U64(s.next_file_number));
  }
  std::set<uint64_t> seen;
  for (const SegmentMeta& m : s.segments) {
    RETURN_IF_ERROR(CheckFileNumber("segment", m.file_number, s, &seen));
    RETURN_IF_ERROR(CheckSeqRange("segment", m.file_number, m.min_commit_seq, m.max_commit_seq, s));
    if (m.bucket >= s.bucket_count) {
      return Invalid("segment " + U64(m.file_number) + ": bucket " + U64(m.bucket) +
                     " >= bucket_count " + U64(s.bucket_count));
    }
    if (m.min_timestamp_ms > m.max_timestamp_ms) {
      return Invalid("segment " + U64(m.file_number) + ": min_timestamp_ms > max_timestamp_ms");
    }
    if (m.min_account_id > m.max_account_id) {
      return Invalid("segment " + U64(m.file_number) + ": min_account_id > max_account_id");
    }
    if (m.origin_min_seq > m.origin_max_seq) {
      return Invalid("segment " + U64(m.file_number) + ": origin_min_seq > origin_max_seq");
    }
    for (uint64_t f : m.origin_replaced) {
      if (f == 0 || f >= s.next_file_number) {
        return Invalid("segment " + U64(m.file_number) + ": replaced file number " + U64(f) +
                       " outside [1, " + U64(s.next_file_number) + ")");
      }
    }
  }
  for (const DedupeRunMeta& m : s.dedupe_runs) {
    RETURN_IF_ERROR(CheckFileNumber("dedupe run", m.file_number, s, &seen));
    RETURN_IF_ERROR(
        CheckSeqRange("dedupe run", m.file_number, m.min_commit_seq, m.max_commit_seq, s));
  }
  for (const ConflictLogMeta& m : s.conflict_logs) {
    RETURN_IF_ERROR(CheckFileNumber("conflict log", m.file_number, s, &seen));
    RETURN_IF_ERROR(
        CheckSeqRange("conflict log", m.file_number, m.min_commit_seq, m.max_commit_seq, s));
  }
  return Status::OK();
}

std::string EncodeManifest(const ManifestState& state) {
  std::string out(manifest::kMagic, sizeof(manifest::kMagic));
  PutFixed32(&out, manifest::kVersion);
  PutSection(&out, SectionTag::kCounters, EncodeCounters(state));
  for (const SegmentMeta& m : state.segments) {
    PutSection(&out, SectionTag::kSegment, EncodeSegment(m));
  }
  for (const DedupeRunMeta& m : state.dedupe_runs) {
    PutSection(&out, SectionTag::kDedupeRun, EncodeDedupeRun(m));
  }
  for (const ConflictLogMeta& m : state.conflict_logs) {
    PutSection(&out, SectionTag::kConflictLog, EncodeConflictLog(m));
  }
  PutFixed32(&out, crc32c::Mask(crc32c::Value(out)));
  return out;
}

Status DecodeManifest(std::string_view data, ManifestState* state) {
  if (data.size() < manifest::kHeaderSize + manifest::kTrailerSize) {
    return Status::Corruption("manifest truncated: " + U64(data.size()) + " bytes");
  }
  if (std::memcmp(data.data(), manifest::kMagic, sizeof(manifest::kMagic)) != 0) {
    return Status::Corruption("not a manifest: bad magic");
  }
  const size_t body_end = data.size() - manifest::kTrailerSize;
  const uint32_t stored = crc32c::Unmask(DecodeFixed32(data.data() + body_end));
  const uint32_t actual = crc32c::Value(data.data(), body_end);
  if (stored != actual) {
    // A truncated file almost always lands here too: its last 4 bytes are not the crc.
    return Status::Corruption("manifest checksum mismatch (damaged or truncated)");
  }
  const uint32_t version = DecodeFixed32(data.data() + sizeof(manifest::kMagic));
  if (version < manifest::kMinVersion || version > manifest::kVersion) {
    return Status::Corruption("unsupported manifest version " + U64(version) +
                              " (this build reads " + U64(manifest::kMinVersion) + ".." +
                              U64(manifest::kVersion) + "): written by a newer version?");
  }

  ManifestState s;
  Decoder body(data.substr(manifest::kHeaderSize, body_end - manifest::kHeaderSize));
  uint32_t previous_tag = 0;
  bool have_counters = false;
  while (!body.empty()) {
    const size_t offset = static_cast<size_t>(body.pos() - data.data());
    uint32_t tag;
    std::string_view payload;
    if (!body.GetVarint32(&tag) || !body.GetLengthPrefixed(&payload)) {
      return Status::Corruption("manifest section at offset " + U64(offset) + " is malformed");
    }
    if (!IsKnownTag(tag)) {
      return Status::Corruption("unknown manifest section " + U64(tag) +
                                ": written by a newer version?");
    }
    const auto section = static_cast<SectionTag>(tag);
    if (tag < previous_tag || (section == SectionTag::kCounters && have_counters)) {
      return Status::Corruption(std::string("manifest section ") + SectionName(section) +
                                " at offset " + U64(offset) + " is out of order");
    }
    if (section != SectionTag::kCounters && !have_counters) {
      return Status::Corruption("manifest lacks its counters section");
    }
    previous_tag = tag;
    Decoder d(payload);
    bool ok = false;
    switch (section) {
      case SectionTag::kCounters:
        ok = DecodeCounters(&d, &s);
        have_counters = true;
        break;
      case SectionTag::kSegment:
        ok = DecodeSegment(&d, &s.segments.emplace_back());
        break;
      case SectionTag::kDedupeRun:
        ok = DecodeDedupeRun(&d, &s.dedupe_runs.emplace_back());
        break;
      case SectionTag::kConflictLog:
        ok = DecodeConflictLog(&d, &s.conflict_logs.emplace_back());
        break;
    }
    // A payload must be consumed exactly: trailing bytes mean a layout this build does not
    // know, which it must not silently ignore.
    if (!ok || !d.empty()) {
      return Status::Corruption(std::string("manifest ") + SectionName(section) +
                                " section at offset " + U64(offset) + " is malformed");
    }
  }
  if (!have_counters) return Status::Corruption("manifest lacks its counters section");
  Status valid = ValidateManifestState(s);
  if (!valid.ok()) return Status::Corruption("manifest state is inconsistent: " + valid.message());
  *state = std::move(s);
  return Status::OK();
}

std::string ManifestFileName(uint64_t generation) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%s%0*" PRIu64, manifest::kFilePrefix,
                manifest::kGenerationDigits, generation);
  return buf;
}

bool ParseManifestFileName(std::string_view name, uint64_t* generation) {
  const std::string_view prefix = manifest::kFilePrefix;
  if (name.substr(0, prefix.size()) != prefix) return false;
  std::string_view digits = name.substr(prefix.size());
  if (digits.size() < static_cast<size_t>(manifest::kGenerationDigits) || digits.size() > 20) {
    return false;
  }
  uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  // Only the canonical spelling counts, so one generation has exactly one file name.
  if (ManifestFileName(v) != name) return false;
  *generation = v;
  return true;
}

std::string ManifestStore::PathOf(std::string_view name) const { return JoinPath(db_root_, name); }

// Load trusts no single file: CURRENT may be stale (a Commit can fail between the MANIFEST-n
// rename and the CURRENT rename) and the newest MANIFEST-n may be damaged. A MANIFEST-n name
// only ever appears after its bytes were synced (it is written as MANIFEST-n.tmp first), so
// the newest file that decodes with a valid checksum is the newest committed state.
Result<ManifestLoad> ManifestStore::Load() {
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->ListDir(db_root_));
  std::vector<uint64_t> generations;
  bool have_current = false;
  for (const std::string& name : names) {
    uint64_t g;
    if (ParseManifestFileName(name, &g)) generations.push_back(g);
    if (name == manifest::kCurrentFileName) have_current = true;
  }
  std::sort(generations.begin(), generations.end());

  ManifestLoad load;
  if (generations.empty()) {
    if (!have_current) {
      load.created = true;
      current_generation_ = 0;
      highest_generation_ = 0;
      generations_.clear();
      return load;
    }
    return Status::Corruption(PathOf(manifest::kCurrentFileName) +
                              " exists but no MANIFEST-* file is present in " + db_root_);
  }

  // CURRENT is only a hint, but a generation it names that is newer than every file present
  // was committed and then lost: report it as skipped so the db layer can judge the fallback.
  uint64_t current_hint = 0;
  if (have_current) {
    std::string content;
    if (fs_->ReadFileToString(PathOf(manifest::kCurrentFileName), &content).ok()) {
      if (!content.empty() && content.back() == '\n') content.pop_back();
      uint64_t g;
      if (ParseManifestFileName(content, &g)) current_hint = g;
    }
  }

  std::vector<std::pair<uint64_t, std::string>> skipped;
  if (current_hint > generations.back()) {
    skipped.emplace_back(current_hint,
                         ManifestFileName(current_hint) + " is named by CURRENT but missing");
  }
  for (auto it = generations.rbegin(); it != generations.rend(); ++it) {
    const std::string name = ManifestFileName(*it);
    std::string data;
    Status s = fs_->ReadFileToString(PathOf(name), &data);
    ManifestState state;
    if (s.ok()) s = DecodeManifest(data, &state);
    if (s.ok() && state.generation != *it) {
      s = Status::Corruption("holds generation " + U64(state.generation));
    }
    if (!s.ok()) {
      skipped.emplace_back(*it, name + ": " + s.ToString());
      continue;
    }
    refs_.clear();
    refs_[*it] = ReferencedFiles(state);
    // Older generations still on disk: their files stay until retention drops them.
    for (auto older = std::next(it); older != generations.rend(); ++older) {
      std::string older_data;
      ManifestState older_state;
      if (fs_->ReadFileToString(PathOf(ManifestFileName(*older)), &older_data).ok() &&
          DecodeManifest(older_data, &older_state).ok() && older_state.generation == *older) {
        refs_[*older] = ReferencedFiles(older_state);
        load.older.push_back(std::move(older_state));
      }
    }
    load.state = std::move(state);
    load.skipped = std::move(skipped);
    current_generation_ = *it;
    highest_generation_ = std::max(current_hint, generations.back());
    generations_ = std::move(generations);
    return load;
  }

  std::string detail;
  for (const auto& [g, reason] : skipped) {
    if (!detail.empty()) detail += "; ";
    detail += reason;
  }
  return Status::Corruption("no readable manifest in " + db_root_ + ": " + detail);
}

Status ManifestStore::WriteCurrent(uint64_t generation) {
  const std::string tmp = PathOf(std::string(manifest::kCurrentFileName) + manifest::kTempSuffix);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(auto file, fs_->NewWritableFile(tmp));
    RETURN_IF_ERROR(file->Append(ManifestFileName(generation) + "\n"));
    RETURN_IF_ERROR(file->Sync());
    RETURN_IF_ERROR(file->Close());
    return fs_->Rename(tmp, PathOf(manifest::kCurrentFileName));
  }();
  if (!s.ok()) {
    fs_->RemoveFile(tmp).IgnoreError();  // best effort; Load ignores CURRENT.tmp
    return s;
  }
  return fs_->SyncDir(db_root_);
}

void ManifestStore::RemoveOldGenerations(uint64_t keep_newest) {
  const size_t retain = static_cast<size_t>(std::max(retain_, 1));
  if (generations_.size() <= retain) return;
  std::vector<uint64_t> kept;
  std::vector<ManifestFileRef> dropped;
  const size_t first_kept = generations_.size() - retain;
  for (size_t i = 0; i < generations_.size(); i++) {
    const uint64_t g = generations_[i];
    // A failed removal stays listed and is retried by the next Commit.
    if (i < first_kept && g != keep_newest && fs_->RemoveFile(PathOf(ManifestFileName(g))).ok()) {
      auto it = refs_.find(g);
      if (it != refs_.end()) {
        dropped.insert(dropped.end(), it->second.begin(), it->second.end());
        refs_.erase(it);
      }
      continue;
    }
    kept.push_back(g);
  }
  generations_ = std::move(kept);
  if (dropped.empty()) return;
  std::set<ManifestFileRef> live;
  for (const auto& [gen, refs] : refs_) live.insert(refs.begin(), refs.end());
  std::sort(dropped.begin(), dropped.end());
  dropped.erase(std::unique(dropped.begin(), dropped.end()), dropped.end());
  for (const ManifestFileRef& r : dropped) {
    if (!live.count(r)) released_.push_back(r);
  }
}

std::vector<ManifestFileRef> ManifestStore::TakeReleased() { return std::exchange(released_, {}); }

std::vector<ManifestFileRef> ReferencedFiles(const ManifestState& state) {
  std::vector<ManifestFileRef> refs;
  refs.reserve(state.segments.size() + state.dedupe_runs.size() + state.conflict_logs.size());
  for (const auto& m : state.segments) refs.push_back({ManifestFileKind::kSegment, m.file_number});
  for (const auto& m : state.dedupe_runs) {
    refs.push_back({ManifestFileKind::kDedupeRun, m.file_number});
  }
  for (const auto& m : state.conflict_logs) {
    refs.push_back({ManifestFileKind::kConflictLog, m.file_number});
  }
  std::sort(refs.begin(), refs.end());
  return refs;
}

Result<ManifestState> ManifestStore::Commit(ManifestState next) {
  if (std::max(current_generation_, highest_generation_) == UINT64_MAX) {
    return Status::Internal("manifest generation numbers exhausted in " + db_root_);
  }
  const uint64_t generation = std::max(current_generation_, highest_generation_) + 1;
  next.generation = generation;
  Status valid = ValidateManifestState(next);
  if (!valid.ok()) return valid.WithContext("manifest commit refused");

  const std::string name = ManifestFileName(generation);
  const std::string final_path = PathOf(name);
  const std::string tmp = final_path + manifest::kTempSuffix;
  const std::string data = EncodeManifest(next);
  Status s = [&]() -> Status {
    ASSIGN_OR_RETURN(auto file, fs_->NewWritableFile(tmp));
    RETURN_IF_ERROR(file->Append(data));
    RETURN_IF_ERROR(file->Sync());
    RETURN_IF_ERROR(file->Close());
    return fs_->Rename(tmp, final_path);
  }();
  if (!s.ok()) {
    fs_->RemoveFile(tmp).IgnoreError();  // best effort; Load ignores MANIFEST-*.tmp
    return s.WithContext("writing " + final_path);
  }
  // From here MANIFEST-n exists under its final name, complete and synced: never reuse n.
  highest_generation_ = generation;
  generations_.push_back(generation);
  refs_[generation] = ReferencedFiles(next);
  s = fs_->SyncDir(db_root_);
  if (s.ok()) s = WriteCurrent(generation);
  if (!s.ok()) {
    return s.WithContext("committing " + final_path +
                         " (the file is complete and a restart may load it)");
  }
  current_generation_ = generation;
  RemoveOldGenerations(generation);
  return next;
}

Status ManifestStore::RemoveManifestTemporaries() {
  ASSIGN_OR_RETURN(std::vector<std::string> names, fs_->ListDir(db_root_));
  const std::string_view suffix = manifest::kTempSuffix;
  bool removed = false;
  for (const std::string& name : names) {
    if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix) {
      continue;
    }
    const std::string base = name.substr(0, name.size() - suffix.size());
    uint64_t g;
    if (base != manifest::kCurrentFileName && !ParseManifestFileName(base, &g)) continue;
    RETURN_IF_ERROR(fs_->RemoveFile(PathOf(name)));
    removed = true;
  }
  return removed ? fs_->SyncDir(db_root_) : Status::OK();
}

}  // namespace usagedb
