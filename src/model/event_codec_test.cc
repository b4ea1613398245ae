#include "model/event_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "model/event_rules.h"
#include "util/int128.h"

namespace usagedb {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A JSON event object built field by field; values are raw JSON.
class J {
 public:
  J& Set(const std::string& k, const std::string& raw) {
    for (auto& f : fields_) {
      if (f.first == k) {
        f.second = raw;
        return *this;
      }
    }
    fields_.emplace_back(k, raw);
    return *this;
  }
  J& Add(const std::string& k, const std::string& raw) {  // allows repeated keys
    fields_.emplace_back(k, raw);
    return *this;
  }
  J& Del(const std::string& k) {
    std::erase_if(fields_, [&](const auto& f) { return f.first == k; });
    return *this;
  }
  std::string str() const {
    std::string s = "{";
    for (const auto& [k, v] : fields_) {
      if (s.size() > 1) s += ",";
      s += "\"" + k + "\":" + v;
    }
    return s + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

J Base() {
  return J()
      .Set("event_id", R"("evt_1")")
      .Set("account_id", R"("acc_1")")
      .Set("product_id", R"("ai_gateway")")
      .Set("meter_id", R"("tokens.input")")
      .Set("timestamp_ms", "1779000000000")
      .Set("quantity", "42")
      .Set("unit", R"("token")")
      .Set("source", R"("collector-a")");
}

J Correction() {
  return Base()
      .Set("kind", R"("Correction")")
      .Set("correction_ref", R"({"original_event_id":"evt_0","reason":"fix"})");
}

std::string Q(const std::string& s) { return "\"" + s + "\""; }

std::string Reason(const std::string& json) { return DecodeEventJson(json).reject_reason; }
Event Accept(const std::string& json) {
  DecodedEvent d = DecodeEventJson(json);
  EXPECT_TRUE(d.ok()) << json << " -> " << d.reject_reason;
  return d.event;
}

// ---------------------------------------------------------------------------------------------
// The rule table: every §1 rule, accepted and rejected.

struct Case {
  const char* name;
  std::string json;
  const char* reason_fragment;  // "" = accepted
};

std::vector<Case> Cases() {
  return {
      {"Minimal", Base().str(), ""},
      {"EventIdMissing", Base().Del("event_id").str(), "event_id: required"},
      {"EventIdNotString", Base().Set("event_id", "5").str(), "event_id: must be a string"},
      {"EventIdNull", Base().Set("event_id", "null").str(), "event_id: must be a string"},
      {"EventIdEmpty", Base().Set("event_id", Q("")).str(), "event_id: must be 1-256 bytes"},
      {"EventId256", Base().Set("event_id", Q(std::string(256, 'e'))).str(), ""},
      {"EventId257", Base().Set("event_id", Q(std::string(257, 'e'))).str(),
       "event_id: must be 1-256 bytes"},
      {"ControlCharInIdRejected", Base().Set("event_id", Q("a\\u0001b")).str(),
       "event_id: control characters"},
      {"DelInIdRejected", Base().Set("event_id", Q("a\x7f")).str(), "event_id: control characters"},
      {"NewlineInAccountRejected", Base().Set("account_id", Q("a\\nb")).str(),
       "account_id: control characters"},
      {"U0085Allowed", Base().Set("event_id", Q("a\xc2\x85z")).str(), ""},
      {"U0085EscapedAllowed", Base().Set("event_id", Q("a\\u0085z")).str(), ""},
      {"LoneSurrogateRejected", Base().Set("event_id", Q("a\\ud800")).str(),
       "event_id: invalid UTF-8"},
      {"LowSurrogateAloneRejected", Base().Set("meter_id", Q("\\udc00")).str(),
       "meter_id: invalid UTF-8"},
      {"SurrogatePairAccepted", Base().Set("event_id", Q("\\ud83d\\ude00")).str(), ""},
      {"KindDefaultUsage", Base().str(), ""},
      {"KindLowercase", Base().Set("kind", Q("usage")).str(), ""},
      {"KindUnknown", Base().Set("kind", Q("Use")).str(), "kind: must be Usage, Correction"},
      {"KindNull", Base().Set("kind", "null").str(), "kind: must be a string"},
      {"KindNumber", Base().Set("kind", "1").str(), "kind: must be a string"},
      {"CorrectionRequiresRef", Correction().Del("correction_ref").str(),
       "correction_ref: required for Correction"},
      {"CorrectionRefNullIsAbsent", Correction().Set("correction_ref", "null").str(),
       "correction_ref: required for Correction"},
      {"RetractionRequiresRef", Base().Set("kind", Q("Retraction")).Set("quantity", "-1").str(),
       "correction_ref: required for Retraction"},
      {"RefOnUsageRejected", Base().Set("correction_ref", R"({"original_event_id":"x"})").str(),
       "correction_ref: not allowed on Usage"},
      {"NullRefOnUsageAccepted", Base().Set("correction_ref", "null").str(), ""},
      {"RefNotObject", Correction().Set("correction_ref", Q("evt_0")).str(),
       "correction_ref: must be an object or null"},
      {"RefMissingOriginal", Correction().Set("correction_ref", R"({"reason":"x"})").str(),
       "correction_ref.original_event_id: required"},
      {"RefOriginalEmpty", Correction().Set("correction_ref", R"({"original_event_id":""})").str(),
       "correction_ref.original_event_id: must be 1-256 bytes"},
      {"RefOriginalControl",
       Correction().Set("correction_ref", R"({"original_event_id":"a\tb"})").str(),
       "correction_ref.original_event_id: control characters"},
      {"RefReasonNullAccepted",
       Correction().Set("correction_ref", R"({"original_event_id":"e","reason":null})").str(), ""},
      {"RefReason1024",
       Correction()
           .Set("correction_ref",
                R"({"original_event_id":"e","reason":")" + std::string(1024, 'r') + "\"}")
           .str(),
       ""},
      {"RefReason1025",
       Correction()
           .Set("correction_ref",
                R"({"original_event_id":"e","reason":")" + std::string(1025, 'r') + "\"}")
           .str(),
       "correction_ref.reason: must be at most 1024 bytes"},
      {"RefReasonNotString",
       Correction().Set("correction_ref", R"({"original_event_id":"e","reason":5})").str(),
       "correction_ref.reason: must be a string or null"},
      {"ControlCharInReasonAllowed",
       Correction()
           .Set("correction_ref", R"({"original_event_id":"e","reason":"a\u0001\n\u007fb"})")
           .str(),
       ""},
      {"NulInReasonRejected",
       Correction().Set("correction_ref", R"({"original_event_id":"e","reason":"a\u0000"})").str(),
       "correction_ref.reason: U+0000"},
      {"RefUnknownField",
       Correction().Set("correction_ref", R"({"original_event_id":"e","why":"x"})").str(),
       "correction_ref: unknown field: why"},
      {"RepeatedKeyInCorrectionRefRejected",
       Correction()
           .Set("correction_ref", R"({"original_event_id":"e","reason":"a","reason":"b"})")
           .str(),
       "correction_ref: duplicate key: reason"},
      {"AccountMissing", Base().Del("account_id").str(), "account_id: required"},
      {"AccountEmpty", Base().Set("account_id", Q("")).str(), "account_id: must be 1-256 bytes"},
      {"SubscriptionNullAccepted", Base().Set("subscription_id", "null").str(), ""},
      {"SubscriptionEmptyRejected", Base().Set("subscription_id", Q("")).str(),
       "subscription_id: must be 1-256 bytes"},
      {"SubscriptionNotString", Base().Set("subscription_id", "[]").str(),
       "subscription_id: must be a string or null"},
      {"ProductMissing", Base().Del("product_id").str(), "product_id: required"},
      {"MeterMissing", Base().Del("meter_id").str(), "meter_id: required"},
      {"ModelNullAccepted", Base().Set("model_id", "null").str(), ""},
      {"ModelTooLong", Base().Set("model_id", Q(std::string(257, 'm'))).str(),
       "model_id: must be 1-256 bytes"},
      {"TimestampMissing", Base().Del("timestamp_ms").str(), "timestamp_ms: required"},
      {"TimestampZero", Base().Set("timestamp_ms", "0").str(), "timestamp_ms: must be >= 1"},
      {"TimestampNegative", Base().Set("timestamp_ms", "-5").str(), "timestamp_ms: must be >= 1"},
      {"TimestampOne", Base().Set("timestamp_ms", "1").str(), ""},
      {"TimestampFarFutureNotCheckedHere", Base().Set("timestamp_ms", "9000000000000000000").str(),
       ""},
      {"TimestampString", Base().Set("timestamp_ms", Q("1779000000000")).str(),
       "timestamp_ms: must be an integer"},
      {"TimestampFloat", Base().Set("timestamp_ms", "1779000000000.0").str(),
       "timestamp_ms: must be an integer literal"},
      {"TimestampBeyondInt64", Base().Set("timestamp_ms", "9223372036854775808").str(),
       "timestamp_ms: out of the signed 64-bit range"},
      {"QuantityMissing", Base().Del("quantity").str(), "quantity: required"},
      {"QuantityFloatLiteralRejected", Base().Set("quantity", "5.0").str(),
       "quantity: must be an integer literal"},
      {"QuantityExponentRejected", Base().Set("quantity", "5e3").str(),
       "quantity: must be an integer literal"},
      {"QuantityNegativeZeroFloatRejected",
       Base().Set("kind", Q("Correction")).Set("quantity", "-0.0").str(),
       "quantity: must be an integer literal"},
      {"QuantityMinusZeroLiteralIsZero", Base().Set("quantity", "-0").str(), ""},
      {"QuantityStringAccepted", Base().Set("quantity", Q("5")).str(), ""},
      {"QuantityStringLeadingZerosAccepted", Base().Set("quantity", Q("0007")).str(), ""},
      {"QuantityStringPlusRejected", Base().Set("quantity", Q("+5")).str(),
       "quantity: a string quantity must match"},
      {"QuantityStringSpaceRejected", Base().Set("quantity", Q(" 5")).str(),
       "quantity: a string quantity must match"},
      {"QuantityStringFractionRejected", Base().Set("quantity", Q("5.0")).str(),
       "quantity: a string quantity must match"},
      {"QuantityStringEmptyRejected", Base().Set("quantity", Q("")).str(),
       "quantity: a string quantity must match"},
      {"Quantity38DigitsAccepted", Base().Set("quantity", std::string(38, '9')).str(), ""},
      {"Quantity39DigitsRejected", Base().Set("quantity", "1" + std::string(38, '0')).str(),
       "quantity: must have at most 38 digits"},
      {"QuantityString39DigitsRejected", Base().Set("quantity", Q(std::string(39, '9'))).str(),
       "quantity: a string quantity must match"},
      {"QuantityBoolRejected", Base().Set("quantity", "true").str(),
       "quantity: must be an integer or a string"},
      {"QuantityNullRejected", Base().Set("quantity", "null").str(),
       "quantity: must be an integer or a string"},
      {"UsageRequiresNonNegative", Base().Set("quantity", "-1").str(),
       "quantity: Usage requires quantity >= 0"},
      {"UsageStringNegativeRejected", Base().Set("quantity", Q("-1")).str(),
       "quantity: Usage requires quantity >= 0"},
      {"RetractionRequiresNonPositive",
       Correction().Set("kind", Q("Retraction")).Set("quantity", "1").str(),
       "quantity: Retraction requires quantity <= 0"},
      {"RetractionZeroAccepted",
       Correction().Set("kind", Q("Retraction")).Set("quantity", "0").str(), ""},
      {"CorrectionNegativeAccepted", Correction().Set("quantity", "-" + std::string(38, '9')).str(),
       ""},
      {"UnitMissing", Base().Del("unit").str(), "unit: required"},
      {"Unit64", Base().Set("unit", Q(std::string(64, 'u'))).str(), ""},
      {"Unit65", Base().Set("unit", Q(std::string(65, 'u'))).str(), "unit: must be 1-64 bytes"},
      {"SourceMissing", Base().Del("source").str(), "source: required"},
      {"Source128", Base().Set("source", Q(std::string(128, 's'))).str(), ""},
      {"Source129", Base().Set("source", Q(std::string(129, 's'))).str(),
       "source: must be 1-128 bytes"},
      {"DimensionsNullAccepted", Base().Set("dimensions", "null").str(), ""},
      {"DimensionsEmptyAccepted", Base().Set("dimensions", "{}").str(), ""},
      {"DimensionsNotObject", Base().Set("dimensions", "[]").str(),
       "dimensions: must be an object or null"},
      {"DimensionValueNotString", Base().Set("dimensions", R"({"a":1})").str(),
       "dimensions.a: value must be a string"},
      {"DimensionValueEmpty", Base().Set("dimensions", R"({"a":""})").str(),
       "dimensions.a: value must be 1-256 bytes"},
      {"DimensionValue256",
       Base().Set("dimensions", R"({"a":")" + std::string(256, 'v') + "\"}").str(), ""},
      {"DimensionValue257",
       Base().Set("dimensions", R"({"a":")" + std::string(257, 'v') + "\"}").str(),
       "dimensions.a: value must be 1-256 bytes"},
      {"ControlCharInDimensionValueAllowed",
       Base().Set("dimensions", R"({"a":"x\n\u0001y"})").str(), ""},
      {"NulInDimensionValueRejected", Base().Set("dimensions", R"({"a":"x\u0000"})").str(),
       "dimensions.a: U+0000"},
      {"DimensionKey64", Base().Set("dimensions", "{\"" + std::string(64, 'k') + "\":\"v\"}").str(),
       ""},
      {"DimensionKey65", Base().Set("dimensions", "{\"" + std::string(65, 'k') + "\":\"v\"}").str(),
       "dimensions: invalid key"},
      {"DimensionKeyCharset", Base().Set("dimensions", R"({"a_Z0.9:x-y":"v"})").str(), ""},
      {"DimensionKeyUnderscoreStart", Base().Set("dimensions", R"({"_a":"v"})").str(), ""},
      {"DimensionKeyDigitStartRejected", Base().Set("dimensions", R"({"1a":"v"})").str(),
       "dimensions: invalid key"},
      {"DimensionKeySpaceRejected", Base().Set("dimensions", R"({"a b":"v"})").str(),
       "dimensions: invalid key"},
      {"DimensionKeyEmptyRejected", Base().Set("dimensions", R"({"":"v"})").str(),
       "dimensions: invalid key"},
      {"DimensionKeyReservedRejected", Base().Set("dimensions", R"({"kind":"v"})").str(),
       "dimensions: key \"kind\" is a reserved name"},
      {"DimensionKeyReservedMonthRejected", Base().Set("dimensions", R"({"month":"v"})").str(),
       "is a reserved name"},
      {"RepeatedKeyInDimensionsRejected",
       Base().Set("dimensions", R"({"a":"1","b":"2","a":"3"})").str(),
       "dimensions: duplicate key: a"},
      {"RepeatedKeyInWrappedDimensionsRejected",
       Base().Set("dimensions", R"({"inner":{"a":"1","a":"1"}})").str(),
       "dimensions: duplicate key: a"},
      {"InnerWithSiblingRejected", Base().Set("dimensions", R"({"inner":{"a":"1"},"b":"2"})").str(),
       "dimensions.inner: value must be a string"},
      {"InnerAfterSiblingRejected",
       Base().Set("dimensions", R"({"b":"2","inner":{"a":"1"}})").str(),
       "dimensions.inner: value must be a string"},
      {"InnerStringIsOrdinaryDimension", Base().Set("dimensions", R"({"inner":"x"})").str(), ""},
      {"DoubleWrapRejected", Base().Set("dimensions", R"({"inner":{"inner":{"a":"1"}}})").str(),
       "dimensions.inner: value must be a string"},
      {"UnknownFieldRejected", Base().Set("subscriptionId", Q("s")).str(),
       "unknown field: subscriptionId"},
      {"UnknownFieldNullRejected", Base().Set("extra", "null").str(), "unknown field: extra"},
      {"RepeatedTopLevelKeyRejected", Base().Add("event_id", Q("evt_2")).str(),
       "duplicate key: event_id"},
      {"RepeatedKeyViaEscapeRejected", Base().Add("event\\u005fid", Q("evt_1")).str(),
       "duplicate key: event_id"},
      {"RepeatedKeyInsideIngestedAtRejected",
       Base().Set("ingested_at_ms", R"({"a":1,"a":2})").str(), "duplicate key: a"},
      {"IngestedAtIgnored", Base().Set("ingested_at_ms", "123").str(), ""},
      {"IngestedAtAnyValueIgnored", Base().Set("ingested_at_ms", R"({"a":[1,"x",null]})").str(),
       ""},
      {"NotAnObject", "[1,2]", "invalid JSON: an event must be a JSON object"},
      {"TruncatedJson", R"({"event_id":"a")", "invalid JSON"},
      {"LeadingZeroNumberIsInvalidJson", Base().Set("quantity", "007").str(), "invalid JSON"},
      {"BadAtomIsInvalidJson", Base().Set("model_id", "nul").str(), "invalid JSON"},
      {"BadEscapeIsInvalidJson", Base().Set("event_id", Q("a\\x")).str(), "invalid JSON"},
      {"TrailingContentIsInvalidJson", Base().str() + "}", "invalid JSON"},
      {"BadNumberInUnknownFieldIsInvalidJson", Base().Set("zzz", "1.").str(), "invalid JSON"},
  };
}

