// WriteSegment: encodes rows block by block (analyze -> compress per column chunk), then the
// footer and trailer, into path + ".tmp", and renames it into place once synced.

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <set>
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

class BlockEncoder {
 public:
  BlockEncoder(ZSTD_CCtx* cctx, int level) : cctx_(cctx), level_(level) {}

  // Encodes rows[begin, end) into *block, filling entry's chunk sizes and zone map.
  // Returns false when a chunk would not fit the footer's 32-bit size.
  bool Encode(const std::vector<const Event*>& rows, size_t begin, size_t end, std::string* block,
              BlockEntry* entry) {
    const size_t n = end - begin;
    const Event* const* r = rows.data() + begin;
    entry->rows = static_cast<uint32_t>(n);
    for (int i = 0; i < kNumColumns; ++i) {
      const size_t before = block->size();
      EncodeColumn(segment::kPhysicalColumnOrder[i], r, n, block);
      if (block->size() - before > UINT32_MAX) return false;
      entry->chunk_size[i] = static_cast<uint32_t>(block->size() - before);
    }
    BuildZoneMap(r, n, &entry->zone);
    return true;
  }

 private:
  void EncodeColumn(Column c, const Event* const* r, size_t n, std::string* block) {
    body_.clear();
    Encoding enc;
    switch (c) {
      case Column::kKind:
      case Column::kTimestampMs:
      case Column::kIngestedAtMs:
      case Column::kCommitSeq: {
        ints_.resize(n);
        for (size_t i = 0; i < n; ++i) {
          const Event& e = *r[i];
          ints_[i] = c == Column::kKind           ? static_cast<int64_t>(e.kind)
                     : c == Column::kTimestampMs  ? e.timestamp_ms
                     : c == Column::kIngestedAtMs ? e.ingested_at_ms
                                                  : static_cast<int64_t>(e.commit_seq);
        }
        if (c == Column::kKind) {
          enc = segment::EncodeInt64Column(ints_.data(), n, &body_);
          break;
        }
        // Time and sequence columns: every candidate goes through compression and the
        // smallest chunk wins (zstd finds repeats that the size analysis cannot see).
        best_.clear();
        for (Encoding e : {Encoding::kIntFor, Encoding::kIntDeltaFor, Encoding::kIntRle,
                           Encoding::kIntDeltaVarint, Encoding::kIntStepsBySeq}) {
          body_.clear();
          if (e == Encoding::kIntStepsBySeq) {
            if (c != Column::kIngestedAtMs) continue;
            seqs_.resize(n);
            for (size_t i = 0; i < n; ++i) seqs_[i] = r[i]->commit_seq;
            if (!segment::EncodeInt64StepsBySeq(ints_.data(), seqs_.data(), n, &body_)) continue;
          } else {
            segment::EncodeInt64As(e, ints_.data(), n, &body_);
          }
          candidate_.clear();
          AppendChunk(e, &candidate_);
          if (best_.empty() || candidate_.size() < best_.size()) best_.swap(candidate_);
        }
        block->append(best_);
        return;
      }
      case Column::kQuantity: {
        quantities_.resize(n);
        for (size_t i = 0; i < n; ++i) quantities_[i] = r[i]->quantity;
        enc = segment::EncodeInt128Column(quantities_.data(), n, &body_);
        break;
      }
      default: {
        views_.resize(n);
        nulls_.clear();
        if (c == Column::kDimensions) dims_.resize(n);
        for (size_t i = 0; i < n; ++i) {
          const Event& e = *r[i];
          bool is_null = false;
          std::string_view v;
          switch (c) {
            case Column::kEventId:
              v = e.event_id;
              break;
            case Column::kCorrectionOriginalEventId:
              is_null = !e.has_correction_ref;
              v = e.correction_original_event_id;
              break;
            case Column::kCorrectionReason:
              is_null = !e.has_correction_ref;
              v = e.correction_reason;
              break;
            case Column::kAccountId:
              v = e.account_id;
              break;
            case Column::kSubscriptionId:
              is_null = !e.subscription_id.has_value();
              if (!is_null) v = *e.subscription_id;
              break;
            case Column::kProductId:
              v = e.product_id;
              break;
            case Column::kMeterId:
              v = e.meter_id;
              break;
            case Column::kModelId:
              is_null = !e.model_id.has_value();
              if (!is_null) v = *e.model_id;
              break;
            case Column::kUnit:
              v = e.unit;
              break;
            case Column::kSource:
              v = e.source;
              break;
            default:  // kDimensions
              dims_[i].clear();
              segment::AppendCanonicalDimensions(e.dimensions, &dims_[i]);
              v = dims_[i];
              break;
          }
          if (is_null) {
            if (nulls_.empty()) nulls_.assign(n, 0);
            nulls_[i] = 1;
            v = {};
          }
          views_[i] = v;
        }
        enc = segment::EncodeStringColumn(views_, nulls_, &body_);
        break;
      }
    }
    AppendChunk(enc, block);
  }

