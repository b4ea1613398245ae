// UTC calendar arithmetic and the date formats of SPEC §3 (RFC 3339, YYYY-MM-DD, epoch ms).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "usagedb/status.h"

namespace usagedb {

// Days since 1970-01-01 of a proleptic Gregorian date (any year).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
void CivilFromDays(int64_t days, int64_t* y, unsigned* m, unsigned* d);

// Floor division helpers for negative epoch values.
inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Accepts an integer (epoch ms), `YYYY-MM-DD` (midnight UTC) or RFC 3339
// (`2026-05-01T00:00:00Z`, `...T02:00:00.250+02:00`). InvalidArgument naming the input otherwise.
Result<int64_t> ParseTimeArg(std::string_view s);
// "2026-05-01T00:00:00Z" (milliseconds shown only when non-zero: "...00.250Z").
std::string FormatRfc3339(int64_t ms);
// "2026-05-01".
std::string FormatDate(int64_t ms);

}  // namespace usagedb