class RuleTable : public ::testing::TestWithParam<Case> {};

TEST_P(RuleTable, ReasonMatches) {
  const Case& c = GetParam();
  DecodedEvent d = DecodeEventJson(c.json);
  if (std::string(c.reason_fragment).empty()) {
    EXPECT_TRUE(d.ok()) << c.json << " -> " << d.reject_reason;
  } else {
    EXPECT_FALSE(d.ok()) << c.json;
    EXPECT_THAT(d.reject_reason, HasSubstr(c.reason_fragment)) << c.json;
  }
}

INSTANTIATE_TEST_SUITE_P(Spec1, RuleTable, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(p.param.name);
                         });

// ---------------------------------------------------------------------------------------------
// Named decoding behaviours.

TEST(DecodeEventJson, FieldsAreDecoded) {
  Event e = Accept(Base()
                       .Set("subscription_id", Q("sub_9"))
                       .Set("model_id", Q("m1"))
                       .Set("dimensions", R"({"provider":"anthropic","agent":"support"})")
                       .str());
  EXPECT_EQ(e.event_id, "evt_1");
  EXPECT_EQ(e.kind, EventKind::kUsage);
  EXPECT_FALSE(e.has_correction_ref);
  EXPECT_EQ(e.account_id, "acc_1");
  EXPECT_EQ(e.subscription_id, "sub_9");
  EXPECT_EQ(e.product_id, "ai_gateway");
  EXPECT_EQ(e.meter_id, "tokens.input");
  EXPECT_EQ(e.model_id, "m1");
  EXPECT_EQ(e.timestamp_ms, 1779000000000);
  EXPECT_TRUE(e.quantity == 42);
  EXPECT_EQ(e.unit, "token");
  EXPECT_EQ(e.source, "collector-a");
  ASSERT_EQ(e.dimensions.size(), 2u);
  EXPECT_EQ(e.dimensions[0].first, "agent");  // sorted by key bytes
  EXPECT_EQ(e.dimensions[1].first, "provider");
}

