// Parquet export of raw events (SPEC §7): the embedded API behind `usagedb export-parquet`.
//
//   ExportOptions o;
//   o.output_path = "/data/may.parquet";
//   o.from_ms = ...; o.to_ms = ...;           // optional event-time range, half-open
//   ExportSummary summary;
//   Status s = ExportParquet(db, o, &summary);
//
// Point-in-time: the export opens a snapshot first (DB::OpenSnapshot: the WAL is fsynced and
// everything acknowledged up to its sequence S is flushed into segments), then reads only the
// segment files pinned by that snapshot. Every event acknowledged before the call is in the
// output (unflushed ones too); nothing acknowledged after it is.
//
// Atomicity: a single file is written as `OUT.tmp-<pid>-<n>`, fsynced, renamed to OUT and the
// parent directory fsynced; a partitioned tree is written into the sibling directory
// `OUT.tmp-<pid>-<n>` and renamed whole. On any failure the temporaries are removed and nothing
// is left at OUT.
//
// Memory: bounded whatever the export size (docs/parts/export.md states and measures the
// bound): one segment block decoded at a time plus the Parquet writer's row group buffers
// (single file: <= row_group_bytes + open pages; partitioned: at most max_open_date_writers
// writers of partition_row_group_bytes each, sharing one zstd context).
//
// Thread safety: ExportParquet may run concurrently with ingestion and with other exports on
// the same DB; one call uses one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "usagedb/db.h"
#include "usagedb/status.h"

namespace usagedb {

class FileSystem;
class Clock;

// Reported while an export runs (after each segment, and every ~256K events inside one).
struct ExportProgress {
  uint64_t segments_done = 0;   // segments fully read
  uint64_t segments_total = 0;  // segments the export will read (after time pruning)
  uint64_t events = 0;          // events written so far
  uint64_t bytes = 0;           // Parquet bytes written to disk so far
};

struct ExportOptions {
  // OUT: the file (or, with partition_by_date, the directory) to create. It must not exist.
  std::string output_path;
  // Event time (timestamp_ms) range, half-open [from_ms, to_ms).
  std::optional<int64_t> from_ms, to_ms;
  // Only this account.
  std::optional<std::string> account_id;
  // At most one of the two (InvalidArgument otherwise):
  //  as_of_seq: only events with commit_seq <= as_of_seq (InvalidArgument above the latest
  //             acknowledged sequence);
  //  as_of_ms:  only events with ingested_at_ms <= as_of_ms (InvalidArgument in the future).
  std::optional<uint64_t> as_of_seq;
  std::optional<int64_t> as_of_ms;
  // Write a Hive-style tree OUT/date=YYYY-MM-DD/part-NNNNN.parquet (UTC date of timestamp_ms)
  // instead of one file. No matching event: an empty directory.
  bool partition_by_date = false;
  // Called on the exporting thread; must not call back into the export.
  std::function<void(const ExportProgress&)> progress;

  // Tuning (defaults are the measured choices of docs/parts/export.md).
  uint64_t rows_per_row_group = 1'000'000;
  // Single file: a row group is also flushed when its buffered bytes reach this.
  uint64_t row_group_bytes = 64ull << 20;
  // Partitioned: the same limit for each open per-date writer.
  uint64_t partition_row_group_bytes = 2ull << 20;
  // Partitioned: at most this many per-date writers are open at once. Segments are read month
  // by month and a month has at most 31 dates, so the default never closes a date early;
  // beyond it the oldest open writer is finished and its date continues in its next part
  // file (part-00001.parquet, ...).
  int max_open_date_writers = 32;

  // Seams; nullptr = the POSIX file system / the real clock. Not owned. The file system is
  // the one OUT is written through (segments are read by the DB through its own).
  FileSystem* file_system = nullptr;
  Clock* clock = nullptr;
};

struct ExportSummary {
  uint64_t events = 0;             // rows written
  uint64_t segments_read = 0;      // segment files scanned
  uint64_t bytes_written = 0;      // total size of the Parquet files
  uint64_t files = 0;              // Parquet files written (0: an empty partitioned export)
  double seconds = 0;              // wall time of the whole export, snapshot included
  uint64_t snapshot_sequence = 0;  // the commit sequence the export is as of
  bool empty() const { return events == 0; }
};

// Exports the matching raw events of `db` to options.output_path (see above).
// Errors: InvalidArgument (bad options: empty path, from > to, both as-of, as_of_ms in the
// future, as_of_seq above the latest sequence); AlreadyExists (OUT exists); Corruption naming
// the segment file (a missing or damaged segment: the export fails, it never skips data);
// IOError from the file system. On error *out is left with what was counted so far and no
// file is left at OUT.
Status ExportParquet(DB* db, const ExportOptions& options, ExportSummary* out);

}  // namespace usagedb
