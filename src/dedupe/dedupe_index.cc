// DedupeIndex: the current run set, looked up newest content first.
#include <algorithm>
#include <mutex>
#include <string>

#include "dedupe/dedupe.h"
#include "dedupe/dedupe_internal.h"

namespace usagedb {
namespace {

using RunList = DedupeIndex::RunSet;

// SPEC §2.1: a Usage key is forgotten once max(ingested, timestamp) + window < now.
bool Forgotten(const DedupeEntry& e, int64_t now_ms, int64_t window_ms) {
  if (window_ms <= 0 || e.kind != EventKind::kUsage) return false;
  const __int128 anchor = std::max(e.ingested_at_ms, e.timestamp_ms);
  return anchor + window_ms < static_cast<__int128>(now_ms);
}

}  // namespace

Status DedupeRowResolver::ReadEventIds(uint64_t segment_file_number,
                                       const std::vector<uint32_t>& /*rows*/,
                                       std::vector<std::string>* /*ids*/) {
  return Status::NotSupported("this dedupe row resolver cannot read event_ids (segment " +
                              std::to_string(segment_file_number) + ")");
}

Status DedupeRowResolver::ReadEventIdHashes(uint64_t segment_file_number,
                                            const std::vector<uint32_t>& rows, DedupeHashFn hash,
                                            std::vector<uint64_t>* hashes) {
  std::vector<std::string> ids;
  RETURN_IF_ERROR(ReadEventIds(segment_file_number, rows, &ids));
  if (ids.size() != rows.size()) {
    return Status::Internal("dedupe row resolver returned " + std::to_string(ids.size()) +
                            " ids for " + std::to_string(rows.size()) + " rows of segment " +
                            std::to_string(segment_file_number));
  }
  hashes->clear();
  hashes->reserve(ids.size());
  for (const std::string& id : ids) hashes->push_back(hash(id));
  return Status::OK();
}

struct DedupeIndex::Impl {
  Impl(size_t cache_bytes, DedupeHashFn h) : hash(h), cache(cache_bytes) {}

  const DedupeHashFn hash;
  mutable DedupeBlockCache cache;
  mutable std::mutex mu;
  // Sorted by max_commit_seq descending, then file_number descending. Guarded by mu (the
  // pointer; the list itself is immutable once published).
  std::shared_ptr<const RunList> runs = std::make_shared<RunList>();
  size_t filter_bytes = 0;  // guarded by mu
  uint64_t keys = 0;        // guarded by mu

  std::shared_ptr<const RunList> Snapshot() const {
    std::lock_guard<std::mutex> l(mu);
    return runs;
  }
};

DedupeIndex::DedupeIndex(size_t cache_bytes) : DedupeIndex(cache_bytes, &Hash64) {}
DedupeIndex::DedupeIndex(size_t cache_bytes, DedupeHashFn hash)
    : impl_(std::make_unique<Impl>(cache_bytes, hash)) {}
DedupeIndex::~DedupeIndex() = default;

void DedupeIndex::SetRuns(std::vector<std::shared_ptr<DedupeRun>> runs) {
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    if (a->info().max_commit_seq != b->info().max_commit_seq) {
      return a->info().max_commit_seq > b->info().max_commit_seq;
    }
    return a->file_number() > b->file_number();
  });
  size_t bytes = 0;
  uint64_t keys = 0;
  for (const auto& r : runs) {
    bytes += r->memory_bytes();
    keys += r->info().key_count;
  }
  RunList set;
  for (const auto& r : runs) set.filters.push_back(r->SharedKeyFilter());
  set.runs = std::move(runs);
  auto list = std::make_shared<const RunList>(std::move(set));
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->runs = std::move(list);
  impl_->filter_bytes = bytes;
  impl_->keys = keys;
}

std::vector<std::shared_ptr<DedupeRun>> DedupeIndex::runs() const {
  return impl_->Snapshot()->runs;
}

