// The clock-free SPEC §1 rules, shared by the JSON decoder and the embedded API.

#include "model/event_rules.h"

#include <emmintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "model/event_codec.h"
#include "util/int128.h"

namespace usagedb {

const char* EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kUsage:
      return "Usage";
    case EventKind::kCorrection:
      return "Correction";
    case EventKind::kRetraction:
      return "Retraction";
  }
  return "Unknown";
}

namespace model_internal {
namespace {

// Eight bytes at a time (identifiers are on the ingest hot path): a word holds a control
// character when some byte is < 0x20 or == 0x7f; both tests are exact for the word as a whole.
bool HasControlChar(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    uint64_t less_than_0x20 = (w - kOnes * 0x20) & ~w & kHigh;
    uint64_t x = w ^ (kOnes * 0x7f);
    uint64_t equals_0x7f = (x - kOnes) & ~x & kHigh;
    if ((less_than_0x20 | equals_0x7f) != 0) return true;
  }
  for (; i < s.size(); ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7f) return true;
  }
  return false;
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Signed-byte test of 16 bytes: 0xff where the byte is printable ASCII (0x20..0x7e); bytes
// >= 0x80 are negative as signed and fail the first comparison.
inline __m128i PrintableMask(__m128i v) {
  return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(0x1f)),
                       _mm_cmplt_epi8(v, _mm_set1_epi8(0x7f)));
}

// True when every byte of [p, p + n) passes `mask` (a 16-byte test giving 0xff per passing
// byte), 16 bytes per step; shorter inputs are tested with one vector of overlapping loads,
// padded with `pad` (a byte that passes), so no input is tested byte by byte.
template <typename Mask>
__attribute__((always_inline)) inline bool AllBytesPass(const char* p, size_t n, char pad,
                                                        const Mask& mask) {
  __m128i v;
  if (n >= 16) {
    __m128i ok = _mm_set1_epi8(-1);
    for (; n > 16; p += 16, n -= 16) {
      ok = _mm_and_si128(ok, mask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
    // The last 16 bytes (overlapping what was checked).
    ok = _mm_and_si128(ok, mask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + n - 16))));
    return _mm_movemask_epi8(ok) == 0xffff;
  }
  const uint8_t padb = static_cast<uint8_t>(pad);
  const uint32_t pad4 = padb * 0x01010101u;
  if (n >= 8) {
    uint64_t a, b;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + n - 8, 8);
    v = _mm_set_epi64x(static_cast<int64_t>(b), static_cast<int64_t>(a));
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    v = _mm_set_epi32(static_cast<int>(pad4), static_cast<int>(pad4), static_cast<int>(b),
                      static_cast<int>(a));
  } else if (n > 0) {
    // 1-3 bytes: p[0], p[n / 2] and p[n - 1] cover all of them.
    const uint32_t w = static_cast<uint32_t>(static_cast<uint8_t>(p[0])) |
                       static_cast<uint32_t>(static_cast<uint8_t>(p[n >> 1])) << 8 |
                       static_cast<uint32_t>(static_cast<uint8_t>(p[n - 1])) << 16 |
                       static_cast<uint32_t>(padb) << 24;
    v = _mm_set_epi32(static_cast<int>(pad4), static_cast<int>(pad4), static_cast<int>(pad4),
                      static_cast<int>(w));
  } else {
    return true;
  }
  return _mm_movemask_epi8(mask(v)) == 0xffff;
}

// True when s is printable ASCII only (every byte in 0x20..0x7e): then it is valid UTF-8
// without control characters or NUL, the common case for every string of an event.
__attribute__((always_inline)) inline bool IsPrintableAscii(std::string_view s) {
  return AllBytesPass(s.data(), s.size(), 'a', [](__m128i v) { return PrintableMask(v); });
}

// 0xff where the byte is a dimension key character: a-z A-Z 0-9 _ . : -. Bytes
// >= 0x80 are negative as signed and fail every comparison.
inline __m128i KeyCharMask(__m128i v) {
  const __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));  // 'A'..'Z' -> 'a'..'z'
  const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)),
                                       _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1)));
  // '-' '.' '0'..'9' ':' are 0x2d..0x3a, except '/' (0x2f).
  const __m128i punct_digit =
      _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')),
                       _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('-' - 1)),
                                     _mm_cmplt_epi8(v, _mm_set1_epi8(':' + 1))));
  const __m128i underscore = _mm_cmpeq_epi8(v, _mm_set1_epi8('_'));
  return _mm_or_si128(_mm_or_si128(letter, punct_digit), underscore);
}

// An identifier that passes every rule by the fast test (length, printable ASCII).
inline bool QuickIdentifier(std::string_view v, size_t max) {
  return !v.empty() && v.size() <= max && IsPrintableAscii(v);
}

