// FileSystem seam. Every byte usageDb reads or writes goes through this interface, so tests
// can substitute an in-memory file system or a fault-injecting one that forgets unsynced data
// (power loss) or fails the Nth mutating operation.
//
// Durability contract (what the fault-injecting implementation models):
//  * File contents are durable only up to the last successful WritableFile::Sync().
//  * Creating, renaming or removing a directory entry is durable only after SyncDir() of the
//    parent directory succeeds.
// Paths are plain strings joined with '/'. Implementations are thread-safe; a single
// WritableFile is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "usagedb/status.h"

namespace usagedb {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // Appends the concatenation of `parts`, as one Append of it would (the same bytes, the same
  // failure behaviour; the fault-injecting file system counts it as one operation). POSIX
  // writes the parts with writev(2), without building the concatenation.
  virtual Status AppendV(std::span<const std::string_view> parts);
  // Makes everything appended so far durable (fdatasync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
  // Bytes in the file, including unsynced appends (for a file from NewOverwritingFile: the
  // bytes written through this handle).
  virtual uint64_t Size() const = 0;
};

class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to n bytes at offset into *out (replacing its contents). A short result means
  // end of file.
  virtual Status Read(uint64_t offset, size_t n, std::string* out) const = 0;
  virtual uint64_t Size() const = 0;
  // The whole file mapped into memory (Size() bytes), or empty when it is not mapped (see
  // FileSystem::NewMappedFile). Valid while this object lives.
  virtual std::string_view Mapping() const { return {}; }
};

// Held while the database is open; released by destruction.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // The process-wide POSIX file system.
  static FileSystem* Default();

  // Creates the file, truncating it when it exists.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens an existing file (or creates it) for appending at its end.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  // Opens an existing file for writing from offset 0 over its old contents, without
  // truncating it: Size() counts the bytes written through this handle, and the bytes past
  // that keep their old contents. NotFound when the file does not exist. WAL files are
  // recycled this way: overwriting blocks a file already has lets fdatasync skip the
  // file-size (inode) update that every append needs (docs/parts/wal.md, "Recycling").
  virtual Result<std::unique_ptr<WritableFile>> NewOverwritingFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;
  // As NewRandomAccessFile, for an immutable file read in many small random pieces: the POSIX
  // file system maps it (Mapping() is then its bytes: a read is a copy, not a system call).
  // The default, and every file system that must see each read (in-memory, fault-injecting),
  // returns an unmapped file. REQUIRES: nobody truncates or rewrites the file while it is open
  // (a mapped read past a truncated end is a SIGBUS, as is a disk error behind an evicted page).
  virtual Result<std::unique_ptr<RandomAccessFile>> NewMappedFile(const std::string& path) {
    return NewRandomAccessFile(path);
  }

  virtual bool FileExists(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory, without "." and "..", unsorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Creates a directory; ok when it already exists.
  virtual Status CreateDir(const std::string& path) = 0;
  // Removes an empty directory.
  virtual Status RemoveDir(const std::string& path) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Atomically replaces `to` with `from`.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Creates a hard link `to` naming the same file as `from` (checkpoints).
  virtual Status LinkFile(const std::string& from, const std::string& to) = 0;
  virtual Status Truncate(const std::string& path, uint64_t size) = 0;
  // Makes the directory's entries (creates, renames, removes) durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Takes an exclusive advisory lock on `path` (created when absent). When another process
  // holds it, returns Busy naming the holder's pid and command (written into the file).
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) = 0;

  // Helpers built on the primitives above.
  Status ReadFileToString(const std::string& path, std::string* out);
  // Writes a whole file durably: temp name, sync, rename, SyncDir(parent).
  Status WriteFileAtomic(const std::string& path, std::string_view data);
  Status CreateDirs(const std::string& path);  // mkdir -p
};

std::string JoinPath(std::string_view a, std::string_view b);
std::string DirName(std::string_view path);
std::string BaseName(std::string_view path);

}  // namespace usagedb
