#include "wal/wal.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/range_crc.h"

namespace usagedb::wal {
namespace {

// Forwards to the POSIX file system; Append and Sync of writable files fail on demand.
class FailingFileSystem : public FileSystem {
 public:
  std::atomic<bool> fail_append{false};
  std::atomic<bool> fail_sync{false};

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(auto f, base_->NewWritableFile(path));
    return std::unique_ptr<WritableFile>(new File(this, std::move(f), path));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(auto f, base_->NewAppendableFile(path));
    return std::unique_ptr<WritableFile>(new File(this, std::move(f), path));
  }
  Result<std::unique_ptr<WritableFile>> NewOverwritingFile(const std::string& path) override {
    ASSIGN_OR_RETURN(auto f, base_->NewOverwritingFile(path));
    return std::unique_ptr<WritableFile>(new File(this, std::move(f), path));
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& p) override {
    return base_->NewRandomAccessFile(p);
  }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  Result<uint64_t> FileSize(const std::string& p) override { return base_->FileSize(p); }
  Result<std::vector<std::string>> ListDir(const std::string& p) override {
    return base_->ListDir(p);
  }
  Status CreateDir(const std::string& p) override { return base_->CreateDir(p); }
  Status RemoveDir(const std::string& p) override { return base_->RemoveDir(p); }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }
  Status Rename(const std::string& a, const std::string& b) override { return base_->Rename(a, b); }
  Status LinkFile(const std::string& a, const std::string& b) override {
    return base_->LinkFile(a, b);
  }
  Status Truncate(const std::string& p, uint64_t n) override { return base_->Truncate(p, n); }
  Status SyncDir(const std::string& p) override { return base_->SyncDir(p); }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& p) override {
    return base_->LockFile(p);
  }

 private:
  class File : public WritableFile {
   public:
    File(FailingFileSystem* fs, std::unique_ptr<WritableFile> f, std::string path)
        : fs_(fs), f_(std::move(f)), path_(std::move(path)) {}
    Status Append(std::string_view data) override {
      if (fs_->fail_append) return Status::IOError(path_ + ": injected append failure");
      return f_->Append(data);
    }
    Status Sync() override {
      if (fs_->fail_sync) return Status::IOError(path_ + ": injected sync failure");
      return f_->Sync();
    }
    Status Close() override { return f_->Close(); }
    uint64_t Size() const override { return f_->Size(); }

   private:
    FailingFileSystem* fs_;
    std::unique_ptr<WritableFile> f_;
    std::string path_;
  };
  FileSystem* base_ = FileSystem::Default();
};

struct Rec {
  RecordType type;
  std::string payload;
};

// A version 2 record of WAL file `file_number` (the tests' files are number 1).
std::string Frame(RecordType type, std::string_view payload, uint64_t file_number = 1) {
  std::string out;
  Writer::FrameRecord(file_number, type, payload, &out);
  return out;
}

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "wal_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string PathOf(uint64_t n) const { return JoinPath(dir_, WalFileName(n)); }

  // Writes file 1 (start sequence 100) with the records; returns each record's offset.
  std::vector<uint64_t> Write(const std::vector<Rec>& recs, FileSystem* fs = nullptr) {
    auto w = Writer::Create(fs ? fs : fs_, dir_, 1, 100);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    std::vector<uint64_t> offsets;
    for (const Rec& r : recs) {
      offsets.push_back((*w)->size());
      EXPECT_TRUE((*w)->AddRecord(r.type, r.payload).ok());
    }
    EXPECT_TRUE((*w)->Sync().ok());
    EXPECT_TRUE((*w)->Close().ok());
    return offsets;
  }

  std::string Contents(uint64_t n = 1) {
    std::string s;
    EXPECT_TRUE(fs_->ReadFileToString(PathOf(n), &s).ok());
    return s;
  }
  void SetContents(std::string_view bytes, uint64_t n = 1) {
    auto f = fs_->NewWritableFile(PathOf(n));
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(bytes).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }

  Result<ReadResult> Read(bool repair = false, uint64_t n = 1) {
    return ReadWalFile(fs_, PathOf(n), repair);
  }
  ReadResult ReadOk(bool repair = false, uint64_t n = 1) {
    auto r = Read(repair, n);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ReadResult{};
  }

  static void ExpectRecords(const std::vector<Rec>& want, const ReadResult& got) {
    ASSERT_EQ(want.size(), got.records.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(want[i].type, got.records[i].type) << i;
      EXPECT_EQ(want[i].payload, got.records[i].payload) << i;
    }
  }

  FileSystem* fs_ = FileSystem::Default();
  std::string dir_;
};

std::vector<Rec> FiveRecords() {
  return {{RecordType::kUnit, "first unit"},
          {RecordType::kUnit, "second unit, the one that gets damaged"},
          {RecordType::kVoid, std::string("\x07\x00\x00\x00\x00\x00\x00\x00", 8)},
          {RecordType::kUnit, ""},
          {RecordType::kUnit, "fifth"}};
}

