#include "segment/segment.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <tuple>

#include "io/fault_injection_fs.h"
#include "segment/segment_dims.h"
#include "segment/segment_encoding.h"
#include "segment/segment_footer.h"
#include "segment/segment_format.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/int128.h"

namespace usagedb {
namespace {

constexpr int64_t kMay2024Ms = 1714521600000;  // 2024-05-01T00:00:00Z
constexpr int64_t kDayMs = 86400000;

bool BillingLess(const Event& a, const Event& b) {
  auto model = [](const Event& e) {
    return std::make_pair(e.model_id.has_value(), e.model_id.value_or(""));
  };
  return std::tie(a.account_id, a.product_id, a.meter_id) <
             std::tie(b.account_id, b.product_id, b.meter_id) ||
         (std::tie(a.account_id, a.product_id, a.meter_id) ==
              std::tie(b.account_id, b.product_id, b.meter_id) &&
          std::make_tuple(model(a), a.timestamp_ms, a.event_id) <
              std::make_tuple(model(b), b.timestamp_ms, b.event_id));
}

// ReadRow of every row of every block equals ReadBlock(kAllColumns) + MaterializeRow, and a
// block or row out of range is InvalidArgument.
void ExpectReadRowMatchesBlocks(const SegmentReader& reader) {
  DecodedBlock block;
  for (size_t b = 0; b < reader.num_blocks(); ++b) {
    ASSERT_TRUE(reader.ReadBlock(b, kAllColumns, &block).ok());
    for (size_t r = 0; r < block.rows; ++r) {
      Event want, got;
      ASSERT_TRUE(block.MaterializeRow(r, &want).ok());
      // A reused Event (the previous row's) must be overwritten field by field.
      if (r > 0) {
        ASSERT_TRUE(block.MaterializeRow(r - 1, &got).ok());
      }
      const Status s = reader.ReadRow(b, r, &got);
      ASSERT_TRUE(s.ok()) << s.ToString() << " block " << b << " row " << r;
      ASSERT_EQ(want, got) << "block " << b << " row " << r;
    }
    Event e;
    EXPECT_TRUE(reader.ReadRow(b, block.rows, &e).IsInvalidArgument());
  }
  Event e;
  EXPECT_TRUE(reader.ReadRow(reader.num_blocks(), 0, &e).IsInvalidArgument());
}

Event MakeEvent(int i) {
  Event e;
  e.event_id = "evt_" + std::to_string(1000000 + i);
  e.account_id = "acct_" + std::to_string(i % 7);
  e.product_id = i % 3 ? "chat" : "agents";
  e.meter_id = i % 2 ? "tokens.input" : "tokens.output";
  if (i % 5) e.model_id = "model-" + std::to_string(i % 4);
  if (i % 4 == 0) e.subscription_id = "sub_" + std::to_string(i % 3);
  e.timestamp_ms = kMay2024Ms + static_cast<int64_t>(i) * 37 * 60 * 1000;
  e.quantity = 100 + (i * 7919) % 5000;
  e.unit = "token";
  e.source = "gateway";
  e.dimensions = {{"provider", i % 2 ? "anthropic" : "openai"}, {"region", "eu"}};
  e.ingested_at_ms = kMay2024Ms + 40 * kDayMs + i;
  e.commit_seq = 1000 + static_cast<uint64_t>(i);
  return e;
}

std::vector<Event> MakeEvents(int n) {
  std::vector<Event> events;
  for (int i = 0; i < n; ++i) events.push_back(MakeEvent(i));
  std::sort(events.begin(), events.end(), BillingLess);
  return events;
}

std::vector<const Event*> Pointers(const std::vector<Event>& events) {
  std::vector<const Event*> rows;
  for (const Event& e : events) rows.push_back(&e);
  return rows;
}

// A minimal in-memory FileSystem for the tests that write thousands of files (POSIX
// truncate-and-rewrite is slow on a shared disk). Only the calls this module makes work.
class MemFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    auto data = std::make_shared<std::string>();
    files_[path] = data;
    return std::unique_ptr<WritableFile>(new MemWritable(data));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    auto& data = files_[path];
    if (!data) data = std::make_shared<std::string>();
    return std::unique_ptr<WritableFile>(new MemWritable(data));
  }
  Result<std::unique_ptr<WritableFile>> NewOverwritingFile(const std::string& path) override {
    return Status::NotSupported(path + ": this test file system does not overwrite files");
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound(path);
    return std::unique_ptr<RandomAccessFile>(new MemReadable(*it->second));
  }
  bool FileExists(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    return files_.count(path) > 0;
  }
  Result<uint64_t> FileSize(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound(path);
    return static_cast<uint64_t>(it->second->size());
  }
  Result<std::vector<std::string>> ListDir(const std::string&) override {
    return Status::NotSupported("ListDir");
  }
  Status CreateDir(const std::string&) override { return Status::OK(); }
  Status RemoveDir(const std::string&) override { return Status::OK(); }
  Status RemoveFile(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    return files_.erase(path) ? Status::OK() : Status::NotFound(path);
  }
  Status Rename(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(from);
    if (it == files_.end()) return Status::NotFound(from);
    files_[to] = it->second;
    files_.erase(from);
    return Status::OK();
  }
  Status LinkFile(const std::string&, const std::string&) override {
    return Status::NotSupported("LinkFile");
  }
  Status Truncate(const std::string& path, uint64_t size) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound(path);
    it->second->resize(size);
    return Status::OK();
  }
  Status SyncDir(const std::string&) override { return Status::OK(); }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string&) override {
    return Status::NotSupported("LockFile");
  }

 private:
  class MemWritable : public WritableFile {
   public:
    explicit MemWritable(std::shared_ptr<std::string> data) : data_(std::move(data)) {}
    Status Append(std::string_view d) override {
      data_->append(d);
      return Status::OK();
    }
    Status Sync() override { return Status::OK(); }
    Status Close() override { return Status::OK(); }
    uint64_t Size() const override { return data_->size(); }

   private:
    std::shared_ptr<std::string> data_;
  };
  class MemReadable : public RandomAccessFile {
   public:
    explicit MemReadable(std::string data) : data_(std::move(data)) {}
    Status Read(uint64_t offset, size_t n, std::string* out) const override {
      out->assign(offset < data_.size() ? data_.substr(offset, n) : std::string());
      return Status::OK();
    }
    uint64_t Size() const override { return data_.size(); }

   private:
    std::string data_;
  };
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::string>> files_;
};

class SegmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/segment_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    path_ = dir_ + "/" + SegmentFileName(7);
  }
  void TearDown() override {
    auto names = fs_->ListDir(dir_);
    if (names.ok()) {
      for (const auto& n : *names) fs_->RemoveFile(dir_ + "/" + n).IgnoreError();
    }
    fs_->RemoveDir(dir_).IgnoreError();
  }

  Status Write(const std::vector<Event>& events, uint32_t rows_per_block = 4096) {
    info_ = SegmentInfo();
    info_.bucket = 3;
    info_.partition = events.empty() ? 0 : MonthPartition(events[0].timestamp_ms);
    info_.origin_min_seq = 1;
    info_.origin_max_seq = 99999;
    SegmentWriterOptions options;
    options.rows_per_block = rows_per_block;
    return WriteSegment(fs_, path_, Pointers(events), options, &info_);
  }

  Result<std::unique_ptr<SegmentReader>> Open() { return SegmentReader::Open(fs_, path_); }

  // Reads every row of the segment, or returns the first error.
  Status ReadAll(std::vector<Event>* out) {
    out->clear();
    ASSIGN_OR_RETURN(auto reader, Open());
    DecodedBlock block;
    for (size_t b = 0; b < reader->num_blocks(); ++b) {
      RETURN_IF_ERROR(reader->ReadBlock(b, kAllColumns, &block));
      for (size_t r = 0; r < block.rows; ++r) {
        Event e, row;
        RETURN_IF_ERROR(block.MaterializeRow(r, &e));
        // Every test that reads a file back also checks ReadRow on each of its rows.
        RETURN_IF_ERROR(reader->ReadRow(b, r, &row));
        EXPECT_EQ(e, row) << "block " << b << " row " << r;
        out->push_back(std::move(e));
      }
    }
    return Status::OK();
  }

  std::string Contents() {
    std::string s;
    EXPECT_TRUE(fs_->ReadFileToString(path_, &s).ok());
    return s;
  }
  void Overwrite(const std::string& bytes) {
    auto f = fs_->NewWritableFile(path_);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(bytes).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  // Recomputes the crc at the end of the chunk [offset, offset + size).
  static void FixChunkCrc(std::string* file, const ChunkExtent& c) {
    const uint32_t crc = crc32c::Value(file->data() + c.offset, c.size - 4);
    EncodeFixed32(file->data() + c.offset + c.size - 4, crc32c::Mask(crc));
  }
  void ExpectCorruptionNamingFile(const Status& s) {
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(std::string::npos, s.message().find(path_)) << s.ToString();
  }
  // Reads `block` of the (damaged) file with every column and materializes its rows: either
  // all of it decodes, or the read fails with a Corruption naming the file.
  void ExpectBlockReadsOrCorruption(size_t block) {
    auto damaged = Open();
    ASSERT_TRUE(damaged.ok());
    DecodedBlock decoded;
    Status s = (*damaged)->ReadBlock(block, kAllColumns, &decoded);
    if (s.ok()) {
      Event e;
      for (size_t r = 0; r < decoded.rows && s.ok(); ++r) s = decoded.MaterializeRow(r, &e);
    }
    ASSERT_TRUE(s.ok() || s.IsCorruption()) << s.ToString();
    if (!s.ok()) ExpectCorruptionNamingFile(s);
    // ReadRow checks less of the block (only what the row needs), so it may succeed where the
    // block read fails; when the block reads, every row must read the same.
    const bool block_ok = s.ok();
    for (size_t r = 0; r < (*damaged)->zone_map(block).row_count; ++r) {
      Event row;
      const Status rs = (*damaged)->ReadRow(block, r, &row);
      ASSERT_TRUE(rs.ok() || rs.IsCorruption()) << rs.ToString();
      if (!rs.ok()) {
        ExpectCorruptionNamingFile(rs);
        EXPECT_FALSE(block_ok) << rs.ToString();
        EXPECT_NE(std::string::npos, rs.message().find("block " + std::to_string(block)));
      } else if (block_ok) {
        Event want;
        ASSERT_TRUE(decoded.MaterializeRow(r, &want).ok());
        EXPECT_EQ(want, row);
      }
    }
  }

  MemFileSystem mem_fs_;
  FileSystem* fs_ = FileSystem::Default();
  std::string dir_, path_;
  SegmentInfo info_;
};

TEST_F(SegmentTest, RoundTripEveryColumn) {
  std::vector<Event> events;
  Event usage = MakeEvent(1);
  usage.quantity = 0;
  usage.dimensions = {};
  events.push_back(usage);
  Event big = MakeEvent(2);
  big.quantity = kMaxQuantity;
  big.model_id.reset();
  big.subscription_id = "sub_big";
  big.dimensions = {{"agent", "line\nbreak \"quoted\" back\\slash\ttab\x01\x1f\b\f\r"},
                    {"provider", "ünïcødé ✓ /slash"},
                    {"tool", "日本語"}};
  events.push_back(big);
  Event correction = MakeEvent(3);
  correction.kind = EventKind::kCorrection;
  correction.has_correction_ref = true;
  correction.correction_original_event_id = "evt_original";
  correction.correction_reason = "";
  correction.quantity = -kMaxQuantity;
  events.push_back(correction);
  Event retraction = MakeEvent(4);
  retraction.kind = EventKind::kRetraction;
  retraction.has_correction_ref = true;
  retraction.correction_original_event_id = "evt_other";
  retraction.correction_reason = "duplicate billing \u2014 see ticket #42";
  retraction.quantity = -17;
  events.push_back(retraction);
  Event negative = MakeEvent(5);
  negative.kind = EventKind::kCorrection;
  negative.has_correction_ref = true;
  negative.correction_original_event_id = "evt_x";
  negative.correction_reason = "refund";
  negative.quantity = -1;
  negative.commit_seq = UINT64_MAX;
  negative.ingested_at_ms = -5;
  events.push_back(negative);
  std::sort(events.begin(), events.end(), BillingLess);

  ASSERT_TRUE(Write(events).ok());
  std::vector<Event> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  EXPECT_EQ(events, got);
  EXPECT_EQ(5u, info_.row_count);
  EXPECT_EQ(3u, info_.bucket);
  EXPECT_EQ(Contents().size(), info_.file_size);
  EXPECT_FALSE(fs_->FileExists(path_ + ".tmp"));

  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE((*reader)->VerifyAll().ok());
  ExpectReadRowMatchesBlocks(**reader);
  const SegmentInfo& info = (*reader)->info();
  EXPECT_EQ(info_.row_count, info.row_count);
  EXPECT_EQ(info_.file_size, info.file_size);
  EXPECT_EQ(info_.partition, info.partition);
  EXPECT_EQ(1u, info.origin_min_seq);
  EXPECT_EQ(99999u, info.origin_max_seq);
  EXPECT_EQ(UINT64_MAX, info.max_commit_seq);
  EXPECT_EQ("acct_1", info.min_account_id);
  EXPECT_EQ("acct_5", info.max_account_id);
}

