// WriteSegment: encodes rows block by block (analyze -> compress per column chunk), then the
// footer and trailer, into path + ".tmp", and renames it into place once synced.

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <string_view>

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
using segment::Encoding;
using segment::Footer;

// Bodies smaller than this are never worth a zstd frame header.
constexpr size_t kMinZstdInput = 64;

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

// Encodes blocks of rows. Owns every scratch buffer, so after the first block nothing is
// allocated per row or per column. Not thread-safe (one per WriteSegment call).
class BlockEncoder {
 public:
  // cctx: configured by the caller (level and parameters); used for every chunk.
  explicit BlockEncoder(ZSTD_CCtx* cctx) : cctx_(cctx) {}

  // Whether the rows of the next Encode calls have pairwise distinct event ids.
  void set_event_ids_distinct(bool distinct) { event_ids_distinct_ = distinct; }
  // Run hints for the rows of the next Encode calls (indexed like them).
  void set_hints(const SegmentRowHints& hints) { hints_ = hints; }

  // Encodes rows[begin, end) into *block, filling entry's chunk sizes and zone map.
  // Returns false when a chunk would not fit the footer's 32-bit size.
  bool Encode(const std::vector<const EventView*>& rows, size_t begin, size_t end,
              std::string* block, BlockEntry* entry) {
    const size_t n = end - begin;
    entry->rows = static_cast<uint32_t>(n);
    entry->zone = BlockZoneMap();
    entry->zone.row_count = static_cast<uint32_t>(n);
    Gather(rows.data() + begin, n);
    for (int i = 0; i < kNumColumns; ++i) {
      const size_t before = block->size();
      EncodeColumn(segment::kPhysicalColumnOrder[i], begin, n, block, &entry->zone);
      if (block->size() - before > UINT32_MAX) return false;
      entry->chunk_size[i] = static_cast<uint32_t>(block->size() - before);
    }
    return true;
  }

 private:
  // Copies the block's fields into one array per column in a single pass over the rows. The
  // rows are views in billing order, i.e. a permutation of the flush's decoded views: reading
  // them once per column (16 passes, each a cache miss per row on a different field) cost
  // more than encoding several of the columns.
  void Gather(const EventView* const* r, size_t n) {
    for (int c = 0; c < kNumColumns; ++c) {
      if (IsStringColumn(static_cast<Column>(c))) views_[c].resize(n);
    }
    kinds_.resize(n);
    ts_.resize(n);
    ingested_.resize(n);
    seqs_.resize(n);
    quantities_.resize(n);
    dims_in_.resize(n);
    no_ref_.resize(n);
    no_subscription_.resize(n);
    no_model_.resize(n);
    std::string_view* event_id = views_[static_cast<int>(Column::kEventId)].data();
    std::string_view* corr_id = views_[static_cast<int>(Column::kCorrectionOriginalEventId)].data();
    std::string_view* corr_reason = views_[static_cast<int>(Column::kCorrectionReason)].data();
    std::string_view* account = views_[static_cast<int>(Column::kAccountId)].data();
    std::string_view* subscription = views_[static_cast<int>(Column::kSubscriptionId)].data();
    std::string_view* product = views_[static_cast<int>(Column::kProductId)].data();
    std::string_view* meter = views_[static_cast<int>(Column::kMeterId)].data();
    std::string_view* model = views_[static_cast<int>(Column::kModelId)].data();
    std::string_view* unit = views_[static_cast<int>(Column::kUnit)].data();
    std::string_view* source = views_[static_cast<int>(Column::kSource)].data();
    for (size_t i = 0; i < n; ++i) {
      const EventView& e = *r[i];
      // The row's record (its strings, ~3 lines from the event_id on): the column passes read
      // it once per string column, in this order; fetching it now overlaps those misses.
      __builtin_prefetch(e.event_id.data());
      __builtin_prefetch(e.event_id.data() + 64);
      __builtin_prefetch(e.event_id.data() + 128);
      kinds_[i] = static_cast<int64_t>(e.kind);
      ts_[i] = e.timestamp_ms;
      ingested_[i] = e.ingested_at_ms;
      seqs_[i] = e.commit_seq;
      quantities_[i] = e.quantity;
      dims_in_[i] = e.dimensions;
      event_id[i] = e.event_id;
      no_ref_[i] = !e.has_correction_ref;
      corr_id[i] = e.correction_original_event_id;
      corr_reason[i] = e.correction_reason;
      account[i] = e.account_id;
      no_subscription_[i] = !e.subscription_id.has_value();
      subscription[i] = e.subscription_id ? *e.subscription_id : std::string_view();
      product[i] = e.product_id;
      meter[i] = e.meter_id;
      no_model_[i] = !e.model_id.has_value();
      model[i] = e.model_id ? *e.model_id : std::string_view();
      unit[i] = e.unit;
      source[i] = e.source;
    }
  }

