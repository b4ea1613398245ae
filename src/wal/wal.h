// Write-ahead log files: writer (append records, sync, seal) and reader (torn tail vs
// corruption). One record = one unit: replay applies it whole or not at all.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_system.h"
#include "usagedb/status.h"
#include "wal/wal_format.h"

namespace usagedb::wal {

// "wal/000000000042.log" under db_root.
std::string WalFileName(uint64_t file_number);  // "000000000042.log"
bool ParseWalFileName(std::string_view name, uint64_t* file_number);

// Appends records to one WAL file. Not thread-safe (the db's group-commit leader owns it).
// After any failed Append or Sync the writer is sealed: every further call fails.
class Writer {
 public:
  // Creates the file, writes and syncs the header, and syncs the directory (so the file's
  // existence is durable before any acknowledgement depends on it).
  static Result<std::unique_ptr<Writer>> Create(FileSystem* fs, const std::string& dir,
                                                uint64_t file_number, uint64_t start_sequence);
  Status AddRecord(RecordType type, std::string_view payload);
  // Appends several already-framed records in one write (group commit).
  Status Sync();
  Status Close();
  bool sealed() const { return sealed_; }
  uint64_t file_number() const { return file_number_; }
  uint64_t size() const;
  const std::string& path() const { return path_; }

  // Frames one record into dst (header + payload) so a caller can batch many into one write.
  static void FrameRecord(RecordType type, std::string_view payload, std::string* dst);
  // Appends pre-framed bytes (one or more whole records).
  Status AppendFramed(std::string_view framed);

 private:
  Writer(std::unique_ptr<WritableFile> file, std::string path, uint64_t file_number)
      : file_(std::move(file)), path_(std::move(path)), file_number_(file_number) {}
  std::unique_ptr<WritableFile> file_;
  std::string path_;
  uint64_t file_number_;
  bool sealed_ = false;
};

struct Record {
  RecordType type;
  std::string payload;
  uint64_t offset;  // offset of the record header in the file
};

struct ReadResult {
  uint64_t file_number = 0;
  uint64_t start_sequence = 0;
  std::vector<Record> records;
  // Length of the valid prefix (header + whole good records). When it is below the file
  // size the rest was a torn tail (or, with repair, skipped damage).
  uint64_t valid_length = 0;
  bool torn_tail = false;
  // With repair: bytes of middle damage that were dropped.
  uint64_t repaired_bytes = 0;
};

// Reads a whole WAL file.
//  * A record that runs past end of file, a partial header at the end, or a bad record after
//    which no valid record follows (e.g. zero fill) = torn tail: reading stops there and
//    torn_tail is set (the caller truncates the file to valid_length before appending).
//  * A bad record followed by a valid record = corruption in the middle: returns Corruption
//    naming the file and offset, unless `repair` is true, in which case the damaged bytes are
//    skipped up to the next valid record and counted in repaired_bytes.
//  * A zero-length file or a file shorter than the header = torn tail with no records (a
//    crash during creation). A full header with a bad magic/crc = Corruption.
Result<ReadResult> ReadWalFile(FileSystem* fs, const std::string& path, bool repair);

}  // namespace usagedb::wal
