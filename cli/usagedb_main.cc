// The usagedb binary (SPEC §8). Exit 0 success, 1 failure, 2 usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <tuple>
#include <optional>
#include <cstdlib>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "model/event_codec.h"
#include "query/sql_plan.h"
#include "io/file_system.h"
#include "server/serve.h"
#include "usagedb/db.h"
#include "usagedb/export.h"
#include "util/int128.h"
#include "util/time_util.h"

namespace usagedb {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int Fail(const Status& s) {
  std::fprintf(stderr, "usagedb: %s\n", s.ToString().c_str());
  return s.IsInvalidArgument() ? kExitUsage : kExitFailure;
}

Result<std::unique_ptr<DB>> OpenDb(const std::string& db_root, Durability durability) {
  Options options;
  options.durability = durability;
  return DB::Open(options, db_root);
}

Result<Durability> ParseDurability(const std::string& s) {
  if (s == "strict") return Durability::kStrict;
  if (s == "fast") return Durability::kFast;
  return Status::InvalidArgument("durability must be strict or fast, not '" + s + "'");
}

// Streams JSON Lines in batches through the same path as the HTTP API's NDJSON ingest.
int RunIngest(const std::string& db_root, const std::string& file, const std::string& durability,
              size_t batch_size) {
  auto d = ParseDurability(durability);
  if (!d.ok()) return Fail(d.status());
  std::ifstream fin;
  std::istream* in = &std::cin;
  if (file != "-") {
    fin.open(file, std::ios::binary);
    if (!fin) return Fail(Status::IOError("cannot open " + file));
    in = &fin;
  }
  auto db_or = OpenDb(db_root, *d);
  if (!db_or.ok()) return Fail(db_or.status());
  std::unique_ptr<DB> db = std::move(db_or).value();

  const bool progress = ::isatty(2);
  auto t0 = std::chrono::steady_clock::now();
  auto last_progress = t0;
  uint64_t totals[4] = {0, 0, 0, 0};
  uint64_t line_no = 0, events = 0, shown = 0;
  std::string body, line;
  std::vector<uint64_t> line_of;  // index in batch -> line number
  auto flush_batch = [&]() -> Status {
    if (line_of.empty()) return Status::OK();
    IngestResult r;
    RETURN_IF_ERROR(db->IngestJson(body, /*ndjson=*/true, &r));
    totals[0] += r.accepted;
    totals[1] += r.duplicates;
    totals[2] += r.conflicts;
    totals[3] += r.rejected;
    events += r.results.size();
    for (const EventResult& er : r.results) {
      if (er.outcome != Outcome::kRejected && er.outcome != Outcome::kConflict) continue;
      if (shown++ >= 20) continue;
      uint64_t ln = er.index < line_of.size() ? line_of[er.index] : 0;
      std::fprintf(stderr, "line %llu: %s %s%s%s\n", static_cast<unsigned long long>(ln),
                   OutcomeName(er.outcome), er.event_id.c_str(), er.reason.empty() ? "" : ": ",
                   er.reason.c_str());
    }
    body.clear();
    line_of.clear();
    return Status::OK();
  };
  while (std::getline(*in, line)) {
    line_no++;
    bool blank = true;
    for (char c : line) {
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
        blank = false;
        break;
      }
    }
    if (blank) continue;
    body += line;
    body += '\n';
    line_of.push_back(line_no);
    if (line_of.size() >= batch_size) {
      Status s = flush_batch();
      if (!s.ok()) return Fail(s);
      if (progress) {
        auto now = std::chrono::steady_clock::now();
        if (now - last_progress > std::chrono::milliseconds(500)) {
          last_progress = now;
          std::fprintf(stderr, "\ringested %llu events...", static_cast<unsigned long long>(events));
        }
      }
    }
  }
  Status s = flush_batch();
  if (!s.ok()) return Fail(s);
  if (progress) std::fprintf(stderr, "\r");
  if (shown > 20) {
    std::fprintf(stderr, "(%llu more rejected/conflicting events not shown)\n",
                 static_cast<unsigned long long>(shown - 20));
  }
  s = db->Close();
  if (!s.ok()) return Fail(s);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "ingested %llu events: %llu accepted, %llu duplicates, %llu conflicts, %llu rejected "
      "(%.2f s, %.0f events/s)\n",
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(totals[0]),
      static_cast<unsigned long long>(totals[1]), static_cast<unsigned long long>(totals[2]),
      static_cast<unsigned long long>(totals[3]), secs, secs > 0 ? events / secs : 0.0);
  return 0;
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows,
                const std::vector<bool>& right_align) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); i++) w[i] = header[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); i++) w[i] = std::max(w[i], r[i].size());
  }
  auto print_row = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); i++) {
      if (i) out += "  ";
      std::string pad(w[i] - r[i].size(), ' ');
      out += right_align[i] ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : "");
    }
    std::printf("%s\n", out.c_str());
  };
  print_row(header);
  std::vector<std::string> rule;
  for (size_t x : w) rule.push_back(std::string(x, '-'));
  print_row(rule);
  for (const auto& r : rows) print_row(r);
}

