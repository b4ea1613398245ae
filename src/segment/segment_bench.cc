// segment_bench: writes SPEC §9-like segments and prints bytes/event (per column too) and
// scan rates. Not a test: it prints numbers. Usage: segment_bench [rows ...] (default
// 5000 20000 100000). Build it in a Release tree for meaningful rates. Environment:
// ROWS_PER_BLOCK, ZSTD_LEVEL (writer options), SCAN_ONLY (skip the all-column scan),
// WRITE_ONLY (skip every scan), for instruction counts of the writer alone:
//   WRITE_ONLY=1 valgrind --tool=callgrind --toggle-collect='usagedb::WriteSegment*'
//   segment_bench 50000
// segment_bench --dir DIR [--rewrite OUT]: bytes/event per column over every *.useg in DIR
// (e.g. a database's segments/ after usagedb_ingest_bench); with --rewrite, every file's rows
// are first written again by this build's writer into OUT (same bucket, partition and block
// size), so an encoding change is measured on the database's real flush sizes. Then a scan of
// the scan columns over the (rewritten) files (SCAN_PASSES=k for exactly k passes).

#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "segment/segment.h"
#include "util/hash.h"
#include "util/int128.h"

namespace usagedb {
namespace {

constexpr int64_t kMonthStartMs = 1714521600000;  // 2024-05-01
constexpr int64_t kMonthMs = 31LL * 86400000;
constexpr int kBuckets = 64;

const char* const kMeters[] = {"tokens.input",       "tokens.output",    "tokens.cached_input",
                               "tokens.reasoning",   "tokens.embedding", "requests.llm",
                               "requests.embedding", "requests.image",   "tool.calls",
                               "agent.runtime_ms"};
const char* const kProviders[] = {"anthropic", "openai", "google", "mistral", "meta"};
const char* const kRegions[] = {"us-east-1", "us-west-2", "eu-west-1", "ap-south-1"};

class Zipf {
 public:
  Zipf(int n, double s) : cdf_(n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / std::pow(i + 1, s));
    for (double& c : cdf_) c /= sum;
  }
  int operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<int>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

std::string RandomId(std::mt19937_64& rng) {
  static const char kBase32[] = "0123456789abcdefghjkmnpqrstvwxyz";
  std::string id = "evt_";
  for (int i = 0; i < 26; ++i) id.push_back(kBase32[rng() % 32]);
  return id;
}

// One (bucket, month) partition's events: accounts of bucket 0 out of 1K Zipf accounts;
// each request emits 2-3 events (input/output tokens, sometimes requests or tools) sharing
// timestamp, model and dimensions; arrival order = time order (commit seq, ingested_at).
std::vector<Event> Generate(size_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> bucket_accounts;
  for (int a = 0; a < 1000; ++a) {
    if (Hash64("acct_" + std::to_string(a)) % kBuckets == 0) bucket_accounts.push_back(a);
  }
  const Zipf account_zipf(static_cast<int>(bucket_accounts.size()), 1.1);
  const Zipf model_zipf(100, 1.3);
  const Zipf meter_zipf(6, 1.0);
  std::vector<Event> events;
  events.reserve(rows + 3);
  while (events.size() < rows) {
    const int a = bucket_accounts[account_zipf(rng)];
    const std::string account = "acct_" + std::to_string(a);
    const int model = (model_zipf(rng) + a * 7) % 100;
    const int64_t ts = kMonthStartMs + static_cast<int64_t>(rng() % kMonthMs);
    std::vector<std::pair<std::string, std::string>> dims = {{"provider", kProviders[model % 5]},
                                                             {"region", kRegions[a % 4]}};
    if (a % 3 != 0) dims.emplace_back("agent", "agent-" + std::to_string((a + rng() % 3) % 20));
    if (rng() % 4 == 0) dims.emplace_back("tool", "tool-" + std::to_string(rng() % 20));
    std::sort(dims.begin(), dims.end());
    auto emit = [&](const char* meter, __int128 q, const char* unit, const char* product) {
      Event e;
      e.event_id = RandomId(rng);
      e.account_id = account;
      e.subscription_id = "sub_" + std::to_string(a);
      e.product_id = product;
      e.meter_id = meter;
      e.model_id = "model-" + std::to_string(model);
      e.timestamp_ms = ts;
      e.quantity = q;
      e.unit = unit;
      e.source = "gateway-" + std::to_string(rng() % 3);
      e.dimensions = dims;
      if (rng() % 1000 == 0) {
        e.kind = EventKind::kCorrection;
        e.has_correction_ref = true;
        e.correction_original_event_id = RandomId(rng);
        e.correction_reason = "meter fix";
        e.quantity = -e.quantity / 2;
      }
      events.push_back(std::move(e));
    };
    emit("tokens.input", 1 + rng() % 8000, "token", "chat");
    emit("tokens.output", 1 + rng() % 2000, "token", "chat");
    const int extra = meter_zipf(rng);
    if (extra >= 2) {
      const int m = 2 + rng() % 8;
      const bool count = m >= 5 && m <= 8;
      emit(kMeters[m], count ? 1 : 1 + rng() % 5000, count ? "request" : "token",
           m == 9 ? "agents" : "chat");
    }
  }
  events.resize(rows);
  // Arrival (commit) order follows time; ingest at 100K events/s.
  std::sort(events.begin(), events.end(),
            [](const Event& x, const Event& y) { return x.timestamp_ms < y.timestamp_ms; });
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].commit_seq = 5000000 + i;
    events[i].ingested_at_ms = kMonthStartMs + kMonthMs + static_cast<int64_t>(i / 100);
  }
  std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) {
    return std::tie(x.account_id, x.product_id, x.meter_id, x.model_id, x.timestamp_ms,
                    x.event_id) <
           std::tie(y.account_id, y.product_id, y.meter_id, y.model_id, y.timestamp_ms, y.event_id);
  });
  return events;
}

