// Fuzz target for every parser of untrusted bytes in src/model: the JSON batch and NDJSON
// decoders, the single-event decoder and the binary event record decoder. Besides "never
// crash", it checks invariants that tie the codecs together; a violation aborts.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "model/event_codec.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// An accepted event must satisfy ValidateEvent, survive JSON output + re-decoding and the
// binary codec unchanged, and keep its digest.
void CheckAccepted(const usagedb::DecodedEvent& d) {
  if (!d.ok()) return;
  usagedb::Event e = d.event;
  Check(usagedb::ValidateEvent(&e).empty());
  Check(e == d.event);
  std::string json;
  usagedb::AppendEventJson(e, &json);
  usagedb::DecodedEvent again = usagedb::DecodeEventJson(json);
  Check(again.ok());
  Check(again.event == e);
  Check(usagedb::PayloadDigest(again.event) == usagedb::PayloadDigest(e));
  std::string bin;
  usagedb::EncodeEventBinary(e, &bin);
  usagedb::Decoder in(bin);
  usagedb::Event back;
  Check(usagedb::DecodeEventBinary(&in, &back) && in.empty() && back == e);
  std::vector<std::pair<std::string, std::string>> dims;
  Check(usagedb::ParseCanonicalDimensions(usagedb::CanonicalDimensions(e.dimensions), &dims).ok());
  Check(dims == e.dimensions);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<usagedb::DecodedEvent> out;
  usagedb::Status s = usagedb::DecodeBatchJson(in, &out);
  Check(s.ok() || out.empty());
  for (const auto& d : out) CheckAccepted(d);
  usagedb::DecodeBatchNdjson(in, &out);
  for (const auto& d : out) CheckAccepted(d);
  CheckAccepted(usagedb::DecodeEventJson(in));
  usagedb::Decoder dec(in);
  usagedb::Event e;
  while (usagedb::DecodeEventBinary(&dec, &e)) {
  }
  std::vector<std::pair<std::string, std::string>> dims;
  if (usagedb::ParseCanonicalDimensions(in, &dims).ok()) {
    Check(usagedb::CanonicalDimensions(dims) == in);
  }
  return 0;
}
