// Internal to src/model: the clock-free SPEC §1 rules shared by the JSON decoder and
// ValidateEvent, plus small string helpers for rejection reasons.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "usagedb/event.h"

namespace usagedb {
namespace model_internal {

// Byte limits of SPEC §1.
inline constexpr size_t kMaxIdBytes = 256;
inline constexpr size_t kMaxUnitBytes = 64;
inline constexpr size_t kMaxSourceBytes = 128;
inline constexpr size_t kMaxReasonBytes = 1024;
inline constexpr size_t kMaxDimensions = 16;
inline constexpr size_t kMaxDimensionKeyBytes = 64;
inline constexpr size_t kMaxDimensionValueBytes = 256;

// k == lit, with the literal's length known at compile time (so memcmp is inlined).
template <size_t N>
inline bool EqualsLiteral(std::string_view k, const char (&lit)[N]) {
  return k.size() == N - 1 && std::memcmp(k.data(), lit, N - 1) == 0;
}

// True when `key` is 1-64 bytes of [A-Za-z0-9_.:-] starting with a letter or '_'.
bool IsValidDimensionKeySyntax(std::string_view key);
// True when `name` is a reserved name of SPEC §3.5 (exact, case-sensitive match).
bool IsReservedName(std::string_view name);
// True when s is valid UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// s escaped like a JSON string body (no quotes), cut to at most 64 bytes (+ "..."), for use
// inside rejection reasons.
std::string Printable(std::string_view s);

// Checks every clock-free §1 value rule on `e` in a fixed field order and returns the first
// violation ("field: rule"), or "" when none.
// REQUIRES: e.dimensions sorted by key with unique keys (the callers check that first).
// check_utf8: also verify that every string is valid UTF-8 (the JSON path skips it because
// simdjson has validated the input and unescaping only produces valid UTF-8).
std::string CheckEventRules(const Event& e, bool check_utf8);

}  // namespace model_internal
}  // namespace usagedb
