#include "dedupe/dedupe.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "dedupe/dedupe_format.h"
#include "util/coding.h"

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

void ExpectSameEntry(const DedupeEntry& want, const std::optional<DedupeEntry>& got) {
  ASSERT_TRUE(got.has_value()) << want.event_id;
  EXPECT_EQ(want.event_id, got->event_id);
  EXPECT_EQ(want.payload_digest, got->payload_digest);
  EXPECT_EQ(want.ingested_at_ms, got->ingested_at_ms);
  EXPECT_EQ(want.timestamp_ms, got->timestamp_ms);
  EXPECT_EQ(want.kind, got->kind);
  EXPECT_EQ(want.commit_seq, got->commit_seq);
}

// Every id collides: the whole run is one routing hash.
uint64_t ConstantHash(std::string_view) { return 42; }
// Four routing hashes: long runs of equal hashes that block cuts must not split.
uint64_t TinyHash(std::string_view s) { return Hash64(s) & 3; }

// All hashes in the lowest 2^44 of the range: the block-index position estimate is far off.
uint64_t LowHash(std::string_view s) { return Hash64(s) >> 20; }
// All hashes in the top 2^-8 of the range.
uint64_t HighHash(std::string_view s) { return Hash64(s) | (uint64_t{0xff} << 56); }

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

  // Writes run `n` and opens it.
  std::shared_ptr<DedupeRun> Write(uint64_t n, std::vector<DedupeEntry> entries,
                                   DedupeWriteOptions options = {}) {
    DedupeRunInfo info;
    const size_t count = entries.size();
    Status s = WriteDedupeRun(fs_, Path(n), std::move(entries), &info, options);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(count, info.key_count);
    auto run = DedupeRun::Open(fs_, Path(n), n, options.hash);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : nullptr;
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
  uint64_t FooterField64(const std::string& file, size_t at) {
    return DecodeFixed64(file.data() + file.size() - fmt::kTailSize + at);
  }

  FileSystem* fs_ = FileSystem::Default();
  std::string dir_;
};

