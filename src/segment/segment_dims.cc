#include "segment/segment_dims.h"

#include <algorithm>

namespace usagedb::segment {
namespace {

void AppendEscaped(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  bool plain = true;  // the common case: nothing to escape
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    plain &= c >= 0x20 && c != '"' && c != '\\';
  }
  if (plain) {
    out->append(s);
    out->push_back('"');
    return;
  }
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // canonical form uses lowercase only
}

// Parses one canonical JSON string starting at s[*pos] == '"'. Advances *pos past it.
bool ParseString(std::string_view s, size_t* pos, std::string* out) {
  out->clear();
  size_t i = *pos;
  if (i >= s.size() || s[i] != '"') return false;
  ++i;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      *pos = i + 1;
      return true;
    }
    if (c < 0x20) return false;  // the canonical form escapes every control byte
    if (c != '\\') {
      out->push_back(s[i++]);
      continue;
    }
    if (i + 1 >= s.size()) return false;
    const char e = s[i + 1];
    i += 2;
    switch (e) {
      case '"':
        out->push_back('"');
        break;
      case '\\':
        out->push_back('\\');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        if (i + 4 > s.size() || s[i] != '0' || s[i + 1] != '0') return false;
        const int hi = HexValue(s[i + 2]), lo = HexValue(s[i + 3]);
        if (hi < 0 || lo < 0) return false;
        const int v = hi * 16 + lo;
        // Only bytes below 0x20 without a short escape are written as \u00xx.
        if (v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t') {
          return false;
        }
        out->push_back(static_cast<char>(v));
        i += 4;
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

}  // namespace

void AppendCanonicalDimensions(const Dimensions& dims, std::string* out) {
  const bool sorted = std::is_sorted(
      dims.begin(), dims.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<const std::pair<std::string, std::string>*> order;
  order.reserve(dims.size());
  for (const auto& kv : dims) order.push_back(&kv);
  if (!sorted) {
    std::sort(order.begin(), order.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
  }
  out->push_back('{');
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendEscaped(order[i]->first, out);
    out->push_back(':');
    AppendEscaped(order[i]->second, out);
  }
  out->push_back('}');
}

namespace {

bool SameDimensions(const Dimensions& a, const Dimensions& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!BytesEqual(a[i].first, b[i].first) || !BytesEqual(a[i].second, b[i].second)) {
      return false;
    }
  }
  return true;
}

uint64_t HashDimensions(const Dimensions& dims) {
  uint64_t h = kHashK0 ^ dims.size();
  for (const auto& [key, value] : dims) {
    h = Mum(h ^ HashBytes(key), HashBytes(value, kHashK1) ^ kHashK2);
  }
  return h;
}

}  // namespace

void DimensionsDictionary::Clear() {
  entries_.clear();
  encoded_entries_.clear();
  offsets_.clear();
  arena_.clear();
  by_content_.Clear();
  by_encoded_.Clear();
  by_canonical_.Clear();
}

uint32_t DimensionsDictionary::AddCanonical(size_t offset) {
  const std::string_view canon = std::string_view(arena_).substr(offset);
  bool inserted;
  const uint32_t id = by_canonical_.FindOrInsert(
      HashBytes(canon), static_cast<uint32_t>(offsets_.size()),
      [&](uint32_t k) { return BytesEqual(canonical(k), canon); }, &inserted);
  if (inserted) {
    offsets_.emplace_back(offset, canon.size());
  } else {
    arena_.resize(offset);
  }
  return id;
}

uint32_t DimensionsDictionary::Add(const DimensionsView& dims) {
  const std::string_view encoded = dims.encoded();
  bool inserted;
  const uint32_t entry = by_encoded_.FindOrInsert(
      HashBytes(encoded), static_cast<uint32_t>(encoded_entries_.size()),
      [&](uint32_t k) { return BytesEqual(encoded_entries_[k].encoded, encoded); }, &inserted);
  if (!inserted) return encoded_entries_[entry].id;
  // A new set (keys already ascending): its canonical string, shared with equal sets added
  // through the other overload.
  const size_t offset = arena_.size();
  arena_.push_back('{');
  bool first = true;
  for (const auto& [key, value] : dims) {
    if (!first) arena_.push_back(',');
    first = false;
    AppendEscaped(key, &arena_);
    arena_.push_back(':');
    AppendEscaped(value, &arena_);
  }
  arena_.push_back('}');
  const uint32_t id = AddCanonical(offset);
  encoded_entries_.push_back(EncodedEntry{encoded, id});
  return id;
}

uint32_t DimensionsDictionary::Add(const Dimensions& dims) {
  bool inserted;
  const uint32_t entry = by_content_.FindOrInsert(
      HashDimensions(dims), static_cast<uint32_t>(entries_.size()),
      [&](uint32_t k) { return SameDimensions(*entries_[k].dims, dims); }, &inserted);
  if (!inserted) return entries_[entry].id;
  // A new set: build its canonical string once; sets listing the same pairs in another order
  // share it.
  const size_t offset = arena_.size();
  AppendCanonicalDimensions(dims, &arena_);
  const uint32_t id = AddCanonical(offset);
  entries_.push_back(Entry{&dims, id});
  return id;
}

std::string CanonicalDimensionsString(const Dimensions& dims) {
  std::string out;
  AppendCanonicalDimensions(dims, &out);
  return out;
}

bool ParseCanonicalDimensionsString(std::string_view s, Dimensions* out) {
  out->clear();
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return false;
  size_t pos = 1;
  if (s.size() == 2) return true;
  std::string key, value;
  while (true) {
    if (!ParseString(s, &pos, &key)) return false;
    if (pos >= s.size() || s[pos] != ':') return false;
    ++pos;
    if (!ParseString(s, &pos, &value)) return false;
    if (!out->empty() && !(out->back().first < key)) return false;  // sorted, unique
    out->emplace_back(std::move(key), std::move(value));
    if (pos >= s.size()) return false;
    if (s[pos] == '}') return pos + 1 == s.size();
    if (s[pos] != ',') return false;
    ++pos;
  }
}

}  // namespace usagedb::segment
