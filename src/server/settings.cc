#include "server/settings.h"

#include <arpa/inet.h>
#include <simdjson.h>

#include <cstdlib>
#include <set>

#include "io/file_system.h"
#include "model/event_rules.h"

namespace usagedb {
namespace server {
namespace {

// A setting's value as one source gave it, before it is checked.
struct RawValue {
  enum class Kind { kText, kJsonString, kJsonInt, kJsonList, kJsonOther };
  Kind kind = Kind::kText;
  std::string text;               // kText, kJsonString; kJsonInt as its decimal digits
  std::vector<std::string> list;  // kJsonList
  std::string json_type;          // kJsonOther: "boolean", "null", "number", "object", ...
  std::string origin;             // "--max-body-bytes", "USAGEDB_MAX_BODY_BYTES", "config key ..."
};

enum class Type { kString, kInt, kDurability, kListen, kKeyList };

struct SettingDef {
  const char* name;
  Type type;
  int64_t min, max;  // kInt only (inclusive)
  const char* help;
};

constexpr int64_t kDayMs = 86400000;
constexpr int64_t kTiB = 1ll << 40;

// Every setting of SPEC §3.9, in the order of the table.
const SettingDef kSettings[] = {
    {"db_root", Type::kString, 0, 0, "data directory (default ./data)"},
    {"listen", Type::kListen, 0, 0, "address:port of the HTTP server (default 127.0.0.1:8080)"},
    {"durability", Type::kDurability, 0, 0, "strict or fast (default strict)"},
    {"bucket_count", Type::kInt, 1, 65536,
     "buckets, fixed when the database is created (default 64)"},
    {"memtable_bytes", Type::kInt, 4096, kTiB, "flush the memtable at this size (default 64 MiB)"},
    {"flush_interval_ms", Type::kInt, 1, 30 * kDayMs,
     "flush a memtable older than this (default 60000)"},
    {"rollup_interval_ms", Type::kInt, 1, 30 * kDayMs, "rollup worker period (default 30000)"},
    {"rollup_safety_lag_ms", Type::kInt, 0, 30 * kDayMs,
     "an hour is sealed this long after it ends (default 60000)"},
    {"compaction_interval_ms", Type::kInt, 1, 30 * kDayMs,
     "compaction worker period (default 60000)"},
    {"dedupe_window_days", Type::kInt, 0, 36500, "dedupe window in days, 0 = forever (default 0)"},
    {"dedupe_cache_bytes", Type::kInt, 65536, kTiB,
     "fixed cache of the dedupe index (default 64 MiB)"},
    {"rollup_dimension_keys", Type::kKeyList, 0, 0,
     "dimension keys kept in rollups, comma-separated (default none)"},
    {"shutdown_grace_ms", Type::kInt, 0, 9000,
     "in-flight requests may finish this long after SIGINT/SIGTERM (default 5000)"},
    {"request_timeout_ms", Type::kInt, 1, kDayMs,
     "a request running longer fails with 503 timeout (default 30000)"},
    {"checkpoint_root", Type::kString, 0, 0,
     "where admin/checkpoint writes (default <db_root>/checkpoints)"},
    {"max_future_skew_ms", Type::kInt, 0, 365 * kDayMs,
     "timestamp_ms upper bound beyond now (default 300000)"},
    {"max_body_bytes", Type::kInt, 1, 1ll << 32,
     "larger (decompressed) request bodies get 413 (default 33554432)"},
    {"api_keys_file", Type::kString, 0, 0, "API keys file; when set requests need a Bearer key"},
};

std::string FlagName(std::string_view name) {
  std::string s = "--";
  for (char c : name) s += c == '_' ? '-' : c;
  return s;
}

std::string EnvName(std::string_view name) {
  std::string s = "USAGEDB_";
  for (char c : name) s += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return s;
}

const SettingDef* FindSetting(std::string_view name) {
  for (const SettingDef& d : kSettings) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

Status Bad(const RawValue& v, const std::string& why) {
  return Status::InvalidArgument(v.origin + ": " + why);
}

Result<int64_t> ParseIntValue(const SettingDef& d, const RawValue& v) {
  std::string digits;
  if (v.kind == RawValue::Kind::kText || v.kind == RawValue::Kind::kJsonInt) {
    digits = v.text;
  } else {
    return Bad(v, "must be an integer (a JSON number without fraction), not " +
                      (v.kind == RawValue::Kind::kJsonString ? std::string("a string")
                                                             : "a JSON " + v.json_type));
  }
  bool neg = !digits.empty() && digits[0] == '-';
  std::string_view body(digits);
  if (neg) body.remove_prefix(1);
  if (body.empty() || body.size() > 19) {
    return Bad(v, "'" + digits + "' is not an integer in " + std::to_string(d.min) + ".." +
                      std::to_string(d.max));
  }
  for (char c : body) {
    if (c < '0' || c > '9') return Bad(v, "'" + digits + "' is not an integer");
  }
  // 19 digits may exceed int64: compare as unsigned first.
  unsigned long long u = std::strtoull(std::string(body).c_str(), nullptr, 10);
  if (u > static_cast<unsigned long long>(INT64_MAX)) {
    return Bad(v,
               digits + " is out of range " + std::to_string(d.min) + ".." + std::to_string(d.max));
  }
  int64_t x = neg ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
  if (x < d.min || x > d.max) {
    return Bad(v, (x < 0 ? "negative value " : "value ") + digits + " is out of range " +
                      std::to_string(d.min) + ".." + std::to_string(d.max));
  }
  return x;
}

Result<std::string> StringValue(const RawValue& v) {
  if (v.kind == RawValue::Kind::kText || v.kind == RawValue::Kind::kJsonString) {
    if (v.text.empty()) return Bad(v, "must not be empty");
    return v.text;
  }
  return Bad(v, std::string("must be a string, not ") +
                    (v.kind == RawValue::Kind::kJsonInt ? "a number" : "a JSON " + v.json_type));
}

Result<std::vector<std::string>> KeyListValue(const RawValue& v) {
  std::vector<std::string> keys;
  if (v.kind == RawValue::Kind::kText) {
    size_t start = 0;
    while (start <= v.text.size() && !v.text.empty()) {
      size_t comma = v.text.find(',', start);
      if (comma == std::string::npos) comma = v.text.size();
      keys.push_back(v.text.substr(start, comma - start));
      start = comma + 1;
    }
  } else if (v.kind == RawValue::Kind::kJsonList) {
    keys = v.list;
  } else {
    return Bad(v, "must be a JSON array of strings");
  }
  std::set<std::string> seen;
  for (std::string& k : keys) {
    std::string_view t = k;
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    k = std::string(t);
    if (!model_internal::IsValidDimensionKeySyntax(k)) {
      return Bad(v, "'" + k + "' is not a valid dimension key (1-64 bytes of [A-Za-z0-9_.:-] " +
                        "starting with a letter or '_')");
    }
    if (model_internal::IsReservedName(k)) return Bad(v, "'" + k + "' is a reserved name, not a dimension key");
    if (!seen.insert(k).second) return Bad(v, "'" + k + "' is listed twice");
  }
  return keys;
}

Status ParseListen(const RawValue& v, ServerSettings* s) {
  ASSIGN_OR_RETURN(std::string text, StringValue(v));
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return Bad(v, "'" + text + "' is not address:port");
  }
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      return Bad(v, "'" + host + "' is not an IPv6 address");
    }
  } else {
    if (host == "localhost") host = "127.0.0.1";
    in_addr a4;
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1) {
      return Bad(v, "'" + host + "' is not an IPv4 address (use [v6] for IPv6)");
    }
  }
  if (port.size() > 5) return Bad(v, "port '" + port + "' is not in 0..65535");
  unsigned p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return Bad(v, "port '" + port + "' is not a number");
    p = p * 10 + static_cast<unsigned>(c - '0');
  }
  if (p > 65535) return Bad(v, "port '" + port + "' is not in 0..65535");
  s->listen = text;
  s->listen_host = host;
  s->listen_port = static_cast<uint16_t>(p);
  return Status::OK();
}