TEST_F(SegmentTest, ReadOnlyRequestedColumns) {
  const auto events = MakeEvents(300);
  ASSERT_TRUE(Write(events, 128).ok());
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  DecodedBlock block;
  // Fill every column first: a later narrower read must clear what it did not read.
  ASSERT_TRUE((*reader)->ReadBlock(1, kAllColumns, &block).ok());
  const ColumnMask mask = ColumnBit(Column::kAccountId) | ColumnBit(Column::kQuantity) |
                          ColumnBit(Column::kTimestampMs);
  ASSERT_TRUE((*reader)->ReadBlock(1, mask, &block).ok());
  ASSERT_EQ(128u, block.rows);
  ASSERT_EQ(128u, block.quantity.size());
  ASSERT_EQ(128u, block.timestamp_ms.size());
  ASSERT_EQ(128u, block.account_id.codes.size());
  EXPECT_TRUE(block.event_id.codes.empty());
  EXPECT_TRUE(block.dimensions.codes.empty());
  EXPECT_TRUE(block.commit_seq.empty());
  EXPECT_TRUE(block.kind.empty());
  for (size_t i = 0; i < 128; ++i) {
    EXPECT_EQ(events[128 + i].quantity, block.quantity[i]);
    EXPECT_EQ(events[128 + i].account_id, block.account_id.Get(i));
    EXPECT_EQ(events[128 + i].timestamp_ms, block.timestamp_ms[i]);
  }
  Event e;
  EXPECT_TRUE(block.MaterializeRow(0, &e).IsInvalidArgument());

  // Damage in a column that is not requested does not fail a read of other columns.
  std::string file = Contents();
  const ChunkExtent ids = (*reader)->chunk_extent(1, Column::kEventId);
  file[ids.offset + ids.size / 2] ^= 0x40;
  Overwrite(file);
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE((*reopened)->ReadBlock(1, mask, &block).ok());
  ExpectCorruptionNamingFile((*reopened)->ReadBlock(1, ColumnBit(Column::kEventId), &block));
}

TEST_F(SegmentTest, IngestedAtReadAloneWhenEncodedBySeq) {
  auto events = MakeEvents(500);
  for (Event& e : events) e.ingested_at_ms = kMay2024Ms + 50 * kDayMs + e.commit_seq / 25;
  ASSERT_TRUE(Write(events, 250).ok());
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  const std::string file = Contents();
  const ChunkExtent c = (*reader)->chunk_extent(0, Column::kIngestedAtMs);
  EXPECT_EQ(static_cast<char>(segment::Encoding::kIntStepsBySeq), file[c.offset]);
  DecodedBlock block;
  ASSERT_TRUE((*reader)->ReadBlock(1, ColumnBit(Column::kIngestedAtMs), &block).ok());
  EXPECT_TRUE(block.commit_seq.empty());
  ASSERT_EQ(250u, block.ingested_at_ms.size());
  for (size_t i = 0; i < 250; ++i)
    EXPECT_EQ(events[250 + i].ingested_at_ms, block.ingested_at_ms[i]);
}

// Events as a database flush sees them: commit batches of 8 (one seq each, an hour apart)
// whose timestamps lie within a few seconds of the batch's time, one late event, dimensions
// with several keys.
std::vector<Event> MakeBatchedEvents(int n) {
  std::vector<Event> events;
  std::mt19937 rng(17);
  for (int i = 0; i < n; ++i) {
    Event e = MakeEvent(i);
    e.commit_seq = 1000 + static_cast<uint64_t>(i / 8);
    e.timestamp_ms = kMay2024Ms + kDayMs + (i / 8) * 3600000 + static_cast<int64_t>(rng() % 5000);
    if (i == 13) e.timestamp_ms -= 5 * 3600 * 1000;  // late: an exception
    e.ingested_at_ms = kMay2024Ms + 40 * kDayMs + i / 8;
    if (i % 3 == 0) e.dimensions.emplace_back("agent", "agent-" + std::to_string(i % 5));
    if (i % 7 == 0) e.dimensions.emplace_back("tool", i % 2 ? "grep" : "q\"\\\x01");
    if (i % 11 == 0) e.dimensions.clear();
    std::sort(e.dimensions.begin(), e.dimensions.end());  // as MaterializeRow returns them
    events.push_back(std::move(e));
  }
  std::sort(events.begin(), events.end(), BillingLess);
  return events;
}

TEST_F(SegmentTest, NewEncodingsRoundTripAndTimestampsReadAlone) {
  const auto events = MakeBatchedEvents(600);
  ASSERT_TRUE(Write(events, 200).ok());
  std::vector<Event> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  EXPECT_EQ(events, got);
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE((*reader)->VerifyAll().ok());
  ExpectReadRowMatchesBlocks(**reader);
  const std::string file = Contents();
  for (size_t b = 0; b < 3; ++b) {
    EXPECT_EQ(static_cast<char>(segment::Encoding::kIntOffsetBySeq),
              file[(*reader)->chunk_extent(b, Column::kTimestampMs).offset]);
    EXPECT_EQ(static_cast<char>(segment::Encoding::kDimensionsByKey),
              file[(*reader)->chunk_extent(b, Column::kDimensions).offset]);
  }
  // Timestamps alone: commit_seq is decoded for them but not handed out.
  DecodedBlock block;
  ASSERT_TRUE((*reader)->ReadBlock(1, kAllColumns, &block).ok());
  ASSERT_TRUE((*reader)->ReadBlock(1, ColumnBit(Column::kTimestampMs), &block).ok());
  EXPECT_TRUE(block.commit_seq.empty());
  ASSERT_EQ(200u, block.timestamp_ms.size());
  for (size_t i = 0; i < 200; ++i) EXPECT_EQ(events[200 + i].timestamp_ms, block.timestamp_ms[i]);
  // Dimensions alone, as the query engine's dim.<key> groups read them.
  ASSERT_TRUE((*reader)->ReadBlock(2, ColumnBit(Column::kDimensions), &block).ok());
  for (size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(segment::CanonicalDimensionsString(events[400 + i].dimensions),
              block.dimensions.Get(i));
  }
}

TEST_F(SegmentTest, MutatedNewEncodingsWithFixedCrcNeverCrash) {
  fs_ = &mem_fs_;
  ASSERT_TRUE(Write(MakeBatchedEvents(120), 40).ok());
  const std::string good = Contents();
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  std::mt19937_64 rng(8);
  for (int iter = 0; iter < 4000; ++iter) {
    const size_t block = rng() % (*reader)->num_blocks();
    const Column column = rng() % 2 ? Column::kTimestampMs : Column::kDimensions;
    const ChunkExtent c = (*reader)->chunk_extent(block, column);
    std::string file = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      file[c.offset + 2 + rng() % (c.size - 6)] = static_cast<char>(rng() % 3 ? rng() : rng() % 4);
    }
    FixChunkCrc(&file, c);
    Overwrite(file);
    ExpectBlockReadsOrCorruption(block);
  }
}

TEST_F(SegmentTest, ZoneMapsDescribeBlocks) {
  const auto events = MakeEvents(100);
  ASSERT_TRUE(Write(events, 16).ok());
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  ASSERT_EQ(7u, (*reader)->num_blocks());
  for (size_t b = 0; b < 7; ++b) {
    const BlockZoneMap& z = (*reader)->zone_map(b);
    const size_t begin = b * 16, end = std::min<size_t>(100, begin + 16);
    EXPECT_EQ(end - begin, z.row_count);
    int64_t min_ts = INT64_MAX, max_ts = INT64_MIN;
    uint64_t min_seq = UINT64_MAX, max_seq = 0;
    std::set<std::string> products, meters, models, accounts;
    for (size_t i = begin; i < end; ++i) {
      min_ts = std::min(min_ts, events[i].timestamp_ms);
      max_ts = std::max(max_ts, events[i].timestamp_ms);
      min_seq = std::min(min_seq, events[i].commit_seq);
      max_seq = std::max(max_seq, events[i].commit_seq);
      products.insert(events[i].product_id);
      meters.insert(events[i].meter_id);
      if (events[i].model_id) models.insert(*events[i].model_id);
      accounts.insert(events[i].account_id);
    }
    EXPECT_EQ(min_ts, z.min_timestamp_ms);
    EXPECT_EQ(max_ts, z.max_timestamp_ms);
    EXPECT_EQ(min_seq, z.min_commit_seq);
    EXPECT_EQ(max_seq, z.max_commit_seq);
    EXPECT_EQ(*accounts.begin(), z.min_account_id);
    EXPECT_EQ(*accounts.rbegin(), z.max_account_id);
    EXPECT_EQ(std::vector<std::string>(products.begin(), products.end()), z.product_ids);
    EXPECT_EQ(std::vector<std::string>(meters.begin(), meters.end()), z.meter_ids);
    EXPECT_EQ(std::vector<std::string>(models.begin(), models.end()), z.model_ids);
  }
  EXPECT_EQ(kMay2024Ms, (*reader)->info().min_timestamp_ms);
  EXPECT_EQ(1000u, (*reader)->info().min_commit_seq);
  EXPECT_EQ(1099u, (*reader)->info().max_commit_seq);
}

TEST_F(SegmentTest, ManyBlocks) {
  const auto events = MakeEvents(1000);
  ASSERT_TRUE(Write(events, 7).ok());
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(143u, (*reader)->num_blocks());
  EXPECT_TRUE((*reader)->VerifyAll().ok());
  std::vector<Event> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  EXPECT_EQ(events, got);
  DecodedBlock block;
  EXPECT_TRUE((*reader)->ReadBlock(143, kAllColumns, &block).IsInvalidArgument());
}

// ReadAccountRows finds each account's rows of a block and decodes their quantities.
TEST_F(SegmentTest, ReadAccountRowsDecodesOnlyTheAccountsRows) {
  const auto events = MakeEvents(1000);
  ASSERT_TRUE(Write(events, 64).ok());
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  DecodedBlock whole, part;
  const ColumnMask cols = ColumnBit(Column::kQuantity) | ColumnBit(Column::kMeterId);
  for (size_t b = 0; b < (*reader)->num_blocks(); ++b) {
    ASSERT_TRUE((*reader)->ReadBlock(b, kAllColumns, &whole).ok());
    for (int a = 0; a <= 7; ++a) {  // acct_7 is in no block
      const std::string account = "acct_" + std::to_string(a);
      size_t lo = 99, hi = 99;
      ASSERT_TRUE((*reader)->ReadAccountRows(b, cols, account, &part, &lo, &hi).ok());
      size_t want_lo = whole.rows, want_hi = 0;
      for (size_t r = 0; r < whole.rows; ++r) {
        if (whole.account_id.Get(r) != account) continue;
        want_lo = std::min(want_lo, r);
        want_hi = r + 1;
      }
      if (want_hi == 0) {
        EXPECT_EQ(lo, hi) << b << " " << account;
        continue;
      }
      EXPECT_EQ(want_lo, lo) << b << " " << account;
      EXPECT_EQ(want_hi, hi) << b << " " << account;
      for (size_t r = lo; r < hi; ++r) {
        EXPECT_EQ(account, part.account_id.Get(r));
        EXPECT_EQ(whole.quantity[r], part.quantity[r]);
        EXPECT_EQ(whole.meter_id.Get(r), part.meter_id.Get(r));
      }
    }
  }
  size_t lo, hi;
  EXPECT_TRUE((*reader)
                  ->ReadAccountRows((*reader)->num_blocks(), cols, "acct_1", &part, &lo, &hi)
                  .IsInvalidArgument());
}

TEST_F(SegmentTest, SingleRow) {
  const auto events = MakeEvents(1);
  ASSERT_TRUE(Write(events).ok());
  std::vector<Event> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  EXPECT_EQ(events, got);
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(1u, (*reader)->num_blocks());
  EXPECT_EQ(events[0].timestamp_ms, (*reader)->zone_map(0).max_timestamp_ms);
}