  // chunk := encoding | codec | [raw_size] | data | masked crc32c of the preceding bytes.
  void AppendChunk(Encoding enc, std::string* block) {
    const size_t start = block->size();
    block->push_back(static_cast<char>(enc));
    bool use_zstd = false;
    size_t compressed = 0;
    if (body_.size() >= kMinZstdInput) {
      zbuf_.resize(ZSTD_compressBound(body_.size()));
      compressed =
          ZSTD_compressCCtx(cctx_, zbuf_.data(), zbuf_.size(), body_.data(), body_.size(), level_);
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

  static void BuildZoneMap(const Event* const* r, size_t n, BlockZoneMap* z) {
    z->row_count = static_cast<uint32_t>(n);
    z->min_timestamp_ms = z->max_timestamp_ms = r[0]->timestamp_ms;
    z->min_commit_seq = z->max_commit_seq = r[0]->commit_seq;
    const std::string* min_account = &r[0]->account_id;
    const std::string* max_account = &r[0]->account_id;
    std::set<std::string_view> products, meters, models;
    for (size_t i = 0; i < n; ++i) {
      const Event& e = *r[i];
      z->min_timestamp_ms = std::min(z->min_timestamp_ms, e.timestamp_ms);
      z->max_timestamp_ms = std::max(z->max_timestamp_ms, e.timestamp_ms);
      z->min_commit_seq = std::min(z->min_commit_seq, e.commit_seq);
      z->max_commit_seq = std::max(z->max_commit_seq, e.commit_seq);
      if (e.account_id < *min_account) min_account = &e.account_id;
      if (*max_account < e.account_id) max_account = &e.account_id;
      products.insert(e.product_id);
      meters.insert(e.meter_id);
      if (e.model_id) models.insert(*e.model_id);
    }
    z->min_account_id = *min_account;
    z->max_account_id = *max_account;
    z->product_ids.assign(products.begin(), products.end());
    z->meter_ids.assign(meters.begin(), meters.end());
    z->model_ids.assign(models.begin(), models.end());
  }

  ZSTD_CCtx* cctx_;
  int level_;
  std::string body_, zbuf_, best_, candidate_;
  std::vector<uint64_t> seqs_;
  std::vector<int64_t> ints_;
  std::vector<__int128> quantities_;
  std::vector<std::string_view> views_;
  std::vector<uint8_t> nulls_;
  std::vector<std::string> dims_;
};

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

Status WriteFile(FileSystem* fs, const std::string& tmp, const std::vector<const Event*>& rows,
                 const SegmentWriterOptions& options, ZSTD_CCtx* cctx, SegmentInfo* info) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs->NewWritableFile(tmp));
  std::string buf(segment::kMagic, sizeof(segment::kMagic));
  PutFixed32(&buf, segment::kVersion);
  RETURN_IF_ERROR(file->Append(buf));
  uint64_t offset = segment::kHeaderSize;

  Footer footer;
  footer.info = *info;
  footer.rows_per_block = options.rows_per_block;
  BlockEncoder encoder(cctx, options.zstd_level);
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
  RETURN_IF_ERROR(file->Sync());
  RETURN_IF_ERROR(file->Close());
  footer.info.file_size = offset;
  *info = std::move(footer.info);
  return Status::OK();
}

}  // namespace

Status WriteSegment(FileSystem* fs, const std::string& path, const std::vector<const Event*>& rows,
                    const SegmentWriterOptions& options, SegmentInfo* info) {
  if (rows.empty()) return Status::InvalidArgument(path + ": a segment needs at least one row");
  if (options.rows_per_block == 0 || options.rows_per_block > segment::kMaxRowsPerBlock) {
    return Status::InvalidArgument(path + ": rows_per_block must be in [1, 2^20]");
  }
  if (options.zstd_level < ZSTD_minCLevel() || options.zstd_level > ZSTD_maxCLevel()) {
    return Status::InvalidArgument(path + ": zstd_level out of range");
  }
  for (const Event* e : rows) {
    if (e == nullptr) return Status::InvalidArgument(path + ": null row");
    if (MonthPartition(e->timestamp_ms) != info->partition) {
      return Status::InvalidArgument(path + ": event " + e->event_id +
                                     " is outside the segment's month partition");
    }
  }
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx(ZSTD_createCCtx());
  if (!cctx) return Status::Internal("ZSTD_createCCtx failed");
  const std::string tmp = path + ".tmp";
  SegmentInfo result = *info;
  Status s = WriteFile(fs, tmp, rows, options, cctx.get(), &result);
  if (s.ok()) s = fs->Rename(tmp, path);
  if (!s.ok()) {
    fs->RemoveFile(tmp).IgnoreError();
    return s;
  }
  *info = std::move(result);
  return Status::OK();
}

}  // namespace usagedb
