// Recursive-descent parser for the SQL subset of SPEC §3.4 (grammar in docs/parts/sql.md).
//
// Why hand-written: every rejection names the construct and its position; the only recursion
// is WHERE parentheses, bounded by kMaxSqlDepth, so no input can exhaust the stack.

#include <algorithm>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "model/event_rules.h"
#include "query/sql.h"
#include "query/sql_lexer.h"
#include "util/int128.h"
#include "util/time_util.h"

namespace usagedb::query {

using sql_internal::ErrorAt;
using sql_internal::Lex;
using sql_internal::Token;
using sql_internal::TokenKind;
using sql_internal::Upper;

const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kSum:
      return "sum";
    case Metric::kCount:
      return "count";
    case Metric::kMin:
      return "min";
    case Metric::kMax:
      return "max";
  }
  return "sum";
}

namespace {

constexpr std::string_view kGroupColumns[] = {
    "account_id", "subscription_id", "product_id", "meter_id", "model_id", "source", "unit", "kind",
    "day",        "hour_start_ms",   "date",       "month"};

bool IsColumnOrTimeKey(std::string_view s) {
  return std::find(std::begin(kGroupColumns), std::end(kGroupColumns), s) !=
         std::end(kGroupColumns);
}

// Words that cannot be a bare key or alias (quote them: "order"). Besides the words of the
// grammar, this holds the SQL words whose constructs are rejected by name.
constexpr std::string_view kKeywords[] = {
    "ALL",   "AND",       "ANY",      "AS",     "ASC",     "BETWEEN", "BY",        "CASE",
    "CROSS", "DESC",      "DISTINCT", "EXCEPT", "EXISTS",  "FALSE",   "FETCH",     "FROM",
    "FULL",  "GROUP",     "HAVING",   "ILIKE",  "IN",      "INNER",   "INTERSECT", "IS",
    "JOIN",  "LEFT",      "LIKE",     "LIMIT",  "NATURAL", "NOT",     "NULL",      "OFFSET",
    "ON",    "OR",        "ORDER",    "OUTER",  "OVER",    "RIGHT",   "SELECT",    "SIMILAR",
    "SOME",  "TIMESTAMP", "TRUE",     "UNION",  "USING",   "WHERE",   "WINDOW",    "WITH"};

}  // namespace

namespace sql_internal {

std::string UnquotedKeyProblem(std::string_view word);

bool IsKeyword(std::string_view word) {
  const std::string up = Upper(word);
  return std::find(std::begin(kKeywords), std::end(kKeywords), up) != std::end(kKeywords);
}

// The message for a token that starts a construct the subset rejects by name, or "" when the
// token is not one of those.
std::string UnsupportedConstruct(const Token& t) {
  if (t.kind == TokenKind::kSymbol) {
    const std::string& s = t.value;
    if (s == "+" || s == "-" || s == "*" || s == "/" || s == "%" || s == "||" || s == "^" ||
        s == "&" || s == "|" || s == "~") {
      return "operator " + s + " is not supported (no arithmetic or expressions)";
    }
    if (s == "::") return "casts (::) are not supported";
    if (s == "<>" || s == "!=") {
      return "comparison " + s + " is not supported (only = and IN, and ranges on timestamp_ms)";
    }
    return "";
  }
  if (t.kind != TokenKind::kWord) return "";
  const std::string w = Upper(t.value);
  if (w == "OR") return "OR is not supported (only AND of predicates)";
  if (w == "NOT") return "NOT is not supported";
  if (w == "JOIN" || w == "INNER" || w == "LEFT" || w == "RIGHT" || w == "FULL" || w == "CROSS" ||
      w == "NATURAL" || w == "OUTER" || w == "ON" || w == "USING" || w == "LATERAL") {
    return "JOIN is not supported (one table only)";
  }
  if (w == "HAVING") return "HAVING is not supported";
  if (w == "DISTINCT") return "DISTINCT is not supported";
  if (w == "UNION" || w == "INTERSECT" || w == "EXCEPT") return w + " is not supported";
  if (w == "WITH") return "WITH (common table expressions) is not supported";
  if (w == "BETWEEN")
    return "BETWEEN is not supported (use timestamp_ms >= a AND timestamp_ms < b)";
  if (w == "LIKE" || w == "ILIKE" || w == "SIMILAR") return w + " is not supported";
  if (w == "IS") return "IS [NOT] NULL is not supported";
  if (w == "NULL") return "NULL is not supported";
  if (w == "TRUE" || w == "FALSE") return "boolean literals are not supported";
  if (w == "OVER" || w == "WINDOW" || w == "PARTITION" || w == "QUALIFY") {
    return "window functions (" + w + ") are not supported";
  }
  if (w == "OFFSET") return "OFFSET is not supported";
  if (w == "FETCH") return "FETCH is not supported (use LIMIT)";
  if (w == "CASE") return "CASE is not supported";
  if (w == "EXISTS") return "EXISTS is not supported";
  if (w == "ALL" || w == "ANY" || w == "SOME") return w + " is not supported";
  if (w == "FILTER") return "aggregate FILTER is not supported";
  if (w == "INTERVAL") return "INTERVAL is not supported";
  return "";
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The problem with `word` written unquoted as a key ("" when none): a table qualifier or a
// case variant of a reserved name.
std::string UnquotedKeyProblem(std::string_view word) {
  const std::string lower = Lower(word);
  for (std::string_view table : {"usage_events.", "usage_rollup_hourly."}) {
    if (lower.substr(0, table.size()) == table) {
      return "qualified names (" + std::string(word) + ") are not supported; write the key alone";
    }
  }
  if (lower != word && (IsColumnOrTimeKey(lower) || model_internal::IsReservedName(lower))) {
    return "unknown key " + std::string(word) + " (keys are case-sensitive: " + lower + ")";
  }
  return "";
}

bool IsPlainIdentifier(std::string_view s) {
  if (s.empty()) return false;
  const char c0 = s[0];
  if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || c0 == '_')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.')) {
      return false;
    }
  }
  if (IsKeyword(s)) return false;
  Token t;
  t.kind = TokenKind::kWord;
  t.value.assign(s);
  return UnsupportedConstruct(t).empty() && UnquotedKeyProblem(s).empty();
}

}  // namespace sql_internal

