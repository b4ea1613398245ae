// Dedupe index benchmark (a program that prints numbers, not a test).
//   dedupe_bench [dir] [keys]   (defaults: /tmp/dedupe_bench, 10000000)
// Builds one run of `keys` random evt_ ids and reports bytes/key on disk and in RAM, lookups/s
// for misses and hits with 1 and 2 threads, then the cost of a miss against 30 runs of 300K.
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dedupe/dedupe.h"

namespace usagedb {
namespace {

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

std::vector<DedupeEntry> MakeEntries(uint64_t n, uint64_t seed, uint64_t first_seq,
                                     std::vector<std::string>* ids) {
  std::mt19937_64 rng(seed);
  std::vector<DedupeEntry> out;
  out.reserve(n);
  const int64_t base_ms = 1'714'521'600'000;  // 2024-05-01
  for (uint64_t i = 0; i < n; ++i) {
    DedupeEntry e;
    e.event_id = RandomId(rng);
    e.payload_digest = Hash128(e.event_id);
    e.ingested_at_ms = base_ms + static_cast<int64_t>(i / 1000);
    e.timestamp_ms = base_ms + static_cast<int64_t>(rng() % (31ull * 86'400'000));
    e.kind = (i % 1000 == 0) ? EventKind::kCorrection : EventKind::kUsage;
    e.commit_seq = first_seq + i / 100;
    if (ids != nullptr && i % 10 == 0) ids->push_back(e.event_id);
    out.push_back(std::move(e));
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

// Cumulative CPU seconds of all Rate() threads of the last call (the machine is shared:
// lookups per CPU-second is the per-core figure; wall-clock rates depend on the neighbours).
double g_last_cpu_seconds = 0;

// Lookups/s (wall clock) over `ids` with `threads` threads (each takes every threads-th id).
double Rate(const DedupeIndex& index, const std::vector<std::string>& ids, int threads,
            bool expect_hit) {
  std::atomic<uint64_t> wrong{0};
  std::vector<double> cpu(threads);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      const double c0 = ThreadCpuSeconds();
      for (size_t i = t; i < ids.size(); i += threads) {
        auto r = index.Lookup(ids[i], 0, 0);
        if (!r.ok() || r->has_value() != expect_hit) wrong++;
      }
      cpu[t] = ThreadCpuSeconds() - c0;
    });
  }
  for (auto& t : ts) t.join();
  const double s = Seconds(t0);
  g_last_cpu_seconds = 0;
  for (double c : cpu) g_last_cpu_seconds += c;
  if (wrong.load() != 0) std::printf("  !! %llu wrong answers\n", (unsigned long long)wrong.load());
  return static_cast<double>(ids.size()) / s;
}

// "2.10 M/s wall, 3.40 M per CPU-second".
void PrintRate(const char* what, double rate, size_t n) {
  std::printf("%s: %.2f M/s wall, %.2f M per CPU-second (%.0f ns CPU each)\n", what, rate / 1e6,
              n / g_last_cpu_seconds / 1e6, g_last_cpu_seconds * 1e9 / n);
}

int Main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp/dedupe_bench";
  const uint64_t keys = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10'000'000;
  FileSystem* fs = FileSystem::Default();
  if (!fs->CreateDirs(dir).ok()) return 1;

  std::vector<std::string> hit_ids;
  auto t0 = std::chrono::steady_clock::now();
  auto entries = MakeEntries(keys, 1, 1, &hit_ids);
  std::printf("generated %llu entries in %.2fs\n", (unsigned long long)keys, Seconds(t0));
  std::mt19937_64 shuffle_rng(7);
  std::shuffle(hit_ids.begin(), hit_ids.end(), shuffle_rng);
  if (hit_ids.size() > 1'000'000) hit_ids.resize(1'000'000);
  std::vector<std::string> miss_ids;
  std::mt19937_64 miss_rng(99);
  for (int i = 0; i < 2'000'000; ++i) miss_ids.push_back(RandomId(miss_rng));

