// Exact integer helpers for quantities (|q| <= 10^38 - 1) and sums wider than 128 bits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace usagedb {

using int128 = __int128;
using uint128 = unsigned __int128;

// 10^38 - 1, the largest |quantity| (fits DECIMAL(38,0)).
constexpr int128 kMaxQuantity =
    static_cast<int128>(static_cast<uint128>(0x4B3B4CA85A86C47Aull) << 64 |
                        static_cast<uint128>(0x098A223FFFFFFFFFull));
constexpr int128 kInt128Max = static_cast<int128>(~static_cast<uint128>(0) >> 1);
constexpr int128 kInt128Min = -kInt128Max - 1;

// Parses `-?[0-9]{1,38}` exactly (leading zeros allowed). Returns nullopt otherwise.
std::optional<int128> ParseQuantity(std::string_view s);
// Canonical decimal: no leading zeros, never "-0".
std::string Int128ToString(int128 v);

// A signed accumulator wider than 128 bits: value = hi * 2^128 + lo (lo unsigned). Adding
// any number of int128 values never wraps; only the final value is range-checked.
class WideSum {
 public:
  void Add(int128 v);
  void Add(const WideSum& other);
  // The exact value when it lies within [-(2^127 - 1), 2^127 - 1], else nullopt (overflow).
  std::optional<int128> Value() const;
  bool IsZero() const { return hi_ == 0 && lo_ == 0; }

 private:
  uint128 lo_ = 0;
  int64_t hi_ = 0;
};

}  // namespace usagedb