Status Apply(const SettingDef& d, const RawValue& v, ServerSettings* s) {
  const std::string name = d.name;
  switch (d.type) {
    case Type::kListen:
      return ParseListen(v, s);
    case Type::kDurability: {
      ASSIGN_OR_RETURN(std::string t, StringValue(v));
      if (t == "strict") {
        s->durability = Durability::kStrict;
      } else if (t == "fast") {
        s->durability = Durability::kFast;
      } else {
        return Bad(v, "'" + t + "' is not strict or fast");
      }
      return Status::OK();
    }
    case Type::kKeyList: {
      ASSIGN_OR_RETURN(s->rollup_dimension_keys, KeyListValue(v));
      return Status::OK();
    }
    case Type::kString: {
      ASSIGN_OR_RETURN(std::string t, StringValue(v));
      if (name == "db_root") s->db_root = t;
      if (name == "checkpoint_root") s->checkpoint_root = t;
      if (name == "api_keys_file") s->api_keys_file = t;
      return Status::OK();
    }
    case Type::kInt: {
      ASSIGN_OR_RETURN(int64_t x, ParseIntValue(d, v));
      if (name == "bucket_count") {
        s->bucket_count = static_cast<uint32_t>(x);
        s->bucket_count_set = true;
      }
      if (name == "memtable_bytes") s->memtable_bytes = static_cast<uint64_t>(x);
      if (name == "flush_interval_ms") s->flush_interval_ms = x;
      if (name == "rollup_interval_ms") s->rollup_interval_ms = x;
      if (name == "rollup_safety_lag_ms") s->rollup_safety_lag_ms = x;
      if (name == "compaction_interval_ms") s->compaction_interval_ms = x;
      if (name == "dedupe_window_days") s->dedupe_window_days = x;
      if (name == "dedupe_cache_bytes") s->dedupe_cache_bytes = static_cast<uint64_t>(x);
      if (name == "shutdown_grace_ms") s->shutdown_grace_ms = x;
      if (name == "request_timeout_ms") s->request_timeout_ms = x;
      if (name == "max_future_skew_ms") s->max_future_skew_ms = x;
      if (name == "max_body_bytes") s->max_body_bytes = static_cast<uint64_t>(x);
      return Status::OK();
    }
  }
  return Status::Internal("unhandled setting type");
}

