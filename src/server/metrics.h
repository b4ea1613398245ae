// Counters the server keeps (ingest outcomes, requests, latencies) and the Prometheus text
// rendering of them plus DB::Stats() (SPEC §3.8 GET /metrics).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "usagedb/db.h"

namespace usagedb {
namespace server {

// Thread-safe.
class ServerMetrics {
 public:
  void AddOutcomes(uint64_t accepted, uint64_t duplicates, uint64_t conflicts, uint64_t rejected);
  void AddBatch(uint64_t body_bytes) {
    batches_.fetch_add(1, std::memory_order_relaxed);
    batch_bytes_.fetch_add(body_bytes, std::memory_order_relaxed);
  }
  void AddBatchFailure() { batch_failures_.fetch_add(1, std::memory_order_relaxed); }
  // One finished request of route `route` ("not_found" when none matched).
  void AddRequest(const std::string& route, int http_status, double seconds);
  void SetConnections(int64_t delta) { connections_.fetch_add(delta, std::memory_order_relaxed); }
  void AddInFlight(int64_t delta) { in_flight_.fetch_add(delta, std::memory_order_relaxed); }

  // Prometheus text exposition format 0.0.4.
  std::string Render(const DbStats& stats, uint64_t uptime_ms) const;

  // Histogram bucket upper bounds (seconds) of request latency.
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    5};

 private:
  struct RouteStats {
    std::map<int, uint64_t> by_status;
    std::array<uint64_t, kBuckets.size() + 1> buckets{};  // last = +Inf
    double sum_seconds = 0;
    uint64_t count = 0;
  };
  std::atomic<uint64_t> accepted_{0}, duplicates_{0}, conflicts_{0}, rejected_{0};
  std::atomic<uint64_t> batches_{0}, batch_bytes_{0}, batch_failures_{0};
  std::atomic<int64_t> connections_{0}, in_flight_{0};
  mutable std::mutex mu_;
  std::map<std::string, RouteStats> routes_;  // guarded by mu_
};

}  // namespace server
}  // namespace usagedb
