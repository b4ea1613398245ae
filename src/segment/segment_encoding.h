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
// seqs: the block's commit_seq column, needed by kIntStepsBySeq only (may be null otherwise).
bool DecodeInt64Column(Encoding encoding, std::string_view body, size_t n, const uint64_t* seqs,
                       int64_t* out);

// 128-bit integer columns.
Encoding EncodeInt128Column(const __int128* values, size_t n, std::string* body);
bool DecodeInt128Column(Encoding encoding, std::string_view body, size_t n, __int128* out);

// String columns. nulls is empty (no nulls) or has one entry per row (1 = null; the value
// is then ignored).
Encoding EncodeStringColumn(const std::vector<std::string_view>& values,
                            const std::vector<uint8_t>& nulls, std::string* body);
// A null in a column with nullable == false is malformed.
bool DecodeStringColumn(Encoding encoding, std::string_view body, size_t n, bool nullable,
                        StringColumn* out);

}  // namespace usagedb::segment
