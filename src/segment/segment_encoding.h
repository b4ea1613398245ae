// Column chunk encodings of raw segments (docs/parts/segment.md, "Encodings"). Each column
// type follows analyze -> compress -> scan: the encoder measures the exact size of every
// candidate encoding for the block's values, writes the smallest, and the decoder turns a
// body back into values with every bound checked (a false return means a malformed body,
// which the reader reports as Corruption).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "segment/segment.h"
#include "segment/segment_format.h"
#include "segment/segment_hash.h"

namespace usagedb::segment {

// Bits needed to represent v (0 for v == 0).
int BitWidth(uint64_t v);
// Bytes of n values of `width` bits, packed LSB-first.
size_t BitPackedBytes(size_t n, int width);
// Appends n values (each < 2^width) packed LSB-first. REQUIRES: 0 <= width <= 64.
void PutBitPacked(const uint64_t* values, size_t n, int width, std::string* dst);
// Unpacks n values of `width` bits. REQUIRES: in_size >= BitPackedBytes(n, width).
void UnpackBits(const uint8_t* in, size_t in_size, size_t n, int width, uint64_t* out);
void UnpackBits32(const uint8_t* in, size_t in_size, size_t n, int width, uint32_t* out);

// 64-bit integer columns (uint64 values are passed as their bit pattern).

// One-pass analysis of a 64-bit column: the exact body size of every generic encoding
// (kIntFor, kIntDeltaFor, kIntRle, kIntDeltaVarint). REQUIRES: n >= 1.
struct Int64Analysis {
  int64_t first = 0, mn = 0, mx = 0, dmin = 0, dmax = 0;
  size_t delta_size = 0, runs = 0, rle_size = 0;
  int for_width = 0, dfor_width = 0;
  size_t n = 0;

