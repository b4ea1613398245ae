// Runs the WAL fuzz target as a deterministic test (ctest wal_fuzz_corpus):
//   wal_fuzz_runner --corpus DIR [--iterations N] [--seed S]
// feeds every file of DIR and then N random mutations of freshly built valid WAL files.
//   wal_fuzz_runner --write-seeds DIR
// (re)generates the seed corpus committed under tests/corpus/wal/.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "io/file_system.h"
#include "util/coding.h"
#include "wal/wal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using usagedb::FileSystem;
using usagedb::wal::RecordType;
using usagedb::wal::Writer;

void Run(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string Record(RecordType type, std::string_view payload) {
  std::string out;
  Writer::FrameRecord(1, type, payload, &out);
  return out;
}

std::string Header() { return usagedb::wal::EncodeFileHeader(1, 1000); }

// Small named files covering each reader outcome.
std::vector<std::pair<std::string, std::string>> Seeds() {
  const std::string r1 = Record(RecordType::kUnit, "unit-one");
  const std::string r2 = Record(RecordType::kVoid, std::string("\x2a\x00\x00\x00", 4));
  const std::string r3 = Record(RecordType::kUnit, "");
  const std::string good = Header() + r1 + r2 + r3;
  std::vector<std::pair<std::string, std::string>> seeds;
  seeds.push_back({"empty", ""});
  seeds.push_back({"short_header", Header().substr(0, 17)});
  seeds.push_back({"header_only", Header()});
  seeds.push_back({"three_records", good});
  seeds.push_back({"torn_tail", good + r1.substr(0, r1.size() - 3)});
  seeds.push_back({"zero_fill_tail", good + std::string(64, '\0')});
  std::string damaged = good;
  damaged[usagedb::wal::kHeaderSize + r1.size() - 1] ^= 0x40;  // last payload byte of r1
  seeds.push_back({"middle_damage", damaged});
  seeds.push_back({"unknown_type", Header() + r1 + Record(static_cast<RecordType>(7), "future")});
  {
    // A hole followed by units written before it was synced (torn), and one written after.
    std::string durable_len;
    usagedb::PutFixed64(&durable_len, usagedb::wal::kHeaderSize);
    const std::string d1 = Record(RecordType::kDurableUnit, durable_len + "first");
    const std::string d2 = Record(RecordType::kDurableUnit, durable_len + "second");
    std::string holed = Header() + d1 + d2;
    holed[usagedb::wal::kHeaderSize + 10] ^= 0x01;
    seeds.push_back({"unsynced_after_hole", holed});
    std::string later;
    usagedb::PutFixed64(&later, usagedb::wal::kHeaderSize + d1.size());
    seeds.push_back(
        {"synced_after_hole", holed + Record(RecordType::kDurableVoid, later + "\x2a")});
  }
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  seeds.push_back({"bad_magic", bad_magic});
  return seeds;
}

// A random valid WAL file: header + 0..12 records of 0..300 bytes.
std::string RandomValidFile(std::mt19937_64& rng) {
  std::string f = usagedb::wal::EncodeFileHeader(1, rng() % 1000000);
  int n = static_cast<int>(rng() % 13);
  for (int i = 0; i < n; ++i) {
    std::string payload(rng() % 301, '\0');
    for (char& c : payload) c = static_cast<char>(rng() % 4 == 0 ? rng() : 0);
    const uint64_t kind = rng() % 6;
    if (kind >= 3) {  // a durable unit or void, durable_length at or before the record
      std::string prefixed;
      usagedb::PutFixed64(&prefixed, rng() % (f.size() + 1));
      f += Record(kind == 3 ? RecordType::kDurableVoid : RecordType::kDurableUnit,
                  prefixed + payload);
    } else {
      f += Record(kind == 0 ? RecordType::kVoid : RecordType::kUnit, payload);
    }
  }
  return f;
}

void Mutate(std::mt19937_64& rng, std::string* f) {
  int steps = 1 + static_cast<int>(rng() % 3);
  for (int s = 0; s < steps; ++s) {
    const size_t n = f->size();
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (n) (*f)[rng() % n] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // truncate
        f->resize(n ? rng() % n : 0);
        break;
      case 2:  // zero a range
        if (n) {
          size_t a = rng() % n;
          size_t len = std::min<size_t>(n - a, 1 + rng() % 64);
          std::memset(f->data() + a, 0, len);
        }
        break;
      case 3: {  // insert random bytes
        std::string ins(1 + rng() % 16, '\0');
        for (char& c : ins) c = static_cast<char>(rng());
        f->insert(n ? rng() % n : 0, ins);
        break;
      }
      case 4:  // append zero fill
        f->append(rng() % 512, '\0');
        break;
      case 5:  // duplicate a range at the end (a record written twice)
        if (n) {
          size_t a = rng() % n;
          f->append(f->substr(a, 1 + rng() % 128));
        }
        break;
      case 6:  // erase a range
        if (n) {
          size_t a = rng() % n;
          f->erase(a, 1 + rng() % 32);
        }
        break;
    }
  }
}

int WriteSeeds(const std::string& dir) {
  FileSystem* fs = FileSystem::Default();
  for (const auto& [name, bytes] : Seeds()) {
    usagedb::Status s = fs->WriteFileAtomic(usagedb::JoinPath(dir, name), bytes);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", Seeds().size(), dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string corpus, seeds_dir;
  long iterations = 3000;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "missing value for %s\n", a.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--corpus") {
      corpus = v;
    } else if (a == "--write-seeds") {
      seeds_dir = v;
    } else if (a == "--iterations") {
      iterations = std::strtol(v.c_str(), nullptr, 10);
    } else if (a == "--seed") {
      seed = std::strtoull(v.c_str(), nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (!seeds_dir.empty()) return WriteSeeds(seeds_dir);

  FileSystem* fs = FileSystem::Default();
  size_t corpus_files = 0;
  if (!corpus.empty()) {
    auto names = fs->ListDir(corpus);
    if (!names.ok()) {
      std::fprintf(stderr, "%s\n", names.status().ToString().c_str());
      return 1;
    }
    for (const std::string& name : *names) {
      std::string bytes;
      usagedb::Status s = fs->ReadFileToString(usagedb::JoinPath(corpus, name), &bytes);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
      Run(bytes);
      ++corpus_files;
    }
    if (corpus_files == 0) {
      std::fprintf(stderr, "empty corpus %s\n", corpus.c_str());
      return 1;
    }
  }
  // The seeds as generated now, so a format change cannot hide behind a stale corpus.
  for (const auto& seed_file : Seeds()) Run(seed_file.second);
  std::mt19937_64 rng(seed);
  for (long i = 0; i < iterations; ++i) {
    std::string f = RandomValidFile(rng);
    Run(f);
    Mutate(rng, &f);
    Run(f);
  }
  std::printf("wal_fuzz_corpus: %zu corpus files, %ld mutations, no invariant violated\n",
              corpus_files, iterations);
  return 0;
}
