#include "dedupe/dedupe.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "dedupe/dedupe_format.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace usagedb {
namespace {

namespace fmt = dedupe_format;

DedupeEntry MakeEntry(const std::string& id, uint64_t seq, EventKind kind = EventKind::kUsage,
                      int64_t ingested_ms = 1'700'000'000'000, int64_t timestamp_ms = 0) {
  DedupeEntry e;
  e.event_id = id;
  e.payload_digest = Hash128(id + "/payload/" + std::to_string(seq));
  e.ingested_at_ms = ingested_ms;
  e.timestamp_ms = timestamp_ms != 0 ? timestamp_ms : ingested_ms - static_cast<int64_t>(seq % 997);
  e.kind = kind;
  e.commit_seq = seq;
  return e;
}

std::string Key(const std::string& prefix, uint64_t i) { return prefix + std::to_string(i); }

std::string RandomId(std::mt19937_64& rng) {
  static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string id = "evt_";
  for (int c = 0; c < 26; ++c) id.push_back(kBase32[rng() & 31]);
  return id;
}

void ExpectSameEntry(const DedupeEntry& want, const std::optional<DedupeEntry>& got) {
  ASSERT_TRUE(got.has_value()) << want.event_id;
  EXPECT_EQ(want.event_id, got->event_id);
  EXPECT_EQ(want.payload_digest, got->payload_digest);
  EXPECT_EQ(want.ingested_at_ms, got->ingested_at_ms);
  EXPECT_EQ(want.timestamp_ms, got->timestamp_ms);
  EXPECT_EQ(want.kind, got->kind);
  EXPECT_EQ(want.commit_seq, got->commit_seq);
}

// Every id collides: the whole run is one routing value.
uint64_t ConstantHash(std::string_view) { return 42; }
// Four routing values: long runs of equal values that block cuts must not split.
uint64_t TinyHash(std::string_view s) { return Hash64(s) << 62; }
// All hashes in the lowest 2^44 of the range: the block-index position estimate is far off.
uint64_t LowHash(std::string_view s) { return Hash64(s) >> 20; }
// All hashes in the top 2^-8 of the range.
uint64_t HighHash(std::string_view s) { return Hash64(s) | (uint64_t{0xff} << 56); }

// The db layer's part, over a map of "segment rows". Thread-safe for concurrent Resolve calls
// once filled (the map is only read).
class MapResolver : public DedupeRowResolver {
 public:
  Result<std::optional<DedupeEntry>> Resolve(const RowLocation& loc,
                                             std::string_view event_id) override {
    calls++;
    if (!fail.ok()) return fail;
    auto it = rows.find(loc);
    if (it == rows.end()) {
      return Status::NotFound("segment " + std::to_string(loc.segment_file_number) + " row " +
                              std::to_string(loc.row));
    }
    if (it->second.event_id != event_id) return std::optional<DedupeEntry>();
    return std::optional<DedupeEntry>(it->second);
  }
  Status ReadEventIds(uint64_t segment, const std::vector<uint32_t>& want,
                      std::vector<std::string>* ids) override {
    id_reads++;
    ids->clear();
    for (size_t i = 0; i < want.size(); ++i) {
      if (i > 0 && want[i] <= want[i - 1]) return Status::InvalidArgument("rows not ascending");
      auto it = rows.find(RowLocation{segment, want[i]});
      if (it == rows.end()) return Status::NotFound("no such row");
      ids->push_back(it->second.event_id);
    }
    return Status::OK();
  }

  std::map<RowLocation, DedupeEntry> rows;
  std::atomic<uint64_t> calls{0};
  int id_reads = 0;
  Status fail;
};

class DedupeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dedupe_test_XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override {
    auto names = fs_->ListDir(dir_);
    if (names.ok()) {
      for (const auto& n : *names) fs_->RemoveFile(JoinPath(dir_, n)).IgnoreError();
    }
    fs_->RemoveDir(dir_).IgnoreError();
  }

  std::string Path(uint64_t n) { return JoinPath(dir_, DedupeRunFileName(n)); }

  // Simulates a flush: stores `events` as rows of `segments` new segments (event i goes to
  // segment i % segments, at the next free row), then writes run `n` over them and opens it.
  std::shared_ptr<DedupeRun> Flush(uint64_t n, const std::vector<DedupeEntry>& events,
                                   uint64_t segments = 4, DedupeHashFn hash = &Hash64,
                                   uint32_t routing_bits = 0, DedupeRunInfo* info_out = nullptr) {
    std::vector<DedupeRunEntry> entries;
    const uint64_t first_segment = next_segment_;
    next_segment_ += segments;
    std::vector<uint32_t> next_row(segments, 0);
    for (size_t i = 0; i < events.size(); ++i) {
      const DedupeEntry& e = events[i];
      DedupeRunEntry re;
      re.hash = hash(e.event_id);
      re.location = RowLocation{first_segment + i % segments, next_row[i % segments]++};
      re.commit_seq = e.commit_seq;
      re.forever = e.kind != EventKind::kUsage;
      re.anchor_ms = std::max(e.ingested_at_ms, e.timestamp_ms);
      resolver_.rows[re.location] = e;
      entries.push_back(re);
    }
    DedupeWriteOptions options;
    options.hash = hash;
    options.routing_bits = routing_bits;
    options.format_version = write_version_;
    DedupeRunInfo info;
    Status s = WriteDedupeRun(fs_, Path(n), std::move(entries), &info, options);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(events.size(), info.key_count);
    if (info_out != nullptr) *info_out = info;
    auto run = DedupeRun::Open(fs_, Path(n), n);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    if (!run.ok()) return nullptr;
    EXPECT_EQ(info.file_size, (*run)->info().file_size);
    EXPECT_EQ(info.routing_bits, (*run)->info().routing_bits);
    EXPECT_EQ(info.format_version, (*run)->info().format_version);
    EXPECT_EQ(write_version_ == 0 ? fmt::kDedupeFormatVersion : write_version_,
              (*run)->info().format_version);
    return *run;
  }

  Result<std::optional<DedupeEntry>> Lookup(const DedupeIndex& index, const std::string& id,
                                            int64_t now_ms = 0, int64_t window_ms = 0) {
    return index.Lookup(id, now_ms, window_ms, &resolver_);
  }
  bool Has(const DedupeIndex& index, const std::string& id, int64_t now_ms = 0,
           int64_t window_ms = 0) {
    auto r = Lookup(index, id, now_ms, window_ms);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() && r->has_value();
  }

  std::string ReadRaw(uint64_t n) {
    std::string data;
    EXPECT_TRUE(fs_->ReadFileToString(Path(n), &data).ok());
    return data;
  }
  void WriteRaw(uint64_t n, const std::string& data) {
    ASSERT_TRUE(fs_->WriteFileAtomic(Path(n), data).ok());
  }
  // Footer field at byte `at` of the footer.
  static uint64_t FooterField64(const std::string& file, size_t at) {
    return DecodeFixed64(file.data() + file.size() - fmt::kTailSize + at);
  }
  // Footer offsets: version 0, routing_bits 4, key_count 8, block_count 16, segment_count 24,
  // seqs 32/40, forever 48, anchor 56, segment_table_offset 64, filter_offset 72,
  // filter_lines 80, probes 88, index_offset 92, crcs 100/104/108, footer_crc 112.
  static constexpr size_t kSegmentOffsetAt = 64, kFilterOffsetAt = 72, kIndexOffsetAt = 92;

  FileSystem* fs_ = FileSystem::Default();
  std::string dir_;
  MapResolver resolver_;
  uint64_t next_segment_ = 1000;
  uint32_t write_version_ = 0;  // DedupeWriteOptions::format_version of Flush
};

