// parquet_bench [OUT] [--rows N] [--seed S] [--rows-per-group R] [--page-rows P]
//               [--zstd-level L]
//
// Writes N (default 10M) generated events (SPEC §9-like: `evt_` + 26 base32 ids, 1K accounts
// with a Zipf-like skew, 10 meters, 100 models, 2-4 dimensions, 0.1% corrections) with
// ParquetWriter and prints rows/s (writer only, and with generation), file bytes and peak RSS.
// tests/js/duckdb_bench.mjs then has DuckDB rewrite the same rows for a side-by-side.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "export/parquet_writer.h"
#include "io/file_system.h"
#include "usagedb/event.h"

namespace usagedb {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Uniform(uint64_t n) { return Next() % n; }
  double Unit() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t s_;
};

constexpr int64_t kMay2026Ms = 1777593600000;
constexpr int64_t kMonthMs = 31ll * 86400000;
const char* const kMeters[] = {"tokens.input",      "tokens.output",      "tokens.cached_input",
                               "tokens.reasoning",  "tokens.embedding",   "requests.llm",
                               "requests.embedding", "requests.image",    "tool.calls",
                               "agent.runtime_ms"};
const char* const kUnits[] = {"token", "token", "token", "token", "token",
                              "request", "request", "request", "call", "ms"};
const char* const kProviders[] = {"anthropic", "openai", "google", "mistral"};
const char* const kAgents[] = {"support-agent", "coding-agent", "research-agent", "sales-agent",
                               "ops-agent", "triage-agent"};
const char* const kTools[] = {"web_search", "code_exec", "file_read", "sql", "browser",
                              "calendar", "email", "crm"};
const char* const kRegions[] = {"us-east-1", "us-west-2", "eu-west-1", "ap-south-1"};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {
    for (int i = 0; i < 1000; ++i) accounts_.push_back("acct_" + std::to_string(100000 + i));
    for (int i = 0; i < 100; ++i) models_.push_back("model-" + std::to_string(i));
  }

  void Next(Event* e) {
    static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
    e->event_id.assign("evt_");
    uint64_t r = rng_.Next();
    uint64_t r2 = rng_.Next();
    for (int i = 0; i < 26; ++i) {
      uint64_t& src = i < 12 ? r : r2;
      e->event_id.push_back(kBase32[src & 31]);
      src >>= 5;
    }
    const bool correction = rng_.Uniform(1000) == 0;
    e->kind = correction ? EventKind::kCorrection : EventKind::kUsage;
    e->has_correction_ref = correction;
    e->correction_original_event_id = correction ? last_id_ : std::string();
    e->correction_reason = correction ? "late usage fix" : "";
    // Zipf-like skew: a few accounts hold most events.
    const size_t a = static_cast<size_t>(std::pow(rng_.Unit(), 3.0) * accounts_.size());
    e->account_id = accounts_[a];
    e->subscription_id = "sub_" + std::to_string(100000 + a);
    e->product_id = a % 3 == 0 ? "agents" : "chat";
    const size_t m = rng_.Uniform(10);
    e->meter_id = kMeters[m];
    e->model_id = models_[rng_.Uniform(100)];
    e->timestamp_ms = kMay2026Ms + static_cast<int64_t>(rng_.Uniform(kMonthMs));
    __int128 q = m == 9 ? rng_.Uniform(600000) : rng_.Uniform(m < 5 ? 20000 : 10) + 1;
    if (correction) q = -q;
    e->quantity = q;
    e->unit = kUnits[m];
    e->source = "collector-" + std::to_string(rng_.Uniform(4));
    e->dimensions.clear();
    const int n = 2 + static_cast<int>(rng_.Uniform(3));  // 2-4 of agent, provider, region, tool
    const int skip = n == 4 ? -1 : static_cast<int>(rng_.Uniform(4));
    const int skip2 = n == 2 ? static_cast<int>((skip + 1 + rng_.Uniform(3)) % 4) : -1;
    for (int k = 0; k < 4; ++k) {
      if (k == skip || k == skip2) continue;
      switch (k) {
        case 0: e->dimensions.push_back({"agent", kAgents[rng_.Uniform(6)]}); break;
        case 1: e->dimensions.push_back({"provider", kProviders[rng_.Uniform(4)]}); break;
        case 2: e->dimensions.push_back({"region", kRegions[rng_.Uniform(4)]}); break;
        case 3: e->dimensions.push_back({"tool", kTools[rng_.Uniform(8)]}); break;
      }
    }
    e->ingested_at_ms = e->timestamp_ms + static_cast<int64_t>(rng_.Uniform(5000));
    last_id_ = e->event_id;
  }

 private:
  Rng rng_;
  std::vector<std::string> accounts_;
  std::vector<std::string> models_;
  std::string last_id_ = "evt_00000000000000000000000000";
};

