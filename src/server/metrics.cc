#include "server/metrics.h"

#include <cstdio>

namespace usagedb {
namespace server {
namespace {

void Line(std::string* out, const char* name, const char* help, const char* type) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Value(std::string* out, const std::string& name_and_labels, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  out->append(name_and_labels).append(" ").append(buf).append("\n");
}

void Value(std::string* out, const std::string& name_and_labels, uint64_t v) {
  out->append(name_and_labels).append(" ").append(std::to_string(v)).append("\n");
}

void Gauge(std::string* out, const char* name, const char* help, uint64_t v) {
  Line(out, name, help, "gauge");
  Value(out, name, v);
}

void Counter(std::string* out, const char* name, const char* help, uint64_t v) {
  Line(out, name, help, "counter");
  Value(out, name, v);
}

std::string Le(double b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", b);
  return buf;
}

}  // namespace

void ServerMetrics::AddOutcomes(uint64_t accepted, uint64_t duplicates, uint64_t conflicts,
                                uint64_t rejected) {
  accepted_.fetch_add(accepted, std::memory_order_relaxed);
  duplicates_.fetch_add(duplicates, std::memory_order_relaxed);
  conflicts_.fetch_add(conflicts, std::memory_order_relaxed);
  rejected_.fetch_add(rejected, std::memory_order_relaxed);
}

void ServerMetrics::AddRequest(const std::string& route, int http_status, double seconds) {
  std::lock_guard<std::mutex> l(mu_);
  RouteStats& r = routes_[route];
  r.by_status[http_status]++;
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) i++;
  r.buckets[i]++;
  r.sum_seconds += seconds;
  r.count++;
}

std::string ServerMetrics::Render(const DbStats& s, uint64_t uptime_ms) const {
  std::string out;
  out.reserve(8192);
  Line(&out, "usagedb_ingest_events_total", "Ingested events by outcome (SPEC §2.3).", "counter");
  Value(&out, "usagedb_ingest_events_total{outcome=\"accepted\"}", accepted_.load());
  Value(&out, "usagedb_ingest_events_total{outcome=\"duplicate\"}", duplicates_.load());
  Value(&out, "usagedb_ingest_events_total{outcome=\"conflict\"}", conflicts_.load());
  Value(&out, "usagedb_ingest_events_total{outcome=\"rejected\"}", rejected_.load());
  Counter(&out, "usagedb_ingest_batches_total", "Batches processed (status 200).", batches_.load());
  Counter(&out, "usagedb_ingest_batch_failures_total",
          "Batches that failed as a whole (4xx body errors, 503).", batch_failures_.load());
  Counter(&out, "usagedb_ingest_body_bytes_total", "Decompressed bytes of processed batches.",
          batch_bytes_.load());

  Line(&out, "usagedb_wal_fsync_latency_seconds",
       "WAL fsync latency over the last few thousand syncs.", "summary");
  Value(&out, "usagedb_wal_fsync_latency_seconds{quantile=\"0.5\"}", s.wal_sync_p50_us / 1e6);
  Value(&out, "usagedb_wal_fsync_latency_seconds{quantile=\"0.99\"}", s.wal_sync_p99_us / 1e6);
  Value(&out, "usagedb_wal_fsync_latency_seconds_count", s.wal_syncs);
  Gauge(&out, "usagedb_wal_files", "Live WAL files.", s.wal_files);
  Gauge(&out, "usagedb_memtable_bytes", "Bytes in memtables (active and immutable).",
        s.memtable_bytes);
  Gauge(&out, "usagedb_memtable_events", "Events in memtables.", s.memtable_events);
  Gauge(&out, "usagedb_immutable_memtables", "Full memtables waiting for the flusher.",
        s.immutable_memtables);
  Gauge(&out, "usagedb_segments", "Committed raw segment files.", s.segment_count);
  Gauge(&out, "usagedb_segment_bytes", "Bytes of committed raw segment files.", s.segment_bytes);
  Gauge(&out, "usagedb_dedupe_runs", "On-disk dedupe index runs.", s.dedupe_runs);
  Gauge(&out, "usagedb_dedupe_keys", "Keys in the on-disk dedupe index.", s.dedupe_keys);
  Gauge(&out, "usagedb_dedupe_filter_bytes", "RAM held by dedupe filters.", s.dedupe_filter_bytes);
  Gauge(&out, "usagedb_dedupe_cache_capacity_bytes", "Dedupe block cache capacity.",
        s.dedupe_cache_capacity_bytes);
  Gauge(&out, "usagedb_last_commit_sequence", "Highest acknowledged commit sequence.",
        s.last_sequence);
  Gauge(&out, "usagedb_flushed_sequence", "Highest commit sequence in segments.",
        s.flushed_sequence);
  Counter(&out, "usagedb_flushes_total", "Memtable flushes.", s.flushes);
  Counter(&out, "usagedb_backpressure_waits_total", "Writers that waited for the flusher.",
          s.backpressure_waits);
  Gauge(&out, "usagedb_http_connections", "Open HTTP connections.",
        static_cast<uint64_t>(std::max<int64_t>(0, connections_.load())));
  Gauge(&out, "usagedb_http_requests_in_flight",
        "Requests received and not yet answered (this one included).",
        static_cast<uint64_t>(std::max<int64_t>(0, in_flight_.load())));
  Gauge(&out, "usagedb_uptime_ms", "Milliseconds since the server started.", uptime_ms);

  std::lock_guard<std::mutex> l(mu_);
  Line(&out, "usagedb_http_requests_total", "HTTP requests by route and status.", "counter");
  for (const auto& [route, r] : routes_) {
    for (const auto& [status, n] : r.by_status) {
      Value(&out,
            "usagedb_http_requests_total{route=\"" + route + "\",status=\"" +
                std::to_string(status) + "\"}",
            n);
    }
  }
  Line(&out, "usagedb_http_request_duration_seconds", "HTTP request latency by route.",
       "histogram");
  for (const auto& [route, r] : routes_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kBuckets.size(); i++) {
      cumulative += r.buckets[i];
      std::string le = i < kBuckets.size() ? Le(kBuckets[i]) : "+Inf";
      Value(
          &out,
          "usagedb_http_request_duration_seconds_bucket{route=\"" + route + "\",le=\"" + le + "\"}",
          cumulative);
    }
    Value(&out, "usagedb_http_request_duration_seconds_sum{route=\"" + route + "\"}",
          r.sum_seconds);
    Value(&out, "usagedb_http_request_duration_seconds_count{route=\"" + route + "\"}", r.count);
  }
  return out;
}

}  // namespace server
}  // namespace usagedb