const char* JsonTypeName(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY:
      return "array";
    case T::OBJECT:
      return "object";
    case T::INT64:
    case T::UINT64:
      return "integer";
    case T::DOUBLE:
      return "number with a fraction or exponent";
    case T::STRING:
      return "string";
    case T::BOOL:
      return "boolean";
    case T::NULL_VALUE:
      return "null";
  }
  return "value";
}

Status ApplyConfigFile(const std::string& path, ServerSettings* s) {
  std::string text;
  Status rs = FileSystem::Default()->ReadFileToString(path, &text);
  if (!rs.ok()) {
    return Status::InvalidArgument("config file " + path + ": cannot read: " + rs.ToString());
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  auto err = parser.parse(text).get(root);
  if (err) {
    return Status::InvalidArgument("config file " + path +
                                   ": not JSON: " + simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (root.get(obj)) {
    return Status::InvalidArgument("config file " + path + ": must be a JSON object of settings");
  }
  std::set<std::string> seen;
  for (auto field : obj) {
    std::string key(field.key);
    RawValue v;
    v.origin = "config file " + path + ": key " + key;
    const SettingDef* d = FindSetting(key);
    if (d == nullptr) return Status::InvalidArgument(v.origin + ": unknown setting");
    if (!seen.insert(key).second) return Status::InvalidArgument(v.origin + ": given twice");
    simdjson::dom::element e = field.value;
    switch (e.type()) {
      case simdjson::dom::element_type::STRING:
        v.kind = RawValue::Kind::kJsonString;
        v.text = std::string(e.get_string().value_unsafe());
        break;
      case simdjson::dom::element_type::INT64:
        v.kind = RawValue::Kind::kJsonInt;
        v.text = std::to_string(e.get_int64().value_unsafe());
        break;
      case simdjson::dom::element_type::UINT64:
        v.kind = RawValue::Kind::kJsonInt;
        v.text = std::to_string(e.get_uint64().value_unsafe());
        break;
      case simdjson::dom::element_type::ARRAY: {
        v.kind = RawValue::Kind::kJsonList;
        simdjson::dom::array arr;
        if (e.get_array().get(arr)) return Status::Internal("array expected");
        for (simdjson::dom::element item : arr) {
          std::string_view sv;
          if (item.get_string().get(sv)) {
            return Status::InvalidArgument(v.origin + ": must be an array of strings");
          }
          v.list.emplace_back(sv);
        }
        break;
      }
      default:
        v.kind = RawValue::Kind::kJsonOther;
        v.json_type = JsonTypeName(e.type());
        break;
    }
    RETURN_IF_ERROR(Apply(*d, v, s));
  }
  return Status::OK();
}

}  // namespace

Options ServerSettings::ToDbOptions() const {
  Options o;
  o.durability = durability;
  o.bucket_count = bucket_count_set ? bucket_count : 0;
  o.memtable_bytes = static_cast<size_t>(memtable_bytes);
  o.flush_interval_ms = flush_interval_ms;
  o.dedupe_window_days = dedupe_window_days;
  o.dedupe_cache_bytes = static_cast<size_t>(dedupe_cache_bytes);
  o.max_future_skew_ms = max_future_skew_ms;
  return o;
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<SettingsLoad> LoadSettings(const std::vector<std::string>& args, const EnvLookup& env) {
  SettingsLoad load;
  // 1. Split the flags (validated last, but read first to find --config and --help).
  std::vector<std::pair<const SettingDef*, RawValue>> flags;
  std::optional<std::string> config_path;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      load.help = true;
      return load;
    }
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      return Status::InvalidArgument("unexpected argument '" + a + "' (see serve --help)");
    }
    std::string flag = a, value;
    bool has_value = false;
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Status::InvalidArgument(flag + ": needs a value");
      value = args[++i];
    }
    if (flag == "--config") {
      config_path = value;
      continue;
    }
    const SettingDef* def = nullptr;
    for (const SettingDef& d : kSettings) {
      if (flag == FlagName(d.name)) def = &d;
    }
    if (def == nullptr) {
      return Status::InvalidArgument("unknown flag " + flag + " (see serve --help)");
    }
    RawValue v;
    v.kind = RawValue::Kind::kText;
    v.text = value;
    v.origin = flag;
    flags.emplace_back(def, std::move(v));
  }
  if (!config_path) config_path = env("USAGEDB_CONFIG");

  // 2. file < environment < flags.
  ServerSettings& s = load.settings;
  if (config_path) {
    if (config_path->empty()) return Status::InvalidArgument("--config: must not be empty");
    RETURN_IF_ERROR(ApplyConfigFile(*config_path, &s));
  }
  for (const SettingDef& d : kSettings) {
    std::optional<std::string> e = env(EnvName(d.name));
    if (!e) continue;
    RawValue v;
    v.kind = RawValue::Kind::kText;
    v.text = *e;
    v.origin = EnvName(d.name);
    RETURN_IF_ERROR(Apply(d, v, &s));
  }
  for (const auto& [d, v] : flags) RETURN_IF_ERROR(Apply(*d, v, &s));
  if (s.checkpoint_root.empty()) s.checkpoint_root = JoinPath(s.db_root, "checkpoints");
  return load;
}

std::string SettingsHelp() {
  std::string h =
      "usagedb serve [--SETTING VALUE]... [--config FILE]\n\n"
      "Runs the HTTP server. Each setting is also an environment variable USAGEDB_<NAME> and a\n"
      "key of the JSON config file (--config FILE or USAGEDB_CONFIG); flags win over the\n"
      "environment, the environment over the file.\n\nSettings:\n";
  for (const SettingDef& d : kSettings) {
    std::string f = FlagName(d.name);
    h += "  " + f + std::string(f.size() < 26 ? 26 - f.size() : 1, ' ') + d.help + "\n";
  }
  return h;
}

}  // namespace server
}  // namespace usagedb
