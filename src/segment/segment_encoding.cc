#include "segment/segment_encoding.h"

#include <algorithm>
#include <cassert>
#include <array>
#include <cstring>
#include <unordered_map>

#include "util/coding.h"

namespace usagedb::segment {
namespace {

using uint128 = unsigned __int128;

// ceil(bits / 7) for bits in [1, 70] by multiply and shift (checked exhaustively below).
constexpr uint32_t VarintBytesForBits(uint32_t bits) { return ((bits + 6) * 37) >> 8; }
constexpr bool CheckVarintBytesForBits() {
  for (uint32_t bits = 1; bits <= 70; ++bits) {
    if (VarintBytesForBits(bits) != (bits + 6) / 7) return false;
  }
  return true;
}
static_assert(CheckVarintBytesForBits());

inline size_t VarintLength(uint64_t v) {
  return VarintBytesForBits(static_cast<uint32_t>(64 - __builtin_clzll(v | 1)));
}

inline size_t VarintLength128(uint128 v) {
  const uint64_t hi = static_cast<uint64_t>(v >> 64);
  if (hi == 0) return VarintLength(static_cast<uint64_t>(v));
  return static_cast<size_t>((128 - __builtin_clzll(hi) + 6) / 7);
}

inline uint8_t* WriteVarint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

inline uint8_t* WriteVarint128(uint8_t* p, uint128 v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(static_cast<uint8_t>(v) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

inline uint8_t* WriteBytes(uint8_t* p, const void* data, size_t n) {
  if (n > 0) std::memcpy(p, data, n);
  return p + n;
}

// Grows *body by exactly `size` bytes and returns where they start. The encoders below know
// each body's exact size from their analysis and fill it through the returned pointer.
inline uint8_t* Extend(std::string* body, size_t size) {
  const size_t start = body->size();
  body->resize(start + size);
  return reinterpret_cast<uint8_t*>(body->data() + start);
}

// Bit-packs values LSB-first through a 64-bit accumulator, storing 8 bytes at a time.
// Writes exactly BitPackedBytes(count, width) bytes for `count` values of one width.
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out) {}

  // REQUIRES: 0 <= width <= 64 and v < 2^width.
  void Put(uint64_t v, int width) {
    acc_ |= v << bits_;  // bits_ < 64
    bits_ += width;
    if (bits_ >= 64) {
      std::memcpy(out_, &acc_, 8);
      out_ += 8;
      bits_ -= 64;
      acc_ = bits_ == 0 ? 0 : v >> (width - bits_);
    }
  }
  // Stores the pending bits; returns the end of the packed bytes.
  uint8_t* Finish() {
    const int bytes = (bits_ + 7) / 8;
    for (int i = 0; i < bytes; ++i) *out_++ = static_cast<uint8_t>(acc_ >> (8 * i));
    acc_ = 0;
    bits_ = 0;
    return out_;
  }

 private:
  uint8_t* out_;
  uint64_t acc_ = 0;
  int bits_ = 0;
};

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

  // Always inlined: the integer decoders call it per row (GCC's own choice varied with the
  // rest of the file and once cost Q3 7%).
  [[gnu::always_inline]] bool Varint64(uint64_t* v) {
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
  // A varint of at most nine bytes (a value < 2^63) while nine bytes remain, with no
  // per-byte bounds checks; false (consuming nothing) otherwise: use Varint128 then.
  bool ShortVarint(uint64_t* v) {
    if (p_ < end_ && *p_ < 0x80) {
      *v = *p_++;
      return true;
    }
    if (end_ - p_ < 9) return false;
    const uint8_t* p = p_;
    uint64_t result = 0;
    for (int shift = 0; shift <= 56; shift += 7) {
      const uint64_t byte = *p++;
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        *v = result;
        p_ = p;
        return true;
      }
    }
    return false;
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

// One zigzag varint of up to 128 bits. Quantities are almost always small: those are decoded
// in 64 bits (a branch-free eight-byte-load decoder measured 4% slower: the byte loop predicts
// well).
[[gnu::always_inline]] inline bool ZigZagVarint128(BodyReader* r, __int128* out) {
  uint64_t x64;
  if (r->ShortVarint(&x64)) {
    *out = static_cast<int64_t>(x64 >> 1) ^ -static_cast<int64_t>(x64 & 1);
    return true;
  }
  uint128 x;
  if (!r->Varint128(&x)) return false;
  *out = ZigZagDecode128(x);
  return true;
}

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

// Appends ceil(n/8) bytes: bit i (LSB-first) = row i is null.
void PutNullBitmap(const uint8_t* nulls, size_t n, std::string* body) {
  uint8_t* out = Extend(body, (n + 7) / 8);
  for (size_t i = 0; i < n; i += 8) {
    uint8_t byte = 0;
    for (size_t k = 0; k < 8 && i + k < n; ++k)
      byte |= static_cast<uint8_t>((nulls[i + k] != 0) << k);
    out[i / 8] = byte;
  }
}

// The string encodings' bodies are parsed by the helpers below, shared by the column decoder
// (DecodeStringColumn) and the row decoder (DecodeStringRow), so the two accept exactly the
// same bytes.

// Rows before `row` that are not null in a null bitmap (bit i = row i is null).
size_t NonNullBefore(const uint8_t* bits, size_t row) {
  size_t nulls = 0;
  for (size_t b = 0; b < row / 8; ++b) nulls += static_cast<size_t>(__builtin_popcount(bits[b]));
  if (row % 8 != 0) {
    nulls += static_cast<size_t>(__builtin_popcount(bits[row / 8] & ((1u << (row % 8)) - 1)));
  }
  return row - nulls;
}

// kStringDict / kStringDictRle: null flag and value count, leaving r at the first value.
bool ReadDictHeader(BodyReader* r, size_t n, bool nullable, bool* has_nulls, uint64_t* count) {
  uint8_t null_flag;
  if (!r->Byte(&null_flag) || null_flag > 1 || (null_flag && !nullable)) return false;
  if (!r->Varint64(count) || *count > n || *count > r->remaining()) return false;
  *has_nulls = null_flag != 0;
  return *count + null_flag > 0;
}

// kStringDict's codes: n values of *width (<= 32) bits in *bytes bytes, the rest of the body.
bool ReadPackedCodes(BodyReader* r, size_t n, uint8_t* width, const uint8_t** bits,
                     size_t* bytes) {
  if (!r->Byte(width) || *width > 32) return false;
  *bytes = BitPackedBytes(n, *width);
  return r->Bytes(*bytes, bits) && r->empty();
}

// kStringDictRle's codes, the rest of the body: calls run(code, first_row, length) for each
// run in order; every code < domain, the runs cover exactly n rows.
template <typename Run>
bool WalkCodeRuns(BodyReader* r, size_t n, uint64_t domain, Run&& run) {
  uint64_t runs;
  if (!r->Varint64(&runs) || runs > n) return false;
  size_t at = 0;
  for (uint64_t k = 0; k < runs; ++k) {
    uint64_t code, len;
    if (!r->Varint64(&code) || code >= domain || !r->Varint64(&len) || len == 0 ||
        len > n - at) {
      return false;
    }
    run(code, at, static_cast<size_t>(len));
    at += len;
  }
  return at == n && r->empty();
}

bool DecodeDictPart(BodyReader* r, size_t n, bool nullable, bool* has_nulls, StringColumn* out) {
  uint64_t count;
  if (!ReadDictHeader(r, n, nullable, has_nulls, &count)) return false;
  out->dict.clear();
  out->dict.reserve(count, r->remaining());  // the values' bytes are part of the body
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view v;
    if (!r->LengthPrefixed(&v)) return false;
    out->dict.push_back(v);
  }
  return true;
}

// A kStringFixed / kStringFixedAlphabet body, parsed and bounds-checked (values not decoded).
struct FixedBody {
  std::string_view prefix;
  uint64_t suffix_len = 0;
  const uint8_t* null_bits = nullptr;  // bit i = row i is null; nullptr: the column has none
  size_t nonnull = 0;
  uint64_t total = 0;              // suffix_len * nonnull: bytes or symbols of all suffixes
  const uint8_t* data = nullptr;   // kStringFixed: the suffixes, `total` bytes
  uint8_t alpha_minus_one = 0;     // kStringFixedAlphabet: alpha_minus_one + 1 symbols,
  const uint8_t* alphabet = nullptr;
  int width = 0;                   // each suffix byte a `width`-bit index into the alphabet,
  const uint8_t* bits = nullptr;   // `total` of them in `bytes` bytes
  size_t bytes = 0;
};

bool ReadFixedBody(Encoding encoding, std::string_view body, size_t n, bool nullable,
                   FixedBody* f) {
  BodyReader r(body);
  uint8_t null_flag;
  if (!r.Byte(&null_flag) || null_flag > 1 || (null_flag && !nullable)) return false;
  if (!r.LengthPrefixed(&f->prefix) || !r.Varint64(&f->suffix_len)) return false;
  f->nonnull = n;
  if (null_flag) {
    if (!r.Bytes((n + 7) / 8, &f->null_bits)) return false;
    f->nonnull = NonNullBefore(f->null_bits, n);
  }
  if (f->suffix_len > r.remaining() * 8) return false;  // bounds total before multiplying
  f->total = f->suffix_len * f->nonnull;
  if (encoding == Encoding::kStringFixed) {
    return f->total <= r.remaining() && r.Bytes(f->total, &f->data) && r.empty();
  }
  if (!r.Byte(&f->alpha_minus_one) || !r.Bytes(f->alpha_minus_one + 1u, &f->alphabet)) {
    return false;
  }
  f->width = BitWidth(f->alpha_minus_one);  // <= 8
  if (f->total > r.remaining() * 8 + 8) return false;
  f->bytes = BitPackedBytes(f->total, f->width);
  return r.Bytes(f->bytes, &f->bits) && r.empty();
}

// A kStringPlain body: calls row(i, length, is_null) for every row in order (length without
// the null shift; 0 for a null), then checks that the values' bytes end the body.
template <typename Row>
bool ReadPlainBody(std::string_view body, size_t n, bool nullable, std::string_view* prefix,
                   const uint8_t** data, Row&& row) {
  BodyReader r(body);
  uint8_t null_flag;
  if (!r.Byte(&null_flag) || null_flag > 1 || (null_flag && !nullable)) return false;
  if (!r.LengthPrefixed(prefix)) return false;
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    uint64_t len;
    if (!r.Varint64(&len) || len > r.remaining() + 1) return false;
    if (null_flag) {
      if (len == 0) {
        row(i, uint64_t{0}, true);
        continue;
      }
      --len;
    }
    row(i, len, false);
    total += len;
  }
  return total <= r.remaining() && r.Bytes(total, data) && r.empty();
}

}  // namespace

