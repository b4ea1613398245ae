// File names, month partitions and row materialisation.

#include "segment/segment.h"

#include <cstdio>

#include "segment/segment_dims.h"

namespace usagedb {
namespace {

constexpr int64_t kMsPerDay = 86400000;
constexpr size_t kFileNumberDigits = 12;
constexpr char kSuffix[] = ".useg";

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

int32_t MonthPartition(int64_t timestamp_ms) {
  // Howard Hinnant's civil_from_days, valid for every int64 day count we can reach here.
  const int64_t z = FloorDiv(timestamp_ms, kMsPerDay) + 719468;
  const int64_t era = FloorDiv(z, 146097);
  const int64_t doe = z - era * 146097;                                       // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11]
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;                            // [1, 12]
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return static_cast<int32_t>((year - 1970) * 12 + (month - 1));
}

std::string SegmentFileName(uint64_t file_number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%012llu%s", static_cast<unsigned long long>(file_number),
                kSuffix);
  return buf;
}

bool ParseSegmentFileName(const std::string& name, uint64_t* file_number) {
  const size_t suffix_len = sizeof(kSuffix) - 1;
  if (name.size() < kFileNumberDigits + suffix_len ||
      name.compare(name.size() - suffix_len, suffix_len, kSuffix) != 0) {
    return false;
  }
  const size_t digits = name.size() - suffix_len;
  uint64_t v = 0;
  for (size_t i = 0; i < digits; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  // Only the canonical spelling (no extra leading zeros beyond 12 digits).
  if (SegmentFileName(v) != name) return false;
  *file_number = v;
  return true;
}

Status DecodedBlock::MaterializeRow(size_t row, Event* out) const {
  const StringColumn* strings[] = {&event_id,
                                   &correction_original_event_id,
                                   &correction_reason,
                                   &account_id,
                                   &subscription_id,
                                   &product_id,
                                   &meter_id,
                                   &model_id,
                                   &unit,
                                   &source,
                                   &dimensions};
  bool complete = row < rows && kind.size() == rows && timestamp_ms.size() == rows &&
                  ingested_at_ms.size() == rows && commit_seq.size() == rows &&
                  quantity.size() == rows;
  for (const StringColumn* s : strings) complete = complete && s->codes.size() == rows;
  if (!complete) {
    return Status::InvalidArgument(
        "MaterializeRow: row out of range or block not read with "
        "kAllColumns");
  }
  out->event_id = event_id.Get(row);
  out->kind = static_cast<EventKind>(kind[row]);
  out->has_correction_ref = !correction_original_event_id.IsNull(row);
  if (out->has_correction_ref) {
    out->correction_original_event_id = correction_original_event_id.Get(row);
    out->correction_reason = correction_reason.IsNull(row) ? "" : correction_reason.Get(row);
  } else {
    out->correction_original_event_id.clear();
    out->correction_reason.clear();
  }
  out->account_id = account_id.Get(row);
  if (subscription_id.IsNull(row)) {
    out->subscription_id.reset();
  } else {
    out->subscription_id = subscription_id.Get(row);
  }
  out->product_id = product_id.Get(row);
  out->meter_id = meter_id.Get(row);
  if (model_id.IsNull(row)) {
    out->model_id.reset();
  } else {
    out->model_id = model_id.Get(row);
  }
  out->timestamp_ms = timestamp_ms[row];
  out->quantity = quantity[row];
  out->unit = unit.Get(row);
  out->source = source.Get(row);
  if (!segment::ParseCanonicalDimensionsString(dimensions.Get(row), &out->dimensions)) {
    return Status::Corruption("malformed dimensions string in a decoded block");
  }
  out->ingested_at_ms = ingested_at_ms[row];
  out->commit_seq = commit_seq[row];
  return Status::OK();
}

}  // namespace usagedb
