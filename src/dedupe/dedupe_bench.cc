// Dedupe index benchmark (a program that prints numbers, not a test).
//   dedupe_bench [dir] [big_keys] [format_version]   (defaults: /tmp/dedupe_bench, 10000000, 3)
// Flushes are simulated: random evt_ ids spread over segments of ~4.7K rows, kept in memory
// by an in-memory resolver (a vector lookup + id compare), so lookup numbers are the index's
// own cost; a real resolver adds a segment row read per candidate.
// Reports bytes/key on disk and in RAM, and CPU per lookup (the machine is shared: CPU time of
// the lookup thread is the per-core figure) for misses and hits with 1, 10 and 30 runs.
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "dedupe/dedupe.h"

namespace usagedb {
namespace {

constexpr uint64_t kRowsPerSegment = 4'688;  // 300K keys = 64 segments

std::string RandomId(std::mt19937_64& rng) {
  static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id = "evt_";
  uint64_t bits = rng();
  for (int c = 0; c < 26; ++c) {
    if (c == 12) bits = rng();
    id.push_back(kBase32[bits & 31]);
    bits >>= 5;
  }
  return id;
}

// Segments as vectors of rows; segment file number s is segments[s - kFirstSegment].
class VectorResolver : public DedupeRowResolver {
 public:
  static constexpr uint64_t kFirstSegment = 1'000'000;

  Result<std::optional<DedupeEntry>> Resolve(const RowLocation& loc,
                                             std::string_view event_id) override {
    const uint64_t s = loc.segment_file_number - kFirstSegment;
    if (s >= segments.size() || loc.row >= segments[s].size()) {
      return Status::NotFound("no such row");
    }
    resolve_calls++;
    const DedupeEntry& e = segments[s][loc.row];
    if (e.event_id != event_id) return std::optional<DedupeEntry>();
    return std::optional<DedupeEntry>(e);
  }
  Status ReadEventIds(uint64_t segment, const std::vector<uint32_t>& rows,
                      std::vector<std::string>* ids) override {
    ids->clear();
    for (uint32_t r : rows) ids->push_back(segments[segment - kFirstSegment][r].event_id);
    return Status::OK();
  }

