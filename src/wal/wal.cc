// WAL file names and the writer. The reader is in wal_reader.cc.
#include "wal/wal.h"

#include <cinttypes>
#include <cstdio>

#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/range_crc.h"

namespace usagedb::wal {

std::string WalFileName(uint64_t file_number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%012" PRIu64 ".log", file_number);
  return buf;
}

std::string WalRecycleFileName(uint64_t file_number) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%012" PRIu64 ".recycle.tmp", file_number);
  return buf;
}

bool ParseWalFileName(std::string_view name, uint64_t* file_number) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() < kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  std::string_view digits = name.substr(0, name.size() - kSuffix.size());
  if (digits.size() < 12 || digits.size() > 20) return false;
  // Beyond the 12 padded digits a leading zero would make two names for one number.
  if (digits.size() > 12 && digits[0] == '0') return false;
  uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *file_number = v;
  return true;
}

std::string EncodeFileHeader(uint64_t file_number, uint64_t start_sequence, uint32_t version) {
  std::string h(kMagic, sizeof(kMagic));
  PutFixed32(&h, version);
  PutFixed64(&h, file_number);
  PutFixed64(&h, start_sequence);
  PutFixed32(&h, crc32c::Mask(crc32c::Value(h)));
  return h;
}

Result<std::unique_ptr<Writer>> Writer::Create(FileSystem* fs, const std::string& dir,
                                               uint64_t file_number, uint64_t start_sequence) {
  std::string path = JoinPath(dir, WalFileName(file_number));
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs->NewWritableFile(path));
  std::string header = EncodeFileHeader(file_number, start_sequence);
  static_assert(kHeaderSize == sizeof(kMagic) + 4 + 8 + 8 + 4);
  RETURN_IF_ERROR(file->Append(header).WithContext("creating WAL file " + path));
  RETURN_IF_ERROR(file->Sync().WithContext("creating WAL file " + path));
  RETURN_IF_ERROR(fs->SyncDir(dir).WithContext("creating WAL file " + path));
  std::unique_ptr<Writer> w(new Writer(std::move(file), std::move(path), file_number));
  w->synced_size_ = kHeaderSize;
  return w;
}

Result<std::unique_ptr<Writer>> Writer::CreateRecycled(FileSystem* fs, const std::string& dir,
                                                       const std::string& recycled_path,
                                                       uint64_t file_number,
                                                       uint64_t start_sequence) {
  std::string path = JoinPath(dir, WalFileName(file_number));
  const std::string context = "recycling " + recycled_path + " as WAL file " + path;
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs->NewOverwritingFile(recycled_path));
  // The header is durable before the file gets its name: a WAL file name never shows another
  // file's header (which the reader would report as damage).
  RETURN_IF_ERROR(file->Append(EncodeFileHeader(file_number, start_sequence)).WithContext(context));
  RETURN_IF_ERROR(file->Sync().WithContext(context));
  RETURN_IF_ERROR(fs->Rename(recycled_path, path).WithContext(context));
  RETURN_IF_ERROR(fs->SyncDir(dir).WithContext(context));
  std::unique_ptr<Writer> w(new Writer(std::move(file), std::move(path), file_number));
  w->synced_size_ = kHeaderSize;
  return w;
}

Result<std::unique_ptr<Writer>> Writer::OpenForAppend(FileSystem* fs, const std::string& dir,
                                                      uint64_t file_number, uint64_t valid_length) {
  std::string path = JoinPath(dir, WalFileName(file_number));
  if (valid_length < kHeaderSize) {
    return Status::InvalidArgument(path + ": cannot append to a WAL file without a header");
  }
  const std::string context = "reopening WAL file " + path;
  ASSIGN_OR_RETURN(uint64_t size, fs->FileSize(path));
  if (size < valid_length) {
    return Status::InvalidArgument(context + ": valid length " + std::to_string(valid_length) +
                                   " exceeds file size " + std::to_string(size));
  }
  if (size > valid_length) {
    RETURN_IF_ERROR(fs->Truncate(path, valid_length).WithContext(context));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs->NewAppendableFile(path));
  // The truncation must be durable before records appended after it are acknowledged.
  RETURN_IF_ERROR(file->Sync().WithContext(context));
  RETURN_IF_ERROR(fs->SyncDir(dir).WithContext(context));
  std::unique_ptr<Writer> w(new Writer(std::move(file), std::move(path), file_number));
  w->synced_size_ = valid_length;
  return w;
}

uint32_t RecordCrcSeed(uint64_t file_number) {
  char b[8];
  EncodeFixed64(b, file_number);
  return crc32c::Value(b, sizeof(b));
}

