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

// One decoded block: entries in (hash, event_id) order, ids concatenated in `ids`.
// Immutable once built; shared between the cache and readers.
struct DecodedBlock {
  struct Entry {
    uint64_t hash;
    uint32_t id_offset;
    uint16_t id_size;  // <= dedupe_format::kMaxEventIdBytes
    EventKind kind;
    Digest128 digest;
    int64_t ingested_at_ms;
    int64_t timestamp_ms;
    uint64_t commit_seq;
  };
  std::vector<Entry> entries;
  std::string ids;

  std::string_view id(const Entry& e) const {
    return std::string_view(ids).substr(e.id_offset, e.id_size);
  }
  DedupeEntry ToEntry(const Entry& e) const;
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
  virtual std::shared_ptr<const dedupe_internal::DecodedBlock> Get(
      const dedupe_internal::BlockKey& key) = 0;
  // Inserts (or replaces) the block, evicting least recently used blocks of the shard.
  virtual void Put(const dedupe_internal::BlockKey& key,
                   std::shared_ptr<const dedupe_internal::DecodedBlock> block) = 0;
  virtual size_t capacity_bytes() const = 0;
  virtual size_t used_bytes() const = 0;
};

}  // namespace usagedb
