#include "util/int128.h"

#include <algorithm>

namespace usagedb {

std::optional<int128> ParseQuantity(std::string_view s) {
  bool neg = false;
  if (!s.empty() && s[0] == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 38) return std::nullopt;
  uint128 v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint128>(c - '0');
  }
  int128 r = static_cast<int128>(v);  // <= 10^38 - 1 < 2^127
  return neg ? -r : r;
}

std::string Int128ToString(int128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  uint128 u = neg ? static_cast<uint128>(0) - static_cast<uint128>(v) : static_cast<uint128>(v);
  char buf[48];
  int n = 0;
  while (u > 0) {
    buf[n++] = static_cast<char>('0' + static_cast<int>(u % 10));
    u /= 10;
  }
  if (neg) buf[n++] = '-';
  std::reverse(buf, buf + n);
  return std::string(buf, n);
}

void WideSum::Add(int128 v) {
  uint128 add = static_cast<uint128>(v);
  uint128 old = lo_;
  lo_ += add;
  int64_t carry = lo_ < old ? 1 : 0;
  hi_ += carry + (v < 0 ? -1 : 0);  // sign extension of v into the high word
}

void WideSum::Add(const WideSum& other) {
  uint128 old = lo_;
  lo_ += other.lo_;
  hi_ += other.hi_ + (lo_ < old ? 1 : 0);
}

std::optional<int128> WideSum::Value() const {
  int128 v = static_cast<int128>(lo_);
  // Fits when the high word is the sign extension of lo.
  if ((hi_ == 0 && v >= 0) || (hi_ == -1 && v < 0)) {
    if (v == kInt128Min) return std::nullopt;  // outside ±(2^127 - 1)
    return v;
  }
  return std::nullopt;
}

}  // namespace usagedb
