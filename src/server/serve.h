// `usagedb serve`: settings → database → HTTP server → wait for SIGINT/SIGTERM → graceful
// shutdown (SPEC §4).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace usagedb {
namespace server {

// Runs the server until a signal and returns the process exit code: 0 after a graceful
// shutdown (always within 10 s of the signal), 1 on a startup failure (database, port), 2 on
// a usage error (unknown flag or key, bad value, bucket_count mismatch). A second
// SIGINT/SIGTERM exits at once with 130/143. `args` are the arguments after `serve`;
// `db_root_flag` is the CLI's global --db-root when it was given (a flag like the others).
int RunServe(const std::vector<std::string>& args, const std::optional<std::string>& db_root_flag);

}  // namespace server
}  // namespace usagedb