// CPU time of this thread: the machine is shared, so wall time understates per-core speed.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* kColumnNames[kNumColumns] = {
    "event_id",   "kind",       "corr_orig_id",   "corr_reason",  "account_id", "subscription_id",
    "product_id", "meter_id",   "model_id",       "timestamp_ms", "quantity",   "unit",
    "source",     "dimensions", "ingested_at_ms", "commit_seq"};

// The dedupe resolver's read of one matched row (its event ids already decoded, in *ids):
// before ReadRow, the block's other columns were decoded and the row materialized.
[[gnu::noinline]] Status ReadRowByBlock(const SegmentReader& reader, size_t block, size_t row,
                                        StringColumn* ids, DecodedBlock* decoded, Event* out) {
  RETURN_IF_ERROR(reader.ReadBlock(block, kAllColumns & ~ColumnBit(Column::kEventId), decoded));
  std::swap(decoded->event_id, *ids);
  const Status s = decoded->MaterializeRow(row, out);
  std::swap(decoded->event_id, *ids);
  return s;
}
[[gnu::noinline]] Status ReadOneRow(const SegmentReader& reader, size_t block, size_t row,
                                    Event* out) {
  return reader.ReadRow(block, row, out);
}

// ROW_READS=k: k rows at random positions read alone (ReadRow), or with ROW_READS_OLD set
// the old way (the block's other columns decoded per row, no cache; the event ids are decoded
// outside the measured function in both: the resolver decodes them first either way). CPU
// time includes that id decode in the old mode. For callgrind:
//   ROW_READS=200 valgrind --tool=callgrind --toggle-collect='usagedb::*ReadOneRow*' ...
int RowReads(const SegmentReader& reader, uint64_t k, bool old) {
  std::mt19937_64 rng(5);
  DecodedBlock decoded, ids_block;
  Event e;
  uint64_t checksum = 0;
  const double cpu0 = ThreadCpuSeconds();
  for (uint64_t i = 0; i < k; ++i) {
    const size_t block = rng() % reader.num_blocks();
    const size_t row = rng() % reader.zone_map(block).row_count;
    Status s;
    if (old) {
      s = reader.ReadBlock(block, ColumnBit(Column::kEventId), &ids_block);  // not in the toggle
      if (s.ok()) s = ReadRowByBlock(reader, block, row, &ids_block.event_id, &decoded, &e);
    } else {
      s = ReadOneRow(reader, block, row, &e);
    }
    if (!s.ok()) {
      std::fprintf(stderr, "read row: %s\n", s.ToString().c_str());
      return 1;
    }
    checksum += e.event_id.size() + e.dimensions.size() + static_cast<uint64_t>(e.quantity);
  }
  const double cpu = ThreadCpuSeconds() - cpu0;
  std::printf("  %s: %llu rows, %.1f us CPU per row (checksum %llu)\n",
              old ? "whole-block decode + MaterializeRow" : "ReadRow",
              static_cast<unsigned long long>(k), cpu / static_cast<double>(k) * 1e6,
              static_cast<unsigned long long>(checksum));
  return 0;
}