TEST_F(SegmentTest, OpenFooterHoldsNoFileUntilOpenFile) {
  const auto events = MakeEvents(300);
  ASSERT_TRUE(Write(events, 100).ok());
  auto full = Open();
  ASSERT_TRUE(full.ok());
  auto r = SegmentReader::OpenFooter(fs_, path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  SegmentReader& reader = **r;
  EXPECT_FALSE(reader.has_file());
  EXPECT_TRUE((*full)->has_file());
  // The footer and zone maps are there without the file.
  ASSERT_EQ((*full)->num_blocks(), reader.num_blocks());
  EXPECT_EQ((*full)->info().row_count, reader.info().row_count);
  EXPECT_EQ((*full)->zone_map(1).min_account_id, reader.zone_map(1).min_account_id);
  EXPECT_GT(reader.FooterMemoryUsage(), 3 * sizeof(BlockZoneMap));
  DecodedBlock block;
  EXPECT_FALSE(reader.ReadBlock(0, kAllColumns, &block).ok());  // no file yet: an error
  ASSERT_TRUE(reader.OpenFile(fs_).ok());
  EXPECT_TRUE(reader.has_file());
  std::vector<Event> got;
  for (size_t b = 0; b < reader.num_blocks(); ++b) {
    ASSERT_TRUE(reader.ReadBlock(b, kAllColumns, &block).ok());
    for (size_t row = 0; row < block.rows; ++row) {
      Event e;
      ASSERT_TRUE(block.MaterializeRow(row, &e).ok());
      got.push_back(std::move(e));
    }
  }
  EXPECT_EQ(events, got);
}

TEST_F(SegmentTest, OpenFileAfterOpenFooterNoticesAMissingOrChangedFile) {
  ASSERT_TRUE(Write(MakeEvents(50)).ok());
  const std::string file = Contents();
  {
    auto r = SegmentReader::OpenFooter(fs_, path_);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(fs_->RemoveFile(path_).ok());
    const Status s = (*r)->OpenFile(fs_);
    EXPECT_TRUE(s.IsNotFound()) << s.ToString();
    EXPECT_FALSE((*r)->has_file());
  }
  Overwrite(file);
  auto r = SegmentReader::OpenFooter(fs_, path_);
  ASSERT_TRUE(r.ok());
  Overwrite(file.substr(0, file.size() - 1));
  ExpectCorruptionNamingFile((*r)->OpenFile(fs_));
}

TEST_F(SegmentTest, PartitionBoundariesAreExact) {
  // The writer checks rows against the partition's millisecond range; the range ends must
  // agree with MonthPartition exactly, also before 1970.
  for (int64_t month_start : {kMay2024Ms, int64_t{-31} * kDayMs, int64_t{0}}) {
    const int64_t next_start = month_start + 31 * kDayMs;  // May, Dec 1969, Jan 1970
    auto events = MakeEvents(2);
    events[0].timestamp_ms = month_start;
    events[1].timestamp_ms = next_start - 1;
    EXPECT_TRUE(Write(events).ok()) << month_start;
    events[1].timestamp_ms = next_start;
    EXPECT_TRUE(Write(events).IsInvalidArgument()) << month_start;
    events[1].timestamp_ms = month_start - 1;
    EXPECT_TRUE(Write(events).IsInvalidArgument()) << month_start;
  }
  // Partitions whose range does not fit int64 milliseconds fall back to MonthPartition.
  auto events = MakeEvents(1);
  for (int64_t ts : {INT64_MAX, INT64_MIN}) {
    events[0].timestamp_ms = ts;
    EXPECT_TRUE(Write(events).ok()) << ts;
    std::vector<Event> got;
    ASSERT_TRUE(ReadAll(&got).ok());
    EXPECT_EQ(events, got);
    info_.partition += 1;
    EXPECT_TRUE(WriteSegment(fs_, path_, Pointers(events), SegmentWriterOptions(), &info_)
                    .IsInvalidArgument());
  }
}

TEST(SegmentUnsynced, CommitSyncsAndRenamesAndUncommittedLeavesNothing) {
  // The flush writes a segment on one thread and commits it (sync, close, rename) on another.
  FaultInjectionFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/seg").ok());
  ASSERT_TRUE(fs.SyncDir("/").ok());
  const auto events = MakeEvents(300);
  std::string dims;
  const std::vector<EventView> views = ViewEvents(Pointers(events), &dims);
  std::vector<const EventView*> rows;
  for (const EventView& v : views) rows.push_back(&v);
  const std::string path = "/seg/" + SegmentFileName(1);
  auto info_for = [&] {
    SegmentInfo info;
    info.bucket = 0;
    info.partition = MonthPartition(events[0].timestamp_ms);
    return info;
  };
  SegmentWriterScratch scratch;

  // Written, then committed: only the final name, and its contents survive a power loss
  // once the directory is synced.
  SegmentInfo info = info_for();
  std::unique_ptr<UnsyncedSegment> seg;
  ASSERT_TRUE(WriteSegmentUnsynced(&fs, path, rows, SegmentWriterOptions(), &info, &scratch, &seg)
                  .ok());
  EXPECT_EQ(300u, info.row_count);
  EXPECT_TRUE(fs.FileExists(path + ".tmp"));
  EXPECT_FALSE(fs.FileExists(path));
  ASSERT_TRUE(seg->Commit().ok());
  EXPECT_FALSE(fs.FileExists(path + ".tmp"));
  ASSERT_TRUE(fs.SyncDir("/seg").ok());
  EXPECT_FALSE(seg->Commit().ok());  // at most once
  seg.reset();
  fs.DropUnsyncedData();
  ASSERT_TRUE(fs.FileExists(path));
  auto size = fs.FileSize(path);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(info.file_size, *size);
  auto reader = SegmentReader::Open(&fs, path);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ(300u, (*reader)->info().row_count);

  // Destroyed uncommitted: the temporary is removed.
  const std::string path2 = "/seg/" + SegmentFileName(2);
  info = info_for();
  ASSERT_TRUE(
      WriteSegmentUnsynced(&fs, path2, rows, SegmentWriterOptions(), &info, &scratch, &seg).ok());
  EXPECT_TRUE(fs.FileExists(path2 + ".tmp"));
  seg.reset();
  EXPECT_FALSE(fs.FileExists(path2 + ".tmp"));
  EXPECT_FALSE(fs.FileExists(path2));

  // A failed sync: the commit fails, nothing is renamed, the temporary is removed.
  info = info_for();
  ASSERT_TRUE(
      WriteSegmentUnsynced(&fs, path2, rows, SegmentWriterOptions(), &info, &scratch, &seg).ok());
  fs.FailNth(1, OpKind::kSync);
  EXPECT_TRUE(seg->Commit().IsIOError());
  EXPECT_FALSE(fs.FileExists(path2 + ".tmp"));
  EXPECT_FALSE(fs.FileExists(path2));
}

TEST(SegmentUnsynced, RunHintsWriteTheSameBytes) {
  // The flush tells the writer which rows repeat the previous row's account and (product,
  // meter, model); the file must be byte-identical to one written without the hints, also
  // when blocks split runs and hints leave some runs unclaimed.
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/seg").ok());
  std::vector<Event> events;
  for (int i = 0; i < 900; ++i) {
    Event e = MakeEvent(i);
    e.account_id = "acct_" + std::to_string(i / 150);
    e.product_id = i % 300 < 200 ? "p1" : "p2";
    e.meter_id = "m" + std::to_string((i / 7) % 3);
    if (i % 11 == 0) e.model_id.reset();
    events.push_back(e);
  }
  std::stable_sort(events.begin(), events.end(), BillingLess);
  std::string dims;
  const std::vector<EventView> views = ViewEvents(Pointers(events), &dims);
  std::vector<const EventView*> rows;
  for (const EventView& v : views) rows.push_back(&v);
  std::vector<uint8_t> same_account(rows.size()), same_triple(rows.size());
  for (size_t i = 1; i < rows.size(); ++i) {
    same_account[i] = rows[i]->account_id == rows[i - 1]->account_id;
    same_triple[i] = rows[i]->product_id == rows[i - 1]->product_id &&
                     rows[i]->meter_id == rows[i - 1]->meter_id &&
                     rows[i]->model_id == rows[i - 1]->model_id && (i % 5 != 0);
  }
  SegmentWriterOptions options;
  options.rows_per_block = 128;
  auto write = [&](const std::string& path, const SegmentRowHints& hints) {
    SegmentInfo info;
    info.partition = MonthPartition(events[0].timestamp_ms);
    SegmentWriterScratch scratch;
    std::unique_ptr<UnsyncedSegment> seg;
    EXPECT_TRUE(
        WriteSegmentUnsynced(&fs, path, rows, options, &info, &scratch, &seg, hints).ok());
    EXPECT_TRUE(seg->Commit().ok());
    std::string bytes;
    auto f = fs.NewRandomAccessFile(path);
    EXPECT_TRUE(f.ok());
    EXPECT_TRUE((*f)->Read(0, (*f)->Size(), &bytes).ok());
    return bytes;
  };
  const std::string plain = write("/seg/" + SegmentFileName(1), SegmentRowHints());
  const std::string hinted =
      write("/seg/" + SegmentFileName(2), SegmentRowHints{same_account.data(), same_triple.data()});
  EXPECT_FALSE(plain.empty());
  EXPECT_TRUE(plain == hinted);
}

TEST_F(SegmentTest, BlocksOfDifferentShapesThroughOneWriter) {
  // The writer reuses its scratch buffers and hash tables across blocks: a block of distinct
  // ids and dimension sets followed by uniform blocks and back must all round-trip.
  std::vector<Event> events;
  for (int i = 0; i < 600; ++i) {
    Event e = MakeEvent(i);
    e.account_id = "acct_" + std::to_string(i / 200);
    if (i < 200) {
      e.dimensions = {{"k" + std::to_string(i % 7), "v" + std::to_string(i)}};
      e.source = "src_" + std::to_string(i);
    } else if (i < 400) {
      e.event_id = "evt_" + std::to_string(1000000 + i % 3);  // mostly repeated
      e.dimensions = {};
      e.model_id.reset();
    } else {
      // One set in two different orders: one canonical string.
      e.dimensions = {{"region", "eu"}, {"provider", i % 2 ? "a" : "b"}};
      if (i % 3 == 0) std::swap(e.dimensions[0], e.dimensions[1]);
    }
    events.push_back(e);
  }
  std::stable_sort(events.begin(), events.end(), BillingLess);
  ASSERT_TRUE(Write(events, 200).ok());
  std::vector<Event> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  ASSERT_EQ(events.size(), got.size());
  for (size_t i = 0; i < events.size(); ++i) {
    // Dimensions come back in key order.
    Event want = events[i];
    std::sort(want.dimensions.begin(), want.dimensions.end());
    EXPECT_EQ(want, got[i]) << i;
  }
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE((*reader)->VerifyAll().ok());
  EXPECT_EQ("acct_0", (*reader)->zone_map(0).min_account_id);
  EXPECT_EQ("acct_1", (*reader)->zone_map(1).max_account_id);
  EXPECT_TRUE((*reader)->zone_map(1).model_ids.empty());
  DecodedBlock block;
  ASSERT_TRUE((*reader)->ReadBlock(2, ColumnBit(Column::kDimensions), &block).ok());
  EXPECT_EQ(2u, block.dimensions.dict.size());
}

// Views of events as the flush has them (ViewEvents); *dims must outlive the views.
std::vector<EventView> ViewsOf(const std::vector<Event>& events, std::string* dims) {
  std::vector<const Event*> rows;
  for (const Event& e : events) rows.push_back(&e);
  return ViewEvents(rows, dims);
}

TEST_F(SegmentTest, ScratchReusedAcrossSegmentsWritesTheSameBytes) {
  // The flush writes many segments through one SegmentWriterScratch and claims distinct
  // event ids: every file must equal the one a fresh writer without the claim writes.
  std::vector<std::vector<Event>> sets = {MakeEvents(700), MakeBatchedEvents(1500), MakeEvents(3),
                                          MakeEvents(1100), MakeBatchedEvents(100)};
  SegmentWriterScratch scratch;
  for (size_t k = 0; k < sets.size(); ++k) {
    for (uint32_t rows_per_block : {4096u, 333u}) {
      const std::vector<Event>& events = sets[k];
      std::string dims;
      const std::vector<EventView> views = ViewsOf(events, &dims);
      std::vector<const EventView*> rows;
      for (const EventView& v : views) rows.push_back(&v);
      SegmentInfo fresh_info;
      fresh_info.bucket = 3;
      fresh_info.partition = MonthPartition(events[0].timestamp_ms);
      SegmentInfo reused_info = fresh_info;
      SegmentWriterOptions options;
      options.rows_per_block = rows_per_block;
      ASSERT_TRUE(WriteSegment(fs_, path_, rows, options, &fresh_info).ok());
      const std::string fresh = Contents();
      options.event_ids_distinct = true;
      ASSERT_TRUE(WriteSegment(fs_, path_, rows, options, &reused_info, &scratch).ok());
      EXPECT_EQ(fresh, Contents()) << k << " " << rows_per_block;
      EXPECT_EQ(fresh_info.file_size, reused_info.file_size);
      std::vector<Event> got;
      ASSERT_TRUE(ReadAll(&got).ok());
      EXPECT_EQ(events.size(), got.size());
    }
  }
}

TEST_F(SegmentTest, ZeroRowsIsInvalidArgument) {
  EXPECT_TRUE(Write({}).IsInvalidArgument());
  EXPECT_FALSE(fs_->FileExists(path_));
  EXPECT_FALSE(fs_->FileExists(path_ + ".tmp"));
}

TEST_F(SegmentTest, RowOutsidePartitionIsInvalidArgument) {
  auto events = MakeEvents(3);
  events[2].timestamp_ms = kMay2024Ms + 40 * kDayMs;  // June
  EXPECT_TRUE(Write(events).IsInvalidArgument());
  EXPECT_FALSE(fs_->FileExists(path_ + ".tmp"));
}

TEST_F(SegmentTest, BadRowsPerBlockIsInvalidArgument) {
  EXPECT_TRUE(Write(MakeEvents(3), 0).IsInvalidArgument());
  EXPECT_TRUE(Write(MakeEvents(3), segment::kMaxRowsPerBlock + 1).IsInvalidArgument());
}

TEST_F(SegmentTest, BlockChecksumMismatchIsCorruption) {
  ASSERT_TRUE(Write(MakeEvents(200), 64).ok());
  std::string file = Contents();
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  const ChunkExtent ts = (*reader)->chunk_extent(2, Column::kTimestampMs);
  file[ts.offset + 3] ^= 0x01;
  Overwrite(file);
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok());  // blocks are verified when read
  DecodedBlock block;
  EXPECT_TRUE((*reopened)->ReadBlock(1, kAllColumns, &block).ok());
  const Status s = (*reopened)->ReadBlock(2, kAllColumns, &block);
  ExpectCorruptionNamingFile(s);
  EXPECT_NE(std::string::npos, s.message().find("block 2")) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("timestamp_ms")) << s.ToString();
  ExpectCorruptionNamingFile((*reopened)->VerifyAll());
  // ReadRow checks every chunk of the block, not only what the row's values need.
  Event e;
  EXPECT_TRUE((*reopened)->ReadRow(1, 5, &e).ok());
  for (size_t row : {size_t{0}, size_t{63}}) {
    const Status rs = (*reopened)->ReadRow(2, row, &e);
    ExpectCorruptionNamingFile(rs);
    EXPECT_NE(std::string::npos, rs.message().find("block 2")) << rs.ToString();
    EXPECT_NE(std::string::npos, rs.message().find("timestamp_ms")) << rs.ToString();
  }
}

TEST_F(SegmentTest, ReadRowDamagedChunksAreCorruption) {
  // A flipped byte in any column's chunk of a block: ReadRow of any row is a Corruption
  // naming the file, the block and the column (the chunk crc), and a truncated file too.
  fs_ = &mem_fs_;
  ASSERT_TRUE(Write(MakeBatchedEvents(120), 40).ok());
  const std::string good = Contents();
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  for (int c = 0; c < kNumColumns; ++c) {
    const Column column = static_cast<Column>(c);
    const ChunkExtent x = (*reader)->chunk_extent(1, column);
    std::string file = good;
    file[x.offset + x.size / 2] ^= 0x10;
    Overwrite(file);
    auto damaged = Open();
    ASSERT_TRUE(damaged.ok());
    Event e;
    EXPECT_TRUE((*damaged)->ReadRow(0, 7, &e).ok());
    const Status s = (*damaged)->ReadRow(1, 7, &e);
    ExpectCorruptionNamingFile(s);
    EXPECT_NE(std::string::npos, s.message().find("block 1")) << s.ToString();
    EXPECT_NE(std::string::npos, s.message().find(segment::ColumnName(column))) << s.ToString();
  }
  Overwrite(good);
  auto ok = Open();
  ASSERT_TRUE(ok.ok());
  ExpectReadRowMatchesBlocks(**ok);
  Event e;
  EXPECT_TRUE((*ok)->ReadRow(0, 40, &e).IsInvalidArgument());
  EXPECT_TRUE((*ok)->ReadRow(3, 0, &e).IsInvalidArgument());
}

TEST_F(SegmentTest, FooterChecksumMismatch) {
  ASSERT_TRUE(Write(MakeEvents(50)).ok());
  std::string file = Contents();
  const uint64_t footer_offset = DecodeFixed64(file.data() + file.size() - 28);
  file[footer_offset + 2] ^= 0x10;
  Overwrite(file);
  const auto reader = Open();
  ASSERT_FALSE(reader.ok());
  ExpectCorruptionNamingFile(reader.status());
  EXPECT_NE(std::string::npos, reader.status().message().find("footer checksum"));
}

