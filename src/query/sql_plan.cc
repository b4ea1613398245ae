#include "query/sql_plan.h"

namespace usagedb::query {

Result<QueryRequest> PlanSql(const SelectStatement& stmt) {
  QueryRequest r;
  r.source = stmt.source == Source::kRollup ? QuerySource::kRollup : QuerySource::kRaw;
  r.group_by = stmt.group_by;
  for (const SelectItem& it : stmt.items) {
    QueryColumn c;
    c.name = it.name;
    c.is_metric = it.is_metric;
    if (it.is_metric) {
      switch (it.metric) {
        case Metric::kSum: c.func = QueryFunc::kSum; break;
        case Metric::kCount: c.func = QueryFunc::kCount; break;
        case Metric::kMin: c.func = QueryFunc::kMin; break;
        case Metric::kMax: c.func = QueryFunc::kMax; break;
      }
    } else {
      c.key = it.key;
    }
    r.columns.push_back(std::move(c));
  }
  for (const Filter& f : stmt.filters) {
    r.filters.push_back(QueryFilter{f.key, f.values});
    if (f.key == "account_id" && f.values.size() == 1) r.account_id = f.values[0];
  }
  r.from_ms = stmt.time.from_ms;
  r.to_ms = stmt.time.to_ms;
  for (const OrderItem& o : stmt.order_by) {
    QueryOrder q;
    q.desc = o.desc;
    q.name = o.item >= 0 ? stmt.items[static_cast<size_t>(o.item)].name : o.key;
    r.order_by.push_back(std::move(q));
  }
  r.limit = stmt.limit;
  return r;
}

Result<QueryRequest> PlanSqlText(std::string_view sql) {
  ASSIGN_OR_RETURN(SelectStatement stmt, ParseSql(sql));
  return PlanSql(stmt);
}

}  // namespace usagedb::query