int Run(size_t rows) {
  FileSystem* fs = FileSystem::Default();
  const std::string path = "/tmp/segment_bench_" + std::to_string(rows) + ".useg";
  const std::vector<Event> events = Generate(rows, rows);
  std::vector<const Event*> ptrs;
  for (const Event& e : events) ptrs.push_back(&e);
  SegmentInfo info;
  info.partition = MonthPartition(kMonthStartMs);
  SegmentWriterOptions options;
  if (const char* v = std::getenv("ROWS_PER_BLOCK")) options.rows_per_block = std::atoi(v);
  if (const char* v = std::getenv("ZSTD_LEVEL")) options.zstd_level = std::atoi(v);
  auto t0 = std::chrono::steady_clock::now();
  const double write_cpu0 = ThreadCpuSeconds();
  Status s = WriteSegment(fs, path, ptrs, options, &info);
  const double write_cpu = ThreadCpuSeconds() - write_cpu0;
  const double write_s = Seconds(t0);
  if (!s.ok()) {
    std::fprintf(stderr, "write: %s\n", s.ToString().c_str());
    return 1;
  }
  auto reader = SegmentReader::Open(fs, path);
  if (!reader.ok()) {
    std::fprintf(stderr, "open: %s\n", reader.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "rows %zu: %zu bytes, %.2f bytes/event, %zu blocks, write %.2fM rows/s per core (CPU "
      "time; %.2fM/s wall incl. fsync)\n",
      rows, static_cast<size_t>(info.file_size),
      static_cast<double>(info.file_size) / static_cast<double>(rows), (*reader)->num_blocks(),
      static_cast<double>(rows) / write_cpu / 1e6, static_cast<double>(rows) / write_s / 1e6);
  std::printf("  bytes/event by column:");
  for (int c = 0; c < kNumColumns; ++c) {
    uint64_t bytes = 0;
    for (size_t b = 0; b < (*reader)->num_blocks(); ++b) {
      bytes += (*reader)->chunk_extent(b, static_cast<Column>(c)).size;
    }
    std::printf("%s %s=%.2f", c % 4 == 0 ? "\n   " : "", kColumnNames[c],
                static_cast<double>(bytes) / static_cast<double>(rows));
  }
  std::printf("\n  encodings of block 0 (id/codec):");
  std::string bytes;
  if (fs->ReadFileToString(path, &bytes).ok()) {
    for (int c = 0; c < kNumColumns; ++c) {
      const ChunkExtent e = (*reader)->chunk_extent(0, static_cast<Column>(c));
      std::printf("%s %s=%d/%d", c % 4 == 0 ? "\n   " : "", kColumnNames[c],
                  static_cast<uint8_t>(bytes[e.offset]), static_cast<uint8_t>(bytes[e.offset + 1]));
    }
  }
  std::printf("\n");

  if (const char* v = std::getenv("ROW_READS")) {  // one row of a block, as the resolver reads it
    return RowReads(**reader, std::strtoull(v, nullptr, 10),
                    std::getenv("ROW_READS_OLD") != nullptr);
  }

  if (std::getenv("WRITE_ONLY") != nullptr) {  // for callgrind: only WriteSegment matters
    fs->RemoveFile(path).IgnoreError();
    return 0;
  }

  // Baseline: zstd -3 over the raw 26 random chars of every id.
  std::string raw_ids;
  for (const Event& e : events) raw_ids.append(e.event_id, 4, std::string::npos);
  std::string z(ZSTD_compressBound(raw_ids.size()), '\0');
  const size_t zn = ZSTD_compress(z.data(), z.size(), raw_ids.data(), raw_ids.size(), 3);
  std::printf("  ids: zstd-3 on raw base32 suffixes %.2f bytes/id, entropy 16.25\n",
              static_cast<double>(zn) / static_cast<double>(rows));

  const ColumnMask scan_mask = ColumnBit(Column::kAccountId) | ColumnBit(Column::kTimestampMs) |
                               ColumnBit(Column::kQuantity) | ColumnBit(Column::kCommitSeq);
  for (ColumnMask mask : {scan_mask, kAllColumns}) {
    if (mask == kAllColumns && std::getenv("SCAN_ONLY") != nullptr) break;
    DecodedBlock block;
    WideSum sum;
    uint64_t scanned = 0, checksum = 0;
    int reps = 0;
    t0 = std::chrono::steady_clock::now();
    const double cpu0 = ThreadCpuSeconds();
    do {
      for (size_t b = 0; b < (*reader)->num_blocks(); ++b) {
        s = (*reader)->ReadBlock(b, mask, &block);
        if (!s.ok()) {
          std::fprintf(stderr, "read: %s\n", s.ToString().c_str());
          return 1;
        }
        __int128 block_sum = 0;  // |q| < 10^38 and rows per block < 2^20: cannot overflow
        for (size_t i = 0; i < block.rows; ++i) {
          block_sum += block.quantity[i];
          checksum += block.account_id.codes[i] + static_cast<uint64_t>(block.timestamp_ms[i]) +
                      block.commit_seq[i];
        }
        sum.Add(block_sum);
        scanned += block.rows;
      }
      ++reps;
    } while (ThreadCpuSeconds() - cpu0 < 1.0);
    const double cpu = ThreadCpuSeconds() - cpu0;
    const double secs = Seconds(t0);
    std::printf(
        "  %s scan (sum quantity): %.1fM rows/s per core (CPU time; %.1fM/s wall, "
        "%d passes, checksum %llu)\n",
        mask == kAllColumns ? "all-column" : "account+ts+quantity+seq",
        static_cast<double>(scanned) / cpu / 1e6, static_cast<double>(scanned) / secs / 1e6, reps,
        static_cast<unsigned long long>(checksum % 1000));
  }
  fs->RemoveFile(path).IgnoreError();
  return 0;
}

std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".useg") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Reads every row of `path` and writes them again to out_dir with this build's writer.
Status Rewrite(const std::string& path, const std::string& out_dir, std::string* out_path,
               double* write_cpu) {
  FileSystem* fs = FileSystem::Default();
  ASSIGN_OR_RETURN(std::unique_ptr<SegmentReader> reader, SegmentReader::Open(fs, path));
  std::vector<Event> events;
  events.reserve(reader->info().row_count);
  DecodedBlock block;
  for (size_t b = 0; b < reader->num_blocks(); ++b) {
    RETURN_IF_ERROR(reader->ReadBlock(b, kAllColumns, &block));
    for (size_t i = 0; i < block.rows; ++i) {
      RETURN_IF_ERROR(block.MaterializeRow(i, &events.emplace_back()));
    }
  }
  std::vector<const Event*> ptrs;
  for (const Event& e : events) ptrs.push_back(&e);
  SegmentInfo info;
  info.bucket = reader->info().bucket;
  info.partition = reader->info().partition;
  info.origin_min_seq = reader->info().origin_min_seq;
  info.origin_max_seq = reader->info().origin_max_seq;
  info.origin_replaced = reader->info().origin_replaced;
  SegmentWriterOptions options;
  if (const char* v = std::getenv("ROWS_PER_BLOCK")) options.rows_per_block = std::atoi(v);
  if (const char* v = std::getenv("ZSTD_LEVEL")) options.zstd_level = std::atoi(v);
  *out_path = out_dir + "/" + std::filesystem::path(path).filename().string();
  const double cpu0 = ThreadCpuSeconds();
  RETURN_IF_ERROR(WriteSegment(fs, *out_path, ptrs, options, &info));
  *write_cpu += ThreadCpuSeconds() - cpu0;
  // The rewritten file must hold the same rows.
  ASSIGN_OR_RETURN(std::unique_ptr<SegmentReader> again, SegmentReader::Open(fs, *out_path));
  size_t row = 0;
  Event e;
  for (size_t b = 0; b < again->num_blocks(); ++b) {
    RETURN_IF_ERROR(again->ReadBlock(b, kAllColumns, &block));
    for (size_t i = 0; i < block.rows; ++i, ++row) {
      RETURN_IF_ERROR(block.MaterializeRow(i, &e));
      if (row >= events.size() || !(e == events[row])) {
        return Status::Corruption(*out_path + ": row " + std::to_string(row) + " differs");
      }
    }
  }
  if (row != events.size()) return Status::Corruption(*out_path + ": row count differs");
  return Status::OK();
}

