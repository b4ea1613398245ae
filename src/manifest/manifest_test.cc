#include "manifest/manifest.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include "io/fault_injection_fs.h"
#include "manifest/manifest_format.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace usagedb {
namespace {

// ---------------------------------------------------------------------------------------------
// TestFs: a one-level in-memory file system with the durability model of file_system.h (file
// contents durable at Sync, directory entries durable at SyncDir), and two levers: fail the
// operations a predicate picks (the process goes on), or crash after k mutating operations
// (every later operation fails until PowerLoss()).
class TestFs : public FileSystem {
 public:
  struct Inode {
    std::string data, synced;
  };
  using FailIf = std::function<bool(std::string_view op, const std::string& path)>;

  void set_fail_if(FailIf f) { fail_if_ = std::move(f); }
  void CrashAfter(int64_t k) {
    ops_ = 0;
    crash_after_ = k;
  }
  bool crashed() const { return crashed_; }
  int64_t ops() const { return ops_; }
  void ResetOps() { ops_ = 0; }
  // Forgets every unsynced byte and every directory change not yet made durable by SyncDir.
  void PowerLoss() {
    live_ = durable_;
    for (auto& [path, inode] : live_) inode->data = inode->synced;
    crashed_ = false;
    crash_after_ = -1;
  }

  Status Op(std::string_view op, const std::string& path) {
    ops_++;
    if (crash_after_ >= 0 && ops_ > crash_after_) crashed_ = true;
    if (crashed_) return Status::IOError(path + ": crashed");
    if (fail_if_ && fail_if_(op, path))
      return Status::IOError(path + ": injected " + std::string(op));
    return Status::OK();
  }

  class File : public WritableFile {
   public:
    File(TestFs* fs, std::string path, std::shared_ptr<Inode> inode)
        : fs_(fs), path_(std::move(path)), inode_(std::move(inode)) {}
    Status Append(std::string_view data) override {
      RETURN_IF_ERROR(fs_->Op("Append", path_));
      inode_->data.append(data);
      return Status::OK();
    }
    Status Sync() override {
      RETURN_IF_ERROR(fs_->Op("Sync", path_));
      inode_->synced = inode_->data;
      return Status::OK();
    }
    Status Close() override { return fs_->Op("Close", path_); }
    uint64_t Size() const override { return inode_->data.size(); }

   private:
    TestFs* fs_;
    std::string path_;
    std::shared_ptr<Inode> inode_;
  };

  class Reader : public RandomAccessFile {
   public:
    explicit Reader(std::string data) : data_(std::move(data)) {}
    Status Read(uint64_t offset, size_t n, std::string* out) const override {
      *out = offset >= data_.size() ? std::string() : data_.substr(offset, n);
      return Status::OK();
    }
    uint64_t Size() const override { return data_.size(); }

   private:
    std::string data_;
  };

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    RETURN_IF_ERROR(Op("NewFile", path));
    auto inode = std::make_shared<Inode>();
    live_[path] = inode;
    return std::unique_ptr<WritableFile>(new File(this, path, inode));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return Status::NotSupported(path);
  }
  Result<std::unique_ptr<WritableFile>> NewOverwritingFile(const std::string& path) override {
    return Status::NotSupported(path);
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    auto it = live_.find(path);
    if (it == live_.end()) return Status::NotFound(path);
    return std::unique_ptr<RandomAccessFile>(new Reader(it->second->data));
  }
  bool FileExists(const std::string& path) override { return live_.count(path) > 0; }
  Result<uint64_t> FileSize(const std::string& path) override {
    auto it = live_.find(path);
    if (it == live_.end()) return Status::NotFound(path);
    return static_cast<uint64_t>(it->second->data.size());
  }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    std::vector<std::string> names;
    for (const auto& [p, inode] : live_) {
      if (DirName(p) == path) names.push_back(BaseName(p));
    }
    return names;
  }
  Status CreateDir(const std::string&) override { return Status::OK(); }
  Status RemoveDir(const std::string&) override { return Status::OK(); }
  Status RemoveFile(const std::string& path) override {
    RETURN_IF_ERROR(Op("RemoveFile", path));
    if (live_.erase(path) == 0) return Status::NotFound(path);
    return Status::OK();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    RETURN_IF_ERROR(Op("Rename", from));
    auto it = live_.find(from);
    if (it == live_.end()) return Status::NotFound(from);
    live_[to] = it->second;
    live_.erase(from);
    return Status::OK();
  }
  Status LinkFile(const std::string& from, const std::string&) override {
    return Status::NotSupported(from);
  }
  Status Truncate(const std::string& path, uint64_t size) override {
    RETURN_IF_ERROR(Op("Truncate", path));
    auto it = live_.find(path);
    if (it == live_.end()) return Status::NotFound(path);
    it->second->data.resize(size);
    return Status::OK();
  }
  Status SyncDir(const std::string& path) override {
    RETURN_IF_ERROR(Op("SyncDir", path));
    std::erase_if(durable_, [&](const auto& e) { return DirName(e.first) == path; });
    for (const auto& [p, inode] : live_) {
      if (DirName(p) == path) durable_[p] = inode;
    }
    return Status::OK();
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    return Status::NotSupported(path);
  }

 private:
  std::map<std::string, std::shared_ptr<Inode>> live_, durable_;
  FailIf fail_if_;
  int64_t ops_ = 0;
  int64_t crash_after_ = -1;
  bool crashed_ = false;
};

// ---------------------------------------------------------------------------------------------
// States.

