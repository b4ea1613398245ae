// The WAL reader: torn tail vs corruption in the middle.
//
// A bad record (short header, length over the maximum or past end of file, checksum
// mismatch) is a torn tail exactly when no valid record starts at any later byte offset.
// The forward scan is byte by byte; it runs only after a crash (or on damage), and the
// range checksums it needs cost O(kBlock) each thanks to RangeCrc, so a multi-megabyte torn
// record does not make it quadratic. A torn prefix is never glued to a later record:
// records are only ever decoded at offsets where a whole valid record starts. Valid records
// after the bad bytes make it damage in the middle, unless every one of them says (by its
// durable_length) that it was written before the bad offset was synced: then it is the
// unsynced tail, persisted out of order by an OS crash, and is torn too.
//
// Version 2 records carry their file's tag (and its number in the checksum): in a recycled
// file the old file's bytes past the last record are not records of this file, and the
// forward scan only considers offsets where the tag matches (a substring search), so a
// recycled file's tens of megabytes of old records cost milliseconds, not a byte-by-byte crc
// scan.
#include <optional>

#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/range_crc.h"
#include "wal/wal.h"

namespace usagedb::wal {
namespace {

bool IsKnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(RecordType::kUnit) &&
         t <= static_cast<uint8_t>(RecordType::kDurableVoid);
}

bool IsDurableType(uint8_t t) {
  return t == static_cast<uint8_t>(RecordType::kDurableUnit) ||
         t == static_cast<uint8_t>(RecordType::kDurableVoid);
}

// How records of one file are framed (by the header's version).
struct Layout {
  uint32_t header_size = kRecordHeaderSize;  // the type byte is its last byte
  bool tagged = true;                        // version 2: file tag + seeded checksum
  uint32_t tag = 0;
  uint32_t crc_seed = 0;
  char tag_bytes[4] = {};
};

Layout MakeLayout(uint32_t version, uint64_t file_number) {
  Layout l;
  if (version == kVersionV1) {
    l.header_size = kRecordHeaderSizeV1;
    l.tagged = false;
    return l;
  }
  l.tag = static_cast<uint32_t>(file_number);
  l.crc_seed = RecordCrcSeed(file_number);
  EncodeFixed32(l.tag_bytes, l.tag);
  return l;
}

struct Probe {
  bool valid = false;
  uint32_t length = 0;
  std::string reason;  // why it is not valid (only when !valid)
};

// Checks the record starting at `pos`. `range_crc` may be null (checksum computed directly).
Probe ProbeRecord(std::string_view data, size_t pos, const Layout& layout,
                  const internal::RangeCrc* range_crc, bool want_reason) {
  Probe p;
  const size_t remaining = data.size() - pos;
  if (remaining < layout.header_size) {
    if (want_reason) {
      p.reason = "partial record header (" + std::to_string(remaining) + " of " +
                 std::to_string(layout.header_size) + " bytes)";
    }
    return p;
  }
  const char* h = data.data() + pos;
  if (layout.tagged && DecodeFixed32(h + 8) != layout.tag) {
    if (want_reason) {
      p.reason = "record of file tag " + std::to_string(DecodeFixed32(h + 8)) +
                 ", not this file's " + std::to_string(layout.tag) +
                 " (a recycled file's old bytes, or damage)";
    }
    return p;
  }
  p.length = DecodeFixed32(h);
  if (p.length > kMaxRecordSize) {
    if (want_reason) {
      p.reason = "record length " + std::to_string(p.length) + " exceeds the maximum " +
                 std::to_string(kMaxRecordSize);
    }
    return p;
  }
  if (p.length > remaining - layout.header_size) {
    if (want_reason) {
      p.reason = "record length " + std::to_string(p.length) + " runs past end of file (" +
                 std::to_string(remaining - layout.header_size) + " bytes left)";
    }
    return p;
  }
  const uint32_t expected = crc32c::Unmask(DecodeFixed32(h + 4));
  const size_t crc_pos = pos + layout.header_size - 1;    // the type byte
  const size_t crc_len = 1 + static_cast<size_t>(p.length);  // type byte + payload
  uint32_t actual =
      range_crc ? range_crc->Value(crc_pos, crc_len) : crc32c::Value(data.data() + crc_pos, crc_len);
  if (layout.tagged) actual = internal::Crc32cCombine(layout.crc_seed, actual, crc_len);
  if (actual != expected) {
    if (want_reason) p.reason = "record checksum mismatch";
    return p;
  }
  p.valid = true;
  return p;
}

// The offset of the first valid record at or after `from`, or data.size().
size_t NextValid(std::string_view data, size_t from, const Layout& layout,
                 const internal::RangeCrc& range_crc) {
  if (layout.tagged) {
    // Only offsets whose tag matches can start a record of this file.
    const std::string_view tag(layout.tag_bytes, sizeof(layout.tag_bytes));
    for (size_t t = data.find(tag, from + 8); t != std::string_view::npos;
         t = data.find(tag, t + 1)) {
      if (ProbeRecord(data, t - 8, layout, &range_crc, /*want_reason=*/false).valid) return t - 8;
    }
    return data.size();
  }
  for (size_t q = from; q + layout.header_size <= data.size(); ++q) {
    if (ProbeRecord(data, q, layout, &range_crc, /*want_reason=*/false).valid) return q;
  }
  return data.size();
}

// True when every valid record from `first` (a valid record) to the end of the file, past any
// further bad bytes, is a kDurable* record written while offset `bad` was not yet durable
// (durable_length <= bad); *count = how many. Such records can only be an unsynced tail that
// reached the disk out of order: had any later write been acknowledged, a sync would have
// made `bad` durable before it, and a record written after that sync says so.
bool OnlyUnsyncedAfter(std::string_view data, size_t first, size_t bad, const Layout& layout,
                       const internal::RangeCrc& range_crc, uint64_t* count) {
  *count = 0;
  size_t pos = first;
  while (pos < data.size()) {
    const Probe p = ProbeRecord(data, pos, layout, &range_crc, /*want_reason=*/false);
    if (!p.valid) {
      pos = NextValid(data, pos + 1, layout, range_crc);
      continue;
    }
    const uint8_t type = static_cast<uint8_t>(data[pos + layout.header_size - 1]);
    if (!IsDurableType(type) || p.length < kDurableLengthSize ||
        DecodeFixed64(data.data() + pos + layout.header_size) > bad) {
      return false;
    }
    ++*count;
    pos += layout.header_size + p.length;
  }
  return true;
}

}  // namespace

