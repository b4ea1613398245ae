#include "export/parquet_writer.h"

#include <zstd.h>

#include <climits>
#include <cstring>
#include <utility>

#include "export/parquet_encoding.h"
#include "export/parquet_format.h"
#include "export/parquet_thrift.h"
#include "util/coding.h"
#include "util/hash.h"
#include "util/int128.h"

namespace usagedb {
namespace parquet {

// One zstd compression context plus the scratch buffers of one page, reused for every page
// of a writer (or of several writers sharing a ParquetCompression on one thread). A page is
// encoded into `raw` and compressed into `compressed` within one call, so sharing is safe.
class ZstdCompressor {
 public:
  explicit ZstdCompressor(int level) : ctx_(ZSTD_createCCtx()), level_(level) {}
  std::string raw, compressed;  // page scratch
  ~ZstdCompressor() { ZSTD_freeCCtx(ctx_); }
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;

  // Replaces *out with one zstd frame holding `in`.
  Status Compress(std::string_view in, std::string* out) {
    if (ctx_ == nullptr) return Status::Internal("zstd: cannot allocate a compression context");
    out->resize(ZSTD_compressBound(in.size()));
    size_t n = ZSTD_compressCCtx(ctx_, out->data(), out->size(), in.data(), in.size(), level_);
    if (ZSTD_isError(n)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(n));
    out->resize(n);
    return Status::OK();
  }

 private:
  ZSTD_CCtx* ctx_;
  const int level_;
};

namespace {

constexpr uint32_t kNoIndex = UINT32_MAX;

// The dictionary of one column chunk: entries in insertion order, stored PLAIN-encoded
// (length: fixed32, bytes) exactly as the dictionary page carries them, with an
// open-addressing hash table (XXH3, linear probing) over them.
class Dictionary {
 public:
  // Returns the index of `v`, appending it when absent (*inserted = true).
  uint32_t FindOrInsert(std::string_view v, bool* inserted) {
    if (entries_.size() * 2 >= slots_.size()) Grow();
    const uint64_t h = Hash64(v);
    uint64_t pos = h & mask_;
    for (;;) {
      const uint32_t slot = slots_[pos];
      if (slot == 0) break;
      const Entry& e = entries_[slot - 1];
      if (e.hash == h && Equals(slot - 1, v)) {
        *inserted = false;
        return slot - 1;
      }
      pos = (pos + 1) & mask_;
    }
    const uint32_t index = static_cast<uint32_t>(entries_.size());
    PutFixed32(&plain_, static_cast<uint32_t>(v.size()));
    entries_.push_back({h, static_cast<uint32_t>(plain_.size()), static_cast<uint32_t>(v.size())});
    plain_.append(v.data(), v.size());
    slots_[pos] = index + 1;
    *inserted = true;
    return index;
  }

  bool Equals(uint32_t index, std::string_view v) const {
    const Entry& e = entries_[index];
    return e.length == v.size() && std::memcmp(plain_.data() + e.offset, v.data(), v.size()) == 0;
  }

  uint32_t size() const { return static_cast<uint32_t>(entries_.size()); }
  bool empty() const { return entries_.empty(); }
  const std::string& plain() const { return plain_; }
  uint64_t MemoryBytes() const {
    return plain_.size() + entries_.size() * sizeof(Entry) + slots_.size() * sizeof(uint32_t);
  }
  void Clear() {
    plain_.clear();
    entries_.clear();
    std::fill(slots_.begin(), slots_.end(), 0);
  }

 private:
  struct Entry {
    uint64_t hash;
    uint32_t offset;  // of the value bytes in plain_ (after the length prefix)
    uint32_t length;
  };

  void Grow() {
    const size_t n = slots_.empty() ? 1024 : slots_.size() * 2;
    slots_.assign(n, 0);
    mask_ = n - 1;
    for (uint32_t i = 0; i < entries_.size(); ++i) {
      uint64_t pos = entries_[i].hash & mask_;
      while (slots_[pos] != 0) pos = (pos + 1) & mask_;
      slots_[pos] = i + 1;
    }
  }

