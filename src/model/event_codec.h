// Event decoding (JSON, SPEC §1), validation, canonical forms and the binary event codec
// used inside WAL units.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "usagedb/event.h"
#include "usagedb/event_view.h"
#include "usagedb/status.h"
#include "util/coding.h"
#include "util/hash.h"

namespace usagedb {

// One event of a request after decoding: either a well-formed Event or a rejection reason
// naming the field and the rule ("quantity: Usage requires quantity >= 0").
struct DecodedEvent {
  Event event;
  std::string event_id_for_report;  // the event_id when it could be read, else ""
  std::string reject_reason;        // empty = the event passed every clock-free §1 rule
  bool ok() const { return reject_reason.empty(); }
};

// Decodes one JSON event object (the bytes of that object only) and checks every §1 rule that
// does not depend on the clock. Never fails as a whole: problems become reject_reason.
// ingested_at_ms in the input is ignored.
DecodedEvent DecodeEventJson(std::string_view json_object);

// Decodes a request body `{"events": [...]}`. Returns InvalidArgument when the body is not
// JSON or not an object with an `events` array (the batch fails). Each element becomes one
// DecodedEvent (a non-object element is a rejected event).
Status DecodeBatchJson(std::string_view body, std::vector<DecodedEvent>* out);

// Bytes past the end of a body that simdjson may read (never interprets).
inline constexpr size_t kJsonPadding = 64;

struct BatchDecodeOptions {
  // When true the caller promises that kJsonPadding bytes after body.data() + body.size()
  // are readable (any content); the body is then parsed in place with no copy. Otherwise it
  // is copied once into a padded buffer.
  bool body_is_padded = false;
  // More events than this → Status::Aborted("too_many_events: ...") and *out is cleared
  // (the server answers 413 too_many_events). Decoding stops as soon as it is exceeded.
  size_t max_events = std::numeric_limits<size_t>::max();
};

// As DecodeBatchJson above (which uses default options); *out is replaced.
Status DecodeBatchJson(std::string_view body, const BatchDecodeOptions& options,
                       std::vector<DecodedEvent>* out);

// Decodes an NDJSON body: each non-empty line (after skipping lines of only JSON whitespace,
// a lone "\r" included) is one event; a line that is not a JSON object is a rejected event
// with reason "invalid JSON: ...".
void DecodeBatchNdjson(std::string_view body, std::vector<DecodedEvent>* out);
// As above with options; fails only with Aborted("too_many_events: ...") (*out cleared).
Status DecodeBatchNdjson(std::string_view body, const BatchDecodeOptions& options,
                         std::vector<DecodedEvent>* out);

// Checks the clock-free §1 rules on an already-built Event (the embedded API path).
// Returns "" when valid, else the reason. Sorts/validates dimensions in place.
std::string ValidateEvent(Event* event);

// Canonical dimensions string (SPEC §1): compact JSON, keys sorted by bytes, `{}` when empty.
std::string CanonicalDimensions(const std::vector<std::pair<std::string, std::string>>& dims);
// Parses a canonical dimensions string back (used when reading segments).
Status ParseCanonicalDimensions(std::string_view s,
                                std::vector<std::pair<std::string, std::string>>* out);

// Digest of the canonical payload (every field except ingested_at_ms / commit_seq, normalised
// as SPEC §1 says). Equal digests = same payload (128-bit XXH3 over a canonical byte string).
Digest128 PayloadDigest(const Event& event);

// Binary event codec (docs/format.md "Event record"): every field except ingested_at_ms and
// commit_seq, which the enclosing WAL unit carries.
void EncodeEventBinary(const Event& event, std::string* dst);
// EncodeEventBinary(event, dst) and PayloadDigest(event) in one pass over the fields (the
// write path needs both for every new event); returns the digest. Same bytes, same digest.
Digest128 EncodeEventBinaryAndDigest(const Event& event, std::string* dst);
// Raw form: writes the record at dst, stores the digest and returns the record's end.
// REQUIRES: dst has room for EventBinaryBound(event) bytes.
char* EncodeEventBinaryAndDigest(const Event& event, char* dst, Digest128* digest);
// An upper bound of the bytes EncodeEventBinary writes for `event`.
size_t EventBinaryBound(const Event& event);
// Returns false on malformed input (caller reports Corruption).
bool DecodeEventBinary(Decoder* in, Event* event);
// As DecodeEventBinary on a Decoder over `record`, with every field a view into `record`
// (nothing allocated); checks exactly what DecodeEventBinary checks, and likewise ignores
// bytes after the event. ingested_at_ms and commit_seq are left unchanged.
bool DecodeEventBinaryView(std::string_view record, EventView* event);

// The few fields replay and the memtable need, read from a binary event record without
// materialising the event. Views point into the record. The whole record is validated as
// DecodeEventBinary would (structure, flags, kind, quantity range, dimension order), so a
// record that peeks fine also decodes fine.
struct EventPeek {
  std::string_view event_id;
  std::string_view account_id;
  int64_t timestamp_ms = 0;
  EventKind kind = EventKind::kUsage;
};
// Consumes one record from *in. False on malformed input.
bool PeekEventBinary(Decoder* in, EventPeek* out);

// Event as a JSON object for listings (SPEC §3.3): every §1 field plus ingested_at_ms;
// quantity as a canonical JSON integer; dimensions as a plain object; correction_ref null or
// an object; absent optional fields as null.
void AppendEventJson(const Event& event, std::string* out);
// Appends s as a JSON string literal with the §1 canonical escaping.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace usagedb
