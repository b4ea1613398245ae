#include "memtable/memtable.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "model/event_codec.h"
#include "util/coding.h"

namespace usagedb {
namespace {

constexpr size_t kChunkBytes = 1 << 20;
constexpr size_t kPartChunkBytes = 64 << 10;
// Per-row overhead beyond the record: the MemRow in the row store (the index's slots are counted
// by their real size).
constexpr size_t kRowOverhead = sizeof(MemRow);

// The event_id of a binary event record: flags u8 | kind u8 | event_id lpstr | ...
std::string_view RecordEventId(const char* rec, uint32_t len) {
  // Common case: an id shorter than 128 bytes has a one-byte length.
  if (len >= 3 && static_cast<uint8_t>(rec[2]) < 0x80 &&
      3 + static_cast<uint32_t>(static_cast<uint8_t>(rec[2])) <= len) {
    return std::string_view(rec + 3, static_cast<uint8_t>(rec[2]));
  }
  Decoder d(std::string_view(rec, len));
  uint8_t b;
  std::string_view id;
  if (!d.GetByte(&b) || !d.GetByte(&b) || !d.GetLengthPrefixed(&id)) return {};
  return id;
}

}  // namespace

void MemTable::NewArenaChunk(Arena* a, size_t min_bytes) {
  // With many sub-arenas smaller chunks keep the unfilled tails (counted in ApproximateBytes)
  // small: 64 parts x 64 KiB = 4 MiB at most.
  const size_t chunk = arenas_.size() > 1 ? kPartChunkBytes : kChunkBytes;
  a->capacity = std::max(chunk, min_bytes);
  chunks_.emplace_back(new char[a->capacity]);
  a->base = chunks_.back().get();
  a->used = 0;
  arena_bytes_ += a->capacity;
}

void MemTable::NoteSequenceLocked(uint64_t seq, int64_t ingested_at_ms) {
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  if (seq > max_seq_) max_seq_ = seq;
  if (ingested_at_ms > max_ingested_at_ms_) max_ingested_at_ms_ = ingested_at_ms;
}

void MemTable::NoteSequence(uint64_t seq, int64_t ingested_at_ms) {
  std::unique_lock lock(mu_);
  NoteSequenceLocked(seq, ingested_at_ms);
}

void MemTable::AddUnit(uint64_t seq, int64_t ingested_at_ms, std::string_view bytes,
                       const std::vector<RowMeta>& rows) {
  std::unique_lock lock(mu_);
  // The leader inserts under the exclusive lock: overlap the index's cache misses by
  // prefetching home slots a few rows ahead (rows hashed by the write path carry id_hash).
  constexpr size_t kAhead = 8;
  const size_t n = rows.size();
  for (size_t i = 0; i < std::min(n, kAhead); i++) {
    if (rows[i].id_hash != 0) index_.Prefetch(rows[i].id_hash);
  }
  // The row number of rows[i].
  uint32_t row = static_cast<uint32_t>(rows_.size());
  for (size_t i = 0; i < n; i++, row++) {
    if (i + kAhead < n && rows[i + kAhead].id_hash != 0) {
      index_.Prefetch(rows[i + kAhead].id_hash);
    }
    const RowMeta& m = rows[i];
    // One copy per record: the unit body interleaves each record with its 16-byte digest, so
    // a single copy of the body would put the digests into the arena too (see ingest.md).
    Arena& a = arenas_.size() == 1 ? arenas_[0] : arenas_[m.account_hash % arenas_.size()];
    if (a.used + m.length > a.capacity) [[unlikely]] {
      NewArenaChunk(&a, m.length);
    }
    char* const rec = a.base + a.used;
    std::memcpy(rec, bytes.data() + m.offset, m.length);
    a.used += m.length;
    const std::string_view event_id = RecordEventId(rec, m.length);
    const uint64_t h = m.id_hash != 0 ? m.id_hash : id_hash_(event_id);
    // Constructed in place from its fields (designated initializers, checked against the
    // declaration order): no zero fill of the 88 bytes and no temporary to copy.
    new (rows_.AppendSlot()) MemRow{.record = rec,
                                    .record_length = m.length,
                                    .kind = m.kind,
                                    .event_id = event_id,
                                    .commit_seq = seq,
                                    .ingested_at_ms = ingested_at_ms,
                                    .timestamp_ms = m.timestamp_ms,
                                    .account_hash = m.account_hash,
                                    .id_hash = h,
                                    .digest = m.digest};
    index_.Insert(h, event_id, row, [this](uint32_t stored) { return rows_[stored].event_id; });
  }
  NoteSequenceLocked(seq, ingested_at_ms);
}

void MemTable::Add(const Event& event, const Digest128& digest) {
  std::string rec;
  EncodeEventBinary(event, &rec);
  RowMeta m;
  m.offset = 0;
  m.length = static_cast<uint32_t>(rec.size());
  m.timestamp_ms = event.timestamp_ms;
  m.account_hash = Hash64(event.account_id);
  m.digest = digest;
  m.kind = event.kind;
  AddUnit(event.commit_seq, event.ingested_at_ms, rec, {m});
}

void MemTable::AddConflict(ConflictEntry entry) {
  std::unique_lock lock(mu_);
  conflict_bytes_ += sizeof(ConflictEntry) + entry.event.event_id.size() + 256;
  uint64_t seq = entry.commit_seq;
  conflicts_.push_back(std::move(entry));
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  if (seq > max_seq_) max_seq_ = seq;
}

std::vector<ConflictEntry> MemTable::conflicts_snapshot() const {
  std::shared_lock lock(mu_);
  return conflicts_;
}

uint32_t MemTable::FindRowLocked(uint64_t hash, std::string_view event_id) const {
  return index_.Find(hash, event_id, [this](uint32_t row) { return rows_[row].event_id; });
}

std::optional<MemTable::Stored> MemTable::FindDigest(std::string_view event_id) const {
  const uint64_t h = id_hash_(event_id);
  std::shared_lock lock(mu_);
  const uint32_t row = FindRowLocked(h, event_id);
  if (row == IdTable::kNone) return std::nullopt;
  const MemRow& r = rows_[row];
  return Stored{r.digest, r.ingested_at_ms};
}

void MemTable::FindDigests(Probe* probes, size_t n) const {
  std::shared_lock lock(mu_);
  if (rows_.empty()) return;
  // The slot array is far larger than the caches: prefetch a few probes ahead, so the misses
  // of consecutive probes overlap instead of being paid one after the other.
  constexpr size_t kAhead = 8;
  for (size_t i = 0; i < std::min(n, kAhead); i++) {
    if (!probes[i].found) index_.Prefetch(probes[i].hash);
  }
  for (size_t i = 0; i < n; i++) {
    if (i + kAhead < n && !probes[i + kAhead].found) index_.Prefetch(probes[i + kAhead].hash);
    Probe& p = probes[i];
    if (p.found) continue;
    const uint32_t row = FindRowLocked(p.hash, p.id);
    if (row == IdTable::kNone) continue;
    p.found = true;
    p.stored = Stored{rows_[row].digest, rows_[row].ingested_at_ms};
  }
}

bool MemTable::Contains(std::string_view event_id) const {
  const uint64_t h = id_hash_(event_id);
  std::shared_lock lock(mu_);
  return FindRowLocked(h, event_id) != IdTable::kNone;
}

bool MemTable::DecodeRow(const MemRow& row, Event* out) {
  Decoder d(std::string_view(row.record, row.record_length));
  if (!DecodeEventBinary(&d, out)) return false;
  out->commit_seq = row.commit_seq;
  out->ingested_at_ms = row.ingested_at_ms;
  return true;
}

std::optional<MemEntry> MemTable::Find(std::string_view event_id) const {
  const uint64_t h = id_hash_(event_id);
  std::shared_lock lock(mu_);
  const uint32_t row = FindRowLocked(h, event_id);
  if (row == IdTable::kNone) return std::nullopt;
  MemEntry e;
  if (!DecodeRow(rows_[row], &e.event)) return std::nullopt;
  e.digest = rows_[row].digest;
  return e;
}

void MemTable::ForEachRow(uint64_t max_seq, const std::function<bool(const MemRow&)>& visit) const {
  std::shared_lock lock(mu_);
  for (const MemRow& r : rows_) {
    if (r.commit_seq > max_seq) break;  // sequences are non-decreasing
    if (!visit(r)) return;
  }
}

void MemTable::ForEach(uint64_t max_seq, const std::function<bool(const MemEntry&)>& visit) const {
  MemEntry scratch;
  ForEachRow(max_seq, [&](const MemRow& r) {
    if (!DecodeRow(r, &scratch.event)) return true;  // cannot happen: see DecodeRow
    scratch.digest = r.digest;
    return visit(scratch);
  });
}

size_t MemTable::ApproximateBytes() const {
  std::shared_lock lock(mu_);
  return arena_bytes_ + rows_.size() * kRowOverhead + index_.memory_bytes() + conflict_bytes_;
}

size_t MemTable::size() const {
  std::shared_lock lock(mu_);
  return rows_.size();
}

uint64_t MemTable::min_seq() const {
  std::shared_lock lock(mu_);
  return min_seq_;
}

uint64_t MemTable::max_seq() const {
  std::shared_lock lock(mu_);
  return max_seq_;
}

int64_t MemTable::max_ingested_at_ms() const {
  std::shared_lock lock(mu_);
  return max_ingested_at_ms_;
}

}  // namespace usagedb