TEST(WalFrame, TwoPartFrameEqualsFrameOfTheConcatenation) {
  const std::string head = "unit header", tail(5000, 'b');
  for (size_t cut : {size_t{0}, size_t{1}, head.size()}) {
    std::string out;
    Writer::FrameRecord(1, RecordType::kUnit, head.substr(0, cut), tail, &out);
    EXPECT_EQ(Frame(RecordType::kUnit, head.substr(0, cut) + tail), out) << cut;
  }
  std::string out = "prefix";
  Writer::FrameRecord(1, RecordType::kVoid, "", "", &out);
  EXPECT_EQ("prefix" + Frame(RecordType::kVoid, ""), out);
}

TEST(WalFrame, FrameWithPrecomputedTailCrcEqualsFrameOfTheConcatenation) {
  const std::string head = "unit header";
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}, size_t{70001}}) {
    std::string tail(n, 'b');
    for (size_t i = 0; i < n; i++) tail[i] = static_cast<char>(i * 131 + 7);
    for (size_t cut : {size_t{0}, size_t{1}, head.size()}) {
      std::string out = "prefix";
      Writer::FrameRecord(1, RecordType::kUnit, head.substr(0, cut), tail,
                          crc32c::Value(tail.data(), tail.size()), &out);
      EXPECT_EQ("prefix" + Frame(RecordType::kUnit, head.substr(0, cut) + tail), out)
          << n << " " << cut;
    }
  }
}

// The group commit writes FrameRecordWithoutTail + the tail with one gathered write: the same
// bytes as FrameRecord, and records a reader reads back.
TEST_F(WalTest, GatheredFramesAreTheRecordsOfFrameRecord) {
  auto w = Writer::Create(fs_, dir_, 1, 100);
  ASSERT_TRUE(w.ok());
  std::vector<std::string> heads = {"h1", "", "unit header 3"};
  std::vector<std::string> tails = {"tail one", std::string(70001, 't'), ""};
  std::string framed_heads, whole;
  std::vector<size_t> ends;
  for (size_t i = 0; i < heads.size(); i++) {
    const uint32_t crc = crc32c::Value(tails[i].data(), tails[i].size());
    Writer::FrameRecordWithoutTail(1, RecordType::kUnit, heads[i], tails[i].size(), crc,
                                   &framed_heads);
    ends.push_back(framed_heads.size());
    Writer::FrameRecord(1, RecordType::kUnit, heads[i], tails[i], crc, &whole);
  }
  std::vector<std::string_view> parts;
  for (size_t i = 0, start = 0; i < heads.size(); start = ends[i], i++) {
    parts.push_back(std::string_view(framed_heads).substr(start, ends[i] - start));
    parts.push_back(tails[i]);
  }
  std::string joined;
  for (std::string_view p : parts) joined += p;
  EXPECT_EQ(whole, joined);
  ASSERT_TRUE((*w)->AppendFramedV(parts).ok());
  ASSERT_TRUE((*w)->Sync().ok());
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ(std::string(Contents()).substr(kHeaderSize), whole);
  ExpectRecords({{RecordType::kUnit, heads[0] + tails[0]},
                 {RecordType::kUnit, heads[1] + tails[1]},
                 {RecordType::kUnit, heads[2] + tails[2]}},
                ReadOk());
}

TEST_F(WalTest, WriteReadRoundTrip) {
  std::vector<Rec> recs = FiveRecords();
  std::vector<uint64_t> offsets = Write(recs);
  EXPECT_EQ(kHeaderSize, offsets[0]);
  ReadResult r = ReadOk();
  ExpectRecords(recs, r);
  for (size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(offsets[i], r.records[i].offset);
  EXPECT_EQ(1u, r.file_number);
  EXPECT_EQ(100u, r.start_sequence);
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(0u, r.repaired_bytes);
  EXPECT_EQ(Contents().size(), r.valid_length);
}

TEST_F(WalTest, HeaderOnlyFileHasNoRecords) {
  Write({});
  ReadResult r = ReadOk();
  EXPECT_TRUE(r.records.empty());
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(kHeaderSize, r.valid_length);
}

TEST_F(WalTest, ManyRecordsAndLarge) {
  std::vector<Rec> recs;
  for (int i = 0; i < 2000; ++i) {
    recs.push_back({i % 7 == 0 ? RecordType::kVoid : RecordType::kUnit,
                    std::string(i % 50, static_cast<char>('a' + i % 26))});
  }
  std::string big(5 * 1024 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 2654435761u >> 13);
  recs.insert(recs.begin() + 1000, Rec{RecordType::kUnit, big});
  auto w = Writer::Create(fs_, dir_, 1, 5);
  ASSERT_TRUE(w.ok());
  // The first half one record per call, the second half batched as group commit does.
  std::string batch;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (i <= 1000) {
      ASSERT_TRUE((*w)->AddRecord(recs[i].type, recs[i].payload).ok());
    } else {
      Writer::FrameRecord(1, recs[i].type, recs[i].payload, &batch);
      if (i % 100 == 0) {
        ASSERT_TRUE((*w)->AppendFramed(batch).ok());
        batch.clear();
      }
    }
  }
  ASSERT_TRUE((*w)->AppendFramed(batch).ok());
  ASSERT_TRUE((*w)->Sync().ok());
  const uint64_t size = (*w)->size();
  ASSERT_TRUE((*w)->Close().ok());
  ReadResult r = ReadOk();
  ExpectRecords(recs, r);
  EXPECT_EQ(size, r.valid_length);
  EXPECT_EQ(Contents().size(), size);
  EXPECT_FALSE(r.torn_tail);
}

