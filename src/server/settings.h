// Settings of `usagedb serve` (SPEC §3.9): every setting is a flag `--name-with-dashes`, an
// environment variable `USAGEDB_NAME_IN_CAPS` and a key `name` of a JSON config file
// (`--config FILE` or `USAGEDB_CONFIG`). Flags win over the environment, the environment over
// the file. An unknown key or flag, or a bad value, is InvalidArgument naming it (exit 2).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "usagedb/options.h"
#include "usagedb/status.h"

namespace usagedb {
namespace server {

struct ServerSettings {
  std::string db_root = "./data";
  // `listen` split into its parts; listen_host is a numeric IPv4/IPv6 address ("localhost"
  // is resolved to 127.0.0.1). listen_port 0 = any free port (tests).
  std::string listen = "127.0.0.1:8080";
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  Durability durability = Durability::kStrict;
  // Explicitly set somewhere (flag, env, file)? When not, the database keeps the count it was
  // created with (64 for a new one) instead of refusing a database made with another count.
  bool bucket_count_set = false;
  uint32_t bucket_count = 64;
  uint64_t memtable_bytes = 64ull << 20;
  int64_t flush_interval_ms = 60000;
  int64_t rollup_interval_ms = 30000;
  int64_t rollup_safety_lag_ms = 60000;
  int64_t compaction_interval_ms = 60000;
  int64_t dedupe_window_days = 0;
  uint64_t dedupe_cache_bytes = 64ull << 20;
  std::vector<std::string> rollup_dimension_keys;
  int64_t shutdown_grace_ms = 5000;
  int64_t request_timeout_ms = 30000;
  std::string checkpoint_root;  // "" until resolved: <db_root>/checkpoints
  int64_t max_future_skew_ms = 300000;
  uint64_t max_body_bytes = 33554432;
  std::string api_keys_file;  // "" = no authentication

  // The embedded Options these settings imply (durability, bucket_count, memtable_bytes,
  // flush_interval_ms, dedupe_window_days, dedupe_cache_bytes, max_future_skew_ms).
  Options ToDbOptions() const;
};

// Reads one environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
// The process environment.
EnvLookup ProcessEnv();

struct SettingsLoad {
  ServerSettings settings;
  bool help = false;  // --help was given: print SettingsHelp() and exit 0
};

// Resolves the settings from `args` (the arguments after `serve`: `--name value` or
// `--name=value`, plus `--config FILE` and `--help`), the environment and the config file.
// Fails with InvalidArgument naming the flag, variable or key and the rule it broke; an
// unreadable config file is InvalidArgument too (startup usage error).
Result<SettingsLoad> LoadSettings(const std::vector<std::string>& args, const EnvLookup& env);

// A help text listing every setting with its default.
std::string SettingsHelp();

}  // namespace server
}  // namespace usagedb
