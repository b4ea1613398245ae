// usagedb_parquet_sample OUT [--rows N] [--seed S] [--expected FILE] [--empty]
//                        [--rows-per-group R] [--page-rows P] [--dictionary-bytes D]
//
// Writes a deterministic Parquet file with ParquetWriter: a fixed list of edge-case events
// (±(10^38-1), 0, negative corrections, nulls, unicode and escaped dimension values, empty
// dimensions, a 256-byte id) followed by N generated events, and prints the values every
// reader must see as JSON Lines (one object per row, in file order; 64- and 128-bit integers as
// decimal strings) to FILE or stdout. --empty writes a zero-row file (and an empty FILE).
// Used by tests/js/parquet_check.mjs through the ctest fixture.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "export/parquet_encoding.h"
#include "export/parquet_writer.h"
#include "io/file_system.h"
#include "usagedb/event.h"
#include "util/int128.h"

namespace usagedb {
namespace {

using int128 = __int128;

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Uniform(uint64_t n) { return Next() % n; }
  bool Chance(double p) { return (Next() >> 11) * (1.0 / 9007199254740992.0) < p; }

 private:
  uint64_t s_;
};

constexpr int64_t kMay2026Ms = 1777593600000;  // 2026-05-01T00:00:00Z

Event Base(std::string id) {
  Event e;
  e.event_id = std::move(id);
  e.account_id = "acct-1";
  e.product_id = "chat";
  e.meter_id = "tokens.input";
  e.timestamp_ms = kMay2026Ms;
  e.unit = "token";
  e.source = "collector-a";
  e.ingested_at_ms = kMay2026Ms + 1000;
  return e;
}

std::vector<Event> EdgeCases() {
  std::vector<Event> v;
  Event e = Base("edge-max");
  e.quantity = kMaxQuantity;
  e.subscription_id = "sub-1";
  e.model_id = "claude-opus";
  e.dimensions = {{"agent", "support-agent"}, {"provider", "anthropic"}};
  v.push_back(e);

  e = Base("edge-min");
  e.kind = EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = "edge-max";
  e.correction_reason = "";  // given without a reason: "" (not null)
  e.quantity = -kMaxQuantity;
  v.push_back(e);

  e = Base("edge-retraction");
  e.kind = EventKind::kRetraction;
  e.has_correction_ref = true;
  e.correction_original_event_id = "edge-zero";
  e.correction_reason = "duplicate charge";
  e.quantity = -1;
  v.push_back(e);

  e = Base("edge-zero");
  e.quantity = 0;
  e.timestamp_ms = 1;
  e.ingested_at_ms = 9007199254740993;  // 2^53 + 1: exact only as a 64-bit integer
  v.push_back(e);

  e = Base("edge-unicode-ü-日本");
  e.account_id = "acct-é";
  e.quantity = 1;
  e.subscription_id = "sub-ß";
  e.model_id = "模型-1";
  e.dimensions = {{"agent", "日本語 🚀"}, {"region", "eu-west/ü"}};
  v.push_back(e);

  e = Base("edge-escapes");
  e.quantity = static_cast<int128>(1) << 64;  // 2^64
  e.dimensions = {{"quote", "say \"hi\" \\ back\\slash"},
                  {"controls", std::string("\b\f\n\r\t\x01\x1f\x7f", 8)},
                  {"line_sep", "a\u2028b"}};
  v.push_back(e);

  e = Base("edge-correction-positive");
  e.kind = EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = "edge-zero";
  e.correction_reason = "undercounted\nsee ticket #12";
  e.quantity = 42;
  v.push_back(e);

  e = Base("edge-negative-wide");
  e.kind = EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = "edge-max";
  e.correction_reason = "wide";
  e.quantity = -(static_cast<int128>(1) << 64) - 1;  // -(2^64 + 1)
  v.push_back(e);

  e = Base(std::string(256, 'x'));
  e.quantity = static_cast<int128>(INT64_MIN) - 1;  // -2^63 - 1
  e.kind = EventKind::kRetraction;
  e.has_correction_ref = true;
  e.correction_original_event_id = std::string(256, 'y');
  v.push_back(e);

  e = Base("edge-many-dims");
  e.quantity = 999;
  for (int i = 0; i < 16; ++i) {
    std::string key = "k";
    key.push_back(static_cast<char>('a' + i));
    e.dimensions.push_back({key, std::to_string(i)});
  }
  v.push_back(e);
  return v;
}

const char* const kMeters[] = {"tokens.input",      "tokens.output",      "tokens.cached_input",
                               "tokens.reasoning",  "tokens.embedding",   "requests.llm",
                               "requests.embedding", "requests.image",    "tool.calls",
                               "agent.runtime_ms"};
const char* const kUnits[] = {"token", "request", "ms", "credit"};
const char* const kReasons[] = {"", "late", "dup\nline", "ünïcode", "tab\there"};

int128 RandomWide(Rng* rng) {
  // Uniform-ish over [-(10^38-1), 10^38-1].
  unsigned __int128 u = (static_cast<unsigned __int128>(rng->Next()) << 64) | rng->Next();
  return static_cast<int128>(u % static_cast<unsigned __int128>(kMaxQuantity)) *
         (rng->Chance(0.5) ? 1 : -1);
}

// `row` is the event's position in the file. Odd blocks of 1000 rows are usage-only (no
// negative quantity), so with 1000 (or 500, 250...) rows per row group some row groups can be
// pruned by `quantity < 0` and others cannot.
Event Generate(Rng* rng, uint64_t seed, uint64_t i, uint64_t row) {
  Event e;
  e.event_id = "gen-" + std::to_string(seed) + "-" + std::to_string(i);
  const bool usage_only = (row / 1000) % 2 == 1;
  const uint64_t k = usage_only ? 0 : rng->Uniform(20);
  e.kind = k == 0 || k > 2 ? EventKind::kUsage : (k == 1 ? EventKind::kCorrection
                                                          : EventKind::kRetraction);
  if (e.kind != EventKind::kUsage) {
    e.has_correction_ref = true;
    e.correction_original_event_id = "gen-" + std::to_string(seed) + "-" +
                                     std::to_string(rng->Uniform(i + 1));
    e.correction_reason = kReasons[rng->Uniform(5)];
  }
  e.account_id = rng->Chance(0.02) ? "acct-ü-" + std::to_string(rng->Uniform(3))
                                   : "acct-" + std::to_string(rng->Uniform(50));
  if (!rng->Chance(0.3)) e.subscription_id = "sub-" + std::to_string(rng->Uniform(10));
  e.product_id = rng->Chance(0.5) ? "chat" : "agents";
  e.meter_id = kMeters[rng->Uniform(10)];
  if (!rng->Chance(0.2)) e.model_id = "model-" + std::to_string(rng->Uniform(100));
  e.timestamp_ms = kMay2026Ms + static_cast<int64_t>(rng->Uniform(31ull * 86400000));
  int128 q = rng->Chance(0.05) ? RandomWide(rng) : static_cast<int128>(rng->Uniform(100000));
  if (q < 0) q = -q;
  if (e.kind == EventKind::kRetraction) q = -q;
  if (e.kind == EventKind::kCorrection && rng->Chance(0.7)) q = -q;
  e.quantity = q;
  e.unit = kUnits[rng->Uniform(4)];
  e.source = "collector-" + std::to_string(rng->Uniform(5));
  const char* const keys[] = {"agent", "provider", "region", "tool"};
  for (const char* key : keys) {
    if (!rng->Chance(0.6)) continue;
    std::string value = std::string(key) + "-" + std::to_string(rng->Uniform(8));
    if (std::strcmp(key, "tool") == 0 && rng->Chance(0.3)) {
      value = "call-" + std::to_string(i) + "-\"q\"\n";  // high cardinality + escapes
    }
    e.dimensions.push_back({key, value});
  }
  e.ingested_at_ms = e.timestamp_ms + static_cast<int64_t>(rng->Uniform(1000000));
  return e;
}

void AppendNullableString(const char* name, const std::string* v, std::string* out) {
  out->push_back('"');
  out->append(name);
  out->append("\":");
  if (v == nullptr) {
    out->append("null");
  } else {
    parquet::AppendJsonString(*v, out);
  }
  out->push_back(',');
}

void AppendExpected(const Event& e, std::string* out) {
  out->push_back('{');
  const std::string kind(parquet::KindName(e.kind));
  AppendNullableString("event_id", &e.event_id, out);
  AppendNullableString("kind", &kind, out);
  AppendNullableString("correction_original_event_id",
                       e.has_correction_ref ? &e.correction_original_event_id : nullptr, out);
  AppendNullableString("correction_reason", e.has_correction_ref ? &e.correction_reason : nullptr,
                       out);
  AppendNullableString("account_id", &e.account_id, out);
  AppendNullableString("subscription_id", e.subscription_id ? &*e.subscription_id : nullptr, out);
  AppendNullableString("product_id", &e.product_id, out);
  AppendNullableString("meter_id", &e.meter_id, out);
  AppendNullableString("model_id", e.model_id ? &*e.model_id : nullptr, out);
  const std::string ts = std::to_string(e.timestamp_ms);
  AppendNullableString("timestamp_ms", &ts, out);
  const std::string q = Int128ToString(e.quantity);
  AppendNullableString("quantity", &q, out);
  AppendNullableString("unit", &e.unit, out);
  AppendNullableString("source", &e.source, out);
  std::string dims;
  parquet::AppendCanonicalDimensions(e.dimensions, &dims);
  AppendNullableString("dimensions_canonical", &dims, out);
  const std::string ing = std::to_string(e.ingested_at_ms);
  AppendNullableString("ingested_at_ms", &ing, out);
  out->back() = '}';
  out->push_back('\n');
}

int Usage() {
  std::fprintf(stderr,
               "usage: usagedb_parquet_sample OUT [--rows N] [--seed S] [--expected FILE] "
               "[--empty] [--rows-per-group R] [--page-rows P] [--dictionary-bytes D]\n");
  return 2;
}

int Main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return Usage();
  const std::string out_path = argv[1];
  uint64_t rows = 1000, seed = 1;
  bool empty = false;
  std::string expected_path;
  ParquetWriterOptions options;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto number = [&](uint64_t* v) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      *v = std::strtoull(argv[++i], &end, 10);
      return end != nullptr && *end == '\0';
    };
    uint64_t n = 0;
    if (arg == "--rows") {
      if (!number(&rows)) return Usage();
    } else if (arg == "--seed") {
      if (!number(&seed)) return Usage();
    } else if (arg == "--expected" && i + 1 < argc) {
      expected_path = argv[++i];
    } else if (arg == "--empty") {
      empty = true;
    } else if (arg == "--rows-per-group") {
      if (!number(&n)) return Usage();
      options.rows_per_row_group = n;
    } else if (arg == "--page-rows") {
      if (!number(&n)) return Usage();
      options.page_rows = static_cast<uint32_t>(n);
    } else if (arg == "--dictionary-bytes") {
      if (!number(&n)) return Usage();
      options.dictionary_bytes = static_cast<uint32_t>(n);
    } else {
      return Usage();
    }
  }

  FileSystem* fs = FileSystem::Default();
  auto writer = ParquetWriter::Create(fs, out_path, options);
  if (!writer.ok()) {
    std::fprintf(stderr, "%s\n", writer.status().ToString().c_str());
    return 1;
  }
  std::string expected;
  auto add = [&](const Event& e) {
    Status s = (*writer)->Append(e);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return false;
    }
    AppendExpected(e, &expected);
    return true;
  };
  if (!empty) {
    const std::vector<Event> edge = EdgeCases();
    for (const Event& e : edge) {
      if (!add(e)) return 1;
    }
    Rng rng(seed);
    for (uint64_t i = 0; i < rows; ++i) {
      if (!add(Generate(&rng, seed, i, edge.size() + i))) return 1;
    }
  }
  Status s = (*writer)->Finish();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  if (expected_path.empty()) {
    std::fwrite(expected.data(), 1, expected.size(), stdout);
  } else {
    s = fs->WriteFileAtomic(expected_path, expected);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "wrote %s: %llu rows, %llu row groups, %llu bytes\n", out_path.c_str(),
               static_cast<unsigned long long>((*writer)->rows_written()),
               static_cast<unsigned long long>((*writer)->row_groups_written()),
               static_cast<unsigned long long>((*writer)->bytes_written()));
  return 0;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) { return usagedb::Main(argc, argv); }
