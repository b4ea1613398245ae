// The one table mapping StatusCode → HTTP status and error code (SPEC §3; STYLE: "one table
// maps status codes to HTTP statuses, in the server and nowhere else"), and the JSON error
// body `{"error": {"code": "<snake_case>", "message": "<human text>"}}`.
#pragma once

#include <string>
#include <string_view>

#include "server/http_types.h"
#include "usagedb/status.h"

namespace usagedb {
namespace server {

struct HttpErrorMapping {
  StatusCode status_code;
  int http_status;
  const char* error_code;  // default JSON code for this StatusCode
  bool retry_after;        // add `Retry-After` (503)
};

// The mapping for `code` (kInternal's for an unknown code).
const HttpErrorMapping& MappingFor(StatusCode code);

// Fills *response with the JSON error for `status` (REQUIRES: !status.ok()). A message that
// starts with a known specific code and ": " ("too_many_events: ...", "timeout: ...",
// "not_in_rollups: ...") answers with that code and the rest of the message; the HTTP status
// still comes from the table.
void SetStatusError(const Status& status, HttpResponse* response);

// Fills *response with a protocol-level error that has no StatusCode (401, 403, 404, 405,
// 413, 415, 431, 501).
void SetHttpError(int http_status, std::string_view code, std::string_view message,
                  HttpResponse* response);

// Seconds a client should wait before retrying a 503.
inline constexpr int kRetryAfterSeconds = 1;

}  // namespace server
}  // namespace usagedb
