// The canonical dimensions string (SPEC §1) as the segment module writes and reads it. A
// private equivalent of model's CanonicalDimensions, so this module does not depend on model.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "usagedb/status.h"

namespace usagedb::segment {

using Dimensions = std::vector<std::pair<std::string, std::string>>;

// Appends the compact JSON object of `dims` to *out: keys in byte order (REQUIRES: keys
// unique; the input need not be sorted), escapes \" \\ \b \f \n \r \t, other bytes below 0x20
// as \u00xx (lowercase hex), everything else as-is. "{}" when empty.
void AppendCanonicalDimensions(const Dimensions& dims, std::string* out);
std::string CanonicalDimensionsString(const Dimensions& dims);

// Parses exactly the canonical form back into sorted pairs. Returns false when `s` is not a
// canonical dimensions string (bad syntax, unsorted or repeated keys, trailing bytes).
bool ParseCanonicalDimensionsString(std::string_view s, Dimensions* out);

}  // namespace usagedb::segment
