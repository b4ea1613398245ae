// WAL benchmark (a program that prints numbers, not a test):
//   wal_bench [DIR] [--records N] [--syncs M]
//  1. AddRecord + Sync throughput for 200 KB records (MB/s, records/s).
//  2. Latency of a small append (100-byte record) + fdatasync: p50 / p99 / max.
//  3. The same 200 KB records + Sync over a recycled file (the file of 1): sync p50 against 1.
//  4. ReadWalFile of a recycled file holding 10 records before its old bytes (the tag scan).
// DIR defaults to the current directory; it should be on the disk being measured.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/file_system.h"
#include "wal/wal.h"

namespace {

using Clock = std::chrono::steady_clock;
using usagedb::wal::RecordType;
using usagedb::wal::Writer;

void Check(const usagedb::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::exit(1);
  }
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Appends `records` 200 KB records, syncing each; returns each sync's latency (us).
std::vector<double> WriteSynced(Writer* w, int records) {
  std::string payload(200 * 1024, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + 7);
  std::vector<double> sync_us;
  for (int i = 0; i < records; ++i) {
    Check(w->AddRecord(RecordType::kUnit, payload));
    auto start = Clock::now();
    Check(w->Sync());
    sync_us.push_back(Seconds(Clock::now() - start) * 1e6);
  }
  return sync_us;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = ".";
  int records = 200;
  int syncs = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--records" && i + 1 < argc) {
      records = std::atoi(argv[++i]);
    } else if (a == "--syncs" && i + 1 < argc) {
      syncs = std::atoi(argv[++i]);
    } else {
      dir = a;
    }
  }
  usagedb::FileSystem* fs = usagedb::FileSystem::Default();
  const std::string wal_dir = usagedb::JoinPath(dir, "wal_bench." + std::to_string(getpid()));
  Check(fs->CreateDirs(wal_dir));

  double new_file_sync_p50 = 0;
  {
    auto w = Writer::Create(fs, wal_dir, 1, 1);
    Check(w.status());
    auto start = Clock::now();
    std::vector<double> sync_us = WriteSynced(w->get(), records);
    double secs = Seconds(Clock::now() - start);
    double mb = static_cast<double>(records) * 200 * 1024 / (1024.0 * 1024.0);
    new_file_sync_p50 = Median(sync_us);
    std::printf("200KB AddRecord+Sync: %d records, %.1f MB in %.3f s = %.1f MB/s, %.0f records/s "
                "(sync p50 %.0f us)\n",
                records, mb, secs, mb / secs, records / secs, new_file_sync_p50);
    Check((*w)->Close());  // kept: recycled below
  }
  {
    auto w = Writer::Create(fs, wal_dir, 2, 1);
    Check(w.status());
    std::string payload(100, 'x');
    std::vector<double> us;
    us.reserve(syncs);
    for (int i = 0; i < syncs; ++i) {
      auto start = Clock::now();
      Check((*w)->AddRecord(RecordType::kUnit, payload));
      Check((*w)->Sync());
      us.push_back(Seconds(Clock::now() - start) * 1e6);
    }
    std::sort(us.begin(), us.end());
    auto pct = [&us](double p) {
      return us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))];
    };
    std::printf("small append+fdatasync: n=%d p50=%.0f us p99=%.0f us max=%.0f us\n", syncs,
                pct(0.50), pct(0.99), us.back());
    Check((*w)->Close());
    Check(fs->RemoveFile((*w)->path()));
  }
  {
    // File 1 recycled as file 3: the same writes over allocated blocks.
    const std::string pooled = usagedb::JoinPath(wal_dir, usagedb::wal::WalRecycleFileName(1));
    Check(fs->Rename(usagedb::JoinPath(wal_dir, usagedb::wal::WalFileName(1)), pooled));
    auto w = Writer::CreateRecycled(fs, wal_dir, pooled, 3, 1);
    Check(w.status());
    const double p50 = Median(WriteSynced(w->get(), records));
    std::printf("200KB AddRecord+Sync over a recycled file: sync p50 %.0f us (new file %.0f us)\n",
                p50, new_file_sync_p50);
    Check((*w)->Close());
    // File 3 recycled as file 4 with 10 records: the reader's scan over the old bytes.
    const std::string pooled3 = usagedb::JoinPath(wal_dir, usagedb::wal::WalRecycleFileName(3));
    Check(fs->Rename((*w)->path(), pooled3));
    auto w4 = Writer::CreateRecycled(fs, wal_dir, pooled3, 4, 1);
    Check(w4.status());
    WriteSynced(w4->get(), 10);
    Check((*w4)->Close());
    auto size = fs->FileSize((*w4)->path());
    Check(size.status());
    auto start = Clock::now();
    auto r = usagedb::wal::ReadWalFile(fs, (*w4)->path(), false);
    Check(r.status());
    std::printf("ReadWalFile of a recycled file (%.1f MB, %zu records of its own): %.1f ms\n",
                *size / 1048576.0, r->records.size(), Seconds(Clock::now() - start) * 1e3);
    Check(fs->RemoveFile((*w4)->path()));
  }
  Check(fs->RemoveDir(wal_dir));
  return 0;
}
