// Clock seam: wall time for stamps and windows, monotonic time for intervals, so hours,
// windows and TTLs are testable without sleeping.
#pragma once

#include <atomic>
#include <cstdint>

namespace usagedb {

class Clock {
 public:
  virtual ~Clock() = default;
  // Unix epoch milliseconds (may step backwards on a real machine).
  virtual int64_t NowMs() = 0;
  // Monotonic nanoseconds for measuring intervals.
  virtual int64_t MonotonicNs() = 0;
  // The process-wide real clock.
  static Clock* Real();
};

// A clock the test moves by hand. Thread-safe.
class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMs() override { return now_ms_.load(); }
  int64_t MonotonicNs() override { return mono_ns_.fetch_add(1000); }
  void SetMs(int64_t ms) { now_ms_.store(ms); }
  void AdvanceMs(int64_t ms) { now_ms_.fetch_add(ms); }

 private:
  std::atomic<int64_t> now_ms_;
  std::atomic<int64_t> mono_ns_{0};
};

}  // namespace usagedb