TEST_F(DedupeTest, WriteOpenLookupHitsAndMisses) {
  std::vector<DedupeEntry> entries;
  for (uint64_t i = 0; i < 100'000; ++i) entries.push_back(MakeEntry(Key("evt_", i), i + 1));
  auto expected = entries;
  auto run = Write(7, std::move(entries));
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(100'000u, run->info().key_count);
  EXPECT_EQ(1u, run->info().min_commit_seq);
  EXPECT_EQ(100'000u, run->info().max_commit_seq);
  EXPECT_EQ(7u, run->file_number());

  DedupeIndex index(8 << 20);
  index.SetRuns({run});
  for (const auto& e : expected) {
    auto got = index.Lookup(e.event_id, 0, 0);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectSameEntry(e, *got);
  }
  for (uint64_t i = 0; i < 100'000; ++i) {
    auto got = index.Lookup(Key("other_", i), 0, 0);
    ASSERT_TRUE(got.ok());
    EXPECT_FALSE(got->has_value());
  }
  // A prefix or extension of a stored id is a different id.
  EXPECT_TRUE(index.Lookup("evt_1234", 0, 0)->has_value());
  EXPECT_TRUE(index.Lookup("evt_123", 0, 0)->has_value());
  EXPECT_FALSE(index.Lookup("evt_12345678", 0, 0)->has_value());
}

TEST_F(DedupeTest, FilterFalsePositiveRateIsLow) {
  std::vector<DedupeEntry> entries;
  for (uint64_t i = 0; i < 100'000; ++i) entries.push_back(MakeEntry(Key("evt_", i), i + 1));
  auto run = Write(1, std::move(entries));
  ASSERT_NE(nullptr, run);
  int positives = 0;
  for (uint64_t i = 0; i < 100'000; ++i) positives += run->MayContain(Hash64(Key("absent_", i)));
  // 13 bits/key, 8 probes in a 512-bit line: ~0.27% expected.
  EXPECT_LT(positives, 600) << positives;
}

TEST_F(DedupeTest, CompressedRunReadsTheSame) {
  std::vector<DedupeEntry> entries;
  // A common suffix survives prefix compression, so zstd has something to remove.
  for (uint64_t i = 0; i < 5'000; ++i) {
    entries.push_back(MakeEntry(Key("evt_", i) + "-from-collector-eu-west-1-batch", i));
  }
  DedupeWriteOptions zstd;
  zstd.compress = true;
  auto a = Write(1, entries);
  auto b = Write(2, std::move(entries), zstd);
  ASSERT_NE(nullptr, a);
  ASSERT_NE(nullptr, b);
  EXPECT_LT(b->info().file_size, a->info().file_size);  // entries are compressible
  std::vector<DedupeEntry> from_a, from_b;
  ASSERT_TRUE(a->ReadAll(&from_a).ok());
  ASSERT_TRUE(b->ReadAll(&from_b).ok());
  ASSERT_EQ(5'000u, from_a.size());
  ASSERT_EQ(from_a.size(), from_b.size());
  for (size_t i = 0; i < from_a.size(); ++i) {
    EXPECT_EQ(from_a[i].event_id, from_b[i].event_id);
    EXPECT_EQ(from_a[i].payload_digest, from_b[i].payload_digest);
  }
}

TEST_F(DedupeTest, ExtremeValuesRoundTrip) {
  std::vector<DedupeEntry> entries;
  DedupeEntry lo = MakeEntry("lo", 0);
  lo.ingested_at_ms = INT64_MIN;
  lo.timestamp_ms = INT64_MAX;
  DedupeEntry hi =
      MakeEntry(std::string(fmt::kMaxEventIdBytes, 'x'), UINT64_MAX, EventKind::kRetraction);
  hi.ingested_at_ms = INT64_MAX;
  hi.timestamp_ms = INT64_MIN;
  DedupeEntry utf8 = MakeEntry("évt_\xF0\x9F\x98\x80", 17, EventKind::kCorrection);
  entries = {lo, hi, utf8};
  auto run = Write(1, entries);
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(0u, run->info().min_commit_seq);
  EXPECT_EQ(UINT64_MAX, run->info().max_commit_seq);
  EXPECT_EQ(2u, run->info().forever_key_count);
  EXPECT_EQ(INT64_MAX, run->info().max_usage_anchor_ms);
  DedupeBlockCache cache(1 << 20);
  for (const auto& e : entries) {
    auto got = run->Lookup(e.event_id, Hash64(e.event_id), &cache);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectSameEntry(e, *got);
  }
}

TEST_F(DedupeTest, EmptyRunHasNoKeys) {
  auto run = Write(1, {});
  ASSERT_NE(nullptr, run);
  EXPECT_EQ(0u, run->info().key_count);
  DedupeBlockCache cache(1 << 20);
  auto got = run->Lookup("evt_x", Hash64("evt_x"), &cache);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  std::vector<DedupeEntry> all;
  EXPECT_TRUE(run->ReadAll(&all).ok());
  EXPECT_TRUE(all.empty());
}

TEST_F(DedupeTest, RepeatedOrEmptyIdIsInvalidArgumentAndLeavesNoFile) {
  Status s = WriteDedupeRun(fs_, Path(1), {MakeEntry("a", 1), MakeEntry("a", 2)}, nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = WriteDedupeRun(fs_, Path(2), {MakeEntry("", 1)}, nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = WriteDedupeRun(fs_, Path(3), {MakeEntry(std::string(fmt::kMaxEventIdBytes + 1, 'y'), 1)},
                     nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  auto names = fs_->ListDir(dir_);
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty()) << (*names)[0];
}

TEST_F(DedupeTest, HashCollisionStillComparesFullId) {
  for (DedupeHashFn hash : {&ConstantHash, &TinyHash}) {
    SCOPED_TRACE(hash == &ConstantHash ? "constant" : "tiny");
    std::vector<DedupeEntry> entries;
    for (uint64_t i = 0; i < 2'000; ++i) entries.push_back(MakeEntry(Key("id-", i), i + 1));
    auto expected = entries;
    DedupeWriteOptions opts;
    opts.hash = hash;
    auto run = Write(hash == &ConstantHash ? 1 : 2, std::move(entries), opts);
    ASSERT_NE(nullptr, run);
    DedupeIndex index(1 << 20, hash);
    index.SetRuns({run});
    for (const auto& e : expected) {
      auto got = index.Lookup(e.event_id, 0, 0);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ExpectSameEntry(e, *got);
    }
    for (uint64_t i = 2'000; i < 2'200; ++i) {
      ASSERT_TRUE(run->MayContain(hash(Key("id-", i))));  // the filter cannot tell them apart
      auto got = index.Lookup(Key("id-", i), 0, 0);
      ASSERT_TRUE(got.ok());
      EXPECT_FALSE(got->has_value()) << Key("id-", i);
    }
    std::vector<DedupeEntry> all;
    ASSERT_TRUE(run->ReadAll(&all).ok());
    EXPECT_EQ(2'000u, all.size());
  }
}

TEST_F(DedupeTest, SkewedHashesStillFindTheirBlock) {
  uint64_t n = 10;
  for (DedupeHashFn hash : {&LowHash, &HighHash}) {
    std::vector<DedupeEntry> entries;
    for (uint64_t i = 0; i < 20'000; ++i) entries.push_back(MakeEntry(Key("evt_", i), i));
    auto expected = entries;
    DedupeWriteOptions opts;
    opts.hash = hash;
    auto run = Write(n++, std::move(entries), opts);
    ASSERT_NE(nullptr, run);
    DedupeIndex index(1 << 20, hash);
    index.SetRuns({run});
    for (const auto& e : expected) {
      auto got = index.Lookup(e.event_id, 0, 0);
      ASSERT_TRUE(got.ok());
      ExpectSameEntry(e, *got);
    }
    EXPECT_FALSE(index.Lookup("evt_x", 0, 0)->has_value());
  }
}

TEST_F(DedupeTest, NewestRunWins) {
  auto older = Write(3, {MakeEntry("x", 5), MakeEntry("only-old", 4)});
  auto newer = Write(4, {MakeEntry("x", 9), MakeEntry("only-new", 8)});
  ASSERT_NE(nullptr, older);
  ASSERT_NE(nullptr, newer);
  for (bool reversed : {false, true}) {
    DedupeIndex index(1 << 20);
    index.SetRuns(reversed ? std::vector{newer, older} : std::vector{older, newer});
    ExpectSameEntry(MakeEntry("x", 9), *index.Lookup("x", 0, 0));
    ExpectSameEntry(MakeEntry("only-old", 4), *index.Lookup("only-old", 0, 0));
    ExpectSameEntry(MakeEntry("only-new", 8), *index.Lookup("only-new", 0, 0));
    EXPECT_EQ(4u, index.key_count());
    ASSERT_EQ(2u, index.runs().size());
    EXPECT_EQ(4u, index.runs()[0]->file_number());
  }
}

TEST_F(DedupeTest, WindowForgetsUsageButNotCorrections) {
  constexpr int64_t kWindow = 1'000;
  auto run = Write(1, {
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
  auto has = [&](const char* id, int64_t now, int64_t window) {
    auto r = index.Lookup(id, now, window);
    EXPECT_TRUE(r.ok());
    return r.ok() && r->has_value();
  };
  EXPECT_TRUE(has("usage", 2'000, kWindow));      // anchor + window == now: still remembered
  EXPECT_FALSE(has("usage", 2'001, kWindow));     // forgotten
  EXPECT_TRUE(has("usage", 1'000'000, 0));        // window 0 = forever
  EXPECT_TRUE(has("future-ts", 6'000, kWindow));  // anchored on the later timestamp
  EXPECT_FALSE(has("future-ts", 6'001, kWindow));
  EXPECT_TRUE(has("corr", INT64_MAX, kWindow));
  EXPECT_TRUE(has("retr", INT64_MAX, kWindow));
  // anchor (1000) + window near INT64_MAX: no overflow in the comparison.
  EXPECT_FALSE(has("usage", INT64_MAX, INT64_MAX - 1'001));
  EXPECT_TRUE(has("usage", INT64_MAX, INT64_MAX - 1'000));
  EXPECT_TRUE(has("usage", INT64_MAX, INT64_MAX));

  // A forgotten key accepted again lives in a newer run; the old entry never shadows it, even
  // when the old run sorts first.
  auto again = Write(2, {MakeEntry("usage", 10, EventKind::kUsage, 50'000, 50'000)});
  ASSERT_NE(nullptr, again);
  index.SetRuns({run, again});
  auto got = index.Lookup("usage", 50'500, kWindow);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(10u, (*got)->commit_seq);

  // Merging with the window's cutoff drops the forgotten Usage entry, keeps the rest.
  DedupeRunInfo info;
  ASSERT_TRUE(MergeDedupeRuns(fs_, {run}, Path(3), int64_t{2'001 - kWindow}, &info).ok());
  auto merged = DedupeRun::Open(fs_, Path(3), 3);
  ASSERT_TRUE(merged.ok());
  std::vector<DedupeEntry> all;
  ASSERT_TRUE((*merged)->ReadAll(&all).ok());
  std::set<std::string> ids;
  for (const auto& e : all) ids.insert(e.event_id);
  EXPECT_EQ((std::set<std::string>{"future-ts", "corr", "retr"}), ids);
  EXPECT_EQ(3u, info.key_count);
}

TEST_F(DedupeTest, CacheIsBounded) {
  std::vector<DedupeEntry> entries;
  for (uint64_t i = 0; i < 30'000; ++i) entries.push_back(MakeEntry(Key("evt_", i), i));
  auto run = Write(1, std::move(entries));
  ASSERT_NE(nullptr, run);
  for (size_t capacity : {size_t{1} << 10, size_t{256} << 10, size_t{3} << 20}) {
    SCOPED_TRACE(capacity);
    DedupeIndex index(capacity);
    index.SetRuns({run});
    EXPECT_EQ(capacity, index.cache_capacity_bytes());
    size_t max_used = 0;
    std::mt19937_64 rng(capacity);
    for (int i = 0; i < 6'000; ++i) {
      const std::string id = Key("evt_", rng() % 30'000);
      auto got = index.Lookup(id, 0, 0);
      ASSERT_TRUE(got.ok());
      ASSERT_TRUE(got->has_value()) << id;
      const size_t used = index.cache()->used_bytes();
      ASSERT_LE(used, capacity);
      max_used = std::max(max_used, used);
    }
    if (capacity >= (256u << 10)) {
      EXPECT_GT(max_used, capacity / 2);  // the cache is used, and nearly filled
    } else {
      EXPECT_EQ(0u, max_used);  // no block fits: nothing cached, lookups still answer
    }
  }
}

TEST_F(DedupeTest, MemoryPerKeyWithinBound) {
  std::vector<DedupeEntry> entries;
  entries.reserve(1'000'000);
  std::mt19937_64 rng(1);
  static constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";
  for (uint64_t i = 0; i < 1'000'000; ++i) {
    std::string id = "evt_";
    for (int c = 0; c < 26; ++c) id.push_back(kBase32[rng() & 31]);
    entries.push_back(MakeEntry(id, i));
  }
  auto run = Write(1, std::move(entries));
  ASSERT_NE(nullptr, run);
  DedupeIndex index(64 << 20);
  index.SetRuns({run});
  ASSERT_EQ(1'000'000u, index.key_count());
  const double per_key =
      static_cast<double>(index.filter_memory_bytes()) / static_cast<double>(index.key_count());
  EXPECT_LE(per_key, 2.0) << per_key;
  // The filter alone is 13 bits per key; the block index fits in the rest.
  EXPECT_GE(per_key, 13.0 / 8.0) << per_key;
  EXPECT_EQ(run->memory_bytes(), index.filter_memory_bytes());
}

TEST_F(DedupeTest, BlockChecksumMismatchIsCorruption) {
  std::vector<DedupeEntry> entries;
  for (uint64_t i = 0; i < 1'000; ++i) entries.push_back(MakeEntry(Key("evt_", i), i));
  auto expected = entries;
  ASSERT_NE(nullptr, Write(1, std::move(entries)));
  const std::string good = ReadRaw(1);
  // Footer: version, 6 x fixed64 counts, filter_offset, filter_lines, probes, index_offset.
  const uint64_t filter_offset = FooterField64(good, 4 + 8 * 6);
  const uint64_t index_offset = FooterField64(good, 4 + 8 * 6 + 8 + 8 + 4);
  ASSERT_LT(filter_offset, index_offset);
  ASSERT_LT(index_offset, good.size());

  // A flipped bit inside block 0: the run opens (blocks are checked when read), and every
  // read of that block is Corruption naming the file.
  std::string bad = good;
  bad[10] ^= 0x01;
  WriteRaw(1, bad);
  auto run = DedupeRun::Open(fs_, Path(1), 1);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  std::vector<DedupeEntry> all;
  Status s = (*run)->ReadAll(&all);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find(Path(1))) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("checksum")) << s.ToString();
  int corrupt = 0;
  DedupeBlockCache cache(1 << 20);
  for (const auto& e : expected) {
    auto got = (*run)->Lookup(e.event_id, Hash64(e.event_id), &cache);
    if (!got.ok()) {
      EXPECT_TRUE(got.status().IsCorruption());
      ++corrupt;
    }
  }
  EXPECT_GT(corrupt, 0);

  // Damage in the filter, the index or the footer fails Open.
  for (uint64_t at : {filter_offset + 3, index_offset + 1,
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

TEST_F(DedupeTest, TruncatedRunIsCorruption) {
  std::vector<DedupeEntry> entries;
  for (uint64_t i = 0; i < 2'000; ++i) entries.push_back(MakeEntry(Key("evt_", i), i));
  ASSERT_NE(nullptr, Write(1, std::move(entries)));
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
  std::vector<DedupeEntry> all;
  Status s = (*run)->ReadAll(&all);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

TEST_F(DedupeTest, MissingRunIsNotFound) {
  auto r = DedupeRun::Open(fs_, Path(99), 99);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
}

TEST_F(DedupeTest, MergeKeepsEveryKey) {
  // Three runs: disjoint ranges plus ids present in several runs with different seqs.
  std::vector<std::shared_ptr<DedupeRun>> inputs;
  std::map<std::string, uint64_t> oracle;  // id -> winning seq
  for (uint64_t r = 0; r < 3; ++r) {
    std::vector<DedupeEntry> entries;
    for (uint64_t i = 0; i < 3'000; ++i) {
      const std::string id = Key("evt_", r * 2'000 + i);  // runs overlap by 1000 ids
      const uint64_t seq = r * 10'000 + i;
      entries.push_back(MakeEntry(id, seq));
      oracle[id] = std::max(oracle[id], seq);
    }
    inputs.push_back(Write(r + 1, std::move(entries)));
    ASSERT_NE(nullptr, inputs.back());
  }
  DedupeRunInfo info;
  Status s = MergeDedupeRuns(fs_, inputs, Path(10), std::nullopt, &info);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(oracle.size(), info.key_count);
  EXPECT_EQ(0u, info.min_commit_seq);
  EXPECT_EQ(22'999u, info.max_commit_seq);
  auto merged = DedupeRun::Open(fs_, Path(10), 10);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  DedupeIndex index(1 << 20);
  index.SetRuns({*merged});
  for (const auto& [id, seq] : oracle) {
    auto got = index.Lookup(id, 0, 0);
    ASSERT_TRUE(got.ok());
    ExpectSameEntry(MakeEntry(id, seq), *got);
  }
  std::vector<DedupeEntry> all;
  ASSERT_TRUE((*merged)->ReadAll(&all).ok());
  EXPECT_EQ(oracle.size(), all.size());
  EXPECT_FALSE(fs_->FileExists(Path(10) + ".tmp"));

  // Merging nothing gives an empty run; a merge output can be merged again.
  ASSERT_TRUE(MergeDedupeRuns(fs_, {}, Path(11), std::nullopt, &info).ok());
  EXPECT_EQ(0u, info.key_count);
  ASSERT_TRUE(MergeDedupeRuns(fs_, {*merged, inputs[0]}, Path(12), std::nullopt, &info).ok());
  EXPECT_EQ(oracle.size(), info.key_count);
}

TEST_F(DedupeTest, ConcurrentLookups) {
  std::vector<DedupeEntry> a_entries, b_entries;
  for (uint64_t i = 0; i < 20'000; ++i) a_entries.push_back(MakeEntry(Key("a", i), i));
  for (uint64_t i = 0; i < 20'000; ++i) b_entries.push_back(MakeEntry(Key("b", i), 100'000 + i));
  auto a = Write(1, std::move(a_entries));
  auto b = Write(2, std::move(b_entries));
  ASSERT_NE(nullptr, a);
  ASSERT_NE(nullptr, b);
  DedupeIndex index(512 << 10);  // small: forces eviction under concurrency
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
        auto hit = index.Lookup(Key("a", k), 0, 0);
        if (!hit.ok() || !hit->has_value() || (*hit)->commit_seq != k) errors++;
        auto miss = index.Lookup(Key("c", k), 0, 0);
        if (!miss.ok() || miss->has_value()) errors++;
        auto maybe = index.Lookup(Key("b", k), 0, 0);  // present or not, never wrong
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

}  // namespace
}  // namespace usagedb
