// HTTP ingest load program: C keep-alive clients send batches of B events of the SPEC §9
// workload to a running `usagedb serve` (POST /v1/usage/batch) and it prints events/s.
//
//   http_ingest_bench --port 8080 --clients 8 --batch 1000 --events 1000000 [--accounts 1000]
//
// The bodies are generated before the clock starts (client cost = sending + waiting only);
// the time to build them is printed separately.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/workload.h"
#include "tests/server/http_client.h"

using usagedb::testing::ClientResponse;
using usagedb::testing::HttpClient;

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 8080, clients = 2;
  uint64_t batch = 1000, events = 200000, accounts = 1000, seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    const char* v = argv[i + 1];
    if (f == "--host")
      host = v;
    else if (f == "--port")
      port = std::atoi(v);
    else if (f == "--clients")
      clients = std::atoi(v);
    else if (f == "--batch")
      batch = std::strtoull(v, nullptr, 10);
    else if (f == "--events")
      events = std::strtoull(v, nullptr, 10);
    else if (f == "--accounts")
      accounts = std::strtoull(v, nullptr, 10);
    else if (f == "--seed")
      seed = std::strtoull(v, nullptr, 10);
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  auto g0 = std::chrono::steady_clock::now();
  usagedb::bench::WorkloadOptions wo;
  wo.events = events;
  wo.accounts = static_cast<uint32_t>(accounts);
  wo.seed = seed;
  usagedb::bench::WorkloadGenerator gen(wo);
  std::vector<std::string> bodies;
  usagedb::Event e;
  std::string body;
  uint64_t in_body = 0;
  while (gen.Next(&e)) {
    usagedb::bench::AppendEventJsonLine(e, &body);
    if (++in_body == batch) {
      bodies.push_back(std::move(body));
      body.clear();
      in_body = 0;
    }
  }
  if (in_body > 0) bodies.push_back(std::move(body));
  double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count();

  std::atomic<size_t> next{0};
  std::atomic<uint64_t> accepted_batches{0}, failed{0};
  std::vector<std::vector<double>> latencies(clients);
  // The client's own CPU while sending (this process shares the machine with the server).
  auto cpu_seconds = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  const double cpu0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; c++) {
    threads.emplace_back([&, c] {
      HttpClient client(host, static_cast<uint16_t>(port));
      while (true) {
        size_t i = next.fetch_add(1);
        if (i >= bodies.size()) break;
        auto r0 = std::chrono::steady_clock::now();
        ClientResponse r = client.Request("POST", "/v1/usage/batch", bodies[i],
                                          {{"Content-Type", "application/x-ndjson"}});
        latencies[c].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0)
                .count());
        if (r.status == 200) {
          accepted_batches++;
        } else {
          failed++;
          if (failed < 5) std::fprintf(stderr, "batch %zu: %d %s\n", i, r.status, r.body.c_str());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double client_cpu = cpu_seconds() - cpu0;
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[static_cast<size_t>(p * (all.size() - 1))];
  };
  std::printf(
      "clients=%d batch=%llu events=%llu batches=%zu failed=%llu: %.2f s, %.0f events/s; "
      "batch latency p50 %.1f ms p99 %.1f ms; client CPU %.2f s (%.0f%% of one core; bodies "
      "built in %.2f s, not timed)\n",
      clients, static_cast<unsigned long long>(batch), static_cast<unsigned long long>(events),
      bodies.size(), static_cast<unsigned long long>(failed.load()), secs,
      static_cast<double>(events) / secs, pct(0.5), pct(0.99), client_cpu,
      100.0 * client_cpu / secs, gen_s);
  return failed == 0 ? 0 : 1;
}
