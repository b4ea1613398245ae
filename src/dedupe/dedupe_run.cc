// Dedupe run files: writer (RunBuilder), reader (RunImpl), merge. Format: docs/parts/dedupe.md.
//
// Why this shape: the event_id, digest and timestamps of every key are already stored in the
// raw segments, so a run stores only what routes a lookup to its row: the top routing_bits
// bits of the hash (Rice-coded deltas in hash order, ~12 bits per key) and the row location
// (segment-table index + row, bit-packed at the block's widths, ~19 bits). A miss must cost
// about one cache line per run, so each run keeps a blocked Bloom filter in RAM (one 64-byte
// line per key) and a block index of 16 bytes per 128-entry block. Since version 3 the filter
// is keyed by a mix of the stored routing value (>= 40 bits), not by the full hash, so a merge
// builds its output's filter from its inputs alone instead of re-reading every event_id.
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
using dedupe_internal::CachedBlock;
using dedupe_internal::FilterLine;
using dedupe_internal::FilterMayContain;

// ---------------------------------------------------------------------------------------------
// Blocked Bloom filter. The line is chosen by the high bits of the hash (multiply-shift range
// reduction), the probes by the low 32 bits, re-mixed by a multiplication per probe; each probe
// takes the top 9 bits as a bit number in the 512-bit line.