TEST(DecodeEventJson, KindCaseInsensitive) {
  for (const char* k : {"usage", "USAGE", "UsAgE"}) {
    EXPECT_EQ(Accept(Base().Set("kind", Q(k)).str()).kind, EventKind::kUsage);
  }
  Event c = Accept(Correction().Set("kind", Q("cOrReCtIoN")).str());
  EXPECT_EQ(c.kind, EventKind::kCorrection);
  std::string json;
  AppendEventJson(c, &json);
  EXPECT_THAT(json, HasSubstr(R"("kind":"Correction")"));
  EXPECT_EQ(Accept(Correction().Set("kind", Q("RETRACTION")).Set("quantity", "-1").str()).kind,
            EventKind::kRetraction);
}

TEST(DecodeEventJson, QuantityBeyond64BitsIsExact) {
  // 2^64 + 1 and the extremes of DECIMAL(38,0).
  Event e = Accept(Base().Set("quantity", "18446744073709551617").str());
  EXPECT_TRUE(e.quantity == (static_cast<__int128>(1) << 64) + 1);
  e = Accept(Base().Set("quantity", std::string(38, '9')).str());
  EXPECT_TRUE(e.quantity == kMaxQuantity);
  e = Accept(Correction().Set("quantity", "-" + std::string(38, '9')).str());
  EXPECT_TRUE(e.quantity == -kMaxQuantity);
  e = Accept(Correction().Set("quantity", Q("-" + std::string(38, '9'))).str());
  EXPECT_TRUE(e.quantity == -kMaxQuantity);
}

TEST(DecodeEventJson, QuantityStringEqualsLiteral) {
  EXPECT_EQ(Accept(Base().Set("quantity", Q("0005")).str()),
            Accept(Base().Set("quantity", "5").str()));
}

