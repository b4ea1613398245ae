// The HTTP API of SPEC §3 over an embedded DB: the route table, authentication, body
// decoding (gzip, JSON/NDJSON media types) and the routes built so far. Routes of SPEC §3 that
// later issues build answer 501 `not_implemented` naming the issue.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "server/api_keys.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/settings.h"
#include "usagedb/db.h"

namespace usagedb {
class FileSystem;
}

namespace usagedb {
namespace server {

// SPEC §2.3: more events than this in one batch → 413 too_many_events.
inline constexpr size_t kMaxBatchEvents = 100000;

class ApiService : public RequestHandler {
 public:
  // `db` is not owned and must outlive the service. Thread-safe.
  ApiService(DB* db, const ServerSettings& settings, ApiKeys keys);

  void Handle(HttpRequest& request, HttpResponse* response) override;

  ServerMetrics& metrics() { return metrics_; }
  // Later issues register their routes here before the server starts.
  Router& router() { return router_; }

  // Tests: the file system the export's temporary file is written, read and removed through
  // (default FileSystem::Default(); not owned) and the size of the streamed chunks (default
  // 1 MiB). REQUIRES: before the server starts.
  void SetExportSeamsForTesting(FileSystem* fs, size_t chunk_bytes) {
    export_fs_ = fs;
    export_chunk_bytes_ = chunk_bytes;
  }

 private:
  void AddRoutes();
  Status HandleBatch(RequestContext& ctx);
  Status HandleAccountUsage(RequestContext& ctx);
  Status HandleHealth(RequestContext& ctx);
  Status HandleMetrics(RequestContext& ctx);
  Status HandleAdminFlush(RequestContext& ctx);
  Status HandleUsageEvents(RequestContext& ctx);
  Status HandleQueryJson(RequestContext& ctx);
  Status HandleQuerySql(RequestContext& ctx);
  Status HandleConflicts(RequestContext& ctx);
  Status HandleExportParquet(RequestContext& ctx);
  // Removes export temporaries a crashed server left in db_root (names kExportTempPrefix*).
  void RemoveStaleExportTemporaries();
  Status RunQueryRoute(RequestContext& ctx, const QueryRequest& req);
  Result<QueryRequest> UsageRequest(RequestContext& ctx, std::optional<int64_t>* from,
                                    std::optional<int64_t>* to);
  Status AsOfParams(const QueryParams& q, std::optional<uint64_t>* seq,
                    std::optional<int64_t>* ms);
  // The deadline of a query or listing route (now + request_timeout_ms), which the engine
  // checks while it scans.
  std::chrono::steady_clock::time_point RequestDeadline() const;
  // `read` (the engine's answer), except that the engine's own timeout and a read that
  // returned after `deadline` both become 503 timeout naming request_timeout_ms.
  Status CheckDeadline(const Status& read, std::chrono::steady_clock::time_point deadline) const;

  // Checks the Content-Type of a request with a JSON body (and NDJSON when allowed); writes
  // 415 and returns false when it is not acceptable.
  bool CheckMediaType(RequestContext& ctx, bool allow_ndjson, bool* ndjson);
  // Replaces ctx.request.body with the decoded body (gzip inflated, bounded by max_body_bytes)
  // followed by kJsonPadding bytes that are not part of it; *size is the body's size. Writes
  // 413/415/400 and returns false when it cannot.
  bool DecodeBody(RequestContext& ctx, size_t* size);

  DB* db_;
  ServerSettings settings_;
  ApiKeys keys_;
  ServerMetrics metrics_;
  Router router_;
  std::chrono::steady_clock::time_point started_;
  FileSystem* export_fs_;
  size_t export_chunk_bytes_ = 1u << 20;
  std::atomic<uint64_t> export_counter_{0};
};

}  // namespace server
}  // namespace usagedb