Result<std::string> CanonicalGroupKey(std::string_view key) {
  using model_internal::IsReservedName;
  using model_internal::IsValidDimensionKeySyntax;
  const std::string k(key);
  if (IsColumnOrTimeKey(key)) return k;
  if (key == "timestamp_ms") {
    return Status::InvalidArgument(
        "timestamp_ms is not a group key (group by hour_start_ms, day, date or month; compare "
        "timestamp_ms in WHERE)");
  }
  if (key == "quantity") {
    return Status::InvalidArgument(
        "quantity is not a group key (aggregate it: SUM(quantity), MIN(quantity), "
        "MAX(quantity))");
  }
  if (IsReservedName(key)) return Status::InvalidArgument(k + " is not a group key");
  if (key.substr(0, 4) == "dim.") {
    std::string_view dim = key.substr(4);
    if (!IsValidDimensionKeySyntax(dim)) {
      return Status::InvalidArgument(
          "invalid dimension key '" + std::string(dim) +
          "' (1-64 bytes of [A-Za-z0-9_.:-], starting with a letter or _)");
    }
    if (IsReservedName(dim)) {
      return Status::InvalidArgument(k + ": " + std::string(dim) +
                                     " is a reserved name, not a dimension key");
    }
    return k;
  }
  if (IsValidDimensionKeySyntax(key)) return "dim." + k;
  return Status::InvalidArgument("unknown key '" + k + "'");
}

namespace {

using sql_internal::IsKeyword;
using sql_internal::UnsupportedConstruct;

// A '(' ... ')' group is skipped by scanning, not recursion, so this never nests.
constexpr size_t kNotFound = std::numeric_limits<size_t>::max();

std::string DescribeToken(const Token& t) {
  auto cut = [](const std::string& s) { return s.size() > 40 ? s.substr(0, 40) + "..." : s; };
  switch (t.kind) {
    case TokenKind::kWord:
      return IsKeyword(t.value) ? Upper(t.value) : cut(t.value);
    case TokenKind::kQuotedIdent:
      return "\"" + cut(t.value) + "\"";
    case TokenKind::kString:
      return "string '" + cut(t.value) + "'";
    case TokenKind::kInteger:
      return "integer " + cut(t.value);
    case TokenKind::kSymbol:
      return "'" + t.value + "'";
    case TokenKind::kEnd:
      return "end of statement";
  }
  return "?";
}

// A literal of the grammar: 'string', [-]integer or TIMESTAMP 'RFC 3339'.
struct Literal {
  enum Kind { kString, kInteger, kTimestamp } kind = kString;
  std::string text;    // the string; the decimal integer (with '-'); the timestamp text
  int128 integer = 0;  // kInteger and kTimestamp (epoch ms)
  size_t offset = 0;
};

class Parser {
 public:
  Parser(std::string_view sql, std::vector<Token> tokens) : sql_(sql), toks_(std::move(tokens)) {}

  Result<SelectStatement> Parse();