// A small consistent state whose counters depend on `seed`, so two of them differ.
ManifestState SampleState(uint64_t seed) {
  ManifestState s;
  s.bucket_count = 16;
  s.last_sequence = 100 * seed + 50;
  s.flushed_sequence = 100 * seed;
  s.last_ingested_at_ms = 1700000000000 + static_cast<int64_t>(seed);
  s.next_file_number = 10 + seed;
  s.min_wal_file_number = 3;
  SegmentMeta seg;
  seg.file_number = 4;
  seg.bucket = 7;
  seg.partition = 646;
  seg.row_count = 1000 + seed;
  seg.file_size = 65536;
  seg.min_timestamp_ms = 1699999999000;
  seg.max_timestamp_ms = 1700000000000;
  seg.min_commit_seq = 1;
  seg.max_commit_seq = s.flushed_sequence;
  seg.min_account_id = "acct_a";
  seg.max_account_id = "acct_z";
  seg.origin_min_seq = 1;
  seg.origin_max_seq = s.flushed_sequence;
  s.segments.push_back(seg);
  s.dedupe_runs.push_back({5, 1000, 4096, 1, s.flushed_sequence});
  s.conflict_logs.push_back({6, 2, 128, 3, 9});
  return s;
}

// The state stored in tests/golden/manifest/manifest_v1.bin (generation 7).
ManifestState GoldenState() {
  ManifestState s;
  s.generation = 7;
  s.bucket_count = 64;
  s.flushed_sequence = 120;
  s.last_sequence = 130;
  s.last_ingested_at_ms = 1717171717171;
  s.next_file_number = 42;
  s.min_wal_file_number = 30;
  SegmentMeta flush;
  flush.file_number = 31;
  flush.bucket = 3;
  flush.partition = 653;  // 2024-06
  flush.row_count = 120;
  flush.file_size = 8192;
  flush.min_timestamp_ms = 1717000000000;
  flush.max_timestamp_ms = 1717171717000;
  flush.min_commit_seq = 1;
  flush.max_commit_seq = 120;
  flush.min_account_id = "acct_0001";
  flush.max_account_id = "acct_\xc3\xa9t\xc3\xa9";
  flush.origin_min_seq = 1;
  flush.origin_max_seq = 120;
  SegmentMeta merged;
  merged.file_number = 40;
  merged.bucket = 63;
  merged.partition = -1;  // 1969-12
  merged.row_count = 5;
  merged.file_size = 1024;
  merged.min_timestamp_ms = -86400000;
  merged.max_timestamp_ms = -1;
  merged.min_commit_seq = 7;
  merged.max_commit_seq = 9;
  merged.min_account_id = "a";
  merged.max_account_id = "b";
  merged.origin_replaced = {12, 13, 27};
  s.segments = {flush, merged};
  s.dedupe_runs = {{32, 120, 4096, 1, 120}};
  s.conflict_logs = {{33, 2, 200, 17, 98}, {41, 0, 16, 0, 0}};
  return s;
}

// Frames raw section bytes as a complete manifest file of `version` with a valid checksum.
std::string Frame(uint32_t version, std::string_view sections) {
  std::string out(manifest::kMagic, sizeof(manifest::kMagic));
  PutFixed32(&out, version);
  out.append(sections);
  PutFixed32(&out, crc32c::Mask(crc32c::Value(out)));
  return out;
}

// The sections of an encoding (without magic, version and crc).
std::string SectionsOf(const std::string& encoded) {
  return encoded.substr(manifest::kHeaderSize,
                        encoded.size() - manifest::kHeaderSize - manifest::kTrailerSize);
}

// Recomputes the trailing crc so a mutation reaches the section parser.
void FixCrc(std::string* data) {
  if (data->size() < 4) return;
  const size_t n = data->size() - 4;
  EncodeFixed32(data->data() + n, crc32c::Mask(crc32c::Value(data->data(), n)));
}

rc::Gen<ManifestState> GenState() {
  return rc::gen::exec([] {
    ManifestState s;
    s.generation = *rc::gen::arbitrary<uint64_t>();
    s.bucket_count = *rc::gen::inRange<uint32_t>(1, 100000);
    s.last_sequence = *rc::gen::arbitrary<uint64_t>();
    auto upto = [](uint64_t max) -> uint64_t {  // uniform-ish in [0, max]
      uint64_t v = *rc::gen::arbitrary<uint64_t>();
      return max == UINT64_MAX ? v : v % (max + 1);
    };
    s.flushed_sequence = upto(s.last_sequence);
    s.last_ingested_at_ms = *rc::gen::arbitrary<int64_t>();
    const int segments = *rc::gen::inRange(0, 6);
    const int runs = *rc::gen::inRange(0, 4);
    const int logs = *rc::gen::inRange(0, 4);
    uint64_t file_number = *rc::gen::inRange<uint64_t>(1, 1000000);
    auto next_file = [&] { return file_number += *rc::gen::inRange<uint64_t>(1, 1000); };
    auto seq_range = [&](uint64_t* lo, uint64_t* hi) {
      *lo = upto(s.last_sequence);
      *hi = upto(s.last_sequence);
      if (*lo > *hi) std::swap(*lo, *hi);
    };
    for (int i = 0; i < segments; i++) {
      SegmentMeta m;
      m.file_number = next_file();
      m.bucket = upto(s.bucket_count - 1);
      m.partition = *rc::gen::arbitrary<int32_t>();
      m.row_count = *rc::gen::arbitrary<uint64_t>();
      m.file_size = *rc::gen::arbitrary<uint64_t>();
      m.min_timestamp_ms = *rc::gen::arbitrary<int64_t>();
      m.max_timestamp_ms = *rc::gen::arbitrary<int64_t>();
      if (m.min_timestamp_ms > m.max_timestamp_ms)
        std::swap(m.min_timestamp_ms, m.max_timestamp_ms);
      seq_range(&m.min_commit_seq, &m.max_commit_seq);
      m.min_account_id = *rc::gen::arbitrary<std::string>();
      m.max_account_id = *rc::gen::arbitrary<std::string>();
      if (m.min_account_id > m.max_account_id) std::swap(m.min_account_id, m.max_account_id);
      m.origin_min_seq = *rc::gen::arbitrary<uint64_t>();
      m.origin_max_seq = *rc::gen::arbitrary<uint64_t>();
      if (m.origin_min_seq > m.origin_max_seq) std::swap(m.origin_min_seq, m.origin_max_seq);
      const int replaced = *rc::gen::inRange(0, 5);
      for (int r = 0; r < replaced; r++) m.origin_replaced.push_back(1 + upto(file_number - 1));
      s.segments.push_back(std::move(m));
    }
    for (int i = 0; i < runs; i++) {
      DedupeRunMeta m;
      m.file_number = next_file();
      m.key_count = *rc::gen::arbitrary<uint64_t>();
      m.file_size = *rc::gen::arbitrary<uint64_t>();
      seq_range(&m.min_commit_seq, &m.max_commit_seq);
      s.dedupe_runs.push_back(m);
    }
    for (int i = 0; i < logs; i++) {
      ConflictLogMeta m;
      m.file_number = next_file();
      m.entry_count = *rc::gen::arbitrary<uint64_t>();
      m.file_size = *rc::gen::arbitrary<uint64_t>();
      seq_range(&m.min_commit_seq, &m.max_commit_seq);
      s.conflict_logs.push_back(m);
    }
    s.next_file_number = file_number + *rc::gen::inRange<uint64_t>(1, 1000);
    s.min_wal_file_number = upto(s.next_file_number);
    return s;
  });
}

