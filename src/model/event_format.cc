// Canonical forms (SPEC §1), the event JSON output shape (SPEC §3.3), the payload digest and
// the binary event record (docs/parts/model.md "Event record").

#include <emmintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "model/event_codec.h"
#include "model/event_rules.h"
#include "util/int128.h"

namespace usagedb {
namespace {

// Escape table: 0 = copy as-is, otherwise the character after the backslash ('u' = \u00xx).
constexpr std::array<char, 256> MakeEscapeTable() {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  t['"'] = '"';
  t['\\'] = '\\';
  return t;
}
constexpr std::array<char, 256> kEscape = MakeEscapeTable();

void AppendDimensionsObject(const std::vector<std::pair<std::string, std::string>>& dims,
                            std::string* out) {
  out->push_back('{');
  bool first = true;
  for (const auto& [k, v] : dims) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(k, out);
    out->push_back(':');
    AppendJsonString(v, out);
  }
  out->push_back('}');
}

using Dims = std::vector<std::pair<std::string, std::string>>;

bool IsSortedUnique(const Dims& dims) {
  for (size_t i = 1; i < dims.size(); ++i) {
    if (!(dims[i - 1].first < dims[i].first)) return false;
  }
  return true;
}

// Parses one canonical JSON string starting at s[*pos] == '"'. Only the escapes that
// AppendJsonString produces are accepted.
bool ParseCanonicalString(std::string_view s, size_t* pos, std::string* out) {
  size_t i = *pos;
  if (i >= s.size() || s[i] != '"') return false;
  ++i;
  out->clear();
  while (true) {
    size_t run = i;
    while (i < s.size() && s[i] != '"' && s[i] != '\\') {
      if (static_cast<unsigned char>(s[i]) < 0x20) return false;  // must have been escaped
      ++i;
    }
    out->append(s.data() + run, i - run);
    if (i >= s.size()) return false;
    if (s[i] == '"') {
      *pos = i + 1;
      return true;
    }
    if (i + 1 >= s.size()) return false;
    char e = s[i + 1];
    char c;
    switch (e) {
      case '"':
        c = '"';
        break;
      case '\\':
        c = '\\';
        break;
      case 'b':
        c = '\b';
        break;
      case 'f':
        c = '\f';
        break;
      case 'n':
        c = '\n';
        break;
      case 'r':
        c = '\r';
        break;
      case 't':
        c = '\t';
        break;
      case 'u': {
        if (i + 6 > s.size() || s[i + 2] != '0' || s[i + 3] != '0') return false;
        auto hex = [](char h) -> int {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          return -1;
        };
        int hi = hex(s[i + 4]), lo = hex(s[i + 5]);
        if (hi < 0 || lo < 0 || hi > 1) return false;
        c = static_cast<char>(hi * 16 + lo);
        if (kEscape[static_cast<unsigned char>(c)] != 'u') return false;  // not canonical
        out->push_back(c);
        i += 6;
        continue;
      }
      default:
        return false;
    }
    out->push_back(c);
    i += 2;
  }
}

// Raw-pointer writers for the hot encoders: the caller sizes the buffer first (EncodedSize),
// so no byte goes through std::string's capacity checks.
__attribute__((always_inline)) inline char* WriteVarint64(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
inline char* WriteVarint128(char* p, unsigned __int128 v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(static_cast<uint8_t>(v));
  return p;
}
// Short strings (most fields) are copied with fixed-size moves instead of a memcpy call.
__attribute__((always_inline)) inline char* WriteBytes(char* p, std::string_view s) {
  const size_t n = s.size();
  const char* src = s.data();
  if (n <= 32) {
    if (n >= 16) {
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + n - 16));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), a);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + n - 16), b);
    } else if (n >= 8) {
      uint64_t a, b;
      std::memcpy(&a, src, 8);
      std::memcpy(&b, src + n - 8, 8);
      std::memcpy(p, &a, 8);
      std::memcpy(p + n - 8, &b, 8);
    } else if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, src, 4);
      std::memcpy(&b, src + n - 4, 4);
      std::memcpy(p, &a, 4);
      std::memcpy(p + n - 4, &b, 4);
    } else {
      for (size_t i = 0; i < n; i++) p[i] = src[i];
    }
  } else {
    std::memcpy(p, src, n);
  }
  return p + n;
}
inline char* WriteLengthPrefixed(char* p, std::string_view s) {
  return WriteBytes(WriteVarint64(p, s.size()), s);
}
inline char* WriteFixed64(char* p, uint64_t v) {
  std::memcpy(p, &v, 8);
  return p + 8;
}
// One length-prefixed string into both the record (*p) and the canonical payload (*c).
__attribute__((always_inline)) inline void WriteBoth(char** p, char** c, std::string_view v) {
  *p = WriteBytes(WriteVarint64(*p, v.size()), v);
  *c = WriteBytes(WriteVarint64(*c, v.size()), v);
}