 private:
  const Token& Peek(size_t ahead = 0) const {
    return toks_[std::min(pos_ + ahead, toks_.size() - 1)];
  }
  const Token& Next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) pos_++;
    return t;
  }
  static bool IsWord(const Token& t, std::string_view upper_word) {
    return t.kind == TokenKind::kWord && t.value.size() == upper_word.size() &&
           Upper(t.value) == upper_word;
  }
  static bool IsSym(const Token& t, std::string_view s) {
    return t.kind == TokenKind::kSymbol && t.value == s;
  }
  Status Err(const Token& t, std::string_view msg) const { return ErrorAt(sql_, t.offset, msg); }
  // The error for an unexpected token: its construct by name when it is a rejected one, else
  // "expected <expected>, got <token>".
  Status Unexpected(const Token& t, std::string_view expected) const {
    std::string named = UnsupportedConstruct(t);
    if (!named.empty()) return Err(t, named);
    return Err(t, "expected " + std::string(expected) + ", got " + DescribeToken(t));
  }
  Status ExpectSym(std::string_view s, std::string_view expected) {
    if (!IsSym(Peek(), s)) return Unexpected(Peek(), expected);
    Next();
    return Status::OK();
  }
  // Index just past the ')' matching the '(' at `open`, or kNotFound.
  size_t MatchingParen(size_t open) const;
  // "unsupported function X" or the window-function form for a call at pos_ (word + '(').
  Status UnsupportedFunction(const Token& name) const;
  // "(SELECT" at pos_ (which is '(') -> the subquery error, else OK.
  Status RejectSubquery() const {
    if (IsSym(Peek(), "(") && IsWord(Peek(1), "SELECT")) {
      return Err(Peek(), "subqueries are not supported");
    }
    return Status::OK();
  }

  // A key as written (word or quoted identifier) at pos_ -> canonical key; consumes it.
  Result<std::string> ParseKey(std::string_view expected);
  // The key spelled by `t` (kWord or kQuotedIdent) -> canonical key.
  Result<std::string> ResolveKey(const Token& t) const;
  // SUM(quantity) etc. at pos_ (a word followed by '('): the metric, or the construct's error.
  Result<Metric> ParseMetricCall();
  Status ParseSelectItem();
  Status ParseFrom();
  Status ParseConjunction(int depth);
  Status ParsePredicate(int depth);
  Result<Literal> ParseLiteral();
  Status AddFilter(const std::string& key, std::vector<std::string> values);
  Status AddTimeBound(const Token& op, const Literal& lit);
  Status ParseGroupBy();
  Status ParseOrderBy();
  Status ParseLimit();
  Status FinishTime();

  std::string_view sql_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  SelectStatement stmt_;
  std::vector<size_t> item_offsets_;  // parallel to stmt_.items
  // Lookups that keep long lists linear: output name -> item, key -> first key item, metric ->
  // first item, and the set of group_by.
  std::unordered_map<std::string, size_t> name_index_;
  std::unordered_map<std::string, size_t> key_item_;
  std::unordered_map<int, size_t> metric_item_;
  std::unordered_set<std::string> group_set_;
  // Time bounds in 128 bits until FinishTime saturates them to int64.
  std::optional<int128> from_, to_;
};

size_t Parser::MatchingParen(size_t open) const {
  int depth = 0;
  for (size_t i = open; i < toks_.size(); i++) {
    if (IsSym(toks_[i], "(")) depth++;
    if (IsSym(toks_[i], ")") && --depth == 0) return i + 1;
  }
  return kNotFound;
}

Status Parser::UnsupportedFunction(const Token& name) const {
  const std::string up = Upper(name.value);
  size_t after = MatchingParen(pos_ + 1);
  if (after != kNotFound && after < toks_.size() && IsWord(toks_[after], "OVER")) {
    return Err(name, "window function " + up + "(...) OVER is not supported");
  }
  return Err(name, "unsupported function " + up +
                       " (only SUM(quantity), COUNT(*), MIN(quantity), MAX(quantity))");
}

Result<std::string> Parser::ResolveKey(const Token& t) const {
  const std::string& text = t.value;
  if (t.kind == TokenKind::kWord) {
    if (IsKeyword(text)) {
      return Err(t,
                 Upper(text) + " is a keyword; quote it (\"" + text + "\") or write dim." + text);
    }
    std::string problem = sql_internal::UnquotedKeyProblem(text);
    if (!problem.empty()) return Err(t, problem);
  }
  auto key = CanonicalGroupKey(text);
  if (!key.ok()) return Err(t, key.status().message());
  return key;
}

