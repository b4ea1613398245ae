// Query latency benchmark (issue #4, SPEC §9 queries Q1–Q5) through the embedded API on an
// existing database (e.g. the one usagedb_ingest_bench leaves in --dir):
//   usagedb_query_bench --dir /tmp/usagedb_ingest_bench [--runs 50]
// Prints p50/p95/p99 per query over the same sampled accounts, and raw scan rows/s of a
// grouped sum over the whole month.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "usagedb/db.h"
#include "workload.h"

using namespace usagedb;
using SteadyClock = std::chrono::steady_clock;

namespace {

QueryColumn Key(const std::string& k) { return QueryColumn{k, false, k, QueryFunc::kSum}; }
QueryColumn Metric(const std::string& n, QueryFunc f) { return QueryColumn{n, true, "", f}; }

void Report(const char* name, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  std::printf("%-44s p50 %8.2f ms  p95 %8.2f ms  p99 %8.2f ms  (%zu runs)\n", name, pct(0.50),
              pct(0.95), pct(0.99), ms.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"usageDb query latency benchmark"};
  std::string dir = "/tmp/usagedb_ingest_bench";
  int runs = 50;
  app.add_option("--dir", dir);
  app.add_option("--runs", runs);
  CLI11_PARSE(app, argc, argv);
  Options o;
  o.background_flush = false;
  auto db_or = DB::Open(o, dir);
  if (!db_or.ok()) {
    std::fprintf(stderr, "open: %s\n", db_or.status().ToString().c_str());
    return 1;
  }
  DB* db = db_or->get();
  const int64_t from = bench::kMay2026StartMs, to = bench::kJune2026StartMs;
  // Sample accounts the way the workload names them (acct_000000 is the heaviest).
  std::vector<std::string> accounts;
  for (int i = 0; i < runs; i++) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "acct_%06d", (i * 37) % 1000);
    accounts.push_back(buf);
  }
  auto time_query = [&](const char* name, auto make) {
    std::vector<double> ms;
    for (int i = 0; i < runs; i++) {
      QueryRequest req = make(accounts[i]);
      QueryResult r;
      auto t0 = SteadyClock::now();
      Status s = db->Query(req, &r);
      ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
      if (!s.ok()) {
        std::fprintf(stderr, "%s: %s\n", name, s.ToString().c_str());
        std::exit(1);
      }
    }
    Report(name, ms);
  };
  time_query("Q1 monthly total of one account", [&](const std::string& a) {
    QueryRequest q;
    q.account_id = a;
    q.from_ms = from;
    q.to_ms = to;
    q.columns = {Metric("quantity", QueryFunc::kSum), Metric("count", QueryFunc::kCount)};
    return q;
  });
  time_query("Q2 one account's month by product/meter/model", [&](const std::string& a) {
    QueryRequest q;
    q.account_id = a;
    q.from_ms = from;
    q.to_ms = to;
    q.group_by = {"product_id", "meter_id", "model_id"};
    q.columns = {Key("product_id"), Key("meter_id"), Key("model_id"),
                 Metric("quantity", QueryFunc::kSum), Metric("count", QueryFunc::kCount)};
    return q;
  });
  time_query("Q3 one account by day", [&](const std::string& a) {
    QueryRequest q;
    q.account_id = a;
    q.from_ms = from;
    q.to_ms = to;
    q.group_by = {"day"};
    q.columns = {Key("day"), Metric("quantity", QueryFunc::kSum)};
    return q;
  });
  {
    std::vector<double> ms;
    for (int i = 0; i < runs; i++) {
      ListRequest req;
      req.filter.account_id = accounts[i];
      req.filter.from_ms = from + 86400000LL * (i % 28);
      req.filter.to_ms = *req.filter.from_ms + 86400000LL;
      req.filter.meter_ids = {"tokens.output"};
      req.limit = 1000;
      ListResult r;
      auto t0 = SteadyClock::now();
      Status s = db->ListEvents(req, &r);
      ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
      if (!s.ok()) return 1;
    }
    Report("Q4 raw audit of one invoice line (a day)", ms);
  }
  auto t0 = SteadyClock::now();
  QueryResult top;
  {
    QueryRequest q;
    q.from_ms = from;
    q.to_ms = to;
    q.group_by = {"account_id"};
    q.filters = {QueryFilter{"meter_id", {"tokens.output"}}};
    q.columns = {Key("account_id"), Metric("quantity", QueryFunc::kSum)};
    q.order_by = {QueryOrder{"quantity", true}};
    q.limit = 100;
    std::vector<double> ms;
    for (int i = 0; i < std::min(runs, 10); i++) {
      auto s0 = SteadyClock::now();
      if (!db->Query(q, &top).ok()) return 1;
      ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - s0).count());
    }
    Report("Q5 top 100 accounts by tokens.output", ms);
  }
  {
    QueryRequest q;
    q.group_by = {"meter_id"};
    q.columns = {Key("meter_id"), Metric("quantity", QueryFunc::kSum)};
    QueryResult r;
    auto s0 = SteadyClock::now();
    if (!db->Query(q, &r).ok()) return 1;
    double secs = std::chrono::duration<double>(SteadyClock::now() - s0).count();
    std::printf("grouped raw scan (by meter, whole month): %llu rows in %.2f s = %.1fM rows/s\n",
                static_cast<unsigned long long>(r.rows_scanned), secs, r.rows_scanned / secs / 1e6);
  }
  (void)t0;
  return db->Close().ok() ? 0 : 1;
}