TEST(DecodeEventJson, ReasonNullEqualsAbsentEqualsEmpty) {
  Event a = Accept(Correction().Set("correction_ref", R"({"original_event_id":"e"})").str());
  Event b = Accept(
      Correction().Set("correction_ref", R"({"original_event_id":"e","reason":null})").str());
  Event c =
      Accept(Correction().Set("correction_ref", R"({"original_event_id":"e","reason":""})").str());
  EXPECT_TRUE(a.has_correction_ref);
  EXPECT_EQ(a.correction_original_event_id, "e");
  EXPECT_EQ(a.correction_reason, "");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

TEST(DecodeEventJson, WrappedDimensionsEqualPlain) {
  Event wrapped = Accept(Base().Set("dimensions", R"({"inner":{"b":"2","a":"1"}})").str());
  Event plain = Accept(Base().Set("dimensions", R"({"a":"1","b":"2"})").str());
  EXPECT_EQ(wrapped, plain);
  EXPECT_EQ(PayloadDigest(wrapped), PayloadDigest(plain));
  Event empty_wrapped = Accept(Base().Set("dimensions", R"({"inner":{}})").str());
  EXPECT_TRUE(empty_wrapped.dimensions.empty());
}

TEST(DecodeEventJson, InnerStringIsOrdinaryDimension) {
  Event e = Accept(Base().Set("dimensions", R"({"inner":"x"})").str());
  ASSERT_EQ(e.dimensions.size(), 1u);
  EXPECT_EQ(e.dimensions[0], std::make_pair(std::string("inner"), std::string("x")));
}

TEST(DecodeEventJson, SixteenDimensionsAcceptedSeventeenRejected) {
  std::string dims = "{";
  for (int i = 0; i < 16; ++i) {
    dims += (i ? "," : "") + Q("k" + std::to_string(i)) + ":\"v\"";
  }
  EXPECT_EQ(Reason(Base().Set("dimensions", dims + "}").str()), "");
  EXPECT_THAT(Reason(Base().Set("dimensions", dims + ",\"k16\":\"v\"}").str()),
              HasSubstr("dimensions: at most 16 keys"));
}

TEST(DecodeEventJson, EveryReservedNameRejectedAsDimensionKey) {
  for (const char* k :
       {"account_id", "subscription_id", "product_id", "meter_id", "model_id", "source", "unit",
        "kind", "hour_start_ms", "day", "date", "month", "event_id", "timestamp_ms", "quantity",
        "ingested_at_ms", "correction_ref", "dimensions"}) {
    EXPECT_THAT(Reason(Base().Set("dimensions", "{" + Q(k) + ":\"v\"}").str()),
                HasSubstr("is a reserved name"))
        << k;
  }
  for (const char* k : {"Kind", "days", "dat", "unit_", "source.x", "provider"}) {
    EXPECT_EQ(Reason(Base().Set("dimensions", "{" + Q(k) + ":\"v\"}").str()), "") << k;
  }
}

TEST(DecodeEventJson, NulEscapeDecodesToNul) {
  Event e = Accept(Base().Set("dimensions", R"({"a":"x\n"})").str());
  EXPECT_EQ(e.dimensions[0].second, "x\n");
  EXPECT_THAT(Reason(Base().Set("event_id", Q("a\\u0000")).str()),
              HasSubstr("event_id: control characters"));
}

TEST(DecodeEventJson, EventIdReportedWhenReadable) {
  DecodedEvent d = DecodeEventJson(Base().Set("quantity", "-1").str());
  EXPECT_FALSE(d.ok());
  EXPECT_EQ(d.event_id_for_report, "evt_1");
  d = DecodeEventJson(Base().Set("event_id", "5").str());
  EXPECT_EQ(d.event_id_for_report, "");
  d = DecodeEventJson(Base().Set("event_id", Q(std::string(300, 'x'))).str());
  EXPECT_EQ(d.event_id_for_report, std::string(300, 'x'));
}

TEST(DecodeEventJson, FirstRuleViolationWins) {
  // Type-level problems are reported in document order before value rules.
  EXPECT_EQ(Reason(Base().Set("zzz", "1").Set("quantity", "-1").str()), "unknown field: zzz");
  EXPECT_EQ(Reason(Base().Set("quantity", "-1").str()), "quantity: Usage requires quantity >= 0");
}

TEST(DecodeEventJson, UnknownFieldNameIsEscapedInReason) {
  EXPECT_EQ(Reason(Base().Set("a\\nb", "1").str()), "unknown field: a\\nb");
}

TEST(DecodeEventJson, DeepNestingRejectedNotCrashing) {
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  DecodedEvent d = DecodeEventJson(Base().Set("ingested_at_ms", deep).str());
  EXPECT_FALSE(d.ok());
  std::string mid(100, '[');
  mid += std::string(100, ']');
  d = DecodeEventJson(Base().Set("ingested_at_ms", mid).str());
  EXPECT_THAT(d.reject_reason, HasSubstr("nested deeper than"));
}

TEST(DecodeEventJson, InvalidUtf8Rejected) {
  std::string json = Base().Set("meter_id", Q("tok\xff")).str();
  EXPECT_EQ(Reason(json), "meter_id: invalid UTF-8");
  json = Base().Set("dimensions", "{\"a\":\"\xc0\xaf\"}").str();  // overlong '/'
  EXPECT_EQ(Reason(json), "dimensions.a: invalid UTF-8");
  json = Base().Set("dimensions", "{\"a\xed\xa0\x80\":\"v\"}").str();  // encoded surrogate
  EXPECT_THAT(Reason(json), HasSubstr("invalid UTF-8"));
  json = Base().Set("ingested_at_ms", Q("\xfe")).str();
  EXPECT_EQ(Reason(json), "ingested_at_ms: invalid UTF-8");
}

// ---------------------------------------------------------------------------------------------
// Batches.

std::string Batch(const std::vector<std::string>& events) {
  std::string s = R"({"events":[)";
  for (size_t i = 0; i < events.size(); ++i) s += (i ? "," : "") + events[i];
  return s + "]}";
}

TEST(DecodeBatchJson, DecodesEveryElement) {
  std::vector<DecodedEvent> out;
  ASSERT_TRUE(DecodeBatchJson(Batch({Base().str(), Base().Set("quantity", "-1").str(), "5",
                                     Base().Set("event_id", Q("evt_2")).str()}),
                              &out)
                  .ok());
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(out[0].ok());
  EXPECT_EQ(out[1].reject_reason, "quantity: Usage requires quantity >= 0");
  EXPECT_EQ(out[2].reject_reason, "event: must be a JSON object");
  EXPECT_TRUE(out[3].ok());
  EXPECT_EQ(out[3].event.event_id, "evt_2");
}

TEST(DecodeBatchJson, EmptyEventsArray) {
  std::vector<DecodedEvent> out(3);
  ASSERT_TRUE(DecodeBatchJson(R"( {"events": []} )", &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(DecodeBatchJson, UnusableBodiesFailTheBatch) {
  std::vector<DecodedEvent> out;
  struct {
    const char* body;
    const char* fragment;
  } cases[] = {
      {"", "invalid JSON"},
      {"not json", "invalid JSON"},
      {"[1]", "must be a JSON object"},
      {"5", "must be a JSON object"},
      {"nul", "invalid JSON"},
      {"1.", "invalid JSON"},
      {"[1,]", "invalid JSON"},
      {"\"x\" 5", "invalid JSON"},
      {"{}", "missing events array"},
      {R"({"events": {}})", "events: must be an array"},
      {R"({"events": [], "extra": 1, "more": {}})", "extra, more"},
      {R"({"events": [], "events": []})", "events"},
      {R"({"events": []} x)", "invalid JSON"},
      {R"({"events": [{"event_id": 01}]})", "invalid JSON"},
      {R"({"events": [{"event_id": "a"})", "invalid JSON"},
      {R"({"events": [{"x": tru}]})", "invalid JSON"},
  };
  for (const auto& c : cases) {
    Status s = DecodeBatchJson(c.body, &out);
    EXPECT_TRUE(s.IsInvalidArgument()) << c.body;
    EXPECT_THAT(s.message(), HasSubstr(c.fragment)) << c.body;
    EXPECT_TRUE(out.empty());
  }
}

TEST(DecodeBatchJson, InvalidUtf8RejectsOnlyItsEvent) {
  std::vector<DecodedEvent> out;
  std::string body = Batch({Base().str(), Base().Set("account_id", Q("acc\x80")).str(),
                            Base().Set("event_id", Q("\xef\xbf\xbd")).str()});
  ASSERT_TRUE(DecodeBatchJson(body, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].ok());
  EXPECT_EQ(out[1].reject_reason, "account_id: invalid UTF-8");
  EXPECT_EQ(out[1].event_id_for_report, "evt_1");
  // A genuine U+FFFD is not mistaken for a replaced byte.
  EXPECT_TRUE(out[2].ok()) << out[2].reject_reason;
}

TEST(DecodeBatchJson, TooManyEventsAborts) {
  std::vector<DecodedEvent> out;
  BatchDecodeOptions opt;
  opt.max_events = 2;
  EXPECT_TRUE(DecodeBatchJson(Batch({Base().str(), Base().str()}), opt, &out).ok());
  Status s = DecodeBatchJson(Batch({Base().str(), Base().str(), Base().str()}), opt, &out);
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_THAT(s.message(), StartsWith("too_many_events"));
  EXPECT_TRUE(out.empty());
}

TEST(DecodeBatchJson, PaddedBodyParsedInPlace) {
  std::string body = Batch({Base().str()});
  std::string buf = body + std::string(kJsonPadding, 'x');
  BatchDecodeOptions opt;
  opt.body_is_padded = true;
  std::vector<DecodedEvent> out;
  ASSERT_TRUE(DecodeBatchJson(std::string_view(buf.data(), body.size()), opt, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].ok());
}

TEST(DecodeBatchJson, LargeBodyUsesOwnParser) {
  std::vector<std::string> events;
  for (int i = 0; i < 8000; ++i) {
    events.push_back(Base().Set("event_id", Q("evt_" + std::to_string(i))).str());
  }
  std::string body = Batch(events);
  ASSERT_GT(body.size(), 1u << 20);
  std::vector<DecodedEvent> out;
  ASSERT_TRUE(DecodeBatchJson(body, &out).ok());
  ASSERT_EQ(out.size(), 8000u);
  EXPECT_EQ(out[7999].event.event_id, "evt_7999");
}

TEST(DecodeBatchNdjson, BlankLinesAreNotCounted) {
  std::vector<DecodedEvent> out;
  std::string body = "\n" + Base().str() + "\r\n\r\n   \t\n" + "[1]\n" +
                     Base().Set("event_id", Q("evt_2")).str() + "\n{\"event_id\":\n" +
                     Base().Set("quantity", "-1").str();  // no final newline
  DecodeBatchNdjson(body, &out);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_TRUE(out[0].ok()) << out[0].reject_reason;  // CRLF line
  EXPECT_THAT(out[1].reject_reason, StartsWith("invalid JSON: "));
  EXPECT_TRUE(out[2].ok());
  EXPECT_EQ(out[2].event.event_id, "evt_2");
  EXPECT_THAT(out[3].reject_reason, StartsWith("invalid JSON: "));
  EXPECT_EQ(out[4].reject_reason, "quantity: Usage requires quantity >= 0");
}

TEST(DecodeBatchNdjson, EmptyBodyHasNoEvents) {
  std::vector<DecodedEvent> out(1);
  DecodeBatchNdjson("", &out);
  EXPECT_TRUE(out.empty());
  DecodeBatchNdjson("\r\n\n \n\r", &out);
  EXPECT_TRUE(out.empty());
}

TEST(DecodeBatchNdjson, InvalidUtf8LineRejectedOthersAccepted) {
  std::vector<DecodedEvent> out;
  DecodeBatchNdjson(Base().Set("unit", Q("t\xc3")).str() + "\n" + Base().str(), &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].reject_reason, "unit: invalid UTF-8");
  EXPECT_TRUE(out[1].ok());
}

TEST(DecodeBatchNdjson, TooManyEventsAborts) {
  std::vector<DecodedEvent> out;
  BatchDecodeOptions opt;
  opt.max_events = 1;
  Status s = DecodeBatchNdjson(Base().str() + "\n\n" + Base().str(), opt, &out);
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_TRUE(out.empty());
}

// ---------------------------------------------------------------------------------------------
// ValidateEvent (embedded API).

Event ValidEvent() {
  Event e;
  e.event_id = "evt_1";
  e.account_id = "acc_1";
  e.product_id = "p";
  e.meter_id = "m";
  e.timestamp_ms = 1;
  e.quantity = 5;
  e.unit = "token";
  e.source = "src";
  return e;
}

TEST(ValidateEvent, SortsDimensions) {
  Event e = ValidEvent();
  e.dimensions = {{"b", "2"}, {"a", "1"}};
  EXPECT_EQ(ValidateEvent(&e), "");
  EXPECT_EQ(e.dimensions[0].first, "a");
}

// The vector tests of the quick rule check read short strings with overlapping loads: every
// length from 0 to 40 (all within the length limits), every byte value at every position,
// against the byte-by-byte rules.
TEST(ValidateEvent, QuickStringChecksAreExactForEveryLengthAndByte) {
  auto key_char = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  };
  for (size_t n = 0; n <= 40; n++) {
    for (size_t pos = 0; pos < std::max<size_t>(n, 1); pos++) {
      for (int b = 0; b < 256; b++) {
        std::string s(n, 'k');
        if (n > 0) s[pos] = static_cast<char>(b);
        const auto c = static_cast<unsigned char>(b);
        // Dimension key syntax: first byte a letter or '_', every byte a key character.
        const bool key_ok =
            n > 0 &&
            ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_') &&
            (n == 0 || key_char(static_cast<unsigned char>(s[pos])));
        ASSERT_EQ(key_ok, model_internal::IsValidDimensionKeySyntax(s))
            << n << " " << pos << " " << b;
        if (n == 0) continue;
        // An identifier: valid iff the byte is printable ASCII (a lone byte >= 0x80 is invalid
        // UTF-8, < 0x20 or 0x7f a control character).
        Event e = ValidEvent();
        e.account_id = s;
        const bool id_ok = c >= 0x20 && c < 0x7f;
        ASSERT_EQ(id_ok, ValidateEvent(&e).empty()) << n << " " << pos << " " << b;
        // A dimension value: control characters allowed, NUL and invalid UTF-8 not.
        Event d = ValidEvent();
        d.dimensions = {{"k", s}};
        const bool value_ok = c != 0 && c < 0x80;
        ASSERT_EQ(value_ok, ValidateEvent(&d).empty()) << n << " " << pos << " " << b;
      }
    }
  }
}

TEST(ValidateEvent, RejectsWhatJsonRejects) {
  auto reason = [](auto mutate) {
    Event e = ValidEvent();
    mutate(e);
    return ValidateEvent(&e);
  };
  EXPECT_THAT(reason([](Event& e) {
                e.dimensions = {{"a", "1"}, {"a", "2"}};
              }),
              HasSubstr("dimensions: duplicate key: a"));
  EXPECT_THAT(reason([](Event& e) { e.account_id = "a\xff"; }),
              HasSubstr("account_id: invalid UTF-8"));
  EXPECT_THAT(reason([](Event& e) { e.event_id = std::string("a\0b", 3); }),
              HasSubstr("event_id: control characters"));
  EXPECT_THAT(reason([](Event& e) { e.has_correction_ref = true; }),
              HasSubstr("correction_ref: not allowed on Usage"));
  EXPECT_THAT(reason([](Event& e) { e.kind = EventKind::kRetraction; }),
              HasSubstr("correction_ref: required for Retraction"));
  EXPECT_THAT(reason([](Event& e) { e.correction_reason = "x"; }),
              HasSubstr("has_correction_ref is false"));
  EXPECT_THAT(reason([](Event& e) { e.quantity = kMaxQuantity + 1; }),
              HasSubstr("quantity: must have at most 38 digits"));
  EXPECT_THAT(reason([](Event& e) { e.quantity = -1; }), HasSubstr("Usage requires"));
  EXPECT_THAT(reason([](Event& e) { e.timestamp_ms = 0; }), HasSubstr("timestamp_ms"));
  EXPECT_THAT(reason([](Event& e) { e.model_id = ""; }), HasSubstr("model_id: must be 1-256"));
  EXPECT_THAT(reason([](Event& e) {
                e.dimensions = {{"quantity", "1"}};
              }),
              HasSubstr("reserved name"));
  EXPECT_THAT(reason([](Event& e) { e.kind = static_cast<EventKind>(7); }), HasSubstr("kind"));
  EXPECT_EQ(reason([](Event& e) { e.model_id = "m\xc2\x85"; }), "");
}

// ---------------------------------------------------------------------------------------------
// Canonical forms.

TEST(CanonicalDimensions, EmptyIsBraces) { EXPECT_EQ(CanonicalDimensions({}), "{}"); }

TEST(CanonicalDimensions, SortedCompactExample) {
  EXPECT_EQ(CanonicalDimensions({{"provider", "anthropic"}, {"agent", "support-agent"}}),
            R"({"agent":"support-agent","provider":"anthropic"})");
}

TEST(CanonicalDimensions, Escaping) {
  std::string v = std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9") + '\0';
  EXPECT_EQ(CanonicalDimensions({{"k", v}}),
            "{\"k\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\xc3\xa9\\u0000\"}");
}

TEST(CanonicalDimensions, SortsByBytes) {
  EXPECT_EQ(CanonicalDimensions({{"b", "1"}, {"B", "2"}, {"_", "3"}}),
            R"({"B":"2","_":"3","b":"1"})");
}

TEST(ParseCanonicalDimensions, RoundTripAndStrictness) {
  std::vector<std::pair<std::string, std::string>> dims;
  ASSERT_TRUE(ParseCanonicalDimensions("{}", &dims).ok());
  EXPECT_TRUE(dims.empty());
  ASSERT_TRUE(ParseCanonicalDimensions(R"({"a":"x\ny\u001f","b":"\"\\"})", &dims).ok());
  ASSERT_EQ(dims.size(), 2u);
  EXPECT_EQ(dims[0].second, "x\ny\x1f");
  EXPECT_EQ(dims[1].second, "\"\\");
  for (const char* bad :
       {"", "{", "{ }", R"({"a":"1" })", R"({"b":"1","a":"2"})", R"({"a":"1","a":"2"})",
        R"({"a":"\u000a"})", R"({"a":"\u001F"})", R"({"a":"\/"})", "{\"a\":\"\x01\"}", R"({"a":1})",
        R"({"a":"1",})", R"({"a":"1"}x)", "{\"a\":\"\xff\"}"}) {
    EXPECT_TRUE(ParseCanonicalDimensions(bad, &dims).IsCorruption()) << bad;
  }
}

TEST(AppendJsonString, CanonicalEscapes) {
  std::string out;
  AppendJsonString("a\"\\\n\x02/\xe2\x82\xac", &out);
  EXPECT_EQ(out, "\"a\\\"\\\\\\n\\u0002/\xe2\x82\xac\"");
}

// ---------------------------------------------------------------------------------------------
// Payload digest.

TEST(PayloadDigest, NormalisedFormsAreEqual) {
  auto digest = [](const J& j) { return PayloadDigest(Accept(j.str())); };
  J base = Base().Set("dimensions", R"({"a":"1","b":"2"})");
  EXPECT_EQ(digest(base), digest(J(base).Set("quantity", Q("42"))));
  EXPECT_EQ(digest(base), digest(J(base).Set("quantity", Q("00042"))));
  EXPECT_EQ(digest(base), digest(J(base).Set("dimensions", R"({"b":"2","a":"1"})")));
  EXPECT_EQ(digest(base), digest(J(base).Set("dimensions", R"({"inner":{"b":"2","a":"1"}})")));
  EXPECT_EQ(digest(base), digest(J(base).Set("kind", Q("USAGE"))));
  EXPECT_EQ(digest(base), digest(J(base).Set("subscription_id", "null").Set("model_id", "null")));
  EXPECT_EQ(digest(base), digest(J(base).Set("ingested_at_ms", "77")));
  EXPECT_EQ(digest(base), digest(J(base).Set("correction_ref", "null")));
  EXPECT_EQ(digest(Base()), digest(Base().Set("dimensions", "null")));
  EXPECT_EQ(digest(Base()), digest(Base().Set("dimensions", "{}")));
  EXPECT_EQ(
      digest(Correction().Set("correction_ref", R"({"original_event_id":"e"})")),
      digest(Correction().Set("correction_ref", R"({"original_event_id":"e","reason":null})")));
  EXPECT_EQ(digest(Correction().Set("correction_ref", R"({"original_event_id":"e"})")),
            digest(Correction().Set("correction_ref", R"({"original_event_id":"e","reason":""})")));
  Event e = Accept(base.str());
  e.ingested_at_ms = 5;
  e.commit_seq = 9;
  EXPECT_EQ(PayloadDigest(e), digest(base));
}

TEST(PayloadDigest, EveryFieldChangesTheDigest) {
  Event base = ValidEvent();
  base.kind = EventKind::kCorrection;
  base.has_correction_ref = true;
  base.correction_original_event_id = "orig";
  base.correction_reason = "r";
  base.subscription_id = "s";
  base.model_id = "m";
  base.dimensions = {{"a", "1"}};
  const Digest128 d0 = PayloadDigest(base);
  std::vector<std::pair<const char*, void (*)(Event&)>> mutations = {
      {"event_id", [](Event& e) { e.event_id += "x"; }},
      {"kind", [](Event& e) { e.kind = EventKind::kRetraction; }},
      {"has_correction_ref",
       [](Event& e) {
         e.has_correction_ref = false;
         e.correction_original_event_id.clear();
         e.correction_reason.clear();
       }},
      {"original_event_id", [](Event& e) { e.correction_original_event_id += "x"; }},
      {"reason", [](Event& e) { e.correction_reason += "x"; }},
      {"account_id", [](Event& e) { e.account_id += "x"; }},
      {"subscription_id", [](Event& e) { *e.subscription_id += "x"; }},
      {"subscription_absent", [](Event& e) { e.subscription_id.reset(); }},
      {"product_id", [](Event& e) { e.product_id += "x"; }},
      {"meter_id", [](Event& e) { e.meter_id += "x"; }},
      {"model_id", [](Event& e) { *e.model_id += "x"; }},
      {"model_absent", [](Event& e) { e.model_id.reset(); }},
      {"timestamp_ms", [](Event& e) { e.timestamp_ms += 1; }},
      {"quantity", [](Event& e) { e.quantity += 1; }},
      {"quantity_high_bits", [](Event& e) { e.quantity += static_cast<__int128>(1) << 64; }},
      {"unit", [](Event& e) { e.unit += "x"; }},
      {"source", [](Event& e) { e.source += "x"; }},
      {"dimension_value", [](Event& e) { e.dimensions[0].second += "x"; }},
      {"dimension_key", [](Event& e) { e.dimensions[0].first += "x"; }},
      {"dimension_added", [](Event& e) { e.dimensions.emplace_back("b", "2"); }},
      {"dimensions_removed", [](Event& e) { e.dimensions.clear(); }},
  };
  for (const auto& [name, mutate] : mutations) {
    Event e = base;
    mutate(e);
    EXPECT_NE(PayloadDigest(e), d0) << name;
  }
}

TEST(PayloadDigest, FieldBoundariesAreUnambiguous) {
  Event a = ValidEvent(), b = ValidEvent();
  a.product_id = "ab";
  a.meter_id = "c";
  b.product_id = "a";
  b.meter_id = "bc";
  EXPECT_NE(PayloadDigest(a), PayloadDigest(b));
  a = ValidEvent();
  b = ValidEvent();
  a.subscription_id = "x";
  b.model_id = "x";
  EXPECT_NE(PayloadDigest(a), PayloadDigest(b));
  a = ValidEvent();
  b = ValidEvent();
  a.dimensions = {{"a", "bc"}};
  b.dimensions = {{"ab", "c"}};
  EXPECT_NE(PayloadDigest(a), PayloadDigest(b));
}

// The digest is persisted (dedupe index): its canonical byte string must never change.
TEST(PayloadDigest, GoldenValue) {
  Event e = ValidEvent();
  e.dimensions = {{"provider", "anthropic"}};
  e.quantity = -kMaxQuantity;
  e.kind = EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = "o";
  Digest128 d = PayloadDigest(e);
  EXPECT_EQ(d.lo, 2882578059366345211u);
  EXPECT_EQ(d.hi, 8913665925180865198u);
}

// ---------------------------------------------------------------------------------------------
// Binary codec.

Event FullEvent() {
  Event e = ValidEvent();
  e.kind = EventKind::kCorrection;
  e.has_correction_ref = true;
  e.correction_original_event_id = "orig";
  e.correction_reason = "why";
  e.subscription_id = "sub";
  e.model_id = "model";
  e.quantity = -kMaxQuantity;
  e.timestamp_ms = -3;
  e.dimensions = {{"a", "1"}, {"b", std::string("\0\xff", 2)}};
  return e;
}

TEST(EventBinary, RoundTrip) {
  Event e = FullEvent();
  std::string buf;
  EncodeEventBinary(e, &buf);
  Decoder in(buf);
  Event back;
  back.ingested_at_ms = 0;
  ASSERT_TRUE(DecodeEventBinary(&in, &back));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(back, e);
}

TEST(EventBinary, TwoRecordsBackToBack) {
  std::string buf;
  Event a = FullEvent(), b = ValidEvent();
  EncodeEventBinary(a, &buf);
  EncodeEventBinary(b, &buf);
  Decoder in(buf);
  Event x, y;
  ASSERT_TRUE(DecodeEventBinary(&in, &x));
  ASSERT_TRUE(DecodeEventBinary(&in, &y));
  EXPECT_EQ(x, a);
  EXPECT_EQ(y, b);
  EXPECT_TRUE(in.empty());
}

TEST(EventBinary, EveryTruncationFails) {
  std::string buf;
  EncodeEventBinary(FullEvent(), &buf);
  for (size_t n = 0; n < buf.size(); ++n) {
    Decoder in(std::string_view(buf.data(), n));
    Event e;
    EXPECT_FALSE(DecodeEventBinary(&in, &e)) << n;
  }
}

TEST(EventBinary, MalformedFieldsFail) {
  std::string good;
  EncodeEventBinary(ValidEvent(), &good);
  auto fails = [](std::string bytes) {
    Decoder in(bytes);
    Event e;
    return !DecodeEventBinary(&in, &e);
  };
  std::string bad = good;
  bad[0] = static_cast<char>(0x80);  // unknown flag bit
  EXPECT_TRUE(fails(bad));
  bad = good;
  bad[1] = 3;  // unknown kind
  EXPECT_TRUE(fails(bad));
  // Quantity beyond 38 digits.
  Event big = ValidEvent();
  big.quantity = kMaxQuantity + 1;
  std::string b;
  EncodeEventBinary(big, &b);
  EXPECT_TRUE(fails(b));
  // Dimensions out of order.
  Event unsorted = ValidEvent();
  unsorted.dimensions = {{"b", "1"}, {"a", "2"}};
  b.clear();
  EncodeEventBinary(unsorted, &b);
  EXPECT_TRUE(fails(b));
}

TEST(EventBinary, FusedEncoderWritesTheSameRecordAndDigest) {
  // Every field's variants, short and long strings (the inline copies switch at 4, 8, 16, 32
  // bytes), 128-bit quantities, and unsorted dimensions (the fallback).
  std::vector<Event> events = {ValidEvent(), FullEvent()};
  Event e = FullEvent();
  e.event_id = std::string(200, 'i');
  e.account_id = "abc";
  e.product_id = "abcd";
  e.meter_id = std::string(16, 'm');
  e.unit = std::string(17, 'u');
  e.source = std::string(33, 's');
  e.correction_reason = std::string(300, 'r');
  e.subscription_id.reset();
  e.quantity = -kMaxQuantity;
  e.timestamp_ms = -5;
  e.dimensions = {{"a", ""}, {"b", std::string(31, 'v')}, {"c", std::string(8, 'w')}};
  events.push_back(e);
  e.kind = EventKind::kUsage;
  e.has_correction_ref = false;
  e.correction_original_event_id.clear();
  e.correction_reason.clear();
  e.model_id.reset();
  e.quantity = kMaxQuantity;
  events.push_back(e);
  e.dimensions = {{"b", "1"}, {"a", "2"}};
  events.push_back(e);
  e.dimensions.clear();
  e.quantity = 0;
  events.push_back(e);
  for (size_t i = 0; i < events.size(); i++) {
    std::string want = "prefix", got = "prefix";
    EncodeEventBinary(events[i], &want);
    const Digest128 d = EncodeEventBinaryAndDigest(events[i], &got);
    EXPECT_EQ(want, got) << i;
    EXPECT_EQ(PayloadDigest(events[i]), d) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON output.

TEST(AppendEventJson, Shape) {
  Event e = FullEvent();
  e.timestamp_ms = 1779000000000;
  e.dimensions = {{"a", "1"}, {"b", "x\n"}};
  e.ingested_at_ms = 1779000000123;
  std::string out;
  AppendEventJson(e, &out);
  EXPECT_EQ(
      out,
      R"({"event_id":"evt_1","kind":"Correction","correction_ref":{"original_event_id":"orig","reason":"why"},)"
      R"("account_id":"acc_1","subscription_id":"sub","product_id":"p","meter_id":"m","model_id":"model",)"
      R"("timestamp_ms":1779000000000,"quantity":-99999999999999999999999999999999999999,)"
      R"("unit":"token","source":"src","dimensions":{"a":"1","b":"x\n"},"ingested_at_ms":1779000000123})");
  out.clear();
  AppendEventJson(ValidEvent(), &out);
  EXPECT_THAT(out, HasSubstr(R"("correction_ref":null)"));
  EXPECT_THAT(out, HasSubstr(R"("subscription_id":null)"));
  EXPECT_THAT(out, HasSubstr(R"("model_id":null)"));
  EXPECT_THAT(out, HasSubstr(R"("dimensions":{})"));
}

TEST(AppendEventJson, QuantityCanonical) {
  Event e = Accept(Base().Set("quantity", Q("-0")).str());
  std::string out;
  AppendEventJson(e, &out);
  EXPECT_THAT(out, HasSubstr(R"("quantity":0,)"));
}

// ---------------------------------------------------------------------------------------------
// Properties.

// Valid UTF-8 without control characters, 1..min(max, 24) code points (REQUIRES: called
// inside a RapidCheck generation context).
std::string GenIdentifierValue(size_t max) {
  size_t n = *rc::gen::inRange<size_t>(1, std::min<size_t>(max / 4, 24) + 1);
  auto cps = *rc::gen::container<std::vector<int>>(
      n, rc::gen::weightedOneOf<int>({{8, rc::gen::inRange(0x20, 0x7f)},
                                      {1, rc::gen::inRange(0x80, 0x800)},
                                      {1, rc::gen::inRange(0x10000, 0x110000)}}));
  std::string s;
  for (int c : cps) {
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else if (c < 0x800) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (c >> 18));
      s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return s;
}

rc::Gen<std::string> GenFreeText() {  // reason and dimension values: anything but NUL
  return rc::gen::map(rc::gen::container<std::string>(rc::gen::inRange<char>(1, 0x7f)),
                      [](std::string s) { return s.empty() ? std::string("v") : s; });
}

rc::Gen<Event> GenValidEvent() {
  return rc::gen::exec([] {
    Event e;
    e.event_id = GenIdentifierValue(256);
    e.kind = static_cast<EventKind>(*rc::gen::inRange(0, 3));
    if (e.kind != EventKind::kUsage) {
      e.has_correction_ref = true;
      e.correction_original_event_id = GenIdentifierValue(256);
      e.correction_reason = *rc::gen::oneOf(rc::gen::just(std::string()), GenFreeText());
    }
    e.account_id = GenIdentifierValue(256);
    if (*rc::gen::arbitrary<bool>()) e.subscription_id = GenIdentifierValue(256);
    e.product_id = GenIdentifierValue(256);
    e.meter_id = GenIdentifierValue(256);
    if (*rc::gen::arbitrary<bool>()) e.model_id = GenIdentifierValue(256);
    e.timestamp_ms = *rc::gen::inRange<int64_t>(1, INT64_MAX);
    unsigned __int128 mag = (static_cast<unsigned __int128>(*rc::gen::arbitrary<uint64_t>()) << 64 |
                             *rc::gen::arbitrary<uint64_t>()) %
                            static_cast<unsigned __int128>(kMaxQuantity + 1);
    if (*rc::gen::arbitrary<bool>()) mag %= 1000;
    __int128 q = static_cast<__int128>(mag);
    if (e.kind == EventKind::kRetraction ||
        (e.kind == EventKind::kCorrection && *rc::gen::arbitrary<bool>())) {
      q = -q;
    }
    e.quantity = q;
    e.unit = GenIdentifierValue(64);
    e.source = GenIdentifierValue(128);
    int n = *rc::gen::inRange(0, 17);
    for (int i = 0; i < n; ++i) {
      std::string key = "k" + std::to_string(*rc::gen::inRange(0, 40));
      e.dimensions.emplace_back(key, *GenFreeText());
    }
    std::sort(e.dimensions.begin(), e.dimensions.end());
    e.dimensions.erase(std::unique(e.dimensions.begin(), e.dimensions.end(),
                                   [](const auto& a, const auto& b) { return a.first == b.first; }),
                       e.dimensions.end());
    return e;
  });
}

RC_GTEST_PROP(EventProperties, BinaryRoundTripIsExact, ()) {
  Event e = *GenValidEvent();
  std::string buf;
  EncodeEventBinary(e, &buf);
  Decoder in(buf);
  Event back;
  RC_ASSERT(DecodeEventBinary(&in, &back));
  RC_ASSERT(in.empty());
  RC_ASSERT(back == e);
}

RC_GTEST_PROP(EventProperties, BinaryViewMatchesFullDecode, ()) {
  Event e = *GenValidEvent();
  std::string buf;
  EncodeEventBinary(e, &buf);
  EventView v;
  RC_ASSERT(DecodeEventBinaryView(buf, &v));
  RC_ASSERT(v.event_id == e.event_id);
  RC_ASSERT(v.kind == e.kind);
  RC_ASSERT(v.has_correction_ref == e.has_correction_ref);
  RC_ASSERT(v.correction_original_event_id == e.correction_original_event_id);
  RC_ASSERT(v.correction_reason == e.correction_reason);
  RC_ASSERT(v.account_id == e.account_id);
  RC_ASSERT(v.subscription_id.has_value() == e.subscription_id.has_value());
  RC_ASSERT(v.subscription_id.value_or("") == e.subscription_id.value_or(""));
  RC_ASSERT(v.product_id == e.product_id);
  RC_ASSERT(v.meter_id == e.meter_id);
  RC_ASSERT(v.model_id.has_value() == e.model_id.has_value());
  RC_ASSERT(v.model_id.value_or("") == e.model_id.value_or(""));
  RC_ASSERT(v.timestamp_ms == e.timestamp_ms);
  RC_ASSERT(v.quantity == e.quantity);
  RC_ASSERT(v.unit == e.unit);
  RC_ASSERT(v.source == e.source);
  RC_ASSERT(v.dimensions.size() == e.dimensions.size());
  size_t i = 0;
  for (const auto& [k, val] : v.dimensions) {
    RC_ASSERT(k == e.dimensions[i].first);
    RC_ASSERT(val == e.dimensions[i].second);
    ++i;
  }
  RC_ASSERT(i == e.dimensions.size());
  // Every truncation and every single-byte change is judged as the full decoder judges it.
  for (size_t n = 0; n < buf.size(); ++n) {
    EventView t;
    RC_ASSERT(!DecodeEventBinaryView(std::string_view(buf.data(), n), &t));
  }
  std::string bad = buf;
  const size_t at = *rc::gen::inRange<size_t>(0, buf.size());
  bad[at] = static_cast<char>(*rc::gen::arbitrary<uint8_t>());
  Decoder in(bad);
  Event full;
  EventView t;
  RC_ASSERT(DecodeEventBinary(&in, &full) == DecodeEventBinaryView(bad, &t));
}

RC_GTEST_PROP(EventProperties, JsonOutputDecodesBackToTheSameEvent, ()) {
  Event e = *GenValidEvent();
  RC_ASSERT(ValidateEvent(&e) == std::string());
  std::string json;
  AppendEventJson(e, &json);
  DecodedEvent d = DecodeEventJson(json);
  RC_ASSERT(d.reject_reason == std::string());
  RC_ASSERT(d.event == e);
  RC_ASSERT(PayloadDigest(d.event) == PayloadDigest(e));
}

RC_GTEST_PROP(EventProperties, CanonicalDimensionsRoundTrip, ()) {
  // Keys and values of any valid UTF-8, control characters and NUL included.
  std::vector<std::pair<std::string, std::string>> dims;
  int n = *rc::gen::inRange(0, 20);
  for (int i = 0; i < n; ++i) {
    auto any = [] {
      return *rc::gen::oneOf(rc::gen::container<std::string>(rc::gen::inRange<char>(0, 0x7f)),
                             rc::gen::just(GenIdentifierValue(64)));
    };
    dims.emplace_back(any(), any());
  }
  std::sort(dims.begin(), dims.end());
  dims.erase(std::unique(dims.begin(), dims.end(),
                         [](const auto& a, const auto& b) { return a.first == b.first; }),
             dims.end());
  std::string s = CanonicalDimensions(dims);
  std::vector<std::pair<std::string, std::string>> back;
  RC_ASSERT(ParseCanonicalDimensions(s, &back).ok());
  RC_ASSERT(back == dims);
}

RC_GTEST_PROP(EventProperties, BinaryDecoderNeverCrashes, (std::string bytes)) {
  Decoder in(bytes);
  Event e;
  DecodeEventBinary(&in, &e);
}

}  // namespace
}  // namespace usagedb
