// The JSON query request of SPEC §3.4 (POST /v1/query/json) → QueryRequest.
#pragma once

#include <string_view>

#include "usagedb/query.h"
#include "usagedb/status.h"

namespace usagedb::query {

// {"source", "account_id", "from", "to", "group_by", "filters", "metrics", "order_by",
//  "limit", "as_of", "as_of_ms"}: every field optional. Output fields: the group keys under the
// names they were asked by, then the metrics in request order. InvalidArgument naming the
// problem for malformed JSON, unknown fields, bad keys, metric functions or times.
Result<QueryRequest> ParseJsonQuery(std::string_view body);

}  // namespace usagedb::query