  static bool IsStringColumn(Column c) {
    switch (c) {
      case Column::kKind:
      case Column::kTimestampMs:
      case Column::kIngestedAtMs:
      case Column::kCommitSeq:
      case Column::kQuantity:
      case Column::kDimensions:
        return false;
      default:
        return true;
    }
  }

  // The block is rows [begin, begin + n) of the segment (begin indexes the hints).
  void EncodeColumn(Column c, size_t begin, size_t n, std::string* block, BlockZoneMap* zone) {
    body_.clear();
    switch (c) {
      case Column::kKind:
        AppendChunk(segment::EncodeInt64Column(kinds_.data(), n, &body_), block);
        return;
      case Column::kTimestampMs:
        EncodeTimeOrSeq(c, ts_.data(), n, block);
        zone->min_timestamp_ms = analysis_.mn;
        zone->max_timestamp_ms = analysis_.mx;
        return;
      case Column::kIngestedAtMs:
        EncodeTimeOrSeq(c, ingested_.data(), n, block);
        return;
      case Column::kCommitSeq: {
        ints_.resize(n);
        uint64_t mn = seqs_[0], mx = mn;
        for (size_t i = 0; i < n; ++i) {
          const uint64_t s = seqs_[i];
          mn = std::min(mn, s);
          mx = std::max(mx, s);
          ints_[i] = static_cast<int64_t>(s);
        }
        zone->min_commit_seq = mn;
        zone->max_commit_seq = mx;
        EncodeTimeOrSeq(c, ints_.data(), n, block);
        return;
      }
      case Column::kQuantity:
        AppendChunk(segment::EncodeInt128Column(quantities_.data(), n, &body_), block);
        return;
      case Column::kDimensions:
        EncodeDimensions(n, block);
        return;
      default:
        break;
    }
    // String columns.
    const uint8_t* nulls = nullptr;
    switch (c) {
      case Column::kCorrectionOriginalEventId:
      case Column::kCorrectionReason:
        nulls = no_ref_.data();
        break;
      case Column::kSubscriptionId:
        nulls = no_subscription_.data();
        break;
      case Column::kModelId:
        nulls = no_model_.data();
        break;
      default:
        break;
    }
    segment::StringColumnInput in;
    in.values = views_[static_cast<int>(c)].data();
    in.nulls = nulls;
    in.n = n;
    // Zone maps take their sets (and the account range) from these columns' dictionaries.
    in.need_distinct = c == Column::kAccountId || c == Column::kProductId ||
                       c == Column::kMeterId || c == Column::kModelId;
    in.values_distinct = c == Column::kEventId && event_ids_distinct_;
    const uint8_t* same = c == Column::kAccountId ? hints_.same_account
                          : (c == Column::kProductId || c == Column::kMeterId ||
                             c == Column::kModelId)
                              ? hints_.same_triple
                              : nullptr;
    if (same != nullptr) in.same_as_prev = same + begin;
    const Encoding enc = strings_.Encode(in, &body_);
    AppendChunk(enc, block);
    if (in.need_distinct) {
      const std::vector<std::string_view>& d = strings_.sorted_distinct();
      switch (c) {
        case Column::kAccountId:
          zone->min_account_id.assign(d.front());
          zone->max_account_id.assign(d.back());
          break;
        case Column::kProductId:
          zone->product_ids.assign(d.begin(), d.end());
          break;
        case Column::kMeterId:
          zone->meter_ids.assign(d.begin(), d.end());
          break;
        default:
          zone->model_ids.assign(d.begin(), d.end());
          break;
      }
    }
  }

