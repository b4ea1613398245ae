// Query latency benchmark (issue #4, SPEC §9 queries Q1–Q5), through the embedded API on an
// existing database (e.g. the one usagedb_ingest_bench leaves in --dir), or over HTTP against a
// running `usagedb serve` (one keep-alive connection):
//   usagedb_query_bench --dir /tmp/usagedb_ingest_bench [--runs 50] [--accounts 1000]
//   usagedb_query_bench --url http://127.0.0.1:8080 [--runs 50] [--accounts 1000]
// Prints p50/p95/p99 per query over the same sampled accounts, and (embedded) raw scan rows/s
// of a grouped sum over the whole month, per wall second and per CPU second (per core).
// --only q1|q2|q3|q4|q5|scan|none runs one query alone (e.g. to count its instructions:
// the same command with --only none is the open/close cost to subtract).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>

#include "tests/server/http_client.h"
#include "usagedb/db.h"
#include "workload.h"

using namespace usagedb;
using SteadyClock = std::chrono::steady_clock;

namespace {

QueryColumn Key(const std::string& k) { return QueryColumn{k, false, k, QueryFunc::kSum}; }
QueryColumn Metric(const std::string& n, QueryFunc f) { return QueryColumn{n, true, "", f}; }

void Report(const char* name, std::vector<double> ms) {
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  std::printf("%-44s p50 %8.2f ms  p95 %8.2f ms  p99 %8.2f ms  max %8.2f ms  (%zu runs)\n", name,
              pct(0.50), pct(0.95), pct(0.99), ms.back(), ms.size());
}

// User + system CPU seconds of this process (every thread).
double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

constexpr const char* kNames[] = {
    "Q1 monthly total of one account", "Q2 one account's month by product/meter/model",
    "Q3 one account by day", "Q4 raw audit of one invoice line (a day)",
    "Q5 top 100 accounts by tokens.output"};

// The five queries as requests of the embedded API.
QueryRequest Q1(const std::string& a, int64_t from, int64_t to) {
  QueryRequest q;
  q.account_id = a;
  q.from_ms = from;
  q.to_ms = to;
  q.columns = {Metric("quantity", QueryFunc::kSum), Metric("count", QueryFunc::kCount)};
  return q;
}
QueryRequest Q2(const std::string& a, int64_t from, int64_t to) {
  QueryRequest q = Q1(a, from, to);
  q.group_by = {"product_id", "meter_id", "model_id"};
  q.columns = {Key("product_id"), Key("meter_id"), Key("model_id"),
               Metric("quantity", QueryFunc::kSum), Metric("count", QueryFunc::kCount)};
  return q;
}
QueryRequest Q3(const std::string& a, int64_t from, int64_t to) {
  QueryRequest q = Q1(a, from, to);
  q.group_by = {"day"};
  q.columns = {Key("day"), Metric("quantity", QueryFunc::kSum)};
  return q;
}
QueryRequest Q5(int64_t from, int64_t to) {
  QueryRequest q;
  q.from_ms = from;
  q.to_ms = to;
  q.group_by = {"account_id"};
  q.filters = {QueryFilter{"meter_id", {"tokens.output"}}};
  q.columns = {Key("account_id"), Metric("quantity", QueryFunc::kSum)};
  q.order_by = {QueryOrder{"quantity", true}};
  q.limit = 100;
  return q;
}
int64_t Q4Day(int i) { return bench::kMay2026StartMs + 86400000LL * (i % 28); }

bool Want(const std::string& only, const char* q) { return only.empty() || only == q; }

// Runs `one` `runs` times, timing each; a failed run ends the program.
std::vector<double> Time(int runs, const char* name, const std::function<bool(int)>& one) {
  std::vector<double> ms;
  for (int i = 0; i < runs; i++) {
    auto t0 = SteadyClock::now();
    bool ok = one(i);
    ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
    static const char* slow_ms = std::getenv("USAGEDB_BENCH_SLOW_MS");  // diagnostics
    if (slow_ms != nullptr && ms.back() > std::atof(slow_ms)) {
      std::fprintf(stderr, "  slow: %s run %d %.2f ms\n", name, i, ms.back());
    }
    if (!ok) {
      std::fprintf(stderr, "%s failed (run %d)\n", name, i);
      std::exit(1);
    }
  }
  return ms;
}

int RunHttp(const std::string& url, int runs, const std::vector<std::string>& accounts,
            const std::string& only) {
  // http://HOST:PORT
  const std::string prefix = "http://";
  if (url.compare(0, prefix.size(), prefix) != 0 ||
      url.find(':', prefix.size()) == std::string::npos) {
    std::fprintf(stderr, "--url must be http://HOST:PORT\n");
    return 2;
  }
  const size_t colon = url.find(':', prefix.size());
  const std::string host = url.substr(prefix.size(), colon - prefix.size());
  const int port = std::atoi(url.c_str() + colon + 1);
  testing::HttpClient client(host, static_cast<uint16_t>(port));
  const std::string from = std::to_string(bench::kMay2026StartMs);
  const std::string to = std::to_string(bench::kJune2026StartMs);
  const std::vector<std::pair<std::string, std::string>> json = {
      {"Content-Type", "application/json"}};
  auto ok = [&](const testing::ClientResponse& r, const char* name) {
    if (r.status == 200) return true;
    std::fprintf(stderr, "%s: HTTP %d %s\n", name, r.status, r.body.c_str());
    return false;
  };
  auto post_query = [&](const std::string& body, const char* name) {
    return ok(client.Request("POST", "/v1/query/json", body, json), name);
  };
  if (Want(only, "q1")) {
    Report(kNames[0], Time(runs, kNames[0], [&](int i) {
             return ok(client.Request("GET", "/v1/accounts/" + accounts[i] + "/usage?from=" + from +
                                                 "&to=" + to),
                       kNames[0]);
           }));
  }
  if (Want(only, "q2")) {
    Report(kNames[1], Time(runs, kNames[1], [&](int i) {
             return post_query("{\"account_id\": \"" + accounts[i] + "\", \"from\": " + from +
                                   ", \"to\": " + to +
                                   ", \"group_by\": [\"product_id\", \"meter_id\", \"model_id\"]}",
                               kNames[1]);
           }));
  }
  if (Want(only, "q3")) {
    Report(kNames[2], Time(runs, kNames[2], [&](int i) {
             return post_query(
                 "{\"account_id\": \"" + accounts[i] + "\", \"from\": " + from + ", \"to\": " + to +
                     ", \"group_by\": [\"day\"], \"metrics\": {\"quantity\": \"sum\"}}",
                 kNames[2]);
           }));
  }
  if (Want(only, "q4")) {
    Report(kNames[3], Time(runs, kNames[3], [&](int i) {
             const int64_t day = Q4Day(i);
             return ok(client.Request("GET", "/v1/accounts/" + accounts[i] +
                                                 "/usage/events?from=" + std::to_string(day) +
                                                 "&to=" + std::to_string(day + 86400000LL) +
                                                 "&meter_id=tokens.output&limit=1000"),
                       kNames[3]);
           }));
  }
  if (Want(only, "q5")) {
    const std::string body = "{\"from\": " + from + ", \"to\": " + to +
                             ", \"group_by\": [\"account_id\"], \"filters\": {\"meter_id\": "
                             "\"tokens.output\"}, \"metrics\": {\"quantity\": \"sum\"}, "
                             "\"order_by\": [{\"key\": \"quantity\", \"desc\": true}], "
                             "\"limit\": 100}";
    Report(kNames[4],
           Time(std::min(runs, 10), kNames[4], [&](int) { return post_query(body, kNames[4]); }));
  }
  std::printf("(over HTTP, one keep-alive connection, %d connect(s))\n", client.connects());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"usageDb query latency benchmark"};
  std::string dir = "/tmp/usagedb_ingest_bench";
  std::string url, only;
  int runs = 50;
  int num_accounts = 1000;
  app.add_option("--dir", dir, "database directory (embedded API)");
  app.add_option("--url", url, "http://HOST:PORT of a running usagedb serve (instead of --dir)");
  app.add_option("--runs", runs);
  app.add_option("--accounts", num_accounts, "accounts of the workload (sampling)");
  app.add_option("--only", only, "q1|q2|q3|q4|q5|scan|none: run one query alone");
  int deadline_ms = 0;
  app.add_option("--deadline-ms", deadline_ms,
                 "embedded: every query and listing carries a deadline now + N ms, as the "
                 "server's request_timeout_ms (0 = none)");
  int passes = 1;
  app.add_option("--passes", passes,
                 "embedded Q1-Q3: passes over the same accounts, each reported (the first after "
                 "open is the cold one)");
  CLI11_PARSE(app, argc, argv);
  auto deadline = [&]() -> std::optional<SteadyClock::time_point> {
    if (deadline_ms <= 0) return std::nullopt;
    return SteadyClock::now() + std::chrono::milliseconds(deadline_ms);
  };
  // Sample accounts the way the workload names them (acct_000000 is the heaviest).
  std::vector<std::string> accounts;
  for (int i = 0; i < runs; i++) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "acct_%06d", (i * 37) % std::max(1, num_accounts));
    accounts.push_back(buf);
  }
  if (!url.empty()) return RunHttp(url, runs, accounts, only);

  Options o;
  o.background_flush = false;
  const auto open_t0 = SteadyClock::now();
  auto db_or = DB::Open(o, dir);
  if (!db_or.ok()) {
    std::fprintf(stderr, "open: %s\n", db_or.status().ToString().c_str());
    return 1;
  }
  DB* db = db_or->get();
  {
    const RecoveryReport& rec = db->recovery_report();
    std::printf("open %.1f ms (footers of the segments decoded in %.1f ms, %llu bytes held)\n",
                std::chrono::duration<double, std::milli>(SteadyClock::now() - open_t0).count(),
                rec.warm_seconds * 1e3, static_cast<unsigned long long>(rec.footer_bytes));
  }
  const int64_t from = bench::kMay2026StartMs, to = bench::kJune2026StartMs;
  uint64_t rows_scanned = 0, groups = 0;
  auto query = [&](QueryRequest req) {
    req.deadline = deadline();
    QueryResult r;
    Status s = db->Query(req, &r);
    rows_scanned += r.rows_scanned;
    groups += r.rows.size();
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return s.ok();
  };
  using MakeQuery = QueryRequest (*)(const std::string&, int64_t, int64_t);
  const MakeQuery per_account[] = {Q1, Q2, Q3};
  const char* ids[] = {"q1", "q2", "q3"};
  for (int k = 0; k < 3; k++) {
    if (!Want(only, ids[k])) continue;
    for (int pass = 0; pass < passes; pass++) {
      rows_scanned = groups = 0;
      if (passes > 1) std::printf("pass %d: ", pass + 1);
      Report(kNames[k], Time(runs, kNames[k],
                             [&](int i) { return query(per_account[k](accounts[i], from, to)); }));
      std::printf("  mean %.0f rows scanned, %.1f result rows per query\n",
                  static_cast<double>(rows_scanned) / runs, static_cast<double>(groups) / runs);
    }
  }
  if (Want(only, "q4")) {
    Report(kNames[3], Time(runs, kNames[3], [&](int i) {
             ListRequest req;
             req.filter.account_id = accounts[i];
             req.filter.from_ms = Q4Day(i);
             req.filter.to_ms = *req.filter.from_ms + 86400000LL;
             req.filter.meter_ids = {"tokens.output"};
             req.limit = 1000;
             req.deadline = deadline();
             ListResult r;
             return db->ListEvents(req, &r).ok();
           }));
  }
  if (Want(only, "q5")) {
    const int n = std::min(runs, 10);
    const double cpu0 = CpuSeconds();
    Report(kNames[4], Time(n, kNames[4], [&](int) { return query(Q5(from, to)); }));
    std::printf("  Q5 CPU %.1f ms per query (all threads)\n", (CpuSeconds() - cpu0) * 1e3 / n);
  }
  if (Want(only, "scan")) {
    QueryRequest q;
    q.group_by = {"meter_id"};
    q.columns = {Key("meter_id"), Metric("quantity", QueryFunc::kSum)};
    q.deadline = deadline();
    QueryResult r;
    const double cpu0 = CpuSeconds();
    auto s0 = SteadyClock::now();
    if (!db->Query(q, &r).ok()) return 1;
    const double secs = std::chrono::duration<double>(SteadyClock::now() - s0).count();
    const double cpu = CpuSeconds() - cpu0;
    std::printf(
        "grouped raw scan (by meter, whole month): %llu rows in %.3f s = %.1fM rows/s wall; "
        "%.3f CPU s = %.1fM rows/s per core\n",
        static_cast<unsigned long long>(r.rows_scanned), secs, r.rows_scanned / secs / 1e6, cpu,
        r.rows_scanned / cpu / 1e6);
  }
  return db->Close().ok() ? 0 : 1;
}
