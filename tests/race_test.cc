// Many rounds of one event_id submitted from several threads at once (same and different
// payloads): never two accepted, totals exactly once (SPEC §2.1).
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <filesystem>
#include <thread>

#include "db_test_util.h"

namespace usagedb::testing {
namespace {

TEST(RaceTest, OneIdFromManyThreadsIsAcceptedOnce) {
  std::string dir = ::testing::TempDir() + "/usagedb_race_test";
  std::filesystem::remove_all(dir);
  Options o;
  o.durability = Durability::kFast;  // the race is in classification, not in fsync
  o.memtable_bytes = 64 << 10;       // flushes during the test: ids move to dedupe runs
  auto db_or = DB::Open(o, dir);
  ASSERT_TRUE(db_or.ok()) << db_or.status().ToString();
  DB* db = db_or->get();

  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::atomic<int> accepted_total{0}, conflicts{0}, duplicates{0}, errors{0};
  std::vector<std::atomic<int>> accepted_per_round(kRounds);
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; round++) {
        sync.arrive_and_wait();
        std::string id = "race-" + std::to_string(round);
        // Even rounds: every thread sends the same payload; odd rounds: each its own.
        __int128 q = round % 2 == 0 ? 5 : 100 + t;
        std::vector<Event> batch = {MakeEvent(id, "acc", q),
                                    MakeEvent(id + "-t" + std::to_string(t), "acc", 1)};
        IngestResult r;
        Status s = db->Ingest(batch, &r);
        if (!s.ok()) {
          errors++;
          continue;
        }
        if (r.results[0].outcome == Outcome::kAccepted) {
          accepted_per_round[round]++;
          accepted_total++;
        }
        if (r.results[0].outcome == Outcome::kConflict) conflicts++;
        if (r.results[0].outcome == Outcome::kDuplicate) duplicates++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(0, errors.load());
  for (int round = 0; round < kRounds; round++) {
    ASSERT_EQ(1, accepted_per_round[round].load()) << "round " << round;
  }
  EXPECT_EQ(kRounds / 2 * (kThreads - 1), duplicates.load());
  EXPECT_EQ(kRounds / 2 * (kThreads - 1), conflicts.load());
  std::map<std::string, int> stored = StoredIds(db);
  EXPECT_EQ(static_cast<size_t>(kRounds + kRounds * kThreads), stored.size());
  for (const auto& [id, n] : stored) ASSERT_EQ(1, n) << id;
  ASSERT_TRUE(db->Close().ok());
  std::filesystem::remove_all(dir);
}

// A group's memtable inserts overlap the next group's WAL write and fsync (DBImpl::Commit).
// With real fsyncs, several writers and memtables switched every few batches: an event is
// visible (to the dedupe check and in last_sequence) when its batch is acknowledged, every
// memtable is complete when it is flushed, and each event is stored exactly once.
TEST(RaceTest, AcknowledgedBatchesAreVisibleWhileTheNextGroupCommits) {
  std::string dir = ::testing::TempDir() + "/usagedb_race_pipeline_test";
  std::filesystem::remove_all(dir);
  Options o;
  o.durability = Durability::kStrict;
  o.memtable_bytes = 16 << 10;  // a switch (and a flush) every few batches
  auto db_or = DB::Open(o, dir);
  ASSERT_TRUE(db_or.ok()) << db_or.status().ToString();
  DB* db = db_or->get();

  constexpr int kThreads = 4;
  constexpr int kBatches = 60;
  constexpr int kPerBatch = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; b++) {
        std::vector<Event> batch;
        for (int i = 0; i < kPerBatch; i++) {
          batch.push_back(MakeEvent("p" + std::to_string(t) + "-" + std::to_string(b) + "-" +
                                        std::to_string(i),
                                    "acc" + std::to_string(i % 3), 1));
        }
        const std::vector<Event> resend = batch;
        IngestResult r;
        Status s = db->Ingest(batch, &r);
        if (!s.ok() || r.accepted != kPerBatch) {
          failures++;
          continue;
        }
        // Acknowledged means visible: the snapshot sequence covers the batch, and a resend
        // (right away, while other groups commit) finds every event.
        if (db->Stats().last_sequence < r.commit_sequence) failures++;
        IngestResult again;
        s = db->Ingest(resend, &again);
        if (!s.ok() || again.duplicates != kPerBatch) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(0, failures.load());
  std::map<std::string, int> stored = StoredIds(db);
  EXPECT_EQ(static_cast<size_t>(kThreads * kBatches * kPerBatch), stored.size());
  for (const auto& [id, n] : stored) ASSERT_EQ(1, n) << id;
  ASSERT_TRUE(db->Close().ok());
  // After a restart (WAL replay of the unflushed tail), still exactly once.
  db_or = DB::Open(o, dir);
  ASSERT_TRUE(db_or.ok()) << db_or.status().ToString();
  stored = StoredIds(db_or->get());
  EXPECT_EQ(static_cast<size_t>(kThreads * kBatches * kPerBatch), stored.size());
  for (const auto& [id, n] : stored) ASSERT_EQ(1, n) << id;
  ASSERT_TRUE((*db_or)->Close().ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace usagedb::testing
