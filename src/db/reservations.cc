#include "db/reservations.h"

#include "util/hash.h"

namespace usagedb {

ReservationTable::Shard& ReservationTable::ShardFor(std::string_view id) {
  return shards_[Hash64(id) % kShards];
}

void ReservationTable::ReserveAll(const std::vector<std::string_view>& ids, uint64_t token) {
  for (;;) {
    size_t taken = 0;
    std::string_view blocked;
    bool is_blocked = false;
    for (; taken < ids.size(); taken++) {
      Shard& s = ShardFor(ids[taken]);
      std::lock_guard<std::mutex> l(s.mu);
      auto [it, inserted] = s.held.try_emplace(ids[taken], token);
      if (!inserted && it->second != token) {
        blocked = ids[taken];
        is_blocked = true;
        break;
      }
    }
    if (!is_blocked) return;
    // Give back what we took, then wait for the holder of `blocked` to finish.
    std::vector<std::string_view> partial(ids.begin(), ids.begin() + static_cast<long>(taken));
    ReleaseAll(partial, token);
    Shard& s = ShardFor(blocked);
    std::unique_lock<std::mutex> l(s.mu);
    s.cv.wait(l, [&] { return s.held.find(blocked) == s.held.end(); });
  }
}

void ReservationTable::ReleaseAll(const std::vector<std::string_view>& ids, uint64_t token) {
  for (std::string_view id : ids) {
    Shard& s = ShardFor(id);
    bool notify = false;
    {
      std::lock_guard<std::mutex> l(s.mu);
      auto it = s.held.find(id);
      if (it != s.held.end() && it->second == token) {
        s.held.erase(it);
        notify = true;
      }
    }
    if (notify) s.cv.notify_all();
  }
}

}  // namespace usagedb
