// Payloads of WAL records (docs/format.md, "WAL unit payload").
//
//   unit    := seq: varint64 | ingested_at_ms: zigzag varint64 | request_time_ms: zigzag
//              varint64 | n_events: varint64 | (event_record digest)* | n_conflicts: varint64 |
//              conflict*
//   digest  := lo: fixed64 | hi: fixed64   (the event's PayloadDigest, so replay need not
//              recompute it)
//   conflict:= reason: u8 | stored_ingested_at_ms: zigzag varint64 | event_record
//   void    := seq: varint64            (the unit that failed and must never be replayed)
//
// event_record is the model's binary event codec (EncodeEventBinary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "memtable/memtable.h"
#include "model/event_codec.h"
#include "usagedb/event.h"
#include "usagedb/status.h"

namespace usagedb {

struct UnitHeader {
  uint64_t seq = 0;
  int64_t ingested_at_ms = 0;
  int64_t request_time_ms = 0;
};

// The part of a unit that each writer encodes in parallel, before the group-commit leader
// knows its sequence: events and conflicts (their commit_seq/ingested_at are not encoded).
struct UnitBody {
  std::string bytes;
  size_t skip = 0;  // the body is bytes[skip, end) (UnitBodyBuilder leaves room in front)
  std::string_view view() const { return std::string_view(bytes).substr(skip); }
};
// REQUIRES: digests.size() == events.size(), digests[i] == PayloadDigest(*events[i]).
// When `rows` is given it receives, per event, where its record lies in body->bytes (offsets
// relative to the body) and the facts the memtable keeps (timestamp, account hash, digest;
// id_hash from `id_hashes` when given, REQUIRES then id_hashes->size() == events.size()).
void EncodeUnitBody(const std::vector<const Event*>& events, const std::vector<Digest128>& digests,
                    const std::vector<const ConflictEntry*>& conflicts, UnitBody* body,
                    std::vector<RowMeta>* rows = nullptr,
                    const std::vector<uint64_t>* id_hashes = nullptr);
// Builds the same bytes as EncodeUnitBody while the writer classifies its batch: each
// candidate event's record is encoded together with its payload digest (one pass), and a
// candidate that ends up not accepted is overwritten by the next one. Usage per batch:
// Encode(e) -> digest; Accept(...) if accepted; ...; Finish(conflicts).
class UnitBodyBuilder {
 public:
  UnitBodyBuilder(UnitBody* body, std::vector<RowMeta>* rows, size_t max_events);
  // Encodes e's record after the accepted ones (replacing a candidate not accepted) and
  // returns PayloadDigest(e).
  Digest128 Encode(const Event& e);
  // Keeps the record the last Encode(e) wrote as the next accepted event.
  void Accept(const Event& e, const Digest128& digest, uint64_t id_hash);
  size_t accepted() const { return rows_->size(); }
  // Drops a pending candidate, appends the conflicts and puts the event count in front (the
  // unused room before it is skipped, not moved: see UnitBody::skip).
  void Finish(const std::vector<const ConflictEntry*>& conflicts);

 private:
  static constexpr size_t kCountRoom = 10;  // bytes kept in front for the count varint
  UnitBody* body_;
  std::vector<RowMeta>* rows_;
  size_t committed_end_ = kCountRoom;  // end of the last accepted event's digest
};

// header + body = the unit payload.
void EncodeUnitHeader(const UnitHeader& header, std::string* dst);

struct DecodedUnit {
  UnitHeader header;
  std::vector<Event> events;       // commit_seq / ingested_at_ms filled from the header
  std::vector<Digest128> digests;  // one per event
  // Where each event's binary record lies in the payload: (offset, length).
  std::vector<std::pair<uint32_t, uint32_t>> record_spans;
  std::vector<ConflictEntry> conflicts;
};
Status DecodeUnit(std::string_view payload, DecodedUnit* unit);

// As DecodeUnit, but events are only peeked (id, account, timestamp, kind as views into the
// payload), which is all replay needs to rebuild the memtable. Conflicts are decoded fully.
struct PeekedUnit {
  UnitHeader header;
  std::vector<EventPeek> events;
  std::vector<Digest128> digests;
  std::vector<std::pair<uint32_t, uint32_t>> record_spans;
  std::vector<ConflictEntry> conflicts;
};
Status PeekUnit(std::string_view payload, PeekedUnit* unit);

void EncodeVoid(uint64_t seq, std::string* dst);
Status DecodeVoid(std::string_view payload, uint64_t* seq);

}  // namespace usagedb