  // dimensions: one dictionary id per row (a set of pairs per distinct id).
  void EncodeDimensions(size_t n, std::string* block) {
    dims_.Clear();
    dim_ids_.resize(n);
    for (size_t i = 0; i < n; ++i) dim_ids_[i] = dims_.Add(dims_in_[i]);
    AppendChunk(dims_column_.Encode(&dims_, dim_ids_.data(), n, &strings_, &body_), block);
  }

  // timestamp_ms, ingested_at_ms, commit_seq (values in `values`, seqs in seqs_): candidates
  // go through compression and the smallest chunk wins (zstd finds repeated delta patterns
  // that size analysis cannot see). Candidates: the smallest body by analysis, delta-varint,
  // frame of reference, and for ingested_at the steps-by-seq body (which, when it applies,
  // is a few bytes per batch and wins without comparing).
  void EncodeTimeOrSeq(Column c, const int64_t* values, size_t n, std::string* block) {
    analysis_ = segment::AnalyzeInt64(values, n);
    if (c == Column::kIngestedAtMs &&
        segment::EncodeInt64StepsBySeq(values, seqs_.data(), n, &body_)) {
      if (body_.size() <= analysis_.Size(analysis_.Smallest())) {
        AppendChunk(Encoding::kIntStepsBySeq, block);
        return;
      }
    }
    const Encoding smallest = analysis_.Smallest();
    // Timestamps: when the offset-by-seq body is already smaller than every generic body, it
    // is the only candidate compressed (docs/parts/flush.md, "Time and seq columns").
    body_.clear();
    if (c == Column::kTimestampMs &&
        segment::EncodeInt64OffsetBySeq(values, seqs_.data(), n, &body_)) {
      if (body_.size() < analysis_.Size(smallest)) {
        AppendChunk(Encoding::kIntOffsetBySeq, block);
        return;
      }
      offset_body_.swap(body_);
    } else {
      offset_body_.clear();
    }
    best_.clear();
    // Per column, the two bodies that won after zstd on SPEC §9 data (docs/parts/segment.md):
    // timestamps repeat across the meters of one request (FOR or delta-varint + zstd); seqs
    // are sequential within a group (delta-varint or delta-FOR + zstd; FOR never compresses).
    Encoding candidates[3] = {smallest, Encoding::kIntDeltaVarint,
                              c == Column::kCommitSeq ? Encoding::kIntDeltaFor : Encoding::kIntFor};
    for (int k = 0; k < 3; ++k) {
      const Encoding e = candidates[k];
      if (k > 0 && e == smallest) continue;
      body_.clear();
      segment::EncodeInt64With(analysis_, e, values, &body_);
      candidate_.clear();
      AppendChunk(e, &candidate_);
      if (best_.empty() || candidate_.size() < best_.size()) best_.swap(candidate_);
    }
    if (!offset_body_.empty()) {
      body_.swap(offset_body_);
      candidate_.clear();
      AppendChunk(Encoding::kIntOffsetBySeq, &candidate_);
      if (candidate_.size() < best_.size()) best_.swap(candidate_);
    }
    block->append(best_);
  }

  // chunk := encoding | codec | [raw_size] | data | masked crc32c of the preceding bytes.
  void AppendChunk(Encoding enc, std::string* block) {
    const size_t start = block->size();
    block->push_back(static_cast<char>(enc));
    bool use_zstd = false;
    size_t compressed = 0;
    // Bit-packed alphabet indices of random ids are at their entropy: zstd cannot pay.
    if (body_.size() >= kMinZstdInput && enc != Encoding::kStringFixedAlphabet) {
      zbuf_.resize(ZSTD_compressBound(body_.size()));
      compressed = ZSTD_compress2(cctx_, zbuf_.data(), zbuf_.size(), body_.data(), body_.size());
      // "Pays" = saves at least 1/8 of the body, and stays within the reader's ratio bound.
      use_zstd = !ZSTD_isError(compressed) && compressed + 10 < body_.size() - body_.size() / 8 &&
                 body_.size() <= compressed * segment::kMaxZstdRatio + segment::kZstdRawSlack &&
                 body_.size() <= segment::kMaxChunkRawSize;
    }
    if (use_zstd) {
      block->push_back(static_cast<char>(segment::Codec::kZstd));
      PutVarint64(block, body_.size());
      block->append(zbuf_.data(), compressed);
    } else {
      block->push_back(static_cast<char>(segment::Codec::kNone));
      block->append(body_);
    }
    const uint32_t crc = crc32c::Value(block->data() + start, block->size() - start);
    PutFixed32(block, crc32c::Mask(crc));
  }

