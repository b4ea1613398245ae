// IdTable: a flat open-addressing index from an event_id to a 32-bit value (a memtable row, a
// position in a batch, a reservation slot), for the write path's per-event lookups.
//
// The caller hashes each id once (Hash64) and passes the hash to every table on the path; the
// table keeps only 32 bits of it and the value, 8 bytes per slot, no per-entry allocation.
// Hashes only route (SPEC §2.1): a hit is decided by comparing the full id bytes, which the
// caller's `id_of(value)` returns (the table stores no ids). Two ids with equal hashes are two
// entries.
//
// Layout: linear probing over a power-of-two array, load factor <= 1/2. A slot holds the high
// 32 bits of the hash (`tag`) and the value; the home slot is derived from the tag alone, so
// growth re-places entries without the ids. Erase uses backward-shift deletion (no
// tombstones). Not thread-safe: the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace usagedb {

class IdTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;  // "absent"; never a stored value

  IdTable() = default;
  explicit IdTable(size_t expected) { Reserve(expected); }

  // Makes room for `n` entries without further growth.
  void Reserve(size_t n) {
    size_t want = kMinSlots;
    while (want < 2 * n) want *= 2;
    if (want > slots_.size()) Rehash(want);
  }
  void Clear() {
    slots_.assign(slots_.size(), Slot{0, kNone});
    size_ = 0;
  }
  size_t size() const { return size_; }
  // Bytes of the slot array.
  size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

  // The value stored for `id`, or kNone. `id_of(value)` returns the id stored under a value.
  // REQUIRES: hash is the hash every entry was inserted with (same function of the id).
  template <typename IdOf>
  uint32_t Find(uint64_t hash, std::string_view id, const IdOf& id_of) const {
    const size_t i = FindSlot(hash, [&](uint32_t v) { return SameId(id_of(v), id); });
    return i == kNoSlot ? kNone : slots_[i].value;
  }

  // Hint: starts loading the home slot of `hash`, so a caller probing many ids can overlap
  // their cache misses (the slot array of a full memtable is megabytes). No effect on results.
  void Prefetch(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[Home(Tag(hash))]);
  }

  // Inserts id -> value unless `id` is present. Returns the value stored for `id` afterwards
  // (== value when inserted). REQUIRES: value != kNone.
  template <typename IdOf>
  uint32_t Insert(uint64_t hash, std::string_view id, uint32_t value, const IdOf& id_of) {
    if (2 * (size_ + 1) > slots_.size()) Rehash(slots_.empty() ? kMinSlots : 2 * slots_.size());
    const uint32_t tag = Tag(hash);
    for (size_t i = Home(tag);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.value == kNone) {
        s = Slot{tag, value};
        size_++;
        return value;
      }
      if (s.tag == tag && SameId(id_of(s.value), id)) return s.value;
    }
  }

  // Removes `id`; returns its value, or kNone when absent.
  template <typename IdOf>
  uint32_t Erase(uint64_t hash, std::string_view id, const IdOf& id_of) {
    return EraseIf(hash, id, id_of, [](uint32_t) { return true; });
  }
  // Removes the entry of `hash` whose value is `value` (a caller that inserted it knows both:
  // no id comparison, no id_of call); returns whether it was present.
  bool EraseValue(uint64_t hash, uint32_t value) {
    const size_t i = FindSlot(hash, [&](uint32_t v) { return v == value; });
    if (i == kNoSlot) return false;
    EraseAt(i);
    return true;
  }
  // Removes `id` when pred(value) is true for its value; returns the value removed, or
  // kNone (absent, or present and kept).
  template <typename IdOf, typename Pred>
  uint32_t EraseIf(uint64_t hash, std::string_view id, const IdOf& id_of, const Pred& pred) {
    const size_t i = FindSlot(hash, [&](uint32_t v) { return SameId(id_of(v), id); });
    if (i == kNoSlot) return kNone;
    const uint32_t value = slots_[i].value;
    if (!pred(value)) return kNone;
    EraseAt(i);
    return value;
  }

 private:
  static constexpr size_t kMinSlots = 16;
  struct Slot {
    uint32_t tag;
    uint32_t value;
  };

  static constexpr size_t kNoSlot = SIZE_MAX;
  // The slot holding an entry of `hash` whose value `match`es, or kNoSlot. Tags are compared
  // first, so `match` (which may read the stored id) runs only for likely hits.
  template <typename Match>
  size_t FindSlot(uint64_t hash, const Match& match) const {
    if (slots_.empty()) return kNoSlot;
    const uint32_t tag = Tag(hash);
    for (size_t i = Home(tag);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kNone) return kNoSlot;
      if (s.tag == tag && match(s.value)) return i;
    }
  }
  // Empties slot i. Backward shift: moves later members of the cluster into the hole when
  // their home slot does not lie (cyclically) after the hole.
  void EraseAt(size_t i) {
    size_t hole = i;
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      Slot& s = slots_[j];
      if (s.value == kNone) break;
      const size_t home = Home(s.tag);
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        slots_[hole] = s;
        hole = j;
      }
    }
    slots_[hole] = Slot{0, kNone};
    size_--;
  }

  // Full id equality; a view of the very bytes stored (a batch releasing its own ids) needs
  // no byte comparison.
  static bool SameId(std::string_view a, std::string_view b) {
    return a.size() == b.size() && (a.data() == b.data() || a == b);
  }
  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
  // Fibonacci hashing of the tag, so the home slot uses all of its bits.
  size_t Home(uint32_t tag) const {
    return static_cast<size_t>((static_cast<uint64_t>(tag) * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  void Rehash(size_t n) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(n, Slot{0, kNone});
    mask_ = n - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(n));
    for (const Slot& s : old) {
      if (s.value == kNone) continue;
      size_t i = Home(s.tag);
      while (slots_[i].value != kNone) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace usagedb
