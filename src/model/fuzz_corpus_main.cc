// Runs the event JSON fuzz target as a normal test: every file of the corpus directory
// (argv[1]), then deterministic mutations of each (truncations, byte flips, splices) and
// generated garbage. Exits non-zero when the corpus is missing; a crash fails the test.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void Run(const std::string& s) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::vector<std::string> corpus;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    corpus.push_back(ss.str());
  }
  if (corpus.size() < 15) {
    std::fprintf(stderr, "corpus %s has only %zu files\n", argv[1], corpus.size());
    return 1;
  }
  std::mt19937_64 rng(20260501);
  size_t runs = 0;
  for (const auto& s : corpus) {
    Run(s);
    ++runs;
    for (size_t n = 0; n < s.size(); n += 1 + s.size() / 64) {
      Run(s.substr(0, n));
      ++runs;
    }
    for (int i = 0; i < 200; ++i) {
      std::string m = s;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < edits && !m.empty(); ++k) {
        size_t pos = rng() % m.size();
        switch (rng() % 4) {
          case 0:
            m[pos] = static_cast<char>(rng());
            break;
          case 1:
            m.erase(pos, 1 + rng() % 8);
            break;
          case 2:
            m.insert(pos, 1, "{}[]\",:\\0-e.\n\xff"[rng() % 15]);
            break;
          case 3: {
            const std::string& other = corpus[rng() % corpus.size()];
            size_t from = other.empty() ? 0 : rng() % other.size();
            m.insert(pos, other.substr(from, rng() % 64));
            break;
          }
        }
      }
      Run(m);
      ++runs;
    }
  }
  for (int i = 0; i < 2000; ++i) {
    std::string g(rng() % 256, '\0');
    for (auto& c : g) c = static_cast<char>(rng());
    Run(g);
    ++runs;
  }
  std::printf("model_fuzz_corpus: %zu inputs from %zu corpus files, no crash\n", runs,
              corpus.size());
  return 0;
}
