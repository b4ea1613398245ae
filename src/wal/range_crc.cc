#include "wal/range_crc.h"

#include <array>

#include "util/crc32c.h"

namespace usagedb::wal::internal {
namespace {

// Reflected CRC-32C polynomial. Polynomials below are in reflected bit order: bit 31 is x^0.
constexpr uint32_t kPoly = 0x82f63b78u;

// a * b mod P.
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31;
  uint32_t p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

// table[k] = x^(2^k) mod P.
std::array<uint32_t, 32> MakeX2nTable() {
  std::array<uint32_t, 32> t{};
  uint32_t p = 1u << 30;  // x^1
  t[0] = p;
  for (int k = 1; k < 32; ++k) t[k] = p = MultModP(p, p);
  return t;
}

// x^(n * 2^k) mod P.
uint32_t X2nModP(uint64_t n, unsigned k) {
  static const std::array<uint32_t, 32> table = MakeX2nTable();
  uint32_t p = 1u << 31;  // x^0
  while (n) {
    if (n & 1) p = MultModP(table[k & 31], p);
    n >>= 1;
    ++k;
  }
  return p;
}

}  // namespace

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  return MultModP(X2nModP(len_b, 3), crc_a) ^ crc_b;
}

RangeCrc::RangeCrc(std::string_view data) : data_(data) {
  prefix_.reserve(data.size() / kBlock + 1);
  uint32_t crc = 0;
  prefix_.push_back(crc);
  for (size_t off = 0; off + kBlock <= data.size(); off += kBlock) {
    crc = crc32c::Extend(crc, data.data() + off, kBlock);
    prefix_.push_back(crc);
  }
}

uint32_t RangeCrc::Value(size_t offset, size_t n) const {
  if (n <= 2 * kBlock) return crc32c::Value(data_.data() + offset, n);
  const size_t end = offset + n;
  const size_t first = (offset + kBlock - 1) / kBlock;  // first whole block
  const size_t last = end / kBlock;                     // one past the last whole block
  const size_t mid_begin = first * kBlock;
  const size_t mid_end = last * kBlock;
  const uint64_t mid_len = mid_end - mid_begin;
  // crc(P[mid_end]) = combine(P[mid_begin], crc(mid), mid_len), solved for crc(mid).
  const uint32_t mid = prefix_[last] ^ Crc32cCombine(prefix_[first], 0, mid_len);
  const uint32_t head = crc32c::Value(data_.data() + offset, mid_begin - offset);
  const uint32_t head_mid = Crc32cCombine(head, mid, mid_len);
  return crc32c::Extend(head_mid, data_.data() + mid_end, end - mid_end);
}

}  // namespace usagedb::wal::internal
