// SegmentReader: Open verifies header, trailer and footer; ReadBlock reads the byte span of
// the requested chunks with one read, verifies each chunk's crc and decodes it.

#include <zstd.h>

#include <memory>

#include "segment/segment.h"
#include "segment/segment_dims.h"
#include "segment/segment_encoding.h"
#include "segment/segment_footer.h"
#include "segment/segment_format.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace usagedb {
namespace {

using segment::BlockEntry;
using segment::Codec;
using segment::Encoding;
using segment::Footer;

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// One decompression context and scratch buffers per thread: ReadBlock is const and
// thread-safe, and a context per call would cost more than decoding a small chunk.
struct ThreadScratch {
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx;
  std::string read_buf;
  std::string raw_buf;
};
ThreadScratch& Scratch() {
  thread_local ThreadScratch scratch;
  if (!scratch.dctx) scratch.dctx.reset(ZSTD_createDCtx());
  return scratch;
}

bool IsNullable(Column c) {
  return c == Column::kCorrectionOriginalEventId || c == Column::kCorrectionReason ||
         c == Column::kSubscriptionId || c == Column::kModelId;
}

StringColumn* StringField(DecodedBlock* b, Column c) {
  switch (c) {
    case Column::kEventId:
      return &b->event_id;
    case Column::kCorrectionOriginalEventId:
      return &b->correction_original_event_id;
    case Column::kCorrectionReason:
      return &b->correction_reason;
    case Column::kAccountId:
      return &b->account_id;
    case Column::kSubscriptionId:
      return &b->subscription_id;
    case Column::kProductId:
      return &b->product_id;
    case Column::kMeterId:
      return &b->meter_id;
    case Column::kModelId:
      return &b->model_id;
    case Column::kUnit:
      return &b->unit;
    case Column::kSource:
      return &b->source;
    case Column::kDimensions:
      return &b->dimensions;
    default:
      return nullptr;
  }
}

void ClearColumn(DecodedBlock* b, Column c) {
  if (StringColumn* s = StringField(b, c)) {
    s->dict.clear();
    s->codes.clear();
    return;
  }
  switch (c) {
    case Column::kKind:
      b->kind.clear();
      break;
    case Column::kTimestampMs:
      b->timestamp_ms.clear();
      break;
    case Column::kIngestedAtMs:
      b->ingested_at_ms.clear();
      break;
    case Column::kCommitSeq:
      b->commit_seq.clear();
      break;
    case Column::kQuantity:
      b->quantity.clear();
      break;
    default:
      break;
  }
}

class SegmentReaderImpl final : public SegmentReader {
 public:
  SegmentReaderImpl(std::string path, std::unique_ptr<RandomAccessFile> file, Footer footer)
      : path_(std::move(path)), file_(std::move(file)), footer_(std::move(footer)) {}

  const SegmentInfo& info() const override { return footer_.info; }
  size_t num_blocks() const override { return footer_.blocks.size(); }
  const BlockZoneMap& zone_map(size_t block) const override { return footer_.blocks[block].zone; }
  const std::string& path() const override { return path_; }

  Status OpenFile(FileSystem* fs) override {
    if (file_) return Status::OK();
    ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, fs->NewRandomAccessFile(path_));
    if (file->Size() != footer_.info.file_size) {
      return Status::Corruption(path_ + ": file size " + std::to_string(file->Size()) +
                                " differs from the " + std::to_string(footer_.info.file_size) +
                                " bytes its footer was read from");
    }
    file_ = std::move(file);
    return Status::OK();
  }
  bool has_file() const override { return file_ != nullptr; }
  void CloseFile() { file_.reset(); }

