#include "server/gzip.h"

#include <zlib.h>

#include <algorithm>

namespace usagedb {
namespace server {

InflateOutcome GzipInflate(std::string_view in, size_t max_out, std::string* out,
                           std::string* error) {
  out->clear();
  z_stream zs{};
  // 16 + MAX_WBITS: gzip wrapper only (not zlib or raw deflate).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    *error = "gzip: cannot initialise zlib";
    return InflateOutcome::kMalformed;
  }
  constexpr size_t kChunk = 64 << 10;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
  size_t in_left = in.size() - zs.avail_in;  // beyond 4 GiB (max_body_bytes caps this)
  InflateOutcome outcome = InflateOutcome::kOk;
  // Start small and grow geometrically; never past max_out + kChunk.
  out->resize(std::min<size_t>(std::max<size_t>(in.size() * 4, kChunk), max_out + kChunk));
  size_t produced = 0;
  bool member_done = false;
  while (true) {
    if (produced == out->size()) {
      if (produced > max_out) {
        outcome = InflateOutcome::kTooLarge;
        break;
      }
      out->resize(std::min(out->size() * 2, max_out + kChunk));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out->data() + produced);
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out->size() - produced, UINT32_MAX));
    uInt before = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced += before - zs.avail_out;
    if (produced > max_out) {
      outcome = InflateOutcome::kTooLarge;
      break;
    }
    if (zs.avail_in == 0 && in_left > 0) {
      zs.avail_in = static_cast<uInt>(std::min<size_t>(in_left, UINT32_MAX));
      in_left -= zs.avail_in;
    }
    if (rc == Z_STREAM_END) {
      member_done = true;
      if (zs.avail_in == 0) break;
      // Another member follows (concatenated gzip, RFC 1952 §2.2).
      if (inflateReset(&zs) != Z_OK) {
        *error = "gzip: cannot reset for the next member";
        outcome = InflateOutcome::kMalformed;
        break;
      }
      member_done = false;
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      *error = "gzip: truncated stream";
      outcome = InflateOutcome::kMalformed;
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      *error = std::string("gzip: ") + (zs.msg ? zs.msg : "malformed stream");
      outcome = InflateOutcome::kMalformed;
      break;
    }
  }
  inflateEnd(&zs);
  if (outcome == InflateOutcome::kOk && !member_done) {
    *error = "gzip: truncated stream";
    outcome = InflateOutcome::kMalformed;
  }
  if (outcome != InflateOutcome::kOk) {
    out->clear();
    out->shrink_to_fit();
    return outcome;
  }
  out->resize(produced);
  return outcome;
}

std::string GzipCompress(std::string_view in) {
  z_stream zs{};
  std::string out;
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return out;
  }
  out.resize(deflateBound(&zs, in.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace server
}  // namespace usagedb