int BitWidth(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

size_t BitPackedBytes(size_t n, int width) {
  return static_cast<size_t>((static_cast<uint128>(n) * width + 7) / 8);
}

void PutBitPacked(const uint64_t* values, size_t n, int width, std::string* dst) {
  if (width == 0 || n == 0) return;
  const uint64_t mask = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  BitWriter w(Extend(dst, BitPackedBytes(n, width)));
  for (size_t i = 0; i < n; ++i) w.Put(values[i] & mask, width);
  w.Finish();
}

void UnpackBits(const uint8_t* in, size_t in_size, size_t n, int width, uint64_t* out) {
  UnpackBitsT(in, in_size, n, width, out);
}
void UnpackBits32(const uint8_t* in, size_t in_size, size_t n, int width, uint32_t* out) {
  UnpackBitsT(in, in_size, n, width, out);
}

Int64Analysis AnalyzeInt64(const int64_t* v, size_t n) {
  Int64Analysis a;
  a.n = n;
  a.first = v[0];
  int64_t mn = v[0], mx = v[0];
  int64_t dmin = n > 1 ? INT64_MAX : 0, dmax = n > 1 ? INT64_MIN : 0;
  size_t delta_size = VarintLength(ZigZagEncode64(v[0]));
  size_t runs = 0, rle_size = 0, run_start = 0;
  for (size_t i = 1; i < n; ++i) {
    const int64_t x = v[i], prev = v[i - 1];
    mn = std::min(mn, x);
    mx = std::max(mx, x);
    const int64_t d = WrapSub(x, prev);
    dmin = std::min(dmin, d);
    dmax = std::max(dmax, d);
    delta_size += VarintLength(ZigZagEncode64(d));
    if (x != prev) {
      ++runs;
      rle_size += VarintLength(ZigZagEncode64(prev)) + VarintLength(i - run_start);
      run_start = i;
    }
  }
  ++runs;
  rle_size += VarintLength(ZigZagEncode64(v[n - 1])) + VarintLength(n - run_start);
  rle_size += VarintLength(runs);
  a.mn = mn;
  a.mx = mx;
  a.dmin = dmin;
  a.dmax = dmax;
  a.delta_size = delta_size;
  a.runs = runs;
  a.rle_size = rle_size;
  a.for_width = BitWidth(static_cast<uint64_t>(mx) - static_cast<uint64_t>(mn));
  a.dfor_width = BitWidth(static_cast<uint64_t>(dmax) - static_cast<uint64_t>(dmin));
  return a;
}

size_t Int64Analysis::Size(Encoding e) const {
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

Encoding Int64Analysis::Smallest() const {
  IntPlan plan;
  for (Encoding e :
       {Encoding::kIntFor, Encoding::kIntDeltaFor, Encoding::kIntRle, Encoding::kIntDeltaVarint}) {
    plan.Offer(e, Size(e));
  }
  return plan.encoding;
}

void EncodeInt64With(const Int64Analysis& a, Encoding encoding, const int64_t* v,
                     std::string* body) {
  const size_t n = a.n;
  uint8_t* p = Extend(body, a.Size(encoding));
  switch (encoding) {
    case Encoding::kIntFor: {
      p = WriteVarint(p, ZigZagEncode64(a.mn));
      *p++ = static_cast<uint8_t>(a.for_width);
      if (a.for_width == 0) break;
      BitWriter w(p);
      const uint64_t base = static_cast<uint64_t>(a.mn);
      for (size_t i = 0; i < n; ++i) w.Put(static_cast<uint64_t>(v[i]) - base, a.for_width);
      w.Finish();
      break;
    }
    case Encoding::kIntDeltaFor: {
      p = WriteVarint(p, ZigZagEncode64(v[0]));
      p = WriteVarint(p, ZigZagEncode64(a.dmin));
      *p++ = static_cast<uint8_t>(a.dfor_width);
      if (a.dfor_width == 0) break;
      BitWriter w(p);
      const uint64_t base = static_cast<uint64_t>(a.dmin);
      for (size_t i = 1; i < n; ++i) {
        w.Put(static_cast<uint64_t>(WrapSub(v[i], v[i - 1])) - base, a.dfor_width);
      }
      w.Finish();
      break;
    }
    case Encoding::kIntRle: {
      p = WriteVarint(p, a.runs);
      size_t run_start = 0;
      for (size_t i = 1; i < n; ++i) {
        if (v[i] != v[i - 1]) {
          p = WriteVarint(p, ZigZagEncode64(v[i - 1]));
          p = WriteVarint(p, i - run_start);
          run_start = i;
        }
      }
      p = WriteVarint(p, ZigZagEncode64(v[n - 1]));
      WriteVarint(p, n - run_start);
      break;
    }
    default: {
      p = WriteVarint(p, ZigZagEncode64(v[0]));
      for (size_t i = 1; i < n; ++i) p = WriteVarint(p, ZigZagEncode64(WrapSub(v[i], v[i - 1])));
      break;
    }
  }
}

Encoding EncodeInt64Column(const int64_t* v, size_t n, std::string* body) {
  const Int64Analysis a = AnalyzeInt64(v, n);
  const Encoding e = a.Smallest();
  EncodeInt64With(a, e, v, body);
  return e;
}

void EncodeInt64As(Encoding encoding, const int64_t* v, size_t n, std::string* body) {
  EncodeInt64With(AnalyzeInt64(v, n), encoding, v, body);
}

namespace {

void PutSteps(const std::vector<std::pair<uint64_t, int64_t>>& steps, std::string* body) {
  PutVarint64(body, steps.size());
  PutVarint64(body, steps[0].first);
  PutVarint64(body, ZigZagEncode64(steps[0].second));
  for (size_t k = 1; k < steps.size(); ++k) {
    PutVarint64(body, steps[k].first - steps[k - 1].first);
    PutVarint64(body, ZigZagEncode64(WrapSub(steps[k].second, steps[k - 1].second)));
  }
}

// The general case: sort (seq, value) pairs.
bool StepsBySorting(const int64_t* v, const uint64_t* seqs, size_t n,
                    std::vector<std::pair<uint64_t, int64_t>>* steps) {
  std::vector<std::pair<uint64_t, int64_t>> pairs(n);
  for (size_t i = 0; i < n; ++i) pairs[i] = {seqs[i], v[i]};
  std::sort(pairs.begin(), pairs.end());
  steps->clear();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && pairs[i].first == pairs[i - 1].first && pairs[i].second != pairs[i - 1].second) {
      return false;  // not a function of seq
    }
    if (steps->empty() || steps->back().second != pairs[i].second) steps->push_back(pairs[i]);
  }
  return true;
}

}  // namespace