  size_t FooterMemoryUsage() const override {
    auto str = [](const std::string& x) { return x.capacity() > 15 ? x.capacity() + 1 : 0; };
    auto strs = [&](const std::vector<std::string>& v) {
      size_t n = v.capacity() * sizeof(std::string);
      for (const std::string& x : v) n += str(x);
      return n;
    };
    size_t n = sizeof(*this) + path_.capacity() + str(footer_.info.min_account_id) +
               str(footer_.info.max_account_id) +
               footer_.info.origin_replaced.capacity() * sizeof(uint64_t) +
               footer_.blocks.capacity() * sizeof(BlockEntry);
    for (const BlockEntry& b : footer_.blocks) {
      const BlockZoneMap& z = b.zone;
      n += str(z.min_account_id) + str(z.max_account_id) + strs(z.product_ids) + strs(z.meter_ids) +
           strs(z.model_ids);
    }
    return n;
  }

  ChunkExtent chunk_extent(size_t block, Column column) const override {
    const BlockEntry& b = footer_.blocks[block];
    const int i = segment::PhysicalIndex(column);
    return ChunkExtent{b.chunk_offset[i], b.chunk_size[i]};
  }

  Status ReadBlock(size_t block, ColumnMask columns, DecodedBlock* out) const override {
    return Read(block, columns, nullptr, out, nullptr, nullptr);
  }

  Status ReadAccountRows(size_t block, ColumnMask columns, const std::string& account,
                         DecodedBlock* out, size_t* lo, size_t* hi) const override {
    return Read(block, columns | ColumnBit(Column::kAccountId), &account, out, lo, hi);
  }

  Status ReadRow(size_t block, size_t row, Event* out) const override {
    if (block >= footer_.blocks.size()) {
      return Status::InvalidArgument(path_ + ": block " + std::to_string(block) + " out of range");
    }
    const BlockEntry& b = footer_.blocks[block];
    if (row >= b.rows) {
      return Status::InvalidArgument(path_ + ": block " + std::to_string(block) + ": row " +
                                     std::to_string(row) + " out of range");
    }
    if (!file_) return Status::InvalidArgument(path_ + ": file not open (OpenFile first)");
    ThreadScratch& scratch = Scratch();
    const int first = 0, last = kNumColumns - 1;
    const uint64_t span_begin = b.chunk_offset[first];
    const uint64_t span_end = b.chunk_offset[last] + b.chunk_size[last];
    RETURN_IF_ERROR(file_->Read(span_begin, span_end - span_begin, &scratch.read_buf));
    if (scratch.read_buf.size() != span_end - span_begin) {
      return Corrupt(block, "truncated block");
    }
    // commit_seq first: the by-seq encodings of timestamp and ingested_at need the row's.
    uint64_t seq = 0;
    bool nulls[kNumColumns] = {};
    auto decode = [&](int i) -> Status {
      const Column c = segment::kPhysicalColumnOrder[i];
      const std::string_view chunk(scratch.read_buf.data() + (b.chunk_offset[i] - span_begin),
                                   b.chunk_size[i]);
      Encoding encoding;
      std::string_view body;
      RETURN_IF_ERROR(ChunkBody(block, c, chunk, &scratch, &encoding, &body));
      if (!KnownEncoding(c, encoding)) {
        return Corrupt(block, c, "unknown encoding " + std::to_string(static_cast<int>(encoding)));
      }
      const size_t n = b.rows;
      bool ok = false;
      int64_t v = 0;
      switch (c) {
        case Column::kKind:
          ok = segment::DecodeInt64Row(encoding, body, n, row, 0, &v) && v >= 0 && v <= 2;
          if (ok) out->kind = static_cast<EventKind>(v);
          break;
        case Column::kCommitSeq:
          ok = segment::DecodeInt64Row(encoding, body, n, row, 0, &v);
          seq = static_cast<uint64_t>(v);
          out->commit_seq = seq;
          break;
        case Column::kTimestampMs:
          ok = segment::DecodeInt64Row(encoding, body, n, row, seq, &out->timestamp_ms);
          break;
        case Column::kIngestedAtMs:
          ok = segment::DecodeInt64Row(encoding, body, n, row, seq, &out->ingested_at_ms);
          break;
        case Column::kQuantity:
          ok = segment::DecodeInt128Row(encoding, body, n, row, &out->quantity);
          break;
        case Column::kDimensions:
          if (encoding == Encoding::kDimensionsByKey) {
            ok = segment::DecodeDimensionsByKeyRow(body, n, row, &dims_scratch_);
          } else {
            bool is_null;
            ok = segment::DecodeStringRow(encoding, body, n, false, row, &is_null, &dims_scratch_);
          }
          if (ok && !segment::ParseCanonicalDimensionsString(dims_scratch_, &out->dimensions)) {
            return Corrupt(block, c, "malformed dimensions string");
          }
          break;
        default: {
          std::string* s = RowString(out, c);
          ok = segment::DecodeStringRow(encoding, body, n, IsNullable(c), row,
                                        &nulls[static_cast<int>(c)], s);
          break;
        }
      }
      if (!ok) return Corrupt(block, c, "malformed chunk");
      return Status::OK();
    };
    const int seq_index = segment::PhysicalIndex(Column::kCommitSeq);
    RETURN_IF_ERROR(decode(seq_index));
    for (int i = first; i <= last; ++i) {
      if (i != seq_index) RETURN_IF_ERROR(decode(i));
    }
    const bool no_original = nulls[static_cast<int>(Column::kCorrectionOriginalEventId)];
    if (no_original != nulls[static_cast<int>(Column::kCorrectionReason)]) {
      return Corrupt(block, Column::kCorrectionReason, "null pattern differs from original id");
    }
    out->has_correction_ref = !no_original;
    if (nulls[static_cast<int>(Column::kSubscriptionId)]) {
      out->subscription_id.reset();
    } else {
      out->subscription_id = std::move(row_subscription_);
    }
    if (nulls[static_cast<int>(Column::kModelId)]) {
      out->model_id.reset();
    } else {
      out->model_id = std::move(row_model_);
    }
    return Status::OK();
  }

