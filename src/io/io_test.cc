// Tests of the FileSystem seam: one contract run against the POSIX and the in-memory file
// systems, then the durability model and faults of FaultInjectionFileSystem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <thread>

#include "io/fault_injection_fs.h"
#include "io/file_system.h"
#include "io/mem_file_system.h"

namespace usagedb {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// ---------------------------------------------------------------------------------------------
// The contract every FileSystem keeps, run against POSIX (in a temp dir) and MemFileSystem.

enum class FsType { kPosix, kMem };

class FileSystemContractTest : public ::testing::TestWithParam<FsType> {
 protected:
  void SetUp() override {
    if (GetParam() == FsType::kPosix) {
      std::string tmpl = ::testing::TempDir() + "usagedb_io_test_XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
      root_ = tmpl;
      fs_ = FileSystem::Default();
    } else {
      mem_ = std::make_unique<MemFileSystem>();
      fs_ = mem_.get();
      root_ = "/t";
      ASSERT_TRUE(fs_->CreateDir(root_).ok());
    }
  }
  void TearDown() override {
    if (GetParam() == FsType::kPosix) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
    }
  }

  std::string P(const std::string& name) const { return JoinPath(root_, name); }

  void Write(const std::string& name, std::string_view data) {
    auto f = fs_->NewWritableFile(P(name));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->Append(data).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  std::string Read(const std::string& name) {
    std::string out;
    Status s = fs_->ReadFileToString(P(name), &out);
    return s.ok() ? out : s.ToString();
  }
  std::vector<std::string> List(const std::string& name) {
    auto r = fs_->ListDir(P(name));
    return r.ok() ? *r : std::vector<std::string>{r.status().ToString()};
  }

  FileSystem* fs_ = nullptr;
  std::unique_ptr<MemFileSystem> mem_;
  std::string root_;
};

TEST_P(FileSystemContractTest, AppendReadSize) {
  auto f = fs_->NewWritableFile(P("a"));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("hello ").ok());
  ASSERT_TRUE((*f)->Append("world").ok());
  EXPECT_EQ(11u, (*f)->Size());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ("hello world", Read("a"));
  EXPECT_EQ(11u, *fs_->FileSize(P("a")));

