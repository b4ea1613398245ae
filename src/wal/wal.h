// Write-ahead log files: writer (append records, sync, seal) and reader (torn tail vs
// corruption). One record = one unit: replay applies it whole or not at all.
// Format: docs/format.md, section "WAL" (constants in wal/wal_format.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_system.h"
#include "usagedb/status.h"
#include "wal/wal_format.h"

namespace usagedb::wal {

// "wal/000000000042.log" under db_root.
// At least 12 digits, zero-padded: WalFileName(42) == "000000000042.log".
std::string WalFileName(uint64_t file_number);  // "000000000042.log"
// Accepts exactly the names WalFileName produces (12-20 digits, no extra leading zeros
// beyond the padding, ".log"); false for anything else, *file_number untouched.
bool ParseWalFileName(std::string_view name, uint64_t* file_number);
// "000000000042.recycle.tmp": retired WAL file 42 waiting to be recycled (Writer::
// CreateRecycled). A temporary: replay never reads it, recovery removes it.
std::string WalRecycleFileName(uint64_t file_number);

// The 32-byte file header (wal_format.h) that Writer::Create writes. Exposed for tests and
// tools that build WAL files byte by byte (version kVersionV1 for a version 1 file).
std::string EncodeFileHeader(uint64_t file_number, uint64_t start_sequence,
                             uint32_t version = kVersion);
// crc32c(file_number as fixed64): where a version 2 record's checksum starts.
uint32_t RecordCrcSeed(uint64_t file_number);
// Frames a record as version 1 files did (no file tag, unseeded checksum): for tests and tools
// that build old files; this build writes version 2 only.
void FrameRecordV1(RecordType type, std::string_view payload, std::string* dst);

// Appends records to one WAL file. Not thread-safe (the db's group-commit leader owns it).
// After any failed Append or Sync the writer is sealed: every further call fails.
//
// Invariant: bytes are appended only while !sealed(); a sealed file is never appended to
// again (SPEC §2.3), the db writes its void record to a new file.
class Writer {
 public:
  // Creates the file (truncating any file of that name), writes and syncs the header, and
  // syncs the directory (so the file's existence is durable before any acknowledgement
  // depends on it). On error no Writer is returned; a partial file may remain, which
  // ReadWalFile reports as a torn tail with no records when shorter than the header.
  static Result<std::unique_ptr<Writer>> Create(FileSystem* fs, const std::string& dir,
                                                uint64_t file_number, uint64_t start_sequence);
  // As Create, but over an existing file at `recycled_path` in `dir` (a retired WAL file):
  // writes the header over its first bytes and syncs it, renames the file to this number's
  // name and syncs the directory. The old bytes past the header stay until overwritten, so
  // appends overwrite allocated blocks and a Sync writes no file-size update; the reader
  // tells the old bytes from this file's records by the file tag. On error no Writer is
  // returned and the file remains under one of the two names (a recycled file's name, which
  // recovery removes, or this number's with a synced header and no records).
  static Result<std::unique_ptr<Writer>> CreateRecycled(FileSystem* fs, const std::string& dir,
                                                        const std::string& recycled_path,
                                                        uint64_t file_number,
                                                        uint64_t start_sequence);
  // Reopens an existing WAL file for appending after recovery: truncates it to
  // `valid_length` (ReadResult::valid_length of a read without repaired damage), syncs the
  // file and the directory, and positions the writer at its end.
  // REQUIRES: valid_length >= kHeaderSize and the file's first valid_length bytes are a
  // header plus whole valid records (never call it after a read that repaired damage:
  // rewrite the records to a new file instead).
  static Result<std::unique_ptr<Writer>> OpenForAppend(FileSystem* fs, const std::string& dir,
                                                       uint64_t file_number, uint64_t valid_length);

  // Frames and appends one record (not synced). InvalidArgument (and not sealed) when
  // payload.size() > kMaxRecordSize.
  Status AddRecord(RecordType type, std::string_view payload);
  // Makes every record appended so far durable (fdatasync).
  Status Sync();
  // Closes the file without syncing it. Always releases the file; returns the sealed error
  // when the writer was sealed. Every call after Close fails.
  Status Close();
  bool sealed() const { return sealed_; }
  // Bytes of the file known durable: the header after Create, valid_length after
  // OpenForAppend, the size at the last successful Sync. The durable_length that kDurableUnit
  // and kDurableVoid records written next carry.
  uint64_t synced_size() const { return synced_size_; }
  uint64_t file_number() const { return file_number_; }
  // Bytes in the file including the header and unsynced appends.
  uint64_t size() const;
  const std::string& path() const { return path_; }