Result<std::string> Parser::ParseKey(std::string_view expected) {
  const Token& t = Peek();
  if (t.kind != TokenKind::kWord && t.kind != TokenKind::kQuotedIdent) {
    return Unexpected(t, expected);
  }
  if (t.kind == TokenKind::kWord) {
    std::string named = UnsupportedConstruct(t);
    if (!named.empty()) return Err(t, named);
  }
  if (t.kind == TokenKind::kWord && IsSym(Peek(1), "(")) {
    static constexpr std::string_view kAggregates[] = {"SUM", "COUNT", "MIN", "MAX"};
    const std::string up = Upper(t.value);
    if (std::find(std::begin(kAggregates), std::end(kAggregates), up) != std::end(kAggregates)) {
      return Err(t, "aggregate " + up + " is not allowed here");
    }
    return UnsupportedFunction(t);
  }
  auto key = ResolveKey(t);
  if (key.ok()) Next();
  return key;
}

Result<Metric> Parser::ParseMetricCall() {
  const Token& name = Peek();
  const std::string up = Upper(name.value);
  Metric m;
  if (up == "SUM") {
    m = Metric::kSum;
  } else if (up == "COUNT") {
    m = Metric::kCount;
  } else if (up == "MIN") {
    m = Metric::kMin;
  } else if (up == "MAX") {
    m = Metric::kMax;
  } else {
    return UnsupportedFunction(name);
  }
  Next();  // name
  Next();  // '('
  const Token& arg = Peek();
  if (IsWord(arg, "DISTINCT")) return Err(arg, up + "(DISTINCT ...) is not supported");
  if (m == Metric::kCount) {
    if (!IsSym(arg, "*")) {
      return Err(arg, "COUNT(" + (arg.kind == TokenKind::kEnd ? std::string() : arg.value) +
                          ") is not supported (use COUNT(*))");
    }
  } else {
    bool is_quantity = (arg.kind == TokenKind::kWord && Upper(arg.value) == "QUANTITY") ||
                       (arg.kind == TokenKind::kQuotedIdent && arg.value == "quantity");
    if (!is_quantity) {
      std::string what = arg.kind == TokenKind::kEnd ? std::string("") : arg.value;
      return Err(arg, up + "(" + what + ") is not supported (only " + up + "(quantity))");
    }
  }
  Next();
  RETURN_IF_ERROR(ExpectSym(")", "')'"));
  if (IsWord(Peek(), "OVER")) return Err(Peek(), "window functions (OVER) are not supported");
  if (IsWord(Peek(), "FILTER")) return Err(Peek(), "aggregate FILTER is not supported");
  return m;
}

Status Parser::ParseSelectItem() {
  const Token& t = Peek();
  const size_t offset = t.offset;
  SelectItem item;
  if (IsSym(t, "*")) {
    return Err(t, "* in the select list is not supported (name the keys and metrics)");
  }
  if (IsSym(t, "(")) {
    RETURN_IF_ERROR(RejectSubquery());
    return Err(t, "parenthesized expressions are not supported in the select list");
  }
  if (t.kind == TokenKind::kString || t.kind == TokenKind::kInteger) {
    return Err(t, "literals are not supported in the select list");
  }
  if (t.kind == TokenKind::kWord && IsSym(Peek(1), "(")) {
    ASSIGN_OR_RETURN(item.metric, ParseMetricCall());
    item.is_metric = true;
    item.name = MetricName(item.metric);
  } else {
    if (t.kind == TokenKind::kWord && IsKeyword(t.value)) {
      return Unexpected(t, "a key or metric in the select list");
    }
    std::string written = t.value;
    ASSIGN_OR_RETURN(item.key, ParseKey("a key or metric in the select list"));
    item.name = std::move(written);
  }
  const Token& after = Peek();
  if (IsWord(after, "AS")) {
    Next();
    const Token& alias = Peek();
    if (alias.kind == TokenKind::kQuotedIdent ||
        (alias.kind == TokenKind::kWord && !IsKeyword(alias.value))) {
      item.name = alias.value;
      Next();
    } else {
      return Unexpected(alias, "an alias after AS");
    }
  } else if (after.kind == TokenKind::kQuotedIdent ||
             (after.kind == TokenKind::kWord && !IsKeyword(after.value) &&
              UnsupportedConstruct(after).empty())) {
    return Err(after, "an alias needs AS (write AS " + after.value + ")");
  }
  if (!name_index_.emplace(item.name, stmt_.items.size()).second) {
    return ErrorAt(sql_, offset,
                   "duplicate output name '" + item.name + "' (give one of them an alias)");
  }
  if (!item.is_metric) key_item_.emplace(item.key, stmt_.items.size());
  if (item.is_metric) metric_item_.emplace(static_cast<int>(item.metric), stmt_.items.size());
  stmt_.items.push_back(std::move(item));
  item_offsets_.push_back(offset);
  return Status::OK();
}

