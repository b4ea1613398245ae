#include "server/http_errors.h"

#include "model/event_codec.h"

namespace usagedb {
namespace server {
namespace {

// SPEC §3: 400 bad request, 409 state conflict, 422 an exact result that does not fit,
// 500 damage found by a read (corruption) and bugs, 503 retry later (with Retry-After).
const HttpErrorMapping kTable[] = {
    {StatusCode::kOk, 200, "ok", false},
    {StatusCode::kNotFound, 404, "not_found", false},
    {StatusCode::kCorruption, 500, "corruption", false},
    {StatusCode::kNotSupported, 400, "not_supported", false},
    {StatusCode::kInvalidArgument, 400, "invalid_argument", false},
    {StatusCode::kIOError, 503, "io_error", true},
    {StatusCode::kBusy, 503, "busy", true},
    {StatusCode::kUnavailable, 503, "unavailable", true},
    {StatusCode::kOverflow, 422, "overflow", false},
    {StatusCode::kFailedPrecondition, 409, "failed_precondition", false},
    {StatusCode::kAborted, 409, "aborted", false},
    {StatusCode::kAlreadyExists, 409, "already_exists", false},
    {StatusCode::kInternal, 500, "internal", false},
};

// Specific codes a lower layer (or a route) may name at the start of a Status message.
const char* const kSpecificCodes[] = {
    "too_many_events", "timeout",           "not_in_rollups",   "not_supported",
    "unaligned_range", "cursor_mismatch",   "period_not_ended", "overflow",
    "invalid_body",    "invalid_gzip",      "bad_date",         "shutting_down",
    "not_implemented", "unknown_parameter", "invalid_period",
};

void AppendErrorJson(std::string_view code, std::string_view message, std::string* out) {
  out->append("{\"error\":{\"code\":");
  AppendJsonString(code, out);
  out->append(",\"message\":");
  AppendJsonString(message, out);
  out->append("}}");
}

}  // namespace

const HttpErrorMapping& MappingFor(StatusCode code) {
  for (const HttpErrorMapping& m : kTable) {
    if (m.status_code == code) return m;
  }
  return kTable[sizeof(kTable) / sizeof(kTable[0]) - 1];
}

void SetStatusError(const Status& status, HttpResponse* response) {
  const HttpErrorMapping& m = MappingFor(status.code());
  std::string_view code = m.error_code;
  std::string_view message = status.message();
  for (const char* c : kSpecificCodes) {
    std::string_view sc(c);
    if (message.size() > sc.size() + 2 && message.substr(0, sc.size()) == sc &&
        message.substr(sc.size(), 2) == ": ") {
      code = sc;
      message.remove_prefix(sc.size() + 2);
      break;
    }
  }
  response->status = m.http_status;
  response->content_type = "application/json";
  response->body.clear();
  response->headers.clear();
  AppendErrorJson(code, message, &response->body);
  if (m.retry_after)
    response->headers.emplace_back("Retry-After", std::to_string(kRetryAfterSeconds));
}

void SetHttpError(int http_status, std::string_view code, std::string_view message,
                  HttpResponse* response) {
  response->status = http_status;
  response->content_type = "application/json";
  response->body.clear();
  response->headers.clear();
  AppendErrorJson(code, message, &response->body);
  if (http_status == 503) {
    response->headers.emplace_back("Retry-After", std::to_string(kRetryAfterSeconds));
  }
}

}  // namespace server
}  // namespace usagedb