  std::string plain_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> slots_;  // 0 = empty, else entry index + 1; size is a power of two
  uint64_t mask_ = 0;
};

pf::Type::type PhysicalType(PhysicalKind kind) {
  switch (kind) {
    case PhysicalKind::kString: return pf::Type::BYTE_ARRAY;
    case PhysicalKind::kInt64: return pf::Type::INT64;
    case PhysicalKind::kDecimal: return pf::Type::FIXED_LEN_BYTE_ARRAY;
  }
  return pf::Type::BYTE_ARRAY;
}

std::string EncodeInt64(int64_t v) {
  std::string s;
  PutFixed64(&s, static_cast<uint64_t>(v));
  return s;
}

std::string EncodeDecimal(__int128 v) {
  std::string s;
  AppendDecimal128(v, &s);
  return s;
}

}  // namespace

// Buffers one column of the current row group as compressed pages. See the memory bound in
// parquet_writer.h.
class ColumnWriter {
 public:
  ColumnWriter(const ColumnSpec& spec, const ParquetWriterOptions& options, ZstdCompressor* zstd)
      : spec_(spec), options_(options), zstd_(zstd), dict_mode_(spec.dictionary) {}

  Status AddNull() {
    def_levels_.push_back(0);
    ++null_count_;
    return EndValue();
  }

  Status AddString(std::string_view v) {
    if (spec_.optional) def_levels_.push_back(1);
    if (dict_mode_) {
      uint32_t index;
      if (last_index_ != kNoIndex && dict_.Equals(last_index_, v)) {
        index = last_index_;
      } else {
        bool inserted = false;
        index = dict_.FindOrInsert(v, &inserted);
        if (inserted) UpdateMinMax(v);
        last_index_ = index;
      }
      indices_.push_back(index);
      if (dict_.plain().size() > options_.dictionary_bytes) {
        // Too many distinct values: close this page as dictionary-encoded and write the rest of
        // the chunk PLAIN. The dictionary page keeps the entries gathered so far.
        ++page_values_;
        RETURN_IF_ERROR(FlushPage());
        dict_mode_ = false;
        return Status::OK();
      }
    } else {
      PutFixed32(&values_, static_cast<uint32_t>(v.size()));
      values_.append(v.data(), v.size());
      UpdateMinMax(v);
    }
    return EndValue();
  }

  Status AddInt64(int64_t v) {
    if (spec_.optional) def_levels_.push_back(1);
    PutFixed64(&values_, static_cast<uint64_t>(v));
    if (!has_minmax_) {
      min_i64_ = max_i64_ = v;
      has_minmax_ = true;
    } else if (v < min_i64_) {
      min_i64_ = v;
    } else if (v > max_i64_) {
      max_i64_ = v;
    }
    return EndValue();
  }

  Status AddDecimal(__int128 v) {
    if (spec_.optional) def_levels_.push_back(1);
    AppendDecimal128(v, &values_);
    if (!has_minmax_) {
      min_i128_ = max_i128_ = v;
      has_minmax_ = true;
    } else if (v < min_i128_) {  // signed 128-bit order, as DECIMAL requires
      min_i128_ = v;
    } else if (v > max_i128_) {
      max_i128_ = v;
    }
    return EndValue();
  }

  uint64_t BufferedBytes() const {
    return pages_.size() + dict_.MemoryBytes() + values_.size() +
           indices_.size() * sizeof(uint32_t) + def_levels_.size();
  }