int Main(int argc, char** argv) {
  std::string out = "/tmp/usagedb_parquet_bench.parquet";
  uint64_t rows = 10'000'000, seed = 42;
  ParquetWriterOptions options;
  int argi = 1;
  if (argi < argc && argv[argi][0] != '-') out = argv[argi++];
  for (; argi < argc; ++argi) {
    const std::string arg = argv[argi];
    if (argi + 1 >= argc) {
      std::fprintf(stderr, "missing value for %s\n", arg.c_str());
      return 2;
    }
    const uint64_t v = std::strtoull(argv[++argi], nullptr, 10);
    if (arg == "--rows") {
      rows = v;
    } else if (arg == "--seed") {
      seed = v;
    } else if (arg == "--rows-per-group") {
      options.rows_per_row_group = v;
    } else if (arg == "--page-rows") {
      options.page_rows = static_cast<uint32_t>(v);
    } else if (arg == "--zstd-level") {
      options.zstd_level = static_cast<int>(v);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return 2;
    }
  }

  using Clock = std::chrono::steady_clock;
  auto writer = ParquetWriter::Create(FileSystem::Default(), out, options);
  if (!writer.ok()) {
    std::fprintf(stderr, "%s\n", writer.status().ToString().c_str());
    return 1;
  }
  Generator gen(seed);
  std::vector<Event> batch(4096);
  double write_s = 0;
  const auto t0 = Clock::now();
  for (uint64_t done = 0; done < rows;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(batch.size(), rows - done));
    for (size_t i = 0; i < n; ++i) gen.Next(&batch[i]);
    const auto w0 = Clock::now();
    for (size_t i = 0; i < n; ++i) {
      Status s = (*writer)->Append(batch[i]);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
    }
    write_s += std::chrono::duration<double>(Clock::now() - w0).count();
    done += n;
  }
  const auto f0 = Clock::now();
  Status s = (*writer)->Finish();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const auto t1 = Clock::now();
  write_s += std::chrono::duration<double>(t1 - f0).count();
  const double total_s = std::chrono::duration<double>(t1 - t0).count();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const uint64_t bytes = (*writer)->bytes_written();
  std::printf("{\"file\":\"%s\",\"rows\":%llu,\"row_groups\":%llu,\"file_bytes\":%llu,"
              "\"bytes_per_row\":%.2f,\"write_seconds\":%.3f,\"write_rows_per_s\":%.0f,"
              "\"total_seconds\":%.3f,\"total_rows_per_s\":%.0f,\"peak_rss_mib\":%.1f}\n",
              out.c_str(), static_cast<unsigned long long>(rows),
              static_cast<unsigned long long>((*writer)->row_groups_written()),
              static_cast<unsigned long long>(bytes), rows ? double(bytes) / rows : 0.0, write_s,
              write_s > 0 ? rows / write_s : 0.0, total_s, total_s > 0 ? rows / total_s : 0.0,
              ru.ru_maxrss / 1024.0);
  return 0;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) { return usagedb::Main(argc, argv); }