inline void FilterAdd(uint64_t* words, uint64_t lines, uint32_t probes, uint64_t hash) {
  uint64_t* line = words + FilterLine(hash, lines) * 8;
  uint32_t h = static_cast<uint32_t>(hash);
  for (uint32_t i = 0; i < probes; ++i) {
    uint32_t bit = h >> 23;
    line[bit >> 6] |= uint64_t{1} << (bit & 63);
    h *= 0x9e3779b9u;
  }
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

// ---------------------------------------------------------------------------------------------
// Bits.

inline uint32_t BitWidth(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }
inline uint64_t LowMask(uint32_t n) { return n >= 64 ? UINT64_MAX : (uint64_t{1} << n) - 1; }
// REQUIRES: 1 <= bits <= 64.
inline uint64_t RoutingOf(uint64_t hash, uint32_t bits) { return hash >> (64 - bits); }
inline uint64_t MaxRouting(uint32_t bits) { return LowMask(bits); }

uint32_t AutoRoutingBits(uint64_t keys, uint32_t version) {
  uint32_t bits = BitWidth(keys > 0 ? keys - 1 : 0) + fmt::kRoutingSlackBits;
  if (version >= 3) bits = std::max(bits, fmt::kMinV3RoutingBits);
  return std::clamp(bits, fmt::kMinAutoRoutingBits, fmt::kMaxRoutingBits);
}

// Version 3: the bits of the hash the filter key is made of, and the key of a routing value.
inline uint32_t FilterKeyBits(uint32_t routing_bits) {
  return std::min(routing_bits, fmt::kFilterKeyBits);
}
inline uint64_t FilterKeyOfRoutingValue(uint64_t routing, uint32_t routing_bits) {
  return fmt::FilterKeyOfRouting(routing >> (routing_bits - FilterKeyBits(routing_bits)));
}
// The key a run of `version` files the entry with this hash under in its filter.
inline uint64_t FilterKey(uint32_t version, uint64_t hash, uint32_t routing_bits) {
  return version >= 3 ? fmt::FilterKeyOfRouting(RoutingOf(hash, FilterKeyBits(routing_bits)))
                      : hash;
}

// Appends bits LSB-first: stream bit j is bit (j % 8) of byte j / 8.
class BitWriter {
 public:
  explicit BitWriter(std::string* out) : out_(out) {}
  // Appends the low n bits of v (n <= 64). Bits fill a 64-bit accumulator from its low end
  // and leave it as 8 little-endian bytes: the byte stream is the same as writing one byte at
  // a time, LSB first.
  void Put(uint64_t v, uint32_t n) {
    v &= LowMask(n);
    acc_ |= v << used_;  // used_ < 64
    used_ += n;
    if (used_ >= 64) {
      char word[8];
      EncodeFixed64(word, acc_);
      out_->append(word, 8);
      used_ -= 64;
      // The bits of v that did not fit (none when it ended exactly at the word's end).
      acc_ = used_ == 0 ? 0 : v >> (n - used_);
    }
  }
  // Rice code of d with parameter k: q = d >> k one-bits, a zero, the low k bits; a quotient
  // of kRiceEscape or more is kRiceEscape one-bits and d in `raw_bits` bits.
  void PutRice(uint64_t d, uint32_t k, uint32_t raw_bits) {
    const uint64_t q = d >> k;
    if (q >= fmt::kRiceEscape) {
      Put(LowMask(fmt::kRiceEscape), fmt::kRiceEscape);
      Put(d, raw_bits);
    } else if (q + 1 + k <= 64) {  // one Put: the ones, the zero, then the low k bits
      const uint32_t unary = static_cast<uint32_t>(q) + 1;
      Put(LowMask(unary - 1) | ((d & LowMask(k)) << unary), unary + k);
    } else {
      Put(LowMask(static_cast<uint32_t>(q)), static_cast<uint32_t>(q) + 1);
      Put(d, k);
    }
  }
  // Writes the last partial word's bytes (the last one zero-padded).
  void Finish() {
    char word[8];
    EncodeFixed64(word, acc_);
    out_->append(word, (used_ + 7) / 8);
    acc_ = 0;
    used_ = 0;
  }

 private:
  std::string* out_;
  uint64_t acc_ = 0;
  uint32_t used_ = 0;
};

inline uint64_t RiceCost(uint64_t d, uint32_t k, uint32_t raw_bits) {
  const uint64_t q = d >> k;
  return q >= fmt::kRiceEscape ? fmt::kRiceEscape + raw_bits : q + 1 + k;
}

// Reads a bit stream of `total_bits` bits that is followed by at least 8 readable bytes.
// Every read is bounds-checked against total_bits (false = the stream is malformed).
class BitReader {
 public:
  BitReader(const char* data, uint64_t total_bits) : data_(data), total_(total_bits) {}
  void Seek(uint64_t pos) { pos_ = pos; }
  uint64_t pos() const { return pos_; }

  bool Read(uint32_t n, uint64_t* v) {
    if (n > total_ - pos_) return false;
    if (n == 0) {
      *v = 0;
      return true;
    }
    if (n > 56) {
      const uint64_t lo = Peek() & 0xffffffffu;
      pos_ += 32;
      *v = lo | ((Peek() & LowMask(n - 32)) << 32);
      pos_ += n - 32;
      return true;
    }
    *v = Peek() & LowMask(n);
    pos_ += n;
    return true;
  }

  bool ReadRice(uint32_t k, uint32_t raw_bits, uint64_t* d) {
    if (pos_ >= total_) return false;
    // Peek has >= 57 meaningful bits and zeros above them, so ~w != 0.
    const uint32_t ones = static_cast<uint32_t>(__builtin_ctzll(~Peek()));
    if (ones >= fmt::kRiceEscape) {
      if (fmt::kRiceEscape > total_ - pos_) return false;
      pos_ += fmt::kRiceEscape;
      return Read(raw_bits, d);
    }
    if (uint64_t{ones} + 1 > total_ - pos_) return false;
    pos_ += ones + 1;
    uint64_t low = 0;
    if (!Read(k, &low)) return false;
    if (ones != 0 && BitWidth(ones) + k > 64) return false;  // quotient overflows
    *d = (k >= 64 ? 0 : uint64_t{ones} << k) | low;
    return true;
  }

 private:
  uint64_t Peek() const {
    uint64_t w;
    std::memcpy(&w, data_ + (pos_ >> 3), 8);
    return w >> (pos_ & 7);
  }

  const char* data_;
  uint64_t total_;
  uint64_t pos_ = 0;
};

// One decoded entry of a block: routing value and location (segment-table index + row).
struct Decoded {
  uint64_t routing;
  uint32_t seg;
  uint32_t row;
};

inline bool EntryLess(const Decoded& a, const Decoded& b) {
  if (a.routing != b.routing) return a.routing < b.routing;
  if (a.seg != b.seg) return a.seg < b.seg;
  return a.row < b.row;
}

// Footer summaries the writer or merge computes from its input.
struct Summary {
  uint64_t min_seq = 0, max_seq = 0;
  uint64_t forever = 0;
  int64_t max_anchor = INT64_MIN;
};

// ---------------------------------------------------------------------------------------------
// Writer.

// Streams entries, in strictly increasing (routing, segment index, row) order, into a run file
// at path + ".tmp" and renames it to path on Finish. Not thread-safe. Destroying an unfinished
// builder removes the temporary file.
class RunBuilder {
 public:
  // REQUIRES: `segments` strictly ascending; 1 <= routing_bits <= 64; version 2 or 3.
  RunBuilder(FileSystem* fs, std::string path, std::vector<uint64_t> segments,
             uint32_t routing_bits, uint32_t version)
      : fs_(fs),
        path_(std::move(path)),
        tmp_path_(path_ + ".tmp"),
        segments_(std::move(segments)),
        bits_(routing_bits),
        version_(version) {}
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

  // REQUIRES: routing <= MaxRouting(routing_bits), seg < segments.size().
  Status Add(uint64_t routing, uint32_t seg, uint32_t row) {
    const Decoded e{routing, seg, row};
    if (key_count_ > 0 && !EntryLess(last_, e)) {
      return Status::InvalidArgument(path_ + ": dedupe entries out of order or location " +
                                     std::to_string(segments_[seg]) + ":" + std::to_string(row) +
                                     " listed twice");
    }
    if (block_.size() >= fmt::kTargetBlockEntries && routing != last_.routing) {
      RETURN_IF_ERROR(FlushBlock());
    }
    block_.push_back(e);
    last_ = e;
    key_count_++;
    return Status::OK();
  }

  // Writes the segment table, the filter over `filter_keys` (FilterKey of every entry), the
  // index and the footer, then syncs and renames.
  Status Finish(const std::vector<uint64_t>& filter_keys, const Summary& summary,
                DedupeRunInfo* info) {
    if (!block_.empty()) RETURN_IF_ERROR(FlushBlock());
    const uint64_t segment_offset = offset_;
    std::string table;
    for (uint64_t s : segments_) PutFixed64(&table, s);
    const uint32_t table_crc = crc32c::Mask(crc32c::Value(table));
    RETURN_IF_ERROR(Write(table));

    const uint64_t filter_offset = offset_;
    const uint64_t lines = FilterLinesFor(key_count_);
    FilterWords words = AllocateFilter(lines);
    if (words == nullptr) return Status::Internal(path_ + ": out of memory for the filter");
    for (uint64_t k : filter_keys) FilterAdd(words.get(), lines, fmt::kFilterProbes, k);
    std::string_view filter(reinterpret_cast<const char*>(words.get()),
                            lines * fmt::kFilterLineBytes);
    const uint32_t filter_crc = crc32c::Mask(crc32c::Value(filter));
    RETURN_IF_ERROR(Write(filter));
    const uint64_t index_offset = offset_;
    const uint32_t index_crc = crc32c::Mask(crc32c::Value(index_));
    RETURN_IF_ERROR(Write(index_));

    const bool empty = key_count_ == 0;
    std::string footer;
    PutFixed32(&footer, version_);
    PutFixed32(&footer, bits_);
    PutFixed64(&footer, key_count_);
    PutFixed64(&footer, block_count_);
    PutFixed64(&footer, segments_.size());
    PutFixed64(&footer, empty ? 0 : summary.min_seq);
    PutFixed64(&footer, empty ? 0 : summary.max_seq);
    PutFixed64(&footer, empty ? 0 : summary.forever);
    PutFixed64(&footer, static_cast<uint64_t>(empty ? INT64_MIN : summary.max_anchor));
    PutFixed64(&footer, segment_offset);
    PutFixed64(&footer, filter_offset);
    PutFixed64(&footer, lines);
    PutFixed32(&footer, fmt::kFilterProbes);
    PutFixed64(&footer, index_offset);
    PutFixed32(&footer, table_crc);
    PutFixed32(&footer, filter_crc);
    PutFixed32(&footer, index_crc);
    PutFixed32(&footer, crc32c::Mask(crc32c::Value(footer)));
    const std::string_view magic = version_ >= 3 ? fmt::kMagic : fmt::kMagicV2;
    footer.append(magic.data(), fmt::kMagicSize);
    RETURN_IF_ERROR(Write(footer));
    RETURN_IF_ERROR(FlushBuffer());
    RETURN_IF_ERROR(file_->Sync());
    RETURN_IF_ERROR(file_->Close());
    file_.reset();
    RETURN_IF_ERROR(fs_->Rename(tmp_path_, path_));
    finished_ = true;
    if (info != nullptr) {
      *info = DedupeRunInfo();
      info->key_count = key_count_;
      info->file_size = offset_;
      info->segment_count = segments_.size();
      info->routing_bits = bits_;
      info->min_commit_seq = empty ? 0 : summary.min_seq;
      info->max_commit_seq = empty ? 0 : summary.max_seq;
      info->forever_key_count = empty ? 0 : summary.forever;
      info->max_usage_anchor_ms = empty ? INT64_MIN : summary.max_anchor;
      info->format_version = version_;
    }
    return Status::OK();
  }

  uint64_t key_count() const { return key_count_; }

 private:
  Status FlushBlock() {
    const size_t n = block_.size();
    uint64_t max_seg = 0, max_row = 0;
    for (const Decoded& e : block_) {
      max_seg = std::max<uint64_t>(max_seg, e.seg);
      max_row = std::max<uint64_t>(max_row, e.row);
    }
    const uint32_t seg_bits = BitWidth(max_seg), row_bits = BitWidth(max_row);
    // Rice parameter: the cheapest k near log2 of the mean delta. The deltas are taken once
    // and every candidate's cost summed in the same pass (up to 5 candidates, the first one
    // winning ties as when they were tried one after another).
    uint32_t k = 0;
    if (n > 1) {
      deltas_.resize(n - 1);
      for (size_t i = 1; i < n; ++i) deltas_[i - 1] = block_[i].routing - block_[i - 1].routing;
      const uint64_t mean = (block_.back().routing - block_.front().routing) / (n - 1);
      const uint32_t guess = BitWidth(mean);
      const uint32_t first = guess > 3 ? guess - 3 : 0;
      const uint32_t last = std::min<uint32_t>(guess + 1, 63);
      constexpr uint32_t kMaxCandidates = 5;
      uint64_t cost[kMaxCandidates] = {};
      const uint32_t candidates = last - first + 1;
      for (uint64_t d : deltas_) {
        for (uint32_t j = 0; j < kMaxCandidates; ++j) {
          if (j < candidates) cost[j] += RiceCost(d, first + j, bits_);
        }
      }
      uint64_t best_cost = UINT64_MAX;
      for (uint32_t j = 0; j < candidates; ++j) {
        if (cost[j] < best_cost) {
          best_cost = cost[j];
          k = first + j;
        }
      }
    }
    std::string& contents = contents_;
    contents.clear();
    PutVarint32(&contents, static_cast<uint32_t>(n));
    contents.push_back(static_cast<char>(k));
    contents.push_back(static_cast<char>(seg_bits));
    contents.push_back(static_cast<char>(row_bits));
    BitWriter w(&contents);
    for (const Decoded& e : block_) {
      w.Put(e.seg, seg_bits);
      w.Put(e.row, row_bits);
    }
    for (size_t i = 1; i < n; ++i) w.PutRice(deltas_[i - 1], k, bits_);
    w.Finish();
    if (contents.size() + fmt::kBlockCrcSize > fmt::kMaxBlockBytes) {
      return Status::InvalidArgument(path_ + ": too many entries share one routing value");
    }
    PutFixed32(&contents, crc32c::Mask(crc32c::Value(contents)));

    PutFixed64(&index_, block_.front().routing);
    PutFixed32(&index_, static_cast<uint32_t>(contents.size()));
    block_count_++;
    RETURN_IF_ERROR(Write(contents));
    block_.clear();
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
  const std::vector<uint64_t> segments_;
  const uint32_t bits_;
  const uint32_t version_;
  std::unique_ptr<WritableFile> file_;
  bool started_ = false, finished_ = false;
  std::string buffer_;
  uint64_t offset_ = 0;

  std::vector<Decoded> block_;
  std::vector<uint64_t> deltas_;  // FlushBlock: the block's routing deltas
  std::string contents_;          // FlushBlock: the block being encoded
  Decoded last_{};
  std::string index_;
  uint64_t block_count_ = 0;
  uint64_t key_count_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Reader.

class RunImpl : public DedupeRun {
 public:
  RunImpl(std::string path, uint64_t file_number, std::unique_ptr<RandomAccessFile> file)
      : path_(std::move(path)),
        file_number_(file_number),
        file_(std::move(file)),
        cache_id_(dedupe_internal::NewRunCacheId()) {}

  Status Load();

  Result<std::vector<RowLocation>> Candidates(uint64_t hash,
                                              DedupeBlockCache* cache) const override {
    std::vector<RowLocation> out;
    if (first_routing_.empty() || !MayContain(hash)) return out;
    const uint64_t target = RoutingOf(hash, info_.routing_bits);
    if (target < first_routing_[0]) return out;
    const uint64_t b = FindBlock(target);
    const BlockKey key{cache_id_, b};
    if (cache != nullptr) {
      if (std::shared_ptr<const CachedBlock> block = cache->impl()->Get(key)) {
        RETURN_IF_ERROR(Scan(b, *block, target, &out));
        return out;
      }
    }
    // Not cached. Most lookups that get here are filter false positives, each in a random
    // block read once: the block is read into a per-thread buffer (no allocation, no
    // eviction), its checksum and header verified, and scanned up to the target. A block
    // that holds the routing value is verified entry by entry before any location from it
    // is returned, and cached (a retry of the id may look it up again).
    thread_local CachedBlock scratch;
    RETURN_IF_ERROR(ReadInto(b, &scratch, nullptr, /*verify_entries=*/false));
    RETURN_IF_ERROR(Scan(b, scratch, target, &out));
    if (!out.empty()) {
      RETURN_IF_ERROR(Decode(b, scratch, nullptr));
      if (cache != nullptr) cache->impl()->Put(key, std::make_shared<const CachedBlock>(scratch));
    }
    // Blocks hold ~128 entries (< 2 KiB); one far larger (readers accept up to 64 MiB) is not
    // kept alive by the thread.
    if (scratch.bytes.capacity() > (1u << 20)) std::string().swap(scratch.bytes);
    return out;
  }

  Status ReadAll(std::vector<DedupeRunEntry>* out) const override {
    CachedBlock block;  // one buffer for every block
    std::vector<Decoded> entries;
    uint64_t n = 0;
    const uint32_t shift = 64 - info_.routing_bits;
    for (uint64_t b = 0; b < first_routing_.size(); ++b) {
      RETURN_IF_ERROR(ReadInto(b, &block, &entries));
      for (const Decoded& e : entries) {
        DedupeRunEntry re;
        re.hash = e.routing << shift;
        re.location = RowLocation{segments_[e.seg], e.row};
        out->push_back(re);
      }
      n += entries.size();
    }
    if (n != info_.key_count) {
      return Corrupt("blocks hold " + std::to_string(n) + " keys, footer says " +
                     std::to_string(info_.key_count));
    }
    return Status::OK();
  }

  bool MayContain(uint64_t hash) const override {
    return FilterMayContain(filter_.get(), filter_lines_, filter_probes_,
                            FilterKey(info_.format_version, hash, info_.routing_bits));
  }
  void PrefetchFilter(uint64_t hash) const override {
    const uint64_t key = FilterKey(info_.format_version, hash, info_.routing_bits);
    __builtin_prefetch(filter_.get() + FilterLine(key, filter_lines_) * 8);
  }
  bool MayContainKeyed(uint64_t hash, uint64_t shared_key) const override {
    return FilterMayContain(filter_.get(), filter_lines_, filter_probes_,
                            shared_key_ ? shared_key : MayContainKeyOf(hash));
  }
  DedupeFilterView SharedKeyFilter() const override {
    if (!shared_key_) return {};
    return DedupeFilterView{filter_.get(), filter_lines_, filter_probes_};
  }
  void PrefetchFilterKeyed(uint64_t hash, uint64_t shared_key) const override {
    const uint64_t key = shared_key_ ? shared_key : MayContainKeyOf(hash);
    __builtin_prefetch(filter_.get() + FilterLine(key, filter_lines_) * 8);
  }
  const std::vector<uint64_t>& segment_file_numbers() const override { return segments_; }
  const DedupeRunInfo& info() const override { return info_; }
  uint64_t file_number() const override { return file_number_; }
  const std::string& path() const override { return path_; }
  size_t memory_bytes() const override {
    return filter_lines_ * fmt::kFilterLineBytes + first_routing_.capacity() * sizeof(uint64_t) +
           offsets_.capacity() * sizeof(uint64_t) + segments_.capacity() * sizeof(uint64_t) +
           sizeof(*this) + path_.capacity();
  }

  uint64_t block_count() const { return first_routing_.size(); }
  uint64_t first_routing(uint64_t b) const { return first_routing_[b]; }
  uint64_t MayContainKeyOf(uint64_t hash) const {
    return FilterKey(info_.format_version, hash, info_.routing_bits);
  }

  // The last block whose first routing value is <= routing. REQUIRES: routing >=
  // first_routing_[0]. Routing values are uniform, so the block's rank is close to
  // routing * blocks / 2^bits: gallop from that estimate, then binary-search the bracket (a few
  // adjacent cache lines instead of ~log2(n) scattered ones).
  uint64_t FindBlock(uint64_t routing) const {
    const uint64_t n = first_routing_.size();
    const uint64_t* h = first_routing_.data();
    uint64_t lo, hi;  // answer in [lo, hi)
    const uint64_t guess = FilterLine(routing << (64 - info_.routing_bits), n);
    if (h[guess] <= routing) {
      lo = guess;
      uint64_t step = 1;
      while (lo + step < n && h[lo + step] <= routing) {
        lo += step;
        step *= 2;
      }
      hi = std::min(n, lo + step);
    } else {
      hi = guess;
      uint64_t step = 1;
      while (hi >= step && h[hi - step] > routing) {
        hi -= step;
        step *= 2;
      }
      lo = hi >= step ? hi - step : 0;
    }
    // Invariant: h[lo] <= routing, and hi == n or h[hi] > routing.
    return static_cast<uint64_t>(std::upper_bound(h + lo, h + hi, routing) - h) - 1;
  }

  // Reads and verifies block b (REQUIRES: b < block_count()) into *block, reusing its
  // buffer. Verifying decodes every entry, into *decoded when given (replacing its contents).
  // Without verify_entries only the checksum and the header are checked (decoded must be null).
  Status ReadInto(uint64_t b, CachedBlock* block, std::vector<Decoded>* decoded,
                  bool verify_entries = true) const;
  // Reads blocks [first, end) in one call (their bytes as stored, back to back).
  Status ReadBlocks(uint64_t first, uint64_t end, std::string* raw) const;
  // Verifies and decodes block b, whose bytes lie in `blocks` (ReadBlocks from blocks_first),
  // like ReadInto with verify_entries.
  Status DecodeFrom(uint64_t b, std::string_view blocks, uint64_t blocks_first,
                    CachedBlock* block, std::vector<Decoded>* decoded) const;
  // Byte offset of block b (the index's; offset(block_count()) is the end of the last block).
  uint64_t block_offset(uint64_t b) const { return offsets_[b]; }
  // The blocks' bytes from block 0 on when the file is mapped, else empty.
  std::string_view mapped_blocks() const {
    const std::string_view m = file_->Mapping();
    return m.empty() || offsets_.empty() ? std::string_view() : m.substr(offsets_[0]);
  }
  // Appends the locations of block b's entries whose routing value is target. REQUIRES: its
  // checksum and header verified (ReadInto); the scan itself is bounds-checked.
  Status Scan(uint64_t b, const CachedBlock& block, uint64_t target,
              std::vector<RowLocation>* out) const;

 private:
  Status Corrupt(const std::string& what) const { return Status::Corruption(path_ + ": " + what); }
  Status BlockCorrupt(uint64_t b, const std::string& what) const {
    return Corrupt("block " + std::to_string(b) + " at offset " + std::to_string(offsets_[b]) +
                   ": " + what);
  }
  // Checks raw block b's checksum and header and sets *block's header fields (not its bytes);
  // *header_size = the header's bytes (the stream follows it, the crc ends raw).
  Status ParseBlock(uint64_t b, std::string_view raw, CachedBlock* block,
                    size_t* header_size) const;
  // Decodes every entry of block b, checking everything the format promises: entries in
  // strictly increasing (routing, segment, row) order inside the block's routing range,
  // segment indexes inside the table, no trailing bits. The entries replace *out unless out
  // is null (verification only).
  Status Decode(uint64_t b, const CachedBlock& block, std::vector<Decoded>* out) const;

  const std::string path_;
  const uint64_t file_number_;
  const std::unique_ptr<RandomAccessFile> file_;
  const uint64_t cache_id_;
  DedupeRunInfo info_;
  FilterWords filter_;
  // Version 3 with >= kFilterKeyBits routing bits: the filter key is DedupeSharedFilterKey.
  bool shared_key_ = false;
  uint64_t filter_lines_ = 0;
  uint32_t filter_probes_ = 0;
  std::vector<uint64_t> segments_;       // the segment table, strictly ascending
  std::vector<uint64_t> first_routing_;  // first routing value of each block, strictly increasing
  std::vector<uint64_t> offsets_;        // block b is [offsets_[b], offsets_[b+1]); size blocks+1
};

Status RunImpl::Load() {
  const uint64_t size = file_->Size();
  if (size < fmt::kTailSize) {
    return Corrupt("truncated: " + std::to_string(size) + " bytes is shorter than the footer");
  }
  std::string tail;
  RETURN_IF_ERROR(file_->Read(size - fmt::kTailSize, fmt::kTailSize, &tail));
  if (tail.size() != fmt::kTailSize) return Corrupt("short read of the footer");
  const std::string_view magic = std::string_view(tail).substr(fmt::kFooterSize);
  if (magic == fmt::kMagicV1) {
    return Status::NotSupported(path_ + ": dedupe run format version 1 (this build reads 2 and " +
                                std::to_string(fmt::kDedupeFormatVersion) + "; rebuild the index)");
  }
  if (magic != fmt::kMagic && magic != fmt::kMagicV2) {
    return Corrupt("bad magic (truncated or not a dedupe run)");
  }
  const uint32_t stored_footer_crc = DecodeFixed32(tail.data() + fmt::kFooterSize - 4);
  if (crc32c::Unmask(stored_footer_crc) != crc32c::Value(tail.data(), fmt::kFooterSize - 4)) {
    return Corrupt("footer checksum mismatch");
  }
  Decoder d(std::string_view(tail).substr(0, fmt::kFooterSize));
  uint32_t version = 0, routing_bits = 0, probes = 0, table_crc = 0, filter_crc = 0, index_crc = 0;
  uint64_t block_count = 0, segment_count = 0, segment_offset = 0, filter_offset = 0, lines = 0,
           index_offset = 0, anchor = 0;
  const bool ok = d.GetFixed32(&version) && d.GetFixed32(&routing_bits) &&
                  d.GetFixed64(&info_.key_count) && d.GetFixed64(&block_count) &&
                  d.GetFixed64(&segment_count) && d.GetFixed64(&info_.min_commit_seq) &&
                  d.GetFixed64(&info_.max_commit_seq) && d.GetFixed64(&info_.forever_key_count) &&
                  d.GetFixed64(&anchor) && d.GetFixed64(&segment_offset) &&
                  d.GetFixed64(&filter_offset) && d.GetFixed64(&lines) && d.GetFixed32(&probes) &&
                  d.GetFixed64(&index_offset) && d.GetFixed32(&table_crc) &&
                  d.GetFixed32(&filter_crc) && d.GetFixed32(&index_crc);
  if (!ok) return Corrupt("short footer");
  if (version != fmt::kDedupeFormatVersion && version != fmt::kDedupeFormatVersionV2) {
    return Status::NotSupported(path_ + ": dedupe run format version " + std::to_string(version) +
                                " (this build reads 2 and " +
                                std::to_string(fmt::kDedupeFormatVersion) + ")");
  }
  if ((version == fmt::kDedupeFormatVersion) != (magic == fmt::kMagic)) {
    return Corrupt("footer version " + std::to_string(version) + " does not match the magic");
  }
  info_.format_version = version;
  shared_key_ = version >= 3 && routing_bits >= fmt::kFilterKeyBits;
  info_.max_usage_anchor_ms = static_cast<int64_t>(anchor);
  info_.file_size = size;
  info_.segment_count = segment_count;
  info_.routing_bits = routing_bits;
  if (routing_bits < 1 || routing_bits > fmt::kMaxRoutingBits) return Corrupt("bad routing bits");
  const uint64_t body_end = size - fmt::kTailSize;
  if (probes < 1 || probes > fmt::kMaxFilterProbes) return Corrupt("bad filter probe count");
  // Sections, in file order: blocks [0, segment_offset), segment table, filter, index.
  if (segment_count > body_end / fmt::kSegmentEntrySize || segment_offset > body_end ||
      filter_offset != segment_offset + segment_count * fmt::kSegmentEntrySize) {
    return Corrupt("bad segment table bounds");
  }
  if (lines < 1 || lines > body_end / fmt::kFilterLineBytes || filter_offset > body_end ||
      index_offset != filter_offset + lines * fmt::kFilterLineBytes) {
    return Corrupt("bad filter section bounds");
  }
  if (block_count > body_end / fmt::kIndexEntrySize || index_offset > body_end ||
      index_offset + block_count * fmt::kIndexEntrySize != body_end) {
    return Corrupt("bad block index bounds");
  }
  const bool empty = info_.key_count == 0;
  if (block_count > info_.key_count || (block_count == 0) != empty ||
      segment_count > info_.key_count || (segment_count == 0) != empty ||
      info_.forever_key_count > info_.key_count || info_.min_commit_seq > info_.max_commit_seq) {
    return Corrupt("inconsistent footer counts");
  }

  std::string buf;
  RETURN_IF_ERROR(file_->Read(segment_offset, segment_count * fmt::kSegmentEntrySize, &buf));
  if (buf.size() != segment_count * fmt::kSegmentEntrySize) {
    return Corrupt("short read of the segment table");
  }
  if (crc32c::Unmask(table_crc) != crc32c::Value(buf)) {
    return Corrupt("segment table checksum mismatch");
  }
  segments_.reserve(segment_count);
  for (uint64_t i = 0; i < segment_count; ++i) {
    const uint64_t s = DecodeFixed64(buf.data() + i * fmt::kSegmentEntrySize);
    if (i > 0 && s <= segments_.back()) return Corrupt("segment table out of order");
    segments_.push_back(s);
  }

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
  first_routing_.reserve(block_count);
  offsets_.reserve(block_count + 1);
  uint64_t expected_offset = 0;
  // Smallest possible block: count (1 byte), rice_k, seg_bits, row_bits, crc.
  constexpr uint32_t kMinBlockSize = 4 + fmt::kBlockCrcSize;
  for (uint64_t b = 0; b < block_count; ++b) {
    const char* p = buf.data() + b * fmt::kIndexEntrySize;
    const uint64_t first = DecodeFixed64(p);
    const uint32_t bsize = DecodeFixed32(p + 8);
    if (bsize < kMinBlockSize || bsize > fmt::kMaxBlockBytes ||
        bsize > segment_offset - expected_offset) {
      return Corrupt("block index entry " + std::to_string(b) + " has bad bounds");
    }
    if ((b > 0 && first <= first_routing_.back()) || first > MaxRouting(routing_bits)) {
      return Corrupt("block index entry " + std::to_string(b) + " is out of order");
    }
    first_routing_.push_back(first);
    offsets_.push_back(expected_offset);
    expected_offset += bsize;
  }
  if (expected_offset != segment_offset) {
    return Corrupt("blocks do not end where the segment table starts");
  }
  offsets_.push_back(segment_offset);
  return Status::OK();
}

Status RunImpl::ReadInto(uint64_t b, CachedBlock* block, std::vector<Decoded>* decoded,
                         bool verify_entries) const {
  const uint64_t size = offsets_[b + 1] - offsets_[b];
  // The block is read straight into the cached string (one allocation for the read, the
  // stream and its zero tail); the header is then moved out of the way.
  std::string& raw = block->bytes;
  raw.reserve(size + 8);
  RETURN_IF_ERROR(file_->Read(offsets_[b], size, &raw));
  if (raw.size() != size) return BlockCorrupt(b, "short read (file truncated?)");
  size_t header = 0;
  RETURN_IF_ERROR(ParseBlock(b, raw, block, &header));
  raw.resize(size - fmt::kBlockCrcSize);  // drop the crc
  raw.erase(0, header);                   // and the header
  raw.append(8, '\0');
  if (!verify_entries) return Status::OK();
  return Decode(b, *block, decoded);
}

Status RunImpl::ReadBlocks(uint64_t first, uint64_t end, std::string* raw) const {
  const uint64_t size = offsets_[end] - offsets_[first];
  RETURN_IF_ERROR(file_->Read(offsets_[first], size, raw));
  if (raw->size() != size) return BlockCorrupt(first, "short read (file truncated?)");
  return Status::OK();
}

Status RunImpl::DecodeFrom(uint64_t b, std::string_view blocks, uint64_t blocks_first,
                           CachedBlock* block, std::vector<Decoded>* decoded) const {
  const std::string_view raw =
      blocks.substr(offsets_[b] - offsets_[blocks_first], offsets_[b + 1] - offsets_[b]);
  size_t header = 0;
  RETURN_IF_ERROR(ParseBlock(b, raw, block, &header));
  // The stream, followed by the zero bytes BitReader needs.
  block->bytes.assign(raw.data() + header, raw.size() - fmt::kBlockCrcSize - header);
  block->bytes.append(8, '\0');
  return Decode(b, *block, decoded);
}

Status RunImpl::ParseBlock(uint64_t b, std::string_view raw, CachedBlock* block,
                           size_t* header_size) const {
  if (raw.size() < fmt::kBlockCrcSize) return BlockCorrupt(b, "shorter than its checksum");
  const size_t n = raw.size() - fmt::kBlockCrcSize;
  if (DecodeFixed32(raw.data() + n) != crc32c::Mask(crc32c::Value(raw.data(), n))) {
    return BlockCorrupt(b, "checksum mismatch");
  }
  Decoder d(raw.substr(0, n));
  uint32_t count = 0;
  uint8_t k = 0, seg_bits = 0, row_bits = 0;
  if (!d.GetVarint32(&count) || !d.GetByte(&k) || !d.GetByte(&seg_bits) || !d.GetByte(&row_bits) ||
      count == 0 || k > fmt::kMaxRiceK || seg_bits > fmt::kMaxFieldBits ||
      row_bits > fmt::kMaxFieldBits) {
    return BlockCorrupt(b, "bad block header");
  }
  const size_t stream = d.remaining();
  *header_size = n - stream;
  block->total_bits = uint64_t{stream} * 8;
  block->count = count;
  block->rice_k = k;
  block->seg_bits = seg_bits;
  block->row_bits = row_bits;
  return Status::OK();
}

Status RunImpl::Scan(uint64_t b, const CachedBlock& block, uint64_t target,
                     std::vector<RowLocation>* out) const {
  // The block's checksum and header are verified (and, when cached, every entry): a read past
  // the stream or a location outside the segment table is reported as corruption.
  const uint32_t width = uint32_t{block.seg_bits} + block.row_bits;
  BitReader r(block.bytes.data(), block.total_bits);
  r.Seek(uint64_t{block.count} * width);
  uint64_t routing = first_routing_[b];
  uint32_t matches[8];
  uint32_t match_count = 0;
  std::vector<uint32_t> more;
  for (uint32_t i = 0; i < block.count; ++i) {
    if (i > 0) {
      uint64_t d = 0;
      if (!r.ReadRice(block.rice_k, info_.routing_bits, &d)) {
        return BlockCorrupt(b, "bad delta " + std::to_string(i));
      }
      routing += d;
    }
    if (routing > target) break;
    if (routing == target) {
      if (match_count < 8) {
        matches[match_count++] = i;
      } else {
        more.push_back(i);
      }
    }
  }
  auto add = [&](uint32_t i) -> Status {
    uint64_t seg = 0, row = 0;
    r.Seek(uint64_t{i} * width);
    if (!r.Read(block.seg_bits, &seg) || !r.Read(block.row_bits, &row) ||
        seg >= segments_.size()) {
      return BlockCorrupt(b, "bad location " + std::to_string(i));
    }
    out->push_back(RowLocation{segments_[seg], static_cast<uint32_t>(row)});
    return Status::OK();
  };
  out->reserve(out->size() + match_count + more.size());
  for (uint32_t m = 0; m < match_count; ++m) RETURN_IF_ERROR(add(matches[m]));
  for (uint32_t i : more) RETURN_IF_ERROR(add(i));
  return Status::OK();
}

Status RunImpl::Decode(uint64_t b, const CachedBlock& block, std::vector<Decoded>* out) const {
  const uint64_t width = uint64_t{block.seg_bits} + block.row_bits;
  const uint64_t loc_bits = uint64_t{block.count} * width;
  // Each delta takes at least one bit.
  if (loc_bits > block.total_bits || block.count - 1 > block.total_bits - loc_bits) {
    return BlockCorrupt(b, "entry count " + std::to_string(block.count) + " too large");
  }
  const uint64_t last_allowed =
      b + 1 < first_routing_.size() ? first_routing_[b + 1] - 1 : MaxRouting(info_.routing_bits);
  BitReader locs(block.bytes.data(), block.total_bits);
  BitReader deltas(block.bytes.data(), block.total_bits);
  deltas.Seek(loc_bits);
  if (out != nullptr) {
    out->clear();
    out->reserve(block.count);
  }
  Decoded prev{};
  uint64_t routing = first_routing_[b];
  for (uint32_t i = 0; i < block.count; ++i) {
    uint64_t delta = 0, seg = 0, row = 0;
    if (i > 0 && !deltas.ReadRice(block.rice_k, info_.routing_bits, &delta)) {
      return BlockCorrupt(b, "bad delta " + std::to_string(i));
    }
    if (delta > last_allowed - routing) {
      return BlockCorrupt(b, "entry " + std::to_string(i) + " outside the block's hash range");
    }
    routing += delta;
    if (!locs.Read(block.seg_bits, &seg) || !locs.Read(block.row_bits, &row) ||
        seg >= segments_.size()) {
      return BlockCorrupt(b, "bad location " + std::to_string(i));
    }
    const Decoded e{routing, static_cast<uint32_t>(seg), static_cast<uint32_t>(row)};
    if (i > 0 && !EntryLess(prev, e)) {
      return BlockCorrupt(b, "entry " + std::to_string(i) + " out of order");
    }
    prev = e;
    if (out != nullptr) out->push_back(e);
  }
  const uint64_t rest = block.total_bits - deltas.pos();
  uint64_t pad = 0;
  if (rest >= 8 || !deltas.Read(static_cast<uint32_t>(rest), &pad) || pad != 0) {
    return BlockCorrupt(b, "trailing bytes");
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Merge.

// One merge input, consumed in (routing >> shift, segment file number, row) order. Blocks are
// loaded in chunks that end at a change of the shifted routing value, so sorting a chunk
// sorts the stream even when shifting makes neighbouring blocks share a value.
struct MergeSource {
  const RunImpl* run = nullptr;
  uint32_t shift = 0;  // input routing bits - output routing bits
  // Input segment-table index -> output segment-table index (both tables ascend by file
  // number, so output indexes order entries as file numbers do).
  std::vector<uint32_t> seg_map;
  uint64_t next_block = 0;
  struct Item {
    uint64_t routing;  // shifted to the output's bits
    uint32_t segment;  // output segment-table index
    uint32_t row;
  };
  std::vector<Item> chunk;
  size_t pos = 0;
  // Reused for every block (a block read allocated a buffer and a vector before).
  CachedBlock block;
  std::vector<Decoded> decoded;
  // Raw bytes of blocks [span_first, span_end), read with one call: a read per ~1.5 KiB block
  // was a tenth of a merge's time.
  static constexpr uint64_t kSpanBytes = 256u << 10;
  std::string span;
  uint64_t span_first = 0, span_end = 0;

  // Decodes block b into `decoded`, reading the next span first when b is past this one (a
  // mapped run is decoded in place).
  Status LoadBlock(uint64_t b) {
    if (const std::string_view mapped = run->mapped_blocks(); !mapped.empty()) {
      return run->DecodeFrom(b, mapped, 0, &block, &decoded);
    }
    if (b < span_first || b >= span_end) {
      uint64_t e = b + 1;
      while (e < run->block_count() &&
             run->block_offset(e + 1) - run->block_offset(b) <= kSpanBytes) {
        e++;
      }
      RETURN_IF_ERROR(run->ReadBlocks(b, e, &span));
      span_first = b;
      span_end = e;
    }
    return run->DecodeFrom(b, span, span_first, &block, &decoded);
  }

  bool valid() const { return pos < chunk.size(); }
  const Item& item() const { return chunk[pos]; }

  Status Advance() {
    ++pos;
    return Fill();
  }
  Status Fill() {
    if (valid() || next_block >= run->block_count()) return Status::OK();
    chunk.clear();
    pos = 0;
    do {
      RETURN_IF_ERROR(LoadBlock(next_block++));
      for (const Decoded& e : decoded) {
        chunk.push_back(Item{e.routing >> shift, seg_map[e.seg], e.row});
      }
    } while (next_block < run->block_count() &&
             (run->first_routing(next_block) >> shift) == chunk.back().routing);
    auto less = [](const Item& a, const Item& b) {
      if (a.routing != b.routing) return a.routing < b.routing;
      if (a.segment != b.segment) return a.segment < b.segment;
      return a.row < b.row;
    };
    // Unshifted chunks are in order already (segment indexes follow file numbers).
    if (!std::is_sorted(chunk.begin(), chunk.end(), less)) {
      std::sort(chunk.begin(), chunk.end(), less);
    }
    return Status::OK();
  }
};

// Stable LSD radix sort of *v by key(item), whose values are below 2^bits (11-bit digits;
// keys sort in ceil(bits / 11) passes). *scratch: same size as *v.
template <typename T, typename Key>
void RadixSortBy(std::vector<T>* v, std::vector<T>* scratch, uint32_t bits, const Key& key) {
  constexpr uint32_t kDigitBits = 11;
  constexpr size_t kBuckets = size_t{1} << kDigitBits;
  std::vector<uint32_t> count(kBuckets);
  for (uint32_t shift = 0; shift < bits; shift += kDigitBits) {
    std::fill(count.begin(), count.end(), 0);
    for (const T& e : *v) count[(key(e) >> shift) & (kBuckets - 1)]++;
    uint32_t sum = 0;
    for (uint32_t& c : count) {
      const uint32_t n = c;
      c = sum;
      sum += n;
    }
    for (const T& e : *v) (*scratch)[count[(key(e) >> shift) & (kBuckets - 1)]++] = e;
    v->swap(*scratch);
  }
}

}  // namespace

uint64_t DedupeSharedFilterKey(uint64_t hash) {
  return fmt::FilterKeyOfRouting(hash >> (64 - fmt::kFilterKeyBits));
}

bool DedupeRunIsForgotten(const DedupeRunInfo& info, int64_t now_ms, int64_t window_ms) {
  if (window_ms <= 0 || info.forever_key_count > 0) return false;
  return static_cast<__int128>(info.max_usage_anchor_ms) + window_ms <
         static_cast<__int128>(now_ms);
}

Status WriteDedupeRun(FileSystem* fs, const std::string& path,
                      std::span<const DedupeRunEntry> entries, DedupeRunInfo* info,
                      const DedupeWriteOptions& options) {
  if (options.routing_bits > fmt::kMaxRoutingBits) {
    return Status::InvalidArgument(path + ": routing_bits must be 0..64");
  }
  const uint32_t version =
      options.format_version == 0 ? fmt::kDedupeFormatVersion : options.format_version;
  if (version != fmt::kDedupeFormatVersion && version != fmt::kDedupeFormatVersionV2) {
    return Status::InvalidArgument(path + ": dedupe run format version must be 2 or 3");
  }
  const uint32_t bits =
      options.routing_bits != 0 ? options.routing_bits : AutoRoutingBits(entries.size(), version);
  Summary summary;
  std::vector<uint64_t> segments;
  segments.reserve(64);
  for (size_t i = 0; i < entries.size(); ++i) {
    const DedupeRunEntry& e = entries[i];
    summary.min_seq = i == 0 ? e.commit_seq : std::min(summary.min_seq, e.commit_seq);
    summary.max_seq = std::max(summary.max_seq, e.commit_seq);
    if (e.forever) {
      summary.forever++;
    } else {
      summary.max_anchor = std::max(summary.max_anchor, e.anchor_ms);
    }
    if (segments.empty() || segments.back() != e.location.segment_file_number) {
      segments.push_back(e.location.segment_file_number);
    }
  }
  std::sort(segments.begin(), segments.end());
  segments.erase(std::unique(segments.begin(), segments.end()), segments.end());
  if (segments.size() > UINT32_MAX) return Status::InvalidArgument(path + ": too many segments");
  // A row holds one event: a location listed twice (whatever its hashes) is a caller bug. A
  // flush lists its locations ascending, which proves them distinct without sorting.
  bool ascending = true;
  for (size_t i = 1; i < entries.size() && ascending; ++i) {
    ascending = entries[i - 1].location < entries[i].location;
  }
  if (!ascending) {
    std::vector<RowLocation> locations;
    locations.reserve(entries.size());
    for (const DedupeRunEntry& e : entries) locations.push_back(e.location);
    std::sort(locations.begin(), locations.end());
    auto dup = std::adjacent_find(locations.begin(), locations.end());
    if (dup != locations.end()) {
      return Status::InvalidArgument(path + ": location " +
                                     std::to_string(dup->segment_file_number) + ":" +
                                     std::to_string(dup->row) + " listed twice");
    }
  }

  // Sort by (routing, segment, row): the segment index order is the file number order. The
  // entries are sorted by location first (unless the caller's were ascending already), then
  // stably by routing value with an LSD radix sort of (routing, index) pairs.
  std::vector<DedupeRunEntry> by_location;
  if (!ascending) {
    by_location.assign(entries.begin(), entries.end());
    std::sort(by_location.begin(), by_location.end(),
              [](const DedupeRunEntry& a, const DedupeRunEntry& b) { return a.location < b.location; });
    entries = by_location;
  }
  // One sequential pass builds the 16-byte entries the builder takes (segment index from a
  // cursor: locations ascend) and the filter's keys (the filter ignores order), so the
  // sort moves compact entries and nothing is gathered from `entries` in routing order.
  std::vector<Decoded> order(entries.size()), scratch(entries.size());
  std::vector<uint64_t> keys(entries.size());
  uint32_t seg = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const DedupeRunEntry& e = entries[i];
    while (segments[seg] != e.location.segment_file_number) ++seg;
    order[i] = Decoded{RoutingOf(e.hash, bits), seg, e.location.row};
    keys[i] = FilterKey(version, e.hash, bits);
  }
  std::vector<DedupeRunEntry>().swap(by_location);
  RadixSortBy(&order, &scratch, bits, [](const Decoded& d) { return d.routing; });
  std::vector<Decoded>().swap(scratch);
  RunBuilder builder(fs, path, segments, bits, version);
  RETURN_IF_ERROR(builder.Start());
  for (const Decoded& d : order) RETURN_IF_ERROR(builder.Add(d.routing, d.seg, d.row));
  return builder.Finish(keys, summary, info);
}

Status WriteDedupeRun(FileSystem* fs, const std::string& path, std::vector<DedupeRunEntry> entries,
                      DedupeRunInfo* info, const DedupeWriteOptions& options) {
  return WriteDedupeRun(fs, path, std::span<const DedupeRunEntry>(entries), info, options);
}

Result<std::shared_ptr<DedupeRun>> DedupeRun::Open(FileSystem* fs, const std::string& path,
                                                   uint64_t file_number) {
  // Mapped: a lookup that passes the filter reads one ~1.5 KiB block of a random run, and
  // as a system call that read cost more than the rest of the lookup (filter false
  // positives, ~0.3 % per run, are the common case of it).
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, fs->NewMappedFile(path));
  auto run = std::make_shared<RunImpl>(path, file_number, std::move(file));
  RETURN_IF_ERROR(run->Load());
  return std::shared_ptr<DedupeRun>(std::move(run));
}

Status MergeDedupeRuns(FileSystem* fs, const std::vector<std::shared_ptr<DedupeRun>>& inputs,
                       const std::string& out_path, DedupeRowResolver* resolver,
                       DedupeRunInfo* info, const DedupeWriteOptions& options) {
  uint32_t bits = fmt::kMaxRoutingBits;
  Summary summary;
  bool any = false;
  bool all_v3 = true;  // every non-empty input keys its filter by routing value
  std::vector<uint64_t> segments;
  for (const auto& in : inputs) {
    if (dynamic_cast<const RunImpl*>(in.get()) == nullptr) {
      return Status::InvalidArgument(out_path + ": merge input of an unknown run type");
    }
    const DedupeRunInfo& ii = in->info();
    if (ii.key_count == 0) continue;
    bits = std::min(bits, ii.routing_bits);
    all_v3 = all_v3 && ii.format_version >= 3;
    summary.min_seq = any ? std::min(summary.min_seq, ii.min_commit_seq) : ii.min_commit_seq;
    summary.max_seq = std::max(summary.max_seq, ii.max_commit_seq);
    summary.forever += ii.forever_key_count;
    summary.max_anchor = std::max(summary.max_anchor, ii.max_usage_anchor_ms);
    segments.insert(segments.end(), in->segment_file_numbers().begin(),
                    in->segment_file_numbers().end());
    any = true;
  }
  uint32_t version = all_v3 ? fmt::kDedupeFormatVersion : fmt::kDedupeFormatVersionV2;
  if (!any) {
    version = options.format_version == 0 ? fmt::kDedupeFormatVersion : options.format_version;
    if (version != fmt::kDedupeFormatVersion && version != fmt::kDedupeFormatVersionV2) {
      return Status::InvalidArgument(out_path + ": dedupe run format version must be 2 or 3");
    }
    bits = options.routing_bits != 0 ? options.routing_bits : AutoRoutingBits(0, version);
  }
  if (bits > fmt::kMaxRoutingBits) {
    return Status::InvalidArgument(out_path + ": routing_bits must be 0..64");
  }
  // Version 3 needs only the inputs; a version-2 output's filter needs every id's full hash.
  const bool read_ids = version < 3;
  if (any && read_ids && resolver == nullptr) {
    return Status::InvalidArgument(out_path +
                                   ": merging version-2 dedupe runs needs a row resolver");
  }
  std::sort(segments.begin(), segments.end());
  segments.erase(std::unique(segments.begin(), segments.end()), segments.end());
  if (segments.size() > UINT32_MAX) {
    return Status::InvalidArgument(out_path + ": too many segments");
  }

  std::vector<MergeSource> sources(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    MergeSource& s = sources[i];
    s.run = static_cast<const RunImpl*>(inputs[i].get());
    s.shift = s.run->info().key_count == 0 ? 0 : s.run->info().routing_bits - bits;
    for (uint64_t f : s.run->segment_file_numbers()) {
      s.seg_map.push_back(static_cast<uint32_t>(
          std::lower_bound(segments.begin(), segments.end(), f) - segments.begin()));
    }
    RETURN_IF_ERROR(s.Fill());
  }
  // Version 3: the filter keys of the output's routing values. Version 2: per output
  // segment, (row, low 32 routing bits) of its entries, to read their ids later.
  std::vector<uint64_t> keys;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> rows_by_segment;
  if (read_ids) {
    rows_by_segment.resize(segments.size());
  } else {
    uint64_t total = 0;
    for (const auto& in : inputs) total += in->info().key_count;
    keys.reserve(total);
  }
  RunBuilder builder(fs, out_path, segments, bits, version);
  RETURN_IF_ERROR(builder.Start());
  bool have_last = false;
  MergeSource::Item last{};
  // Writes sources[i]'s current entry (the smallest of all inputs') and advances it.
  auto emit = [&](size_t i) -> Status {
    const MergeSource::Item it = sources[i].item();
    // The same entry in several inputs is written once.
    if (!have_last || it.routing != last.routing || it.segment != last.segment ||
        it.row != last.row) {
      const uint32_t seg = it.segment;
      RETURN_IF_ERROR(builder.Add(it.routing, seg, it.row));
      if (read_ids) {
        rows_by_segment[seg].emplace_back(it.row, static_cast<uint32_t>(it.routing));
      } else {
        keys.push_back(FilterKeyOfRoutingValue(it.routing, bits));
      }
      last = it;
      have_last = true;
    }
    return sources[i].Advance();
  };
  // (routing, segment, row) packed into one integer: the entries' order.
  auto key_of = [](const MergeSource::Item& it) {
    return (static_cast<unsigned __int128>(it.routing) << 64) |
           (static_cast<unsigned __int128>(it.segment) << 32) | it.row;
  };
  if (sources.size() <= 8) {
    // The db merges 4 runs at a time: a linear minimum over the inputs' packed current keys
    // costs less than a heap's pops and pushes with their field-by-field comparisons. Ties
    // go to the lower input (as in the heap below); equal entries are written once.
    unsigned __int128 cur[8];
    bool live[8];
    size_t remaining = 0;
    for (size_t i = 0; i < sources.size(); ++i) {
      live[i] = sources[i].valid();
      if (live[i]) {
        cur[i] = key_of(sources[i].item());
        ++remaining;
      }
    }
    while (remaining > 0) {
      size_t best = SIZE_MAX;
      for (size_t i = 0; i < sources.size(); ++i) {
        if (live[i] && (best == SIZE_MAX || cur[i] < cur[best])) best = i;
      }
      RETURN_IF_ERROR(emit(best));
      if (sources[best].valid()) {
        cur[best] = key_of(sources[best].item());
      } else {
        live[best] = false;
        --remaining;
      }
    }
  } else {
    auto greater = [&](size_t a, size_t b) {
      const MergeSource::Item &x = sources[a].item(), &y = sources[b].item();
      if (x.routing != y.routing) return x.routing > y.routing;
      if (x.segment != y.segment) return x.segment > y.segment;
      if (x.row != y.row) return x.row > y.row;
      return a > b;
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(greater)> heap(greater);
    for (size_t i = 0; i < sources.size(); ++i) {
      if (sources[i].valid()) heap.push(i);
    }
    while (!heap.empty()) {
      const size_t i = heap.top();
      heap.pop();
      RETURN_IF_ERROR(emit(i));
      if (sources[i].valid()) heap.push(i);
    }
  }
  sources.clear();
  if (!read_ids) return builder.Finish(keys, summary, info);

  // Version 2: the filter is over full hashes: hash every row's event_id, segment by segment,
  // rows ascending. A flush run lists every row of its segments, so a segment's rows are nearly
  // always dense: they are put in order by placing each at its row (a sort otherwise).
  std::vector<uint64_t> hashes;
  hashes.reserve(builder.key_count());
  std::vector<uint32_t> rows, lows, slot;
  std::vector<uint64_t> segment_hashes;
  const uint32_t shift = 64 - bits;
  for (size_t s = 0; s < segments.size(); ++s) {
    auto& entries = rows_by_segment[s];
    auto listed_twice = [&](uint32_t row) {
      return Status::Corruption(out_path + ": row " + std::to_string(row) + " of segment " +
                                std::to_string(segments[s]) +
                                " is listed by merge inputs under different hashes");
    };
    rows.clear();
    lows.clear();
    uint32_t max_row = 0;
    for (const auto& e : entries) max_row = std::max(max_row, e.first);
    if (uint64_t{max_row} < 2 * uint64_t{entries.size()} + 1024) {
      constexpr uint32_t kEmpty = UINT32_MAX;
      slot.assign(uint64_t{max_row} + 1, kEmpty);
      for (size_t k = 0; k < entries.size(); ++k) {
        uint32_t& at = slot[entries[k].first];
        if (at != kEmpty) return listed_twice(entries[k].first);
        at = static_cast<uint32_t>(k);
      }
      for (uint32_t row = 0; row <= max_row; ++row) {
        if (slot[row] == kEmpty) continue;
        rows.push_back(row);
        lows.push_back(entries[slot[row]].second);
      }
    } else {
      std::sort(entries.begin(), entries.end());
      for (const auto& [row, low] : entries) {
        if (!rows.empty() && rows.back() == row) return listed_twice(row);
        rows.push_back(row);
        lows.push_back(low);
      }
    }
    std::vector<std::pair<uint32_t, uint32_t>>().swap(entries);
    segment_hashes.clear();
    RETURN_IF_ERROR(resolver->ReadEventIdHashes(segments[s], rows, options.hash, &segment_hashes));
    if (segment_hashes.size() != rows.size()) {
      return Status::Internal(out_path + ": resolver returned " +
                              std::to_string(segment_hashes.size()) + " hashes for " +
                              std::to_string(rows.size()) + " rows of segment " +
                              std::to_string(segments[s]));
    }
    for (size_t r = 0; r < rows.size(); ++r) {
      const uint64_t h = segment_hashes[r];
      // A run that does not match its segments would route lookups to the wrong rows.
      if (static_cast<uint32_t>(h >> shift) != lows[r]) {
        return Status::Corruption(out_path + ": row " + std::to_string(rows[r]) + " of segment " +
                                  std::to_string(segments[s]) +
                                  " holds an event_id whose hash does not match its dedupe entry");
      }
      hashes.push_back(h);
    }
  }
  return builder.Finish(hashes, summary, info);
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
