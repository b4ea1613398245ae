// Manifest: the durable list of committed files and counters, kept as numbered generations
// (MANIFEST-000007) with CURRENT naming the newest. See docs/format.md, section "Manifest".
// A change is applied to a copy and made durable before the in-memory state changes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/file_system.h"
#include "usagedb/status.h"

namespace usagedb {

struct SegmentMeta {
  uint64_t file_number = 0;
  uint32_t bucket = 0;
  int32_t partition = 0;  // months since 1970-01
  uint64_t row_count = 0;
  uint64_t file_size = 0;
  int64_t min_timestamp_ms = 0, max_timestamp_ms = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  std::string min_account_id, max_account_id;
  // Origin (SPEC §4): a flush's sequence range, or the segments a merge replaced.
  uint64_t origin_min_seq = 0, origin_max_seq = 0;
  std::vector<uint64_t> origin_replaced;
  bool operator==(const SegmentMeta&) const = default;
};

struct DedupeRunMeta {
  uint64_t file_number = 0;
  uint64_t key_count = 0;
  uint64_t file_size = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  bool operator==(const DedupeRunMeta&) const = default;
};

// An immutable file of conflict / period_closed log entries written by a flush.
struct ConflictLogMeta {
  uint64_t file_number = 0;
  uint64_t entry_count = 0;
  uint64_t file_size = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  bool operator==(const ConflictLogMeta&) const = default;
};

struct ManifestState {
  uint64_t generation = 0;  // the number in MANIFEST-<generation>
  uint32_t bucket_count = 64;
  // Every event with commit_seq <= flushed_sequence is in a listed segment (and its conflict
  // entries in a listed conflict log). A restart continues above last_sequence.
  uint64_t flushed_sequence = 0;
  uint64_t last_sequence = 0;        // highest commit sequence ever assigned that is recorded
  int64_t last_ingested_at_ms = 0;   // highest stamp recorded
  uint64_t next_file_number = 1;     // for every numbered file (WAL, segments, runs, logs)
  uint64_t min_wal_file_number = 0;  // WAL files below this number are retired
  std::vector<SegmentMeta> segments;
  std::vector<DedupeRunMeta> dedupe_runs;
  std::vector<ConflictLogMeta> conflict_logs;
  bool operator==(const ManifestState&) const = default;
};

std::string EncodeManifest(const ManifestState& state);
// Corruption when the bytes are damaged (checksum), truncated or of an unknown version.
// Also Corruption when an unknown section tag is present (written by a newer version) or the
// decoded state fails ValidateManifestState. Never crashes on arbitrary bytes. On error
// *state is left unchanged.
Status DecodeManifest(std::string_view data, ManifestState* state);

// The invariants every stored state satisfies (InvalidArgument naming the first violation):
// bucket_count >= 1; flushed_sequence <= last_sequence; 1 <= next_file_number;
// min_wal_file_number <= next_file_number; every listed file number is in
// [1, next_file_number) and unique across segments, dedupe runs and conflict logs; every
// segment's bucket < bucket_count; min <= max for each commit-sequence, timestamp, account-id
// and origin range; max_commit_seq <= last_sequence; origin_replaced numbers are in
// [1, next_file_number). Commit refuses a state that fails them, Decode reports Corruption.
Status ValidateManifestState(const ManifestState& state);

std::string ManifestFileName(uint64_t generation);  // "MANIFEST-000007"
// True only for the canonical form ManifestFileName() produces (6+ digits, zero-padded to 6,
// no temporary suffix).
bool ParseManifestFileName(std::string_view name, uint64_t* generation);

struct ManifestLoad {
  ManifestState state;
  // Generations newer than the one loaded that exist but could not be read (with the reason),
  // newest first. Non-empty = a fallback happened; the db layer decides whether it is safe.
  std::vector<std::pair<uint64_t, std::string>> skipped;
  bool created = false;  // no manifest existed: a fresh database
  // Readable generations older than `state` that are still on disk (retained for fallback),
  // newest first. The files they reference stay on disk (see ManifestStore::TakeReleased).
  std::vector<ManifestState> older;
};

// The kinds of numbered files a manifest generation references.
enum class ManifestFileKind : uint8_t { kSegment, kDedupeRun, kConflictLog };
struct ManifestFileRef {
  ManifestFileKind kind;
  uint64_t file_number;
  auto operator<=>(const ManifestFileRef&) const = default;
};
// Every segment, dedupe run and conflict log `state` references, sorted.
std::vector<ManifestFileRef> ReferencedFiles(const ManifestState& state);

// Owns the MANIFEST-* files and CURRENT of one db_root. Not thread-safe: the db serialises
// commits.
class ManifestStore {
 public:
  ManifestStore(FileSystem* fs, std::string db_root, int retain_generations = 3)
      : fs_(fs), db_root_(std::move(db_root)), retain_(retain_generations) {}

