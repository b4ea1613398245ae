// Test-only: a deliberately small Parquet reader for the files ParquetWriter produces (used by
// parquet_writer_test and export_test). Not a general reader: it knows our schema and layout.
#pragma once

#include <gtest/gtest.h>
#include <zstd.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "export/parquet_encoding.h"
#include "export/parquet_format.h"
#include "export/parquet_thrift.h"
#include "util/coding.h"
#include "util/int128.h"

namespace usagedb {
namespace parquet {

using Values = std::vector<std::optional<std::string>>;

// A deliberately small Parquet reader for the files this writer produces: walks a column
// chunk's pages, decompresses them and decodes PLAIN / RLE_DICTIONARY values and definition
// levels. Numbers come back as decimal strings, nulls as nullopt.
class MiniReader {
 public:
  explicit MiniReader(std::string bytes) : bytes_(std::move(bytes)) {}

  Values ReadColumn(const pf::ColumnChunk& chunk, const ColumnSpec& spec,
                    std::vector<pf::Encoding::type>* page_encodings = nullptr) {
    Values out;
    const pf::ColumnMetaData& md = chunk.meta_data;
    uint64_t pos =
        md.__isset.dictionary_page_offset ? md.dictionary_page_offset : md.data_page_offset;
    const uint64_t end = pos + md.total_compressed_size;
    std::vector<std::string> dict;
    while (pos < end) {
      pf::PageHeader header;
      size_t consumed = 0;
      Status s =
          DeserializeThrift(std::string_view(bytes_).substr(pos), "page", &header, &consumed);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return out;
      pos += consumed;
      std::string page(header.uncompressed_page_size, '\0');
      const size_t n = ZSTD_decompress(page.data(), page.size(), bytes_.data() + pos,
                                       header.compressed_page_size);
      EXPECT_FALSE(ZSTD_isError(n));
      EXPECT_EQ(page.size(), n);
      pos += header.compressed_page_size;
      Decoder d(page);
      if (header.type == pf::PageType::DICTIONARY_PAGE) {
        EXPECT_TRUE(dict.empty()) << "at most one dictionary page per chunk";
        EXPECT_EQ(pf::Encoding::PLAIN_DICTIONARY, header.dictionary_page_header.encoding);
        for (int i = 0; i < header.dictionary_page_header.num_values; ++i) {
          std::string_view v;
          uint32_t len = 0;
          EXPECT_TRUE(d.GetFixed32(&len) && d.GetBytes(len, &v));
          dict.emplace_back(v);
        }
        EXPECT_TRUE(d.empty());
        continue;
      }
      EXPECT_EQ(pf::PageType::DATA_PAGE, header.type);
      const pf::DataPageHeader& dph = header.data_page_header;
      if (page_encodings) page_encodings->push_back(dph.encoding);
      const size_t num_values = dph.num_values;
      std::vector<uint32_t> levels(num_values, 1);
      if (spec.optional) {
        uint32_t len = 0;
        std::string_view rle;
        EXPECT_TRUE(d.GetFixed32(&len) && d.GetBytes(len, &rle));
        levels.clear();
        EXPECT_TRUE(DecodeRleBitPacked(rle, 1, num_values, &levels));
      }
      size_t non_null = 0;
      for (uint32_t l : levels) non_null += l;
      std::vector<std::string> vals;
      if (dph.encoding == pf::Encoding::RLE_DICTIONARY) {
        uint8_t width = 0;
        EXPECT_TRUE(d.GetByte(&width));
        std::string_view rest;
        EXPECT_TRUE(d.GetBytes(d.remaining(), &rest));
        std::vector<uint32_t> idx;
        EXPECT_TRUE(DecodeRleBitPacked(rest, width, non_null, &idx));
        for (uint32_t i : idx) {
          EXPECT_LT(i, dict.size());
          vals.push_back(i < dict.size() ? dict[i] : "");
        }
      } else {
        EXPECT_EQ(pf::Encoding::PLAIN, dph.encoding);
        for (size_t i = 0; i < non_null; ++i) {
          std::string_view v;
          switch (spec.kind) {
            case PhysicalKind::kString: {
              uint32_t len = 0;
              EXPECT_TRUE(d.GetFixed32(&len) && d.GetBytes(len, &v));
              vals.emplace_back(v);
              break;
            }
            case PhysicalKind::kInt64: {
              uint64_t x = 0;
              EXPECT_TRUE(d.GetFixed64(&x));
              vals.push_back(std::to_string(static_cast<int64_t>(x)));
              break;
            }
            case PhysicalKind::kDecimal:
              EXPECT_TRUE(d.GetBytes(16, &v));
              vals.push_back(Int128ToString(DecodeDecimal128(v.data())));
              break;
          }
        }
        EXPECT_TRUE(d.empty());
      }
      size_t k = 0;
      for (uint32_t l : levels) {
        if (l) {
          out.push_back(k < vals.size() ? std::optional<std::string>(vals[k]) : std::nullopt);
          ++k;
        } else {
          out.push_back(std::nullopt);
        }
      }
    }
    EXPECT_EQ(end, pos);
    return out;
  }

 private:
  std::string bytes_;
};

}  // namespace parquet
}  // namespace usagedb
