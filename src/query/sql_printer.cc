// ToSql: prints a SelectStatement so that ParseSql reads it back to an equal statement.
//
// Names resolve differently per clause (ORDER BY and GROUP BY look up output names before
// keys), so a key is printed in a spelling that cannot be captured by an output name.

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "query/sql.h"
#include "query/sql_lexer.h"

namespace usagedb::query {

namespace {

using sql_internal::IsPlainIdentifier;

std::string Ident(const std::string& s) {
  if (IsPlainIdentifier(s)) return s;
  std::string out = "\"";
  for (char c : s) {
    out.push_back(c);
    if (c == '"') out.push_back('"');
  }
  out.push_back('"');
  return out;
}

std::string StringLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out.push_back(c);
    if (c == '\'') out.push_back('\'');
  }
  out.push_back('\'');
  return out;
}

const char* MetricCall(Metric m) {
  switch (m) {
    case Metric::kSum:
      return "SUM(quantity)";
    case Metric::kCount:
      return "COUNT(*)";
    case Metric::kMin:
      return "MIN(quantity)";
    case Metric::kMax:
      return "MAX(quantity)";
  }
  return "SUM(quantity)";
}

// Lookups over the select list, built once so printing stays linear.
struct ItemIndex {
  explicit ItemIndex(const SelectStatement& s) : stmt(s) {
    for (size_t i = 0; i < s.items.size(); i++) {
      by_name.emplace(s.items[i].name, i);
      if (!s.items[i].is_metric) by_key.emplace(s.items[i].key, i);
    }
  }
  const SelectItem* Named(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : &stmt.items[it->second];
  }
  const SelectStatement& stmt;
  std::unordered_map<std::string, size_t> by_name;
  std::unordered_map<std::string, size_t> by_key;  // first key item of each key
};

// Spellings of canonical `key`: itself, and the bare dimension key when that names it too.
std::vector<std::string> KeySpellings(const std::string& key) {
  std::vector<std::string> out = {key};
  if (key.rfind("dim.", 0) == 0) {
    std::string bare = key.substr(4);
    auto canon = CanonicalGroupKey(bare);
    if (canon.ok() && *canon == key) out.push_back(bare);
  }
  return out;
}

// A spelling of `key` for GROUP BY / ORDER BY (where output names are looked up first): one
// that is no output name, or (GROUP BY only) names a key item with this very key.
std::string ClauseKey(const ItemIndex& index, const std::string& key, bool group_by) {
  for (const std::string& c : KeySpellings(key)) {
    const SelectItem* named = index.Named(c);
    if (named == nullptr || (group_by && !named->is_metric && named->key == key)) {
      return Ident(c);
    }
  }
  auto it = index.by_key.find(key);
  if (it != index.by_key.end()) {
    // GROUP BY the item's own name resolves to its key; ORDER BY never gets here with a
    // selected key (it prints the item's name).
    return group_by ? Ident(index.stmt.items[it->second].name) : std::to_string(it->second + 1);
  }
  // Unreachable for statements from ParseSql: the user's own spelling was one of the above.
  return Ident(key);
}

}  // namespace

std::string ToSql(const SelectStatement& s) {
  const ItemIndex index(s);
  std::string out = "SELECT ";
  for (size_t i = 0; i < s.items.size(); i++) {
    const SelectItem& item = s.items[i];
    if (i > 0) out += ", ";
    if (item.is_metric) {
      out += MetricCall(item.metric);
      if (item.name != MetricName(item.metric)) out += " AS " + Ident(item.name);
    } else {
      auto canon = CanonicalGroupKey(item.name);
      if (canon.ok() && *canon == item.key) {
        out += Ident(item.name);
      } else {
        out += Ident(item.key) + " AS " + Ident(item.name);
      }
    }
  }
  out += s.source == Source::kRaw ? " FROM usage_events" : " FROM usage_rollup_hourly";
  std::vector<std::string> preds;
  for (const Filter& f : s.filters) {
    const std::string key = Ident(f.key);
    if (f.values.empty()) {
      // Contradictory predicates: two distinct values of the key.
      const bool kind = f.key == "kind";
      preds.push_back(key + " = " + (kind ? "'Usage'" : "'a'") + " AND " + key + " = " +
                      (kind ? "'Correction'" : "'b'"));
    } else if (f.values.size() == 1) {
      preds.push_back(key + " = " + StringLiteral(f.values[0]));
    } else {
      std::string list;
      for (const std::string& v : f.values) {
        if (!list.empty()) list += ", ";
        list += StringLiteral(v);
      }
      preds.push_back(key + " IN (" + list + ")");
    }
  }
  if (s.time.from_ms) preds.push_back("timestamp_ms >= " + std::to_string(*s.time.from_ms));
  if (s.time.to_ms) preds.push_back("timestamp_ms < " + std::to_string(*s.time.to_ms));
  for (size_t i = 0; i < preds.size(); i++) out += (i == 0 ? " WHERE " : " AND ") + preds[i];
  // GROUP BY is printed whenever there are group keys: without it the selected keys would be
  // the group keys, which equals group_by only when no unselected key is grouped; printing it
  // always is exact either way.
  if (!s.group_by.empty()) {
    out += " GROUP BY ";
    for (size_t i = 0; i < s.group_by.size(); i++) {
      if (i > 0) out += ", ";
      out += ClauseKey(index, s.group_by[i], /*group_by=*/true);
    }
  }
  if (!s.order_by.empty()) {
    out += " ORDER BY ";
    for (size_t i = 0; i < s.order_by.size(); i++) {
      const OrderItem& o = s.order_by[i];
      if (i > 0) out += ", ";
      if (o.item >= 0 && static_cast<size_t>(o.item) < s.items.size()) {
        out += Ident(s.items[static_cast<size_t>(o.item)].name);
      } else {
        out += ClauseKey(index, o.key, /*group_by=*/false);
      }
      if (o.desc) out += " DESC";
    }
  }
  if (s.limit) out += " LIMIT " + std::to_string(*s.limit);
  return out;
}

}  // namespace usagedb::query
