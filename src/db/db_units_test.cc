// Unit tests of the db layer's pieces: WAL unit payloads and in-flight reservations.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "db/reservations.h"
#include "db/unit_codec.h"
#include "model/event_codec.h"

namespace usagedb {
namespace {

Event Ev(const std::string& id, __int128 q) {
  Event e;
  e.event_id = id;
  e.account_id = "acc";
  e.product_id = "p";
  e.meter_id = "m";
  e.timestamp_ms = 1778300000000;
  e.quantity = q;
  e.unit = "token";
  e.source = "s";
  e.dimensions = {{"k", "v"}};
  return e;
}

TEST(UnitCodec, RoundTripWithConflictsAndDigests) {
  Event a = Ev("a", 5), b = Ev("b", -7);
  b.kind = EventKind::kCorrection;
  b.has_correction_ref = true;
  b.correction_original_event_id = "a";
  ConflictEntry c;
  c.reason = ConflictReason::kConflict;
  c.stored_ingested_at_ms = INT64_MIN;  // "accepted earlier in this unit"
  c.event = Ev("a", 6);
  UnitBody body;
  EncodeUnitBody({&a, &b}, {PayloadDigest(a), PayloadDigest(b)}, {&c}, &body);
  std::string payload;
  EncodeUnitHeader(UnitHeader{42, 1778300001000, 1778300000999}, &payload);
  payload += body.bytes;
  DecodedUnit u;
  ASSERT_TRUE(DecodeUnit(payload, &u).ok());
  EXPECT_EQ(42u, u.header.seq);
  ASSERT_EQ(2u, u.events.size());
  EXPECT_EQ(42u, u.events[1].commit_seq);
  EXPECT_EQ(1778300001000, u.events[1].ingested_at_ms);
  Event want = b;
  want.commit_seq = 42;
  want.ingested_at_ms = 1778300001000;
  EXPECT_TRUE(want == u.events[1]);
  EXPECT_TRUE(u.digests[0] == PayloadDigest(a));
  ASSERT_EQ(1u, u.conflicts.size());
  EXPECT_EQ(INT64_MIN, u.conflicts[0].stored_ingested_at_ms);
  EXPECT_EQ(1778300000999, u.conflicts[0].request_time_ms);
}

TEST(UnitCodec, TruncatedOrTrailingBytesAreCorruption) {
  Event a = Ev("a", 5);
  UnitBody body;
  EncodeUnitBody({&a}, {PayloadDigest(a)}, {}, &body);
  std::string payload;
  EncodeUnitHeader(UnitHeader{1, 2, 3}, &payload);
  payload += body.bytes;
  DecodedUnit u;
  for (size_t cut = 0; cut < payload.size(); cut++) {
    EXPECT_TRUE(DecodeUnit(payload.substr(0, cut), &u).IsCorruption()) << cut;
  }
  EXPECT_TRUE(DecodeUnit(payload + "x", &u).IsCorruption());
  uint64_t seq;
  std::string v;
  EncodeVoid(99, &v);
  ASSERT_TRUE(DecodeVoid(v, &seq).ok());
  EXPECT_EQ(99u, seq);
  EXPECT_TRUE(DecodeVoid(v + "x", &seq).IsCorruption());
}

TEST(UnitCodec, PeekAgreesWithDecodeAndRejectsWhatDecodeRejects) {
  Event a = Ev("evt_peek", -42);
  a.kind = EventKind::kRetraction;
  a.has_correction_ref = true;
  a.correction_original_event_id = "orig";
  a.subscription_id = "sub";
  a.model_id = "m1";
  a.dimensions = {{"a", "1"}, {"b", "2"}};
  std::string rec;
  EncodeEventBinary(a, &rec);
  Decoder d(rec);
  EventPeek p;
  ASSERT_TRUE(PeekEventBinary(&d, &p));
  EXPECT_TRUE(d.empty());
  EXPECT_EQ("evt_peek", p.event_id);
  EXPECT_EQ("acc", p.account_id);
  EXPECT_EQ(a.timestamp_ms, p.timestamp_ms);
  EXPECT_EQ(EventKind::kRetraction, p.kind);
  for (size_t cut = 0; cut < rec.size(); cut++) {
    Decoder t(std::string_view(rec).substr(0, cut));
    Event e;
    Decoder t2(std::string_view(rec).substr(0, cut));
    EXPECT_EQ(DecodeEventBinary(&t, &e), PeekEventBinary(&t2, &p)) << cut;
  }
  std::string bad = rec;
  bad[0] = static_cast<char>(0x80);  // unknown flag bit
  Decoder b(bad);
  EXPECT_FALSE(PeekEventBinary(&b, &p));
}

TEST(UnitCodec, BuilderWritesWhatEncodeUnitBodyWrites) {
  // Candidates that are not accepted (b, d) are overwritten; conflicts follow the events.
  Event a = Ev("a", 5), b = Ev("b", 6), c = Ev("evt_a_longer_id_than_sixteen_bytes", 7),
        d = Ev("d", 8);
  c.subscription_id = "sub";
  c.model_id = "model";
  c.dimensions = {{"k1", "a value longer than thirty-two bytes, copied by memcpy"}, {"k2", ""}};
  ConflictEntry conflict;
  conflict.event = Ev("b", 9);
  conflict.stored_ingested_at_ms = 77;
  for (int accepted_count : {0, 1, 2}) {
    UnitBody built;
    std::vector<RowMeta> built_rows;
    UnitBodyBuilder builder(&built, &built_rows, 4);
    std::vector<const Event*> want_events;
    std::vector<Digest128> want_digests;
    std::vector<uint64_t> hashes;
    int n = 0;
    for (const Event* e : {&a, &b, &c, &d}) {
      const Digest128 digest = builder.Encode(*e);
      EXPECT_TRUE(digest == PayloadDigest(*e));
      if ((e == &a || e == &c) && n++ < accepted_count) {
        builder.Accept(*e, digest, Hash64(e->event_id));
        want_events.push_back(e);
        want_digests.push_back(digest);
        hashes.push_back(Hash64(e->event_id));
      }
    }
    builder.Finish({&conflict});
    UnitBody want;
    std::vector<RowMeta> want_rows;
    EncodeUnitBody(want_events, want_digests, {&conflict}, &want, &want_rows, &hashes);
    EXPECT_EQ(want.view(), built.view()) << accepted_count;
    ASSERT_EQ(want_rows.size(), built_rows.size());
    for (size_t i = 0; i < want_rows.size(); i++) {
      EXPECT_EQ(want_rows[i].offset, built_rows[i].offset);
      EXPECT_EQ(want_rows[i].length, built_rows[i].length);
      EXPECT_EQ(want_rows[i].account_hash, built_rows[i].account_hash);
      EXPECT_EQ(want_rows[i].id_hash, built_rows[i].id_hash);
      EXPECT_TRUE(want_rows[i].digest == built_rows[i].digest);
    }
  }
}

TEST(Reservations, HashedFormWithCollidingHashesStillWaitsOnlyForTheSameId) {
  ReservationTable t;
  // Every id under one hash (one shard, one cluster): only equal ids block each other.
  std::vector<ReservationTable::HashedId> ids1 = {{"x", 5}, {"y", 5}}, ids2 = {{"z", 5}};
  t.ReserveAll(ids1, 1);
  t.ReserveAll(ids2, 2);  // would block forever if "z" were taken for "x" or "y"
  t.ReleaseAll(ids2, 2);
  std::vector<ReservationTable::HashedId> y = {{"y", 5}};
  std::atomic<bool> got{false};
  std::thread other([&] {
    t.ReserveAll(y, 3);
    got = true;
    t.ReleaseAll(y, 3);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(got.load());
  t.ReleaseAll(ids1, 1);
  other.join();
  EXPECT_TRUE(got.load());
}

TEST(Reservations, SecondBatchWaitsForTheFirstToRelease) {
  ReservationTable t;
  std::vector<std::string_view> ids1 = {"x", "y"}, ids2 = {"z", "y"};
  t.ReserveAll(ids1, 1);
  std::atomic<bool> got{false};
  std::thread other([&] {
    t.ReserveAll(ids2, 2);
    got = true;
    t.ReleaseAll(ids2, 2);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(got.load()) << "an id held by a batch in flight must make the other wait";
  // The waiter holds none of its ids while waiting: "z" is free.
  std::vector<std::string_view> z = {"z"};
  t.ReserveAll(z, 3);
  t.ReleaseAll(z, 3);
  t.ReleaseAll(ids1, 1);
  other.join();
  EXPECT_TRUE(got.load());
}

}  // namespace
}  // namespace usagedb
