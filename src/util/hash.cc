#include "util/hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace usagedb {

uint64_t Hash64(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

Digest128 Hash128(std::string_view s) {
  XXH128_hash_t h = XXH3_128bits(s.data(), s.size());
  return Digest128{h.low64, h.high64};
}

}  // namespace usagedb
