// JSON decoding of events (SPEC §1, §2.3) with simdjson On-Demand.
//
// Why On-Demand: it parses straight into the Event without building a tape, and
// raw_json_token() gives the exact digits of quantities beyond 64 bits. Its price is that
// values nobody reads are only skipped, not validated; so the decoder reads or walks every
// value of every event (Walk), which keeps "not JSON" deterministic: a body with a syntax
// error anywhere fails the batch, wherever the error sits.
//
// Invalid UTF-8 is a per-event rejection (SPEC §1), but simdjson refuses a whole document
// that is not UTF-8. When that happens the body is copied with every invalid byte replaced
// by U+FFFD, and the offsets of the replacements are remembered; a string whose raw bytes
// cover a replacement rejects its event with "<field>: invalid UTF-8". That is the slow path,
// taken only by bodies that are invalid UTF-8.

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "model/event_codec.h"
#include "model/event_rules.h"
#include "util/int128.h"

namespace usagedb {
namespace {

namespace od = simdjson::ondemand;
using model_internal::EqualsLiteral;
using model_internal::Printable;
using simdjson::error_code;

constexpr int kMaxNestingDepth = 64;  // inside one event
// Bodies up to this size reuse a thread-local parser and buffer; larger ones get their own,
// freed when the call returns (a simdjson parser holds ~6 bytes per input byte).
constexpr size_t kThreadLocalParserBytes = 1 << 20;

// Offsets (into the parsed buffer) of U+FFFD sequences inserted in place of invalid bytes.
struct Utf8Repair {
  const char* base = nullptr;
  std::vector<size_t> offsets;  // sorted

  // True when [p, p + n) contains an inserted replacement.
  bool Covers(const char* p, size_t n) const {
    size_t begin = static_cast<size_t>(p - base);
    auto it = std::lower_bound(offsets.begin(), offsets.end(), begin);
    return it != offsets.end() && *it < begin + n;
  }
};

// Copies `in` into *buf (padded) with every byte that is not part of a valid UTF-8 sequence
// replaced by U+FFFD; records the replacement offsets.
void RepairUtf8(std::string_view in, std::string* buf, std::vector<size_t>* offsets) {
  buf->clear();
  buf->reserve(in.size() + kJsonPadding);
  size_t i = 0;
  while (i < in.size()) {
    size_t run = i;
    // Advance over valid sequences.
    while (i < in.size()) {
      auto b = static_cast<unsigned char>(in[i]);
      if (b < 0x80) {
        ++i;
        continue;
      }
      size_t n = (b >= 0xF0) ? 4 : (b >= 0xE0) ? 3 : 2;
      if (i + n > in.size() || !model_internal::IsValidUtf8(in.substr(i, n))) break;
      i += n;
    }
    buf->append(in.data() + run, i - run);
    if (i < in.size()) {
      offsets->push_back(buf->size());
      buf->append("\xEF\xBF\xBD");
      ++i;
    }
  }
  buf->append(kJsonPadding, ' ');
  buf->resize(buf->size() - kJsonPadding);  // keep capacity: the padding stays readable
}

std::string_view TrimJsonWhitespace(std::string_view s) {
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

enum class NumberForm { kInvalid, kInteger, kNonInteger };

// Classifies a raw JSON number token (RFC 8259 grammar). For integers, *digits gets the
// optional minus sign and the digits.
NumberForm ClassifyNumber(std::string_view tok) {
  size_t i = 0, n = tok.size();
  if (i < n && tok[i] == '-') ++i;
  if (i >= n) return NumberForm::kInvalid;
  if (tok[i] == '0') {
    ++i;
  } else if (tok[i] >= '1' && tok[i] <= '9') {
    while (i < n && tok[i] >= '0' && tok[i] <= '9') ++i;
  } else {
    return NumberForm::kInvalid;
  }
  bool integer = true;
  if (i < n && tok[i] == '.') {
    integer = false;
    ++i;
    size_t start = i;
    while (i < n && tok[i] >= '0' && tok[i] <= '9') ++i;
    if (i == start) return NumberForm::kInvalid;
  }
  if (i < n && (tok[i] == 'e' || tok[i] == 'E')) {
    integer = false;
    ++i;
    if (i < n && (tok[i] == '+' || tok[i] == '-')) ++i;
    size_t start = i;
    while (i < n && tok[i] >= '0' && tok[i] <= '9') ++i;
    if (i == start) return NumberForm::kInvalid;
  }
  if (i != n) return NumberForm::kInvalid;
  return integer ? NumberForm::kInteger : NumberForm::kNonInteger;
}

// True when every backslash escape in the raw string token is syntactically valid JSON.
// simdjson reports both bad escapes and unpaired surrogate escapes as STRING_ERROR; the
// former are a syntax error (invalid JSON), the latter invalid Unicode (a rejected event).
bool EscapesAreWellFormed(const char* p, const char* end) {
  auto is_hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  for (; p < end && *p != '"'; ++p) {
    if (*p != '\\') continue;
    if (++p >= end) return false;
    switch (*p) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't':
        break;
      case 'u':
        if (end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4])) {
          return false;
        }
        p += 4;
        break;
      default:
        return false;
    }
  }
  return true;
}

