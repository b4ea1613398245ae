// Bounded gzip inflate for `Content-Encoding: gzip` request bodies (SPEC §2.3: max_body_bytes
// applies to the decompressed body, and a body that inflates past it is refused without being
// inflated in full).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "usagedb/status.h"

namespace usagedb {
namespace server {

enum class InflateOutcome { kOk, kTooLarge, kMalformed };

// Inflates the gzip stream `in` (one or more concatenated members) into *out. Stops with
// kTooLarge as soon as the output would exceed `max_out` bytes (at most max_out + one chunk
// is ever produced), kMalformed (with *error set) on a bad or truncated stream. On kOk *out
// holds exactly the inflated bytes; otherwise it is empty.
InflateOutcome GzipInflate(std::string_view in, size_t max_out, std::string* out,
                           std::string* error);

// Compresses `in` as one gzip member (tests and clients).
std::string GzipCompress(std::string_view in);

}  // namespace server
}  // namespace usagedb