// ---------------------------------------------------------------------------------------------
// Encoding.

RC_GTEST_PROP(ManifestCodec, EncodeDecodeRoundTrip, ()) {
  const ManifestState state = *GenState();
  RC_ASSERT(ValidateManifestState(state).ok());
  const std::string bytes = EncodeManifest(state);
  ManifestState decoded;
  const Status s = DecodeManifest(bytes, &decoded);
  RC_ASSERT(s.ok());
  RC_ASSERT(decoded == state);
  // Every strict prefix is rejected: the crc covers the whole file.
  const size_t cut = *rc::gen::inRange<size_t>(0, bytes.size());
  RC_ASSERT(DecodeManifest(std::string_view(bytes).substr(0, cut), &decoded).IsCorruption());
}

std::string GoldenPath() {
  return std::string(USAGEDB_SOURCE_DIR) + "/tests/golden/manifest/manifest_v1.bin";
}
std::string CorpusDir() { return std::string(USAGEDB_SOURCE_DIR) + "/tests/corpus/manifest"; }

TEST(ManifestCodec, GoldenFileDecodesToKnownState) {
  std::string bytes;
  ASSERT_TRUE(FileSystem::Default()->ReadFileToString(GoldenPath(), &bytes).ok()) << GoldenPath();
  ManifestState state;
  const Status s = DecodeManifest(bytes, &state);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(GoldenState(), state);
  // The writer is stable: today's encoder produces the same bytes (a format change must come
  // with a version bump and a new golden file).
  EXPECT_EQ(bytes, EncodeManifest(GoldenState()));
}

// Regenerates the golden file and the fuzz corpus seeds; run with USAGEDB_WRITE_GOLDEN=1.
TEST(ManifestCodec, WriteGoldenAndCorpus) {
  if (std::getenv("USAGEDB_WRITE_GOLDEN") == nullptr) {
    GTEST_SKIP() << "writes tests/golden and tests/corpus only with USAGEDB_WRITE_GOLDEN=1";
  }
  FileSystem* fs = FileSystem::Default();
  ASSERT_TRUE(fs->CreateDirs(DirName(GoldenPath())).ok());
  ASSERT_TRUE(fs->CreateDirs(CorpusDir()).ok());
  const std::string golden = EncodeManifest(GoldenState());
  ASSERT_TRUE(fs->WriteFileAtomic(GoldenPath(), golden).ok());
  std::map<std::string, std::string> seeds;
  seeds["golden_v1"] = golden;
  seeds["default_state"] = EncodeManifest(ManifestState{});
  seeds["sample"] = EncodeManifest(SampleState(3));
  seeds["truncated"] = golden.substr(0, golden.size() / 2);
  seeds["empty"] = "";
  seeds["magic_only"] = std::string(manifest::kMagic, 8);
  seeds["unknown_section"] =
      Frame(1, SectionsOf(EncodeManifest(SampleState(1))) + std::string("\x09\x01\x00", 3));
  seeds["version_2"] = Frame(2, SectionsOf(golden));
  seeds["no_counters"] = Frame(1, "");
  for (const auto& [name, bytes] : seeds) {
    ASSERT_TRUE(fs->WriteFileAtomic(CorpusDir() + "/" + name, bytes).ok());
  }
}

TEST(ManifestCodec, UnknownSectionIsCorruption) {
  std::string sections = SectionsOf(EncodeManifest(SampleState(1)));
  PutVarint32(&sections, 9);
  PutLengthPrefixed(&sections, "future state");
  ManifestState state = SampleState(2);
  const Status s = DecodeManifest(Frame(manifest::kVersion, sections), &state);
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("unknown manifest section 9")) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("newer version")) << s.ToString();
  EXPECT_EQ(SampleState(2), state);  // untouched on error
}