  size_t Size(Encoding encoding) const;
  Encoding Smallest() const;  // ties: kIntFor, kIntDeltaFor, kIntRle, kIntDeltaVarint
};
Int64Analysis AnalyzeInt64(const int64_t* values, size_t n);
// Appends the body of a generic encoding using the analysis of the same values.
void EncodeInt64With(const Int64Analysis& analysis, Encoding encoding, const int64_t* values,
                     std::string* body);

// REQUIRES: n >= 1. Appends the body to *body and returns its encoding (the smallest body).
Encoding EncodeInt64Column(const int64_t* values, size_t n, std::string* body);
// Appends the body of one given generic encoding (kIntFor, kIntDeltaFor, kIntRle,
// kIntDeltaVarint), so a caller can compare candidates after compression.
void EncodeInt64As(Encoding encoding, const int64_t* values, size_t n, std::string* body);
// kIntStepsBySeq: values as a step function of seqs (ingested_at is non-decreasing in
// commit_seq and shared by a batch). Returns false (appending nothing) when rows with one
// seq carry different values.
bool EncodeInt64StepsBySeq(const int64_t* values, const uint64_t* seqs, size_t n,
                           std::string* body);
// kIntOffsetBySeq: values as a base per commit_seq (the median of the seq's rows: a commit
// batch spans a short time) plus bit-packed offsets, with outliers (late events) as
// exceptions. Returns false (appending nothing) when the block's seq range is wider than its
// row count, where a base per seq would not pay.
bool EncodeInt64OffsetBySeq(const int64_t* values, const uint64_t* seqs, size_t n,
                            std::string* body);
// Sorts *a ascending (kIntOffsetBySeq's residuals; a radix sort when their span allows).
void SortInt64(std::vector<int64_t>* a);
// seqs: the block's commit_seq column, needed by kIntStepsBySeq and kIntOffsetBySeq only (may
// be null otherwise).
bool DecodeInt64Column(Encoding encoding, std::string_view body, size_t n, const uint64_t* seqs,
                       int64_t* out);

// 128-bit integer columns.
Encoding EncodeInt128Column(const __int128* values, size_t n, std::string* body);
bool DecodeInt128Column(Encoding encoding, std::string_view body, size_t n, __int128* out);
// Decodes only rows [lo, hi) of an n-row column into out[lo, hi) (out[0, n) must exist; other
// rows are left as they were). Bytes outside the range are checked only as far as needed to
// find the range (the chunk crc covers them).
bool DecodeInt128Rows(Encoding encoding, std::string_view body, size_t n, size_t lo, size_t hi,
                      __int128* out);

// One string column of a block for StringColumnEncoder.
struct StringColumnInput {
  const std::string_view* values = nullptr;  // n rows; a null row's value is ignored
  const uint8_t* nulls = nullptr;            // nullptr (no nulls) or n flags, 1 = null
  size_t n = 0;
  // Optional dictionary the caller already built (dimensions): ids[i] < distinct_count for
  // non-null rows, the distinct values pairwise different, each used by some row.
  const uint32_t* ids = nullptr;
  const std::string_view* distinct = nullptr;
  size_t distinct_count = 0;
  // The ids are the ones the encoder's own dictionary pass over `values` would find (up to
  // numbering), handed over to save that pass: the column is then treated exactly as that
  // pass would (a mostly distinct column gives up its dictionary), so the body is the same.
  bool ids_from_values = false;
  // Build the whole dictionary even for a mostly distinct column (sorted_distinct() needed).
  bool need_distinct = false;
  // The caller knows the non-null values are pairwise distinct (a flush's event ids): the
  // analysis skips the dictionary pass whose answer that already is. A wrong claim gives a
  // valid but possibly larger body.
  bool values_distinct = false;
  // Optional, n flags: same_as_prev[i] = 1 claims row i's value equals row i - 1's (both
  // non-null); 0 claims nothing. The dictionary pass then takes the previous row's id without
  // reading the value's bytes (the flush knows runs of equal accounts and (product, meter,
  // model) from its sort, and the bytes are cache misses there). The body is unchanged.
  const uint8_t* same_as_prev = nullptr;
};

// Analyzes and encodes string columns, reusing its buffers from column to column and block to
// block (no allocation per row; none per block once grown). Not thread-safe.
//
// Analysis: one hashing pass assigns dictionary ids (a row equal to the previous row costs one
// comparison); it stops early once more than half of the non-null values are distinct
// (unless need_distinct), since a dictionary is then not considered. Dictionary columns
// compare kStringDict with kStringDictRle; mostly distinct columns compare the per-row
// encodings (kStringFixed, kStringFixedAlphabet, kStringPlain) from exact sizes.
class StringColumnEncoder {
 public:
  Encoding Encode(const StringColumnInput& in, std::string* body);
  // After Encode: whether the whole dictionary was built, and then its values in byte order
  // (views into the input values or distinct; valid while those are).
  bool has_sorted_distinct() const { return dict_complete_; }
  const std::vector<std::string_view>& sorted_distinct() const { return sorted_; }

 private:
  bool BuildDictionary(const StringColumnInput& in, size_t nonnull);

  std::vector<uint32_t> ids_, rank_, order_;
  std::vector<std::string_view> distinct_, sorted_;
  std::vector<uint32_t> codes_;
  FlatIdMap map_;
  bool dict_complete_ = false;
};

// String columns. nulls is empty (no nulls) or has one entry per row (1 = null; the value
// is then ignored). Convenience wrapper around a temporary StringColumnEncoder.
Encoding EncodeStringColumn(const std::vector<std::string_view>& values,
                            const std::vector<uint8_t>& nulls, std::string* body);
// A null in a column with nullable == false is malformed.
bool DecodeStringColumn(Encoding encoding, std::string_view body, size_t n, bool nullable,
                        StringColumn* out);

// One row of an n-row column, decoded without producing the others (SegmentReader::ReadRow).
// The body is checked as far as finding the row needs; a false return means malformed.
// seq: the row's commit_seq (used by kIntStepsBySeq and kIntOffsetBySeq).
bool DecodeInt64Row(Encoding encoding, std::string_view body, size_t n, size_t row, uint64_t seq,
                    int64_t* out);
bool DecodeInt128Row(Encoding encoding, std::string_view body, size_t n, size_t row, __int128* out);
// Sets *is_null (out cleared) or *out to the row's value.
bool DecodeStringRow(Encoding encoding, std::string_view body, size_t n, bool nullable, size_t row,
                     bool* is_null, std::string* out);

}  // namespace usagedb::segment
