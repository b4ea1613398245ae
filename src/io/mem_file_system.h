// In-memory implementation of the FileSystem seam, and the durability model behind
// FaultInjectionFileSystem (fault_injection_fs.h).
//
// The tree is made of inodes: a directory maps names to nodes, so hard links share one file
// node and renaming a directory moves its whole subtree. Every node also remembers its durable
// state, the state a power loss would leave behind (see the contract in file_system.h):
//   * a file's durable contents are its contents at its last successful WritableFile::Sync();
//   * a directory's durable entries are its entries at its last successful SyncDir().
// MemFileSystem keeps that state but never uses it; FaultInjectionFileSystem publishes the
// levers (power loss, crash after k ops, fail the n-th op, disk full).
//
// Paths: components are split on '/', empty and "." components are ignored and ".." pops, so
// "/db/x", "db/x" and "db//./x" name the same file. "/" and "." are the root directory, which
// always exists. "" names nothing (NotFound).
//
// Errors mirror the POSIX implementation: a missing file or directory (also a missing parent)
// is NotFound, every other failure is IOError whose message is "<path>: <strerror text>".
//
// Thread safety: every method, and every method of the handles it returns, is thread-safe (one
// mutex per file system). Handles hold shared state, so they may outlive the file system object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/file_system.h"

namespace usagedb {

// The kinds of mutating operations, for counting and fault injection. kAny matches every kind.
enum class OpKind : uint8_t {
  kAny = 0,
  kNewFile = 1,  // NewWritableFile, NewAppendableFile and NewOverwritingFile
  kAppend = 2,
  kSync = 3,
  kClose = 4,
  kCreateDir = 5,
  kRemoveDir = 6,
  kRemoveFile = 7,
  kRename = 8,
  kLinkFile = 9,
  kTruncate = 10,
  kSyncDir = 11,
};

const char* OpKindName(OpKind kind);  // "Append", "SyncDir", ...

class MemFileSystem : public FileSystem {
 public:
  MemFileSystem();
  ~MemFileSystem() override;
  MemFileSystem(const MemFileSystem&) = delete;
  MemFileSystem& operator=(const MemFileSystem&) = delete;

  // Writers append at the end of the file (also those from NewWritableFile), except those
  // from NewOverwritingFile, which write from offset 0 over the old contents.
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewOverwritingFile(const std::string& path) override;
  // Reads see the live contents; Size() is the size when the file was opened (as POSIX).
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override;
  bool FileExists(const std::string& path) override;            // true for directories too
  Result<uint64_t> FileSize(const std::string& path) override;  // 0 for a directory
  Result<std::vector<std::string>> ListDir(const std::string& path) override;  // sorted
  // Ok when a directory exists there; IOError ("File exists") when a file does.
  Status CreateDir(const std::string& path) override;
  Status RemoveDir(const std::string& path) override;
  Status RemoveFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status LinkFile(const std::string& from, const std::string& to) override;
  Status Truncate(const std::string& path, uint64_t size) override;  // extends with zeros
  Status SyncDir(const std::string& path) override;
  // Locks are per file node (like flock) and held until the FileLock is destroyed. A second
  // lock returns Busy: "<path>: database is locked by another holder (pid N, in-memory lock
  // #id)". Creates the file when absent. Not a counted mutating operation.
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override;

  struct Core;  // Shared by the file system and its handles; defined in the .cc.

 protected:
  // The durability and fault levers. FaultInjectionFileSystem makes them public and documents
  // them; on a plain MemFileSystem they are simply never pulled.
  void DropUnsyncedData();
  void DropUnsyncedDataOutOfOrder(uint64_t seed, size_t block = 4096);
  void Reopen();
  void MakeAllDurable();
  int64_t mutating_ops() const;
  void CrashAfter(int64_t k);
  bool crashed() const;
  void FailNth(int64_t n, OpKind kind);
  void set_partial_append(bool partial);
  void SetSpaceLimit(uint64_t bytes);
  void ResetFaults();
  uint64_t TotalFileBytes() const;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace usagedb
