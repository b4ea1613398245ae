#include "db/reservations.h"

#include <cassert>

#include "util/hash.h"

namespace usagedb {
namespace {

std::vector<ReservationTable::HashedId> HashAll(const std::vector<std::string_view>& ids) {
  std::vector<ReservationTable::HashedId> out;
  out.reserve(ids.size());
  for (std::string_view id : ids) out.push_back({id, Hash64(id)});
  return out;
}

}  // namespace

uint64_t ReservationTable::Shard::TryHold(const HashedId& id, uint64_t token, uint32_t* held_slot) {
  uint32_t slot;
  if (!free_slots.empty()) {
    slot = free_slots.back();
    free_slots.pop_back();
  } else {
    slot = static_cast<uint32_t>(entries.size());
    entries.emplace_back();
  }
  entries[slot] = Entry{id.id, token};
  const uint32_t v =
      held.Insert(id.hash, id.id, slot, [this](uint32_t s) { return entries[s].id; });
  if (v == slot) {
    *held_slot = slot;
    return token;
  }
  free_slots.push_back(slot);
  return entries[v].token;
}

void ReservationTable::Shard::DropSlot(const HashedId& id, uint32_t slot) {
  [[maybe_unused]] const bool erased = held.EraseValue(id.hash, slot);
  assert(erased && entries[slot].id.data() == id.id.data());
  free_slots.push_back(slot);
}

bool ReservationTable::Shard::Drop(const HashedId& id, uint64_t token) {
  const uint32_t v = held.EraseIf(
      id.hash, id.id, [this](uint32_t s) { return entries[s].id; },
      [&](uint32_t s) { return entries[s].token == token; });
  if (v == IdTable::kNone) return false;
  free_slots.push_back(v);
  return true;
}

bool ReservationTable::Shard::Holds(const HashedId& id) const {
  return held.Find(id.hash, id.id, [this](uint32_t s) { return entries[s].id; }) != IdTable::kNone;
}

void ReservationTable::GroupByShard(const std::vector<HashedId>& ids, std::vector<uint32_t>* order,
                                    uint32_t (&start)[kShards + 1]) {
  uint32_t count[kShards] = {};
  for (const HashedId& id : ids) count[ShardOf(id.hash)]++;
  start[0] = 0;
  for (int s = 0; s < kShards; s++) start[s + 1] = start[s] + count[s];
  uint32_t next[kShards];
  for (int s = 0; s < kShards; s++) next[s] = start[s];
  order->resize(ids.size());
  for (size_t i = 0; i < ids.size(); i++)
    (*order)[next[ShardOf(ids[i].hash)]++] = static_cast<uint32_t>(i);
}

void ReservationTable::ReleaseGrouped(const std::vector<HashedId>& ids,
                                      const std::vector<uint32_t>& order,
                                      const uint32_t (&start)[kShards + 1], size_t end,
                                      uint64_t token, const uint32_t* slots) {
  for (int s = 0; s < kShards && start[s] < end; s++) {
    const size_t stop = std::min<size_t>(start[s + 1], end);
    if (start[s] == stop) continue;
    Shard& sh = shards_[s];
    bool notify = false;
    {
      std::lock_guard<std::mutex> l(sh.mu);
      if (slots != nullptr) {
        for (size_t k = start[s]; k < stop; k++) sh.DropSlot(ids[order[k]], slots[k]);
        notify = true;
      } else {
        for (size_t k = start[s]; k < stop; k++) notify |= sh.Drop(ids[order[k]], token);
      }
    }
    if (notify) sh.cv.notify_all();
  }
}

void ReservationTable::ReserveAll(const std::vector<HashedId>& ids, uint64_t token) {
  Grouping g;
  ReserveAll(ids, token, &g);
}

void ReservationTable::ReserveAll(const std::vector<HashedId>& ids, uint64_t token,
                                  Grouping* grouping) {
  std::vector<uint32_t>& order = grouping->order;
  uint32_t(&start)[kShards + 1] = grouping->start;
  GroupByShard(ids, &order, start);
  std::vector<uint32_t>& slots = grouping->slot;
  slots.resize(ids.size());
  for (;;) {
    // Take shard by shard; on the first id held by another batch, give back everything taken
    // in this attempt (this shard's part included), then wait for that id to be released.
    size_t taken = 0;  // ids[order[0 .. taken)] are held by us
    const HashedId* blocked = nullptr;
    for (int s = 0; s < kShards && blocked == nullptr; s++) {
      if (start[s] == start[s + 1]) continue;
      Shard& sh = shards_[s];
      std::lock_guard<std::mutex> l(sh.mu);
      for (size_t k = start[s]; k < start[s + 1]; k++) {
        if (sh.TryHold(ids[order[k]], token, &slots[k]) != token) {
          blocked = &ids[order[k]];
          break;
        }
        taken = k + 1;
      }
    }
    if (blocked == nullptr) return;
    ReleaseGrouped(ids, order, start, taken, token, slots.data());
    Shard& sh = shards_[ShardOf(blocked->hash)];
    std::unique_lock<std::mutex> l(sh.mu);
    sh.cv.wait(l, [&] { return !sh.Holds(*blocked); });
  }
}

void ReservationTable::ReleaseAll(const std::vector<HashedId>& ids, uint64_t token) {
  std::vector<uint32_t> order;
  uint32_t start[kShards + 1];
  GroupByShard(ids, &order, start);
  ReleaseGrouped(ids, order, start, ids.size(), token);
}

void ReservationTable::ReleaseAll(const std::vector<HashedId>& ids, uint64_t token,
                                  const Grouping& grouping) {
  ReleaseGrouped(ids, grouping.order, grouping.start, ids.size(), token, grouping.slot.data());
}

void ReservationTable::ReserveAll(const std::vector<std::string_view>& ids, uint64_t token) {
  ReserveAll(HashAll(ids), token);
}

void ReservationTable::ReleaseAll(const std::vector<std::string_view>& ids, uint64_t token) {
  ReleaseAll(HashAll(ids), token);
}

}  // namespace usagedb
