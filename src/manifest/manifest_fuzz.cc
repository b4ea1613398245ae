// Fuzz target for DecodeManifest: arbitrary bytes must yield ok or Corruption, never a crash,
// and whatever decodes must survive an encode/decode round trip unchanged.
// Built as a libFuzzer binary with clang and -DUSAGEDB_FUZZ=ON; otherwise as a corpus runner
// (ctest manifest_fuzz_corpus) that feeds every file of the given directories to the target.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "io/file_system.h"
#include "manifest/manifest.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace {

void DecodeOne(std::string_view input) {
  using usagedb::ManifestState;
  ManifestState state;
  usagedb::Status s = usagedb::DecodeManifest(input, &state);
  if (!s.ok()) {
    if (!s.IsCorruption()) std::abort();
    return;
  }
  ManifestState again;
  if (!usagedb::DecodeManifest(usagedb::EncodeManifest(state), &again).ok() || !(again == state)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  DecodeOne(input);
  // Almost every mutation fails the checksum; decode a copy with the crc repaired too, so the
  // section parser sees the mutated bytes.
  if (input.size() >= 4) {
    const size_t n = input.size() - 4;
    usagedb::EncodeFixed32(input.data() + n,
                           usagedb::crc32c::Mask(usagedb::crc32c::Value(input.data(), n)));
    DecodeOne(input);
  }
  return 0;
}

#ifndef USAGEDB_LIBFUZZER
// Usage: manifest_fuzz_corpus DIR...  Runs the target over every file; exit 1 when a
// directory cannot be read or is empty (a corpus that silently vanished tests nothing).
int main(int argc, char** argv) {
  usagedb::FileSystem* fs = usagedb::FileSystem::Default();
  int files = 0;
  for (int i = 1; i < argc; i++) {
    auto names = fs->ListDir(argv[i]);
    if (!names.ok()) {
      std::fprintf(stderr, "%s\n", names.status().ToString().c_str());
      return 1;
    }
    for (const std::string& name : *names) {
      std::string bytes;
      usagedb::Status s = fs->ReadFileToString(usagedb::JoinPath(argv[i], name), &bytes);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      files++;
    }
  }
  std::printf("ran %d corpus files\n", files);
  return files > 0 ? 0 : 1;
}
#endif