TEST_F(WalTest, TornTailIsTruncated) {
  std::vector<Rec> recs = FiveRecords();
  recs.back().payload = "a last record long enough to be cut at many offsets";
  std::vector<uint64_t> offsets = Write(recs);
  const std::string full = Contents();
  const uint64_t last = offsets.back();
  std::vector<Rec> before(recs.begin(), recs.end() - 1);
  for (uint64_t cut = last + 1; cut < full.size(); ++cut) {
    SetContents(full.substr(0, cut));
    auto r = Read();
    ASSERT_TRUE(r.ok()) << "cut " << cut << ": " << r.status().ToString();
    EXPECT_TRUE(r->torn_tail) << cut;
    EXPECT_EQ(last, r->valid_length) << cut;
    EXPECT_EQ(0u, r->repaired_bytes) << cut;
    ExpectRecords(before, *r);
  }
  SetContents(full.substr(0, last));  // cut exactly at a record boundary: nothing torn
  ReadResult clean = ReadOk();
  EXPECT_FALSE(clean.torn_tail);
  ExpectRecords(before, clean);
}

TEST_F(WalTest, ReopenAfterTornTailAppendsCleanly) {
  std::vector<Rec> recs = FiveRecords();
  Write(recs);
  std::string full = Contents();
  SetContents(full.substr(0, full.size() - 2));
  ReadResult torn = ReadOk();
  ASSERT_TRUE(torn.torn_tail);
  auto w = Writer::OpenForAppend(fs_, dir_, 1, torn.valid_length);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(torn.valid_length, (*w)->size());
  ASSERT_TRUE((*w)->AddRecord(RecordType::kUnit, "after recovery").ok());
  ASSERT_TRUE((*w)->Sync().ok());
  ASSERT_TRUE((*w)->Close().ok());
  recs.back() = {RecordType::kUnit, "after recovery"};
  ReadResult r = ReadOk();
  EXPECT_FALSE(r.torn_tail);
  ExpectRecords(recs, r);
}

TEST_F(WalTest, OpenForAppendRejectsLengthWithoutHeader) {
  Write({});
  auto w = Writer::OpenForAppend(fs_, dir_, 1, kHeaderSize - 1);
  EXPECT_TRUE(w.status().IsInvalidArgument());
}

TEST_F(WalTest, NeverGlueTornPrefixToNextRecord) {
  std::vector<Rec> recs = {{RecordType::kUnit, "kept"}, {RecordType::kUnit, "torn record"}};
  std::vector<uint64_t> offsets = Write(recs);
  std::string torn = Contents().substr(0, Contents().size() - 4);
  // A writer that appended without truncating first would produce this file.
  std::string next = Frame(RecordType::kUnit, "next");
  SetContents(torn + next);
  auto r = Read();
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos,
            r.status().message().find("offset " + std::to_string(offsets[1]) + ":"))
      << r.status().ToString();
  ReadResult repaired = ReadOk(/*repair=*/true);
  ExpectRecords({recs[0], {RecordType::kUnit, "next"}}, repaired);
  EXPECT_EQ(torn.size() - offsets[1], repaired.repaired_bytes);
  EXPECT_EQ(torn.size(), repaired.records[1].offset);
}

TEST_F(WalTest, PartialHeaderAtEnd) {
  std::vector<Rec> recs = FiveRecords();
  Write(recs);
  const std::string full = Contents();
  for (size_t n = 1; n < kRecordHeaderSize; ++n) {
    SetContents(full + Frame(RecordType::kUnit, "x").substr(0, n));
    ReadResult r = ReadOk();
    EXPECT_TRUE(r.torn_tail) << n;
    EXPECT_EQ(full.size(), r.valid_length) << n;
    ExpectRecords(recs, r);
  }
}

TEST_F(WalTest, ZeroFillAfterLastRecordIsTornTail) {
  std::vector<Rec> recs = FiveRecords();
  Write(recs);
  const std::string full = Contents();
  SetContents(full + std::string(8192, '\0'));
  ReadResult r = ReadOk();
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(full.size(), r.valid_length);
  ExpectRecords(recs, r);
}

TEST_F(WalTest, ChecksumMismatchInMiddleFailsOpen) {
  std::vector<uint64_t> offsets = Write(FiveRecords());
  std::string bytes = Contents();
  bytes[offsets[1] + kRecordHeaderSize + 3] ^= 0x01;  // a payload byte of record 2 of 5
  SetContents(bytes);
  auto r = Read();
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  const std::string& msg = r.status().message();
  EXPECT_NE(std::string::npos, msg.find(PathOf(1))) << msg;
  EXPECT_NE(std::string::npos, msg.find("offset " + std::to_string(offsets[1]) + ":")) << msg;
  EXPECT_NE(std::string::npos, msg.find("checksum")) << msg;
}

