// The raw audit listing with cursors (SPEC §3.3).
//
// Cursor (opaque to clients): base64url of
//   "v1" | seq: varint64 | last_timestamp_ms: zigzag varint64 | last_event_id: bytes |
//   filter_fingerprint: fixed64
// seq is the first page's snapshot sequence: every page reads that snapshot, so the listing is
// one consistent view. The fingerprint (XXH3 of the request's account, from, to and filters)
// detects a cursor reused with other filters.
#include <algorithm>

#include "db/db_impl.h"
#include "model/event_codec.h"
#include <tuple>
#include "util/coding.h"
#include "util/hash.h"

namespace usagedb {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64[(buf >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kB64[(buf << (6 - bits)) & 63]);
  return out;
}

bool FromBase64Url(std::string_view in, std::string* out) {
  out->clear();
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = std::find(kB64, kB64 + 64, c);
    if (p == kB64 + 64 || c == '\0') return false;
    buf = (buf << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buf >> bits) & 0xff));
    }
  }
  return true;
}

uint64_t Fingerprint(const ReadFilter& f) {
  std::string s;
  auto put_opt = [&](bool has, std::string_view v) {
    s.push_back(has ? 1 : 0);
    PutLengthPrefixed(&s, v);
  };
  put_opt(f.account_id.has_value(), f.account_id.value_or(""));
  put_opt(f.from_ms.has_value(), f.from_ms ? std::to_string(*f.from_ms) : "");
  put_opt(f.to_ms.has_value(), f.to_ms ? std::to_string(*f.to_ms) : "");
  for (const auto* list : {&f.product_ids, &f.meter_ids, &f.model_ids}) {
    std::vector<std::string> v = *list;
    std::sort(v.begin(), v.end());
    PutVarint64(&s, v.size());
    for (const auto& x : v) PutLengthPrefixed(&s, x);
  }
  std::vector<int> kinds;
  for (EventKind k : f.kinds) kinds.push_back(static_cast<int>(k));
  std::sort(kinds.begin(), kinds.end());
  for (int k : kinds) s.push_back(static_cast<char>(k));
  return Hash64(s);
}

bool Before(const Event& a, int64_t ts, std::string_view id) {
  return a.timestamp_ms < ts || (a.timestamp_ms == ts && std::string_view(a.event_id) <= id);
}

}  // namespace

Status DBImpl::ListEvents(const ListRequest& req, ListResult* result) {
  *result = ListResult();
  if (req.limit < 1 || req.limit > 10000) {
    return Status::InvalidArgument("limit must be between 1 and 10000");
  }
  ReadFilter f = req.filter;
  bool resume = false;
  int64_t last_ts = 0;
  std::string last_id;
  if (!req.cursor.empty()) {
    std::string raw;
    uint64_t seq, ts, fp;
    std::string_view id;
    if (!FromBase64Url(req.cursor, &raw) || raw.size() < 2 || raw.compare(0, 2, "v1") != 0) {
      return Status::InvalidArgument("malformed cursor");
    }
    Decoder d(std::string_view(raw).substr(2));
    if (!d.GetVarint64(&seq) || !d.GetVarint64(&ts) || !d.GetLengthPrefixed(&id) ||
        !d.GetFixed64(&fp) || !d.empty()) {
      return Status::InvalidArgument("malformed cursor");
    }
    if (fp != Fingerprint(req.filter)) {
      return Status::InvalidArgument(
          "cursor_mismatch: a cursor must be used with the same from, to and filters");
    }
    if (req.filter.as_of_seq && *req.filter.as_of_seq != seq) {
      return Status::InvalidArgument("cursor_mismatch: as_of differs from the cursor's");
    }
    f.as_of_seq = seq;
    resume = true;
    last_ts = ZigZagDecode64(ts);
    last_id = std::string(id);
  } else if (f.as_of_seq && *f.as_of_seq > LastSequence()) {
    return Status::InvalidArgument("as_of is above the latest committed sequence");
  }
  // One pass keeps the `limit` smallest (timestamp, id) after the cursor, plus whether more
  // exist. A max-heap bounds memory by the page size.
  auto less = [](const Event& a, const Event& b) {
    return a.timestamp_ms != b.timestamp_ms ? a.timestamp_ms < b.timestamp_ms
                                            : a.event_id < b.event_id;
  };
  std::vector<Event> heap;
  bool more = false;
  ReadDeadline deadline(req.deadline);
  RETURN_IF_ERROR(deadline.Check());
  Snapshot snap = GetSnapshot(f.as_of_seq);
  result->snapshot_sequence = snap.seq;
  Event scratch;
  Status row_status;
  auto consider = [&](const Event& e) {
    if (resume && Before(e, last_ts, last_id)) return;
    if (heap.size() < req.limit) {
      heap.push_back(e);
      std::push_heap(heap.begin(), heap.end(), less);
      return;
    }
    more = true;
    if (less(e, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), less);
      heap.back() = e;
      std::push_heap(heap.begin(), heap.end(), less);
    }
  };
  RETURN_IF_ERROR(ScanInternal(
      f, kAllColumns, snap,
      [&](const DecodedBlock& b, size_t r) {
        row_status = b.MaterializeRow(r, &scratch);
        if (!row_status.ok()) return false;
        consider(scratch);
        return true;
      },
      [&](const Event& e) {
        consider(e);
        return true;
      },
      /*only_segment=*/nullptr, /*on_new_block=*/nullptr, &deadline));
  RETURN_IF_ERROR(row_status);
  std::sort_heap(heap.begin(), heap.end(), less);
  result->events = std::move(heap);
  if (more && !result->events.empty()) {
    const Event& last = result->events.back();
    std::string raw = "v1";
    PutVarint64(&raw, snap.seq);
    PutVarint64(&raw, ZigZagEncode64(last.timestamp_ms));
    PutLengthPrefixed(&raw, last.event_id);
    PutFixed64(&raw, Fingerprint(req.filter));
    result->next_cursor = Base64Url(raw);
  }
  return Status::OK();
}

}  // namespace usagedb