  Status VerifyAll() const override {
    DecodedBlock decoded;
    Event event;
    for (size_t i = 0; i < footer_.blocks.size(); ++i) {
      RETURN_IF_ERROR(ReadBlock(i, kAllColumns, &decoded));
      for (size_t row = 0; row < decoded.rows; ++row) {
        Status s = decoded.MaterializeRow(row, &event);
        if (!s.ok()) return s.WithContext(path_ + ": block " + std::to_string(i));
      }
      RETURN_IF_ERROR(CheckZoneMap(i, decoded));
    }
    return Status::OK();
  }

 private:
  // ReadBlock, or with `account` ReadAccountRows: the account column (physically before the
  // quantity) is decoded first, then the quantity only on the account's rows.
  Status Read(size_t block, ColumnMask columns, const std::string* account, DecodedBlock* out,
              size_t* lo, size_t* hi) const {
    if (block >= footer_.blocks.size()) {
      return Status::InvalidArgument(path_ + ": block " + std::to_string(block) + " out of range");
    }
    columns &= kAllColumns;
    const BlockEntry& b = footer_.blocks[block];
    out->rows = b.rows;
    // ingested_at and timestamp may be encoded as functions of commit_seq, which is decoded
    // first.
    ColumnMask needed = columns;
    constexpr ColumnMask kBySeq =
        ColumnBit(Column::kIngestedAtMs) | ColumnBit(Column::kTimestampMs);
    if (columns & kBySeq) needed |= ColumnBit(Column::kCommitSeq);
    // One read covering the physical span of the needed chunks.
    int first = -1, last = -1;
    for (int i = 0; i < kNumColumns; ++i) {
      if (needed & ColumnBit(segment::kPhysicalColumnOrder[i])) {
        if (first < 0) first = i;
        last = i;
      } else {
        ClearColumn(out, segment::kPhysicalColumnOrder[i]);
      }
    }
    if (first < 0) return Status::OK();
    if (!file_) return Status::InvalidArgument(path_ + ": file not open (OpenFile first)");
    ThreadScratch& scratch = Scratch();
    const uint64_t span_begin = b.chunk_offset[first];
    const uint64_t span_end = b.chunk_offset[last] + b.chunk_size[last];
    RETURN_IF_ERROR(file_->Read(span_begin, span_end - span_begin, &scratch.read_buf));
    if (scratch.read_buf.size() != span_end - span_begin) {
      return Corrupt(block, "truncated block");
    }
    size_t row_lo = 0, row_hi = b.rows;
    auto decode = [&](int i) {
      const std::string_view chunk(scratch.read_buf.data() + (b.chunk_offset[i] - span_begin),
                                   b.chunk_size[i]);
      return DecodeChunk(block, segment::kPhysicalColumnOrder[i], chunk, b.rows, row_lo, row_hi,
                         &scratch, out);
    };
    const bool seqs_first = (needed & kBySeq) != 0;
    if (seqs_first) RETURN_IF_ERROR(decode(segment::PhysicalIndex(Column::kCommitSeq)));
    if (account != nullptr) {
      RETURN_IF_ERROR(decode(segment::PhysicalIndex(Column::kAccountId)));
      AccountRange(out->account_id, *account, b.rows, &row_lo, &row_hi);
      *lo = row_lo;
      *hi = row_hi;
      if (row_lo == row_hi) return Status::OK();  // no row of the account: nothing more
    }
    for (int i = first; i <= last; ++i) {
      const Column c = segment::kPhysicalColumnOrder[i];
      if (!(needed & ColumnBit(c)) || (seqs_first && c == Column::kCommitSeq) ||
          (account != nullptr && c == Column::kAccountId)) {
        continue;
      }
      RETURN_IF_ERROR(decode(i));
    }
    if (!(columns & ColumnBit(Column::kCommitSeq))) out->commit_seq.clear();
    return CheckDecoded(block, columns, out);
  }