TEST_F(WalTest, LengthBeyondEndOfFileInMiddleIsCorruption) {
  std::vector<uint64_t> offsets = Write(FiveRecords());
  std::string bytes = Contents();
  bytes[offsets[1] + 2] = 0x70;  // length field of record 2 now points far past the end
  SetContents(bytes);
  auto r = Read();
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("past end of file"));
}

TEST_F(WalTest, RepairSkipsMiddleDamage) {
  std::vector<Rec> recs = FiveRecords();
  std::vector<uint64_t> offsets = Write(recs);
  std::string bytes = Contents();
  bytes[offsets[1] + kRecordHeaderSize + 3] ^= 0x01;
  SetContents(bytes);
  ReadResult r = ReadOk(/*repair=*/true);
  std::vector<Rec> want = recs;
  want.erase(want.begin() + 1);
  ExpectRecords(want, r);
  EXPECT_EQ(offsets[2] - offsets[1], r.repaired_bytes);
  EXPECT_EQ(bytes.size(), r.valid_length);
  EXPECT_FALSE(r.torn_tail);
}

TEST_F(WalTest, RepairThenTornTail) {
  std::vector<Rec> recs = FiveRecords();
  std::vector<uint64_t> offsets = Write(recs);
  std::string bytes = Contents();
  bytes[offsets[0] + 5] ^= 0x10;   // crc of record 1
  bytes.resize(bytes.size() - 1);  // record 5 torn
  SetContents(bytes);
  ReadResult r = ReadOk(/*repair=*/true);
  ExpectRecords({recs[1], recs[2], recs[3]}, r);
  EXPECT_EQ(offsets[1] - offsets[0], r.repaired_bytes);
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(offsets[4], r.valid_length);
}

// A kDurableUnit / kDurableVoid payload: durable_length (fixed64), then the record's payload.
std::string Durable(uint64_t durable_length, std::string_view payload) {
  std::string out;
  PutFixed64(&out, durable_length);
  out.append(payload);
  return out;
}

// The db's strict-mode pattern: group 1 (one unit) synced, then group 2 (three units, all
// written when only group 1 was durable) whose fsync never completed. An OS crash persisted
// group 2's pages out of order: a hole in its first unit, its later units intact.
TEST_F(WalTest, HoleFollowedByUnitsWrittenBeforeItWasSyncedIsATornTail) {
  const uint64_t g1 = kHeaderSize;
  const std::string r1 = Frame(RecordType::kDurableUnit, Durable(g1, "group one"));
  const uint64_t g2 = g1 + r1.size();
  const std::string r2 = Frame(RecordType::kDurableUnit, Durable(g2, std::string(5000, 'a')));
  const std::string r3 = Frame(RecordType::kDurableUnit, Durable(g2, "third"));
  const std::string r4 = Frame(RecordType::kDurableVoid, Durable(g2, "void-ish"));
  std::string bytes = EncodeFileHeader(1, 100) + r1 + r2 + r3 + r4;
  std::fill(bytes.begin() + static_cast<ptrdiff_t>(g2 + 100),
            bytes.begin() + static_cast<ptrdiff_t>(g2 + 4196), '\0');  // a lost page
  SetContents(bytes);
  for (bool repair : {false, true}) {
    ReadResult r = ReadOk(repair);
    ExpectRecords({{RecordType::kUnit, "group one"}}, r);
    EXPECT_EQ(g1, r.records[0].durable_length);
    EXPECT_TRUE(r.torn_tail);
    EXPECT_EQ(g2, r.valid_length);
    EXPECT_EQ(2u, r.unsynced_records_dropped);  // r3 and r4
    EXPECT_EQ(0u, r.repaired_bytes);
  }
}

// A record written after the damaged bytes were synced proves the damage is to durable data:
// middle damage (fail open), whatever came before it.
TEST_F(WalTest, HoleBeforeARecordWrittenAfterItWasSyncedIsCorruption) {
  const uint64_t g1 = kHeaderSize;
  const std::string r1 = Frame(RecordType::kDurableUnit, Durable(g1, "group one"));
  const uint64_t g2 = g1 + r1.size();
  const std::string r2 = Frame(RecordType::kDurableUnit, Durable(g2, "group two, synced"));
  const uint64_t g3 = g2 + r2.size();
  const std::string r3 = Frame(RecordType::kDurableUnit, Durable(g2, "group two, second unit"));
  const uint64_t g4 = g3 + r3.size();
  const std::string r4 = Frame(RecordType::kDurableUnit, Durable(g4, "group three"));
  std::string bytes = EncodeFileHeader(1, 100) + r1 + r2 + r3 + r4;
  bytes[g2 + kRecordHeaderSize + 10] ^= 0x01;
  SetContents(bytes);
  auto r = Read();
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("offset " + std::to_string(g2) + ":"))
      << r.status().ToString();
  ReadResult repaired = ReadOk(/*repair=*/true);
  ExpectRecords({{RecordType::kUnit, "group one"},
                 {RecordType::kUnit, "group two, second unit"},
                 {RecordType::kUnit, "group three"}},
                repaired);
  EXPECT_EQ(g4, repaired.records[2].durable_length);
  EXPECT_EQ(r2.size(), repaired.repaired_bytes);
}