bool EncodeInt64StepsBySeq(const int64_t* v, const uint64_t* seqs, size_t n, std::string* body) {
  // Fast path without sorting rows: the seq interval of each distinct value. When the
  // intervals, ordered by their first seq, do not overlap, each value is one run in seq
  // order and the steps are (first seq, value) in that order: exactly what sorting the rows
  // by seq produces. Otherwise sort.
  struct Interval {
    int64_t value;
    uint64_t lo, hi;
  };
  std::vector<Interval> iv;
  FlatIdMap map;
  uint32_t last = UINT32_MAX;
  for (size_t i = 0; i < n; ++i) {
    const int64_t x = v[i];
    uint32_t id = last;
    if (last == UINT32_MAX || iv[last].value != x) {
      bool inserted;
      id = map.FindOrInsert(
          HashInt(static_cast<uint64_t>(x)), static_cast<uint32_t>(iv.size()),
          [&](uint32_t k) { return iv[k].value == x; }, &inserted);
      if (inserted) iv.push_back({x, seqs[i], seqs[i]});
      last = id;
    }
    Interval& t = iv[id];
    t.lo = std::min(t.lo, seqs[i]);
    t.hi = std::max(t.hi, seqs[i]);
  }
  std::sort(iv.begin(), iv.end(), [](const Interval& a, const Interval& b) { return a.lo < b.lo; });
  std::vector<std::pair<uint64_t, int64_t>> steps;
  bool disjoint = true;
  for (size_t k = 1; k < iv.size() && disjoint; ++k) disjoint = iv[k - 1].hi < iv[k].lo;
  if (disjoint) {
    steps.reserve(iv.size());
    for (const Interval& t : iv) steps.emplace_back(t.lo, t.value);
  } else if (!StepsBySorting(v, seqs, n, &steps)) {
    return false;
  }
  PutSteps(steps, body);
  return true;
}

// A block's timestamp residuals span at most a few hours (~25 bits): an LSD
// radix sort of (x - min) in up to four passes of at most 11 bits costs about a third of
// std::sort's instructions at a flush's ~4K rows; tiny or very wide inputs take std::sort.
void SortInt64(std::vector<int64_t>* a) {
  const size_t n = a->size();
  if (n < 512) {
    std::sort(a->begin(), a->end());
    return;
  }
  const auto [mn_it, mx_it] = std::minmax_element(a->begin(), a->end());
  const uint64_t mn = static_cast<uint64_t>(*mn_it);
  const int bits = BitWidth(static_cast<uint64_t>(*mx_it) - mn);
  if (bits > 44) {
    std::sort(a->begin(), a->end());
    return;
  }
  if (bits == 0) return;  // all equal
  const int passes = (bits + 10) / 11;
  const int digit = (bits + passes - 1) / passes;
  const size_t buckets = size_t{1} << digit;
  const uint64_t mask = buckets - 1;
  std::vector<uint32_t> count(passes * buckets, 0);
  std::vector<uint64_t> keys(n), other(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t k = static_cast<uint64_t>((*a)[i]) - mn;  // < 2^bits: no wrap
    keys[i] = k;
    for (int p = 0; p < passes; ++p) ++count[p * buckets + ((k >> (p * digit)) & mask)];
  }
  for (int p = 0; p < passes; ++p) {
    uint32_t* c = count.data() + p * buckets;
    uint32_t sum = 0;
    for (size_t b = 0; b < buckets; ++b) {
      const uint32_t x = c[b];
      c[b] = sum;
      sum += x;
    }
    const int shift = p * digit;
    for (size_t i = 0; i < n; ++i) other[c[(keys[i] >> shift) & mask]++] = keys[i];
    keys.swap(other);
  }
  for (size_t i = 0; i < n; ++i) (*a)[i] = static_cast<int64_t>(keys[i] + mn);
}

bool EncodeInt64OffsetBySeq(const int64_t* v, const uint64_t* seqs, size_t n, std::string* body) {
  const auto [lo_it, hi_it] = std::minmax_element(seqs, seqs + n);
  const uint64_t lo = *lo_it;
  if (*hi_it - lo >= n) return false;
  const size_t count = static_cast<size_t>(*hi_it - lo) + 1;
  // Bucket the values by seq (counting sort), then the median of each bucket is its base.
  std::vector<uint32_t> start(count + 1, 0);
  for (size_t i = 0; i < n; ++i) ++start[seqs[i] - lo + 1];
  for (size_t k = 0; k < count; ++k) start[k + 1] += start[k];
  std::vector<int64_t> by_seq(n);
  {
    std::vector<uint32_t> fill(start.begin(), start.end() - 1);
    for (size_t i = 0; i < n; ++i) by_seq[fill[seqs[i] - lo]++] = v[i];
  }
  std::vector<int64_t> base(count);
  for (size_t k = 0; k < count; ++k) {
    if (start[k] == start[k + 1]) {  // no row with this seq: repeat the previous base
      base[k] = k > 0 ? base[k - 1] : 0;
      continue;
    }
    int64_t* b = by_seq.data() + start[k];
    int64_t* e = by_seq.data() + start[k + 1];
    int64_t* mid = b + (e - b - 1) / 2;
    std::nth_element(b, mid, e);
    base[k] = *mid;
  }
  // Offsets from the bases; the window [offset, offset + 2^width) that minimises the
  // estimated size (packed bits + ~5 bytes per exception) over the widths near the full one.
  // Windows start at one of the lowest n/16 + 1 offsets (late events lie below their batch;
  // more exceptions than that never pay for a width saving of at most 16 bits per row).
  std::vector<int64_t> res(n);
  for (size_t i = 0; i < n; ++i) res[i] = WrapSub(v[i], base[seqs[i] - lo]);
  std::vector<int64_t> sorted(res);
  SortInt64(&sorted);
  const int full =
      BitWidth(static_cast<uint64_t>(sorted.back()) - static_cast<uint64_t>(sorted.front()));
  int width = full;
  int64_t offset = sorted.front();
  const size_t full_size = BitPackedBytes(n, full);
  constexpr size_t kExceptionBytes = 5;
  // The smallest size over the narrower widths (the smallest width on ties), tried from the
  // widest down: a narrower window covers no more rows, so once a width's exceptions alone
  // cost more than the best size found, no narrower width can reach it and the search stops.
  size_t best = SIZE_MAX;
  for (int w = full - 1; w >= std::max(0, full - 16); --w) {
    const uint64_t span = (uint64_t{1} << w) - 1;  // w < 64
    size_t covered = 0, at = 0;
    for (size_t a = 0; a <= n / 16; ++a) {  // window starting at sorted[a]
      const uint64_t low = static_cast<uint64_t>(sorted[a]);
      // Rows in the window: sorted[a..b) (wrapping differences are monotone from a on).
      const size_t b = static_cast<size_t>(
          std::partition_point(sorted.begin() + static_cast<std::ptrdiff_t>(a), sorted.end(),
                               [&](int64_t x) { return static_cast<uint64_t>(x) - low <= span; }) -
          sorted.begin());
      if (b - a > covered) {
        covered = b - a;
        at = a;
      }
      if (b == n) break;
    }
    const size_t exceptions_size = (n - covered) * kExceptionBytes;
    const size_t size = BitPackedBytes(n, w) + exceptions_size;
    if (size <= best) {
      best = size;
      if (size < full_size) {
        width = w;
        offset = sorted[at];
      }
    }
    if (exceptions_size > std::min(best, full_size)) break;
  }
  const uint64_t span = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  PutVarint64(body, lo);
  PutVarint64(body, count);
  PutVarint64(body, ZigZagEncode64(base[0]));
  for (size_t k = 1; k < count; ++k)
    PutVarint64(body, ZigZagEncode64(WrapSub(base[k], base[k - 1])));
  PutVarint64(body, ZigZagEncode64(offset));
  body->push_back(static_cast<char>(width));
  size_t exceptions = 0;
  if (width > 0) {
    BitWriter w(Extend(body, BitPackedBytes(n, width)));
    for (size_t i = 0; i < n; ++i) {
      const uint64_t d = static_cast<uint64_t>(res[i]) - static_cast<uint64_t>(offset);
      const bool in = d <= span;
      exceptions += !in;
      w.Put(in ? d : 0, width);
    }
    w.Finish();
  } else {
    for (size_t i = 0; i < n; ++i) exceptions += res[i] != offset;
  }
  PutVarint64(body, exceptions);
  for (size_t i = 0, prev = 0; i < n; ++i) {
    const uint64_t d = static_cast<uint64_t>(res[i]) - static_cast<uint64_t>(offset);
    if (d <= span) continue;
    PutVarint64(body, i - prev);
    PutVarint64(body, ZigZagEncode64(res[i]));
    prev = i;
  }
  return true;
}

