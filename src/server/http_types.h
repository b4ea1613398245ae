// The request and response as the routes see them, independent of the HTTP library (the Beast
// code lives in http_server.cc only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "usagedb/status.h"

namespace usagedb {
namespace server {

// A response body produced piece by piece (GET /v1/export/parquet). The server sends it with
// `Transfer-Encoding: chunked` (HTTP/1.1; an HTTP/1.0 client gets the raw bytes and the
// connection closes at the end). The status and headers are sent before the first Next().
// Next() is called on the connection's network strand, one call at a time, so it must be
// quick and bounded (e.g. one read of <= 1 MiB from a local file). An error from Next() after
// headers were sent aborts the connection WITHOUT the terminating zero-length chunk (the
// client never sees a complete-looking body) and is logged with the status message.
// The server drops its reference when the response ends (complete, aborted or the connection
// lost): the destructor is where a producer releases what it holds (temporary files).
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // Sets *chunk to the next non-empty piece, or *done = true at the end (chunk left empty).
  virtual Status Next(std::string* chunk, bool* done) = 0;
};

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
  // When set, the body is streamed from it (`body` is ignored); see BodyStream.
  std::shared_ptr<BodyStream> stream;
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