  // Closes the open page and appends the chunk (dictionary page first, then the data pages)
  // to `file`, starting at *offset (advanced past it). Fills *chunk and resets the column for
  // the next row group.
  Status WriteChunk(WritableFile* file, uint64_t* offset, pf::ColumnChunk* chunk) {
    RETURN_IF_ERROR(FlushPage());
    std::string& compressed = zstd_->compressed;
    pf::ColumnMetaData md;
    md.__set_type(PhysicalType(spec_.kind));
    md.__set_path_in_schema({std::string(spec_.name)});
    md.__set_codec(pf::CompressionCodec::ZSTD);
    md.__set_num_values(num_values_);

    const uint64_t start = *offset;
    uint64_t dict_page_bytes = 0;
    uint64_t dict_page_uncompressed = 0;
    std::vector<pf::PageEncodingStats> encoding_stats;
    std::vector<pf::Encoding::type> encodings;
    if (!dict_.empty()) {
      RETURN_IF_ERROR(zstd_->Compress(dict_.plain(), &compressed));
      pf::PageHeader header;
      header.__set_type(pf::PageType::DICTIONARY_PAGE);
      header.__set_uncompressed_page_size(static_cast<int32_t>(dict_.plain().size()));
      header.__set_compressed_page_size(static_cast<int32_t>(compressed.size()));
      pf::DictionaryPageHeader dph;
      dph.__set_num_values(static_cast<int32_t>(dict_.size()));
      dph.__set_encoding(pf::Encoding::PLAIN_DICTIONARY);
      header.__set_dictionary_page_header(dph);
      std::string header_bytes;
      RETURN_IF_ERROR(SerializeThrift(header, &header_bytes));
      RETURN_IF_ERROR(file->Append(header_bytes));
      RETURN_IF_ERROR(file->Append(compressed));
      dict_page_bytes = header_bytes.size() + compressed.size();
      dict_page_uncompressed = header_bytes.size() + dict_.plain().size();
      md.__set_dictionary_page_offset(static_cast<int64_t>(start));
      encodings.push_back(pf::Encoding::PLAIN_DICTIONARY);
      encoding_stats.push_back(Stat(pf::PageType::DICTIONARY_PAGE, pf::Encoding::PLAIN_DICTIONARY, 1));
    }
    RETURN_IF_ERROR(file->Append(pages_));
    md.__set_data_page_offset(static_cast<int64_t>(start + dict_page_bytes));
    md.__set_total_compressed_size(static_cast<int64_t>(dict_page_bytes + pages_.size()));
    md.__set_total_uncompressed_size(
        static_cast<int64_t>(dict_page_uncompressed + data_uncompressed_bytes_));
    *offset = start + dict_page_bytes + pages_.size();

    if (spec_.optional) encodings.push_back(pf::Encoding::RLE);
    if (dict_data_pages_ > 0) {
      encodings.push_back(pf::Encoding::RLE_DICTIONARY);
      encoding_stats.push_back(Stat(pf::PageType::DATA_PAGE, pf::Encoding::RLE_DICTIONARY,
                                    dict_data_pages_));
    }
    if (plain_data_pages_ > 0) {
      encodings.push_back(pf::Encoding::PLAIN);
      encoding_stats.push_back(Stat(pf::PageType::DATA_PAGE, pf::Encoding::PLAIN,
                                    plain_data_pages_));
    }
    md.__set_encodings(encodings);
    md.__set_encoding_stats(encoding_stats);

    pf::Statistics stats;
    stats.__set_null_count(null_count_);
    if (has_minmax_) {
      switch (spec_.kind) {
        case PhysicalKind::kString:
          stats.__set_min_value(min_bytes_);
          stats.__set_max_value(max_bytes_);
          break;
        case PhysicalKind::kInt64:
          stats.__set_min_value(EncodeInt64(min_i64_));
          stats.__set_max_value(EncodeInt64(max_i64_));
          break;
        case PhysicalKind::kDecimal:
          stats.__set_min_value(EncodeDecimal(min_i128_));
          stats.__set_max_value(EncodeDecimal(max_i128_));
          break;
      }
      stats.__set_is_min_value_exact(true);
      stats.__set_is_max_value_exact(true);
    }
    md.__set_statistics(stats);

    chunk->__set_file_offset(0);  // no ColumnMetaData outside the footer
    chunk->__set_meta_data(md);
    Reset();
    return Status::OK();
  }

