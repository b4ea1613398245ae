// Options of an embedded usageDb (SPEC §3.9 settings that concern storage).
#pragma once

#include <cstddef>
#include <cstdint>

namespace usagedb {

class FileSystem;
class Clock;

enum class Durability : uint8_t {
  kStrict = 0,  // acknowledge after the WAL is fsynced (group commit)
  kFast = 1,    // acknowledge after write(); an OS crash may lose the last moments
};

struct Options {
  Durability durability = Durability::kStrict;
  // Fixed when the database is created (0 = the default, 64). Opening an existing database
  // with a different non-zero value fails (InvalidArgument); 0 accepts the stored value.
  uint32_t bucket_count = 0;
  // Flush the memtable when it reaches this size or age.
  size_t memtable_bytes = 64u << 20;
  int64_t flush_interval_ms = 60000;
  // SPEC §2.1: 0 = remember every key forever.
  int64_t dedupe_window_days = 0;
  size_t dedupe_cache_bytes = 64u << 20;
  int64_t max_future_skew_ms = 300000;
  // Backpressure: at most this many full memtables wait for the flusher; a writer that finds
  // them all busy waits up to backpressure_wait_ms and then gets Unavailable.
  int max_immutable_memtables = 2;
  int64_t backpressure_wait_ms = 5000;
  // fast mode: the WAL is fsynced at least this often in the background.
  int64_t fast_sync_interval_ms = 200;
  // Retired WAL files kept (renamed to wal/<n>.recycle.tmp) to be overwritten by the next
  // WAL files instead of creating new ones: appends over allocated blocks let each group
  // commit's fdatasync skip the file-size update (docs/parts/wal.md, "Recycling"). Each
  // costs one WAL file's size on disk while open; Close removes them. 0 = never recycle.
  // Two, so a flush finishing late (two retirements between switches) still leaves one.
  int wal_recycle_files = 2;
  // Run the background flusher thread. When false, only Flush() and Close() flush (tests).
  bool background_flush = true;
  // Create the database when the directory holds none.
  bool create_if_missing = true;
  // Skip damage in the middle of a WAL file instead of failing to open (check --repair).
  bool repair_wal = false;
  // Test seams; nullptr = the POSIX file system and the real clock. Not owned.
  FileSystem* file_system = nullptr;
  Clock* clock = nullptr;
};

}  // namespace usagedb