  auto r = fs_->NewRandomAccessFile(P("a"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(11u, (*r)->Size());
  std::string out;
  ASSERT_TRUE((*r)->Read(6, 100, &out).ok());
  EXPECT_EQ("world", out);  // short read = end of file
  ASSERT_TRUE((*r)->Read(20, 5, &out).ok());
  EXPECT_EQ("", out);
}

// AppendV writes the concatenation of its parts (POSIX: writev, resumed after short writes and
// split at IOV_MAX; the others: one Append of the joined bytes), empty parts included.
TEST_P(FileSystemContractTest, AppendVWritesTheConcatenation) {
  auto f = fs_->NewWritableFile(P("v"));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("<").ok());
  std::vector<std::string> owned;
  std::string expect = "<";
  for (int i = 0; i < 2500; i++) {  // more parts than one writev takes (IOV_MAX = 1024)
    owned.push_back(i % 7 == 0 ? std::string() : std::string(static_cast<size_t>(i % 13) + 1,
                                                             static_cast<char>('a' + i % 26)));
    expect += owned.back();
  }
  owned.push_back(std::string(300000, 'z'));  // a part larger than a typical single write
  expect += owned.back();
  std::vector<std::string_view> parts(owned.begin(), owned.end());
  ASSERT_TRUE((*f)->AppendV(parts).ok());
  ASSERT_TRUE((*f)->AppendV({}).ok());
  ASSERT_TRUE((*f)->Append(">").ok());
  expect += ">";
  EXPECT_EQ(expect.size(), (*f)->Size());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(expect, Read("v"));
}

TEST_P(FileSystemContractTest, MappedFileReadsLikeARandomAccessFile) {
  Write("a", "hello world");
  Write("empty", "");
  auto m = fs_->NewMappedFile(P("a"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(11u, (*m)->Size());
  // POSIX maps the file; the in-memory file system reads it as usual (every read seen).
  EXPECT_EQ(GetParam() == FsType::kPosix ? "hello world" : "", (*m)->Mapping());
  std::string out;
  ASSERT_TRUE((*m)->Read(6, 100, &out).ok());
  EXPECT_EQ("world", out);  // short read = end of file
  ASSERT_TRUE((*m)->Read(20, 5, &out).ok());
  EXPECT_EQ("", out);
  ASSERT_TRUE((*m)->Read(0, 5, &out).ok());
  EXPECT_EQ("hello", out);
  auto e = fs_->NewMappedFile(P("empty"));  // cannot be mapped: read the usual way
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(0u, (*e)->Size());
  EXPECT_TRUE((*e)->Mapping().empty());
  ASSERT_TRUE((*e)->Read(0, 5, &out).ok());
  EXPECT_EQ("", out);
  EXPECT_TRUE(fs_->NewMappedFile(P("nope")).status().IsNotFound());
  // A mapping outlives the file's name.
  ASSERT_TRUE(fs_->RemoveFile(P("a")).ok());
  ASSERT_TRUE((*m)->Read(0, 5, &out).ok());
  EXPECT_EQ("hello", out);
}

TEST_P(FileSystemContractTest, AppendableFileAppendsAtEnd) {
  Write("a", "abc");
  auto f = fs_->NewAppendableFile(P("a"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(3u, (*f)->Size());
  ASSERT_TRUE((*f)->Append("def").ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ("abcdef", Read("a"));
}

// NewOverwritingFile writes from offset 0 over the old bytes, keeps the rest, and grows the
// file only when it writes past the old end; Size() is what this handle wrote.
TEST_P(FileSystemContractTest, OverwritingFileWritesOverOldContents) {
  Write("a", "0123456789");
  auto f = fs_->NewOverwritingFile(P("a"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(0u, (*f)->Size());
  ASSERT_TRUE((*f)->Append("ab").ok());
  ASSERT_TRUE((*f)->Append("cd").ok());
  EXPECT_EQ(4u, (*f)->Size());
  ASSERT_TRUE((*f)->Sync().ok());
  EXPECT_EQ("abcd456789", Read("a"));
  EXPECT_EQ(10u, *fs_->FileSize(P("a")));
  ASSERT_TRUE((*f)->Append("efghijkl").ok());
  EXPECT_EQ(12u, (*f)->Size());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ("abcdefghijkl", Read("a"));
  EXPECT_EQ(12u, *fs_->FileSize(P("a")));
  EXPECT_EQ(StatusCode::kNotFound, fs_->NewOverwritingFile(P("missing")).status().code());
}

TEST_P(FileSystemContractTest, NewWritableFileTruncatesExisting) {
  Write("a", "old contents");
  Write("a", "new");
  EXPECT_EQ("new", Read("a"));
}

TEST_P(FileSystemContractTest, AppendAfterCloseFails) {
  auto f = fs_->NewWritableFile(P("a"));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_TRUE((*f)->Append("x").IsIOError());
  EXPECT_TRUE((*f)->Close().ok());  // closing twice is harmless
}

TEST_P(FileSystemContractTest, MissingFileIsNotFound) {
  EXPECT_FALSE(fs_->FileExists(P("nope")));
  EXPECT_TRUE(fs_->NewRandomAccessFile(P("nope")).status().IsNotFound());
  EXPECT_TRUE(fs_->FileSize(P("nope")).status().IsNotFound());
  EXPECT_TRUE(fs_->RemoveFile(P("nope")).IsNotFound());
  EXPECT_TRUE(fs_->ListDir(P("nope")).status().IsNotFound());
  EXPECT_TRUE(fs_->Rename(P("nope"), P("x")).IsNotFound());
  EXPECT_TRUE(fs_->NewWritableFile(P("nodir/a")).status().IsNotFound());
  EXPECT_TRUE(fs_->SyncDir(P("nope")).IsNotFound());
  EXPECT_TRUE(fs_->Truncate(P("nope"), 0).IsNotFound());
}

TEST_P(FileSystemContractTest, RenameReplacesTarget) {
  Write("a", "A");
  Write("b", "B");
  ASSERT_TRUE(fs_->Rename(P("a"), P("b")).ok());
  EXPECT_FALSE(fs_->FileExists(P("a")));
  EXPECT_EQ("A", Read("b"));
  EXPECT_THAT(List(""), UnorderedElementsAre("b"));
}

TEST_P(FileSystemContractTest, RenameDirectoryMovesChildren) {
  ASSERT_TRUE(fs_->CreateDir(P("d")).ok());
  Write("d/x", "X");
  ASSERT_TRUE(fs_->Rename(P("d"), P("e")).ok());
  EXPECT_EQ("X", Read("e/x"));
  EXPECT_FALSE(fs_->FileExists(P("d")));
  EXPECT_TRUE(fs_->Rename(P("e"), P("e/inside")).IsIOError());
}

TEST_P(FileSystemContractTest, RenameFileOverDirectoryFails) {
  Write("a", "A");
  ASSERT_TRUE(fs_->CreateDir(P("d")).ok());
  EXPECT_TRUE(fs_->Rename(P("a"), P("d")).IsIOError());
  EXPECT_EQ("A", Read("a"));
}

TEST_P(FileSystemContractTest, ListDirReturnsNames) {
  EXPECT_TRUE(List("").empty());
  Write("a", "");
  Write("b", "");
  ASSERT_TRUE(fs_->CreateDir(P("sub")).ok());
  Write("sub/c", "");
  EXPECT_THAT(List(""), UnorderedElementsAre("a", "b", "sub"));
  EXPECT_THAT(List("sub"), UnorderedElementsAre("c"));
  EXPECT_TRUE(fs_->ListDir(P("a")).status().IsIOError());  // not a directory
}

TEST_P(FileSystemContractTest, CreateDirOnMissingParentIsNotFound) {
  EXPECT_TRUE(fs_->CreateDir(P("x/y")).IsNotFound());
  EXPECT_FALSE(fs_->FileExists(P("x")));
}

TEST_P(FileSystemContractTest, CreateDirIsIdempotent) {
  ASSERT_TRUE(fs_->CreateDir(P("d")).ok());
  EXPECT_TRUE(fs_->CreateDir(P("d")).ok());
}

TEST_P(FileSystemContractTest, CreateDirsMakesParents) {
  ASSERT_TRUE(fs_->CreateDirs(P("x/y/z")).ok());
  EXPECT_TRUE(fs_->FileExists(P("x/y/z")));
  EXPECT_TRUE(fs_->CreateDirs(P("x/y/z")).ok());
  Write("x/y/z/f", "F");
  EXPECT_EQ("F", Read("x/y/z/f"));
}

TEST_P(FileSystemContractTest, RemoveDirRequiresEmpty) {
  ASSERT_TRUE(fs_->CreateDir(P("d")).ok());
  Write("d/f", "");
  EXPECT_TRUE(fs_->RemoveDir(P("d")).IsIOError());
  ASSERT_TRUE(fs_->RemoveFile(P("d/f")).ok());
  ASSERT_TRUE(fs_->RemoveDir(P("d")).ok());
  EXPECT_FALSE(fs_->FileExists(P("d")));
}

TEST_P(FileSystemContractTest, RemoveFileOnDirectoryFails) {
  ASSERT_TRUE(fs_->CreateDir(P("d")).ok());
  EXPECT_TRUE(fs_->RemoveFile(P("d")).IsIOError());
}

TEST_P(FileSystemContractTest, LinkFileSharesContents) {
  Write("a", "one");
  ASSERT_TRUE(fs_->LinkFile(P("a"), P("b")).ok());
  auto f = fs_->NewAppendableFile(P("b"));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(" two").ok());
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ("one two", Read("a"));
  ASSERT_TRUE(fs_->RemoveFile(P("a")).ok());
  EXPECT_EQ("one two", Read("b"));
  EXPECT_TRUE(fs_->LinkFile(P("b"), P("b")).IsIOError());  // target exists
}

TEST_P(FileSystemContractTest, TruncateShrinksAndExtends) {
  Write("a", "abcdef");
  ASSERT_TRUE(fs_->Truncate(P("a"), 2).ok());
  EXPECT_EQ("ab", Read("a"));
  ASSERT_TRUE(fs_->Truncate(P("a"), 4).ok());
  EXPECT_EQ(std::string("ab\0\0", 4), Read("a"));
}

TEST_P(FileSystemContractTest, WriteFileAtomicReplaces) {
  ASSERT_TRUE(fs_->WriteFileAtomic(P("CURRENT"), "v1").ok());
  ASSERT_TRUE(fs_->WriteFileAtomic(P("CURRENT"), "v2").ok());
  EXPECT_EQ("v2", Read("CURRENT"));
  EXPECT_THAT(List(""), UnorderedElementsAre("CURRENT"));
}

TEST_P(FileSystemContractTest, SyncDirOfFileFails) {
  Write("a", "");
  EXPECT_TRUE(fs_->SyncDir(P("a")).IsIOError());
  EXPECT_TRUE(fs_->SyncDir(root_).ok());
}

TEST_P(FileSystemContractTest, LockFileTwiceIsBusy) {
  auto first = fs_->LockFile(P("LOCK"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = fs_->LockFile(P("LOCK"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(StatusCode::kBusy, second.status().code());
  EXPECT_THAT(second.status().message(), HasSubstr("locked"));
  EXPECT_THAT(second.status().message(), HasSubstr("pid " + std::to_string(::getpid())));
  first->reset();  // released by destruction
  auto third = fs_->LockFile(P("LOCK"));
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(Both, FileSystemContractTest,
                         ::testing::Values(FsType::kPosix, FsType::kMem),
                         [](const ::testing::TestParamInfo<FsType>& param_info) {
                           return param_info.param == FsType::kPosix ? "Posix" : "Mem";
                         });

// ---------------------------------------------------------------------------------------------
// MemFileSystem specifics.

TEST(MemFileSystemTest, PathsAreNormalized) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/db").ok());
  ASSERT_TRUE(fs.WriteFileAtomic("/db/x", "X").ok());
  std::string out;
  ASSERT_TRUE(fs.ReadFileToString("db//./x", &out).ok());
  EXPECT_EQ("X", out);
  EXPECT_TRUE(fs.FileExists("/"));
  EXPECT_FALSE(fs.FileExists(""));
}

TEST(MemFileSystemTest, CreateDirOverFileFails) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("/f", "").ok());
  EXPECT_TRUE(fs.CreateDir("/f").IsIOError());
}

TEST(MemFileSystemTest, HandlesOutliveTheFileSystem) {
  std::unique_ptr<WritableFile> w;
  std::unique_ptr<RandomAccessFile> r;
  std::unique_ptr<FileLock> lock;
  {
    MemFileSystem fs;
    w = std::move(fs.NewWritableFile("/a")).value();
    ASSERT_TRUE(w->Append("abc").ok());
    r = std::move(fs.NewRandomAccessFile("/a")).value();
    lock = std::move(fs.LockFile("/LOCK")).value();
  }
  std::string out;
  ASSERT_TRUE(r->Read(0, 3, &out).ok());
  EXPECT_EQ("abc", out);
  EXPECT_TRUE(w->Append("d").ok());
  lock.reset();
}

TEST(MemFileSystemTest, RemovedFileStaysReadableThroughOpenHandle) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.WriteFileAtomic("/a", "abc").ok());
  auto r = fs.NewRandomAccessFile("/a");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(fs.RemoveFile("/a").ok());
  std::string out;
  ASSERT_TRUE((*r)->Read(0, 10, &out).ok());
  EXPECT_EQ("abc", out);
}

TEST(MemFileSystemTest, ConcurrentWritersAndListers) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/d").ok());
  constexpr int kThreads = 4;
  constexpr int kAppends = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&fs, t] {
      auto f = fs.NewWritableFile("/d/f" + std::to_string(t));
      ASSERT_TRUE(f.ok());
      for (int i = 0; i < kAppends; ++i) {
        ASSERT_TRUE((*f)->Append("xy").ok());
        if (i % 50 == 0) {
          ASSERT_TRUE((*f)->Sync().ok());
          ASSERT_TRUE(fs.ListDir("/d").ok());
        }
      }
      ASSERT_TRUE((*f)->Close().ok());
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(2u * kAppends, *fs.FileSize("/d/f" + std::to_string(t)));
  }
}

// ---------------------------------------------------------------------------------------------
// FaultInjectionFileSystem: the durability model and the faults.

class FaultFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.CreateDir("/db").ok());
    fs_.MakeAllDurable();
  }

  // Creates `path` with `data`; syncs the file and/or its directory as asked.
  void Create(const std::string& path, std::string_view data, bool sync_file, bool sync_dir) {
    auto f = fs_.NewWritableFile(path);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->Append(data).ok());
    if (sync_file) {
      ASSERT_TRUE((*f)->Sync().ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
    if (sync_dir) {
      ASSERT_TRUE(fs_.SyncDir(DirName(path)).ok());
    }
  }
  std::string Read(const std::string& path) {
    std::string out;
    Status s = fs_.ReadFileToString(path, &out);
    return s.ok() ? out : s.ToString();
  }
  std::vector<std::string> List(const std::string& path) {
    auto r = fs_.ListDir(path);
    return r.ok() ? *r : std::vector<std::string>{r.status().ToString()};
  }

  FaultInjectionFileSystem fs_;
};

TEST_F(FaultFsTest, UnsyncedAppendIsLostOnPowerLoss) {
  Create("/db/wal", "synced|", /*sync_file=*/true, /*sync_dir=*/true);
  auto f = fs_.NewAppendableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("unsynced").ok());
  EXPECT_EQ("synced|unsynced", Read("/db/wal"));
  fs_.DropUnsyncedData();
  EXPECT_EQ("synced|", Read("/db/wal"));
}

// Out-of-order power loss: the synced prefix stays; every unsynced 8-byte block is either the
// written bytes or zeros; over many seeds both a hole before kept data and a full-size file
// happen; a seed gives the same result every time.
TEST_F(FaultFsTest, OutOfOrderPowerLossKeepsARandomSubsetOfUnsyncedBlocks) {
  const std::string synced = "synced|";  // 7 bytes: blocks straddle the sync point
  std::string unsynced;
  for (int i = 0; i < 64; i++) unsynced += static_cast<char>('A' + i % 26);
  const std::string written = synced + unsynced;
  bool hole_then_data = false, full_size = false;
  std::map<uint64_t, std::string> first_result;
  for (int round = 0; round < 2; round++) {
    for (uint64_t seed = 1; seed <= 40; seed++) {
      Create("/db/wal", synced, /*sync_file=*/true, /*sync_dir=*/true);
      auto f = fs_.NewAppendableFile("/db/wal");
      ASSERT_TRUE(f.ok());
      ASSERT_TRUE((*f)->Append(unsynced).ok());
      fs_.DropUnsyncedDataOutOfOrder(seed, 8);
      const std::string got = Read("/db/wal");
      ASSERT_GE(got.size(), synced.size());
      ASSERT_LE(got.size(), written.size());
      EXPECT_EQ(synced, got.substr(0, synced.size()));
      bool seen_hole = false;
      for (size_t off = synced.size(); off < got.size(); off = (off / 8 + 1) * 8) {
        const size_t end = std::min(got.size(), (off / 8 + 1) * 8);
        const std::string block = got.substr(off, end - off);
        if (block == std::string(end - off, '\0')) {
          seen_hole = true;
        } else {
          ASSERT_EQ(written.substr(off, end - off), block) << "seed " << seed << " at " << off;
          if (seen_hole) hole_then_data = true;
        }
      }
      full_size |= got.size() == written.size();
      if (round == 0) {
        first_result[seed] = got;
      } else {
        EXPECT_EQ(first_result[seed], got) << "seed " << seed;
      }
      ASSERT_TRUE(fs_.RemoveFile("/db/wal").ok());
      ASSERT_TRUE(fs_.SyncDir("/db").ok());
    }
  }
  EXPECT_TRUE(hole_then_data);
  EXPECT_TRUE(full_size);
}

// An overwritten file: synced overwrites survive power loss; unsynced ones revert to the old
// bytes (not zeros: a recycled file's old contents), in order or block by block.
TEST_F(FaultFsTest, OverwritesRevertToOldBytesOnPowerLoss) {
  const std::string old(32, 'o');
  Create("/db/log", old, /*sync_file=*/true, /*sync_dir=*/true);
  auto f = fs_.NewOverwritingFile("/db/log");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("SYNCED").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append("unsynced").ok());
  EXPECT_EQ("SYNCEDunsynced" + old.substr(14), Read("/db/log"));
  fs_.DropUnsyncedData();
  EXPECT_EQ("SYNCED" + old.substr(6), Read("/db/log"));

  // Block by block (8-byte blocks): each unsynced block is new or old; a later new block can
  // survive an earlier old one; writes past the old end are new bytes or zeros.
  const std::string written = "SYNCED" + std::string(40, 'N');  // grows the file to 46 bytes
  bool old_then_new = false;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    Create("/db/log", old, /*sync_file=*/true, /*sync_dir=*/true);
    auto g = fs_.NewOverwritingFile("/db/log");
    ASSERT_TRUE(g.ok());
    ASSERT_TRUE((*g)->Append("SYNCED").ok());
    ASSERT_TRUE((*g)->Sync().ok());
    ASSERT_TRUE((*g)->Append(std::string(40, 'N')).ok());
    fs_.DropUnsyncedDataOutOfOrder(seed, 8);
    const std::string got = Read("/db/log");
    ASSERT_GE(got.size(), old.size());
    ASSERT_LE(got.size(), written.size());
    EXPECT_EQ("SYNCED", got.substr(0, 6));
    bool seen_old = false;
    for (size_t off = 6; off < got.size(); off = (off / 8 + 1) * 8) {
      const size_t end = std::min(got.size(), (off / 8 + 1) * 8);
      const std::string block = got.substr(off, end - off);
      std::string before = off < old.size() ? old.substr(off, std::min(end, old.size()) - off) : "";
      before.resize(end - off, '\0');
      if (block == written.substr(off, end - off)) {
        if (seen_old) old_then_new = true;
      } else {
        ASSERT_EQ(before, block) << "seed " << seed << " at " << off;
        seen_old = true;
      }
    }
    ASSERT_TRUE(fs_.RemoveFile("/db/log").ok());
    ASSERT_TRUE(fs_.SyncDir("/db").ok());
  }
  EXPECT_TRUE(old_then_new);
}

