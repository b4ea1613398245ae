// The canonical dimensions string (SPEC §1) as the segment module writes and reads it. A
// private equivalent of model's CanonicalDimensions, so this module does not depend on model.
#pragma once

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

// Block-local dictionary of dimension sets for the writer: maps each row's dimensions to the
// id of its canonical string, building each canonical string once per distinct set (most
// rows share a few sets). Equal ids <=> equal canonical strings. Not thread-safe; reusable
// across blocks via Clear. The Dimensions passed to Add must outlive the next Clear.
class DimensionsDictionary {
 public:
  void Clear();
  // Returns the id (dense, from 0 in order of first appearance) of dims' canonical string.
  uint32_t Add(const Dimensions& dims);
  // The same for a set in the event record's encoding (the flush's rows): equal encoded bytes
  // are found without building anything. The bytes `dims` views must outlive the next Clear.
  uint32_t Add(const DimensionsView& dims);
  size_t size() const { return offsets_.size(); }
  // The canonical string of an id. Valid until the next Add or Clear.
  std::string_view canonical(uint32_t id) const {
    return std::string_view(arena_).substr(offsets_[id].first, offsets_[id].second);
  }

 private:
  struct Entry {
    const Dimensions* dims;  // the first set seen with this content
    uint32_t id;             // canonical id (sets differing only in order share one)
  };
  struct EncodedEntry {
    std::string_view encoded;
    uint32_t id;
  };
  uint32_t AddCanonical(size_t offset);  // the string appended to arena_ at offset
  std::vector<Entry> entries_;
  std::vector<EncodedEntry> encoded_entries_;
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

 private:
  // Appends the kDimensionsByKey body; false (appending nothing) when it does not apply.
  bool EncodeByKey(const StringColumnInput& in, StringColumnEncoder* strings, std::string* body);

  using Pair = std::pair<std::string_view, std::string_view>;
  std::vector<Dimensions> parsed_;        // per distinct set with escapes (owns the bytes)
  std::vector<Pair> pairs_;               // every set's pairs, views into in.distinct/parsed_
  std::vector<size_t> set_end_;           // set j's pairs: pairs_[set_end_[j-1], set_end_[j])
  std::vector<std::string_view> keys_;    // sorted union of keys
  std::vector<std::string_view> matrix_;  // [set * keys + key] -> value
  std::vector<uint8_t> present_;          // [set * keys + key] -> the set has the key
  std::vector<std::string_view> values_;  // per row, one key
  std::vector<uint8_t> nulls_;            // per row, one key
  std::string by_key_, sub_;
};

// Decodes a kDimensionsByKey body into canonical dimension strings (one dictionary entry per
// distinct combination). Returns false on a malformed body.
bool DecodeDimensionsByKey(std::string_view body, size_t n, StringColumn* out);

}  // namespace usagedb::segment
