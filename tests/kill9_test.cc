// Starts a real process that ingests from several threads, kill -9s it mid-load (several times,
// also while it recovers), restarts, and finds every acknowledged event exactly once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "db_test_util.h"

namespace usagedb::testing {
namespace {

struct Child {
  pid_t pid = -1;
  int out_fd = -1;
};

Child Spawn(const std::string& dir, int threads, int generation) {
  int fds[2];
  EXPECT_EQ(0, ::pipe(fds));
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string t = std::to_string(threads), g = std::to_string(generation);
    ::execl(KILL_WRITER_PATH, "kill_writer", dir.c_str(), t.c_str(), g.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  return Child{pid, fds[0]};
}

TEST(Kill9Test, AcknowledgedEventsSurviveKillDashNine) {
  std::string dir = ::testing::TempDir() + "/usagedb_kill9_test";
  std::filesystem::remove_all(dir);
  std::set<std::string> acked_batches;  // "gen t b"
  constexpr int kGenerations = 4;
  for (int gen = 0; gen < kGenerations; gen++) {
    Child c = Spawn(dir, 3, gen);
    ASSERT_GT(c.pid, 0);
    // Let it acknowledge a number of batches (varying per generation), then kill it.
    const int want = 20 + gen * 25;
    int got = 0;
    std::string buf;
    char tmp[4096];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (got < want && std::chrono::steady_clock::now() < deadline) {
      ssize_t n = ::read(c.out_fd, tmp, sizeof(tmp));
      if (n <= 0) break;
      buf.append(tmp, static_cast<size_t>(n));
      size_t pos;
      while ((pos = buf.find('\n')) != std::string::npos) {
        std::istringstream line(buf.substr(0, pos));
        buf.erase(0, pos + 1);
        std::string ack;
        int t, b;
        if (line >> ack >> t >> b) {
          acked_batches.insert(std::to_string(gen) + " " + std::to_string(t) + " " +
                               std::to_string(b));
          got++;
        }
      }
    }
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    ::close(c.out_fd);
    ASSERT_GE(got, want) << "the writer acknowledged too little before the deadline";
    ASSERT_TRUE(WIFSIGNALED(status));
  }

  Options o;
  o.background_flush = false;
  auto db = DB::Open(o, dir);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  std::map<std::string, int> stored = StoredIds(db->get());
  for (const auto& [id, n] : stored) ASSERT_EQ(1, n) << id << " stored twice";
  size_t expected_min = 0;
  for (const std::string& key : acked_batches) {
    std::istringstream in(key);
    int g, t, b;
    in >> g >> t >> b;
    for (int i = 0; i < 100; i++) {
      std::string id = "g" + std::to_string(g) + "_t" + std::to_string(t) + "_b" +
                       std::to_string(b) + "_e" + std::to_string(i);
      ASSERT_TRUE(stored.count(id)) << "acknowledged " << id << " lost";
      expected_min++;
    }
  }
  EXPECT_GE(stored.size(), expected_min);
  const RecoveryReport& rep = (*db)->recovery_report();
  std::printf("recovered: %zu events stored, %zu acknowledged; replayed %llu units\n",
              stored.size(), expected_min, static_cast<unsigned long long>(rep.units_replayed));
  ASSERT_TRUE((*db)->Close().ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace usagedb::testing
