// Dedupe run files: writer (RunBuilder), reader (RunImpl), merge. Format: docs/parts/dedupe.md.
//
// Why this shape: a miss (the common case: a new event id) must cost about one cache line
// per run, so each run keeps a blocked Bloom filter in RAM (one 64-byte line per key) and a
// block index of 16 bytes per ~4 KiB block. Entries are sorted by routing hash, so the index
// is a sorted array of first hashes and a filter-positive lookup reads exactly one block.
#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <queue>

#include "dedupe/dedupe.h"
#include "dedupe/dedupe_format.h"
#include "dedupe/dedupe_internal.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace usagedb {
namespace {

namespace fmt = dedupe_format;
using dedupe_internal::BlockKey;
using dedupe_internal::DecodedBlock;

// ---------------------------------------------------------------------------------------------
// Blocked Bloom filter. The line is chosen by the high bits of the hash (multiply-shift range
// reduction), the probes by the low 32 bits, re-mixed by a multiplication per probe; each probe
// takes the top 9 bits as a bit number in the 512-bit line.

inline uint64_t FilterLine(uint64_t hash, uint64_t lines) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(hash) * lines) >> 64);
}

inline void FilterAdd(uint64_t* words, uint64_t lines, uint32_t probes, uint64_t hash) {
  uint64_t* line = words + FilterLine(hash, lines) * 8;
  uint32_t h = static_cast<uint32_t>(hash);
  for (uint32_t i = 0; i < probes; ++i) {
    uint32_t bit = h >> 23;
    line[bit >> 6] |= uint64_t{1} << (bit & 63);
    h *= 0x9e3779b9u;
  }
}