// Field ids of the top-level event object; the bit (1 << id) marks a field seen.
enum FieldId : int {
  kEventId,
  kKind,
  kCorrectionRef,
  kAccountId,
  kSubscriptionId,
  kProductId,
  kMeterId,
  kModelId,
  kTimestampMs,
  kQuantity,
  kUnit,
  kSource,
  kDimensions,
  kIngestedAtMs,
  kUnknown
};

FieldId LookupField(std::string_view k) {
  switch (k.size()) {
    case 4:
      if (EqualsLiteral(k, "kind")) return kKind;
      if (EqualsLiteral(k, "unit")) return kUnit;
      break;
    case 6:
      if (EqualsLiteral(k, "source")) return kSource;
      break;
    case 8:
      if (EqualsLiteral(k, "event_id")) return kEventId;
      if (EqualsLiteral(k, "meter_id")) return kMeterId;
      if (EqualsLiteral(k, "model_id")) return kModelId;
      if (EqualsLiteral(k, "quantity")) return kQuantity;
      break;
    case 10:
      if (EqualsLiteral(k, "account_id")) return kAccountId;
      if (EqualsLiteral(k, "product_id")) return kProductId;
      if (EqualsLiteral(k, "dimensions")) return kDimensions;
      break;
    case 12:
      if (EqualsLiteral(k, "timestamp_ms")) return kTimestampMs;
      break;
    case 14:
      if (EqualsLiteral(k, "correction_ref")) return kCorrectionRef;
      if (EqualsLiteral(k, "ingested_at_ms")) return kIngestedAtMs;
      break;
    case 15:
      if (EqualsLiteral(k, "subscription_id")) return kSubscriptionId;
      break;
    default:
      break;
  }
  return kUnknown;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// "prefix" + name, with name escaped when it comes from the input (a non-empty prefix).
std::string FieldName(std::string_view prefix, std::string_view name) {
  if (prefix.empty()) return std::string(name);
  return std::string(prefix) + Printable(name);
}

#define SJ_RETURN_IF_ERROR(expr)            \
  do {                                      \
    error_code _e = (expr);                 \
    if (_e != simdjson::SUCCESS) return _e; \
  } while (0)

// Decodes event objects. JSON syntax errors are returned as simdjson error codes (the caller
// fails the batch or rejects the NDJSON line); rule violations become out->reject_reason
// (the first one found wins) and decoding goes on so that the rest is still validated.
class EventReader {
 public:
  explicit EventReader(const Utf8Repair* repair) : repair_(repair) {}

  error_code ReadObject(od::object obj, DecodedEvent* out);
  // Any JSON value in an events array: objects are events, anything else is rejected.
  error_code ReadElement(od::value v, DecodedEvent* out);

 private:
  void Reject(std::string reason) {
    if (out_->reject_reason.empty()) out_->reject_reason = std::move(reason);
  }

  // Reads a key. *ok = false when the key is not valid Unicode (the event is rejected).
  error_code ReadKey(od::field& f, std::string_view ctx, std::string_view* key, bool* ok);
  // Reads a value of type string. *ok = false when it is not valid Unicode; the reason names
  // the field `prefix` + `name` (joined only then: this is the hot path).
  error_code ReadString(od::value& v, std::string_view field, std::string_view* s, bool* ok) {
    return ReadString(v, "", field, s, ok);
  }
  error_code ReadString(od::value& v, std::string_view prefix, std::string_view name,
                        std::string_view* s, bool* ok);
  // Validates any value fully; `field` names it in reasons.
  error_code Walk(od::value v, std::string_view field, int depth);

  error_code ReadRequiredString(od::value& v, const char* field, std::string* dst);
  error_code ReadOptionalString(od::value& v, const char* field, std::optional<std::string>* dst);
  error_code ReadKind(od::value& v);
  error_code ReadCorrectionRef(od::value& v);
  error_code ReadTimestamp(od::value& v);
  error_code ReadQuantity(od::value& v);
  error_code ReadDimensions(od::value& v);
  error_code ReadDimensionPairs(od::object obj, std::string_view ctx);

  const Utf8Repair* repair_;
  DecodedEvent* out_ = nullptr;
};

error_code EventReader::ReadKey(od::field& f, std::string_view ctx, std::string_view* key,
                                bool* ok) {
  *ok = true;
  const char* raw = f.key().raw();  // just after the opening quote
  error_code e = f.unescaped_key().get(*key);
  if (e == simdjson::STRING_ERROR) {
    // The key's raw bytes end at the first unescaped quote; padding guarantees one exists
    // (stage 1 has matched every string).
    const char* end = raw;
    while (*end != '"') end += (*end == '\\') ? 2 : 1;
    if (!EscapesAreWellFormed(raw, end)) return e;
    *ok = false;
    Reject(std::string(ctx.empty() ? "" : ctx) + (ctx.empty() ? "" : ": ") +
           "invalid UTF-8 in a key (unpaired surrogate escape)");
    return simdjson::SUCCESS;
  }
  SJ_RETURN_IF_ERROR(e);
  if (repair_ != nullptr) {
    const char* end = raw;
    while (*end != '"') end += (*end == '\\') ? 2 : 1;
    if (repair_->Covers(raw, static_cast<size_t>(end - raw))) {
      *ok = false;
      Reject(std::string(ctx) + (ctx.empty() ? "" : ": ") + "invalid UTF-8 in a key");
    }
  }
  return simdjson::SUCCESS;
}

error_code EventReader::ReadString(od::value& v, std::string_view prefix, std::string_view name,
                                   std::string_view* s, bool* ok) {
  *ok = true;
  error_code e = v.get_string().get(*s);
  if (e == simdjson::STRING_ERROR) {
    std::string_view raw = v.raw_json_token();
    if (!raw.empty() && EscapesAreWellFormed(raw.data() + 1, raw.data() + raw.size())) {
      *ok = false;
      Reject(FieldName(prefix, name) + ": invalid UTF-8 (unpaired surrogate escape)");
      return simdjson::SUCCESS;
    }
  }
  SJ_RETURN_IF_ERROR(e);
  if (repair_ != nullptr) {
    std::string_view raw = v.raw_json_token();
    if (repair_->Covers(raw.data(), raw.size())) {
      *ok = false;
      Reject(FieldName(prefix, name) + ": invalid UTF-8");
    }
  }
  return simdjson::SUCCESS;
}

error_code EventReader::Walk(od::value v, std::string_view field, int depth) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  switch (type) {
    case od::json_type::object:
    case od::json_type::array:
      if (depth >= kMaxNestingDepth) {
        // Left unread: On-Demand skips it without recursion.
        Reject(std::string(field) + ": nested deeper than " + std::to_string(kMaxNestingDepth) +
               " levels");
        return simdjson::SUCCESS;
      }
      if (type == od::json_type::array) {
        od::array arr;
        SJ_RETURN_IF_ERROR(v.get_array().get(arr));
        for (auto elem : arr) {
          od::value ev;
          SJ_RETURN_IF_ERROR(elem.get(ev));
          SJ_RETURN_IF_ERROR(Walk(ev, field, depth + 1));
        }
        return simdjson::SUCCESS;
      } else {
        od::object obj;
        SJ_RETURN_IF_ERROR(v.get_object().get(obj));
        std::vector<std::string> keys;
        for (auto fr : obj) {
          od::field f;
          SJ_RETURN_IF_ERROR(std::move(fr).get(f));
          std::string_view key;
          bool ok;
          SJ_RETURN_IF_ERROR(ReadKey(f, field, &key, &ok));
          if (ok) keys.emplace_back(key);
          SJ_RETURN_IF_ERROR(Walk(f.value(), field, depth + 1));
        }
        std::sort(keys.begin(), keys.end());
        auto dup = std::adjacent_find(keys.begin(), keys.end());
        if (dup != keys.end()) Reject(std::string(field) + ": duplicate key: " + Printable(*dup));
        return simdjson::SUCCESS;
      }
    case od::json_type::string: {
      std::string_view s;
      bool ok;
      return ReadString(v, field, &s, &ok);
    }
    case od::json_type::number:
      if (ClassifyNumber(TrimJsonWhitespace(v.raw_json_token())) == NumberForm::kInvalid) {
        return simdjson::NUMBER_ERROR;
      }
      return simdjson::SUCCESS;
    case od::json_type::boolean: {
      bool b;
      return v.get_bool().get(b);
    }
    case od::json_type::null: {
      bool is_null;
      SJ_RETURN_IF_ERROR(v.is_null().get(is_null));
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::TAPE_ERROR;
}

error_code EventReader::ReadRequiredString(od::value& v, const char* field, std::string* dst) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type != od::json_type::string) {
    Reject(std::string(field) + ": must be a string");
    return Walk(v, field, 1);
  }
  std::string_view s;
  bool ok;
  SJ_RETURN_IF_ERROR(ReadString(v, field, &s, &ok));
  dst->assign(s.data(), s.size());
  return simdjson::SUCCESS;
}

