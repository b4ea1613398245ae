// Durable idempotency index (SPEC §2.1): immutable runs that map the routing hash of every
// flushed event_id to the row location of its event in a committed raw segment, a small filter
// per run in memory, and a fixed-size block cache. A run stores no ids and no event facts: a
// lookup asks a DedupeRowResolver (the db layer, over its segment readers) to read each
// candidate row and compare the full event_id. See docs/format.md, section "Dedupe run"
// (docs/parts/dedupe.md until merged). The db layer keeps unflushed ids in the memtable and
// writes one run per flush from the events it wrote into segments in that flush; the manifest
// lists the runs.
#pragma once

#include <climits>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_system.h"
#include "usagedb/event.h"
#include "usagedb/status.h"
#include "util/hash.h"

namespace usagedb {

// Where an event is stored: row `row` (0-based, in the order the segment reader returns rows)
// of the committed raw segment with file number `segment_file_number`.
struct RowLocation {
  uint64_t segment_file_number = 0;
  uint32_t row = 0;
  bool operator==(const RowLocation&) const = default;
  auto operator<=>(const RowLocation&) const = default;
};

// The facts of a stored event, as a DedupeRowResolver reads them from its segment row.
struct DedupeEntry {
  std::string event_id;
  Digest128 payload_digest;
  int64_t ingested_at_ms = 0;
  int64_t timestamp_ms = 0;
  EventKind kind = EventKind::kUsage;
  uint64_t commit_seq = 0;
};

// What a flush hands to the writer, one per event written to a segment in that flush.
struct DedupeRunEntry {
  uint64_t hash = 0;  // DedupeWriteOptions::hash(event_id), i.e. Hash64(event_id)
  RowLocation location;
  uint64_t commit_seq = 0;  // for the footer's seq range
  bool forever = false;     // Correction/Retraction: never forgotten (footer summary)
  int64_t anchor_ms = 0;    // max(ingested_at_ms, timestamp_ms), for the footer summary
};

struct DedupeRunInfo {
  uint64_t key_count = 0;
  uint64_t file_size = 0;
  uint64_t segment_count = 0;  // distinct segments the run references
  // Entries store the top `routing_bits` bits of the hash (1..64). See DedupeWriteOptions.
  uint32_t routing_bits = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  // Entries that are never forgotten (Correction, Retraction). For a merge output: the sum over
  // its inputs (an upper bound when inputs shared entries); only "== 0" is relied upon.
  uint64_t forever_key_count = 0;
  // Max over Usage entries of max(ingested_at_ms, timestamp_ms); INT64_MIN when none.
  int64_t max_usage_anchor_ms = INT64_MIN;
  // 3: the filter is keyed by the routing value (merges read no segments); 2: by the full
  // hash (still read; merges of version-2 inputs read every id through the resolver).
  uint32_t format_version = 0;
};

// The filter key of `hash` in every version-3 run of >= 40 routing bits (see MayContainKeyed).
uint64_t DedupeSharedFilterKey(uint64_t hash);

// A run's in-memory filter when it is keyed by DedupeSharedFilterKey (words == nullptr: the
// run has another key and answers MayContainKeyed itself). Valid while the run is alive.
struct DedupeFilterView {
  const uint64_t* words = nullptr;
  uint64_t lines = 0;
  uint32_t probes = 0;
};

// True when every entry of the run is certainly forgotten under SPEC §2.1's window:
// window_ms > 0, forever_key_count == 0 and max_usage_anchor_ms + window_ms < now_ms (exact,
// no overflow). The db may then drop the run without reading it; DedupeIndex skips it.
bool DedupeRunIsForgotten(const DedupeRunInfo& info, int64_t now_ms, int64_t window_ms);

// The routing hash function. Production always uses Hash64; tests substitute a colliding
// function to prove that only full event_id equality makes a hit. Writer callers, the index
// and merges of one database must all use the same function.
using DedupeHashFn = uint64_t (*)(std::string_view);

struct DedupeWriteOptions {
  // Used by MergeDedupeRuns to hash the event_ids it reads through the resolver when an input
  // is version 2 (its filter is over the full hash). WriteDedupeRun takes the hashes from its
  // entries.
  DedupeHashFn hash = &Hash64;
  // Bits of the hash stored per entry, 1..64; 0 = automatic: max(bit_width(key_count - 1) +
  // 10, 40) (version 2: without the floor of 40), clamped to [16, 64], so a lookup that passes
  // the filter meets a foreign entry with the same routing value with probability <= 2^-10
  // (one wasted resolver call), also after merges up to 2^30 keys. A merge output uses the
  // smallest routing_bits of its inputs (it cannot recover dropped bits) and ignores this.
  uint32_t routing_bits = 0;
  // 0 = the current format (3). 2 writes the previous format (tests of reading and merging
  // old files). A merge's output version follows its inputs and ignores this (but for an
  // empty merge).
  uint32_t format_version = 0;
};

// Implemented by the db layer over its segment readers. Lookup and merge call it from the
// calling thread; a resolver shared by concurrent lookups must be thread-safe.
class DedupeRowResolver {
 public:
  virtual ~DedupeRowResolver() = default;
  // Reads the row at loc; when its event_id equals `event_id` returns its facts, else nullopt.
  // Corruption/NotFound errors propagate to the caller of Lookup.
  virtual Result<std::optional<DedupeEntry>> Resolve(const RowLocation& loc,
                                                     std::string_view event_id) = 0;
  // Replaces *ids with the event_ids of `rows` (strictly ascending) of one segment, in that
  // order. Only MergeDedupeRuns of version-2 inputs calls it (to build the output's filter over
  // full hashes); the default returns NotSupported.
  virtual Status ReadEventIds(uint64_t segment_file_number, const std::vector<uint32_t>& rows,
                              std::vector<std::string>* ids);
  // Replaces *hashes with hash(event_id) of `rows` (strictly ascending) of one segment, in that
  // order. What MergeDedupeRuns calls: a resolver that can hash the ids where they lie avoids
  // a string per row. The default calls ReadEventIds and hashes its answer.
  virtual Status ReadEventIdHashes(uint64_t segment_file_number, const std::vector<uint32_t>& rows,
                                   DedupeHashFn hash, std::vector<uint64_t>* hashes);
};

// Writes a run (entries in any order) to `path + ".tmp"`, syncs, renames to path. The caller
// syncs the directory. A location listed twice or routing_bits > 64 is InvalidArgument;
// nothing is left at `path` on any error. `info` may be null.
Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeRunEntry> entries,
                      DedupeRunInfo* info, const DedupeWriteOptions& options = {});