TEST(ManifestCodec, UnknownVersionIsCorruption) {
  const std::string sections = SectionsOf(EncodeManifest(SampleState(1)));
  ManifestState state;
  for (uint32_t version : {0u, manifest::kVersion + 1, 0xffffffffu}) {
    const Status s = DecodeManifest(Frame(version, sections), &state);
    ASSERT_TRUE(s.IsCorruption()) << version;
    EXPECT_NE(std::string::npos,
              s.message().find("unsupported manifest version " + std::to_string(version)))
        << s.ToString();
  }
  EXPECT_TRUE(DecodeManifest(Frame(manifest::kVersion, sections), &state).ok());
}

TEST(ManifestCodec, StructuralDamageIsCorruption) {
  const std::string counters = SectionsOf(EncodeManifest(ManifestState{}));
  const std::string segment_section =
      SectionsOf(EncodeManifest(SampleState(1))).substr(counters.size());
  ManifestState state;
  // No counters section at all.
  EXPECT_TRUE(DecodeManifest(Frame(1, ""), &state).IsCorruption());
  // Counters twice.
  EXPECT_TRUE(DecodeManifest(Frame(1, counters + counters), &state).IsCorruption());
  // A list entry before the counters.
  EXPECT_TRUE(DecodeManifest(Frame(1, segment_section + counters), &state).IsCorruption());
  // A payload with a trailing byte this version does not define.
  std::string padded;
  PutVarint32(&padded, 1);
  std::string payload = counters.substr(2) + "x";
  PutLengthPrefixed(&padded, payload);
  const Status s = DecodeManifest(Frame(1, padded), &state);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  // Bad magic; checksum mismatch.
  std::string bad = EncodeManifest(SampleState(1));
  bad[0] = 'X';
  EXPECT_TRUE(DecodeManifest(bad, &state).IsCorruption());
  bad = EncodeManifest(SampleState(1));
  bad[20] ^= 1;
  EXPECT_NE(std::string::npos, DecodeManifest(bad, &state).message().find("checksum"));
}

TEST(ManifestCodec, InconsistentStateIsCorruptionAndRefusedByValidate) {
  ManifestState s = SampleState(1);
  s.flushed_sequence = s.last_sequence + 1;
  EXPECT_TRUE(ValidateManifestState(s).IsInvalidArgument());
  ManifestState out;
  const Status d = DecodeManifest(EncodeManifest(s), &out);
  EXPECT_TRUE(d.IsCorruption());
  EXPECT_NE(std::string::npos, d.message().find("flushed_sequence")) << d.ToString();

  s = SampleState(1);
  s.dedupe_runs[0].file_number = s.segments[0].file_number;
  EXPECT_NE(std::string::npos, ValidateManifestState(s).message().find("listed twice"));
  s = SampleState(1);
  s.segments[0].bucket = s.bucket_count;
  EXPECT_TRUE(ValidateManifestState(s).IsInvalidArgument());
  s = SampleState(1);
  s.conflict_logs[0].file_number = s.next_file_number;
  EXPECT_TRUE(ValidateManifestState(s).IsInvalidArgument());
  s = SampleState(1);
  s.bucket_count = 0;
  EXPECT_TRUE(ValidateManifestState(s).IsInvalidArgument());
  EXPECT_TRUE(ValidateManifestState(ManifestState{}).ok());
}

// Mutates a valid encoding a few thousand times (fixed seed), half of them with the checksum
// repaired so the mutation reaches the section parser: decoding never crashes, and whatever
// decodes is a consistent state.
TEST(ManifestCodec, MutatedEncodingsNeverCrash) {
  const std::string base = EncodeManifest(GoldenState());
  std::mt19937_64 rng(20240601);
  int decoded_ok = 0;
  for (int i = 0; i < 5000; i++) {
    std::string m = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; e++) {
      const size_t pos = rng() % (m.size() + 1);
      switch (rng() % 5) {
        case 0:  // flip a bit
          if (pos < m.size()) m[pos] ^= static_cast<char>(1 << (rng() % 8));
          break;
        case 1:  // set a byte
          if (pos < m.size()) m[pos] = static_cast<char>(rng());
          break;
        case 2:  // truncate
          m.resize(pos);
          break;
        case 3:  // insert a byte
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(pos), static_cast<char>(rng()));
          break;
        case 4:  // delete a run
          if (pos < m.size()) m.erase(pos, 1 + rng() % 8);
          break;
      }
    }
    if (i % 2 == 0) FixCrc(&m);
    ManifestState state;
    const Status s = DecodeManifest(m, &state);
    if (s.ok()) {
      decoded_ok++;
      EXPECT_TRUE(ValidateManifestState(state).ok());
    } else {
      EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    }
  }
  // Some crc-repaired mutations decode (171 of 5000 with this seed): the parser was reached.
  EXPECT_GT(decoded_ok, 0);
  RecordProperty("decoded_ok", decoded_ok);
}