DedupeHashFn DedupeIndex::hash_fn() const { return impl_->hash; }

Result<std::optional<DedupeEntry>> DedupeIndex::Lookup(std::string_view event_id, int64_t now_ms,
                                                       int64_t window_ms,
                                                       DedupeRowResolver* resolver) const {
  return Lookup(event_id, impl_->hash(event_id), now_ms, window_ms, resolver);
}

Result<std::optional<DedupeEntry>> DedupeIndex::Lookup(std::string_view event_id, uint64_t hash,
                                                       int64_t now_ms, int64_t window_ms,
                                                       DedupeRowResolver* resolver) const {
  const std::shared_ptr<const RunList> runs = impl_->Snapshot();
  // One filter line per run, each likely a cache miss: start them all before testing any.
  PrefetchIn(*runs, hash);
  return LookupIn(*runs, event_id, hash, now_ms, window_ms, resolver);
}

std::shared_ptr<const DedupeIndex::RunSet> DedupeIndex::PinRuns() const {
  return impl_->Snapshot();
}

void DedupeIndex::PrefetchIn(const RunSet& set, uint64_t hash) {
  const uint64_t key = DedupeSharedFilterKey(hash);
  for (size_t i = 0; i < set.filters.size(); ++i) {
    const DedupeFilterView& f = set.filters[i];
    if (f.words != nullptr) {
      __builtin_prefetch(f.words + dedupe_internal::FilterLine(key, f.lines) * 8);
    } else {
      set.runs[i]->PrefetchFilterKeyed(hash, key);
    }
  }
}

Result<std::optional<DedupeEntry>> DedupeIndex::LookupIn(const RunSet& set,
                                                         std::string_view event_id, uint64_t hash,
                                                         int64_t now_ms, int64_t window_ms,
                                                         DedupeRowResolver* resolver) const {
  // No prefetch here: Lookup and the batch path (a few ids ahead) have started the lines.
  std::optional<DedupeEntry> best;
  const uint64_t key = DedupeSharedFilterKey(hash);
  for (size_t i = 0; i < set.runs.size(); ++i) {
    const DedupeFilterView& f = set.filters[i];
    const std::shared_ptr<DedupeRun>& run = set.runs[i];
    // Runs are in max_commit_seq order: once a remembered entry is found, a later run can
    // only beat it with a higher commit_seq, which its max_commit_seq rules out.
    if (best.has_value() && run->info().max_commit_seq <= best->commit_seq) break;
    // The common case, a miss: one filter line, no virtual call, no Result machinery.
    if (f.words != nullptr ? !dedupe_internal::FilterMayContain(f.words, f.lines, f.probes, key)
                           : !run->MayContainKeyed(hash, key)) {
      continue;
    }
    if (DedupeRunIsForgotten(run->info(), now_ms, window_ms)) continue;
    ASSIGN_OR_RETURN(std::vector<RowLocation> candidates, run->Candidates(hash, &impl_->cache));
    // Hashes only route: an entry counts only when the resolver found the full id equal.
    for (const RowLocation& loc : candidates) {
      ASSIGN_OR_RETURN(std::optional<DedupeEntry> found, resolver->Resolve(loc, event_id));
      if (!found.has_value()) continue;
      if (found->event_id != event_id) {
        return Status::Internal("dedupe resolver returned another event_id for segment " +
                                std::to_string(loc.segment_file_number) + " row " +
                                std::to_string(loc.row));
      }
      if (Forgotten(*found, now_ms, window_ms)) continue;
      if (!best.has_value() || found->commit_seq > best->commit_seq) best = std::move(found);
    }
  }
  return best;
}

size_t DedupeIndex::cache_capacity_bytes() const { return impl_->cache.capacity_bytes(); }

size_t DedupeIndex::filter_memory_bytes() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->filter_bytes;
}

uint64_t DedupeIndex::key_count() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->keys;
}

DedupeBlockCache* DedupeIndex::cache() const { return &impl_->cache; }

}  // namespace usagedb
