#include <gtest/gtest.h>

#include <string>

#include "usagedb/status.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/hash.h"
#include "util/int128.h"

namespace usagedb {
namespace {

TEST(Status, OkIsCheapAndPrintable) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ("OK", s.ToString());
  Status c = Status::Corruption("wal/1.log: bad crc");
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(c.IsCorruption());
  EXPECT_EQ("Corruption: open: wal/1.log: bad crc", c.WithContext("open").ToString());
}

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument("odd");
  return x / 2;
}
Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(*out, Half(x));
  return Status::OK();
}

TEST(Result, ValueOrStatusAndMacros) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(4, out);
  Status s = UseHalf(3, &out);
  EXPECT_TRUE(s.IsInvalidArgument());
}

TEST(Coding, VarintRoundTripAndTruncation) {
  std::string buf;
  const uint64_t values[] = {0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX};
  for (uint64_t v : values) PutVarint64(&buf, v);
  Decoder d(buf);
  for (uint64_t v : values) {
    uint64_t got;
    ASSERT_TRUE(d.GetVarint64(&got));
    EXPECT_EQ(v, got);
  }
  EXPECT_TRUE(d.empty());
  std::string cut = buf.substr(0, buf.size() - 1);
  Decoder d2(cut);
  uint64_t got;
  for (int i = 0; i < 6; i++) ASSERT_TRUE(d2.GetVarint64(&got));
  EXPECT_FALSE(d2.GetVarint64(&got));
}

TEST(Coding, Varint128AndZigZag) {
  const int128 values[] = {0,
                           -1,
                           1,
                           (int128(1) << 62) - 1,  // the 64-bit fast path's edges
                           int128(1) << 62,
                           (int128(1) << 63) - 1,
                           int128(1) << 63,
                           int128(1) << 64,
                           -(int128(1) << 63),
                           kMaxQuantity,
                           -kMaxQuantity,
                           kInt128Max,
                           kInt128Min};
  std::string buf;
  for (int128 v : values) PutVarint128(&buf, ZigZagEncode128(v));
  Decoder d(buf);
  for (int128 v : values) {
    uint128 got;
    ASSERT_TRUE(d.GetVarint128(&got));
    EXPECT_TRUE(v == ZigZagDecode128(got));
  }
  EXPECT_EQ(-5, ZigZagDecode64(ZigZagEncode64(-5)));
}

TEST(Coding, LengthPrefixedRejectsOverlongLength) {
  std::string buf;
  PutVarint64(&buf, 10);
  buf += "abc";
  Decoder d(buf);
  std::string_view v;
  EXPECT_FALSE(d.GetLengthPrefixed(&v));
}

TEST(Crc32c, KnownVectorsAndMask) {
  // RFC 3720 test vector: 32 bytes of zeros.
  char zeros[32] = {0};
  EXPECT_EQ(0x8a9136aau, crc32c::Value(zeros, 32));
  EXPECT_EQ(0xe3069283u, crc32c::Value("123456789"));
  uint32_t c = crc32c::Value("hello world");
  EXPECT_NE(c, crc32c::Mask(c));
  EXPECT_EQ(c, crc32c::Unmask(crc32c::Mask(c)));
  EXPECT_EQ(crc32c::Value("hello world"),
            crc32c::Extend(crc32c::Value("hello "), "world", 5));
}

// The bitwise definition (reflected polynomial 0x82f63b78), independent of the hardware path.
uint32_t ReferenceCrc32c(uint32_t init, const char* p, size_t n) {
  uint32_t c = ~init;
  for (size_t i = 0; i < n; i++) {
    c ^= static_cast<uint8_t>(p[i]);
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
  }
  return ~c;
}

TEST(Crc32c, InterleavedStreamsMatchThePlainDefinition) {
  // Lengths 0..4096 at every alignment cover the single stream, the 3 x 256-byte blocks and
  // every tail; longer lengths cover the 3 x 8 KiB blocks and their boundaries.
  std::string buf(200000 + 16, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& ch : buf) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    ch = static_cast<char>(x >> 56);
  }
  for (size_t align = 0; align < 8; align++) {
    for (size_t n = 0; n <= 4096; n++) {
      ASSERT_EQ(ReferenceCrc32c(0, buf.data() + align, n), crc32c::Value(buf.data() + align, n))
          << "n=" << n << " align=" << align;
    }
  }
  for (size_t n :
       {3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 8192 + 768, 6 * 8192 + 767, 100000, 200000}) {
    for (size_t align : {0, 1, 5}) {
      const uint32_t want = ReferenceCrc32c(0, buf.data() + align, n);
      ASSERT_EQ(want, crc32c::Value(buf.data() + align, n)) << "n=" << n << " align=" << align;
      // Extending from a non-zero crc: the first stream starts from the prefix's register.
      const size_t cut = n / 3 + align;
      ASSERT_EQ(want, crc32c::Extend(crc32c::Value(buf.data() + align, cut),
                                     buf.data() + align + cut, n - cut))
          << "n=" << n << " cut=" << cut;
    }
  }
}