// True when `e` certainly passes every rule CheckEventRules checks, by tests that are exact
// for the common case (printable ASCII strings); false means "look closer", not "invalid".
bool QuickCheckEventRules(const Event& e) {
  bool ok =
      QuickIdentifier(e.event_id, kMaxIdBytes) && QuickIdentifier(e.account_id, kMaxIdBytes) &&
      QuickIdentifier(e.product_id, kMaxIdBytes) && QuickIdentifier(e.meter_id, kMaxIdBytes) &&
      QuickIdentifier(e.unit, kMaxUnitBytes) && QuickIdentifier(e.source, kMaxSourceBytes) &&
      (!e.subscription_id || QuickIdentifier(*e.subscription_id, kMaxIdBytes)) &&
      (!e.model_id || QuickIdentifier(*e.model_id, kMaxIdBytes)) && e.timestamp_ms >= 1 &&
      e.quantity <= kMaxQuantity && e.quantity >= -kMaxQuantity &&
      e.dimensions.size() <= kMaxDimensions;
  if (!ok) return false;
  switch (e.kind) {
    case EventKind::kUsage:
      if (e.has_correction_ref || e.quantity < 0 || !e.correction_original_event_id.empty() ||
          !e.correction_reason.empty()) {
        return false;
      }
      break;
    case EventKind::kCorrection:
    case EventKind::kRetraction:
      if (!e.has_correction_ref || (e.kind == EventKind::kRetraction && e.quantity > 0) ||
          !QuickIdentifier(e.correction_original_event_id, kMaxIdBytes) ||
          e.correction_reason.size() > kMaxReasonBytes || !IsPrintableAscii(e.correction_reason)) {
        return false;
      }
      break;
    default:
      return false;
  }
  for (const auto& [key, value] : e.dimensions) {
    if (!IsValidDimensionKeySyntax(key) || IsReservedName(key) || value.empty() ||
        value.size() > kMaxDimensionValueBytes || !IsPrintableAscii(value)) {
      return false;
    }
  }
  return true;
}

// Identifier field: `min`..`max` bytes, valid UTF-8, no control characters.
std::string CheckIdentifier(const char* field, std::string_view v, size_t max, bool check_utf8) {
  if (v.empty() || v.size() > max) {
    return std::string(field) + ": must be 1-" + std::to_string(max) + " bytes (got " +
           std::to_string(v.size()) + ")";
  }
  if (check_utf8 && !IsValidUtf8(v)) return std::string(field) + ": invalid UTF-8";
  if (HasControlChar(v)) return std::string(field) + ": control characters are not allowed";
  return "";
}

}  // namespace

bool IsValidDimensionKeySyntax(std::string_view key) {
  if (key.empty() || key.size() > kMaxDimensionKeyBytes) return false;
  char first = key[0];
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || first == '_')) {
    return false;
  }
  return AllBytesPass(key.data(), key.size(), 'a', [](__m128i v) { return KeyCharMask(v); });
}

bool IsReservedName(std::string_view n) {
  switch (n.size()) {
    case 3:
      return EqualsLiteral(n, "day");
    case 4:
      return EqualsLiteral(n, "unit") || EqualsLiteral(n, "kind") || EqualsLiteral(n, "date");
    case 5:
      return EqualsLiteral(n, "month");
    case 6:
      return EqualsLiteral(n, "source");
    case 8:
      return EqualsLiteral(n, "meter_id") || EqualsLiteral(n, "model_id") ||
             EqualsLiteral(n, "event_id") || EqualsLiteral(n, "quantity");
    case 10:
      return EqualsLiteral(n, "account_id") || EqualsLiteral(n, "product_id") ||
             EqualsLiteral(n, "dimensions");
    case 12:
      return EqualsLiteral(n, "timestamp_ms");
    case 13:
      return EqualsLiteral(n, "hour_start_ms");
    case 14:
      return EqualsLiteral(n, "ingested_at_ms") || EqualsLiteral(n, "correction_ref");
    case 15:
      return EqualsLiteral(n, "subscription_id");
    default:
      return false;
  }
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // ASCII runs eight bytes at a time.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ull) != 0) break;
      p += 8;
    }
    if (p == end) break;
    unsigned char b = *p;
    if (b < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= n) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i <= n; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += n + 1;
  }
  return true;
}

std::string Printable(std::string_view s) {
  constexpr size_t kMax = 64;
  bool cut = false;
  if (s.size() > kMax) {
    size_t n = kMax;
    // Do not split a UTF-8 sequence: back up over continuation bytes.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n);
    cut = true;
  }
  std::string out;
  AppendJsonString(s, &out);
  out = out.substr(1, out.size() - 2);
  if (cut) out += "...";
  return out;
}