namespace usagedb {

// Conflict listing: every entry of the committed conflict-log files and of the live
// memtables, ordered by (request_time_ms, commit_sequence, position in its unit). The cursor
// is the position of the last entry returned (entries never change once written).
Status DBImpl::ListConflicts(const ConflictListRequest& req, ConflictListResult* result) {
  *result = ConflictListResult();
  if (req.limit < 1 || req.limit > 10000) {
    return Status::InvalidArgument("limit must be between 1 and 10000");
  }
  if (req.reason && *req.reason != "conflict" && *req.reason != "period_closed") {
    return Status::InvalidArgument("reason must be conflict or period_closed");
  }
  if (req.from_ms && req.to_ms && *req.from_ms > *req.to_ms) {
    return Status::InvalidArgument("from is after to");
  }
  struct Key {
    int64_t t;
    uint64_t seq;
    uint64_t n;
    bool operator<(const Key& o) const {
      return std::tie(t, seq, n) < std::tie(o.t, o.seq, o.n);
    }
  };
  std::optional<Key> after;
  if (!req.cursor.empty()) {
    std::string raw;
    uint64_t t, seq, n;
    if (!FromBase64Url(req.cursor, &raw) || raw.size() < 2 || raw.compare(0, 2, "c1") != 0) {
      return Status::InvalidArgument("malformed cursor");
    }
    Decoder d(std::string_view(raw).substr(2));
    if (!d.GetVarint64(&t) || !d.GetVarint64(&seq) || !d.GetVarint64(&n) || !d.empty()) {
      return Status::InvalidArgument("malformed cursor");
    }
    after = Key{ZigZagDecode64(t), seq, n};
  }
  ReadDeadline deadline(req.deadline);
  RETURN_IF_ERROR(deadline.Check());
  std::vector<std::pair<Key, ConflictRecord>> all;
  auto add = [&](const ConflictEntry& c, uint64_t n) {
    std::string reason = c.reason == ConflictReason::kConflict ? "conflict" : "period_closed";
    if (req.reason && *req.reason != reason) return;
    if (req.from_ms && c.request_time_ms < *req.from_ms) return;
    if (req.to_ms && c.request_time_ms >= *req.to_ms) return;
    Key k{c.request_time_ms, c.commit_seq, n};
    if (after && !(*after < k)) return;
    all.push_back({k, ConflictRecord{reason, c.commit_seq, c.request_time_ms,
                                      c.stored_ingested_at_ms, c.event}});
  };
  Snapshot snap = GetSnapshot(std::nullopt);
  for (const ConflictLogMeta& m : snap.version->manifest.conflict_logs) {
    RETURN_IF_ERROR(deadline.Check());
    std::string path = Path(kConflictDir) + "/" + wal::WalFileName(m.file_number);
    auto rr = wal::ReadWalFile(fs_, path, /*repair=*/false);
    if (!rr.ok()) {
      Status s = rr.status();
      return s.IsNotFound() ? Status::Corruption("conflict log missing: " + path) : s;
    }
    if (rr->torn_tail) return Status::Corruption(path + ": truncated conflict log");
    uint64_t n = 0;
    for (const wal::Record& rec : rr->records) {
      Decoder d(rec.payload);
      ConflictEntry c;
      uint64_t seq, req_t, stored;
      uint8_t reason;
      if (!d.GetVarint64(&seq) || !d.GetVarint64(&req_t) || !d.GetByte(&reason) ||
          (reason != 1 && reason != 2) || !d.GetVarint64(&stored) ||
          !DecodeEventBinary(&d, &c.event) || !d.empty()) {
        return Status::Corruption(path + ": bad conflict entry");
      }
      c.commit_seq = seq;
      c.request_time_ms = ZigZagDecode64(req_t);
      c.reason = static_cast<ConflictReason>(reason);
      c.stored_ingested_at_ms = ZigZagDecode64(stored);
      add(c, n++);
    }
  }
  for (const auto& mem : snap.version->memtables) {
    RETURN_IF_ERROR(deadline.Check());
    uint64_t n = 0;
    for (const ConflictEntry& c : mem->conflicts_snapshot()) add(c, n++);
  }
  RETURN_IF_ERROR(deadline.Check());
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t take = std::min<size_t>(all.size(), req.limit);
  for (size_t i = 0; i < take; i++) result->conflicts.push_back(std::move(all[i].second));
  if (all.size() > take) {
    const Key& k = all[take - 1].first;
    std::string raw = "c1";
    PutVarint64(&raw, ZigZagEncode64(k.t));
    PutVarint64(&raw, k.seq);
    PutVarint64(&raw, k.n);
    result->next_cursor = Base64Url(raw);
  }
  return Status::OK();
}

}  // namespace usagedb
