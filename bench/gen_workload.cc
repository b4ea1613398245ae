// usagedb_gen: writes the SPEC §9 benchmark workload as JSON Lines.
//   usagedb_gen --events N --accounts K --seed S --out FILE   (FILE "-" = stdout)
// Prints a one-line summary (counts, bytes, events/s) to stderr.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "bench/workload.h"
#include "io/file_system.h"

namespace {

constexpr size_t kFlushBytes = 1 << 20;

// Where the JSON lines go: a file through the FileSystem seam, or stdout.
class Sink {
 public:
  static usagedb::Result<std::unique_ptr<Sink>> Open(const std::string& path) {
    auto sink = std::make_unique<Sink>();
    if (path != "-") {
      ASSIGN_OR_RETURN(sink->file_, usagedb::FileSystem::Default()->NewWritableFile(path));
    }
    return sink;
  }
  usagedb::Status Write(std::string_view data) {
    if (file_ != nullptr) return file_->Append(data);
    while (!data.empty()) {
      ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return usagedb::Status::IOError("stdout: write failed");
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return usagedb::Status::OK();
  }
  usagedb::Status Finish() {
    if (file_ == nullptr) return usagedb::Status::OK();
    RETURN_IF_ERROR(file_->Sync());
    return file_->Close();
  }

 private:
  std::unique_ptr<usagedb::WritableFile> file_;
};

usagedb::Status Generate(const usagedb::bench::WorkloadOptions& options, const std::string& out) {
  ASSIGN_OR_RETURN(auto sink, Sink::Open(out));
  usagedb::bench::WorkloadGenerator gen(options);
  usagedb::Event event;
  std::string buf;
  buf.reserve(kFlushBytes + 4096);
  uint64_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  while (gen.Next(&event)) {
    usagedb::bench::AppendEventJsonLine(event, &buf);
    if (buf.size() >= kFlushBytes) {
      RETURN_IF_ERROR(sink->Write(buf));
      bytes += buf.size();
      buf.clear();
    }
  }
  RETURN_IF_ERROR(sink->Write(buf));
  bytes += buf.size();
  RETURN_IF_ERROR(sink->Finish());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(
      stderr,
      "usagedb_gen: %llu events (%llu retried duplicates, %llu corrections), %llu bytes "
      "(%.1f bytes/event) in %.3f s: %.0f events/s\n",
      static_cast<unsigned long long>(gen.produced()),
      static_cast<unsigned long long>(gen.duplicates()),
      static_cast<unsigned long long>(gen.corrections()), static_cast<unsigned long long>(bytes),
      gen.produced() ? static_cast<double>(bytes) / static_cast<double>(gen.produced()) : 0.0, secs,
      secs > 0 ? static_cast<double>(gen.produced()) / secs : 0.0);
  return usagedb::Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  usagedb::bench::WorkloadOptions options;
  std::string out;
  CLI::App app{"Writes the usageDb benchmark workload (SPEC section 9) as JSON Lines."};
  app.add_option("--events", options.events, "records to write, retries included")
      ->capture_default_str();
  app.add_option("--accounts", options.accounts, "number of accounts (Zipf-skewed)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", options.seed, "random seed")->capture_default_str();
  app.add_option("--duplicate-ratio", options.duplicate_ratio, "share of retried records")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--correction-ratio", options.correction_ratio, "share of corrections")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--out", out, "output file, - for stdout")->required();
  CLI11_PARSE(app, argc, argv);

  usagedb::Status s = Generate(options, out);
  if (!s.ok()) {
    std::fprintf(stderr, "usagedb_gen: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