 private:
  static pf::PageEncodingStats Stat(pf::PageType::type type, pf::Encoding::type encoding,
                                    int32_t count) {
    pf::PageEncodingStats s;
    s.__set_page_type(type);
    s.__set_encoding(encoding);
    s.__set_count(count);
    return s;
  }

  void UpdateMinMax(std::string_view v) {
    // std::string ordering is unsigned byte order (char_traits<char>), as UTF8 requires.
    if (!has_minmax_) {
      min_bytes_.assign(v);
      max_bytes_.assign(v);
      has_minmax_ = true;
    } else if (v < min_bytes_) {
      min_bytes_.assign(v);
    } else if (v > max_bytes_) {
      max_bytes_.assign(v);
    }
  }

  Status EndValue() {
    ++page_values_;
    if (page_values_ >= options_.page_rows || values_.size() >= options_.page_bytes) {
      return FlushPage();
    }
    return Status::OK();
  }

  // Encodes, compresses and appends the open page to pages_. A page in dictionary mode with
  // no non-null value is written PLAIN (it has no values), so a chunk whose values are all
  // null needs no dictionary page.
  Status FlushPage() {
    if (page_values_ == 0) return Status::OK();
    std::string& raw = zstd_->raw;  // shared page scratch
    std::string& compressed = zstd_->compressed;
    raw.clear();
    if (spec_.optional) {
      raw.resize(4);
      AppendRleBitPacked(def_levels_.data(), def_levels_.size(), 1, &raw);
      EncodeFixed32(raw.data(), static_cast<uint32_t>(raw.size() - 4));
    }
    pf::Encoding::type encoding = pf::Encoding::PLAIN;
    if (dict_mode_ && !indices_.empty()) {
      const int bit_width = BitWidthFor(dict_.size() - 1);
      raw.push_back(static_cast<char>(bit_width));
      AppendRleBitPacked(indices_.data(), indices_.size(), bit_width, &raw);
      encoding = pf::Encoding::RLE_DICTIONARY;
    } else {
      raw.append(values_);
    }
    if (raw.size() > static_cast<size_t>(INT32_MAX)) {
      return Status::Internal("parquet: data page larger than 2 GiB");
    }
    RETURN_IF_ERROR(zstd_->Compress(raw, &compressed));

    pf::PageHeader header;
    header.__set_type(pf::PageType::DATA_PAGE);
    header.__set_uncompressed_page_size(static_cast<int32_t>(raw.size()));
    header.__set_compressed_page_size(static_cast<int32_t>(compressed.size()));
    pf::DataPageHeader dph;
    dph.__set_num_values(static_cast<int32_t>(page_values_));
    dph.__set_encoding(encoding);
    dph.__set_definition_level_encoding(pf::Encoding::RLE);
    dph.__set_repetition_level_encoding(pf::Encoding::RLE);
    header.__set_data_page_header(dph);
    const size_t before = pages_.size();
    RETURN_IF_ERROR(SerializeThrift(header, &pages_));
    const size_t header_bytes = pages_.size() - before;
    pages_.append(compressed);
    data_uncompressed_bytes_ += header_bytes + raw.size();
    if (encoding == pf::Encoding::RLE_DICTIONARY) {
      ++dict_data_pages_;
    } else {
      ++plain_data_pages_;
    }
    num_values_ += page_values_;
    page_values_ = 0;
    def_levels_.clear();
    indices_.clear();
    values_.clear();
    return Status::OK();
  }

  void Reset() {
    dict_.Clear();
    dict_mode_ = spec_.dictionary;
    last_index_ = kNoIndex;
    pages_.clear();
    num_values_ = 0;
    null_count_ = 0;
    has_minmax_ = false;
    data_uncompressed_bytes_ = 0;
    dict_data_pages_ = 0;
    plain_data_pages_ = 0;
  }

