#include "segment/segment_encoding.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "util/coding.h"

namespace usagedb::segment {
namespace {

using uint128 = unsigned __int128;

size_t VarintLength(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

size_t VarintLength128(uint128 v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t WrapAdd(int64_t a, uint64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + b);
}

// A bounds-checked reader over a chunk body with a one-byte varint fast path.
class BodyReader {
 public:
  explicit BodyReader(std::string_view s)
      : p_(reinterpret_cast<const uint8_t*>(s.data())), end_(p_ + s.size()) {}

  bool Varint64(uint64_t* v) {
    if (p_ < end_ && *p_ < 0x80) {
      *v = *p_++;
      return true;
    }
    if (end_ - p_ >= 10) {  // a whole varint fits: no per-byte bounds checks
      const uint8_t* p = p_;
      uint64_t result = 0;
      for (int shift = 0; shift <= 63; shift += 7) {
        const uint64_t byte = *p++;
        result |= (byte & 0x7f) << shift;
        if (byte < 0x80) {
          if (shift == 63 && byte > 1) return false;
          *v = result;
          p_ = p;
          return true;
        }
      }
      return false;
    }
    Decoder d(Rest());
    if (!d.GetVarint64(v)) return false;
    p_ = reinterpret_cast<const uint8_t*>(d.pos());
    return true;
  }
  bool Varint32(uint32_t* v) {
    uint64_t x;
    if (!Varint64(&x) || x > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool Varint128(uint128* v) {
    if (p_ < end_ && *p_ < 0x80) {
      *v = *p_++;
      return true;
    }
    Decoder d(Rest());
    if (!d.GetVarint128(v)) return false;
    p_ = reinterpret_cast<const uint8_t*>(d.pos());
    return true;
  }
  bool Byte(uint8_t* v) {
    if (p_ >= end_) return false;
    *v = *p_++;
    return true;
  }
  bool Bytes(size_t n, const uint8_t** out) {
    if (remaining() < n) return false;
    *out = p_;
    p_ += n;
    return true;
  }
  bool LengthPrefixed(std::string_view* out) {
    uint64_t n;
    if (!Varint64(&n) || n > remaining()) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }

 private:
  std::string_view Rest() const {
    return std::string_view(reinterpret_cast<const char*>(p_), remaining());
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

template <typename T>
void UnpackBitsT(const uint8_t* in, size_t in_size, size_t n, int width, T* out) {
  if (width == 0) {
    std::fill(out, out + n, T{0});
    return;
  }
  const uint64_t mask = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  size_t i = 0;
  if (width <= 56 && in_size >= 8) {
    // One unaligned 8-byte load covers a value while its first byte + 8 is in range.
    const size_t fast_n = std::min(n, (in_size - 8) * 8 / width + 1);
    for (; i < fast_n; ++i) {
      const size_t bit = i * width;
      uint64_t x;
      std::memcpy(&x, in + (bit >> 3), 8);
      out[i] = static_cast<T>((x >> (bit & 7)) & mask);
    }
  }
  for (; i < n; ++i) {
    const size_t bit = i * width;
    const size_t byte = bit >> 3;
    const size_t avail = std::min<size_t>(in_size - byte, 9);
    uint128 x = 0;
    for (size_t k = 0; k < avail; ++k) x |= static_cast<uint128>(in[byte + k]) << (8 * k);
    out[i] = static_cast<T>(static_cast<uint64_t>(x >> (bit & 7)) & mask);
  }
}

// ---- 64-bit integers -------------------------------------------------------------------

struct IntPlan {
  Encoding encoding = Encoding::kIntFor;
  size_t size = SIZE_MAX;
  void Offer(Encoding e, size_t s) {
    if (s < size) {
      encoding = e;
      size = s;
    }
  }
};

// ---- strings -----------------------------------------------------------------------------

bool IsNull(const std::vector<uint8_t>& nulls, size_t i) { return !nulls.empty() && nulls[i]; }

void PutNullBitmap(const std::vector<uint8_t>& nulls, std::string* body) {
  const size_t start = body->size();
  body->resize(start + (nulls.size() + 7) / 8, '\0');
  for (size_t i = 0; i < nulls.size(); ++i) {
    if (nulls[i]) (*body)[start + i / 8] |= static_cast<char>(1u << (i % 8));
  }
}

bool GetNullBitmap(BodyReader* r, size_t n, std::vector<uint8_t>* nulls, size_t* nonnull) {
  const uint8_t* bits;
  if (!r->Bytes((n + 7) / 8, &bits)) return false;
  nulls->resize(n);
  *nonnull = 0;
  for (size_t i = 0; i < n; ++i) {
    (*nulls)[i] = (bits[i / 8] >> (i % 8)) & 1;
    *nonnull += !(*nulls)[i];
  }
  return true;
}

bool DecodeDictPart(BodyReader* r, size_t n, bool nullable, bool* has_nulls, StringColumn* out) {
  uint8_t null_flag;
  uint64_t count;
  if (!r->Byte(&null_flag) || null_flag > 1 || (null_flag && !nullable)) return false;
  if (!r->Varint64(&count) || count > n || count > r->remaining()) return false;
  *has_nulls = null_flag != 0;
  out->dict.resize(count);
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view v;
    if (!r->LengthPrefixed(&v)) return false;
    out->dict[i].assign(v.data(), v.size());
  }
  return count + (*has_nulls ? 1 : 0) > 0;
}

}  // namespace

int BitWidth(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

size_t BitPackedBytes(size_t n, int width) {
  return static_cast<size_t>((static_cast<uint128>(n) * width + 7) / 8);
}

void PutBitPacked(const uint64_t* values, size_t n, int width, std::string* dst) {
  if (width == 0 || n == 0) return;
  const size_t start = dst->size();
  dst->resize(start + BitPackedBytes(n, width), '\0');
  auto* out = reinterpret_cast<uint8_t*>(dst->data() + start);
  const uint64_t mask = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  uint128 acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; ++i) {
    acc |= static_cast<uint128>(values[i] & mask) << bits;
    bits += width;
    while (bits >= 8) {
      out[o++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      bits -= 8;
    }
  }
  if (bits > 0) out[o++] = static_cast<uint8_t>(acc);
}

void UnpackBits(const uint8_t* in, size_t in_size, size_t n, int width, uint64_t* out) {
  UnpackBitsT(in, in_size, n, width, out);
}
void UnpackBits32(const uint8_t* in, size_t in_size, size_t n, int width, uint32_t* out) {
  UnpackBitsT(in, in_size, n, width, out);
}

namespace {

// Analysis of a 64-bit column: the exact body size of every generic candidate, one pass.
struct Int64Stats {
  int64_t first = 0, mn = 0, mx = 0, dmin = 0, dmax = 0;
  size_t delta_size = 0, runs = 0, rle_size = 0;
  int for_width = 0, dfor_width = 0;

  Int64Stats(const int64_t* v, size_t n) {
    first = mn = mx = v[0];
    delta_size = VarintLength(ZigZagEncode64(v[0]));
    for (size_t i = 1, run_start = 0; i <= n; ++i) {
      if (i == n || v[i] != v[run_start]) {
        ++runs;
        rle_size += VarintLength(ZigZagEncode64(v[run_start])) + VarintLength(i - run_start);
        run_start = i;
      }
      if (i == n) break;
      mn = std::min(mn, v[i]);
      mx = std::max(mx, v[i]);
      const int64_t d = WrapSub(v[i], v[i - 1]);
      dmin = i == 1 ? d : std::min(dmin, d);
      dmax = i == 1 ? d : std::max(dmax, d);
      delta_size += VarintLength(ZigZagEncode64(d));
    }
    rle_size += VarintLength(runs);
    for_width = BitWidth(static_cast<uint64_t>(mx) - static_cast<uint64_t>(mn));
    dfor_width = BitWidth(static_cast<uint64_t>(dmax) - static_cast<uint64_t>(dmin));
  }

  size_t Size(Encoding e, size_t n) const {
    switch (e) {
      case Encoding::kIntFor:
        return VarintLength(ZigZagEncode64(mn)) + 1 + BitPackedBytes(n, for_width);
      case Encoding::kIntDeltaFor:
        return VarintLength(ZigZagEncode64(first)) + VarintLength(ZigZagEncode64(dmin)) + 1 +
               BitPackedBytes(n - 1, dfor_width);
      case Encoding::kIntRle:
        return rle_size;
      default:
        return delta_size;
    }
  }
};

void EncodeInt64With(const Int64Stats& st, Encoding encoding, const int64_t* v, size_t n,
                     std::string* body) {
  switch (encoding) {
    case Encoding::kIntFor: {
      PutVarint64(body, ZigZagEncode64(st.mn));
      body->push_back(static_cast<char>(st.for_width));
      std::vector<uint64_t> offsets(n);
      for (size_t i = 0; i < n; ++i) {
        offsets[i] = static_cast<uint64_t>(v[i]) - static_cast<uint64_t>(st.mn);
      }
      PutBitPacked(offsets.data(), n, st.for_width, body);
      break;
    }
    case Encoding::kIntDeltaFor: {
      PutVarint64(body, ZigZagEncode64(v[0]));
      PutVarint64(body, ZigZagEncode64(st.dmin));
      body->push_back(static_cast<char>(st.dfor_width));
      std::vector<uint64_t> offsets(n - 1);
      for (size_t i = 1; i < n; ++i) {
        offsets[i - 1] =
            static_cast<uint64_t>(WrapSub(v[i], v[i - 1])) - static_cast<uint64_t>(st.dmin);
      }
      PutBitPacked(offsets.data(), n - 1, st.dfor_width, body);
      break;
    }
    case Encoding::kIntRle: {
      PutVarint64(body, st.runs);
      for (size_t i = 1, run_start = 0; i <= n; ++i) {
        if (i == n || v[i] != v[run_start]) {
          PutVarint64(body, ZigZagEncode64(v[run_start]));
          PutVarint64(body, i - run_start);
          run_start = i;
        }
      }
      break;
    }
    default: {
      PutVarint64(body, ZigZagEncode64(v[0]));
      for (size_t i = 1; i < n; ++i) PutVarint64(body, ZigZagEncode64(WrapSub(v[i], v[i - 1])));
      break;
    }
  }
}

}  // namespace

Encoding EncodeInt64Column(const int64_t* v, size_t n, std::string* body) {
  const Int64Stats st(v, n);
  IntPlan plan;
  for (Encoding e :
       {Encoding::kIntFor, Encoding::kIntDeltaFor, Encoding::kIntRle, Encoding::kIntDeltaVarint}) {
    plan.Offer(e, st.Size(e, n));
  }
  EncodeInt64With(st, plan.encoding, v, n, body);
  return plan.encoding;
}

void EncodeInt64As(Encoding encoding, const int64_t* v, size_t n, std::string* body) {
  EncodeInt64With(Int64Stats(v, n), encoding, v, n, body);
}

bool EncodeInt64StepsBySeq(const int64_t* v, const uint64_t* seqs, size_t n, std::string* body) {
  std::vector<std::pair<uint64_t, int64_t>> pairs(n);
  for (size_t i = 0; i < n; ++i) pairs[i] = {seqs[i], v[i]};
  std::sort(pairs.begin(), pairs.end());
  std::vector<std::pair<uint64_t, int64_t>> steps;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && pairs[i].first == pairs[i - 1].first && pairs[i].second != pairs[i - 1].second) {
      return false;  // not a function of seq
    }
    if (steps.empty() || steps.back().second != pairs[i].second) steps.push_back(pairs[i]);
  }
  PutVarint64(body, steps.size());
  PutVarint64(body, steps[0].first);
  PutVarint64(body, ZigZagEncode64(steps[0].second));
  for (size_t k = 1; k < steps.size(); ++k) {
    PutVarint64(body, steps[k].first - steps[k - 1].first);
    PutVarint64(body, ZigZagEncode64(WrapSub(steps[k].second, steps[k - 1].second)));
  }
  return true;
}

bool DecodeInt64Column(Encoding encoding, std::string_view body, size_t n, const uint64_t* seqs,
                       int64_t* out) {
  BodyReader r(body);
  uint64_t x;
  switch (encoding) {
    case Encoding::kIntStepsBySeq: {
      uint64_t count, seq;
      if (seqs == nullptr || !r.Varint64(&count) || count == 0 || count > n) return false;
      std::vector<uint64_t> step_seq(count);
      std::vector<int64_t> step_value(count);
      if (!r.Varint64(&seq) || !r.Varint64(&x)) return false;
      step_seq[0] = seq;
      step_value[0] = ZigZagDecode64(x);
      for (uint64_t k = 1; k < count; ++k) {
        uint64_t dseq;
        if (!r.Varint64(&dseq) || dseq == 0 || dseq > UINT64_MAX - seq || !r.Varint64(&x)) {
          return false;
        }
        seq += dseq;
        step_seq[k] = seq;
        step_value[k] = WrapAdd(step_value[k - 1], static_cast<uint64_t>(ZigZagDecode64(x)));
      }
      if (!r.empty()) return false;
      for (size_t i = 0; i < n; ++i) {
        // The last step at or below the row's seq.
        auto it = std::upper_bound(step_seq.begin(), step_seq.end(), seqs[i]);
        if (it == step_seq.begin()) return false;
        out[i] = step_value[(it - step_seq.begin()) - 1];
      }
      return true;
    }
    case Encoding::kIntFor: {
      uint8_t width;
      if (!r.Varint64(&x) || !r.Byte(&width) || width > 64) return false;
      const int64_t base = ZigZagDecode64(x);
      const uint8_t* bits;
      const size_t bytes = BitPackedBytes(n, width);
      if (!r.Bytes(bytes, &bits) || !r.empty()) return false;
      auto* u = reinterpret_cast<uint64_t*>(out);
      UnpackBits(bits, bytes, n, width, u);
      for (size_t i = 0; i < n; ++i) out[i] = WrapAdd(base, u[i]);
      return true;
    }
    case Encoding::kIntDeltaFor: {
      uint64_t dx;
      uint8_t width;
      if (!r.Varint64(&x) || !r.Varint64(&dx) || !r.Byte(&width) || width > 64) return false;
      const uint64_t dbase = static_cast<uint64_t>(ZigZagDecode64(dx));
      const uint8_t* bits;
      const size_t bytes = BitPackedBytes(n - 1, width);
      if (!r.Bytes(bytes, &bits) || !r.empty()) return false;
      auto* u = reinterpret_cast<uint64_t*>(out);
      UnpackBits(bits, bytes, n - 1, width, u + 1);
      int64_t acc = ZigZagDecode64(x);
      out[0] = acc;
      for (size_t i = 1; i < n; ++i) {
        acc = WrapAdd(acc, u[i] + dbase);
        out[i] = acc;
      }
      return true;
    }
    case Encoding::kIntRle: {
      uint64_t runs;
      if (!r.Varint64(&runs) || runs > n) return false;
      size_t row = 0;
      for (uint64_t k = 0; k < runs; ++k) {
        uint64_t len;
        if (!r.Varint64(&x) || !r.Varint64(&len) || len == 0 || len > n - row) return false;
        std::fill(out + row, out + row + len, ZigZagDecode64(x));
        row += len;
      }
      return row == n && r.empty();
    }
    case Encoding::kIntDeltaVarint: {
      if (!r.Varint64(&x)) return false;
      int64_t acc = ZigZagDecode64(x);
      out[0] = acc;
      for (size_t i = 1; i < n; ++i) {
        if (!r.Varint64(&x)) return false;
        acc = WrapAdd(acc, static_cast<uint64_t>(ZigZagDecode64(x)));
        out[i] = acc;
      }
      return r.empty();
    }
    default:
      return false;
  }
}

Encoding EncodeInt128Column(const __int128* v, size_t n, std::string* body) {
  __int128 mn = v[0], mx = v[0];
  size_t varint_size = 0;
  for (size_t i = 0; i < n; ++i) {
    mn = std::min(mn, v[i]);
    mx = std::max(mx, v[i]);
    varint_size += VarintLength128(ZigZagEncode128(v[i]));
  }
  const uint128 range = static_cast<uint128>(mx) - static_cast<uint128>(mn);
  if ((range >> 64) == 0) {
    const int width = BitWidth(static_cast<uint64_t>(range));
    const size_t for_size = VarintLength128(ZigZagEncode128(mn)) + 1 + BitPackedBytes(n, width);
    if (for_size <= varint_size) {
      PutVarint128(body, ZigZagEncode128(mn));
      body->push_back(static_cast<char>(width));
      std::vector<uint64_t> offsets(n);
      for (size_t i = 0; i < n; ++i) {
        offsets[i] = static_cast<uint64_t>(static_cast<uint128>(v[i]) - static_cast<uint128>(mn));
      }
      PutBitPacked(offsets.data(), n, width, body);
      return Encoding::kInt128For;
    }
  }
  for (size_t i = 0; i < n; ++i) PutVarint128(body, ZigZagEncode128(v[i]));
  return Encoding::kInt128Varint;
}

bool DecodeInt128Column(Encoding encoding, std::string_view body, size_t n, __int128* out) {
  BodyReader r(body);
  uint128 x;
  switch (encoding) {
    case Encoding::kInt128For: {
      uint8_t width;
      if (!r.Varint128(&x) || !r.Byte(&width) || width > 64) return false;
      const uint128 base = static_cast<uint128>(ZigZagDecode128(x));
      const uint8_t* bits;
      const size_t bytes = BitPackedBytes(n, width);
      if (!r.Bytes(bytes, &bits) || !r.empty()) return false;
      // Unpack in slices through a small stack buffer, then widen.
      uint64_t buf[256];
      for (size_t i = 0; i < n; i += 256) {
        const size_t m = std::min<size_t>(256, n - i);
        // Values i.. start at bit i * width, which is byte-aligned since 256 * width % 8 == 0.
        const size_t off = i * width / 8;
        UnpackBits(bits + off, bytes - off, m, width, buf);
        for (size_t k = 0; k < m; ++k) out[i + k] = static_cast<__int128>(base + buf[k]);
      }
      return true;
    }
    case Encoding::kInt128Varint:
      for (size_t i = 0; i < n; ++i) {
        if (!r.Varint128(&x)) return false;
        out[i] = ZigZagDecode128(x);
      }
      return r.empty();
    default:
      return false;
  }
}

Encoding EncodeStringColumn(const std::vector<std::string_view>& values,
                            const std::vector<uint8_t>& nulls, std::string* body) {
  const size_t n = values.size();
  bool has_nulls = false;
  for (uint8_t b : nulls) has_nulls |= b != 0;

  // Analyze: dictionary, runs, common prefix, fixed suffix length, suffix alphabet.
  std::unordered_map<std::string_view, uint32_t> ids;
  ids.reserve(n);
  std::vector<std::string_view> distinct;
  std::vector<uint32_t> first_ids(n, 0);
  bool have_prefix = false, fixed = true;
  std::string_view prefix;
  size_t total_len = 0, nonnull = 0, fixed_len = 0;
  for (size_t i = 0; i < n; ++i) {
    if (IsNull(nulls, i)) continue;
    const std::string_view s = values[i];
    auto [it, inserted] = ids.emplace(s, static_cast<uint32_t>(distinct.size()));
    if (inserted) distinct.push_back(s);
    first_ids[i] = it->second;
    if (!have_prefix) {
      prefix = s;
      have_prefix = true;
      fixed_len = s.size();
    } else {
      size_t k = 0;
      const size_t m = std::min(prefix.size(), s.size());
      while (k < m && prefix[k] == s[k]) ++k;
      prefix = prefix.substr(0, k);
      fixed &= s.size() == fixed_len;
    }
    total_len += s.size();
    ++nonnull;
  }
  // Sorted dictionary: codes follow byte order, which keeps sorted columns' codes monotone.
  std::vector<uint32_t> order(distinct.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return distinct[a] < distinct[b]; });
  std::vector<uint32_t> rank(distinct.size());
  for (uint32_t i = 0; i < order.size(); ++i) rank[order[i]] = i;
  const uint32_t null_shift = has_nulls ? 1 : 0;
  std::vector<uint64_t> codes(n);
  for (size_t i = 0; i < n; ++i) codes[i] = IsNull(nulls, i) ? 0 : rank[first_ids[i]] + null_shift;

  size_t dict_part = 1 + VarintLength(distinct.size());
  for (std::string_view s : distinct) dict_part += VarintLength(s.size()) + s.size();
  const int code_width = BitWidth(distinct.size() + null_shift - 1);
  size_t runs = 0, run_bytes = 0;
  for (size_t i = 0, start = 0; i <= n; ++i) {
    if (i == n || codes[i] != codes[start]) {
      if (i > start) {
        ++runs;
        run_bytes += VarintLength(codes[start]) + VarintLength(i - start);
      }
      start = i;
    }
  }
  const size_t p = prefix.size();
  const size_t prefix_part = 1 + VarintLength(p) + p;
  size_t plain_size = prefix_part + (total_len - nonnull * p);
  for (size_t i = 0; i < n; ++i) {
    plain_size += IsNull(nulls, i) ? 1 : VarintLength(values[i].size() - p + (has_nulls ? 1 : 0));
  }
  const size_t suffix_len = fixed_len - (have_prefix ? p : 0);
  const size_t bitmap_bytes = has_nulls ? (n + 7) / 8 : 0;
  std::array<bool, 256> used{};
  size_t alphabet = 0;
  if (fixed) {
    for (size_t i = 0; i < n; ++i) {
      if (IsNull(nulls, i)) continue;
      for (char c : values[i].substr(p)) used[static_cast<uint8_t>(c)] = true;
    }
    for (bool u : used) alphabet += u;
  }

  IntPlan plan;
  plan.Offer(Encoding::kStringDict, dict_part + 1 + BitPackedBytes(n, code_width));
  plan.Offer(Encoding::kStringDictRle, dict_part + VarintLength(runs) + run_bytes);
  // Per-row encodings materialise one string per row when scanned; a dictionary decodes each
  // distinct value once. They are candidates only for mostly-distinct columns (ids).
  const bool mostly_distinct = distinct.size() * 2 > nonnull;
  if (fixed && mostly_distinct) {
    const size_t fixed_part = prefix_part + VarintLength(suffix_len) + bitmap_bytes;
    plan.Offer(Encoding::kStringFixed, fixed_part + nonnull * suffix_len);
    if (alphabet > 0 && alphabet <= 128) {
      plan.Offer(
          Encoding::kStringFixedAlphabet,
          fixed_part + 1 + alphabet + BitPackedBytes(nonnull * suffix_len, BitWidth(alphabet - 1)));
    }
  }
  if (mostly_distinct) plan.Offer(Encoding::kStringPlain, plain_size);

  // Compress.
  switch (plan.encoding) {
    case Encoding::kStringDict:
    case Encoding::kStringDictRle: {
      body->push_back(has_nulls ? 1 : 0);
      PutVarint64(body, distinct.size());
      for (uint32_t id : order) PutLengthPrefixed(body, distinct[id]);
      if (plan.encoding == Encoding::kStringDict) {
        body->push_back(static_cast<char>(code_width));
        PutBitPacked(codes.data(), n, code_width, body);
      } else {
        PutVarint64(body, runs);
        for (size_t i = 0, start = 0; i <= n; ++i) {
          if (i == n || codes[i] != codes[start]) {
            if (i > start) {
              PutVarint64(body, codes[start]);
              PutVarint64(body, i - start);
            }
            start = i;
          }
        }
      }
      break;
    }
    case Encoding::kStringFixed:
    case Encoding::kStringFixedAlphabet: {
      body->push_back(has_nulls ? 1 : 0);
      PutLengthPrefixed(body, prefix);
      PutVarint64(body, suffix_len);
      if (has_nulls) PutNullBitmap(nulls, body);
      if (plan.encoding == Encoding::kStringFixed) {
        for (size_t i = 0; i < n; ++i) {
          if (!IsNull(nulls, i)) body->append(values[i].substr(p));
        }
      } else {
        std::array<uint8_t, 256> index{};
        body->push_back(static_cast<char>(alphabet - 1));
        for (int c = 0, k = 0; c < 256; ++c) {
          if (!used[c]) continue;
          index[c] = static_cast<uint8_t>(k++);
          body->push_back(static_cast<char>(c));
        }
        std::vector<uint64_t> symbols;
        symbols.reserve(nonnull * suffix_len);
        for (size_t i = 0; i < n; ++i) {
          if (IsNull(nulls, i)) continue;
          for (char c : values[i].substr(p)) symbols.push_back(index[static_cast<uint8_t>(c)]);
        }
        PutBitPacked(symbols.data(), symbols.size(), BitWidth(alphabet - 1), body);
      }
      break;
    }
    default: {
      body->push_back(has_nulls ? 1 : 0);
      PutLengthPrefixed(body, prefix);
      for (size_t i = 0; i < n; ++i) {
        if (IsNull(nulls, i)) {
          PutVarint64(body, 0);
        } else {
          PutVarint64(body, values[i].size() - p + (has_nulls ? 1 : 0));
        }
      }
      for (size_t i = 0; i < n; ++i) {
        if (!IsNull(nulls, i)) body->append(values[i].substr(p));
      }
      break;
    }
  }
  return plan.encoding;
}

bool DecodeStringColumn(Encoding encoding, std::string_view body, size_t n, bool nullable,
                        StringColumn* out) {
  BodyReader r(body);
  out->codes.resize(n);
  uint32_t* codes = out->codes.data();
  switch (encoding) {
    case Encoding::kStringDict:
    case Encoding::kStringDictRle: {
      bool has_nulls;
      if (!DecodeDictPart(&r, n, nullable, &has_nulls, out)) return false;
      const uint64_t domain = out->dict.size() + (has_nulls ? 1 : 0);
      if (encoding == Encoding::kStringDict) {
        uint8_t width;
        if (!r.Byte(&width) || width > 32) return false;
        const uint8_t* bits;
        const size_t bytes = BitPackedBytes(n, width);
        if (!r.Bytes(bytes, &bits) || !r.empty()) return false;
        UnpackBits32(bits, bytes, n, width, codes);
        uint32_t max_code = 0;
        for (size_t i = 0; i < n; ++i) max_code = std::max(max_code, codes[i]);
        if (max_code >= domain) return false;
      } else {
        uint64_t runs;
        if (!r.Varint64(&runs) || runs > n) return false;
        size_t row = 0;
        for (uint64_t k = 0; k < runs; ++k) {
          uint64_t code, len;
          if (!r.Varint64(&code) || code >= domain || !r.Varint64(&len) || len == 0 ||
              len > n - row) {
            return false;
          }
          std::fill(codes + row, codes + row + len, static_cast<uint32_t>(code));
          row += len;
        }
        if (row != n || !r.empty()) return false;
      }
      if (has_nulls) {
        for (size_t i = 0; i < n; ++i) codes[i] = codes[i] - 1;  // 0 (null) wraps to kNullCode
      }
      return true;
    }
    case Encoding::kStringFixed:
    case Encoding::kStringFixedAlphabet: {
      uint8_t null_flag;
      std::string_view prefix;
      uint64_t suffix_len;
      if (!r.Byte(&null_flag) || null_flag > 1 || (null_flag && !nullable)) return false;
      if (!r.LengthPrefixed(&prefix) || !r.Varint64(&suffix_len)) return false;
      std::vector<uint8_t> nulls;
      size_t nonnull = n;
      if (null_flag && !GetNullBitmap(&r, n, &nulls, &nonnull)) return false;
      if (suffix_len > r.remaining() * 8) return false;  // bounds total before multiplying
      const uint64_t total = suffix_len * nonnull;
      std::string chars;
      if (encoding == Encoding::kStringFixed) {
        const uint8_t* data;
        if (total > r.remaining() || !r.Bytes(total, &data) || !r.empty()) return false;
        chars.assign(reinterpret_cast<const char*>(data), total);
      } else {
        uint8_t alpha_minus_one;
        const uint8_t* alphabet;
        if (!r.Byte(&alpha_minus_one) || !r.Bytes(alpha_minus_one + 1u, &alphabet)) return false;
        const int width = BitWidth(alpha_minus_one);
        if (total > r.remaining() * 8 + 8) return false;
        const size_t bytes = BitPackedBytes(total, width);
        const uint8_t* bits;
        if (!r.Bytes(bytes, &bits) || !r.empty()) return false;
        std::vector<uint32_t> symbols(total);
        UnpackBits32(bits, bytes, total, width, symbols.data());
        chars.resize(total);
        for (size_t i = 0; i < total; ++i) {
          if (symbols[i] > alpha_minus_one) return false;
          chars[i] = static_cast<char>(alphabet[symbols[i]]);
        }
      }
      out->dict.resize(nonnull);
      for (size_t i = 0, k = 0; i < n; ++i) {
        if (!nulls.empty() && nulls[i]) {
          codes[i] = StringColumn::kNullCode;
          continue;
        }
        std::string& s = out->dict[k];
        s.reserve(prefix.size() + suffix_len);
        s.assign(prefix.data(), prefix.size());
        s.append(chars, k * suffix_len, suffix_len);
        codes[i] = static_cast<uint32_t>(k++);
      }
      return true;
    }
    case Encoding::kStringPlain: {
      uint8_t null_flag;
      std::string_view prefix;
      if (!r.Byte(&null_flag) || null_flag > 1 || (null_flag && !nullable)) return false;
      if (!r.LengthPrefixed(&prefix)) return false;
      std::vector<uint64_t> lens(n);
      std::vector<uint8_t> is_null(n, 0);
      size_t nonnull = 0;
      uint64_t total = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!r.Varint64(&lens[i]) || lens[i] > r.remaining() + 1) return false;
        if (null_flag) {
          if (lens[i] == 0) {
            is_null[i] = 1;
            continue;
          }
          --lens[i];
        }
        total += lens[i];
        ++nonnull;
      }
      const uint8_t* data;
      if (total > r.remaining() || !r.Bytes(total, &data) || !r.empty()) return false;
      out->dict.resize(nonnull);
      size_t k = 0, off = 0;
      for (size_t i = 0; i < n; ++i) {
        if (is_null[i]) {
          codes[i] = StringColumn::kNullCode;
          continue;
        }
        std::string& s = out->dict[k];
        s.reserve(prefix.size() + lens[i]);
        s.assign(prefix.data(), prefix.size());
        s.append(reinterpret_cast<const char*>(data) + off, lens[i]);
        off += lens[i];
        codes[i] = static_cast<uint32_t>(k++);
      }
      return true;
    }
    default:
      return false;
  }
}

}  // namespace usagedb::segment
