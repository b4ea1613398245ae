#include "export/parquet_encoding.h"

#include <algorithm>
#include <cstring>

#include "util/coding.h"

namespace usagedb {
namespace parquet {

void AppendDecimal128(__int128 v, std::string* out) {
  unsigned __int128 u = static_cast<unsigned __int128>(v);
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = static_cast<char>(static_cast<uint8_t>(u));
    u >>= 8;
  }
  out->append(buf, 16);
}

__int128 DecodeDecimal128(const char* p) {
  unsigned __int128 u = 0;
  for (int i = 0; i < 16; ++i) u = (u << 8) | static_cast<uint8_t>(p[i]);
  return static_cast<__int128>(u);
}

int BitWidthFor(uint32_t max_value) {
  int w = 1;
  while (w < 32 && (max_value >> w) != 0) ++w;
  return w;
}

namespace {

// Packs values[0..count) (count <= groups * 8) into groups * bit_width bytes at p, LSB first,
// padding the last group with zeros.
template <typename T>
void PackGroups(const T* values, size_t count, size_t groups, int bit_width, char* p) {
  uint64_t acc = 0;
  int bits = 0;
  const size_t total = groups * 8;
  for (size_t i = 0; i < total; ++i) {
    uint64_t x = i < count ? static_cast<uint64_t>(values[i]) : 0;
    acc |= x << bits;
    bits += bit_width;
    while (bits >= 8) {
      *p++ = static_cast<char>(static_cast<uint8_t>(acc));
      acc >>= 8;
      bits -= 8;
    }
  }
}

template <typename T>
void AppendRleBitPackedImpl(const T* v, size_t n, int bit_width, std::string* out) {
  const int value_bytes = (bit_width + 7) / 8;
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && v[j] == v[i]) ++j;
    if (j - i >= 8) {
      PutVarint64(out, static_cast<uint64_t>(j - i) << 1);
      uint32_t x = static_cast<uint32_t>(v[i]);
      for (int b = 0; b < value_bytes; ++b) out->push_back(static_cast<char>(x >> (8 * b)));
      i = j;
      continue;
    }
    // Bit-packed groups of 8 until a run of >= 8 equal values starts at a group boundary.
    const size_t start = i;
    size_t end = i;
    for (;;) {
      end += 8;
      if (end >= n) break;
      size_t k = end + 1;
      while (k < n && k - end < 8 && v[k] == v[end]) ++k;
      if (k - end >= 8) break;
    }
    const size_t stop = std::min(end, n);
    const size_t groups = (stop - start + 7) / 8;
    PutVarint64(out, (static_cast<uint64_t>(groups) << 1) | 1);
    const size_t pos = out->size();
    out->resize(pos + groups * bit_width);
    PackGroups(v + start, stop - start, groups, bit_width, out->data() + pos);
    i = stop;
  }
}

}  // namespace

void AppendRleBitPacked(const uint32_t* values, size_t n, int bit_width, std::string* out) {
  AppendRleBitPackedImpl(values, n, bit_width, out);
}

void AppendRleBitPacked(const uint8_t* values, size_t n, int bit_width, std::string* out) {
  AppendRleBitPackedImpl(values, n, bit_width, out);
}

bool DecodeRleBitPacked(std::string_view in, int bit_width, size_t n, std::vector<uint32_t>* out) {
  if (bit_width < 0 || bit_width > 32) return false;
  Decoder d(in);
  const int value_bytes = (bit_width + 7) / 8;
  const uint64_t mask = bit_width == 32 ? 0xffffffffull : ((1ull << bit_width) - 1);
  size_t produced = 0;
  while (produced < n) {
    uint64_t header;
    if (!d.GetVarint64(&header)) return false;
    if (header & 1) {
      const uint64_t groups = header >> 1;
      if (groups == 0 || groups > d.remaining()) return false;
      std::string_view bytes;
      if (!d.GetBytes(groups * bit_width, &bytes)) return false;
      uint64_t acc = 0;
      int bits = 0;
      size_t bi = 0;
      for (uint64_t k = 0; k < groups * 8; ++k) {
        while (bits < bit_width) {
          acc |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[bi++])) << bits;
          bits += 8;
        }
        if (produced < n) {
          out->push_back(static_cast<uint32_t>(acc & mask));
          ++produced;
        }
        acc >>= bit_width;
        bits -= bit_width;
      }
    } else {
      const uint64_t count = header >> 1;
      if (count == 0) return false;
      uint32_t value = 0;
      for (int b = 0; b < value_bytes; ++b) {
        uint8_t byte;
        if (!d.GetByte(&byte)) return false;
        value |= static_cast<uint32_t>(byte) << (8 * b);
      }
      if (static_cast<uint64_t>(value) > mask) return false;
      for (uint64_t k = 0; k < count && produced < n; ++k) {
        out->push_back(value);
        ++produced;
      }
    }
  }
  return true;
}

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run_start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default: {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(esc, 6);
      }
    }
  }
  out->append(s.data() + run_start, s.size() - run_start);
  out->push_back('"');
}

void AppendCanonicalDimensions(const std::vector<std::pair<std::string, std::string>>& dims,
                               std::string* out) {
  bool sorted = true;
  for (size_t i = 1; i < dims.size() && sorted; ++i) sorted = dims[i - 1].first < dims[i].first;
  auto emit = [out](const std::pair<std::string, std::string>& kv, bool first) {
    if (!first) out->push_back(',');
    AppendJsonString(kv.first, out);
    out->push_back(':');
    AppendJsonString(kv.second, out);
  };
  out->push_back('{');
  if (sorted) {
    for (size_t i = 0; i < dims.size(); ++i) emit(dims[i], i == 0);
  } else {
    // std::string compares as unsigned bytes (char_traits<char>::compare is memcmp).
    std::vector<const std::pair<std::string, std::string>*> order;
    order.reserve(dims.size());
    for (const auto& kv : dims) order.push_back(&kv);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (size_t i = 0; i < order.size(); ++i) emit(*order[i], i == 0);
  }
  out->push_back('}');
}

std::string_view KindName(EventKind kind) {
  switch (kind) {
    case EventKind::kUsage: return "Usage";
    case EventKind::kCorrection: return "Correction";
    case EventKind::kRetraction: return "Retraction";
  }
  return "";
}

}  // namespace parquet
}  // namespace usagedb
