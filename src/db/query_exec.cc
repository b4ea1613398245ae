// The raw query executor (SPEC §3.4, §3.5): group keys, filters, exact metrics, order, limit,
// over one snapshot of segments + memtables.
#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <thread>
#include <unordered_map>

#include "db/db_impl.h"
#include "model/event_codec.h"
#include "util/hash.h"
#include "util/int128.h"
#include "util/time_util.h"

namespace usagedb {
namespace {

enum class KeyKind { kColumn, kKind, kHour, kDay, kDate, kMonth, kDim };

struct KeySpec {
  KeyKind kind = KeyKind::kColumn;
  Column column = Column::kAccountId;
  std::string dim;  // for kDim
  bool numeric_time() const { return kind == KeyKind::kHour || kind == KeyKind::kDay; }
};

Result<KeySpec> ParseKey(const std::string& key) {
  static const std::map<std::string, Column> kColumns = {
      {"account_id", Column::kAccountId}, {"subscription_id", Column::kSubscriptionId},
      {"product_id", Column::kProductId}, {"meter_id", Column::kMeterId},
      {"model_id", Column::kModelId},     {"source", Column::kSource},
      {"unit", Column::kUnit}};
  KeySpec k;
  if (auto it = kColumns.find(key); it != kColumns.end()) {
    k.column = it->second;
    return k;
  }
  if (key == "kind") k.kind = KeyKind::kKind;
  else if (key == "hour_start_ms") k.kind = KeyKind::kHour;
  else if (key == "day") k.kind = KeyKind::kDay;
  else if (key == "date") k.kind = KeyKind::kDate;
  else if (key == "month") k.kind = KeyKind::kMonth;
  else if (key.size() > 4 && key.compare(0, 4, "dim.") == 0) {
    k.kind = KeyKind::kDim;
    k.dim = key.substr(4);
  } else {
    return Status::InvalidArgument("unknown group key or filter key: '" + key +
                                   "' (event_id, quantity and timestamp_ms are not group keys)");
  }
  return k;
}

ColumnMask ColumnsFor(const KeySpec& k) {
  switch (k.kind) {
    case KeyKind::kColumn: return ColumnBit(k.column);
    case KeyKind::kKind: return ColumnBit(Column::kKind);
    case KeyKind::kDim: return ColumnBit(Column::kDimensions);
    default: return ColumnBit(Column::kTimestampMs);
  }
}

std::string TimeKey(KeyKind kind, int64_t ts) {
  switch (kind) {
    case KeyKind::kHour: return std::to_string(FloorDiv(ts, 3600000) * 3600000);
    case KeyKind::kDay: return std::to_string(FloorDiv(ts, 86400000) * 86400000);
    case KeyKind::kDate: return FormatDate(ts);
    default: return FormatDate(ts).substr(0, 7);
  }
}

// Threads of one scan over every bucket (Q5-style queries), each taking at least this many
// segments.
constexpr size_t kMaxScanThreads = 4;
constexpr size_t kMinSegmentsPerThread = 16;

using Dims = std::vector<std::pair<std::string, std::string>>;

// One row of either source, with the dimension strings of a block parsed once per code.
class RowAccess {
 public:
  void SetBlock(const DecodedBlock* b) {
    block_ = b;
    event_ = nullptr;
  }
  void SetEvent(const Event* e) {
    event_ = e;
    block_ = nullptr;
  }
  void SetRow(size_t r) { row_ = r; }
  int64_t timestamp() const { return event_ ? event_->timestamp_ms : block_->timestamp_ms[row_]; }
  __int128 quantity() const { return event_ ? event_->quantity : block_->quantity[row_]; }

  // False when the value is missing (null column or absent dimension).
  Status Get(const KeySpec& k, std::string* out, bool* present) {
    *present = true;
    switch (k.kind) {
      case KeyKind::kColumn: {
        if (event_) {
          const std::string* v = EventColumn(*event_, k.column);
          if (!v) {
            *present = false;
            return Status::OK();
          }
          *out = *v;
          return Status::OK();
        }
        const StringColumn& c = BlockColumn(*block_, k.column);
        if (c.IsNull(row_)) {
          *present = false;
          return Status::OK();
        }
        *out = c.Get(row_);
        return Status::OK();
      }
      case KeyKind::kKind:
        *out = EventKindName(event_ ? event_->kind : static_cast<EventKind>(block_->kind[row_]));
        return Status::OK();
      case KeyKind::kDim: {
        const Dims* dims;
        RETURN_IF_ERROR(GetDims(&dims));
        auto it = std::lower_bound(dims->begin(), dims->end(), k.dim,
                                   [](const auto& p, const std::string& key) { return p.first < key; });
        if (it == dims->end() || it->first != k.dim) {
          *present = false;
          return Status::OK();
        }
        *out = it->second;
        return Status::OK();
      }
      default:
        *out = TimeKey(k.kind, timestamp());
        return Status::OK();
    }
  }