inline bool FilterMayContain(const uint64_t* words, uint64_t lines, uint32_t probes,
                             uint64_t hash) {
  const uint64_t* line = words + FilterLine(hash, lines) * 8;
  uint32_t h = static_cast<uint32_t>(hash);
  for (uint32_t i = 0; i < probes; ++i) {
    uint32_t bit = h >> 23;
    if ((line[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) return false;
    h *= 0x9e3779b9u;
  }
  return true;
}

uint64_t FilterLinesFor(uint64_t keys) {
  uint64_t bits = keys * fmt::kFilterBitsPerKey;
  uint64_t lines = (bits + fmt::kFilterLineBytes * 8 - 1) / (fmt::kFilterLineBytes * 8);
  return std::max<uint64_t>(lines, 1);
}

struct AlignedFree {
  void operator()(uint64_t* p) const { std::free(p); }
};
using FilterWords = std::unique_ptr<uint64_t[], AlignedFree>;

FilterWords AllocateFilter(uint64_t lines) {
  size_t bytes = static_cast<size_t>(lines) * fmt::kFilterLineBytes;
  auto* p = static_cast<uint64_t*>(std::aligned_alloc(fmt::kFilterLineBytes, bytes));
  if (p != nullptr) std::memset(p, 0, bytes);
  return FilterWords(p);
}

// (hash, id) order of the run.
inline bool KeyLess(uint64_t ha, std::string_view a, uint64_t hb, std::string_view b) {
  return ha != hb ? ha < hb : a < b;
}

inline uint32_t BlockCrc(std::string_view contents, uint8_t type) {
  uint32_t crc = crc32c::Value(contents);
  char t = static_cast<char>(type);
  return crc32c::Mask(crc32c::Extend(crc, &t, 1));
}

// ---------------------------------------------------------------------------------------------
// Writer.

// Streams entries, in strictly increasing (hash, id) order, into a run file at path + ".tmp"
// and renames it to path on Finish. Not thread-safe. Destroying an unfinished builder removes
// the temporary file.
class RunBuilder {
 public:
  RunBuilder(FileSystem* fs, std::string path, const DedupeWriteOptions& options)
      : fs_(fs), path_(std::move(path)), tmp_path_(path_ + ".tmp"), options_(options) {}
  ~RunBuilder() {
    if (file_ != nullptr) {
      file_->Close().IgnoreError();
      file_.reset();
    }
    if (!finished_ && started_) fs_->RemoveFile(tmp_path_).IgnoreError();
  }

  Status Start() {
    ASSIGN_OR_RETURN(file_, fs_->NewWritableFile(tmp_path_));
    started_ = true;
    return Status::OK();
  }

  Status Add(DedupeEntry e, uint64_t hash) {
    if (e.event_id.empty() || e.event_id.size() > fmt::kMaxEventIdBytes) {
      return Status::InvalidArgument(path_ + ": dedupe entry id must be 1.." +
                                     std::to_string(fmt::kMaxEventIdBytes) + " bytes");
    }
    if (static_cast<uint8_t>(e.kind) > static_cast<uint8_t>(EventKind::kRetraction)) {
      return Status::InvalidArgument(path_ + ": dedupe entry with an unknown kind");
    }
    if (key_count_ > 0 && !KeyLess(last_hash_, last_id_, hash, e.event_id)) {
      return Status::InvalidArgument(path_ + ": dedupe entries out of order or repeated id '" +
                                     e.event_id + "'");
    }
    if (cut_pending_ && hash != last_hash_) RETURN_IF_ERROR(FlushBlock());

    key_count_++;
    if (key_count_ == 1) {
      min_seq_ = max_seq_ = e.commit_seq;
    } else {
      min_seq_ = std::min(min_seq_, e.commit_seq);
      max_seq_ = std::max(max_seq_, e.commit_seq);
    }
    if (e.kind == EventKind::kUsage) {
      max_usage_anchor_ = std::max(max_usage_anchor_, std::max(e.ingested_at_ms, e.timestamp_ms));
    } else {
      forever_count_++;
    }
    hashes_.push_back(hash);
    last_hash_ = hash;
    last_id_ = e.event_id;
    block_estimate_ += e.event_id.size() + 16 + 1 + 2 + 12;
    block_id_bytes_ += e.event_id.size();
    block_.push_back(std::move(e));
    if (block_.size() == 1) block_first_hash_ = hash;
    if (block_estimate_ >= fmt::kTargetBlockBytes && block_.size() >= fmt::kMinBlockEntries) {
      cut_pending_ = true;
    }
    return Status::OK();
  }

  Status Finish(DedupeRunInfo* info) {
    if (!block_.empty()) RETURN_IF_ERROR(FlushBlock());
    const uint64_t filter_offset = offset_;
    const uint64_t lines = FilterLinesFor(key_count_);
    FilterWords words = AllocateFilter(lines);
    if (words == nullptr) return Status::Internal(path_ + ": out of memory for the filter");
    for (uint64_t h : hashes_) FilterAdd(words.get(), lines, fmt::kFilterProbes, h);
    std::string_view filter(reinterpret_cast<const char*>(words.get()),
                            lines * fmt::kFilterLineBytes);
    const uint32_t filter_crc = crc32c::Mask(crc32c::Value(filter));
    RETURN_IF_ERROR(Write(filter));
    const uint64_t index_offset = offset_;
    const uint32_t index_crc = crc32c::Mask(crc32c::Value(index_));
    RETURN_IF_ERROR(Write(index_));

    std::string footer;
    PutFixed32(&footer, fmt::kDedupeFormatVersion);
    PutFixed64(&footer, key_count_);
    PutFixed64(&footer, block_count_);
    PutFixed64(&footer, min_seq_);
    PutFixed64(&footer, max_seq_);
    PutFixed64(&footer, forever_count_);
    PutFixed64(&footer, static_cast<uint64_t>(max_usage_anchor_));
    PutFixed64(&footer, filter_offset);
    PutFixed64(&footer, lines);
    PutFixed32(&footer, fmt::kFilterProbes);
    PutFixed64(&footer, index_offset);
    PutFixed32(&footer, filter_crc);
    PutFixed32(&footer, index_crc);
    PutFixed32(&footer, crc32c::Mask(crc32c::Value(footer)));
    footer.append(fmt::kMagic.data(), fmt::kMagicSize);
    RETURN_IF_ERROR(Write(footer));
    RETURN_IF_ERROR(FlushBuffer());
    RETURN_IF_ERROR(file_->Sync());
    RETURN_IF_ERROR(file_->Close());
    file_.reset();
    RETURN_IF_ERROR(fs_->Rename(tmp_path_, path_));
    finished_ = true;
    if (info != nullptr) {
      info->key_count = key_count_;
      info->file_size = offset_;
      info->min_commit_seq = min_seq_;
      info->max_commit_seq = max_seq_;
      info->forever_key_count = forever_count_;
      info->max_usage_anchor_ms = max_usage_anchor_;
    }
    return Status::OK();
  }

 private:
  Status FlushBlock() {
    int64_t base_ingested = block_[0].ingested_at_ms, base_ts = block_[0].timestamp_ms;
    uint64_t base_seq = block_[0].commit_seq;
    for (const DedupeEntry& e : block_) {
      base_ingested = std::min(base_ingested, e.ingested_at_ms);
      base_ts = std::min(base_ts, e.timestamp_ms);
      base_seq = std::min(base_seq, e.commit_seq);
    }
    std::string body;
    body.reserve(block_estimate_ + 64);
    PutVarint32(&body, static_cast<uint32_t>(block_.size()));
    PutVarint64(&body, ZigZagEncode64(base_ingested));
    PutVarint64(&body, ZigZagEncode64(base_ts));
    PutVarint64(&body, base_seq);
    std::string_view prev;
    for (const DedupeEntry& e : block_) {
      std::string_view id = e.event_id;
      size_t shared = 0;
      const size_t limit = std::min(prev.size(), id.size());
      while (shared < limit && prev[shared] == id[shared]) ++shared;
      PutVarint32(&body, static_cast<uint32_t>(shared));
      PutVarint32(&body, static_cast<uint32_t>(id.size() - shared));
      body.append(id.data() + shared, id.size() - shared);
      PutFixed64(&body, e.payload_digest.lo);
      PutFixed64(&body, e.payload_digest.hi);
      body.push_back(static_cast<char>(e.kind));
      // Deltas from the block minimum, in wrapping unsigned arithmetic: exact for any int64.
      PutVarint64(&body,
                  static_cast<uint64_t>(e.ingested_at_ms) - static_cast<uint64_t>(base_ingested));
      PutVarint64(&body, static_cast<uint64_t>(e.timestamp_ms) - static_cast<uint64_t>(base_ts));
      PutVarint64(&body, e.commit_seq - base_seq);
      prev = id;
    }
    if (body.size() + 64 > fmt::kMaxBlockBytes || block_id_bytes_ > fmt::kMaxBlockBytes) {
      return Status::InvalidArgument(path_ + ": too many entries share one routing hash");
    }

    std::string contents;
    uint8_t type = static_cast<uint8_t>(fmt::BlockType::kRaw);
    if (options_.compress) {
      std::string z;
      z.resize(ZSTD_compressBound(body.size()) + 5);
      std::string prefix;
      PutVarint32(&prefix, static_cast<uint32_t>(body.size()));
      size_t n = ZSTD_compress(z.data() + prefix.size(), z.size() - prefix.size(), body.data(),
                               body.size(), fmt::kZstdLevel);
      if (!ZSTD_isError(n) && prefix.size() + n <= body.size() - body.size() / 8) {
        std::memcpy(z.data(), prefix.data(), prefix.size());
        z.resize(prefix.size() + n);
        contents = std::move(z);
        type = static_cast<uint8_t>(fmt::BlockType::kZstd);
      }
    }
    if (type == static_cast<uint8_t>(fmt::BlockType::kRaw)) contents = std::move(body);
    const uint32_t crc = BlockCrc(contents, type);
    contents.push_back(static_cast<char>(type));
    PutFixed32(&contents, crc);

    PutFixed64(&index_, block_first_hash_);
    PutFixed64(&index_, offset_);
    PutFixed32(&index_, static_cast<uint32_t>(contents.size()));
    block_count_++;
    RETURN_IF_ERROR(Write(contents));
    block_.clear();
    block_estimate_ = 0;
    block_id_bytes_ = 0;
    cut_pending_ = false;
    return Status::OK();
  }

  Status Write(std::string_view data) {
    buffer_.append(data.data(), data.size());
    offset_ += data.size();
    if (buffer_.size() >= (1u << 20)) return FlushBuffer();
    return Status::OK();
  }
  Status FlushBuffer() {
    if (buffer_.empty()) return Status::OK();
    Status s = file_->Append(buffer_);
    buffer_.clear();
    return s;
  }

  FileSystem* fs_;
  std::string path_, tmp_path_;
  DedupeWriteOptions options_;
  std::unique_ptr<WritableFile> file_;
  bool started_ = false, finished_ = false;
  std::string buffer_;
  uint64_t offset_ = 0;

  std::vector<DedupeEntry> block_;
  uint64_t block_first_hash_ = 0;
  size_t block_estimate_ = 0;
  size_t block_id_bytes_ = 0;  // decoded size of the block's ids
  bool cut_pending_ = false;

  std::string index_;
  uint64_t block_count_ = 0;
  std::vector<uint64_t> hashes_;  // every key's hash, for the filter built in Finish
  uint64_t key_count_ = 0, forever_count_ = 0;
  uint64_t min_seq_ = 0, max_seq_ = 0;
  int64_t max_usage_anchor_ = INT64_MIN;
  uint64_t last_hash_ = 0;
  std::string last_id_;
};

// ---------------------------------------------------------------------------------------------
// Reader.

class RunImpl : public DedupeRun {
 public:
  RunImpl(std::string path, uint64_t file_number, DedupeHashFn hash,
          std::unique_ptr<RandomAccessFile> file)
      : path_(std::move(path)),
        file_number_(file_number),
        hash_(hash),
        file_(std::move(file)),
        cache_id_(dedupe_internal::NewRunCacheId()) {}

  Status Load();

  Result<std::optional<DedupeEntry>> Lookup(std::string_view event_id, uint64_t hash,
                                            DedupeBlockCache* cache) const override {
    if (!MayContain(hash) || first_hash_.empty() || hash < first_hash_[0]) {
      return std::optional<DedupeEntry>();
    }
    const uint64_t b = FindBlock(hash);
    std::shared_ptr<const DecodedBlock> block;
    const BlockKey key{cache_id_, b};
    if (cache != nullptr) block = cache->impl()->Get(key);
    if (block == nullptr) {
      auto fresh = std::make_shared<DecodedBlock>();
      RETURN_IF_ERROR(ReadBlock(b, fresh.get()));
      block = std::move(fresh);
      if (cache != nullptr) cache->impl()->Put(key, block);
    }
    const auto& es = block->entries;
    auto it = std::lower_bound(es.begin(), es.end(), hash,
                               [](const DecodedBlock::Entry& e, uint64_t h) { return e.hash < h; });
    for (; it != es.end() && it->hash == hash; ++it) {
      if (block->id(*it) == event_id) return std::optional<DedupeEntry>(block->ToEntry(*it));
    }
    return std::optional<DedupeEntry>();
  }

  Status ReadAll(std::vector<DedupeEntry>* out) const override {
    DecodedBlock block;
    uint64_t n = 0;
    for (uint64_t b = 0; b < first_hash_.size(); ++b) {
      RETURN_IF_ERROR(ReadBlock(b, &block));
      for (const auto& e : block.entries) out->push_back(block.ToEntry(e));
      n += block.entries.size();
    }
    if (n != info_.key_count) {
      return Status::Corruption(path_ + ": blocks hold " + std::to_string(n) +
                                " keys, footer says " + std::to_string(info_.key_count));
    }
    return Status::OK();
  }

  bool MayContain(uint64_t hash) const override {
    return FilterMayContain(filter_.get(), filter_lines_, filter_probes_, hash);
  }
  void PrefetchFilter(uint64_t hash) const override {
    __builtin_prefetch(filter_.get() + FilterLine(hash, filter_lines_) * 8);
  }
  const DedupeRunInfo& info() const override { return info_; }
  uint64_t file_number() const override { return file_number_; }
  const std::string& path() const override { return path_; }
  size_t memory_bytes() const override {
    return filter_lines_ * fmt::kFilterLineBytes + first_hash_.capacity() * sizeof(uint64_t) +
           offsets_.capacity() * sizeof(uint64_t) + sizeof(*this) + path_.capacity();
  }

  uint64_t block_count() const { return first_hash_.size(); }

  // The last block whose first hash is <= hash. REQUIRES: hash >= first_hash_[0].
  // Hashes are uniform, so the block's rank is close to hash * blocks / 2^64: gallop from that
  // estimate, then binary-search the bracket (a few adjacent cache lines instead of ~log2(n)
  // scattered ones).
  uint64_t FindBlock(uint64_t hash) const {
    const uint64_t n = first_hash_.size();
    const uint64_t* h = first_hash_.data();
    uint64_t lo, hi;  // answer in [lo, hi)
    uint64_t guess = FilterLine(hash, n);
    if (h[guess] <= hash) {
      lo = guess;
      uint64_t step = 1;
      while (lo + step < n && h[lo + step] <= hash) {
        lo += step;
        step *= 2;
      }
      hi = std::min(n, lo + step);
    } else {
      hi = guess;
      uint64_t step = 1;
      while (hi >= step && h[hi - step] > hash) {
        hi -= step;
        step *= 2;
      }
      lo = hi >= step ? hi - step : 0;
    }
    // Invariant: h[lo] <= hash, and hi == n or h[hi] > hash.
    return static_cast<uint64_t>(std::upper_bound(h + lo, h + hi, hash) - h) - 1;
  }
  DedupeHashFn hash_fn() const { return hash_; }

  // Reads, verifies and decodes block b (REQUIRES: b < block_count()) into *out.
  Status ReadBlock(uint64_t b, DecodedBlock* out) const;

 private:
  Status Corrupt(const std::string& what) const { return Status::Corruption(path_ + ": " + what); }
  Status BlockCorrupt(uint64_t b, const std::string& what) const {
    return Corrupt("block " + std::to_string(b) + " at offset " + std::to_string(offsets_[b]) +
                   ": " + what);
  }

  const std::string path_;
  const uint64_t file_number_;
  const DedupeHashFn hash_;
  const std::unique_ptr<RandomAccessFile> file_;
  const uint64_t cache_id_;
  DedupeRunInfo info_;
  FilterWords filter_;
  uint64_t filter_lines_ = 0;
  uint32_t filter_probes_ = 0;
  std::vector<uint64_t> first_hash_;  // first (smallest) hash of each block, strictly increasing
  std::vector<uint64_t> offsets_;     // block b is [offsets_[b], offsets_[b+1]); size blocks+1
};

Status RunImpl::Load() {
  const uint64_t size = file_->Size();
  if (size < fmt::kTailSize) {
    return Corrupt("truncated: " + std::to_string(size) + " bytes is shorter than the footer");
  }
  std::string tail;
  RETURN_IF_ERROR(file_->Read(size - fmt::kTailSize, fmt::kTailSize, &tail));
  if (tail.size() != fmt::kTailSize) return Corrupt("short read of the footer");
  if (std::string_view(tail).substr(fmt::kFooterSize) != fmt::kMagic) {
    return Corrupt("bad magic (truncated or not a dedupe run)");
  }
  const uint32_t stored_footer_crc = DecodeFixed32(tail.data() + fmt::kFooterSize - 4);
  if (crc32c::Unmask(stored_footer_crc) != crc32c::Value(tail.data(), fmt::kFooterSize - 4)) {
    return Corrupt("footer checksum mismatch");
  }
  Decoder d(std::string_view(tail).substr(0, fmt::kFooterSize));
  uint32_t version = 0, probes = 0, filter_crc = 0, index_crc = 0;
  uint64_t block_count = 0, filter_offset = 0, lines = 0, index_offset = 0, anchor = 0;
  bool ok = d.GetFixed32(&version) && d.GetFixed64(&info_.key_count) &&
            d.GetFixed64(&block_count) && d.GetFixed64(&info_.min_commit_seq) &&
            d.GetFixed64(&info_.max_commit_seq) && d.GetFixed64(&info_.forever_key_count) &&
            d.GetFixed64(&anchor) && d.GetFixed64(&filter_offset) && d.GetFixed64(&lines) &&
            d.GetFixed32(&probes) && d.GetFixed64(&index_offset) && d.GetFixed32(&filter_crc) &&
            d.GetFixed32(&index_crc);
  if (!ok) return Corrupt("short footer");
  if (version != fmt::kDedupeFormatVersion) {
    return Status::NotSupported(path_ + ": dedupe run format version " + std::to_string(version) +
                                " (this build reads " + std::to_string(fmt::kDedupeFormatVersion) +
                                ")");
  }
  info_.max_usage_anchor_ms = static_cast<int64_t>(anchor);
  info_.file_size = size;
  const uint64_t body_end = size - fmt::kTailSize;
  if (probes < 1 || probes > fmt::kMaxFilterProbes) return Corrupt("bad filter probe count");
  if (lines < 1 || lines > body_end / fmt::kFilterLineBytes ||
      filter_offset > body_end - lines * fmt::kFilterLineBytes ||
      index_offset != filter_offset + lines * fmt::kFilterLineBytes) {
    return Corrupt("bad filter section bounds");
  }
  if (block_count > body_end / fmt::kIndexEntrySize ||
      index_offset + block_count * fmt::kIndexEntrySize != body_end) {
    return Corrupt("bad block index bounds");
  }
  if (block_count > info_.key_count || (block_count == 0) != (info_.key_count == 0) ||
      info_.forever_key_count > info_.key_count || info_.min_commit_seq > info_.max_commit_seq) {
    return Corrupt("inconsistent footer counts");
  }

  std::string buf;
  RETURN_IF_ERROR(file_->Read(filter_offset, lines * fmt::kFilterLineBytes, &buf));
  if (buf.size() != lines * fmt::kFilterLineBytes) return Corrupt("short read of the filter");
  if (crc32c::Unmask(filter_crc) != crc32c::Value(buf)) return Corrupt("filter checksum mismatch");
  filter_ = AllocateFilter(lines);
  if (filter_ == nullptr) return Status::Internal(path_ + ": out of memory for the filter");
  std::memcpy(filter_.get(), buf.data(), buf.size());
  filter_lines_ = lines;
  filter_probes_ = probes;

  RETURN_IF_ERROR(file_->Read(index_offset, block_count * fmt::kIndexEntrySize, &buf));
  if (buf.size() != block_count * fmt::kIndexEntrySize) return Corrupt("short read of the index");
  if (crc32c::Unmask(index_crc) != crc32c::Value(buf)) {
    return Corrupt("block index checksum mismatch");
  }
  first_hash_.reserve(block_count);
  offsets_.reserve(block_count + 1);
  uint64_t expected_offset = 0;
  for (uint64_t b = 0; b < block_count; ++b) {
    const char* p = buf.data() + b * fmt::kIndexEntrySize;
    const uint64_t first = DecodeFixed64(p);
    const uint64_t offset = DecodeFixed64(p + 8);
    const uint32_t bsize = DecodeFixed32(p + 16);
    if (offset != expected_offset || bsize <= fmt::kBlockTrailerSize ||
        bsize > fmt::kMaxBlockBytes || bsize > filter_offset - offset) {
      return Corrupt("block index entry " + std::to_string(b) + " has bad bounds");
    }
    if (b > 0 && first <= first_hash_.back()) {
      return Corrupt("block index entry " + std::to_string(b) + " is out of order");
    }
    first_hash_.push_back(first);
    offsets_.push_back(offset);
    expected_offset = offset + bsize;
  }
  if (expected_offset != filter_offset) return Corrupt("blocks do not end where the filter starts");
  offsets_.push_back(filter_offset);
  return Status::OK();
}

Status RunImpl::ReadBlock(uint64_t b, DecodedBlock* out) const {
  const uint64_t size = offsets_[b + 1] - offsets_[b];
  std::string raw;
  RETURN_IF_ERROR(file_->Read(offsets_[b], size, &raw));
  if (raw.size() != size) return BlockCorrupt(b, "short read (file truncated?)");
  const size_t n = size - fmt::kBlockTrailerSize;
  const uint8_t type = static_cast<uint8_t>(raw[n]);
  const uint32_t stored_crc = DecodeFixed32(raw.data() + n + 1);
  if (stored_crc != BlockCrc(std::string_view(raw.data(), n), type)) {
    return BlockCorrupt(b, "checksum mismatch");
  }
  std::string inflated;
  std::string_view body(raw.data(), n);
  if (type == static_cast<uint8_t>(fmt::BlockType::kZstd)) {
    Decoder zd(body);
    uint32_t raw_size = 0;
    if (!zd.GetVarint32(&raw_size) || raw_size > fmt::kMaxBlockBytes) {
      return BlockCorrupt(b, "bad uncompressed size");
    }
    inflated.resize(raw_size);
    const size_t got = ZSTD_decompress(inflated.data(), raw_size, zd.pos(), zd.remaining());
    if (ZSTD_isError(got) || got != raw_size) return BlockCorrupt(b, "zstd decompression failed");
    body = inflated;
  } else if (type != static_cast<uint8_t>(fmt::BlockType::kRaw)) {
    return BlockCorrupt(b, "unknown block type " + std::to_string(type));
  }

  Decoder d(body);
  uint32_t count = 0;
  uint64_t zi = 0, zt = 0, base_seq = 0;
  if (!d.GetVarint32(&count) || !d.GetVarint64(&zi) || !d.GetVarint64(&zt) ||
      !d.GetVarint64(&base_seq)) {
    return BlockCorrupt(b, "bad block header");
  }
  // Each entry takes at least 2 + 16 + 1 + 3 bytes; refuse counts the body cannot hold.
  if (count == 0 || count > d.remaining() / 22) return BlockCorrupt(b, "bad entry count");
  const uint64_t base_ingested = static_cast<uint64_t>(ZigZagDecode64(zi));
  const uint64_t base_ts = static_cast<uint64_t>(ZigZagDecode64(zt));
  out->entries.clear();
  out->ids.clear();
  out->entries.reserve(count);
  out->ids.reserve(body.size());
  size_t prev_offset = 0, prev_size = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t shared = 0, unshared = 0;
    std::string_view suffix;
    uint64_t lo = 0, hi = 0, di = 0, dt = 0, ds = 0;
    uint8_t kind = 0;
    if (!d.GetVarint32(&shared) || !d.GetVarint32(&unshared) || shared > prev_size ||
        unshared > fmt::kMaxEventIdBytes || !d.GetBytes(unshared, &suffix) || !d.GetFixed64(&lo) ||
        !d.GetFixed64(&hi) || !d.GetByte(&kind) || !d.GetVarint64(&di) || !d.GetVarint64(&dt) ||
        !d.GetVarint64(&ds)) {
      return BlockCorrupt(b, "bad entry " + std::to_string(i));
    }
    const size_t id_size = size_t{shared} + unshared;
    if (id_size == 0 || id_size > fmt::kMaxEventIdBytes ||
        kind > static_cast<uint8_t>(EventKind::kRetraction)) {
      return BlockCorrupt(b, "bad entry " + std::to_string(i));
    }
    const size_t id_offset = out->ids.size();
    if (id_offset + id_size > fmt::kMaxBlockBytes) return BlockCorrupt(b, "ids too large");
    // Grow first so the shared prefix is copied from a buffer that does not move.
    if (id_offset + id_size > out->ids.capacity()) {
      out->ids.reserve(std::max(id_offset + id_size, 2 * out->ids.capacity()));
    }
    out->ids.append(out->ids.data() + prev_offset, shared);
    out->ids.append(suffix.data(), suffix.size());
    const std::string_view id(out->ids.data() + id_offset, id_size);
    DecodedBlock::Entry e;
    e.hash = hash_(id);
    e.id_offset = static_cast<uint32_t>(id_offset);
    e.id_size = static_cast<uint16_t>(id_size);
    e.digest = Digest128{lo, hi};
    e.ingested_at_ms = static_cast<int64_t>(base_ingested + di);
    e.timestamp_ms = static_cast<int64_t>(base_ts + dt);
    e.commit_seq = base_seq + ds;
    e.kind = static_cast<EventKind>(kind);
    if (i == 0 ? e.hash != first_hash_[b]
               : !KeyLess(out->entries.back().hash,
                          std::string_view(out->ids.data() + prev_offset, prev_size), e.hash, id)) {
      return BlockCorrupt(b, "entry " + std::to_string(i) + " out of order");
    }
    out->entries.push_back(e);
    prev_offset = id_offset;
    prev_size = id_size;
  }
  if (!d.empty()) return BlockCorrupt(b, "trailing bytes");
  out->ids.shrink_to_fit();  // the cache charges capacity: keep decoded blocks tight
  if (b + 1 < first_hash_.size() && out->entries.back().hash >= first_hash_[b + 1]) {
    return BlockCorrupt(b, "entries overlap the next block");
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Merge.

// One merge input: the block being consumed and the position in it.
struct MergeSource {
  const RunImpl* run = nullptr;  // null: `block` already holds every entry of the input
  uint64_t next_block = 0;
  DecodedBlock block;
  size_t pos = 0;

  bool valid() const { return pos < block.entries.size(); }
  uint64_t hash() const { return block.entries[pos].hash; }
  std::string_view id() const { return block.id(block.entries[pos]); }

  // Moves to the next entry, loading the next block when this one is used up.
  Status Advance() {
    ++pos;
    return Fill();
  }
  Status Fill() {
    while (!valid() && run != nullptr && next_block < run->block_count()) {
      RETURN_IF_ERROR(run->ReadBlock(next_block++, &block));
      pos = 0;
    }
    return Status::OK();
  }
};

}  // namespace

Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeEntry> entries,
                      DedupeRunInfo* info) {
  return WriteDedupeRun(fs, path, std::move(entries), info, DedupeWriteOptions());
}

Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeEntry> entries,
                      DedupeRunInfo* info, const DedupeWriteOptions& options) {
  std::vector<std::pair<uint64_t, uint32_t>> order;
  if (entries.size() > UINT32_MAX) return Status::InvalidArgument(path + ": too many entries");
  order.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    order.emplace_back(options.hash(entries[i].event_id), static_cast<uint32_t>(i));
  }
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return KeyLess(a.first, entries[a.second].event_id, b.first, entries[b.second].event_id);
  });
  RunBuilder builder(fs, path, options);
  RETURN_IF_ERROR(builder.Start());
  for (const auto& [hash, i] : order) RETURN_IF_ERROR(builder.Add(std::move(entries[i]), hash));
  return builder.Finish(info);
}

