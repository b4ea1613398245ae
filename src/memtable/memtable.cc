#include "memtable/memtable.h"

#include <mutex>

namespace usagedb {
namespace {
size_t EventBytes(const Event& e) {
  size_t n = sizeof(MemEntry) + e.event_id.size() + e.account_id.size() + e.product_id.size() +
             e.meter_id.size() + e.unit.size() + e.source.size() +
             e.correction_original_event_id.size() + e.correction_reason.size() + 48;
  if (e.subscription_id) n += e.subscription_id->size();
  if (e.model_id) n += e.model_id->size();
  for (const auto& [k, v] : e.dimensions) n += k.size() + v.size() + 64;
  return n;
}
}  // namespace

void MemTable::NoteSequence(uint64_t seq, int64_t ingested_at_ms) {
  std::unique_lock lock(mu_);
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  if (seq > max_seq_) max_seq_ = seq;
  if (ingested_at_ms > max_ingested_at_ms_) max_ingested_at_ms_ = ingested_at_ms;
}

void MemTable::Add(Event event, const Digest128& digest) {
  std::unique_lock lock(mu_);
  size_t bytes = EventBytes(event);
  uint64_t seq = event.commit_seq;
  int64_t ing = event.ingested_at_ms;
  entries_.push_back(MemEntry{std::move(event), digest});
  const MemEntry& e = entries_.back();
  index_.emplace(std::string_view(e.event.event_id), static_cast<uint32_t>(entries_.size() - 1));
  bytes_ += bytes + 32;
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  if (seq > max_seq_) max_seq_ = seq;
  if (ing > max_ingested_at_ms_) max_ingested_at_ms_ = ing;
}

void MemTable::AddConflict(ConflictEntry entry) {
  std::unique_lock lock(mu_);
  bytes_ += EventBytes(entry.event) + 32;
  uint64_t seq = entry.commit_seq;
  conflicts_.push_back(std::move(entry));
  if (min_seq_ == 0 || seq < min_seq_) min_seq_ = seq;
  if (seq > max_seq_) max_seq_ = seq;
}

std::optional<MemEntry> MemTable::Find(std::string_view event_id) const {
  std::shared_lock lock(mu_);
  auto it = index_.find(event_id);
  if (it == index_.end()) return std::nullopt;
  return entries_[it->second];
}

bool MemTable::Contains(std::string_view event_id) const {
  std::shared_lock lock(mu_);
  return index_.count(event_id) != 0;
}

size_t MemTable::size() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

void MemTable::ForEach(uint64_t max_seq,
                       const std::function<bool(const MemEntry&)>& visit) const {
  std::shared_lock lock(mu_);
  for (const MemEntry& e : entries_) {
    if (e.event.commit_seq > max_seq) break;  // sequences are non-decreasing
    if (!visit(e)) return;
  }
}

}  // namespace usagedb