int RunDir(const std::string& dir, const std::string& rewrite_dir) {
  FileSystem* fs = FileSystem::Default();
  std::vector<std::string> files = SegmentFiles(dir);
  if (files.empty()) {
    std::fprintf(stderr, "no *.useg files in %s\n", dir.c_str());
    return 1;
  }
  if (!rewrite_dir.empty()) {
    std::filesystem::create_directories(rewrite_dir);
    double write_cpu = 0;
    for (std::string& f : files) {
      std::string out;
      Status s = Rewrite(f, rewrite_dir, &out, &write_cpu);
      if (!s.ok()) {
        std::fprintf(stderr, "rewrite: %s\n", s.ToString().c_str());
        return 1;
      }
      f = out;
    }
    std::printf("rewrote %zu files: writer %.2f s CPU\n", files.size(), write_cpu);
  }
  double column_bytes[kNumColumns] = {};
  uint64_t rows = 0, file_bytes = 0;
  std::vector<std::unique_ptr<SegmentReader>> readers;
  std::map<int, uint64_t> encodings[kNumColumns];  // encoding id -> chunks
  for (const std::string& f : files) {
    auto r = SegmentReader::Open(fs, f);
    if (!r.ok()) {
      std::fprintf(stderr, "open: %s\n", r.status().ToString().c_str());
      return 1;
    }
    if (const char* v = std::getenv("ROW_READS")) {  // per file, as in Run
      if (RowReads(**r, std::strtoull(v, nullptr, 10), std::getenv("ROW_READS_OLD") != nullptr)) {
        return 1;
      }
      continue;
    }
    std::string bytes;
    if (!fs->ReadFileToString(f, &bytes).ok()) return 1;
    const SegmentReader& s = **r;
    rows += s.info().row_count;
    file_bytes += s.info().file_size;
    for (size_t b = 0; b < s.num_blocks(); ++b) {
      for (int c = 0; c < kNumColumns; ++c) {
        const ChunkExtent e = s.chunk_extent(b, static_cast<Column>(c));
        column_bytes[c] += static_cast<double>(e.size);
        ++encodings[c][static_cast<uint8_t>(bytes[e.offset]) * 10 +
                       static_cast<uint8_t>(bytes[e.offset + 1])];
      }
    }
    readers.push_back(std::move(*r));
  }
  const double n = static_cast<double>(rows);
  double sum = 0;
  for (int c = 0; c < kNumColumns; ++c) {
    std::printf("%-16s %7.3f  encodings (id*10+codec: chunks)", kColumnNames[c],
                column_bytes[c] / n);
    for (const auto& [e, count] : encodings[c]) {
      std::printf(" %d:%llu", e, static_cast<unsigned long long>(count));
    }
    std::printf("\n");
    sum += column_bytes[c];
  }
  std::printf(
      "columns %.3f file %.3f (footer+header+trailer %.3f) rows %llu files %zu "
      "rows/file %.0f\n",
      sum / n, static_cast<double>(file_bytes) / n, (static_cast<double>(file_bytes) - sum) / n,
      static_cast<unsigned long long>(rows), files.size(), n / static_cast<double>(files.size()));
  if (std::getenv("WRITE_ONLY") != nullptr) return 0;
  // Scan of the scan columns (as a query reads them), CPU time; SCAN_ALL=1: every column (as
  // list events and exports read them); SCAN_MASK=m: the columns of ColumnMask m (1: event_id,
  // as the dedupe merge reads it).
  const bool all = std::getenv("SCAN_ALL") != nullptr;
  const char* scan_mask = std::getenv("SCAN_MASK");
  ColumnMask mask = ColumnBit(Column::kAccountId) | ColumnBit(Column::kProductId) |
                    ColumnBit(Column::kMeterId) | ColumnBit(Column::kModelId) |
                    ColumnBit(Column::kTimestampMs) | ColumnBit(Column::kQuantity) |
                    ColumnBit(Column::kCommitSeq);
  if (all) mask = kAllColumns;
  if (scan_mask != nullptr) mask = static_cast<ColumnMask>(std::atoi(scan_mask));
  constexpr ColumnMask kSummed = ColumnBit(Column::kAccountId) | ColumnBit(Column::kTimestampMs) |
                                 ColumnBit(Column::kCommitSeq) | ColumnBit(Column::kQuantity);
  DecodedBlock block;
  uint64_t scanned = 0, checksum = 0;
  const double cpu0 = ThreadCpuSeconds();
  int reps = 0;
  // SCAN_PASSES=k: exactly k passes (for instruction counts), else passes for >= 1 s.
  const int passes = std::getenv("SCAN_PASSES") ? std::atoi(std::getenv("SCAN_PASSES")) : 0;
  do {
    for (const auto& r : readers) {
      for (size_t b = 0; b < r->num_blocks(); ++b) {
        Status s = r->ReadBlock(b, mask, &block);
        if (!s.ok()) {
          std::fprintf(stderr, "read: %s\n", s.ToString().c_str());
          return 1;
        }
        for (size_t i = 0; i < block.rows && (mask & kSummed) == kSummed; ++i) {
          checksum += block.account_id.codes[i] + static_cast<uint64_t>(block.timestamp_ms[i]) +
                      block.commit_seq[i] + static_cast<uint64_t>(block.quantity[i]);
        }
        scanned += block.rows;
      }
    }
    ++reps;
  } while (passes > 0 ? reps < passes : ThreadCpuSeconds() - cpu0 < 1.0);
  const double cpu = ThreadCpuSeconds() - cpu0;
  std::printf("scan %s: %.1fM rows/s per core (CPU time, %d passes, checksum %llu)\n",
              scan_mask != nullptr ? scan_mask
              : all                ? "all columns"
                                   : "account+product+meter+model+ts+quantity+seq",
              static_cast<double>(scanned) / cpu / 1e6, reps,
              static_cast<unsigned long long>(checksum % 1000));
  return 0;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "--dir") {
    std::string rewrite;
    if (argc >= 5 && std::string(argv[3]) == "--rewrite") rewrite = argv[4];
    return usagedb::RunDir(argv[2], rewrite);
  }
  std::vector<size_t> sizes = {5000, 20000, 100000};
  if (argc > 1) {
    sizes.clear();
    for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  }
  for (size_t rows : sizes) {
    if (rows == 0 || usagedb::Run(rows) != 0) return 1;
  }
  return 0;
}
