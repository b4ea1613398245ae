// Manifest file format constants (docs/format.md, section "Manifest"; docs/parts/manifest.md).
//
// file    := magic: "USDBMAN1" | version: fixed32 | section* | crc: fixed32
// section := tag: varint32 | length: varint64 | payload: byte[length]
// crc     := masked crc32c of every byte before it (magic, version and all sections).
// All fixed-width integers are little-endian.
#pragma once

#include <cstdint>

namespace usagedb::manifest {

constexpr char kMagic[8] = {'U', 'S', 'D', 'B', 'M', 'A', 'N', '1'};
constexpr uint32_t kMinVersion = 1;
constexpr uint32_t kVersion = 1;  // the version this build writes; it reads kMinVersion..kVersion
constexpr uint32_t kHeaderSize = 12;  // magic + version
constexpr uint32_t kTrailerSize = 4;  // crc

// Section tags (on-disk enum: values are never reused). Sections appear in non-decreasing tag
// order; kCounters exactly once, the others once per list entry. A reader rejects a tag it
// does not know with Corruption: a newer writer added state this build cannot keep.
enum class SectionTag : uint8_t {
  kCounters = 1,
  kSegment = 2,
  kDedupeRun = 3,
  kConflictLog = 4,
  // Reserved for later versions: periods with their history, rollup state, compaction state.
};

constexpr char kCurrentFileName[] = "CURRENT";
constexpr char kTempSuffix[] = ".tmp";
constexpr char kFilePrefix[] = "MANIFEST-";
constexpr int kGenerationDigits = 6;  // at least; more when the generation needs them

}  // namespace usagedb::manifest
