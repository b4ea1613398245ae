// Helper process for kill9_test: ingests deterministic batches from several threads into a
// real database directory and prints "ACK <thread> <batch>" after each acknowledged batch,
// until it is killed.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "usagedb/db.h"

using namespace usagedb;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: kill_writer DIR THREADS GENERATION\n");
    return 2;
  }
  Options o;
  o.memtable_bytes = 256 << 10;  // flush often so the kill lands in flushes too
  o.flush_interval_ms = 100;
  auto db_or = DB::Open(o, argv[1]);
  if (!db_or.ok()) {
    std::fprintf(stderr, "open: %s\n", db_or.status().ToString().c_str());
    return 1;
  }
  DB* db = db_or->get();
  int threads = std::atoi(argv[2]);
  std::string gen = argv[3];
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++) {
    ts.emplace_back([=] {
      for (int b = 0;; b++) {
        std::vector<Event> batch;
        for (int i = 0; i < 100; i++) {
          Event e;
          e.event_id = "g" + gen + "_t" + std::to_string(t) + "_b" + std::to_string(b) + "_e" +
                       std::to_string(i);
          e.account_id = "acc" + std::to_string((b + i) % 17);
          e.product_id = "ai_gateway";
          e.meter_id = i % 2 ? "tokens.input" : "tokens.output";
          e.model_id = "m" + std::to_string(i % 5);
          e.timestamp_ms = 1777593600000 + static_cast<int64_t>(b) * 1000 + i;
          e.quantity = i + 1;
          e.unit = "token";
          e.source = "kill-writer";
          batch.push_back(std::move(e));
        }
        IngestResult r;
        Status s = db->Ingest(std::move(batch), &r);
        if (!s.ok()) {
          std::fprintf(stderr, "ingest: %s\n", s.ToString().c_str());
          continue;
        }
        char line[64];
        int n = std::snprintf(line, sizeof(line), "ACK %d %d\n", t, b);
        if (::write(1, line, static_cast<size_t>(n)) < 0) std::_Exit(3);
      }
    });
  }
  for (auto& th : ts) th.join();
  return 0;
}