Status Parser::ParseFrom() {
  const Token& t = Peek();
  if (IsSym(t, "(")) {
    RETURN_IF_ERROR(RejectSubquery());
    return Err(t, "parenthesized FROM is not supported");
  }
  if (t.kind != TokenKind::kWord && t.kind != TokenKind::kQuotedIdent) {
    return Unexpected(t, "usage_events or usage_rollup_hourly");
  }
  if (t.kind == TokenKind::kWord && IsSym(Peek(1), "(")) {
    return Err(t, "table functions are not supported (" + Upper(t.value) + ")");
  }
  std::string name = t.kind == TokenKind::kWord ? Upper(t.value) : t.value;
  if (name == "USAGE_EVENTS" || name == "usage_events") {
    stmt_.source = Source::kRaw;
  } else if (name == "USAGE_ROLLUP_HOURLY" || name == "usage_rollup_hourly") {
    stmt_.source = Source::kRollup;
  } else {
    std::string named = t.kind == TokenKind::kWord ? UnsupportedConstruct(t) : "";
    if (!named.empty()) return Err(t, named);
    return Err(t, "unknown table " + t.value + " (only usage_events and usage_rollup_hourly)");
  }
  Next();
  const Token& after = Peek();
  if (IsSym(after, ",")) return Err(after, "JOIN (a list of tables) is not supported");
  if (IsWord(after, "AS") || after.kind == TokenKind::kQuotedIdent ||
      (after.kind == TokenKind::kWord && !IsKeyword(after.value) &&
       UnsupportedConstruct(after).empty())) {
    return Err(after, "table aliases are not supported");
  }
  return Status::OK();
}

Result<Literal> Parser::ParseLiteral() {
  const Token& t = Peek();
  Literal lit;
  lit.offset = t.offset;
  if (t.kind == TokenKind::kString) {
    lit.kind = Literal::kString;
    lit.text = t.value;
    Next();
    return lit;
  }
  if (t.kind == TokenKind::kInteger || (IsSym(t, "-") && Peek(1).kind == TokenKind::kInteger)) {
    bool negative = IsSym(t, "-");
    if (negative) Next();
    const Token& digits = Peek();
    lit.kind = Literal::kInteger;
    lit.text = (negative ? "-" : "") + digits.value;
    auto v = ParseQuantity(lit.text);
    if (!v) return ErrorAt(sql_, lit.offset, "integer literal too long (at most 38 digits)");
    lit.integer = *v;
    Next();
    return lit;
  }
  if (IsWord(t, "TIMESTAMP")) {
    const Token& str = Peek(1);
    if (str.kind != TokenKind::kString) {
      Next();
      return Unexpected(str, "a string after TIMESTAMP ('2026-05-01T00:00:00Z')");
    }
    auto ms = ParseTimeArg(str.value);
    if (!ms.ok()) {
      return Err(str, "bad TIMESTAMP '" + str.value.substr(0, 64) +
                          "' (expected RFC 3339 such as 2026-05-01T00:00:00Z, or 2026-05-01)");
    }
    lit.kind = Literal::kTimestamp;
    lit.text = str.value;
    lit.integer = *ms;
    Next();
    Next();
    return lit;
  }
  if (t.kind == TokenKind::kWord && Peek(1).kind == TokenKind::kString) {
    return Err(t, Upper(t.value) + " '...' literals are not supported (use TIMESTAMP '...')");
  }
  if (t.kind == TokenKind::kQuotedIdent) {
    return Err(
        t, "expected a literal, got identifier \"" + t.value + "\" (strings use single quotes)");
  }
  if (IsSym(t, "(")) {
    RETURN_IF_ERROR(RejectSubquery());
  }
  return Unexpected(t, "a literal ('string', integer or TIMESTAMP '...')");
}

Status Parser::AddFilter(const std::string& key, std::vector<std::string> values) {
  // Hash sets keep long IN lists linear.
  std::unordered_set<std::string> seen;
  std::vector<std::string> unique;
  for (auto& v : values) {
    if (seen.insert(v).second) unique.push_back(std::move(v));
  }
  for (Filter& f : stmt_.filters) {
    if (f.key == key) {
      std::vector<std::string> both;
      for (auto& v : f.values) {
        if (seen.count(v) != 0) both.push_back(std::move(v));
      }
      f.values = std::move(both);
      return Status::OK();
    }
  }
  stmt_.filters.push_back(Filter{key, std::move(unique)});
  return Status::OK();
}