std::string CheckEventRules(const Event& e, bool check_utf8) {
  if (QuickCheckEventRules(e)) return "";
  // Something is unusual: the rules in order, for the first violation's exact reason.
  std::string r;
  if (!(r = CheckIdentifier("event_id", e.event_id, kMaxIdBytes, check_utf8)).empty()) return r;

  if (e.kind != EventKind::kUsage && e.kind != EventKind::kCorrection &&
      e.kind != EventKind::kRetraction) {
    return "kind: must be Usage, Correction or Retraction";
  }
  if (e.kind == EventKind::kUsage && e.has_correction_ref) {
    return "correction_ref: not allowed on Usage";
  }
  if (e.kind != EventKind::kUsage && !e.has_correction_ref) {
    return std::string("correction_ref: required for ") + EventKindName(e.kind);
  }
  if (e.has_correction_ref) {
    if (!(r = CheckIdentifier("correction_ref.original_event_id", e.correction_original_event_id,
                              kMaxIdBytes, check_utf8))
             .empty()) {
      return r;
    }
    if (e.correction_reason.size() > kMaxReasonBytes) {
      return "correction_ref.reason: must be at most 1024 bytes (got " +
             std::to_string(e.correction_reason.size()) + ")";
    }
    if (check_utf8 && !IsValidUtf8(e.correction_reason)) {
      return "correction_ref.reason: invalid UTF-8";
    }
    if (HasNul(e.correction_reason)) return "correction_ref.reason: U+0000 is not allowed";
  } else if (!e.correction_original_event_id.empty() || !e.correction_reason.empty()) {
    return "correction_ref: fields set but has_correction_ref is false";
  }

  if (!(r = CheckIdentifier("account_id", e.account_id, kMaxIdBytes, check_utf8)).empty()) {
    return r;
  }
  if (e.subscription_id &&
      !(r = CheckIdentifier("subscription_id", *e.subscription_id, kMaxIdBytes, check_utf8))
           .empty()) {
    return r;
  }
  if (!(r = CheckIdentifier("product_id", e.product_id, kMaxIdBytes, check_utf8)).empty()) {
    return r;
  }
  if (!(r = CheckIdentifier("meter_id", e.meter_id, kMaxIdBytes, check_utf8)).empty()) return r;
  if (e.model_id &&
      !(r = CheckIdentifier("model_id", *e.model_id, kMaxIdBytes, check_utf8)).empty()) {
    return r;
  }

  if (e.timestamp_ms < 1) return "timestamp_ms: must be >= 1";

  if (e.quantity > kMaxQuantity || e.quantity < -kMaxQuantity) {
    return "quantity: must have at most 38 digits (|quantity| <= 10^38 - 1)";
  }
  if (e.kind == EventKind::kUsage && e.quantity < 0) {
    return "quantity: Usage requires quantity >= 0";
  }
  if (e.kind == EventKind::kRetraction && e.quantity > 0) {
    return "quantity: Retraction requires quantity <= 0";
  }

  if (!(r = CheckIdentifier("unit", e.unit, kMaxUnitBytes, check_utf8)).empty()) return r;
  if (!(r = CheckIdentifier("source", e.source, kMaxSourceBytes, check_utf8)).empty()) return r;

  if (e.dimensions.size() > kMaxDimensions) {
    return "dimensions: at most 16 keys (got " + std::to_string(e.dimensions.size()) + ")";
  }
  for (const auto& [key, value] : e.dimensions) {
    if (!IsValidDimensionKeySyntax(key)) {
      return "dimensions: invalid key \"" + Printable(key) +
             "\": must be 1-64 bytes of [A-Za-z0-9_.:-] starting with a letter or _";
    }
    if (IsReservedName(key)) {
      return "dimensions: key \"" + key + "\" is a reserved name";
    }
    if (value.empty() || value.size() > kMaxDimensionValueBytes) {
      return "dimensions." + key + ": value must be 1-256 bytes (got " +
             std::to_string(value.size()) + ")";
    }
    if (check_utf8 && !IsValidUtf8(value)) return "dimensions." + key + ": invalid UTF-8";
    if (HasNul(value)) return "dimensions." + key + ": U+0000 is not allowed";
  }
  return "";
}

}  // namespace model_internal

std::string ValidateEvent(Event* event) {
  auto& dims = event->dimensions;
  bool sorted_unique = true;
  for (size_t i = 1; i < dims.size() && sorted_unique; ++i) {
    sorted_unique = dims[i - 1].first < dims[i].first;
  }
  if (!sorted_unique) {  // the usual input is already canonical: no sort, no duplicate scan
    std::sort(dims.begin(), dims.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < dims.size(); ++i) {
      if (dims[i].first == dims[i - 1].first) {
        return "dimensions: duplicate key: " + model_internal::Printable(dims[i].first);
      }
    }
  }
  return model_internal::CheckEventRules(*event, /*check_utf8=*/true);
}

}  // namespace usagedb
