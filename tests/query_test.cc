// The query engine through SQL against a small fixture: accepted statements with their exact
// results (segments and memtable both), plus engine-level errors.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "db_test_util.h"
#include "io/fault_injection_fs.h"
#include "query/json_query.h"
#include "query/sql_plan.h"
#include "util/clock.h"

namespace usagedb::testing {
namespace {

constexpr int64_t kMay1 = 1777593600000;  // 2026-05-01T00:00:00Z

// A database on `fs` and `clock` with flushes only when asked, as every test here needs.
std::unique_ptr<DB> OpenTestDb(FileSystem* fs, Clock* clock, uint32_t bucket_count) {
  Options o;
  o.file_system = fs;
  o.clock = clock;
  o.background_flush = false;
  o.bucket_count = bucket_count;
  auto r = DB::Open(o, "/db");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

class QueryTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    db_ = OpenTestDb(&fs_, &clock_, 4);
    ASSERT_NE(nullptr, db_);
    auto ev = [](const std::string& id, const std::string& acc, __int128 q, int64_t ts,
                 const std::string& meter, std::vector<std::pair<std::string, std::string>> dims) {
      Event e = MakeEvent(id, acc, q, ts, meter);
      e.dimensions = std::move(dims);
      return e;
    };
    std::vector<Event> batch = {
        ev("a1", "acc_a", 10, kMay1 + 1000, "tokens.input", {{"provider", "anthropic"}}),
        ev("a2", "acc_a", 20, kMay1 + 3600000, "tokens.input", {{"provider", "openai"}}),
        ev("a3", "acc_a", 5, kMay1 + 86400000, "tokens.output", {{"provider", "anthropic"}}),
        ev("a4", "acc_a", 7, kMay1 + 86400000 + 5, "tokens.output", {}),
        ev("b1", "acc_b", 100, kMay1 + 2000, "tokens.input", {{"provider", "anthropic"}}),
        ev("b2", "acc_b", 1, kMay1 - 1, "tokens.input", {{"provider", "anthropic"}}),  // April
    };
    IngestResult r2;
    ASSERT_TRUE(db_->Ingest(batch, &r2).ok());
    ASSERT_EQ(6u, r2.accepted);
    Event corr = MakeCorrection("a5", "a1", "acc_a", -3);
    corr.timestamp_ms = kMay1 + 1000;
    corr.meter_id = "tokens.input";
    corr.dimensions = {{"provider", "anthropic"}};
    ASSERT_TRUE(db_->Ingest({corr}, &r2).ok());
    if (GetParam()) {
      ASSERT_TRUE(db_->Flush().ok());  // the same answers from segments
    }
  }