// The same over entries the caller keeps (the flush reuses its array from one flush to the
// next).
Status WriteDedupeRun(FileSystem* fs, const std::string& path,
                      std::span<const DedupeRunEntry> entries, DedupeRunInfo* info,
                      const DedupeWriteOptions& options = {});

class DedupeBlockCache;

// One open run: its filter, block index and segment table stay in memory, blocks are read
// through the cache. Immutable; every method is thread-safe.
class DedupeRun {
 public:
  // Reads and verifies the footer, segment table, filter and block index (blocks are verified
  // when read). Any damage is Corruption naming `path`; another format version NotSupported.
  static Result<std::shared_ptr<DedupeRun>> Open(FileSystem* fs, const std::string& path,
                                                 uint64_t file_number);
  virtual ~DedupeRun() = default;
  // The locations whose stored routing hash matches `hash` (filter first, then the one block
  // that can hold it), in (segment_file_number, row) order; empty when none. The caller must
  // resolve each: a matching routing hash does not mean the same event_id. Corruption when the
  // block is damaged. `cache` may be null.
  virtual Result<std::vector<RowLocation>> Candidates(uint64_t hash,
                                                      DedupeBlockCache* cache) const = 0;
  // Every entry, appended in (routing hash, location) order, for merges, rebuilds and tests.
  // Only what the run stores is filled in: `hash` holds the routing bits in place (the top
  // routing_bits bits; the rest zero), `location`; commit_seq, forever and anchor_ms are 0.
  virtual Status ReadAll(std::vector<DedupeRunEntry>* out) const = 0;
  // The filter alone: false means `hash` is certainly absent. No IO.
  virtual bool MayContain(uint64_t hash) const = 0;
  // Hint: starts loading the filter line MayContain(hash) will read, so a lookup over many
  // runs overlaps their memory latencies. No effect on results.
  virtual void PrefetchFilter(uint64_t /*hash*/) const {}
  // As MayContain / PrefetchFilter, given shared_key = DedupeSharedFilterKey(hash), which a
  // lookup computes once for all its runs (the filter key of every version-3 run with >= 40
  // routing bits) instead of once per run.
  virtual bool MayContainKeyed(uint64_t hash, uint64_t /*shared_key*/) const {
    return MayContain(hash);
  }
  virtual void PrefetchFilterKeyed(uint64_t hash, uint64_t /*shared_key*/) const {
    PrefetchFilter(hash);
  }
  // The filter, for callers testing many runs' filters in one loop (see DedupeFilterView).
  virtual DedupeFilterView SharedKeyFilter() const { return {}; }
  // The segment table: the distinct segment file numbers the run references, ascending. A
  // segment compaction that rewrites these segments must write new runs for the rows it moved.
  virtual const std::vector<uint64_t>& segment_file_numbers() const = 0;
  virtual const std::string& path() const = 0;
  virtual const DedupeRunInfo& info() const = 0;
  virtual uint64_t file_number() const = 0;
  // Bytes of RAM this run holds permanently (filter + block index + segment table + object).
  virtual size_t memory_bytes() const = 0;
};

