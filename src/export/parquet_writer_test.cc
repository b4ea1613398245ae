#include "export/parquet_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <optional>
#include <string>
#include <vector>

#include "export/parquet_encoding.h"
#include "export/parquet_format.h"
#include "export/parquet_test_reader.h"
#include "export/parquet_thrift.h"
#include "util/coding.h"
#include "util/int128.h"

namespace usagedb {
namespace parquet {
namespace {

std::string Hex(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Dec(__int128 v) {
  std::string s;
  AppendDecimal128(v, &s);
  return s;
}

Event MakeEvent(std::string id, __int128 quantity) {
  Event e;
  e.event_id = std::move(id);
  e.account_id = "acct";
  e.product_id = "chat";
  e.meter_id = "tokens.input";
  e.timestamp_ms = 1777593600000;
  e.quantity = quantity;
  e.unit = "token";
  e.source = "collector";
  e.ingested_at_ms = 1777593601000;
  return e;
}

class ParquetWriterTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/parquet_writer_test." + std::to_string(getpid()) + "." +
           testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(fs_->CreateDirs(dir_).ok());
    path_ = dir_ + "/out.parquet";
  }
  void TearDown() override {
    fs_->RemoveFile(path_).IgnoreError();
    fs_->RemoveDir(dir_).IgnoreError();
  }

