// Tests of the benchmark workload generator and its JSON Lines writer.
#include "bench/workload.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <unordered_map>

namespace usagedb::bench {
namespace {

std::string Generate(const WorkloadOptions& options) {
  WorkloadGenerator gen(options);
  Event e;
  std::string out;
  while (gen.Next(&e)) AppendEventJsonLine(e, &out);
  return out;
}

WorkloadOptions Small(uint64_t events, uint64_t seed = 7) {
  WorkloadOptions o;
  o.events = events;
  o.seed = seed;
  return o;
}

TEST(WorkloadTest, SameSeedSameBytes) {
  const std::string a = Generate(Small(20000));
  EXPECT_EQ(a, Generate(Small(20000)));
  EXPECT_NE(a, Generate(Small(20000, 8)));
}

TEST(WorkloadTest, ProducesExactlyTheRequestedCount) {
  WorkloadGenerator gen(Small(1234));
  Event e;
  uint64_t n = 0;
  while (gen.Next(&e)) ++n;
  EXPECT_EQ(1234u, n);
  EXPECT_EQ(1234u, gen.produced());
  EXPECT_FALSE(gen.Next(&e));
}

// Ids are unique except for retries, and a retry repeats an earlier record exactly (same id,
// same payload) shortly after it.
TEST(WorkloadTest, IdsUniqueApartFromRetries) {
  WorkloadGenerator gen(Small(100000));
  Event e;
  std::unordered_map<std::string, std::pair<std::string, uint64_t>> seen;  // id -> line, index
  uint64_t retries = 0;
  uint64_t corrections = 0;
  uint64_t index = 0;
  for (; gen.Next(&e); ++index) {
    std::string line;
    AppendEventJsonLine(e, &line);
    auto [it, fresh] = seen.try_emplace(e.event_id, line, index);
    if (!fresh) {
      ++retries;
      EXPECT_EQ(it->second.first, line) << "a retry must repeat the payload";
      EXPECT_LT(index - it->second.second, 5000u) << "a retry comes shortly after";
    }
    if (e.kind == EventKind::kCorrection) {
      ASSERT_TRUE(e.has_correction_ref);
      if (fresh) {
        ++corrections;
        EXPECT_TRUE(seen.count(e.correction_original_event_id)) << "refers to an earlier id";
      }
    }
  }
  EXPECT_EQ(retries, gen.duplicates());
  // 1% and 0.1% of 100,000: binomial, sd ~31 and ~10.
  EXPECT_GT(retries, 850u);
  EXPECT_LT(retries, 1150u);
  EXPECT_GT(corrections, 60u);
  EXPECT_LT(corrections, 140u);
}

TEST(WorkloadTest, EventsFollowTheSpec) {
  WorkloadOptions o = Small(50000);
  o.accounts = 1000;
  WorkloadGenerator gen(o);
  Event e;
  std::set<std::string> meters, models, products, accounts;
  std::map<std::string, uint64_t> per_account;
  int64_t prev_ts = 0;
  uint64_t out_of_order = 0;
  while (gen.Next(&e)) {
    ASSERT_EQ(30u, e.event_id.size());
    ASSERT_EQ("evt_", e.event_id.substr(0, 4));
    for (char c : e.event_id.substr(4)) {
      ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << e.event_id;
    }
    ASSERT_GE(e.timestamp_ms, kMay2026StartMs);
    ASSERT_LT(e.timestamp_ms, kJune2026StartMs);
    if (e.timestamp_ms < prev_ts) ++out_of_order;
    prev_ts = e.timestamp_ms;
    ASSERT_GE(e.dimensions.size(), 2u);
    ASSERT_LE(e.dimensions.size(), 4u);
    for (size_t i = 1; i < e.dimensions.size(); ++i) {
      ASSERT_LT(e.dimensions[i - 1].first, e.dimensions[i].first) << "sorted, unique keys";
    }
    if (e.kind == EventKind::kUsage) {
      ASSERT_GE(e.quantity, 0);
      ASSERT_LE(e.quantity, 600000);
      if (e.unit == "request") {
        ASSERT_EQ(1, e.quantity);
      }
    } else {
      ASSERT_EQ(EventKind::kCorrection, e.kind);
      ASSERT_NE(0, e.quantity);
    }
    bool known_meter = false;
    for (const MeterSpec& m : Meters()) {
      if (e.meter_id == m.meter_id) {
        known_meter = true;
        ASSERT_EQ(m.unit, e.unit);
      }
    }
    ASSERT_TRUE(known_meter) << e.meter_id;
    meters.insert(e.meter_id);
    if (e.model_id) models.insert(*e.model_id);
    products.insert(e.product_id);
    ++per_account[e.account_id];
  }
  EXPECT_EQ(10u, meters.size());
  EXPECT_GT(models.size(), 90u);
  EXPECT_LE(models.size(), 100u);
  EXPECT_EQ((std::set<std::string>{"agents", "ai_gateway", "embeddings", "images"}), products);
  // Roughly in time order with jitter and some late records.
  EXPECT_GT(out_of_order, 0u);
  EXPECT_LT(out_of_order, 50000u / 2);
  // Zipf skew: the top account is far heavier than a middling one.
  EXPECT_GT(per_account["acct_000000"], 20 * per_account["acct_000500"]);
}

TEST(WorkloadTest, JsonLineFormat) {
  Event e;
  e.event_id = "evt_1";
  e.kind = EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = "evt_0";
  e.account_id = "acct_\"q\"";
  e.product_id = "p";
  e.meter_id = "m";
  e.timestamp_ms = 1777593600000;
  e.quantity = -static_cast<__int128>(100000000000000000ull) * 1000000000000ll;  // -10^29
  e.unit = "token";
  e.source = "s";
  e.dimensions = {{"k", std::string("a\\b\n\x01\x7f/\xc3\xa9", 9)}};
  std::string line;
  AppendEventJsonLine(e, &line);
  EXPECT_EQ(
      "{\"event_id\":\"evt_1\",\"kind\":\"Correction\",\"correction_ref\":{\"original_event_id\":"
      "\"evt_0\"},\"account_id\":\"acct_\\\"q\\\"\",\"product_id\":\"p\",\"meter_id\":\"m\","
      "\"timestamp_ms\":1777593600000,\"quantity\":-100000000000000000000000000000,\"unit\":"
      "\"token\",\"source\":\"s\",\"dimensions\":{\"k\":\"a\\\\b\\n\\u0001\x7f/\xc3\xa9\"}}\n",
      line);
}

TEST(WorkloadTest, JsonLineWritesOptionalFieldsWhenPresent) {
  Event e;
  e.event_id = "e";
  e.account_id = "a";
  e.subscription_id = "s1";
  e.product_id = "p";
  e.meter_id = "m";
  e.model_id = "mod";
  e.timestamp_ms = 5;
  e.quantity = 0;
  e.unit = "u";
  e.source = "src";
  e.has_correction_ref = false;
  std::string line;
  AppendEventJsonLine(e, &line);
  EXPECT_EQ(
      "{\"event_id\":\"e\",\"kind\":\"Usage\",\"account_id\":\"a\",\"subscription_id\":\"s1\","
      "\"product_id\":\"p\",\"meter_id\":\"m\",\"model_id\":\"mod\",\"timestamp_ms\":5,"
      "\"quantity\":0,\"unit\":\"u\",\"source\":\"src\"}\n",
      line);
}

TEST(WorkloadTest, JsonStringEscapesControlCharacters) {
  std::string out;
  AppendJsonString(std::string("\b\f\r\t\x1f\0", 6), &out);
  EXPECT_EQ("\"\\b\\f\\r\\t\\u001f\\u0000\"", out);
}

}  // namespace
}  // namespace usagedb::bench
