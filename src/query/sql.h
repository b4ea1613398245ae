// The SQL subset of SPEC §3.4: a hand-written lexer and recursive-descent parser that turns one
// SELECT statement into a plan-ready SelectStatement (no execution here). Grammar, decisions and
// bounds: docs/parts/sql.md.
//
// Thread safety: every function here is pure (no shared state); call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "usagedb/status.h"

namespace usagedb::query {

// FROM usage_events | usage_rollup_hourly (table names case-insensitive).
enum class Source { kRaw, kRollup };
// SUM(quantity), COUNT(*), MIN(quantity), MAX(quantity).
enum class Metric { kSum, kCount, kMin, kMax };

// "sum", "count", "min", "max": the default output name of a metric.
const char* MetricName(Metric m);

struct SelectItem {
  bool is_metric = false;
  // When !is_metric: the canonical group key (see CanonicalGroupKey). Empty for a metric.
  std::string key;
  // When is_metric: the aggregate. Meaningless (kSum) for a key.
  Metric metric = Metric::kSum;
  // The output field name: the alias when given, else the key as written (`provider` stays
  // `provider` although key is `dim.provider`), else MetricName(metric).
  // Invariant: names are unique within one statement (duplicates are rejected).
  std::string name;

  bool operator==(const SelectItem&) const = default;
};

// `key = 'v'` or `key IN ('v1', 'v2')`: the event matches when its value of `key` is one of
// `values` (a missing optional column or dimension is "" and never matches).
// Every Filter of a statement must hold (AND). A canonical key appears in at most one Filter:
// several predicates on one key (also `provider` and `dim.provider`) are intersected, keeping
// the order of the first. `values` is deduplicated, in written order, and MAY BE EMPTY: then
// the predicates contradict each other and no event matches.
// Values are canonical: `kind` values are capitalised (`'usage'` -> "Usage"; other values are
// rejected); `hour_start_ms` / `day` accept an integer or TIMESTAMP literal, stored as decimal ms.
struct Filter {
  std::string key;
  std::vector<std::string> values;

  bool operator==(const Filter&) const = default;
};

// The intersection of every `timestamp_ms` comparison as a half-open [from_ms, to_ms); nullopt
// = unbounded. `< t` -> to = t, `<= t` -> to = t + 1, `> t` -> from = t + 1, `>= t` -> from = t,
// `= t` -> [t, t + 1). Invariant: when both are set, from_ms <= to_ms (contradictory bounds
// give an empty range from = to). A bound beyond int64 saturates: `<= INT64_MAX` is no bound,
// `> INT64_MAX` is the empty range [INT64_MAX, INT64_MAX).
struct TimeBound {
  std::optional<int64_t> from_ms;
  std::optional<int64_t> to_ms;

  bool operator==(const TimeBound&) const = default;
};

// One ORDER BY term, resolved against the select list.
struct OrderItem {
  // Index into SelectStatement::items of the output column ordered by, or -1 when the term is a
  // GROUP BY key that is not selected (then `key` names it).
  int item = -1;
  // The canonical group key when ordering by a key (selected or not); empty for a metric.
  std::string key;
  bool desc = false;

  bool operator==(const OrderItem&) const = default;
};

struct SelectStatement {
  Source source = Source::kRaw;
  std::vector<SelectItem> items;  // in select-list order, never empty
  std::vector<Filter> filters;
  TimeBound time;
  // Canonical group keys, unique, in written order. Without GROUP BY: the selected keys (bare
  // selected keys are group keys). With GROUP BY: every selected key is among them.
  std::vector<std::string> group_by;
  std::vector<OrderItem> order_by;
  std::optional<uint64_t> limit;

  bool operator==(const SelectStatement&) const = default;
};

// Parses one statement (an optional trailing `;`). On error: InvalidArgument whose message
// starts with "at <1-based character position>: " and names the problem or the unsupported
// construct ("at 52: OR is not supported (only AND of predicates)").
// Bounds: at most kMaxSqlBytes bytes; WHERE parentheses nest at most kMaxSqlDepth deep.
inline constexpr size_t kMaxSqlBytes = 1 << 20;
inline constexpr int kMaxSqlDepth = 32;
Result<SelectStatement> ParseSql(std::string_view sql);

// A statement that ParseSql parses back to an equal SelectStatement (identifiers quoted only
// when needed, time bounds as integer ms). REQUIRES: `stmt` came from ParseSql (or satisfies
// its invariants).
std::string ToSql(const SelectStatement& stmt);

// The canonical group key of SPEC §3.5 for a key as a user names it: a column (`account_id`,
// `subscription_id`, `product_id`, `meter_id`, `model_id`, `source`, `unit`, `kind`), a time
// key (`hour_start_ms`, `day`, `date`, `month`), `dim.<key>`, or a bare dimension key (a valid,
// non-reserved one) -> `dim.<key>`. Case-sensitive. InvalidArgument (without a position) for
// `event_id`, `quantity`, `timestamp_ms`, other reserved names, invalid dimension keys.
// Also meant for the JSON query route, so both routes accept the same keys.
Result<std::string> CanonicalGroupKey(std::string_view key);

}  // namespace usagedb::query