// Records without a durable_length (kUnit, kVoid: older files, conflict logs) after a hole keep
// the old rule, even next to durable records that would allow it.
TEST_F(WalTest, HoleFollowedByARecordWithoutDurableLengthIsCorruption) {
  const uint64_t g1 = kHeaderSize;
  const std::string r1 = Frame(RecordType::kDurableUnit, Durable(g1, "group one"));
  const uint64_t g2 = g1 + r1.size();
  const std::string r2 = Frame(RecordType::kDurableUnit, Durable(g2, "damaged"));
  const std::string r3 = Frame(RecordType::kDurableUnit, Durable(g2, "unsynced"));
  const std::string r4 = Frame(RecordType::kUnit, "no durable length");
  std::string bytes = EncodeFileHeader(1, 100) + r1 + r2 + r3 + r4;
  bytes[g2 + kRecordHeaderSize + 3] ^= 0x01;
  SetContents(bytes);
  EXPECT_TRUE(Read().status().IsCorruption());
}

// Further damage between the unsynced records does not change the verdict; a later valid
// record that was written after the hole was synced does.
TEST_F(WalTest, UnsyncedTailVerdictLooksAtEveryLaterRecord) {
  const uint64_t g1 = kHeaderSize;
  const std::string r1 = Frame(RecordType::kDurableUnit, Durable(g1, "group one"));
  const uint64_t g2 = g1 + r1.size();
  std::string tail;
  for (int i = 0; i < 4; ++i) {
    tail += Frame(RecordType::kDurableUnit, Durable(g2, "unsynced " + std::to_string(i)));
  }
  std::string bytes = EncodeFileHeader(1, 100) + r1 + tail;
  bytes[g2 + kRecordHeaderSize + 2] ^= 0x01;                      // unit 0
  bytes[bytes.size() - 3] ^= 0x01;                                // unit 3
  SetContents(bytes);
  ReadResult r = ReadOk();
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(g2, r.valid_length);
  EXPECT_EQ(2u, r.unsynced_records_dropped);
  // Now a record claiming g2 + 1 was durable when it was written follows.
  SetContents(bytes + Frame(RecordType::kDurableUnit, Durable(g2 + 1, "late")));
  EXPECT_TRUE(Read().status().IsCorruption());
}

TEST_F(WalTest, DurableRecordShorterThanItsPrefixIsCorruption) {
  SetContents(EncodeFileHeader(1, 100) + Frame(RecordType::kDurableUnit, "short"));
  auto r = Read();
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("durable_length prefix"));
}

TEST_F(WalTest, WriterTracksTheSyncedSize) {
  auto w = Writer::Create(fs_, dir_, 1, 100);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(kHeaderSize, (*w)->synced_size());
  ASSERT_TRUE((*w)->AddRecord(RecordType::kUnit, "abc").ok());
  EXPECT_EQ(kHeaderSize, (*w)->synced_size());  // appended, not synced
  const uint64_t size = (*w)->size();
  ASSERT_TRUE((*w)->Sync().ok());
  EXPECT_EQ(size, (*w)->synced_size());
  ASSERT_TRUE((*w)->AddRecord(RecordType::kUnit, "torn later").ok());
  ASSERT_TRUE((*w)->Close().ok());
  auto again = Writer::OpenForAppend(fs_, dir_, 1, size);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(size, (*again)->synced_size());
  ASSERT_TRUE((*again)->Close().ok());
}

TEST_F(WalTest, ZeroLengthFile) {
  SetContents("", 7);
  ReadResult r = ReadOk(false, 7);
  EXPECT_TRUE(r.torn_tail);
  EXPECT_TRUE(r.records.empty());
  EXPECT_EQ(0u, r.valid_length);
  EXPECT_EQ(7u, r.file_number);  // from the name: the header never made it
}

TEST_F(WalTest, ShortHeader) {
  Write(FiveRecords());
  for (size_t n = 1; n < kHeaderSize; ++n) {
    SetContents(Contents().substr(0, n));
    ReadResult r = ReadOk();
    EXPECT_TRUE(r.torn_tail) << n;
    EXPECT_TRUE(r.records.empty()) << n;
    EXPECT_EQ(0u, r.valid_length) << n;
    Write(FiveRecords());
  }
}

TEST_F(WalTest, BadMagicIsCorruption) {
  Write(FiveRecords());
  std::string bytes = Contents();
  bytes[3] = 'X';
  SetContents(bytes);
  for (bool repair : {false, true}) {
    auto r = Read(repair);
    ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(std::string::npos, r.status().message().find(PathOf(1)));
    EXPECT_NE(std::string::npos, r.status().message().find("magic"));
  }
}

