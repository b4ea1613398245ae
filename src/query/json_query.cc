#include "query/json_query.h"

#include <simdjson.h>

#include <set>

#include "query/sql.h"
#include "util/time_util.h"

namespace usagedb::query {
namespace {

Status Bad(const std::string& m) { return Status::InvalidArgument(m); }

Result<int64_t> TimeField(simdjson::dom::element v, const char* name) {
  if (v.is_int64()) return int64_t(v.get_int64());
  if (v.is_string()) {
    auto t = ParseTimeArg(std::string_view(v.get_string()));
    if (!t.ok()) return Bad(std::string(name) + ": " + t.status().message());
    return *t;
  }
  return Bad(std::string(name) + ": expected RFC 3339, YYYY-MM-DD or epoch milliseconds");
}

Result<std::string> StringField(simdjson::dom::element v, const std::string& name) {
  if (!v.is_string()) return Bad(name + ": expected a string");
  return std::string(std::string_view(v.get_string()));
}

}  // namespace

Result<QueryRequest> ParseJsonQuery(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (auto err = parser.parse(padded).get(doc); err) {
    return Bad(std::string("invalid JSON: ") + simdjson::error_message(err));
  }
  if (!doc.is_object()) return Bad("the query must be a JSON object");
  QueryRequest r;
  std::vector<std::pair<std::string, std::string>> metrics;  // name, func
  bool has_metrics = false;
  std::set<std::string> seen;
  for (auto [key_sv, value] : simdjson::dom::object(doc)) {
    std::string key(key_sv);
    if (!seen.insert(key).second) return Bad("repeated field: " + key);
    if (key == "source") {
      ASSIGN_OR_RETURN(std::string s, StringField(value, key));
      if (s == "auto") r.source = QuerySource::kAuto;
      else if (s == "raw" || s == "usage_events") r.source = QuerySource::kRaw;
      else if (s == "rollup" || s == "usage_rollup_hourly") r.source = QuerySource::kRollup;
      else return Bad("source: unknown source '" + s + "' (auto, raw, rollup)");
    } else if (key == "account_id") {
      if (value.is_null()) continue;
      ASSIGN_OR_RETURN(std::string s, StringField(value, key));
      r.account_id = s;
    } else if (key == "from" || key == "to") {
      if (value.is_null()) continue;
      ASSIGN_OR_RETURN(int64_t t, TimeField(value, key.c_str()));
      (key == "from" ? r.from_ms : r.to_ms) = t;
    } else if (key == "group_by") {
      if (!value.is_array()) return Bad("group_by: expected an array of keys");
      for (auto k : simdjson::dom::array(value)) {
        ASSIGN_OR_RETURN(std::string asked, StringField(k, "group_by"));
        auto canon = CanonicalGroupKey(asked);
        if (!canon.ok()) return Bad("group_by: " + canon.status().message());
        for (const auto& g : r.group_by) {
          if (g == *canon) return Bad("group_by: repeated key '" + asked + "'");
        }
        r.group_by.push_back(*canon);
        r.columns.push_back(QueryColumn{asked, false, *canon, QueryFunc::kSum});
      }
    } else if (key == "filters") {
      if (!value.is_object()) return Bad("filters: expected an object of key -> value(s)");
      for (auto [fk, fv] : simdjson::dom::object(value)) {
        auto canon = CanonicalGroupKey(fk);
        if (!canon.ok()) return Bad("filters: " + canon.status().message());
        QueryFilter f;
        f.key = *canon;
        if (fv.is_string()) {
          f.values.emplace_back(std::string_view(fv.get_string()));
        } else if (fv.is_array()) {
          for (auto x : simdjson::dom::array(fv)) {
            ASSIGN_OR_RETURN(std::string s, StringField(x, "filters." + std::string(fk)));
            f.values.push_back(s);
          }
        } else {
          return Bad("filters." + std::string(fk) + ": expected a string or a list of strings");
        }
        if (f.key == "kind") {
          for (std::string& v : f.values) {
            for (size_t i = 0; i < v.size(); i++) {
              v[i] = static_cast<char>(i == 0 ? toupper(static_cast<unsigned char>(v[i]))
                                              : tolower(static_cast<unsigned char>(v[i])));
            }
          }
        }
        r.filters.push_back(std::move(f));
      }
    } else if (key == "metrics") {
      if (!value.is_object()) return Bad("metrics: expected an object of name -> function");
      has_metrics = true;
      for (auto [mk, mv] : simdjson::dom::object(value)) {
        ASSIGN_OR_RETURN(std::string func, StringField(mv, "metrics." + std::string(mk)));
        metrics.push_back({std::string(mk), func});
      }
    } else if (key == "order_by") {
      if (!value.is_array()) return Bad("order_by: expected an array of {\"key\", \"desc\"}");
      for (auto o : simdjson::dom::array(value)) {
        if (!o.is_object()) return Bad("order_by: expected objects {\"key\", \"desc\"}");
        QueryOrder q;
        bool has_key = false;
        for (auto [ok, ov] : simdjson::dom::object(o)) {
          if (ok == "key") {
            ASSIGN_OR_RETURN(q.name, StringField(ov, "order_by.key"));
            has_key = true;
          } else if (ok == "desc") {
            if (!ov.is_bool()) return Bad("order_by.desc: expected true or false");
            q.desc = bool(ov.get_bool());
          } else {
            return Bad("order_by: unknown field " + std::string(ok));
          }
        }
        if (!has_key) return Bad("order_by: an entry without \"key\"");
        r.order_by.push_back(std::move(q));
      }
    } else if (key == "limit") {
      if (!value.is_uint64()) return Bad("limit: expected a non-negative integer");
      r.limit = uint64_t(value.get_uint64());
    } else if (key == "as_of") {
      if (value.is_null()) continue;
      if (!value.is_uint64()) return Bad("as_of: expected a commit sequence");
      r.as_of_seq = uint64_t(value.get_uint64());
    } else if (key == "as_of_ms") {
      if (value.is_null()) continue;
      ASSIGN_OR_RETURN(int64_t t, TimeField(value, "as_of_ms"));
      r.as_of_ms = t;
    } else {
      return Bad("unknown field: " + key);
    }
  }
  if (!has_metrics) metrics = {{"quantity", "sum"}, {"count", "count"}};
  for (const auto& [name, func] : metrics) {
    QueryColumn c;
    c.name = name;
    c.is_metric = true;
    if (func == "sum") c.func = QueryFunc::kSum;
    else if (func == "count") c.func = QueryFunc::kCount;
    else if (func == "min") c.func = QueryFunc::kMin;
    else if (func == "max") c.func = QueryFunc::kMax;
    else return Bad("metrics." + name + ": unknown function '" + func + "' (sum, count, min, max)");
    for (const QueryColumn& other : r.columns) {
      if (other.name == name) return Bad("metrics: field name '" + name + "' used twice");
    }
    r.columns.push_back(std::move(c));
  }
  if (r.as_of_seq && r.as_of_ms) return Bad("as_of and as_of_ms cannot be combined");
  if (r.from_ms && r.to_ms && *r.from_ms > *r.to_ms) return Bad("from is after to");
  // Order terms may name an output field or a canonical group key.
  for (QueryOrder& o : r.order_by) {
    bool found = false;
    for (const QueryColumn& c : r.columns) found = found || c.name == o.name;
    if (!found) {
      auto canon = CanonicalGroupKey(o.name);
      if (canon.ok()) {
        for (const auto& g : r.group_by) {
          if (g == *canon) {
            o.name = *canon;
            found = true;
          }
        }
      }
    }
    if (!found) return Bad("order_by: '" + o.name + "' is neither a metric nor a group key");
  }
  return r;
}

}  // namespace usagedb::query
