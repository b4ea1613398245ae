#include "segment/segment_footer.h"

#include <zstd.h>

#include <memory>

#include "util/coding.h"

namespace usagedb::segment {
namespace {

void PutStringSet(const std::vector<std::string>& set, std::string* dst) {
  PutVarint64(dst, set.size());
  for (const auto& s : set) PutLengthPrefixed(dst, s);
}

bool GetString(Decoder* d, std::string* out) {
  std::string_view v;
  if (!d->GetLengthPrefixed(&v)) return false;
  out->assign(v.data(), v.size());
  return true;
}

bool GetStringSet(Decoder* d, std::vector<std::string>* set) {
  uint64_t n;
  if (!d->GetVarint64(&n) || n > d->remaining()) return false;
  set->resize(n);
  for (auto& s : *set) {
    if (!GetString(d, &s)) return false;
  }
  return true;
}

bool GetSigned64(Decoder* d, int64_t* v) {
  uint64_t x;
  if (!d->GetVarint64(&x)) return false;
  *v = ZigZagDecode64(x);
  return true;
}

}  // namespace

int PhysicalIndex(Column c) {
  for (int i = 0; i < kNumColumns; ++i) {
    if (kPhysicalColumnOrder[i] == c) return i;
  }
  return -1;
}

const char* ColumnName(Column c) {
  static constexpr const char* kNames[kNumColumns] = {"event_id",
                                                      "kind",
                                                      "correction_original_event_id",
                                                      "correction_reason",
                                                      "account_id",
                                                      "subscription_id",
                                                      "product_id",
                                                      "meter_id",
                                                      "model_id",
                                                      "timestamp_ms",
                                                      "quantity",
                                                      "unit",
                                                      "source",
                                                      "dimensions",
                                                      "ingested_at_ms",
                                                      "commit_seq"};
  const int i = static_cast<int>(c);
  return i >= 0 && i < kNumColumns ? kNames[i] : "?";
}

namespace {

void EncodeFooterBody(const Footer& f, std::string* dst) {
  const SegmentInfo& info = f.info;
  PutVarint32(dst, info.bucket);
  PutVarint64(dst, ZigZagEncode64(info.partition));
  PutVarint64(dst, info.row_count);
  PutVarint64(dst, ZigZagEncode64(info.min_timestamp_ms));
  PutVarint64(dst, ZigZagEncode64(info.max_timestamp_ms));
  PutVarint64(dst, info.min_commit_seq);
  PutVarint64(dst, info.max_commit_seq);
  PutLengthPrefixed(dst, info.min_account_id);
  PutLengthPrefixed(dst, info.max_account_id);
  PutVarint64(dst, info.origin_min_seq);
  PutVarint64(dst, info.origin_max_seq);
  PutVarint64(dst, info.origin_replaced.size());
  for (uint64_t n : info.origin_replaced) PutVarint64(dst, n);
  const FlushReceipt& r = info.receipt;
  PutVarint32(dst, r.segment_count);
  PutVarint64(dst, r.event_count);
  PutVarint64(dst, r.dedupe_run);
  PutVarint64(dst, r.conflict_log);
  PutVarint64(dst, r.conflict_count);
  PutVarint64(dst, ZigZagEncode64(r.max_ingested_at_ms));
  PutVarint64(dst, r.last_sequence);
  PutVarint32(dst, f.rows_per_block);
  PutVarint64(dst, f.blocks.size());
  for (const BlockEntry& b : f.blocks) {
    PutVarint32(dst, b.rows);
    for (uint32_t s : b.chunk_size) PutVarint32(dst, s);
    const BlockZoneMap& z = b.zone;
    PutVarint64(dst, ZigZagEncode64(z.min_timestamp_ms));
    PutVarint64(dst, ZigZagEncode64(z.max_timestamp_ms));
    PutVarint64(dst, z.min_commit_seq);
    PutVarint64(dst, z.max_commit_seq);
    PutLengthPrefixed(dst, z.min_account_id);
    PutLengthPrefixed(dst, z.max_account_id);
    PutStringSet(z.product_ids, dst);
    PutStringSet(z.meter_ids, dst);
    PutStringSet(z.model_ids, dst);
  }
}

// has_receipt: false for version 1 (no receipt stored; it stays all zero).
bool DecodeFooterBody(std::string_view in, uint64_t footer_offset, bool has_receipt, Footer* f) {
  Decoder d(in);
  SegmentInfo& info = f->info;
  uint64_t partition, replaced, num_blocks;
  if (!d.GetVarint32(&info.bucket) || !d.GetVarint64(&partition)) return false;
  const int64_t p = ZigZagDecode64(partition);
  if (p < INT32_MIN || p > INT32_MAX) return false;
  info.partition = static_cast<int32_t>(p);
  if (!d.GetVarint64(&info.row_count) || !GetSigned64(&d, &info.min_timestamp_ms) ||
      !GetSigned64(&d, &info.max_timestamp_ms) || !d.GetVarint64(&info.min_commit_seq) ||
      !d.GetVarint64(&info.max_commit_seq) || !GetString(&d, &info.min_account_id) ||
      !GetString(&d, &info.max_account_id) || !d.GetVarint64(&info.origin_min_seq) ||
      !d.GetVarint64(&info.origin_max_seq) || !d.GetVarint64(&replaced) ||
      replaced > d.remaining()) {
    return false;
  }
  info.origin_replaced.resize(replaced);
  for (auto& n : info.origin_replaced) {
    if (!d.GetVarint64(&n)) return false;
  }
  FlushReceipt& r = info.receipt;
  r = FlushReceipt();
  if (has_receipt &&
      (!d.GetVarint32(&r.segment_count) || !d.GetVarint64(&r.event_count) ||
       !d.GetVarint64(&r.dedupe_run) || !d.GetVarint64(&r.conflict_log) ||
       !d.GetVarint64(&r.conflict_count) || !GetSigned64(&d, &r.max_ingested_at_ms) ||
       !d.GetVarint64(&r.last_sequence))) {
    return false;
  }
  if (!d.GetVarint32(&f->rows_per_block) || !d.GetVarint64(&num_blocks) ||
      num_blocks > d.remaining()) {
    return false;
  }
  f->blocks.resize(num_blocks);
  uint64_t offset = kHeaderSize, rows = 0;
  for (BlockEntry& b : f->blocks) {
    if (!d.GetVarint32(&b.rows) || b.rows == 0 || b.rows > kMaxRowsPerBlock) return false;
    b.offset = offset;
    uint64_t chunk_offset = offset;
    for (int i = 0; i < kNumColumns; ++i) {
      if (!d.GetVarint32(&b.chunk_size[i]) || b.chunk_size[i] < kMinChunkSize) return false;
      b.chunk_offset[i] = chunk_offset;
      chunk_offset += b.chunk_size[i];
    }
    b.size = chunk_offset - offset;
    offset = chunk_offset;
    rows += b.rows;
    BlockZoneMap& z = b.zone;
    z.row_count = b.rows;
    if (!GetSigned64(&d, &z.min_timestamp_ms) || !GetSigned64(&d, &z.max_timestamp_ms) ||
        !d.GetVarint64(&z.min_commit_seq) || !d.GetVarint64(&z.max_commit_seq) ||
        !GetString(&d, &z.min_account_id) || !GetString(&d, &z.max_account_id) ||
        !GetStringSet(&d, &z.product_ids) || !GetStringSet(&d, &z.meter_ids) ||
        !GetStringSet(&d, &z.model_ids)) {
      return false;
    }
  }
  return d.empty() && offset == footer_offset && rows == info.row_count && num_blocks > 0;
}

}  // namespace

// The footer is mostly zone-map id sets that repeat from block to block (model names share
// prefixes too), so it is stored as a zstd frame when that pays.
struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

void EncodeFooter(const Footer& footer, std::string* dst) {
  std::string raw;
  EncodeFooterBody(footer, &raw);
  // One context per thread (a fresh one per file would cost more than the frame); small
  // match tables suffice for a footer (its repeats are the block entries' id sets).
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx;
  if (!cctx) {
    cctx.reset(ZSTD_createCCtx());
    if (cctx) {
      (void)ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, 3);
      (void)ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_hashLog, 13);
      (void)ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_chainLog, 13);
    }
  }
  std::string frame(ZSTD_compressBound(raw.size()), '\0');
  const size_t z =
      cctx ? ZSTD_compress2(cctx.get(), frame.data(), frame.size(), raw.data(), raw.size())
           : ZSTD_compress(frame.data(), frame.size(), raw.data(), raw.size(), 3);
  if (!ZSTD_isError(z) && z + 10 < raw.size() && raw.size() <= z * kMaxZstdRatio + kZstdRawSlack &&
      raw.size() <= kMaxChunkRawSize) {
    dst->push_back(static_cast<char>(Codec::kZstd));
    PutVarint64(dst, raw.size());
    dst->append(frame.data(), z);
  } else {
    dst->push_back(static_cast<char>(Codec::kNone));
    dst->append(raw);
  }
}

