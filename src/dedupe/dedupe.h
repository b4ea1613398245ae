// Durable idempotency index (SPEC §2.1): immutable sorted runs of remembered event_ids on
// disk, a small filter per run in memory, and a fixed-size block cache. See docs/format.md,
// section "Dedupe run". The db layer keeps unflushed ids in the memtable and writes one run
// per flush; the manifest lists the runs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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
};

// Writes a run (entries in any order; ids unique) to `path + ".tmp"`, syncs, renames to path.
// The caller syncs the directory.
Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeEntry> entries,
                      DedupeRunInfo* info);

class DedupeBlockCache;

// One open run: its filter and block index stay in memory, blocks are read through the cache.
class DedupeRun {
 public:
  static Result<std::shared_ptr<DedupeRun>> Open(FileSystem* fs, const std::string& path,
                                                 uint64_t file_number);
  virtual ~DedupeRun() = default;
  // Finds the entry whose full event_id equals `event_id` (hash only routes). NotFound-free:
  // returns nullopt when absent; Corruption when a block is damaged.
  virtual Result<std::optional<DedupeEntry>> Lookup(std::string_view event_id, uint64_t hash,
                                                    DedupeBlockCache* cache) const = 0;
  // Every entry (compaction of runs, rebuilds, tests).
  virtual Status ReadAll(std::vector<DedupeEntry>* out) const = 0;
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
  ~DedupeIndex();
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string DedupeRunFileName(uint64_t file_number);  // "000000000042.udx"
bool ParseDedupeRunFileName(const std::string& name, uint64_t* file_number);

}  // namespace usagedb