  // Loads the newest readable generation. CURRENT is a hint: every MANIFEST-* file present is
  // considered, newest first. With no MANIFEST-* at all and no CURRENT, returns created=true
  // and a default state (generation 0, not yet written). When files exist but none is
  // readable, returns Corruption naming them.
  // A generation named by CURRENT that is newer than the loaded one but missing is listed in
  // `skipped` too. Leftover temporaries (MANIFEST-*.tmp, CURRENT.tmp) are ignored.
  // REQUIRES: db_root exists (its listing error is returned otherwise).
  Result<ManifestLoad> Load();

  // Writes `next` as generation n = (highest generation seen on disk or written) + 1 (so a
  // skipped, unreadable generation is never overwritten): MANIFEST-n.tmp, sync, close, rename
  // to MANIFEST-n, SyncDir, then CURRENT through CURRENT.tmp (sync, rename, SyncDir), then
  // deletes generations older than the newest retain_generations (errors ignored).
  // On success returns the state with its generation set. On failure current_generation()
  // stays the previous one and the error is returned (InvalidArgument when `next` fails
  // ValidateManifestState, before anything is written).
  // A failure before the MANIFEST-n rename leaves nothing behind (the temporary is removed,
  // best effort). A failure after it leaves the complete MANIFEST-n on disk, which a later
  // Load() prefers: so after any Commit error the caller must not delete files that only
  // `next` references (startup recovery deals with them) and must not act on `next` (retire
  // WAL files etc.). A later Commit supersedes it with n+1.
  // REQUIRES: Load() returned ok on this store before the first Commit.
  Result<ManifestState> Commit(ManifestState next);

  // Removes leftover MANIFEST-*.tmp and CURRENT.tmp files of db_root (an interrupted Commit
  // leaves them), then syncs the directory. Never touches a complete MANIFEST-n.
  // REQUIRES: no Commit is running.
  Status RemoveManifestTemporaries();

  uint64_t current_generation() const { return current_generation_; }

  // Files that the generations deleted by Commit's retention referenced and that no
  // generation still retained (readable ones loaded or committed by this store) references:
  // the caller may delete them now. A file replaced by a change (a merged dedupe run, later a
  // compacted segment) is thus deleted only when no retained generation, i.e. no possible
  // fallback target, needs it. Returns and clears the list.
  std::vector<ManifestFileRef> TakeReleased();

 private:
  std::string PathOf(std::string_view name) const;
  Status WriteCurrent(uint64_t generation);
  void RemoveOldGenerations(uint64_t keep_newest);

  FileSystem* fs_;
  std::string db_root_;
  int retain_;
  uint64_t current_generation_ = 0;
  // Highest generation known to exist (or to have existed) on disk, including unreadable
  // ones and one named by CURRENT; the next Commit writes highest_generation_ + 1.
  uint64_t highest_generation_ = 0;
  // Complete MANIFEST-n files believed present (candidates for retention), ascending.
  std::vector<uint64_t> generations_;
  // The files each readable retained generation references (unreadable ones are absent).
  std::map<uint64_t, std::vector<ManifestFileRef>> refs_;
  std::vector<ManifestFileRef> released_;
};

}  // namespace usagedb