TEST(ManifestFileNames, CanonicalFormOnly) {
  EXPECT_EQ("MANIFEST-000007", ManifestFileName(7));
  EXPECT_EQ("MANIFEST-1234567", ManifestFileName(1234567));
  uint64_t g = 0;
  EXPECT_TRUE(ParseManifestFileName("MANIFEST-000007", &g));
  EXPECT_EQ(7u, g);
  EXPECT_TRUE(ParseManifestFileName("MANIFEST-1234567", &g));
  EXPECT_EQ(1234567u, g);
  EXPECT_TRUE(ParseManifestFileName(ManifestFileName(UINT64_MAX), &g));
  EXPECT_EQ(UINT64_MAX, g);
  for (const char* bad :
       {"MANIFEST-7", "MANIFEST-0000007", "MANIFEST-000007.tmp", "MANIFEST-", "MANIFEST-00000x",
        "manifest-000007", "CURRENT", "MANIFEST-99999999999999999999", "MANIFEST--00007"}) {
    EXPECT_FALSE(ParseManifestFileName(bad, &g)) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// ManifestStore on a POSIX temp dir.

class ManifestStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/usagedb_manifest_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    root_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  std::unique_ptr<ManifestStore> Open(int retain = 3) {
    auto store = std::make_unique<ManifestStore>(fs_, root_, retain);
    auto load = store->Load();
    EXPECT_TRUE(load.ok()) << load.status().ToString();
    return store;
  }
  Result<ManifestLoad> LoadFresh() { return ManifestStore(fs_, root_).Load(); }
  ManifestState CommitOk(ManifestStore* store, const ManifestState& s) {
    auto r = store->Commit(s);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ManifestState{};
  }
  std::string Read(const std::string& name) {
    std::string data;
    EXPECT_TRUE(fs_->ReadFileToString(JoinPath(root_, name), &data).ok()) << name;
    return data;
  }
  void Write(const std::string& name, std::string_view data) {
    auto f = fs_->NewWritableFile(JoinPath(root_, name));
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(data).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  std::vector<std::string> Names() {
    auto names = fs_->ListDir(root_);
    EXPECT_TRUE(names.ok());
    std::sort(names->begin(), names->end());
    return *names;
  }
  static ManifestState WithGeneration(ManifestState s, uint64_t g) {
    s.generation = g;
    return s;
  }

  FileSystem* fs_ = FileSystem::Default();
  std::string root_;
};

TEST_F(ManifestStoreTest, FreshDirectoryIsCreated) {
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  EXPECT_TRUE(load->created);
  EXPECT_TRUE(load->skipped.empty());
  EXPECT_EQ(ManifestState{}, load->state);
  EXPECT_TRUE(Names().empty());  // Load writes nothing
}

TEST_F(ManifestStoreTest, MissingRootIsAnError) {
  auto load = ManifestStore(fs_, root_ + "/absent").Load();
  EXPECT_FALSE(load.ok());
}

TEST_F(ManifestStoreTest, CommitThenLoad) {
  auto store = Open();
  const ManifestState committed = CommitOk(store.get(), SampleState(1));
  EXPECT_EQ(1u, committed.generation);
  EXPECT_EQ(1u, store->current_generation());
  EXPECT_EQ(WithGeneration(SampleState(1), 1), committed);
  EXPECT_EQ("MANIFEST-000001\n", Read("CURRENT"));
  EXPECT_EQ((std::vector<std::string>{"CURRENT", "MANIFEST-000001"}), Names());

  const ManifestState second = CommitOk(store.get(), SampleState(2));
  EXPECT_EQ(2u, second.generation);
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  EXPECT_FALSE(load->created);
  EXPECT_TRUE(load->skipped.empty());
  EXPECT_EQ(second, load->state);
}

TEST_F(ManifestStoreTest, GenerationInStateIsOverwritten) {
  auto store = Open();
  const ManifestState committed = CommitOk(store.get(), WithGeneration(SampleState(1), 99));
  EXPECT_EQ(1u, committed.generation);
}

TEST_F(ManifestStoreTest, RetainsNewestGenerations) {
  auto store = Open(/*retain=*/3);
  for (uint64_t i = 1; i <= 6; i++) CommitOk(store.get(), SampleState(i));
  EXPECT_EQ((std::vector<std::string>{"CURRENT", "MANIFEST-000004", "MANIFEST-000005",
                                      "MANIFEST-000006"}),
            Names());
  // A reopened store keeps retaining (it learns the generations present from Load).
  store = Open(/*retain=*/1);
  CommitOk(store.get(), SampleState(7));
  EXPECT_EQ((std::vector<std::string>{"CURRENT", "MANIFEST-000007"}), Names());
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok());
  EXPECT_EQ(WithGeneration(SampleState(7), 7), load->state);
}

TEST_F(ManifestStoreTest, FilesAreReleasedOnlyWhenNoRetainedGenerationListsThem) {
  auto store = Open(/*retain=*/2);
  ManifestState s;
  s.next_file_number = 100;
  s.dedupe_runs = {DedupeRunMeta{10, 1, 1, 1, 1}, DedupeRunMeta{11, 1, 1, 1, 1}};
  s.last_sequence = 5;
  CommitOk(store.get(), s);  // generation 1 lists runs 10, 11
  // Generation 2 replaces them by run 12 (a merge): 10 and 11 stay, generation 1 lists them.
  s.dedupe_runs = {DedupeRunMeta{12, 2, 1, 1, 1}};
  CommitOk(store.get(), s);
  EXPECT_TRUE(store->TakeReleased().empty());
  // Generation 3 drops generation 1 from retention: 10 and 11 are released, 12 is not.
  s.conflict_logs = {ConflictLogMeta{13, 1, 1, 1, 1}};
  CommitOk(store.get(), s);
  EXPECT_EQ((std::vector<ManifestFileRef>{{ManifestFileKind::kDedupeRun, 10},
                                          {ManifestFileKind::kDedupeRun, 11}}),
            store->TakeReleased());
  EXPECT_TRUE(store->TakeReleased().empty()) << "taken once";
  // A reopened store knows the files of the readable retained generations from Load.
  store = Open(/*retain=*/2);
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok());
  ASSERT_EQ(1u, load->older.size());
  EXPECT_EQ(2u, load->older[0].generation);
  s.dedupe_runs.clear();
  CommitOk(store.get(), s);  // generation 4: drops 2; run 12 is listed by 3 still
  EXPECT_TRUE(store->TakeReleased().empty());
  CommitOk(store.get(), s);  // generation 5: drops 3, the last one listing run 12
  EXPECT_EQ((std::vector<ManifestFileRef>{{ManifestFileKind::kDedupeRun, 12}}),
            store->TakeReleased());
}