Status Parser::AddTimeBound(const Token& op, const Literal& lit) {
  if (lit.kind == Literal::kString) {
    return ErrorAt(sql_, lit.offset,
                   "timestamp_ms compares with integer ms or TIMESTAMP '...', not a string");
  }
  const int128 t = lit.integer;
  if (lit.kind == Literal::kInteger &&
      (t < std::numeric_limits<int64_t>::min() || t > std::numeric_limits<int64_t>::max())) {
    return ErrorAt(sql_, lit.offset, "timestamp_ms literal out of the int64 range");
  }
  std::optional<int128> from, to;
  if (op.value == "<") {
    to = t;
  } else if (op.value == "<=") {
    to = t + 1;
  } else if (op.value == ">") {
    from = t + 1;
  } else if (op.value == ">=") {
    from = t;
  } else {  // "="
    from = t;
    to = t + 1;
  }
  if (from && (!from_ || *from > *from_)) from_ = from;
  if (to && (!to_ || *to < *to_)) to_ = to;
  return Status::OK();
}

Status Parser::FinishTime() {
  constexpr int128 kMax = std::numeric_limits<int64_t>::max();
  TimeBound& tb = stmt_.time;
  if (from_ && *from_ > kMax) {
    tb.from_ms = tb.to_ms = static_cast<int64_t>(kMax);
    return Status::OK();
  }
  if (from_) tb.from_ms = static_cast<int64_t>(*from_);
  if (to_ && *to_ <= kMax) tb.to_ms = static_cast<int64_t>(*to_);
  if (tb.from_ms && tb.to_ms && *tb.from_ms > *tb.to_ms) tb.to_ms = tb.from_ms;
  return Status::OK();
}

// The filter value of `lit` for `key`, or the error for a literal of the wrong type.
Result<std::string> FilterValue(std::string_view sql, const std::string& key, const Literal& lit) {
  const bool ms_key = key == "hour_start_ms" || key == "day";
  if (lit.kind == Literal::kString) {
    if (key != "kind") return lit.text;
    const std::string up = Upper(lit.text);
    if (up == "USAGE") return std::string("Usage");
    if (up == "CORRECTION") return std::string("Correction");
    if (up == "RETRACTION") return std::string("Retraction");
    return ErrorAt(sql, lit.offset,
                   "kind is 'Usage', 'Correction' or 'Retraction', not '" + lit.text + "'");
  }
  if (ms_key) {
    if (lit.integer < std::numeric_limits<int64_t>::min() ||
        lit.integer > std::numeric_limits<int64_t>::max()) {
      return ErrorAt(sql, lit.offset, key + " literal out of the int64 range");
    }
    return Int128ToString(lit.integer);
  }
  return ErrorAt(sql, lit.offset,
                 key + " compares with a string literal ('...'), not " +
                     (lit.kind == Literal::kInteger ? "an integer" : "a TIMESTAMP"));
}

Status Parser::ParsePredicate(int depth) {
  const Token& t = Peek();
  if (IsSym(t, "(")) {
    RETURN_IF_ERROR(RejectSubquery());
    if (depth + 1 >= kMaxSqlDepth) {
      return Err(t, "parentheses nested deeper than " + std::to_string(kMaxSqlDepth));
    }
    Next();
    RETURN_IF_ERROR(ParseConjunction(depth + 1));
    return ExpectSym(")", "')' or AND");
  }
  if (t.kind == TokenKind::kString || t.kind == TokenKind::kInteger || IsWord(t, "TIMESTAMP") ||
      IsSym(t, "-")) {
    return Err(t, "a literal on the left of a comparison is not supported (write key = literal)");
  }
  const Token key_tok = t;
  const bool is_ts = (t.kind == TokenKind::kWord || t.kind == TokenKind::kQuotedIdent) &&
                     t.value == "timestamp_ms" && !IsSym(Peek(1), "(");
  std::string key;
  if (is_ts) {
    Next();
  } else {
    ASSIGN_OR_RETURN(key,
                     ParseKey("a predicate (key = literal, key IN (...), timestamp_ms < ...)"));
  }
  const Token op = Peek();
  if (IsWord(op, "IN")) {
    if (is_ts) {
      return Err(op, "IN on timestamp_ms is not supported (use comparisons)");
    }
    Next();
    RETURN_IF_ERROR(RejectSubquery());
    RETURN_IF_ERROR(ExpectSym("(", "'(' after IN"));
    if (IsSym(Peek(), ")")) return Err(Peek(), "empty IN list");
    std::vector<std::string> values;
    while (true) {
      ASSIGN_OR_RETURN(Literal lit, ParseLiteral());
      ASSIGN_OR_RETURN(std::string v, FilterValue(sql_, key, lit));
      values.push_back(std::move(v));
      if (IsSym(Peek(), ",")) {
        Next();
        continue;
      }
      RETURN_IF_ERROR(ExpectSym(")", "',' or ')' in the IN list"));
      break;
    }
    return AddFilter(key, std::move(values));
  }
  const bool is_cmp =
      op.kind == TokenKind::kSymbol && (op.value == "=" || op.value == "<" || op.value == "<=" ||
                                        op.value == ">" || op.value == ">=");
  if (!is_cmp) {
    if (IsWord(op, "NOT")) {
      std::string what = Upper(Peek(1).value);
      if (what == "IN" || what == "LIKE" || what == "BETWEEN" || what == "ILIKE") {
        return Err(op, "NOT " + what + " is not supported");
      }
    }
    return Unexpected(op, "=, IN or a comparison");
  }
  if (!is_ts && op.value != "=") {
    return Err(op, "comparison " + op.value + " on " + key +
                       " is not supported (only = and IN; ranges only on timestamp_ms)");
  }
  Next();
  ASSIGN_OR_RETURN(Literal lit, ParseLiteral());
  if (is_ts) return AddTimeBound(op, lit);
  ASSIGN_OR_RETURN(std::string v, FilterValue(sql_, key, lit));
  return AddFilter(key, {std::move(v)});
}

