// In-flight event_id reservations (SPEC §2.1): a batch holds all its ids while it is being
// classified and written, so two racing submissions of one id never both end accepted. A
// batch that finds an id held waits for that batch to finish without holding any of its own.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace usagedb {

class ReservationTable {
 public:
  // Reserves every id (REQUIRES: distinct) for `token` (unique per batch). Blocks while any is
  // held by another token; never holds a partial set while waiting.
  // REQUIRES: the bytes the views point to stay valid until ReleaseAll (the table keeps the
  // views, not copies).
  void ReserveAll(const std::vector<std::string_view>& ids, uint64_t token);
  // REQUIRES: the same ids were reserved by ReserveAll(ids, token).
  void ReleaseAll(const std::vector<std::string_view>& ids, uint64_t token);

 private:
  static constexpr int kShards = 64;
  struct Shard {
    std::mutex mu;
    std::condition_variable cv;
    std::unordered_map<std::string_view, uint64_t> held;
  };
  Shard& ShardFor(std::string_view id);
  Shard shards_[kShards];
};

}  // namespace usagedb
