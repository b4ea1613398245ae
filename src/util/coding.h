// Little-endian fixed-width and varint encodings (docs/format.md, "Primitive encodings").
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace usagedb {

inline void PutFixed32(std::string* dst, uint32_t v) {
  char buf[4];
  std::memcpy(buf, &v, 4);  // x86-64 and every supported target are little-endian
  dst->append(buf, 4);
}
inline void PutFixed64(std::string* dst, uint64_t v) {
  char buf[8];
  std::memcpy(buf, &v, 8);
  dst->append(buf, 8);
}
inline uint32_t DecodeFixed32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t DecodeFixed64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void EncodeFixed32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void EncodeFixed64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }

inline void PutVarint64(std::string* dst, uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  dst->append(buf, n);
}
inline void PutVarint32(std::string* dst, uint32_t v) { PutVarint64(dst, v); }

inline uint64_t ZigZagEncode64(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t ZigZagDecode64(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

// Unsigned 128-bit varint (up to 19 bytes) and its zigzag form for signed 128-bit values.
void PutVarint128(std::string* dst, unsigned __int128 v);
inline unsigned __int128 ZigZagEncode128(__int128 v) {
  return (static_cast<unsigned __int128>(v) << 1) ^ static_cast<unsigned __int128>(v >> 127);
}
inline __int128 ZigZagDecode128(unsigned __int128 v) {
  return static_cast<__int128>((v >> 1) ^ (~(v & 1) + 1));
}

inline void PutLengthPrefixed(std::string* dst, std::string_view s) {
  PutVarint64(dst, s.size());
  dst->append(s.data(), s.size());
}

// A bounds-checked reader over a byte range. Every Get* returns false (and leaves the
// reader failed) when the input is short or malformed; callers turn that into Corruption.
class Decoder {
 public:
  Decoder() = default;
  explicit Decoder(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}

  bool GetFixed32(uint32_t* v);
  bool GetFixed64(uint64_t* v);
  bool GetVarint64(uint64_t* v);
  bool GetVarint32(uint32_t* v);
  bool GetVarint128(unsigned __int128* v);
  bool GetByte(uint8_t* v);
  bool GetBytes(size_t n, std::string_view* v);
  bool GetLengthPrefixed(std::string_view* v);

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const char* pos() const { return p_; }

 private:
  const char* p_ = nullptr;
  const char* end_ = nullptr;
};

}  // namespace usagedb