Status Parser::ParseConjunction(int depth) {
  while (true) {
    RETURN_IF_ERROR(ParsePredicate(depth));
    if (IsWord(Peek(), "AND")) {
      Next();
      continue;
    }
    return Status::OK();
  }
}

Status Parser::ParseGroupBy() {
  while (true) {
    const Token& t = Peek();
    std::string key;
    if (t.kind == TokenKind::kInteger) {
      auto n = ParseQuantity(t.value);
      if (!n || *n < 1 || *n > static_cast<int128>(stmt_.items.size())) {
        return Err(t, "GROUP BY position " + t.value.substr(0, 40) + " is not in the select list");
      }
      const SelectItem& item = stmt_.items[static_cast<size_t>(*n) - 1];
      if (item.is_metric) return Err(t, "cannot GROUP BY a metric (" + item.name + ")");
      key = item.key;
      Next();
    } else {
      const SelectItem* aliased = nullptr;
      if ((t.kind == TokenKind::kWord || t.kind == TokenKind::kQuotedIdent) &&
          !IsSym(Peek(1), "(")) {
        auto it = name_index_.find(t.value);
        if (it != name_index_.end()) aliased = &stmt_.items[it->second];
      }
      if (aliased != nullptr) {
        if (aliased->is_metric) return Err(t, "cannot GROUP BY a metric (" + aliased->name + ")");
        key = aliased->key;
        Next();
      } else {
        ASSIGN_OR_RETURN(key, ParseKey("a key in GROUP BY"));
      }
    }
    if (group_set_.insert(key).second) {
      stmt_.group_by.push_back(key);
    }
    if (!IsSym(Peek(), ",")) return Status::OK();
    Next();
  }
}

Status Parser::ParseOrderBy() {
  while (true) {
    const Token& t = Peek();
    OrderItem o;
    if (t.kind == TokenKind::kInteger) {
      auto n = ParseQuantity(t.value);
      if (!n || *n < 1 || *n > static_cast<int128>(stmt_.items.size())) {
        return Err(t, "ORDER BY position " + t.value.substr(0, 40) + " is not in the select list");
      }
      o.item = static_cast<int>(*n) - 1;
      Next();
    } else if (t.kind == TokenKind::kWord && IsSym(Peek(1), "(")) {
      const Token name = t;
      ASSIGN_OR_RETURN(Metric m, ParseMetricCall());
      auto it = metric_item_.find(static_cast<int>(m));
      if (it != metric_item_.end()) o.item = static_cast<int>(it->second);
      if (o.item < 0) {
        return Err(name,
                   "ORDER BY " + Upper(name.value) + "(...): the metric is not in the select list");
      }
    } else {
      if (t.kind == TokenKind::kWord || t.kind == TokenKind::kQuotedIdent) {
        auto it = name_index_.find(t.value);
        if (it != name_index_.end()) o.item = static_cast<int>(it->second);
      }
      if (o.item >= 0) {
        Next();
      } else {
        const Token key_tok = t;
        ASSIGN_OR_RETURN(o.key, ParseKey("an alias, key or metric in ORDER BY"));
        auto it = key_item_.find(o.key);
        if (it != key_item_.end()) o.item = static_cast<int>(it->second);
        if (o.item < 0 && group_set_.count(o.key) == 0) {
          return Err(key_tok, "ORDER BY " + key_tok.value.substr(0, 64) +
                                  ": not an alias, a selected key, a metric or a GROUP BY key");
        }
      }
    }
    if (o.item >= 0) o.key = stmt_.items[static_cast<size_t>(o.item)].key;
    if (IsWord(Peek(), "DESC")) {
      o.desc = true;
      Next();
    } else if (IsWord(Peek(), "ASC")) {
      Next();
    }
    if (IsWord(Peek(), "NULLS")) return Err(Peek(), "NULLS FIRST/LAST is not supported");
    stmt_.order_by.push_back(std::move(o));
    if (!IsSym(Peek(), ",")) return Status::OK();
    Next();
  }
}

