#include "util/crc32c.h"

#include <nmmintrin.h>

#include <cstring>

namespace usagedb::crc32c {

uint32_t Extend(uint32_t init_crc, const char* data, size_t n) {
  uint64_t crc = init_crc ^ 0xffffffffu;
  const char* p = data;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    crc = _mm_crc32_u64(crc, v);
    p += 8;
    n -= 8;
  }
  uint32_t c = static_cast<uint32_t>(crc);
  while (n > 0) {
    c = _mm_crc32_u8(c, static_cast<uint8_t>(*p));
    ++p;
    --n;
  }
  return c ^ 0xffffffffu;
}

}  // namespace usagedb::crc32c
