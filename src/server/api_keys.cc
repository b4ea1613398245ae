#include "server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <set>

#include "io/file_system.h"

namespace usagedb {
namespace server {
namespace {

// Fetched once: an explicitly fetched EVP_MD avoids the per-call provider lookup.
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); i++) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

}  // namespace

std::array<uint8_t, 32> Sha256(std::string_view data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, Sha256Md(), nullptr);
  return out;
}

Result<ApiKeys> ApiKeys::Parse(std::string_view json, const std::string& origin) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("api_keys_file " + origin + ": " + why);
  };
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::padded_string padded(json);
  if (auto err = parser.parse(padded).get(root)) {
    return bad(std::string("not JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (root.get(obj)) return bad("must be an object {\"keys\": [...]}");
  simdjson::dom::array keys;
  bool have_keys = false;
  for (auto field : obj) {
    if (field.key != "keys") return bad("unknown field '" + std::string(field.key) + "'");
    if (field.value.get(keys)) return bad("\"keys\" must be an array");
    have_keys = true;
  }
  if (!have_keys) return bad("missing \"keys\"");
  ApiKeys result;
  result.enabled_ = true;
  size_t i = 0;
  for (simdjson::dom::element k : keys) {
    std::string where = "keys[" + std::to_string(i++) + "]";
    simdjson::dom::object ko;
    if (k.get(ko)) return bad(where + " must be an object");
    Entry e{};
    bool has_key = false, has_hash = false, has_scopes = false;
    std::set<std::string_view> seen;
    for (auto f : ko) {
      if (!seen.insert(f.key).second) return bad(where + ": '" + std::string(f.key) + "' twice");
      if (f.key == "key") {
        std::string_view secret;
        if (f.value.get(secret) || secret.empty()) {
          return bad(where + ".key must be a non-empty string");
        }
        e.digest = Sha256(secret);
        has_key = true;
      } else if (f.key == "key_sha256") {
        std::string_view hex;
        if (f.value.get(hex) || hex.size() != 64) {
          return bad(where + ".key_sha256 must be 64 hex digits");
        }
        for (size_t j = 0; j < 32; j++) {
          int hi = HexValue(hex[2 * j]), lo = HexValue(hex[2 * j + 1]);
          if (hi < 0 || lo < 0) return bad(where + ".key_sha256 must be 64 hex digits");
          e.digest[j] = static_cast<uint8_t>(hi << 4 | lo);
        }
        has_hash = true;
      } else if (f.key == "scopes") {
        simdjson::dom::array scopes;
        if (f.value.get(scopes)) return bad(where + ".scopes must be an array of strings");
        for (simdjson::dom::element s : scopes) {
          std::string_view name;
          if (s.get(name)) return bad(where + ".scopes must be an array of strings");
          if (name == "ingest") {
            e.scopes |= static_cast<uint8_t>(Scope::kIngest);
          } else if (name == "read") {
            e.scopes |= static_cast<uint8_t>(Scope::kRead);
          } else if (name == "admin") {
            e.scopes |= static_cast<uint8_t>(Scope::kAdmin);
          } else {
            return bad(where + ": unknown scope '" + std::string(name) + "' (ingest, read, admin)");
          }
        }
        has_scopes = true;
      } else {
        return bad(where + ": unknown field '" + std::string(f.key) + "'");
      }
    }
    if (has_key == has_hash) return bad(where + " needs exactly one of key, key_sha256");
    if (!has_scopes) return bad(where + " needs scopes");
    result.entries_.push_back(e);
  }
  return result;
}

Result<ApiKeys> ApiKeys::Load(const std::string& path) {
  std::string text;
  Status s = FileSystem::Default()->ReadFileToString(path, &text);
  if (!s.ok()) {
    return Status::InvalidArgument("api_keys_file " + path + ": cannot read: " + s.ToString());
  }
  return Parse(text, path);
}

AuthResult ApiKeys::Check(std::string_view authorization, Scope needed) const {
  if (!enabled_ || needed == Scope::kNone) return AuthResult::kAllowed;
  if (!StartsWithIgnoreCase(authorization, "bearer ")) return AuthResult::kUnauthorized;
  std::string_view token = authorization.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return AuthResult::kUnauthorized;
  const std::array<uint8_t, 32> digest = Sha256(token);
  // Every entry is compared (no early exit), each comparison in constant time.
  uint8_t scopes = 0;
  bool found = false;
  for (const Entry& e : entries_) {
    bool eq = CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0;
    found |= eq;
    scopes |= static_cast<uint8_t>(eq ? e.scopes : 0);
  }
  if (!found) return AuthResult::kUnauthorized;
  return (scopes & static_cast<uint8_t>(needed)) ? AuthResult::kAllowed : AuthResult::kForbidden;
}

}  // namespace server
}  // namespace usagedb
