// Internal to the WAL reader: CRC-32C of arbitrary sub-ranges of one buffer in bounded time,
// so the forward scan that tells a torn tail from middle damage stays linear in practice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace usagedb::wal::internal {

// crc32c of A + B given crc32c(A), crc32c(B) and |B| (zlib's crc32_combine for CRC-32C).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

// Precomputes the crc of every kBlock-aligned prefix of `data` (one pass, 4 bytes per
// kBlock bytes), then answers the crc of any range touching at most 2 * kBlock bytes
// directly plus two combines. `data` must outlive the object. Not thread-safe to build;
// const methods are thread-safe.
class RangeCrc {
 public:
  static constexpr size_t kBlock = 1024;
  explicit RangeCrc(std::string_view data);
  // crc32c(data[offset, offset + n)). REQUIRES: offset + n <= data.size().
  uint32_t Value(size_t offset, size_t n) const;

 private:
  std::string_view data_;
  std::vector<uint32_t> prefix_;  // prefix_[k] = crc32c(data[0, k * kBlock))
};

}  // namespace usagedb::wal::internal
