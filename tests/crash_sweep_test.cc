// Crash sweep (STYLE.md): run a workload with several flushes on the fault-injecting file
// system; for every mutating file operation k, crash at k, drop unsynced data (power loss),
// reopen, and check that every acknowledged event is present exactly once, nothing is stored
// twice, and the database keeps working.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "db_test_util.h"
#include "io/fault_injection_fs.h"
#include "util/clock.h"

namespace usagedb::testing {
namespace {

struct Outcomes {
  std::set<std::string> acked;  // accepted and acknowledged (Ingest returned ok)
  std::map<std::string, std::string> quantity_of;  // every id the workload ever sent
};

Options SweepOptions(FileSystem* fs, Clock* clock, Durability durability) {
  Options o;
  o.file_system = fs;
  o.clock = clock;
  o.background_flush = false;
  o.bucket_count = 2;
  o.durability = durability;
  return o;
}

// Runs until the first failure. Returns the number of batches fully acknowledged.
void RunWorkload(DB* db, Outcomes* out, bool with_flush_sync) {
  for (int b = 0; b < 9; b++) {
    std::vector<Event> batch;
    for (int i = 0; i < 6; i++) {
      std::string id = "b" + std::to_string(b) + "_e" + std::to_string(i);
      batch.push_back(MakeEvent(id, "acc" + std::to_string(i % 3), b * 10 + i,
                                kNowMs - (i + 1) * kHourMs - b * 86400000LL * 20));
      out->quantity_of[id] = std::to_string(b * 10 + i);
    }
    if (b > 0) {
      batch.push_back(MakeEvent("b" + std::to_string(b - 1) + "_e0", "acc0", (b - 1) * 10));
      batch.push_back(MakeEvent("b" + std::to_string(b - 1) + "_e1", "acc1", 999));  // conflict
    }
    IngestResult r;
    Status s = db->Ingest(batch, &r);
    if (!s.ok()) return;
    for (const EventResult& er : r.results) {
      if (er.outcome == Outcome::kAccepted) out->acked.insert(er.event_id);
    }
    if (b % 3 == 2) {
      Status f = db->Flush();
      if (!f.ok() && with_flush_sync) return;
    }
  }
}

void CheckRecovered(DB* db, const Outcomes& o, const std::string& where) {
  std::map<std::string, int> stored = StoredIds(db);
  for (const std::string& id : o.acked) {
    auto it = stored.find(id);
    ASSERT_TRUE(it != stored.end()) << where << ": acknowledged event " << id << " lost";
  }
  for (const auto& [id, n] : stored) {
    ASSERT_EQ(1, n) << where << ": " << id << " stored " << n << " times";
    ASSERT_TRUE(o.quantity_of.count(id)) << where << ": unknown event " << id;
  }
  // Sums agree with the events that are stored (each counted once).
  WideSum expect;
  for (const auto& [id, n] : stored) expect.Add(*ParseQuantity(o.quantity_of.at(id)));
  AggregateResult r;
  ASSERT_TRUE(db->Aggregate(ReadFilter(), false, &r).ok());
  ASSERT_EQ(Q(*expect.Value()), Q(r.rows[0].quantity)) << where;
  ASSERT_EQ(stored.size(), r.rows[0].count) << where;
}

// Parameters: durability mode, and whether the power loss persists unsynced pages out of
// order (FaultInjectionFileSystem::DropUnsyncedDataOutOfOrder, seeded by the crash point):
// then a WAL can hold a hole followed by valid records of the same unsynced writes, which
// recovery must treat as a torn tail (not as damage that stops startup).
class CrashSweep : public ::testing::TestWithParam<std::tuple<Durability, bool>> {};

TEST_P(CrashSweep, EveryAcknowledgedEventSurvivesACrashAtEveryOperation) {
  const Durability durability = std::get<0>(GetParam());
  const bool out_of_order = std::get<1>(GetParam());
  int64_t total_ops;
  {
    FaultInjectionFileSystem fs;
    ManualClock clock(kNowMs);
    auto db = DB::Open(SweepOptions(&fs, &clock, durability), "/db");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    Outcomes o;
    RunWorkload(db->get(), &o, true);
    ASSERT_EQ(54u, o.acked.size());
    // The flushes' retired WAL files are recycled, so crashes also hit WAL files whose old
    // records (of another file) lie past their own.
    EXPECT_GE((*db)->Stats().wal_files_recycled, 2u);
    total_ops = fs.mutating_ops();
  }
  ASSERT_GT(total_ops, 100);
  int checked = 0;
  uint64_t unsynced_dropped = 0;
  for (int64_t k = 0; k < total_ops; k++) {
    FaultInjectionFileSystem fs;
    ManualClock clock(kNowMs);
    Options options = SweepOptions(&fs, &clock, durability);
    Outcomes o;
    fs.CrashAfter(k);
    {
      auto db = DB::Open(options, "/db");
      if (db.ok()) RunWorkload(db->get(), &o, true);
      // The process dies here: the destructor's close attempts fail without effect.
    }
    if (out_of_order) {
      // 512-byte sectors: the workload's units are small, so several share a 4 KiB page.
      fs.DropUnsyncedDataOutOfOrder(static_cast<uint64_t>(k) + 1, 512);
    } else {
      fs.DropUnsyncedData();
    }
    auto db = DB::Open(options, "/db");
    ASSERT_TRUE(db.ok()) << "crash at op " << k << ": reopen failed: " << db.status().ToString();
    unsynced_dropped += (*db)->recovery_report().unsynced_records_dropped;
    std::string where = "crash at op " + std::to_string(k);
    if (durability == Durability::kFast) {
      // fast mode may lose acknowledged-but-unsynced events on power loss; only the
      // exactly-once property is checked.
      o.acked.clear();
    }
    CheckRecovered(db->get(), o, where);
    if (::testing::Test::HasFatalFailure()) return;
    // The recovered database keeps working: new events, a flush, another restart.
    IngestResult r;
    ASSERT_TRUE((*db)->Ingest({MakeEvent("after_" + std::to_string(k), "acc0", 1)}, &r).ok())
        << where;
    ASSERT_TRUE((*db)->Flush().ok()) << where;
    ASSERT_TRUE((*db)->Close().ok()) << where;
    db->reset();
    auto again = DB::Open(options, "/db");
    ASSERT_TRUE(again.ok()) << where << ": " << again.status().ToString();
    o.quantity_of["after_" + std::to_string(k)] = "1";
    o.acked.insert("after_" + std::to_string(k));
    CheckRecovered(again->get(), o, where + " (second restart)");
    if (::testing::Test::HasFatalFailure()) return;
    checked++;
  }
  EXPECT_EQ(total_ops, checked);
  std::printf("crash points checked: %d, unsynced records after a hole dropped: %llu\n",
              checked, static_cast<unsigned long long>(unsynced_dropped));
  // Fast mode leaves several units unsynced at most crash points, so some power losses must
  // have produced the hole-then-valid-records case this variant exists for.
  if (out_of_order && durability == Durability::kFast) {
    EXPECT_GT(unsynced_dropped, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CrashSweep,
                         ::testing::Combine(::testing::Values(Durability::kStrict,
                                                              Durability::kFast),
                                            ::testing::Bool()));

// Strict mode with four concurrent writers (group commits of one or more units): the power loss
// comes at a different operation each round and persists the unsynced writes out of order.
// Every acknowledged event must be present exactly once and startup never refused. (On this
// in-memory file system multi-unit groups are short-lived, so a hole followed by a surviving
// unit is rare here; the fast-mode sweep above produces that case deterministically.)
TEST(CrashSweep, ConcurrentStrictWritersSurviveOutOfOrderPowerLoss) {
  uint64_t unsynced_dropped = 0;
  for (int round = 0; round < 24; round++) {
    FaultInjectionFileSystem fs;
    ManualClock clock(kNowMs);
    Options options = SweepOptions(&fs, &clock, Durability::kStrict);
    std::mutex mu;
    Outcomes o;
    {
      auto db = DB::Open(options, "/db");
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      fs.CrashAfter(60 + round * 13);
      std::vector<std::thread> writers;
      for (int t = 0; t < 4; t++) {
        writers.emplace_back([&, t] {
          for (int b = 0; b < 40; b++) {
            std::vector<Event> batch;
            std::vector<std::string> ids;
            for (int i = 0; i < 8; i++) {
              ids.push_back("r" + std::to_string(round) + "_t" + std::to_string(t) + "_b" +
                            std::to_string(b) + "_e" + std::to_string(i));
              batch.push_back(MakeEvent(ids.back(), "acc" + std::to_string(i % 3), 1 + i));
            }
            {
              std::lock_guard<std::mutex> l(mu);
              for (int i = 0; i < 8; i++) o.quantity_of[ids[i]] = std::to_string(1 + i);
            }
            IngestResult r;
            if (!(*db)->Ingest(std::move(batch), &r).ok()) return;
            std::lock_guard<std::mutex> l(mu);
            for (const EventResult& er : r.results) {
              if (er.outcome == Outcome::kAccepted) o.acked.insert(er.event_id);
            }
          }
        });
      }
      for (auto& w : writers) w.join();
    }
    fs.DropUnsyncedDataOutOfOrder(static_cast<uint64_t>(round) + 1, 512);
    auto db = DB::Open(options, "/db");
    const std::string where = "round " + std::to_string(round);
    ASSERT_TRUE(db.ok()) << where << ": reopen failed: " << db.status().ToString();
    unsynced_dropped += (*db)->recovery_report().unsynced_records_dropped;
    CheckRecovered(db->get(), o, where);
    if (::testing::Test::HasFatalFailure()) return;
  }
  std::printf("unsynced records after a hole dropped over all rounds: %llu\n",
              static_cast<unsigned long long>(unsynced_dropped));
}

// A single failed operation (not a crash) anywhere in the workload: the database either
// reports the failure or carries on, and after a restart every acknowledged event is there
// exactly once.
TEST(FaultSweep, OneFailedOperationNeverLosesAcknowledgedEvents) {
  int64_t total_ops;
  {
    FaultInjectionFileSystem fs;
    ManualClock clock(kNowMs);
    auto db = DB::Open(SweepOptions(&fs, &clock, Durability::kStrict), "/db");
    ASSERT_TRUE(db.ok());
    Outcomes o;
    RunWorkload(db->get(), &o, true);
    total_ops = fs.mutating_ops();
  }
  for (int64_t k = 1; k <= total_ops; k++) {
    FaultInjectionFileSystem fs;
    ManualClock clock(kNowMs);
    Options options = SweepOptions(&fs, &clock, Durability::kStrict);
    fs.FailNth(k, OpKind::kAny);
    Outcomes o;
    {
      auto db = DB::Open(options, "/db");
      if (db.ok()) {
        RunWorkload(db->get(), &o, false);
        (*db)->Close().IgnoreError();  // may fail when the fault hit the final flush
      }
    }
    fs.ResetFaults();
    fs.DropUnsyncedData();
    auto db = DB::Open(options, "/db");
    ASSERT_TRUE(db.ok()) << "fault at op " << k << ": " << db.status().ToString();
    CheckRecovered(db->get(), o, "fault at op " + std::to_string(k));
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace usagedb::testing
