// Writer-side hashing helpers: a fast in-memory string hash, inline short-string equality and
// a flat open-addressing id map. Nothing here reaches disk; the hash may change freely.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace usagedb::segment {

inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 64x64 -> 128 multiply folded to 64 bits (the wyhash mixer).
inline uint64_t Mum(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

constexpr uint64_t kHashK0 = 0xa0761d6478bd642full;
constexpr uint64_t kHashK1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kHashK2 = 0x8ebc6af09c88c6e3ull;

// A wyhash-style hash of the bytes (reads only inside [s.data(), s.data() + s.size())).
// Routing only: equal strings hash equally; identity is always decided by comparing bytes.
inline uint64_t HashBytes(std::string_view s, uint64_t seed = kHashK2) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t a, b;
  seed ^= n;
  if (n <= 16) {
    if (n >= 8) {
      a = Load64(p);
      b = Load64(p + n - 8);
    } else if (n >= 4) {
      a = Load32(p);
      b = Load32(p + n - 4);
    } else if (n > 0) {
      a = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
          (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) |
          static_cast<uint8_t>(p[n - 1]);
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    const char* q = p;
    size_t left = n;
    while (left > 16) {
      seed = Mum(Load64(q) ^ kHashK0, Load64(q + 8) ^ seed);
      q += 16;
      left -= 16;
    }
    a = Load64(p + n - 16);
    b = Load64(p + n - 8);
  }
  return Mum(kHashK0 ^ n, Mum(a ^ kHashK1, b ^ seed));
}

inline uint64_t HashInt(uint64_t v) { return Mum(v ^ kHashK0, kHashK1); }

// Byte equality without a library call for short strings (the common case here).
inline bool BytesEqual(std::string_view x, std::string_view y) {
  const size_t n = x.size();
  if (n != y.size()) return false;
  const char* a = x.data();
  const char* b = y.data();
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (Load64(a + i) != Load64(b + i)) return false;
    }
    return Load64(a + n - 8) == Load64(b + n - 8);
  }
  if (n >= 4) return Load32(a) == Load32(b) && Load32(a + n - 4) == Load32(b + n - 4);
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Open-addressing (linear probing) map from a 64-bit hash plus caller-decided equality to a
// dense uint32 id. Stores only (hash tag, id); keys live with the caller. Grows at load 1/2.
// Clear keeps the table (its cost is proportional to the table, which tracks the largest block).
class FlatIdMap {
 public:
  FlatIdMap() { Reset(kMinSlots); }

  void Clear() {
    if (size_ == 0) return;
    std::fill(slots_.begin(), slots_.end(), Slot{});
    size_ = 0;
  }
  size_t size() const { return size_; }

  // Returns the id of the entry with this hash for which eq(id) holds, or inserts new_id
  // (setting *inserted) and returns it. eq must be consistent with the hash.
  template <typename Eq>
  uint32_t FindOrInsert(uint64_t hash, uint32_t new_id, const Eq& eq, bool* inserted) {
    const uint32_t tag = static_cast<uint32_t>(hash >> 32);
    size_t i = tag & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.id_plus_1 == 0) break;
      if (s.tag == tag && eq(s.id_plus_1 - 1)) {
        *inserted = false;
        return s.id_plus_1 - 1;
      }
      i = (i + 1) & mask_;
    }
    *inserted = true;
    slots_[i] = Slot{tag, new_id + 1};
    if (++size_ * 2 > slots_.size()) Grow();
    return new_id;
  }

 private:
  static constexpr size_t kMinSlots = 256;
  struct Slot {
    uint32_t tag = 0;
    uint32_t id_plus_1 = 0;  // 0 = empty
  };

  void Reset(size_t slots) {
    slots_.assign(slots, Slot{});
    mask_ = slots - 1;
    size_ = 0;
  }
  void Grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    const size_t size = size_;
    Reset(old.size() * 2);
    for (const Slot& s : old) {
      if (s.id_plus_1 == 0) continue;
      size_t i = s.tag & mask_;
      while (slots_[i].id_plus_1 != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
    size_ = size;
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace usagedb::segment
