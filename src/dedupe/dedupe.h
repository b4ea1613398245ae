// Durable idempotency index (SPEC §2.1): immutable sorted runs of remembered event_ids on
// disk, a small filter per run in memory, and a fixed-size block cache. See docs/format.md,
// section "Dedupe run". The db layer keeps unflushed ids in the memtable and writes one run
// per flush; the manifest lists the runs.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_system.h"
#include "usagedb/event.h"
#include "usagedb/status.h"
#include "util/hash.h"

namespace usagedb {

struct DedupeEntry {
  std::string event_id;
  Digest128 payload_digest;
  int64_t ingested_at_ms = 0;
  int64_t timestamp_ms = 0;
  EventKind kind = EventKind::kUsage;
  uint64_t commit_seq = 0;
};

struct DedupeRunInfo {
  uint64_t key_count = 0;
  uint64_t file_size = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  // Entries that are never forgotten (Correction, Retraction).
  uint64_t forever_key_count = 0;
  // max over Usage entries of max(ingested_at_ms, timestamp_ms); INT64_MIN when none. With
  // forever_key_count == 0 and max_usage_anchor_ms + window_ms < now_ms every entry of the run
  // is forgotten, so the db may drop the run without reading it.
  int64_t max_usage_anchor_ms = INT64_MIN;
};

// The routing hash. Production always uses Hash64; tests substitute a colliding function to
// prove that only full event_id equality makes a hit. A run must be read with the function it
// was written with (the format fixes Hash64).
using DedupeHashFn = uint64_t (*)(std::string_view);

struct DedupeWriteOptions {
  // zstd-compress a block when that saves at least 1/8 of its bytes. Off by default: random
  // ids and digests do not compress by 1/8 (measured: docs/parts/dedupe.md), so it would only
  // cost write time. Readers accept both block types either way.
  bool compress = false;
  DedupeHashFn hash = &Hash64;
};

// Writes a run (entries in any order; ids unique) to `path + ".tmp"`, syncs, renames to path.
// The caller syncs the directory. Empty or over-long ids (> 4096 bytes) and repeated ids are
// InvalidArgument; nothing is left at `path` on any error. `info` may be null.
Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeEntry> entries,
                      DedupeRunInfo* info);
Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeEntry> entries,
                      DedupeRunInfo* info, const DedupeWriteOptions& options);

class DedupeBlockCache;

// One open run: its filter and block index stay in memory, blocks are read through the cache.
class DedupeRun {
 public:
  // Reads and verifies the footer, filter and block index (blocks are verified when read).
  // Any damage is Corruption naming `path`.
  static Result<std::shared_ptr<DedupeRun>> Open(FileSystem* fs, const std::string& path,
                                                 uint64_t file_number);
  // Test seam: `hash` must be the function the run was written with.
  static Result<std::shared_ptr<DedupeRun>> Open(FileSystem* fs, const std::string& path,
                                                 uint64_t file_number, DedupeHashFn hash);
  virtual ~DedupeRun() = default;
  // Finds the entry whose full event_id equals `event_id` (hash only routes). NotFound-free:
  // returns nullopt when absent; Corruption when a block is damaged.
  virtual Result<std::optional<DedupeEntry>> Lookup(std::string_view event_id, uint64_t hash,
                                                    DedupeBlockCache* cache) const = 0;
  // Every entry (compaction of runs, rebuilds, tests), appended in (hash, event_id) order.
  virtual Status ReadAll(std::vector<DedupeEntry>* out) const = 0;
  // The filter alone: false means `hash` is certainly absent. Thread-safe, no IO.
  virtual bool MayContain(uint64_t hash) const = 0;
  // Hint: starts loading the filter line MayContain(hash) will read, so a lookup over many
  // runs overlaps their memory latencies. No effect on results.
  virtual void PrefetchFilter(uint64_t /*hash*/) const {}
  virtual const std::string& path() const = 0;
  virtual const DedupeRunInfo& info() const = 0;
  virtual uint64_t file_number() const = 0;
  // Bytes of RAM this run holds permanently (filter + block index).
  virtual size_t memory_bytes() const = 0;
};

// A fixed-capacity LRU cache of decoded run blocks, shared by all runs. Thread-safe.
class DedupeBlockCache {
 public:
  explicit DedupeBlockCache(size_t capacity_bytes);
  ~DedupeBlockCache();
  size_t capacity_bytes() const;
  size_t used_bytes() const;
  // Internal API for runs.
  struct Impl;
  Impl* impl() { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// The set of runs the current manifest lists. Thread-safe: lookups run concurrently with
// SetRuns (readers keep the runs they started with alive through shared_ptr).
class DedupeIndex {
 public:
  explicit DedupeIndex(size_t cache_bytes);
  // Test seam: the runs must have been opened with the same `hash`.
  DedupeIndex(size_t cache_bytes, DedupeHashFn hash);
  ~DedupeIndex();
  // Replaces the run set (any order). When several runs hold an id, Lookup answers with the
  // remembered (not forgotten) entry of highest commit_seq, ties to the higher file_number.
  void SetRuns(std::vector<std::shared_ptr<DedupeRun>> runs);
  std::vector<std::shared_ptr<DedupeRun>> runs() const;
  // Looks the id up in every run (newest first). `window_ms` > 0 applies SPEC §2.1's window:
  // a Usage entry whose max(ingested_at_ms, timestamp_ms) + window_ms < now_ms is forgotten
  // (treated as absent); Correction/Retraction entries are remembered forever.
  Result<std::optional<DedupeEntry>> Lookup(std::string_view event_id, int64_t now_ms,
                                            int64_t window_ms) const;
  // RAM split for the benchmark: the fixed cache and the per-key structures of all runs.
  size_t cache_capacity_bytes() const;
  size_t filter_memory_bytes() const;
  uint64_t key_count() const;
  DedupeBlockCache* cache() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Merges runs into one new run at out_path (written like WriteDedupeRun; the caller syncs the
// directory, lists the output in the manifest and only then removes the inputs). An id held by
// several inputs keeps the entry of highest commit_seq (ties: the earlier input). With
// `drop_expired_before_ms`, Usage entries whose max(ingested_at_ms, timestamp_ms) is below it are
// dropped (pass now_ms - window_ms to apply the window of DedupeIndex::Lookup); Correction and
// Retraction entries are always kept. Streams block by block: RAM is O(inputs x block) plus
// 8 bytes per output key for the filter.
Status MergeDedupeRuns(FileSystem* fs, const std::vector<std::shared_ptr<DedupeRun>>& inputs,
                       const std::string& out_path, std::optional<int64_t> drop_expired_before_ms,
                       DedupeRunInfo* info, const DedupeWriteOptions& options = {});

std::string DedupeRunFileName(uint64_t file_number);  // "000000000042.udx"
bool ParseDedupeRunFileName(const std::string& name, uint64_t* file_number);

}  // namespace usagedb
