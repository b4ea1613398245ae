// ExportParquet (include/usagedb/export.h) over a real database: round trips through our own
// footer/page reader, point-in-time semantics, filters, the partitioned tree, atomicity and
// failures. Independent readers (DuckDB, parquet-wasm) check CLI exports in tests/js.
#include "usagedb/export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "export/parquet_format.h"
#include "export/parquet_test_reader.h"
#include "export/parquet_thrift.h"
#include "io/file_system.h"
#include "usagedb/db.h"
#include "util/clock.h"
#include "util/int128.h"
#include "util/time_util.h"

namespace usagedb {
namespace {

using parquet::MiniReader;
using parquet::Values;
namespace pf = parquet::pf;

// 2026-07-01T00:00:00Z: "now" of the manual clock (after every event time used here).
constexpr int64_t kNowMs = 1782864000000;
constexpr int64_t kDayMs = 86'400'000;
// 2026-05-01T00:00:00Z.
constexpr int64_t kMay1 = 1777593600000;

Event MakeEvent(const std::string& id, const std::string& account, __int128 quantity,
                int64_t timestamp_ms) {
  Event e;
  e.event_id = id;
  e.account_id = account;
  e.product_id = "ai_gateway";
  e.meter_id = "tokens.input";
  e.model_id = "model-a";
  e.timestamp_ms = timestamp_ms;
  e.quantity = quantity;
  e.unit = "token";
  e.source = "collector-1";
  e.dimensions = {{"provider", "anthropic"}, {"region", "eu\n\"x\""}};
  return e;
}

class ExportTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::TempDir() + "/export_test." + std::to_string(getpid()) + "." +
            testing::UnitTest::GetInstance()->current_test_info()->name();
    RemoveTree(root_);
    ASSERT_TRUE(fs_->CreateDirs(root_ + "/out").ok());
    Open();
  }
  void TearDown() override {
    if (db_) db_->Close().IgnoreError();
    db_.reset();
    RemoveTree(root_);
  }

  void Open() {
    Options o;
    o.clock = &clock_;
    o.background_flush = false;
    auto db = DB::Open(o, root_ + "/db");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
  }
  void Reopen() {
    ASSERT_TRUE(db_->Close().ok());
    db_.reset();
    Open();
  }

  void RemoveTree(const std::string& path) {
    auto names = fs_->ListDir(path);
    if (!names.ok()) {
      fs_->RemoveFile(path).IgnoreError();
      return;
    }
    for (const auto& n : *names) RemoveTree(JoinPath(path, n));
    fs_->RemoveDir(path).IgnoreError();
  }

