// WAL benchmark (a program that prints numbers, not a test):
//   wal_bench [DIR] [--records N] [--syncs M]
//  1. AddRecord + Sync throughput for 200 KB records (MB/s, records/s).
//  2. Latency of a small append (100-byte record) + fdatasync: p50 / p99 / max.
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

  {
    auto w = Writer::Create(fs, wal_dir, 1, 1);
    Check(w.status());
    std::string payload(200 * 1024, '\0');
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + 7);
    auto start = Clock::now();
    for (int i = 0; i < records; ++i) {
      Check((*w)->AddRecord(RecordType::kUnit, payload));
      Check((*w)->Sync());
    }
    double secs = Seconds(Clock::now() - start);
    double mb = static_cast<double>(records) * payload.size() / (1024.0 * 1024.0);
    std::printf("200KB AddRecord+Sync: %d records, %.1f MB in %.3f s = %.1f MB/s, %.0f records/s\n",
                records, mb, secs, mb / secs, records / secs);
    Check((*w)->Close());
    Check(fs->RemoveFile((*w)->path()));
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
  Check(fs->RemoveDir(wal_dir));
  return 0;
}