Status Parser::ParseLimit() {
  const Token& t = Peek();
  if (IsSym(t, "-")) return Err(t, "LIMIT must be a non-negative integer");
  if (t.kind != TokenKind::kInteger) {
    if (IsWord(t, "ALL")) return Err(t, "LIMIT ALL is not supported");
    return Unexpected(t, "a non-negative integer after LIMIT");
  }
  auto n = ParseQuantity(t.value);
  if (!n || *n > static_cast<int128>(std::numeric_limits<uint64_t>::max())) {
    return Err(t, "LIMIT " + t.value.substr(0, 40) + " is too large");
  }
  stmt_.limit = static_cast<uint64_t>(*n);
  Next();
  if (IsSym(Peek(), ",")) return Err(Peek(), "LIMIT a, b is not supported");
  return Status::OK();
}

Result<SelectStatement> Parser::Parse() {
  const Token& first = Peek();
  if (first.kind == TokenKind::kEnd) return Err(first, "empty statement");
  if (!IsWord(first, "SELECT")) {
    if (IsWord(first, "WITH")) return Err(first, UnsupportedConstruct(first));
    if (IsSym(first, "(")) return Err(first, "parenthesized statements are not supported");
    if (first.kind == TokenKind::kWord) {
      return Err(first, "only SELECT statements are supported, not " + Upper(first.value));
    }
    return Unexpected(first, "SELECT");
  }
  Next();
  if (IsWord(Peek(), "DISTINCT") || IsWord(Peek(), "ALL")) {
    return Err(Peek(),
               IsWord(Peek(), "ALL") ? "SELECT ALL is not supported" : "DISTINCT is not supported");
  }
  while (true) {
    RETURN_IF_ERROR(ParseSelectItem());
    if (!IsSym(Peek(), ",")) break;
    Next();
  }
  if (!IsWord(Peek(), "FROM")) return Unexpected(Peek(), "',' or FROM");
  Next();
  RETURN_IF_ERROR(ParseFrom());
  if (IsWord(Peek(), "WHERE")) {
    Next();
    RETURN_IF_ERROR(ParseConjunction(0));
  }
  bool grouped = false;
  if (IsWord(Peek(), "GROUP")) {
    Next();
    if (!IsWord(Peek(), "BY")) return Unexpected(Peek(), "BY after GROUP");
    Next();
    RETURN_IF_ERROR(ParseGroupBy());
    grouped = true;
  }
  for (size_t i = 0; i < stmt_.items.size(); i++) {
    const SelectItem& item = stmt_.items[i];
    if (item.is_metric) continue;
    if (group_set_.count(item.key) != 0) continue;
    if (grouped) {
      return ErrorAt(sql_, item_offsets_[i],
                     item.key + " is selected but not in GROUP BY (selected keys are group keys)");
    }
    group_set_.insert(item.key);
    stmt_.group_by.push_back(item.key);
  }
  if (IsWord(Peek(), "HAVING")) return Err(Peek(), UnsupportedConstruct(Peek()));
  if (IsWord(Peek(), "ORDER")) {
    Next();
    if (!IsWord(Peek(), "BY")) return Unexpected(Peek(), "BY after ORDER");
    Next();
    RETURN_IF_ERROR(ParseOrderBy());
  }
  if (IsWord(Peek(), "LIMIT")) {
    Next();
    RETURN_IF_ERROR(ParseLimit());
  }
  RETURN_IF_ERROR(FinishTime());
  if (IsSym(Peek(), ";")) {
    Next();
    if (Peek().kind != TokenKind::kEnd) {
      return Err(Peek(), "multiple statements are not supported (text after ';')");
    }
  }
  const Token& end = Peek();
  if (end.kind != TokenKind::kEnd) {
    if (IsWord(end, "WHERE") || IsWord(end, "GROUP") || IsWord(end, "ORDER") ||
        IsWord(end, "LIMIT")) {
      return Err(
          end, Upper(end.value) + " is out of place (clauses go WHERE, GROUP BY, ORDER BY, LIMIT)");
    }
    if (IsWord(end, "SELECT")) return Err(end, "multiple statements are not supported");
    return Unexpected(end, "end of statement");
  }
  return std::move(stmt_);
}

}  // namespace

Result<SelectStatement> ParseSql(std::string_view sql) {
  if (sql.size() > kMaxSqlBytes) {
    return Status::InvalidArgument("at 1: statement of " + std::to_string(sql.size()) +
                                   " bytes is over the limit of " + std::to_string(kMaxSqlBytes) +
                                   " bytes");
  }
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(sql));
  Parser parser(sql, std::move(tokens));
  return parser.Parse();
}

}  // namespace usagedb::query