TEST_F(FaultFsTest, SyncedDataSurvives) {
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("a").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE((*f)->Append("b").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append("c").ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("ab", Read("/db/wal"));
}

TEST_F(FaultFsTest, CreatedFileWithoutDirSyncVanishes) {
  Create("/db/seg1", "data", /*sync_file=*/true, /*sync_dir=*/false);
  fs_.DropUnsyncedData();
  EXPECT_FALSE(fs_.FileExists("/db/seg1"));
  EXPECT_TRUE(List("/db").empty());
}

TEST_F(FaultFsTest, DirSyncedButFileUnsyncedLeavesEmptyFile) {
  Create("/db/seg1", "data", /*sync_file=*/false, /*sync_dir=*/true);
  fs_.DropUnsyncedData();
  EXPECT_EQ("", Read("/db/seg1"));
}

TEST_F(FaultFsTest, RenameWithoutDirSyncIsUndone) {
  Create("/db/CURRENT", "v1", true, true);
  Create("/db/CURRENT.tmp", "v2", true, true);
  ASSERT_TRUE(fs_.Rename("/db/CURRENT.tmp", "/db/CURRENT").ok());
  EXPECT_EQ("v2", Read("/db/CURRENT"));
  fs_.DropUnsyncedData();
  EXPECT_EQ("v1", Read("/db/CURRENT"));
  EXPECT_EQ("v2", Read("/db/CURRENT.tmp"));
}

TEST_F(FaultFsTest, RenameWithDirSyncIsDurable) {
  Create("/db/CURRENT", "v1", true, true);
  Create("/db/CURRENT.tmp", "v2", true, false);
  ASSERT_TRUE(fs_.Rename("/db/CURRENT.tmp", "/db/CURRENT").ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("v2", Read("/db/CURRENT"));
  EXPECT_THAT(List("/db"), UnorderedElementsAre("CURRENT"));
}

TEST_F(FaultFsTest, RenameAcrossDirsWithOnlyTargetSyncedKeepsBothNames) {
  ASSERT_TRUE(fs_.CreateDir("/db/a").ok());
  ASSERT_TRUE(fs_.CreateDir("/db/b").ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  Create("/db/a/f", "F", true, true);
  ASSERT_TRUE(fs_.Rename("/db/a/f", "/db/b/f").ok());
  ASSERT_TRUE(fs_.SyncDir("/db/b").ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("F", Read("/db/a/f"));
  EXPECT_EQ("F", Read("/db/b/f"));
}

TEST_F(FaultFsTest, RemoveWithoutDirSyncComesBack) {
  Create("/db/old.log", "durable", true, true);
  {
    auto f = fs_.NewAppendableFile("/db/old.log");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->Append("+lost").ok());
  }
  ASSERT_TRUE(fs_.RemoveFile("/db/old.log").ok());
  EXPECT_FALSE(fs_.FileExists("/db/old.log"));
  fs_.DropUnsyncedData();
  EXPECT_EQ("durable", Read("/db/old.log"));
}

TEST_F(FaultFsTest, RemoveWithDirSyncIsDurable) {
  Create("/db/old.log", "durable", true, true);
  ASSERT_TRUE(fs_.RemoveFile("/db/old.log").ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  fs_.DropUnsyncedData();
  EXPECT_FALSE(fs_.FileExists("/db/old.log"));
}

TEST_F(FaultFsTest, UnsyncedDirectoryVanishesWithItsChildren) {
  ASSERT_TRUE(fs_.CreateDir("/db/wal").ok());
  Create("/db/wal/000001.log", "x", true, true);  // syncs /db/wal, not /db
  fs_.DropUnsyncedData();
  EXPECT_FALSE(fs_.FileExists("/db/wal"));
  ASSERT_TRUE(fs_.CreateDir("/db/wal").ok());
  EXPECT_TRUE(List("/db/wal").empty());
}

TEST_F(FaultFsTest, TruncateWithoutSyncIsUndone) {
  Create("/db/wal", "abcdef", true, true);
  ASSERT_TRUE(fs_.Truncate("/db/wal", 2).ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("abcdef", Read("/db/wal"));

  ASSERT_TRUE(fs_.Truncate("/db/wal", 2).ok());
  auto f = fs_.NewAppendableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("Z").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("abZ", Read("/db/wal"));
}

TEST_F(FaultFsTest, HardLinkNeedsDirSync) {
  Create("/db/seg", "S", true, true);
  ASSERT_TRUE(fs_.CreateDir("/db/ckpt").ok());
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  ASSERT_TRUE(fs_.LinkFile("/db/seg", "/db/ckpt/seg").ok());
  fs_.DropUnsyncedData();
  EXPECT_FALSE(fs_.FileExists("/db/ckpt/seg"));
  ASSERT_TRUE(fs_.LinkFile("/db/seg", "/db/ckpt/seg").ok());
  ASSERT_TRUE(fs_.SyncDir("/db/ckpt").ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("S", Read("/db/ckpt/seg"));
}

TEST_F(FaultFsTest, PowerLossInvalidatesHandlesAndReleasesLocks) {
  Create("/db/wal", "a", true, true);
  auto w = fs_.NewAppendableFile("/db/wal");
  auto r = fs_.NewRandomAccessFile("/db/wal");
  auto lock = fs_.LockFile("/db/LOCK");
  ASSERT_TRUE(w.ok() && r.ok() && lock.ok());
  EXPECT_EQ(StatusCode::kBusy, fs_.LockFile("/db/LOCK").status().code());
  fs_.DropUnsyncedData();
  EXPECT_TRUE((*w)->Append("x").IsIOError());
  EXPECT_TRUE((*w)->Sync().IsIOError());
  EXPECT_TRUE((*w)->Close().IsIOError());
  std::string out;
  EXPECT_TRUE((*r)->Read(0, 1, &out).IsIOError());
  EXPECT_EQ("a", Read("/db/wal"));
  auto relock = fs_.LockFile("/db/LOCK");
  ASSERT_TRUE(relock.ok()) << relock.status().ToString();
  lock->reset();  // the dead process's lock going away must not release the new one
  EXPECT_EQ(StatusCode::kBusy, fs_.LockFile("/db/LOCK").status().code());
}

TEST_F(FaultFsTest, ReopenKeepsUnsyncedData) {
  auto w = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("written, never synced").ok());
  fs_.Reopen();
  EXPECT_TRUE((*w)->Append("x").IsIOError());
  EXPECT_EQ("written, never synced", Read("/db/wal"));
}

TEST_F(FaultFsTest, CrashAfterKFailsEverythingLater) {
  fs_.CrashAfter(2);
  auto f = fs_.NewWritableFile("/db/a");  // op 1
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("one").ok());  // op 2
  EXPECT_FALSE(fs_.crashed());
  Status s = (*f)->Append("two");  // op 3: the crash
  EXPECT_TRUE(s.IsIOError());
  EXPECT_THAT(s.message(), HasSubstr("injected crash"));
  EXPECT_TRUE(fs_.crashed());
  EXPECT_TRUE((*f)->Sync().IsIOError());
  EXPECT_TRUE(fs_.SyncDir("/db").IsIOError());
  EXPECT_TRUE(fs_.CreateDir("/db/x").IsIOError());
  EXPECT_TRUE(fs_.NewWritableFile("/db/b").status().IsIOError());
  EXPECT_TRUE(fs_.RemoveFile("/db/a").IsIOError());
  // No effect, and reads still work.
  EXPECT_EQ("one", Read("/db/a"));
  EXPECT_FALSE(fs_.FileExists("/db/b"));
  EXPECT_FALSE(fs_.FileExists("/db/x"));
  // The next "process" starts after power loss with nothing of the unsynced work.
  fs_.DropUnsyncedData();
  EXPECT_FALSE(fs_.crashed());
  EXPECT_FALSE(fs_.FileExists("/db/a"));
  EXPECT_TRUE(fs_.CreateDir("/db/x").ok());
}

TEST_F(FaultFsTest, CrashAfterZeroFailsTheNextOp) {
  fs_.CrashAfter(0);
  EXPECT_TRUE(fs_.CreateDir("/db/x").IsIOError());
  EXPECT_FALSE(fs_.FileExists("/db/x"));
}

TEST_F(FaultFsTest, FailNthSyncOnce) {
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  fs_.FailNth(2, OpKind::kSync);
  ASSERT_TRUE((*f)->Append("a").ok());
  ASSERT_TRUE((*f)->Sync().ok());  // 1st
  ASSERT_TRUE((*f)->Append("b").ok());
  Status s = (*f)->Sync();  // 2nd: fails once
  EXPECT_TRUE(s.IsIOError());
  EXPECT_THAT(s.message(), HasSubstr("injected fault"));
  EXPECT_FALSE(fs_.crashed());
  ASSERT_TRUE((*f)->Append("c").ok());  // later ops succeed
  ASSERT_TRUE(fs_.SyncDir("/db").ok());
  fs_.DropUnsyncedData();
  EXPECT_EQ("a", Read("/db/wal"));  // the failed sync made nothing durable
}

TEST_F(FaultFsTest, FailNthAnyCountsEveryMutatingOp) {
  fs_.FailNth(3, OpKind::kAny);
  EXPECT_TRUE(fs_.CreateDir("/db/1").ok());
  EXPECT_TRUE(fs_.SyncDir("/db").ok());
  EXPECT_TRUE(fs_.CreateDir("/db/3").IsIOError());
  EXPECT_TRUE(fs_.CreateDir("/db/4").ok());
  EXPECT_THAT(List("/db"), UnorderedElementsAre("1", "4"));
}

TEST_F(FaultFsTest, FailedAppendHasNoEffectByDefault) {
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  fs_.FailNth(1, OpKind::kAppend);
  EXPECT_TRUE((*f)->Append("abcdef").IsIOError());
  EXPECT_EQ(0u, (*f)->Size());
  EXPECT_TRUE((*f)->Append("xy").ok());
  EXPECT_EQ("xy", Read("/db/wal"));
}

TEST_F(FaultFsTest, PartialAppendWritesAPrefix) {
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  fs_.set_partial_append(true);
  fs_.FailNth(1, OpKind::kAppend);
  EXPECT_TRUE((*f)->Append("abcdef").IsIOError());
  EXPECT_EQ("abc", Read("/db/wal"));
}

TEST_F(FaultFsTest, DiskFull) {
  Create("/db/other", "12345", true, true);
  auto f = fs_.NewWritableFile("/db/wal");
  ASSERT_TRUE(f.ok());
  fs_.SetSpaceLimit(10);
  ASSERT_TRUE((*f)->Append("abc").ok());
  Status s = (*f)->Append("defg");  // 5 + 3 + 4 > 10
  EXPECT_TRUE(s.IsIOError());
  EXPECT_THAT(s.message(), HasSubstr("No space left on device"));
  EXPECT_EQ("abc", Read("/db/wal"));
  EXPECT_EQ(8u, fs_.TotalFileBytes());
  ASSERT_TRUE((*f)->Append("de").ok());  // exactly fills the disk
  EXPECT_TRUE((*f)->Append("f").IsIOError());
  ASSERT_TRUE(fs_.RemoveFile("/db/other").ok());  // freeing space makes room again
  EXPECT_TRUE((*f)->Append("f").ok());
  fs_.set_partial_append(true);
  EXPECT_TRUE((*f)->Append("0123456789").IsIOError());
  EXPECT_EQ("abcdef0123", Read("/db/wal"));
  fs_.ResetFaults();
  EXPECT_TRUE((*f)->Append("0123456789").ok());

  // A full disk still lets a recycled file be overwritten, but not grown.
  fs_.SetSpaceLimit(fs_.TotalFileBytes());
  auto o = fs_.NewOverwritingFile("/db/wal");
  ASSERT_TRUE(o.ok());
  EXPECT_TRUE((*o)->Append("ABCDEFGHIJ").ok());
  EXPECT_TRUE((*o)->Append("KLMNOPQRSTUVWXYZ").IsIOError());  // 10 + 16 > 20
  EXPECT_EQ("ABCDEFGHIJ0123456789", Read("/db/wal"));
}

TEST_F(FaultFsTest, MutatingOpCount) {
  const int64_t before = fs_.mutating_ops();
  auto f = fs_.NewWritableFile("/db/a");  // 1
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("x").ok());   // 2
  ASSERT_TRUE((*f)->Sync().ok());        // 3
  ASSERT_TRUE((*f)->Close().ok());       // 4
  ASSERT_TRUE(fs_.SyncDir("/db").ok());  // 5
  // Not counted: reads, listings, existence, size, locks.
  std::string out;
  ASSERT_TRUE(fs_.ReadFileToString("/db/a", &out).ok());
  ASSERT_TRUE(fs_.ListDir("/db").ok());
  EXPECT_TRUE(fs_.FileExists("/db/a"));
  ASSERT_TRUE(fs_.FileSize("/db/a").ok());
  ASSERT_TRUE(fs_.LockFile("/db/LOCK").ok());
  EXPECT_EQ(before + 5, fs_.mutating_ops());
  ASSERT_TRUE(fs_.CreateDir("/db/d").ok());                 // 6
  ASSERT_TRUE(fs_.LinkFile("/db/a", "/db/d/a").ok());       // 7
  ASSERT_TRUE(fs_.Rename("/db/d/a", "/db/d/b").ok());       // 8
  ASSERT_TRUE(fs_.Truncate("/db/a", 0).ok());               // 9
  ASSERT_TRUE(fs_.RemoveFile("/db/d/b").ok());              // 10
  ASSERT_TRUE(fs_.RemoveDir("/db/d").ok());                 // 11
  ASSERT_TRUE(fs_.NewAppendableFile("/db/a").ok());         // 12
  EXPECT_TRUE(fs_.RemoveFile("/db/missing").IsNotFound());  // 13: failed ops count too
  EXPECT_EQ(before + 13, fs_.mutating_ops());
}

// The crash-sweep pattern on a tiny workload: WriteFileAtomic over an existing file must leave
// either the old or the new contents after a crash at any point and a power loss.
TEST_F(FaultFsTest, CrashSweepOfWriteFileAtomic) {
  auto workload = [](FileSystem* fs) { return fs->WriteFileAtomic("/db/CURRENT", "new"); };
  int64_t n;
  {
    FaultInjectionFileSystem probe;
    ASSERT_TRUE(probe.CreateDir("/db").ok());
    ASSERT_TRUE(probe.WriteFileAtomic("/db/CURRENT", "old").ok());
    const int64_t start = probe.mutating_ops();
    ASSERT_TRUE(workload(&probe).ok());
    n = probe.mutating_ops() - start;
  }
  EXPECT_EQ(6, n);  // NewWritableFile, Append, Sync, Close, Rename, SyncDir
  for (int64_t k = 0; k <= n; ++k) {
    SCOPED_TRACE("crash after " + std::to_string(k));
    FaultInjectionFileSystem fs;
    ASSERT_TRUE(fs.CreateDir("/db").ok());
    ASSERT_TRUE(fs.WriteFileAtomic("/db/CURRENT", "old").ok());
    ASSERT_TRUE(fs.SyncDir("/").ok());
    fs.CrashAfter(k);
    Status s = workload(&fs);
    EXPECT_EQ(k == n, s.ok());
    fs.DropUnsyncedData();
    std::string out;
    ASSERT_TRUE(fs.ReadFileToString("/db/CURRENT", &out).ok());
    EXPECT_EQ(k == n ? "new" : "old", out);
  }
}

}  // namespace
}  // namespace usagedb
