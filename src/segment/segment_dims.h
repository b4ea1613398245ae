// The canonical dimensions string (SPEC §1) as the segment module writes and reads it. A
// private equivalent of model's CanonicalDimensions, so this module does not depend on model.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "segment/segment.h"
#include "segment/segment_encoding.h"
#include "segment/segment_hash.h"
#include "usagedb/event_view.h"
#include "usagedb/status.h"

namespace usagedb::segment {

using Dimensions = std::vector<std::pair<std::string, std::string>>;

// Appends the compact JSON object of `dims` to *out: keys in byte order (REQUIRES: keys
// unique; the input need not be sorted), escapes \" \\ \b \f \n \r \t, other bytes below 0x20
// as \u00xx (lowercase hex), everything else as-is. "{}" when empty.
void AppendCanonicalDimensions(const Dimensions& dims, std::string* out);
std::string CanonicalDimensionsString(const Dimensions& dims);

// Parses exactly the canonical form back into sorted pairs. Returns false when `s` is not a
// canonical dimensions string (bad syntax, unsorted or repeated keys, trailing bytes).
bool ParseCanonicalDimensionsString(std::string_view s, Dimensions* out);

// Block-local dictionary of dimension sets for the writer: maps each row's dimensions to a
// dense id (from 0 in order of first appearance) of its set. Equal ids <=> equal canonical
// strings. Not thread-safe; reusable across blocks via Clear. Between two Clears use one
// overload of Add only. The Dimensions passed to Add must outlive the next Clear.
class DimensionsDictionary {
 public:
  using Pair = std::pair<std::string_view, std::string_view>;

  void Clear();
  // Builds each new set's canonical string at once (sets differing only in order share one).
  uint32_t Add(const Dimensions& dims);
  // The same for a set in the event record's encoding (the flush's rows): equal encoded bytes
  // are found without building anything, and a new set only records its pairs; canonical
  // strings wait for BuildCanonical. The bytes `dims` views must outlive the next Clear.
  uint32_t Add(const DimensionsView& dims);
  size_t size() const { return has_pairs() ? set_end_.size() : offsets_.size(); }
  // Whether pairs() is available (every set so far came through the DimensionsView overload).
  bool has_pairs() const { return entries_.empty(); }
  // The raw (key, value) pairs of every set, keys ascending: set j's are
  // pairs()[set_end()[j - 1], set_end()[j]). REQUIRES: has_pairs().
  const std::vector<Pair>& pairs() const { return pairs_; }
  const std::vector<size_t>& set_end() const { return set_end_; }
  // Makes canonical() available for every id (a no-op when already built).
  void BuildCanonical();
  // The canonical string of an id. Valid until the next Add, BuildCanonical or Clear.
  // REQUIRES: BuildCanonical() since the last Add(const DimensionsView&).
  std::string_view canonical(uint32_t id) const {
    return std::string_view(arena_).substr(offsets_[id].first, offsets_[id].second);
  }

 private:
  struct Entry {
    const Dimensions* dims;  // the first set seen with this content
    uint32_t id;             // canonical id (sets differing only in order share one)
  };
  uint32_t AddCanonical(size_t offset);  // the string appended to arena_ at offset
  std::vector<Entry> entries_;
  struct Alias {
    std::string_view encoded;  // a set's encoded pairs
    uint32_t id;
  };
  std::vector<Alias> aliases_;
  std::vector<std::unique_ptr<std::string>> reencoded_;  // sets whose varints were not minimal
  std::vector<Pair> pairs_;
  std::vector<size_t> set_end_;                     // per id
  std::vector<std::pair<size_t, size_t>> offsets_;  // canonical id -> (offset, size) in arena_
  std::string arena_;
  FlatIdMap by_content_, by_encoded_, by_canonical_;
};

// At most this many distinct keys in a kDimensionsByKey body (the writer falls back to
// whole canonical strings above it; a reader reports more as corrupt).
constexpr size_t kMaxDimensionsByKeyKeys = 64;

// Encodes a block's dimensions column (in: the canonical strings as a StringColumnInput with
// ids/distinct from DimensionsDictionary) as the smaller body of kDimensionsByKey (one
// nullable sub-column of raw values per key) and the whole-string encodings. Appends the
// body to *body and returns its encoding. Reuses its buffers across blocks; not thread-safe.
class DimensionsColumnEncoder {
 public:
  Encoding Encode(const StringColumnInput& in, StringColumnEncoder* strings, std::string* body);
  // The same for rows whose ids come from `dict` (n rows, ids[i] < dict.size(), every set
  // used): the per-key body is built from the dictionary's pairs and canonical strings are
  // built only when the whole-string body is compared. Same bytes as Encode.
  Encoding Encode(DimensionsDictionary* dict, const uint32_t* ids, size_t n,
                  StringColumnEncoder* strings, std::string* body);

 private:
  using Pair = std::pair<std::string_view, std::string_view>;
  // Appends the kDimensionsByKey body; false (appending nothing) when it does not apply.
  bool EncodeByKey(const StringColumnInput& in, StringColumnEncoder* strings, std::string* body);
  // Appends the per-key body (in by_key_, when by_key) or the whole-string one, whichever
  // wins (in: whole canonical strings) and returns its encoding.
  Encoding Choose(const StringColumnInput& in, bool by_key, StringColumnEncoder* strings,
                  std::string* body);
  // The same from every set's pairs (set j: pairs[set_end[j - 1], set_end[j]), keys ascending).
  bool EncodeByKeyFromPairs(const Pair* pairs, const size_t* set_end, size_t sets,
                            const uint32_t* ids, size_t n, StringColumnEncoder* strings,
                            std::string* body);

  std::vector<Dimensions> parsed_;              // per distinct set with escapes (owns the bytes)
  std::vector<Pair> pairs_;                     // every set's pairs, views into in.distinct/parsed_
  std::vector<size_t> set_end_;                 // set j's pairs: pairs_[set_end_[j-1], set_end_[j])
  std::vector<std::string_view> keys_;          // sorted union of keys
  std::vector<std::string_view> matrix_;        // [set * keys + key] -> value
  std::vector<uint8_t> present_;                // [set * keys + key] -> the set has the key
  std::vector<std::string_view> values_;        // per row, one key
  std::vector<uint8_t> nulls_;                  // per row, one key
  std::vector<uint32_t> set_value_;             // per set, one key: id of its value
  std::vector<uint32_t> value_ids_;             // per row, one key
  std::vector<std::string_view> key_distinct_;  // one key's distinct values
  FlatIdMap value_map_;
  std::vector<std::string_view> rows_, distinct_;  // whole-string comparison
  std::string by_key_, sub_;
};

// Decodes a kDimensionsByKey body into canonical dimension strings (one dictionary entry per
// distinct combination). Returns false on a malformed body.
bool DecodeDimensionsByKey(std::string_view body, size_t n, StringColumn* out);

// The canonical dimensions string of one row of a kDimensionsByKey body (only that row's
// value of each key is decoded). Returns false on a malformed body.
bool DecodeDimensionsByKeyRow(std::string_view body, size_t n, size_t row, std::string* out);

}  // namespace usagedb::segment
