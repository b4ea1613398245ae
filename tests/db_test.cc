// The embedded API end to end on the in-memory fault-injecting file system (and POSIX for the
// lock): idempotency, batch rules, flush, recovery, backpressure, reads.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "db_test_util.h"
#include "io/fault_injection_fs.h"
#include "util/clock.h"
#include "wal/wal.h"

namespace usagedb::testing {
namespace {

class DbTest : public ::testing::Test {
 protected:
  DbTest() : clock_(kNowMs) {
    options_.file_system = &fs_;
    options_.clock = &clock_;
    options_.background_flush = false;
    options_.bucket_count = 4;
  }
  void Open() {
    auto r = DB::Open(options_, "/db");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    db_ = std::move(r).value();
  }
  // The process dies: nothing more reaches the disk, then (power_loss) unsynced data is lost.
  void Crash(bool power_loss) {
    fs_.CrashAfter(0);
    db_.reset();
    if (power_loss) {
      fs_.DropUnsyncedData();
    } else {
      fs_.Reopen();
    }
  }
  void Reopen() {
    if (db_) {
      ASSERT_TRUE(db_->Close().ok());
    }
    db_.reset();
    Open();
  }
  IngestResult Ingest(std::vector<Event> events) {
    IngestResult r;
    Status s = db_->Ingest(std::move(events), &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }
  std::pair<std::string, uint64_t> Total(const std::string& account = "") {
    ReadFilter f;
    if (!account.empty()) f.account_id = account;
    AggregateResult r;
    Status s = db_->Aggregate(f, false, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return {Q(r.rows.at(0).quantity), r.rows.at(0).count};
  }

  FaultInjectionFileSystem fs_;
  ManualClock clock_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_F(DbTest, AcceptDuplicateConflictRejected) {
  Open();
  IngestResult r = Ingest({MakeEvent("e1", "acc", 10), MakeEvent("e2", "acc", 5)});
  EXPECT_EQ(2u, r.accepted);
  EXPECT_GT(r.commit_sequence, 0u);
  Event bad = MakeEvent("e3", "acc", -1);  // Usage requires quantity >= 0
  Event changed = MakeEvent("e1", "acc", 11);
  r = Ingest({MakeEvent("e1", "acc", 10), changed, bad});
  EXPECT_EQ(Outcome::kDuplicate, r.results[0].outcome);
  EXPECT_EQ(Outcome::kConflict, r.results[1].outcome);
  EXPECT_EQ(Outcome::kRejected, r.results[2].outcome);
  EXPECT_NE(std::string::npos, r.results[2].reason.find("quantity")) << r.results[2].reason;
  EXPECT_EQ(1u, r.duplicates);
  EXPECT_EQ(1u, r.conflicts);
  EXPECT_EQ(1u, r.rejected);
  EXPECT_EQ(std::make_pair(std::string("15"), uint64_t{2}), Total());
}

TEST_F(DbTest, RepeatsInsideOneBatchFollowRequestOrder) {
  Open();
  IngestResult r = Ingest({MakeEvent("x", "a", 1), MakeEvent("x", "a", 1), MakeEvent("x", "a", 2)});
  EXPECT_EQ(Outcome::kAccepted, r.results[0].outcome);
  EXPECT_EQ(Outcome::kDuplicate, r.results[1].outcome);
  EXPECT_EQ(Outcome::kConflict, r.results[2].outcome);
  EXPECT_EQ(std::make_pair(std::string("1"), uint64_t{1}), Total());
}

// One thread's batches share per-thread buffers (hashes, probes, the unit body): a batch after
// a much larger one (and the in-batch repeat tables it filled) must see nothing of it.
TEST_F(DbTest, BatchesOfChangingSizeOnOneThreadKeepTheirOwnOutcomes) {
  Open();
  std::vector<Event> big;
  for (int i = 0; i < 40000; i++) {
    big.push_back(MakeEvent("big" + std::to_string(i), "acc", 1));
  }
  big.push_back(MakeEvent("big7", "acc", 1));  // in-batch repeat at the end
  IngestResult r = Ingest(std::move(big));
  EXPECT_EQ(40000u, r.accepted);
  EXPECT_EQ(1u, r.duplicates);
  r = Ingest({MakeEvent("s1", "acc", 2), MakeEvent("big3", "acc", 1), MakeEvent("big4", "acc", 9),
              MakeEvent("s1", "acc", 2)});
  ASSERT_EQ(4u, r.results.size());
  EXPECT_EQ(Outcome::kAccepted, r.results[0].outcome);
  EXPECT_EQ(Outcome::kDuplicate, r.results[1].outcome);
  EXPECT_EQ(Outcome::kConflict, r.results[2].outcome);
  EXPECT_EQ(Outcome::kDuplicate, r.results[3].outcome);
  EXPECT_EQ("s1", r.results[0].event_id);
  EXPECT_EQ("big4", r.results[2].event_id);
  r = Ingest({MakeEvent("s2", "acc", 3)});
  ASSERT_EQ(1u, r.results.size());
  EXPECT_EQ(Outcome::kAccepted, r.results[0].outcome);
  EXPECT_EQ(std::make_pair(std::string("40005"), uint64_t{40002}), Total());
}

TEST_F(DbTest, DuplicateDetectedAfterFlushAndRestart) {
  Open();
  Ingest({MakeEvent("e1", "acc", 10)});
  ASSERT_TRUE(db_->Flush().ok());
  EXPECT_EQ(Outcome::kDuplicate, Ingest({MakeEvent("e1", "acc", 10)}).results[0].outcome);
  Reopen();
  EXPECT_EQ(Outcome::kDuplicate, Ingest({MakeEvent("e1", "acc", 10)}).results[0].outcome);
  EXPECT_EQ(Outcome::kConflict, Ingest({MakeEvent("e1", "acc", 9)}).results[0].outcome);
  EXPECT_EQ(std::make_pair(std::string("10"), uint64_t{1}), Total());
}

// One batch's candidates in one segment block: the resolver decodes the block's ids first and
// its other columns at the first match, then answers the later rows from that cached block.
TEST_F(DbTest, DuplicatesInOneSegmentBlockResolvedInOneBatch) {
  Open();
  std::vector<Event> first;
  for (int i = 0; i < 20; i++) first.push_back(MakeEvent("e" + std::to_string(i), "acc", i));
  Ingest(first);
  ASSERT_TRUE(db_->Flush().ok());
  Reopen();
  const IngestResult r =
      Ingest({MakeEvent("e3", "acc", 3), MakeEvent("e7", "acc", 8), MakeEvent("e11", "acc", 11),
              MakeEvent("n1", "acc", 5), MakeEvent("e19", "acc", 19)});
  ASSERT_EQ(5u, r.results.size());
  EXPECT_EQ(Outcome::kDuplicate, r.results[0].outcome);
  EXPECT_EQ(Outcome::kConflict, r.results[1].outcome);
  EXPECT_EQ(Outcome::kDuplicate, r.results[2].outcome);
  EXPECT_EQ(Outcome::kAccepted, r.results[3].outcome);
  EXPECT_EQ(Outcome::kDuplicate, r.results[4].outcome);
  EXPECT_EQ(std::make_pair(std::string("195"), uint64_t{21}), Total());
}

// Late retries whose originals are only in a segment (flushed, then reopened: nothing in
// memory): the resolver reads each original row alone (SegmentReader::ReadRow), and its payload
// digest must match exactly, whatever the row's shape (nulls, corrections, escaped dimensions,
// many or few distinct values), so that an identical retry is a duplicate and a retry differing
// in any one field is a conflict.
TEST_F(DbTest, LateRetriesResolvedFromOneSegmentRow) {
  Open();
  std::vector<Event> originals;
  for (int i = 0; i < 3000; i++) {
    Event e = MakeEvent("r" + std::to_string(i), "acct" + std::to_string(i % 13),
                        (i % 7 == 0 ? __int128{1} << 80 : 0) + i * 31,
                        kNowMs - 5 * kHourMs - (i % 50) * 60000 - i);
    if (i % 5 == 0) e.model_id.reset();
    if (i % 4 == 0) e.subscription_id = "sub" + std::to_string(i % 3);
    e.source = i % 2 ? "collector-" + std::to_string(i) : "collector-1";
    e.dimensions = {{"provider", i % 3 ? "anthropic" : "openai"}, {"region", "eu"}};
    if (i % 6 == 0) e.dimensions.push_back({"tool", "say \"hi\"\\\n" + std::to_string(i)});
    if (i % 9 == 0) e.dimensions.clear();
    if (i % 11 == 0) {
      e.kind = i % 2 ? EventKind::kCorrection : EventKind::kRetraction;
      e.has_correction_ref = true;
      e.correction_original_event_id = "r" + std::to_string(i / 2);
      e.correction_reason = i % 3 ? "refund \"x\"" : "";
      e.quantity = -e.quantity;
    }
    originals.push_back(e);
  }
  EXPECT_EQ(3000u, Ingest(originals).accepted);
  ASSERT_TRUE(db_->Flush().ok());
  Reopen();
  std::vector<Event> same, changed;
  for (size_t i = 0; i < originals.size(); i += 37) {
    same.push_back(originals[i]);
    Event c = originals[i];
    switch (i % 5) {
      case 0:
        c.dimensions.push_back({"zz", "1"});
        break;
      case 1:
        c.subscription_id = c.subscription_id ? std::optional<std::string>() : "sub9";
        break;
      case 2:
        c.timestamp_ms -= 1;
        break;
      case 3:
        c.source += "x";
        break;
      default:
        c.quantity -= 1;
        break;
    }
    changed.push_back(c);
  }
  IngestResult r = Ingest(same);
  EXPECT_EQ(same.size(), r.duplicates);
  for (const auto& result : r.results) EXPECT_EQ(Outcome::kDuplicate, result.outcome);
  r = Ingest(changed);
  EXPECT_EQ(changed.size(), r.conflicts);
  for (const auto& result : r.results) {
    EXPECT_EQ(Outcome::kConflict, result.outcome) << result.event_id << " " << result.reason;
  }
  EXPECT_EQ(3000u, Total().second);
}

TEST_F(DbTest, UnflushedEventsSurviveRestartThroughWal) {
  Open();
  Ingest({MakeEvent("e1", "acc", 10), MakeEvent("e2", "other", 7)});
  Crash(/*power_loss=*/false);
  Open();
  EXPECT_EQ(std::make_pair(std::string("17"), uint64_t{2}), Total());
  EXPECT_EQ(Outcome::kDuplicate, Ingest({MakeEvent("e2", "other", 7)}).results[0].outcome);
}

TEST_F(DbTest, PowerLossKeepsAcknowledgedStrictEvents) {
  Open();
  Ingest({MakeEvent("e1", "acc", 10)});
  Ingest({MakeEvent("e2", "acc", 1)});
  Crash(/*power_loss=*/true);  // only synced data survives
  Open();
  EXPECT_EQ(std::make_pair(std::string("11"), uint64_t{2}), Total());
}

TEST_F(DbTest, ReadYourWritesAcrossFlush) {
  Open();
  for (int i = 0; i < 50; i++) Ingest({MakeEvent("e" + std::to_string(i), "acc", i)});
  EXPECT_EQ(std::make_pair(std::string("1225"), uint64_t{50}), Total("acc"));
  ASSERT_TRUE(db_->Flush().ok());
  EXPECT_EQ(std::make_pair(std::string("1225"), uint64_t{50}), Total("acc"));
  Ingest({MakeEvent("late", "acc", 1000)});
  EXPECT_EQ(std::make_pair(std::string("2225"), uint64_t{51}), Total("acc"));
  EXPECT_EQ(std::make_pair(std::string("0"), uint64_t{0}), Total("nobody"));
  DbStats st = db_->Stats();
  EXPECT_GT(st.segment_count, 0u);
  EXPECT_EQ(1u, st.memtable_events);
}

TEST_F(DbTest, AsOfSequenceReproducesThePast) {
  Open();
  uint64_t s1 = Ingest({MakeEvent("e1", "acc", 10)}).commit_sequence;
  ASSERT_TRUE(db_->Flush().ok());
  Ingest({MakeEvent("e2", "acc", 5)});
  ReadFilter f;
  f.as_of_seq = s1;
  AggregateResult r;
  ASSERT_TRUE(db_->Aggregate(f, false, &r).ok());
  EXPECT_EQ("10", Q(r.rows[0].quantity));
  EXPECT_EQ(s1, r.snapshot_sequence);
}

TEST_F(DbTest, FiltersAndTimeRangeAreHalfOpen) {
  Open();
  int64_t t0 = kNowMs - 10 * kHourMs;
  Ingest({MakeEvent("a", "acc", 1, t0), MakeEvent("b", "acc", 2, t0 + kHourMs),
          MakeEvent("c", "acc", 4, t0 + 2 * kHourMs, "tokens.output")});
  for (int flushed = 0; flushed < 2; flushed++) {
    ReadFilter f;
    f.from_ms = t0;
    f.to_ms = t0 + kHourMs;
    AggregateResult r;
    ASSERT_TRUE(db_->Aggregate(f, false, &r).ok());
    EXPECT_EQ("1", Q(r.rows[0].quantity));
    f.to_ms.reset();
    f.meter_ids = {"tokens.output"};
    ASSERT_TRUE(db_->Aggregate(f, false, &r).ok());
    EXPECT_EQ("4", Q(r.rows[0].quantity));
    ASSERT_TRUE(db_->Flush().ok());
  }
}

TEST_F(DbTest, ExactSumsBeyond64BitsAndOverflowIsAnError) {
  Open();
  const __int128 half = kMaxQuantity / 2;  // 49999999999999999999999999999999999999
  Ingest({MakeEvent("big1", "acc", kMaxQuantity), MakeEvent("big2", "acc", half)});
  EXPECT_EQ("149999999999999999999999999999999999998", Total().first);
  Ingest({MakeEvent("big3", "acc", kMaxQuantity)});
  AggregateResult r;
  Status s = db_->Aggregate(ReadFilter(), false, &r);
  EXPECT_EQ(StatusCode::kOverflow, s.code()) << "2.5e38 > 2^127-1 must not wrap or clamp";
  // A retraction brings the exact total back into range: the intermediate sum stayed exact.
  Ingest({MakeCorrection("neg3", "big3", "acc", -kMaxQuantity)});
  EXPECT_EQ("149999999999999999999999999999999999998", Total().first);
  ASSERT_TRUE(db_->Flush().ok());
  EXPECT_EQ("149999999999999999999999999999999999998", Total().first);
}

TEST_F(DbTest, FutureSkewRejectsOnlyNewEvents) {
  Open();
  Ingest({MakeEvent("e1", "acc", 1, kNowMs + 60000)});
  IngestResult r = Ingest({MakeEvent("far", "acc", 1, kNowMs + options_.max_future_skew_ms + 1)});
  EXPECT_EQ(Outcome::kRejected, r.results[0].outcome);
  EXPECT_NE(std::string::npos, r.results[0].reason.find("timestamp_ms"));
  // Dedupe first: once the clock moves back, a retry of e1 is still a duplicate.
  clock_.SetMs(kNowMs - 3600000);
  EXPECT_EQ(Outcome::kDuplicate, Ingest({MakeEvent("e1", "acc", 1, kNowMs + 60000)}).results[0].outcome);
}

TEST_F(DbTest, DedupeWindowForgetsUsageKeysButNotCorrections) {
  options_.dedupe_window_days = 1;
  Open();
  Ingest({MakeEvent("u1", "acc", 1), MakeCorrection("c1", "u1", "acc", 2)});
  ASSERT_TRUE(db_->Flush().ok());
  IngestResult r = Ingest({MakeEvent("old", "acc", 1, kNowMs - 2 * 86400000LL)});
  EXPECT_EQ(Outcome::kRejected, r.results[0].outcome);
  EXPECT_NE(std::string::npos, r.results[0].reason.find("older than the dedupe window"));
  clock_.AdvanceMs(3 * 86400000LL);
  r = Ingest({MakeEvent("u1", "acc", 1, clock_.NowMs() - 1000), MakeCorrection("c1", "u1", "acc", 2)});
  EXPECT_EQ(Outcome::kAccepted, r.results[0].outcome);   // forgotten: new again
  EXPECT_EQ(Outcome::kDuplicate, r.results[1].outcome);  // corrections are remembered forever
}

TEST_F(DbTest, CommitSequencesAndStampsAreMonotonic) {
  Open();
  uint64_t last_seq = 0;
  int64_t last_stamp = 0;
  for (int i = 0; i < 10; i++) {
    if (i == 5) clock_.SetMs(kNowMs - 100000);  // the clock steps back
    IngestResult r = Ingest({MakeEvent("e" + std::to_string(i), "acc", 1)});
    EXPECT_GT(r.commit_sequence, last_seq);
    EXPECT_GE(r.ingested_at_ms, last_stamp);
    last_seq = r.commit_sequence;
    last_stamp = r.ingested_at_ms;
  }
  Reopen();
  IngestResult r = Ingest({MakeEvent("after", "acc", 1)});
  EXPECT_GT(r.commit_sequence, last_seq);
  EXPECT_GE(r.ingested_at_ms, last_stamp);
}

TEST_F(DbTest, WalWriteErrorFailsBatchAndVoidsIt) {
  Open();
  Ingest({MakeEvent("ok1", "acc", 1)});
  fs_.FailNth(1, OpKind::kSync);
  IngestResult r;
  Status s = db_->Ingest({MakeEvent("lost", "acc", 100)}, &r);
  EXPECT_EQ(StatusCode::kUnavailable, s.code()) << s.ToString();
  // Nothing of the failed batch is visible or remembered: the retry is accepted.
  EXPECT_EQ(std::make_pair(std::string("1"), uint64_t{1}), Total());
  r = Ingest({MakeEvent("lost", "acc", 100)});
  EXPECT_EQ(Outcome::kAccepted, r.results[0].outcome);
  // A process crash keeps the failed unit's bytes in the sealed file: only the void record
  // keeps replay from applying it (the retry is the one that counts).
  Crash(/*power_loss=*/false);
  Open();
  EXPECT_EQ(std::make_pair(std::string("101"), uint64_t{2}), Total());
  EXPECT_EQ(1u, db_->recovery_report().void_units);
}

TEST_F(DbTest, WalWriteErrorInUnsyncedAppendIsVoidedToo) {
  Open();
  fs_.set_partial_append(true);
  fs_.FailNth(1, OpKind::kAppend);
  IngestResult r;
  Status s = db_->Ingest({MakeEvent("torn", "acc", 100)}, &r);
  EXPECT_FALSE(s.ok());
  Ingest({MakeEvent("next", "acc", 1)});
  Crash(/*power_loss=*/false);
  Open();
  EXPECT_EQ(std::make_pair(std::string("1"), uint64_t{1}), Total());
}

TEST_F(DbTest, BackpressureInsteadOfUnboundedMemory) {
  options_.memtable_bytes = 2000;
  options_.max_immutable_memtables = 1;
  Open();
  Status last;
  int accepted = 0;
  for (int i = 0; i < 200 && last.ok(); i++) {
    IngestResult r;
    last = db_->Ingest({MakeEvent("e" + std::to_string(i), "acc", 1)}, &r);
    if (last.ok()) accepted++;
  }
  EXPECT_EQ(StatusCode::kUnavailable, last.code()) << "no flusher runs: ingest must push back";
  ASSERT_TRUE(db_->Flush().ok());
  EXPECT_EQ(std::make_pair(std::to_string(accepted), static_cast<uint64_t>(accepted)), Total());
}

TEST_F(DbTest, BucketCountMismatchRefusesToOpen) {
  Open();
  db_->Close().IgnoreError();
  db_.reset();
  options_.bucket_count = 8;
  auto r = DB::Open(options_, "/db");
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
}

TEST_F(DbTest, IngestJsonBatchAndNdjson) {
  Open();
  std::string body =
      R"({"events":[{"event_id":"j1","account_id":"a","product_id":"p","meter_id":"m",)"
      R"("timestamp_ms":1778300000000,"quantity":"123456789012345678901234567890","unit":"token",)"
      R"("source":"s"},{"event_id":"j2","bogus":1}]})";
  IngestResult r;
  ASSERT_TRUE(db_->IngestJson(body, false, &r).ok());
  EXPECT_EQ(1u, r.accepted);
  EXPECT_EQ(1u, r.rejected);
  EXPECT_EQ("j2", r.results[1].event_id);
  std::string nd =
      "\n{\"event_id\":\"j3\",\"account_id\":\"a\",\"product_id\":\"p\",\"meter_id\":\"m\","
      "\"timestamp_ms\":1778300000000,\"quantity\":7,\"unit\":\"token\",\"source\":\"s\"}\n"
      "  \nnot json\n";
  ASSERT_TRUE(db_->IngestJson(nd, true, &r).ok());
  EXPECT_EQ(1u, r.accepted);
  EXPECT_EQ(1u, r.rejected);
  EXPECT_EQ(1u, r.results[1].index);
  EXPECT_TRUE(db_->IngestJson("[1,2]", false, &r).IsInvalidArgument());
  EXPECT_EQ("123456789012345678901234567897", Total().first);
}

TEST(DbPosixTest, SecondOpenIsLockedOut) {
  std::string dir = ::testing::TempDir() + "/usagedb_lock_test";
  std::filesystem::remove_all(dir);
  Options o;
  o.background_flush = false;
  auto a = DB::Open(o, dir);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = DB::Open(o, dir);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(StatusCode::kBusy, b.status().code());
  EXPECT_NE(std::string::npos, b.status().message().find("pid")) << b.status().ToString();
  ASSERT_TRUE((*a)->Close().ok());
  std::filesystem::remove_all(dir);
}

TEST(DbPosixTest, BackgroundFlushByAgeAndSize) {
  std::string dir = ::testing::TempDir() + "/usagedb_bg_test";
  std::filesystem::remove_all(dir);
  Options o;
  o.flush_interval_ms = 50;
  o.memtable_bytes = 1 << 20;
  {
    auto db = DB::Open(o, dir);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    IngestResult r;
    ASSERT_TRUE((*db)->Ingest({MakeEvent("a", "acc", 3)}, &r).ok());
    for (int i = 0; i < 200 && (*db)->Stats().segment_count == 0; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GT((*db)->Stats().segment_count, 0u) << "the age trigger never flushed";
    ASSERT_TRUE((*db)->Close().ok());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

TEST_F(DbTest, SnapshotReaderFlushesAndPinsAPointInTime) {
  Open();
  Ingest({MakeEvent("s1", "acc", 1), MakeEvent("s2", "acc2", 2)});
  uint64_t seq1 = db_->LastSequence();
  Ingest({MakeEvent("s3", "acc", 4)});
  auto snap = db_->OpenSnapshot(std::nullopt);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  Ingest({MakeEvent("after", "acc", 8)});  // acknowledged after the snapshot: never visited
  uint64_t rows = 0;
  __int128 sum = 0;
  for (size_t i = 0; i < (*snap)->segments().size(); i++) {
    ASSERT_TRUE((*snap)->ScanSegment(i, ReadFilter(), [&](const Event& e) {
      rows++;
      sum += e.quantity;
      return true;
    }).ok());
  }
  EXPECT_EQ(3u, rows);
  EXPECT_EQ("7", Q(sum));
  EXPECT_GT((*snap)->pinned_bytes(), 0u);
  auto past = db_->OpenSnapshot(seq1);
  ASSERT_TRUE(past.ok());
  rows = 0;
  for (size_t i = 0; i < (*past)->segments().size(); i++) {
    ASSERT_TRUE((*past)->ScanSegment(i, ReadFilter(), [&](const Event&) {
      rows++;
      return true;
    }).ok());
  }
  EXPECT_EQ(2u, rows);
  EXPECT_TRUE(db_->OpenSnapshot(db_->LastSequence() + 5).status().IsInvalidArgument());
}

TEST_F(DbTest, AsOfMsCountsEventsStampedAtOrBefore) {
  Open();
  IngestResult a = Ingest({MakeEvent("t1", "acc", 1)});
  clock_.AdvanceMs(1000);
  Ingest({MakeEvent("t2", "acc", 2)});
  ReadFilter f;
  f.as_of_ms = a.ingested_at_ms;
  for (int flushed = 0; flushed < 2; flushed++) {
    AggregateResult r;
    ASSERT_TRUE(db_->Aggregate(f, false, &r).ok());
    EXPECT_EQ("1", Q(r.rows[0].quantity));
    ASSERT_TRUE(db_->Flush().ok());
  }
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

// Overwrites the newest MANIFEST-* file's middle bytes (an unreadable generation).
void CorruptNewestManifest(FaultInjectionFileSystem* fs) {
  auto names = fs->ListDir("/db");
  ASSERT_TRUE(names.ok());
  std::string newest;
  for (const std::string& n : *names) {
    if (n.rfind("MANIFEST-", 0) == 0 && n.find(".tmp") == std::string::npos && n > newest) {
      newest = n;
    }
  }
  ASSERT_FALSE(newest.empty());
  std::string data;
  ASSERT_TRUE(fs->ReadFileToString("/db/" + newest, &data).ok());
  data[data.size() / 2] ^= 0x5a;
  auto f = fs->NewWritableFile("/db/" + newest);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(data).ok());
  ASSERT_TRUE((*f)->Sync().ok());
}

// The files directly under db_root/<sub>, sorted.
std::vector<std::string> FilesIn(FaultInjectionFileSystem* fs, const std::string& sub) {
  auto names = fs->ListDir("/db/" + sub);
  EXPECT_TRUE(names.ok());
  std::vector<std::string> out = names.ok() ? *names : std::vector<std::string>{};
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(DbTest, UnreadableNewestManifestReadoptsTheFlushItCommitted) {
  options_.max_immutable_memtables = 4;
  Open();
  Ingest({MakeEvent("f0", "acc", 8)});
  ASSERT_TRUE(db_->Flush().ok());
  // The newest generation's flush: events of several partitions and a conflict.
  IngestResult r = Ingest({MakeEvent("f1", "acc", 1), MakeEvent("f2", "other", 2),
                           MakeEvent("f3", "third", 4), MakeEvent("f0", "acc", 9)});
  ASSERT_EQ(1u, r.conflicts);
  ASSERT_TRUE(db_->Flush().ok());  // retires the WAL file holding f1..f3
  Ingest({MakeEvent("f4", "acc", 16)});
  // Stop without a final flush: f4 is only in the WAL.
  Crash(/*power_loss=*/false);
  CorruptNewestManifest(&fs_);
  // The older generation lacks f1..f3 and their WAL is gone, but the flush's segments, dedupe
  // run and conflict log are all on disk and name each other: they are re-adopted by origin.
  Open();
  const RecoveryReport& rep = db_->recovery_report();
  ASSERT_EQ(1u, rep.skipped_generations.size());
  EXPECT_FALSE(rep.adopted.empty());
  EXPECT_TRUE(rep.orphans.empty()) << rep.orphans.front();
  EXPECT_EQ(std::make_pair(std::string("31"), uint64_t{5}), Total());
  ConflictListResult conflicts;
  ASSERT_TRUE(db_->ListConflicts(ConflictListRequest(), &conflicts).ok());
  ASSERT_EQ(1u, conflicts.conflicts.size());
  EXPECT_EQ("f0", conflicts.conflicts[0].event.event_id);
  r = Ingest({MakeEvent("f1", "acc", 1), MakeEvent("f3", "third", 5), MakeEvent("f4", "acc", 16),
              MakeEvent("f5", "acc", 32)});
  EXPECT_EQ(Outcome::kDuplicate, r.results[0].outcome);
  EXPECT_EQ(Outcome::kConflict, r.results[1].outcome);
  EXPECT_EQ(Outcome::kDuplicate, r.results[2].outcome);
  EXPECT_EQ(Outcome::kAccepted, r.results[3].outcome);
  // The adoption was committed: a restart needs no fallback and sees the same.
  Reopen();
  EXPECT_TRUE(db_->recovery_report().skipped_generations.empty());
  EXPECT_EQ(std::make_pair(std::string("63"), uint64_t{6}), Total());
}

// A skipped flush whose files are not all present cannot be rebuilt: startup refuses,
// naming the generations, and deletes nothing.
class FallbackRefusalTest : public DbTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(FallbackRefusalTest, RefusesWhenAFileOfTheSkippedFlushIsMissing) {
  options_.max_immutable_memtables = 4;
  Open();
  Ingest({MakeEvent("f0", "acc", 8)});
  ASSERT_TRUE(db_->Flush().ok());
  Ingest({MakeEvent("f1", "acc", 1), MakeEvent("f2", "other", 2), MakeEvent("f0", "acc", 9)});
  std::vector<std::string> before_seg = FilesIn(&fs_, "segments");
  std::vector<std::string> before_ded = FilesIn(&fs_, "dedupe");
  std::vector<std::string> before_con = FilesIn(&fs_, "conflicts");
  ASSERT_TRUE(db_->Flush().ok());
  Crash(/*power_loss=*/false);
  CorruptNewestManifest(&fs_);
  // Remove one file the newest flush wrote.
  const std::string sub = GetParam();
  std::vector<std::string> before = sub == "segments" ? before_seg
                                    : sub == "dedupe" ? before_ded
                                                      : before_con;
  std::vector<std::string> after = FilesIn(&fs_, sub);
  std::string victim;
  for (const std::string& n : after) {
    if (!std::binary_search(before.begin(), before.end(), n)) victim = n;
  }
  ASSERT_FALSE(victim.empty());
  ASSERT_TRUE(fs_.RemoveFile("/db/" + sub + "/" + victim).ok());
  std::vector<std::string> left = FilesIn(&fs_, "segments");
  auto r = DB::Open(options_, "/db");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find("MANIFEST-")) << r.status().ToString();
  EXPECT_EQ(left, FilesIn(&fs_, "segments")) << "a refused fallback deletes nothing";
}

INSTANTIATE_TEST_SUITE_P(EachFileKind, FallbackRefusalTest,
                         ::testing::Values("segments", "dedupe", "conflicts"));

TEST_F(DbTest, UnreadableNewestManifestRefusesWhenNothingWasFlushedButTheWalIsGone) {
  Open();
  Ingest({MakeEvent("g1", "acc", 1)});
  ASSERT_TRUE(db_->Flush().ok());
  Crash(/*power_loss=*/false);
  CorruptNewestManifest(&fs_);
  // Remove every file of the flush; its WAL file was retired: g1 exists nowhere else.
  for (const char* sub : {"segments", "dedupe"}) {
    for (const std::string& n : FilesIn(&fs_, sub)) {
      ASSERT_TRUE(fs_.RemoveFile(std::string("/db/") + sub + "/" + n).ok());
    }
  }
  auto r = DB::Open(options_, "/db");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
}

TEST_F(DbTest, UnreadableNewestManifestFallsBackWhenTheWalStillCoversIt) {
  options_.wal_recycle_files = 0;  // retiring = RemoveFile, which fails below
  Open();
  Ingest({MakeEvent("w1", "acc", 1), MakeEvent("w2", "acc", 2)});
  // The flush commits a new generation, but retiring its WAL file fails (left on disk).
  fs_.FailNth(1, OpKind::kRemoveFile);
  ASSERT_TRUE(db_->Flush().ok());
  Ingest({MakeEvent("w3", "acc", 4)});
  Crash(/*power_loss=*/false);
  CorruptNewestManifest(&fs_);
  // Falls back to the creation generation: the skipped flush is re-adopted (its files are
  // complete) and the WAL units above it are replayed; nothing counts twice.
  Open();
  EXPECT_EQ(std::make_pair(std::string("7"), uint64_t{3}), Total());
  ASSERT_EQ(1u, db_->recovery_report().skipped_generations.size());
  EXPECT_FALSE(db_->recovery_report().adopted.empty());
  EXPECT_EQ(Outcome::kDuplicate, Ingest({MakeEvent("w1", "acc", 1)}).results[0].outcome);
  Reopen();
  EXPECT_EQ(std::make_pair(std::string("7"), uint64_t{3}), Total());
}

TEST_F(DbTest, OpenDecodesFootersButASegmentDeletedAfterwardsStillFailsQueries) {
  Open();
  Ingest({MakeEvent("w1", "acc", 1), MakeEvent("w2", "other", 2), MakeEvent("w3", "third", 4)});
  ASSERT_TRUE(db_->Flush().ok());
  Reopen();
  std::vector<std::string> segs = FilesIn(&fs_, "segments");
  ASSERT_FALSE(segs.empty());
  // Open decoded every footer (no query pays it) but holds no file open.
  EXPECT_GT(db_->recovery_report().footer_bytes, 200u * segs.size());
  ASSERT_TRUE(fs_.RemoveFile("/db/segments/" + segs[0]).ok());
  ReadFilter f;
  AggregateResult r;
  Status s = db_->Aggregate(f, false, &r);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find(segs[0])) << s.ToString();
  QueryRequest q;
  q.columns = {QueryColumn{"quantity", true, "", QueryFunc::kSum}};
  QueryResult qr;
  s = db_->Query(q, &qr);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find(segs[0])) << s.ToString();
}

TEST_F(DbTest, AnIncompleteSkippedFlushFallsBackToTheWalWhenItStillCoversIt) {
  options_.wal_recycle_files = 0;  // retiring = RemoveFile, which fails below
  Open();
  Ingest({MakeEvent("w1", "acc", 1), MakeEvent("w2", "other", 2)});
  fs_.FailNth(1, OpKind::kRemoveFile);  // the flush's WAL file stays
  ASSERT_TRUE(db_->Flush().ok());
  Crash(/*power_loss=*/false);
  CorruptNewestManifest(&fs_);
  // One segment of the skipped flush is gone: not adopted; the WAL still has both events.
  std::vector<std::string> segs = FilesIn(&fs_, "segments");
  ASSERT_EQ(2u, segs.size());
  ASSERT_TRUE(fs_.RemoveFile("/db/segments/" + segs[0]).ok());
  Open();
  EXPECT_TRUE(db_->recovery_report().adopted.empty());
  EXPECT_FALSE(db_->recovery_report().orphans.empty());
  EXPECT_EQ(std::make_pair(std::string("3"), uint64_t{2}), Total());
}

TEST_F(DbTest, MergedAwayDedupeRunsStayWhileARetainedGenerationNeedsThem) {
  Open();
  int flushes = 0;
  uint64_t total = 0;
  // Twelve flushes: runs 9 → merge → 6 after flush 9, and again after flush 12, so the newest
  // generation is a merge; when it is lost, the previous generation must still open (the
  // runs it lists, the merge's inputs, are still on disk).
  for (int f = 0; f < 12; f++) {
    std::vector<Event> batch;
    for (int i = 0; i < 5; i++) {
      batch.push_back(MakeEvent("r" + std::to_string(f) + "_" + std::to_string(i), "acc", 1));
    }
    total += 5;
    Ingest(std::move(batch));
    ASSERT_TRUE(db_->Flush().ok());
    flushes++;
  }
  EXPECT_LE(FilesIn(&fs_, "dedupe").size(), 6u + 2u * 4u)
      << "released runs are deleted once no retained generation references them";
  Crash(/*power_loss=*/false);
  CorruptNewestManifest(&fs_);
  Open();
  EXPECT_EQ(total, Total().second);
  IngestResult r = Ingest({MakeEvent("r0_0", "acc", 1), MakeEvent("r11_4", "acc", 1)});
  EXPECT_EQ(2u, r.duplicates);
  Reopen();
  EXPECT_EQ(total, Total().second);
  EXPECT_GT(flushes, 8);
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

TEST_F(DbTest, DedupeRunsAreMergedAndStillFindEveryKey) {
  Open();
  for (int f = 0; f < 20; f++) {
    std::vector<Event> batch;
    for (int i = 0; i < 30; i++) {
      batch.push_back(MakeEvent("m" + std::to_string(f) + "_" + std::to_string(i),
                                "acc" + std::to_string(i % 7), 1));
    }
    Ingest(batch);
    ASSERT_TRUE(db_->Flush().ok());
  }
  DbStats st = db_->Stats();
  EXPECT_LE(st.dedupe_runs, 8u) << "runs must be merged as they pile up";
  EXPECT_EQ(600u, st.dedupe_keys);
  // Every key is still remembered, through merged runs, also after a restart.
  for (int pass = 0; pass < 2; pass++) {
    for (int f = 0; f < 20; f += 3) {
      IngestResult r = Ingest({MakeEvent("m" + std::to_string(f) + "_4", "acc4", 1),
                               MakeEvent("m" + std::to_string(f) + "_5", "acc5", 2)});
      EXPECT_EQ(Outcome::kDuplicate, r.results[0].outcome) << f;
      EXPECT_EQ(Outcome::kConflict, r.results[1].outcome) << f;
    }
    Reopen();
  }
  EXPECT_EQ(std::make_pair(std::string("600"), uint64_t{600}), Total());
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

TEST_F(DbTest, ConflictsAreDurableAndListedOnce) {
  Open();
  Ingest({MakeEvent("c1", "acc", 1), MakeEvent("c2", "acc", 2)});
  IngestResult r = Ingest({MakeEvent("c1", "acc", 100), MakeEvent("c2", "acc", 2)});
  ASSERT_EQ(1u, r.conflicts);
  ASSERT_TRUE(db_->Flush().ok());  // the first conflict goes to a conflict-log file
  clock_.AdvanceMs(1000);
  r = Ingest({MakeEvent("c2", "acc", 200)});  // the second stays in the WAL/memtable
  ASSERT_EQ(1u, r.conflicts);
  for (int round = 0; round < 2; round++) {
    ConflictListResult list;
    ASSERT_TRUE(db_->ListConflicts(ConflictListRequest(), &list).ok());
    ASSERT_EQ(2u, list.conflicts.size()) << "round " << round;
    EXPECT_EQ("c1", list.conflicts[0].event.event_id);
    EXPECT_EQ("100", Q(list.conflicts[0].event.quantity));  // the rejected payload in full
    EXPECT_EQ("conflict", list.conflicts[0].reason);
    EXPECT_GT(list.conflicts[0].stored_ingested_at_ms, 0);
    EXPECT_EQ("c2", list.conflicts[1].event.event_id);
    ConflictListRequest paged;
    paged.limit = 1;
    ASSERT_TRUE(db_->ListConflicts(paged, &list).ok());
    ASSERT_EQ(1u, list.conflicts.size());
    paged.cursor = list.next_cursor;
    ASSERT_TRUE(db_->ListConflicts(paged, &list).ok());
    ASSERT_EQ(1u, list.conflicts.size());
    EXPECT_EQ("c2", list.conflicts[0].event.event_id);
    EXPECT_TRUE(list.next_cursor.empty());
    Crash(/*power_loss=*/true);  // strict: the unit with the conflict was synced
    Open();
  }
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

TEST_F(DbTest, FastModeFsyncErrorRewritesAcknowledgedUnitsBeforeAnythingElse) {
  options_.durability = Durability::kFast;
  options_.background_flush = false;
  Open();
  Ingest({MakeEvent("f1", "acc", 1)});  // acknowledged after write(), not yet synced
  Ingest({MakeEvent("f2", "acc", 2)});
  fs_.FailNth(1, OpKind::kSync);
  Status s = db_->Flush();  // the flush's WAL fsync fails
  EXPECT_EQ(StatusCode::kUnavailable, s.code()) << s.ToString();
  // The acknowledged units were rewritten to a new WAL file and synced: power loss now keeps
  // them, and nothing is counted twice although their sequences are in two files.
  Crash(/*power_loss=*/true);
  Open();
  EXPECT_EQ(std::make_pair(std::string("3"), uint64_t{2}), Total());
  Ingest({MakeEvent("f3", "acc", 4)});
  ASSERT_TRUE(db_->Flush().ok());
  EXPECT_EQ(std::make_pair(std::string("7"), uint64_t{3}), Total());
}

}  // namespace
}  // namespace usagedb::testing

namespace usagedb::testing {
namespace {

TEST_F(DbTest, DiskFullFailsTheBatchAndRecoversWhenSpaceReturns) {
  Open();
  Ingest({MakeEvent("before", "acc", 1)});
  fs_.SetSpaceLimit(fs_.TotalFileBytes() + 64);  // almost no room left
  std::vector<Event> big;
  for (int i = 0; i < 50; i++) big.push_back(MakeEvent("full" + std::to_string(i), "acc", 1));
  IngestResult r;
  Status s = db_->Ingest(big, &r);
  EXPECT_EQ(StatusCode::kUnavailable, s.code()) << s.ToString();
  EXPECT_EQ(std::make_pair(std::string("1"), uint64_t{1}), Total());
  fs_.ResetFaults();  // space is back
  // The WAL recovers on the next write (void record in a new file), and the retry succeeds.
  r = Ingest(big);
  EXPECT_EQ(50u, r.accepted);
  Crash(/*power_loss=*/true);
  Open();
  EXPECT_EQ(std::make_pair(std::string("51"), uint64_t{51}), Total());
}

// Retired WAL files are recycled: the next WAL file overwrites one instead of being created.
// While open the pool holds a retired file; Close removes it and cuts the active file's old
// bytes; a crash leaves the pool file for recovery to remove. Totals never change.
TEST_F(DbTest, RetiredWalFilesAreRecycledAndCloseLeavesNoSpareBytes) {
  auto wal_files = [&] {
    std::vector<std::string> logs, pooled;
    for (const std::string& n : FilesIn(&fs_, "wal")) {
      (n.find(".recycle.tmp") != std::string::npos ? pooled : logs).push_back(n);
    }
    return std::make_pair(logs, pooled);
  };
  Open();
  for (int i = 0; i < 4; i++) {
    std::vector<Event> batch;
    for (int k = 0; k < 20; k++) {
      batch.push_back(MakeEvent("r" + std::to_string(i) + "_" + std::to_string(k), "acc", 1));
    }
    Ingest(std::move(batch));
    ASSERT_TRUE(db_->Flush().ok());
  }
  DbStats st = db_->Stats();
  EXPECT_EQ(3u, st.wal_files_recycled);  // the flushes after the first reuse a retired file
  EXPECT_EQ(2u, st.wal_files_created);   // at creation and at the first flush
  auto [logs, pooled] = wal_files();
  ASSERT_EQ(1u, logs.size());
  ASSERT_EQ(1u, pooled.size());
  // The active file is a recycled one: bigger than its records (a header only here).
  EXPECT_GT(*fs_.FileSize("/db/wal/" + logs[0]), wal::kHeaderSize);
  Ingest({MakeEvent("late", "acc", 5)});
  EXPECT_EQ(std::make_pair(std::string("85"), uint64_t{81}), Total());

  // A crash: the recycled file's old records are not replayed, the pool file is removed.
  Crash(/*power_loss=*/true);
  Open();
  EXPECT_EQ(std::make_pair(std::string("85"), uint64_t{81}), Total());
  EXPECT_GE(db_->recovery_report().temporaries_removed, 1u);
  EXPECT_TRUE(wal_files().second.empty());
  EXPECT_EQ(Outcome::kDuplicate, Ingest({MakeEvent("r0_0", "acc", 1)}).results[0].outcome);

  ASSERT_TRUE(db_->Flush().ok());
  ASSERT_TRUE(db_->Flush().ok());
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  std::tie(logs, pooled) = wal_files();
  EXPECT_TRUE(pooled.empty());
  for (const std::string& n : logs) {
    auto r = wal::ReadWalFile(&fs_, "/db/wal/" + n, false);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->torn_tail) << n;
    EXPECT_EQ(*fs_.FileSize("/db/wal/" + n), r->valid_length) << n;
  }
  Open();
  EXPECT_EQ(std::make_pair(std::string("85"), uint64_t{81}), Total());
}


}  // namespace
}  // namespace usagedb::testing
