// Internals shared by the dedupe run, block cache and index (not a public API).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dedupe/dedupe.h"

namespace usagedb::dedupe_internal {

// Blocked Bloom filter (dedupe_run.cc has the layout): the line of a key.
inline uint64_t FilterLine(uint64_t hash, uint64_t lines) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(hash) * lines) >> 64);
}

inline bool FilterMayContain(const uint64_t* words, uint64_t lines, uint32_t probes,
                             uint64_t hash) {
  const uint64_t* line = words + FilterLine(hash, lines) * 8;
  uint32_t h = static_cast<uint32_t>(hash);
  for (uint32_t i = 0; i < probes; ++i) {
    uint32_t bit = h >> 23;
    if ((line[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) return false;
    h *= 0x9e3779b9u;
  }
  return true;
}


// One verified block, kept in its encoded form (about 4.3 bytes per entry, so the cache holds
// ~3x more entries than decoded ones would). Immutable once built; shared between the cache
// and readers. Invariant: `bytes` holds the block's bit stream followed by at least 8 zero
// bytes, so a reader may load 8 bytes at any bit position below total_bits.
struct CachedBlock {
  std::string bytes;
  uint64_t total_bits = 0;  // bits in the stream (locations + deltas), without the padding
  uint32_t count = 0;
  uint8_t rice_k = 0, seg_bits = 0, row_bits = 0;
  // Bytes this block holds on the heap (what the cache charges, plus a node overhead).
  size_t charge() const;
};

// Key of a cached block: a process-unique id of the opened run and the block number.
struct BlockKey {
  uint64_t run_id;
  uint64_t block;
  bool operator==(const BlockKey&) const = default;
};

// Each opened run takes a fresh id, so a reopened or replaced file never sees stale blocks.
uint64_t NewRunCacheId();

}  // namespace usagedb::dedupe_internal

namespace usagedb {

// Sharded LRU; every shard has its own mutex and a capacity of capacity/shards bytes, so
// used_bytes() <= capacity_bytes() always (a block larger than a shard is never cached).
struct DedupeBlockCache::Impl {
  virtual ~Impl() = default;
  // Returns the block or null; a hit moves it to the front of its shard's LRU.
  virtual std::shared_ptr<const dedupe_internal::CachedBlock> Get(
      const dedupe_internal::BlockKey& key) = 0;
  // Inserts (or replaces) the block, evicting least recently used blocks of the shard.
  virtual void Put(const dedupe_internal::BlockKey& key,
                   std::shared_ptr<const dedupe_internal::CachedBlock> block) = 0;
  virtual size_t capacity_bytes() const = 0;
  virtual size_t used_bytes() const = 0;
};

}  // namespace usagedb