TEST_F(ManifestStoreTest, CorruptNewestFallsBack) {
  auto store = Open();
  for (uint64_t i = 1; i <= 3; i++) CommitOk(store.get(), SampleState(i));
  std::string bytes = Read("MANIFEST-000003");
  bytes[bytes.size() / 2] ^= 0x40;
  Write("MANIFEST-000003", bytes);
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  EXPECT_EQ(WithGeneration(SampleState(2), 2), load->state);
  ASSERT_EQ(1u, load->skipped.size());
  EXPECT_EQ(3u, load->skipped[0].first);
  EXPECT_NE(std::string::npos, load->skipped[0].second.find("MANIFEST-000003"));
  EXPECT_NE(std::string::npos, load->skipped[0].second.find("checksum mismatch"))
      << load->skipped[0].second;
}

TEST_F(ManifestStoreTest, TruncatedNewestFallsBack) {
  auto store = Open();
  for (uint64_t i = 1; i <= 3; i++) CommitOk(store.get(), SampleState(i));
  const std::string bytes = Read("MANIFEST-000003");
  for (size_t keep : {size_t{0}, size_t{5}, bytes.size() / 2, bytes.size() - 1}) {
    Write("MANIFEST-000003", bytes.substr(0, keep));
    auto load = LoadFresh();
    ASSERT_TRUE(load.ok()) << load.status().ToString();
    EXPECT_EQ(2u, load->state.generation);
    ASSERT_EQ(1u, load->skipped.size()) << keep;
    EXPECT_EQ(3u, load->skipped[0].first);
    EXPECT_NE(std::string::npos, load->skipped[0].second.find("MANIFEST-000003: Corruption"));
  }
}

TEST_F(ManifestStoreTest, TwoNewestUnreadableAreSkippedNewestFirst) {
  auto store = Open();
  for (uint64_t i = 1; i <= 3; i++) CommitOk(store.get(), SampleState(i));
  Write("MANIFEST-000003", "garbage");
  Write("MANIFEST-000002", Read("MANIFEST-000001"));  // a valid file under the wrong name
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok()) << load.status().ToString();
  EXPECT_EQ(1u, load->state.generation);
  ASSERT_EQ(2u, load->skipped.size());
  EXPECT_EQ(3u, load->skipped[0].first);
  EXPECT_EQ(2u, load->skipped[1].first);
  EXPECT_NE(std::string::npos, load->skipped[1].second.find("holds generation 1"));
}

TEST_F(ManifestStoreTest, SkippedGenerationIsNeverOverwritten) {
  auto store = Open();
  for (uint64_t i = 1; i <= 3; i++) CommitOk(store.get(), SampleState(i));
  Write("MANIFEST-000003", "damaged");
  store = Open();
  EXPECT_EQ(2u, store->current_generation());
  const ManifestState next = CommitOk(store.get(), SampleState(4));
  EXPECT_EQ(4u, next.generation);
  EXPECT_EQ("damaged", Read("MANIFEST-000003"));  // kept as evidence until retention
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok());
  EXPECT_EQ(next, load->state);
  EXPECT_TRUE(load->skipped.empty());
}

TEST_F(ManifestStoreTest, NoneReadableIsCorruption) {
  auto store = Open();
  CommitOk(store.get(), SampleState(1));
  CommitOk(store.get(), SampleState(2));
  Write("MANIFEST-000001", "");
  Write("MANIFEST-000002", "not a manifest at all");
  auto load = LoadFresh();
  ASSERT_FALSE(load.ok());
  EXPECT_TRUE(load.status().IsCorruption());
  const std::string msg = load.status().message();
  EXPECT_NE(std::string::npos, msg.find("MANIFEST-000001")) << msg;
  EXPECT_NE(std::string::npos, msg.find("MANIFEST-000002")) << msg;
}

TEST_F(ManifestStoreTest, CurrentWithoutManifestIsCorruption) {
  Write("CURRENT", "MANIFEST-000004\n");
  auto load = LoadFresh();
  ASSERT_FALSE(load.ok());
  EXPECT_TRUE(load.status().IsCorruption());
  EXPECT_NE(std::string::npos, load.status().message().find("CURRENT"));
}

TEST_F(ManifestStoreTest, CurrentNamingMissingNewerGenerationIsSkipped) {
  auto store = Open();
  CommitOk(store.get(), SampleState(1));
  CommitOk(store.get(), SampleState(2));
  ASSERT_TRUE(fs_->RemoveFile(JoinPath(root_, "MANIFEST-000002")).ok());
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok());
  EXPECT_EQ(1u, load->state.generation);
  ASSERT_EQ(1u, load->skipped.size());
  EXPECT_EQ(2u, load->skipped[0].first);
  EXPECT_NE(std::string::npos, load->skipped[0].second.find("named by CURRENT but missing"));
  // The next commit does not reuse the lost generation's number.
  store = Open();
  EXPECT_EQ(3u, CommitOk(store.get(), SampleState(3)).generation);
}

