// DBImpl: the write path (validate → reserve → classify → group-committed WAL unit → memtable
// → publish), the background flusher (memtable → segments + dedupe run + conflict log →
// manifest → WAL retirement), recovery and the raw read path.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "db/reservations.h"
#include "db/unit_codec.h"
#include "dedupe/dedupe.h"
#include "io/file_system.h"
#include "manifest/manifest.h"
#include "memtable/memtable.h"
#include "segment/segment.h"
#include "usagedb/db.h"
#include "util/clock.h"
#include "util/int128.h"
#include "wal/wal.h"

namespace usagedb {

// Directory layout under db_root (docs/format.md, "Directory layout").
inline constexpr char kWalDir[] = "wal";
inline constexpr char kSegmentDir[] = "segments";
inline constexpr char kDedupeDir[] = "dedupe";
inline constexpr char kConflictDir[] = "conflicts";
inline constexpr char kLockFile[] = "LOCK";

// A read's deadline (QueryRequest/ListRequest/ConflictListRequest::deadline), shared by the
// threads of one parallel scan: the first to see the clock past it sets `expired_`, and the
// others stop at their next check without reading the clock. Thread-safe.
class ReadDeadline {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  explicit ReadDeadline(std::optional<TimePoint> at) : at_(at) {}
  ReadDeadline(const ReadDeadline&) = delete;
  ReadDeadline& operator=(const ReadDeadline&) = delete;

  // OK, or Unavailable("timeout: ...") once the deadline has passed (and from then on).
  Status Check() {
    if (!at_) return Status::OK();
    if (!expired_.load(std::memory_order_relaxed)) {
      if (std::chrono::steady_clock::now() <= *at_) return Status::OK();
      expired_.store(true, std::memory_order_relaxed);
    }
    return Status::Unavailable("timeout: the read passed its deadline");
  }

 private:
  const std::optional<TimePoint> at_;
  std::atomic<bool> expired_{false};
};

// A committed segment and its reader. Thread-safe. Warm() decodes the footer and zone maps
// without keeping the file open (DB open does it for every segment, so no query pays a footer
// decode); Reader() opens the file the first time blocks are to be read, so a segment deleted
// before then still fails the query with a Corruption naming the file.
class SegmentHandle {
 public:
  SegmentHandle(FileSystem* fs, std::string path, SegmentMeta meta)
      : fs_(fs), path_(std::move(path)), meta_(std::move(meta)) {}
  const SegmentMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  Result<const SegmentReader*> Reader();
  // Decodes the footer if not yet done. Errors are not reported here: the handle stays cold
  // and Reader() reports them. Returns the footer's memory usage in bytes (0 when cold).
  size_t Warm();

 private:
  FileSystem* fs_;
  std::string path_;
  SegmentMeta meta_;
  std::mutex mu_;
  std::unique_ptr<SegmentReader> reader_;
};

// Adds q to a 128-bit partial sum of a run of rows; when that would overflow, the partial sum
// moves into *wide first. Exact; the caller adds the final partial sum to *wide.
inline void AddToRun(int128 q, int128* run, WideSum* wide) {
  int128 next;
  if (__builtin_add_overflow(*run, q, &next)) [[unlikely]] {
    wide->Add(*run);
    *run = q;
  } else {
    *run = next;
  }
}

// Immutable view of committed files + live memtables. Readers pin one with a sequence.
struct Version {
  ManifestState manifest;
  std::vector<std::shared_ptr<SegmentHandle>> segments;
  std::vector<std::shared_ptr<MemTable>> memtables;  // oldest first; the last is the active one
};

class DBImpl : public DB {
 public:
  DBImpl(const Options& options, std::string dir);
  ~DBImpl() override;

  Status OpenImpl();

  Status Ingest(std::vector<Event> events, const IngestOptions& options,
                IngestResult* result) override;
  Status IngestJson(std::string_view body, bool ndjson, IngestResult* result) override;
  Status Aggregate(const ReadFilter& filter, bool group_by_account,
                   AggregateResult* result) override;
  Status ScanEvents(const ReadFilter& filter,
                    const std::function<bool(const Event&)>& visit) override;
  Status Query(const QueryRequest& request, QueryResult* result) override;
  Status ListEvents(const ListRequest& request, ListResult* result) override;
  Status ListConflicts(const ConflictListRequest& request, ConflictListResult* result) override;
  Result<std::unique_ptr<SnapshotReader>> OpenSnapshot(std::optional<uint64_t> as_of_seq) override;
  Status Flush() override;
  DbStats Stats() override;
  const RecoveryReport& recovery_report() const override { return report_; }
  uint64_t LastSequence() override;
  Status Close() override;