int RunUsage(const std::string& db_root, const std::string& account, const std::string& from,
             const std::string& to) {
  ReadFilter f;
  if (!account.empty()) f.account_id = account;
  if (!from.empty()) {
    auto t = ParseTimeArg(from);
    if (!t.ok()) return Fail(t.status());
    f.from_ms = *t;
  }
  if (!to.empty()) {
    auto t = ParseTimeArg(to);
    if (!t.ok()) return Fail(t.status());
    f.to_ms = *t;
  }
  if (f.from_ms && f.to_ms && *f.from_ms > *f.to_ms) {
    return Fail(Status::InvalidArgument("--from is after --to"));
  }
  auto db_or = OpenDb(db_root, Durability::kStrict);
  if (!db_or.ok()) return Fail(db_or.status());
  std::unique_ptr<DB> db = std::move(db_or).value();
  AggregateResult r;
  Status s = db->Aggregate(f, /*group_by_account=*/true, &r);
  if (!s.ok()) return Fail(s);
  std::vector<std::vector<std::string>> rows;
  WideSum total;
  uint64_t total_count = 0;
  for (const AggregateRow& row : r.rows) {
    rows.push_back({row.account_id, Int128ToString(row.quantity), std::to_string(row.count)});
    total.Add(row.quantity);
    total_count += row.count;
  }
  PrintTable({"account_id", "quantity", "events"}, rows, {false, true, true});
  auto t = total.Value();
  std::printf("%zu accounts, %llu events, total quantity %s (as of commit sequence %llu)\n",
              r.rows.size(), static_cast<unsigned long long>(total_count),
              t ? Int128ToString(*t).c_str() : "overflow",
              static_cast<unsigned long long>(r.snapshot_sequence));
  s = db->Close();
  if (!s.ok()) return Fail(s);
  return 0;
}

std::string ValueText(const QueryValue& v) {
  switch (v.type) {
    case QueryValue::Type::kNull: return "null";
    case QueryValue::Type::kString: return v.str;
    default: return Int128ToString(v.num);
  }
}

// SPEC §3.4 shapes: sums/min/max as strings, counts as numbers, null for min/max of nothing.
std::string ResultJson(const QueryResult& r) {
  std::string out = "{\"data\":[";
  for (size_t i = 0; i < r.rows.size(); i++) {
    if (i) out += ',';
    out += '{';
    for (size_t c = 0; c < r.names.size(); c++) {
      if (c) out += ',';
      AppendJsonString(r.names[c], &out);
      out += ':';
      const QueryValue& v = r.rows[i][c];
      switch (v.type) {
        case QueryValue::Type::kNull: out += "null"; break;
        case QueryValue::Type::kString: AppendJsonString(v.str, &out); break;
        case QueryValue::Type::kCount: out += Int128ToString(v.num); break;
        case QueryValue::Type::kInt: AppendJsonString(Int128ToString(v.num), &out); break;
      }
    }
    out += '}';
  }
  out += "]}";
  return out;
}

