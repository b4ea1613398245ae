#include "server/router.h"

#include <simdjson.h>

namespace usagedb {
namespace server {
namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;  // path[0] == '/'
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

}  // namespace

bool PercentDecode(std::string_view s, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      int hi = HexDigit(s[i + 1]), lo = HexDigit(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

Result<QueryParams> QueryParams::Parse(std::string_view query) {
  QueryParams p;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view item = query.substr(start, amp - start);
    start = amp + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string_view k = item.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    std::string key, value;
    if (!PercentDecode(k, true, &key) || !PercentDecode(v, true, &value)) {
      return Status::InvalidArgument("malformed percent-encoding in query parameter '" +
                                     std::string(k) + "'");
    }
    if (!IsUtf8(key) || !IsUtf8(value)) {
      return Status::InvalidArgument("query parameter '" + std::string(k) + "' is not valid UTF-8");
    }
    p.items_.emplace_back(std::move(key), std::move(value));
  }
  return p;
}

Result<const std::string*> QueryParams::Single(std::string_view key) const {
  const std::string* found = nullptr;
  for (const auto& [k, v] : items_) {
    if (k != key) continue;
    if (found != nullptr) {
      return Status::InvalidArgument("query parameter '" + std::string(key) + "' given twice");
    }
    found = &v;
  }
  return found;
}

bool QueryParams::Has(std::string_view key) const {
  for (const auto& kv : items_) {
    if (kv.first == key) return true;
  }
  return false;
}

void Router::Add(std::string method, std::string pattern, Scope scope, std::string name,
                 RouteHandler handler) {
  Route r;
  r.method = std::move(method);
  r.pattern = std::move(pattern);
  r.name = std::move(name);
  r.scope = scope;
  r.handler = std::move(handler);
  for (std::string_view s : SplitPath(r.pattern)) r.segments.emplace_back(s);
  routes_.push_back(std::move(r));
}

Router::MatchResult Router::Match(std::string_view method, std::string_view path) const {
  MatchResult m;
  if (path.empty() || path[0] != '/') {
    m.kind = MatchResult::kNotFound;
    return m;
  }
  std::vector<std::string_view> segs = SplitPath(path);
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::vector<std::string> params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; i++) {
      const std::string& p = r.segments[i];
      if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
        std::string decoded;
        if (segs[i].empty()) {
          ok = false;
        } else if (!PercentDecode(segs[i], false, &decoded) || !IsUtf8(decoded)) {
          m.kind = MatchResult::kBadPath;
          return m;
        } else {
          params.push_back(std::move(decoded));
        }
      } else if (p != segs[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (r.method == method) {
      m.kind = MatchResult::kFound;
      m.route = &r;
      m.path_params = std::move(params);
      return m;
    }
    m.kind = MatchResult::kMethodNotAllowed;
    if (m.allow.find(r.method) == std::string::npos) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += r.method;
    }
  }
  return m;
}

}  // namespace server
}  // namespace usagedb