error_code EventReader::ReadOptionalString(od::value& v, const char* field,
                                           std::optional<std::string>* dst) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type == od::json_type::null) {
    dst->reset();
    return Walk(v, field, 1);
  }
  if (type != od::json_type::string) {
    Reject(std::string(field) + ": must be a string or null");
    return Walk(v, field, 1);
  }
  std::string_view s;
  bool ok;
  SJ_RETURN_IF_ERROR(ReadString(v, field, &s, &ok));
  dst->emplace(s.data(), s.size());
  return simdjson::SUCCESS;
}

error_code EventReader::ReadKind(od::value& v) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type != od::json_type::string) {
    Reject("kind: must be a string");
    return Walk(v, "kind", 1);
  }
  std::string_view s;
  bool ok;
  SJ_RETURN_IF_ERROR(ReadString(v, "kind", &s, &ok));
  if (!ok) return simdjson::SUCCESS;
  if (EqualsIgnoreCase(s, "usage")) {
    out_->event.kind = EventKind::kUsage;
  } else if (EqualsIgnoreCase(s, "correction")) {
    out_->event.kind = EventKind::kCorrection;
  } else if (EqualsIgnoreCase(s, "retraction")) {
    out_->event.kind = EventKind::kRetraction;
  } else {
    Reject("kind: must be Usage, Correction or Retraction (got \"" + Printable(s) + "\")");
  }
  return simdjson::SUCCESS;
}

