#include "server/serve.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "server/api.h"
#include "server/http_server.h"
#include "server/settings.h"
#include "usagedb/db.h"

namespace usagedb {
namespace server {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// SPEC §4: exit within 10 s of the first signal; keep a margin for process teardown.
constexpr auto kHardLimit = std::chrono::milliseconds(9500);

// The first SIGINT/SIGTERM, as seen by the signal thread.
struct SignalState {
  std::mutex mu;
  std::condition_variable cv;
  int first = 0;
};

const char* SignalName(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

// Waits for signals (blocked in every thread, so only sigwait sees them). The first wakes
// the main thread; a second one exits at once (130 for SIGINT, 143 for SIGTERM).
void SignalLoop(SignalState* state, sigset_t set) {
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    std::unique_lock<std::mutex> l(state->mu);
    if (state->first != 0) {
      std::fprintf(stderr,
                   "usagedb: second %s: exiting at once (the WAL keeps every "
                   "acknowledged event)\n",
                   SignalName(sig));
      std::fflush(stderr);
      _exit(128 + sig);
    }
    state->first = sig;
    state->cv.notify_all();
  }
}

int Usage(const Status& s) {
  std::fprintf(stderr, "usagedb serve: %s\n", s.message().c_str());
  return kExitUsage;
}

// The server opens each segment file on its first read and keeps it, so it holds about one
// descriptor per segment. Raises the soft descriptor limit to the hard one (warning when even
// that is below what the segments need), and grows the kernel's descriptor table once, now:
// growing it while request threads run waits for an RCU grace period each time the table
// doubles (64, 128, ..., 2048 descriptors), which put 7-17 ms stalls on four or five of the
// first 200 queries after a start (docs/parts/server.md).
void PrepareDescriptors(uint64_t segments) {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  const uint64_t want = segments + 1024;  // + WAL, dedupe runs, conflict logs, connections
  const uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? uint64_t{1} << 20 : rl.rlim_cur;
  if (limit < want) {
    std::fprintf(stderr,
                 "usagedb: warning: the open-file limit (%llu) is below %llu (%llu segments + "
                 "1024); reads may fail with 'Too many open files'\n",
                 static_cast<unsigned long long>(limit), static_cast<unsigned long long>(want),
                 static_cast<unsigned long long>(segments));
  }
  const uint64_t top = std::min<uint64_t>({want, limit - 1, uint64_t{1} << 20});
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  // The lowest free descriptor >= top (never one in use): the table grows to hold it.
  const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, static_cast<int>(top));
  if (high >= 0) ::close(high);
  ::close(fd);
}

}  // namespace