  const ColumnSpec& spec_;
  const ParquetWriterOptions& options_;
  ZstdCompressor* const zstd_;

  // Dictionary state of the current chunk.
  bool dict_mode_;
  Dictionary dict_;
  uint32_t last_index_ = kNoIndex;  // index of the previous value: runs skip the hash

  // The open page.
  std::vector<uint8_t> def_levels_;  // optional columns only
  std::vector<uint32_t> indices_;    // dictionary mode
  std::string values_;               // PLAIN values
  uint32_t page_values_ = 0;         // nulls included

  // The chunk: serialized page headers + compressed pages, and its statistics.
  std::string pages_;
  int64_t num_values_ = 0;
  int64_t null_count_ = 0;
  uint64_t data_uncompressed_bytes_ = 0;
  int32_t dict_data_pages_ = 0;
  int32_t plain_data_pages_ = 0;
  bool has_minmax_ = false;
  std::string min_bytes_, max_bytes_;
  int64_t min_i64_ = 0, max_i64_ = 0;
  __int128 min_i128_ = 0, max_i128_ = 0;
};

namespace {

std::vector<pf::SchemaElement> BuildSchema() {
  std::vector<pf::SchemaElement> schema;
  pf::SchemaElement root;
  root.__set_name(std::string(kSchemaRootName));
  root.__set_num_children(kNumColumns);
  schema.push_back(root);
  for (const ColumnSpec& c : kColumns) {
    pf::SchemaElement e;
    e.__set_name(std::string(c.name));
    e.__set_type(PhysicalType(c.kind));
    e.__set_repetition_type(c.optional ? pf::FieldRepetitionType::OPTIONAL
                                       : pf::FieldRepetitionType::REQUIRED);
    pf::LogicalType logical;
    switch (c.kind) {
      case PhysicalKind::kString:
        e.__set_converted_type(pf::ConvertedType::UTF8);
        logical.__set_STRING(pf::StringType());
        e.__set_logicalType(logical);
        break;
      case PhysicalKind::kInt64:
        break;
      case PhysicalKind::kDecimal: {
        e.__set_type_length(kDecimalBytes);
        e.__set_converted_type(pf::ConvertedType::DECIMAL);
        e.__set_scale(kDecimalScale);
        e.__set_precision(kDecimalPrecision);
        pf::DecimalType d;
        d.__set_scale(kDecimalScale);
        d.__set_precision(kDecimalPrecision);
        logical.__set_DECIMAL(d);
        e.__set_logicalType(logical);
        break;
      }
    }
    schema.push_back(e);
  }
  return schema;
}

}  // namespace
}  // namespace parquet

struct ParquetWriter::RowGroupInfo {
  parquet::pf::RowGroup row_group;
};

ParquetCompression::ParquetCompression(int zstd_level)
    : zstd_(std::make_unique<parquet::ZstdCompressor>(zstd_level)) {}
ParquetCompression::~ParquetCompression() = default;

ParquetWriter::ParquetWriter(std::string path, ParquetWriterOptions options,
                             std::unique_ptr<WritableFile> file, ParquetCompression* shared)
    : path_(std::move(path)), options_(std::move(options)), file_(std::move(file)) {
  if (shared == nullptr) {
    own_zstd_ = std::make_unique<parquet::ZstdCompressor>(options_.zstd_level);
    zstd_ = own_zstd_.get();
  } else {
    zstd_ = shared->zstd_.get();
  }
  for (const parquet::ColumnSpec& spec : parquet::kColumns) {
    columns_.push_back(std::make_unique<parquet::ColumnWriter>(spec, options_, zstd_));
  }
}

ParquetWriter::~ParquetWriter() {
  if (file_ != nullptr) file_->Close().IgnoreError();  // abandoned: the caller removes the file
}

Result<std::unique_ptr<ParquetWriter>> ParquetWriter::Create(FileSystem* fs,
                                                             const std::string& path,
                                                             ParquetWriterOptions options,
                                                             ParquetCompression* shared) {
  if (options.rows_per_row_group == 0 || options.row_group_bytes == 0 ||
      options.page_bytes == 0 || options.page_rows == 0 || options.dictionary_bytes == 0 ||
      options.page_bytes > (1u << 30) || options.dictionary_bytes > (1u << 30) ||
      options.page_rows > (1u << 30)) {
    return Status::InvalidArgument("parquet writer: row group, page and dictionary limits must be "
                                   "positive and page/dictionary limits at most 1 GiB");
  }
  if (options.zstd_level < ZSTD_minCLevel() || options.zstd_level > ZSTD_maxCLevel()) {
    return Status::InvalidArgument("parquet writer: zstd_level out of range");
  }
  ASSIGN_OR_RETURN(auto file, fs->NewWritableFile(path));
  std::unique_ptr<ParquetWriter> w(
      new ParquetWriter(path, std::move(options), std::move(file), shared));
  Status s = w->file_->Append(parquet::kMagic);
  if (!s.ok()) return s.WithContext(path);
  w->bytes_written_ = parquet::kMagic.size();
  return w;
}

Status ParquetWriter::Fail(Status s) {
  if (status_.ok()) status_ = s.WithContext(path_);
  return status_;
}

uint64_t ParquetWriter::buffered_bytes() const {
  uint64_t total = 0;
  for (const auto& c : columns_) total += c->BufferedBytes();
  return total;
}

Status ParquetWriter::Append(const Event& e) {
  if (!status_.ok()) return status_;
  if (finished_) return Status::FailedPrecondition(path_ + ": Append after Finish");
  if (e.quantity > kMaxQuantity || e.quantity < -kMaxQuantity) {
    return Status::InvalidArgument("quantity: " + Int128ToString(e.quantity) +
                                   " does not fit DECIMAL(38,0)");
  }
  const std::string_view kind = parquet::KindName(e.kind);
  if (kind.empty()) return Status::InvalidArgument("kind: unknown event kind");

  using namespace parquet;  // NOLINT: column indexes
  auto& c = columns_;
#define USAGEDB_PQ_ADD(expr)           \
  do {                                 \
    Status _s = (expr);                \
    if (!_s.ok()) return Fail(_s);     \
  } while (0)
  USAGEDB_PQ_ADD(c[kColEventId]->AddString(e.event_id));
  USAGEDB_PQ_ADD(c[kColKind]->AddString(kind));
  if (e.has_correction_ref) {
    USAGEDB_PQ_ADD(c[kColCorrectionOriginalEventId]->AddString(e.correction_original_event_id));
    USAGEDB_PQ_ADD(c[kColCorrectionReason]->AddString(e.correction_reason));
  } else {
    USAGEDB_PQ_ADD(c[kColCorrectionOriginalEventId]->AddNull());
    USAGEDB_PQ_ADD(c[kColCorrectionReason]->AddNull());
  }
  USAGEDB_PQ_ADD(c[kColAccountId]->AddString(e.account_id));
  USAGEDB_PQ_ADD(e.subscription_id ? c[kColSubscriptionId]->AddString(*e.subscription_id)
                                   : c[kColSubscriptionId]->AddNull());
  USAGEDB_PQ_ADD(c[kColProductId]->AddString(e.product_id));
  USAGEDB_PQ_ADD(c[kColMeterId]->AddString(e.meter_id));
  USAGEDB_PQ_ADD(e.model_id ? c[kColModelId]->AddString(*e.model_id)
                            : c[kColModelId]->AddNull());
  USAGEDB_PQ_ADD(c[kColTimestampMs]->AddInt64(e.timestamp_ms));
  USAGEDB_PQ_ADD(c[kColQuantity]->AddDecimal(e.quantity));
  USAGEDB_PQ_ADD(c[kColUnit]->AddString(e.unit));
  USAGEDB_PQ_ADD(c[kColSource]->AddString(e.source));
  scratch_.clear();
  AppendCanonicalDimensions(e.dimensions, &scratch_);
  USAGEDB_PQ_ADD(c[kColDimensionsCanonical]->AddString(scratch_));
  USAGEDB_PQ_ADD(c[kColIngestedAtMs]->AddInt64(e.ingested_at_ms));
#undef USAGEDB_PQ_ADD

  ++rows_in_group_;
  ++rows_written_;
  // The byte budget is checked every 256 rows: summing 15 columns per row would cost more
  // than the overshoot of 255 rows.
  if (rows_in_group_ >= options_.rows_per_row_group ||
      ((rows_in_group_ & 255) == 0 && buffered_bytes() >= options_.row_group_bytes)) {
    return FlushRowGroup();
  }
  return Status::OK();
}

Status ParquetWriter::FlushRowGroup() {
  if (rows_in_group_ == 0) return Status::OK();
  RowGroupInfo info;
  parquet::pf::RowGroup& rg = info.row_group;
  uint64_t offset = bytes_written_;
  const uint64_t start = offset;
  int64_t uncompressed = 0;
  std::vector<parquet::pf::ColumnChunk> chunks(columns_.size());
  for (size_t i = 0; i < columns_.size(); ++i) {
    Status s = columns_[i]->WriteChunk(file_.get(), &offset, &chunks[i]);
    if (!s.ok()) return Fail(s);
    uncompressed += chunks[i].meta_data.total_uncompressed_size;
  }
  bytes_written_ = offset;
  rg.__set_columns(chunks);
  rg.__set_total_byte_size(uncompressed);
  rg.__set_num_rows(static_cast<int64_t>(rows_in_group_));
  rg.__set_file_offset(static_cast<int64_t>(start));
  rg.__set_total_compressed_size(static_cast<int64_t>(offset - start));
  if (row_groups_written_ <= static_cast<uint64_t>(INT16_MAX)) {
    rg.__set_ordinal(static_cast<int16_t>(row_groups_written_));
  }
  row_groups_.push_back(std::move(info));
  ++row_groups_written_;
  rows_in_group_ = 0;
  return Status::OK();
}

Status ParquetWriter::WriteFooter() {
  namespace pf = parquet::pf;
  pf::FileMetaData md;
  md.__set_version(parquet::kFormatVersion);
  md.__set_schema(parquet::BuildSchema());
  md.__set_num_rows(static_cast<int64_t>(rows_written_));
  std::vector<pf::RowGroup> groups;
  groups.reserve(row_groups_.size());
  for (auto& info : row_groups_) groups.push_back(std::move(info.row_group));
  row_groups_.clear();
  md.__set_row_groups(groups);
  md.__set_created_by(options_.created_by);
  pf::ColumnOrder order;
  order.__set_TYPE_ORDER(pf::TypeDefinedOrder());
  md.__set_column_orders(std::vector<pf::ColumnOrder>(parquet::kNumColumns, order));

  std::string footer;
  RETURN_IF_ERROR(parquet::SerializeThrift(md, &footer));
  if (footer.size() > UINT32_MAX) return Status::Internal("parquet footer larger than 4 GiB");
  PutFixed32(&footer, static_cast<uint32_t>(footer.size()));
  footer.append(parquet::kMagic);
  RETURN_IF_ERROR(file_->Append(footer));
  bytes_written_ += footer.size();
  return Status::OK();
}

Status ParquetWriter::Finish() {
  if (!status_.ok()) return status_;
  if (finished_) return Status::FailedPrecondition(path_ + ": Finish called twice");
  finished_ = true;
  Status s = FlushRowGroup();
  if (s.ok()) s = WriteFooter();
  if (s.ok() && options_.sync_on_finish) s = file_->Sync();
  if (s.ok()) s = file_->Close();
  if (!s.ok()) return Fail(s);
  file_.reset();
  return Status::OK();
}

}  // namespace usagedb
