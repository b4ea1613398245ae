// On-disk constants of a dedupe run file. The grammar is in docs/format.md, section
// "Dedupe run" (docs/parts/dedupe.md until merged). A change here is a format change: bump
// kDedupeFormatVersion and the magic, and update the doc and the golden file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace usagedb::dedupe_format {

// Trailer: the last 8 bytes of every run file. Version 3 (what writers write) and version 2
// (filter over the full hash; still read, and written by merges of version-2 inputs) share
// every byte of the layout; they differ in the filter's key and the magic.
inline constexpr std::string_view kMagic = "UDBDEDU3";
inline constexpr uint32_t kDedupeFormatVersion = 3;
inline constexpr std::string_view kMagicV2 = "UDBDEDU2";
inline constexpr uint32_t kDedupeFormatVersionV2 = 2;
// The trailer of format version 1 (ids + digests in the run): recognised to say NotSupported.
inline constexpr std::string_view kMagicV1 = "UDBDEDUP";
inline constexpr size_t kMagicSize = 8;

// footer := version: fixed32, routing_bits: fixed32,
//           key_count: fixed64, block_count: fixed64, segment_count: fixed64,
//           min_commit_seq: fixed64, max_commit_seq: fixed64,
//           forever_key_count: fixed64, max_usage_anchor_ms: fixed64 (int64 two's complement),
//           segment_table_offset: fixed64, filter_offset: fixed64, filter_lines: fixed64,
//           filter_probes: fixed32, index_offset: fixed64,
//           segment_table_crc: fixed32, filter_crc: fixed32, index_crc: fixed32,
//           footer_crc: fixed32
inline constexpr size_t kFooterSize = 4 + 4 + 8 * 3 + 8 * 4 + 8 * 3 + 4 + 8 + 4 * 3 + 4;  // 116
inline constexpr size_t kTailSize = kFooterSize + kMagicSize;                             // 124

// block := header, bits, crc: fixed32 (masked crc32c of header + bits).
// header := count: varint32, rice_k: uint8, seg_bits: uint8, row_bits: uint8.
inline constexpr size_t kBlockCrcSize = 4;
inline constexpr uint32_t kMaxRiceK = 63;
inline constexpr uint32_t kMaxFieldBits = 32;  // seg_bits, row_bits
// A Rice quotient of kRiceEscape or more is written as kRiceEscape one-bits followed by the
// delta in routing_bits bits.
inline constexpr uint32_t kRiceEscape = 32;

// index entry := first_routing: fixed64, size: fixed32 (size = block bytes incl. crc).
inline constexpr size_t kIndexEntrySize = 12;
// segment table entry := segment_file_number: fixed64.
inline constexpr size_t kSegmentEntrySize = 8;

// Writer policy (not part of the format: readers accept any block up to kMaxBlockBytes).
// A block is closed once it holds kTargetBlockEntries entries, but never between two entries
// with the same routing value.
inline constexpr size_t kTargetBlockEntries = 128;
inline constexpr size_t kMaxBlockBytes = 64u << 20;

// Automatic routing bits: bit_width(key_count - 1) + kRoutingSlackBits, clamped.
inline constexpr uint32_t kRoutingSlackBits = 10;
inline constexpr uint32_t kMinAutoRoutingBits = 16;
inline constexpr uint32_t kMaxRoutingBits = 64;
// Version 3 writers store at least this many routing bits (writer policy): merges keep the
// inputs' minimum, so a merged run of up to 2^30 keys keeps >= 10 bits of slack, and the
// filter (a function of the routing value) stays as selective as one over the full hash.
inline constexpr uint32_t kMinV3RoutingBits = 40;

// Blocked Bloom filter: one 64-byte line per key, kFilterProbes bits set in that line. Its key
// is FilterKeyOfRouting(routing value) in version 3, the full 64-bit hash in version 2.
inline constexpr size_t kFilterLineBytes = 64;
inline constexpr uint32_t kFilterBitsPerKey = 13;
inline constexpr uint32_t kFilterProbes = 8;
inline constexpr uint32_t kMaxFilterProbes = 16;

// Version 3: the filter key of an entry is FilterKeyOfRouting(the top min(routing_bits,
// kFilterKeyBits) bits of its hash), i.e. of its routing value shifted right by routing_bits -
// kFilterKeyBits when routing_bits is larger: a merge computes it from the routing values its
// inputs store, without reading segments, and a lookup computes one key for every run of at
// least kFilterKeyBits routing bits (every automatic choice).
inline constexpr uint32_t kFilterKeyBits = 40;
// splitmix64's finalizer of r + 2^64 / phi: a bijection, so distinct values never share a key.
inline constexpr uint64_t FilterKeyOfRouting(uint64_t r) {
  uint64_t z = r + 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

}  // namespace usagedb::dedupe_format