 private:
  // One batch (or a barrier) waiting in the group-commit queue.
  struct PendingUnit {
    enum class Kind { kUnit, kSwitchMemtable, kSyncWal } kind = Kind::kUnit;
    UnitBody body;
    std::vector<RowMeta> rows;  // where each accepted event's record lies in body.view()
    std::vector<ConflictEntry> conflicts;
    int64_t request_time_ms = 0;
    // crc32c::Value(body.view()), computed by the writer so the leader only combines it.
    uint32_t body_crc = 0;
    // Outputs.
    bool done = false;
    Status status;
    uint64_t seq = 0;
    int64_t ingested_at_ms = 0;
    std::condition_variable cv;
  };
  struct WalFileInfo {
    uint64_t number = 0;
    uint64_t max_seq = 0;
  };
  struct Snapshot {
    std::shared_ptr<const Version> version;
    uint64_t seq = 0;
  };

  std::string Path(std::string_view sub) const { return JoinPath(dir_, sub); }

  // Write path.
  Status Commit(PendingUnit* unit);
  Status MakeRoomForWrite(std::unique_lock<std::mutex>& lock, bool force_switch);
  Status SwitchMemtableLocked();
  void WaitForInsertsLocked(std::unique_lock<std::mutex>& lock);
  Status RecoverWalAfterErrorLocked();
  Status NewWalFileLocked();
  void RecordSyncLatency(int64_t ns);

  // Background work.
  void BackgroundLoop();
  Status FlushOldestImmutable();
  Status WaitForFlushed(uint64_t seq);

  // Dedupe runs reference segment rows; this resolves them (and merges runs when they pile up).
  friend class SegmentRowResolver;
  std::shared_ptr<SegmentHandle> SegmentByNumber(uint64_t file_number);
  Status MaybeMergeDedupeRuns();

  // Recovery.
  Status Recover();
  Status ReplayWal(const std::vector<uint64_t>& wal_numbers, uint64_t flushed_sequence);
  // Removes temporaries, retired WAL files (below min_wal_file_number) and every segment,
  // dedupe run and conflict log not in `live`.
  Status RemoveTemporariesAndOrphans(const std::set<ManifestFileRef>& live,
                                     uint64_t min_wal_file_number);
  // Deletes the files the manifest store released (no retained generation references them).
  void RemoveReleasedFiles();

  // Reads.
  Snapshot GetSnapshot(const std::optional<uint64_t>& as_of);
  friend class SnapshotReaderImpl;
  Status ScanInternal(const ReadFilter& filter, ColumnMask columns, const Snapshot& snap,
                      const std::function<bool(const DecodedBlock&, size_t)>& visit_row,
                      const std::function<bool(const Event&)>& visit_mem,
                      const SegmentHandle* only_segment = nullptr,
                      // Called after each segment block is read, before its rows are visited
                      // (the DecodedBlock object is reused from block to block).
                      const std::function<void()>& on_new_block = nullptr,
                      ReadDeadline* deadline = nullptr);

  // The block-at-a-time scan under ScanInternal. visit_block gets each segment block's rows
  // that pass `filter` as ascending row indexes (rows[0..n), n >= 1); the block holds
  // `columns` plus whatever the filter needed, and only those (the commit_seq and
  // timestamp_ms columns are decoded only when the block's zone map cannot prove every row in
  // range, so a visitor needing them must ask). Segments are split among `parts` callers by
  // index: part p visits segments i with i % parts == p, and part 0 alone visits the
  // memtables. Returning false from a visitor stops this part's scan. With a `deadline`,
  // the scan checks it before each segment and block and every 1,024 memtable rows, and
  // returns its timeout status once it has passed (the caller discards what it gathered).
  // Which share of a snapshot one ScanBlocks call visits: segments i % parts == part and (part
  // 0) the memtables; with by_bucket the segments whose bucket % parts == part and no
  // memtables (so parts see disjoint accounts); memtables_only: just the memtables.
  struct ScanPart {
    const SegmentHandle* only_segment = nullptr;
    size_t part = 0;
    size_t parts = 1;
    ReadDeadline* deadline = nullptr;
    bool by_bucket = false;
    bool memtables_only = false;
  };
  using BlockVisitor =
      std::function<bool(const DecodedBlock& block, const uint32_t* rows, size_t n)>;
  Status ScanBlocks(const ReadFilter& filter, ColumnMask columns, const Snapshot& snap,
                    const BlockVisitor& visit_block,
                    const std::function<bool(const Event&)>& visit_mem, const ScanPart& part);

