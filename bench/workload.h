// The reference benchmark workload (SPEC §9): a deterministic stream of AI usage events over
// May 2026 (UTC), and a JSON Lines writer for it (SPEC §1 format).
//
// Determinism: the stream depends only on WorkloadOptions (the seed included). Randomness
// comes from xoshiro256** seeded through splitmix64, never from std:: distributions (they
// differ between standard libraries). Zipf tables (std::pow) and quantities (std::exp/log)
// use libm: the same libm gives the same bytes; another one could move a quantity by one.
//
// See docs/parts/bench.md for the shape of the data (meters, units, models, products,
// dimensions, quantities, retries, corrections, lateness).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "usagedb/event.h"

namespace usagedb::bench {

// 2026-05-01T00:00:00Z and 2026-06-01T00:00:00Z in Unix epoch milliseconds.
constexpr int64_t kMay2026StartMs = 1777593600000;
constexpr int64_t kJune2026StartMs = 1780272000000;

struct WorkloadOptions {
  uint64_t events = 1'000'000;  // records emitted, retries and corrections included
  uint32_t accounts = 1000;     // acct_000000 is the heaviest (Zipf rank 1), and so on
  uint64_t seed = 1;
  double account_zipf_s = 1.1;
  double duplicate_ratio = 0.01;    // share of records that re-emit an earlier record verbatim
  double correction_ratio = 0.001;  // share of records that are Corrections
  double late_ratio = 0.02;         // share of new records whose timestamp lags by up to 6 h
  int64_t start_ms = kMay2026StartMs;
  int64_t end_ms = kJune2026StartMs;  // timestamps lie in [start_ms, end_ms)
};

// The 10 meters of SPEC §9 and their units.
struct MeterSpec {
  const char* meter_id;
  const char* unit;
  const char* product_id;  // the product when no agent is involved
};
const std::vector<MeterSpec>& Meters();

// Produces the stream. Not thread-safe; cheap to construct (O(accounts + models)).
class WorkloadGenerator {
 public:
  explicit WorkloadGenerator(const WorkloadOptions& options);

  // Overwrites *event with the next record; false once options.events records were produced.
  bool Next(Event* event);

  uint64_t produced() const { return produced_; }
  uint64_t duplicates() const { return duplicates_; }    // retried records emitted so far
  uint64_t corrections() const { return corrections_; }  // Correction records emitted so far

 private:
  uint64_t NextU64();
  double NextDouble();         // [0, 1)
  uint64_t Below(uint64_t n);  // [0, n), n > 0
  size_t SampleZipf(const std::vector<double>& cdf);
  std::string NewEventId();
  void MakeUsage(Event* e);
  void MakeCorrection(const Event& original, Event* e);
  // Makes *e a Correction of a random remembered record; false (nothing drawn but the pick)
  // when that record is not a Usage event.
  bool CorrectRecent(Event* e);
  void Remember(const Event& e);

  WorkloadOptions options_;
  uint64_t s_[4];  // xoshiro256** state
  std::vector<double> account_cdf_;
  std::vector<double> model_cdf_;
  std::vector<double> meter_cdf_;
  std::vector<std::string> account_ids_;
  std::vector<std::string> subscription_ids_;  // "" when the account has none
  // The last records with a new id (ring indexed by fresh id), for retries and corrections.
  std::vector<Event> recent_;
  uint64_t produced_ = 0;
  uint64_t fresh_ = 0;  // records with a new event id
  uint64_t duplicates_ = 0;
  uint64_t corrections_ = 0;
};

// Appends one JSON Lines record (an object and '\n') in the SPEC §1 input format: fields in a
// fixed order, kind always written, quantity as a JSON integer, dimensions as an object,
// absent optional fields (subscription_id, model_id, correction_ref, an empty reason, empty
// dimensions) omitted, ingested_at_ms never written. Strings are escaped by the SPEC §1
// canonical rules (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx lowercase, the rest
// as-is).
void AppendEventJsonLine(const Event& event, std::string* out);

// Appends `s` as a JSON string literal escaped as above.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace usagedb::bench
