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
  // Short ids live inside the std::string object (SSO): the deque must never move them.
  for (int i = 0; i < 20000; i++) m.Add(Ev("s" + std::to_string(i), i + 1), Digest128{});
  for (int i = 0; i < 20000; i += 997) EXPECT_TRUE(m.Contains("s" + std::to_string(i))) << i;
  EXPECT_EQ(20000u, m.size());
  // Records, not decoded structs: well under a decoded Event per row.
  EXPECT_LT(m.ApproximateBytes(), 20000u * sizeof(Event));
  EXPECT_GT(m.ApproximateBytes(), 20000u * 20);
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

}  // namespace
}  // namespace usagedb
