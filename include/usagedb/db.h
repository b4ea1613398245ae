// The embedded usageDb API (SPEC §5). The server and the CLI are thin layers over it.
//
// Thread safety: every method may be called concurrently from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "usagedb/event.h"
#include "usagedb/options.h"
#include "usagedb/query.h"
#include "usagedb/status.h"

namespace usagedb {

enum class Outcome : uint8_t { kAccepted = 0, kDuplicate = 1, kConflict = 2, kRejected = 3 };
const char* OutcomeName(Outcome outcome);  // "accepted", "duplicate", "conflict", "rejected"

struct EventResult {
  uint32_t index = 0;
  Outcome outcome = Outcome::kAccepted;
  std::string event_id;
  std::string reason;  // for rejected events
};

struct IngestResult {
  uint64_t accepted = 0, duplicates = 0, conflicts = 0, rejected = 0;
  // The batch's own sequence when it wrote a WAL unit, else the highest sequence committed
  // when it was classified (SPEC §3.1).
  uint64_t commit_sequence = 0;
  int64_t ingested_at_ms = 0;  // the batch's stamp (0 when nothing was written)
  std::vector<EventResult> results;  // one per event, in request order
};

struct IngestOptions {
  // Set when every event came from the model decoder (DecodeEventJson) and already passed the
  // clock-free §1 rules: they are not checked again.
  bool prevalidated = false;
  // Per-event rejection reasons found by a decoder (same length as the batch, "" = fine).
  // A rejected entry's event is ignored except for its event_id, reported back.
  std::vector<std::string> reject_reasons;
  int64_t request_time_ms = 0;  // 0 = now
};

// Filters shared by reads. Values of one key are ORed, keys are ANDed. Time is half-open.
struct ReadFilter {
  std::optional<std::string> account_id;
  std::optional<int64_t> from_ms, to_ms;
  std::vector<std::string> product_ids, meter_ids, model_ids;
  std::vector<EventKind> kinds;
  // Only events with commit_seq <= as_of_seq count (SPEC §3: as_of).
  std::optional<uint64_t> as_of_seq;
  // Only events with ingested_at_ms <= as_of_ms count (SPEC §3: as_of_ms; stamps never go
  // down as sequences rise, so this is a sequence prefix too).
  std::optional<int64_t> as_of_ms;
};

// A committed raw segment file as a snapshot sees it.
struct SegmentFileInfo {
  std::string path;
  uint64_t file_number = 0;
  uint32_t bucket = 0;
  int32_t partition = 0;  // months since 1970-01 (UTC)
  uint64_t row_count = 0;
  uint64_t file_size = 0;
  int64_t min_timestamp_ms = 0, max_timestamp_ms = 0;
};

// A point-in-time view of committed segment files for long reads (export). The files it lists
// stay on disk while it lives (a slow reader costs pinned disk, never memory).
// Thread-compatible: one thread at a time.
class SnapshotReader {
 public:
  virtual ~SnapshotReader() = default;
  // Every event with commit_seq <= sequence() is in segments(); nothing later is visited.
  virtual uint64_t sequence() const = 0;
  virtual const std::vector<SegmentFileInfo>& segments() const = 0;
  virtual uint64_t pinned_bytes() const = 0;
  // Visits the events of segments()[i] that match `filter` (and the snapshot's sequence), in
  // the file's order (billing order). A missing or damaged file is Corruption naming it.
  virtual Status ScanSegment(size_t i, const ReadFilter& filter,
                             const std::function<bool(const Event&)>& visit) = 0;
};

struct AggregateRow {
  std::string account_id;  // set when grouped by account
  __int128 quantity = 0;   // exact sum
  uint64_t count = 0;
};

struct AggregateResult {
  uint64_t snapshot_sequence = 0;  // the commit sequence the answer is as of
  std::vector<AggregateRow> rows;  // one row when ungrouped (also over no events)
};

struct DbStats {
  uint64_t last_sequence = 0;
  uint64_t flushed_sequence = 0;
  uint64_t memtable_events = 0;
  uint64_t memtable_bytes = 0;
  uint64_t immutable_memtables = 0;
  uint64_t segment_count = 0;
  uint64_t segment_bytes = 0;
  uint64_t dedupe_runs = 0;
  uint64_t dedupe_keys = 0;
  uint64_t dedupe_cache_capacity_bytes = 0;
  uint64_t dedupe_filter_bytes = 0;
  uint64_t wal_files = 0;
  uint64_t wal_syncs = 0;
  // WAL files started over a recycled file / as new files (Options::wal_recycle_files).
  uint64_t wal_files_recycled = 0;
  uint64_t wal_files_created = 0;
  // fsync latency of WAL syncs (microseconds), over the last few thousand syncs.
  double wal_sync_p50_us = 0, wal_sync_p99_us = 0;
  uint64_t flushes = 0;
  uint64_t backpressure_waits = 0;
  // Dedupe lookups answered from a segment row (an id already flushed, or the rare routing
  // collision): each reads a segment block's event_id column. Retries of recent events are
  // answered by the memtable instead.
  uint64_t dedupe_segment_lookups = 0;
  // CPU time of every thread of every flush so far (encoding, syncing, dedupe run writes and
  // merges), in nanoseconds of thread CPU clock: flush cost per event = this / events flushed.
  uint64_t flush_cpu_ns = 0;
};

// What Open found and did (SPEC §4 recovery).
struct RecoveryReport {
  uint64_t manifest_generation = 0;
  std::vector<std::string> skipped_generations;  // unreadable newer generations, with reasons
  uint64_t wal_files_replayed = 0;
  uint64_t units_replayed = 0;
  uint64_t events_replayed = 0;
  uint64_t void_units = 0;
  uint64_t torn_tails_truncated = 0;
  // Records dropped with a torn tail that had reached the disk out of order (a hole, then
  // records written while the hole was not yet synced: never acknowledged in strict mode).
  uint64_t unsynced_records_dropped = 0;
  uint64_t repaired_bytes = 0;
  uint64_t temporaries_removed = 0;
  std::vector<std::string> orphans;  // unreferenced files found (removed: their data is in WAL)
  // Files of flushes committed by unreadable newer generations, re-adopted by origin.
  std::vector<std::string> adopted;
  double replay_seconds = 0;
  // Footers and zone maps of every segment decoded at open (the files are not held open).
  uint64_t footer_bytes = 0;  // memory they hold
  double warm_seconds = 0;
};

// The raw audit listing (SPEC §3.3): events ordered by (timestamp_ms, event_id), paged with an
// opaque cursor that pins the first page's commit sequence, so following next_cursor until it
// is empty lists every matching event exactly once, whatever is ingested or flushed meanwhile.
struct ListRequest {
  ReadFilter filter;        // account, time range, product/meter/model/kind filters, as_of_seq
  uint32_t limit = 1000;    // 1..10000
  std::string cursor;       // "" for the first page
  // As QueryRequest::deadline: past it the listing fails with Unavailable("timeout: ...") and
  // no events (checked per segment, per block and every 1,024 memtable rows).
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

struct ListResult {
  std::vector<Event> events;
  std::string next_cursor;  // "" when this was the last page
  uint64_t snapshot_sequence = 0;
};

// A recorded conflict (same event_id, different payload) or period_closed rejection.
struct ConflictRecord {
  std::string reason;          // "conflict" or "period_closed"
  uint64_t commit_sequence = 0;  // the unit that recorded it
  int64_t request_time_ms = 0;
  int64_t stored_ingested_at_ms = 0;  // the stored event's stamp (conflicts)
  Event event;                 // the rejected payload in full
};

struct ConflictListRequest {
  std::optional<int64_t> from_ms, to_ms;  // by request time, half-open
  std::optional<std::string> reason;      // "conflict" | "period_closed"; absent = both
  uint32_t limit = 1000;                  // 1..10000
  std::string cursor;
  // As QueryRequest::deadline (checked per conflict-log file and per memtable).
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

struct ConflictListResult {
  std::vector<ConflictRecord> conflicts;  // ordered by (request_time_ms, commit_sequence, n)
  std::string next_cursor;
};

class DB {
 public:
  // Opens (creating when allowed) the database in `dir`, taking `dir/LOCK`. Replays the WAL.
  static Result<std::unique_ptr<DB>> Open(const Options& options, const std::string& dir);
  virtual ~DB() = default;  // closes (flushing) when Close was not called

