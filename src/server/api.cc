#include "server/api.h"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "io/file_system.h"
#include "model/event_codec.h"
#include "model/event_rules.h"
#include "query/json_query.h"
#include "query/sql_plan.h"
#include "server/gzip.h"
#include "server/http_errors.h"
#include "usagedb/export.h"
#include "util/int128.h"
#include "util/time_util.h"

namespace usagedb {
namespace server {
namespace {

using Clock = std::chrono::steady_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

enum class MediaType { kJson, kNdjson, kOther };

// "application/json", "application/json; charset=utf-8", "application/x-ndjson; charset=UTF-8".
// A charset other than UTF-8 makes it kOther; other parameters are ignored.
MediaType ParseMediaType(std::string_view content_type) {
  size_t semi = content_type.find(';');
  std::string type = Lower(Trim(content_type.substr(0, semi)));
  MediaType m = MediaType::kOther;
  if (type == "application/json") m = MediaType::kJson;
  if (type == "application/x-ndjson") m = MediaType::kNdjson;
  while (m != MediaType::kOther && semi != std::string_view::npos) {
    content_type.remove_prefix(semi + 1);
    semi = content_type.find(';');
    std::string_view param = Trim(content_type.substr(0, semi));
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    if (Lower(Trim(param.substr(0, eq))) != "charset") continue;
    std::string_view v = Trim(param.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    std::string cs = Lower(v);
    if (cs != "utf-8" && cs != "utf8") m = MediaType::kOther;
  }
  return m;
}

void AppendU64(uint64_t v, std::string* out) { out->append(std::to_string(v)); }

void AppendTimeOrNull(const std::optional<int64_t>& ms, std::string* out) {
  if (ms) {
    AppendJsonString(FormatRfc3339(*ms), out);
  } else {
    out->append("null");
  }
}

Result<std::optional<int64_t>> TimeParam(const QueryParams& q, std::string_view name) {
  ASSIGN_OR_RETURN(const std::string* v, q.Single(name));
  if (v == nullptr) return std::optional<int64_t>();
  Result<int64_t> t = ParseTimeArg(*v);
  if (!t.ok()) {
    return Status::InvalidArgument("bad_date: " + std::string(name) + ": " + t.status().message());
  }
  return std::optional<int64_t>(*t);
}

Result<EventKind> ParseKind(std::string_view s) {
  std::string l = Lower(s);
  if (l == "usage") return EventKind::kUsage;
  if (l == "correction") return EventKind::kCorrection;
  if (l == "retraction") return EventKind::kRetraction;
  return Status::InvalidArgument("kind: '" + std::string(s) +
                                 "' is not Usage, Correction or Retraction");
}

// The §1/§3.5 key rules are the model's: one definition for ingest, SQL and the routes.
using model_internal::IsReservedName;
inline bool IsDimensionKeySyntax(std::string_view k) {
  return model_internal::IsValidDimensionKeySyntax(k);
}

// GET /v1/export/parquet writes the export to <db_root>/<prefix><pid>-<n>.parquet.tmp and
// streams it from there; the exporter's own temporary is that name + ".tmp-<pid>-<n>". Both
// start with this prefix, which ApiService's constructor sweeps (a crash leaves them behind);
// the final name also ends in ".tmp", which the DB's recovery removes from db_root.
constexpr char kExportTempPrefix[] = "http-export-";

// Streams a finished export file in chunks of `chunk_bytes` and removes it when dropped
// (complete, aborted or never sent). Memory: one chunk.
class ExportFileStream : public BodyStream {
 public:
  ExportFileStream(FileSystem* fs, std::string path, std::unique_ptr<RandomAccessFile> file,
                   uint64_t size, size_t chunk_bytes)
      : fs_(fs),
        path_(std::move(path)),
        file_(std::move(file)),
        size_(size),
        chunk_bytes_(chunk_bytes) {}
  ~ExportFileStream() override {
    file_.reset();
    Status s = fs_->RemoveFile(path_);
    if (!s.ok()) {
      std::fprintf(stderr, "usagedb: cannot remove the export temporary: %s\n",
                   s.ToString().c_str());
    }
  }

  Status Next(std::string* chunk, bool* done) override {
    if (offset_ >= size_) {
      *done = true;
      return Status::OK();
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_bytes_, size_ - offset_));
    Status s = file_->Read(offset_, n, chunk);
    if (!s.ok()) {
      return Status::IOError("Parquet export: reading the export file " + path_ + " at offset " +
                             std::to_string(offset_) + ": " + s.ToString());
    }
    if (chunk->size() != n) {
      return Status::IOError("Parquet export: the export file " + path_ + " is shorter (" +
                             std::to_string(offset_ + chunk->size()) + " bytes) than written (" +
                             std::to_string(size_) + ")");
    }
    offset_ += n;
    return Status::OK();
  }

 private:
  FileSystem* fs_;
  std::string path_;
  std::unique_ptr<RandomAccessFile> file_;
  uint64_t size_;
  size_t chunk_bytes_;
  uint64_t offset_ = 0;
};

}  // namespace

ApiService::ApiService(DB* db, const ServerSettings& settings, ApiKeys keys)
    : db_(db),
      settings_(settings),
      keys_(std::move(keys)),
      started_(Clock::now()),
      export_fs_(FileSystem::Default()) {
  AddRoutes();
  RemoveStaleExportTemporaries();
}

void ApiService::RemoveStaleExportTemporaries() {
  Result<std::vector<std::string>> names = export_fs_->ListDir(settings_.db_root);
  if (!names.ok()) return;
  for (const std::string& name : *names) {
    if (name.compare(0, sizeof(kExportTempPrefix) - 1, kExportTempPrefix) != 0) continue;
    export_fs_->RemoveFile(settings_.db_root + "/" + name).IgnoreError();
  }
}

void ApiService::AddRoutes() {
  Router& r = router_;
  auto bind = [this](Status (ApiService::*fn)(RequestContext&)) {
    return [this, fn](RequestContext& ctx) { return (this->*fn)(ctx); };
  };
  r.Add("POST", "/v1/usage/batch", Scope::kIngest, "usage_batch", bind(&ApiService::HandleBatch));
  r.Add("GET", "/v1/accounts/{account_id}/usage", Scope::kRead, "account_usage",
        bind(&ApiService::HandleAccountUsage));
  r.Add("GET", "/health", Scope::kNone, "health", bind(&ApiService::HandleHealth));
  r.Add("GET", "/metrics", Scope::kRead, "metrics", bind(&ApiService::HandleMetrics));
  r.Add("POST", "/v1/admin/flush", Scope::kAdmin, "admin_flush",
        bind(&ApiService::HandleAdminFlush));
  r.Add("GET", "/v1/accounts/{account_id}/usage/events", Scope::kRead, "usage_events",
        bind(&ApiService::HandleUsageEvents));
  r.Add("POST", "/v1/query/json", Scope::kRead, "query_json", bind(&ApiService::HandleQueryJson));
  r.Add("POST", "/v1/query/sql", Scope::kRead, "query_sql", bind(&ApiService::HandleQuerySql));
  r.Add("GET", "/v1/conflicts", Scope::kRead, "conflicts", bind(&ApiService::HandleConflicts));
  r.Add("GET", "/v1/export/parquet", Scope::kRead, "export_parquet",
        bind(&ApiService::HandleExportParquet));

  // SPEC §3 routes that later work builds: 501 naming where they come from.
  struct Later {
    const char* method;
    const char* pattern;
    Scope scope;
    const char* what;
  };
  static const Later kLater[] = {
      {"GET", "/v1/accounts/{account_id}/explain", Scope::kRead,
       "explain arrives with rollups (a later issue)"},
      {"GET", "/v1/accounts/{account_id}/verify", Scope::kRead,
       "verify arrives with rollups (a later issue)"},
      {"GET", "/v1/accounts/{account_id}/periods/{period}", Scope::kRead,
       "billing periods arrive in a later issue"},
      {"GET", "/v1/accounts/{account_id}/periods/{period}/events", Scope::kRead,
       "billing periods arrive in a later issue"},
      {"GET", "/v1/accounts/{account_id}/periods/{period}/adjustments", Scope::kRead,
       "billing periods arrive in a later issue"},
      {"POST", "/v1/accounts/{account_id}/periods/{period}/close", Scope::kAdmin,
       "billing periods arrive in a later issue"},
      {"POST", "/v1/accounts/{account_id}/periods/{period}/reopen", Scope::kAdmin,
       "billing periods arrive in a later issue"},
      {"POST", "/v1/admin/rollup", Scope::kAdmin, "rollups arrive in a later issue"},
      {"POST", "/v1/admin/compact", Scope::kAdmin, "compaction arrives in a later issue"},
      {"POST", "/v1/admin/check", Scope::kAdmin, "check arrives in a later issue"},
      {"POST", "/v1/admin/rebuild-rollups", Scope::kAdmin, "rollups arrive in a later issue"},
      {"POST", "/v1/admin/checkpoint", Scope::kAdmin, "checkpoints arrive in a later issue"},
  };
  for (const Later& l : kLater) {
    std::string message = std::string(l.method) + " " + l.pattern + " is not built yet: " + l.what;
    r.Add(l.method, l.pattern, l.scope, "not_implemented", [message](RequestContext& ctx) {
      SetHttpError(501, "not_implemented", message, ctx.response);
      return Status::OK();
    });
  }
}

void ApiService::Handle(HttpRequest& request, HttpResponse* response) {
  const auto t0 = Clock::now();
  Router::MatchResult m = router_.Match(request.method, request.path);
  std::string route_name = "unmatched";
  switch (m.kind) {
    case Router::MatchResult::kNotFound: {
      std::string what = IsUtf8(request.path) && request.path.size() <= 512
                             ? request.method + " " + request.path
                             : request.method + " request";
      SetHttpError(404, "not_found", "no route for " + what, response);
      break;
    }
    case Router::MatchResult::kBadPath:
      SetHttpError(400, "invalid_argument",
                   "a path segment has a malformed percent-escape or is not UTF-8", response);
      break;
    case Router::MatchResult::kMethodNotAllowed:
      SetHttpError(405, "method_not_allowed",
                   request.method + " is not allowed here (allowed: " + m.allow + ")", response);
      response->headers.emplace_back("Allow", m.allow);
      break;
    case Router::MatchResult::kFound: {
      const Route& route = *m.route;
      route_name = route.name;
      AuthResult auth = keys_.Check(request.authorization, route.scope);
      if (auth == AuthResult::kUnauthorized) {
        SetHttpError(401, "unauthorized",
                     request.authorization.empty()
                         ? "this route needs an API key: Authorization: Bearer <key>"
                         : "unknown API key",
                     response);
        response->headers.emplace_back("WWW-Authenticate", "Bearer");
        break;
      }
      if (auth == AuthResult::kForbidden) {
        const char* scope = route.scope == Scope::kIngest ? "ingest"
                            : route.scope == Scope::kRead ? "read"
                                                          : "admin";
        SetHttpError(403, "forbidden", std::string("this API key lacks the '") + scope + "' scope",
                     response);
        break;
      }
      Result<QueryParams> q = QueryParams::Parse(request.query);
      if (!q.ok()) {
        SetStatusError(q.status(), response);
        break;
      }
      RequestContext ctx{request, response, std::move(m.path_params), std::move(q).value()};
      Status s = route.handler(ctx);
      if (!s.ok()) SetStatusError(s, response);
      break;
    }
  }
  metrics_.AddRequest(route_name, response->status,
                      std::chrono::duration<double>(Clock::now() - t0).count());
}

bool ApiService::CheckMediaType(RequestContext& ctx, bool allow_ndjson, bool* ndjson) {
  *ndjson = false;
  const std::string& ct = ctx.request.content_type;
  if (ct.empty()) return true;  // SPEC §3: a missing Content-Type on a JSON route means JSON
  MediaType m = ParseMediaType(ct);
  if (m == MediaType::kJson) return true;
  if (m == MediaType::kNdjson && allow_ndjson) {
    *ndjson = true;
    return true;
  }
  std::string shown = IsUtf8(ct) && ct.size() <= 256 ? "'" + ct + "'" : "this Content-Type";
  SetHttpError(415, "unsupported_media_type",
               shown + " is not accepted here: send application/json" +
                   (allow_ndjson ? std::string(" or application/x-ndjson") : std::string()) +
                   " (charset, when given, utf-8)",
               ctx.response);
  return false;
}

bool ApiService::DecodeBody(RequestContext& ctx, size_t* size) {
  std::string& body = ctx.request.body;
  std::string enc = Lower(Trim(ctx.request.content_encoding));
  if (enc == "gzip" || enc == "x-gzip") {
    std::string inflated, error;
    InflateOutcome o = GzipInflate(body, settings_.max_body_bytes, &inflated, &error);
    if (o == InflateOutcome::kTooLarge) {
      SetHttpError(413, "body_too_large",
                   "the decompressed body exceeds max_body_bytes (" +
                       std::to_string(settings_.max_body_bytes) + ")",
                   ctx.response);
      return false;
    }
    if (o == InflateOutcome::kMalformed) {
      SetHttpError(400, "invalid_gzip", error, ctx.response);
      return false;
    }
    body = std::move(inflated);
  } else if (!enc.empty() && enc != "identity") {
    SetHttpError(415, "unsupported_media_type",
                 "Content-Encoding must be gzip or absent (identity)", ctx.response);
    return false;
  }
  if (body.size() > settings_.max_body_bytes) {
    SetHttpError(
        413, "body_too_large",
        "the body exceeds max_body_bytes (" + std::to_string(settings_.max_body_bytes) + ")",
        ctx.response);
    return false;
  }
  *size = body.size();
  body.append(kJsonPadding, '\0');
  return true;
}

Status ApiService::HandleBatch(RequestContext& ctx) {
  bool all_results = false;
  for (const auto& [k, v] : ctx.query.items()) {
    if (k == "results") {
      if (v == "all") {
        all_results = true;
      } else if (v != "errors") {
        return Status::InvalidArgument("results: must be 'all' (every event) or 'errors'");
      }
    } else {
      return Status::InvalidArgument("unknown_parameter: '" + k +
                                     "' is not a parameter of this route");
    }
  }
  bool ndjson = false;
  size_t size = 0;
  if (!CheckMediaType(ctx, /*allow_ndjson=*/true, &ndjson) || !DecodeBody(ctx, &size)) {
    metrics_.AddBatchFailure();
    return Status::OK();
  }
  std::string_view body(ctx.request.body.data(), size);
  BatchDecodeOptions opts;
  opts.body_is_padded = true;
  opts.max_events = kMaxBatchEvents;
  std::vector<DecodedEvent> decoded;
  Status s =
      ndjson ? DecodeBatchNdjson(body, opts, &decoded) : DecodeBatchJson(body, opts, &decoded);
  if (!s.ok()) {
    metrics_.AddBatchFailure();
    if (s.code() == StatusCode::kAborted) {
      SetHttpError(413, "too_many_events",
                   "a batch holds at most " + std::to_string(kMaxBatchEvents) + " events",
                   ctx.response);
      return Status::OK();
    }
    SetHttpError(400, "invalid_body", s.message(), ctx.response);
    return Status::OK();
  }
  ctx.request.body.clear();
  ctx.request.body.shrink_to_fit();

  IngestOptions io;
  io.prevalidated = true;
  std::vector<Event> events;
  events.reserve(decoded.size());
  for (const DecodedEvent& d : decoded) {
    if (!d.ok()) {
      io.reject_reasons.resize(decoded.size());
      break;
    }
  }
  for (size_t i = 0; i < decoded.size(); i++) {
    if (!decoded[i].ok()) {
      io.reject_reasons[i] = std::move(decoded[i].reject_reason);
      decoded[i].event.event_id = std::move(decoded[i].event_id_for_report);
    }
    events.push_back(std::move(decoded[i].event));
  }
  decoded.clear();
  IngestResult r;
  s = db_->Ingest(std::move(events), io, &r);
  if (!s.ok()) {
    metrics_.AddBatchFailure();
    return s;
  }
  metrics_.AddBatch(size);
  metrics_.AddOutcomes(r.accepted, r.duplicates, r.conflicts, r.rejected);

  std::string& out = ctx.response->body;
  out.reserve(160 + (all_results ? r.results.size() * 64 : 0));
  out.append("{\"accepted\":");
  AppendU64(r.accepted, &out);
  out.append(",\"duplicates\":");
  AppendU64(r.duplicates, &out);
  out.append(",\"conflicts\":");
  AppendU64(r.conflicts, &out);
  out.append(",\"rejected\":");
  AppendU64(r.rejected, &out);
  out.append(",\"commit_sequence\":");
  AppendU64(r.commit_sequence, &out);
  out.append(",\"results\":[");
  bool first = true;
  for (const EventResult& er : r.results) {
    if (!all_results && er.outcome == Outcome::kAccepted) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"index\":");
    AppendU64(er.index, &out);
    out.append(",\"event_id\":");
    AppendJsonString(er.event_id, &out);
    out.append(",\"status\":\"");
    out.append(OutcomeName(er.outcome));
    out.push_back('"');
    if (!er.reason.empty()) {
      out.append(",\"reason\":");
      AppendJsonString(er.reason, &out);
    }
    out.push_back('}');
  }
  out.append("]}");
  return Status::OK();
}

// Builds the QueryRequest behind /usage: the account, filters, time range, as_of and group keys
// of the query string (SPEC §3.2).
Result<QueryRequest> ApiService::UsageRequest(RequestContext& ctx, std::optional<int64_t>* from,
                                              std::optional<int64_t>* to) {
  const QueryParams& q = ctx.query;
  QueryRequest req;
  req.account_id = ctx.path_params[0];
  std::vector<QueryFilter> filters;
  auto add_filter = [&](const std::string& key, const std::string& value) {
    for (QueryFilter& f : filters) {
      if (f.key == key) {
        f.values.push_back(value);
        return;
      }
    }
    filters.push_back(QueryFilter{key, {value}});
  };
  std::vector<std::pair<std::string, std::string>> group;  // (canonical, as asked)
  for (const auto& [k, v] : q.items()) {
    if (k == "from" || k == "to" || k == "as_of" || k == "as_of_ms" || k == "source") continue;
    if (k == "product_id" || k == "meter_id" || k == "model_id") {
      add_filter(k, v);
    } else if (k == "kind") {
      ASSIGN_OR_RETURN(EventKind kind, ParseKind(v));
      add_filter("kind", EventKindName(kind));
    } else if (k == "group_by") {
      size_t pos = 0;
      while (pos <= v.size()) {
        size_t comma = v.find(',', pos);
        std::string asked = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? v.size() + 1 : comma + 1;
        Result<std::string> canon = query::CanonicalGroupKey(asked);
        if (!canon.ok()) return Status::InvalidArgument("group_by: " + canon.status().message());
        for (const auto& g : group) {
          if (g.first == *canon) return Status::InvalidArgument("group_by: '" + asked + "' repeats");
        }
        group.push_back({*canon, asked});
      }
    } else if (k == "time_zone") {
      return Status::InvalidArgument(
          "not_supported: time zones are planned; hours, days and months are UTC in this "
          "version");
    } else if (k.compare(0, 4, "dim.") == 0) {
      std::string key = k.substr(4);
      if (!IsDimensionKeySyntax(key) || IsReservedName(key)) {
        return Status::InvalidArgument("'" + k + "': '" + key +
                                       "' is not a valid, non-reserved dimension key");
      }
      add_filter(k, v);
    } else {
      // Dimension filters need their `dim.` prefix here, so that a misspelt parameter
      // (`form=`) is an error rather than a filter that silently matches nothing.
      return Status::InvalidArgument("unknown_parameter: '" + k +
                                     "' is not a parameter of this route (a dimension "
                                     "filter is written dim.<key>=<value>)");
    }
  }
  req.filters = std::move(filters);
  for (const auto& [canon, asked] : group) {
    req.group_by.push_back(canon);
    req.columns.push_back(QueryColumn{asked, false, canon, QueryFunc::kSum});
  }
  req.columns.push_back(QueryColumn{"quantity", true, "", QueryFunc::kSum});
  req.columns.push_back(QueryColumn{"count", true, "", QueryFunc::kCount});
  ASSIGN_OR_RETURN(const std::string* source, q.Single("source"));
  if (source != nullptr && *source != "auto" && *source != "raw") {
    if (*source == "rollup") {
      return Status::InvalidArgument(
          "not_in_rollups: source=rollup is not available: rollups are not built in this "
          "version (a later issue); source=raw and source=auto answer from raw data");
    }
    return Status::InvalidArgument("source: must be auto, raw or rollup, not '" + *source + "'");
  }
  ASSIGN_OR_RETURN(*from, TimeParam(q, "from"));
  ASSIGN_OR_RETURN(*to, TimeParam(q, "to"));
  if (*from && *to && **from > **to) {
    return Status::InvalidArgument("from (" + FormatRfc3339(**from) + ") is after to (" +
                                   FormatRfc3339(**to) + ")");
  }
  req.from_ms = *from;
  req.to_ms = *to;
  RETURN_IF_ERROR(AsOfParams(q, &req.as_of_seq, &req.as_of_ms));
  return req;
}

Status ApiService::AsOfParams(const QueryParams& q, std::optional<uint64_t>* seq_out,
                              std::optional<int64_t>* ms_out) {
  ASSIGN_OR_RETURN(const std::string* as_of, q.Single("as_of"));
  ASSIGN_OR_RETURN(const std::string* as_of_ms, q.Single("as_of_ms"));
  if (as_of != nullptr && as_of_ms != nullptr) {
    return Status::InvalidArgument("as_of and as_of_ms exclude each other");
  }
  if (as_of != nullptr) {
    uint64_t seq = 0;
    bool ok = !as_of->empty() && as_of->size() <= 19;
    for (char c : *as_of) {
      if (c < '0' || c > '9') ok = false;
    }
    if (ok) seq = std::stoull(*as_of);
    if (!ok) return Status::InvalidArgument("as_of: '" + *as_of + "' is not a commit sequence");
    uint64_t last = db_->LastSequence();
    if (seq > last) {
      return Status::InvalidArgument(
          "as_of: " + *as_of + " is above the latest committed sequence " + std::to_string(last));
    }
    *seq_out = seq;
  }
  if (as_of_ms != nullptr) {
    Result<int64_t> t = ParseTimeArg(*as_of_ms);
    if (!t.ok()) return Status::InvalidArgument("bad_date: as_of_ms: " + t.status().message());
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    if (*t > now) return Status::InvalidArgument("as_of_ms: " + *as_of_ms + " is in the future");
    *ms_out = *t;
  }
  return Status::OK();
}

Clock::time_point ApiService::RequestDeadline() const {
  return Clock::now() + std::chrono::milliseconds(settings_.request_timeout_ms);
}

Status ApiService::CheckDeadline(const Status& read, Clock::time_point deadline) const {
  const bool timed_out = read.ok() ? Clock::now() > deadline
                                   : read.code() == StatusCode::kUnavailable &&
                                         read.message().rfind("timeout:", 0) == 0;
  if (timed_out) {
    return Status::Unavailable("timeout: the request ran longer than request_timeout_ms (" +
                               std::to_string(settings_.request_timeout_ms) + ")");
  }
  return read;
}

// Closes a paged listing: `],"next_cursor":<cursor or null>}`.
void AppendPageEnd(const std::string& next_cursor, std::string* out) {
  out->append("],\"next_cursor\":");
  if (next_cursor.empty()) {
    out->append("null");
  } else {
    AppendJsonString(next_cursor, out);
  }
  out->push_back('}');
}

// `limit` (1..10000, default kept) and `cursor` of the paged routes (SPEC §3.3).
Status PageParams(const QueryParams& q, uint32_t* limit_out, std::string* cursor_out) {
  ASSIGN_OR_RETURN(const std::string* limit, q.Single("limit"));
  if (limit != nullptr) {
    bool ok = !limit->empty() && limit->size() <= 5;
    for (char c : *limit) ok = ok && c >= '0' && c <= '9';
    uint32_t n = ok ? static_cast<uint32_t>(std::stoul(*limit)) : 0;
    if (!ok || n < 1 || n > 10000) {
      return Status::InvalidArgument("limit: must be an integer from 1 to 10000, not '" + *limit +
                                     "'");
    }
    *limit_out = n;
  }
  ASSIGN_OR_RETURN(const std::string* cursor, q.Single("cursor"));
  if (cursor != nullptr) *cursor_out = *cursor;
  return Status::OK();
}

// One result row as a JSON object: keys as strings, sums/min/max as decimal strings (exact),
// counts as numbers, null min/max.
void AppendRowJson(const std::vector<std::string>& names, const std::vector<QueryValue>& row,
                   std::string* out) {
  out->push_back('{');
  for (size_t c = 0; c < names.size(); c++) {
    if (c) out->push_back(',');
    AppendJsonString(names[c], out);
    out->push_back(':');
    const QueryValue& v = row[c];
    switch (v.type) {
      case QueryValue::Type::kNull: out->append("null"); break;
      case QueryValue::Type::kString: AppendJsonString(v.str, out); break;
      case QueryValue::Type::kCount: out->append(Int128ToString(v.num)); break;
      case QueryValue::Type::kInt: AppendJsonString(Int128ToString(v.num), out); break;
    }
  }
  out->push_back('}');
}

Status ApiService::HandleAccountUsage(RequestContext& ctx) {
  const auto deadline = RequestDeadline();
  std::optional<int64_t> from, to;
  ASSIGN_OR_RETURN(QueryRequest req, UsageRequest(ctx, &from, &to));
  req.deadline = deadline;
  QueryResult r;
  RETURN_IF_ERROR(CheckDeadline(db_->Query(req, &r), deadline));
  std::string& out = ctx.response->body;
  out.append("{\"account_id\":");
  AppendJsonString(*req.account_id, &out);
  out.append(",\"from\":");
  AppendTimeOrNull(from, &out);
  out.append(",\"to\":");
  AppendTimeOrNull(to, &out);
  out.append(",\"watermark_ms\":null,\"lines\":[");
  for (size_t i = 0; i < r.rows.size(); i++) {
    if (i) out.push_back(',');
    AppendRowJson(r.names, r.rows[i], &out);
  }
  out.append("]}");
  return Status::OK();
}

Status ApiService::RunQueryRoute(RequestContext& ctx, const QueryRequest& req) {
  if (req.source == QuerySource::kRollup) {
    return Status::InvalidArgument(
        "not_in_rollups: the rollup source is not built in this version (a later issue); use "
        "usage_events / source raw or auto");
  }
  if (req.as_of_seq && *req.as_of_seq > db_->LastSequence()) {
    return Status::InvalidArgument("as_of is above the latest committed sequence");
  }
  QueryResult r;
  RETURN_IF_ERROR(
      CheckDeadline(db_->Query(req, &r), req.deadline.value_or(Clock::time_point::max())));
  std::string& out = ctx.response->body;
  out.append("{\"data\":[");
  for (size_t i = 0; i < r.rows.size(); i++) {
    if (i) out.push_back(',');
    AppendRowJson(r.names, r.rows[i], &out);
  }
  out.append("]}");
  return Status::OK();
}

Status ApiService::HandleQueryJson(RequestContext& ctx) {
  const auto deadline = RequestDeadline();
  bool ndjson = false;
  if (!CheckMediaType(ctx, /*allow_ndjson=*/false, &ndjson)) return Status::OK();
  size_t size = 0;
  if (!DecodeBody(ctx, &size)) return Status::OK();
  ASSIGN_OR_RETURN(QueryRequest req,
                   query::ParseJsonQuery(std::string_view(ctx.request.body.data(), size)));
  req.deadline = deadline;
  return RunQueryRoute(ctx, req);
}

Status ApiService::HandleQuerySql(RequestContext& ctx) {
  const auto deadline = RequestDeadline();
  bool ndjson = false;
  if (!CheckMediaType(ctx, /*allow_ndjson=*/false, &ndjson)) return Status::OK();
  size_t size = 0;
  if (!DecodeBody(ctx, &size)) return Status::OK();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::padded_string padded(std::string_view(ctx.request.body.data(), size));
  if (parser.parse(padded).get(doc) || !doc.is_object()) {
    return Status::InvalidArgument("the body must be a JSON object {\"query\": \"SELECT ...\"}");
  }
  std::string_view sql;
  for (auto [k, v] : simdjson::dom::object(doc)) {
    if (k != "query") return Status::InvalidArgument("unknown field: " + std::string(k));
    if (!v.is_string()) return Status::InvalidArgument("query: expected a string");
    sql = v.get_string();
  }
  if (sql.data() == nullptr) return Status::InvalidArgument("missing field: query");
  ASSIGN_OR_RETURN(QueryRequest req, query::PlanSqlText(sql));
  req.deadline = deadline;
  return RunQueryRoute(ctx, req);
}

Status ApiService::HandleUsageEvents(RequestContext& ctx) {
  const auto deadline = RequestDeadline();
  const QueryParams& q = ctx.query;
  ListRequest req;
  req.filter.account_id = ctx.path_params[0];
  for (const auto& [k, v] : q.items()) {
    if (k == "from" || k == "to" || k == "as_of" || k == "as_of_ms" || k == "limit" ||
        k == "cursor") {
      continue;
    }
    if (k == "product_id") {
      req.filter.product_ids.push_back(v);
    } else if (k == "meter_id") {
      req.filter.meter_ids.push_back(v);
    } else if (k == "model_id") {
      req.filter.model_ids.push_back(v);
    } else if (k == "kind") {
      ASSIGN_OR_RETURN(EventKind kind, ParseKind(v));
      req.filter.kinds.push_back(kind);
    } else {
      return Status::InvalidArgument("unknown_parameter: '" + k +
                                     "' is not a parameter of this route");
    }
  }
  ASSIGN_OR_RETURN(req.filter.from_ms, TimeParam(q, "from"));
  ASSIGN_OR_RETURN(req.filter.to_ms, TimeParam(q, "to"));
  if (req.filter.from_ms && req.filter.to_ms && *req.filter.from_ms > *req.filter.to_ms) {
    return Status::InvalidArgument("from is after to");
  }
  std::optional<int64_t> as_of_ms;
  RETURN_IF_ERROR(AsOfParams(q, &req.filter.as_of_seq, &as_of_ms));
  if (as_of_ms) req.filter.as_of_ms = as_of_ms;
  RETURN_IF_ERROR(PageParams(q, &req.limit, &req.cursor));
  req.deadline = deadline;
  ListResult r;
  RETURN_IF_ERROR(CheckDeadline(db_->ListEvents(req, &r), deadline));
  std::string& out = ctx.response->body;
  out.append("{\"events\":[");
  for (size_t i = 0; i < r.events.size(); i++) {
    if (i) out.push_back(',');
    AppendEventJson(r.events[i], &out);
  }
  AppendPageEnd(r.next_cursor, &out);
  return Status::OK();
}

Status ApiService::HandleConflicts(RequestContext& ctx) {
  const auto deadline = RequestDeadline();
  const QueryParams& q = ctx.query;
  ConflictListRequest req;
  for (const auto& [k, v] : q.items()) {
    if (k != "from" && k != "to" && k != "limit" && k != "cursor" && k != "reason") {
      return Status::InvalidArgument("unknown_parameter: '" + k +
                                     "' is not a parameter of this route");
    }
  }
  ASSIGN_OR_RETURN(req.from_ms, TimeParam(q, "from"));
  ASSIGN_OR_RETURN(req.to_ms, TimeParam(q, "to"));
  ASSIGN_OR_RETURN(const std::string* reason, q.Single("reason"));
  if (reason != nullptr) req.reason = *reason;
  RETURN_IF_ERROR(PageParams(q, &req.limit, &req.cursor));
  req.deadline = deadline;
  ConflictListResult r;
  RETURN_IF_ERROR(CheckDeadline(db_->ListConflicts(req, &r), deadline));
  std::string& out = ctx.response->body;
  out.append("{\"conflicts\":[");
  for (size_t i = 0; i < r.conflicts.size(); i++) {
    const ConflictRecord& c = r.conflicts[i];
    if (i) out.push_back(',');
    out.append("{\"reason\":");
    AppendJsonString(c.reason, &out);
    out.append(",\"request_time_ms\":");
    out.append(std::to_string(c.request_time_ms));
    out.append(",\"commit_sequence\":");
    AppendU64(c.commit_sequence, &out);
    out.append(",\"stored_ingested_at_ms\":");
    out.append(std::to_string(c.stored_ingested_at_ms));
    out.append(",\"event\":");
    AppendEventJson(c.event, &out);
    out.push_back('}');
  }
  AppendPageEnd(r.next_cursor, &out);
  return Status::OK();
}

Status ApiService::HandleHealth(RequestContext& ctx) {
  ctx.response->body = "{\"status\":\"ok\"}";
  return Status::OK();
}

Status ApiService::HandleMetrics(RequestContext& ctx) {
  uint64_t uptime_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count());
  ctx.response->content_type = "text/plain; version=0.0.4; charset=utf-8";
  ctx.response->body = metrics_.Render(db_->Stats(), uptime_ms);
  return Status::OK();
}