  ZSTD_CCtx* cctx_;
  bool event_ids_distinct_ = false;
  SegmentRowHints hints_;
  std::string body_, zbuf_, best_, candidate_, offset_body_;
  segment::Int64Analysis analysis_;
  std::vector<uint64_t> seqs_;
  std::vector<int64_t> ints_;
  std::vector<__int128> quantities_;
  // The block's columns (Gather): string columns by column id, null flags of the nullable
  // ones, the rest typed.
  std::vector<std::string_view> views_[kNumColumns];
  std::vector<uint8_t> no_ref_, no_subscription_, no_model_;
  std::vector<int64_t> kinds_, ts_, ingested_;
  std::vector<DimensionsView> dims_in_;
  std::vector<uint32_t> dim_ids_;
  segment::DimensionsDictionary dims_;
  segment::DimensionsColumnEncoder dims_column_;
  segment::StringColumnEncoder strings_;
};

// First millisecond (UTC) of a month partition; false when it is not representable.
bool PartitionStartMs(int64_t partition, int64_t* ms) {
  const int64_t years = partition >= 0 ? partition / 12 : -((-partition + 11) / 12);
  const int64_t month = partition - years * 12 + 1;  // [1, 12]
  const int64_t y = 1970 + years - (month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = era * 146097 + doe - 719468;
  return !__builtin_mul_overflow(days, int64_t{86400000}, ms);
}

// [*lo, *hi] = the timestamps of `partition`, when both ends check out against
// MonthPartition (which stays the definition); false otherwise.
bool PartitionRange(int32_t partition, int64_t* lo, int64_t* hi) {
  int64_t start, next;
  if (!PartitionStartMs(partition, &start) || !PartitionStartMs(int64_t{partition} + 1, &next) ||
      start == INT64_MIN || next <= start) {
    return false;
  }
  *lo = start;
  *hi = next - 1;
  return MonthPartition(start) == partition && MonthPartition(start - 1) != partition &&
         MonthPartition(*hi) == partition && MonthPartition(next) != partition;
}

void MergeZone(const BlockZoneMap& z, bool first, SegmentInfo* info) {
  if (first) {
    info->min_timestamp_ms = z.min_timestamp_ms;
    info->max_timestamp_ms = z.max_timestamp_ms;
    info->min_commit_seq = z.min_commit_seq;
    info->max_commit_seq = z.max_commit_seq;
    info->min_account_id = z.min_account_id;
    info->max_account_id = z.max_account_id;
    return;
  }
  info->min_timestamp_ms = std::min(info->min_timestamp_ms, z.min_timestamp_ms);
  info->max_timestamp_ms = std::max(info->max_timestamp_ms, z.max_timestamp_ms);
  info->min_commit_seq = std::min(info->min_commit_seq, z.min_commit_seq);
  info->max_commit_seq = std::max(info->max_commit_seq, z.max_commit_seq);
  if (z.min_account_id < info->min_account_id) info->min_account_id = z.min_account_id;
  if (info->max_account_id < z.max_account_id) info->max_account_id = z.max_account_id;
}

// Writes the whole file to tmp and leaves it open and unsynced in *out.
Status WriteFile(FileSystem* fs, const std::string& tmp, const std::vector<const EventView*>& rows,
                 const SegmentWriterOptions& options, BlockEncoder& encoder, std::string& buf,
                 SegmentInfo* info, std::unique_ptr<WritableFile>* out) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs->NewWritableFile(tmp));
  buf.assign(segment::kMagic, sizeof(segment::kMagic));
  PutFixed32(&buf, segment::kVersion);
  RETURN_IF_ERROR(file->Append(buf));
  uint64_t offset = segment::kHeaderSize;

  Footer footer;
  footer.info = *info;
  footer.rows_per_block = options.rows_per_block;
  encoder.set_event_ids_distinct(options.event_ids_distinct);
  for (size_t begin = 0; begin < rows.size(); begin += options.rows_per_block) {
    const size_t end = std::min(rows.size(), begin + options.rows_per_block);
    BlockEntry& entry = footer.blocks.emplace_back();
    buf.clear();
    if (!encoder.Encode(rows, begin, end, &buf, &entry)) {
      return Status::InvalidArgument(tmp + ": a column chunk exceeds 4 GiB; lower rows_per_block");
    }
    RETURN_IF_ERROR(file->Append(buf));
    offset += buf.size();
    MergeZone(entry.zone, footer.blocks.size() == 1, &footer.info);
  }
  footer.info.row_count = rows.size();

  buf.clear();
  segment::EncodeFooter(footer, &buf);
  if (buf.size() > UINT32_MAX) return Status::InvalidArgument(tmp + ": footer exceeds 4 GiB");
  const uint32_t footer_size = static_cast<uint32_t>(buf.size());
  const uint32_t footer_crc = crc32c::Mask(crc32c::Value(buf));
  PutFixed64(&buf, offset);
  PutFixed32(&buf, footer_size);
  PutFixed32(&buf, footer_crc);
  PutFixed32(&buf, segment::kVersion);
  buf.append(segment::kMagic, sizeof(segment::kMagic));
  RETURN_IF_ERROR(file->Append(buf));
  offset += buf.size();
  footer.info.file_size = offset;
  *info = std::move(footer.info);
  *out = std::move(file);
  return Status::OK();
}

}  // namespace