  // Rows are sorted by account_id (billing order), so one account's rows of a block are the
  // contiguous range [*lo, *hi), found by binary search on the row's account string (a null
  // sorts first). The file's order is not trusted: callers still check each row's code.
  static void AccountRange(const StringColumn& c, const std::string& account, size_t n, size_t* lo,
                           size_t* hi) {
    auto less = [&](size_t r) {
      return c.codes[r] == StringColumn::kNullCode || c.dict[c.codes[r]] < account;
    };
    auto less_eq = [&](size_t r) {
      return c.codes[r] == StringColumn::kNullCode || c.dict[c.codes[r]] <= account;
    };
    size_t a = 0, e = n;
    while (a < e) {
      const size_t m = a + (e - a) / 2;
      if (less(m))
        a = m + 1;
      else
        e = m;
    }
    *lo = a;
    e = n;
    while (a < e) {
      const size_t m = a + (e - a) / 2;
      if (less_eq(m))
        a = m + 1;
      else
        e = m;
    }
    *hi = a;
  }

  static bool KnownEncoding(Column c, Encoding e) {
    switch (c) {
      case Column::kKind:
      case Column::kTimestampMs:
      case Column::kIngestedAtMs:
      case Column::kCommitSeq:
        return e == Encoding::kIntFor || e == Encoding::kIntDeltaFor || e == Encoding::kIntRle ||
               e == Encoding::kIntDeltaVarint ||
               (e == Encoding::kIntStepsBySeq && c == Column::kIngestedAtMs) ||
               (e == Encoding::kIntOffsetBySeq && c == Column::kTimestampMs);
      case Column::kQuantity:
        return e == Encoding::kInt128For || e == Encoding::kInt128Varint;
      case Column::kDimensions:
        if (e == Encoding::kDimensionsByKey) return true;
        [[fallthrough]];
      default:
        return e == Encoding::kStringDict || e == Encoding::kStringDictRle ||
               e == Encoding::kStringPlain || e == Encoding::kStringFixed ||
               e == Encoding::kStringFixedAlphabet;
    }
  }