 private:
  static const std::string* EventColumn(const Event& e, Column c) {
    switch (c) {
      case Column::kAccountId: return &e.account_id;
      case Column::kSubscriptionId: return e.subscription_id ? &*e.subscription_id : nullptr;
      case Column::kProductId: return &e.product_id;
      case Column::kMeterId: return &e.meter_id;
      case Column::kModelId: return e.model_id ? &*e.model_id : nullptr;
      case Column::kSource: return &e.source;
      case Column::kUnit: return &e.unit;
      default: return nullptr;
    }
  }
  static const StringColumn& BlockColumn(const DecodedBlock& b, Column c) {
    switch (c) {
      case Column::kAccountId: return b.account_id;
      case Column::kSubscriptionId: return b.subscription_id;
      case Column::kProductId: return b.product_id;
      case Column::kMeterId: return b.meter_id;
      case Column::kModelId: return b.model_id;
      case Column::kSource: return b.source;
      default: return b.unit;
    }
  }
  Status GetDims(const Dims** out) {
    if (event_) {
      *out = &event_->dimensions;
      return Status::OK();
    }
    // Keyed by the canonical string itself: the scan reuses one DecodedBlock object for every
    // block, so per-block dictionary codes cannot key a cache that outlives a block.
    const std::string_view canonical = block_->dimensions.Get(row_);
    auto it = dims_by_string_.find(canonical);
    if (it == dims_by_string_.end()) {
      Dims d;
      RETURN_IF_ERROR(ParseCanonicalDimensions(canonical, &d));
      it = dims_by_string_.emplace(std::string(canonical), std::move(d)).first;
    }
    *out = &it->second;
    return Status::OK();
  }

