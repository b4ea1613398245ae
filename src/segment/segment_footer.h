// The footer of a raw segment: SegmentInfo and, per block, its row count, the size of each
// column chunk and its zone map (docs/parts/segment.md, "Footer").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "segment/segment.h"
#include "segment/segment_format.h"

namespace usagedb::segment {

struct BlockEntry {
  uint32_t rows = 0;
  // Chunk sizes in kPhysicalColumnOrder; chunks are contiguous, so offsets are derived.
  uint32_t chunk_size[kNumColumns] = {};
  BlockZoneMap zone;
  // Derived (not stored): file offset of the block, of each chunk (physical order), size.
  uint64_t offset = 0;
  uint64_t chunk_offset[kNumColumns] = {};
  uint64_t size = 0;
};

struct Footer {
  SegmentInfo info;  // file_size is not stored (the reader sets it)
  uint32_t rows_per_block = 0;
  std::vector<BlockEntry> blocks;
};

// Appends the footer as this version stores it: codec: uint8 | [raw_size: varint64 when
// zstd] | the footer body, or one zstd frame of it.
void EncodeFooter(const Footer& footer, std::string* dst);
// Parses the footer of a file of `version` (kVersionRawFooter: the bare body; later: as
// EncodeFooter writes it) and derives offsets (blocks start at kHeaderSize, contiguous).
// Returns false on malformed bytes; the structural checks (sizes against the file, row
// totals) are DecodeFooter's too: returns false unless the blocks end exactly at
// footer_offset and their rows sum to info.row_count.
bool DecodeFooter(std::string_view in, uint64_t footer_offset, uint32_t version, Footer* footer);

// Physical position of a column in a block.
int PhysicalIndex(Column c);
// "timestamp_ms" etc., for messages.
const char* ColumnName(Column c);

}  // namespace usagedb::segment