Result<ReadResult> ReadWalFile(FileSystem* fs, const std::string& path, bool repair) {
  std::string contents;
  RETURN_IF_ERROR(fs->ReadFileToString(path, &contents));
  const std::string_view data = contents;
  ReadResult result;

  uint64_t named_number = 0;
  const bool named = ParseWalFileName(BaseName(path), &named_number);
  if (data.size() < kHeaderSize) {
    // A crash while the file was being created: nothing in it was ever acknowledged.
    result.file_number = named ? named_number : 0;
    result.torn_tail = true;
    return result;
  }

  auto corrupt = [&path](uint64_t offset, const std::string& what) {
    return Status::Corruption(path + ": offset " + std::to_string(offset) + ": " + what);
  };
  if (std::string_view(data.data(), sizeof(kMagic)) != std::string_view(kMagic, sizeof(kMagic))) {
    return corrupt(0, "bad WAL file magic");
  }
  const uint32_t header_crc = crc32c::Unmask(DecodeFixed32(data.data() + kHeaderSize - 4));
  if (crc32c::Value(data.data(), kHeaderSize - 4) != header_crc) {
    return corrupt(kHeaderSize - 4, "WAL file header checksum mismatch");
  }
  const uint32_t version = DecodeFixed32(data.data() + 8);
  if (version != kVersion && version != kVersionV1) {
    return corrupt(8, "unsupported WAL format version " + std::to_string(version) +
                          " (this build reads versions " + std::to_string(kVersionV1) + " and " +
                          std::to_string(kVersion) + ")");
  }
  result.file_number = DecodeFixed64(data.data() + 12);
  result.start_sequence = DecodeFixed64(data.data() + 20);
  if (named && named_number != result.file_number) {
    return corrupt(12, "WAL header names file number " + std::to_string(result.file_number) +
                           " but the file name says " + std::to_string(named_number));
  }

  result.version = version;
  const Layout layout = MakeLayout(version, result.file_number);
  std::optional<internal::RangeCrc> range_crc;  // built on the first bad record
  size_t pos = kHeaderSize;
  result.valid_length = pos;
  while (pos < data.size()) {
    Probe p = ProbeRecord(data, pos, layout, nullptr, /*want_reason=*/true);
    if (p.valid) {
      const uint8_t type = static_cast<uint8_t>(data[pos + layout.header_size - 1]);
      if (!IsKnownType(type)) {
        return corrupt(pos, "WAL record of unknown type " + std::to_string(type) +
                                " (written by a newer version?)");
      }
      std::string_view payload = data.substr(pos + layout.header_size, p.length);
      RecordType reported = static_cast<RecordType>(type);
      uint64_t durable_length = UINT64_MAX;
      if (IsDurableType(type)) {
        if (payload.size() < kDurableLengthSize) {
          return corrupt(pos, "WAL record of type " + std::to_string(type) +
                                  " is shorter than its durable_length prefix");
        }
        durable_length = DecodeFixed64(payload.data());
        payload.remove_prefix(kDurableLengthSize);
        reported = type == static_cast<uint8_t>(RecordType::kDurableUnit) ? RecordType::kUnit
                                                                           : RecordType::kVoid;
      }
      result.records.push_back(Record{reported, std::string(payload), pos, durable_length});
      pos += layout.header_size + p.length;
      result.valid_length = pos;
      continue;
    }
    // A bad record: find the next offset where a whole valid record starts.
    if (!range_crc) range_crc.emplace(data);
    const size_t next = NextValid(data, pos + 1, layout, *range_crc);
    if (next == data.size()) {
      result.torn_tail = true;  // nothing valid follows: the write in flight at a crash
      break;
    }
    uint64_t unsynced = 0;
    if (OnlyUnsyncedAfter(data, next, pos, layout, *range_crc, &unsynced)) {
      result.torn_tail = true;  // the unsynced writes in flight, persisted out of order
      result.unsynced_records_dropped = unsynced;
      break;
    }
    if (!repair) {
      return corrupt(pos, p.reason + ", and a valid record follows at offset " +
                              std::to_string(next) +
                              " (damage in the middle of the WAL; repair skips it)");
    }
    result.repaired_bytes += next - pos;
    pos = next;
  }
  return result;
}

}  // namespace usagedb::wal