  const DecodedBlock* block_ = nullptr;
  const Event* event_ = nullptr;
  size_t row_ = 0;
  // Transparent, so a row's string_view finds its entry without a copy.
  struct ViewHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, Dims, ViewHash, std::equal_to<>> dims_by_string_;
};

// One group. Its values are value ids of its aggregator's interners (no strings copied and no
// allocation per group: at 100K groups the vector of strings each group held showed in the
// profile as malloc and free).
struct Acc {
  static constexpr size_t kInlineKeys = 4;
  WideSum sum;
  uint64_t count = 0;
  __int128 min = 0, max = 0;
  const std::vector<std::string>* const* key_values = nullptr;  // per key: interned values
  uint32_t vids[kInlineKeys] = {};
  std::vector<uint32_t> more_vids;  // keys after the first kInlineKeys
  // The group's value of key g (in group_by order).
  const std::string& value(size_t g) const {
    return (*key_values[g])[g < kInlineKeys ? vids[g] : more_vids[g - kInlineKeys]];
  }
};

// Compares group values: numeric time keys by number, everything else by bytes.
int CompareKey(const KeySpec& k, const std::string& a, const std::string& b) {
  if (k.numeric_time()) {
    long long x = std::stoll(a), y = std::stoll(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

int CompareValue(const QueryValue& a, const QueryValue& b) {
  // Nulls first ascending.
  if (a.type == QueryValue::Type::kNull || b.type == QueryValue::Type::kNull) {
    return (a.type == QueryValue::Type::kNull ? 0 : 1) - (b.type == QueryValue::Type::kNull ? 0 : 1);
  }
  return a.num < b.num ? -1 : (a.num > b.num ? 1 : 0);
}

// Group values are interned per key; a group is keyed by its values' ids (4 bytes each, so up
// to three keys stay inside std::string's inline buffer). An open-addressing table of (hash,
// id) over the values: a scan by account at 100K accounts interns every account of every
// block's dictionary (millions of lookups), which std::unordered_map's nodes made the top cost.
class Interner {
 public:
  std::vector<std::string> values;

  uint32_t Id(std::string_view v) {
    if ((values.size() + 1) * 2 > slots_.size()) Grow();
    const uint64_t h = Hash64(v);
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id == kEmpty) {
        s = Slot{h, static_cast<uint32_t>(values.size())};
        values.emplace_back(v);
        return s.id;
      }
      if (s.hash == h && values[s.id] == v) return s.id;
    }
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Slot {
    uint64_t hash = 0;
    uint32_t id = kEmpty;
  };
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(64, old.size() * 2), Slot{});
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.id == kEmpty) continue;
      size_t i = s.hash & mask;
      while (slots_[i].id != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;  // size a power of two, at most half full
};

const StringColumn& ColumnOf(const DecodedBlock& b, Column c) {
  switch (c) {
    case Column::kAccountId:
      return b.account_id;
    case Column::kSubscriptionId:
      return b.subscription_id;
    case Column::kProductId:
      return b.product_id;
    case Column::kMeterId:
      return b.meter_id;
    case Column::kModelId:
      return b.model_id;
    case Column::kSource:
      return b.source;
    default:
      return b.unit;
  }
}

// Numeric bucket of a time key: equal buckets give equal key strings.
int64_t TimeBucket(KeyKind kind, int64_t ts) {
  switch (kind) {
    case KeyKind::kHour:
      return FloorDiv(ts, 3600000);
    case KeyKind::kDay:
    case KeyKind::kDate:
      return FloorDiv(ts, 86400000);
    default:
      return MonthPartition(ts);
  }
}

// The grouped, filtered aggregation of one query over any number of blocks and memtable
// events; one per scanning thread, merged at the end.
//
// On segment blocks everything that can be is resolved per dictionary entry of the block
// (column keys, dimension keys, column filters) or per time bucket, so a row costs a few
// array lookups; rows arrive in billing order (account, product, meter, model, timestamp),
// so consecutive rows usually share their group: the group is looked up once per run and the
// run's quantities are summed in 128 bits (AddToRun), widening only on overflow.
class Aggregator {
 public:
  Aggregator(const std::vector<KeySpec>& group,
             const std::vector<std::pair<KeySpec, const QueryFilter*>>& residual, bool minmax)
      : group_(group),
        residual_(residual),
        minmax_(minmax),
        interners_(group.size()),
        code_vid_(group.size()),
        code_ok_(residual.size()),
        last_bucket_(group.size()),
        bucket_vid_(group.size()),
        cur_(group.size()),
        key_codes_(group.size()),
        event_vids_(group.size()) {
    for (auto& k : kind_vid_) k.assign(group.size(), kUnset);
    for (const Interner& i : interners_) key_values_.push_back(&i.values);
  }

  uint64_t rows_scanned() const { return rows_scanned_; }
  // REQUIRES: no group keys. Creates the one group if no row made it.
  void EnsureNoKeyGroup() { GroupOf(cur_); }
  // Every group, in creation order (stable addresses).
  const std::deque<Acc>& groups() const { return store_; }

  Status ConsumeEvent(const Event& e) {
    rows_scanned_++;
    row_.SetEvent(&e);
    bool present;
    for (const auto& [k, f] : residual_) {
      RETURN_IF_ERROR(row_.Get(k, &scratch_, &present));
      if (!present || std::find(f->values.begin(), f->values.end(), scratch_) == f->values.end()) {
        return Status::OK();
      }
    }
    for (size_t g = 0; g < group_.size(); g++) {
      RETURN_IF_ERROR(row_.Get(group_[g], &scratch_, &present));
      if (!present) scratch_.clear();  // a missing column or dimension groups as ""
      event_vids_[g] = interners_[g].Id(scratch_);
    }
    AddOne(GroupOf(event_vids_), e.quantity);
    return Status::OK();
  }

  Status ConsumeBlock(const DecodedBlock& b, const uint32_t* rows, size_t n) {
    rows_scanned_ += n;
    row_.SetBlock(&b);
    for (size_t g = 0; g < group_.size(); g++) {
      const KeySpec& k = group_[g];
      key_codes_[g] = nullptr;
      code_vid_[g].clear();
      if (k.kind == KeyKind::kColumn || k.kind == KeyKind::kDim) {
        const StringColumn& c = k.kind == KeyKind::kDim ? b.dimensions : ColumnOf(b, k.column);
        key_codes_[g] = c.codes.data();
        code_vid_[g].assign(c.dict.size() + 1, kUnset);
      }
    }
    for (auto& v : code_ok_) v.clear();
    Acc* acc = nullptr;
    int128 run = 0, mn = 0, mx = 0;
    uint64_t count = 0;
    auto flush = [&]() {
      if (acc == nullptr || count == 0) return;
      acc->sum.Add(run);
      if (minmax_) {
        if (acc->count == 0 || mn < acc->min) acc->min = mn;
        if (acc->count == 0 || mx > acc->max) acc->max = mx;
      }
      acc->count += count;
    };
    if (group_.empty() && residual_.empty()) {
      // One group, every row: a plain sum.
      acc = GroupOf(cur_);
      mn = mx = b.quantity[rows[0]];
      for (size_t i = 0; i < n; i++) {
        const int128 q = b.quantity[rows[i]];
        AddToRun(q, &run, &acc->sum);
        if (minmax_) {
          mn = q < mn ? q : mn;
          mx = q > mx ? q : mx;
        }
      }
      count = n;
      flush();
      return Status::OK();
    }
    for (size_t i = 0; i < n; i++) {
      const size_t r = rows[i];
      if (!residual_.empty()) {
        bool pass;
        RETURN_IF_ERROR(RowPasses(b, r, &pass));
        if (!pass) continue;
      }
      bool same = acc != nullptr;
      for (size_t g = 0; g < group_.size(); g++) {
        uint32_t vid;
        const uint32_t* codes = key_codes_[g];
        // Column keys: the code's id once resolved for this block.
        if (codes != nullptr && codes[r] != StringColumn::kNullCode &&
            code_vid_[g][codes[r]] != kUnset) {
          vid = code_vid_[g][codes[r]];
        } else {
          RETURN_IF_ERROR(BlockKeyId(b, g, r, &vid));
        }
        if (vid != cur_[g]) {
          cur_[g] = vid;
          same = false;
        }
      }
      const int128 q = b.quantity[r];
      if (!same) {
        flush();
        acc = GroupOf(cur_);
        run = 0;
        count = 0;
        mn = mx = q;
      }
      AddToRun(q, &run, &acc->sum);
      count++;
      if (minmax_) {
        mn = q < mn ? q : mn;
        mx = q > mx ? q : mx;
      }
    }
    flush();
    return Status::OK();
  }

  // Adds another aggregator's groups into this one.
  void Merge(Aggregator& other) {
    rows_scanned_ += other.rows_scanned_;
    for (const Acc& o : other.store_) {
      for (size_t g = 0; g < group_.size(); g++) event_vids_[g] = interners_[g].Id(o.value(g));
      Acc& a = *GroupOf(event_vids_);
      a.sum.Add(o.sum);
      if (o.count > 0) {
        if (a.count == 0 || o.min < a.min) a.min = o.min;
        if (a.count == 0 || o.max > a.max) a.max = o.max;
      }
      a.count += o.count;
    }
  }

 private:
  static constexpr uint32_t kUnset = UINT32_MAX;

  // The group of the value ids `vids`: through a map keyed by the ids packed into 64 bits
  // when they fit (up to three keys), else by their bytes.
  Acc* GroupOf(const std::vector<uint32_t>& vids) {
    const size_t keys = vids.size();
    if (keys == 0) {
      if (single_ == nullptr) single_ = NewAcc(vids);
      return single_;
    }
    if (keys == 1) {
      if (vids[0] >= by_vid_.size()) by_vid_.resize(interners_[0].values.size(), nullptr);
      Acc*& a = by_vid_[vids[0]];
      if (a == nullptr) a = NewAcc(vids);
      return a;
    }
    if (keys >= 2 && keys <= 3) {
      const int bits = keys == 2 ? 32 : 21;
      uint64_t packed = 0;
      bool fits = true;
      for (size_t g = 0; g < keys; g++) {
        fits &= vids[g] < (uint64_t{1} << bits);
        packed |= static_cast<uint64_t>(vids[g]) << (g * bits);
      }
      if (fits) {
        auto [it, inserted] = packed_groups_.try_emplace(packed, nullptr);
        if (inserted) it->second = NewAcc(vids);
        return it->second;
      }
    }
    gkey_.assign(reinterpret_cast<const char*>(vids.data()), keys * sizeof(uint32_t));
    auto [it, inserted] = by_key_.try_emplace(gkey_, nullptr);
    if (inserted) it->second = NewAcc(vids);
    return it->second;
  }

  Acc* NewAcc(const std::vector<uint32_t>& vids) {
    Acc& a = store_.emplace_back();
    a.key_values = key_values_.data();
    for (size_t g = 0; g < vids.size(); g++) {
      if (g < Acc::kInlineKeys) {
        a.vids[g] = vids[g];
      } else {
        a.more_vids.push_back(vids[g]);
      }
    }
    return &a;
  }

  void AddOne(Acc* a, int128 q) {
    a->sum.Add(q);
    if (a->count == 0 || q < a->min) a->min = q;
    if (a->count == 0 || q > a->max) a->max = q;
    a->count++;
  }

  // Residual filters of one block row: column filters by dictionary code, the rest by value.
  Status RowPasses(const DecodedBlock& b, size_t r, bool* pass) {
    *pass = false;
    for (size_t i = 0; i < residual_.size(); i++) {
      const auto& [k, f] = residual_[i];
      if (k.kind == KeyKind::kColumn) {
        const StringColumn& c = ColumnOf(b, k.column);
        const uint32_t code = c.codes[r];
        if (code == StringColumn::kNullCode) return Status::OK();  // missing never matches
        std::vector<int8_t>& ok = code_ok_[i];
        if (ok.empty()) ok.assign(c.dict.size(), -1);
        if (ok[code] < 0) {
          ok[code] = std::find(f->values.begin(), f->values.end(), c.dict[code]) != f->values.end();
        }
        if (!ok[code]) return Status::OK();
        continue;
      }
      bool present;
      row_.SetRow(r);
      RETURN_IF_ERROR(row_.Get(k, &scratch_, &present));
      if (!present || std::find(f->values.begin(), f->values.end(), scratch_) == f->values.end()) {
        return Status::OK();
      }
    }
    *pass = true;
    return Status::OK();
  }

  // The interned id of group key g's value on block row r.
  Status BlockKeyId(const DecodedBlock& b, size_t g, size_t r, uint32_t* vid) {
    const KeySpec& k = group_[g];
    switch (k.kind) {
      case KeyKind::kColumn:
      case KeyKind::kDim: {
        const StringColumn& c = k.kind == KeyKind::kDim ? b.dimensions : ColumnOf(b, k.column);
        const uint32_t code = c.codes[r];
        std::vector<uint32_t>& cv = code_vid_[g];
        if (cv.empty()) cv.assign(c.dict.size() + 1, kUnset);
        const size_t slot = code == StringColumn::kNullCode ? c.dict.size() : code;
        if (cv[slot] == kUnset) {
          // A missing column or dimension groups as "".
          bool present = code != StringColumn::kNullCode;
          if (present && k.kind == KeyKind::kColumn) {
            cv[slot] = interners_[g].Id(c.dict[code]);
          } else {
            if (present) {
              row_.SetRow(r);
              RETURN_IF_ERROR(row_.Get(k, &scratch_, &present));
            }
            if (!present) scratch_.clear();
            cv[slot] = interners_[g].Id(scratch_);
          }
        }
        *vid = cv[slot];
        return Status::OK();
      }
      case KeyKind::kKind: {
        uint32_t& v = kind_vid_[b.kind[r] % 3][g];
        if (v == kUnset) v = interners_[g].Id(EventKindName(static_cast<EventKind>(b.kind[r])));
        *vid = v;
        return Status::OK();
      }
      default: {
        const int64_t ts = b.timestamp_ms[r];
        const int64_t bucket = TimeBucket(k.kind, ts);
        auto& last = last_bucket_[g];
        if (last.first && last.second.first == bucket) {
          *vid = last.second.second;
          return Status::OK();
        }
        auto [it, inserted] = bucket_vid_[g].try_emplace(bucket, 0);
        if (inserted) it->second = interners_[g].Id(TimeKey(k.kind, ts));
        last = {true, {bucket, it->second}};
        *vid = it->second;
        return Status::OK();
      }
    }
  }

  const std::vector<KeySpec>& group_;
  const std::vector<std::pair<KeySpec, const QueryFilter*>>& residual_;
  const bool minmax_;
  std::vector<Interner> interners_;
  std::vector<const std::vector<std::string>*> key_values_;  // &interners_[g].values
  std::vector<std::vector<uint32_t>> code_vid_;  // per block: column and dimension keys
  std::vector<std::vector<int8_t>> code_ok_;     // per block: column filters
  std::vector<uint32_t> kind_vid_[3];            // per kind value, per key
  std::vector<std::pair<bool, std::pair<int64_t, uint32_t>>> last_bucket_;  // time keys
  std::vector<std::unordered_map<int64_t, uint32_t>> bucket_vid_;
  std::vector<uint32_t> cur_;
  std::vector<const uint32_t*> key_codes_;  // per block: the codes of column and dimension keys
  // Groups live in store_; a group is found through exactly one of the indexes below,
  // chosen by the number of keys (GroupOf).
  std::deque<Acc> store_;
  Acc* single_ = nullptr;                             // no keys
  std::vector<Acc*> by_vid_;                          // one key: by value id
  std::unordered_map<uint64_t, Acc*> packed_groups_;  // two or three keys: ids packed
  std::unordered_map<std::string, Acc*> by_key_;      // otherwise: ids as bytes
  std::vector<uint32_t> event_vids_;
  RowAccess row_;
  std::string scratch_, gkey_;
  uint64_t rows_scanned_ = 0;
};

}  // namespace

Status DBImpl::Query(const QueryRequest& req, QueryResult* result) {
  *result = QueryResult();
  if (req.source == QuerySource::kRollup) {
    return Status::NotSupported("source=rollup: rollups are not built yet; use auto or raw");
  }
  if (req.columns.empty()) return Status::InvalidArgument("a query needs at least one field");
  if (req.from_ms && req.to_ms && *req.from_ms > *req.to_ms) {
    return Status::InvalidArgument("from is after to");
  }
  if (req.as_of_seq && *req.as_of_seq > LastSequence()) {
    return Status::InvalidArgument("as_of is above the latest committed sequence");
  }
  std::vector<KeySpec> group(req.group_by.size());
  ColumnMask cols = ColumnBit(Column::kQuantity);
  for (size_t i = 0; i < req.group_by.size(); i++) {
    ASSIGN_OR_RETURN(group[i], ParseKey(req.group_by[i]));
    cols |= ColumnsFor(group[i]);
  }
  // Output columns: keys must be group keys.
  std::vector<int> col_group(req.columns.size(), -1);
  for (size_t c = 0; c < req.columns.size(); c++) {
    if (req.columns[c].is_metric) continue;
    auto it = std::find(req.group_by.begin(), req.group_by.end(), req.columns[c].key);
    if (it == req.group_by.end()) {
      return Status::InvalidArgument("selected key '" + req.columns[c].key +
                                     "' is not a group key");
    }
    col_group[c] = static_cast<int>(it - req.group_by.begin());
  }
  // Filters: the ones the scan can prune with go into the ReadFilter too.
  ReadFilter rf;
  rf.account_id = req.account_id;
  rf.from_ms = req.from_ms;
  rf.to_ms = req.to_ms;
  rf.as_of_seq = req.as_of_seq;
  rf.as_of_ms = req.as_of_ms;
  std::vector<std::pair<KeySpec, const QueryFilter*>> residual;
  for (const QueryFilter& f : req.filters) {
    ASSIGN_OR_RETURN(KeySpec k, ParseKey(f.key));
    if (f.values.empty()) {
      // Matches nothing: answer over no events.
      rf.from_ms = 0;
      rf.to_ms = 0;
      continue;
    }
    // A filter the ReadFilter applies exactly (the first one on product, meter or model; an
    // account equal to the request's) needs no second check per row.
    bool pushed = false;
    auto push = [&](std::vector<std::string>* list) {
      if (!list->empty()) return;
      *list = f.values;
      pushed = true;
    };
    if (k.kind == KeyKind::kColumn && k.column == Column::kProductId) push(&rf.product_ids);
    if (k.kind == KeyKind::kColumn && k.column == Column::kMeterId) push(&rf.meter_ids);
    if (k.kind == KeyKind::kColumn && k.column == Column::kModelId) push(&rf.model_ids);
    if (k.kind == KeyKind::kColumn && k.column == Column::kAccountId && f.values.size() == 1) {
      if (rf.account_id && *rf.account_id != f.values[0]) {
        rf.from_ms = 0;
        rf.to_ms = 0;
      }
      pushed = !rf.account_id || *rf.account_id == f.values[0];
      rf.account_id = f.values[0];
    }
    cols |= ColumnsFor(k);
    if (!pushed) residual.push_back({k, &f});
  }
  if (rf.from_ms && rf.to_ms && *rf.from_ms == 0 && *rf.to_ms == 0 && req.from_ms) {
    rf.from_ms = req.from_ms;
    rf.to_ms = req.from_ms;
  }

  // Every thread of the scan checks the one deadline; a deadline already past fails here,
  // before anything is read.
  ReadDeadline deadline(req.deadline);
  RETURN_IF_ERROR(deadline.Check());
  Snapshot snap = GetSnapshot(req.as_of_seq);
  result->snapshot_sequence = snap.seq;
  bool minmax = false;
  for (const QueryColumn& c : req.columns) {
    minmax |= c.is_metric && (c.func == QueryFunc::kMin || c.func == QueryFunc::kMax);
  }
  // A scan without an account (every bucket) runs on up to kMaxScanThreads threads, each over
  // its share of the segments with its own aggregator; the partial groups are merged after.
  size_t parts = 1;
  if (!rf.account_id && snap.version->segments.size() >= kMinSegmentsPerThread * 2) {
    parts = std::min<size_t>({kMaxScanThreads, std::max(1u, std::thread::hardware_concurrency()),
                              snap.version->segments.size() / kMinSegmentsPerThread});
  }
  // With account_id among the group keys the threads split the segments by bucket: an
  // account lives in one bucket, so their groups are disjoint and need no merge (which
  // interned every group of the other threads again, serially: ~100K groups at 100K
  // accounts). Memtable events (of any bucket) are added after the threads, each to the
  // aggregator of its account's bucket.
  const bool disjoint = parts > 1 && std::any_of(group.begin(), group.end(), [](const KeySpec& k) {
                          return k.kind == KeyKind::kColumn && k.column == Column::kAccountId;
                        });
  std::vector<std::unique_ptr<Aggregator>> aggs;
  std::vector<Status> statuses(parts);
  for (size_t p = 0; p < parts; p++)
    aggs.push_back(std::make_unique<Aggregator>(group, residual, minmax));
  auto run_part = [&](size_t p) {
    Aggregator& agg = *aggs[p];
    Status row_status;
    ScanPart part;
    part.part = p;
    part.parts = parts;
    part.deadline = &deadline;
    part.by_bucket = disjoint;
    Status s = ScanBlocks(
        rf, cols, snap,
        [&](const DecodedBlock& b, const uint32_t* rows, size_t n) {
          row_status = agg.ConsumeBlock(b, rows, n);
          return row_status.ok();
        },
        [&](const Event& e) {
          row_status = agg.ConsumeEvent(e);
          return row_status.ok();
        },
        part);
    statuses[p] = s.ok() ? row_status : s;
  };
  std::vector<std::thread> pool;
  for (size_t p = 1; p < parts; p++) pool.emplace_back(run_part, p);
  run_part(0);
  for (auto& t : pool) t.join();
  for (const Status& s : statuses) RETURN_IF_ERROR(s);
  std::vector<const Acc*> accs;
  if (disjoint) {
    const uint32_t buckets = snap.version->manifest.bucket_count;
    Status row_status;
    ScanPart mem;
    mem.memtables_only = true;
    mem.deadline = &deadline;
    RETURN_IF_ERROR(ScanBlocks(
        rf, cols, snap, [](const DecodedBlock&, const uint32_t*, size_t) { return true; },
        [&](const Event& e) {
          row_status = aggs[Hash64(e.account_id) % buckets % parts]->ConsumeEvent(e);
          return row_status.ok();
        },
        mem));
    RETURN_IF_ERROR(row_status);
    size_t total = 0;
    for (const auto& agg : aggs) total += agg->groups().size();
    accs.reserve(total);
    for (const auto& agg : aggs) {
      result->rows_scanned += agg->rows_scanned();
      for (const Acc& a : agg->groups()) accs.push_back(&a);
    }
  } else {
    for (size_t p = 1; p < parts; p++) aggs[0]->Merge(*aggs[p]);
    result->rows_scanned = aggs[0]->rows_scanned();
    if (group.empty()) aggs[0]->EnsureNoKeyGroup();  // an answer without keys has one row
    const std::deque<Acc>& groups = aggs[0]->groups();
    accs.reserve(groups.size());
    for (const Acc& a : groups) accs.push_back(&a);
  }
  RETURN_IF_ERROR(deadline.Check());

  result->names.clear();
  for (const QueryColumn& c : req.columns) result->names.push_back(c.name);
  // The metric values of every group, in one flat array (a sum that overflows fails the query
  // even when its group is not returned); key strings are copied only into the rows returned
  // (a top 100 of 100K groups built 100K rows before).
  const size_t ncols = req.columns.size();
  std::vector<QueryValue> metrics(accs.size() * ncols);
  for (size_t x = 0; x < accs.size(); x++) {
    const Acc* a = accs[x];
    for (size_t c = 0; c < ncols; c++) {
      const QueryColumn& col = req.columns[c];
      if (!col.is_metric) continue;
      QueryValue& v = metrics[x * ncols + c];
      switch (col.func) {
        case QueryFunc::kSum: {
          auto s = a->sum.Value();
          if (!s) return Status::Overflow("sum does not fit in ±(2^127-1)");
          v.type = QueryValue::Type::kInt;
          v.num = *s;
          break;
        }
        case QueryFunc::kCount:
          v.type = QueryValue::Type::kCount;
          v.num = a->count;
          break;
        case QueryFunc::kMin:
        case QueryFunc::kMax:
          if (a->count == 0) break;  // null
          v.type = QueryValue::Type::kInt;
          v.num = col.func == QueryFunc::kMin ? a->min : a->max;
          break;
      }
    }
  }

  // Order: explicit terms, ties (and no terms) by the group values.
  struct Term {
    int column = -1;  // output column
    int group = -1;   // or a group key
    bool desc = false;
  };
  std::vector<Term> terms;
  for (const QueryOrder& o : req.order_by) {
    Term t;
    t.desc = o.desc;
    for (size_t c = 0; c < req.columns.size(); c++) {
      if (req.columns[c].name == o.name) t.column = static_cast<int>(c);
    }
    if (t.column < 0) {
      auto it = std::find(req.group_by.begin(), req.group_by.end(), o.name);
      if (it == req.group_by.end()) {
        return Status::InvalidArgument("order_by '" + o.name + "' is neither a field nor a group key");
      }
      t.group = static_cast<int>(it - req.group_by.begin());
    }
    terms.push_back(t);
  }
  std::vector<size_t> idx(accs.size());
  for (size_t i = 0; i < idx.size(); i++) idx[i] = i;
  auto group_cmp = [&](size_t x, size_t y) {
    for (size_t g = 0; g < group.size(); g++) {
      int c = CompareKey(group[g], accs[x]->value(g), accs[y]->value(g));
      if (c) return c;
    }
    return 0;
  };
  size_t n = idx.size();
  if (req.limit && *req.limit < n) n = static_cast<size_t>(*req.limit);
  // Only the first n in order are needed (top-N: O(groups * log n)).
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(),
                    [&](size_t x, size_t y) {
                      for (const Term& t : terms) {
                        int c;
                        if (t.group >= 0) {
                          c = CompareKey(group[t.group], accs[x]->value(t.group),
                                         accs[y]->value(t.group));
                        } else if (!req.columns[t.column].is_metric) {
                          int g = col_group[t.column];
                          c = CompareKey(group[g], accs[x]->value(g), accs[y]->value(g));
                        } else {
                          c = CompareValue(metrics[x * ncols + t.column],
                                           metrics[y * ncols + t.column]);
                        }
                        if (c) return t.desc ? c > 0 : c < 0;
                      }
                      return group_cmp(x, y) < 0;
                    });
  result->rows.reserve(n);
  for (size_t i = 0; i < n; i++) {
    const size_t x = idx[i];
    std::vector<QueryValue> out(ncols);
    for (size_t c = 0; c < ncols; c++) {
      if (req.columns[c].is_metric) {
        out[c] = std::move(metrics[x * ncols + c]);
      } else {
        out[c].type = QueryValue::Type::kString;
        out[c].str = accs[x]->value(static_cast<size_t>(col_group[c]));
      }
    }
    result->rows.push_back(std::move(out));
  }
  return Status::OK();
}

}  // namespace usagedb
