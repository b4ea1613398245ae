// Helpers shared by the cross-module database tests.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "usagedb/db.h"
#include "util/int128.h"

namespace usagedb::testing {

// 2026-05-10T00:00:00Z: a fixed "now" for tests with a ManualClock.
constexpr int64_t kNowMs = 1778371200000;
constexpr int64_t kHourMs = 3600000;

inline Event MakeEvent(const std::string& id, const std::string& account, __int128 quantity,
                       int64_t timestamp_ms = kNowMs - 5 * kHourMs,
                       const std::string& meter = "tokens.input") {
  Event e;
  e.event_id = id;
  e.account_id = account;
  e.product_id = "ai_gateway";
  e.meter_id = meter;
  e.model_id = "model-a";
  e.timestamp_ms = timestamp_ms;
  e.quantity = quantity;
  e.unit = "token";
  e.source = "collector-1";
  e.dimensions = {{"provider", "anthropic"}, {"region", "eu"}};
  return e;
}

inline Event MakeCorrection(const std::string& id, const std::string& original,
                            const std::string& account, __int128 quantity) {
  Event e = MakeEvent(id, account, quantity);
  e.kind = quantity < 0 ? EventKind::kRetraction : EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = original;
  e.correction_reason = "fix";
  return e;
}

// Every stored event, by id → how many times it is stored.
inline std::map<std::string, int> StoredIds(DB* db) {
  std::map<std::string, int> ids;
  Status s = db->ScanEvents(ReadFilter(), [&](const Event& e) {
    ids[e.event_id]++;
    return true;
  });
  if (!s.ok()) ids["<scan error: " + s.ToString() + ">"] = 1;
  return ids;
}

inline std::string Q(__int128 v) { return Int128ToString(v); }

}  // namespace usagedb::testing
