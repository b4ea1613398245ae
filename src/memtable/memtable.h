// MemTable: the events of committed batches not yet in segments, plus their conflict log
// entries. Events are kept as their binary event records (the WAL unit's own bytes, copied
// once into an append-only arena) with a small fixed header each, so a memtable holds ~3x more
// events per byte than decoded structs, and inserting a unit costs one copy per record.
// Readers see a prefix bounded by a commit sequence and decode only the rows they need.
//
// Thread safety: Add* are called by one thread at a time (the group-commit leader or
// recovery); readers (Find*, ForEach*) run concurrently under a shared lock.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "memtable/id_table.h"
#include "usagedb/event.h"
#include "usagedb/event_view.h"
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

// Per-event facts the writer computes while encoding a unit body; offset/length locate the
// event's binary record (EncodeEventBinary) inside the bytes handed to AddUnit.
struct RowMeta {
  uint32_t offset = 0;
  uint32_t length = 0;
  int64_t timestamp_ms = 0;
  uint64_t account_hash = 0;  // Hash64(account_id): bucket routing and read prefilter
  Digest128 digest;
  EventKind kind = EventKind::kUsage;
  // The memtable's id hash of the record's event_id (Hash64 in production), so the leader does
  // not hash again; 0 = not computed (AddUnit computes it).
  uint64_t id_hash = 0;
};

// One stored event: its record in the arena and the facts needed without decoding it.
// AddUnit constructs rows from their fields in declaration order (parenthesized aggregate
// init): a reordered or added field must be reordered there too.
struct MemRow {
  const char* record = nullptr;
  uint32_t record_length = 0;
  EventKind kind = EventKind::kUsage;
  std::string_view event_id;  // points into the record
  uint64_t commit_seq = 0;
  int64_t ingested_at_ms = 0;
  int64_t timestamp_ms = 0;
  uint64_t account_hash = 0;
  uint64_t id_hash = 0;  // the memtable's id hash of event_id (the flush's dedupe routing)
  Digest128 digest;
};
static_assert(sizeof(MemRow) <= 88, "a memtable row costs every event; keep it small");

static_assert(std::is_trivially_destructible_v<MemRow>);

// The memtable's rows: fixed chunks of kChunkRows, so appending never moves a row and row r is
// chunk r >> kShift, slot r & (kChunkRows - 1). The chunk table (~64 pointers for a full
// memtable) stays in cache; a std::deque's map of 512-byte nodes (5 rows each, 50K nodes) made
// the flush's random-order row reads two dependent cache misses (and TLB walks) per row.
class MemRowStore {
 public:
  static constexpr size_t kShift = 12;
  static constexpr size_t kChunkRows = size_t{1} << kShift;  // 352 KiB of rows

  MemRowStore() = default;
  MemRowStore(const MemRowStore&) = delete;
  MemRowStore& operator=(const MemRowStore&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const MemRow& operator[](size_t i) const {
    return chunks_[i >> kShift][i & (kChunkRows - 1)];
  }
  void push_back(const MemRow& r) { new (AppendSlot()) MemRow(r); }
  // Storage for one more row, which the caller constructs in place at once (placement new).
  void* AppendSlot() {
    if ((size_ & (kChunkRows - 1)) == 0) AddChunk();
    void* slot = &chunks_[size_ >> kShift][size_ & (kChunkRows - 1)];
    size_++;
    return slot;
  }

  class const_iterator {
   public:
    const_iterator(const MemRowStore* s, size_t i) : s_(s), i_(i) {}
    const MemRow& operator*() const { return (*s_)[i_]; }
    const_iterator& operator++() {
      i_++;
      return *this;
    }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

   private:
    const MemRowStore* s_;
    size_t i_;
  };
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size_); }

 private:
  struct FreeChunk {
    void operator()(MemRow* p) const { std::allocator<MemRow>().deallocate(p, kChunkRows); }
  };
  [[gnu::noinline]] void AddChunk() {
    chunks_.emplace_back(std::allocator<MemRow>().allocate(kChunkRows));
  }
  std::vector<std::unique_ptr<MemRow[], FreeChunk>> chunks_;  // rows constructed in place
  size_t size_ = 0;
};

struct MemEntry {
  Event event;
  Digest128 digest;
};

