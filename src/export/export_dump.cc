// usagedb_export_dump: prints every raw event of a database as JSON Lines in the shape of the
// Parquet export's rows, through the raw audit API (DB::ScanEvents), so tests can compare an
// export row by row with what the database holds (tests/js/export_check.mjs).
//
//   usagedb_export_dump --db-root DIR [--as-of S]    > events.jsonl
//
// One object per event, keys = the 15 export column names in schema order; integers
// (timestamp_ms, quantity, ingested_at_ms) as decimal strings so no reader rounds them;
// null for null; dimensions_canonical from the model's CanonicalDimensions (not the Parquet
// writer's own copy). No particular order. Exit 0 / 1.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "model/event_codec.h"
#include "usagedb/db.h"
#include "util/int128.h"

namespace usagedb {
namespace {

// REQUIRES: *out ends with '{' (first key) or a value.
void Key(const char* k, std::string* out) {
  if (out->back() != '{') out->push_back(',');
  out->push_back('"');
  out->append(k);
  out->append("\":");
}

void Str(const char* k, std::string_view v, std::string* out) {
  Key(k, out);
  AppendJsonString(v, out);
}

void OptStr(const char* k, const std::optional<std::string>& v, std::string* out) {
  Key(k, out);
  if (v) {
    AppendJsonString(*v, out);
  } else {
    out->append("null");
  }
}

void Num(const char* k, const std::string& digits, std::string* out) {
  Key(k, out);
  out->push_back('"');
  out->append(digits);
  out->push_back('"');
}

bool WriteAll(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

int Main(int argc, char** argv) {
  std::string root;
  std::optional<uint64_t> as_of;
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--db-root") == 0 && i + 1 < argc) {
      root = argv[++i];
    } else if (std::strcmp(argv[i], "--as-of") == 0 && i + 1 < argc) {
      as_of = std::stoull(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: usagedb_export_dump --db-root DIR [--as-of S]\n");
      return 2;
    }
  }
  if (root.empty()) {
    std::fprintf(stderr, "usage: usagedb_export_dump --db-root DIR [--as-of S]\n");
    return 2;
  }
  Options o;
  o.create_if_missing = false;
  auto db = DB::Open(o, root);
  if (!db.ok()) {
    std::fprintf(stderr, "usagedb_export_dump: %s\n", db.status().ToString().c_str());
    return 1;
  }
  ReadFilter f;
  f.as_of_seq = as_of;
  std::string buf;
  bool write_ok = true;
  Status s = (*db)->ScanEvents(f, [&](const Event& e) {
    buf.push_back('{');
    Str("event_id", e.event_id, &buf);
    Str("kind", EventKindName(e.kind), &buf);
    OptStr("correction_original_event_id",
           e.has_correction_ref ? std::optional<std::string>(e.correction_original_event_id)
                                : std::nullopt,
           &buf);
    OptStr("correction_reason",
           e.has_correction_ref ? std::optional<std::string>(e.correction_reason) : std::nullopt,
           &buf);
    Str("account_id", e.account_id, &buf);
    OptStr("subscription_id", e.subscription_id, &buf);
    Str("product_id", e.product_id, &buf);
    Str("meter_id", e.meter_id, &buf);
    OptStr("model_id", e.model_id, &buf);
    Num("timestamp_ms", std::to_string(e.timestamp_ms), &buf);
    Num("quantity", Int128ToString(e.quantity), &buf);
    Str("unit", e.unit, &buf);
    Str("source", e.source, &buf);
    Str("dimensions_canonical", CanonicalDimensions(e.dimensions), &buf);
    Num("ingested_at_ms", std::to_string(e.ingested_at_ms), &buf);
    buf.append("}\n");
    if (buf.size() >= (1u << 20)) {
      write_ok = WriteAll(buf);
      buf.clear();
    }
    return write_ok;
  });
  if (write_ok) write_ok = WriteAll(buf);
  if (!s.ok() || !write_ok) {
    std::fprintf(stderr, "usagedb_export_dump: %s\n",
                 s.ok() ? "cannot write to stdout" : s.ToString().c_str());
    return 1;
  }
  s = (*db)->Close();
  if (!s.ok()) {
    std::fprintf(stderr, "usagedb_export_dump: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace usagedb

int main(int argc, char** argv) { return usagedb::Main(argc, argv); }
