#include "util/coding.h"

namespace usagedb {

void PutVarint128(std::string* dst, unsigned __int128 v) {
  char buf[19];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(static_cast<uint8_t>(v));
  dst->append(buf, n);
}

bool Decoder::GetFixed32(uint32_t* v) {
  if (remaining() < 4) return false;
  *v = DecodeFixed32(p_);
  p_ += 4;
  return true;
}

bool Decoder::GetFixed64(uint64_t* v) {
  if (remaining() < 8) return false;
  *v = DecodeFixed64(p_);
  p_ += 8;
  return true;
}

bool Decoder::GetVarint64(uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && p_ < end_; shift += 7) {
    uint64_t byte = static_cast<uint8_t>(*p_++);
    if (shift == 63 && byte > 1) return false;  // would overflow 64 bits
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool Decoder::GetVarint32(uint32_t* v) {
  uint64_t x;
  if (!GetVarint64(&x) || x > UINT32_MAX) return false;
  *v = static_cast<uint32_t>(x);
  return true;
}

bool Decoder::GetVarint128(unsigned __int128* v) {
  // Fast path: almost every value (quantities, zigzagged) fits in 63 bits, i.e. 9 bytes, which
  // 64-bit arithmetic decodes.
  {
    uint64_t r64 = 0;
    const char* p = p_;
    for (int shift = 0; shift <= 56 && p < end_; shift += 7) {
      uint64_t byte = static_cast<uint8_t>(*p++);
      r64 |= (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        p_ = p;
        *v = r64;
        return true;
      }
    }
  }
  unsigned __int128 result = 0;
  for (int shift = 0; shift <= 126 && p_ < end_; shift += 7) {
    unsigned __int128 byte = static_cast<uint8_t>(*p_++);
    if (shift == 126 && byte > 3) return false;
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool Decoder::GetByte(uint8_t* v) {
  if (p_ >= end_) return false;
  *v = static_cast<uint8_t>(*p_++);
  return true;
}

bool Decoder::GetBytes(size_t n, std::string_view* v) {
  if (remaining() < n) return false;
  *v = std::string_view(p_, n);
  p_ += n;
  return true;
}

bool Decoder::GetLengthPrefixed(std::string_view* v) {
  uint64_t n;
  if (!GetVarint64(&n) || n > remaining()) return false;
  return GetBytes(static_cast<size_t>(n), v);
}

}  // namespace usagedb