  // Frames one record of WAL file `file_number` (its file tag and checksum seed) into dst
  // (header + payload) so a caller can batch many into one write. Appends to *dst (does not
  // clear it). REQUIRES: payload.size() <= kMaxRecordSize.
  static void FrameRecord(uint64_t file_number, RecordType type, std::string_view payload,
                          std::string* dst);
  // As FrameRecord with payload = head + tail, without building the payload first (the group
  // commit leader frames a unit header and a writer-encoded body with one copy of the body).
  static void FrameRecord(uint64_t file_number, RecordType type, std::string_view head,
                          std::string_view tail, std::string* dst);
  // As above with tail_crc == crc32c::Value(tail) computed by the caller (a writer thread, in
  // parallel), so the framing thread checksums only the type byte and head and combines the
  // two CRCs (O(log |tail|)); bytes are identical. REQUIRES: tail_crc is that value.
  static void FrameRecord(uint64_t file_number, RecordType type, std::string_view head,
                          std::string_view tail, uint32_t tail_crc, std::string* dst);
  // The first part of the FrameRecord(file_number, type, head, tail, tail_crc) output: the
  // record header and head, without the tail. It and then `tail` are the record's bytes (the
  // group commit leader writes them with AppendFramedV, not copying the writers' bodies).
  static void FrameRecordWithoutTail(uint64_t file_number, RecordType type, std::string_view head,
                                     size_t tail_size, uint32_t tail_crc, std::string* dst);
  // Appends pre-framed bytes (one or more whole records) in one write (group commit).
  // REQUIRES: `framed` is a concatenation of FrameRecord outputs.
  Status AppendFramed(std::string_view framed);
  // As AppendFramed(concatenation of parts), written with one gathered write.
  Status AppendFramedV(std::span<const std::string_view> parts);

 private:
  Writer(std::unique_ptr<WritableFile> file, std::string path, uint64_t file_number)
      : file_(std::move(file)), path_(std::move(path)), file_number_(file_number) {}
  Status CheckWritable() const;
  Status Seal(const Status& cause, std::string_view what);

  std::unique_ptr<WritableFile> file_;
  std::string path_;
  uint64_t file_number_;
  bool sealed_ = false;
  bool closed_ = false;
  uint64_t synced_size_ = 0;
};

struct Record {
  RecordType type;      // kUnit or kVoid (kDurable* records are reported as these)
  std::string payload;  // without a kDurable* record's durable_length prefix
  uint64_t offset;      // offset of the record header in the file
  // A kDurable* record's durable_length; UINT64_MAX for kUnit / kVoid records (unknown).
  uint64_t durable_length = UINT64_MAX;
};

struct ReadResult {
  // From the file header; when the file is shorter than the header, from the file name
  // (0 when the name is not a WAL file name) and start_sequence is 0.
  uint64_t file_number = 0;
  uint64_t start_sequence = 0;
  uint32_t version = 0;  // from the header (0 when the file is shorter than the header)
  std::vector<Record> records;
  // Length of the valid prefix (header + whole good records). When it is below the file
  // size the rest was a torn tail (or, with repair, skipped damage).
  // With repair and repaired_bytes > 0 the prefix contains the skipped damage: such a file
  // must be rewritten or retired, never appended to.
  uint64_t valid_length = 0;
  bool torn_tail = false;
  // With repair: bytes of middle damage that were dropped.
  uint64_t repaired_bytes = 0;
  // A torn tail whose bad bytes were followed by valid records written before the bad
  // offset was durable (an unsynced tail persisted out of order): those records, dropped.
  uint64_t unsynced_records_dropped = 0;
};

// Reads a whole WAL file.
//  * A record that runs past end of file, a partial header at the end, or a bad record after
//    which no valid record follows (e.g. zero fill) = torn tail: reading stops there and
//    torn_tail is set (the caller truncates the file to valid_length before appending).
//  * A bad record at offset p after which every valid record is a kDurable* record whose
//    durable_length <= p = torn tail too: those records were written while p was not yet
//    synced (an OS crash persisted the unsynced tail out of order). Reading stops at p and
//    unsynced_records_dropped counts them.
//  * A bad record followed by any other valid record = corruption in the middle: returns
//    Corruption naming the file and offset, unless `repair` is true, in which case the
//    damaged bytes are skipped up to the next valid record and counted in repaired_bytes.
//  * A zero-length file or a file shorter than the header = torn tail with no records (a
//    crash during creation). A full header with a bad magic/crc = Corruption.
//  * A record whose checksum is valid but whose type is unknown (written by a newer version)
//    = Corruption naming the type, file and offset, with or without repair.
//  * A header whose file number differs from the number in the file's name = Corruption.
// A "valid record" is a complete record header + payload inside the file, with length <=
// kMaxRecordSize and a matching checksum. The whole file is read into memory.
// Thread-safe (no shared state).
Result<ReadResult> ReadWalFile(FileSystem* fs, const std::string& path, bool repair);

}  // namespace usagedb::wal
