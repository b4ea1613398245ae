// API keys (SPEC §3.9): `{"keys": [{"key": "<secret>" | "key_sha256": "<hex>", "scopes": [...]}]}`.
// Keys are kept only as SHA-256 digests and compared in constant time; they are never logged.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "usagedb/status.h"

namespace usagedb {
namespace server {

enum class Scope : uint8_t { kNone = 0, kIngest = 1, kRead = 2, kAdmin = 4 };

enum class AuthResult { kAllowed, kUnauthorized /*401*/, kForbidden /*403*/ };

// Immutable after Load. Thread-safe.
class ApiKeys {
 public:
  // No keys: every request is allowed (api_keys_file unset).
  ApiKeys() = default;

  // Parses a keys file's contents. InvalidArgument naming `origin` and the problem (not JSON,
  // unknown field, both or neither of key/key_sha256, bad hex, unknown scope, no keys).
  static Result<ApiKeys> Parse(std::string_view json, const std::string& origin);
  // Reads and parses the file at `path`.
  static Result<ApiKeys> Load(const std::string& path);

  bool enabled() const { return enabled_; }

  // Checks an `Authorization` header value ("" when absent) against `needed`.
  // Scope::kNone means the route needs no key (/health).
  AuthResult Check(std::string_view authorization, Scope needed) const;

 private:
  struct Entry {
    std::array<uint8_t, 32> digest;
    uint8_t scopes;  // Scope bits
  };
  bool enabled_ = false;
  std::vector<Entry> entries_;
};

// SHA-256 of `data` (OpenSSL).
std::array<uint8_t, 32> Sha256(std::string_view data);

}  // namespace server
}  // namespace usagedb
