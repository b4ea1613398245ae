// Fuzz target for ParseSql: any bytes give either a statement or InvalidArgument "at N: ...",
// never a crash; an accepted statement prints (ToSql) to SQL that parses back to an equal
// statement and prints identically.
// Built as a libFuzzer binary with clang and -DUSAGEDB_FUZZ=ON; otherwise as a corpus runner
// (ctest sql_fuzz_corpus): every file of the corpus directory, its truncations, and
// fixed-seed mutations (byte edits, SQL fragments, splices between files).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "query/sql.h"

namespace {

void Fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "sql_fuzz: %s\ninput: %.*s\n", what, static_cast<int>(input.size()),
               input.data());
  std::abort();
}

void CheckOne(std::string_view input) {
  using namespace usagedb::query;
  auto r = ParseSql(input);
  if (!r.ok()) {
    const std::string& m = r.status().message();
    if (!r.status().IsInvalidArgument() || m.rfind("at ", 0) != 0) Fail("bad error", input);
    return;
  }
  const SelectStatement& s = *r;
  if (s.items.empty()) Fail("no items", input);
  for (size_t i = 0; i < s.items.size(); i++) {
    for (size_t j = i + 1; j < s.items.size(); j++) {
      if (s.items[i].name == s.items[j].name) Fail("duplicate names", input);
    }
  }
  if (s.time.from_ms && s.time.to_ms && *s.time.from_ms > *s.time.to_ms) {
    Fail("from > to", input);
  }
  const std::string printed = ToSql(s);
  auto again = ParseSql(printed);
  if (!again.ok()) {
    std::fprintf(stderr, "printed: %s\nerror: %s\n", printed.c_str(),
                 again.status().ToString().c_str());
    Fail("printed form does not parse", input);
  }
  if (!(*again == s)) {
    std::fprintf(stderr, "printed: %s\n", printed.c_str());
    Fail("printed form parses to another statement", input);
  }
  if (ToSql(*again) != printed) Fail("printing is not stable", input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckOne(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

#ifndef USAGEDB_LIBFUZZER
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::vector<std::string> corpus;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1], ec)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    corpus.push_back(ss.str());
  }
  if (corpus.size() < 20) {
    std::fprintf(stderr, "corpus %s has only %zu files\n", argv[1], corpus.size());
    return 1;
  }
  static const char* kFragments[] = {" AND ",
                                     " OR ",
                                     " NOT ",
                                     "(",
                                     ")",
                                     ",",
                                     ";",
                                     "'",
                                     "''",
                                     "\"",
                                     "*",
                                     " = ",
                                     " IN (",
                                     " < ",
                                     " <= ",
                                     " >= ",
                                     " TIMESTAMP '2026-05-01T00:00:00Z'",
                                     " SUM(quantity)",
                                     " COUNT(*)",
                                     " AS x",
                                     " GROUP BY ",
                                     " ORDER BY ",
                                     " DESC",
                                     " LIMIT 10",
                                     " dim.provider",
                                     " provider",
                                     " account_id",
                                     " day",
                                     " 'acc_1'",
                                     " 1777593600000",
                                     " -",
                                     "--",
                                     "/*",
                                     " SELECT ",
                                     " FROM usage_events",
                                     " WHERE ",
                                     "\xff",
                                     "\xc3\xa9",
                                     " 99999999999999999999",
                                     " 9223372036854775807",
                                     " timestamp_ms",
                                     " kind",
                                     " 'usage'",
                                     " \"order\"",
                                     " 1"};
  std::mt19937_64 rng(20260501);
  size_t runs = 0, accepted = 0;
  auto run = [&](const std::string& s) {
    CheckOne(s);
    runs++;
    if (usagedb::query::ParseSql(s).ok()) accepted++;
  };
  for (const std::string& s : corpus) {
    run(s);
    for (size_t n = 0; n < s.size(); n += 1 + s.size() / 32) run(s.substr(0, n));
    for (int i = 0; i < 150; ++i) {
      std::string m = s;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < edits; ++k) {
        const size_t pos = m.empty() ? 0 : rng() % (m.size() + 1);
        switch (rng() % 5) {
          case 0:
            if (!m.empty() && pos < m.size()) m[pos] = static_cast<char>(rng());
            break;
          case 1:
            if (pos < m.size()) m.erase(pos, 1 + rng() % 8);
            break;
          case 2:
          case 3:
            m.insert(pos, kFragments[rng() % (sizeof(kFragments) / sizeof(kFragments[0]))]);
            break;
          case 4: {
            const std::string& other = corpus[rng() % corpus.size()];
            const size_t from = other.empty() ? 0 : rng() % other.size();
            m.insert(pos, other.substr(from, rng() % 48));
            break;
          }
        }
      }
      run(m);
    }
  }
  // Statements generated from the grammar, so that many are accepted and the print/re-parse
  // property is exercised beyond the seeds.
  auto pick = [&](std::initializer_list<const char*> options) {
    return std::string(options.begin()[rng() % options.size()]);
  };
  for (int i = 0; i < 3000; ++i) {
    std::string q = "SELECT ";
    const int items = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < items; k++) {
      if (k > 0) q += ", ";
      q += pick({"account_id", "provider", "dim.provider", "\"tool-name\"", "date", "month", "day",
                 "hour_start_ms", "kind", "SUM(quantity)", "COUNT(*)", "min(quantity)",
                 "MAX(quantity)", "\"order\"", "sum", "count"});
      if (rng() % 3 == 0)
        q += pick({" AS x", " AS \"dim.region\"", " AS sum", " AS provider", " AS y"});
    }
    q += pick({" FROM usage_events", " FROM usage_rollup_hourly", " from Usage_Events"});
    const int preds = static_cast<int>(rng() % 5);
    for (int k = 0; k < preds; k++) {
      q += k == 0 ? " WHERE " : " AND ";
      q += pick({"account_id = 'a'", "account_id IN ('a', 'b')", "provider = 'x'",
                 "dim.provider IN ('x', 'y''z')", "kind = 'usage'", "kind IN ('Correction')",
                 "timestamp_ms >= 5", "timestamp_ms < 100", "timestamp_ms <= -1",
                 "timestamp_ms > 9223372036854775807", "timestamp_ms = TIMESTAMP '2026-05-01'",
                 "(day = 86400000 AND month = '2026-05')", "hour_start_ms IN (3600000, '0')"});
    }
    if (rng() % 2 == 0) {
      q += " GROUP BY ";
      const int keys = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < keys; k++) {
        if (k > 0) q += ", ";
        q += pick({"account_id", "provider", "dim.provider", "\"tool-name\"", "date", "region", "1",
                   "2", "x", "y", "\"order\"", "kind", "day", "month", "hour_start_ms", "sum",
                   "count", "dim.region"});
      }
    }
    if (rng() % 2 == 0) {
      q += " ORDER BY ";
      const int keys = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < keys; k++) {
        if (k > 0) q += ", ";
        q += pick({"account_id", "provider", "x", "y", "sum", "count", "1", "2", "region",
                   "SUM(quantity)", "COUNT(*)", "dim.region", "date", "\"dim.region\""});
        q += pick({"", " ASC", " DESC"});
      }
    }
    if (rng() % 3 == 0) q += pick({" LIMIT 0", " LIMIT 100", " LIMIT 18446744073709551615"});
    if (rng() % 4 == 0) q += ";";
    run(q);
  }
  for (int i = 0; i < 1000; ++i) {
    std::string g(rng() % 128, '\0');
    for (auto& c : g) c = static_cast<char>(rng());
    run(g);
  }
  std::printf("sql_fuzz_corpus: %zu inputs (%zu accepted) from %zu corpus files, no failure\n",
              runs, accepted, corpus.size());
  return 0;
}
#endif
