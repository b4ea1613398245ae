// WAL file format constants (docs/format.md, section "WAL").
#pragma once

#include <cstdint>

namespace usagedb::wal {

// File header: magic (8 bytes) | version: fixed32 | file_number: fixed64 |
//              start_sequence: fixed64 | masked crc32c of the preceding 28 bytes: fixed32.
constexpr char kMagic[8] = {'U', 'S', 'D', 'B', 'W', 'A', 'L', '1'};
constexpr uint32_t kVersion = 2;    // written by this build
constexpr uint32_t kVersionV1 = 1;  // still read
constexpr uint32_t kHeaderSize = 32;

// Record (version 2): length: fixed32 | crc: fixed32 | file_tag: fixed32 | type: uint8 |
//                     payload: byte[length]
//   crc      = masked crc32c(file_number as fixed64 ++ type ++ payload)
//   file_tag = the low 32 bits of the file number (the header's)
// A record belongs to the file whose number it carries: bytes left in a recycled file by the
// file it was before fail both checks, and the reader's scan for a later valid record only
// stops where the tag matches (docs/parts/wal.md, "Recycling").
constexpr uint32_t kRecordHeaderSize = 13;
// Record (version 1): length: fixed32 | masked crc32c(type ++ payload): fixed32 | type: uint8 |
//                     payload: byte[length]
constexpr uint32_t kRecordHeaderSizeV1 = 9;
constexpr uint32_t kMaxRecordSize = 1u << 30;

// On-disk enum: values are never reused.
enum class RecordType : uint8_t {
  kUnit = 1,  // a committed batch (payload encoded by the db layer)
  kVoid = 2,  // names a unit (by sequence) that failed and must never be replayed
  // As kUnit / kVoid, the payload prefixed by durable_length: fixed64, the length of the file
  // known durable (synced) when the record was written. The reader strips the prefix and
  // reports kUnit / kVoid; it uses durable_length to tell an unsynced tail that reached the
  // disk out of order (a hole, then records written before the hole was synced) from damage
  // to synced data (docs/format.md, "Reader contract").
  kDurableUnit = 3,
  kDurableVoid = 4,
};
constexpr uint32_t kDurableLengthSize = 8;

}  // namespace usagedb::wal