  // Where ReadRow puts a string column's value (the nullable optionals' values go through
  // thread-local strings, moved in at the end).
  static std::string* RowString(Event* e, Column c) {
    switch (c) {
      case Column::kEventId:
        return &e->event_id;
      case Column::kCorrectionOriginalEventId:
        return &e->correction_original_event_id;
      case Column::kCorrectionReason:
        return &e->correction_reason;
      case Column::kAccountId:
        return &e->account_id;
      case Column::kSubscriptionId:
        return &row_subscription_;
      case Column::kProductId:
        return &e->product_id;
      case Column::kMeterId:
        return &e->meter_id;
      case Column::kModelId:
        return &row_model_;
      case Column::kUnit:
        return &e->unit;
      case Column::kSource:
      default:
        return &e->source;
    }
  }

  Status Corrupt(size_t block, const std::string& what) const {
    return Status::Corruption(path_ + ": block " + std::to_string(block) + ": " + what);
  }
  Status Corrupt(size_t block, Column c, const std::string& what) const {
    return Status::Corruption(path_ + ": block " + std::to_string(block) + " column " +
                              segment::ColumnName(c) + ": " + what);
  }

  // Verifies a chunk's crc and sets *encoding and *body (decompressed into scratch->raw_buf
  // when compressed: valid until the next chunk).
  Status ChunkBody(size_t block, Column c, std::string_view chunk, ThreadScratch* scratch,
                   Encoding* encoding_out, std::string_view* body_out) const {
    if (chunk.size() < segment::kMinChunkSize) return Corrupt(block, c, "chunk too short");
    const size_t payload = chunk.size() - 4;
    const uint32_t stored = crc32c::Unmask(DecodeFixed32(chunk.data() + payload));
    if (crc32c::Value(chunk.data(), payload) != stored) {
      return Corrupt(block, c, "checksum mismatch");
    }
    *encoding_out = static_cast<Encoding>(static_cast<uint8_t>(chunk[0]));
    const auto codec = static_cast<Codec>(static_cast<uint8_t>(chunk[1]));
    std::string_view body = chunk.substr(2, payload - 2);
    if (codec == Codec::kZstd) {
      Decoder d(body);
      uint64_t raw_size;
      if (!d.GetVarint64(&raw_size)) return Corrupt(block, c, "bad zstd raw size");
      const std::string_view frame(d.pos(), d.remaining());
      if (raw_size > segment::kMaxChunkRawSize ||
          raw_size > frame.size() * segment::kMaxZstdRatio + segment::kZstdRawSlack ||
          ZSTD_getFrameContentSize(frame.data(), frame.size()) != raw_size) {
        return Corrupt(block, c, "bad zstd raw size");
      }
      scratch->raw_buf.resize(raw_size);
      const size_t got = ZSTD_decompressDCtx(scratch->dctx.get(), scratch->raw_buf.data(), raw_size,
                                             frame.data(), frame.size());
      if (ZSTD_isError(got) || got != raw_size) return Corrupt(block, c, "bad zstd frame");
      body = scratch->raw_buf;
    } else if (codec != Codec::kNone) {
      return Corrupt(block, c, "unknown codec " + std::to_string(static_cast<int>(codec)));
    }
    *body_out = body;
    return Status::OK();
  }

