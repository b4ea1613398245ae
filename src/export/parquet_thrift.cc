#include "export/parquet_thrift.h"

#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstring>
#include <exception>
#include <memory>

#include "export/parquet_format.h"
#include "util/coding.h"

namespace usagedb {
namespace parquet {

namespace {

using apache::thrift::protocol::TCompactProtocolT;
using apache::thrift::transport::TMemoryBuffer;

// Thrift throws (TException and std::bad_alloc); nothing escapes this function.
template <typename T>
Status SerializeImpl(const T& obj, std::string* out) {
  try {
    auto buffer = std::make_shared<TMemoryBuffer>(256);
    TCompactProtocolT<TMemoryBuffer> protocol(buffer);
    obj.write(&protocol);
    uint8_t* data = nullptr;
    uint32_t size = 0;
    buffer->getBuffer(&data, &size);
    out->append(reinterpret_cast<const char*>(data), size);
    return Status::OK();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("thrift serialize: ") + e.what());
  } catch (...) {
    return Status::Internal("thrift serialize: unknown exception");
  }
}

template <typename T>
Status DeserializeImpl(std::string_view in, std::string_view what, T* obj, size_t* consumed) {
  try {
    // OBSERVE: the buffer reads `in` in place and never writes to it.
    auto buffer = std::make_shared<TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(in.data())), static_cast<uint32_t>(in.size()),
        TMemoryBuffer::OBSERVE);
    const int32_t limit = static_cast<int32_t>(std::min<size_t>(in.size(), INT32_MAX));
    TCompactProtocolT<TMemoryBuffer> protocol(buffer, limit, limit);
    obj->read(&protocol);
    if (consumed != nullptr) *consumed = in.size() - buffer->available_read();
    return Status::OK();
  } catch (const std::exception& e) {
    return Status::Corruption(std::string(what) + ": bad thrift metadata: " + e.what());
  } catch (...) {
    return Status::Corruption(std::string(what) + ": bad thrift metadata");
  }
}

}  // namespace

Status SerializeThrift(const pf::FileMetaData& obj, std::string* out) {
  return SerializeImpl(obj, out);
}
Status SerializeThrift(const pf::PageHeader& obj, std::string* out) {
  return SerializeImpl(obj, out);
}

Status DeserializeThrift(std::string_view in, std::string_view what, pf::FileMetaData* obj,
                         size_t* consumed) {
  if (in.size() > UINT32_MAX) return Status::Corruption(std::string(what) + ": footer too large");
  return DeserializeImpl(in, what, obj, consumed);
}
Status DeserializeThrift(std::string_view in, std::string_view what, pf::PageHeader* obj,
                         size_t* consumed) {
  if (in.size() > UINT32_MAX) in = in.substr(0, UINT32_MAX);
  return DeserializeImpl(in, what, obj, consumed);
}

Result<pf::FileMetaData> ReadParquetFooter(FileSystem* fs, const std::string& path) {
  ASSIGN_OR_RETURN(auto file, fs->NewRandomAccessFile(path));
  const uint64_t size = file->Size();
  const uint64_t kTail = 4 + kMagic.size();  // footer length + magic
  if (size < kMagic.size() + kTail) {
    return Status::Corruption(path + ": too short for a Parquet file (" + std::to_string(size) +
                              " bytes)");
  }
  std::string head;
  RETURN_IF_ERROR(file->Read(0, kMagic.size(), &head));
  if (head != kMagic) return Status::Corruption(path + ": missing PAR1 magic at start");
  std::string tail;
  RETURN_IF_ERROR(file->Read(size - kTail, kTail, &tail));
  if (tail.size() != kTail) return Status::Corruption(path + ": short read of footer tail");
  if (std::string_view(tail).substr(4) != kMagic) {
    return Status::Corruption(path + ": missing PAR1 magic at end");
  }
  const uint32_t footer_len = DecodeFixed32(tail.data());
  if (footer_len == 0 || footer_len > size - kMagic.size() - kTail) {
    return Status::Corruption(path + ": footer length " + std::to_string(footer_len) +
                              " out of range");
  }
  std::string footer;
  RETURN_IF_ERROR(file->Read(size - kTail - footer_len, footer_len, &footer));
  if (footer.size() != footer_len) return Status::Corruption(path + ": short read of footer");
  pf::FileMetaData meta;
  size_t consumed = 0;
  RETURN_IF_ERROR(DeserializeThrift(footer, path, &meta, &consumed));
  if (consumed != footer_len) {
    return Status::Corruption(path + ": footer has " + std::to_string(footer_len - consumed) +
                              " trailing bytes");
  }
  return meta;
}

}  // namespace parquet
}  // namespace usagedb