void FrameRecordV1(RecordType type, std::string_view payload, std::string* dst) {
  const char type_byte = static_cast<char>(type);
  const uint32_t crc =
      crc32c::Extend(crc32c::Value(&type_byte, 1), payload.data(), payload.size());
  PutFixed32(dst, static_cast<uint32_t>(payload.size()));
  PutFixed32(dst, crc32c::Mask(crc));
  dst->push_back(type_byte);
  dst->append(payload.data(), payload.size());
}

namespace {

// crc = crc32c(file_number ++ type ++ head) so far; the record header goes first.
void PutRecordHeader(uint64_t file_number, uint32_t length, uint32_t crc, char type_byte,
                     std::string* dst) {
  PutFixed32(dst, length);
  PutFixed32(dst, crc32c::Mask(crc));
  PutFixed32(dst, static_cast<uint32_t>(file_number));  // file_tag
  dst->push_back(type_byte);
}

uint32_t HeadCrc(uint64_t file_number, char type_byte, std::string_view head) {
  return crc32c::Extend(crc32c::Extend(RecordCrcSeed(file_number), &type_byte, 1), head.data(),
                        head.size());
}

}  // namespace

void Writer::FrameRecord(uint64_t file_number, RecordType type, std::string_view payload,
                         std::string* dst) {
  FrameRecord(file_number, type, payload, std::string_view(), dst);
}

void Writer::FrameRecord(uint64_t file_number, RecordType type, std::string_view head,
                         std::string_view tail, std::string* dst) {
  const char type_byte = static_cast<char>(type);
  const uint32_t crc =
      crc32c::Extend(HeadCrc(file_number, type_byte, head), tail.data(), tail.size());
  PutRecordHeader(file_number, static_cast<uint32_t>(head.size() + tail.size()), crc, type_byte,
                  dst);
  dst->append(head.data(), head.size());
  dst->append(tail.data(), tail.size());
}

void Writer::FrameRecord(uint64_t file_number, RecordType type, std::string_view head,
                         std::string_view tail, uint32_t tail_crc, std::string* dst) {
  FrameRecordWithoutTail(file_number, type, head, tail.size(), tail_crc, dst);
  dst->append(tail.data(), tail.size());
}

void Writer::FrameRecordWithoutTail(uint64_t file_number, RecordType type, std::string_view head,
                                    size_t tail_size, uint32_t tail_crc, std::string* dst) {
  const char type_byte = static_cast<char>(type);
  const uint32_t crc =
      internal::Crc32cCombine(HeadCrc(file_number, type_byte, head), tail_crc, tail_size);
  PutRecordHeader(file_number, static_cast<uint32_t>(head.size() + tail_size), crc, type_byte,
                  dst);
  dst->append(head.data(), head.size());
}

Status Writer::CheckWritable() const {
  if (sealed_) {
    return Status::IOError(path_ +
                           ": WAL file is sealed after an earlier write or sync error; it is "
                           "never appended to again");
  }
  if (closed_) return Status::IOError(path_ + ": WAL file is closed");
  return Status::OK();
}

Status Writer::Seal(const Status& cause, std::string_view what) {
  sealed_ = true;
  return cause.WithContext(path_ + ": WAL " + std::string(what) + " failed, file sealed");
}

Status Writer::AddRecord(RecordType type, std::string_view payload) {
  RETURN_IF_ERROR(CheckWritable());
  if (payload.size() > kMaxRecordSize) {
    return Status::InvalidArgument(path_ + ": WAL record of " + std::to_string(payload.size()) +
                                   " bytes exceeds the maximum of " +
                                   std::to_string(kMaxRecordSize));
  }
  std::string framed;
  framed.reserve(kRecordHeaderSize + payload.size());
  FrameRecord(file_number_, type, payload, &framed);
  return AppendFramed(framed);
}

Status Writer::AppendFramed(std::string_view framed) { return AppendFramedV({&framed, 1}); }

Status Writer::AppendFramedV(std::span<const std::string_view> parts) {
  RETURN_IF_ERROR(CheckWritable());
  const uint64_t offset = file_->Size();
  Status s = file_->AppendV(parts);
  if (!s.ok()) return Seal(s, "append at offset " + std::to_string(offset));
  return Status::OK();
}

Status Writer::Sync() {
  RETURN_IF_ERROR(CheckWritable());
  const uint64_t size = file_->Size();
  Status s = file_->Sync();
  if (!s.ok()) return Seal(s, "sync at size " + std::to_string(size));
  synced_size_ = size;
  return Status::OK();
}

Status Writer::Close() {
  if (closed_) return Status::IOError(path_ + ": WAL file is closed");
  Status sealed = CheckWritable();
  closed_ = true;
  Status s = file_->Close();
  if (!sealed.ok()) return sealed;
  if (!s.ok()) return Seal(s, "close");
  return Status::OK();
}

uint64_t Writer::size() const { return file_->Size(); }

}  // namespace usagedb::wal
