// Hashes used to route lookups (never to decide identity) and to fingerprint payloads.
#pragma once

#include <cstdint>
#include <string_view>

namespace usagedb {

// XXH3-64 with a fixed seed. Stable on disk: bucket = Hash64(account_id) % bucket_count.
uint64_t Hash64(std::string_view s);

struct Digest128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const Digest128&) const = default;
};
// XXH3-128 of the bytes.
Digest128 Hash128(std::string_view s);

}  // namespace usagedb