// An upper bound of the bytes of every length-prefixed string field of `e` (the part both
// encoders share): string bytes plus 10 per varint.
size_t StringFieldsBound(const Event& e, const Dims& dims) {
  size_t n = e.event_id.size() + e.account_id.size() + e.product_id.size() + e.meter_id.size() +
             e.unit.size() + e.source.size() + 7 * 10;
  if (e.has_correction_ref) {
    n += e.correction_original_event_id.size() + e.correction_reason.size() + 2 * 10;
  }
  if (e.subscription_id) n += e.subscription_id->size() + 10;
  if (e.model_id) n += e.model_id->size() + 10;
  for (const auto& [k, v] : dims) n += k.size() + v.size() + 2 * 10;
  return n;
}

// Binary record flags (presence bitmap).
constexpr uint8_t kHasSubscription = 1 << 0;
constexpr uint8_t kHasModel = 1 << 1;
constexpr uint8_t kHasCorrectionRef = 1 << 2;
constexpr uint8_t kKnownFlags = kHasSubscription | kHasModel | kHasCorrectionRef;

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char e = kEscape[static_cast<unsigned char>(s[i])];
    if (e == 0) continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    if (e == 'u') {
      auto c = static_cast<unsigned char>(s[i]);
      char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out->append(buf, 6);
    } else {
      out->push_back('\\');
      out->push_back(e);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

std::string CanonicalDimensions(const Dims& dims) {
  std::string out;
  if (IsSortedUnique(dims)) {
    AppendDimensionsObject(dims, &out);
  } else {
    Dims sorted = dims;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    AppendDimensionsObject(sorted, &out);
  }
  return out;
}

Status ParseCanonicalDimensions(std::string_view s, Dims* out) {
  out->clear();
  auto bad = [&](const char* why) {
    out->clear();
    return Status::Corruption(std::string("canonical dimensions: ") + why);
  };
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return bad("not an object");
  if (!model_internal::IsValidUtf8(s)) return bad("invalid UTF-8");
  size_t pos = 1;
  if (s.size() == 2) return Status::OK();
  std::string key, value;
  while (true) {
    if (!ParseCanonicalString(s, &pos, &key)) return bad("bad key string");
    if (pos >= s.size() || s[pos] != ':') return bad("expected ':'");
    ++pos;
    if (!ParseCanonicalString(s, &pos, &value)) return bad("bad value string");
    if (!out->empty() && !(out->back().first < key)) return bad("keys not strictly sorted");
    out->emplace_back(key, value);
    if (pos >= s.size()) return bad("truncated");
    if (s[pos] == ',') {
      ++pos;
      continue;
    }
    if (s[pos] == '}' && pos + 1 == s.size()) return Status::OK();
    return bad("expected ',' or '}'");
  }
}

void AppendEventJson(const Event& e, std::string* out) {
  out->append("{\"event_id\":");
  AppendJsonString(e.event_id, out);
  out->append(",\"kind\":\"");
  out->append(EventKindName(e.kind));
  out->append("\",\"correction_ref\":");
  if (e.has_correction_ref) {
    out->append("{\"original_event_id\":");
    AppendJsonString(e.correction_original_event_id, out);
    out->append(",\"reason\":");
    AppendJsonString(e.correction_reason, out);
    out->push_back('}');
  } else {
    out->append("null");
  }
  out->append(",\"account_id\":");
  AppendJsonString(e.account_id, out);
  out->append(",\"subscription_id\":");
  if (e.subscription_id) {
    AppendJsonString(*e.subscription_id, out);
  } else {
    out->append("null");
  }
  out->append(",\"product_id\":");
  AppendJsonString(e.product_id, out);
  out->append(",\"meter_id\":");
  AppendJsonString(e.meter_id, out);
  out->append(",\"model_id\":");
  if (e.model_id) {
    AppendJsonString(*e.model_id, out);
  } else {
    out->append("null");
  }
  out->append(",\"timestamp_ms\":");
  out->append(std::to_string(e.timestamp_ms));
  out->append(",\"quantity\":");
  out->append(Int128ToString(e.quantity));
  out->append(",\"unit\":");
  AppendJsonString(e.unit, out);
  out->append(",\"source\":");
  AppendJsonString(e.source, out);
  out->append(",\"dimensions\":");
  if (IsSortedUnique(e.dimensions)) {
    AppendDimensionsObject(e.dimensions, out);
  } else {
    out->append(CanonicalDimensions(e.dimensions));
  }
  out->append(",\"ingested_at_ms\":");
  out->append(std::to_string(e.ingested_at_ms));
  out->push_back('}');
}

// Canonical payload byte string, version 1 (stable: digests are persisted by the dedupe
// index). Every variable-length field is length-prefixed and every optional field has a
// presence byte, so two different payloads never produce the same bytes.
Digest128 PayloadDigest(const Event& e) {
  static constexpr std::string_view kDomain = "usagedb.payload.v1";
  const Dims* dims = &e.dimensions;
  Dims sorted;
  if (!IsSortedUnique(e.dimensions)) {
    sorted = e.dimensions;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    dims = &sorted;
  }
  // domain | kind | 3 presence bytes | timestamp and quantity (24) | strings.
  const size_t size = kDomain.size() + 1 + 3 + 24 + StringFieldsBound(e, *dims);
  thread_local std::string buf;
  if (buf.size() < size) buf.resize(std::max(size, 2 * buf.size()));
  char* p = WriteBytes(buf.data(), kDomain);
  *p++ = static_cast<char>(e.kind);
  p = WriteLengthPrefixed(p, e.event_id);
  *p++ = e.has_correction_ref ? 1 : 0;
  if (e.has_correction_ref) {
    p = WriteLengthPrefixed(p, e.correction_original_event_id);
    p = WriteLengthPrefixed(p, e.correction_reason);
  }
  p = WriteLengthPrefixed(p, e.account_id);
  *p++ = e.subscription_id ? 1 : 0;
  if (e.subscription_id) p = WriteLengthPrefixed(p, *e.subscription_id);
  p = WriteLengthPrefixed(p, e.product_id);
  p = WriteLengthPrefixed(p, e.meter_id);
  *p++ = e.model_id ? 1 : 0;
  if (e.model_id) p = WriteLengthPrefixed(p, *e.model_id);
  p = WriteFixed64(p, static_cast<uint64_t>(e.timestamp_ms));
  auto q = static_cast<unsigned __int128>(e.quantity);
  p = WriteFixed64(p, static_cast<uint64_t>(q));
  p = WriteFixed64(p, static_cast<uint64_t>(q >> 64));
  p = WriteLengthPrefixed(p, e.unit);
  p = WriteLengthPrefixed(p, e.source);
  p = WriteVarint64(p, dims->size());
  for (const auto& [k, v] : *dims) {
    p = WriteLengthPrefixed(p, k);
    p = WriteLengthPrefixed(p, v);
  }
  return Hash128(std::string_view(buf.data(), static_cast<size_t>(p - buf.data())));
}

void EncodeEventBinary(const Event& e, std::string* dst) {
  uint8_t flags = 0;
  if (e.subscription_id) flags |= kHasSubscription;
  if (e.model_id) flags |= kHasModel;
  if (e.has_correction_ref) flags |= kHasCorrectionRef;
  const uint64_t ts = ZigZagEncode64(e.timestamp_ms);
  const unsigned __int128 q = ZigZagEncode128(e.quantity);
  // flags, kind, timestamp (<= 10), quantity (<= 19), the strings.
  const size_t size = 2 + 10 + 19 + StringFieldsBound(e, e.dimensions);
  const size_t start = dst->size();
  dst->resize(start + size);
  char* p = dst->data() + start;
  *p++ = static_cast<char>(flags);
  *p++ = static_cast<char>(e.kind);
  p = WriteLengthPrefixed(p, e.event_id);
  if (e.has_correction_ref) {
    p = WriteLengthPrefixed(p, e.correction_original_event_id);
    p = WriteLengthPrefixed(p, e.correction_reason);
  }
  p = WriteLengthPrefixed(p, e.account_id);
  if (e.subscription_id) p = WriteLengthPrefixed(p, *e.subscription_id);
  p = WriteLengthPrefixed(p, e.product_id);
  p = WriteLengthPrefixed(p, e.meter_id);
  if (e.model_id) p = WriteLengthPrefixed(p, *e.model_id);
  p = WriteVarint64(p, ts);
  p = WriteVarint128(p, q);
  p = WriteLengthPrefixed(p, e.unit);
  p = WriteLengthPrefixed(p, e.source);
  p = WriteVarint64(p, e.dimensions.size());
  for (const auto& [k, v] : e.dimensions) {
    p = WriteLengthPrefixed(p, k);
    p = WriteLengthPrefixed(p, v);
  }
  dst->resize(static_cast<size_t>(p - dst->data()));
}

// The record's bytes beyond its strings: flags, kind, timestamp (<= 10), quantity (<= 19).
constexpr size_t kRecordFixedBound = 2 + 10 + 19;

namespace {

// EncodeEventBinaryAndDigest with StringFieldsBound(e, e.dimensions) computed by the caller.
char* EncodeFused(const Event& e, size_t strings_bound, char* dst, Digest128* digest) {
  if (!IsSortedUnique(e.dimensions)) {
    std::string record;
    EncodeEventBinary(e, &record);
    *digest = PayloadDigest(e);
    std::memcpy(dst, record.data(), record.size());
    return dst + record.size();
  }
  // The record and the canonical payload list the same strings in the same order; they
  // differ in framing (flags vs presence bytes, varints vs fixed64 numbers, the domain).
  static constexpr std::string_view kDomain = "usagedb.payload.v1";
  const size_t canon_size = kDomain.size() + 1 + 3 + 24 + strings_bound;
  thread_local std::string buf;
  if (buf.size() < canon_size) buf.resize(std::max(canon_size, 2 * buf.size()));
  char* p = dst;
  char* c = WriteBytes(buf.data(), kDomain);
  uint8_t flags = 0;
  if (e.subscription_id) flags |= kHasSubscription;
  if (e.model_id) flags |= kHasModel;
  if (e.has_correction_ref) flags |= kHasCorrectionRef;
  *p++ = static_cast<char>(flags);
  *p++ = static_cast<char>(e.kind);
  *c++ = static_cast<char>(e.kind);
  WriteBoth(&p, &c, e.event_id);
  *c++ = e.has_correction_ref ? 1 : 0;
  if (e.has_correction_ref) {
    WriteBoth(&p, &c, e.correction_original_event_id);
    WriteBoth(&p, &c, e.correction_reason);
  }
  WriteBoth(&p, &c, e.account_id);
  *c++ = e.subscription_id ? 1 : 0;
  if (e.subscription_id) WriteBoth(&p, &c, *e.subscription_id);
  WriteBoth(&p, &c, e.product_id);
  WriteBoth(&p, &c, e.meter_id);
  *c++ = e.model_id ? 1 : 0;
  if (e.model_id) WriteBoth(&p, &c, *e.model_id);
  p = WriteVarint64(p, ZigZagEncode64(e.timestamp_ms));
  p = WriteVarint128(p, ZigZagEncode128(e.quantity));
  c = WriteFixed64(c, static_cast<uint64_t>(e.timestamp_ms));
  const auto q = static_cast<unsigned __int128>(e.quantity);
  c = WriteFixed64(c, static_cast<uint64_t>(q));
  c = WriteFixed64(c, static_cast<uint64_t>(q >> 64));
  WriteBoth(&p, &c, e.unit);
  WriteBoth(&p, &c, e.source);
  p = WriteVarint64(p, e.dimensions.size());
  c = WriteVarint64(c, e.dimensions.size());
  for (const auto& [k, v] : e.dimensions) {
    WriteBoth(&p, &c, k);
    WriteBoth(&p, &c, v);
  }
  *digest = Hash128(std::string_view(buf.data(), static_cast<size_t>(c - buf.data())));
  return p;
}

}  // namespace

size_t EventBinaryBound(const Event& e) {
  return kRecordFixedBound + StringFieldsBound(e, e.dimensions);
}

char* EncodeEventBinaryAndDigest(const Event& e, char* dst, Digest128* digest) {
  return EncodeFused(e, StringFieldsBound(e, e.dimensions), dst, digest);
}

Digest128 EncodeEventBinaryAndDigest(const Event& e, std::string* dst) {
  const size_t strings_bound = StringFieldsBound(e, e.dimensions);
  const size_t start = dst->size();
  dst->resize(start + kRecordFixedBound + strings_bound);
  Digest128 digest;
  char* end = EncodeFused(e, strings_bound, dst->data() + start, &digest);
  dst->resize(static_cast<size_t>(end - dst->data()));
  return digest;
}

bool PeekEventBinary(Decoder* in, EventPeek* out) {
  uint8_t flags, kind;
  if (!in->GetByte(&flags) || (flags & ~kKnownFlags) != 0) return false;
  if (!in->GetByte(&kind) || kind > static_cast<uint8_t>(EventKind::kRetraction)) return false;
  out->kind = static_cast<EventKind>(kind);
  std::string_view skip;
  if (!in->GetLengthPrefixed(&out->event_id)) return false;
  if ((flags & kHasCorrectionRef) &&
      (!in->GetLengthPrefixed(&skip) || !in->GetLengthPrefixed(&skip))) {
    return false;
  }
  if (!in->GetLengthPrefixed(&out->account_id)) return false;
  if ((flags & kHasSubscription) && !in->GetLengthPrefixed(&skip)) return false;
  if (!in->GetLengthPrefixed(&skip) || !in->GetLengthPrefixed(&skip)) return false;
  if ((flags & kHasModel) && !in->GetLengthPrefixed(&skip)) return false;
  uint64_t ts;
  unsigned __int128 q;
  if (!in->GetVarint64(&ts) || !in->GetVarint128(&q)) return false;
  out->timestamp_ms = ZigZagDecode64(ts);
  __int128 quantity = ZigZagDecode128(q);
  if (quantity > kMaxQuantity || quantity < -kMaxQuantity) return false;
  if (!in->GetLengthPrefixed(&skip) || !in->GetLengthPrefixed(&skip)) return false;
  uint64_t n;
  if (!in->GetVarint64(&n) || n > in->remaining() / 2) return false;
  std::string_view prev_key, k, v;
  for (uint64_t i = 0; i < n; ++i) {
    if (!in->GetLengthPrefixed(&k) || !in->GetLengthPrefixed(&v)) return false;
    if (i > 0 && !(prev_key < k)) return false;
    prev_key = k;
  }
  return true;
}

bool DecodeEventBinary(Decoder* in, Event* e) {
  uint8_t flags, kind;
  if (!in->GetByte(&flags) || (flags & ~kKnownFlags) != 0) return false;
  if (!in->GetByte(&kind) || kind > static_cast<uint8_t>(EventKind::kRetraction)) return false;
  auto get = [in](std::string* s) {
    std::string_view v;
    if (!in->GetLengthPrefixed(&v)) return false;
    s->assign(v.data(), v.size());
    return true;
  };
  auto get_opt = [&](bool present, std::optional<std::string>* s) {
    if (!present) {
      s->reset();
      return true;
    }
    s->emplace();
    return get(&**s);
  };
  e->kind = static_cast<EventKind>(kind);
  if (!get(&e->event_id)) return false;
  e->has_correction_ref = (flags & kHasCorrectionRef) != 0;
  if (e->has_correction_ref) {
    if (!get(&e->correction_original_event_id) || !get(&e->correction_reason)) return false;
  } else {
    e->correction_original_event_id.clear();
    e->correction_reason.clear();
  }
  if (!get(&e->account_id) || !get_opt(flags & kHasSubscription, &e->subscription_id) ||
      !get(&e->product_id) || !get(&e->meter_id) || !get_opt(flags & kHasModel, &e->model_id)) {
    return false;
  }
  uint64_t ts;
  unsigned __int128 q;
  if (!in->GetVarint64(&ts) || !in->GetVarint128(&q)) return false;
  e->timestamp_ms = ZigZagDecode64(ts);
  e->quantity = ZigZagDecode128(q);
  if (e->quantity > kMaxQuantity || e->quantity < -kMaxQuantity) return false;
  if (!get(&e->unit) || !get(&e->source)) return false;
  uint64_t n;
  // Each dimension takes at least two bytes, which bounds the reservation by the input.
  if (!in->GetVarint64(&n) || n > in->remaining() / 2) return false;
  e->dimensions.clear();
  e->dimensions.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view k, v;
    if (!in->GetLengthPrefixed(&k) || !in->GetLengthPrefixed(&v)) return false;
    if (!e->dimensions.empty() && !(e->dimensions.back().first < k)) return false;
    e->dimensions.emplace_back(std::string(k), std::string(v));
  }
  return true;
}

