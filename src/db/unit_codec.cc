#include "db/unit_codec.h"

#include <cstring>

#include "model/event_codec.h"
#include "util/coding.h"
#include "util/hash.h"

namespace usagedb {

void EncodeUnitBody(const std::vector<const Event*>& events, const std::vector<Digest128>& digests,
                    const std::vector<const ConflictEntry*>& conflicts, UnitBody* body,
                    std::vector<RowMeta>* rows, const std::vector<uint64_t>* id_hashes) {
  std::string& b = body->bytes;
  body->skip = 0;
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
      if (id_hashes) m.id_hash = (*id_hashes)[i];
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

UnitBodyBuilder::UnitBodyBuilder(UnitBody* body, std::vector<RowMeta>* rows, size_t max_events)
    : body_(body), rows_(rows) {
  body_->bytes.clear();
  body_->skip = 0;
  body_->bytes.reserve(kCountRoom + max_events * 200);
  body_->bytes.resize(kCountRoom);
  rows_->clear();
  rows_->reserve(max_events);
}

Digest128 UnitBodyBuilder::Encode(const Event& e) {
  // A candidate not accepted is overwritten. (Writing in place into a body kept larger than
  // its content was measured and rejected: zero-filling the growth costs more than the
  // per-event resize; docs/parts/ingest.md.)
  body_->bytes.resize(committed_end_);
  return EncodeEventBinaryAndDigest(e, &body_->bytes);
}

void UnitBodyBuilder::Accept(const Event& e, const Digest128& digest, uint64_t id_hash) {
  std::string& b = body_->bytes;
  RowMeta m;
  m.offset = static_cast<uint32_t>(committed_end_);  // made body-relative by Finish
  m.length = static_cast<uint32_t>(b.size() - committed_end_);
  m.timestamp_ms = e.timestamp_ms;
  m.account_hash = Hash64(e.account_id);
  m.digest = digest;
  m.kind = e.kind;
  m.id_hash = id_hash;
  rows_->push_back(m);
  PutFixed64(&b, digest.lo);
  PutFixed64(&b, digest.hi);
  committed_end_ = b.size();
}

void UnitBodyBuilder::Finish(const std::vector<const ConflictEntry*>& conflicts) {
  std::string& b = body_->bytes;
  b.resize(committed_end_);
  PutVarint64(&b, conflicts.size());
  for (const ConflictEntry* c : conflicts) {
    b.push_back(static_cast<char>(c->reason));
    PutVarint64(&b, ZigZagEncode64(c->stored_ingested_at_ms));
    EncodeEventBinary(c->event, &b);
  }
  // The count goes right before the first record; the unused room in front is cut off.
  std::string count;
  PutVarint64(&count, rows_->size());
  const size_t cut = kCountRoom - count.size();
  std::memcpy(b.data() + cut, count.data(), count.size());
  body_->skip = cut;
  for (RowMeta& m : *rows_) m.offset -= static_cast<uint32_t>(cut);
}

void EncodeUnitHeader(const UnitHeader& h, std::string* dst) {
  PutVarint64(dst, h.seq);
  PutVarint64(dst, ZigZagEncode64(h.ingested_at_ms));
  PutVarint64(dst, ZigZagEncode64(h.request_time_ms));
}

namespace {

// The unit grammar once, for both the full decoder and the peeking one: `decode_event` reads
// one event record into an EventT (an Event or an EventPeek).
template <typename EventT, typename DecodeEventFn>
Status DecodeUnitParts(std::string_view payload, UnitHeader* header, std::vector<EventT>* events,
                       std::vector<Digest128>* digests,
                       std::vector<std::pair<uint32_t, uint32_t>>* spans,
                       std::vector<ConflictEntry>* conflicts, DecodeEventFn decode_event) {
  Decoder d(payload);
  uint64_t ing, req, n;
  if (!d.GetVarint64(&header->seq) || !d.GetVarint64(&ing) || !d.GetVarint64(&req) ||
      !d.GetVarint64(&n)) {
    return Status::Corruption("bad WAL unit header");
  }
  header->ingested_at_ms = ZigZagDecode64(ing);
  header->request_time_ms = ZigZagDecode64(req);
  if (n > payload.size()) return Status::Corruption("bad WAL unit event count");
  events->clear();
  events->resize(n);
  digests->resize(n);
  spans->resize(n);
  for (uint64_t i = 0; i < n; i++) {
    const size_t start = static_cast<size_t>(d.pos() - payload.data());
    bool ok = decode_event(&d, &(*events)[i]);
    (*spans)[i] = {static_cast<uint32_t>(start),
                   static_cast<uint32_t>(d.pos() - payload.data() - start)};
    if (!ok || !d.GetFixed64(&(*digests)[i].lo) || !d.GetFixed64(&(*digests)[i].hi)) {
      return Status::Corruption("bad event record in WAL unit");
    }
  }
  if (!d.GetVarint64(&n) || n > payload.size()) {
    return Status::Corruption("bad WAL unit conflict count");
  }
  conflicts->clear();
  conflicts->resize(n);
  for (uint64_t i = 0; i < n; i++) {
    ConflictEntry& c = (*conflicts)[i];
    uint8_t reason;
    uint64_t stored;
    if (!d.GetByte(&reason) || (reason != 1 && reason != 2) || !d.GetVarint64(&stored) ||
        !DecodeEventBinary(&d, &c.event)) {
      return Status::Corruption("bad conflict record in WAL unit");
    }
    c.reason = static_cast<ConflictReason>(reason);
    c.stored_ingested_at_ms = ZigZagDecode64(stored);
    c.commit_seq = header->seq;
    c.request_time_ms = header->request_time_ms;
  }
  if (!d.empty()) return Status::Corruption("trailing bytes in WAL unit");
  return Status::OK();
}

}  // namespace

Status DecodeUnit(std::string_view payload, DecodedUnit* unit) {
  RETURN_IF_ERROR(DecodeUnitParts(payload, &unit->header, &unit->events, &unit->digests,
                                  &unit->record_spans, &unit->conflicts,
                                  [](Decoder* d, Event* e) { return DecodeEventBinary(d, e); }));
  for (Event& e : unit->events) {
    e.commit_seq = unit->header.seq;
    e.ingested_at_ms = unit->header.ingested_at_ms;
  }
  return Status::OK();
}

Status PeekUnit(std::string_view payload, PeekedUnit* unit) {
  return DecodeUnitParts(payload, &unit->header, &unit->events, &unit->digests, &unit->record_spans,
                         &unit->conflicts,
                         [](Decoder* d, EventPeek* e) { return PeekEventBinary(d, e); });
}

void EncodeVoid(uint64_t seq, std::string* dst) { PutVarint64(dst, seq); }

Status DecodeVoid(std::string_view payload, uint64_t* seq) {
  Decoder d(payload);
  if (!d.GetVarint64(seq) || !d.empty()) return Status::Corruption("bad WAL void record");
  return Status::OK();
}

}  // namespace usagedb