error_code EventReader::ReadCorrectionRef(od::value& v) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  Event& e = out_->event;
  if (type == od::json_type::null) {
    e.has_correction_ref = false;
    return Walk(v, "correction_ref", 1);
  }
  if (type != od::json_type::object) {
    Reject("correction_ref: must be an object or null");
    return Walk(v, "correction_ref", 1);
  }
  e.has_correction_ref = true;
  od::object obj;
  SJ_RETURN_IF_ERROR(v.get_object().get(obj));
  bool seen_original = false, seen_reason = false;
  for (auto fr : obj) {
    od::field f;
    SJ_RETURN_IF_ERROR(std::move(fr).get(f));
    std::string_view key;
    bool ok;
    SJ_RETURN_IF_ERROR(ReadKey(f, "correction_ref", &key, &ok));
    od::value fv = f.value();
    if (!ok) {
      SJ_RETURN_IF_ERROR(Walk(fv, "correction_ref", 2));
      continue;
    }
    bool is_original = key == "original_event_id";
    bool is_reason = key == "reason";
    if (!is_original && !is_reason) {
      Reject("correction_ref: unknown field: " + Printable(key));
      SJ_RETURN_IF_ERROR(Walk(fv, "correction_ref", 2));
      continue;
    }
    bool& seen = is_original ? seen_original : seen_reason;
    if (seen) {
      Reject("correction_ref: duplicate key: " + std::string(key));
      SJ_RETURN_IF_ERROR(Walk(fv, "correction_ref", 2));
      continue;
    }
    seen = true;
    if (is_original) {
      SJ_RETURN_IF_ERROR(ReadRequiredString(fv, "correction_ref.original_event_id",
                                            &e.correction_original_event_id));
    } else {
      std::optional<std::string> reason;
      SJ_RETURN_IF_ERROR(ReadOptionalString(fv, "correction_ref.reason", &reason));
      e.correction_reason = reason ? std::move(*reason) : std::string();
    }
  }
  if (!seen_original) Reject("correction_ref.original_event_id: required");
  return simdjson::SUCCESS;
}

error_code EventReader::ReadTimestamp(od::value& v) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type != od::json_type::number) {
    Reject("timestamp_ms: must be an integer");
    return Walk(v, "timestamp_ms", 1);
  }
  std::string_view tok = TrimJsonWhitespace(v.raw_json_token());
  NumberForm form = ClassifyNumber(tok);
  if (form == NumberForm::kInvalid) return simdjson::NUMBER_ERROR;
  if (form == NumberForm::kNonInteger) {
    Reject("timestamp_ms: must be an integer literal (no fraction or exponent)");
    return simdjson::SUCCESS;
  }
  int64_t ts;
  if (v.get_int64().get(ts) != simdjson::SUCCESS) {
    Reject("timestamp_ms: out of the signed 64-bit range");
    return simdjson::SUCCESS;
  }
  out_->event.timestamp_ms = ts;
  return simdjson::SUCCESS;
}

error_code EventReader::ReadQuantity(od::value& v) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type == od::json_type::number) {
    std::string_view tok = TrimJsonWhitespace(v.raw_json_token());
    NumberForm form = ClassifyNumber(tok);
    if (form == NumberForm::kInvalid) return simdjson::NUMBER_ERROR;
    if (form == NumberForm::kNonInteger) {
      Reject("quantity: must be an integer literal (no fraction or exponent)");
      return simdjson::SUCCESS;
    }
    auto q = ParseQuantity(tok);
    if (!q) {
      Reject("quantity: must have at most 38 digits (|quantity| <= 10^38 - 1)");
      return simdjson::SUCCESS;
    }
    out_->event.quantity = *q;
    return simdjson::SUCCESS;
  }
  if (type == od::json_type::string) {
    std::string_view s;
    bool ok;
    SJ_RETURN_IF_ERROR(ReadString(v, "quantity", &s, &ok));
    if (!ok) return simdjson::SUCCESS;
    auto q = ParseQuantity(s);
    if (!q) {
      Reject("quantity: a string quantity must match -?[0-9]{1,38} (got \"" + Printable(s) + "\")");
      return simdjson::SUCCESS;
    }
    out_->event.quantity = *q;
    return simdjson::SUCCESS;
  }
  Reject("quantity: must be an integer or a string holding a decimal integer");
  return Walk(v, "quantity", 1);
}

