// The query request of SPEC §3.4 as a struct (the JSON route, the SQL route and the embedded
// API all end here) and its result.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace usagedb {

enum class QuerySource : uint8_t { kAuto = 0, kRaw = 1, kRollup = 2 };
enum class QueryFunc : uint8_t { kSum = 0, kCount = 1, kMin = 2, kMax = 3 };

// One output field: a group key or a metric over quantity.
struct QueryColumn {
  std::string name;       // the field name in each row
  bool is_metric = false;
  std::string key;        // canonical group key (account_id, date, dim.provider, ...) when !is_metric
  QueryFunc func = QueryFunc::kSum;
};

struct QueryFilter {
  std::string key;                  // canonical key: a column, time key or dim.<k>
  std::vector<std::string> values;  // ORed; an empty list matches nothing
};

struct QueryOrder {
  std::string name;  // an output field name, or a canonical group key that is not selected
  bool desc = false;
};

struct QueryRequest {
  QuerySource source = QuerySource::kAuto;
  std::optional<std::string> account_id;
  std::optional<int64_t> from_ms, to_ms;  // event time, half-open
  std::vector<std::string> group_by;      // canonical keys, unique
  std::vector<QueryColumn> columns;       // output fields in order
  std::vector<QueryFilter> filters;       // ANDed
  std::vector<QueryOrder> order_by;
  std::optional<uint64_t> limit;
  std::optional<uint64_t> as_of_seq;
  std::optional<int64_t> as_of_ms;
  // When set, the query fails with Unavailable("timeout: ...") and no rows once the steady
  // clock passes it; the scan checks it per segment and per block (every thread of a parallel
  // scan), so a runaway query stops within about one block's work. A deadline already past
  // fails before anything is read.
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

// A value in a result row: a string (group keys), an exact integer (sum/min/max; count), or
// null (min/max over no events).
struct QueryValue {
  enum class Type : uint8_t { kNull, kString, kInt, kCount } type = Type::kNull;
  std::string str;
  __int128 num = 0;
};

struct QueryResult {
  std::vector<std::string> names;  // = the request's column names
  std::vector<std::vector<QueryValue>> rows;
  uint64_t snapshot_sequence = 0;
  uint64_t rows_scanned = 0;
};

}  // namespace usagedb