bool DecodeFooter(std::string_view in, uint64_t footer_offset, uint32_t version, Footer* footer) {
  if (version == kVersionRawFooter) return DecodeFooterBody(in, footer_offset, false, footer);
  Decoder d(in);
  uint8_t codec;
  if (!d.GetByte(&codec)) return false;
  const std::string_view rest(d.pos(), d.remaining());
  if (codec == static_cast<uint8_t>(Codec::kNone)) {
    return DecodeFooterBody(rest, footer_offset, true, footer);
  }
  uint64_t raw_size;
  if (codec != static_cast<uint8_t>(Codec::kZstd) || !d.GetVarint64(&raw_size)) return false;
  const std::string_view frame(d.pos(), d.remaining());
  if (raw_size > kMaxChunkRawSize || raw_size > frame.size() * kMaxZstdRatio + kZstdRawSlack ||
      ZSTD_getFrameContentSize(frame.data(), frame.size()) != raw_size) {
    return false;
  }
  std::string raw(raw_size, '\0');
  const size_t got = ZSTD_decompress(raw.data(), raw.size(), frame.data(), frame.size());
  if (ZSTD_isError(got) || got != raw_size) return false;
  return DecodeFooterBody(raw, footer_offset, true, footer);
}

}  // namespace usagedb::segment
