// Turns a parsed SQL statement into the engine's QueryRequest (SPEC §3.4).
#pragma once

#include "query/sql.h"
#include "usagedb/query.h"
#include "usagedb/status.h"

namespace usagedb::query {

// An account_id filter with one value also becomes the request's account (bucket pruning).
Result<QueryRequest> PlanSql(const SelectStatement& stmt);
// ParseSql + PlanSql.
Result<QueryRequest> PlanSqlText(std::string_view sql);

}  // namespace usagedb::query
