// The request and response as the routes see them, independent of the HTTP library (the Beast
// code lives in http_server.cc only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace usagedb {
namespace server {

struct HttpRequest {
  std::string method;            // "GET", "POST", ...
  std::string target;            // as received: path and query
  std::string path;              // target before '?', not percent-decoded
  std::string query;             // target after '?', not percent-decoded
  std::string content_type;      // "" when absent
  std::string content_encoding;  // "" when absent
  std::string authorization;     // "" when absent
  std::string body;              // as received (possibly gzip)
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Retry-After, Allow)
};

// Called by the HTTP server for every complete request, on one of its worker threads.
// Implementations are thread-safe. Never throws.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void Handle(HttpRequest& request, HttpResponse* response) = 0;
};

}  // namespace server
}  // namespace usagedb