TEST_F(SegmentTest, TruncatedFileIsCorruption) {
  ASSERT_TRUE(Write(MakeEvents(50)).ok());
  const std::string file = Contents();
  for (size_t len :
       {file.size() - 1, file.size() - 28, file.size() / 2, size_t{40}, size_t{12}, size_t{1}}) {
    Overwrite(file.substr(0, len));
    const auto reader = Open();
    ASSERT_FALSE(reader.ok()) << len;
    ExpectCorruptionNamingFile(reader.status());
  }
}

TEST_F(SegmentTest, ZeroLengthFileIsCorruption) {
  Overwrite("");
  const auto reader = Open();
  ASSERT_FALSE(reader.ok());
  ExpectCorruptionNamingFile(reader.status());
}

TEST_F(SegmentTest, BadMagicIsCorruption) {
  ASSERT_TRUE(Write(MakeEvents(5)).ok());
  std::string file = Contents();
  file[0] = 'X';
  Overwrite(file);
  ExpectCorruptionNamingFile(Open().status());
}

TEST_F(SegmentTest, UnknownEncodingIsCorruption) {
  ASSERT_TRUE(Write(MakeEvents(50)).ok());
  std::string file = Contents();
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  const ChunkExtent ts = (*reader)->chunk_extent(0, Column::kTimestampMs);
  file[ts.offset] = static_cast<char>(0x7f);
  FixChunkCrc(&file, ts);
  Overwrite(file);
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok());
  DecodedBlock block;
  const Status s = (*reopened)->ReadBlock(0, kAllColumns, &block);
  ExpectCorruptionNamingFile(s);
  EXPECT_NE(std::string::npos, s.message().find("unknown encoding 127")) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("timestamp_ms")) << s.ToString();

  // A string encoding id on an integer column is just as unknown.
  file[ts.offset] = static_cast<char>(segment::Encoding::kStringDict);
  FixChunkCrc(&file, ts);
  Overwrite(file);
  reopened = Open();
  ASSERT_TRUE(reopened.ok());
  ExpectCorruptionNamingFile((*reopened)->ReadBlock(0, kAllColumns, &block));
}

TEST_F(SegmentTest, UnknownVersion) {
  ASSERT_TRUE(Write(MakeEvents(5)).ok());
  const std::string good = Contents();
  EXPECT_EQ(segment::kVersion, DecodeFixed32(good.data() + 8));
  for (size_t offset : {size_t{8}, good.size() - 12}) {  // header version, trailer version
    std::string file = good;
    EncodeFixed32(file.data() + offset, segment::kVersion + 1);
    Overwrite(file);
    const auto reader = Open();
    ASSERT_FALSE(reader.ok());
    ExpectCorruptionNamingFile(reader.status());
    EXPECT_NE(std::string::npos,
              reader.status().message().find("version " + std::to_string(segment::kVersion + 1)))
        << reader.status().ToString();
  }
  // Both versions are readable, but header and trailer must agree: a current file whose
  // header names the raw-footer version would have its compressed footer parsed as raw.
  std::string file = good;
  EncodeFixed32(file.data() + 8, segment::kVersionRawFooter);
  Overwrite(file);
  const auto reader = Open();
  ASSERT_FALSE(reader.ok());
  ExpectCorruptionNamingFile(reader.status());
}

TEST_F(SegmentTest, FooterIsCompressedWhenItPays) {
  // 40 blocks of zone maps with the same id sets: the footer shrinks to a zstd frame.
  const auto events = MakeEvents(400);
  ASSERT_TRUE(Write(events, 10).ok());
  const std::string file = Contents();
  const uint64_t footer_offset = DecodeFixed64(file.data() + file.size() - 28);
  EXPECT_EQ(static_cast<char>(segment::Codec::kZstd), file[footer_offset]);
  std::vector<Event> got;
  ASSERT_TRUE(ReadAll(&got).ok());
  EXPECT_EQ(events, got);
  // A footer zstd cannot shrink (random ids, nothing repeated) is stored raw.
  std::mt19937_64 rng(9);
  auto random_id = [&] {
    std::string id;
    for (int i = 0; i < 40; ++i) id.push_back(static_cast<char>(rng()));
    return id;
  };
  segment::Footer footer;
  footer.info.row_count = 5;
  footer.info.min_account_id = random_id();
  footer.info.max_account_id = random_id();
  footer.rows_per_block = 5;
  segment::BlockEntry& b = footer.blocks.emplace_back();
  b.rows = 5;
  for (uint32_t& size : b.chunk_size) size = 6;
  b.zone.min_account_id = random_id();
  b.zone.max_account_id = random_id();
  b.zone.product_ids = {random_id()};
  std::string raw;
  segment::EncodeFooter(footer, &raw);
  ASSERT_EQ(static_cast<char>(segment::Codec::kNone), raw[0]);
  segment::Footer decoded;
  const uint64_t end = segment::kHeaderSize + 6 * kNumColumns;
  ASSERT_TRUE(segment::DecodeFooter(raw, end, segment::kVersion, &decoded));
  EXPECT_EQ(footer.info.max_account_id, decoded.info.max_account_id);
  EXPECT_EQ(footer.blocks[0].zone.product_ids, decoded.blocks[0].zone.product_ids);
  // The same bytes are not a version-1 footer (no codec byte there), nor is the body without
  // its codec byte (a version-1 footer has no receipt).
  EXPECT_FALSE(segment::DecodeFooter(raw, end, segment::kVersionRawFooter, &decoded));
  EXPECT_FALSE(segment::DecodeFooter(raw.substr(1), end, segment::kVersionRawFooter, &decoded));
}

TEST_F(SegmentTest, MutatedBytesNeverCrash) {
  // A small segment with several blocks; mutate 1-4 random bytes (fixed seed) and read it
  // all: the result is ok or Corruption, never a crash or another status.
  fs_ = &mem_fs_;
  ASSERT_TRUE(Write(MakeEvents(40), 8).ok());
  const std::string good = Contents();
  std::mt19937_64 rng(20240501);
  int corrupt = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string file = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) file[rng() % file.size()] = static_cast<char>(rng());
    Overwrite(file);
    std::vector<Event> got;
    Status s = ReadAll(&got);
    if (s.ok()) {
      auto reader = Open();
      ASSERT_TRUE(reader.ok());
      s = (*reader)->VerifyAll();
    }
    ASSERT_TRUE(s.ok() || s.IsCorruption()) << s.ToString();
    corrupt += !s.ok();
  }
  EXPECT_GT(corrupt, 2850);
}

TEST_F(SegmentTest, MutatedChunkBodiesWithFixedCrcNeverCrash) {
  // Damage behind a valid checksum reaches the decoders: they must reject it, not crash.
  fs_ = &mem_fs_;
  auto events = MakeEvents(60);
  events[3].has_correction_ref = true;
  events[3].kind = EventKind::kCorrection;
  events[3].correction_original_event_id = "evt_1";
  events[3].correction_reason = "why";
  ASSERT_TRUE(Write(events, 20).ok());
  const std::string good = Contents();
  auto reader = Open();
  ASSERT_TRUE(reader.ok());
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 5000; ++iter) {
    const size_t block = rng() % (*reader)->num_blocks();
    const auto column = static_cast<Column>(rng() % kNumColumns);
    const ChunkExtent c = (*reader)->chunk_extent(block, column);
    std::string file = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      file[c.offset + rng() % (c.size - 4)] = static_cast<char>(rng() % 3 ? rng() : rng() % 4);
    }
    FixChunkCrc(&file, c);
    Overwrite(file);
    ExpectBlockReadsOrCorruption(block);
  }
}

// ---- golden file ---------------------------------------------------------------------------

constexpr char kGoldenEncodings[] = "1 2 3 4 5 11 12 14 20 21 ";

// 120 events in 3 blocks of 40, shaped so the file holds most encodings (asserted below).
std::vector<Event> GoldenEvents() {
  std::mt19937 rng(42);  // the engine's output is fixed by the standard
  const std::string base32 = "0123456789abcdefghjkmnpqrstvwxyz";
  std::vector<Event> events;
  for (int i = 0; i < 120; ++i) {
    Event e;
    e.event_id = "evt_";
    for (int k = 0; k < 26; ++k) e.event_id.push_back(base32[rng() % 32]);
    e.account_id = "acct_" + std::to_string(i / 30);
    if (i % 3) e.subscription_id = "sub_" + std::to_string(i / 30);
    e.product_id = "chat";
    e.meter_id = i % 2 ? "tokens.input" : "tokens.output";
    if (i % 7) e.model_id = "model-" + std::to_string(rng() % 3);
    e.timestamp_ms = kMay2024Ms + i * 60000 + static_cast<int64_t>(rng() % 1000);
    e.quantity = static_cast<int>(1 + rng() % 4000);
    e.unit = "token";
    e.source = "collector-" + std::to_string(i * i * 7);
    e.dimensions = {{"provider", i % 2 ? "anthropic" : "openai"}};
    if (i % 4) e.dimensions.emplace_back("region", i % 3 ? "eu-west-1" : "us-east-1");
    e.commit_seq = 5000 + static_cast<uint64_t>((i * 53) % 120);
    e.ingested_at_ms = kMay2024Ms + 40 * kDayMs + static_cast<int64_t>(e.commit_seq / 10) * 7;
    events.push_back(std::move(e));
  }
  std::sort(events.begin(), events.end(), BillingLess);
  events[4].kind = EventKind::kRetraction;
  events[4].has_correction_ref = true;
  events[4].correction_original_event_id = "evt_0000";
  events[4].correction_reason = "tab\there";
  events[4].quantity = -kMaxQuantity;
  events[9].quantity = kMaxQuantity;
  events[10].dimensions = {{"agent", "q\"\\\x01"}, {"tool", "grep"}};
  events[11].dimensions.clear();
  events[50].kind = EventKind::kCorrection;
  events[50].has_correction_ref = true;
  events[50].correction_original_event_id = "evt_0001";
  events[50].quantity = -3;
  return events;
}

// Version 3: the same events in commit batches of 12 whose timestamps follow the batch (one
// late), so timestamps take kIntOffsetBySeq; dimensions take kDimensionsByKey.
constexpr char kGoldenV3Encodings[] = "1 2 3 4 5 6 11 12 14 15 20 21 ";
std::vector<Event> GoldenEventsV3() {
  std::vector<Event> events = GoldenEvents();
  for (Event& e : events) {
    const uint64_t batch = (e.commit_seq - 5000) / 12;
    e.commit_seq = 5000 + batch;
    e.timestamp_ms =
        kMay2024Ms + kDayMs + static_cast<int64_t>(batch) * 240000 + e.timestamp_ms % 1000;
    e.ingested_at_ms = kMay2024Ms + 40 * kDayMs + static_cast<int64_t>(batch / 3) * 7;
  }
  events[20].timestamp_ms -= 3 * 3600 * 1000;
  std::sort(events.begin(), events.end(), BillingLess);
  return events;
}

void CheckGoldenFile(FileSystem* fs, const std::string& name, const std::vector<Event>& expected,
                     const char* expected_encodings, const FlushReceipt& expected_receipt) {
  const std::string golden = std::string(USAGEDB_SEGMENT_GOLDEN_DIR) + "/" + name;
  auto reader = SegmentReader::Open(fs, golden);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ(5u, (*reader)->info().bucket);
  EXPECT_EQ(5119u, (*reader)->info().origin_max_seq);
  EXPECT_EQ(expected_receipt, (*reader)->info().receipt);
  EXPECT_EQ(3u, (*reader)->num_blocks());
  EXPECT_TRUE((*reader)->VerifyAll().ok());
  ExpectReadRowMatchesBlocks(**reader);
  std::vector<Event> got;
  DecodedBlock block;
  for (size_t b = 0; b < (*reader)->num_blocks(); ++b) {
    ASSERT_TRUE((*reader)->ReadBlock(b, kAllColumns, &block).ok());
    for (size_t r = 0; r < block.rows; ++r) {
      ASSERT_TRUE(block.MaterializeRow(r, &got.emplace_back()).ok());
    }
  }
  EXPECT_EQ(expected, got);

  // The golden file exercises most decoders; list the encodings it holds.
  std::string bytes;
  ASSERT_TRUE(fs->ReadFileToString(golden, &bytes).ok());
  std::set<int> encodings;
  int zstd_chunks = 0;
  for (size_t b = 0; b < (*reader)->num_blocks(); ++b) {
    for (int c = 0; c < kNumColumns; ++c) {
      const ChunkExtent e = (*reader)->chunk_extent(b, static_cast<Column>(c));
      encodings.insert(static_cast<uint8_t>(bytes[e.offset]));
      zstd_chunks += bytes[e.offset + 1] == static_cast<char>(segment::Codec::kZstd);
    }
  }
  std::string listed;
  for (int e : encodings) listed += std::to_string(e) + " ";
  EXPECT_EQ(expected_encodings, listed);
  EXPECT_GT(zstd_chunks, 0);
}

const FlushReceipt kGoldenReceipt{3, 360, 77, 78, 2, kMay2024Ms + 5, 5200};

TEST_F(SegmentTest, VersionTwoFilesAreRejectedByVersion) {
  // tests/golden/segment/v2.useg: format version 2 (raw footer with the receipt, old
  // encodings) lived on main for one day and was never released: it is not read.
  auto reader = SegmentReader::Open(fs_, std::string(USAGEDB_SEGMENT_GOLDEN_DIR) + "/v2.useg");
  ASSERT_FALSE(reader.ok());
  EXPECT_TRUE(reader.status().IsCorruption());
  EXPECT_NE(std::string::npos, reader.status().message().find("unsupported segment version 2"))
      << reader.status().ToString();
}

TEST_F(SegmentTest, GoldenFileV1StillDecodes) {
  // Version 1 predates the flush receipt: it reads as all zero (never re-adopted).
  CheckGoldenFile(fs_, "v1.useg", GoldenEvents(), kGoldenEncodings, FlushReceipt{});
}

