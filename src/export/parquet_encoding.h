// Byte-level encodings of the Parquet writer: the RLE/bit-packed hybrid (definition levels and
// dictionary indices), DECIMAL as big-endian two's complement, and the canonical dimensions
// string of SPEC §1. Internal to src/export; exposed in a header for the unit tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "usagedb/event.h"

namespace usagedb {
namespace parquet {

// Appends `v` as 16 bytes, big-endian two's complement (Parquet DECIMAL on FIXED_LEN_BYTE_ARRAY).
void AppendDecimal128(__int128 v, std::string* out);
// Inverse of AppendDecimal128. REQUIRES: p points at 16 readable bytes.
__int128 DecodeDecimal128(const char* p);

// Smallest bit width that holds every value in [0, max_value]; at least 1 (a width of 0 is
// legal Parquet but not every reader accepts it).
int BitWidthFor(uint32_t max_value);

// Appends the RLE/bit-packed hybrid encoding (Parquet Encodings.md, "RLE") of values[0..n) with
// the given bit width, without any length prefix:
//   encoded := run*
//   run     := rle-run | bit-packed-run
//   rle-run := varint(count << 1) value: byte[ceil(bit_width / 8)] (little-endian)
//   bit-packed-run := varint(groups << 1 | 1) byte[groups * bit_width]  (8 values per group,
//                     least significant bit first; the last group is zero-padded)
// Runs of 8 or more equal values become RLE runs, everything else is bit-packed.
// REQUIRES: 1 <= bit_width <= 32 and every value < 2^bit_width.
void AppendRleBitPacked(const uint32_t* values, size_t n, int bit_width, std::string* out);
void AppendRleBitPacked(const uint8_t* values, size_t n, int bit_width, std::string* out);

// Decodes `n` values written by AppendRleBitPacked (or any conforming writer). Returns false
// when the input is short or malformed. Used by tests and by page verification.
bool DecodeRleBitPacked(std::string_view in, int bit_width, size_t n, std::vector<uint32_t>* out);

// Appends the canonical dimensions string of SPEC §1: a compact JSON object with keys sorted by
// byte order, `{}` when empty. Escapes `"` `\` and \b \f \n \r \t as two-character sequences,
// other characters below U+0020 as \u00xx (lowercase hex); every other byte (UTF-8 included,
// `/` and U+007F included) is copied as-is. Input need not be sorted.
void AppendCanonicalDimensions(const std::vector<std::pair<std::string, std::string>>& dims,
                               std::string* out);
// Appends `s` as a JSON string literal with the escaping above (quotes included).
void AppendJsonString(std::string_view s, std::string* out);

// "Usage", "Correction", "Retraction"; "" for an out-of-range value.
std::string_view KindName(EventKind kind);

}  // namespace parquet
}  // namespace usagedb