error_code EventReader::ReadDimensionPairs(od::object obj, std::string_view ctx) {
  auto& dims = out_->event.dimensions;
  for (auto fr : obj) {
    od::field f;
    SJ_RETURN_IF_ERROR(std::move(fr).get(f));
    std::string_view key;
    bool ok;
    SJ_RETURN_IF_ERROR(ReadKey(f, ctx, &key, &ok));
    od::value fv = f.value();
    if (!ok) {
      SJ_RETURN_IF_ERROR(Walk(fv, ctx, 2));
      continue;
    }
    std::string key_copy(key);  // the key view dies at the next parse step
    od::json_type type;
    SJ_RETURN_IF_ERROR(fv.type().get(type));
    if (type != od::json_type::string) {
      Reject("dimensions." + Printable(key_copy) + ": value must be a string");
      SJ_RETURN_IF_ERROR(Walk(fv, "dimensions." + Printable(key_copy), 2));
      continue;
    }
    std::string_view value;
    SJ_RETURN_IF_ERROR(ReadString(fv, "dimensions.", key_copy, &value, &ok));
    if (dims.size() > model_internal::kMaxDimensions) continue;  // already rejected
    dims.emplace_back(std::move(key_copy), std::string(value));
    if (dims.size() > model_internal::kMaxDimensions) Reject("dimensions: at most 16 keys");
  }
  return simdjson::SUCCESS;
}

error_code EventReader::ReadDimensions(od::value& v) {
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type == od::json_type::null) return Walk(v, "dimensions", 1);
  if (type != od::json_type::object) {
    Reject("dimensions: must be an object or null");
    return Walk(v, "dimensions", 1);
  }
  od::object obj;
  SJ_RETURN_IF_ERROR(v.get_object().get(obj));
  // The wrapped form {"inner": {...}}: recognised when "inner" is the sole key and its value
  // an object. Streaming, that is: the first key is "inner" with an object value, and no key
  // follows; a later key turns "inner" into an ordinary dimension whose value is not a string.
  bool first = true;
  bool wrapped = false;
  auto& dims = out_->event.dimensions;
  for (auto fr : obj) {
    od::field f;
    SJ_RETURN_IF_ERROR(std::move(fr).get(f));
    std::string_view key;
    bool ok;
    SJ_RETURN_IF_ERROR(ReadKey(f, "dimensions", &key, &ok));
    od::value fv = f.value();
    if (!ok) {
      SJ_RETURN_IF_ERROR(Walk(fv, "dimensions", 2));
      first = false;
      continue;
    }
    std::string key_copy(key);
    od::json_type vt;
    SJ_RETURN_IF_ERROR(fv.type().get(vt));
    if (first && key_copy == "inner" && vt == od::json_type::object) {
      first = false;
      wrapped = true;
      od::object inner;
      SJ_RETURN_IF_ERROR(fv.get_object().get(inner));
      SJ_RETURN_IF_ERROR(ReadDimensionPairs(inner, "dimensions.inner"));
      continue;
    }
    if (wrapped) {
      Reject(
          "dimensions.inner: value must be a string (the wrapped form needs inner as the "
          "sole key)");
      wrapped = false;
    }
    first = false;
    if (vt != od::json_type::string) {
      Reject("dimensions." + Printable(key_copy) + ": value must be a string");
      SJ_RETURN_IF_ERROR(Walk(fv, "dimensions." + Printable(key_copy), 2));
      continue;
    }
    std::string_view value;
    SJ_RETURN_IF_ERROR(ReadString(fv, "dimensions.", key_copy, &value, &ok));
    if (dims.size() > model_internal::kMaxDimensions) continue;
    dims.emplace_back(std::move(key_copy), std::string(value));
    if (dims.size() > model_internal::kMaxDimensions) Reject("dimensions: at most 16 keys");
  }
  return simdjson::SUCCESS;
}