TEST_F(SegmentTest, GoldenFileV3StillDecodes) {
  const std::string golden = std::string(USAGEDB_SEGMENT_GOLDEN_DIR) + "/v3.useg";
  const auto expected = GoldenEventsV3();
  if (std::getenv("USAGEDB_UPDATE_GOLDEN") != nullptr) {
    SegmentInfo info;
    info.bucket = 5;
    info.partition = MonthPartition(kMay2024Ms);
    info.origin_min_seq = 5000;
    info.origin_max_seq = 5119;
    info.receipt = kGoldenReceipt;
    SegmentWriterOptions options;
    options.rows_per_block = 40;
    ASSERT_TRUE(WriteSegment(fs_, golden, Pointers(expected), options, &info).ok());
  }
  CheckGoldenFile(fs_, "v3.useg", expected, kGoldenV3Encodings, kGoldenReceipt);
}

// ---- encodings -------------------------------------------------------------------------------

template <typename T>
std::vector<T> RoundTripInts(const std::vector<T>& v, segment::Encoding* enc) {
  std::string body;
  std::vector<T> out(v.size());
  if constexpr (sizeof(T) == 16) {
    *enc = segment::EncodeInt128Column(v.data(), v.size(), &body);
    EXPECT_TRUE(segment::DecodeInt128Column(*enc, body, v.size(), out.data()));
    if (!body.empty()) {
      EXPECT_FALSE(
          segment::DecodeInt128Column(*enc, body.substr(0, body.size() - 1), v.size(), out.data()));
    }
    out.assign(v.size(), 0);
    EXPECT_TRUE(segment::DecodeInt128Column(*enc, body, v.size(), out.data()));
  } else {
    *enc = segment::EncodeInt64Column(v.data(), v.size(), &body);
    EXPECT_TRUE(segment::DecodeInt64Column(*enc, body, v.size(), nullptr, out.data()));
    if (!body.empty()) {
      EXPECT_FALSE(segment::DecodeInt64Column(*enc, body + "x", v.size(), nullptr, out.data()));
    }
  }
  return out;
}

TEST(SegmentEncoding, AnalysisPicksTheSmallestIntEncoding) {
  segment::Encoding enc;
  std::vector<int64_t> runs(1000, 0);
  runs[500] = 2;
  EXPECT_EQ(runs, RoundTripInts(runs, &enc));
  EXPECT_EQ(segment::Encoding::kIntRle, enc);

  std::vector<int64_t> perm(1000);
  for (int i = 0; i < 1000; ++i) perm[i] = 5000000 + (i * 617) % 1000;
  EXPECT_EQ(perm, RoundTripInts(perm, &enc));
  EXPECT_EQ(segment::Encoding::kIntFor, enc);

  std::vector<int64_t> ramp(1000);
  for (int i = 0; i < 1000; ++i) ramp[i] = kMay2024Ms + i * 1000 + (i % 3);
  EXPECT_EQ(ramp, RoundTripInts(ramp, &enc));
  EXPECT_EQ(segment::Encoding::kIntDeltaFor, enc);

  std::vector<int64_t> jumpy(1000);
  for (int i = 0; i < 1000; ++i) jumpy[i] = kMay2024Ms + (i % 100 == 99 ? 1ll << 40 : i * 3);
  EXPECT_EQ(jumpy, RoundTripInts(jumpy, &enc));
  EXPECT_EQ(segment::Encoding::kIntDeltaVarint, enc);

  std::vector<int64_t> extremes = {INT64_MIN, INT64_MAX, 0, -1, INT64_MIN};
  EXPECT_EQ(extremes, RoundTripInts(extremes, &enc));
  std::vector<int64_t> one = {42};
  EXPECT_EQ(one, RoundTripInts(one, &enc));
}

TEST(SegmentEncoding, StepsBySeq) {
  // ingested_at shared by batches of 10 seqs, rows in another (billing) order.
  std::vector<uint64_t> seqs(500);
  std::vector<int64_t> values(500);
  for (size_t i = 0; i < 500; ++i) {
    seqs[i] = 1000 + (i * 37) % 500;
    values[i] = kMay2024Ms + static_cast<int64_t>(seqs[i] / 10) * 3;
  }
  std::string body;
  ASSERT_TRUE(segment::EncodeInt64StepsBySeq(values.data(), seqs.data(), 500, &body));
  EXPECT_LT(body.size(), 200u);
  std::vector<int64_t> out(500);
  ASSERT_TRUE(segment::DecodeInt64Column(segment::Encoding::kIntStepsBySeq, body, 500, seqs.data(),
                                         out.data()));
  EXPECT_EQ(values, out);
  EXPECT_FALSE(segment::DecodeInt64Column(segment::Encoding::kIntStepsBySeq, body, 500, nullptr,
                                          out.data()));
  // A row whose seq lies below the first step is malformed.
  seqs[7] = 3;
  EXPECT_FALSE(segment::DecodeInt64Column(segment::Encoding::kIntStepsBySeq, body, 500, seqs.data(),
                                          out.data()));
  // Two values for one seq: not a step function.
  seqs[7] = seqs[8];
  values[7] = values[8] + 1;
  body.clear();
  EXPECT_FALSE(segment::EncodeInt64StepsBySeq(values.data(), seqs.data(), 500, &body));
}

TEST(SegmentEncoding, Int128ForAndVarint) {
  segment::Encoding enc;
  std::vector<__int128> small = {1000, 2000, 3000, 4000, 1700, 1500, 3999, 2222};
  EXPECT_EQ(small, RoundTripInts(small, &enc));
  EXPECT_EQ(segment::Encoding::kInt128For, enc);
  std::vector<__int128> wide = {kMaxQuantity, -kMaxQuantity, 0, 1, kMaxQuantity};
  EXPECT_EQ(wide, RoundTripInts(wide, &enc));
  EXPECT_EQ(segment::Encoding::kInt128Varint, enc);
  std::vector<__int128> many(700);
  for (size_t i = 0; i < many.size(); ++i) many[i] = -kMaxQuantity + static_cast<int>(i * 13);
  EXPECT_EQ(many, RoundTripInts(many, &enc));
  EXPECT_EQ(segment::Encoding::kInt128For, enc);
}

// Decoding rows [lo, hi) of a column gives exactly those rows and leaves the others alone.
TEST(SegmentEncoding, Int128RowsMatchWholeColumn) {
  std::vector<__int128> small(45), wide(45);
  for (size_t i = 0; i < small.size(); ++i) {
    small[i] = 1000 + static_cast<int>((i * 7919) % 3000);
    // One to nineteen varint bytes: small, negative and values past 2^63.
    wide[i] = i % 3 == 0 ? kMaxQuantity - static_cast<int>(i)
                         : (i % 3 == 1 ? -static_cast<int>(i) * 1000 : static_cast<int>(i));
  }
  for (const auto& [values, want] : {std::pair{small, segment::Encoding::kInt128For},
                                     std::pair{wide, segment::Encoding::kInt128Varint}}) {
    std::string body;
    ASSERT_EQ(want, segment::EncodeInt128Column(values.data(), values.size(), &body));
    const size_t n = values.size();
    for (size_t lo = 0; lo <= n; ++lo) {
      for (size_t hi = lo; hi <= n; ++hi) {
        std::vector<__int128> out(n, -7);
        ASSERT_TRUE(segment::DecodeInt128Rows(want, body, n, lo, hi, out.data()))
            << lo << " " << hi;
        for (size_t i = 0; i < n; ++i) {
          EXPECT_EQ(i >= lo && i < hi ? values[i] : __int128{-7}, out[i])
              << lo << " " << hi << " " << i;
        }
      }
    }
    std::vector<__int128> out(n);
    EXPECT_FALSE(segment::DecodeInt128Rows(want, body, n, 5, 4, out.data()));
    EXPECT_FALSE(segment::DecodeInt128Rows(want, body, n, 0, n + 1, out.data()));
    EXPECT_FALSE(segment::DecodeInt128Rows(want, body.substr(0, 3), n, 40, 41, out.data()));
    for (size_t i = 0; i < n; ++i) {
      __int128 x = -7;
      ASSERT_TRUE(segment::DecodeInt128Row(want, body, n, i, &x)) << i;
      EXPECT_EQ(values[i], x) << i;
    }
    __int128 x;
    EXPECT_FALSE(segment::DecodeInt128Row(want, body, n, n, &x));
    EXPECT_FALSE(segment::DecodeInt128Row(want, body.substr(0, body.size() - 1), n, 0, &x));
    EXPECT_FALSE(segment::DecodeInt128Row(want, body + "x", n, 0, &x));
  }
}

StringColumn RoundTripStrings(const std::vector<std::string>& values,
                              const std::vector<uint8_t>& nulls, segment::Encoding* enc) {
  std::vector<std::string_view> views(values.begin(), values.end());
  std::string body;
  *enc = segment::EncodeStringColumn(views, nulls, &body);
  StringColumn col;
  EXPECT_TRUE(segment::DecodeStringColumn(*enc, body, values.size(), true, &col));
  if (body.size() > 1) {
    StringColumn cut;
    EXPECT_FALSE(segment::DecodeStringColumn(*enc, body.substr(0, body.size() - 1), values.size(),
                                             true, &cut));
  }
  const bool has_nulls = std::find(nulls.begin(), nulls.end(), 1) != nulls.end();
  if (has_nulls) {
    StringColumn strict;
    EXPECT_FALSE(segment::DecodeStringColumn(*enc, body, values.size(), false, &strict));
  }
  EXPECT_TRUE(segment::DecodeStringColumn(*enc, body, values.size(), true, &col));
  for (size_t i = 0; i < values.size(); ++i) {
    const bool is_null = !nulls.empty() && nulls[i];
    EXPECT_EQ(is_null, col.IsNull(i)) << i;
    if (!is_null) {
      EXPECT_EQ(values[i], col.Get(i)) << i;
    }
    // The row alone decodes to the same value.
    bool row_null = !is_null;
    std::string row = "stale";
    EXPECT_TRUE(segment::DecodeStringRow(*enc, body, values.size(), true, i, &row_null, &row));
    EXPECT_EQ(is_null, row_null) << i;
    EXPECT_EQ(is_null ? std::string() : values[i], row) << i;
  }
  bool row_null;
  std::string row;
  EXPECT_FALSE(
      segment::DecodeStringRow(*enc, body, values.size(), true, values.size(), &row_null, &row));
  if (body.size() > 1 && !values.empty()) {
    EXPECT_FALSE(segment::DecodeStringRow(*enc, body.substr(0, body.size() - 1), values.size(),
                                          true, 0, &row_null, &row));
  }
  // The column and the row decoder parse one grammar: wherever a damaged header (a flipped
  // bit in the first 48 bytes) still decodes as a column, the rows decode to the same values.
  if (!values.empty()) {
    for (size_t pos = 0; pos < std::min<size_t>(body.size(), 48); ++pos) {
      for (int bit : {0, 3, 7}) {
        std::string damaged = body;
        damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << bit));
        StringColumn dcol;
        if (!segment::DecodeStringColumn(*enc, damaged, values.size(), true, &dcol)) continue;
        for (size_t i : {size_t{0}, values.size() / 2, values.size() - 1}) {
          bool dnull = false;
          std::string dval;
          EXPECT_TRUE(segment::DecodeStringRow(*enc, damaged, values.size(), true, i, &dnull,
                                               &dval))
              << "byte " << pos << " bit " << bit << " row " << i;
          EXPECT_EQ(dcol.IsNull(i), dnull) << pos << " " << i;
          if (!dnull) {
            EXPECT_EQ(dcol.Get(i), dval) << pos << " " << i;
          }
        }
      }
    }
  }
  return col;
}

TEST(SegmentEncoding, AnalysisPicksTheSmallestStringEncoding) {
  segment::Encoding enc;
  std::vector<std::string> sorted;
  for (int i = 0; i < 500; ++i) sorted.push_back("acct_" + std::to_string(100 + i / 50));
  RoundTripStrings(sorted, {}, &enc);
  EXPECT_EQ(segment::Encoding::kStringDictRle, enc);

  std::vector<std::string> mixed;
  for (int i = 0; i < 500; ++i) mixed.push_back("model-" + std::to_string((i * 7) % 13));
  std::vector<uint8_t> nulls(500, 0);
  nulls[3] = nulls[77] = 1;
  RoundTripStrings(mixed, nulls, &enc);
  EXPECT_EQ(segment::Encoding::kStringDict, enc);

  std::mt19937 rng(1);
  const std::string base32 = "abcdefghijklmnopqrstuvwxyz234567";
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    std::string id = "evt_";
    for (int k = 0; k < 26; ++k) id.push_back(base32[rng() % 32]);
    ids.push_back(id);
  }
  RoundTripStrings(ids, {}, &enc);
  EXPECT_EQ(segment::Encoding::kStringFixedAlphabet, enc);

  std::vector<std::string> binary;
  for (int i = 0; i < 300; ++i) {
    std::string s = "x";
    for (int k = 0; k < 12; ++k) s.push_back(static_cast<char>(rng()));
    binary.push_back(s);
  }
  std::vector<uint8_t> some_nulls(300, 0);
  some_nulls[0] = some_nulls[299] = 1;
  RoundTripStrings(binary, some_nulls, &enc);
  EXPECT_EQ(segment::Encoding::kStringFixed, enc);

  std::vector<std::string> varied;
  for (int i = 0; i < 300; ++i) varied.push_back("reason " + std::to_string(i * 7919) + "!");
  varied[5] = "";
  std::vector<uint8_t> varied_nulls(300, 0);
  varied_nulls[6] = 1;
  RoundTripStrings(varied, varied_nulls, &enc);
  EXPECT_EQ(segment::Encoding::kStringPlain, enc);

  std::vector<std::string> all_null(10, "");
  RoundTripStrings(all_null, std::vector<uint8_t>(10, 1), &enc);
}

TEST(SegmentEncoding, BitPackingEveryWidth) {
  std::mt19937_64 rng(3);
  for (int width = 0; width <= 64; ++width) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{64}, size_t{333}}) {
      std::vector<uint64_t> v(n);
      const uint64_t mask = width == 64 ? ~0ull : (1ull << width) - 1;
      for (auto& x : v) x = rng() & mask;
      std::string packed;
      segment::PutBitPacked(v.data(), n, width, &packed);
      ASSERT_EQ(segment::BitPackedBytes(n, width), packed.size());
      std::vector<uint64_t> out(n, 1);
      segment::UnpackBits(reinterpret_cast<const uint8_t*>(packed.data()), packed.size(), n, width,
                          out.data());
      ASSERT_EQ(v, out) << width << " " << n;
    }
  }
}

