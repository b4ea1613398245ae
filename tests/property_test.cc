// RapidCheck property: random batches with retries, conflicts, flushes and restarts (clean and
// crash-with-power-loss) against an oracle of expected outcomes and sums.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>

#include "db_test_util.h"
#include "io/fault_injection_fs.h"
#include "util/clock.h"

namespace usagedb::testing {
namespace {

struct Op {
  int kind;  // 0..5 ingest, 6 flush, 7 clean restart, 8 crash restart
  std::vector<std::pair<int, int>> events;  // (id in a small pool, payload variant)
};

RC_GTEST_PROP(PropertyTest, OutcomesAndSumsMatchOracle, ()) {
  const auto ops = *rc::gen::container<std::vector<Op>>(
      rc::gen::build<Op>(rc::gen::set(&Op::kind, rc::gen::inRange(0, 9)),
                         rc::gen::set(&Op::events,
                                      rc::gen::container<std::vector<std::pair<int, int>>>(
                                          rc::gen::pair(rc::gen::inRange(0, 40),
                                                        rc::gen::inRange(1, 4))))));
  FaultInjectionFileSystem fs;
  ManualClock clock(kNowMs);
  Options options;
  options.file_system = &fs;
  options.clock = &clock;
  options.background_flush = false;
  options.bucket_count = 3;
  options.memtable_bytes = 3000;  // small memtables: switches happen inside the run
  options.max_immutable_memtables = 8;
  auto db_or = DB::Open(options, "/db");
  RC_ASSERT(db_or.ok());
  std::unique_ptr<DB> db = std::move(db_or).value();
  std::map<int, int> oracle;  // id -> accepted payload variant
  auto account_of = [](int id) { return "acc" + std::to_string(id % 4); };
  for (const Op& op : ops) {
    if (op.kind <= 5) {
      std::vector<Event> batch;
      for (auto [id, variant] : op.events) {
        batch.push_back(MakeEvent("id" + std::to_string(id), account_of(id), variant * 1000 + id));
      }
      IngestResult r;
      Status s = db->Ingest(batch, &r);
      if (!s.ok()) {
        RC_ASSERT(s.code() == StatusCode::kUnavailable);  // backpressure: nothing written
        RC_ASSERT(db->Flush().ok());
        continue;
      }
      for (size_t i = 0; i < op.events.size(); i++) {
        auto [id, variant] = op.events[i];
        auto it = oracle.find(id);
        Outcome expect = it == oracle.end()       ? Outcome::kAccepted
                         : it->second == variant ? Outcome::kDuplicate
                                                 : Outcome::kConflict;
        RC_ASSERT(r.results[i].outcome == expect);
        if (expect == Outcome::kAccepted) oracle[id] = variant;
      }
    } else if (op.kind == 6) {
      RC_ASSERT(db->Flush().ok());
    } else if (op.kind == 7) {
      RC_ASSERT(db->Close().ok());
      db.reset();
      auto r = DB::Open(options, "/db");
      RC_ASSERT(r.ok());
      db = std::move(r).value();
    } else {
      fs.CrashAfter(0);
      db.reset();
      fs.DropUnsyncedData();  // strict mode: every acknowledged batch is synced
      auto r = DB::Open(options, "/db");
      RC_ASSERT(r.ok());
      db = std::move(r).value();
    }
    // Sums per account equal the oracle's.
    std::map<std::string, std::pair<__int128, uint64_t>> expect;
    for (auto [id, variant] : oracle) {
      auto& e = expect[account_of(id)];
      e.first += variant * 1000 + id;
      e.second++;
    }
    AggregateResult agg;
    RC_ASSERT(db->Aggregate(ReadFilter(), true, &agg).ok());
    RC_ASSERT(agg.rows.size() == expect.size());
    for (const AggregateRow& row : agg.rows) {
      RC_ASSERT(expect.count(row.account_id) == 1u);
      RC_ASSERT(Q(row.quantity) == Q(expect[row.account_id].first));
      RC_ASSERT(row.count == expect[row.account_id].second);
    }
  }
}

}  // namespace
}  // namespace usagedb::testing