  // The quantity column is decoded only on rows [lo, hi) (the rest of it left unspecified).
  Status DecodeChunk(size_t block, Column c, std::string_view chunk, size_t n, size_t lo, size_t hi,
                     ThreadScratch* scratch, DecodedBlock* out) const {
    Encoding encoding;
    std::string_view body;
    RETURN_IF_ERROR(ChunkBody(block, c, chunk, scratch, &encoding, &body));
    bool ok = false;
    bool known = true;
    switch (c) {
      case Column::kKind:
      case Column::kTimestampMs:
      case Column::kIngestedAtMs:
      case Column::kCommitSeq: {
        known = encoding == Encoding::kIntFor || encoding == Encoding::kIntDeltaFor ||
                encoding == Encoding::kIntRle || encoding == Encoding::kIntDeltaVarint ||
                (encoding == Encoding::kIntStepsBySeq && c == Column::kIngestedAtMs) ||
                (encoding == Encoding::kIntOffsetBySeq && c == Column::kTimestampMs);
        if (!known) break;
        if (c == Column::kKind) {
          ints_scratch_.resize(n);
          ok = segment::DecodeInt64Column(encoding, body, n, nullptr, ints_scratch_.data());
          out->kind.resize(n);
          for (size_t i = 0; ok && i < n; ++i) {
            ok = ints_scratch_[i] >= 0 && ints_scratch_[i] <= 2;
            out->kind[i] = static_cast<uint8_t>(ints_scratch_[i]);
          }
        } else if (c == Column::kCommitSeq) {
          out->commit_seq.resize(n);
          ok = segment::DecodeInt64Column(encoding, body, n, nullptr,
                                          reinterpret_cast<int64_t*>(out->commit_seq.data()));
        } else {
          auto& v = c == Column::kTimestampMs ? out->timestamp_ms : out->ingested_at_ms;
          v.resize(n);
          // commit_seq (decoded just before, physical order) when the encoding needs it.
          const uint64_t* seqs = out->commit_seq.size() == n ? out->commit_seq.data() : nullptr;
          ok = segment::DecodeInt64Column(encoding, body, n, seqs, v.data());
        }
        break;
      }
      case Column::kQuantity:
        known = encoding == Encoding::kInt128For || encoding == Encoding::kInt128Varint;
        if (!known) break;
        out->quantity.resize(n);
        ok = segment::DecodeInt128Rows(encoding, body, n, lo, hi, out->quantity.data());
        break;
      case Column::kDimensions:
        if (encoding == Encoding::kDimensionsByKey) {
          ok = segment::DecodeDimensionsByKey(body, n, &out->dimensions);
          break;
        }
        [[fallthrough]];
      default:
        known = encoding == Encoding::kStringDict || encoding == Encoding::kStringDictRle ||
                encoding == Encoding::kStringPlain || encoding == Encoding::kStringFixed ||
                encoding == Encoding::kStringFixedAlphabet;
        if (!known) break;
        ok = segment::DecodeStringColumn(encoding, body, n, IsNullable(c), StringField(out, c));
        break;
    }
    if (!known) {
      ClearColumn(out, c);
      return Corrupt(block, c, "unknown encoding " + std::to_string(static_cast<int>(encoding)));
    }
    if (!ok) {
      ClearColumn(out, c);
      return Corrupt(block, c, "malformed chunk");
    }
    return Status::OK();
  }

  // Cross-value checks that make MaterializeRow infallible for a block read with all columns.
  Status CheckDecoded(size_t block, ColumnMask columns, DecodedBlock* out) const {
    if (columns & ColumnBit(Column::kDimensions)) {
      segment::Dimensions dims;
      for (std::string_view s : out->dimensions.dict) {
        if (!segment::ParseCanonicalDimensionsString(s, &dims)) {
          ClearColumn(out, Column::kDimensions);
          return Corrupt(block, Column::kDimensions, "malformed dimensions string");
        }
      }
    }
    constexpr ColumnMask kCorrection =
        ColumnBit(Column::kCorrectionOriginalEventId) | ColumnBit(Column::kCorrectionReason);
    if ((columns & kCorrection) == kCorrection) {
      for (size_t i = 0; i < out->rows; ++i) {
        if (out->correction_original_event_id.IsNull(i) != out->correction_reason.IsNull(i)) {
          return Corrupt(block, Column::kCorrectionReason, "null pattern differs from original id");
        }
      }
    }
    return Status::OK();
  }

  Status CheckZoneMap(size_t block, const DecodedBlock& d) const {
    const BlockZoneMap& z = footer_.blocks[block].zone;
    bool ok = true;
    for (size_t i = 0; i < d.rows; ++i) {
      ok &= d.timestamp_ms[i] >= z.min_timestamp_ms && d.timestamp_ms[i] <= z.max_timestamp_ms;
      ok &= d.commit_seq[i] >= z.min_commit_seq && d.commit_seq[i] <= z.max_commit_seq;
      const std::string_view account = d.account_id.Get(i);
      ok &= account >= z.min_account_id && account <= z.max_account_id;
    }
    if (!ok) return Corrupt(block, "rows outside the block's zone map");
    return Status::OK();
  }

