// Prints the throughput of the event codecs on realistic events (SPEC §9 shapes):
// JSON batch and NDJSON decoding, binary encode/decode, payload digest.
// Usage: model_json_bench [events=200000]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "model/event_codec.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string RandomEventJson(std::mt19937_64& rng, int i) {
  static const char* kMeters[] = {"tokens.input",       "tokens.output",    "tokens.cached_input",
                                  "tokens.reasoning",   "tokens.embedding", "requests.llm",
                                  "requests.embedding", "requests.image",   "tool.calls",
                                  "agent.runtime_ms"};
  static const char* kProviders[] = {"anthropic", "openai", "google", "mistral"};
  static const char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id = "evt_";
  for (int k = 0; k < 26; ++k) id += kBase32[rng() % 32];
  std::string s =
      "{\"event_id\":\"" + id + "\",\"account_id\":\"acc_" + std::to_string(rng() % 100000) +
      "\",\"subscription_id\":\"sub_" + std::to_string(rng() % 100000) +
      "\",\"product_id\":\"ai_gateway\",\"meter_id\":\"" + kMeters[rng() % 10] +
      "\",\"model_id\":\"model-" + std::to_string(rng() % 100) +
      "\",\"timestamp_ms\":" + std::to_string(1777593600000 + i * 13) +
      ",\"quantity\":" + std::to_string(rng() % 100000) +
      ",\"unit\":\"token\",\"source\":\"gateway-eu-1\",\"dimensions\":{\"provider\":\"" +
      kProviders[rng() % 4] + "\",\"agent\":\"support-agent\",\"region\":\"eu-west-1\"";
  if (rng() % 2) s += ",\"tool\":\"web_search\"";
  s += "}}";
  return s;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  std::mt19937_64 rng(7);
  std::vector<std::string> events;
  size_t bytes = 0;
  for (int i = 0; i < n; ++i) {
    events.push_back(RandomEventJson(rng, i));
    bytes += events.back().size();
  }
  // Batches of 1,000 events, as a collector would send them.
  const int kBatch = 1000;
  std::vector<std::string> batches, ndjson;
  for (int i = 0; i < n; i += kBatch) {
    std::string b = "{\"events\":[", nd;
    for (int j = i; j < std::min(n, i + kBatch); ++j) {
      if (j > i) b += ",";
      b += events[j];
      nd += events[j] + "\n";
    }
    batches.push_back(b + "]}");
    ndjson.push_back(nd);
  }
  std::printf("events: %d, mean JSON size %.0f bytes\n", n, static_cast<double>(bytes) / n);

  std::vector<usagedb::DecodedEvent> out;
  for (int round = 0; round < 2; ++round) {  // the first round warms allocators and parsers
    auto t0 = Clock::now();
    size_t ok = 0;
    for (const auto& b : batches) {
      if (!usagedb::DecodeBatchJson(b, &out).ok()) return 1;
      for (const auto& d : out) ok += d.ok();
    }
    auto t1 = Clock::now();
    for (const auto& b : ndjson) usagedb::DecodeBatchNdjson(b, &out);
    auto t2 = Clock::now();
    if (round == 1) {
      std::printf("DecodeBatchJson   %10.0f events/s  %7.1f MB/s  (%zu accepted)\n",
                  n / Seconds(t0, t1), bytes / Seconds(t0, t1) / 1e6, ok);
      std::printf("DecodeBatchNdjson %10.0f events/s  %7.1f MB/s\n", n / Seconds(t1, t2),
                  bytes / Seconds(t1, t2) / 1e6);
    }
  }
  std::vector<usagedb::Event> decoded;
  for (const auto& b : batches) {
    if (!usagedb::DecodeBatchJson(b, &out).ok()) return 1;
    for (auto& d : out) decoded.push_back(std::move(d.event));
  }
  auto t0 = Clock::now();
  std::string bin;
  for (const auto& e : decoded) usagedb::EncodeEventBinary(e, &bin);
  auto t1 = Clock::now();
  usagedb::Decoder in(bin);
  usagedb::Event e;
  size_t m = 0;
  while (usagedb::DecodeEventBinary(&in, &e)) ++m;
  auto t2 = Clock::now();
  uint64_t x = 0;
  for (const auto& ev : decoded) x ^= usagedb::PayloadDigest(ev).lo;
  auto t3 = Clock::now();
  std::string json;
  for (const auto& ev : decoded) usagedb::AppendEventJson(ev, &json);
  auto t4 = Clock::now();
  std::printf("EncodeEventBinary %10.0f events/s  (%.0f bytes/event)\n", n / Seconds(t0, t1),
              static_cast<double>(bin.size()) / n);
  std::printf("DecodeEventBinary %10.0f events/s  (%zu decoded)\n", m / Seconds(t1, t2), m);
  std::printf("PayloadDigest     %10.0f events/s  (%llx)\n", n / Seconds(t2, t3),
              static_cast<unsigned long long>(x));
  std::printf("AppendEventJson   %10.0f events/s\n", n / Seconds(t3, t4));
  return 0;
}