  // Ingests a batch: every event ends accepted, duplicate, conflict or rejected (in order).
  // Fails as a whole only when the WAL cannot be written (Unavailable/IOError: nothing of the
  // batch is acknowledged) or under backpressure (Unavailable).
  virtual Status Ingest(std::vector<Event> events, const IngestOptions& options,
                        IngestResult* result) = 0;
  Status Ingest(std::vector<Event> events, IngestResult* result) {
    return Ingest(std::move(events), IngestOptions(), result);
  }
  // Decodes `{"events":[...]}` (or NDJSON) and ingests it. InvalidArgument for an unusable body.
  virtual Status IngestJson(std::string_view body, bool ndjson, IngestResult* result) = 0;

  // Exact sum and count over raw data (segments + memtable) on one snapshot.
  // group_by_account: one row per account (sorted by account bytes) instead of one row.
  // Overflow when a sum does not fit ±(2^127-1).
  virtual Status Aggregate(const ReadFilter& filter, bool group_by_account,
                           AggregateResult* result) = 0;
  // Runs a query (SPEC §3.4) over raw data on one snapshot: group keys of §3.5, sum/count/
  // min/max over quantity with exact accumulators wider than 128 bits, ORDER BY, LIMIT.
  // InvalidArgument for a bad request, Overflow when a result does not fit ±(2^127-1),
  // NotSupported for source=rollup (rollups are a later issue).
  virtual Status Query(const QueryRequest& request, QueryResult* result) = 0;
  // One page of the raw audit listing. InvalidArgument for a bad limit or a malformed cursor,
  // and (message prefix "cursor_mismatch:") for a cursor made for other filters or another
  // as_of.
  virtual Status ListEvents(const ListRequest& request, ListResult* result) = 0;
  // Lists the durable conflict log (committed conflict-log files + unflushed entries).
  virtual Status ListConflicts(const ConflictListRequest& request, ConflictListResult* result) = 0;
  // Visits every matching event on one snapshot (no particular order). Return false to stop.
  virtual Status ScanEvents(const ReadFilter& filter,
                            const std::function<bool(const Event&)>& visit) = 0;

  // Point-in-time read of committed files (SPEC §7): takes the highest acknowledged sequence
  // S, fsyncs the WAL and flushes everything up to S into segments, then pins the segment
  // files of that moment. `as_of_seq` (<= S) lowers the sequence; InvalidArgument above S.
  virtual Result<std::unique_ptr<SnapshotReader>> OpenSnapshot(
      std::optional<uint64_t> as_of_seq) = 0;

  // Makes everything acknowledged so far durable in segments (WAL fsynced first).
  virtual Status Flush() = 0;
  virtual DbStats Stats() = 0;
  virtual const RecoveryReport& recovery_report() const = 0;
  virtual uint64_t LastSequence() = 0;
  // Flushes and releases the lock. Further calls fail.
  virtual Status Close() = 0;
};

}  // namespace usagedb