TEST(SegmentEncoding, Int64BodiesHaveTheAnalyzedSize) {
  // The encoders write into space sized by the analysis: the sizes must be exact.
  std::mt19937_64 rng(7);
  std::vector<std::vector<int64_t>> columns = {
      {42}, {INT64_MIN, INT64_MAX, 0, -1, INT64_MIN, INT64_MAX}, std::vector<int64_t>(300, -7)};
  std::vector<int64_t> random(1000), ramp(1000), runs(1000);
  for (size_t i = 0; i < 1000; ++i) {
    random[i] = static_cast<int64_t>(rng());
    ramp[i] = kMay2024Ms + static_cast<int64_t>(i * 1000 + rng() % 50);
    runs[i] = static_cast<int64_t>(i / 100) - 3;
  }
  columns.push_back(random);
  columns.push_back(ramp);
  columns.push_back(runs);
  for (const auto& v : columns) {
    const segment::Int64Analysis a = segment::AnalyzeInt64(v.data(), v.size());
    for (segment::Encoding e : {segment::Encoding::kIntFor, segment::Encoding::kIntDeltaFor,
                                segment::Encoding::kIntRle, segment::Encoding::kIntDeltaVarint}) {
      std::string body = "prefix";
      segment::EncodeInt64With(a, e, v.data(), &body);
      ASSERT_EQ(6 + a.Size(e), body.size()) << static_cast<int>(e) << " n=" << v.size();
      std::vector<int64_t> out(v.size());
      ASSERT_TRUE(segment::DecodeInt64Column(e, std::string_view(body).substr(6), v.size(), nullptr,
                                             out.data()));
      EXPECT_EQ(v, out);
      for (size_t i = 0; i < v.size(); ++i) {
        int64_t x = 0;
        ASSERT_TRUE(
            segment::DecodeInt64Row(e, std::string_view(body).substr(6), v.size(), i, 0, &x));
        ASSERT_EQ(v[i], x) << static_cast<int>(e) << " row " << i;
      }
    }
  }
}

// The steps a sort of (seq, value) pairs yields: the reference for the writer's fast path.
std::string ReferenceSteps(const std::vector<int64_t>& v, const std::vector<uint64_t>& seqs) {
  std::vector<std::pair<uint64_t, int64_t>> pairs;
  for (size_t i = 0; i < v.size(); ++i) pairs.emplace_back(seqs[i], v[i]);
  std::sort(pairs.begin(), pairs.end());
  std::vector<std::pair<uint64_t, int64_t>> steps;
  for (const auto& p : pairs) {
    if (steps.empty() || steps.back().second != p.second) steps.push_back(p);
  }
  std::string body;
  PutVarint64(&body, steps.size());
  PutVarint64(&body, steps[0].first);
  PutVarint64(&body, ZigZagEncode64(steps[0].second));
  for (size_t k = 1; k < steps.size(); ++k) {
    PutVarint64(&body, steps[k].first - steps[k - 1].first);
    PutVarint64(&body, ZigZagEncode64(steps[k].second - steps[k - 1].second));
  }
  return body;
}

TEST(SegmentEncoding, StepsBySeqMatchesSortingInEveryShape) {
  std::mt19937_64 rng(11);
  // Batches in billing order (disjoint seq intervals per value).
  std::vector<uint64_t> seqs(400);
  std::vector<int64_t> values(400);
  for (size_t i = 0; i < 400; ++i) {
    seqs[i] = 7000 + (i * 151) % 400;
    values[i] = kMay2024Ms + static_cast<int64_t>(seqs[i] / 16);
  }
  // A value that returns after another (A, B, A in seq order): intervals overlap.
  std::vector<uint64_t> seqs2 = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> values2 = {10, 10, 20, 20, 10, 10};
  // Every row its own value, in shuffled order.
  std::vector<uint64_t> seqs3(300);
  std::vector<int64_t> values3(300);
  for (size_t i = 0; i < 300; ++i) seqs3[i] = i * 3 + 1;
  std::shuffle(seqs3.begin(), seqs3.end(), rng);
  for (size_t i = 0; i < 300; ++i) values3[i] = static_cast<int64_t>(seqs3[i]) * -5;
  // One row; and repeated seqs with equal values.
  std::vector<uint64_t> seqs4 = {UINT64_MAX};
  std::vector<int64_t> values4 = {INT64_MIN};
  std::vector<uint64_t> seqs5 = {9, 9, 3, 3, 9};
  std::vector<int64_t> values5 = {2, 2, 1, 1, 2};
  for (const auto& [s, v] :
       std::vector<std::pair<std::vector<uint64_t>, std::vector<int64_t>>>{{seqs, values},
                                                                           {seqs2, values2},
                                                                           {seqs3, values3},
                                                                           {seqs4, values4},
                                                                           {seqs5, values5}}) {
    std::string body;
    ASSERT_TRUE(segment::EncodeInt64StepsBySeq(v.data(), s.data(), v.size(), &body));
    EXPECT_EQ(ReferenceSteps(v, s), body) << v.size();
    std::vector<int64_t> out(v.size());
    ASSERT_TRUE(segment::DecodeInt64Column(segment::Encoding::kIntStepsBySeq, body, v.size(),
                                           s.data(), out.data()));
    EXPECT_EQ(v, out);
    for (size_t i = 0; i < v.size(); ++i) {
      int64_t x = 0;
      ASSERT_TRUE(
          segment::DecodeInt64Row(segment::Encoding::kIntStepsBySeq, body, v.size(), i, s[i], &x));
      ASSERT_EQ(v[i], x) << i;
    }
  }
  // Overlapping intervals with a conflict on one seq still fail.
  seqs2[4] = 3;
  std::string body;
  EXPECT_FALSE(segment::EncodeInt64StepsBySeq(values2.data(), seqs2.data(), 6, &body));
  EXPECT_TRUE(body.empty());
}