namespace {
// The bodies of kIntFor (base | width | n values bit-packed) and kIntDeltaFor (first | delta
// base | width | n - 1 deltas bit-packed), read the same way by the column and the row decoder.
// False unless the whole body is exactly that.
struct IntForBody {
  int64_t first = 0;   // kIntFor: the base; kIntDeltaFor: the first value
  uint64_t dbase = 0;  // kIntDeltaFor only: added to every unpacked delta
  uint8_t width = 0;
  const uint8_t* bits = nullptr;
  size_t bytes = 0;
};
// The tail of a kIntOffsetBySeq body: exception count, then (row gap, zz value) pairs with
// strictly ascending rows. Calls f(row, value) for each; false unless the body ends there.
template <typename F>
bool WalkOffsetExceptions(BodyReader* r, size_t n, const F& f) {
  uint64_t exceptions, x;
  if (!r->Varint64(&exceptions) || exceptions > n) return false;
  size_t row = 0;
  for (uint64_t k = 0; k < exceptions; ++k) {
    uint64_t gap;
    if (!r->Varint64(&gap) || (k > 0 && gap == 0) || gap >= n - row || !r->Varint64(&x)) {
      return false;
    }
    row += gap;
    f(row, ZigZagDecode64(x));
  }
  return r->empty();
}
// A kIntRle body: (zz value, run length) pairs covering exactly n rows. Calls
// f(first row, length, value) per run.
template <typename F>
bool WalkIntRuns(BodyReader* r, size_t n, const F& f) {
  uint64_t runs, x;
  if (!r->Varint64(&runs) || runs > n) return false;
  size_t at = 0;
  for (uint64_t k = 0; k < runs; ++k) {
    uint64_t len;
    if (!r->Varint64(&x) || !r->Varint64(&len) || len == 0 || len > n - at) return false;
    f(at, static_cast<size_t>(len), ZigZagDecode64(x));
    at += len;
  }
  return at == n && r->empty();
}
bool ReadIntForBody(Encoding encoding, std::string_view body, size_t n, IntForBody* f) {
  BodyReader r(body);
  uint64_t x, dx = 0;
  const bool delta = encoding == Encoding::kIntDeltaFor;
  if (!r.Varint64(&x) || (delta && !r.Varint64(&dx)) || !r.Byte(&f->width) || f->width > 64) {
    return false;
  }
  f->first = ZigZagDecode64(x);
  f->dbase = static_cast<uint64_t>(ZigZagDecode64(dx));
  f->bytes = BitPackedBytes(delta ? n - 1 : n, f->width);
  return r.Bytes(f->bytes, &f->bits) && r.empty();
}
}  // namespace

bool DecodeInt64Column(Encoding encoding, std::string_view body, size_t n, const uint64_t* seqs,
                       int64_t* out) {
  BodyReader r(body);
  uint64_t x;
  switch (encoding) {
    case Encoding::kIntOffsetBySeq: {
      uint64_t lo, count;
      if (seqs == nullptr || !r.Varint64(&lo) || !r.Varint64(&count) || count == 0 || count > n ||
          count - 1 > UINT64_MAX - lo) {
        return false;
      }
      std::vector<int64_t> base(count);
      int64_t b = 0;
      for (uint64_t k = 0; k < count; ++k) {
        if (!r.Varint64(&x)) return false;
        b = WrapAdd(b, static_cast<uint64_t>(ZigZagDecode64(x)));
        base[k] = b;
      }
      uint8_t width;
      if (!r.Varint64(&x) || !r.Byte(&width) || width > 64) return false;
      const uint64_t offset = static_cast<uint64_t>(ZigZagDecode64(x));
      const uint8_t* bits;
      const size_t bytes = BitPackedBytes(n, width);
      if (!r.Bytes(bytes, &bits)) return false;
      // Every row's seq must index the table (one branch-free pass), then each value is
      // its base (offset folded in) plus the unpacked bits.
      uint64_t max_index = 0;
      for (size_t i = 0; i < n; ++i) max_index = std::max(max_index, seqs[i] - lo);
      if (max_index >= count) return false;
      for (int64_t& v : base) v = WrapAdd(v, offset);
      auto* u = reinterpret_cast<uint64_t*>(out);
      UnpackBits(bits, bytes, n, width, u);
      const int64_t* with_offset = base.data();
      for (size_t i = 0; i < n; ++i) out[i] = WrapAdd(with_offset[seqs[i] - lo], u[i]);
      return WalkOffsetExceptions(&r, n, [&](size_t row, int64_t v) {
        out[row] = WrapAdd(WrapSub(base[seqs[row] - lo], static_cast<int64_t>(offset)),
                           static_cast<uint64_t>(v));
      });
    }
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
      IntForBody f;
      if (!ReadIntForBody(encoding, body, n, &f)) return false;
      auto* u = reinterpret_cast<uint64_t*>(out);
      UnpackBits(f.bits, f.bytes, n, f.width, u);
      for (size_t i = 0; i < n; ++i) out[i] = WrapAdd(f.first, u[i]);
      return true;
    }
    case Encoding::kIntDeltaFor: {
      IntForBody f;
      if (!ReadIntForBody(encoding, body, n, &f)) return false;
      auto* u = reinterpret_cast<uint64_t*>(out);
      UnpackBits(f.bits, f.bytes, n - 1, f.width, u + 1);
      int64_t acc = f.first;
      out[0] = acc;
      for (size_t i = 1; i < n; ++i) {
        acc = WrapAdd(acc, u[i] + f.dbase);
        out[i] = acc;
      }
      return true;
    }
    case Encoding::kIntRle:
      return WalkIntRuns(&r, n, [&](size_t at, size_t len, int64_t v) {
        std::fill(out + at, out + at + len, v);
      });
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
    const size_t base_size = VarintLength128(ZigZagEncode128(mn));
    const size_t for_size = base_size + 1 + BitPackedBytes(n, width);
    if (for_size <= varint_size) {
      uint8_t* p = Extend(body, for_size);
      p = WriteVarint128(p, ZigZagEncode128(mn));
      *p++ = static_cast<uint8_t>(width);
      if (width > 0) {
        BitWriter w(p);
        const uint128 base = static_cast<uint128>(mn);
        for (size_t i = 0; i < n; ++i) {
          w.Put(static_cast<uint64_t>(static_cast<uint128>(v[i]) - base), width);
        }
        w.Finish();
      }
      return Encoding::kInt128For;
    }
  }
  uint8_t* p = Extend(body, varint_size);
  for (size_t i = 0; i < n; ++i) p = WriteVarint128(p, ZigZagEncode128(v[i]));
  return Encoding::kInt128Varint;
}