TEST_F(ManifestStoreTest, TemporariesAreIgnoredAndRemoved) {
  auto store = Open();
  CommitOk(store.get(), SampleState(1));
  Write("MANIFEST-000002.tmp", EncodeManifest(WithGeneration(SampleState(2), 2)));
  Write("CURRENT.tmp", "MANIFEST-000002\n");
  Write("MANIFEST-000009.tmp", "half");
  Write("other.tmp", "not ours");
  auto load = LoadFresh();
  ASSERT_TRUE(load.ok());
  EXPECT_EQ(1u, load->state.generation);
  EXPECT_TRUE(load->skipped.empty());
  ASSERT_TRUE(store->RemoveManifestTemporaries().ok());
  EXPECT_EQ((std::vector<std::string>{"CURRENT", "MANIFEST-000001", "other.tmp"}), Names());
}

TEST_F(ManifestStoreTest, InvalidStateIsRefusedBeforeWriting) {
  auto store = Open();
  ManifestState bad = SampleState(1);
  bad.segments[0].file_number = 0;
  auto r = store->Commit(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_TRUE(Names().empty());
  EXPECT_EQ(0u, store->current_generation());
}

// ---------------------------------------------------------------------------------------------
// ManifestStore on TestFs: failures and crashes.

constexpr char kRoot[] = "/db";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

ManifestState Gen(ManifestState s, uint64_t g) {
  s.generation = g;
  return s;
}

TEST(ManifestStoreFaults, FailedCommitKeepsOldGeneration) {
  // Every step up to and including the MANIFEST rename.
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"NewFile", ".tmp"},
      {"Append", ".tmp"},
      {"Sync", ".tmp"},
      {"Close", ".tmp"},
      {"Rename", "MANIFEST-000002.tmp"}};
  for (const auto& [op, suffix] : steps) {
    SCOPED_TRACE(op);
    TestFs fs;
    ManifestStore store(&fs, kRoot);
    ASSERT_TRUE(store.Load().ok());
    ASSERT_TRUE(store.Commit(SampleState(1)).ok());
    fs.set_fail_if([&, op = op, suffix = suffix](std::string_view o, const std::string& path) {
      return o == op && EndsWith(path, suffix);
    });
    auto r = store.Commit(SampleState(2));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsIOError()) << r.status().ToString();
    EXPECT_EQ(1u, store.current_generation());
    fs.set_fail_if(nullptr);
    auto names = fs.ListDir(kRoot);
    std::sort(names->begin(), names->end());
    EXPECT_EQ((std::vector<std::string>{"CURRENT", "MANIFEST-000001"}), *names);  // no temporary
    auto load = ManifestStore(&fs, kRoot).Load();
    ASSERT_TRUE(load.ok());
    EXPECT_EQ(Gen(SampleState(1), 1), load->state);
    // The store stays usable.
    auto again = store.Commit(SampleState(3));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(2u, again->generation);
  }
}

TEST(ManifestStoreFaults, ManifestRenamedButCurrentNotUpdated) {
  for (const std::string op : {"Rename", "NewFile", "Sync"}) {
    SCOPED_TRACE(op);
    TestFs fs;
    ManifestStore store(&fs, kRoot);
    ASSERT_TRUE(store.Load().ok());
    ASSERT_TRUE(store.Commit(SampleState(1)).ok());
    fs.set_fail_if([&](std::string_view o, const std::string& path) {
      return o == op && EndsWith(path, "CURRENT.tmp");
    });
    auto r = store.Commit(SampleState(2));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(std::string::npos, r.status().message().find("a restart may load it"));
    EXPECT_EQ(1u, store.current_generation());
    fs.set_fail_if(nullptr);
    std::string current;
    ASSERT_TRUE(fs.ReadFileToString("/db/CURRENT", &current).ok());
    EXPECT_EQ("MANIFEST-000001\n", current);
    EXPECT_FALSE(fs.FileExists("/db/CURRENT.tmp"));
    // CURRENT is only a hint: the newest complete generation wins, even across power loss
    // (MANIFEST-000002 was synced and its directory entry made durable before CURRENT).
    fs.PowerLoss();
    auto load = ManifestStore(&fs, kRoot).Load();
    ASSERT_TRUE(load.ok()) << load.status().ToString();
    EXPECT_EQ(Gen(SampleState(2), 2), load->state);
    EXPECT_TRUE(load->skipped.empty());
    // The store that saw the failure never reuses generation 2.
    auto again = store.Commit(SampleState(3));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(3u, again->generation);
  }
}

TEST(ManifestStoreFaults, RemovalErrorsAreIgnoredAndRetried) {
  TestFs fs;
  ManifestStore store(&fs, kRoot, /*retain_generations=*/1);
  ASSERT_TRUE(store.Load().ok());
  ASSERT_TRUE(store.Commit(SampleState(1)).ok());
  fs.set_fail_if([](std::string_view o, const std::string&) { return o == "RemoveFile"; });
  ASSERT_TRUE(store.Commit(SampleState(2)).ok());
  EXPECT_TRUE(fs.FileExists("/db/MANIFEST-000001"));
  fs.set_fail_if(nullptr);
  ASSERT_TRUE(store.Commit(SampleState(3)).ok());
  EXPECT_FALSE(fs.FileExists("/db/MANIFEST-000001"));
  EXPECT_FALSE(fs.FileExists("/db/MANIFEST-000002"));
  EXPECT_TRUE(fs.FileExists("/db/MANIFEST-000003"));
}

