// The usage event (SPEC §1) as the embedded API sees it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace usagedb {

// On-disk enum: values are never reused.
enum class EventKind : uint8_t { kUsage = 0, kCorrection = 1, kRetraction = 2 };

const char* EventKindName(EventKind kind);  // "Usage", "Correction", "Retraction"

struct Event {
  std::string event_id;
  EventKind kind = EventKind::kUsage;
  // correction_ref: present for Correction/Retraction, absent for Usage.
  bool has_correction_ref = false;
  std::string correction_original_event_id;
  std::string correction_reason;  // "" when absent
  std::string account_id;
  std::optional<std::string> subscription_id;
  std::string product_id;
  std::string meter_id;
  std::optional<std::string> model_id;
  int64_t timestamp_ms = 0;
  __int128 quantity = 0;  // |quantity| <= 10^38 - 1
  std::string unit;
  std::string source;
  // Sorted by key (byte order), keys unique. Empty = no dimensions.
  std::vector<std::pair<std::string, std::string>> dimensions;

  // Stamped by the database when the batch commits; ignored on input.
  int64_t ingested_at_ms = 0;
  uint64_t commit_seq = 0;

  bool operator==(const Event&) const = default;
};

}  // namespace usagedb
