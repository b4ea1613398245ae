#include "memtable/memtable.h"

#include <gtest/gtest.h>

namespace usagedb {
namespace {

Event Ev(const std::string& id, uint64_t seq, __int128 q = 1) {
  Event e;
  e.event_id = id;
  e.account_id = "a";
  e.commit_seq = seq;
  e.ingested_at_ms = 1000 + static_cast<int64_t>(seq);
  e.quantity = q;
  return e;
}

TEST(MemTable, FindAndContainsUseTheFullId) {
  MemTable m(0);
  m.Add(Ev("evt_1", 1), Digest128{1, 2});
  EXPECT_TRUE(m.Contains("evt_1"));
  EXPECT_FALSE(m.Contains("evt_"));
  EXPECT_FALSE(m.Contains("evt_10"));
  auto f = m.Find("evt_1");
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->digest == (Digest128{1, 2}));
  EXPECT_EQ(1001, f->event.ingested_at_ms);
}

TEST(MemTable, ForEachStopsAtTheSnapshotSequence) {
  MemTable m(0);
  for (uint64_t s = 1; s <= 10; s++) m.Add(Ev("e" + std::to_string(s), s), Digest128{});
  int seen = 0;
  m.ForEach(4, [&](const MemEntry&) {
    seen++;
    return true;
  });
  EXPECT_EQ(4, seen);
  seen = 0;
  m.ForEach(100, [&](const MemEntry&) { return ++seen < 3; });
  EXPECT_EQ(3, seen);
  EXPECT_EQ(1u, m.min_seq());
  EXPECT_EQ(10u, m.max_seq());
  EXPECT_EQ(1010, m.max_ingested_at_ms());
}

TEST(MemTable, ViewsStayValidAcrossManyAppends) {
  MemTable m(0);
  // Short ids live inside the std::string object (SSO): the row store must never move them.
  for (int i = 0; i < 20000; i++) m.Add(Ev("s" + std::to_string(i), i + 1), Digest128{});
  for (int i = 0; i < 20000; i += 997) EXPECT_TRUE(m.Contains("s" + std::to_string(i))) << i;
  EXPECT_EQ(20000u, m.size());
  // Rows in insertion order across the store's chunks (4,096 rows each), by index and by
  // iteration, each with its own id and hash.
  const MemRowStore& rows = m.rows_for_flush();
  ASSERT_EQ(20000u, rows.size());
  size_t k = 0;
  for (const MemRow& r : rows) {
    const std::string id = "s" + std::to_string(k);
    ASSERT_EQ(id, r.event_id) << k;
    ASSERT_EQ(&r, &rows[k]) << k;
    ASSERT_EQ(Hash64(id), r.id_hash) << k;
    ASSERT_EQ(k + 1, r.commit_seq) << k;
    k++;
  }
  EXPECT_EQ(20000u, k);
  // Records, not decoded structs: well under a decoded Event per row.
  EXPECT_LT(m.ApproximateBytes(), 20000u * sizeof(Event));
  EXPECT_GT(m.ApproximateBytes(), 20000u * 20);
}

// With one sub-arena per bucket (the db's setting) every record stays intact and findable, and
// one bucket's records lie in its own chunks, in insertion order.
TEST(MemTable, RecordsInPerBucketArenasStayIntact) {
  constexpr uint32_t kParts = 4;
  MemTable m(0, &Hash64, kParts);
  for (int i = 0; i < 20000; i++) {
    Event e = Ev("p" + std::to_string(i), i + 1, i);
    e.account_id = "acct" + std::to_string(i % 37);
    m.Add(e, Digest128{static_cast<uint64_t>(i), 0});
  }
  const MemRowStore& rows = m.rows_for_flush();
  ASSERT_EQ(20000u, rows.size());
  std::vector<const char*> last_end(kParts, nullptr);
  size_t adjacent = 0;
  for (size_t k = 0; k < rows.size(); k++) {
    Event e;
    ASSERT_TRUE(MemTable::DecodeRow(rows[k], &e)) << k;
    EXPECT_EQ("p" + std::to_string(k), e.event_id);
    EXPECT_EQ("acct" + std::to_string(k % 37), e.account_id);
    EXPECT_EQ(Hash64(e.account_id), rows[k].account_hash);
    const size_t part = rows[k].account_hash % kParts;
    if (last_end[part] == rows[k].record) adjacent++;
    last_end[part] = rows[k].record + rows[k].record_length;
  }
  // Consecutive records of a bucket follow each other except where a 64 KiB chunk ends.
  EXPECT_GT(adjacent, 19000u);
  for (int i = 0; i < 20000; i += 1231) EXPECT_TRUE(m.Contains("p" + std::to_string(i))) << i;
}

TEST(MemTable, ConflictOnlyUnitsStillCoverTheirSequence) {
  MemTable m(0);
  ConflictEntry c;
  c.commit_seq = 7;
  c.event = Ev("x", 0);
  m.AddConflict(c);
  m.NoteSequence(7, 5000);
  EXPECT_EQ(7u, m.max_seq());
  EXPECT_EQ(1u, m.conflicts_for_flush().size());
  EXPECT_EQ(0u, m.size());
}

// IdTable and the memtable index: hashes only route, the full id decides.

uint64_t CollidingHash(std::string_view) { return 0x1234567890abcdefull; }

TEST(IdTable, CollisionsForcedBySameHashAreDistinctEntries) {
  std::vector<std::string> ids = {"a", "b", "evt_1", "evt_2", ""};
  auto id_of = [&](uint32_t v) { return std::string_view(ids[v]); };
  IdTable t;
  for (uint32_t i = 0; i < ids.size(); i++) {
    EXPECT_EQ(i, t.Insert(42, ids[i], i, id_of)) << i;  // every id under one hash
  }
  EXPECT_EQ(ids.size(), t.size());
  for (uint32_t i = 0; i < ids.size(); i++) EXPECT_EQ(i, t.Find(42, ids[i], id_of));
  EXPECT_EQ(IdTable::kNone, t.Find(42, "evt_3", id_of));
  EXPECT_EQ(1u, t.Insert(42, "b", 7, id_of)) << "present: the stored value is returned";
  // Erasing from the middle of a cluster keeps the later members reachable.
  EXPECT_EQ(2u, t.Erase(42, "evt_1", id_of));
  EXPECT_EQ(IdTable::kNone, t.Find(42, "evt_1", id_of));
  EXPECT_EQ(3u, t.Find(42, "evt_2", id_of));
  EXPECT_EQ(4u, t.Find(42, "", id_of));
  EXPECT_EQ(IdTable::kNone, t.Erase(42, "evt_1", id_of));
  EXPECT_EQ(IdTable::kNone, t.EraseIf(42, "a", id_of, [](uint32_t) { return false; }));
  EXPECT_EQ(0u, t.Find(42, "a", id_of));
}

TEST(IdTable, EraseValueRemovesOnlyThatEntryOfAHash) {
  std::vector<std::string> ids = {"a", "b", "c", "d"};
  auto id_of = [&](uint32_t v) { return std::string_view(ids[v]); };
  IdTable t;
  for (uint32_t i = 0; i < 3; i++) EXPECT_EQ(i, t.Insert(42, ids[i], i, id_of));  // one cluster
  const uint64_t other = uint64_t{43} << 32;  // the table keeps a hash's high 32 bits
  EXPECT_EQ(3u, t.Insert(other, ids[3], 3, id_of));
  EXPECT_FALSE(t.EraseValue(42, 3)) << "value 3 lives under another hash";
  EXPECT_FALSE(t.EraseValue(42, 9));
  EXPECT_TRUE(t.EraseValue(42, 1));  // the middle of the cluster
  EXPECT_FALSE(t.EraseValue(42, 1));
  EXPECT_EQ(3u, t.size());
  EXPECT_EQ(IdTable::kNone, t.Find(42, "b", id_of));
  EXPECT_EQ(0u, t.Find(42, "a", id_of));
  EXPECT_EQ(2u, t.Find(42, "c", id_of));
  EXPECT_EQ(3u, t.Find(other, "d", id_of));
}

TEST(IdTable, GrowthKeepsEveryEntryAndIdsDifferingInTheLastByte) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; i++) {
    std::string base = "evt_0123456789abcdefghijklmnop_" + std::to_string(i / 2);
    base.push_back(i % 2 ? 'x' : 'y');  // pairs differ only in the last byte
    ids.push_back(base);
  }
  auto id_of = [&](uint32_t v) { return std::string_view(ids[v]); };
  IdTable t;  // starts empty: grows many times
  for (uint32_t i = 0; i < ids.size(); i++) {
    // Half the ids share a hash with their pair: growth must keep both.
    const uint64_t h = Hash64(ids[i].substr(0, ids[i].size() - 1));
    EXPECT_EQ(i, t.Insert(h, ids[i], i, id_of));
  }
  EXPECT_EQ(ids.size(), t.size());
  for (uint32_t i = 0; i < ids.size(); i++) {
    EXPECT_EQ(i, t.Find(Hash64(ids[i].substr(0, ids[i].size() - 1)), ids[i], id_of)) << i;
  }
  for (uint32_t i = 0; i < ids.size(); i += 2) {
    EXPECT_EQ(i, t.Erase(Hash64(ids[i].substr(0, ids[i].size() - 1)), ids[i], id_of));
  }
  for (uint32_t i = 0; i < ids.size(); i++) {
    const uint32_t want = i % 2 ? i : IdTable::kNone;
    EXPECT_EQ(want, t.Find(Hash64(ids[i].substr(0, ids[i].size() - 1)), ids[i], id_of)) << i;
  }
}

