// The raw query executor (SPEC §3.4, §3.5): group keys, filters, exact metrics, order, limit,
// over one snapshot of segments + memtables.
#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

#include "db/db_impl.h"
#include "model/event_codec.h"
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
    const std::string& canonical = block_->dimensions.Get(row_);
    auto it = dims_by_string_.find(canonical);
    if (it == dims_by_string_.end()) {
      Dims d;
      RETURN_IF_ERROR(ParseCanonicalDimensions(canonical, &d));
      it = dims_by_string_.emplace(canonical, std::move(d)).first;
    }
    *out = &it->second;
    return Status::OK();
  }

  const DecodedBlock* block_ = nullptr;
  const Event* event_ = nullptr;
  size_t row_ = 0;
  std::unordered_map<std::string, Dims> dims_by_string_;
};

struct Acc {
  std::vector<std::string> values;  // group values, in group_by order
  WideSum sum;
  uint64_t count = 0;
  __int128 min = 0, max = 0;
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
    if (k.kind == KeyKind::kColumn && k.column == Column::kProductId) rf.product_ids = f.values;
    if (k.kind == KeyKind::kColumn && k.column == Column::kMeterId) rf.meter_ids = f.values;
    if (k.kind == KeyKind::kColumn && k.column == Column::kModelId) rf.model_ids = f.values;
    if (k.kind == KeyKind::kColumn && k.column == Column::kAccountId && f.values.size() == 1) {
      if (rf.account_id && *rf.account_id != f.values[0]) {
        rf.from_ms = 0;
        rf.to_ms = 0;
      }
      rf.account_id = f.values[0];
    }
    cols |= ColumnsFor(k);
    residual.push_back({k, &f});
  }
  if (rf.from_ms && rf.to_ms && *rf.from_ms == 0 && *rf.to_ms == 0 && req.from_ms) {
    rf.from_ms = req.from_ms;
    rf.to_ms = req.from_ms;
  }

  Snapshot snap = GetSnapshot(req.as_of_seq);
  result->snapshot_sequence = snap.seq;
  std::unordered_map<std::string, Acc> groups;
  RowAccess row;
  std::string scratch, gkey;
  Status row_status;
  // Group values are interned per key; a group is keyed by its values' ids (4 bytes each, so
  // up to three keys stay inside std::string's inline buffer). On segment blocks, column keys
  // and column filters are resolved once per dictionary entry of the block, then per row by
  // code.
  struct Interner {
    std::unordered_map<std::string, uint32_t> ids;
    std::vector<std::string> values;
    uint32_t Id(const std::string& v) {
      auto [it, inserted] = ids.try_emplace(v, static_cast<uint32_t>(values.size()));
      if (inserted) values.push_back(v);
      return it->second;
    }
  };
  constexpr uint32_t kUnset = UINT32_MAX;
  std::vector<Interner> interners(group.size());
  std::vector<std::vector<uint32_t>> code_vid(group.size());   // per block, column keys
  std::vector<std::vector<int8_t>> code_ok(residual.size());   // per block, column filters
  const DecodedBlock* block = nullptr;
  auto column_of = [](const DecodedBlock& b, Column c) -> const StringColumn& {
    switch (c) {
      case Column::kAccountId: return b.account_id;
      case Column::kSubscriptionId: return b.subscription_id;
      case Column::kProductId: return b.product_id;
      case Column::kMeterId: return b.meter_id;
      case Column::kModelId: return b.model_id;
      case Column::kSource: return b.source;
      default: return b.unit;
    }
  };
  auto on_new_block = [&]() {
    for (auto& v : code_vid) v.clear();
    for (auto& v : code_ok) v.clear();
  };
  auto consume = [&](size_t r) -> bool {
    result->rows_scanned++;
    bool present;
    for (size_t i = 0; i < residual.size(); i++) {
      const auto& [k, f] = residual[i];
      if (block && k.kind == KeyKind::kColumn) {
        const StringColumn& c = column_of(*block, k.column);
        uint32_t code = c.codes[r];
        if (code == StringColumn::kNullCode) return true;  // a missing value never matches
        std::vector<int8_t>& ok = code_ok[i];
        if (ok.empty()) ok.assign(c.dict.size(), -1);
        if (ok[code] < 0) {
          ok[code] = std::find(f->values.begin(), f->values.end(), c.dict[code]) != f->values.end();
        }
        if (!ok[code]) return true;
        continue;
      }
      row_status = row.Get(k, &scratch, &present);
      if (!row_status.ok()) return false;
      if (!present || std::find(f->values.begin(), f->values.end(), scratch) == f->values.end()) {
        return true;
      }
    }
    gkey.clear();
    for (size_t g = 0; g < group.size(); g++) {
      const KeySpec& k = group[g];
      uint32_t vid;
      if (block && k.kind == KeyKind::kColumn) {
        const StringColumn& c = column_of(*block, k.column);
        uint32_t code = c.codes[r];
        std::vector<uint32_t>& cv = code_vid[g];
        if (cv.empty()) cv.assign(c.dict.size() + 1, kUnset);
        size_t slot = code == StringColumn::kNullCode ? c.dict.size() : code;
        if (cv[slot] == kUnset) {
          // A missing column groups as "".
          cv[slot] = interners[g].Id(code == StringColumn::kNullCode ? std::string() : c.dict[code]);
        }
        vid = cv[slot];
      } else {
        row_status = row.Get(k, &scratch, &present);
        if (!row_status.ok()) return false;
        if (!present) scratch.clear();  // a missing column or dimension groups as ""
        vid = interners[g].Id(scratch);
      }
      gkey.append(reinterpret_cast<const char*>(&vid), sizeof(vid));
    }
    auto [it, inserted] = groups.try_emplace(gkey);
    Acc& a = it->second;
    if (inserted) {
      a.values.reserve(group.size());
      for (size_t g = 0; g < group.size(); g++) {
        uint32_t vid;
        std::memcpy(&vid, gkey.data() + g * sizeof(vid), sizeof(vid));
        a.values.push_back(interners[g].values[vid]);
      }
    }
    __int128 q = row.quantity();
    a.sum.Add(q);
    if (a.count == 0 || q < a.min) a.min = q;
    if (a.count == 0 || q > a.max) a.max = q;
    a.count++;
    return true;
  };
  RETURN_IF_ERROR(ScanInternal(
      rf, cols, snap,
      [&](const DecodedBlock& b, size_t r) {
        if (block != &b) {
          row.SetBlock(&b);
          block = &b;
        }
        row.SetRow(r);
        return consume(r);
      },
      [&](const Event& e) {
        row.SetEvent(&e);
        block = nullptr;
        return consume(0);
      },
      nullptr, on_new_block));
  RETURN_IF_ERROR(row_status);

  if (group.empty() && groups.empty()) groups.try_emplace(std::string());
  std::vector<const Acc*> accs;
  accs.reserve(groups.size());
  for (const auto& [k, a] : groups) accs.push_back(&a);

  // Materialise rows.
  result->names.clear();
  for (const QueryColumn& c : req.columns) result->names.push_back(c.name);
  std::vector<std::vector<QueryValue>> rows;
  rows.reserve(accs.size());
  for (const Acc* a : accs) {
    std::vector<QueryValue> out(req.columns.size());
    for (size_t c = 0; c < req.columns.size(); c++) {
      QueryValue& v = out[c];
      const QueryColumn& col = req.columns[c];
      if (!col.is_metric) {
        v.type = QueryValue::Type::kString;
        v.str = a->values[static_cast<size_t>(col_group[c])];
        continue;
      }
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
    rows.push_back(std::move(out));
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
  std::vector<size_t> idx(rows.size());
  for (size_t i = 0; i < idx.size(); i++) idx[i] = i;
  auto group_cmp = [&](size_t x, size_t y) {
    for (size_t g = 0; g < group.size(); g++) {
      int c = CompareKey(group[g], accs[x]->values[g], accs[y]->values[g]);
      if (c) return c;
    }
    return 0;
  };
  std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) {
    for (const Term& t : terms) {
      int c;
      if (t.group >= 0) {
        c = CompareKey(group[t.group], accs[x]->values[t.group], accs[y]->values[t.group]);
      } else if (!req.columns[t.column].is_metric) {
        int g = col_group[t.column];
        c = CompareKey(group[g], accs[x]->values[g], accs[y]->values[g]);
      } else {
        c = CompareValue(rows[x][t.column], rows[y][t.column]);
      }
      if (c) return t.desc ? c > 0 : c < 0;
    }
    return group_cmp(x, y) < 0;
  });
  size_t n = idx.size();
  if (req.limit && *req.limit < n) n = static_cast<size_t>(*req.limit);
  result->rows.reserve(n);
  for (size_t i = 0; i < n; i++) result->rows.push_back(std::move(rows[idx[i]]));
  return Status::OK();
}

}  // namespace usagedb