namespace {

// A cursor over one record for DecodeEventBinaryView: the one-byte varints that almost every
// length is are read inline; anything longer goes through Decoder.
struct ViewCursor {
  const char* p;
  const char* end;

  [[gnu::noinline]] bool SlowVarint64(uint64_t* v) {
    Decoder d(std::string_view(p, static_cast<size_t>(end - p)));
    if (!d.GetVarint64(v)) return false;
    p = end - d.remaining();
    return true;
  }
  [[gnu::noinline]] bool SlowVarint128(unsigned __int128* v) {
    Decoder d(std::string_view(p, static_cast<size_t>(end - p)));
    if (!d.GetVarint128(v)) return false;
    p = end - d.remaining();
    return true;
  }
  [[gnu::noinline]] bool SlowLp(std::string_view* v) {
    Decoder d(std::string_view(p, static_cast<size_t>(end - p)));
    if (!d.GetLengthPrefixed(v)) return false;
    p = end - d.remaining();
    return true;
  }
  // A value of up to 9 bytes (63 bits: every timestamp and almost every quantity), inline;
  // false (p unchanged) otherwise, and then the slow path decides exactly as Decoder does.
  [[gnu::always_inline]] bool Varint63(uint64_t* v) {
    const char* q = p;
    uint64_t r = 0;
    for (int shift = 0; shift <= 56 && q < end; shift += 7) {
      const uint64_t b = static_cast<uint8_t>(*q++);
      r |= (b & 0x7f) << shift;
      if (b < 0x80) {
        *v = r;
        p = q;
        return true;
      }
    }
    return false;
  }
  [[gnu::always_inline]] bool Varint64(uint64_t* v) {
    if (p < end && static_cast<uint8_t>(*p) < 0x80) {
      *v = static_cast<uint8_t>(*p++);
      return true;
    }
    return SlowVarint64(v);
  }
  [[gnu::always_inline]] bool Lp(std::string_view* v) {
    if (p < end && static_cast<uint8_t>(*p) < 0x80) {
      const size_t n = static_cast<uint8_t>(*p);
      if (n > static_cast<size_t>(end - p - 1)) return false;
      *v = std::string_view(p + 1, n);
      p += 1 + n;
      return true;
    }
    return SlowLp(v);
  }
};

}  // namespace

