// On-disk constants of a dedupe run file. The grammar is in docs/format.md, section
// "Dedupe run" (docs/parts/dedupe.md until merged). A change here is a format change: bump
// kDedupeFormatVersion and update the doc and the golden file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace usagedb::dedupe_format {

// Trailer: the last 8 bytes of every run file.
inline constexpr std::string_view kMagic = "UDBDEDUP";
inline constexpr size_t kMagicSize = 8;
inline constexpr uint32_t kDedupeFormatVersion = 1;

// footer := version: fixed32, key_count: fixed64, block_count: fixed64,
//           min_commit_seq: fixed64, max_commit_seq: fixed64,
//           forever_key_count: fixed64, max_usage_anchor_ms: fixed64 (int64 two's complement),
//           filter_offset: fixed64, filter_lines: fixed64, filter_probes: fixed32,
//           index_offset: fixed64, filter_crc: fixed32, index_crc: fixed32,
//           footer_crc: fixed32
inline constexpr size_t kFooterSize = 4 + 8 * 6 + 8 + 8 + 4 + 8 + 4 + 4 + 4;  // 92
inline constexpr size_t kTailSize = kFooterSize + kMagicSize;

// Block trailer: type: uint8, crc: fixed32 (masked crc32c of contents + type).
inline constexpr size_t kBlockTrailerSize = 5;
enum class BlockType : uint8_t { kRaw = 0, kZstd = 1 };

// index entry := first_hash: fixed64, offset: fixed64, size: fixed32 (size includes the
// block trailer).
inline constexpr size_t kIndexEntrySize = 20;

// Writer policy (not part of the format: readers accept any block size up to the maximum).
// A block is closed once it holds >= kTargetBlockBytes and >= kMinBlockEntries entries, but
// never between two entries with the same routing hash.
inline constexpr size_t kTargetBlockBytes = 4096;
inline constexpr size_t kMinBlockEntries = 64;
// Readers reject blocks larger than this (stored or decompressed).
inline constexpr size_t kMaxBlockBytes = 64u << 20;
// A compressed block is kept only when it saves at least 1/8 of the raw size.
inline constexpr int kZstdLevel = 1;

// Blocked Bloom filter: one 64-byte line per key, kFilterProbes bits set in that line.
inline constexpr size_t kFilterLineBytes = 64;
inline constexpr uint32_t kFilterBitsPerKey = 13;
inline constexpr uint32_t kFilterProbes = 8;
inline constexpr uint32_t kMaxFilterProbes = 16;

// Event ids longer than this are refused by the writer and reported as corruption by readers.
inline constexpr size_t kMaxEventIdBytes = 4096;

}  // namespace usagedb::dedupe_format
