// In-flight event_id reservations (SPEC §2.1): a batch holds all its ids while it is being
// classified and written, so two racing submissions of one id never both end accepted. A
// batch that finds an id held waits for that batch to finish without holding any of its own.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "memtable/id_table.h"

namespace usagedb {

class ReservationTable {
 public:
  // An id with its Hash64 (computed once by the write path and reused here).
  struct HashedId {
    std::string_view id;
    uint64_t hash = 0;
  };

  // Reserves every id (REQUIRES: distinct) for `token` (unique per batch). Blocks while any is
  // held by another token; never holds a partial set while waiting. Each shard is locked once
  // per attempt (the ids are grouped by shard first).
  // REQUIRES: the bytes the views point to stay valid until ReleaseAll (the table keeps the
  // views, not copies); ids[i].hash == Hash64(ids[i].id).
  void ReserveAll(const std::vector<HashedId>& ids, uint64_t token);
  // REQUIRES: the same ids were reserved by ReserveAll(ids, token).
  void ReleaseAll(const std::vector<HashedId>& ids, uint64_t token);

  // As above, keeping the ids' grouping by shard in *grouping so ReleaseAll need not redo it
  // (the write path's form). REQUIRES for ReleaseAll: the grouping ReserveAll(ids, token, ...)
  // filled, unchanged.
  struct Grouping;
  void ReserveAll(const std::vector<HashedId>& ids, uint64_t token, Grouping* grouping);
  void ReleaseAll(const std::vector<HashedId>& ids, uint64_t token, const Grouping& grouping);

  // Convenience forms that hash the ids.
  void ReserveAll(const std::vector<std::string_view>& ids, uint64_t token);
  void ReleaseAll(const std::vector<std::string_view>& ids, uint64_t token);

 private:
  static constexpr int kShards = 64;

 public:
  // ids[order[k]] for k in [start[s], start[s + 1]) are shard s's.
  struct Grouping {
    std::vector<uint32_t> order;
    uint32_t start[kShards + 1];
    // slot[k]: the shard entry holding ids[order[k]] (valid for the ids held): a release
    // erases by slot, without reading the entry or comparing the id.
    std::vector<uint32_t> slot;
  };

 private:
  struct Entry {
    std::string_view id;
    uint64_t token = 0;
  };
  struct Shard {
    std::mutex mu;
    std::condition_variable cv;
    IdTable held;                // id -> index into entries
    std::vector<Entry> entries;  // slots; free ones are listed in free_slots
    std::vector<uint32_t> free_slots;

    // REQUIRES: mu held. Inserts id for token unless held; returns the holder's token. When
    // inserted, *slot is its entry.
    uint64_t TryHold(const HashedId& id, uint64_t token, uint32_t* slot);
    // REQUIRES: mu held. Removes id if `token` holds it; true when removed.
    bool Drop(const HashedId& id, uint64_t token);
    // REQUIRES: mu held; `slot` holds id (TryHold's). Removes it.
    void DropSlot(const HashedId& id, uint32_t slot);
    bool Holds(const HashedId& id) const;
  };
  static int ShardOf(uint64_t hash) { return static_cast<int>(hash & (kShards - 1)); }
  // Orders ids by shard: ids[order[k]] for k in [start[s], start[s + 1]) are shard s's.
  static void GroupByShard(const std::vector<HashedId>& ids, std::vector<uint32_t>* order,
                           uint32_t (&start)[kShards + 1]);
  // Drops ids[order[k]] for k in [0, end) held by token, shard by shard (by slot when
  // `slots` is given: slots[k] holds ids[order[k]]).
  void ReleaseGrouped(const std::vector<HashedId>& ids, const std::vector<uint32_t>& order,
                      const uint32_t (&start)[kShards + 1], size_t end, uint64_t token,
                      const uint32_t* slots = nullptr);

  Shard shards_[kShards];
};

}  // namespace usagedb