TEST_F(WalTest, BadHeaderChecksumIsCorruption) {
  Write(FiveRecords());
  std::string bytes = Contents();
  bytes[20] ^= 0x01;  // start_sequence
  SetContents(bytes);
  auto r = Read(true);
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("header checksum"));
}

TEST_F(WalTest, UnsupportedVersionIsCorruption) {
  std::string h(kMagic, sizeof(kMagic));
  h += std::string("\x03\x00\x00\x00", 4);  // version 3
  h += EncodeFileHeader(1, 100).substr(12, 16);
  uint32_t crc = crc32c::Mask(crc32c::Value(h));
  h.append(reinterpret_cast<const char*>(&crc), 4);
  SetContents(h);
  auto r = Read();
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("version 3"));
}

// Files written before the file tag (version 1: 9-byte record headers, unseeded checksums) are
// still read, with the same torn-tail and damage rules.
TEST_F(WalTest, Version1FilesAreStillRead) {
  std::string v1 = EncodeFileHeader(1, 100, kVersionV1);
  std::vector<uint64_t> offsets;
  for (const Rec& rec : FiveRecords()) {
    offsets.push_back(v1.size());
    FrameRecordV1(rec.type, rec.payload, &v1);
  }
  SetContents(v1);
  ReadResult r = ReadOk();
  EXPECT_EQ(kVersionV1, r.version);
  ExpectRecords(FiveRecords(), r);
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(v1.size(), r.valid_length);

  SetContents(v1.substr(0, v1.size() - 2));  // torn last record
  r = ReadOk();
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(offsets[4], r.valid_length);

  std::string damaged = v1;
  damaged[offsets[1] + kRecordHeaderSizeV1 + 3] ^= 0x01;
  SetContents(damaged);
  EXPECT_TRUE(Read().status().IsCorruption());
  r = ReadOk(/*repair=*/true);
  EXPECT_EQ(4u, r.records.size());
}

// Recycling: WAL file 7 (old records) becomes file 9. Its old bytes past file 9's records are
// checksum-valid records of file 7, which file 9's reader must not take: a torn tail, with
// exactly the new records. The file keeps its old size.
TEST_F(WalTest, RecycledFileReadsOnlyItsOwnRecords) {
  {
    auto old = Writer::Create(fs_, dir_, 7, 50);
    ASSERT_TRUE(old.ok());
    // Old payloads full of file 9's tag: the tag search finds candidates that must then fail
    // their checksum.
    std::string payload;
    for (int i = 0; i < 250; i++) payload.append("\x09\x00\x00\x00", 4);
    for (int i = 0; i < 200; i++) ASSERT_TRUE((*old)->AddRecord(RecordType::kUnit, payload).ok());
    ASSERT_TRUE((*old)->Sync().ok());
    ASSERT_TRUE((*old)->Close().ok());
  }
  const std::string pooled = JoinPath(dir_, WalRecycleFileName(7));
  ASSERT_TRUE(fs_->Rename(PathOf(7), pooled).ok());
  const uint64_t old_size = *fs_->FileSize(pooled);
  auto w = Writer::CreateRecycled(fs_, dir_, pooled, 9, 300);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_FALSE(fs_->FileExists(pooled));
  EXPECT_EQ(kHeaderSize, (*w)->size());
  EXPECT_EQ(kHeaderSize, (*w)->synced_size());
  const std::vector<Rec> recs = {{RecordType::kUnit, "new one"}, {RecordType::kVoid, "new two"}};
  for (const Rec& rec : recs) ASSERT_TRUE((*w)->AddRecord(rec.type, rec.payload).ok());
  ASSERT_TRUE((*w)->Sync().ok());
  const uint64_t end = (*w)->size();
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ(old_size, *fs_->FileSize(PathOf(9)));

  ReadResult r = ReadOk(/*repair=*/false, 9);
  EXPECT_EQ(9u, r.file_number);
  EXPECT_EQ(300u, r.start_sequence);
  ExpectRecords(recs, r);
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(end, r.valid_length);
  EXPECT_EQ(0u, r.unsynced_records_dropped);
  // With repair too: the old records are not this file's, nothing is "repaired".
  ReadResult rr = ReadOk(/*repair=*/true, 9);
  ExpectRecords(recs, rr);
  EXPECT_EQ(0u, rr.repaired_bytes);
}