TEST_F(DedupeTest, WriteOpenLookupHitsAndMisses) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 100'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i + 1));
  auto run = Flush(7, events, 8);
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(100'000u, run->info().key_count);
  EXPECT_EQ(1u, run->info().min_commit_seq);
  EXPECT_EQ(100'000u, run->info().max_commit_seq);
  EXPECT_EQ(8u, run->info().segment_count);
  EXPECT_EQ(40u, run->info().routing_bits);  // bit_width(99'999) = 17, + 10, at least 40
  EXPECT_EQ((std::vector<uint64_t>{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007}),
            run->segment_file_numbers());
  EXPECT_EQ(7u, run->file_number());

  DedupeIndex index(8 << 20);
  index.SetRuns({run});
  for (const auto& e : events) {
    auto got = Lookup(index, e.event_id);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectSameEntry(e, *got);
  }
  const uint64_t hit_calls = resolver_.calls.load();
  EXPECT_GE(hit_calls, events.size());
  EXPECT_LE(hit_calls, events.size() + 200);  // false routing matches are rare (~2^-10)
  for (uint64_t i = 0; i < 100'000; ++i) EXPECT_FALSE(Has(index, Key("other_", i)));
  // Misses reach the resolver only through a filter false positive AND a routing collision.
  EXPECT_LE(resolver_.calls.load() - hit_calls, 10u);
  // A prefix or extension of a stored id is a different id.
  EXPECT_TRUE(Has(index, "evt_1234"));
  EXPECT_TRUE(Has(index, "evt_123"));
  EXPECT_FALSE(Has(index, "evt_12345678"));
}

TEST_F(DedupeTest, FilterFalsePositiveRateIsLow) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 100'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i + 1));
  auto run = Flush(1, events);
  ASSERT_NE(nullptr, run);
  int positives = 0;
  for (uint64_t i = 0; i < 100'000; ++i) positives += run->MayContain(Hash64(Key("absent_", i)));
  // 13 bits/key, 8 probes in a 512-bit line: ~0.27% expected.
  EXPECT_LT(positives, 600) << positives;
}

TEST_F(DedupeTest, CandidatesAndReadAllMatchTheWrittenLocations) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 20'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  auto run = Flush(1, events, 16);
  ASSERT_NE(nullptr, run);
  std::map<std::string, RowLocation> where;
  for (const auto& [loc, e] : resolver_.rows) where[e.event_id] = loc;
  DedupeBlockCache cache(1 << 20);
  for (const auto& e : events) {
    auto c = run->Candidates(Hash64(e.event_id), &cache);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_FALSE(c->empty());
    EXPECT_NE(c->end(), std::find(c->begin(), c->end(), where[e.event_id])) << e.event_id;
  }
  auto none = run->Candidates(Hash64("absent"), nullptr);
  ASSERT_TRUE(none.ok());
  std::vector<DedupeRunEntry> all;
  ASSERT_TRUE(run->ReadAll(&all).ok());
  ASSERT_EQ(events.size(), all.size());
  std::set<RowLocation> seen;
  const uint32_t shift = 64 - run->info().routing_bits;
  for (size_t i = 0; i < all.size(); ++i) {
    const DedupeRunEntry& e = all[i];
    ASSERT_TRUE(resolver_.rows.count(e.location));
    EXPECT_EQ(Hash64(resolver_.rows[e.location].event_id) >> shift, e.hash >> shift);
    EXPECT_EQ(0u, e.hash & ((uint64_t{1} << shift) - 1));  // only routing bits are stored
    EXPECT_TRUE(seen.insert(e.location).second);
    if (i > 0) {
      EXPECT_LE(all[i - 1].hash, e.hash);
    }
  }
}

TEST_F(DedupeTest, ExtremeValuesRoundTrip) {
  std::vector<DedupeRunEntry> entries(3);
  entries[0].hash = 0;
  entries[0].location = RowLocation{0, 0};
  entries[0].commit_seq = 0;
  entries[0].anchor_ms = INT64_MIN;
  entries[1].hash = UINT64_MAX;
  entries[1].location = RowLocation{UINT64_MAX, UINT32_MAX};
  entries[1].commit_seq = UINT64_MAX;
  entries[1].forever = true;
  entries[1].anchor_ms = INT64_MAX;  // forever entries do not count in the Usage anchor
  entries[2].hash = UINT64_MAX;      // the same hash at another location
  entries[2].location = RowLocation{UINT64_MAX, 0};
  entries[2].commit_seq = 5;
  entries[2].anchor_ms = 77;
  for (uint32_t bits : {1u, 17u, 64u}) {
    SCOPED_TRACE(bits);
    DedupeWriteOptions options;
    options.routing_bits = bits;
    DedupeRunInfo info;
    ASSERT_TRUE(WriteDedupeRun(fs_, Path(bits), entries, &info, options).ok());
    auto run = DedupeRun::Open(fs_, Path(bits), bits);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    const DedupeRunInfo& ri = (*run)->info();
    EXPECT_EQ(bits, ri.routing_bits);
    EXPECT_EQ(0u, ri.min_commit_seq);
    EXPECT_EQ(UINT64_MAX, ri.max_commit_seq);
    EXPECT_EQ(1u, ri.forever_key_count);
    EXPECT_EQ(77, ri.max_usage_anchor_ms);
    EXPECT_EQ(2u, ri.segment_count);
    auto top = (*run)->Candidates(UINT64_MAX, nullptr);
    ASSERT_TRUE(top.ok()) << top.status().ToString();
    std::vector<RowLocation> want{{UINT64_MAX, 0}, {UINT64_MAX, UINT32_MAX}};
    EXPECT_EQ(want, *top);
    auto bottom = (*run)->Candidates(0, nullptr);
    ASSERT_TRUE(bottom.ok());
    EXPECT_EQ((std::vector<RowLocation>{{0, 0}}), *bottom);
    std::vector<DedupeRunEntry> all;
    ASSERT_TRUE((*run)->ReadAll(&all).ok());
    EXPECT_EQ(3u, all.size());
  }
}

TEST_F(DedupeTest, EmptyRunHasNoKeys) {
  DedupeRunInfo info;
  auto run = Flush(1, {}, 4, &Hash64, 0, &info);
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(0u, run->info().key_count);
  EXPECT_EQ(0u, run->info().segment_count);
  EXPECT_EQ(INT64_MIN, run->info().max_usage_anchor_ms);
  auto c = run->Candidates(Hash64("evt_x"), nullptr);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->empty());
  std::vector<DedupeRunEntry> all;
  EXPECT_TRUE(run->ReadAll(&all).ok());
  EXPECT_TRUE(all.empty());
  DedupeIndex index(1 << 20);
  index.SetRuns({run});
  EXPECT_FALSE(Has(index, "evt_x"));
}