  std::shared_ptr<const Version> CurrentVersion();
  void InstallVersionLocked(std::shared_ptr<const Version> v);

  const Options options_;
  const std::string dir_;
  FileSystem* fs_;
  Clock* clock_;
  std::unique_ptr<FileLock> lock_;
  std::unique_ptr<ManifestStore> manifest_store_;
  std::unique_ptr<DedupeIndex> dedupe_;
  ReservationTable reservations_;
  RecoveryReport report_;

  std::mutex mu_;
  std::shared_ptr<const Version> version_;  // guarded by mu_
  // Every committed segment by file number, including those a flush is about to publish
  // (added before its dedupe run becomes visible). Guarded by mu_.
  std::unordered_map<uint64_t, std::shared_ptr<SegmentHandle>> segments_by_number_;
  std::shared_ptr<MemTable> active_;        // guarded by mu_ (the leader appends)
  std::deque<std::shared_ptr<MemTable>> imms_;
  std::deque<PendingUnit*> writers_;
  std::unique_ptr<wal::Writer> wal_;
  std::deque<WalFileInfo> wal_files_;  // oldest first; the last is wal_'s
  // Retired WAL files waiting to be overwritten (paths of wal/<n>.recycle.tmp); guarded by mu_.
  std::vector<std::string> wal_recycle_pool_;
  bool wal_broken_ = false;
  Status wal_error_;
  std::vector<uint64_t> pending_voids_;
  std::string unsynced_framed_;  // fast mode: units written since the last good sync
  // The group-commit leader's record headers and its gathered write's parts (leader only).
  std::string leader_framed_;
  std::vector<std::string_view> leader_parts_;
  uint64_t last_seq_ = 0;        // highest sequence assigned
  uint64_t visible_seq_ = 0;     // every unit <= this is in a memtable or segment
  // A group's memtable inserts overlap the next group's WAL write and fsync (Commit): a group
  // takes a ticket when it leaves the writer queue and inserts in ticket order, so rows stay
  // in sequence order and visible_seq_ only grows. A memtable switch first waits for every
  // ticket (WaitForInsertsLocked): an immutable memtable has all its rows. Guarded by mu_.
  uint64_t insert_tickets_ = 0;    // tickets handed out
  uint64_t inserted_tickets_ = 0;  // groups whose rows are in the memtable and published
  std::condition_variable insert_cv_;
  int64_t last_ingested_at_ms_ = 0;
  uint64_t next_file_number_ = 1;
  uint64_t next_token_ = 1;
  bool closed_ = false;
  bool shutting_down_ = false;
  Status bg_error_;
  std::condition_variable bg_cv_;    // wakes the flusher
  std::condition_variable done_cv_;  // flush finished / room made
  std::mutex flush_mu_;              // serialises FlushOldestImmutable
  // The flush's per-row arrays and its two encoding threads' buffers (decoded views, sort
  // keys, column scratch), kept from one flush to the next (guarded by flush_mu_): allocated
  // per flush, their first touches (page faults, zeroing) showed in profiles.
  struct FlushScratch;
  struct FlushScratchDeleter {
    void operator()(FlushScratch* p) const;  // defined where the type is complete
  };
  std::unique_ptr<FlushScratch, FlushScratchDeleter> flush_scratch_;
  std::thread bg_thread_;

  // Stats.
  std::atomic<uint64_t> wal_syncs_{0};
  std::atomic<uint64_t> wal_files_recycled_{0};
  std::atomic<uint64_t> wal_files_created_{0};
  std::atomic<uint64_t> flushes_{0};
  std::atomic<uint64_t> backpressure_waits_{0};
  std::atomic<uint64_t> dedupe_segment_lookups_{0};
  std::atomic<uint64_t> flush_cpu_ns_{0};  // DbStats::flush_cpu_ns
  std::mutex lat_mu_;
  std::vector<int64_t> sync_lat_ns_;  // ring buffer
  size_t sync_lat_pos_ = 0;
};

}  // namespace usagedb