int RunQuery(const std::string& db_root, const std::string& sql, bool json) {
  auto req = query::PlanSqlText(sql);
  if (!req.ok()) {
    std::fprintf(stderr, "usagedb: %s\n", req.status().message().c_str());
    return kExitUsage;
  }
  auto db_or = OpenDb(db_root, Durability::kStrict);
  if (!db_or.ok()) return Fail(db_or.status());
  std::unique_ptr<DB> db = std::move(db_or).value();
  QueryResult r;
  Status s = db->Query(*req, &r);
  if (!s.ok()) {
    std::fprintf(stderr, "usagedb: %s\n", s.ToString().c_str());
    return s.IsInvalidArgument() ? kExitUsage : kExitFailure;
  }
  if (json) {
    std::printf("%s\n", ResultJson(r).c_str());
  } else {
    std::vector<std::vector<std::string>> rows;
    std::vector<bool> right(r.names.size(), false);
    for (size_t c = 0; c < req->columns.size(); c++) right[c] = req->columns[c].is_metric;
    for (const auto& row : r.rows) {
      std::vector<std::string> cells;
      for (const QueryValue& v : row) cells.push_back(ValueText(v));
      rows.push_back(std::move(cells));
    }
    PrintTable(r.names, rows, right);
    std::printf("(%zu row%s)\n", r.rows.size(), r.rows.size() == 1 ? "" : "s");
  }
  s = db->Close();
  if (!s.ok()) return Fail(s);
  return 0;
}

int RunConflicts(const std::string& db_root, const std::string& from, const std::string& to,
                 const std::string& reason) {
  ConflictListRequest req;
  if (!from.empty()) {
    auto t = ParseTimeArg(from);
    if (!t.ok()) return Fail(t.status());
    req.from_ms = *t;
  }
  if (!to.empty()) {
    auto t = ParseTimeArg(to);
    if (!t.ok()) return Fail(t.status());
    req.to_ms = *t;
  }
  if (!reason.empty()) {
    if (reason != "conflict" && reason != "period_closed") {
      return Fail(Status::InvalidArgument("--reason must be conflict or period_closed"));
    }
    req.reason = reason;
  }
  auto db_or = OpenDb(db_root, Durability::kStrict);
  if (!db_or.ok()) return Fail(db_or.status());
  std::unique_ptr<DB> db = std::move(db_or).value();
  req.limit = 10000;
  uint64_t n = 0;
  for (;;) {
    ConflictListResult page;
    Status s = db->ListConflicts(req, &page);
    if (!s.ok()) return Fail(s);
    for (const ConflictRecord& c : page.conflicts) {
      // One JSON object per line: the rejected payload in full plus when and why.
      std::string line = "{\"reason\":";
      AppendJsonString(c.reason, &line);
      line += ",\"request_time\":";
      AppendJsonString(FormatRfc3339(c.request_time_ms), &line);
      line += ",\"commit_sequence\":" + std::to_string(c.commit_sequence);
      line += ",\"stored_ingested_at_ms\":" + std::to_string(c.stored_ingested_at_ms);
      line += ",\"event\":";
      AppendEventJson(c.event, &line);
      line += "}";
      std::printf("%s\n", line.c_str());
      n++;
    }
    if (page.next_cursor.empty()) break;
    req.cursor = page.next_cursor;
  }
  std::fprintf(stderr, "%llu conflict%s\n", static_cast<unsigned long long>(n), n == 1 ? "" : "s");
  Status s = db->Close();
  return s.ok() ? 0 : Fail(s);
}

struct ExportArgs {
  std::string out, from, to, account, as_of, as_of_ms, partition_by;
};