TEST(SegmentEncoding, OffsetBySeqInEveryShape) {
  using Case = std::pair<std::vector<uint64_t>, std::vector<int64_t>>;
  std::vector<Case> cases;
  std::mt19937_64 rng(12);
  {  // Batches near their time, shuffled (billing order), a few late rows.
    Case c;
    for (int i = 0; i < 500; ++i) {
      c.first.push_back(300 + i / 10);
      c.second.push_back(kMay2024Ms + (i / 10) * 60000 + static_cast<int64_t>(rng() % 9000) -
                         (i % 97 == 5 ? 4 * 3600 * 1000 : 0));
    }
    std::vector<size_t> order(500);
    for (size_t i = 0; i < 500; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    Case shuffled;
    for (size_t i : order) {
      shuffled.first.push_back(c.first[i]);
      shuffled.second.push_back(c.second[i]);
    }
    cases.push_back(shuffled);
  }
  cases.push_back({{7}, {INT64_MIN}});                              // one row
  cases.push_back({{5, 5, 5}, {42, 42, 42}});                       // width 0
  cases.push_back({{1, 3, 3}, {INT64_MAX, INT64_MIN, 0}});          // wrapping, missing seq 2
  cases.push_back({{UINT64_MAX - 1, UINT64_MAX}, {-1, 1}});         // seqs at the top
  cases.push_back({{9, 9, 9, 9}, {0, 1000000, 1000001, 1000002}});  // one outlier
  for (const auto& [seqs, values] : cases) {
    std::string body;
    ASSERT_TRUE(segment::EncodeInt64OffsetBySeq(values.data(), seqs.data(), values.size(), &body));
    std::vector<int64_t> out(values.size());
    ASSERT_TRUE(segment::DecodeInt64Column(segment::Encoding::kIntOffsetBySeq, body, values.size(),
                                           seqs.data(), out.data()));
    EXPECT_EQ(values, out);
    for (size_t i = 0; i < values.size(); ++i) {
      int64_t x = 0;
      ASSERT_TRUE(segment::DecodeInt64Row(segment::Encoding::kIntOffsetBySeq, body, values.size(),
                                          i, seqs[i], &x));
      ASSERT_EQ(values[i], x) << i;
      EXPECT_FALSE(segment::DecodeInt64Row(segment::Encoding::kIntOffsetBySeq, body, values.size(),
                                           i, seqs[i] + values.size() + 1, &x));
    }
    // Every truncation, and trailing bytes, are malformed; so are missing seqs and a seq
    // outside the stored range.
    for (size_t cut = 0; cut < body.size(); ++cut) {
      EXPECT_FALSE(segment::DecodeInt64Column(segment::Encoding::kIntOffsetBySeq,
                                              body.substr(0, cut), values.size(), seqs.data(),
                                              out.data()));
    }
    EXPECT_FALSE(segment::DecodeInt64Column(segment::Encoding::kIntOffsetBySeq, body + "x",
                                            values.size(), seqs.data(), out.data()));
    EXPECT_FALSE(segment::DecodeInt64Column(segment::Encoding::kIntOffsetBySeq, body, values.size(),
                                            nullptr, out.data()));
    std::vector<uint64_t> moved = seqs;
    moved[0] = *std::max_element(seqs.begin(), seqs.end()) + 1;
    if (moved[0] != 0) {
      EXPECT_FALSE(segment::DecodeInt64Column(segment::Encoding::kIntOffsetBySeq, body,
                                              values.size(), moved.data(), out.data()));
    }
  }
  // A seq range wider than the rows: not offered.
  const std::vector<uint64_t> sparse = {1, 100};
  const std::vector<int64_t> two = {1, 2};
  std::string body;
  EXPECT_FALSE(segment::EncodeInt64OffsetBySeq(two.data(), sparse.data(), 2, &body));
  EXPECT_TRUE(body.empty());
}

TEST(SegmentEncoding, StringEncoderReusedAcrossColumnsAndBlocks) {
  segment::StringColumnEncoder encoder;
  std::mt19937 rng(5);
  auto check = [&](const std::vector<std::string>& values, const std::vector<uint8_t>& nulls,
                   bool need_distinct, segment::Encoding* enc) {
    std::vector<std::string_view> views(values.begin(), values.end());
    segment::StringColumnInput in;
    in.values = views.data();
    in.nulls = nulls.empty() ? nullptr : nulls.data();
    in.n = views.size();
    in.need_distinct = need_distinct;
    std::string body;
    *enc = encoder.Encode(in, &body);
    StringColumn col;
    ASSERT_TRUE(segment::DecodeStringColumn(*enc, body, values.size(), true, &col));
    std::set<std::string> distinct;
    for (size_t i = 0; i < values.size(); ++i) {
      const bool is_null = !nulls.empty() && nulls[i];
      ASSERT_EQ(is_null, col.IsNull(i)) << i;
      if (is_null) continue;
      EXPECT_EQ(values[i], col.Get(i)) << i;
      distinct.insert(values[i]);
    }
    if (need_distinct) {
      ASSERT_TRUE(encoder.has_sorted_distinct());
      EXPECT_EQ(std::vector<std::string>(distinct.begin(), distinct.end()),
                std::vector<std::string>(encoder.sorted_distinct().begin(),
                                         encoder.sorted_distinct().end()));
    }
  };
  segment::Encoding enc;
  // Many distinct values first (grows the hash table), then small and null-heavy columns.
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back("id-" + std::to_string(rng()));
  check(ids, {}, false, &enc);
  EXPECT_EQ(segment::Encoding::kStringPlain, enc);
  check(ids, {}, true, &enc);  // the whole dictionary when asked (zone maps)
  EXPECT_EQ(segment::Encoding::kStringPlain, enc);
  std::vector<std::string> few(3000);
  for (size_t i = 0; i < few.size(); ++i) few[i] = "model-" + std::to_string(i / 700);
  std::vector<uint8_t> nulls(few.size(), 0);
  for (size_t i = 1000; i < 1100; ++i) nulls[i] = 1;
  check(few, nulls, true, &enc);
  EXPECT_EQ(segment::Encoding::kStringDictRle, enc);
  for (size_t i = 0; i < few.size(); i += 9) nulls[i] = 1;  // runs broken up
  check(few, nulls, true, &enc);
  EXPECT_EQ(segment::Encoding::kStringDict, enc);
  check({"x"}, {}, true, &enc);
  check({"", "", ""}, {1, 1, 1}, true, &enc);
  EXPECT_TRUE(encoder.sorted_distinct().empty());
  // Exactly half distinct keeps the dictionary; one more distinct value makes it per-row,
  // however late the extra value comes (the early stop is exact).
  std::vector<std::string> half(200);
  for (size_t i = 0; i < 200; ++i) half[i] = "value-" + std::to_string(i % 100) + "-padding";
  check(half, {}, false, &enc);
  EXPECT_EQ(segment::Encoding::kStringDict, enc);
  half[199] = "value-extra-padding";
  check(half, {}, false, &enc);
  EXPECT_EQ(segment::Encoding::kStringPlain, enc);
  EXPECT_FALSE(encoder.has_sorted_distinct());
  // Strings of every length up to 40 bytes differing only in the last byte (hash and
  // equality tails).
  std::vector<std::string> tails;
  for (int len = 1; len <= 40; ++len) {
    for (char c : {'a', 'b'}) tails.push_back(std::string(len - 1, 'z') + c);
  }
  const std::vector<std::string> once = tails;
  for (int rep = 0; rep < 3; ++rep) tails.insert(tails.end(), once.begin(), once.end());
  check(tails, {}, true, &enc);
  EXPECT_EQ(80u, encoder.sorted_distinct().size());
}

TEST(SegmentEncoding, DistinctValuesClaimGivesTheSameBody) {
  // values_distinct skips the dictionary pass; the body must be the one that pass would give,
  // at every size around the early-stop threshold, with and without nulls.
  for (size_t n : {1, 2, 63, 64, 65, 130, 1000}) {
    for (bool with_nulls : {false, true}) {
      std::vector<std::string> owned;
      for (size_t i = 0; i < n; ++i) owned.push_back("evt_" + std::to_string(1000003 * i % 999983));
      std::vector<std::string_view> views(owned.begin(), owned.end());
      std::vector<uint8_t> nulls(n, 0);
      if (with_nulls) {
        for (size_t i = 0; i < n; i += 3) nulls[i] = 1;
      }
      segment::StringColumnInput in;
      in.values = views.data();
      in.nulls = with_nulls ? nulls.data() : nullptr;
      in.n = n;
      segment::StringColumnEncoder plain, claimed;
      std::string want, got;
      const segment::Encoding want_enc = plain.Encode(in, &want);
      in.values_distinct = true;
      const segment::Encoding got_enc = claimed.Encode(in, &got);
      EXPECT_EQ(want_enc, got_enc) << n << " " << with_nulls;
      EXPECT_EQ(want, got) << n << " " << with_nulls;
    }
  }
}

TEST(SegmentEncoding, WrongDistinctClaimStillRoundTrips) {
  // A false claim may cost bytes, never values.
  std::vector<std::string_view> views;
  for (int i = 0; i < 500; ++i) views.push_back(i % 2 ? "evt_aaaa" : "evt_bbbb");
  segment::StringColumnInput in;
  in.values = views.data();
  in.n = views.size();
  in.values_distinct = true;
  segment::StringColumnEncoder encoder;
  std::string body;
  const segment::Encoding enc = encoder.Encode(in, &body);
  StringColumn col;
  ASSERT_TRUE(segment::DecodeStringColumn(enc, body, views.size(), false, &col));
  for (size_t i = 0; i < views.size(); ++i) EXPECT_EQ(views[i], col.Get(i)) << i;
}

// A reader reuses one DecodedBlock from block to block: a column decoded into a StringColumn
// that holds another block's values (of any encoding, longer or shorter) has exactly its own.
TEST(SegmentEncoding, OneStringColumnDecodesBlockAfterBlock) {
  std::mt19937 rng(7);
  const std::string base32 = "abcdefghijklmnopqrstuvwxyz234567";
  std::vector<std::vector<std::string>> blocks;
  std::vector<std::string> ids, dict, runs, binary, varied, single;
  for (int i = 0; i < 300; ++i) {
    std::string id = "evt_";
    for (int k = 0; k < 26; ++k) id.push_back(base32[rng() % 32]);
    ids.push_back(id);
    dict.push_back("model-" + std::to_string((i * 7) % 13));
    runs.push_back("acct_" + std::to_string(100 + i / 50));
    std::string b = "x";
    for (int k = 0; k < 12; ++k) b.push_back(static_cast<char>(rng()));
    binary.push_back(b);
    varied.push_back("reason " + std::to_string(i * 7919) + "!");
  }
  single.push_back("only");
  const std::vector<std::vector<std::string>> columns = {ids,    dict,   runs, single,
                                                         binary, varied, ids};
  StringColumn shared;
  std::set<segment::Encoding> seen;
  for (const std::vector<std::string>& values : columns) {
    std::vector<std::string_view> views(values.begin(), values.end());
    std::vector<uint8_t> nulls(values.size(), 0);
    nulls[values.size() - 1] = values.size() > 1;
    std::string body;
    const segment::Encoding enc = segment::EncodeStringColumn(views, nulls, &body);
    seen.insert(enc);
    ASSERT_TRUE(segment::DecodeStringColumn(enc, body, values.size(), true, &shared));
    ASSERT_EQ(values.size(), shared.codes.size());
    std::set<std::string> distinct;
    for (size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(nulls[i] != 0, shared.IsNull(i)) << i;
      if (nulls[i]) continue;
      EXPECT_EQ(values[i], shared.Get(i)) << i;
      distinct.insert(values[i]);
    }
    EXPECT_LE(distinct.size(), shared.dict.size());
    size_t bytes = 0;
    for (std::string_view v : shared.dict) bytes += v.size();
    EXPECT_EQ(bytes, shared.dict.bytes());
  }
  EXPECT_EQ(5u, seen.size());  // every string encoding took a turn
}

TEST(SegmentEncoding, PrecomputedDictionaryIds) {
  const std::vector<std::string_view> distinct = {"{\"b\":\"2\"}", "{}", "{\"a\":\"1\"}"};
  const std::vector<uint32_t> ids = {0, 0, 1, 2, 2, 2, 1, 0};
  std::vector<std::string_view> views;
  for (uint32_t id : ids) views.push_back(distinct[id]);
  segment::StringColumnEncoder encoder;
  segment::StringColumnInput in;
  in.values = views.data();
  in.n = views.size();
  in.ids = ids.data();
  in.distinct = distinct.data();
  in.distinct_count = distinct.size();
  std::string body;
  const segment::Encoding enc = encoder.Encode(in, &body);
  StringColumn col;
  ASSERT_TRUE(segment::DecodeStringColumn(enc, body, views.size(), false, &col));
  EXPECT_EQ((std::vector<std::string>{"{\"a\":\"1\"}", "{\"b\":\"2\"}", "{}"}),
            std::vector<std::string>(col.dict.begin(), col.dict.end()));
  for (size_t i = 0; i < views.size(); ++i) EXPECT_EQ(views[i], col.Get(i));
}

TEST(SegmentEncoding, FixedAlphabetEveryWidth) {
  // Alphabets of 2..128 symbols (widths 1..7, grouped and ungrouped packing) with nulls.
  std::mt19937 rng(9);
  for (int alphabet : {2, 3, 16, 17, 32, 33, 64, 65, 128}) {
    std::vector<std::string> values;
    std::vector<uint8_t> nulls;
    for (int i = 0; i < 150; ++i) {
      std::string s = "id_";
      for (int k = 0; k < 29; ++k) s.push_back(static_cast<char>(' ' + rng() % alphabet));
      values.push_back(s);
      nulls.push_back(i % 50 == 7);
    }
    segment::Encoding enc;
    RoundTripStrings(values, nulls, &enc);
    EXPECT_EQ(segment::Encoding::kStringFixedAlphabet, enc) << alphabet;
  }
}

// Packed symbols beyond the alphabet (3 symbols take 2 bits, so code 3 is representable) are a
// malformed body, wherever they fall in a value.
TEST(SegmentEncoding, FixedAlphabetSymbolBeyondAlphabetIsMalformed) {
  std::mt19937 rng(5);
  std::vector<std::string> values;
  for (int i = 0; i < 150; ++i) {
    std::string s = "id_";
    for (int k = 0; k < 28; ++k) s.push_back(static_cast<char>('a' + rng() % 3));
    values.push_back(s);
  }
  std::vector<std::string_view> views(values.begin(), values.end());
  std::string body;
  const segment::Encoding enc = segment::EncodeStringColumn(views, {}, &body);
  ASSERT_EQ(segment::Encoding::kStringFixedAlphabet, enc);
  StringColumn col;
  // 150 * 28 symbols of 2 bits end exactly with the body's last byte.
  std::string valid = body;
  valid.back() = 0;  // four symbols 'a'
  ASSERT_TRUE(segment::DecodeStringColumn(enc, valid, values.size(), false, &col));
  EXPECT_EQ("id_" + values.back().substr(3, 24) + "aaaa", col.Get(values.size() - 1));
  for (char last : {'\xff', '\x03', '\xc0'}) {
    std::string bad = body;
    bad.back() = last;
    EXPECT_FALSE(segment::DecodeStringColumn(enc, bad, values.size(), false, &col));
  }
  std::string first = body;
  first[first.size() - 150 * 28 * 2 / 8] = '\x03';  // the first value's first symbol
  EXPECT_FALSE(segment::DecodeStringColumn(enc, first, values.size(), false, &col));
}

// ---- dimensions, names, partitions ------------------------------------------------------------

TEST(SegmentDims, CanonicalFormAndParse) {
  using segment::Dimensions;
  EXPECT_EQ("{}", segment::CanonicalDimensionsString({}));
  EXPECT_EQ(
      R"({"agent":"support-agent","provider":"anthropic"})",
      segment::CanonicalDimensionsString({{"provider", "anthropic"}, {"agent", "support-agent"}}));
  EXPECT_EQ("{\"k\":\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f/\xc3\xa9\"}",
            segment::CanonicalDimensionsString({{"k", "\"\\\b\f\n\r\t\x01\x1f/\xc3\xa9"}}));
  Dimensions parsed;
  const Dimensions dims = {{"a", "\x00\x02 x"}, {"b", "\"quoted\""}, {"c", ""}};
  Dimensions with_nul = dims;
  with_nul[0].second = std::string("\0\x02 x", 4);
  ASSERT_TRUE(segment::ParseCanonicalDimensionsString(segment::CanonicalDimensionsString(with_nul),
                                                      &parsed));
  EXPECT_EQ(with_nul, parsed);
  for (const char* bad : {"", "{", "}", "{\"a\"}", "{\"a\":1}", "{\"b\":\"x\",\"a\":\"y\"}",
                          "{\"a\":\"x\",\"a\":\"y\"}", "{\"a\":\"x\"} ", "{\"a\":\"\\u0041\"}",
                          "{\"a\":\"\\n\\u000a\"}", "{\"a\":\"\\u00A1\"}", "{\"a\":\"x\",}",
                          "{\"a\":\"\\q\"}", "{\"a\":\"\x01\"}"}) {
    EXPECT_FALSE(segment::ParseCanonicalDimensionsString(bad, &parsed)) << bad;
  }
}

TEST(SegmentDims, DictionaryBuildsEachCanonicalStringOnce) {
  using segment::Dimensions;
  segment::DimensionsDictionary dict;
  const Dimensions a = {{"provider", "anthropic"}, {"region", "eu"}};
  const Dimensions a_again = a;
  const Dimensions a_reordered = {{"region", "eu"}, {"provider", "anthropic"}};
  const Dimensions b = {{"provider", "anthropic"}, {"region", "e\"u"}};
  const Dimensions empty;
  const Dimensions longer = {{"k", std::string(100, 'x')}, {"k2", std::string("\0\x01", 2)}};
  EXPECT_EQ(0u, dict.Add(a));
  EXPECT_EQ(0u, dict.Add(a_again));
  EXPECT_EQ(0u, dict.Add(a_reordered));
  EXPECT_EQ(1u, dict.Add(b));
  EXPECT_EQ(2u, dict.Add(empty));
  EXPECT_EQ(3u, dict.Add(longer));
  EXPECT_EQ(0u, dict.Add(a));
  ASSERT_EQ(4u, dict.size());
  EXPECT_EQ(segment::CanonicalDimensionsString(a), dict.canonical(0));
  EXPECT_EQ(segment::CanonicalDimensionsString(b), dict.canonical(1));
  EXPECT_EQ("{}", dict.canonical(2));
  EXPECT_EQ(segment::CanonicalDimensionsString(longer), dict.canonical(3));
  dict.Clear();
  EXPECT_EQ(0u, dict.size());
  EXPECT_EQ(0u, dict.Add(b));
  EXPECT_EQ(segment::CanonicalDimensionsString(b), dict.canonical(0));
  // Many sets: the tables grow.
  std::vector<Dimensions> many;
  for (int i = 0; i < 3000; ++i) many.push_back({{"agent", "agent-" + std::to_string(i)}});
  for (int rep = 0; rep < 2; ++rep) {
    for (int i = 0; i < 3000; ++i) ASSERT_EQ(static_cast<uint32_t>(i + 1), dict.Add(many[i]));
  }
  EXPECT_EQ(segment::CanonicalDimensionsString(many[2999]), dict.canonical(3000));
}

// Encodes rows' dimensions as the writer does (dictionary ids, then the column encoder) and
// decodes them; returns the encoding used.
segment::Encoding DimensionsRoundTrip(const std::vector<segment::Dimensions>& rows,
                                      std::string* body, std::vector<std::string>* decoded) {
  segment::DimensionsDictionary dict;
  std::vector<uint32_t> ids;
  for (const auto& d : rows) ids.push_back(dict.Add(d));
  std::vector<std::string_view> distinct, values;
  for (uint32_t k = 0; k < dict.size(); ++k) distinct.push_back(dict.canonical(k));
  for (uint32_t id : ids) values.push_back(distinct[id]);
  segment::StringColumnInput in;
  in.values = values.data();
  in.n = rows.size();
  in.ids = ids.data();
  in.distinct = distinct.data();
  in.distinct_count = distinct.size();
  segment::StringColumnEncoder strings;
  segment::DimensionsColumnEncoder encoder;
  body->clear();
  const segment::Encoding e = encoder.Encode(in, &strings, body);
  StringColumn col;
  const bool ok = e == segment::Encoding::kDimensionsByKey
                      ? segment::DecodeDimensionsByKey(*body, rows.size(), &col)
                      : segment::DecodeStringColumn(e, *body, rows.size(), false, &col);
  EXPECT_TRUE(ok);
  decoded->clear();
  for (size_t i = 0; ok && i < rows.size(); ++i) decoded->emplace_back(col.Get(i));
  for (size_t i = 0; ok && i < rows.size(); ++i) {
    std::string row;
    bool is_null = false;
    EXPECT_TRUE(e == segment::Encoding::kDimensionsByKey
                    ? segment::DecodeDimensionsByKeyRow(*body, rows.size(), i, &row)
                    : segment::DecodeStringRow(e, *body, rows.size(), false, i, &is_null, &row));
    EXPECT_EQ(col.Get(i), row) << i;
  }
  return e;
}

TEST(SegmentDims, ByKeyRoundTripsCanonicalStrings) {
  using segment::Dimensions;
  std::mt19937 rng(3);
  std::vector<Dimensions> rows;
  for (int i = 0; i < 3000; ++i) {
    Dimensions d;
    if (i % 4 == 0) d.emplace_back("agent", "agent-" + std::to_string(rng() % 12));
    d.emplace_back("provider", i % 3 ? "anthropic" : "openai");
    d.emplace_back("region", "r" + std::to_string(rng() % 7));
    if (i % 10 == 3) d.emplace_back("tool", std::string("q\"\\\x01\0", 5));
    if (i % 50 == 7) d.clear();
    if (i % 9 == 0) std::reverse(d.begin(), d.end());  // input order does not matter
    rows.push_back(d);
  }
  std::string body;
  std::vector<std::string> decoded;
  ASSERT_EQ(segment::Encoding::kDimensionsByKey, DimensionsRoundTrip(rows, &body, &decoded));
  ASSERT_EQ(rows.size(), decoded.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(segment::CanonicalDimensionsString(rows[i]), decoded[i]) << i;
  }
  // Malformed bodies: every truncation, trailing bytes, and keys out of order.
  StringColumn col;
  for (size_t cut = 0; cut < body.size(); cut += 1 + cut / 16) {
    EXPECT_FALSE(segment::DecodeDimensionsByKey(body.substr(0, cut), rows.size(), &col)) << cut;
  }
  EXPECT_FALSE(segment::DecodeDimensionsByKey(body + "x", rows.size(), &col));
  std::string swapped;
  PutVarint64(&swapped, 2);
  PutLengthPrefixed(&swapped, "b");
  PutLengthPrefixed(&swapped, "a");
  EXPECT_FALSE(segment::DecodeDimensionsByKey(swapped, rows.size(), &col));
  std::string none;
  PutVarint64(&none, 0);
  EXPECT_FALSE(segment::DecodeDimensionsByKey(none, rows.size(), &col));

  // Only empty sets, one set, and more keys than the by-key limit: whole strings, exact.
  for (const auto& shape : std::vector<std::vector<Dimensions>>{
           std::vector<Dimensions>(5),
           std::vector<Dimensions>(4, Dimensions{{"k", "v"}}),
       }) {
    DimensionsRoundTrip(shape, &body, &decoded);
    for (size_t i = 0; i < shape.size(); ++i) {
      EXPECT_EQ(segment::CanonicalDimensionsString(shape[i]), decoded[i]);
    }
  }
  std::vector<Dimensions> wide;
  for (size_t i = 0; i < segment::kMaxDimensionsByKeyKeys + 5; ++i) {
    wide.push_back({{"key" + std::to_string(i), "v"}, {"common", std::to_string(i % 3)}});
  }
  EXPECT_NE(segment::Encoding::kDimensionsByKey, DimensionsRoundTrip(wide, &body, &decoded));
  for (size_t i = 0; i < wide.size(); ++i) {
    EXPECT_EQ(segment::CanonicalDimensionsString(wide[i]), decoded[i]);
  }
}

// The flush's path (sets as encoded record pairs, per-key dictionaries from the sets) writes
// the same bytes as the canonical-string path for every shape: few sets (whole strings
// compared), many, escapes, empty sets, mostly distinct per-key values, long varints.
TEST(SegmentDims, ViewPathWritesTheSameBytesAsCanonicalPath) {
  using segment::Dimensions;
  std::mt19937 rng(11);
  auto encode_record = [](const Dimensions& d, bool long_varints, std::string* out) {
    auto put_len = [&](size_t n) {
      if (long_varints) {  // a non-minimal two-byte varint
        out->push_back(static_cast<char>((n & 0x7f) | 0x80));
        out->push_back(static_cast<char>(n >> 7));
      } else {
        PutVarint64(out, n);
      }
    };
    for (const auto& [k, v] : d) {
      put_len(k.size());
      out->append(k);
      put_len(v.size());
      out->append(v);
    }
  };
  std::vector<std::vector<Dimensions>> shapes;
  for (size_t rows : {1, 5, 63, 64, 200, 3000}) {
    for (int variety : {1, 3, 12, 40, 100000}) {
      std::vector<Dimensions> block;
      for (size_t i = 0; i < rows; ++i) {
        Dimensions d;
        const uint32_t x = rng() % variety;
        if (x % 4 == 0) d.emplace_back("agent", "agent-" + std::to_string(x));
        if (x % 7 != 3) d.emplace_back("provider", x % 2 ? "anthropic" : "openai");
        d.emplace_back("region", "r" + std::to_string(x % 5));
        if (x % 10 == 3) d.emplace_back("tool", std::string("q\"\\\x01\0", 5));
        if (x % 50 == 7) d.clear();
        block.push_back(d);
      }
      shapes.push_back(block);
    }
  }
  shapes.push_back(std::vector<Dimensions>(70));  // only empty sets
  std::vector<Dimensions> wide;
  for (size_t i = 0; i < segment::kMaxDimensionsByKeyKeys + 5; ++i) {
    wide.push_back({{"common", std::to_string(i % 3)}, {"key" + std::to_string(i), "v"}});
  }
  shapes.push_back(wide);
  for (size_t s = 0; s < shapes.size(); ++s) {
    const std::vector<Dimensions>& rows = shapes[s];
    std::string expected;
    std::vector<std::string> decoded;
    const segment::Encoding want = DimensionsRoundTrip(rows, &expected, &decoded);
    for (int mode = 0; mode < 3; ++mode) {  // minimal, every other set long, all long
      std::vector<std::string> records(rows.size());
      segment::DimensionsDictionary dict;
      std::vector<uint32_t> ids;
      for (size_t i = 0; i < rows.size(); ++i) {
        encode_record(rows[i], mode == 2 || (mode == 1 && i % 2 == 1), &records[i]);
        ids.push_back(dict.Add(DimensionsView(records[i], static_cast<uint32_t>(rows[i].size()))));
      }
      segment::StringColumnEncoder strings;
      segment::DimensionsColumnEncoder encoder;
      std::string body = "prefix";
      EXPECT_EQ(want, encoder.Encode(&dict, ids.data(), ids.size(), &strings, &body))
          << s << " " << mode;
      EXPECT_EQ("prefix" + expected, body) << s << " " << mode;
      dict.BuildCanonical();
      for (size_t i = 0; i < rows.size(); ++i) {
        ASSERT_EQ(segment::CanonicalDimensionsString(rows[i]), dict.canonical(ids[i]));
      }
    }
  }
}

// Ids handed over with ids_from_values give the body the encoder's own dictionary pass gives,
// at every distinct ratio around its early stop (half of the non-null values) and with nulls.
TEST(SegmentStrings, IdsFromValuesWriteTheSameBytes) {
  std::mt19937 rng(5);
  for (size_t n : {1, 10, 63, 64, 65, 128, 1000}) {
    for (size_t variety : {1, 2, 7, 31, 32, 33, 64, 65, 500, 100000}) {
      for (int null_every : {0, 2, 5}) {
        std::vector<std::string> storage(n);
        std::vector<std::string_view> values(n);
        std::vector<uint8_t> nulls(n, 0);
        std::vector<std::string_view> distinct;
        std::vector<uint32_t> ids(n, 0);
        std::map<std::string, uint32_t> seen;
        for (size_t i = 0; i < n; ++i) storage[i] = "v" + std::to_string(rng() % variety);
        for (size_t i = 0; i < n; ++i) {
          values[i] = storage[i];
          if (null_every > 0 && rng() % null_every == 0) {
            nulls[i] = 1;
            continue;
          }
          auto [it, inserted] = seen.emplace(storage[i], static_cast<uint32_t>(distinct.size()));
          if (inserted) distinct.push_back(values[i]);
          ids[i] = it->second;
        }
        segment::StringColumnEncoder encoder;
        segment::StringColumnInput in;
        in.values = values.data();
        in.nulls = nulls.data();
        in.n = n;
        std::string want, got;
        const segment::Encoding e = encoder.Encode(in, &want);
        in.ids = ids.data();
        in.distinct = distinct.data();
        in.distinct_count = distinct.size();
        in.ids_from_values = true;
        EXPECT_EQ(e, encoder.Encode(in, &got)) << n << " " << variety << " " << null_every;
        EXPECT_EQ(want, got) << n << " " << variety << " " << null_every;
      }
    }
  }
}

TEST(SegmentInts, SortInt64MatchesStdSort) {
  std::mt19937_64 rng(9);
  for (size_t n : {0, 1, 2, 511, 512, 513, 4000}) {
    for (int bits : {0, 1, 5, 11, 12, 22, 23, 33, 44, 45, 63, 64}) {
      std::vector<int64_t> a(n);
      const int64_t base = static_cast<int64_t>(rng());
      for (auto& x : a) {
        const uint64_t r = bits == 64 ? rng() : rng() & ((uint64_t{1} << bits) - 1);
        x = static_cast<int64_t>(static_cast<uint64_t>(base) + r);  // may wrap: any int64
      }
      std::vector<int64_t> want = a;
      std::sort(want.begin(), want.end());
      segment::SortInt64(&a);
      EXPECT_EQ(want, a) << n << " " << bits;
    }
  }
}

TEST(SegmentNames, FileNameRoundTrip) {
  EXPECT_EQ("000000000042.useg", SegmentFileName(42));
  uint64_t n = 0;
  EXPECT_TRUE(ParseSegmentFileName("000000000042.useg", &n));
  EXPECT_EQ(42u, n);
  EXPECT_TRUE(ParseSegmentFileName(SegmentFileName(UINT64_MAX), &n));
  EXPECT_EQ(UINT64_MAX, n);
  for (const char* bad : {"42.useg", "000000000042.usegx", "000000000042.log", "0000000000042.useg",
                          "00000000004a.useg", "000000000042.useg.tmp", ""}) {
    EXPECT_FALSE(ParseSegmentFileName(bad, &n)) << bad;
  }
}

TEST(SegmentPartition, MonthsSinceEpochNegativeSafe) {
  EXPECT_EQ(0, MonthPartition(0));
  EXPECT_EQ(0, MonthPartition(31 * kDayMs - 1));
  EXPECT_EQ(1, MonthPartition(31 * kDayMs));
  EXPECT_EQ(-1, MonthPartition(-1));
  EXPECT_EQ(-1, MonthPartition(-31 * kDayMs));
  EXPECT_EQ(-2, MonthPartition(-31 * kDayMs - 1));
  EXPECT_EQ((2024 - 1970) * 12 + 4, MonthPartition(kMay2024Ms));
  EXPECT_EQ((2024 - 1970) * 12 + 3, MonthPartition(kMay2024Ms - 1));
  EXPECT_EQ((2024 - 1970) * 12 + 1, MonthPartition(1709164800000));   // 2024-02-29
  EXPECT_EQ((1969 - 1970) * 12 + 11, MonthPartition(-86400000));      // 1969-12-31
  EXPECT_EQ((1900 - 1970) * 12 + 2, MonthPartition(-2203891200000));  // 1900-03-01
}

// ---- property ----------------------------------------------------------------------------------

rc::Gen<std::string> AnyString(int max_len) {
  return rc::gen::mapcat(rc::gen::inRange(0, max_len + 1), [](int len) {
    return rc::gen::container<std::string>(static_cast<size_t>(len), rc::gen::arbitrary<char>());
  });
}

rc::Gen<std::string> SmallSet(std::vector<std::string> values) {
  return rc::gen::elementOf(std::move(values));
}

rc::Gen<Event> ArbitraryEvent() {
  return rc::gen::exec([] {
    Event e;
    e.event_id = *rc::gen::oneOf(AnyString(40), SmallSet({"evt_a", "evt_b", "evt_aaaaaaaa"}));
    e.kind = static_cast<EventKind>(*rc::gen::inRange(0, 3));
    e.has_correction_ref = e.kind != EventKind::kUsage;
    if (e.has_correction_ref) {
      e.correction_original_event_id = *AnyString(20);
      e.correction_reason = *AnyString(30);
    }
    e.account_id = *rc::gen::oneOf(SmallSet({"a", "b", "acct_1"}), AnyString(10));
    if (*rc::gen::arbitrary<bool>()) e.subscription_id = *AnyString(8);
    e.product_id = *SmallSet({"chat", "agents", "p"});
    e.meter_id = *rc::gen::oneOf(SmallSet({"tokens.input", "tool.calls"}), AnyString(6));
    if (*rc::gen::arbitrary<bool>()) e.model_id = *SmallSet({"m1", "m2", ""});
    e.timestamp_ms = kMay2024Ms + *rc::gen::inRange<int64_t>(0, 31 * kDayMs);
    const auto magnitude = *rc::gen::oneOf(
        rc::gen::just(static_cast<__int128>(kMaxQuantity)),
        rc::gen::map(rc::gen::arbitrary<int64_t>(), [](int64_t v) { return __int128{v}; }),
        rc::gen::map(rc::gen::arbitrary<uint64_t>(),
                     [](uint64_t v) { return static_cast<__int128>(v) * 1000000007 * 1000; }),
        rc::gen::map(rc::gen::inRange(0, 100), [](int v) { return __int128{v}; }));
    e.quantity = *rc::gen::arbitrary<bool>() ? magnitude : -magnitude;
    e.unit = *SmallSet({"token", "request"});
    e.source = *AnyString(5);
    std::map<std::string, std::string> dims;
    const int ndims = *rc::gen::inRange(0, 5);
    for (int i = 0; i < ndims; ++i) dims[*AnyString(6)] = *AnyString(12);
    e.dimensions.assign(dims.begin(), dims.end());
    e.ingested_at_ms = *rc::gen::arbitrary<int64_t>();
    e.commit_seq = *rc::gen::arbitrary<uint64_t>();
    return e;
  });
}

RC_GTEST_PROP(SegmentProperty, RandomEventsRoundTripExactly, ()) {
  auto events = *rc::gen::resize(
      60, rc::gen::nonEmpty(rc::gen::container<std::vector<Event>>(ArbitraryEvent())));
  std::sort(events.begin(), events.end(), BillingLess);
  const uint32_t rows_per_block = *rc::gen::inRange<uint32_t>(1, 20);
  static MemFileSystem mem_fs;
  FileSystem* fs = &mem_fs;
  const std::string path = "prop/" + SegmentFileName(1);
  SegmentInfo info;
  info.partition = MonthPartition(kMay2024Ms);
  SegmentWriterOptions options;
  options.rows_per_block = rows_per_block;
  const Status written = WriteSegment(fs, path, Pointers(events), options, &info);
  std::vector<Event> got;
  Status read = written;
  if (read.ok()) {
    auto reader = SegmentReader::Open(fs, path);
    read = reader.status();
    DecodedBlock block;
    for (size_t b = 0; read.ok() && b < (*reader)->num_blocks(); ++b) {
      read = (*reader)->ReadBlock(b, kAllColumns, &block);
      for (size_t r = 0; read.ok() && r < block.rows; ++r) {
        read = block.MaterializeRow(r, &got.emplace_back());
      }
    }
  }
  fs->RemoveFile(path).IgnoreError();
  RC_ASSERT(written.ok());
  RC_ASSERT(read.ok());
  RC_ASSERT(events == got);
}

}  // namespace
}  // namespace usagedb
