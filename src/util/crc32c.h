// CRC-32C (Castagnoli), hardware-accelerated with SSE4.2. Used by every on-disk checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace usagedb::crc32c {

// Extends `init_crc` (the crc of some prefix A) to the crc of A + data[0, n).
uint32_t Extend(uint32_t init_crc, const char* data, size_t n);
inline uint32_t Value(const char* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

// Stored checksums are masked (as in LevelDB) so a crc over data that itself holds crcs
// does not degenerate.
constexpr uint32_t kMaskDelta = 0xa282ead8u;
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return ((rot >> 17) | (rot << 15));
}

}  // namespace usagedb::crc32c