// Crash after every k-th mutating operation of a Commit (which also removes an old generation),
// then lose power: Load returns exactly the old or the new state, skips nothing, and the store
// reopened on that disk commits the next generation.
TEST(ManifestStoreFaults, CrashSweepOverCommitYieldsOldOrNew) {
  auto prepare = [](TestFs* fs) {
    ManifestStore store(fs, kRoot, /*retain_generations=*/2);
    EXPECT_TRUE(store.Load().ok());
    for (uint64_t i = 1; i <= 3; i++) EXPECT_TRUE(store.Commit(SampleState(i)).ok());
  };
  int64_t total_ops = 0;
  {
    TestFs fs;
    prepare(&fs);
    ManifestStore store(&fs, kRoot, 2);
    ASSERT_TRUE(store.Load().ok());
    fs.ResetOps();
    ASSERT_TRUE(store.Commit(SampleState(4)).ok());
    total_ops = fs.ops();
  }
  ASSERT_GE(total_ops, 12);  // 5 for MANIFEST, 1 SyncDir, 5 for CURRENT, 1 SyncDir, removal
  int saw_old = 0, saw_new = 0;
  for (int64_t k = 0; k <= total_ops; k++) {
    SCOPED_TRACE("crash after op " + std::to_string(k));
    TestFs fs;
    prepare(&fs);
    ManifestStore store(&fs, kRoot, 2);
    ASSERT_TRUE(store.Load().ok());
    fs.CrashAfter(k);
    auto r = store.Commit(SampleState(4));
    EXPECT_EQ(k < total_ops, fs.crashed());
    fs.PowerLoss();
    ManifestStore reopened(&fs, kRoot, 2);
    auto load = reopened.Load();
    ASSERT_TRUE(load.ok()) << load.status().ToString();
    EXPECT_TRUE(load->skipped.empty());
    if (load->state == Gen(SampleState(4), 4)) {
      saw_new++;
    } else {
      EXPECT_EQ(Gen(SampleState(3), 3), load->state);
      EXPECT_FALSE(r.ok());  // an acknowledged commit is never lost
      saw_old++;
    }
    ASSERT_TRUE(reopened.RemoveManifestTemporaries().ok());
    auto next = reopened.Commit(SampleState(5));
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    auto final_load = ManifestStore(&fs, kRoot).Load();
    ASSERT_TRUE(final_load.ok());
    EXPECT_EQ(*next, final_load->state);
  }
  EXPECT_GT(saw_old, 0);
  EXPECT_GT(saw_new, 0);
}

// The same sweep on the shared FaultInjectionFileSystem (src/io): crash after k operations, power
// loss, reopen. Then a second sweep that fails the k-th operation once while the process goes
// on: the store must stay usable, and a power loss after its next successful Commit must keep
// that commit.
TEST(ManifestStoreFaults, FaultInjectionFsCrashAndFailSweeps) {
  auto prepare = [](FaultInjectionFileSystem* fs, ManifestStore* store) {
    ASSERT_TRUE(fs->CreateDir(kRoot).ok());
    ASSERT_TRUE(store->Load().ok());
    for (uint64_t i = 1; i <= 3; i++) ASSERT_TRUE(store->Commit(SampleState(i)).ok());
    fs->MakeAllDurable();
  };
  int64_t total_ops = 0;
  {
    FaultInjectionFileSystem fs;
    ManifestStore store(&fs, kRoot, 2);
    prepare(&fs, &store);
    const int64_t before = fs.mutating_ops();
    ASSERT_TRUE(store.Commit(SampleState(4)).ok());
    total_ops = fs.mutating_ops() - before;
  }
  ASSERT_EQ(13, total_ops);
  for (int64_t k = 0; k < total_ops; k++) {
    SCOPED_TRACE("crash after op " + std::to_string(k));
    FaultInjectionFileSystem fs;
    {
      ManifestStore store(&fs, kRoot, 2);
      prepare(&fs, &store);
      fs.CrashAfter(k);
      auto r = store.Commit(SampleState(4));
      EXPECT_TRUE(fs.crashed());
      if (r.ok()) {
        EXPECT_GE(k, 12);  // only the retention removal may be cut off
      }
    }
    fs.DropUnsyncedData();
    ManifestStore reopened(&fs, kRoot, 2);
    auto load = reopened.Load();
    ASSERT_TRUE(load.ok()) << load.status().ToString();
    EXPECT_TRUE(load->skipped.empty());
    if (load->state != Gen(SampleState(4), 4)) {
      EXPECT_EQ(Gen(SampleState(3), 3), load->state);
    }
    EXPECT_EQ(k >= 6, load->state.generation == 4);  // durable once step 3's SyncDir ran
    ASSERT_TRUE(reopened.RemoveManifestTemporaries().ok());
    auto next = reopened.Commit(SampleState(5));
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    fs.DropUnsyncedData();
    auto final_load = ManifestStore(&fs, kRoot).Load();
    ASSERT_TRUE(final_load.ok());
    EXPECT_EQ(*next, final_load->state);
  }
  for (int64_t n = 1; n <= total_ops; n++) {
    SCOPED_TRACE("fail op " + std::to_string(n));
    FaultInjectionFileSystem fs;
    ManifestStore store(&fs, kRoot, 2);
    prepare(&fs, &store);
    fs.FailNth(n, OpKind::kAny);
    auto r = store.Commit(SampleState(4));
    EXPECT_EQ(r.ok() ? 4u : 3u, store.current_generation());
    auto mid = ManifestStore(&fs, kRoot).Load();
    ASSERT_TRUE(mid.ok()) << mid.status().ToString();
    EXPECT_TRUE(mid->state == Gen(SampleState(3), 3) || mid->state == Gen(SampleState(4), 4));
    if (r.ok()) {
      EXPECT_EQ(Gen(SampleState(4), 4), mid->state);
    }
    auto next = store.Commit(SampleState(5));
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    fs.DropUnsyncedData();
    auto final_load = ManifestStore(&fs, kRoot).Load();
    ASSERT_TRUE(final_load.ok());
    EXPECT_EQ(*next, final_load->state);
    EXPECT_TRUE(final_load->skipped.empty());
  }
}

}  // namespace
}  // namespace usagedb
