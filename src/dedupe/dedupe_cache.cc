// DedupeBlockCache: a sharded LRU of verified run blocks with a hard byte capacity.
#include <atomic>
#include <list>
#include <mutex>
#include <unordered_map>

#include "dedupe/dedupe_internal.h"

namespace usagedb {
namespace dedupe_internal {

size_t CachedBlock::charge() const {
  // Object + byte buffer + the cache's list node and hash-map node.
  constexpr size_t kNodeOverhead = 96;
  return sizeof(CachedBlock) + bytes.capacity() + kNodeOverhead;
}

uint64_t NewRunCacheId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace dedupe_internal

namespace {

using dedupe_internal::BlockKey;
using dedupe_internal::CachedBlock;

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const {
    uint64_t x = k.run_id * 0x9e3779b97f4a7c15ull ^ (k.block + 0x632be59bd9b4e019ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return static_cast<size_t>(x);
  }
};

class Shard {
 public:
  void set_capacity(size_t c) { capacity_ = c; }
  size_t used() const { return used_.load(std::memory_order_relaxed); }

  std::shared_ptr<const CachedBlock> Get(const BlockKey& key) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->block;
  }

  void Put(const BlockKey& key, std::shared_ptr<const CachedBlock> block) {
    size_t charge = block->charge();
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) Erase(it);
    if (charge > capacity_) return;  // never cached: would break the bound
    while (used_.load(std::memory_order_relaxed) + charge > capacity_ && !lru_.empty()) {
      Erase(map_.find(lru_.back().key));
    }
    lru_.push_front(Node{key, std::move(block), charge});
    map_.emplace(key, lru_.begin());
    used_.fetch_add(charge, std::memory_order_relaxed);
  }

 private:
  struct Node {
    BlockKey key;
    std::shared_ptr<const CachedBlock> block;
    size_t charge;
  };
  using Map = std::unordered_map<BlockKey, std::list<Node>::iterator, BlockKeyHash>;

  // REQUIRES: mu_ held, it valid.
  void Erase(Map::iterator it) {
    used_.fetch_sub(it->second->charge, std::memory_order_relaxed);
    lru_.erase(it->second);
    map_.erase(it);
  }

  std::mutex mu_;
  size_t capacity_ = 0;
  std::atomic<size_t> used_{0};
  std::list<Node> lru_;  // front = most recently used
  Map map_;
};

class ShardedCache : public DedupeBlockCache::Impl {
 public:
  explicit ShardedCache(size_t capacity) : capacity_(capacity) {
    // At least 1 MiB per shard so a shard holds many blocks; at most 16 shards.
    size_t n = 1;
    while (n < 16 && capacity / (n * 2) >= (1u << 20)) n *= 2;
    shard_count_ = n;
    shards_ = std::make_unique<Shard[]>(n);
    for (size_t i = 0; i < n; ++i) shards_[i].set_capacity(capacity / n);
  }

  std::shared_ptr<const CachedBlock> Get(const BlockKey& key) override {
    return ShardFor(key).Get(key);
  }
  void Put(const BlockKey& key, std::shared_ptr<const CachedBlock> block) override {
    ShardFor(key).Put(key, std::move(block));
  }
  size_t capacity_bytes() const override { return capacity_; }
  size_t used_bytes() const override {
    size_t sum = 0;
    for (size_t i = 0; i < shard_count_; ++i) sum += shards_[i].used();
    return sum;
  }

 private:
  Shard& ShardFor(const BlockKey& key) {
    return shards_[(BlockKeyHash()(key) >> 7) & (shard_count_ - 1)];
  }

  size_t capacity_;
  size_t shard_count_ = 1;  // a power of two
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace

DedupeBlockCache::DedupeBlockCache(size_t capacity_bytes)
    : impl_(std::make_unique<ShardedCache>(capacity_bytes)) {}
DedupeBlockCache::~DedupeBlockCache() = default;
size_t DedupeBlockCache::capacity_bytes() const { return impl_->capacity_bytes(); }
size_t DedupeBlockCache::used_bytes() const { return impl_->used_bytes(); }

}  // namespace usagedb