struct SegmentWriterScratch::Rep {
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx{ZSTD_createCCtx()};
  BlockEncoder encoder{cctx.get()};  // declared after cctx: holds it
  std::string buf;                   // one block (or the footer) before it is appended
};

SegmentWriterScratch::SegmentWriterScratch() : rep_(std::make_unique<Rep>()) {}
SegmentWriterScratch::~SegmentWriterScratch() = default;

Status WriteSegment(FileSystem* fs, const std::string& path,
                    const std::vector<const EventView*>& rows, const SegmentWriterOptions& options,
                    SegmentInfo* info) {
  SegmentWriterScratch scratch;
  return WriteSegment(fs, path, rows, options, info, &scratch);
}

UnsyncedSegment::UnsyncedSegment(FileSystem* fs, std::string path,
                                 std::unique_ptr<WritableFile> file)
    : fs_(fs), path_(std::move(path)), file_(std::move(file)) {}

UnsyncedSegment::~UnsyncedSegment() {
  if (file_ != nullptr) {
    file_->Close().IgnoreError();
    file_.reset();
    fs_->RemoveFile(path_ + ".tmp").IgnoreError();
  }
}

Status UnsyncedSegment::Commit() {
  if (file_ == nullptr) return Status::Internal(path_ + ": segment committed twice");
  const std::string tmp = path_ + ".tmp";
  Status s = file_->Sync();
  if (s.ok()) s = file_->Close();
  file_.reset();
  if (s.ok()) s = fs_->Rename(tmp, path_);
  if (!s.ok()) fs_->RemoveFile(tmp).IgnoreError();
  return s;
}

Status WriteSegment(FileSystem* fs, const std::string& path,
                    const std::vector<const EventView*>& rows, const SegmentWriterOptions& options,
                    SegmentInfo* info, SegmentWriterScratch* scratch) {
  std::unique_ptr<UnsyncedSegment> unsynced;
  RETURN_IF_ERROR(WriteSegmentUnsynced(fs, path, rows, options, info, scratch, &unsynced));
  return unsynced->Commit();
}