TEST_F(DedupeTest, RepeatedLocationOrBadRoutingBitsIsInvalidArgumentAndLeavesNoFile) {
  DedupeRunEntry a{Hash64("a"), RowLocation{5, 1}, 1, false, 0};
  DedupeRunEntry b{Hash64("b"), RowLocation{5, 1}, 2, false, 0};
  DedupeRunEntry same_hash_a{Hash64("a"), RowLocation{5, 1}, 2, false, 0};
  Status s = WriteDedupeRun(fs_, Path(1), {a, b}, nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = WriteDedupeRun(fs_, Path(2), {a, same_hash_a}, nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  DedupeWriteOptions options;
  options.routing_bits = 65;
  s = WriteDedupeRun(fs_, Path(3), {a}, nullptr, options);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  auto names = fs_->ListDir(dir_);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty()) << (*names)[0];
}

TEST_F(DedupeTest, HashCollisionStillComparesFullId) {
  for (DedupeHashFn hash : {&ConstantHash, &TinyHash}) {
    SCOPED_TRACE(hash == &ConstantHash ? "constant" : "tiny");
    constexpr uint64_t kKeys = 500;
    std::vector<DedupeEntry> events;
    for (uint64_t i = 0; i < kKeys; ++i) {
      events.push_back(MakeEntry(Key(hash == &ConstantHash ? "c-" : "t-", i), i + 1));
    }
    auto run = Flush(hash == &ConstantHash ? 1 : 2, events, 3, hash);
    ASSERT_NE(nullptr, run);
    DedupeIndex index(1 << 20, hash);
    index.SetRuns({run});
    for (const auto& e : events) {
      auto got = Lookup(index, e.event_id);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ExpectSameEntry(e, *got);
    }
    for (uint64_t i = kKeys; i < kKeys + 50; ++i) {
      const std::string id = Key(hash == &ConstantHash ? "c-" : "t-", i);
      ASSERT_TRUE(run->MayContain(hash(id)));  // the filter cannot tell them apart
      const uint64_t before = resolver_.calls.load();
      EXPECT_FALSE(Has(index, id)) << id;
      // Every colliding entry was read and compared in full; none matched.
      auto c = run->Candidates(hash(id), nullptr);
      ASSERT_TRUE(c.ok());
      EXPECT_EQ(c->size(), resolver_.calls.load() - before);
      if (hash == &ConstantHash) {
        EXPECT_EQ(kKeys, c->size());
      }
    }
    std::vector<DedupeRunEntry> all;
    ASSERT_TRUE(run->ReadAll(&all).ok());
    EXPECT_EQ(kKeys, all.size());
  }
}

TEST_F(DedupeTest, FewRoutingBitsCostResolverCallsNotAnswers) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 20'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  auto run = Flush(1, events, 4, &Hash64, /*routing_bits=*/12);
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(12u, run->info().routing_bits);
  DedupeIndex index(1 << 20);
  index.SetRuns({run});
  for (const auto& e : events) ExpectSameEntry(e, *Lookup(index, e.event_id));
  // 20K keys in 4096 routing values: ~5 entries share each value, so hits cost extra calls.
  EXPECT_GT(resolver_.calls.load(), 3 * events.size());
}

