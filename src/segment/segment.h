// Raw segments: immutable columnar files of events for one partition (bucket, month),
// sorted in billing order. See docs/format.md, section "Raw segment".
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/file_system.h"
#include "usagedb/event.h"
#include "usagedb/event_view.h"
#include "usagedb/status.h"

namespace usagedb {

// Columns, also used as bit positions in a ColumnMask. On-disk ids: never reused.
enum class Column : uint8_t {
  kEventId = 0,
  kKind = 1,
  kCorrectionOriginalEventId = 2,  // null when the event has no correction_ref
  kCorrectionReason = 3,           // null when the event has no correction_ref
  kAccountId = 4,
  kSubscriptionId = 5,  // nullable
  kProductId = 6,
  kMeterId = 7,
  kModelId = 8,  // nullable
  kTimestampMs = 9,
  kQuantity = 10,
  kUnit = 11,
  kSource = 12,
  kDimensions = 13,  // canonical dimensions string
  kIngestedAtMs = 14,
  kCommitSeq = 15,
};
constexpr int kNumColumns = 16;
using ColumnMask = uint32_t;
constexpr ColumnMask ColumnBit(Column c) { return 1u << static_cast<int>(c); }
constexpr ColumnMask kAllColumns = (1u << kNumColumns) - 1;

// The distinct values of one decoded string column, stored flat: the values' bytes one after
// another in one buffer and each value's end offset, so decoding a block allocates nothing
// per value (an event_id column has one value per row) and a DecodedBlock reused from block
// to block reuses both buffers. Values are views into the buffer: valid until the next
// change of this dictionary.
class StringDict {
 public:
  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  std::string_view operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(bytes_.data() + begin, ends_[i] - begin);
  }
  // Total bytes of all values.
  size_t bytes() const { return bytes_.size(); }

  void clear() {
    bytes_.clear();
    ends_.clear();
  }
  void reserve(size_t values, size_t bytes) {
    ends_.reserve(values);
    bytes_.reserve(bytes);
  }
  void push_back(std::string_view v) {
    bytes_.append(v);
    ends_.push_back(bytes_.size());
  }
  // Appends the value prefix + suffix.
  void push_back(std::string_view prefix, std::string_view suffix) {
    bytes_.append(prefix);
    bytes_.append(suffix);
    ends_.push_back(bytes_.size());
  }
  // Appends `count` values of `size` bytes each and returns where their bytes start (one after
  // another, zero-filled), for the caller to write.
  char* AppendEqualSized(size_t count, size_t size) {
    const size_t begin = bytes_.size();
    bytes_.resize(begin + count * size);
    ends_.reserve(ends_.size() + count);
    for (size_t k = 1; k <= count; ++k) ends_.push_back(begin + k * size);
    return bytes_.data() + begin;
  }
  // Builds a value in place: append its bytes to *BeginValue(), then call EndValue().
  std::string* BeginValue() { return &bytes_; }
  void EndValue() { ends_.push_back(bytes_.size()); }

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = std::string_view;
    const_iterator() = default;
    const_iterator(const StringDict* d, size_t i) : d_(d), i_(i) {}
    std::string_view operator*() const { return (*d_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }

   private:
    const StringDict* d_ = nullptr;
    size_t i_ = 0;
  };
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size()); }

 private:
  std::string bytes_;
  std::vector<size_t> ends_;
};

// A string column of one decoded block: per-row code into dict; kNullCode = null.
struct StringColumn {
  static constexpr uint32_t kNullCode = 0xffffffffu;
  StringDict dict;
  std::vector<uint32_t> codes;
  bool IsNull(size_t row) const { return codes[row] == kNullCode; }
  // REQUIRES: !IsNull(row). The view is valid until the column changes.
  std::string_view Get(size_t row) const { return dict[codes[row]]; }
};

// The requested columns of one block; columns not requested stay empty.
struct DecodedBlock {
  size_t rows = 0;
  StringColumn event_id, correction_original_event_id, correction_reason, account_id,
      subscription_id, product_id, meter_id, model_id, unit, source, dimensions;
  std::vector<uint8_t> kind;  // EventKind values
  std::vector<int64_t> timestamp_ms, ingested_at_ms;
  std::vector<uint64_t> commit_seq;
  std::vector<__int128> quantity;

  // Builds the full Event of one row. REQUIRES: the block was read with kAllColumns.
  Status MaterializeRow(size_t row, Event* out) const;
};

// Zone map of one row block: enough to skip it for account / time / seq / id-set filters.
struct BlockZoneMap {
  uint32_t row_count = 0;
  int64_t min_timestamp_ms = 0, max_timestamp_ms = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  std::string min_account_id, max_account_id;
  // Distinct values present in the block (sets are small: billing data has few products,
  // meters and models per block).
  std::vector<std::string> product_ids, meter_ids, model_ids;
};

