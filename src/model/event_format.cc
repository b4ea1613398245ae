// Canonical forms (SPEC §1), the event JSON output shape (SPEC §3.3), the payload digest and
// the binary event record (docs/parts/model.md "Event record").

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
  thread_local std::string buf;
  buf.clear();
  buf.append("usagedb.payload.v1");
  buf.push_back(static_cast<char>(e.kind));
  PutLengthPrefixed(&buf, e.event_id);
  buf.push_back(e.has_correction_ref ? 1 : 0);
  if (e.has_correction_ref) {
    PutLengthPrefixed(&buf, e.correction_original_event_id);
    PutLengthPrefixed(&buf, e.correction_reason);
  }
  PutLengthPrefixed(&buf, e.account_id);
  buf.push_back(e.subscription_id ? 1 : 0);
  if (e.subscription_id) PutLengthPrefixed(&buf, *e.subscription_id);
  PutLengthPrefixed(&buf, e.product_id);
  PutLengthPrefixed(&buf, e.meter_id);
  buf.push_back(e.model_id ? 1 : 0);
  if (e.model_id) PutLengthPrefixed(&buf, *e.model_id);
  PutFixed64(&buf, static_cast<uint64_t>(e.timestamp_ms));
  auto q = static_cast<unsigned __int128>(e.quantity);
  PutFixed64(&buf, static_cast<uint64_t>(q));
  PutFixed64(&buf, static_cast<uint64_t>(q >> 64));
  PutLengthPrefixed(&buf, e.unit);
  PutLengthPrefixed(&buf, e.source);
  const Dims* dims = &e.dimensions;
  Dims sorted;
  if (!IsSortedUnique(e.dimensions)) {
    sorted = e.dimensions;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    dims = &sorted;
  }
  PutVarint64(&buf, dims->size());
  for (const auto& [k, v] : *dims) {
    PutLengthPrefixed(&buf, k);
    PutLengthPrefixed(&buf, v);
  }
  return Hash128(buf);
}

void EncodeEventBinary(const Event& e, std::string* dst) {
  uint8_t flags = 0;
  if (e.subscription_id) flags |= kHasSubscription;
  if (e.model_id) flags |= kHasModel;
  if (e.has_correction_ref) flags |= kHasCorrectionRef;
  dst->push_back(static_cast<char>(flags));
  dst->push_back(static_cast<char>(e.kind));
  PutLengthPrefixed(dst, e.event_id);
  if (e.has_correction_ref) {
    PutLengthPrefixed(dst, e.correction_original_event_id);
    PutLengthPrefixed(dst, e.correction_reason);
  }
  PutLengthPrefixed(dst, e.account_id);
  if (e.subscription_id) PutLengthPrefixed(dst, *e.subscription_id);
  PutLengthPrefixed(dst, e.product_id);
  PutLengthPrefixed(dst, e.meter_id);
  if (e.model_id) PutLengthPrefixed(dst, *e.model_id);
  PutVarint64(dst, ZigZagEncode64(e.timestamp_ms));
  PutVarint128(dst, ZigZagEncode128(e.quantity));
  PutLengthPrefixed(dst, e.unit);
  PutLengthPrefixed(dst, e.source);
  PutVarint64(dst, e.dimensions.size());
  for (const auto& [k, v] : e.dimensions) {
    PutLengthPrefixed(dst, k);
    PutLengthPrefixed(dst, v);
  }
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
  uint64_t ts;
  unsigned __int128 q;
  if (!in.Varint64(&ts) || !in.SlowVarint128(&q)) {
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