// Damage to a recycled file's own records is still damage in the middle, found by the tag
// search among the old bytes.
TEST_F(WalTest, DamageInARecycledFileIsCorruption) {
  Write({{RecordType::kUnit, std::string(20000, 'o')}});
  const std::string pooled = JoinPath(dir_, WalRecycleFileName(1));
  ASSERT_TRUE(fs_->Rename(PathOf(1), pooled).ok());
  auto w = Writer::CreateRecycled(fs_, dir_, pooled, 2, 100);
  ASSERT_TRUE(w.ok());
  std::vector<uint64_t> offsets;
  for (const Rec& rec : FiveRecords()) {
    offsets.push_back((*w)->size());
    ASSERT_TRUE((*w)->AddRecord(rec.type, rec.payload).ok());
  }
  ASSERT_TRUE((*w)->Sync().ok());
  ASSERT_TRUE((*w)->Close().ok());
  std::string bytes = Contents(2);
  bytes[offsets[1] + kRecordHeaderSize + 3] ^= 0x01;
  SetContents(bytes, 2);
  auto r = Read(/*repair=*/false, 2);
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos,
            r.status().message().find("offset " + std::to_string(offsets[1]) + ":"));
  ReadResult repaired = ReadOk(/*repair=*/true, 2);
  EXPECT_EQ(4u, repaired.records.size());
  EXPECT_TRUE(repaired.torn_tail);  // the old bytes after the last record
}

TEST_F(WalTest, HeaderFileNumberMustMatchName) {
  Write(FiveRecords());
  SetContents(Contents(), 2);
  auto r = Read(false, 2);
  ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("file number 1"));
}

TEST_F(WalTest, UnknownRecordTypeIsCorruption) {
  Write({{RecordType::kUnit, "known"}});
  const std::string good = Contents();
  SetContents(good + Frame(static_cast<RecordType>(9), "from the future") +
              Frame(RecordType::kUnit, "later"));
  for (bool repair : {false, true}) {
    auto r = Read(repair);
    ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(std::string::npos, r.status().message().find("unknown type 9"));
    EXPECT_NE(std::string::npos,
              r.status().message().find("offset " + std::to_string(good.size()) + ":"));
  }
  // Also as the last record: it is whole and valid, so not a torn tail.
  SetContents(good + Frame(static_cast<RecordType>(200), ""));
  EXPECT_TRUE(Read().status().IsCorruption());
}

TEST_F(WalTest, TornLargeRecordIsTornTail) {
  // A payload full of small plausible "lengths" makes the forward scan test many candidate
  // records with long checksums; it must still end as a torn tail, quickly.
  std::string big;
  while (big.size() < 5 * 1024 * 1024) big += std::string("\x00\x30\x00\x00\x01\x10\x00\x00", 8);
  std::vector<Rec> recs = {{RecordType::kUnit, "small"}, {RecordType::kUnit, big}};
  std::vector<uint64_t> offsets = Write(recs);
  std::string full = Contents();
  SetContents(full.substr(0, full.size() - 1000));
  ReadResult r = ReadOk();
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(offsets[1], r.valid_length);
  ExpectRecords({recs[0]}, r);
}

TEST_F(WalTest, DamageBeforeLargeRecordIsCorruption) {
  // The scan must recognise a valid multi-megabyte record (range checksum by combination).
  std::string big(5 * 1024 * 1024 + 123, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 >> 5);
  std::vector<Rec> recs = {{RecordType::kUnit, "damaged"}, {RecordType::kUnit, big}};
  std::vector<uint64_t> offsets = Write(recs);
  std::string bytes = Contents();
  bytes[offsets[0] + kRecordHeaderSize] ^= 0x01;
  SetContents(bytes);
  EXPECT_TRUE(Read().status().IsCorruption());
  ReadResult r = ReadOk(/*repair=*/true);
  ExpectRecords({recs[1]}, r);
}

TEST_F(WalTest, SealedAfterAppendFailure) {
  FailingFileSystem ffs;
  auto w = Writer::Create(&ffs, dir_, 1, 100);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->AddRecord(RecordType::kUnit, "ok").ok());
  ffs.fail_append = true;
  Status s = (*w)->AddRecord(RecordType::kUnit, "fails");
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find(PathOf(1))) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("offset")) << s.ToString();
  EXPECT_TRUE((*w)->sealed());
  ffs.fail_append = false;  // the disk recovered; the file must stay sealed anyway
  for (Status later :
       {(*w)->AddRecord(RecordType::kUnit, "x"), (*w)->AppendFramed(Frame(RecordType::kUnit, "y")),
        (*w)->AppendFramedV(std::vector<std::string_view>{Frame(RecordType::kUnit, "z")}),
        (*w)->Sync(), (*w)->Close()}) {
    EXPECT_TRUE(later.IsIOError()) << later.ToString();
    EXPECT_NE(std::string::npos, later.message().find("sealed")) << later.ToString();
  }
  ReadResult r = ReadOk();
  ExpectRecords({{RecordType::kUnit, "ok"}}, r);
}

TEST_F(WalTest, SealedAfterSyncFailure) {
  FailingFileSystem ffs;
  auto w = Writer::Create(&ffs, dir_, 1, 100);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->AddRecord(RecordType::kUnit, "unit").ok());
  ffs.fail_sync = true;
  Status s = (*w)->Sync();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_TRUE((*w)->sealed());
  ffs.fail_sync = false;
  for (Status later : {(*w)->Sync(), (*w)->AddRecord(RecordType::kVoid, "v"), (*w)->Close()}) {
    EXPECT_TRUE(later.IsIOError()) << later.ToString();
    EXPECT_NE(std::string::npos, later.message().find("sealed")) << later.ToString();
  }
}