TEST(MemTable, IndexWithCollidingHashesDecidesByTheFullId) {
  MemTable m(0, &CollidingHash);
  for (int i = 0; i < 300; i++) m.Add(Ev("evt_" + std::to_string(i), i + 1), Digest128{1, 0u + i});
  for (int i = 0; i < 300; i += 7) {
    auto f = m.FindDigest("evt_" + std::to_string(i));
    ASSERT_TRUE(f.has_value()) << i;
    EXPECT_EQ(static_cast<uint64_t>(i), f->digest.hi);
  }
  EXPECT_FALSE(m.Contains("evt_300"));
  EXPECT_FALSE(m.Contains("evt_2x"));
  std::string a = "evt_1", b = "evt_9999";
  MemTable::Probe probes[2] = {{a, CollidingHash(a)}, {b, CollidingHash(b)}};
  m.FindDigests(probes, 2);
  EXPECT_TRUE(probes[0].found);
  EXPECT_EQ(1u, probes[0].stored.digest.hi);
  EXPECT_FALSE(probes[1].found);
}

TEST(MemTable, IdsDifferingOnlyInTheLastByteAreDistinct) {
  MemTable m(0);
  m.Add(Ev("evt_abcdefghijklmnopqrstuvwxyz_0001", 1), Digest128{1, 1});
  m.Add(Ev("evt_abcdefghijklmnopqrstuvwxyz_0002", 2), Digest128{2, 2});
  EXPECT_EQ(1u, m.FindDigest("evt_abcdefghijklmnopqrstuvwxyz_0001")->digest.lo);
  EXPECT_EQ(2u, m.FindDigest("evt_abcdefghijklmnopqrstuvwxyz_0002")->digest.lo);
  EXPECT_FALSE(m.Contains("evt_abcdefghijklmnopqrstuvwxyz_0003"));
}

}  // namespace
}  // namespace usagedb