int RunServe(const std::vector<std::string>& args_in,
             const std::optional<std::string>& db_root_flag) {
  // Block the signals before any thread starts, so every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args;
  if (db_root_flag) args.push_back("--db-root=" + *db_root_flag);
  args.insert(args.end(), args_in.begin(), args_in.end());
  Result<SettingsLoad> loaded = LoadSettings(args, ProcessEnv());
  if (!loaded.ok()) return Usage(loaded.status());
  if (loaded->help) {
    std::fputs(SettingsHelp().c_str(), stdout);
    return 0;
  }
  const ServerSettings& settings = loaded->settings;

  ApiKeys keys;
  if (!settings.api_keys_file.empty()) {
    Result<ApiKeys> k = ApiKeys::Load(settings.api_keys_file);
    if (!k.ok()) return Usage(k.status());
    keys = std::move(k).value();
  }

  Result<std::unique_ptr<DB>> db_or = DB::Open(settings.ToDbOptions(), settings.db_root);
  if (!db_or.ok()) {
    std::fprintf(stderr, "usagedb serve: cannot open %s: %s\n", settings.db_root.c_str(),
                 db_or.status().ToString().c_str());
    return db_or.status().IsInvalidArgument() ? kExitUsage : kExitFailure;
  }
  std::unique_ptr<DB> db = std::move(db_or).value();
  PrepareDescriptors(db->Stats().segment_count);
  const RecoveryReport& rec = db->recovery_report();
  if (rec.events_replayed > 0 || rec.torn_tails_truncated > 0) {
    std::fprintf(stderr,
                 "usagedb: recovered %llu events from %llu WAL files (%.2f s, %llu torn tails "
                 "truncated, %llu unsynced records after a hole dropped)\n",
                 static_cast<unsigned long long>(rec.events_replayed),
                 static_cast<unsigned long long>(rec.wal_files_replayed), rec.replay_seconds,
                 static_cast<unsigned long long>(rec.torn_tails_truncated),
                 static_cast<unsigned long long>(rec.unsynced_records_dropped));
  }

  auto api = std::make_unique<ApiService>(db.get(), settings, std::move(keys));
  HttpServerOptions hopts;
  hopts.host = settings.listen_host;
  hopts.port = settings.listen_port;
  hopts.max_body_bytes = settings.max_body_bytes;
  hopts.request_timeout_ms = settings.request_timeout_ms;
  Result<std::unique_ptr<HttpServer>> server_or =
      HttpServer::Start(hopts, api.get(), &api->metrics());
  if (!server_or.ok()) {
    std::fprintf(stderr, "usagedb serve: %s\n", server_or.status().ToString().c_str());
    db->Close().IgnoreError();
    return kExitFailure;
  }
  std::unique_ptr<HttpServer> server = std::move(server_or).value();
  std::string host = settings.listen_host.find(':') != std::string::npos
                         ? "[" + settings.listen_host + "]"
                         : settings.listen_host;
  std::printf("usagedb: listening on http://%s:%u (db_root %s, durability %s)\n", host.c_str(),
              static_cast<unsigned>(server->port()), settings.db_root.c_str(),
              settings.durability == Durability::kStrict ? "strict" : "fast");
  std::fflush(stdout);

  SignalState signals;
  std::thread(SignalLoop, &signals, set).detach();
  int sig = 0;
  {
    std::unique_lock<std::mutex> l(signals.mu);
    signals.cv.wait(l, [&] { return signals.first != 0; });
    sig = signals.first;
  }

  // SPEC §4: stop accepting; in-flight requests get shutdown_grace_ms; then abort them; flush
  // if time remains; exit 0 within 10 s.
  const auto t0 = std::chrono::steady_clock::now();
  const auto hard_deadline = t0 + kHardLimit;
  const auto grace_deadline = t0 + std::chrono::milliseconds(settings.shutdown_grace_ms);
  std::fprintf(stderr, "usagedb: %s: shutting down (in-flight requests get %lld ms)\n",
               SignalName(sig), static_cast<long long>(settings.shutdown_grace_ms));
  if (!server->Shutdown(grace_deadline)) {
    std::fprintf(stderr,
                 "usagedb: requests still running after the grace period were "
                 "aborted\n");
  }
  // Handlers cut off by the abort may still be inside the database for a moment.
  bool joined = server->Join(std::min(hard_deadline, grace_deadline + std::chrono::seconds(1)));

  // Flush (DB::Close) in a thread, so the deadline holds whatever the memtable size.
  struct CloseState {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status status;
  };
  auto close_state = std::make_shared<CloseState>();
  DB* raw_db = db.get();
  std::thread([close_state, raw_db] {
    Status s = raw_db->Close();
    std::lock_guard<std::mutex> l(close_state->mu);
    close_state->status = s;
    close_state->done = true;
    close_state->cv.notify_all();
  }).detach();
  bool closed;
  Status close_status;
  {
    std::unique_lock<std::mutex> l(close_state->mu);
    closed = close_state->cv.wait_until(l, hard_deadline, [&] { return close_state->done; });
    close_status = close_state->status;
  }
  if (!closed || !joined) {
    std::fprintf(stderr,
                 "usagedb: %s did not finish in time; exiting (the WAL keeps every "
                 "acknowledged event)\n",
                 closed ? "a request" : "the final flush");
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  if (!close_status.ok()) {
    std::fprintf(stderr,
                 "usagedb: final flush failed: %s (the WAL keeps every acknowledged "
                 "event)\n",
                 close_status.ToString().c_str());
  } else {
    std::fprintf(stderr, "usagedb: flushed and closed\n");
  }
  server.reset();
  api.reset();
  db.reset();
  return 0;
}

}  // namespace server
}  // namespace usagedb