Status ApiService::HandleAdminFlush(RequestContext& ctx) {
  const auto t0 = Clock::now();
  RETURN_IF_ERROR(db_->Flush());
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  DbStats st = db_->Stats();
  std::string& out = ctx.response->body;
  out.append("{\"flushed\":true,\"flushed_sequence\":");
  AppendU64(st.flushed_sequence, &out);
  out.append(",\"last_sequence\":");
  AppendU64(st.last_sequence, &out);
  out.append(",\"segment_count\":");
  AppendU64(st.segment_count, &out);
  out.append(",\"segment_bytes\":");
  AppendU64(st.segment_bytes, &out);
  out.append(",\"memtable_bytes\":");
  AppendU64(st.memtable_bytes, &out);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", ms);
  out.append(",\"elapsed_ms\":").append(buf).append("}");
  return Status::OK();
}

}  // namespace server
}  // namespace usagedb

namespace usagedb {
namespace server {

// SPEC §3.8 / §7. The export runs to completion into a temporary file under db_root before
// the first byte is sent, so every export error (bad options, a corrupt or missing segment,
// disk full) is an ordinary JSON error; only a failure to read that finished file back can
// happen after the first byte (the connection is then cut without the final chunk).
Status ApiService::HandleExportParquet(RequestContext& ctx) {
  const QueryParams& q = ctx.query;
  for (const auto& [k, v] : q.items()) {
    if (k != "from" && k != "to" && k != "account_id" && k != "as_of" && k != "as_of_ms") {
      return Status::InvalidArgument("unknown_parameter: '" + k +
                                     "' is not a parameter of this route");
    }
  }
  ExportOptions o;
  ASSIGN_OR_RETURN(o.from_ms, TimeParam(q, "from"));
  ASSIGN_OR_RETURN(o.to_ms, TimeParam(q, "to"));
  if (o.from_ms && o.to_ms && *o.from_ms > *o.to_ms) {
    return Status::InvalidArgument("from (" + FormatRfc3339(*o.from_ms) + ") is after to (" +
                                   FormatRfc3339(*o.to_ms) + ")");
  }
  ASSIGN_OR_RETURN(const std::string* account, q.Single("account_id"));
  if (account != nullptr) {
    if (account->empty()) return Status::InvalidArgument("account_id: must not be empty");
    o.account_id = *account;
  }
  RETURN_IF_ERROR(AsOfParams(q, &o.as_of_seq, &o.as_of_ms));
  o.file_system = export_fs_;
  o.output_path = settings_.db_root + "/" + kExportTempPrefix +
                  std::to_string(static_cast<long long>(::getpid())) + "-" +
                  std::to_string(export_counter_.fetch_add(1)) + ".parquet.tmp";
  ExportSummary summary;
  RETURN_IF_ERROR(ExportParquet(db_, o, &summary));  // leaves nothing behind on error
  Result<std::unique_ptr<RandomAccessFile>> file = export_fs_->NewRandomAccessFile(o.output_path);
  Result<uint64_t> size =
      file.ok() ? export_fs_->FileSize(o.output_path) : Result<uint64_t>(file.status());
  if (!size.ok()) {
    export_fs_->RemoveFile(o.output_path).IgnoreError();
    return size.status();
  }
  HttpResponse* r = ctx.response;
  r->status = 200;
  r->content_type = "application/vnd.apache.parquet";
  r->body.clear();
  r->headers.emplace_back("Content-Disposition", "attachment; filename=\"usagedb-export.parquet\"");
  r->headers.emplace_back("X-Usagedb-Events", std::to_string(summary.events));
  r->headers.emplace_back("X-Usagedb-Snapshot-Sequence", std::to_string(summary.snapshot_sequence));
  r->stream = std::make_shared<ExportFileStream>(export_fs_, o.output_path, std::move(file).value(),
                                                 *size, std::max<size_t>(1, export_chunk_bytes_));
  return Status::OK();
}

}  // namespace server
}  // namespace usagedb
