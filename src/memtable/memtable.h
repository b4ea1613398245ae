// MemTable: the events of committed batches not yet in segments, plus their conflict log
// entries. Append-only; readers see a prefix bounded by a commit sequence.
//
// Thread safety: Add* are called by one thread at a time (the group-commit leader or
// recovery); readers (Find, ForEach) run concurrently under a shared lock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "usagedb/event.h"
#include "util/hash.h"

namespace usagedb {

enum class ConflictReason : uint8_t { kConflict = 1, kPeriodClosed = 2 };

// A conflict (or period_closed) log entry: the rejected payload in full, the stored event's
// ingested_at_ms (conflicts) and the request time (SPEC §2.2).
struct ConflictEntry {
  ConflictReason reason = ConflictReason::kConflict;
  uint64_t commit_seq = 0;  // the unit that recorded it
  int64_t request_time_ms = 0;
  int64_t stored_ingested_at_ms = 0;
  Event event;
};

struct MemEntry {
  Event event;
  Digest128 digest;
};

class MemTable {
 public:
  explicit MemTable(int64_t created_ms) : created_ms_(created_ms) {}
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  // REQUIRES: event.commit_seq/ingested_at_ms set; sequences added in non-decreasing order;
  // event_id not already present.
  void Add(Event event, const Digest128& digest);
  void AddConflict(ConflictEntry entry);

  // The entry with this exact event_id, if any.
  std::optional<MemEntry> Find(std::string_view event_id) const;
  bool Contains(std::string_view event_id) const;

  // Visits entries with commit_seq <= max_seq in insertion order; stop by returning false.
  void ForEach(uint64_t max_seq, const std::function<bool(const MemEntry&)>& visit) const;
  // Moves nothing: a flush reads the entries through this (no concurrent Add allowed).
  const std::deque<MemEntry>& entries_for_flush() const { return entries_; }
  const std::vector<ConflictEntry>& conflicts_for_flush() const { return conflicts_; }

  size_t ApproximateBytes() const { return bytes_; }
  size_t size() const;
  uint64_t min_seq() const { return min_seq_; }
  uint64_t max_seq() const { return max_seq_; }
  int64_t max_ingested_at_ms() const { return max_ingested_at_ms_; }
  int64_t created_ms() const { return created_ms_; }
  // Mark sequences covered even when a unit held only conflicts.
  void NoteSequence(uint64_t seq, int64_t ingested_at_ms);

 private:
  mutable std::shared_mutex mu_;
  std::deque<MemEntry> entries_;  // deque: references (and string data) stay stable on append
  std::unordered_map<std::string_view, uint32_t> index_;  // views into entries_
  std::vector<ConflictEntry> conflicts_;
  size_t bytes_ = 0;
  uint64_t min_seq_ = 0, max_seq_ = 0;
  int64_t max_ingested_at_ms_ = 0;
  int64_t created_ms_;
};

}  // namespace usagedb
