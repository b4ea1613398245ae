#include "segment/segment_dims.h"

#include <algorithm>

#include "util/coding.h"

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
    if (c != '\\') {             // a run of plain bytes at once
      size_t j = i + 1;
      while (j < s.size() && s[j] != '"' && s[j] != '\\' &&
             static_cast<unsigned char>(s[j]) >= 0x20) {
        ++j;
      }
      out->append(s.data() + i, j - i);
      i = j;
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
  aliases_.clear();
  reencoded_.clear();
  pairs_.clear();
  set_end_.clear();
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

namespace {

// Bytes of a varint of v.
size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

}  // namespace

uint32_t DimensionsDictionary::Add(const DimensionsView& dims) {
  bool inserted;
  auto find = [&](std::string_view e, uint32_t new_id) {
    const uint32_t alias = by_encoded_.FindOrInsert(
        HashBytes(e), static_cast<uint32_t>(aliases_.size()),
        [&](uint32_t k) { return BytesEqual(aliases_[k].encoded, e); }, &inserted);
    if (inserted) aliases_.push_back(Alias{e, new_id});
    return aliases_[alias].id;
  };
  const uint32_t new_id = static_cast<uint32_t>(set_end_.size());
  const uint32_t id = find(dims.encoded(), new_id);
  if (!inserted) return id;
  // A new encoding. Keys ascend (the record decoder checks), so with minimal length varints
  // equal bytes <=> equal pairs <=> equal canonical strings, and the set is new. A record with
  // longer varints than needed (never written by this code base) is looked up again by its
  // minimal encoding (kept alive here), the long one staying an alias.
  const size_t pairs_begin = pairs_.size();
  size_t minimal = 0;
  for (const auto& kv : dims) {
    pairs_.push_back(kv);
    minimal += VarintSize(kv.first.size()) + kv.first.size() + VarintSize(kv.second.size()) +
               kv.second.size();
  }
  if (minimal != dims.encoded().size()) {
    auto owned = std::make_unique<std::string>();
    for (size_t p = pairs_begin; p < pairs_.size(); ++p) {
      PutLengthPrefixed(owned.get(), pairs_[p].first);
      PutLengthPrefixed(owned.get(), pairs_[p].second);
    }
    const DimensionsView copy(*owned, static_cast<uint32_t>(dims.size()));
    reencoded_.push_back(std::move(owned));
    const uint32_t same = find(copy.encoded(), new_id);
    aliases_[aliases_.size() - (inserted ? 2 : 1)].id = same;
    pairs_.resize(pairs_begin);
    if (!inserted) return same;
    for (const auto& kv : copy) pairs_.push_back(kv);  // views into the kept copy
  }
  set_end_.push_back(pairs_.size());
  return new_id;
}

void DimensionsDictionary::BuildCanonical() {
  if (!has_pairs()) return;  // the Dimensions overload builds them as it goes
  for (size_t j = offsets_.size(); j < set_end_.size(); ++j) {
    const size_t offset = arena_.size();
    arena_.push_back('{');
    for (size_t p = j == 0 ? 0 : set_end_[j - 1]; p < set_end_[j]; ++p) {
      if (arena_.size() > offset + 1) arena_.push_back(',');
      AppendEscaped(pairs_[p].first, &arena_);
      arena_.push_back(':');
      AppendEscaped(pairs_[p].second, &arena_);
    }
    arena_.push_back('}');
    offsets_.emplace_back(offset, arena_.size() - offset);
  }
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

namespace usagedb::segment {
namespace {

// Splits a canonical string without escapes into (key, value) views (every '"' then ends a
// token). Returns false when it has an escape (or is not of that simple shape).
bool SplitPlain(std::string_view s,
                std::vector<std::pair<std::string_view, std::string_view>>* out) {
  if (s.find('\\') != std::string_view::npos || s.size() < 2 || s.front() != '{') return false;
  size_t pos = 1;
  if (s.size() == 2) return s.back() == '}';
  auto token = [&](std::string_view* t) {
    if (pos >= s.size() || s[pos] != '"') return false;
    const size_t end = s.find('"', pos + 1);
    if (end == std::string_view::npos) return false;
    *t = s.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    return true;
  };
  while (true) {
    std::string_view key, value;
    if (!token(&key) || pos >= s.size() || s[pos++] != ':' || !token(&value)) return false;
    out->emplace_back(key, value);
    if (pos >= s.size()) return false;
    if (s[pos] == '}') return pos + 1 == s.size();
    if (s[pos++] != ',') return false;
  }
}

bool IsStringEncoding(Encoding e) {
  return e == Encoding::kStringDict || e == Encoding::kStringDictRle ||
         e == Encoding::kStringPlain || e == Encoding::kStringFixed ||
         e == Encoding::kStringFixedAlphabet;
}

}  // namespace

// With more than a few sets the per-key body is the smaller one (measured on SPEC §9
// flushes: always); only then is the whole-string body not built for comparison.
constexpr size_t kCompareUpToSets = 16;

Encoding DimensionsColumnEncoder::Encode(const StringColumnInput& in, StringColumnEncoder* strings,
                                         std::string* body) {
  by_key_.clear();
  return Choose(in, EncodeByKey(in, strings, &by_key_), strings, body);
}

Encoding DimensionsColumnEncoder::Encode(DimensionsDictionary* dict, const uint32_t* ids, size_t n,
                                         StringColumnEncoder* strings, std::string* body) {
  const size_t sets = dict->size();
  by_key_.clear();
  bool by_key = false;
  if (dict->has_pairs() && sets > 0) {
    by_key = EncodeByKeyFromPairs(dict->pairs().data(), dict->set_end().data(), sets, ids, n,
                                  strings, &by_key_);
    if (by_key && sets > kCompareUpToSets) {  // the flush's case: no canonical string built
      body->append(by_key_);
      return Encoding::kDimensionsByKey;
    }
  }
  dict->BuildCanonical();
  distinct_.resize(sets);
  for (uint32_t k = 0; k < sets; ++k) distinct_[k] = dict->canonical(k);
  rows_.resize(n);
  for (size_t i = 0; i < n; ++i) rows_[i] = distinct_[ids[i]];
  StringColumnInput in;
  in.values = rows_.data();
  in.n = n;
  in.ids = ids;
  in.distinct = distinct_.data();
  in.distinct_count = sets;
  if (!dict->has_pairs()) return Encode(in, strings, body);
  return Choose(in, by_key, strings, body);
}

Encoding DimensionsColumnEncoder::Choose(const StringColumnInput& in, bool by_key,
                                         StringColumnEncoder* strings, std::string* body) {
  if (by_key && in.distinct_count > kCompareUpToSets) {
    body->append(by_key_);
    return Encoding::kDimensionsByKey;
  }
  const size_t start = body->size();
  const Encoding whole = strings->Encode(in, body);
  if (by_key && by_key_.size() < body->size() - start) {
    body->resize(start);
    body->append(by_key_);
    return Encoding::kDimensionsByKey;
  }
  return whole;
}

// Body: key_count | lp key{key_count} (strictly increasing) | per key: encoding: uint8 |
// size: varint | a nullable string column body of the key's raw values (null = key absent).
// Each distinct set's canonical string is parsed back to pairs (sets are few per block).
bool DimensionsColumnEncoder::EncodeByKey(const StringColumnInput& in, StringColumnEncoder* strings,
                                          std::string* body) {
  const size_t sets = in.distinct_count;
  if (in.ids == nullptr || sets == 0) return false;
  // Pairs of every set: views into the canonical strings, or for the rare set with escapes
  // into its parsed (unescaped) copy.
  pairs_.clear();
  set_end_.resize(sets);
  size_t escaped = 0;
  for (size_t j = 0; j < sets; ++j) {
    const size_t begin = pairs_.size();
    if (!SplitPlain(in.distinct[j], &pairs_)) {
      pairs_.resize(begin);
      if (parsed_.size() <= escaped) parsed_.resize(escaped + 1);
      Dimensions& owned = parsed_[escaped++];
      if (!ParseCanonicalDimensionsString(in.distinct[j], &owned)) return false;
      for (const auto& kv : owned) pairs_.emplace_back(kv.first, kv.second);
    }
    set_end_[j] = pairs_.size();
  }
  return EncodeByKeyFromPairs(pairs_.data(), set_end_.data(), sets, in.ids, in.n, strings, body);
}

// The rows' values per key come from a small set x key matrix, and each key's dictionary from
// the sets' values (not a hash probe per row): the sub-column encoder gets the ids it would
// have built itself.
bool DimensionsColumnEncoder::EncodeByKeyFromPairs(const Pair* pairs, const size_t* set_end,
                                                   size_t sets, const uint32_t* ids, size_t n,
                                                   StringColumnEncoder* strings,
                                                   std::string* body) {
  keys_.clear();
  for (size_t p = 0; p < set_end[sets - 1]; ++p) {  // keys are few: a linear check
    if (std::find(keys_.begin(), keys_.end(), pairs[p].first) == keys_.end()) {
      keys_.push_back(pairs[p].first);
      if (keys_.size() > kMaxDimensionsByKeyKeys) return false;
    }
  }
  std::sort(keys_.begin(), keys_.end());
  const size_t k_count = keys_.size();
  // Every set without keys ("{}" only) or too large a matrix: whole strings.
  if (k_count == 0 || sets * k_count > 16 * n + 4096) return false;
  matrix_.resize(sets * k_count);
  present_.assign(sets * k_count, 0);
  for (size_t j = 0, p = 0; j < sets; ++j) {
    for (size_t k = 0; p < set_end[j]; ++p) {  // both in key order: one merge
      while (keys_[k] != pairs[p].first) ++k;
      matrix_[j * k_count + k] = pairs[p].second;
      present_[j * k_count + k] = 1;
    }
  }
  PutVarint64(body, k_count);
  for (std::string_view key : keys_) PutLengthPrefixed(body, key);
  values_.resize(n);
  nulls_.resize(n);
  value_ids_.resize(n);
  set_value_.resize(sets);
  for (size_t k = 0; k < k_count; ++k) {
    // The key's distinct values over the sets (every set is used by some row, so each value
    // is used by some row where it is not null).
    key_distinct_.clear();
    value_map_.Clear();
    for (size_t j = 0; j < sets; ++j) {
      const size_t cell = j * k_count + k;
      if (!present_[cell]) continue;
      const std::string_view v = matrix_[cell];
      bool inserted;
      set_value_[j] = value_map_.FindOrInsert(
          HashBytes(v), static_cast<uint32_t>(key_distinct_.size()),
          [&](uint32_t id) { return BytesEqual(key_distinct_[id], v); }, &inserted);
      if (inserted) key_distinct_.push_back(v);
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t cell = ids[i] * k_count + k;
      nulls_[i] = !present_[cell];
      values_[i] = matrix_[cell];
      value_ids_[i] = set_value_[ids[i]];  // meaningless (unread) for a null row
    }
    StringColumnInput sub;
    sub.values = values_.data();
    sub.nulls = nulls_.data();
    sub.n = n;
    sub.ids = value_ids_.data();
    sub.distinct = key_distinct_.data();
    sub.distinct_count = key_distinct_.size();
    sub.ids_from_values = true;
    sub_.clear();
    const Encoding e = strings->Encode(sub, &sub_);
    body->push_back(static_cast<char>(e));
    PutLengthPrefixed(body, sub_);
  }
  return true;
}

// Combines the keys' codes row by row into dense ids of the distinct combinations seen so
// far (one id per prefix of keys), so memory stays proportional to the rows and to the
// distinct combinations however many keys there are; then builds one canonical string per
// distinct combination by walking its prefix chain back.
bool DecodeDimensionsByKey(std::string_view body, size_t n, StringColumn* out) {
  Decoder d(body);
  uint64_t k_count;
  if (!d.GetVarint64(&k_count) || k_count == 0 || k_count > kMaxDimensionsByKeyKeys) return false;
  std::vector<std::string_view> keys(k_count);
  for (uint64_t k = 0; k < k_count; ++k) {
    if (!d.GetLengthPrefixed(&keys[k]) || (k > 0 && !(keys[k - 1] < keys[k]))) return false;
  }
  std::vector<StringDict> values(k_count);
  // parents[k][id] = (id of the prefix before key k, code + 1 of key k; 0 = absent).
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> parents(k_count);
  std::vector<uint32_t> ids(n, 0);
  StringColumn col;
  FlatIdMap map;
  std::vector<uint32_t> dense;
  for (uint64_t k = 0; k < k_count; ++k) {
    uint8_t e;
    std::string_view sub;
    if (!d.GetByte(&e) || !IsStringEncoding(static_cast<Encoding>(e)) ||
        !d.GetLengthPrefixed(&sub) ||
        !DecodeStringColumn(static_cast<Encoding>(e), sub, n, /*nullable=*/true, &col)) {
      return false;
    }
    std::vector<std::pair<uint32_t, uint32_t>>& parent = parents[k];
    // Prefix ids so far and this key's domain (codes + 1, 0 = absent): when their product is
    // small, a dense table replaces the hash map.
    const uint64_t prefixes = k == 0 ? 1 : parents[k - 1].size();
    const uint64_t domain = uint64_t{col.dict.size()} + 1;
    if (prefixes * domain <= std::max<uint64_t>(4 * uint64_t{n}, 1 << 16)) {
      dense.assign(prefixes * domain, UINT32_MAX);
      for (size_t i = 0; i < n; ++i) {
        const uint32_t code = col.codes[i] + 1;  // kNullCode wraps to 0
        if (code >= domain) return false;        // DecodeStringColumn bounds codes
        uint32_t& id = dense[ids[i] * domain + code];
        if (id == UINT32_MAX) {
          id = static_cast<uint32_t>(parent.size());
          parent.emplace_back(ids[i], code);
        }
        ids[i] = id;
      }
      values[k] = std::move(col.dict);
      col.dict.clear();
      continue;
    }
    map.Clear();
    uint64_t last_key = UINT64_MAX;
    uint32_t last_id = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t code = col.codes[i] + 1;  // kNullCode wraps to 0
      const uint64_t key = (uint64_t{ids[i]} << 32) | code;
      if (key != last_key) {
        bool inserted;
        last_id = map.FindOrInsert(
            HashInt(key), static_cast<uint32_t>(parent.size()),
            [&](uint32_t id) { return parent[id].first == ids[i] && parent[id].second == code; },
            &inserted);
        if (inserted) parent.emplace_back(ids[i], code);
        last_key = key;
      }
      ids[i] = last_id;
    }
    values[k] = std::move(col.dict);
    col.dict.clear();
  }
  if (!d.empty()) return false;
  const size_t combos = k_count == 0 ? 1 : parents[k_count - 1].size();
  // Each key ("k":) and each value ("v") is escaped once; a combination concatenates them.
  std::vector<std::string> key_part(k_count);
  std::vector<StringDict> value_part(k_count);
  for (size_t k = 0; k < k_count; ++k) {
    AppendEscaped(keys[k], &key_part[k]);
    key_part[k].push_back(':');
    for (std::string_view v : values[k]) {
      AppendEscaped(v, value_part[k].BeginValue());
      value_part[k].EndValue();
    }
  }
  out->dict.clear();
  std::vector<uint32_t> codes(k_count);
  for (size_t c = 0; c < combos; ++c) {
    uint32_t id = static_cast<uint32_t>(c);
    for (size_t k = k_count; k-- > 0;) {
      codes[k] = parents[k][id].second;
      id = parents[k][id].first;
    }
    std::string* s = out->dict.BeginValue();
    s->push_back('{');
    bool first = true;
    for (size_t k = 0; k < k_count; ++k) {
      if (codes[k] == 0) continue;
      if (!first) s->push_back(',');
      first = false;
      s->append(key_part[k]);
      s->append(value_part[k][codes[k] - 1]);
    }
    s->push_back('}');
    out->dict.EndValue();
  }
  out->codes = std::move(ids);
  return true;
}

bool DecodeDimensionsByKeyRow(std::string_view body, size_t n, size_t row, std::string* out) {
  Decoder d(body);
  uint64_t k_count;
  if (!d.GetVarint64(&k_count) || k_count == 0 || k_count > kMaxDimensionsByKeyKeys) return false;
  std::string_view keys[kMaxDimensionsByKeyKeys];
  for (uint64_t k = 0; k < k_count; ++k) {
    if (!d.GetLengthPrefixed(&keys[k]) || (k > 0 && !(keys[k - 1] < keys[k]))) return false;
  }
  out->assign(1, '{');
  bool first = true;
  std::string value;
  for (uint64_t k = 0; k < k_count; ++k) {
    uint8_t e;
    std::string_view sub;
    bool is_null;
    if (!d.GetByte(&e) || !IsStringEncoding(static_cast<Encoding>(e)) ||
        !d.GetLengthPrefixed(&sub) ||
        !DecodeStringRow(static_cast<Encoding>(e), sub, n, /*nullable=*/true, row, &is_null,
                         &value)) {
      return false;
    }
    if (is_null) continue;  // the row's set lacks key k
    if (!first) out->push_back(',');
    first = false;
    AppendEscaped(keys[k], out);
    out->push_back(':');
    AppendEscaped(value, out);
  }
  out->push_back('}');
  return d.empty();
}

}  // namespace usagedb::segment