  // Writes `events` and returns the decoded footer.
  pf::FileMetaData Write(const std::vector<Event>& events, ParquetWriterOptions options = {}) {
    auto w = ParquetWriter::Create(fs_, path_, options);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    if (!w.ok()) return {};
    for (const Event& e : events) {
      Status s = (*w)->Append(e);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    Status s = (*w)->Finish();
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(events.size(), (*w)->rows_written());
    auto size = fs_->FileSize(path_);
    EXPECT_TRUE(size.ok());
    EXPECT_EQ(*size, (*w)->bytes_written());
    auto meta = ReadParquetFooter(fs_, path_);
    EXPECT_TRUE(meta.ok()) << meta.status().ToString();
    return meta.ok() ? *meta : pf::FileMetaData();
  }

  std::string FileBytes() {
    std::string bytes;
    EXPECT_TRUE(fs_->ReadFileToString(path_, &bytes).ok());
    return bytes;
  }

  // All values of column `col` across row groups.
  Values Column(const pf::FileMetaData& meta, int col,
                std::vector<pf::Encoding::type>* encodings = nullptr) {
    MiniReader reader(FileBytes());
    Values all;
    for (const pf::RowGroup& rg : meta.row_groups) {
      Values v = reader.ReadColumn(rg.columns[col], kColumns[col], encodings);
      EXPECT_EQ(static_cast<size_t>(rg.num_rows), v.size());
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }

  FileSystem* fs_ = FileSystem::Default();
  std::string dir_;
  std::string path_;
};

TEST(ParquetEncoding, DecimalIsBigEndianTwosComplement) {
  EXPECT_EQ("4b3b4ca85a86c47a098a223fffffffff", Hex(Dec(kMaxQuantity)));
  EXPECT_EQ("b4c4b357a5793b85f675ddc000000001", Hex(Dec(-kMaxQuantity)));
  EXPECT_EQ("ffffffffffffffffffffffffffffffff", Hex(Dec(-1)));
  EXPECT_EQ("00000000000000000000000000000000", Hex(Dec(0)));
  EXPECT_EQ("00000000000000000000000000000001", Hex(Dec(1)));
  EXPECT_EQ("00000000000000010000000000000000", Hex(Dec(static_cast<__int128>(1) << 64)));
  for (__int128 v : {kMaxQuantity, -kMaxQuantity, __int128(-1), __int128(0), __int128(7)}) {
    EXPECT_TRUE(DecodeDecimal128(Dec(v).data()) == v);
  }
}

TEST(ParquetEncoding, RleRunOfTenOnesIsOneRun) {
  std::vector<uint8_t> ones(10, 1);
  std::string out;
  AppendRleBitPacked(ones.data(), ones.size(), 1, &out);
  EXPECT_EQ("1401", Hex(out));  // varint(10 << 1), value byte
}

TEST(ParquetEncoding, ShortMixedInputIsOneZeroPaddedBitPackedGroup) {
  std::vector<uint8_t> v = {1, 0, 1};
  std::string out;
  AppendRleBitPacked(v.data(), v.size(), 1, &out);
  EXPECT_EQ("0305", Hex(out));  // varint(1 group << 1 | 1), bits 101 LSB first
}

TEST(ParquetEncoding, RleBitPackedRoundTripsEveryWidthAndLength) {
  uint64_t x = 88172645463325252ull;
  for (int width : {1, 2, 3, 7, 8, 9, 13, 16, 31, 32}) {
    const uint64_t mask = width == 32 ? 0xffffffffull : (1ull << width) - 1;
    for (size_t n : {0, 1, 7, 8, 9, 15, 16, 17, 64, 100, 1000}) {
      std::vector<uint32_t> v(n);
      for (size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Mix long runs with noise so both run kinds appear.
        v[i] = (i / 20) % 2 ? static_cast<uint32_t>(mask & (i / 20)) : static_cast<uint32_t>(x & mask);
      }
      std::string enc;
      AppendRleBitPacked(v.data(), n, width, &enc);
      std::vector<uint32_t> dec;
      ASSERT_TRUE(DecodeRleBitPacked(enc, width, n, &dec)) << width << " " << n;
      EXPECT_EQ(v, dec) << width << " " << n;
    }
  }
}

TEST(ParquetEncoding, TruncatedRleIsRejected) {
  std::vector<uint32_t> v(100, 5);
  v[3] = 1;
  std::string enc;
  AppendRleBitPacked(v.data(), v.size(), 3, &enc);
  std::vector<uint32_t> dec;
  EXPECT_FALSE(DecodeRleBitPacked(std::string_view(enc).substr(0, enc.size() - 1), 3, 100, &dec));
}

TEST(ParquetEncoding, BitWidthFor) {
  EXPECT_EQ(1, BitWidthFor(0));
  EXPECT_EQ(1, BitWidthFor(1));
  EXPECT_EQ(2, BitWidthFor(2));
  EXPECT_EQ(8, BitWidthFor(255));
  EXPECT_EQ(9, BitWidthFor(256));
  EXPECT_EQ(32, BitWidthFor(UINT32_MAX));
}

TEST(ParquetEncoding, CanonicalDimensionsSortsAndEscapes) {
  std::string s;
  AppendCanonicalDimensions({}, &s);
  EXPECT_EQ("{}", s);
  s.clear();
  AppendCanonicalDimensions({{"provider", "anthropic"}, {"agent", "support-agent"}}, &s);
  EXPECT_EQ(R"({"agent":"support-agent","provider":"anthropic"})", s);
  s.clear();
  AppendCanonicalDimensions(
      {{"k", std::string("\"\\\b\f\n\r\t\x01\x1f\x7f/é", 13)}}, &s);
  EXPECT_EQ("{\"k\":\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f/é\"}", s);
  s.clear();
  // Byte order: uppercase before lowercase, '_' (0x5f) between them.
  AppendCanonicalDimensions({{"b", "1"}, {"_x", "2"}, {"B", "3"}}, &s);
  EXPECT_EQ(R"({"B":"3","_x":"2","b":"1"})", s);
}

TEST_F(ParquetWriterTest, MagicAtBothEnds) {
  Write({MakeEvent("e1", 5)});
  std::string bytes = FileBytes();
  ASSERT_GT(bytes.size(), 12u);
  EXPECT_EQ("PAR1", bytes.substr(0, 4));
  EXPECT_EQ("PAR1", bytes.substr(bytes.size() - 4));
  const uint32_t footer_len = DecodeFixed32(bytes.data() + bytes.size() - 8);
  EXPECT_LT(footer_len, bytes.size() - 12);
}

TEST_F(ParquetWriterTest, FooterDecodesToTheSpecSchema) {
  pf::FileMetaData meta = Write({MakeEvent("e1", 5)});
  EXPECT_EQ(1, meta.version);
  EXPECT_EQ(1, meta.num_rows);
  EXPECT_EQ("usagedb version 0.1.0", meta.created_by);
  ASSERT_EQ(16u, meta.schema.size());
  EXPECT_EQ("schema", meta.schema[0].name);
  EXPECT_EQ(15, meta.schema[0].num_children);
  EXPECT_FALSE(meta.schema[0].__isset.repetition_type);
  const char* const names[] = {"event_id", "kind", "correction_original_event_id",
                               "correction_reason", "account_id", "subscription_id",
                               "product_id", "meter_id", "model_id", "timestamp_ms", "quantity",
                               "unit", "source", "dimensions_canonical", "ingested_at_ms"};
  const bool optional[] = {false, false, true, true, false, true, false, false,
                           true,  false, false, false, false, false, false};
  for (int i = 0; i < 15; ++i) {
    const pf::SchemaElement& e = meta.schema[i + 1];
    SCOPED_TRACE(names[i]);
    EXPECT_EQ(names[i], e.name);
    EXPECT_EQ(optional[i] ? pf::FieldRepetitionType::OPTIONAL : pf::FieldRepetitionType::REQUIRED,
              e.repetition_type);
    EXPECT_FALSE(e.__isset.num_children);
    if (i == kColTimestampMs || i == kColIngestedAtMs) {
      EXPECT_EQ(pf::Type::INT64, e.type);
      EXPECT_FALSE(e.__isset.logicalType);
      EXPECT_FALSE(e.__isset.converted_type);
    } else if (i == kColQuantity) {
      EXPECT_EQ(pf::Type::FIXED_LEN_BYTE_ARRAY, e.type);
      EXPECT_EQ(16, e.type_length);
      EXPECT_EQ(pf::ConvertedType::DECIMAL, e.converted_type);
      EXPECT_EQ(38, e.precision);
      EXPECT_EQ(0, e.scale);
      ASSERT_TRUE(e.logicalType.__isset.DECIMAL);
      EXPECT_EQ(38, e.logicalType.DECIMAL.precision);
      EXPECT_EQ(0, e.logicalType.DECIMAL.scale);
    } else {
      EXPECT_EQ(pf::Type::BYTE_ARRAY, e.type);
      EXPECT_EQ(pf::ConvertedType::UTF8, e.converted_type);
      EXPECT_TRUE(e.logicalType.__isset.STRING);
    }
  }
  ASSERT_EQ(15u, meta.column_orders.size());
  for (const auto& o : meta.column_orders) EXPECT_TRUE(o.__isset.TYPE_ORDER);
  ASSERT_EQ(1u, meta.row_groups.size());
  const pf::RowGroup& rg = meta.row_groups[0];
  ASSERT_EQ(15u, rg.columns.size());
  for (int i = 0; i < 15; ++i) {
    const pf::ColumnMetaData& md = rg.columns[i].meta_data;
    EXPECT_EQ(std::vector<std::string>{names[i]}, md.path_in_schema);
    EXPECT_EQ(pf::CompressionCodec::ZSTD, md.codec);
    EXPECT_EQ(1, md.num_values);
    EXPECT_EQ(meta.schema[i + 1].type, md.type);
  }
}

TEST_F(ParquetWriterTest, ZeroRowFileIsValid) {
  pf::FileMetaData meta = Write({});
  EXPECT_EQ(0, meta.num_rows);
  EXPECT_TRUE(meta.row_groups.empty());
  EXPECT_EQ(16u, meta.schema.size());
  EXPECT_EQ(15u, meta.column_orders.size());
  std::string bytes = FileBytes();
  EXPECT_EQ(bytes.size(), 4 + DecodeFixed32(bytes.data() + bytes.size() - 8) + 8);
}

TEST_F(ParquetWriterTest, EveryColumnRoundTripsThroughTheMiniReader) {
  std::vector<Event> events;
  Event a = MakeEvent("a", kMaxQuantity);
  a.subscription_id = "sub";
  a.model_id = "m";
  a.dimensions = {{"z", "1"}, {"a", "x\"y"}};
  events.push_back(a);
  Event b = MakeEvent("b", -kMaxQuantity);
  b.kind = EventKind::kCorrection;
  b.has_correction_ref = true;
  b.correction_original_event_id = "a";
  b.correction_reason = "";
  b.timestamp_ms = -5;
  b.ingested_at_ms = INT64_MAX;
  events.push_back(b);
  pf::FileMetaData meta = Write(events);
  EXPECT_EQ((Values{"a", "b"}), Column(meta, kColEventId));
  EXPECT_EQ((Values{"Usage", "Correction"}), Column(meta, kColKind));
  EXPECT_EQ((Values{std::nullopt, "a"}), Column(meta, kColCorrectionOriginalEventId));
  EXPECT_EQ((Values{std::nullopt, ""}), Column(meta, kColCorrectionReason));
  EXPECT_EQ((Values{"sub", std::nullopt}), Column(meta, kColSubscriptionId));
  EXPECT_EQ((Values{"m", std::nullopt}), Column(meta, kColModelId));
  EXPECT_EQ((Values{"1777593600000", "-5"}), Column(meta, kColTimestampMs));
  EXPECT_EQ((Values{Int128ToString(kMaxQuantity), Int128ToString(-kMaxQuantity)}),
            Column(meta, kColQuantity));
  EXPECT_EQ((Values{R"({"a":"x\"y","z":"1"})", "{}"}), Column(meta, kColDimensionsCanonical));
  EXPECT_EQ((Values{"1777593601000", std::to_string(INT64_MAX)}), Column(meta, kColIngestedAtMs));
}

TEST_F(ParquetWriterTest, WritersSharingOneCompressionInterleaveCorrectly) {
  // Two writers, one shared zstd context and page scratch, pages closed alternately: each
  // file must hold exactly its own values.
  ParquetCompression shared(3);
  ParquetWriterOptions o;
  o.page_rows = 7;
  o.rows_per_row_group = 20;
  const std::string other = dir_ + "/other.parquet";
  auto w1 = ParquetWriter::Create(fs_, path_, o, &shared);
  auto w2 = ParquetWriter::Create(fs_, other, o, &shared);
  ASSERT_TRUE(w1.ok() && w2.ok());
  Values ids1, ids2;
  for (int i = 0; i < 100; i++) {
    const bool first = (i / 3) % 2 == 0;
    const std::string id = (first ? "one-" : "two-") + std::to_string(i);
    ASSERT_TRUE((first ? *w1 : *w2)->Append(MakeEvent(id, i)).ok());
    (first ? ids1 : ids2).push_back(id);
  }
  ASSERT_TRUE((*w1)->Finish().ok());
  ASSERT_TRUE((*w2)->Finish().ok());
  auto meta1 = ReadParquetFooter(fs_, path_);
  ASSERT_TRUE(meta1.ok());
  EXPECT_EQ(ids1, Column(*meta1, kColEventId));
  std::string bytes;
  ASSERT_TRUE(fs_->ReadFileToString(other, &bytes).ok());
  auto meta2 = ReadParquetFooter(fs_, other);
  ASSERT_TRUE(meta2.ok());
  MiniReader reader(bytes);
  Values got2;
  for (const pf::RowGroup& rg : meta2->row_groups) {
    Values v = reader.ReadColumn(rg.columns[kColEventId], kColumns[kColEventId]);
    got2.insert(got2.end(), v.begin(), v.end());
  }
  EXPECT_EQ(ids2, got2);
  fs_->RemoveFile(other).IgnoreError();
}

TEST_F(ParquetWriterTest, QuantityStatisticsUseSignedOrder) {
  // Byte-wise, -1 (ff..ff) would be the maximum and 0 the minimum.
  pf::FileMetaData meta = Write({MakeEvent("a", 5), MakeEvent("b", -1), MakeEvent("c", 0),
                                 MakeEvent("d", kMaxQuantity), MakeEvent("e", -kMaxQuantity)});
  const pf::Statistics& st = meta.row_groups[0].columns[kColQuantity].meta_data.statistics;
  EXPECT_EQ(Hex(Dec(-kMaxQuantity)), Hex(st.min_value));
  EXPECT_EQ(Hex(Dec(kMaxQuantity)), Hex(st.max_value));
  EXPECT_EQ(0, st.null_count);
  EXPECT_FALSE(st.__isset.min);  // the deprecated fields are never written
  EXPECT_FALSE(st.__isset.max);

  meta = Write({MakeEvent("a", -1), MakeEvent("b", -7)});
  const pf::Statistics& neg = meta.row_groups[0].columns[kColQuantity].meta_data.statistics;
  EXPECT_EQ(Hex(Dec(-7)), Hex(neg.min_value));
  EXPECT_EQ(Hex(Dec(-1)), Hex(neg.max_value));
}

TEST_F(ParquetWriterTest, Int64StatisticsAreSignedLittleEndian) {
  Event a = MakeEvent("a", 1);
  a.timestamp_ms = -2;
  Event b = MakeEvent("b", 1);
  b.timestamp_ms = 3;
  pf::FileMetaData meta = Write({a, b});
  const pf::Statistics& st = meta.row_groups[0].columns[kColTimestampMs].meta_data.statistics;
  EXPECT_EQ("feffffffffffffff", Hex(st.min_value));
  EXPECT_EQ("0300000000000000", Hex(st.max_value));
}

TEST_F(ParquetWriterTest, StringStatisticsCompareUnsignedBytesAndCountNulls) {
  Event a = MakeEvent("a", 1);
  a.account_id = "z";
  Event b = MakeEvent("b", 1);
  b.account_id = "\xc3\xa9";  // é: 0xc3 sorts after 'z' as an unsigned byte
  b.model_id = "m";
  Event c = MakeEvent("c", 1);
  c.account_id = "A";
  pf::FileMetaData meta = Write({a, b, c});
  const auto& cols = meta.row_groups[0].columns;
  EXPECT_EQ("A", cols[kColAccountId].meta_data.statistics.min_value);
  EXPECT_EQ("\xc3\xa9", cols[kColAccountId].meta_data.statistics.max_value);
  EXPECT_EQ(2, cols[kColModelId].meta_data.statistics.null_count);
  EXPECT_EQ("m", cols[kColModelId].meta_data.statistics.min_value);
  // A column with only nulls has a null count and no bounds.
  const pf::Statistics& sub = cols[kColSubscriptionId].meta_data.statistics;
  EXPECT_EQ(3, sub.null_count);
  EXPECT_FALSE(sub.__isset.min_value);
  EXPECT_FALSE(sub.__isset.max_value);
  EXPECT_FALSE(cols[kColSubscriptionId].meta_data.__isset.dictionary_page_offset);
}

TEST_F(ParquetWriterTest, RowGroupsSplitAtRowLimitWithConsistentOffsets) {
  std::vector<Event> events;
  for (int i = 0; i < 25; ++i) events.push_back(MakeEvent("e" + std::to_string(i), i - 12));
  ParquetWriterOptions options;
  options.rows_per_row_group = 10;
  options.page_rows = 3;
  pf::FileMetaData meta = Write(events, options);
  ASSERT_EQ(3u, meta.row_groups.size());
  EXPECT_EQ(10, meta.row_groups[0].num_rows);
  EXPECT_EQ(10, meta.row_groups[1].num_rows);
  EXPECT_EQ(5, meta.row_groups[2].num_rows);
  int64_t expected_offset = 4;
  for (size_t g = 0; g < meta.row_groups.size(); ++g) {
    const pf::RowGroup& rg = meta.row_groups[g];
    EXPECT_EQ(static_cast<int16_t>(g), rg.ordinal);
    EXPECT_EQ(expected_offset, rg.file_offset);
    int64_t total = 0;
    for (const pf::ColumnChunk& cc : rg.columns) {
      const pf::ColumnMetaData& md = cc.meta_data;
      const int64_t first = md.__isset.dictionary_page_offset ? md.dictionary_page_offset
                                                               : md.data_page_offset;
      EXPECT_EQ(expected_offset, first);
      expected_offset += md.total_compressed_size;
      total += md.total_compressed_size;
    }
    EXPECT_EQ(total, rg.total_compressed_size);
  }
  // Per-group quantity bounds: group 0 holds -12..-3, group 2 holds 8..12.
  EXPECT_EQ(Hex(Dec(-12)), Hex(meta.row_groups[0].columns[kColQuantity].meta_data.statistics.min_value));
  EXPECT_EQ(Hex(Dec(-3)), Hex(meta.row_groups[0].columns[kColQuantity].meta_data.statistics.max_value));
  EXPECT_EQ(Hex(Dec(8)), Hex(meta.row_groups[2].columns[kColQuantity].meta_data.statistics.min_value));
  Values q = Column(meta, kColQuantity);
  ASSERT_EQ(25u, q.size());
  for (int i = 0; i < 25; ++i) EXPECT_EQ(std::to_string(i - 12), q[i]);
}

TEST_F(ParquetWriterTest, ByteBudgetFlushesRowGroups) {
  std::vector<Event> events;
  for (int i = 0; i < 2000; ++i) {
    events.push_back(MakeEvent("event-" + std::to_string(i * 7919) + std::string(40, 'p'), i));
  }
  ParquetWriterOptions options;
  options.row_group_bytes = 16 * 1024;
  options.page_rows = 100;
  pf::FileMetaData meta = Write(events, options);
  EXPECT_GT(meta.row_groups.size(), 1u);
  int64_t rows = 0;
  for (const auto& rg : meta.row_groups) rows += rg.num_rows;
  EXPECT_EQ(2000, rows);
  EXPECT_EQ(2000u, Column(meta, kColEventId).size());
}

TEST_F(ParquetWriterTest, DictionaryOverflowFallsBackToPlainPages) {
  std::vector<Event> events;
  Values expected;
  for (int i = 0; i < 500; ++i) {
    Event e = MakeEvent("e" + std::to_string(i), i);
    e.account_id = "account-number-" + std::to_string(i);  // all distinct
    expected.push_back(e.account_id);
    events.push_back(e);
  }
  ParquetWriterOptions options;
  options.dictionary_bytes = 1000;
  options.page_rows = 64;
  pf::FileMetaData meta = Write(events, options);
  std::vector<pf::Encoding::type> encodings;
  EXPECT_EQ(expected, Column(meta, kColAccountId, &encodings));
  EXPECT_EQ(pf::Encoding::RLE_DICTIONARY, encodings.front());
  EXPECT_EQ(pf::Encoding::PLAIN, encodings.back());
  const pf::ColumnMetaData& md = meta.row_groups[0].columns[kColAccountId].meta_data;
  EXPECT_TRUE(md.__isset.dictionary_page_offset);
  EXPECT_EQ("account-number-0", md.statistics.min_value);
  EXPECT_EQ("account-number-99", md.statistics.max_value);
  // Low-cardinality columns stay fully dictionary-encoded.
  encodings.clear();
  Column(meta, kColKind, &encodings);
  for (auto e : encodings) EXPECT_EQ(pf::Encoding::RLE_DICTIONARY, e);
}

TEST_F(ParquetWriterTest, OutOfRangeQuantityIsRejectedAndWriterStaysUsable) {
  auto w = ParquetWriter::Create(fs_, path_, {});
  ASSERT_TRUE(w.ok());
  Status s = (*w)->Append(MakeEvent("big", kMaxQuantity + 1));
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_TRUE((*w)->Append(MakeEvent("small", -kMaxQuantity - 1)).IsInvalidArgument());
  EXPECT_TRUE((*w)->Append(MakeEvent("ok", 1)).ok());
  EXPECT_TRUE((*w)->Finish().ok());
  EXPECT_EQ(1u, (*w)->rows_written());
  auto meta = ReadParquetFooter(fs_, path_);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(1, meta->num_rows);
}

TEST_F(ParquetWriterTest, FinishTwiceAndAppendAfterFinishFail) {
  auto w = ParquetWriter::Create(fs_, path_, {});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_EQ(StatusCode::kFailedPrecondition, (*w)->Finish().code());
  EXPECT_EQ(StatusCode::kFailedPrecondition, (*w)->Append(MakeEvent("x", 1)).code());
}

TEST_F(ParquetWriterTest, BadOptionsAreInvalidArgument) {
  ParquetWriterOptions options;
  options.rows_per_row_group = 0;
  EXPECT_TRUE(ParquetWriter::Create(fs_, path_, options).status().IsInvalidArgument());
  options = {};
  options.zstd_level = 1000;
  EXPECT_TRUE(ParquetWriter::Create(fs_, path_, options).status().IsInvalidArgument());
}

TEST_F(ParquetWriterTest, DamagedFooterIsCorruptionNamingTheFile) {
  Write({MakeEvent("e1", 5)});
  const std::string good = FileBytes();
  auto check = [&](const std::string& bytes, const char* what) {
    ASSERT_TRUE(fs_->WriteFileAtomic(path_, bytes).ok());
    auto meta = ReadParquetFooter(fs_, path_);
    ASSERT_FALSE(meta.ok()) << what;
    EXPECT_TRUE(meta.status().IsCorruption()) << what << ": " << meta.status().ToString();
    EXPECT_NE(std::string::npos, meta.status().message().find(path_)) << what;
  };
  check(good.substr(0, 10), "short file");
  check("XXXX" + good.substr(4), "bad leading magic");
  check(good.substr(0, good.size() - 1) + "X", "bad trailing magic");
  std::string huge_len = good;
  EncodeFixed32(huge_len.data() + huge_len.size() - 8, 0x7fffffff);
  check(huge_len, "footer length out of range");
  std::string garbage = good;
  const uint32_t len = DecodeFixed32(good.data() + good.size() - 8);
  for (size_t i = good.size() - 8 - len; i < good.size() - 8; ++i) garbage[i] = '\xff';
  check(garbage, "garbage footer");
}

}  // namespace
}  // namespace parquet
}  // namespace usagedb