bool DecodeEventBinaryView(std::string_view record, EventView* e) {
  ViewCursor in{record.data(), record.data() + record.size()};
  if (record.size() < 2) return false;
  const auto flags = static_cast<uint8_t>(*in.p++);
  const auto kind = static_cast<uint8_t>(*in.p++);
  if ((flags & ~kKnownFlags) != 0 || kind > static_cast<uint8_t>(EventKind::kRetraction)) {
    return false;
  }
  auto get_opt = [&in](bool present, std::optional<std::string_view>* s) {
    if (!present) {
      s->reset();
      return true;
    }
    return in.Lp(&s->emplace());
  };
  e->kind = static_cast<EventKind>(kind);
  if (!in.Lp(&e->event_id)) return false;
  e->has_correction_ref = (flags & kHasCorrectionRef) != 0;
  if (e->has_correction_ref) {
    if (!in.Lp(&e->correction_original_event_id) || !in.Lp(&e->correction_reason)) return false;
  } else {
    e->correction_original_event_id = {};
    e->correction_reason = {};
  }
  if (!in.Lp(&e->account_id) || !get_opt(flags & kHasSubscription, &e->subscription_id) ||
      !in.Lp(&e->product_id) || !in.Lp(&e->meter_id) || !get_opt(flags & kHasModel, &e->model_id)) {
    return false;
  }
  uint64_t ts, q64;
  unsigned __int128 q;
  if (!in.Varint63(&ts) && !in.SlowVarint64(&ts)) return false;
  if (in.Varint63(&q64)) {
    q = q64;
  } else if (!in.SlowVarint128(&q)) {
    return false;
  }
  e->timestamp_ms = ZigZagDecode64(ts);
  e->quantity = ZigZagDecode128(q);
  if (e->quantity > kMaxQuantity || e->quantity < -kMaxQuantity) return false;
  if (!in.Lp(&e->unit) || !in.Lp(&e->source)) return false;
  uint64_t n;
  if (!in.Varint64(&n) || n > static_cast<size_t>(in.end - in.p) / 2) return false;
  const char* start = in.p;
  std::string_view prev, k, v;
  for (uint64_t i = 0; i < n; ++i) {
    if (!in.Lp(&k) || !in.Lp(&v)) return false;
    if (i > 0 && !(prev < k)) return false;
    prev = k;
  }
  e->dimensions = DimensionsView(std::string_view(start, static_cast<size_t>(in.p - start)),
                                 static_cast<uint32_t>(n));
  return true;
}

}  // namespace usagedb