  for (bool compress : {false, true}) {
    const std::string path = JoinPath(dir, DedupeRunFileName(compress ? 1 : 2));
    DedupeWriteOptions opts;
    opts.compress = compress;
    DedupeRunInfo info;
    t0 = std::chrono::steady_clock::now();
    Status s = WriteDedupeRun(fs, path, entries, &info, opts);
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
    std::printf("\n== one run of %llu keys, blocks %s ==\n", (unsigned long long)keys,
                compress ? "zstd" : "raw");
    std::printf("write %.2fs (%.0f keys/s), open %.3fs\n", write_s, keys / write_s, open_s);
    std::printf("disk: %.2f bytes/key (%.1f MB)\n", double(info.file_size) / keys,
                info.file_size / 1e6);
    std::printf("RAM:  %.3f bytes/key filter+index (%.1f MB) + cache %zu MiB fixed\n",
                double(index.filter_memory_bytes()) / keys, index.filter_memory_bytes() / 1e6,
                index.cache_capacity_bytes() >> 20);
    int fp = 0;
    for (const auto& id : miss_ids) fp += (*run)->MayContain(Hash64(id));
    std::printf("filter false positives: %.3f%%\n", 100.0 * fp / miss_ids.size());
    for (int threads : {1, 2}) {
      const double r = Rate(index, miss_ids, threads, false);
      PrintRate(threads == 1 ? "misses, 1 thread " : "misses, 2 threads", r, miss_ids.size());
    }
    for (int threads : {1, 2}) {
      const double r = Rate(index, hit_ids, threads, true);
      PrintRate(threads == 1 ? "hits (random, mostly uncached), 1 thread "
                             : "hits (random, mostly uncached), 2 threads",
                r, hit_ids.size());
    }
    std::vector<std::string> hot(hit_ids.begin(),
                                 hit_ids.begin() + std::min<size_t>(hit_ids.size(), 2'000));
    std::vector<std::string> hot_rep;
    for (int r = 0; r < 200; ++r) hot_rep.insert(hot_rep.end(), hot.begin(), hot.end());
    Rate(index, hot, 1, true);  // warm the cache
    const double hot_rate = Rate(index, hot_rep, 1, true);
    PrintRate("hits (2K hot keys, cached), 1 thread", hot_rate, hot_rep.size());
    std::printf("cache used: %.1f MiB\n", index.cache()->used_bytes() / 1048576.0);
  }
  entries.clear();
  entries.shrink_to_fit();
  fs->RemoveFile(JoinPath(dir, DedupeRunFileName(1))).IgnoreError();
  fs->RemoveFile(JoinPath(dir, DedupeRunFileName(2))).IgnoreError();

  // 30 runs of 300K keys.
  std::vector<std::shared_ptr<DedupeRun>> runs;
  std::vector<std::string> some_hits;
  for (uint64_t r = 0; r < 30; ++r) {
    std::vector<std::string> ids;
    auto es = MakeEntries(300'000, 1000 + r, r * 1'000'000, &ids);
    some_hits.insert(some_hits.end(), ids.begin(), ids.begin() + 10'000);
    const std::string path = JoinPath(dir, DedupeRunFileName(100 + r));
    if (!WriteDedupeRun(fs, path, std::move(es), nullptr).ok()) return 1;
    auto run = DedupeRun::Open(fs, path, 100 + r);
    if (!run.ok()) return 1;
    runs.push_back(*run);
  }
  std::shuffle(some_hits.begin(), some_hits.end(), shuffle_rng);
  std::printf("\n== misses against N runs of 300K keys ==\n");
  for (size_t n : {size_t{1}, size_t{10}, size_t{30}}) {
    DedupeIndex index(64 << 20);
    index.SetRuns(std::vector<std::shared_ptr<DedupeRun>>(runs.begin(), runs.begin() + n));
    std::vector<std::string> ms(miss_ids.begin(), miss_ids.begin() + 1'000'000);
    const double rate = Rate(index, ms, 1, false);
    const double cpu_ns = g_last_cpu_seconds * 1e9 / ms.size();
    std::printf(
        "%2zu runs: misses %.2f M/s wall, %.0f ns CPU/miss = %.1f ns per run; RAM %.3f "
        "B/key\n",
        n, rate / 1e6, cpu_ns, cpu_ns / n, double(index.filter_memory_bytes()) / index.key_count());
    if (n == 30) {
      const double hr = Rate(index, some_hits, 1, true);
      PrintRate("30 runs, hits", hr, some_hits.size());
    }
  }
  // Merge the 30 runs into one and measure again.
  DedupeRunInfo merged_info;
  t0 = std::chrono::steady_clock::now();
  const std::string merged_path = JoinPath(dir, DedupeRunFileName(500));
  Status s = MergeDedupeRuns(fs, runs, merged_path, std::nullopt, &merged_info);
  std::printf("merge 30 runs -> %llu keys in %.2fs: %s\n",
              (unsigned long long)merged_info.key_count, Seconds(t0), s.ToString().c_str());
  for (auto& r : runs) fs->RemoveFile(r->path()).IgnoreError();
  fs->RemoveFile(merged_path).IgnoreError();
  return 0;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) { return usagedb::Main(argc, argv); }
