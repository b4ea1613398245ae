// ParquetWriter: streams usage events into one Parquet file with the flat 15-column schema of
// SPEC §7 (see export/parquet_format.h for the columns and docs/parts/parquet.md for the
// layout).
//
// Usage:
//   ASSIGN_OR_RETURN(auto w, ParquetWriter::Create(fs, "out.parquet.tmp", {}));
//   for (const Event& e : events) RETURN_IF_ERROR(w->Append(e));
//   RETURN_IF_ERROR(w->Finish());   // footer, Sync, Close
//   // the caller renames the temporary file into place and syncs the directory.
//
// Memory bound: the writer holds the current row group as compressed pages plus, per column,
// one uncompressed page (<= page_bytes + one value) and one dictionary (<= dictionary_bytes,
// plus a hash table of about 24 bytes per entry), and one page's scratch (encoded +
// compressed) with the zstd context, possibly shared with other writers (ParquetCompression).
// A row group is flushed to the file when it reaches rows_per_row_group rows or when its
// buffered bytes reach row_group_bytes, so the peak is about row_group_bytes + 15 * (page_bytes
// + 2 * dictionary_bytes) + one zstd context, whatever the number of events (about 110 MiB with
// the defaults; typically far less).
//
// Thread safety: none; one thread uses a writer at a time.
// Errors: the first failed call leaves the writer failed; later calls return that error. A
// writer destroyed without a successful Finish() leaves a partial file the caller removes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/file_system.h"
#include "usagedb/event.h"
#include "usagedb/status.h"

namespace usagedb {

struct ParquetWriterOptions {
  // A row group is flushed when it holds this many rows...
  uint64_t rows_per_row_group = 1'000'000;
  // ...or when its buffered bytes (compressed pages + dictionaries + open pages) reach this.
  uint64_t row_group_bytes = 64ull << 20;
  // A data page is closed when its uncompressed values reach page_bytes or it holds page_rows
  // values (nulls included).
  uint32_t page_bytes = 1u << 20;
  uint32_t page_rows = 20'000;
  // A dictionary-encoded column chunk whose dictionary (PLAIN-encoded) passes this size writes
  // the rest of its values PLAIN (the dictionary page keeps the entries gathered so far).
  uint32_t dictionary_bytes = 1u << 20;
  // zstd compression level of every page.
  int zstd_level = 3;
  // Finish() fsyncs the file before closing it.
  bool sync_on_finish = true;
  // FileMetaData.created_by.
  std::string created_by = "usagedb version 0.1.0";
};

namespace parquet {
class ColumnWriter;
class ZstdCompressor;
}  // namespace parquet

// Page compression state (one zstd context + the scratch buffers of one page, about 1.5 MiB
// at level 3 with 1 MiB pages) that several writers can share when one thread drives them all
// (a date-partitioned export keeps up to 32 writers open). Not thread-safe.
class ParquetCompression {
 public:
  explicit ParquetCompression(int zstd_level = 3);
  ~ParquetCompression();
  ParquetCompression(const ParquetCompression&) = delete;
  ParquetCompression& operator=(const ParquetCompression&) = delete;

 private:
  friend class ParquetWriter;
  std::unique_ptr<parquet::ZstdCompressor> zstd_;
};

class ParquetWriter {
 public:
  // Creates (truncates) `path` on `fs` and writes the leading magic. `fs` must outlive the
  // writer. InvalidArgument for options out of range (zero rows, bytes or page sizes).
  // `shared` (optional, not owned, must outlive the writer): compress with it instead of a
  // context of the writer's own; its level is used and options.zstd_level is ignored. Writers
  // sharing one must be used from one thread.
  static Result<std::unique_ptr<ParquetWriter>> Create(FileSystem* fs, const std::string& path,
                                                       ParquetWriterOptions options = {},
                                                       ParquetCompression* shared = nullptr);

  ParquetWriter(const ParquetWriter&) = delete;
  ParquetWriter& operator=(const ParquetWriter&) = delete;
  ~ParquetWriter();

  // Buffers one event into the current row group, flushing the row group when full.
  // REQUIRES: the event's strings are valid UTF-8 (SPEC §1 validation happened upstream).
  // InvalidArgument when |quantity| > 10^38 - 1 (it would not fit DECIMAL(38,0)); the writer
  // stays usable after that error (nothing was buffered).
  Status Append(const Event& event);

  // Flushes the last row group, writes the footer, syncs (per options) and closes the file.
  // With no rows appended it writes a valid zero-row file. Calling it twice is an error.
  Status Finish();

  // Events accepted by Append (buffered rows included).
  uint64_t rows_written() const { return rows_written_; }
  // Bytes appended to the file so far (after Finish: the file size).
  uint64_t bytes_written() const { return bytes_written_; }
  // Row groups flushed to the file so far.
  uint64_t row_groups_written() const { return row_groups_written_; }
  // Bytes the current row group holds in memory (compressed pages, dictionaries, open pages).
  uint64_t buffered_bytes() const;

 private:
  ParquetWriter(std::string path, ParquetWriterOptions options,
                std::unique_ptr<WritableFile> file, ParquetCompression* shared);

  Status FlushRowGroup();
  Status WriteFooter();
  Status Fail(Status s);

  struct RowGroupInfo;

  const std::string path_;
  const ParquetWriterOptions options_;
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<parquet::ZstdCompressor> own_zstd_;  // when not shared
  parquet::ZstdCompressor* zstd_ = nullptr;
  std::vector<std::unique_ptr<parquet::ColumnWriter>> columns_;
  std::vector<RowGroupInfo> row_groups_;
  std::string scratch_;  // canonical dimensions of the event being appended
  Status status_;        // sticky first error
  bool finished_ = false;
  uint64_t rows_in_group_ = 0;
  uint64_t row_groups_written_ = 0;
  uint64_t rows_written_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace usagedb