// What the flush that wrote a segment wrote in all, the same in each of its segments: the
// manifest fallback (SPEC §4) re-adopts a skipped generation's flush only when every file it
// names is present. All zero for files not written by a flush (merges).
struct FlushReceipt {
  uint32_t segment_count = 0;   // segment files the flush wrote, this one included
  uint64_t event_count = 0;     // rows in those segments together (= keys in its dedupe run)
  uint64_t dedupe_run = 0;      // file number of its dedupe run (0: none)
  uint64_t conflict_log = 0;    // file number of its conflict log (0: none)
  uint64_t conflict_count = 0;  // entries in that conflict log
  int64_t max_ingested_at_ms = 0;  // highest stamp of the flushed units
  uint64_t last_sequence = 0;      // highest sequence assigned when the flush committed
  bool operator==(const FlushReceipt&) const = default;
};

struct SegmentInfo {
  uint32_t bucket = 0;
  int32_t partition = 0;  // months since 1970-01 (UTC) of every row's timestamp_ms
  uint64_t row_count = 0;
  uint64_t file_size = 0;
  int64_t min_timestamp_ms = 0, max_timestamp_ms = 0;
  uint64_t min_commit_seq = 0, max_commit_seq = 0;
  std::string min_account_id, max_account_id;
  // Origin: the commit-sequence range this segment was built from by a flush
  // [origin_min_seq, origin_max_seq] (a flush covers a contiguous sequence prefix), or the
  // file numbers of the segments a merge replaced.
  uint64_t origin_min_seq = 0, origin_max_seq = 0;
  std::vector<uint64_t> origin_replaced;
  FlushReceipt receipt;
};

struct SegmentWriterOptions {
  uint32_t rows_per_block = 16384;  // see docs/parts/segment.md, "Block size"
  int zstd_level = 3;
  // The caller knows the rows' event ids are pairwise distinct (a memtable's are): choosing
  // the event_id column's encoding then skips a dictionary pass. The bytes written are the
  // same as without the claim when it holds; when it does not, the file is still valid.
  bool event_ids_distinct = false;
};

// Views of events as the flush has them: dimensions encoded as in an event record (keys
// ascending) into *dims, which must outlive the views. REQUIRES: no null row.
std::vector<EventView> ViewEvents(const std::vector<const Event*>& rows, std::string* dims);

// Writes rows (REQUIRES: all in one partition, sorted in billing order: account, product,
// meter, model, timestamp, event_id) to `path + ".tmp"`, syncs it and renames it to `path`.
// The caller syncs the directory once for all files of a flush. info's bucket, partition and
// origin fields are inputs; the rest is filled in.
Status WriteSegment(FileSystem* fs, const std::string& path, const std::vector<const Event*>& rows,
                    const SegmentWriterOptions& options, SegmentInfo* info);
// The same file from views (the flush's path: rows viewed in the memtable, nothing copied).
// REQUIRES as above; the bytes the views point into live until the call returns.
Status WriteSegment(FileSystem* fs, const std::string& path,
                    const std::vector<const EventView*>& rows, const SegmentWriterOptions& options,
                    SegmentInfo* info);

class UnsyncedSegment;
struct SegmentRowHints;

// What WriteSegment calls made one after another by one thread can share (a flushing thread
// writes one segment per partition): the zstd context with its workspace and the block
// encoder's buffers, so that after the first segment a write allocates and frees almost
// nothing. The bytes written are the same with or without it. Not thread-safe.
class SegmentWriterScratch {
 public:
  SegmentWriterScratch();
  ~SegmentWriterScratch();
  SegmentWriterScratch(const SegmentWriterScratch&) = delete;
  SegmentWriterScratch& operator=(const SegmentWriterScratch&) = delete;

  struct Rep;  // defined by the writer

 private:
  friend Status WriteSegmentUnsynced(FileSystem*, const std::string&,
                                     const std::vector<const EventView*>&,
                                     const SegmentWriterOptions&, SegmentInfo*,
                                     SegmentWriterScratch*, std::unique_ptr<UnsyncedSegment>*,
                                     const SegmentRowHints&);
  std::unique_ptr<Rep> rep_;
};

// The view overload with scratch kept by the caller (REQUIRES: scratch != nullptr, used by
// one thread at a time).
Status WriteSegment(FileSystem* fs, const std::string& path,
                    const std::vector<const EventView*>& rows, const SegmentWriterOptions& options,
                    SegmentInfo* info, SegmentWriterScratch* scratch);