class MemTable {
 public:
  // The function that hashes event_ids for the index. Production uses Hash64; tests pass a
  // colliding one to prove that only full id equality makes a hit.
  using IdHashFn = uint64_t (*)(std::string_view);
  // arena_parts > 1: records are kept in that many sub-arenas by account_hash % arena_parts
  // (the db passes bucket_count), so the records of one flushed partition lie together.
  explicit MemTable(int64_t created_ms, IdHashFn id_hash = &Hash64, uint32_t arena_parts = 1)
      : id_hash_(id_hash), created_ms_(created_ms), arenas_(std::max<uint32_t>(arena_parts, 1)) {}
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  // Adds the events of one committed unit. REQUIRES: sequences added in non-decreasing order;
  // every rows[i] locates a valid record in `bytes` whose event_id is not already present.
  void AddUnit(uint64_t seq, int64_t ingested_at_ms, std::string_view bytes,
               const std::vector<RowMeta>& rows);
  // Convenience for tests and tools: encodes the event (commit_seq/ingested_at_ms set).
  void Add(const Event& event, const Digest128& digest);
  void AddConflict(ConflictEntry entry);
  // Marks sequences covered even when a unit held only conflicts.
  void NoteSequence(uint64_t seq, int64_t ingested_at_ms);

  struct Stored {
    Digest128 digest;
    int64_t ingested_at_ms;
  };
  std::optional<Stored> FindDigest(std::string_view event_id) const;
  // The write path's batch form: for every probe not yet `found`, looks its id up under one
  // shared lock. REQUIRES: probe.hash == the table's id hash of probe.id.
  struct Probe {
    std::string_view id;
    uint64_t hash = 0;
    bool found = false;
    Stored stored{};
  };
  void FindDigests(Probe* probes, size_t n) const;
  uint64_t HashId(std::string_view event_id) const { return id_hash_(event_id); }
  // True when MemRow::id_hash is Hash64(event_id) (the production hash; tests may pass another).
  bool ids_hashed_with_hash64() const { return id_hash_ == &Hash64; }
  bool Contains(std::string_view event_id) const;
  // The decoded entry with this exact event_id, if any.
  std::optional<MemEntry> Find(std::string_view event_id) const;

  // Visits rows with commit_seq <= max_seq in insertion order; stop by returning false.
  void ForEachRow(uint64_t max_seq, const std::function<bool(const MemRow&)>& visit) const;
  // As ForEachRow, decoding each row (commit_seq/ingested_at_ms set).
  void ForEach(uint64_t max_seq, const std::function<bool(const MemEntry&)>& visit) const;
  // Decodes one row into *out. False only if the record is malformed (a bug: records were
  // encoded by this process or replayed from a checksummed WAL record).
  static bool DecodeRow(const MemRow& row, Event* out);

  // A copy of the conflict entries so far (readers; thread-safe).
  std::vector<ConflictEntry> conflicts_snapshot() const;
  // For the flusher (no concurrent Add allowed).
  const MemRowStore& rows_for_flush() const { return rows_; }
  const std::vector<ConflictEntry>& conflicts_for_flush() const { return conflicts_; }

  size_t ApproximateBytes() const;
  size_t size() const;
  uint64_t min_seq() const;
  uint64_t max_seq() const;
  int64_t max_ingested_at_ms() const;
  int64_t created_ms() const { return created_ms_; }

 private:
  struct Arena {
    char* base = nullptr;  // the chunk being filled
    size_t used = 0, capacity = 0;
  };
  [[gnu::noinline]] void NewArenaChunk(Arena* a, size_t min_bytes);  // REQUIRES: mu_ exclusive
  void NoteSequenceLocked(uint64_t seq, int64_t ingested_at_ms);

  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t arena_bytes_ = 0;  // capacity of every chunk
  MemRowStore rows_;
  // event_id -> row number; ids are read back from rows_ (views into the arena).
  uint32_t FindRowLocked(uint64_t hash, std::string_view event_id) const;
  const IdHashFn id_hash_;
  IdTable index_;
  std::vector<ConflictEntry> conflicts_;
  size_t conflict_bytes_ = 0;
  uint64_t min_seq_ = 0, max_seq_ = 0;
  int64_t max_ingested_at_ms_ = 0;
  int64_t created_ms_;
  std::vector<Arena> arenas_;  // one per arena part (see the constructor)
};

}  // namespace usagedb