Result<std::shared_ptr<DedupeRun>> DedupeRun::Open(FileSystem* fs, const std::string& path,
                                                   uint64_t file_number) {
  return Open(fs, path, file_number, &Hash64);
}

Result<std::shared_ptr<DedupeRun>> DedupeRun::Open(FileSystem* fs, const std::string& path,
                                                   uint64_t file_number, DedupeHashFn hash) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, fs->NewRandomAccessFile(path));
  auto run = std::make_shared<RunImpl>(path, file_number, hash, std::move(file));
  RETURN_IF_ERROR(run->Load());
  return std::shared_ptr<DedupeRun>(std::move(run));
}

Status MergeDedupeRuns(FileSystem* fs, const std::vector<std::shared_ptr<DedupeRun>>& inputs,
                       const std::string& out_path, std::optional<int64_t> drop_expired_before_ms,
                       DedupeRunInfo* info, const DedupeWriteOptions& options) {
  std::vector<MergeSource> sources(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto* impl = dynamic_cast<const RunImpl*>(inputs[i].get());
    if (impl != nullptr && impl->hash_fn() != options.hash) {
      return Status::InvalidArgument(inputs[i]->path() + ": merge input uses another hash");
    }
    MergeSource& s = sources[i];
    if (impl != nullptr) {
      s.run = impl;
    } else {
      // A DedupeRun of another implementation: load it whole, in (hash, id) order.
      std::vector<DedupeEntry> all;
      RETURN_IF_ERROR(inputs[i]->ReadAll(&all));
      for (const DedupeEntry& e : all) {
        DecodedBlock::Entry de{options.hash(e.event_id),
                               static_cast<uint32_t>(s.block.ids.size()),
                               static_cast<uint16_t>(e.event_id.size()),
                               e.kind,
                               e.payload_digest,
                               e.ingested_at_ms,
                               e.timestamp_ms,
                               e.commit_seq};
        s.block.ids += e.event_id;
        s.block.entries.push_back(de);
      }
      std::sort(s.block.entries.begin(), s.block.entries.end(),
                [&](const DecodedBlock::Entry& a, const DecodedBlock::Entry& b) {
                  return KeyLess(a.hash, s.block.id(a), b.hash, s.block.id(b));
                });
    }
    RETURN_IF_ERROR(s.Fill());
  }
  // Min-heap of source numbers by (hash, id, source number).
  auto greater = [&](size_t a, size_t b) {
    const MergeSource &x = sources[a], &y = sources[b];
    if (x.hash() != y.hash()) return x.hash() > y.hash();
    if (x.id() != y.id()) return x.id() > y.id();
    return a > b;
  };
  std::priority_queue<size_t, std::vector<size_t>, decltype(greater)> heap(greater);
  for (size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].valid()) heap.push(i);
  }
  RunBuilder builder(fs, out_path, options);
  RETURN_IF_ERROR(builder.Start());
  while (!heap.empty()) {
    const size_t first = heap.top();
    heap.pop();
    const uint64_t hash = sources[first].hash();
    DedupeEntry best =
        sources[first].block.ToEntry(sources[first].block.entries[sources[first].pos]);
    std::vector<size_t> used{first};
    while (!heap.empty() && sources[heap.top()].hash() == hash &&
           sources[heap.top()].id() == best.event_id) {
      const size_t i = heap.top();
      heap.pop();
      const auto& e = sources[i].block.entries[sources[i].pos];
      if (e.commit_seq > best.commit_seq) best = sources[i].block.ToEntry(e);
      used.push_back(i);
    }
    const bool expired = drop_expired_before_ms.has_value() && best.kind == EventKind::kUsage &&
                         std::max(best.ingested_at_ms, best.timestamp_ms) < *drop_expired_before_ms;
    if (!expired) RETURN_IF_ERROR(builder.Add(std::move(best), hash));
    for (size_t i : used) {
      RETURN_IF_ERROR(sources[i].Advance());
      if (sources[i].valid()) heap.push(i);
    }
  }
  return builder.Finish(info);
}

std::string DedupeRunFileName(uint64_t file_number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%012llu.udx", static_cast<unsigned long long>(file_number));
  return buf;
}

bool ParseDedupeRunFileName(const std::string& name, uint64_t* file_number) {
  constexpr std::string_view kSuffix = ".udx";
  if (name.size() <= kSuffix.size() ||
      std::string_view(name).substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  uint64_t v = 0;
  for (size_t i = 0; i + kSuffix.size() < name.size(); ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *file_number = v;
  return true;
}

}  // namespace usagedb