namespace {
// kInt128For: base: zz varint128 | width: uint8 (<= 64) | n values bit-packed. Decodes rows
// [lo, hi) into out[lo, hi). Slices start at a multiple of 8 rows, so at a whole byte
// (8 * width bits), and at most 256 values are unpacked at a time.
bool DecodeInt128ForRows(std::string_view body, size_t n, size_t lo, size_t hi, __int128* out) {
  BodyReader r(body);
  uint128 x;
  uint8_t width;
  if (!r.Varint128(&x) || !r.Byte(&width) || width > 64) return false;
  const uint128 base = static_cast<uint128>(ZigZagDecode128(x));
  const uint8_t* bits;
  const size_t bytes = BitPackedBytes(n, width);
  if (!r.Bytes(bytes, &bits) || !r.empty()) return false;
  uint64_t buf[256];
  for (size_t i = lo & ~size_t{7}; i < hi; i += 256) {
    const size_t m = std::min<size_t>(256, hi - i);
    const size_t off = i * width / 8;
    UnpackBits(bits + off, bytes - off, m, width, buf);
    const size_t first = i < lo ? lo - i : 0;
    for (size_t k = first; k < m; ++k) out[i + k] = static_cast<__int128>(base + buf[k]);
  }
  return true;
}
}  // namespace

bool DecodeInt128Column(Encoding encoding, std::string_view body, size_t n, __int128* out) {
  BodyReader r(body);
  switch (encoding) {
    case Encoding::kInt128For:
      return DecodeInt128ForRows(body, n, 0, n, out);
    case Encoding::kInt128Varint:
      for (size_t i = 0; i < n; ++i) {
        if (!ZigZagVarint128(&r, &out[i])) return false;
      }
      return r.empty();
    default:
      return false;
  }
}

namespace {
// Varints are counted by their last bytes (high bit clear), eight bytes at a time.
inline size_t VarintEndsIn8(const uint8_t* q) {
  uint64_t w;
  std::memcpy(&w, q, 8);
  return static_cast<size_t>(__builtin_popcountll(~w & 0x8080808080808080ull));
}
// The position after the first k varints of [p, end), or nullptr when there are fewer.
const uint8_t* SkipVarints(const uint8_t* p, const uint8_t* end, size_t k) {
  size_t seen = 0;
  while (end - p >= 8) {
    const size_t ends = VarintEndsIn8(p);
    if (seen + ends >= k) break;
    seen += ends;
    p += 8;
  }
  while (seen < k) {
    if (p == end) return nullptr;
    seen += (*p++ & 0x80) == 0;
  }
  return p;
}
// How many varints end in [p, end).
size_t CountVarintEnds(const uint8_t* p, const uint8_t* end) {
  size_t ends = 0;
  for (; end - p >= 8; p += 8) ends += VarintEndsIn8(p);
  for (; p < end; ++p) ends += (*p & 0x80) == 0;
  return ends;
}
}  // namespace

