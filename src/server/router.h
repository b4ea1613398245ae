// The route table of the HTTP API: method + path pattern ("/v1/accounts/{account_id}/usage")
// → handler and the scope an API key needs. Later issues add their routes to the same table.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/api_keys.h"
#include "server/http_types.h"
#include "usagedb/status.h"

namespace usagedb {
namespace server {

// Decoded query parameters in request order (a key may repeat).
class QueryParams {
 public:
  // Splits on '&' and '=', percent-decodes ('+' = space). InvalidArgument on a bad escape or
  // a key or value that is not UTF-8.
  static Result<QueryParams> Parse(std::string_view query);

  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
  // The single value of `key`; nullptr when absent. InvalidArgument when it repeats.
  Result<const std::string*> Single(std::string_view key) const;
  bool Has(std::string_view key) const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// Percent-decodes `s` ('+' stays '+' unless plus_is_space). False on a malformed escape.
bool PercentDecode(std::string_view s, bool plus_is_space, std::string* out);

struct RequestContext {
  HttpRequest& request;
  HttpResponse* response;
  std::vector<std::string> path_params;  // the {…} segments, percent-decoded, in order
  QueryParams query;
};

// Returns OK after filling ctx.response, or a Status that the caller turns into a JSON error
// through the one StatusCode → HTTP table (http_errors.h).
using RouteHandler = std::function<Status(RequestContext& ctx)>;

struct Route {
  std::string method;
  std::string pattern;
  std::string name;  // for metrics: "usage_batch", "account_usage", ...
  Scope scope;
  RouteHandler handler;
  std::vector<std::string> segments;  // pattern split on '/'; "{x}" matches any one segment
};

class Router {
 public:
  // REQUIRES: pattern starts with '/'; not called concurrently with Match.
  void Add(std::string method, std::string pattern, Scope scope, std::string name,
           RouteHandler handler);

  struct MatchResult {
    enum Kind { kFound, kNotFound, kMethodNotAllowed, kBadPath } kind = kNotFound;
    const Route* route = nullptr;
    std::vector<std::string> path_params;
    std::string allow;  // kMethodNotAllowed: "GET, POST"
  };
  // Thread-safe after the last Add.
  MatchResult Match(std::string_view method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

}  // namespace server
}  // namespace usagedb