Status WriteSegmentUnsynced(FileSystem* fs, const std::string& path,
                            const std::vector<const EventView*>& rows,
                            const SegmentWriterOptions& options, SegmentInfo* info,
                            SegmentWriterScratch* scratch, std::unique_ptr<UnsyncedSegment>* out,
                            const SegmentRowHints& hints) {
  if (rows.empty()) return Status::InvalidArgument(path + ": a segment needs at least one row");
  if (options.rows_per_block == 0 || options.rows_per_block > segment::kMaxRowsPerBlock) {
    return Status::InvalidArgument(path + ": rows_per_block must be in [1, 2^20]");
  }
  if (options.zstd_level < ZSTD_minCLevel() || options.zstd_level > ZSTD_maxCLevel()) {
    return Status::InvalidArgument(path + ": zstd_level out of range");
  }
  int64_t lo = 0, hi = -1;  // an empty range sends every row to the exact check
  if (!PartitionRange(info->partition, &lo, &hi)) hi = lo - 1;
  for (const EventView* e : rows) {
    if (e == nullptr) return Status::InvalidArgument(path + ": null row");
    if ((e->timestamp_ms < lo || e->timestamp_ms > hi) &&
        MonthPartition(e->timestamp_ms) != info->partition) {
      return Status::InvalidArgument(path + ": event " + std::string(e->event_id) +
                                     " is outside the segment's month partition");
    }
  }
  SegmentWriterScratch::Rep& rep = *scratch->rep_;
  ZSTD_CCtx* cctx = rep.cctx.get();
  if (cctx == nullptr) return Status::Internal("ZSTD_createCCtx failed");
  // One context for every chunk (and, through the scratch, every segment: resetting the
  // parameters keeps the workspace). At the fast levels, 2^13-entry match tables find the
  // same repeats in a block's columns as the level's defaults (measured: identical sizes) and
  // cost less to reset per chunk.
  size_t zr = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  if (!ZSTD_isError(zr)) {
    zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.zstd_level);
  }
  if (!ZSTD_isError(zr) && options.zstd_level >= 1 && options.zstd_level <= 3) {
    zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, 13);
    if (!ZSTD_isError(zr) && options.zstd_level >= 2) {
      zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_chainLog, 13);
    }
  }
  if (ZSTD_isError(zr)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(zr));
  const std::string tmp = path + ".tmp";
  SegmentInfo result = *info;
  std::unique_ptr<WritableFile> file;
  rep.encoder.set_hints(hints);
  Status s = WriteFile(fs, tmp, rows, options, rep.encoder, rep.buf, &result, &file);
  rep.encoder.set_hints(SegmentRowHints());
  if (!s.ok()) {
    if (file != nullptr) file->Close().IgnoreError();
    fs->RemoveFile(tmp).IgnoreError();
    return s;
  }
  *info = std::move(result);
  *out = std::make_unique<UnsyncedSegment>(fs, path, std::move(file));
  return Status::OK();
}

std::vector<EventView> ViewEvents(const std::vector<const Event*>& rows, std::string* dims) {
  // Dimensions re-encoded as the event record has them (keys ascending), all into one buffer
  // filled first, so the views taken after it stay put.
  std::vector<EventView> views(rows.size());
  std::vector<size_t> dim_end(rows.size());
  std::vector<const std::pair<std::string, std::string>*> sorted;
  for (size_t i = 0; i < rows.size(); ++i) {
    sorted.clear();
    for (const auto& kv : rows[i]->dimensions) sorted.push_back(&kv);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* kv : sorted) {
      PutLengthPrefixed(dims, kv->first);
      PutLengthPrefixed(dims, kv->second);
    }
    dim_end[i] = dims->size();
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const Event& e = *rows[i];
    EventView& v = views[i];
    v.event_id = e.event_id;
    v.kind = e.kind;
    v.has_correction_ref = e.has_correction_ref;
    v.correction_original_event_id = e.correction_original_event_id;
    v.correction_reason = e.correction_reason;
    v.account_id = e.account_id;
    if (e.subscription_id) v.subscription_id = *e.subscription_id;
    v.product_id = e.product_id;
    v.meter_id = e.meter_id;
    if (e.model_id) v.model_id = *e.model_id;
    v.timestamp_ms = e.timestamp_ms;
    v.quantity = e.quantity;
    v.unit = e.unit;
    v.source = e.source;
    const size_t begin = i == 0 ? 0 : dim_end[i - 1];
    v.dimensions = DimensionsView(std::string_view(*dims).substr(begin, dim_end[i] - begin),
                                  static_cast<uint32_t>(e.dimensions.size()));
    v.ingested_at_ms = e.ingested_at_ms;
    v.commit_seq = e.commit_seq;
  }
  return views;
}

Status WriteSegment(FileSystem* fs, const std::string& path, const std::vector<const Event*>& rows,
                    const SegmentWriterOptions& options, SegmentInfo* info) {
  for (const Event* e : rows) {
    if (e == nullptr) return Status::InvalidArgument(path + ": null row");
  }
  std::string dims;
  const std::vector<EventView> views = ViewEvents(rows, &dims);
  std::vector<const EventView*> ptrs(views.size());
  for (size_t i = 0; i < views.size(); ++i) ptrs[i] = &views[i];
  return WriteSegment(fs, path, ptrs, options, info);
}

}  // namespace usagedb