bool DecodeInt128Rows(Encoding encoding, std::string_view body, size_t n, size_t lo, size_t hi,
                      __int128* out) {
  if (lo > hi || hi > n) return false;
  if (lo == 0 && hi == n) return DecodeInt128Column(encoding, body, n, out);
  BodyReader r(body);
  switch (encoding) {
    case Encoding::kInt128For:
      return DecodeInt128ForRows(body, n, lo, hi, out);
    case Encoding::kInt128Varint: {
      // Skip the first lo varints.
      const uint8_t* const end = reinterpret_cast<const uint8_t*>(body.data()) + body.size();
      const uint8_t* p = SkipVarints(reinterpret_cast<const uint8_t*>(body.data()), end, lo);
      if (p == nullptr) return false;
      BodyReader rest(
          std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p)));
      for (size_t i = lo; i < hi; ++i) {
        if (!ZigZagVarint128(&rest, &out[i])) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

namespace {

// Length of the common prefix of a and b.
inline size_t CommonPrefix(std::string_view a, std::string_view b) {
  const size_t m = std::min(a.size(), b.size());
  size_t k = 0;
  for (; k + 8 <= m; k += 8) {
    const uint64_t x = Load64(a.data() + k) ^ Load64(b.data() + k);
    if (x != 0) return k + static_cast<size_t>(__builtin_ctzll(x) / 8);
  }
  while (k < m && a[k] == b[k]) ++k;
  return k;
}

// Packs the alphabet indices of every non-null row's suffix, kWidth bits each, handing the
// bit writer groups of as many symbols as fit 64 bits.
template <int kWidth>
void PackSymbols(const std::string_view* values, const uint8_t* nulls, size_t n, size_t p,
                 size_t suffix_len, const std::array<uint8_t, 256>& index, BitWriter* w) {
  constexpr size_t kPerGroup = 64 / kWidth;
  for (size_t i = 0; i < n; ++i) {
    if (nulls != nullptr && nulls[i]) continue;
    const auto* c = reinterpret_cast<const uint8_t*>(values[i].data()) + p;
    size_t k = 0;
    for (; k + kPerGroup <= suffix_len; k += kPerGroup) {
      uint64_t group = 0;
      for (size_t j = 0; j < kPerGroup; ++j) {
        group |= static_cast<uint64_t>(index[c[k + j]]) << (j * kWidth);
      }
      w->Put(group, static_cast<int>(kPerGroup * kWidth));
    }
    for (; k < suffix_len; ++k) w->Put(index[c[k]], kWidth);
  }
}

// Below this many non-null rows the dictionary is always built completely (cheap), so small
// blocks compare every candidate.
constexpr size_t kMinRowsToStopEarly = 64;

}  // namespace

bool StringColumnEncoder::BuildDictionary(const StringColumnInput& in, size_t nonnull) {
  const size_t n = in.n;
  const std::string_view* v = in.values;
  const uint8_t* nulls = in.nulls;
  const uint8_t* same = in.same_as_prev;
  ids_.resize(n);
  distinct_.clear();
  map_.Clear();
  // Stop as soon as more than half of the non-null values are distinct: the final count can
  // only be larger, so the column is "mostly distinct" and gets a per-row encoding.
  const size_t limit = in.need_distinct || nonnull < kMinRowsToStopEarly ? SIZE_MAX : nonnull / 2;
  std::string_view last;
  uint32_t last_id = UINT32_MAX;
  for (size_t i = 0; i < n; ++i) {
    if (nulls != nullptr && nulls[i]) {
      ids_[i] = 0;
      continue;
    }
    if (same != nullptr && same[i] && last_id != UINT32_MAX) {  // a run the caller knows
      assert(BytesEqual(v[i], last));  // debug builds (the test suite) check the claim
      ids_[i] = last_id;
      continue;
    }
    const std::string_view s = v[i];
    if (last_id != UINT32_MAX && BytesEqual(s, last)) {  // runs: sorted columns
      ids_[i] = last_id;
      continue;
    }
    bool inserted;
    const uint32_t id = map_.FindOrInsert(
        HashBytes(s), static_cast<uint32_t>(distinct_.size()),
        [&](uint32_t k) { return BytesEqual(distinct_[k], s); }, &inserted);
    if (inserted) {
      distinct_.push_back(s);
      if (distinct_.size() > limit) return false;
    }
    ids_[i] = id;
    last = s;
    last_id = id;
  }
  return true;
}

Encoding StringColumnEncoder::Encode(const StringColumnInput& in, std::string* body) {
  const size_t n = in.n;
  const std::string_view* values = in.values;
  size_t nonnull = n;
  if (in.nulls != nullptr) {
    for (size_t i = 0; i < n; ++i) nonnull -= in.nulls[i] != 0;
  }
  const bool has_nulls = nonnull < n;
  const uint8_t* nulls = has_nulls ? in.nulls : nullptr;
  auto is_null = [nulls](size_t i) { return nulls != nullptr && nulls[i] != 0; };

  // Analyze: dictionary ids.
  const uint32_t* ids;
  const std::string_view* distinct;
  size_t dcount;
  if (in.ids != nullptr) {
    ids = in.ids;
    distinct = in.distinct;
    dcount = in.distinct_count;
    // BuildDictionary stops once more than nonnull / 2 values are distinct (see there).
    dict_complete_ = !(in.ids_from_values && !in.need_distinct && nonnull >= kMinRowsToStopEarly &&
                       dcount > nonnull / 2);
  } else if (in.values_distinct && !in.need_distinct && nonnull >= kMinRowsToStopEarly) {
    // BuildDictionary would stop at nonnull / 2 + 1 distinct values: its answer, without it.
    ids = nullptr;
    distinct = nullptr;
    dcount = 0;
    dict_complete_ = false;
  } else {
    StringColumnInput no_nulls = in;
    no_nulls.nulls = nulls;
    dict_complete_ = BuildDictionary(no_nulls, nonnull);
    ids = ids_.data();
    distinct = distinct_.data();
    dcount = distinct_.size();
  }
  sorted_.clear();
  // Per-row encodings materialise one string per row when scanned; a dictionary decodes each
  // distinct value once. They are candidates only for mostly-distinct columns (ids).
  const bool mostly_distinct = !dict_complete_ || dcount * 2 > nonnull;
  const uint32_t null_shift = has_nulls ? 1 : 0;

  IntPlan plan;
  int code_width = 0;
  size_t runs = 0;
  if (dict_complete_) {
    // Sorted dictionary: codes follow byte order, which keeps sorted columns' codes monotone.
    order_.resize(dcount);
    for (uint32_t i = 0; i < dcount; ++i) order_[i] = i;
    std::sort(order_.begin(), order_.end(),
              [&](uint32_t a, uint32_t b) { return distinct[a] < distinct[b]; });
    rank_.resize(dcount);
    sorted_.resize(dcount);
    size_t dict_part = 1 + VarintLength(dcount);
    for (uint32_t k = 0; k < dcount; ++k) {
      rank_[order_[k]] = k + null_shift;
      const std::string_view s = distinct[order_[k]];
      sorted_[k] = s;
      dict_part += VarintLength(s.size()) + s.size();
    }
    code_width = BitWidth(dcount + null_shift - 1);
    codes_.resize(n);
    size_t run_bytes = 0, run_start = 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t code = is_null(i) ? 0 : rank_[ids[i]];
      codes_[i] = code;
      if (code != prev && i > 0) {
        ++runs;
        run_bytes += VarintLength(prev) + VarintLength(i - run_start);
        run_start = i;
      }
      prev = code;
    }
    ++runs;
    run_bytes += VarintLength(prev) + VarintLength(n - run_start);
    plan.Offer(Encoding::kStringDict, dict_part + 1 + BitPackedBytes(n, code_width));
    plan.Offer(Encoding::kStringDictRle, dict_part + VarintLength(runs) + run_bytes);
  }

  // Per-row candidates: common prefix, fixed suffix length, suffix alphabet.
  std::string_view prefix;
  size_t suffix_len = 0, alphabet = 0;
  std::array<uint8_t, 256> used{};
  if (mostly_distinct && nonnull > 0) {
    bool have_prefix = false, fixed = true;
    size_t total_len = 0, fixed_len = 0;
    for (size_t i = 0; i < n; ++i) {
      if (is_null(i)) continue;
      const std::string_view s = values[i];
      if (!have_prefix) {
        prefix = s;
        fixed_len = s.size();
        have_prefix = true;
      } else {
        if (prefix.size() > 0 &&
            !(s.size() >= prefix.size() && BytesEqual(prefix, s.substr(0, prefix.size())))) {
          prefix = prefix.substr(0, CommonPrefix(prefix, s));
        }
        fixed &= s.size() == fixed_len;
      }
      total_len += s.size();
    }
    const size_t p = prefix.size();
    const size_t prefix_part = 1 + VarintLength(p) + p;
    size_t plain_size = prefix_part + (total_len - nonnull * p) + (n - nonnull);
    if (fixed) {
      plain_size += nonnull * VarintLength(fixed_len - p + null_shift);
    } else {
      for (size_t i = 0; i < n; ++i) {
        if (!is_null(i)) plain_size += VarintLength(values[i].size() - p + null_shift);
      }
    }
    if (fixed) {
      suffix_len = fixed_len - p;
      for (size_t i = 0; i < n; ++i) {
        if (is_null(i)) continue;
        const auto* c = reinterpret_cast<const uint8_t*>(values[i].data()) + p;
        size_t k = 0;
        for (; k + 4 <= suffix_len; k += 4) {
          const uint8_t c0 = c[k], c1 = c[k + 1], c2 = c[k + 2], c3 = c[k + 3];
          used[c0] = used[c1] = used[c2] = used[c3] = 1;
        }
        for (; k < suffix_len; ++k) used[c[k]] = 1;
      }
      for (uint8_t u : used) alphabet += u;
      const size_t bitmap_bytes = has_nulls ? (n + 7) / 8 : 0;
      const size_t fixed_part = prefix_part + VarintLength(suffix_len) + bitmap_bytes;
      plan.Offer(Encoding::kStringFixed, fixed_part + nonnull * suffix_len);
      if (alphabet > 0 && alphabet <= 128) {
        plan.Offer(Encoding::kStringFixedAlphabet,
                   fixed_part + 1 + alphabet +
                       BitPackedBytes(nonnull * suffix_len, BitWidth(alphabet - 1)));
      }
    }
    plan.Offer(Encoding::kStringPlain, plain_size);
  }

  // Compress.
  const size_t p = prefix.size();
  switch (plan.encoding) {
    case Encoding::kStringDict:
    case Encoding::kStringDictRle: {
      body->push_back(has_nulls ? 1 : 0);
      PutVarint64(body, dcount);
      for (std::string_view s : sorted_) PutLengthPrefixed(body, s);
      if (plan.encoding == Encoding::kStringDict) {
        body->push_back(static_cast<char>(code_width));
        if (code_width > 0) {
          BitWriter w(Extend(body, BitPackedBytes(n, code_width)));
          for (size_t i = 0; i < n; ++i) w.Put(codes_[i], code_width);
          w.Finish();
        }
      } else {
        PutVarint64(body, runs);
        for (size_t i = 1, start = 0; i <= n; ++i) {
          if (i == n || codes_[i] != codes_[start]) {
            PutVarint64(body, codes_[start]);
            PutVarint64(body, i - start);
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
      if (has_nulls) PutNullBitmap(nulls, n, body);
      if (plan.encoding == Encoding::kStringFixed) {
        uint8_t* out = Extend(body, nonnull * suffix_len);
        for (size_t i = 0; i < n; ++i) {
          if (!is_null(i)) out = WriteBytes(out, values[i].data() + p, suffix_len);
        }
      } else {
        std::array<uint8_t, 256> index{};
        body->push_back(static_cast<char>(alphabet - 1));
        for (int c = 0, k = 0; c < 256; ++c) {
          if (!used[c]) continue;
          index[c] = static_cast<uint8_t>(k++);
          body->push_back(static_cast<char>(c));
        }
        const int width = BitWidth(alphabet - 1);
        if (width > 0) {
          BitWriter w(Extend(body, BitPackedBytes(nonnull * suffix_len, width)));
          switch (width) {
            case 5:  // base32 ids
              PackSymbols<5>(values, nulls, n, p, suffix_len, index, &w);
              break;
            case 6:  // base64-like ids
              PackSymbols<6>(values, nulls, n, p, suffix_len, index, &w);
              break;
            case 4:  // hex ids
              PackSymbols<4>(values, nulls, n, p, suffix_len, index, &w);
              break;
            default:
              for (size_t i = 0; i < n; ++i) {
                if (is_null(i)) continue;
                const auto* c = reinterpret_cast<const uint8_t*>(values[i].data()) + p;
                for (size_t k = 0; k < suffix_len; ++k) w.Put(index[c[k]], width);
              }
          }
          w.Finish();
        }
      }
      break;
    }
    default: {
      body->push_back(has_nulls ? 1 : 0);
      PutLengthPrefixed(body, prefix);
      for (size_t i = 0; i < n; ++i) {
        PutVarint64(body, is_null(i) ? 0 : values[i].size() - p + null_shift);
      }
      for (size_t i = 0; i < n; ++i) {
        if (!is_null(i)) body->append(values[i].data() + p, values[i].size() - p);
      }
      break;
    }
  }
  return plan.encoding;
}

Encoding EncodeStringColumn(const std::vector<std::string_view>& values,
                            const std::vector<uint8_t>& nulls, std::string* body) {
  StringColumnEncoder encoder;
  StringColumnInput in;
  in.values = values.data();
  in.nulls = nulls.empty() ? nullptr : nulls.data();
  in.n = values.size();
  return encoder.Encode(in, body);
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
        const uint8_t* bits;
        size_t bytes;
        if (!ReadPackedCodes(&r, n, &width, &bits, &bytes)) return false;
        UnpackBits32(bits, bytes, n, width, codes);
        uint32_t max_code = 0;
        for (size_t i = 0; i < n; ++i) max_code = std::max(max_code, codes[i]);
        if (max_code >= domain) return false;
      } else if (!WalkCodeRuns(&r, n, domain, [codes](uint64_t code, size_t at, size_t len) {
                   std::fill(codes + at, codes + at + len, static_cast<uint32_t>(code));
                 })) {
        return false;
      }
      if (has_nulls) {
        for (size_t i = 0; i < n; ++i) codes[i] = codes[i] - 1;  // 0 (null) wraps to kNullCode
      }
      return true;
    }
    case Encoding::kStringFixed:
    case Encoding::kStringFixedAlphabet: {
      FixedBody f;
      if (!ReadFixedBody(encoding, body, n, nullable, &f)) return false;
      const std::string_view prefix = f.prefix;
      const uint64_t suffix_len = f.suffix_len;
      const size_t nonnull = f.nonnull;
      // The values (prefix + suffix, all of one size) are written straight into the
      // dictionary's buffer.
      const size_t p = prefix.size(), w = p + suffix_len;
      out->dict.clear();
      if (encoding == Encoding::kStringFixed) {
        char* dst = out->dict.AppendEqualSized(nonnull, w);
        for (size_t k = 0; k < nonnull; ++k, dst += w) {
          std::memcpy(dst, prefix.data(), p);
          std::memcpy(dst + p, f.data + k * suffix_len, suffix_len);
        }
      } else {
        const uint8_t alpha_minus_one = f.alpha_minus_one;
        const int width = f.width;
        const size_t bytes = f.bytes;
        const uint8_t* bits = f.bits;
        // Unpacks the symbols and maps them through the alphabet in one pass (no symbol
        // array): one 8-byte load yields up to `group` symbols.
        char table[256] = {};
        std::memcpy(table, f.alphabet, alpha_minus_one + 1u);
        const uint64_t mask = (uint64_t{1} << width) - 1;
        const size_t group = width == 0 ? suffix_len : 57 / width;
        uint64_t max_symbol = 0;  // beyond the alphabet: malformed
        size_t bit = 0;
        char* dst = out->dict.AppendEqualSized(nonnull, w);
        for (size_t k = 0; k < nonnull; ++k, dst += w) {
          std::memcpy(dst, prefix.data(), p);
          char* s = dst + p;
          for (size_t j = 0; j < suffix_len;) {
            const size_t byte = bit >> 3;
            uint64_t x = 0;
            if (byte + 8 <= bytes) {
              std::memcpy(&x, bits + byte, 8);
            } else {
              for (size_t b = 0; byte + b < bytes; ++b) x |= uint64_t{bits[byte + b]} << (8 * b);
            }
            x >>= bit & 7;  // >= 57 valid bits left
            const size_t end = std::min(suffix_len, j + group);
            bit += (end - j) * width;
            for (; j < end; ++j, x >>= width) {
              const uint64_t sym = x & mask;
              max_symbol = std::max(max_symbol, sym);
              s[j] = table[sym];
            }
          }
        }
        if (max_symbol > alpha_minus_one) return false;
      }
      for (size_t i = 0, k = 0; i < n; ++i) {
        if (f.null_bits != nullptr && ((f.null_bits[i / 8] >> (i % 8)) & 1)) {
          codes[i] = StringColumn::kNullCode;
          continue;
        }
        codes[i] = static_cast<uint32_t>(k++);
      }
      return true;
    }
    case Encoding::kStringPlain: {
      std::string_view prefix;
      const uint8_t* data;
      std::vector<uint64_t> lens(n);
      std::vector<uint8_t> is_null(n, 0);
      size_t nonnull = 0;
      uint64_t total = 0;
      if (!ReadPlainBody(body, n, nullable, &prefix, &data,
                         [&](size_t i, uint64_t len, bool null) {
                           lens[i] = len;
                           is_null[i] = null;
                           nonnull += !null;
                           total += len;
                         })) {
        return false;
      }
      out->dict.clear();
      out->dict.reserve(nonnull, nonnull * prefix.size() + total);
      size_t k = 0, off = 0;
      for (size_t i = 0; i < n; ++i) {
        if (is_null[i]) {
          codes[i] = StringColumn::kNullCode;
          continue;
        }
        out->dict.push_back(prefix,
                            std::string_view(reinterpret_cast<const char*>(data) + off, lens[i]));
        off += lens[i];
        codes[i] = static_cast<uint32_t>(k++);
      }
      return true;
    }
    default:
      return false;
  }
}

// ---- one row -----------------------------------------------------------------------------

namespace {

// Value `i` of n values of `width` bits packed LSB-first. REQUIRES: in_size >=
// BitPackedBytes(n, width), i < n.
uint64_t UnpackOne(const uint8_t* in, size_t in_size, size_t i, int width) {
  if (width == 0) return 0;
  const size_t bit = i * static_cast<size_t>(width);
  const size_t byte = bit >> 3;
  const size_t avail = std::min<size_t>(in_size - byte, 9);
  uint128 x = 0;
  for (size_t k = 0; k < avail; ++k) x |= static_cast<uint128>(in[byte + k]) << (8 * k);
  const uint64_t mask = width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1;
  return static_cast<uint64_t>(x >> (bit & 7)) & mask;
}

}  // namespace

bool DecodeInt64Row(Encoding encoding, std::string_view body, size_t n, size_t row, uint64_t seq,
                    int64_t* out) {
  if (row >= n) return false;
  BodyReader r(body);
  uint64_t x;
  switch (encoding) {
    case Encoding::kIntOffsetBySeq: {
      uint64_t lo, count;
      if (!r.Varint64(&lo) || !r.Varint64(&count) || count == 0 || count > n ||
          count - 1 > UINT64_MAX - lo || seq - lo >= count) {
        return false;
      }
      int64_t b = 0, base = 0;
      for (uint64_t k = 0; k < count; ++k) {
        if (!r.Varint64(&x)) return false;
        b = WrapAdd(b, static_cast<uint64_t>(ZigZagDecode64(x)));
        if (k == seq - lo) base = b;
      }
      uint8_t width;
      if (!r.Varint64(&x) || !r.Byte(&width) || width > 64) return false;
      const uint64_t offset = static_cast<uint64_t>(ZigZagDecode64(x));
      const uint8_t* bits;
      const size_t bytes = BitPackedBytes(n, width);
      if (!r.Bytes(bytes, &bits)) return false;
      *out = WrapAdd(WrapAdd(base, offset), UnpackOne(bits, bytes, row, width));
      return WalkOffsetExceptions(&r, n, [&](size_t at, int64_t v) {
        if (at == row) *out = WrapAdd(base, static_cast<uint64_t>(v));
      });
    }
    case Encoding::kIntStepsBySeq: {
      uint64_t count, step;
      if (!r.Varint64(&count) || count == 0 || count > n) return false;
      if (!r.Varint64(&step) || !r.Varint64(&x)) return false;
      int64_t value = ZigZagDecode64(x);
      if (step > seq) return false;  // no step at or below the row's seq
      bool past = false;             // a step above the row's seq was seen
      for (uint64_t k = 1; k < count; ++k) {
        uint64_t dseq;
        if (!r.Varint64(&dseq) || dseq == 0 || dseq > UINT64_MAX - step || !r.Varint64(&x)) {
          return false;
        }
        step += dseq;
        past |= step > seq;
        if (!past) value = WrapAdd(value, static_cast<uint64_t>(ZigZagDecode64(x)));
      }
      if (!r.empty()) return false;
      *out = value;
      return true;
    }
    case Encoding::kIntFor: {
      IntForBody f;
      if (!ReadIntForBody(encoding, body, n, &f)) return false;
      *out = WrapAdd(f.first, UnpackOne(f.bits, f.bytes, row, f.width));
      return true;
    }
    case Encoding::kIntDeltaFor: {
      IntForBody f;
      if (!ReadIntForBody(encoding, body, n, &f)) return false;
      // The running sum of the first `row` deltas, unpacked 256 at a time.
      int64_t acc = f.first;
      uint64_t buf[256];
      for (size_t i = 0; i < row; i += 256) {
        const size_t m = std::min<size_t>(256, row - i);
        const size_t off = i * f.width / 8;  // i is a multiple of 8: a whole byte
        UnpackBits(f.bits + off, f.bytes - off, m, f.width, buf);
        for (size_t k = 0; k < m; ++k) acc = WrapAdd(acc, buf[k] + f.dbase);
      }
      *out = acc;
      return true;
    }
    case Encoding::kIntRle:
      return WalkIntRuns(&r, n, [&](size_t at, size_t len, int64_t v) {
        if (row >= at && row - at < len) *out = v;
      });
    case Encoding::kIntDeltaVarint: {
      if (!r.Varint64(&x)) return false;
      int64_t acc = ZigZagDecode64(x);
      for (size_t i = 1; i <= row; ++i) {
        if (!r.Varint64(&x)) return false;
        acc = WrapAdd(acc, static_cast<uint64_t>(ZigZagDecode64(x)));
      }
      *out = acc;
      // The rest is not decoded, only counted: exactly n - 1 - row varints must follow (last
      // bytes have the high bit clear; the body ends on one).
      const uint8_t* const end = reinterpret_cast<const uint8_t*>(body.data()) + body.size();
      return CountVarintEnds(end - r.remaining(), end) == n - 1 - row &&
             (r.empty() || (static_cast<uint8_t>(body.back()) & 0x80) == 0);
    }
    default:
      return false;
  }
}

bool DecodeInt128Row(Encoding encoding, std::string_view body, size_t n, size_t row,
                     __int128* out) {
  if (row >= n) return false;
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
      *out = static_cast<__int128>(base + UnpackOne(bits, bytes, row, width));
      return true;
    }
    case Encoding::kInt128Varint: {
      // Skips `row` varints and counts those after the row's (exactly n - row - 1, the body
      // ending on one) by their last bytes (high bit clear), eight bytes at a time.
      const uint8_t* const end = reinterpret_cast<const uint8_t*>(body.data()) + body.size();
      const uint8_t* p = SkipVarints(reinterpret_cast<const uint8_t*>(body.data()), end, row);
      if (p == nullptr) return false;
      BodyReader rest(
          std::string_view(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p)));
      if (!ZigZagVarint128(&rest, out)) return false;
      return CountVarintEnds(end - rest.remaining(), end) == n - 1 - row &&
             (rest.empty() || (body.back() & 0x80) == 0);
    }
    default:
      return false;
  }
}

