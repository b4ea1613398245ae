// Fuzz target for the WAL reader: the input bytes are written to a temp file named as a WAL
// file and read with repair off and on. Besides "never crash", it checks the reader's
// contract and aborts on a violation:
//  * without repair, ok => the valid prefix re-frames byte for byte from the records read;
//  * repair never fails where a plain read succeeds, and then returns the same result;
//  * every failure is Corruption naming the file.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "io/file_system.h"
#include "util/coding.h"
#include "wal/wal.h"

namespace {

using usagedb::FileSystem;
using usagedb::wal::ReadResult;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "wal_fuzz invariant violated: %s: %s\n", what, detail.c_str());
  std::abort();
}

const std::string& FuzzPath() {
  static const std::string path = [] {
    std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/wal_fuzz_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp", tmpl);
    std::string dir = tmpl;
    std::string file = usagedb::JoinPath(dir, usagedb::wal::WalFileName(1));
    // Best-effort cleanup at exit; the fuzzer may also be killed.
    static std::string cleanup_file = file, cleanup_dir = dir;
    std::atexit([] {
      unlink(cleanup_file.c_str());
      rmdir(cleanup_dir.c_str());
    });
    return file;
  }();
  return path;
}

// A record as it was framed in the file: kDurable* records carry their durable_length
// prefix, which the reader strips.
std::string Reframe(const ReadResult& r, const usagedb::wal::Record& rec) {
  using usagedb::wal::RecordType;
  std::string payload;
  RecordType type = rec.type;
  if (rec.durable_length != UINT64_MAX) {
    usagedb::PutFixed64(&payload, rec.durable_length);
    type = rec.type == RecordType::kUnit ? RecordType::kDurableUnit : RecordType::kDurableVoid;
  }
  payload += rec.payload;
  std::string out;
  if (r.version == usagedb::wal::kVersionV1) {
    usagedb::wal::FrameRecordV1(type, payload, &out);
  } else {
    usagedb::wal::Writer::FrameRecord(r.file_number, type, payload, &out);
  }
  return out;
}

void CheckStatus(const usagedb::Status& s, const std::string& path) {
  if (!s.IsCorruption()) Fail("non-corruption error", s.ToString());
  if (s.message().find(path) == std::string::npos) Fail("message lacks path", s.ToString());
  if (s.message().find("offset") == std::string::npos) Fail("message lacks offset", s.ToString());
}

void CheckPlain(const ReadResult& r, std::string_view data) {
  if (r.repaired_bytes != 0) Fail("repaired bytes without repair", "");
  if (r.valid_length > data.size()) Fail("valid_length beyond file", "");
  if (data.size() < usagedb::wal::kHeaderSize) {
    if (!r.torn_tail || r.valid_length != 0 || !r.records.empty()) Fail("short file", "");
    return;
  }
  std::string reframed =
      usagedb::wal::EncodeFileHeader(r.file_number, r.start_sequence, r.version);
  for (const auto& rec : r.records) {
    if (rec.offset != reframed.size()) Fail("record offset", std::to_string(rec.offset));
    reframed += Reframe(r, rec);
  }
  if (reframed.size() != r.valid_length) Fail("valid_length != end of last record", "");
  if (data.substr(0, reframed.size()) != reframed) Fail("valid prefix does not re-frame", "");
  if (r.torn_tail != (r.valid_length < data.size())) Fail("torn_tail flag", "");
  if (r.unsynced_records_dropped > 0 && !r.torn_tail) Fail("unsynced records without torn tail", "");
}

bool SameResult(const ReadResult& a, const ReadResult& b) {
  if (a.file_number != b.file_number || a.start_sequence != b.start_sequence ||
      a.valid_length != b.valid_length || a.torn_tail != b.torn_tail ||
      a.repaired_bytes != b.repaired_bytes || a.records.size() != b.records.size() ||
      a.unsynced_records_dropped != b.unsynced_records_dropped) {
    return false;
  }
  for (size_t i = 0; i < a.records.size(); ++i) {
    if (a.records[i].type != b.records[i].type || a.records[i].offset != b.records[i].offset ||
        a.records[i].payload != b.records[i].payload ||
        a.records[i].durable_length != b.records[i].durable_length) {
      return false;
    }
  }
  return true;
}

void CheckRepaired(const ReadResult& r, std::string_view data) {
  uint64_t end = usagedb::wal::kHeaderSize;
  uint64_t skipped = 0;
  for (const auto& rec : r.records) {
    if (rec.offset < end) Fail("repaired records overlap", std::to_string(rec.offset));
    skipped += rec.offset - end;
    end = rec.offset + Reframe(r, rec).size();
  }
  if (!r.records.empty() && end != r.valid_length) Fail("repair valid_length", "");
  if (skipped != r.repaired_bytes) Fail("repaired_bytes != gaps between records", "");
  if (r.valid_length > data.size()) Fail("repair valid_length beyond file", "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FileSystem* fs = FileSystem::Default();
  const std::string& path = FuzzPath();
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  {
    auto file = fs->NewWritableFile(path);
    if (!file.ok()) Fail("create temp file", file.status().ToString());
    if (!(*file)->Append(data).ok() || !(*file)->Close().ok()) Fail("write temp file", path);
  }
  auto plain = usagedb::wal::ReadWalFile(fs, path, /*repair=*/false);
  auto repaired = usagedb::wal::ReadWalFile(fs, path, /*repair=*/true);
  if (plain.ok()) {
    CheckPlain(*plain, data);
    if (!repaired.ok()) Fail("repair failed where a plain read succeeded", "");
    if (!SameResult(*plain, *repaired)) Fail("repair changed an undamaged result", "");
  } else {
    CheckStatus(plain.status(), path);
  }
  if (repaired.ok()) {
    CheckRepaired(*repaired, data);
  } else {
    CheckStatus(repaired.status(), path);
  }
  return 0;
}