error_code EventReader::ReadObject(od::object obj, DecodedEvent* out) {
  out_ = out;
  Event& e = out->event;
  uint32_t seen = 0;
  for (auto fr : obj) {
    od::field f;
    SJ_RETURN_IF_ERROR(std::move(fr).get(f));
    std::string_view key;
    bool ok;
    SJ_RETURN_IF_ERROR(ReadKey(f, "", &key, &ok));
    od::value v = f.value();
    if (!ok) {
      SJ_RETURN_IF_ERROR(Walk(v, "event", 1));
      continue;
    }
    FieldId id = LookupField(key);
    if (id == kUnknown) {
      std::string name = Printable(key);
      Reject("unknown field: " + name);
      SJ_RETURN_IF_ERROR(Walk(v, name, 1));
      continue;
    }
    if (seen & (1u << id)) {
      std::string name(key);
      Reject("duplicate key: " + name);
      SJ_RETURN_IF_ERROR(Walk(v, name, 1));
      continue;
    }
    seen |= 1u << id;
    switch (id) {
      case kEventId:
        SJ_RETURN_IF_ERROR(ReadRequiredString(v, "event_id", &e.event_id));
        if ((seen & (1u << kEventId)) && out->event_id_for_report.empty()) {
          out->event_id_for_report = e.event_id;
        }
        break;
      case kKind:
        SJ_RETURN_IF_ERROR(ReadKind(v));
        break;
      case kCorrectionRef:
        SJ_RETURN_IF_ERROR(ReadCorrectionRef(v));
        break;
      case kAccountId:
        SJ_RETURN_IF_ERROR(ReadRequiredString(v, "account_id", &e.account_id));
        break;
      case kSubscriptionId:
        SJ_RETURN_IF_ERROR(ReadOptionalString(v, "subscription_id", &e.subscription_id));
        break;
      case kProductId:
        SJ_RETURN_IF_ERROR(ReadRequiredString(v, "product_id", &e.product_id));
        break;
      case kMeterId:
        SJ_RETURN_IF_ERROR(ReadRequiredString(v, "meter_id", &e.meter_id));
        break;
      case kModelId:
        SJ_RETURN_IF_ERROR(ReadOptionalString(v, "model_id", &e.model_id));
        break;
      case kTimestampMs:
        SJ_RETURN_IF_ERROR(ReadTimestamp(v));
        break;
      case kQuantity:
        SJ_RETURN_IF_ERROR(ReadQuantity(v));
        break;
      case kUnit:
        SJ_RETURN_IF_ERROR(ReadRequiredString(v, "unit", &e.unit));
        break;
      case kSource:
        SJ_RETURN_IF_ERROR(ReadRequiredString(v, "source", &e.source));
        break;
      case kDimensions:
        SJ_RETURN_IF_ERROR(ReadDimensions(v));
        break;
      case kIngestedAtMs:
        SJ_RETURN_IF_ERROR(Walk(v, "ingested_at_ms", 1));
        break;
      case kUnknown:
        break;
    }
  }
  if (!out->ok()) return simdjson::SUCCESS;

  static constexpr std::pair<FieldId, const char*> kRequired[] = {{kEventId, "event_id"},
                                                                  {kAccountId, "account_id"},
                                                                  {kProductId, "product_id"},
                                                                  {kMeterId, "meter_id"},
                                                                  {kTimestampMs, "timestamp_ms"},
                                                                  {kQuantity, "quantity"},
                                                                  {kUnit, "unit"},
                                                                  {kSource, "source"}};
  for (const auto& [id, name] : kRequired) {
    if (!(seen & (1u << id))) {
      Reject(std::string(name) + ": required");
      return simdjson::SUCCESS;
    }
  }
  auto& dims = e.dimensions;
  if (dims.size() > 1) {
    std::sort(dims.begin(), dims.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < dims.size(); ++i) {
      if (dims[i].first == dims[i - 1].first) {
        Reject("dimensions: duplicate key: " + Printable(dims[i].first));
        return simdjson::SUCCESS;
      }
    }
  }
  std::string reason = model_internal::CheckEventRules(e, /*check_utf8=*/false);
  if (!reason.empty()) Reject(std::move(reason));
  return simdjson::SUCCESS;
}

error_code EventReader::ReadElement(od::value v, DecodedEvent* out) {
  out_ = out;
  od::json_type type;
  SJ_RETURN_IF_ERROR(v.type().get(type));
  if (type != od::json_type::object) {
    Reject("event: must be a JSON object");
    return Walk(v, "event", 1);
  }
  od::object obj;
  SJ_RETURN_IF_ERROR(v.get_object().get(obj));
  return ReadObject(obj, out);
}

std::string InvalidJson(error_code e) {
  return std::string("invalid JSON: ") + simdjson::error_message(e);
}

// A padded copy of (or view on) a body, and a parser sized for it.
class ParseContext {
 public:
  // REQUIRES: body outlives this object.
  ParseContext(std::string_view body, bool body_is_padded) {
    bool small = body.size() <= kThreadLocalParserBytes;
    thread_local od::parser tl_parser;
    thread_local std::string tl_buf;
    if (small) {
      parser_ = &tl_parser;
    } else {
      own_parser_ = std::make_unique<od::parser>();
      parser_ = own_parser_.get();
    }
    if (body_is_padded) {
      data_ = body.data();
    } else {
      std::string* buf = small ? &tl_buf : &own_buf_;
      // One copy; the padding bytes stay inside the reserved capacity.
      buf->reserve(body.size() + kJsonPadding);
      buf->assign(body.data(), body.size());
      data_ = buf->data();
    }
    size_ = body.size();
  }