// A fixed-capacity LRU cache of verified run blocks, shared by all runs. Thread-safe.
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
  // Test seam: `hash` must be the function the runs' entries were hashed with.
  DedupeIndex(size_t cache_bytes, DedupeHashFn hash);
  ~DedupeIndex();
  // Replaces the run set (any order).
  void SetRuns(std::vector<std::shared_ptr<DedupeRun>> runs);
  std::vector<std::shared_ptr<DedupeRun>> runs() const;
  // Hashes the id once; for every run whose filter may contain it (skipping runs that
  // DedupeRunIsForgotten proves forgotten), resolves its candidates through `resolver`. Among
  // the resolved entries (full event_id equal) that are remembered, returns the one with the
  // highest commit_seq. `window_ms` > 0 applies SPEC §2.1's window: a Usage entry whose
  // max(ingested_at_ms, timestamp_ms) + window_ms < now_ms is forgotten (treated as absent);
  // Correction/Retraction entries are remembered forever. Errors of the run (Corruption) or of
  // the resolver propagate. REQUIRES: resolver != null.
  Result<std::optional<DedupeEntry>> Lookup(std::string_view event_id, int64_t now_ms,
                                            int64_t window_ms, DedupeRowResolver* resolver) const;
  // As above with the id's routing hash computed by the caller (the write path hashes each id
  // once). REQUIRES: hash == the index's hash function applied to event_id (Hash64 unless the
  // test constructor substituted one; see hash_fn()).
  Result<std::optional<DedupeEntry>> Lookup(std::string_view event_id, uint64_t hash,
                                            int64_t now_ms, int64_t window_ms,
                                            DedupeRowResolver* resolver) const;
  // The current run set, pinned (for many lookups against one set: the write path's batch).
  struct RunSet {
    std::vector<std::shared_ptr<DedupeRun>> runs;  // the lookup order
    // filters[i] = runs[i]->SharedKeyFilter(): a miss tests every run's filter, and a flat
    // array of them costs no virtual call or object load per run.
    std::vector<DedupeFilterView> filters;
  };
  std::shared_ptr<const RunSet> PinRuns() const;
  // As Lookup, against a pinned run set. REQUIRES: `runs` came from PinRuns() of this index.
  // It does not prefetch the filter lines itself (see PrefetchIn): results are the same
  // either way, only the cache misses are paid one after the other when nobody started them.
  Result<std::optional<DedupeEntry>> LookupIn(const RunSet& runs, std::string_view event_id,
                                              uint64_t hash, int64_t now_ms, int64_t window_ms,
                                              DedupeRowResolver* resolver) const;
  // Hint: starts loading the filter line of `hash` in every run of `runs`. A caller looking up
  // many ids calls it a few ids ahead of LookupIn, so the cache misses of consecutive lookups
  // overlap. No effect on results.
  static void PrefetchIn(const RunSet& runs, uint64_t hash);
  DedupeHashFn hash_fn() const;
  // RAM split for the benchmark and stats: the fixed cache and the per-key structures of all
  // runs (sum of memory_bytes()).
  size_t cache_capacity_bytes() const;
  size_t filter_memory_bytes() const;
  uint64_t key_count() const;
  DedupeBlockCache* cache() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Merges runs into one new run at out_path (written like WriteDedupeRun; the caller syncs the
// directory, lists the output in the manifest and only then removes the inputs). The output
// holds the union of the inputs' entries (an entry present in several inputs once): locations
// stay valid because merging runs never moves segment rows. Its segment table is the union of
// the inputs' tables, its routing_bits the inputs' minimum, its footer summaries the inputs'
// combined (seq range, forever_key_count summed, max anchor). When every non-empty input is
// version 3 the output is version 3 and its filter comes from the merged routing values: no
// segment is read and `resolver` may be null. Otherwise the output is version 2, whose filter
// is over full hashes, which runs do not store: the merge reads every referenced row's event_id
// through `resolver->ReadEventIdHashes` (one call per segment) and checks it against the stored
// routing bits (a mismatch is Corruption). Streams block by block: RAM is O(inputs x block)
// plus 8 (version 3) or 24 (version 2) bytes per output key. Whole runs that
// DedupeRunIsForgotten should be dropped, not merged.
Status MergeDedupeRuns(FileSystem* fs, const std::vector<std::shared_ptr<DedupeRun>>& inputs,
                       const std::string& out_path, DedupeRowResolver* resolver,
                       DedupeRunInfo* info, const DedupeWriteOptions& options = {});

std::string DedupeRunFileName(uint64_t file_number);  // "000000000042.udx"
bool ParseDedupeRunFileName(const std::string& name, uint64_t* file_number);

}  // namespace usagedb
