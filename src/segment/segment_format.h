// Raw segment file format constants (docs/format.md, section "Raw segment"; written out in
// docs/parts/segment.md). All integers are little-endian; varints are LEB128 (util/coding.h).
//
// file    := header block* footer trailer
// header  := magic: byte[8] | version: fixed32                                   (12 bytes)
// block   := chunk{16}            (one chunk per column, in kPhysicalColumnOrder)
// chunk   := encoding: uint8 | codec: uint8 | [raw_size: varint64 when codec = zstd] |
//            data: byte[...] | crc: fixed32 (masked crc32c of every preceding chunk byte)
// footer  := see docs/parts/segment.md (SegmentInfo, then one entry per block)
// trailer := footer_offset: fixed64 | footer_size: fixed32 |
//            footer_crc: fixed32 (masked crc32c of the footer bytes) | version: fixed32 |
//            magic: byte[8]                                                     (28 bytes)
#pragma once

#include <cstdint>

#include "segment/segment.h"

namespace usagedb::segment {

constexpr char kMagic[8] = {'U', 'S', 'D', 'B', 'S', 'E', 'G', '1'};
// Version table (docs/parts/segment.md): 1 = the first format; 2 = the footer carries the flush
// receipt (never released, not read); 3 = compressed footer, kDimensionsByKey,
// kIntOffsetBySeq, and the receipt. The writer writes kVersion; the reader also reads
// kVersionRawFooter, the last version whose footer is stored without a codec byte (and
// without a receipt: it reads as all zero).
constexpr uint32_t kVersion = 3;
constexpr uint32_t kVersionRawFooter = 1;
constexpr uint32_t kHeaderSize = 12;
constexpr uint32_t kTrailerSize = 28;

// Bounds a reader enforces before allocating (a writer never exceeds them).
constexpr uint32_t kMaxRowsPerBlock = 1u << 20;
// A zstd chunk may claim at most this many raw bytes per compressed byte (plus a constant),
// so a damaged size cannot make the reader allocate gigabytes. The writer stores a chunk
// uncompressed when zstd would exceed the ratio.
constexpr uint64_t kMaxZstdRatio = 1024;
constexpr uint64_t kZstdRawSlack = 64 * 1024;
constexpr uint64_t kMaxChunkRawSize = 1ull << 30;

// Chunk size overhead: encoding + codec + crc.
constexpr uint32_t kMinChunkSize = 6;

// Chunk codec byte. On-disk enum: values are never reused.
enum class Codec : uint8_t {
  kNone = 0,
  kZstd = 1,
};

// Column chunk encodings. On-disk enum: values are never reused. Bodies in
// docs/parts/segment.md, "Encodings".
enum class Encoding : uint8_t {
  // String columns (code 0 is null when the column has nulls).
  kStringDict = 1,           // block-local sorted dictionary + bit-packed codes
  kStringDictRle = 2,        // block-local sorted dictionary + (code, run length) runs
  kStringPlain = 3,          // common prefix + per-row lengths + suffix bytes
  kStringFixed = 4,          // common prefix + one suffix length + null bitmap + suffix bytes
  kStringFixedAlphabet = 5,  // as kStringFixed, suffix bytes as bit-packed alphabet indices
  kDimensionsByKey = 6,      // dimensions only: per key, a nullable string column of values
  // 64-bit integer columns (kind, timestamps, commit seq; uint64 stored as its bit pattern).
  kIntDeltaVarint = 10,  // first value, then zigzag varint deltas (wrapping)
  kIntFor = 11,          // frame of reference: base + bit-packed (v - base)
  kIntRle = 12,          // (value, run length) runs
  kIntDeltaFor = 13,     // first value + base delta + bit-packed (delta - base delta)
  kIntStepsBySeq = 14,   // ingested_at only: a step function of the block's commit_seq
  kIntOffsetBySeq = 15,  // timestamp_ms only: a base per commit_seq + bit-packed offsets
  // 128-bit integer columns (quantity).
  kInt128Varint = 20,  // zigzag varint128 per row
  kInt128For = 21,     // base + bit-packed (v - base), when max - min < 2^64
};

// The order chunks are laid out in a block: the columns a scan reads together (grouping key,
// time, quantity, seq) are adjacent, so one read covers them; event ids, the bulk, go last.
constexpr Column kPhysicalColumnOrder[kNumColumns] = {
    Column::kKind,
    Column::kAccountId,
    Column::kSubscriptionId,
    Column::kProductId,
    Column::kMeterId,
    Column::kModelId,
    Column::kUnit,
    Column::kSource,
    Column::kTimestampMs,
    Column::kQuantity,
    Column::kCommitSeq,
    Column::kIngestedAtMs,
    Column::kDimensions,
    Column::kCorrectionOriginalEventId,
    Column::kCorrectionReason,
    Column::kEventId,
};

}  // namespace usagedb::segment
