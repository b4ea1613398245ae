// ExportParquet (include/usagedb/export.h): snapshot → segments in (month, bucket) order →
// ParquetWriter(s) → fsync → rename. Design and measured bounds: docs/parts/export.md.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "export/parquet_writer.h"
#include "io/file_system.h"
#include "usagedb/export.h"
#include "util/clock.h"
#include "util/time_util.h"

namespace usagedb {
namespace {

constexpr int64_t kMsPerDay = 86'400'000;
// Numbers the exports of this process, so concurrent exports never share a temporary name.
std::atomic<uint64_t> next_export_id{0};
// Open pages of up to 32 per-date writers: 10K rows per page instead of 20K halves them at
// no cost in size (measured, docs/parts/export.md).
constexpr uint32_t kPartitionPageRows = 10'000;
// Progress is reported at least this often (in events) inside a segment.
constexpr uint64_t kProgressEvery = 1u << 18;

// Removes a file or a directory tree. Best effort: used to clean up our own temporaries.
void RemoveTree(FileSystem* fs, const std::string& path) {
  auto names = fs->ListDir(path);
  if (!names.ok()) {
    fs->RemoveFile(path).IgnoreError();
    return;
  }
  for (const std::string& n : *names) RemoveTree(fs, JoinPath(path, n));
  fs->RemoveDir(path).IgnoreError();
}

std::string StripTrailingSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Makes sure a scan error names the segment file (the segment reader names it in most
// messages; row materialization errors do not).
Status NameSegment(const Status& s, const std::string& path) {
  if (s.ok() || s.message().find(path) != std::string::npos) return s;
  return s.WithContext("segment " + path);
}

class Exporter {
 public:
  Exporter(DB* db, const ExportOptions& options, ExportSummary* summary)
      : db_(db),
        options_(options),
        summary_(summary),
        fs_(options.file_system ? options.file_system : FileSystem::Default()),
        clock_(options.clock ? options.clock : Clock::Real()),
        out_(StripTrailingSlashes(options.output_path)),
        tmp_(out_ + ".tmp-" + std::to_string(::getpid()) + "-" +
             std::to_string(next_export_id.fetch_add(1))) {
    open_.reserve(static_cast<size_t>(std::max(1, options.max_open_date_writers)));
  }

  Status Run() {
    const auto t0 = std::chrono::steady_clock::now();
    *summary_ = ExportSummary();
    RETURN_IF_ERROR(Validate());
    Status s = RunWithTemporaries();
    // Writers are destroyed before their files are removed.
    single_.reset();
    open_.clear();
    if (!s.ok()) RemoveTree(fs_, tmp_);
    summary_->seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
  }

 private:
  struct DateWriter {
    int64_t day = 0;
    std::string dir;
    std::unique_ptr<ParquetWriter> writer;
  };

  Status Validate() {
    const ExportOptions& o = options_;
    if (db_ == nullptr) return Status::InvalidArgument("export: no database");
    if (out_.empty()) return Status::InvalidArgument("export: empty output path");
    if (o.from_ms && o.to_ms && *o.from_ms > *o.to_ms) {
      return Status::InvalidArgument("export: from (" + std::to_string(*o.from_ms) +
                                     ") is after to (" + std::to_string(*o.to_ms) + ")");
    }
    if (o.as_of_seq && o.as_of_ms) {
      return Status::InvalidArgument("export: as_of and as_of_ms are mutually exclusive");
    }
    if (o.as_of_ms) {
      const int64_t now = clock_->NowMs();
      if (*o.as_of_ms > now) {
        return Status::InvalidArgument("export: as_of_ms " + std::to_string(*o.as_of_ms) +
                                       " is in the future (now " + std::to_string(now) + ")");
      }
    }
    if (o.rows_per_row_group == 0 || o.row_group_bytes == 0 || o.partition_row_group_bytes == 0 ||
        o.max_open_date_writers < 1) {
      return Status::InvalidArgument("export: row group and writer limits must be positive");
    }
    if (fs_->FileExists(out_)) return Status::AlreadyExists(out_ + ": already exists");
    return Status::OK();
  }

  Status RunWithTemporaries() {
    // The snapshot first: it flushes everything acknowledged up to its sequence.
    ASSIGN_OR_RETURN(std::unique_ptr<SnapshotReader> snap, db_->OpenSnapshot(options_.as_of_seq));
    summary_->snapshot_sequence = snap->sequence();

    ReadFilter filter;
    filter.account_id = options_.account_id;
    filter.from_ms = options_.from_ms;
    filter.to_ms = options_.to_ms;
    filter.as_of_ms = options_.as_of_ms;

    // Segments in (month, bucket, file) order; those outside the time range are not read.
    const std::vector<SegmentFileInfo>& segs = snap->segments();
    std::vector<size_t> order;
    for (size_t i = 0; i < segs.size(); i++) {
      if (filter.from_ms && segs[i].max_timestamp_ms < *filter.from_ms) continue;
      if (filter.to_ms && segs[i].min_timestamp_ms >= *filter.to_ms) continue;
      order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const SegmentFileInfo& x = segs[a];
      const SegmentFileInfo& y = segs[b];
      if (x.partition != y.partition) return x.partition < y.partition;
      if (x.bucket != y.bucket) return x.bucket < y.bucket;
      return x.file_number < y.file_number;
    });
    progress_.segments_total = order.size();

    // A stale temporary of ours (same pid and number, earlier crash) is replaced.
    if (fs_->FileExists(tmp_)) RemoveTree(fs_, tmp_);
    if (options_.partition_by_date) {
      RETURN_IF_ERROR(fs_->CreateDir(tmp_));
    } else {
      ParquetWriterOptions w;
      w.rows_per_row_group = options_.rows_per_row_group;
      w.row_group_bytes = options_.row_group_bytes;
      ASSIGN_OR_RETURN(single_, ParquetWriter::Create(fs_, tmp_, w));
    }

    int32_t month = 0;
    bool have_month = false;
    for (size_t i : order) {
      const SegmentFileInfo& info = segs[i];
      if (options_.partition_by_date && have_month && info.partition != month) {
        // Dates never span months: every writer of the previous month is complete.
        RETURN_IF_ERROR(FinishAllDateWriters());
      }
      month = info.partition;
      have_month = true;
      Status row_status;
      Status s = snap->ScanSegment(i, filter, [&](const Event& e) {
        row_status = options_.partition_by_date ? AppendPartitioned(e) : single_->Append(e);
        if (!row_status.ok()) return false;
        if (++progress_.events % kProgressEvery == 0) Report();
        return true;
      });
      if (s.ok()) s = row_status;
      RETURN_IF_ERROR(NameSegment(s, info.path));
      summary_->segments_read++;
      progress_.segments_done++;
      Report();
    }

    if (options_.partition_by_date) {
      RETURN_IF_ERROR(FinishAllDateWriters());
      for (const std::string& d : date_dirs_) RETURN_IF_ERROR(fs_->SyncDir(d));
      RETURN_IF_ERROR(fs_->SyncDir(tmp_));
    } else {
      RETURN_IF_ERROR(single_->Finish());
      bytes_done_ += single_->bytes_written();
      summary_->files = 1;
      single_.reset();
    }
    summary_->events = progress_.events;
    summary_->bytes_written = bytes_done_;

    // Rename into place (a file, or the whole tree) and make the new name durable. OUT is
    // checked again right before: rename(2) would replace a file created meanwhile.
    if (fs_->FileExists(out_)) return Status::AlreadyExists(out_ + ": already exists");
    RETURN_IF_ERROR(fs_->Rename(tmp_, out_));
    return fs_->SyncDir(DirName(out_));
  }

  Status AppendPartitioned(const Event& e) {
    const int64_t day = FloorDiv(e.timestamp_ms, kMsPerDay);
    if (last_ == nullptr || last_->day != day) {
      last_ = nullptr;
      for (DateWriter& w : open_) {
        if (w.day == day) {
          last_ = &w;
          break;
        }
      }
      if (last_ == nullptr) RETURN_IF_ERROR(OpenDateWriter(day));
    }
    return last_->writer->Append(e);
  }

  // Opens the next part file of `day`, finishing the oldest open writer when
  // max_open_date_writers are open. Sets last_.
  Status OpenDateWriter(int64_t day) {
    if (open_.size() >= static_cast<size_t>(options_.max_open_date_writers)) {
      RETURN_IF_ERROR(FinishDateWriter(&open_.front()));
      open_.erase(open_.begin());
    }
    const std::string dir = JoinPath(tmp_, "date=" + FormatDate(day * kMsPerDay));
    int& part = next_part_[day];
    if (part == 0) {
      RETURN_IF_ERROR(fs_->CreateDir(dir));
      date_dirs_.push_back(dir);
    }
    char name[32];
    std::snprintf(name, sizeof(name), "part-%05d.parquet", part++);
    ParquetWriterOptions w;
    w.rows_per_row_group = options_.rows_per_row_group;
    w.row_group_bytes = options_.partition_row_group_bytes;
    w.page_rows = kPartitionPageRows;
    ASSIGN_OR_RETURN(auto writer,
                     ParquetWriter::Create(fs_, JoinPath(dir, name), w, &compression_));
    open_.push_back(DateWriter{day, dir, std::move(writer)});
    last_ = &open_.back();
    return Status::OK();
  }

  Status FinishDateWriter(DateWriter* w) {
    RETURN_IF_ERROR(w->writer->Finish());
    bytes_done_ += w->writer->bytes_written();
    summary_->files++;
    w->writer.reset();
    return Status::OK();
  }

  Status FinishAllDateWriters() {
    last_ = nullptr;
    for (DateWriter& w : open_) RETURN_IF_ERROR(FinishDateWriter(&w));
    open_.clear();
    return Status::OK();
  }

  void Report() {
    if (!options_.progress) return;
    progress_.bytes = bytes_done_;
    if (single_) progress_.bytes += single_->bytes_written();
    for (const DateWriter& w : open_) progress_.bytes += w.writer->bytes_written();
    options_.progress(progress_);
  }

  DB* const db_;
  const ExportOptions& options_;
  ExportSummary* const summary_;
  FileSystem* const fs_;
  Clock* const clock_;
  const std::string out_;
  const std::string tmp_;

  ExportProgress progress_;
  uint64_t bytes_done_ = 0;  // bytes of finished files
  // One zstd context + page scratch shared by every per-date writer (declared before them so
  // it outlives them).
  ParquetCompression compression_;
  std::unique_ptr<ParquetWriter> single_;
  // Partitioned: open writers in opening order (<= max_open_date_writers), the last one used,
  // the next part number per day, and the date directories created.
  std::vector<DateWriter> open_;
  DateWriter* last_ = nullptr;
  std::map<int64_t, int> next_part_;
  std::vector<std::string> date_dirs_;
};

}  // namespace

Status ExportParquet(DB* db, const ExportOptions& options, ExportSummary* out) {
  ExportSummary local;
  Exporter exporter(db, options, out != nullptr ? out : &local);
  return exporter.Run();
}

}  // namespace usagedb