  od::parser* parser() { return parser_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }

  // Re-points this context at a UTF-8-repaired copy of [p, p + n).
  const Utf8Repair* Repair(const char* p, size_t n) {
    repair_.offsets.clear();
    RepairUtf8(std::string_view(p, n), &repair_buf_, &repair_.offsets);
    repair_.base = repair_buf_.data();
    return &repair_;
  }
  std::string_view repaired() const { return repair_buf_; }

 private:
  od::parser* parser_ = nullptr;
  std::unique_ptr<od::parser> own_parser_;
  std::string own_buf_;
  const char* data_ = nullptr;
  size_t size_ = 0;
  std::string repair_buf_;
  Utf8Repair repair_;
};

// Decodes one document that must be a single event object (an NDJSON line or a lone event).
// REQUIRES: kJsonPadding readable bytes after p + n.
void DecodeOneDocument(ParseContext* ctx, const char* p, size_t n, DecodedEvent* out) {
  const Utf8Repair* repair = nullptr;
  od::document doc;
  error_code e = ctx->parser()->iterate(p, n, n + kJsonPadding).get(doc);
  if (e == simdjson::UTF8_ERROR) {
    repair = ctx->Repair(p, n);
    std::string_view r = ctx->repaired();
    e = ctx->parser()->iterate(r.data(), r.size(), r.size() + kJsonPadding).get(doc);
  }
  if (e != simdjson::SUCCESS) {
    out->reject_reason = InvalidJson(e);
    return;
  }
  od::object obj;
  e = doc.get_object().get(obj);
  if (e != simdjson::SUCCESS) {
    out->reject_reason = e == simdjson::INCORRECT_TYPE
                             ? std::string("invalid JSON: an event must be a JSON object")
                             : InvalidJson(e);
    return;
  }
  EventReader reader(repair);
  e = reader.ReadObject(obj, out);
  if (e == simdjson::SUCCESS && doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    e = simdjson::TRAILING_CONTENT;
  }
  if (e != simdjson::SUCCESS) {
    DecodedEvent failed;
    failed.event_id_for_report = std::move(out->event_id_for_report);
    failed.reject_reason = InvalidJson(e);
    *out = std::move(failed);
  }
}

Status TooManyEvents(size_t max, std::vector<DecodedEvent>* out) {
  out->clear();
  return Status::Aborted("too_many_events: more than " + std::to_string(max) +
                         " events in one batch");
}

// Validates a document whose root is not an object, so that "not JSON" is told apart from
// "JSON but not an object".
error_code ValidateRootNonObject(od::document& doc, od::json_type type, const char* end,
                                 const Utf8Repair* repair) {
  switch (type) {
    case od::json_type::array: {
      od::value v;
      SJ_RETURN_IF_ERROR(doc.get_value().get(v));
      DecodedEvent scratch;
      SJ_RETURN_IF_ERROR(EventReader(repair).ReadElement(v, &scratch));
      break;
    }
    case od::json_type::string: {
      std::string_view s;
      SJ_RETURN_IF_ERROR(doc.get_string().get(s));
      break;
    }
    case od::json_type::number: {
      std::string_view tok;
      SJ_RETURN_IF_ERROR(doc.raw_json_token().get(tok));
      if (ClassifyNumber(TrimJsonWhitespace(tok)) == NumberForm::kInvalid) {
        return simdjson::NUMBER_ERROR;
      }
      // A raw token runs to the next token, so anything after it is trailing content.
      return tok.data() + tok.size() == end ? simdjson::SUCCESS : simdjson::TRAILING_CONTENT;
    }
    case od::json_type::boolean: {
      bool b;
      SJ_RETURN_IF_ERROR(doc.get_bool().get(b));
      break;
    }
    case od::json_type::null: {
      bool is_null;
      SJ_RETURN_IF_ERROR(doc.is_null().get(is_null));
      if (!is_null) return simdjson::N_ATOM_ERROR;
      break;
    }
    default:
      return simdjson::TAPE_ERROR;
  }
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    return simdjson::TRAILING_CONTENT;
  }
  return simdjson::SUCCESS;
}