  std::vector<std::vector<DedupeEntry>> segments;
  uint64_t resolve_calls = 0;
};

// Simulates a flush of n new events: appends their segments to the resolver and returns the
// run entries. Every 10th id goes to *sample.
std::vector<DedupeRunEntry> FlushEntries(VectorResolver* resolver, uint64_t n, uint64_t seed,
                                         uint64_t first_seq, std::vector<std::string>* sample) {
  std::mt19937_64 rng(seed);
  std::vector<DedupeRunEntry> out;
  out.reserve(n);
  const int64_t base_ms = 1'714'521'600'000;  // 2024-05-01
  for (uint64_t i = 0; i < n; ++i) {
    if (i % kRowsPerSegment == 0) resolver->segments.emplace_back();
    DedupeEntry e;
    e.event_id = RandomId(rng);
    e.payload_digest = Hash128(e.event_id);
    e.ingested_at_ms = base_ms + static_cast<int64_t>(i / 1000);
    e.timestamp_ms = base_ms + static_cast<int64_t>(rng() % (31ull * 86'400'000));
    e.kind = (i % 1000 == 0) ? EventKind::kCorrection : EventKind::kUsage;
    e.commit_seq = first_seq + i / 100;
    DedupeRunEntry re;
    re.hash = Hash64(e.event_id);
    re.location = RowLocation{VectorResolver::kFirstSegment + resolver->segments.size() - 1,
                              static_cast<uint32_t>(resolver->segments.back().size())};
    re.commit_seq = e.commit_seq;
    re.forever = e.kind != EventKind::kUsage;
    re.anchor_ms = std::max(e.ingested_at_ms, e.timestamp_ms);
    if (sample != nullptr && i % 10 == 0) sample->push_back(e.event_id);
    resolver->segments.back().push_back(std::move(e));
    out.push_back(re);
  }
  return out;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// CPU ns per lookup over `ids` (one thread); counts wrong answers.
double CpuNsPerLookup(const DedupeIndex& index, VectorResolver* resolver,
                      const std::vector<std::string>& ids, bool expect_hit) {
  uint64_t wrong = 0;
  const double c0 = ThreadCpuSeconds();
  for (const std::string& id : ids) {
    auto r = index.Lookup(id, 0, 0, resolver);
    if (!r.ok() || r->has_value() != expect_hit) wrong++;
  }
  const double cpu = ThreadCpuSeconds() - c0;
  if (wrong != 0) std::printf("  !! %llu wrong answers\n", static_cast<unsigned long long>(wrong));
  return cpu * 1e9 / static_cast<double>(ids.size());
}

int Main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp/dedupe_bench";
  const uint64_t big_keys = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10'000'000;
  DedupeWriteOptions write_options;
  write_options.format_version = argc > 3 ? std::atoi(argv[3]) : 0;
  FileSystem* fs = FileSystem::Default();
  if (!fs->CreateDirs(dir).ok()) return 1;
  std::vector<std::string> miss_ids;
  std::mt19937_64 miss_rng(99);
  for (int i = 0; i < 1'000'000; ++i) miss_ids.push_back(RandomId(miss_rng));

  // One big run.
  {
    VectorResolver resolver;
    std::vector<std::string> hits;
    auto entries = FlushEntries(&resolver, big_keys, 1, 1, &hits);
    std::mt19937_64 shuffle_rng(7);
    std::shuffle(hits.begin(), hits.end(), shuffle_rng);
    if (hits.size() > 500'000) hits.resize(500'000);
    const std::string path = JoinPath(dir, DedupeRunFileName(1));
    DedupeRunInfo info;
    auto t0 = std::chrono::steady_clock::now();
    Status s = WriteDedupeRun(fs, path, std::move(entries), &info, write_options);
    if (!s.ok()) {
      std::printf("write: %s\n", s.ToString().c_str());
      return 1;
    }
    const double write_s = Seconds(t0);
    t0 = std::chrono::steady_clock::now();
    auto run = DedupeRun::Open(fs, path, 1);
    if (!run.ok()) {
      std::printf("open: %s\n", run.status().ToString().c_str());
      return 1;
    }
    const double open_s = Seconds(t0);
    DedupeIndex index(64 << 20);
    index.SetRuns({*run});
    std::printf("== one run of %llu keys over %llu segments (format %u, routing bits %u) ==\n",
                static_cast<unsigned long long>(big_keys),
                static_cast<unsigned long long>(info.segment_count), info.format_version,
                info.routing_bits);
    std::printf("write %.2fs (%.0f keys/s), open %.3fs\n", write_s, big_keys / write_s, open_s);
    std::printf("disk: %.3f bytes/key (%.1f MB)\n", double(info.file_size) / big_keys,
                info.file_size / 1e6);
    std::printf("RAM:  %.3f bytes/key filter+index (%.1f MB) + cache %zu MiB fixed\n",
                double(index.filter_memory_bytes()) / big_keys, index.filter_memory_bytes() / 1e6,
                index.cache_capacity_bytes() >> 20);
    int fp = 0;
    for (const auto& id : miss_ids) fp += (*run)->MayContain(Hash64(id));
    std::printf("filter false positives: %.3f%%\n", 100.0 * fp / miss_ids.size());
    std::printf("miss: %.0f ns CPU\n", CpuNsPerLookup(index, &resolver, miss_ids, false));
    std::printf("hit (random, mostly uncached blocks): %.0f ns CPU\n",
                CpuNsPerLookup(index, &resolver, hits, true));
    std::vector<std::string> hot(hits.begin(), hits.begin() + std::min<size_t>(hits.size(), 2'000));
    std::vector<std::string> hot_rep;
    for (int r = 0; r < 100; ++r) hot_rep.insert(hot_rep.end(), hot.begin(), hot.end());
    CpuNsPerLookup(index, &resolver, hot, true);  // warm the cache
    std::printf("hit (2K hot keys, cached blocks): %.0f ns CPU\n",
                CpuNsPerLookup(index, &resolver, hot_rep, true));
    fs->RemoveFile(path).IgnoreError();
  }

  // 30 flush-sized runs.
  VectorResolver resolver;
  std::vector<std::shared_ptr<DedupeRun>> runs;
  std::vector<std::string> hits_by_run[30];
  double disk_sum = 0, write_cpu = 0;
  for (uint64_t r = 0; r < 30; ++r) {
    auto entries = FlushEntries(&resolver, 300'000, 1000 + r, r * 1'000'000, &hits_by_run[r]);
    const std::string path = JoinPath(dir, DedupeRunFileName(100 + r));
    DedupeRunInfo info;
    const double c0 = ThreadCpuSeconds();
    if (!WriteDedupeRun(fs, path, std::move(entries), &info, write_options).ok()) return 1;
    write_cpu += ThreadCpuSeconds() - c0;
    disk_sum += info.file_size;
    auto run = DedupeRun::Open(fs, path, 100 + r);
    if (!run.ok()) return 1;
    runs.push_back(*run);
  }
  std::printf("\n== runs of 300K keys over 64 segments of ~4.7K rows ==\n");
  std::printf("disk: %.3f bytes/key (mean of 30 runs); write %.0f ns/key CPU (a flush's run)\n",
              disk_sum / 30 / 300'000, write_cpu * 1e9 / 30 / 300'000);
  for (size_t n : {size_t{1}, size_t{10}, size_t{30}}) {
    DedupeIndex index(64 << 20);
    index.SetRuns(std::vector<std::shared_ptr<DedupeRun>>(runs.begin(), runs.begin() + n));
    std::vector<std::string> hits;
    for (size_t r = 0; r < n; ++r) {
      const size_t take = std::min(hits_by_run[r].size(), 200'000 / n);
      hits.insert(hits.end(), hits_by_run[r].begin(), hits_by_run[r].begin() + take);
    }
    std::mt19937_64 shuffle_rng(n);
    std::shuffle(hits.begin(), hits.end(), shuffle_rng);
    const double miss_ns = CpuNsPerLookup(index, &resolver, miss_ids, false);
    CpuNsPerLookup(index, &resolver, hits, true);  // warm: 64 MiB holds every block
    const double hit_ns = CpuNsPerLookup(index, &resolver, hits, true);
    std::printf(
        "%2zu runs: miss %.0f ns CPU (%.1f ns per run), hit %.0f ns CPU (cached blocks); "
        "RAM %.3f B/key\n",
        n, miss_ns, miss_ns / n, hit_ns,
        double(index.filter_memory_bytes()) / static_cast<double>(index.key_count()));
  }
  {
    // The db's merge: the 4 smallest runs (DBImpl::MaybeMergeDedupeRuns), best of 3.
    double best = 1e9;
    DedupeRunInfo info4;
    Status s4;
    for (int rep = 0; rep < 3; ++rep) {
      const double c0 = ThreadCpuSeconds();
      const std::vector<std::shared_ptr<DedupeRun>> four(runs.begin(), runs.begin() + 4);
      s4 = MergeDedupeRuns(fs, four, JoinPath(dir, DedupeRunFileName(499)), &resolver, &info4);
      best = std::min(best, ThreadCpuSeconds() - c0);
    }
    std::printf("merge 4 runs -> %llu keys: %.3fs CPU (best of 3), %.0f ns/key: %s\n",
                static_cast<unsigned long long>(info4.key_count), best,
                best * 1e9 / static_cast<double>(std::max<uint64_t>(info4.key_count, 1)),
                s4.ToString().c_str());
  }
  DedupeRunInfo merged_info;
  auto t0 = std::chrono::steady_clock::now();
  const double merge_cpu0 = ThreadCpuSeconds();
  const std::string merged_path = JoinPath(dir, DedupeRunFileName(500));
  Status s = MergeDedupeRuns(fs, runs, merged_path, &resolver, &merged_info);
  const double merge_cpu = ThreadCpuSeconds() - merge_cpu0;
  std::printf(
      "merge 30 runs -> %llu keys in %.2fs (%.2fs CPU), %.3f bytes/key (routing bits %u): %s\n",
      static_cast<unsigned long long>(merged_info.key_count), Seconds(t0), merge_cpu,
      double(merged_info.file_size) / merged_info.key_count, merged_info.routing_bits,
      s.ToString().c_str());
  // The merged run alone: filter false positives, and misses that reach the resolver (filter
  // positive and a stored routing value equal to the id's).
  if (s.ok()) {
    auto merged = DedupeRun::Open(fs, merged_path, 500);
    if (merged.ok()) {
      int fp = 0;
      for (const auto& id : miss_ids) fp += (*merged)->MayContain(Hash64(id));
      DedupeIndex index(64 << 20);
      index.SetRuns({*merged});
      resolver.resolve_calls = 0;
      const double miss_ns = CpuNsPerLookup(index, &resolver, miss_ids, false);
      std::printf(
          "merged run: filter false positives %.3f%%, misses reaching the resolver "
          "%llu of %zu, miss %.0f ns CPU, RAM %.3f B/key\n",
          100.0 * fp / miss_ids.size(), static_cast<unsigned long long>(resolver.resolve_calls),
          miss_ids.size(), miss_ns, double(index.filter_memory_bytes()) / merged_info.key_count);
    }
  }
  for (auto& r : runs) fs->RemoveFile(r->path()).IgnoreError();
  fs->RemoveFile(merged_path).IgnoreError();
  return 0;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) { return usagedb::Main(argc, argv); }
