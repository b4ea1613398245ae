#include "segment/segment_footer.h"

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

void EncodeFooter(const Footer& f, std::string* dst) {
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

bool DecodeFooter(std::string_view in, uint64_t footer_offset, Footer* f) {
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
  if (!d.GetVarint32(&r.segment_count) || !d.GetVarint64(&r.event_count) ||
      !d.GetVarint64(&r.dedupe_run) || !d.GetVarint64(&r.conflict_log) ||
      !d.GetVarint64(&r.conflict_count) || !GetSigned64(&d, &r.max_ingested_at_ms) ||
      !d.GetVarint64(&r.last_sequence)) {
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

}  // namespace usagedb::segment