// Decodes `{"events": [...]}` from a padded buffer. Returns the first JSON syntax error, or
// SUCCESS with *status set for a body that is JSON but not a usable batch.
error_code DecodeBatchDocument(od::parser* parser, const char* p, size_t n,
                               const Utf8Repair* repair, const BatchDecodeOptions& options,
                               std::vector<DecodedEvent>* out, Status* status) {
  od::document doc;
  SJ_RETURN_IF_ERROR(parser->iterate(p, n, n + kJsonPadding).get(doc));
  od::json_type type;
  SJ_RETURN_IF_ERROR(doc.type().get(type));
  if (type != od::json_type::object) {
    SJ_RETURN_IF_ERROR(ValidateRootNonObject(doc, type, p + n, repair));
    *status = Status::InvalidArgument("request body must be a JSON object with an events array");
    return simdjson::SUCCESS;
  }
  od::object root;
  SJ_RETURN_IF_ERROR(doc.get_object().get(root));
  bool seen_events = false;
  std::vector<std::string> unknown;
  EventReader reader(repair);
  DecodedEvent scratch;  // for walking values of unusable top-level keys
  for (auto fr : root) {
    od::field f;
    SJ_RETURN_IF_ERROR(std::move(fr).get(f));
    std::string_view key;
    SJ_RETURN_IF_ERROR(f.unescaped_key().get(key));
    od::value v = f.value();
    if (key != "events" || seen_events) {
      unknown.push_back(Printable(key));
      SJ_RETURN_IF_ERROR(reader.ReadElement(v, &scratch));
      continue;
    }
    seen_events = true;
    SJ_RETURN_IF_ERROR(v.type().get(type));
    if (type != od::json_type::array) {
      *status = Status::InvalidArgument("events: must be an array");
      SJ_RETURN_IF_ERROR(reader.ReadElement(v, &scratch));
      continue;
    }
    od::array arr;
    SJ_RETURN_IF_ERROR(v.get_array().get(arr));
    for (auto er : arr) {
      od::value ev;
      SJ_RETURN_IF_ERROR(er.get(ev));
      if (out->size() >= options.max_events) {
        *status = TooManyEvents(options.max_events, out);
        return simdjson::SUCCESS;
      }
      out->emplace_back();
      SJ_RETURN_IF_ERROR(reader.ReadElement(ev, &out->back()));
    }
  }
  if (doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
    return simdjson::TRAILING_CONTENT;
  }
  if (!status->ok()) return simdjson::SUCCESS;
  if (!unknown.empty()) {
    std::string names;
    for (const auto& u : unknown) {
      if (!names.empty()) names += ", ";
      names += u;
    }
    *status = Status::InvalidArgument("request body: unknown or repeated field(s): " + names);
  } else if (!seen_events) {
    *status = Status::InvalidArgument("request body: missing events array");
  }
  return simdjson::SUCCESS;
}

}  // namespace

DecodedEvent DecodeEventJson(std::string_view json_object) {
  ParseContext ctx(json_object, /*body_is_padded=*/false);
  DecodedEvent out;
  DecodeOneDocument(&ctx, ctx.data(), ctx.size(), &out);
  return out;
}

Status DecodeBatchJson(std::string_view body, std::vector<DecodedEvent>* out) {
  return DecodeBatchJson(body, BatchDecodeOptions(), out);
}

Status DecodeBatchJson(std::string_view body, const BatchDecodeOptions& options,
                       std::vector<DecodedEvent>* out) {
  out->clear();
  ParseContext ctx(body, options.body_is_padded);
  Status status;
  error_code e =
      DecodeBatchDocument(ctx.parser(), ctx.data(), ctx.size(), nullptr, options, out, &status);
  if (e == simdjson::UTF8_ERROR) {
    out->clear();
    status = Status::OK();
    const Utf8Repair* repair = ctx.Repair(ctx.data(), ctx.size());
    std::string_view r = ctx.repaired();
    e = DecodeBatchDocument(ctx.parser(), r.data(), r.size(), repair, options, out, &status);
  }
  if (e != simdjson::SUCCESS) {
    out->clear();
    return Status::InvalidArgument(InvalidJson(e));
  }
  if (!status.ok()) out->clear();
  return status;
}

void DecodeBatchNdjson(std::string_view body, std::vector<DecodedEvent>* out) {
  DecodeBatchNdjson(body, BatchDecodeOptions(), out).IgnoreError();
}

Status DecodeBatchNdjson(std::string_view body, const BatchDecodeOptions& options,
                         std::vector<DecodedEvent>* out) {
  out->clear();
  ParseContext ctx(body, options.body_is_padded);
  const char* p = ctx.data();
  const char* end = p + ctx.size();
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* line_end = nl ? nl : end;
    // Lines of only JSON whitespace (a lone "\r" included) are skipped and not counted.
    const char* q = p;
    while (q < line_end && (*q == ' ' || *q == '\t' || *q == '\r')) ++q;
    if (q < line_end) {
      if (out->size() >= options.max_events) return TooManyEvents(options.max_events, out);
      out->emplace_back();
      // Every line but the last is followed by the rest of the body, so its padding is
      // readable; the last one by the buffer's own padding.
      DecodeOneDocument(&ctx, p, static_cast<size_t>(line_end - p), &out->back());
    }
    p = nl ? nl + 1 : end;
  }
  return Status::OK();
}

}  // namespace usagedb