  const std::string path_;
  std::unique_ptr<RandomAccessFile> file_;  // null between OpenFooter and OpenFile
  const Footer footer_;
  static thread_local std::vector<int64_t> ints_scratch_;
  static thread_local std::string dims_scratch_, row_subscription_, row_model_;
};

thread_local std::vector<int64_t> SegmentReaderImpl::ints_scratch_;
thread_local std::string SegmentReaderImpl::dims_scratch_, SegmentReaderImpl::row_subscription_,
    SegmentReaderImpl::row_model_;

}  // namespace

Result<std::unique_ptr<SegmentReader>> SegmentReader::Open(FileSystem* fs,
                                                           const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, fs->NewRandomAccessFile(path));
  const uint64_t size = file->Size();
  auto corrupt = [&](const std::string& what) { return Status::Corruption(path + ": " + what); };
  if (size < segment::kHeaderSize + segment::kTrailerSize) {
    return corrupt("file too short for a segment (" + std::to_string(size) + " bytes)");
  }
  std::string header, trailer;
  RETURN_IF_ERROR(file->Read(0, segment::kHeaderSize, &header));
  RETURN_IF_ERROR(file->Read(size - segment::kTrailerSize, segment::kTrailerSize, &trailer));
  if (header.size() != segment::kHeaderSize || trailer.size() != segment::kTrailerSize) {
    return corrupt("truncated segment");
  }
  if (header.compare(0, 8, segment::kMagic, 8) != 0 ||
      trailer.compare(20, 8, segment::kMagic, 8) != 0) {
    return corrupt("bad magic (not a segment, or truncated)");
  }
  const uint32_t header_version = DecodeFixed32(header.data() + 8);
  const uint32_t trailer_version = DecodeFixed32(trailer.data() + 16);
  auto known = [](uint32_t v) { return v == segment::kVersionRawFooter || v == segment::kVersion; };
  if (!known(header_version) || !known(trailer_version)) {
    const uint32_t bad = !known(header_version) ? header_version : trailer_version;
    return corrupt("unsupported segment version " + std::to_string(bad) +
                   " (this build reads versions " + std::to_string(segment::kVersionRawFooter) +
                   " and " + std::to_string(segment::kVersion) + ")");
  }
  if (header_version != trailer_version) {
    return corrupt("header version " + std::to_string(header_version) +
                   " differs from trailer version " + std::to_string(trailer_version));
  }
  const uint64_t footer_offset = DecodeFixed64(trailer.data());
  const uint32_t footer_size = DecodeFixed32(trailer.data() + 8);
  const uint32_t footer_crc = crc32c::Unmask(DecodeFixed32(trailer.data() + 12));
  if (footer_offset > size || footer_offset < segment::kHeaderSize ||
      footer_offset + footer_size + segment::kTrailerSize != size) {
    return corrupt("footer location does not match the file size");
  }
  std::string footer_bytes;
  RETURN_IF_ERROR(file->Read(footer_offset, footer_size, &footer_bytes));
  if (footer_bytes.size() != footer_size) return corrupt("truncated footer");
  if (crc32c::Value(footer_bytes) != footer_crc) return corrupt("footer checksum mismatch");
  Footer footer;
  if (!segment::DecodeFooter(footer_bytes, footer_offset, header_version, &footer)) {
    return corrupt("malformed footer");
  }
  footer.info.file_size = size;
  return std::unique_ptr<SegmentReader>(
      new SegmentReaderImpl(path, std::move(file), std::move(footer)));
}

Result<std::unique_ptr<SegmentReader>> SegmentReader::OpenFooter(FileSystem* fs,
                                                                 const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SegmentReader> reader, Open(fs, path));
  static_cast<SegmentReaderImpl*>(reader.get())->CloseFile();
  return reader;
}

}  // namespace usagedb