// usagedb export-parquet OUT ... (SPEC §7, §8). Exit 0, 1 (failure, OUT exists), 2 (usage).
int RunExportParquet(const std::string& db_root, const ExportArgs& a) {
  ExportOptions o;
  o.output_path = a.out;
  if (!a.account.empty()) o.account_id = a.account;
  for (auto [arg, dst, name] :
       {std::tuple{&a.from, &o.from_ms, "--from"}, std::tuple{&a.to, &o.to_ms, "--to"},
        std::tuple{&a.as_of_ms, &o.as_of_ms, "--as-of-ms"}}) {
    if (arg->empty()) continue;
    auto t = ParseTimeArg(*arg);
    if (!t.ok()) return Fail(t.status().WithContext(name));
    *dst = *t;
  }
  if (!a.as_of.empty()) {
    uint64_t seq = 0;
    for (char ch : a.as_of) {
      if (ch < '0' || ch > '9' || seq > (UINT64_MAX - 9) / 10) {
        return Fail(Status::InvalidArgument("--as-of: not a commit sequence: '" + a.as_of + "'"));
      }
      seq = seq * 10 + static_cast<uint64_t>(ch - '0');
    }
    o.as_of_seq = seq;
  }
  if (o.as_of_seq && o.as_of_ms) {
    return Fail(Status::InvalidArgument("--as-of and --as-of-ms are mutually exclusive"));
  }
  if (!a.partition_by.empty()) {
    if (a.partition_by != "date") {
      return Fail(Status::InvalidArgument("--partition-by: only 'date' is supported, not '" +
                                          a.partition_by + "'"));
    }
    o.partition_by_date = true;
  }
  if (o.from_ms && o.to_ms && *o.from_ms > *o.to_ms) {
    return Fail(Status::InvalidArgument("--from is after --to"));
  }
  // Tuning setting (SPEC §8: every setting has a USAGEDB_<NAME> variable): rows per row group.
  if (const char* v = std::getenv("USAGEDB_EXPORT_ROW_GROUP_ROWS"); v != nullptr && *v != 0) {
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v, &end, 10);
    if (errno != 0 || *end != 0 || n == 0 || v[0] == '-') {
      return Fail(Status::InvalidArgument(
          std::string("USAGEDB_EXPORT_ROW_GROUP_ROWS: not a positive integer: '") + v + "'"));
    }
    o.rows_per_row_group = n;
  }
  // Fail before opening (and flushing) the database when OUT is already there.
  if (FileSystem::Default()->FileExists(a.out)) {
    return Fail(Status::AlreadyExists(a.out + ": already exists"));
  }
  auto db_or = OpenDb(db_root, Durability::kStrict);
  if (!db_or.ok()) return Fail(db_or.status());
  std::unique_ptr<DB> db = std::move(db_or).value();

  const bool progress = ::isatty(2);
  auto last = std::chrono::steady_clock::now();
  bool shown = false;
  if (progress) {
    o.progress = [&](const ExportProgress& p) {
      auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(250)) return;
      last = now;
      shown = true;
      std::fprintf(stderr, "\rexporting: %llu/%llu segments, %llu events, %.1f MB   ",
                   static_cast<unsigned long long>(p.segments_done),
                   static_cast<unsigned long long>(p.segments_total),
                   static_cast<unsigned long long>(p.events), p.bytes / 1e6);
    };
  }
  ExportSummary sum;
  Status s = ExportParquet(db.get(), o, &sum);
  if (shown) std::fprintf(stderr, "\r\033[K");
  Status c = db->Close();
  if (!s.ok()) return Fail(s);
  if (!c.ok()) return Fail(c);
  std::printf(
      "exported %llu events%s from %llu segments to %s: %llu bytes in %llu file%s, %.2f s "
      "(%.0f events/s, as of commit sequence %llu)\n",
      static_cast<unsigned long long>(sum.events),
      sum.empty() ? (o.partition_by_date ? " (empty: no matching events, empty directory)"
                                         : " (empty: no matching events, zero-row file)")
                  : "",
      static_cast<unsigned long long>(sum.segments_read), a.out.c_str(),
      static_cast<unsigned long long>(sum.bytes_written),
      static_cast<unsigned long long>(sum.files), sum.files == 1 ? "" : "s", sum.seconds,
      sum.seconds > 0 ? sum.events / sum.seconds : 0.0,
      static_cast<unsigned long long>(sum.snapshot_sequence));
  return 0;
}

int NotBuilt(const std::string& command, const std::string& issue) {
  std::fprintf(stderr, "usagedb: '%s' is not built yet in this version (%s)\n", command.c_str(),
               issue.c_str());
  return kExitFailure;
}