  // Rows as "name=value|name=value" lines.
  std::vector<std::string> Run(const std::string& sql) {
    auto req = query::PlanSqlText(sql);
    EXPECT_TRUE(req.ok()) << req.status().ToString();
    if (!req.ok()) return {};
    QueryResult r;
    Status s = db_->Query(*req, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::vector<std::string> out;
    for (const auto& row : r.rows) {
      std::string line;
      for (size_t c = 0; c < row.size(); c++) {
        if (c) line += "|";
        line += r.names[c] + "=";
        line += row[c].type == QueryValue::Type::kNull     ? "null"
                : row[c].type == QueryValue::Type::kString ? row[c].str
                                                           : Q(row[c].num);
      }
      out.push_back(line);
    }
    return out;
  }
  using V = std::vector<std::string>;

  FaultInjectionFileSystem fs_;
  ManualClock clock_{kNowMs};
  std::unique_ptr<DB> db_;
};

TEST_P(QueryTest, MonthlyTotalOfOneAccount) {
  EXPECT_EQ(V{"sum=39|count=5"},
            Run("SELECT SUM(quantity), COUNT(*) FROM usage_events WHERE account_id = 'acc_a' "
                "AND timestamp_ms >= TIMESTAMP '2026-05-01T00:00:00Z' AND timestamp_ms < "
                "TIMESTAMP '2026-06-01T00:00:00Z'"));
}

TEST_P(QueryTest, ByMeterAndKindWithMinMax) {
  EXPECT_EQ((V{"meter_id=tokens.input|kind=Retraction|s=-3|min=-3|max=-3",
               "meter_id=tokens.input|kind=Usage|s=131|min=1|max=100",
               "meter_id=tokens.output|kind=Usage|s=12|min=5|max=7"}),
            Run("SELECT meter_id, kind, SUM(quantity) AS s, MIN(quantity), MAX(quantity) "
                "FROM usage_events GROUP BY meter_id, kind"));
}

TEST_P(QueryTest, TimeKeysSortByTime) {
  EXPECT_EQ((V{"date=2026-04-30|count=1", "date=2026-05-01|count=4", "date=2026-05-02|count=2"}),
            Run("SELECT date, COUNT(*) FROM usage_events GROUP BY date"));
  EXPECT_EQ((V{"month=2026-04|sum=1", "month=2026-05|sum=139"}),
            Run("SELECT month, SUM(quantity) FROM usage_events GROUP BY month"));
  EXPECT_EQ((V{"hour_start_ms=1777593600000|count=2", "hour_start_ms=1777597200000|count=1"}),
            Run("SELECT hour_start_ms, COUNT(*) FROM usage_events WHERE account_id = 'acc_a' "
                "AND timestamp_ms < 1777680000000 GROUP BY hour_start_ms"));
}

TEST_P(QueryTest, DimensionsGroupMissingAsEmptyAndFilterNeverMatchesMissing) {
  EXPECT_EQ((V{"provider=|sum=7", "provider=anthropic|sum=12", "provider=openai|sum=20"}),
            Run("SELECT provider, SUM(quantity) FROM usage_events WHERE account_id = 'acc_a' "
                "GROUP BY provider"));
  EXPECT_EQ(V{"sum=-3|count=1"},
            Run("SELECT SUM(quantity), COUNT(*) FROM usage_events WHERE dim.provider = "
                "'anthropic' AND kind = 'retraction'"));
  EXPECT_EQ(V{"sum=132"},
            Run("SELECT SUM(quantity) FROM usage_events WHERE provider IN ('anthropic', "
                "'openai') AND timestamp_ms >= 1777593600000"));
}

TEST_P(QueryTest, OrderByMetricLimitAndTies) {
  EXPECT_EQ((V{"account_id=acc_b|q=101", "account_id=acc_a|q=39"}),
            Run("SELECT account_id, SUM(quantity) AS q FROM usage_events GROUP BY account_id "
                "ORDER BY q DESC"));
  EXPECT_EQ(V{"account_id=acc_a|n=5"},
            Run("SELECT account_id, COUNT(*) AS n FROM usage_events GROUP BY account_id "
                "ORDER BY n DESC LIMIT 1"));
}

TEST_P(QueryTest, EmptyAnswersHaveOneRowWithoutGroupKeysAndNoneWithThem) {
  EXPECT_EQ(V{"sum=0|count=0|min=null|max=null"},
            Run("SELECT SUM(quantity), COUNT(*), MIN(quantity), MAX(quantity) FROM "
                "usage_events WHERE account_id = 'nobody'"));
  EXPECT_EQ(V{}, Run("SELECT account_id, SUM(quantity) FROM usage_events WHERE account_id = "
                     "'nobody' GROUP BY account_id"));
  EXPECT_EQ(V{"sum=0"}, Run("SELECT SUM(quantity) FROM usage_events WHERE timestamp_ms >= "
                            "1777593601000 AND timestamp_ms < 1777593601000"));
}

TEST_P(QueryTest, RollupSourceIsNotBuiltYet) {
  auto req = query::PlanSqlText("SELECT SUM(quantity) FROM usage_rollup_hourly");
  ASSERT_TRUE(req.ok());
  QueryResult r;
  EXPECT_EQ(StatusCode::kNotSupported, db_->Query(*req, &r).code());
}

TEST_P(QueryTest, JsonRequestOfSpecShape) {
  auto req = query::ParseJsonQuery(
      R"({"source": "auto", "account_id": "acc_a", "from": "2026-05-01", "to": "2026-06-01",
          "group_by": ["meter_id", "date"], "filters": {"dim.provider": ["anthropic", "openai"]},
          "metrics": {"quantity": "sum", "n": "count", "peak": "max"},
          "order_by": [{"key": "quantity", "desc": true}], "limit": 100})");
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  QueryResult r;
  ASSERT_TRUE(db_->Query(*req, &r).ok());
  ASSERT_EQ((std::vector<std::string>{"meter_id", "date", "quantity", "n", "peak"}), r.names);
  ASSERT_EQ(2u, r.rows.size());
  EXPECT_EQ("tokens.input", r.rows[0][0].str);
  EXPECT_EQ("27", Q(r.rows[0][2].num));  // 10 + 20 - 3
  EXPECT_EQ("5", Q(r.rows[1][2].num));
  EXPECT_EQ("2026-05-02", r.rows[1][1].str);
  // Defaults: sum + count, one row.
  req = query::ParseJsonQuery(R"({"account_id": "acc_b"})");
  ASSERT_TRUE(req.ok());
  ASSERT_TRUE(db_->Query(*req, &r).ok());
  ASSERT_EQ((std::vector<std::string>{"quantity", "count"}), r.names);
  EXPECT_EQ("101", Q(r.rows[0][0].num));
}

TEST(JsonQueryTest, BadRequestsNameTheProblem) {
  auto err = [](const char* body) { return query::ParseJsonQuery(body).status().message(); };
  EXPECT_NE(std::string::npos, err(R"({"frm": 1})").find("unknown field: frm"));
  EXPECT_NE(std::string::npos, err(R"({"metrics": {"x": "avg"}})").find("unknown function"));
  EXPECT_NE(std::string::npos, err(R"({"group_by": ["event_id"]})").find("group_by"));
  EXPECT_NE(std::string::npos, err(R"({"from": "2026-13-01"})").find("from"));
  EXPECT_NE(std::string::npos, err(R"({"from": 5, "to": 4})").find("after"));
  EXPECT_NE(std::string::npos, err("[1]").find("object"));
  EXPECT_NE(std::string::npos, err("{").find("invalid JSON"));
}

TEST_P(QueryTest, RunSumsSpillPast128BitsAndOnlyTheFinalValueOverflows) {
  // One account and group: consecutive rows form one run, whose 128-bit partial sum must
  // overflow into the wide sum (2 * (10^38 - 1) > 2^127 - 1) and come back exactly.
  std::vector<Event> batch;
  for (int i = 0; i < 6; i++) {
    const std::string id = "big" + std::to_string(i);
    Event e = i < 3 ? MakeEvent(id, "acc_big", kMaxQuantity)
                    : MakeCorrection(id, "big" + std::to_string(i - 3), "acc_big", -kMaxQuantity);
    e.timestamp_ms = kMay1 + 5000 + i;
    batch.push_back(e);
  }
  IngestResult r;
  ASSERT_TRUE(db_->Ingest(batch, &r).ok());
  ASSERT_EQ(6u, r.accepted);
  if (GetParam()) {
    ASSERT_TRUE(db_->Flush().ok());
  }
  EXPECT_EQ(V{"sum=0|count=6|min=-" + Q(kMaxQuantity) + "|max=" + Q(kMaxQuantity)},
            Run("SELECT SUM(quantity), COUNT(*), MIN(quantity), MAX(quantity) FROM "
                "usage_events WHERE account_id = 'acc_big'"));
  ReadFilter f;
  f.account_id = "acc_big";
  AggregateResult agg;
  ASSERT_TRUE(db_->Aggregate(f, /*group_by_account=*/true, &agg).ok());
  ASSERT_EQ(1u, agg.rows.size());
  EXPECT_EQ("0", Q(agg.rows[0].quantity));
  EXPECT_EQ(6u, agg.rows[0].count);
  // Without the retractions the total does not fit: 422 overflow, never a wrapped value.
  f.to_ms = kMay1 + 5003;
  EXPECT_EQ(StatusCode::kOverflow, db_->Aggregate(f, false, &agg).code());
  auto req = query::PlanSqlText(
      "SELECT SUM(quantity) FROM usage_events WHERE account_id = 'acc_big' AND timestamp_ms < "
      "1777593605003");
  ASSERT_TRUE(req.ok());
  QueryResult qr;
  EXPECT_EQ(StatusCode::kOverflow, db_->Query(*req, &qr).code());
}

bool IsTimeout(const Status& s) {
  return s.code() == StatusCode::kUnavailable && s.message().rfind("timeout:", 0) == 0;
}

TEST_P(QueryTest, PastDeadlineFailsWithTimeoutAndNoRowsAGenerousOneChangesNothing) {
  using SteadyClock = std::chrono::steady_clock;
  const auto past = SteadyClock::now() - std::chrono::milliseconds(1);
  const auto generous = SteadyClock::now() + std::chrono::hours(1);
  auto req = query::PlanSqlText(
      "SELECT meter_id, SUM(quantity) AS s, COUNT(*) FROM usage_events GROUP BY meter_id");
  ASSERT_TRUE(req.ok());
  QueryResult without, with;
  ASSERT_TRUE(db_->Query(*req, &without).ok());
  ASSERT_EQ(2u, without.rows.size());
  req->deadline = generous;
  ASSERT_TRUE(db_->Query(*req, &with).ok());
  ASSERT_EQ(without.rows.size(), with.rows.size());
  for (size_t i = 0; i < with.rows.size(); i++) {
    EXPECT_EQ(without.rows[i][0].str, with.rows[i][0].str);
    EXPECT_EQ(Q(without.rows[i][1].num), Q(with.rows[i][1].num));
    EXPECT_EQ(Q(without.rows[i][2].num), Q(with.rows[i][2].num));
  }
  req->deadline = past;
  Status s = db_->Query(*req, &with);
  EXPECT_TRUE(IsTimeout(s)) << s.ToString();
  EXPECT_TRUE(with.rows.empty());

  ListRequest list;
  list.limit = 3;
  ListResult lwithout, lwith;
  ASSERT_TRUE(db_->ListEvents(list, &lwithout).ok());
  ASSERT_EQ(3u, lwithout.events.size());
  list.deadline = generous;
  ASSERT_TRUE(db_->ListEvents(list, &lwith).ok());
  ASSERT_EQ(3u, lwith.events.size());
  for (size_t i = 0; i < 3; i++) EXPECT_EQ(lwithout.events[i].event_id, lwith.events[i].event_id);
  EXPECT_EQ(lwithout.next_cursor, lwith.next_cursor);
  list.deadline = past;
  s = db_->ListEvents(list, &lwith);
  EXPECT_TRUE(IsTimeout(s)) << s.ToString();
  EXPECT_TRUE(lwith.events.empty());
  EXPECT_TRUE(lwith.next_cursor.empty());

  ConflictListRequest conflicts;
  ConflictListResult cwith;
  conflicts.deadline = generous;
  EXPECT_TRUE(db_->ListConflicts(conflicts, &cwith).ok());
  conflicts.deadline = past;
  s = db_->ListConflicts(conflicts, &cwith);
  EXPECT_TRUE(IsTimeout(s)) << s.ToString();
  EXPECT_TRUE(cwith.conflicts.empty());
}

INSTANTIATE_TEST_SUITE_P(MemtableAndSegments, QueryTest, ::testing::Values(false, true));

// A scan over every bucket with enough segments runs on several threads, each with its own
// partial groups; the merged answer (segments and the memtable) equals an oracle's.
TEST(ParallelScanTest, ManySegmentsGiveTheOracleAnswer) {
  FaultInjectionFileSystem fs;
  ManualClock clock(kNowMs);
  std::unique_ptr<DB> db = OpenTestDb(&fs, &clock, 8);
  ASSERT_NE(nullptr, db);
  const char* meters[] = {"tokens.input", "tokens.output", "requests"};
  std::map<std::string, __int128> output_by_account;
  std::map<std::string, __int128> by_meter;
  uint64_t total = 0;
  for (int flush = 0; flush < 7; flush++) {
    std::vector<Event> batch;
    for (int i = 0; i < 240; i++) {
      const int n = flush * 240 + i;
      const std::string account = "acc_" + std::to_string((n * 7) % 50);
      const std::string meter = meters[n % 3];
      const __int128 q = (n * 37) % 1000;
      batch.push_back(MakeEvent("e" + std::to_string(n), account, q, kMay1 + n * 1000, meter));
      if (meter == "tokens.output") output_by_account[account] += q;
      by_meter[meter] += q;
      total++;
    }
    IngestResult r;
    ASSERT_TRUE(db->Ingest(batch, &r).ok());
    ASSERT_EQ(240u, r.accepted);
    if (flush < 6) {
      ASSERT_TRUE(db->Flush().ok());  // the last batch stays in the memtable
    }
  }
  ASSERT_GE(db->Stats().segment_count, 32u);

  QueryRequest q;
  q.group_by = {"account_id"};
  q.filters = {QueryFilter{"meter_id", {"tokens.output"}}};
  q.columns = {QueryColumn{"account_id", false, "account_id", QueryFunc::kSum},
               QueryColumn{"quantity", true, "", QueryFunc::kSum}};
  q.order_by = {QueryOrder{"quantity", true}};
  q.limit = 10;
  QueryResult r;
  ASSERT_TRUE(db->Query(q, &r).ok());
  std::vector<std::pair<__int128, std::string>> expected;
  for (const auto& [a, sum] : output_by_account) expected.push_back({-sum, a});
  std::sort(expected.begin(), expected.end());  // quantity desc, ties by account
  ASSERT_EQ(10u, r.rows.size());
  for (size_t i = 0; i < 10; i++) {
    EXPECT_EQ(expected[i].second, r.rows[i][0].str) << i;
    EXPECT_EQ(Q(-expected[i].first), Q(r.rows[i][1].num)) << i;
  }
  // Every account (the threads split the segments by bucket; memtable events join their
  // account's part): each exactly once, with every output row scanned.
  q.limit.reset();
  q.order_by = {QueryOrder{"account_id", false}};
  ASSERT_TRUE(db->Query(q, &r).ok());
  ASSERT_EQ(output_by_account.size(), r.rows.size());
  size_t i = 0;
  for (const auto& [a, sum] : output_by_account) {
    EXPECT_EQ(a, r.rows[i][0].str) << i;
    EXPECT_EQ(Q(sum), Q(r.rows[i][1].num)) << i;
    i++;
  }
  EXPECT_EQ(total / 3, r.rows_scanned);  // the tokens.output rows

  q = QueryRequest();
  q.group_by = {"meter_id"};
  q.columns = {QueryColumn{"meter_id", false, "meter_id", QueryFunc::kSum},
               QueryColumn{"quantity", true, "", QueryFunc::kSum},
               QueryColumn{"n", true, "", QueryFunc::kCount}};
  ASSERT_TRUE(db->Query(q, &r).ok());
  EXPECT_EQ(total, r.rows_scanned);
  ASSERT_EQ(3u, r.rows.size());
  uint64_t counted = 0;
  for (const auto& row : r.rows) {
    EXPECT_EQ(Q(by_meter[row[0].str]), Q(row[1].num)) << row[0].str;
    counted += static_cast<uint64_t>(row[2].num);
  }
  EXPECT_EQ(total, counted);
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

// Segment reads that, once armed, record which segment file they read and do not return
// before `deadline` has passed: a scan that started before the deadline sees it pass during
// its first read, deterministically (nothing here depends on how fast the machine is).
class DeadlineAtFirstReadFs : public FaultInjectionFileSystem {
 public:
  void Arm(std::chrono::steady_clock::time_point deadline) {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = true;
    deadline_ = deadline;
    read_.clear();
  }
  std::set<std::string> files_read() {
    std::lock_guard<std::mutex> l(mu_);
    return read_;
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    ASSIGN_OR_RETURN(auto file, FaultInjectionFileSystem::NewRandomAccessFile(path));
    if (path.find("/segments/") == std::string::npos) return file;
    return std::unique_ptr<RandomAccessFile>(new File(this, path, std::move(file)));
  }

 private:
  class File : public RandomAccessFile {
   public:
    File(DeadlineAtFirstReadFs* fs, std::string path, std::unique_ptr<RandomAccessFile> base)
        : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
    Status Read(uint64_t offset, size_t n, std::string* out) const override {
      fs_->OnRead(path_);
      return base_->Read(offset, n, out);
    }
    uint64_t Size() const override { return base_->Size(); }

   private:
    DeadlineAtFirstReadFs* fs_;
    std::string path_;
    std::unique_ptr<RandomAccessFile> base_;
  };
  void OnRead(const std::string& path) {
    std::chrono::steady_clock::time_point deadline;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!armed_) return;
      read_.insert(path);
      deadline = deadline_;
    }
    while (std::chrono::steady_clock::now() <= deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  std::mutex mu_;
  bool armed_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::set<std::string> read_;
};

// A deadline passing during a scan stops it at the next segment or block, on every thread of
// a parallel scan: each thread reads at most the one segment it had started.
TEST(DeadlineTest, ScanStopsAtTheNextSegmentOnEveryThread) {
  DeadlineAtFirstReadFs fs;
  ManualClock clock(kNowMs);
  std::unique_ptr<DB> db = OpenTestDb(&fs, &clock, 8);
  ASSERT_NE(nullptr, db);
  for (int flush = 0; flush < 6; flush++) {
    std::vector<Event> batch;
    for (int i = 0; i < 240; i++) {
      const int n = flush * 240 + i;
      batch.push_back(
          MakeEvent("e" + std::to_string(n), "acc_" + std::to_string(n % 50), 1, kMay1 + n * 1000));
    }
    IngestResult r;
    ASSERT_TRUE(db->Ingest(batch, &r).ok());
    ASSERT_TRUE(db->Flush().ok());
  }
  const uint64_t segments = db->Stats().segment_count;
  ASSERT_GE(segments, 40u);

  QueryRequest q;
  q.group_by = {"account_id"};
  q.columns = {QueryColumn{"account_id", false, "account_id", QueryFunc::kSum},
               QueryColumn{"n", true, "", QueryFunc::kCount}};
  QueryResult r;
  ASSERT_TRUE(db->Query(q, &r).ok());  // every segment reader is open now
  ASSERT_EQ(50u, r.rows.size());
  q.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  fs.Arm(*q.deadline);
  Status s = db->Query(q, &r);
  EXPECT_TRUE(IsTimeout(s)) << s.ToString();
  EXPECT_TRUE(r.rows.empty());
  EXPECT_LE(fs.files_read().size(), 4u) << "of " << segments << " segments";

  ListRequest list;
  list.filter.from_ms = kMay1;
  list.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  fs.Arm(*list.deadline);
  ListResult page;
  s = db->ListEvents(list, &page);
  EXPECT_TRUE(IsTimeout(s)) << s.ToString();
  EXPECT_TRUE(page.events.empty());
  EXPECT_LE(fs.files_read().size(), 1u) << "of " << segments << " segments";
}

TEST(ListEventsTest, PagesCoverEveryEventOnceWhileIngestAndFlushesGoOn) {
  FaultInjectionFileSystem fs;
  ManualClock clock(kNowMs);
  std::unique_ptr<DB> db = OpenTestDb(&fs, &clock, 2);
  ASSERT_NE(nullptr, db);
  std::vector<Event> batch;
  for (int i = 0; i < 250; i++) {
    // Many equal timestamps: the order falls back to event_id.
    batch.push_back(MakeEvent("e" + std::to_string(i), "acc", 1, kMay1 + (i % 17) * 1000));
  }
  IngestResult r;
  ASSERT_TRUE(db->Ingest(batch, &r).ok());
  ASSERT_TRUE(db->Flush().ok());
  ListRequest req;
  req.filter.account_id = "acc";
  req.limit = 40;
  std::vector<std::string> seen;
  int pages = 0;
  for (;;) {
    ListResult page;
    ASSERT_TRUE(db->ListEvents(req, &page).ok());
    pages++;
    for (size_t i = 0; i < page.events.size(); i++) {
      seen.push_back(page.events[i].event_id);
      if (i > 0) {
        const Event& a = page.events[i - 1];
        const Event& b = page.events[i];
        ASSERT_TRUE(a.timestamp_ms < b.timestamp_ms ||
                    (a.timestamp_ms == b.timestamp_ms && a.event_id < b.event_id));
      }
    }
    // Meanwhile: new events (later than the snapshot: never listed) and a flush.
    ASSERT_TRUE(db->Ingest({MakeEvent("late" + std::to_string(pages), "acc", 1, kMay1)}, &r).ok());
    if (pages == 2) {
      ASSERT_TRUE(db->Flush().ok());
    }
    if (page.next_cursor.empty()) break;
    req.cursor = page.next_cursor;
  }
  EXPECT_EQ(7, pages);
  ASSERT_EQ(250u, seen.size());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.end(), std::adjacent_find(seen.begin(), seen.end())) << "an event listed twice";
  // A cursor reused with other filters is refused; a damaged one too.
  ListRequest other = req;
  other.filter.account_id = "acc2";
  ListResult page;
  Status s = db->ListEvents(other, &page);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(std::string::npos, s.message().find("cursor_mismatch")) << s.ToString();
  other = req;
  other.cursor = "!!";
  EXPECT_TRUE(db->ListEvents(other, &page).IsInvalidArgument());
  other.cursor = "";
  other.limit = 0;
  EXPECT_TRUE(db->ListEvents(other, &page).IsInvalidArgument());
}

}  // namespace
}  // namespace usagedb::testing