TEST(Hash, StableValues) {
  EXPECT_EQ(Hash64("acc_1"), Hash64("acc_1"));
  EXPECT_NE(Hash64("acc_1"), Hash64("acc_2"));
  EXPECT_FALSE(Hash128("a") == Hash128("b"));
}

TEST(Int128, ParseAndFormat) {
  EXPECT_EQ("99999999999999999999999999999999999999", Int128ToString(kMaxQuantity));
  EXPECT_TRUE(ParseQuantity("99999999999999999999999999999999999999").value() == kMaxQuantity);
  EXPECT_TRUE(ParseQuantity("-99999999999999999999999999999999999999").value() == -kMaxQuantity);
  EXPECT_FALSE(ParseQuantity("100000000000000000000000000000000000000").has_value());  // 39 digits
  EXPECT_TRUE(ParseQuantity("007").value() == 7);
  EXPECT_EQ("0", Int128ToString(*ParseQuantity("-0")));
  EXPECT_FALSE(ParseQuantity("+5").has_value());
  EXPECT_FALSE(ParseQuantity("5.0").has_value());
  EXPECT_FALSE(ParseQuantity("").has_value());
  EXPECT_FALSE(ParseQuantity("-").has_value());
  EXPECT_FALSE(ParseQuantity(" 5").has_value());
  EXPECT_EQ("-170141183460469231731687303715884105727", Int128ToString(-kInt128Max));
}

TEST(WideSum, IntermediateOverflowStaysExact) {
  WideSum s;
  s.Add(kInt128Max);
  s.Add(kInt128Max);
  EXPECT_FALSE(s.Value().has_value());  // 2^128 - 2 does not fit
  s.Add(-kInt128Max);
  ASSERT_TRUE(s.Value().has_value());
  EXPECT_TRUE(*s.Value() == kInt128Max);
  WideSum n;
  for (int i = 0; i < 5; i++) n.Add(-kMaxQuantity);
  for (int i = 0; i < 5; i++) n.Add(kMaxQuantity);
  EXPECT_TRUE(n.IsZero());
  WideSum m;
  m.Add(kInt128Min + 1);
  m.Add(-1);
  EXPECT_FALSE(m.Value().has_value());  // -2^127 is outside ±(2^127-1)
  WideSum a, b;
  a.Add(kInt128Max);
  b.Add(kInt128Max);
  a.Add(b);
  b.Add(-kInt128Max);
  b.Add(-kInt128Max);
  a.Add(b);
  ASSERT_TRUE(a.Value().has_value());
  EXPECT_TRUE(*a.Value() == kInt128Max);
}

}  // namespace
}  // namespace usagedb

#include "util/time_util.h"

namespace usagedb {
namespace {

TEST(TimeUtil, ParsesEveryAcceptedForm) {
  EXPECT_EQ(1777593600000, ParseTimeArg("2026-05-01").value());
  EXPECT_EQ(1777593600000, ParseTimeArg("2026-05-01T00:00:00Z").value());
  EXPECT_EQ(1777593600000, ParseTimeArg("2026-05-01T02:00:00+02:00").value());
  EXPECT_EQ(1777593600250, ParseTimeArg("2026-05-01T00:00:00.250Z").value());
  EXPECT_EQ(1777593600000, ParseTimeArg("1777593600000").value());
  EXPECT_EQ(-5, ParseTimeArg("-5").value());
  EXPECT_FALSE(ParseTimeArg("2026-13-01").ok());
  EXPECT_FALSE(ParseTimeArg("2026-02-30").ok());
  EXPECT_FALSE(ParseTimeArg("2026-05-01T00:00:00").ok());  // no offset
  EXPECT_FALSE(ParseTimeArg("x").ok());
  EXPECT_FALSE(ParseTimeArg("").ok());
}

TEST(TimeUtil, FormatsAndRoundTrips) {
  EXPECT_EQ("2026-05-01T00:00:00Z", FormatRfc3339(1777593600000));
  EXPECT_EQ("2026-05-01T00:00:00.250Z", FormatRfc3339(1777593600250));
  EXPECT_EQ("1969-12-31T23:59:59.999Z", FormatRfc3339(-1));
  EXPECT_EQ("2026-05-01", FormatDate(1777593600000 + 3600000));
  for (int64_t days = -800000; days < 800000; days += 997) {
    int64_t y;
    unsigned m, d;
    CivilFromDays(days, &y, &m, &d);
    EXPECT_EQ(days, DaysFromCivil(y, m, d));
  }
}

}  // namespace
}  // namespace usagedb
