#include "db/unit_codec.h"

#include "model/event_codec.h"
#include "util/coding.h"
#include "util/hash.h"

namespace usagedb {

void EncodeUnitBody(const std::vector<const Event*>& events,
                    const std::vector<Digest128>& digests,
                    const std::vector<const ConflictEntry*>& conflicts, UnitBody* body,
                    std::vector<RowMeta>* rows) {
  std::string& b = body->bytes;
  b.clear();
  b.reserve(events.size() * 200);
  PutVarint64(&b, events.size());
  if (rows) {
    rows->clear();
    rows->reserve(events.size());
  }
  for (size_t i = 0; i < events.size(); i++) {
    size_t start = b.size();
    EncodeEventBinary(*events[i], &b);
    if (rows) {
      RowMeta m;
      m.offset = static_cast<uint32_t>(start);
      m.length = static_cast<uint32_t>(b.size() - start);
      m.timestamp_ms = events[i]->timestamp_ms;
      m.account_hash = Hash64(events[i]->account_id);
      m.digest = digests[i];
      m.kind = events[i]->kind;
      rows->push_back(m);
    }
    PutFixed64(&b, digests[i].lo);
    PutFixed64(&b, digests[i].hi);
  }
  PutVarint64(&b, conflicts.size());
  for (const ConflictEntry* c : conflicts) {
    b.push_back(static_cast<char>(c->reason));
    PutVarint64(&b, ZigZagEncode64(c->stored_ingested_at_ms));
    EncodeEventBinary(c->event, &b);
  }
}

void EncodeUnitHeader(const UnitHeader& h, std::string* dst) {
  PutVarint64(dst, h.seq);
  PutVarint64(dst, ZigZagEncode64(h.ingested_at_ms));
  PutVarint64(dst, ZigZagEncode64(h.request_time_ms));
}

Status DecodeUnit(std::string_view payload, DecodedUnit* unit) {
  Decoder d(payload);
  uint64_t ing, req, n;
  if (!d.GetVarint64(&unit->header.seq) || !d.GetVarint64(&ing) || !d.GetVarint64(&req) ||
      !d.GetVarint64(&n)) {
    return Status::Corruption("bad WAL unit header");
  }
  unit->header.ingested_at_ms = ZigZagDecode64(ing);
  unit->header.request_time_ms = ZigZagDecode64(req);
  if (n > payload.size()) return Status::Corruption("bad WAL unit event count");
  unit->events.clear();
  unit->events.resize(n);
  unit->digests.resize(n);
  unit->record_spans.resize(n);
  for (uint64_t i = 0; i < n; i++) {
    Event& e = unit->events[i];
    const size_t start = static_cast<size_t>(d.pos() - payload.data());
    bool ok = DecodeEventBinary(&d, &e);
    unit->record_spans[i] = {static_cast<uint32_t>(start),
                             static_cast<uint32_t>(d.pos() - payload.data() - start)};
    if (!ok || !d.GetFixed64(&unit->digests[i].lo) ||
        !d.GetFixed64(&unit->digests[i].hi)) {
      return Status::Corruption("bad event record in WAL unit");
    }
    e.commit_seq = unit->header.seq;
    e.ingested_at_ms = unit->header.ingested_at_ms;
  }
  if (!d.GetVarint64(&n) || n > payload.size()) {
    return Status::Corruption("bad WAL unit conflict count");
  }
  unit->conflicts.clear();
  unit->conflicts.resize(n);
  for (uint64_t i = 0; i < n; i++) {
    ConflictEntry& c = unit->conflicts[i];
    uint8_t reason;
    uint64_t stored;
    if (!d.GetByte(&reason) || (reason != 1 && reason != 2) || !d.GetVarint64(&stored) ||
        !DecodeEventBinary(&d, &c.event)) {
      return Status::Corruption("bad conflict record in WAL unit");
    }
    c.reason = static_cast<ConflictReason>(reason);
    c.stored_ingested_at_ms = ZigZagDecode64(stored);
    c.commit_seq = unit->header.seq;
    c.request_time_ms = unit->header.request_time_ms;
  }
  if (!d.empty()) return Status::Corruption("trailing bytes in WAL unit");
  return Status::OK();
}

void EncodeVoid(uint64_t seq, std::string* dst) { PutVarint64(dst, seq); }

Status DecodeVoid(std::string_view payload, uint64_t* seq) {
  Decoder d(payload);
  if (!d.GetVarint64(seq) || !d.empty()) return Status::Corruption("bad WAL void record");
  return Status::OK();
}

}  // namespace usagedb