// A segment written in full to `path + ".tmp"`, its file still open and not yet synced.
// Commit() syncs and closes the file and renames it to `path` (WriteSegment's last steps);
// destroying it uncommitted closes and removes the temporary. Lets a caller move a file's
// fsync off the thread that encodes the next one (the flush: ~1 ms per file, 64 per flush).
// Commit may run on another thread than the write (one thread at a time).
class UnsyncedSegment {
 public:
  UnsyncedSegment(FileSystem* fs, std::string path, std::unique_ptr<WritableFile> file);
  ~UnsyncedSegment();
  UnsyncedSegment(const UnsyncedSegment&) = delete;
  UnsyncedSegment& operator=(const UnsyncedSegment&) = delete;

  const std::string& path() const { return path_; }
  // On failure the temporary is removed; call at most once.
  Status Commit();

 private:
  FileSystem* fs_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;  // null once committed
};

// What a caller may know about runs in the rows it writes, so the writer need not read
// string bytes to find them: flags per row (same order as the rows), 1 = the row's value
// equals the previous row's, 0 = unknown. The bytes written are the same with or without.
struct SegmentRowHints {
  const uint8_t* same_account = nullptr;  // account_id
  const uint8_t* same_triple = nullptr;   // product_id, meter_id and model_id (null or not)
};

// WriteSegment (view overload, with scratch) without the sync and rename: on success *out
// holds the written file, to be committed by the caller. *info is filled in as by
// WriteSegment (file_size included).
Status WriteSegmentUnsynced(FileSystem* fs, const std::string& path,
                            const std::vector<const EventView*>& rows,
                            const SegmentWriterOptions& options, SegmentInfo* info,
                            SegmentWriterScratch* scratch, std::unique_ptr<UnsyncedSegment>* out,
                            const SegmentRowHints& hints = SegmentRowHints());

// Where one column chunk of one block lies in the file (diagnostics, size statistics, tests).
struct ChunkExtent {
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Reads a segment lazily: Open reads and verifies the footer and zone maps; ReadBlock reads
// one block's requested columns and verifies the block checksum. Thread-safe after Open.
// Every damage is a Corruption status naming the file.
class SegmentReader {
 public:
  static Result<std::unique_ptr<SegmentReader>> Open(FileSystem* fs, const std::string& path);
  // Open, then closes the file: the footer and zone maps stay in memory (no descriptor is
  // held); OpenFile must succeed before the first block read.
  static Result<std::unique_ptr<SegmentReader>> OpenFooter(FileSystem* fs, const std::string& path);
  virtual ~SegmentReader() = default;
  // Opens the file of a reader from OpenFooter again (NotFound when it is gone; Corruption
  // when its size differs from the one the footer was read from). REQUIRES: !has_file(), and
  // no other call on this reader concurrently.
  virtual Status OpenFile(FileSystem* fs) = 0;
  virtual bool has_file() const = 0;
  // Bytes of memory the decoded footer and zone maps hold (approximate: allocator overhead
  // and inline string capacity are not counted).
  virtual size_t FooterMemoryUsage() const = 0;
  virtual const SegmentInfo& info() const = 0;
  virtual size_t num_blocks() const = 0;
  // REQUIRES: block < num_blocks().
  virtual const BlockZoneMap& zone_map(size_t block) const = 0;
  // REQUIRES: block < num_blocks().
  virtual ChunkExtent chunk_extent(size_t block, Column column) const = 0;
  virtual Status ReadBlock(size_t block, ColumnMask columns, DecodedBlock* out) const = 0;
  // ReadBlock for the rows of one account: decodes the account column, sets [*lo, *hi) to the
  // rows holding `account` (rows are in billing order; found by binary search, so callers
  // still check each row's account code) and decodes the quantity column only on those rows
  // (its other rows are unspecified). With an empty range only the account column is decoded
  // (the other columns are then unspecified).
  virtual Status ReadAccountRows(size_t block, ColumnMask columns, const std::string& account,
                                 DecodedBlock* out, size_t* lo, size_t* hi) const = 0;
  // One row of a block, as ReadBlock(block, kAllColumns) + MaterializeRow(row) give it, but
  // decoding only that row's value of each column (every chunk is still read, checksummed and
  // decompressed; the rest of a body is checked as far as finding the row needs, and only the
  // row's dimensions string is parsed). InvalidArgument when block or row is out of range.
  virtual Status ReadRow(size_t block, size_t row, Event* out) const = 0;
  // Verifies every block checksum and decodes every column (check --deep).
  virtual Status VerifyAll() const = 0;
  virtual const std::string& path() const = 0;
};

// "segments/000000000042.useg"-style file name for a file number.
std::string SegmentFileName(uint64_t file_number);
bool ParseSegmentFileName(const std::string& name, uint64_t* file_number);

// Month partition of a timestamp: months since 1970-01, UTC.
int32_t MonthPartition(int64_t timestamp_ms);

}  // namespace usagedb