TEST_F(WalTest, CreateFailsWhenHeaderSyncFails) {
  FailingFileSystem ffs;
  ffs.fail_sync = true;
  auto w = Writer::Create(&ffs, dir_, 1, 100);
  EXPECT_TRUE(w.status().IsIOError()) << w.status().ToString();
}

TEST_F(WalTest, CallsAfterCloseFail) {
  auto w = Writer::Create(fs_, dir_, 1, 100);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_TRUE((*w)->AddRecord(RecordType::kUnit, "late").IsIOError());
  EXPECT_TRUE((*w)->Close().IsIOError());
}

TEST(WalFileNameTest, FileNameRoundTrip) {
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{42}, uint64_t{999999999999},
                     uint64_t{1000000000000}, UINT64_MAX}) {
    uint64_t parsed = 12345;
    ASSERT_TRUE(ParseWalFileName(WalFileName(n), &parsed)) << WalFileName(n);
    EXPECT_EQ(n, parsed);
  }
  EXPECT_EQ("000000000042.log", WalFileName(42));
  for (const char* bad :
       {"", ".log", "42.log", "00000000042.log", "0000000000042.log", "000000000042.lo",
        "000000000042.log.tmp", "00000000004a.log", "+00000000042.log", "000000000042",
        "18446744073709551616.log", "99999999999999999999.log", "MANIFEST-000001"}) {
    uint64_t parsed = 7;
    EXPECT_FALSE(ParseWalFileName(bad, &parsed)) << bad;
    EXPECT_EQ(7u, parsed) << bad;
  }
}

TEST(RangeCrcTest, CombineMatchesDirect) {
  std::string a = "hello, ", b = "write-ahead log";
  EXPECT_EQ(crc32c::Value(a + b),
            internal::Crc32cCombine(crc32c::Value(a), crc32c::Value(b), b.size()));
  EXPECT_EQ(crc32c::Value(a), internal::Crc32cCombine(crc32c::Value(a), 0, 0));
}

RC_GTEST_PROP(RangeCrcTest, RangeMatchesDirect, ()) {
  const size_t size = *rc::gen::inRange<size_t>(0, 20000);
  std::string data(size, '\0');
  const uint64_t seed = *rc::gen::arbitrary<uint64_t>();
  for (size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((seed + i) * 0x9e3779b97f4a7c15ull >> 56);
  internal::RangeCrc rc_data(data);
  for (int k = 0; k < 20; ++k) {
    const size_t a = *rc::gen::inRange<size_t>(0, size + 1);
    const size_t n = *rc::gen::inRange<size_t>(0, size - a + 1);
    RC_ASSERT(rc_data.Value(a, n) == crc32c::Value(data.data() + a, n));
  }
}

// Random record sequences, cut at a random point: the reader returns exactly the records
// wholly before the cut, never an error.
RC_GTEST_PROP(WalPropertyTest, TruncationKeepsWholeRecordsBeforeCut, ()) {
  const auto payloads = *rc::gen::container<std::vector<std::string>>(
      *rc::gen::inRange<size_t>(0, 20), rc::gen::resize(200, rc::gen::string<std::string>()));
  std::string file = EncodeFileHeader(3, 77);
  std::vector<uint64_t> ends;
  std::vector<RecordType> types;
  for (size_t i = 0; i < payloads.size(); ++i) {
    types.push_back(*rc::gen::element(RecordType::kUnit, RecordType::kVoid));
    Writer::FrameRecord(3, types.back(), payloads[i], &file);
    ends.push_back(file.size());
  }
  const size_t cut = *rc::gen::inRange<size_t>(0, file.size() + 1);

  std::string tmpl = ::testing::TempDir() + "wal_prop_XXXXXX";
  RC_ASSERT(mkdtemp(tmpl.data()) != nullptr);
  const std::string path = JoinPath(tmpl, WalFileName(3));
  FileSystem* fs = FileSystem::Default();
  RC_ASSERT(fs->WriteFileAtomic(path, std::string_view(file).substr(0, cut)).ok());
  auto r = ReadWalFile(fs, path, /*repair=*/false);
  std::filesystem::remove_all(tmpl);
  RC_ASSERT(r.ok());

  size_t whole = 0;
  while (whole < ends.size() && ends[whole] <= cut) ++whole;
  RC_ASSERT(r->records.size() == whole);
  for (size_t i = 0; i < whole; ++i) {
    RC_ASSERT(r->records[i].payload == payloads[i]);
    RC_ASSERT(r->records[i].type == types[i]);
  }
  const uint64_t expected_valid = cut < kHeaderSize ? 0 : (whole ? ends[whole - 1] : kHeaderSize);
  RC_ASSERT(r->valid_length == expected_valid);
  RC_ASSERT(r->torn_tail == (cut < kHeaderSize || expected_valid != cut));
}

}  // namespace
}  // namespace usagedb::wal