  void Ingest(std::vector<Event> events) {
    IngestResult r;
    const size_t n = events.size();
    Status s = db_->Ingest(std::move(events), &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::string why;
    for (const EventResult& er : r.results) {
      if (er.outcome != Outcome::kAccepted && why.empty()) why = er.event_id + ": " + er.reason;
    }
    ASSERT_EQ(n, r.accepted) << why;
  }

  // `n` events over `days` days from May 1 (one per `kDayMs / per_day`), accounts a0..a4,
  // quantities with negative corrections-like values and both extremes.
  std::vector<Event> Events(int n, const std::string& prefix, int days = 3) {
    std::vector<Event> v;
    for (int i = 0; i < n; i++) {
      __int128 q = i % 7 == 3 ? -static_cast<__int128>(i) : i;
      if (i == 1) q = kMaxQuantity;
      if (i == 2) q = -kMaxQuantity;
      Event e = MakeEvent(prefix + std::to_string(i), "a" + std::to_string(i % 5), q,
                          kMay1 + (i % days) * kDayMs + i * 1000);
      if (q < 0) {  // a negative adjustment is a correction of an earlier event
        e.kind = EventKind::kCorrection;
        e.has_correction_ref = true;
        e.correction_original_event_id = prefix + "0";
        e.correction_reason = "fix";
      }
      if (i % 4 == 0) e.model_id.reset();
      if (i % 3 == 0) e.subscription_id = "sub_" + std::to_string(i % 5);
      v.push_back(std::move(e));
    }
    return v;
  }

  std::string Out(const std::string& name) { return root_ + "/out/" + name; }

  Status Export(ExportOptions o, ExportSummary* s) { return ExportParquet(db_.get(), o, s); }
  ExportOptions Opt(const std::string& name) {
    ExportOptions o;
    o.output_path = Out(name);
    o.clock = &clock_;
    return o;
  }

  // Every (event_id → quantity) of a file, via our footer reader and page decoder; checks
  // that the footer's row counts add up.
  std::map<std::string, std::string> ReadIdsAndQuantities(const std::string& path,
                                                          size_t* row_groups = nullptr) {
    std::map<std::string, std::string> out;
    auto meta = parquet::ReadParquetFooter(fs_, path);
    EXPECT_TRUE(meta.ok()) << meta.status().ToString();
    if (!meta.ok()) return out;
    std::string bytes;
    EXPECT_TRUE(fs_->ReadFileToString(path, &bytes).ok());
    MiniReader reader(bytes);
    int64_t rows = 0;
    for (const pf::RowGroup& rg : meta->row_groups) {
      Values ids = reader.ReadColumn(rg.columns[parquet::kColEventId],
                                     parquet::kColumns[parquet::kColEventId]);
      Values qs = reader.ReadColumn(rg.columns[parquet::kColQuantity],
                                    parquet::kColumns[parquet::kColQuantity]);
      EXPECT_EQ(static_cast<size_t>(rg.num_rows), ids.size());
      EXPECT_EQ(ids.size(), qs.size());
      for (size_t i = 0; i < ids.size() && i < qs.size(); i++) {
        EXPECT_TRUE(ids[i] && qs[i]);
        EXPECT_TRUE(out.emplace(ids[i].value_or(""), qs[i].value_or("")).second)
            << "duplicate " << ids[i].value_or("");
      }
      rows += rg.num_rows;
    }
    EXPECT_EQ(meta->num_rows, rows);
    if (row_groups) *row_groups = meta->row_groups.size();
    return out;
  }

  // The same from the raw audit API.
  std::map<std::string, std::string> ScanIdsAndQuantities(const ReadFilter& f) {
    std::map<std::string, std::string> out;
    Status s = db_->ScanEvents(f, [&](const Event& e) {
      out.emplace(e.event_id, Int128ToString(e.quantity));
      return true;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  std::vector<std::string> List(const std::string& dir) {
    auto names = fs_->ListDir(dir);
    if (!names.ok()) return {};
    std::sort(names->begin(), names->end());
    return *names;
  }

  FileSystem* fs_ = FileSystem::Default();
  ManualClock clock_{kNowMs};
  std::string root_;
  std::unique_ptr<DB> db_;
};

TEST_F(ExportTest, RoundTripThroughOurReaderWithSeveralRowGroups) {
  Ingest(Events(500, "e"));
  ASSERT_TRUE(db_->Flush().ok());
  Ingest(Events(300, "f"));  // unflushed: still in the memtable
  ExportOptions o = Opt("all.parquet");
  o.rows_per_row_group = 128;
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  EXPECT_EQ(800u, s.events);
  EXPECT_EQ(1u, s.files);
  EXPECT_GE(s.segments_read, 1u);
  EXPECT_EQ(db_->LastSequence(), s.snapshot_sequence);
  auto size = fs_->FileSize(o.output_path);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, s.bytes_written);
  size_t groups = 0;
  auto got = ReadIdsAndQuantities(o.output_path, &groups);
  EXPECT_GE(groups, 7u);
  EXPECT_EQ(ScanIdsAndQuantities(ReadFilter()), got);
  EXPECT_EQ(Int128ToString(kMaxQuantity), got["e1"]);
  EXPECT_EQ(Int128ToString(-kMaxQuantity), got["e2"]);
  EXPECT_EQ("-3", got["e3"]);
  // Nothing but OUT in the output directory (temporary renamed away).
  EXPECT_EQ(std::vector<std::string>{"all.parquet"}, List(root_ + "/out"));
}

TEST_F(ExportTest, EveryColumnOfOneEventRoundTrips) {
  Event c = MakeEvent("corr-1", "acct-é", -42, kMay1 + 5);
  c.kind = EventKind::kCorrection;
  c.has_correction_ref = true;
  c.correction_original_event_id = "orig-1";
  c.correction_reason = "";
  c.subscription_id = "sub-1";
  c.model_id.reset();
  c.dimensions = {{"a", "\x01"}, {"b", "\\"}};
  Ingest({MakeEvent("orig-1", "acct-é", 100, kMay1), c});
  ExportOptions o = Opt("one.parquet");
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  auto meta = parquet::ReadParquetFooter(fs_, o.output_path);
  ASSERT_TRUE(meta.ok());
  ASSERT_EQ(1u, meta->row_groups.size());
  std::string bytes;
  ASSERT_TRUE(fs_->ReadFileToString(o.output_path, &bytes).ok());
  MiniReader reader(bytes);
  std::vector<Values> cols;
  for (int i = 0; i < parquet::kNumColumns; i++) {
    cols.push_back(reader.ReadColumn(meta->row_groups[0].columns[i], parquet::kColumns[i]));
    ASSERT_EQ(2u, cols.back().size());
  }
  const size_t r = cols[parquet::kColEventId][0] == "corr-1" ? 0 : 1;
  auto v = [&](int col) { return cols[col][r]; };
  EXPECT_EQ("Correction", v(parquet::kColKind));
  EXPECT_EQ("orig-1", v(parquet::kColCorrectionOriginalEventId));
  EXPECT_EQ("", v(parquet::kColCorrectionReason));  // present but empty, not null
  EXPECT_EQ("acct-é", v(parquet::kColAccountId));
  EXPECT_EQ("sub-1", v(parquet::kColSubscriptionId));
  EXPECT_EQ(std::nullopt, v(parquet::kColModelId));
  EXPECT_EQ(std::to_string(kMay1 + 5), v(parquet::kColTimestampMs));
  EXPECT_EQ("-42", v(parquet::kColQuantity));
  EXPECT_EQ(R"({"a":"\u0001","b":"\\"})", v(parquet::kColDimensionsCanonical));
  EXPECT_EQ(std::to_string(kNowMs), v(parquet::kColIngestedAtMs));
  // The usage event: no correction_ref means both correction columns are null.
  EXPECT_EQ(std::nullopt, cols[parquet::kColCorrectionReason][1 - r]);
  EXPECT_EQ(std::nullopt, cols[parquet::kColCorrectionOriginalEventId][1 - r]);
}

TEST_F(ExportTest, EventsAcknowledgedAfterTheSnapshotAreAbsent) {
  Ingest(Events(200, "before"));
  ASSERT_TRUE(db_->Flush().ok());
  Ingest(Events(50, "unflushed"));
  const uint64_t seq_before = db_->LastSequence();
  ExportOptions o = Opt("pit.parquet");
  bool ingested_during = false;
  o.progress = [&](const ExportProgress&) {
    if (ingested_during) return;
    ingested_during = true;  // the snapshot is open by now: these must not appear
    std::vector<Event> late = Events(30, "late");
    IngestResult r;
    Status st = db_->Ingest(std::move(late), &r);
    EXPECT_TRUE(st.ok() && r.accepted == 30) << st.ToString();
  };
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  ASSERT_TRUE(ingested_during);
  EXPECT_EQ(seq_before, s.snapshot_sequence);
  EXPECT_GT(db_->LastSequence(), seq_before);
  auto got = ReadIdsAndQuantities(o.output_path);
  EXPECT_EQ(250u, got.size());
  EXPECT_EQ(1u, got.count("unflushed49"));
  for (const auto& [id, q] : got) EXPECT_NE(0u, id.rfind("late", 0)) << id;
  ReadFilter f;
  f.as_of_seq = seq_before;
  EXPECT_EQ(ScanIdsAndQuantities(f), got);
}

TEST_F(ExportTest, AsOfSequenceExportsAnEarlierMoment) {
  Ingest(Events(40, "a"));
  const uint64_t s1 = db_->LastSequence();
  Ingest(Events(40, "b"));
  ExportOptions o = Opt("asof.parquet");
  o.as_of_seq = s1;
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  EXPECT_EQ(s1, s.snapshot_sequence);
  auto got = ReadIdsAndQuantities(o.output_path);
  EXPECT_EQ(40u, got.size());
  EXPECT_EQ(1u, got.count("a39"));
  EXPECT_EQ(0u, got.count("b0"));
}

TEST_F(ExportTest, AsOfMsKeepsEventsIngestedAtOrBeforeIt) {
  Ingest(Events(30, "a"));  // ingested at kNowMs
  clock_.AdvanceMs(1000);
  Ingest(Events(30, "b"));  // kNowMs + 1000
  clock_.AdvanceMs(1000);
  ExportOptions o = Opt("asofms.parquet");
  o.as_of_ms = kNowMs;
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  auto got = ReadIdsAndQuantities(o.output_path);
  EXPECT_EQ(30u, got.size());
  EXPECT_EQ(0u, got.count("b0"));
  EXPECT_EQ(30u, s.events);
}

TEST_F(ExportTest, AsOfMsInTheFutureOrBothAsOfAreInvalid) {
  Ingest(Events(3, "a"));
  ExportOptions o = Opt("bad.parquet");
  o.as_of_ms = kNowMs + 1;
  ExportSummary s;
  EXPECT_TRUE(Export(o, &s).IsInvalidArgument());
  o.as_of_ms = kNowMs;
  o.as_of_seq = 1;
  EXPECT_TRUE(Export(o, &s).IsInvalidArgument());
  o.as_of_ms.reset();
  o.as_of_seq = db_->LastSequence() + 1;  // above the latest sequence
  EXPECT_TRUE(Export(o, &s).IsInvalidArgument());
  o.as_of_seq.reset();
  o.from_ms = 10;
  o.to_ms = 5;
  EXPECT_TRUE(Export(o, &s).IsInvalidArgument());
  o = Opt("");
  o.output_path = "";
  EXPECT_TRUE(Export(o, &s).IsInvalidArgument());
  EXPECT_TRUE(List(root_ + "/out").empty());
}

TEST_F(ExportTest, TimeRangeIsHalfOpenAndAccountFilters) {
  Ingest(Events(300, "e", /*days=*/10));
  ASSERT_TRUE(db_->Flush().ok());
  ExportOptions o = Opt("range.parquet");
  o.from_ms = kMay1 + 2 * kDayMs;
  o.to_ms = kMay1 + 5 * kDayMs;
  o.account_id = "a3";
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  ReadFilter f;
  f.from_ms = o.from_ms;
  f.to_ms = o.to_ms;
  f.account_id = "a3";
  auto want = ScanIdsAndQuantities(f);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(want, ReadIdsAndQuantities(o.output_path));
  EXPECT_EQ(want.size(), s.events);
  // An event exactly at to_ms is excluded, one exactly at from_ms included.
  Ingest({MakeEvent("at-from", "a3", 1, *o.from_ms), MakeEvent("at-to", "a3", 1, *o.to_ms)});
  o.output_path = Out("range2.parquet");
  ASSERT_TRUE(Export(o, &s).ok());
  auto got = ReadIdsAndQuantities(o.output_path);
  EXPECT_EQ(1u, got.count("at-from"));
  EXPECT_EQ(0u, got.count("at-to"));
}

TEST_F(ExportTest, PartitionedTreeHasOneDirectoryPerDateWithTheRightRows) {
  std::vector<Event> ev = Events(400, "e", /*days=*/3);
  ev.push_back(MakeEvent("june", "a1", 7, kMay1 + 31 * kDayMs + 5));  // 2026-06-01
  ev.push_back(MakeEvent("april", "a2", -7, kMay1 - 1));              // 2026-04-30
  ev.back().kind = EventKind::kRetraction;
  ev.back().has_correction_ref = true;
  ev.back().correction_original_event_id = "e0";
  Ingest(ev);
  ASSERT_TRUE(db_->Flush().ok());
  Ingest(Events(10, "mem", 1));  // unflushed, 2026-05-01
  ExportOptions o = Opt("tree");
  o.partition_by_date = true;
  o.rows_per_row_group = 50;
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok()) << o.output_path;
  EXPECT_EQ(412u, s.events);
  EXPECT_EQ(5u, s.files);
  const std::vector<std::string> dates = {"date=2026-04-30", "date=2026-05-01", "date=2026-05-02",
                                          "date=2026-05-03", "date=2026-06-01"};
  EXPECT_EQ(dates, List(o.output_path));
  EXPECT_EQ(std::vector<std::string>{"tree"}, List(root_ + "/out"));  // no temporary left
  std::map<std::string, std::string> all;
  uint64_t bytes = 0;
  for (const std::string& d : dates) {
    const std::string dir = JoinPath(o.output_path, d);
    ASSERT_EQ(std::vector<std::string>{"part-00000.parquet"}, List(dir));
    const std::string file = JoinPath(dir, "part-00000.parquet");
    bytes += *fs_->FileSize(file);
    auto rows = ReadIdsAndQuantities(file);
    ReadFilter f;
    auto t = ParseTimeArg(d.substr(5));
    ASSERT_TRUE(t.ok());
    f.from_ms = *t;
    f.to_ms = *t + kDayMs;
    EXPECT_EQ(ScanIdsAndQuantities(f), rows) << d;
    all.insert(rows.begin(), rows.end());
  }
  EXPECT_EQ(s.bytes_written, bytes);
  EXPECT_EQ(ScanIdsAndQuantities(ReadFilter()), all);
  EXPECT_EQ("-7", all["april"]);
}

TEST_F(ExportTest, WriterLimitSplitsADateIntoSeveralPartFiles) {
  Ingest(Events(300, "e", /*days=*/7));  // every account has events on every date
  ExportOptions o = Opt("parts");
  o.partition_by_date = true;
  o.max_open_date_writers = 2;  // seven dates interleaved in billing order: writers rotate
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  EXPECT_EQ(300u, s.events);
  EXPECT_GT(s.files, 7u);
  std::map<std::string, std::string> all;
  for (const std::string& d : List(o.output_path)) {
    std::vector<std::string> parts = List(JoinPath(o.output_path, d));
    ASSERT_FALSE(parts.empty());
    for (size_t i = 0; i < parts.size(); i++) {
      char want[64];
      std::snprintf(want, sizeof(want), "part-%05zu.parquet", i);
      EXPECT_EQ(want, parts[i]);  // numbered densely from 0
      auto rows = ReadIdsAndQuantities(JoinPath(JoinPath(o.output_path, d), parts[i]));
      for (const auto& [id, q] : rows) EXPECT_TRUE(all.emplace(id, q).second) << id;
    }
  }
  EXPECT_EQ(7u, List(o.output_path).size());
  EXPECT_EQ(ScanIdsAndQuantities(ReadFilter()), all);
  o.output_path = Out("bad");
  o.max_open_date_writers = 0;
  EXPECT_TRUE(Export(o, &s).IsInvalidArgument());
}

TEST_F(ExportTest, EmptyDatabaseWritesAValidZeroRowFile) {
  ExportOptions o = Opt("empty.parquet");
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(1u, s.files);
  EXPECT_EQ(0u, s.segments_read);
  auto meta = parquet::ReadParquetFooter(fs_, o.output_path);
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  EXPECT_EQ(0, meta->num_rows);
  EXPECT_TRUE(meta->row_groups.empty());
  EXPECT_EQ(static_cast<size_t>(parquet::kNumColumns + 1), meta->schema.size());
  EXPECT_EQ(*fs_->FileSize(o.output_path), s.bytes_written);
}

TEST_F(ExportTest, NoMatchingEventPartitionedIsAnEmptyDirectory) {
  Ingest(Events(20, "e"));
  ExportOptions o = Opt("emptytree");
  o.partition_by_date = true;
  o.account_id = "nobody";
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(0u, s.files);
  EXPECT_EQ(0u, s.bytes_written);
  auto names = fs_->ListDir(o.output_path);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
}

TEST_F(ExportTest, ExistingOutputIsAlreadyExistsAndUntouched) {
  Ingest(Events(5, "e"));
  ExportOptions o = Opt("exists.parquet");
  ASSERT_TRUE(fs_->WriteFileAtomic(o.output_path, "keep me").ok());
  ExportSummary s;
  Status st = Export(o, &s);
  EXPECT_EQ(StatusCode::kAlreadyExists, st.code()) << st.ToString();
  std::string content;
  ASSERT_TRUE(fs_->ReadFileToString(o.output_path, &content).ok());
  EXPECT_EQ("keep me", content);
  // A directory counts too (partitioned or not).
  o.output_path = Out("dir");
  ASSERT_TRUE(fs_->CreateDir(o.output_path).ok());
  o.partition_by_date = true;
  EXPECT_EQ(StatusCode::kAlreadyExists, Export(o, &s).code());
  EXPECT_EQ((std::vector<std::string>{"dir", "exists.parquet"}), List(root_ + "/out"));
}

// Segment files of the current database, via a snapshot (released on return).
std::vector<std::string> SegmentPaths(DB* db) {
  std::vector<std::string> paths;
  auto snap = db->OpenSnapshot(std::nullopt);
  EXPECT_TRUE(snap.ok());
  if (!snap.ok()) return paths;
  for (const auto& s : (*snap)->segments()) paths.push_back(s.path);
  return paths;
}

TEST_F(ExportTest, CorruptSegmentFailsNamingItAndLeavesNothing) {
  Ingest(Events(2000, "e"));
  ASSERT_TRUE(db_->Flush().ok());
  std::vector<std::string> paths = SegmentPaths(db_.get());
  ASSERT_FALSE(paths.empty());
  ASSERT_NO_FATAL_FAILURE(Reopen());  // drop cached segment readers
  // Flip bytes in the middle of the largest segment (block data, covered by a checksum).
  std::string victim;
  uint64_t best = 0;
  for (const auto& p : paths) {
    uint64_t sz = *fs_->FileSize(p);
    if (sz > best) best = sz, victim = p;
  }
  std::string bytes;
  ASSERT_TRUE(fs_->ReadFileToString(victim, &bytes).ok());
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 16; i++) bytes[i] ^= 0x5a;
  {
    auto f = fs_->NewWritableFile(victim);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append(bytes).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  for (bool partitioned : {false, true}) {
    ExportOptions o = Opt(partitioned ? "tree" : "bad.parquet");
    o.partition_by_date = partitioned;
    ExportSummary s;
    Status st = Export(o, &s);
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(std::string::npos, st.message().find(victim)) << st.ToString();
    EXPECT_TRUE(List(root_ + "/out").empty()) << "left behind: " << List(root_ + "/out")[0];
  }
}

TEST_F(ExportTest, DeletedSegmentFailsNamingItAndLeavesNothing) {
  Ingest(Events(200, "e"));
  ASSERT_TRUE(db_->Flush().ok());
  std::vector<std::string> paths = SegmentPaths(db_.get());
  ASSERT_FALSE(paths.empty());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_TRUE(fs_->RemoveFile(paths.back()).ok());
  for (bool partitioned : {false, true}) {
    ExportOptions o = Opt(partitioned ? "tree" : "bad.parquet");
    o.partition_by_date = partitioned;
    ExportSummary s;
    Status st = Export(o, &s);
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(std::string::npos, st.message().find(paths.back())) << st.ToString();
    EXPECT_TRUE(List(root_ + "/out").empty());
  }
}

TEST_F(ExportTest, ProgressCountsSegmentsAndEvents) {
  std::vector<Event> ev = Events(100, "e");
  ev.push_back(MakeEvent("june", "a1", 7, kMay1 + 40 * kDayMs));
  Ingest(ev);
  ExportOptions o = Opt("p.parquet");
  std::vector<ExportProgress> seen;
  o.progress = [&](const ExportProgress& p) { seen.push_back(p); };
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(s.segments_read, seen.back().segments_done);
  EXPECT_EQ(seen.back().segments_total, seen.back().segments_done);
  EXPECT_EQ(101u, seen.back().events);
  for (size_t i = 1; i < seen.size(); i++) {
    EXPECT_GE(seen[i].segments_done, seen[i - 1].segments_done);
    EXPECT_GE(seen[i].events, seen[i - 1].events);
  }
}

TEST_F(ExportTest, TrailingSlashOnTheOutputDirectoryIsIgnored) {
  Ingest(Events(10, "e"));
  ExportOptions o = Opt("slash/");
  o.partition_by_date = true;
  ExportSummary s;
  ASSERT_TRUE(Export(o, &s).ok());
  EXPECT_EQ(std::vector<std::string>{"slash"}, List(root_ + "/out"));
  EXPECT_EQ(3u, List(Out("slash")).size());
}

}  // namespace
}  // namespace usagedb