bool DecodeStringRow(Encoding encoding, std::string_view body, size_t n, bool nullable, size_t row,
                     bool* is_null, std::string* out) {
  if (row >= n) return false;
  BodyReader r(body);
  *is_null = false;
  switch (encoding) {
    case Encoding::kStringDict:
    case Encoding::kStringDictRle: {
      bool has_nulls;
      uint64_t count;
      if (!ReadDictHeader(&r, n, nullable, &has_nulls, &count)) return false;
      const uint64_t domain = count + (has_nulls ? 1 : 0);
      // The dictionary's values are only skipped; the row's is picked out below.
      const uint8_t* dict_begin;
      const size_t dict_offset = body.size() - r.remaining();
      for (uint64_t i = 0; i < count; ++i) {
        std::string_view v;
        if (!r.LengthPrefixed(&v)) return false;
      }
      const size_t dict_size = body.size() - r.remaining() - dict_offset;
      dict_begin = reinterpret_cast<const uint8_t*>(body.data()) + dict_offset;
      uint64_t code = UINT64_MAX;
      if (encoding == Encoding::kStringDict) {
        uint8_t width;
        const uint8_t* bits;
        size_t bytes;
        if (!ReadPackedCodes(&r, n, &width, &bits, &bytes)) return false;
        code = UnpackOne(bits, bytes, row, width);
      } else if (!WalkCodeRuns(&r, n, domain, [&](uint64_t c, size_t at, size_t len) {
                   if (row >= at && row - at < len) code = c;
                 })) {
        return false;
      }
      if (code >= domain) return false;
      if (has_nulls) {
        if (code == 0) {
          *is_null = true;
          out->clear();
          return true;
        }
        --code;
      }
      BodyReader d(std::string_view(reinterpret_cast<const char*>(dict_begin), dict_size));
      std::string_view v;
      for (uint64_t i = 0; i <= code; ++i) {
        if (!d.LengthPrefixed(&v)) return false;
      }
      out->assign(v);
      return true;
    }
    case Encoding::kStringFixed:
    case Encoding::kStringFixedAlphabet: {
      FixedBody f;
      if (!ReadFixedBody(encoding, body, n, nullable, &f)) return false;
      size_t k = row;  // the row's index among the non-null values
      if (f.null_bits != nullptr) {
        if ((f.null_bits[row / 8] >> (row % 8)) & 1) {
          *is_null = true;
          out->clear();
          return true;
        }
        k = NonNullBefore(f.null_bits, row);
      }
      out->assign(f.prefix);
      if (encoding == Encoding::kStringFixed) {
        out->append(reinterpret_cast<const char*>(f.data) + k * f.suffix_len, f.suffix_len);
        return true;
      }
      for (size_t j = 0; j < f.suffix_len; ++j) {
        const uint64_t sym = UnpackOne(f.bits, f.bytes, k * f.suffix_len + j, f.width);
        if (sym > f.alpha_minus_one) return false;
        out->push_back(static_cast<char>(f.alphabet[sym]));
      }
      return true;
    }
    case Encoding::kStringPlain: {
      // Every length is read (the values' bytes start after the last), summing those before
      // the row's.
      std::string_view prefix;
      const uint8_t* data;
      uint64_t before = 0, len = 0;
      if (!ReadPlainBody(body, n, nullable, &prefix, &data,
                         [&](size_t i, uint64_t l, bool null) {
                           if (i < row) before += l;
                           if (i == row) {
                             len = l;
                             *is_null = null;
                           }
                         })) {
        return false;
      }
      if (*is_null) {
        out->clear();
        return true;
      }
      out->assign(prefix);
      out->append(reinterpret_cast<const char*>(data) + before, len);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace usagedb::segment