int Main(int argc, char** argv) {
  CLI::App app{"usageDb: a database for usage-based billing"};
  app.require_subcommand(1);
  std::string db_root = "./data";
  app.add_option("--db-root", db_root, "data directory (default ./data)");

  std::string ingest_file, durability = "strict";
  size_t batch_size = 1000;
  auto* ingest = app.add_subcommand("ingest", "bulk-load JSON Lines events (same rules as the API)");
  ingest->add_option("FILE", ingest_file, "JSON Lines file, or - for stdin")->required();
  ingest->add_option("--durability", durability, "strict or fast");
  ingest->add_option("--batch-size", batch_size, "events per batch")->check(CLI::Range(1, 100000));

  std::string account, from, to;
  auto* usage = app.add_subcommand("usage", "per-account usage summary (exact sums)");
  usage->add_option("--account", account, "only this account");
  usage->add_option("--from", from, "event time lower bound (inclusive)");
  usage->add_option("--to", to, "event time upper bound (exclusive)");

  // serve parses its own settings (SPEC §3.9: flags, environment, config file): every
  // argument after `serve` goes to it, --help included.
  auto* serve = app.add_subcommand("serve", "run the HTTP server (serve --help lists the settings)");
  serve->prefix_command();
  serve->set_help_flag();

  std::string sql;
  bool query_json = false;
  auto* query = app.add_subcommand("query", "run a SQL query (SPEC §3.4) and print a table");
  query->add_option("--sql", sql, "the statement")->required();
  query->add_flag("--json", query_json, "print {\"data\": [...]} instead of a table");

  std::string c_from, c_to, c_reason;
  auto* conflicts = app.add_subcommand("conflicts", "list recorded conflicts as JSON Lines");
  conflicts->add_option("--from", c_from, "request time lower bound (inclusive)");
  conflicts->add_option("--to", c_to, "request time upper bound (exclusive)");
  conflicts->add_option("--reason", c_reason, "conflict or period_closed");

  ExportArgs ex;
  auto* export_parquet = app.add_subcommand(
      "export-parquet", "export raw events to Parquet (one file, or a date-partitioned tree)");
  export_parquet
      ->add_option("OUT", ex.out, "output file (directory with --partition-by date); must not exist")
      ->required();
  export_parquet->add_option("--from", ex.from, "event time lower bound (inclusive)");
  export_parquet->add_option("--to", ex.to, "event time upper bound (exclusive)");
  export_parquet->add_option("--account", ex.account, "only this account");
  auto* as_of_opt =
      export_parquet->add_option("--as-of", ex.as_of, "export as of this commit sequence");
  auto* as_of_ms_opt = export_parquet->add_option("--as-of-ms", ex.as_of_ms,
                                                  "only events ingested at or before this time");
  as_of_opt->excludes(as_of_ms_opt);
  export_parquet->add_option("--partition-by", ex.partition_by,
                             "date: a Hive tree OUT/date=YYYY-MM-DD/part-NNNNN.parquet");

  struct Later {
    const char* name;
    const char* help;
    const char* issue;
  };
  const Later later[] = {
      {"check", "manifest summary; --deep verifies checksums", "a later issue"},
      {"rebuild-rollups", "rebuild rollups", "rollups are a later issue"},
      {"inspect-segment", "segment metadata and first rows", "a later issue"},
      {"verify-period", "verify rollups against raw data", "a later issue"},
      {"compact", "run compaction now", "a later issue"},
      {"checkpoint", "consistent copy of a stopped database", "a later issue"},
  };
  std::vector<std::pair<CLI::App*, const Later*>> later_cmds;
  for (const Later& l : later) {
    auto* c = app.add_subcommand(l.name, l.help);
    c->allow_extras();
    later_cmds.push_back({c, &l});
  }
  for (CLI::App* sub : app.get_subcommands({})) {
    if (sub == serve) continue;
    sub->add_option("--db-root", db_root, "data directory (default ./data)");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (*serve) {
    std::optional<std::string> db_root_flag;
    if (app.get_option("--db-root")->count() > 0) db_root_flag = db_root;
    return server::RunServe(serve->remaining(), db_root_flag);
  }
  if (*ingest) return RunIngest(db_root, ingest_file, durability, batch_size);
  if (*usage) return RunUsage(db_root, account, from, to);
  if (*query) return RunQuery(db_root, sql, query_json);
  if (*conflicts) return RunConflicts(db_root, c_from, c_to, c_reason);
  if (*export_parquet) return RunExportParquet(db_root, ex);
  for (auto& [c, l] : later_cmds) {
    if (*c) return NotBuilt(l->name, l->issue);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) { return usagedb::Main(argc, argv); }