TEST_F(DedupeTest, SkewedHashesStillFindTheirBlock) {
  uint64_t n = 10;
  for (DedupeHashFn hash : {&LowHash, &HighHash}) {
    std::vector<DedupeEntry> events;
    for (uint64_t i = 0; i < 20'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
    for (uint32_t bits : {0u, 64u}) {
      auto run = Flush(n++, events, 4, hash, bits);
      ASSERT_NE(nullptr, run);
      DedupeIndex index(1 << 20, hash);
      index.SetRuns({run});
      for (const auto& e : events) {
        auto got = Lookup(index, e.event_id);
        ASSERT_TRUE(got.ok());
        ExpectSameEntry(e, *got);
      }
      EXPECT_FALSE(Has(index, "evt_x"));
    }
  }
}

TEST_F(DedupeTest, NewestCommitSeqWinsAcrossRuns) {
  auto older = Flush(3, {MakeEntry("x", 5), MakeEntry("only-old", 4)});
  auto newer = Flush(4, {MakeEntry("x", 9), MakeEntry("only-new", 8)});
  ASSERT_NE(nullptr, older);
  ASSERT_NE(nullptr, newer);
  for (bool reversed : {false, true}) {
    DedupeIndex index(1 << 20);
    index.SetRuns(reversed ? std::vector{newer, older} : std::vector{older, newer});
    ExpectSameEntry(MakeEntry("x", 9), *Lookup(index, "x"));
    ExpectSameEntry(MakeEntry("only-old", 4), *Lookup(index, "only-old"));
    ExpectSameEntry(MakeEntry("only-new", 8), *Lookup(index, "only-new"));
    EXPECT_EQ(4u, index.key_count());
    ASSERT_EQ(2u, index.runs().size());
    EXPECT_EQ(4u, index.runs()[0]->file_number());
  }
  // One run holding the id twice (a merge of the two): the higher commit_seq still wins.
  DedupeRunInfo info;
  ASSERT_TRUE(MergeDedupeRuns(fs_, {older, newer}, Path(5), &resolver_, &info).ok());
  auto merged = DedupeRun::Open(fs_, Path(5), 5);
  ASSERT_TRUE(merged.ok());
  DedupeIndex index(1 << 20);
  index.SetRuns({*merged});
  ExpectSameEntry(MakeEntry("x", 9), *Lookup(index, "x"));
}

TEST_F(DedupeTest, WindowForgetsUsageButNotCorrections) {
  constexpr int64_t kWindow = 1'000;
  auto run = Flush(1, {
                          MakeEntry("usage", 1, EventKind::kUsage, 1'000, 500),
                          MakeEntry("future-ts", 2, EventKind::kUsage, 1'000, 5'000),
                          MakeEntry("corr", 3, EventKind::kCorrection, 1'000, 500),
                          MakeEntry("retr", 4, EventKind::kRetraction, 1'000, 500),
                      });
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(2u, run->info().forever_key_count);
  EXPECT_EQ(5'000, run->info().max_usage_anchor_ms);
  DedupeIndex index(1 << 20);
  index.SetRuns({run});
  EXPECT_TRUE(Has(index, "usage", 2'000, kWindow));      // anchor + window == now: remembered
  EXPECT_FALSE(Has(index, "usage", 2'001, kWindow));     // forgotten
  EXPECT_TRUE(Has(index, "usage", 1'000'000, 0));        // window 0 = forever
  EXPECT_TRUE(Has(index, "future-ts", 6'000, kWindow));  // anchored on the later timestamp
  EXPECT_FALSE(Has(index, "future-ts", 6'001, kWindow));
  EXPECT_TRUE(Has(index, "corr", INT64_MAX, kWindow));
  EXPECT_TRUE(Has(index, "retr", INT64_MAX, kWindow));
  // anchor (1000) + window near INT64_MAX: no overflow in the comparison.
  EXPECT_FALSE(Has(index, "usage", INT64_MAX, INT64_MAX - 1'001));
  EXPECT_TRUE(Has(index, "usage", INT64_MAX, INT64_MAX - 1'000));
  EXPECT_TRUE(Has(index, "usage", INT64_MAX, INT64_MAX));

  // A forgotten key accepted again lives in a newer run; the old entry never shadows it, even
  // when the old run sorts first.
  auto again = Flush(2, {MakeEntry("usage", 10, EventKind::kUsage, 50'000, 50'000)});
  ASSERT_NE(nullptr, again);
  index.SetRuns({run, again});
  auto got = Lookup(index, "usage", 50'500, kWindow);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(10u, (*got)->commit_seq);
}

TEST_F(DedupeTest, ForgottenRunIsSkippedWithoutReadingIt) {
  constexpr int64_t kWindow = 1'000;
  auto run = Flush(1, {MakeEntry("a", 1, EventKind::kUsage, 1'000, 900),
                       MakeEntry("b", 2, EventKind::kUsage, 1'500, 1'400)});
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(1'500, run->info().max_usage_anchor_ms);
  EXPECT_FALSE(DedupeRunIsForgotten(run->info(), 2'500, kWindow));
  EXPECT_TRUE(DedupeRunIsForgotten(run->info(), 2'501, kWindow));
  EXPECT_FALSE(DedupeRunIsForgotten(run->info(), INT64_MAX, 0));
  EXPECT_FALSE(DedupeRunIsForgotten(run->info(), INT64_MAX, INT64_MAX));  // no overflow
  DedupeIndex index(1 << 20);
  index.SetRuns({run});
  EXPECT_TRUE(Has(index, "b", 2'500, kWindow));
  const uint64_t before = resolver_.calls.load();
  EXPECT_FALSE(Has(index, "b", 2'501, kWindow));
  EXPECT_EQ(before, resolver_.calls.load());  // the footer said so: no resolver call
  // A Correction in the run keeps it alive.
  auto forever = Flush(2, {MakeEntry("c", 3, EventKind::kCorrection, 1'000, 900)});
  ASSERT_NE(nullptr, forever);
  EXPECT_FALSE(DedupeRunIsForgotten(forever->info(), INT64_MAX, kWindow));
}

TEST_F(DedupeTest, ResolverErrorsPropagate) {
  auto run = Flush(1, {MakeEntry("a", 1), MakeEntry("b", 2)});
  ASSERT_NE(nullptr, run);
  DedupeIndex index(1 << 20);
  index.SetRuns({run});
  resolver_.fail = Status::Corruption("segment 1000: bad block");
  auto got = Lookup(index, "a");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_NE(std::string::npos, got.status().message().find("segment 1000"));
  // A miss that never reaches the resolver is not affected.
  EXPECT_FALSE(Has(index, "zzz"));
  // A row the resolver cannot find (segment gone) is NotFound, not a silent miss.
  resolver_.fail = Status::OK();
  resolver_.rows.clear();
  got = Lookup(index, "a");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.status().IsNotFound()) << got.status().ToString();
}

TEST_F(DedupeTest, CacheIsBounded) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 100'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  auto run = Flush(1, events);
  ASSERT_NE(nullptr, run);
  for (size_t capacity : {size_t{1} << 8, size_t{64} << 10, size_t{256} << 10}) {
    SCOPED_TRACE(capacity);
    DedupeIndex index(capacity);
    index.SetRuns({run});
    EXPECT_EQ(capacity, index.cache_capacity_bytes());
    size_t max_used = 0;
    std::mt19937_64 rng(capacity);
    for (int i = 0; i < 6'000; ++i) {
      const std::string id = Key("evt_", rng() % 100'000);
      ASSERT_TRUE(Has(index, id)) << id;
      const size_t used = index.cache()->used_bytes();
      ASSERT_LE(used, capacity);
      max_used = std::max(max_used, used);
    }
    if (capacity >= (64u << 10)) {
      EXPECT_GT(max_used, capacity / 2);  // the cache is used, and nearly filled
    } else {
      EXPECT_EQ(0u, max_used);  // no block fits: nothing cached, lookups still answer
    }
  }
}

// A lookup that passes the filter of a run whose block does not hold its routing value (a
// false positive: a random block, read once) scans the block without caching it; a block
// that answers a lookup is cached, so a retry of the same id does not read the file again.
TEST_F(DedupeTest, OnlyBlocksThatAnswerALookupAreCached) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 100'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  auto run = Flush(1, events);
  ASSERT_NE(nullptr, run);
  DedupeIndex index(1 << 20);
  index.SetRuns({run});
  int false_positives = 0;
  for (uint64_t i = 0; i < 50'000; ++i) {
    const std::string id = Key("absent_", i);
    false_positives += run->MayContain(Hash64(id));
    ASSERT_FALSE(Has(index, id)) << id;
  }
  EXPECT_GT(false_positives, 20);  // ~0.27% of 50,000 reached a block
  EXPECT_EQ(0u, index.cache()->used_bytes());
  ASSERT_TRUE(Has(index, Key("evt_", 7)));
  const size_t one_block = index.cache()->used_bytes();
  EXPECT_GT(one_block, 0u);
  // The retry is answered from the cache: the same bytes, and no read of the (now damaged)
  // file.
  std::string damaged = ReadRaw(1);
  for (size_t i = 0; i + fmt::kTailSize < damaged.size(); ++i) damaged[i] = '\xff';
  WriteRaw(1, damaged);
  ASSERT_TRUE(Has(index, Key("evt_", 7)));
  EXPECT_EQ(one_block, index.cache()->used_bytes());
}

TEST_F(DedupeTest, MemoryPerKeyWithinBound) {
  std::vector<DedupeRunEntry> entries;
  entries.reserve(1'000'000);
  std::mt19937_64 rng(1);
  for (uint32_t i = 0; i < 1'000'000; ++i) {
    entries.push_back(DedupeRunEntry{rng(), RowLocation{i % 200, i / 200}, i, false, 0});
  }
  ASSERT_TRUE(WriteDedupeRun(fs_, Path(1), std::move(entries), nullptr).ok());
  auto run = DedupeRun::Open(fs_, Path(1), 1);
  ASSERT_TRUE(run.ok());
  DedupeIndex index(64 << 20);
  index.SetRuns({*run});
  ASSERT_EQ(1'000'000u, index.key_count());
  const double per_key =
      static_cast<double>(index.filter_memory_bytes()) / static_cast<double>(index.key_count());
  EXPECT_LE(per_key, 2.0) << per_key;
  // The filter alone is 13 bits per key; the block index fits in the rest.
  EXPECT_GE(per_key, 13.0 / 8.0) << per_key;
  EXPECT_EQ((*run)->memory_bytes(), index.filter_memory_bytes());
}

// The size target: a flush of 300K random ids over 64 segments of ~4.7K rows.
TEST_F(DedupeTest, DiskBytesPerKey) {
  constexpr uint32_t kKeys = 300'000, kSegments = 64;
  std::vector<DedupeRunEntry> entries;
  entries.reserve(kKeys);
  std::mt19937_64 rng(7);
  for (uint32_t i = 0; i < kKeys; ++i) {
    entries.push_back(DedupeRunEntry{Hash64(RandomId(rng)),
                                     RowLocation{500 + i % kSegments, i / kSegments}, i / 100,
                                     i % 1000 == 0, 0});
  }
  // Version 3 stores 40 routing bits (11 more than version 2's bit_width + 10 = 29): Rice
  // deltas grow by 11 bits, ~1.4 bytes/key, the price of merges that read no segments.
  for (uint32_t version : {3u, 2u}) {
    SCOPED_TRACE(version);
    DedupeWriteOptions options;
    options.format_version = version;
    DedupeRunInfo info;
    ASSERT_TRUE(WriteDedupeRun(fs_, Path(version), entries, &info, options).ok());
    const double per_key = static_cast<double>(info.file_size) / kKeys;
    EXPECT_LE(per_key, version == 3 ? 7.2 : 6.0) << per_key;
    EXPECT_EQ(kSegments, info.segment_count);
    EXPECT_EQ(version == 3 ? 40u : 29u, info.routing_bits);
    EXPECT_EQ(version, info.format_version);
    std::printf("disk, version %u: %.3f bytes/key (%llu bytes)\n", version, per_key,
                static_cast<unsigned long long>(info.file_size));
  }
}

TEST_F(DedupeTest, BlockChecksumMismatchIsCorruption) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 1'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  ASSERT_NE(nullptr, Flush(1, events));
  const std::string good = ReadRaw(1);
  const uint64_t segment_offset = FooterField64(good, kSegmentOffsetAt);
  const uint64_t filter_offset = FooterField64(good, kFilterOffsetAt);
  const uint64_t index_offset = FooterField64(good, kIndexOffsetAt);
  ASSERT_LT(segment_offset, filter_offset);
  ASSERT_LT(filter_offset, index_offset);
  ASSERT_LT(index_offset, good.size());

  // A flipped bit inside block 0: the run opens (blocks are checked when read), and every
  // read of that block is Corruption naming the file.
  std::string bad = good;
  bad[10] ^= 0x01;
  WriteRaw(1, bad);
  auto run = DedupeRun::Open(fs_, Path(1), 1);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  std::vector<DedupeRunEntry> all;
  Status s = (*run)->ReadAll(&all);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find(Path(1))) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("checksum")) << s.ToString();
  int corrupt = 0;
  DedupeIndex index(1 << 20);
  index.SetRuns({*run});
  for (const auto& e : events) {
    auto got = Lookup(index, e.event_id);
    if (!got.ok()) {
      EXPECT_TRUE(got.status().IsCorruption());
      EXPECT_NE(std::string::npos, got.status().message().find(Path(1)));
      ++corrupt;
    }
  }
  EXPECT_GT(corrupt, 0);

  // Damage in the segment table, the filter, the index or the footer fails Open.
  for (uint64_t at : {segment_offset + 1, filter_offset + 3, index_offset + 1,
                      static_cast<uint64_t>(good.size() - fmt::kTailSize + 9),
                      static_cast<uint64_t>(good.size() - 2)}) {
    SCOPED_TRACE(at);
    bad = good;
    bad[at] ^= 0x40;
    WriteRaw(1, bad);
    auto r = DedupeRun::Open(fs_, Path(1), 1);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(std::string::npos, r.status().message().find(Path(1)));
  }
}

// A block whose checksum is right but whose contents break the format (a writer bug, or
// damage that happens to keep the crc): still Corruption, never a crash or a wrong answer.
TEST_F(DedupeTest, BlockWithValidChecksumButBadContentsIsCorruption) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 300; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  // 19 routing bits (bit_width(299) + 10, version 2's automatic choice): block 0 then ends in
  // padding bits, which "stray padding" needs.
  ASSERT_NE(nullptr, Flush(1, events, 2, &Hash64, 19));
  const std::string good = ReadRaw(1);
  const uint64_t index_offset = FooterField64(good, kIndexOffsetAt);
  const uint32_t block0_size = DecodeFixed32(good.data() + index_offset + 8);
  const size_t contents = block0_size - fmt::kBlockCrcSize;
  // Header: count varint (2 bytes: 128 entries), rice_k, seg_bits, row_bits; then the bits.
  ASSERT_EQ(0x80, static_cast<uint8_t>(good[0]));
  // Block 0 holds the 128 smallest routing values.
  std::vector<uint64_t> routings;
  for (const DedupeEntry& e : events) routings.push_back(Hash64(e.event_id) >> (64 - 19));
  std::sort(routings.begin(), routings.end());
  const uint64_t last_routing_of_block0 = routings[127];
  ASSERT_LT(last_routing_of_block0, routings[128]);
  std::map<std::string, RowLocation> where;
  for (const auto& [loc, e] : resolver_.rows) where[e.event_id] = loc;
  ASSERT_EQ(0x01, good[1]);
  const std::vector<std::pair<const char*, std::function<void(std::string*)>>> cases = {
      {"count zero", [](std::string* b) { (*b)[0] = 0; }},
      {"count too large", [](std::string* b) { (*b)[1] = 0x7f; }},
      {"rice_k too large", [](std::string* b) { (*b)[2] = 64; }},
      {"seg_bits too large", [](std::string* b) { (*b)[3] = 33; }},
      {"wider locations", [](std::string* b) { (*b)[3] = 8; }},
      {"narrower rows", [](std::string* b) { (*b)[4] = static_cast<char>((*b)[4] - 1); }},
      {"garbage deltas",
       [&](std::string* b) {
         for (size_t i = contents - 24; i < contents - 16; ++i) (*b)[i] = static_cast<char>(0xff);
       }},
      {"stray padding", [&](std::string* b) { (*b)[contents - 1] = static_cast<char>(0xff); }},
  };
  for (const auto& [what, damage] : cases) {
    SCOPED_TRACE(what);
    std::string bad = good;
    damage(&bad);
    EncodeFixed32(bad.data() + contents, crc32c::Mask(crc32c::Value(bad.data(), contents)));
    WriteRaw(1, bad);
    auto run = DedupeRun::Open(fs_, Path(1), 1);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    std::vector<DedupeRunEntry> all;
    Status s = (*run)->ReadAll(&all);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(std::string::npos, s.message().find(Path(1))) << s.ToString();
    EXPECT_NE(std::string::npos, s.message().find("block 0")) << s.ToString();
    // Lookups (uncached): a location is returned only from a block verified entry by entry,
    // so a lookup of a key of the damaged block 0 either fails with Corruption or finds
    // nothing (its scan stopped early), never a location; keys of block 1 are unaffected.
    int corrupt = 0;
    for (const DedupeEntry& e : events) {
      const uint64_t h = Hash64(e.event_id);
      auto c = (*run)->Candidates(h, nullptr);
      if ((h >> (64 - 19)) <= last_routing_of_block0) {
        if (!c.ok()) {
          EXPECT_TRUE(c.status().IsCorruption()) << c.status().ToString();
          ++corrupt;
        } else {
          EXPECT_TRUE(c->empty()) << e.event_id;
        }
      } else {
        ASSERT_TRUE(c.ok()) << c.status().ToString();
        ASSERT_EQ(1u, c->size()) << e.event_id;
        EXPECT_EQ(where[e.event_id], c->front());
      }
    }
    EXPECT_GT(corrupt, 0);
  }
}

TEST_F(DedupeTest, TruncatedRunIsCorruption) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < 2'000; ++i) events.push_back(MakeEntry(Key("evt_", i), i));
  ASSERT_NE(nullptr, Flush(1, events));
  const std::string good = ReadRaw(1);
  for (size_t len : {size_t{0}, size_t{7}, fmt::kTailSize - 1, fmt::kTailSize, good.size() / 2,
                     good.size() - fmt::kTailSize, good.size() - 8, good.size() - 1}) {
    SCOPED_TRACE(len);
    WriteRaw(1, good.substr(0, len));
    auto r = DedupeRun::Open(fs_, Path(1), 1);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(std::string::npos, r.status().message().find(Path(1)));
  }
  // Also a file cut after Open: the block read comes back short.
  WriteRaw(1, good);
  auto run = DedupeRun::Open(fs_, Path(1), 1);
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(fs_->Truncate(Path(1), 100).ok());
  std::vector<DedupeRunEntry> all;
  Status s = (*run)->ReadAll(&all);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find(Path(1)));
}

TEST_F(DedupeTest, OtherFormatVersionIsNotSupported) {
  ASSERT_NE(nullptr, Flush(1, {MakeEntry("a", 1)}));
  const std::string good = ReadRaw(1);
  // A version-1 file (old magic).
  std::string old = good;
  old.replace(old.size() - fmt::kMagicSize, fmt::kMagicSize, fmt::kMagicV1);
  WriteRaw(1, old);
  auto r = DedupeRun::Open(fs_, Path(1), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE((r.status().code() == StatusCode::kNotSupported)) << r.status().ToString();
  EXPECT_NE(std::string::npos, r.status().message().find(Path(1)));
  // A future version with a valid footer checksum.
  std::string next = good;
  char* footer = next.data() + next.size() - fmt::kTailSize;
  EncodeFixed32(footer, fmt::kDedupeFormatVersion + 1);
  EncodeFixed32(footer + fmt::kFooterSize - 4,
                crc32c::Mask(crc32c::Value(footer, fmt::kFooterSize - 4)));
  WriteRaw(1, next);
  r = DedupeRun::Open(fs_, Path(1), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE((r.status().code() == StatusCode::kNotSupported)) << r.status().ToString();
}

TEST_F(DedupeTest, MissingRunIsNotFound) {
  auto r = DedupeRun::Open(fs_, Path(99), 99);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
}

TEST_F(DedupeTest, MergeKeepsEveryKey) {
  std::vector<std::shared_ptr<DedupeRun>> inputs;
  std::vector<DedupeEntry> everything;
  for (uint64_t r = 0; r < 3; ++r) {
    std::vector<DedupeEntry> events;
    for (uint64_t i = 0; i < 3'000 + 1'000 * r; ++i) {
      events.push_back(MakeEntry(Key("evt_" + std::to_string(r) + "_", i), r * 10'000 + i,
                                 i % 100 == 0 ? EventKind::kCorrection : EventKind::kUsage,
                                 1'000 + static_cast<int64_t>(i), 500));
    }
    everything.insert(everything.end(), events.begin(), events.end());
    // Different routing bits per input: the output keeps the smallest.
    inputs.push_back(Flush(r + 1, events, 5 + r, &Hash64, r == 1 ? 20 : 0));
    ASSERT_NE(nullptr, inputs.back());
  }
  DedupeRunInfo info;
  // An input listed twice contributes its entries once.
  Status s = MergeDedupeRuns(fs_, {inputs[0], inputs[1], inputs[2], inputs[0]}, Path(10),
                             &resolver_, &info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(everything.size(), info.key_count);
  EXPECT_EQ(0u, info.min_commit_seq);
  EXPECT_EQ(24'999u, info.max_commit_seq);
  EXPECT_EQ(20u, info.routing_bits);
  EXPECT_EQ(5u + 6 + 7, info.segment_count);
  EXPECT_EQ(inputs[0]->info().forever_key_count * 2 + inputs[1]->info().forever_key_count +
                inputs[2]->info().forever_key_count,
            info.forever_key_count);  // summed over inputs: an upper bound
  EXPECT_EQ(1'000 + 4'999, info.max_usage_anchor_ms);
  EXPECT_EQ(0, resolver_.id_reads);  // version 3: the filter comes from the routing values
  EXPECT_EQ(3u, info.format_version);
  auto merged = DedupeRun::Open(fs_, Path(10), 10);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  std::vector<uint64_t> want_segments;
  for (const auto& in : inputs) {
    want_segments.insert(want_segments.end(), in->segment_file_numbers().begin(),
                         in->segment_file_numbers().end());
  }
  EXPECT_EQ(want_segments, (*merged)->segment_file_numbers());
  DedupeIndex index(1 << 20);
  index.SetRuns({*merged});
  for (const auto& e : everything) {
    auto got = Lookup(index, e.event_id);
    ASSERT_TRUE(got.ok());
    ExpectSameEntry(e, *got);
  }
  EXPECT_FALSE(Has(index, "evt_9_1"));
  std::vector<DedupeRunEntry> all;
  ASSERT_TRUE((*merged)->ReadAll(&all).ok());
  EXPECT_EQ(everything.size(), all.size());
  EXPECT_FALSE(fs_->FileExists(Path(10) + ".tmp"));

  // Merging nothing gives an empty run; a merge output can be merged again.
  ASSERT_TRUE(MergeDedupeRuns(fs_, {}, Path(11), nullptr, &info).ok());
  EXPECT_EQ(0u, info.key_count);
  ASSERT_TRUE(MergeDedupeRuns(fs_, {*merged, inputs[2]}, Path(12), &resolver_, &info).ok());
  EXPECT_EQ(everything.size(), info.key_count);
}

// Up to 8 inputs are merged by a linear minimum, more by a heap: ten runs merged at once (heap)
// and in two rounds of five and two (linear) give the same file, byte for byte, holding every
// key once (one entry is in two inputs).
TEST_F(DedupeTest, MergeByHeapAndByLinearMinimumWriteTheSameFile) {
  std::vector<std::shared_ptr<DedupeRun>> inputs;
  std::vector<DedupeEntry> everything;
  std::mt19937_64 rng(7);
  for (uint64_t r = 0; r < 10; ++r) {
    std::vector<DedupeEntry> events;
    for (uint64_t i = 0; i < 500 + rng() % 700; ++i) {
      events.push_back(MakeEntry(Key("m" + std::to_string(r) + "_", i), r * 10'000 + i));
    }
    everything.insert(everything.end(), events.begin(), events.end());
    inputs.push_back(Flush(r + 1, events, 1 + r % 3));
    ASSERT_NE(nullptr, inputs.back());
  }
  inputs.push_back(inputs[3]);  // listed twice: its entries are written once
  DedupeRunInfo all_info, a_info, b_info, two_info;
  ASSERT_TRUE(MergeDedupeRuns(fs_, inputs, Path(20), nullptr, &all_info).ok());
  const std::vector<std::shared_ptr<DedupeRun>> first(inputs.begin(), inputs.begin() + 5);
  const std::vector<std::shared_ptr<DedupeRun>> second(inputs.begin() + 5, inputs.end());
  ASSERT_TRUE(MergeDedupeRuns(fs_, first, Path(21), nullptr, &a_info).ok());
  ASSERT_TRUE(MergeDedupeRuns(fs_, second, Path(22), nullptr, &b_info).ok());
  auto a = DedupeRun::Open(fs_, Path(21), 21);
  auto b = DedupeRun::Open(fs_, Path(22), 22);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(MergeDedupeRuns(fs_, {*a, *b}, Path(23), nullptr, &two_info).ok());
  EXPECT_EQ(everything.size(), all_info.key_count);
  EXPECT_EQ(everything.size(), two_info.key_count);
  // The forever counts are summed over inputs (an upper bound): the repeated input counts
  // twice either way, so the footers agree too.
  EXPECT_EQ(ReadRaw(20), ReadRaw(23));
  auto merged = DedupeRun::Open(fs_, Path(20), 20);
  ASSERT_TRUE(merged.ok());
  std::vector<DedupeRunEntry> all;
  ASSERT_TRUE((*merged)->ReadAll(&all).ok());
  ASSERT_EQ(everything.size(), all.size());
  for (size_t i = 1; i < all.size(); ++i) {
    ASSERT_TRUE(all[i - 1].hash < all[i].hash ||
                (all[i - 1].hash == all[i].hash && all[i - 1].location < all[i].location))
        << i;
  }
}

TEST_F(DedupeTest, MergeOfVersion2NeedsAResolverThatReadsIds) {
  write_version_ = 2;
  auto run = Flush(1, {MakeEntry("a", 1), MakeEntry("b", 2)});
  ASSERT_NE(nullptr, run);
  DedupeRunInfo info;
  Status s = MergeDedupeRuns(fs_, {run}, Path(2), nullptr, &info);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  class LookupOnly : public DedupeRowResolver {
   public:
    Result<std::optional<DedupeEntry>> Resolve(const RowLocation&, std::string_view) override {
      return std::optional<DedupeEntry>();
    }
  } lookup_only;
  s = MergeDedupeRuns(fs_, {run}, Path(3), &lookup_only, &info);
  EXPECT_TRUE((s.code() == StatusCode::kNotSupported)) << s.ToString();
  // Segments that do not hold the ids the run routes to: Corruption, no output.
  for (auto& [loc, e] : resolver_.rows) e.event_id += "-changed";
  s = MergeDedupeRuns(fs_, {run}, Path(4), &resolver_, &info);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  for (uint64_t n : {2, 3, 4}) {
    EXPECT_FALSE(fs_->FileExists(Path(n)));
    EXPECT_FALSE(fs_->FileExists(Path(n) + ".tmp"));
  }
  // A version-3 input needs no resolver.
  write_version_ = 0;
  auto v3 = Flush(5, {MakeEntry("c", 3)});
  ASSERT_NE(nullptr, v3);
  s = MergeDedupeRuns(fs_, {v3}, Path(6), nullptr, &info);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(3u, info.format_version);
}

// Events r * 10'000 + i for i < count, with some corrections.
std::vector<DedupeEntry> MergeEvents(uint64_t r, uint64_t count) {
  std::vector<DedupeEntry> events;
  for (uint64_t i = 0; i < count; ++i) {
    events.push_back(MakeEntry(Key("evt_" + std::to_string(r) + "_", i), r * 10'000 + i,
                               i % 97 == 0 ? EventKind::kRetraction : EventKind::kUsage,
                               2'000 + static_cast<int64_t>(i), 700));
  }
  return events;
}

// Issue #3: a merge of version-3 runs reads no segment (the filter is a function of the
// stored routing values), writes exactly the file a flush of all their events would have
// written, and answers every lookup as the version-2 merge, which hashes every id through the
// resolver, does.
TEST_F(DedupeTest, Version3MergeReadsNoSegmentsAndMatchesTheResolverPath) {
  std::vector<std::vector<DedupeEntry>> batches;
  for (uint64_t r = 0; r < 3; ++r) batches.push_back(MergeEvents(r, 2'000 + 1'500 * r));
  const uint64_t v3_first_segment = next_segment_;
  std::vector<std::shared_ptr<DedupeRun>> v3_inputs, v2_inputs;
  for (uint64_t r = 0; r < 3; ++r) {
    v3_inputs.push_back(Flush(r + 1, batches[r], 3 + r));
    ASSERT_NE(nullptr, v3_inputs.back());
  }
  const uint64_t v3_end_segment = next_segment_;
  write_version_ = 2;
  for (uint64_t r = 0; r < 3; ++r) {
    v2_inputs.push_back(Flush(r + 4, batches[r], 3 + r));
    ASSERT_NE(nullptr, v2_inputs.back());
  }

  DedupeRunInfo v3_info, v2_info;
  Status s = MergeDedupeRuns(fs_, v3_inputs, Path(10), /*resolver=*/nullptr, &v3_info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(3u, v3_info.format_version);
  EXPECT_EQ(40u, v3_info.routing_bits);
  EXPECT_EQ(0, resolver_.id_reads);
  s = MergeDedupeRuns(fs_, v2_inputs, Path(11), &resolver_, &v2_info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(2u, v2_info.format_version);
  EXPECT_EQ(3 + 4 + 5, resolver_.id_reads);  // one ReadEventIds per output segment
  EXPECT_EQ(v3_info.key_count, v2_info.key_count);
  EXPECT_EQ(v3_info.forever_key_count, v2_info.forever_key_count);

  // The same bytes as one run written over every event of the version-3 segments.
  std::vector<DedupeRunEntry> all;
  for (const auto& [loc, e] : resolver_.rows) {
    if (loc.segment_file_number < v3_first_segment || loc.segment_file_number >= v3_end_segment) {
      continue;
    }
    all.push_back(DedupeRunEntry{Hash64(e.event_id), loc, e.commit_seq, e.kind != EventKind::kUsage,
                                 std::max(e.ingested_at_ms, e.timestamp_ms)});
  }
  ASSERT_EQ(v3_info.key_count, all.size());
  ASSERT_TRUE(WriteDedupeRun(fs_, Path(12), std::move(all), nullptr).ok());
  EXPECT_TRUE(ReadRaw(10) == ReadRaw(12));

  auto v3_merged = DedupeRun::Open(fs_, Path(10), 10);
  auto v2_merged = DedupeRun::Open(fs_, Path(11), 11);
  ASSERT_TRUE(v3_merged.ok()) << v3_merged.status().ToString();
  ASSERT_TRUE(v2_merged.ok()) << v2_merged.status().ToString();
  DedupeIndex v3_index(1 << 20), v2_index(1 << 20);
  v3_index.SetRuns({*v3_merged});
  v2_index.SetRuns({*v2_merged});
  for (const auto& batch : batches) {
    for (const auto& e : batch) {
      auto a = Lookup(v3_index, e.event_id);
      auto b = Lookup(v2_index, e.event_id);
      ASSERT_TRUE(a.ok() && b.ok());
      ExpectSameEntry(e, *a);
      ExpectSameEntry(e, *b);
    }
  }
  // Misses: absent from both; with 40 routing bits a miss almost never reaches the resolver.
  const uint64_t calls_before = resolver_.calls.load();
  int v3_positives = 0, v2_positives = 0;
  for (uint64_t i = 0; i < 50'000; ++i) {
    const std::string id = Key("absent_", i);
    EXPECT_FALSE(Has(v3_index, id));
    EXPECT_FALSE(Has(v2_index, id));
    v3_positives += (*v3_merged)->MayContain(Hash64(id));
    v2_positives += (*v2_merged)->MayContain(Hash64(id));
  }
  EXPECT_LE(resolver_.calls.load() - calls_before, 5u);
  // 13 bits/key, 8 probes: ~0.27% each (~135 of 50K).
  EXPECT_LT(v3_positives, 300);
  EXPECT_LT(v2_positives, 300);
}

// Version 2 files (filter over the full hash) still open, answer lookups, and merge the old
// way: through the resolver, into a version-2 output (their dropped routing bits cannot be
// recovered, so a routing-keyed filter over them would be weak).
TEST_F(DedupeTest, Version2RunStillReadAndMergedThroughTheResolver) {
  write_version_ = 2;
  const std::vector<DedupeEntry> old_events = MergeEvents(1, 3'000);
  auto v2 = Flush(1, old_events, 4);
  ASSERT_NE(nullptr, v2);
  EXPECT_EQ(2u, v2->info().format_version);
  EXPECT_EQ(22u, v2->info().routing_bits);  // bit_width(2'999) + 10, no floor
  write_version_ = 0;
  const std::vector<DedupeEntry> new_events = MergeEvents(2, 2'000);
  auto v3 = Flush(2, new_events, 4);
  ASSERT_NE(nullptr, v3);
  EXPECT_EQ(3u, v3->info().format_version);
  DedupeIndex index(1 << 20);
  index.SetRuns({v2, v3});
  for (const auto& e : old_events) {
    auto got = Lookup(index, e.event_id);
    ASSERT_TRUE(got.ok());
    ExpectSameEntry(e, *got);
  }
  for (uint64_t i = 0; i < 10'000; ++i) EXPECT_FALSE(Has(index, Key("absent_", i)));

  DedupeRunInfo info;
  Status s = MergeDedupeRuns(fs_, {v2, v3}, Path(3), nullptr, &info);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_FALSE(fs_->FileExists(Path(3)));
  s = MergeDedupeRuns(fs_, {v2, v3}, Path(3), &resolver_, &info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(2u, info.format_version);
  EXPECT_EQ(22u, info.routing_bits);
  EXPECT_EQ(8, resolver_.id_reads);
  auto merged = DedupeRun::Open(fs_, Path(3), 3);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(2u, (*merged)->info().format_version);
  index.SetRuns({*merged});
  for (const auto* events : {&old_events, &new_events}) {
    for (const auto& e : *events) {
      auto got = Lookup(index, e.event_id);
      ASSERT_TRUE(got.ok());
      ExpectSameEntry(e, *got);
    }
  }
  for (uint64_t i = 0; i < 10'000; ++i) EXPECT_FALSE(Has(index, Key("absent_", i)));
}

// Footer fields of a version-3 run with a valid footer checksum that still contradict the
// format: Corruption naming the file.
TEST_F(DedupeTest, Version3FooterContradictionsAreCorruption) {
  std::vector<DedupeEntry> events = MergeEvents(0, 500);
  ASSERT_NE(nullptr, Flush(1, events));
  const std::string v3_file = ReadRaw(1);
  write_version_ = 2;
  ASSERT_NE(nullptr, Flush(2, events));
  const std::string v2_file = ReadRaw(2);
  auto with_field = [](std::string file, size_t at, uint32_t value) {
    char* footer = file.data() + file.size() - fmt::kTailSize;
    EncodeFixed32(footer + at, value);
    EncodeFixed32(footer + fmt::kFooterSize - 4,
                  crc32c::Mask(crc32c::Value(footer, fmt::kFooterSize - 4)));
    return file;
  };
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"version 2 under the version-3 magic", with_field(v3_file, 0, 2)},
      {"version 3 under the version-2 magic", with_field(v2_file, 0, 3)},
      {"routing bits 0", with_field(v3_file, 4, 0)},
      {"routing bits 65", with_field(v3_file, 4, 65)},
      {"probes 0", with_field(v3_file, 88, 0)},
  };
  for (const auto& [what, bad] : cases) {
    SCOPED_TRACE(what);
    WriteRaw(3, bad);
    auto r = DedupeRun::Open(fs_, Path(3), 3);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(std::string::npos, r.status().message().find(Path(3)));
  }
}

TEST_F(DedupeTest, ConcurrentLookups) {
  std::vector<DedupeEntry> a_events, b_events;
  for (uint64_t i = 0; i < 20'000; ++i) a_events.push_back(MakeEntry(Key("a", i), i));
  for (uint64_t i = 0; i < 20'000; ++i) b_events.push_back(MakeEntry(Key("b", i), 100'000 + i));
  auto a = Flush(1, a_events);
  auto b = Flush(2, b_events);
  ASSERT_NE(nullptr, a);
  ASSERT_NE(nullptr, b);
  DedupeIndex index(64 << 10);  // small: forces eviction under concurrency
  index.SetRuns({a, b});
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::thread swapper([&] {
    // Run set changes while lookups run; `a` is in every set.
    for (int i = 0; !stop.load(); ++i) index.SetRuns(i % 2 ? std::vector{a} : std::vector{a, b});
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 4'000; ++i) {
        const uint64_t k = rng() % 20'000;
        auto hit = index.Lookup(Key("a", k), 0, 0, &resolver_);
        if (!hit.ok() || !hit->has_value() || (*hit)->commit_seq != k) errors++;
        auto miss = index.Lookup(Key("c", k), 0, 0, &resolver_);
        if (!miss.ok() || miss->has_value()) errors++;
        auto maybe = index.Lookup(Key("b", k), 0, 0, &resolver_);  // present or not, never wrong
        if (!maybe.ok() || (maybe->has_value() && (*maybe)->commit_seq != 100'000 + k)) errors++;
      }
    });
  }
  for (auto& r : readers) r.join();
  stop = true;
  swapper.join();
  EXPECT_EQ(0, errors.load());
  EXPECT_LE(index.cache()->used_bytes(), index.cache_capacity_bytes());
}

TEST(DedupeFileNameTest, RoundTrip) {
  EXPECT_EQ("000000000042.udx", DedupeRunFileName(42));
  uint64_t n = 0;
  ASSERT_TRUE(ParseDedupeRunFileName("000000000042.udx", &n));
  EXPECT_EQ(42u, n);
  ASSERT_TRUE(ParseDedupeRunFileName(DedupeRunFileName(UINT64_MAX), &n));
  EXPECT_EQ(UINT64_MAX, n);
  EXPECT_FALSE(ParseDedupeRunFileName(".udx", &n));
  EXPECT_FALSE(ParseDedupeRunFileName("000000000042.udx.tmp", &n));
  EXPECT_FALSE(ParseDedupeRunFileName("00000000004a.udx", &n));
  EXPECT_FALSE(ParseDedupeRunFileName("99999999999999999999999.udx", &n));
  EXPECT_FALSE(ParseDedupeRunFileName("000000000042.log", &n));
}

// ---- golden files ----------------------------------------------------------------------------
// Runs written (and merged) from fixed entries must keep their bytes: the writer and the merge
// may get faster, never write a different file for the same input without a format version
// bump. USAGEDB_UPDATE_GOLDEN=1 rewrites the files (only together with such a bump).

// Entries of a flush over `segments` (rows in order), hashes from a fixed engine: every 50th
// is squeezed near 0 (Rice escapes after it), every 97th repeats the previous hash (a shared
// routing value that a block cut must not split).
std::vector<DedupeRunEntry> GoldenRunEntries(uint64_t seed, std::vector<uint64_t> segments,
                                             uint32_t n) {
  std::mt19937_64 rng(seed);  // the engine's output is fixed by the standard
  std::vector<DedupeRunEntry> out;
  for (uint32_t i = 0; i < n; ++i) {
    DedupeRunEntry e;
    e.hash = rng();
    if (i % 50 == 0) e.hash &= 0xffffff;
    if (i % 97 == 96) e.hash = out.back().hash;
    e.location = RowLocation{segments[i % segments.size()], static_cast<uint32_t>(i / segments.size())};
    e.commit_seq = 1000 + i / 10;
    e.forever = i % 13 == 0;
    e.anchor_ms = 1'700'000'000'000 + static_cast<int64_t>(i) * 1000;
    out.push_back(e);
  }
  return out;
}

std::string ReadWhole(FileSystem* fs, const std::string& path) {
  auto f = fs->NewRandomAccessFile(path);
  EXPECT_TRUE(f.ok()) << path;
  if (!f.ok()) return "";
  std::string bytes;
  EXPECT_TRUE((*f)->Read(0, (*f)->Size(), &bytes).ok());
  return bytes;
}

TEST_F(DedupeTest, WriterAndMergeOutputsMatchTheGoldenFiles) {
  const std::string golden_dir = USAGEDB_DEDUPE_GOLDEN_DIR;
  const bool update = std::getenv("USAGEDB_UPDATE_GOLDEN") != nullptr;
  DedupeRunInfo info;
  ASSERT_TRUE(WriteDedupeRun(fs_, Path(1), GoldenRunEntries(7, {100, 101, 102}, 1500), &info).ok());
  EXPECT_EQ(info.key_count, 1500u);
  EXPECT_EQ(info.routing_bits, fmt::kMinV3RoutingBits);
  DedupeWriteOptions narrow;
  narrow.routing_bits = 20;  // large Rice parameters and many equal routing values
  ASSERT_TRUE(WriteDedupeRun(fs_, Path(2), GoldenRunEntries(8, {103, 104}, 900), &info, narrow).ok());
  auto a = DedupeRun::Open(fs_, Path(1), 1);
  auto b = DedupeRun::Open(fs_, Path(2), 2);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(MergeDedupeRuns(fs_, {*a, *b}, Path(3), nullptr, &info).ok());
  EXPECT_EQ(info.key_count, 2400u);
  EXPECT_EQ(info.routing_bits, 20u);
  for (const auto& [n, name] : std::vector<std::pair<uint64_t, std::string>>{
           {1, "run_v3.udx"}, {2, "run_v3_20bits.udx"}, {3, "merged_v3.udx"}}) {
    const std::string golden = golden_dir + "/" + name;
    if (update) {
      auto f = fs_->NewWritableFile(golden);
      ASSERT_TRUE(f.ok()) << golden;
      ASSERT_TRUE((*f)->Append(ReadWhole(fs_, Path(n))).ok());
      ASSERT_TRUE((*f)->Close().ok());
    }
    const std::string want = ReadWhole(fs_, golden);
    ASSERT_FALSE(want.empty()) << golden;
    EXPECT_TRUE(ReadWhole(fs_, Path(n)) == want) << name << " differs from the golden file";
    // The golden file reads back as the entries it was written from.
    auto run = DedupeRun::Open(fs_, golden, n);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    std::vector<DedupeRunEntry> entries;
    ASSERT_TRUE((*run)->ReadAll(&entries).ok());
    EXPECT_EQ(entries.size(), (*run)->info().key_count);
  }
  // Every written entry routes to its location in the merged golden file.
  auto merged = DedupeRun::Open(fs_, golden_dir + "/merged_v3.udx", 3);
  ASSERT_TRUE(merged.ok());
  size_t found = 0;
  for (const auto& e : GoldenRunEntries(7, {100, 101, 102}, 1500)) {
    auto c = (*merged)->Candidates(e.hash, nullptr);
    ASSERT_TRUE(c.ok());
    found += std::count(c->begin(), c->end(), e.location) == 1;
  }
  EXPECT_EQ(found, 1500u);
}

}  // namespace
}  // namespace usagedb
