// POSIX implementation of the FileSystem seam.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "io/file_system.h"

namespace usagedb {
namespace {

Status PosixError(const std::string& context, int err) {
  std::string msg = context + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::IOError(msg);
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(std::string_view data) override { return AppendV({&data, 1}); }
  Status AppendV(std::span<const std::string_view> parts) override {
    // At most IOV_MAX (1024 on Linux) vectors per call; a short write resumes mid-part.
    constexpr size_t kMaxIov = 1024;
    iovec iov[kMaxIov];
    size_t next = 0;     // first part not yet (fully) handed to writev
    size_t skip = 0;     // bytes of parts[next] already written
    while (next < parts.size()) {
      size_t cnt = 0;
      for (size_t k = next; k < parts.size() && cnt < kMaxIov; k++) {
        const size_t off = k == next ? skip : 0;
        if (parts[k].size() == off) continue;
        iov[cnt].iov_base = const_cast<char*>(parts[k].data() + off);
        iov[cnt].iov_len = parts[k].size() - off;
        cnt++;
      }
      if (cnt == 0) break;
      ssize_t w = ::writev(fd_, iov, static_cast<int>(cnt));
      if (w < 0) {
        if (errno == EINTR) continue;
        return PosixError(path_, errno);
      }
      size_ += static_cast<uint64_t>(w);
      // Advance over what was written.
      size_t left = static_cast<size_t>(w);
      while (next < parts.size()) {
        const size_t rest = parts[next].size() - skip;
        if (left < rest) {
          skip += left;
          break;
        }
        left -= rest;
        next++;
        skip = 0;
      }
    }
    return Status::OK();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return PosixError(path_ + ": fdatasync", errno);
    return Status::OK();
  }
  Status Close() override {
    if (fd_ < 0) return Status::OK();
    int r = ::close(fd_);
    fd_ = -1;
    if (r != 0) return PosixError(path_ + ": close", errno);
    return Status::OK();
  }
  uint64_t Size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixRandomAccessFile : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }
  Status Read(uint64_t offset, size_t n, std::string* out) const override {
    out->resize(n);
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, out->data() + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return PosixError(path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    out->resize(done);
    return Status::OK();
  }
  uint64_t Size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

// A read-only file mapped whole (MAP_SHARED, so the pages are the page cache's own).
class PosixMappedFile : public RandomAccessFile {
 public:
  PosixMappedFile(const char* base, uint64_t size) : base_(base), size_(size) {}
  ~PosixMappedFile() override { ::munmap(const_cast<char*>(base_), size_); }
  Status Read(uint64_t offset, size_t n, std::string* out) const override {
    if (offset >= size_) {
      out->clear();
    } else {
      out->assign(base_ + offset, std::min<uint64_t>(n, size_ - offset));
    }
    return Status::OK();
  }
  uint64_t Size() const override { return size_; }
  std::string_view Mapping() const override { return std::string_view(base_, size_); }

 private:
  const char* base_;
  uint64_t size_;
};

class PosixFileLock : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_;
};

std::string SelfCommand() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : cmd) {
    if (c == '\0') c = ' ';
  }
  while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
  return cmd;
}

// Opens path with `flags` (and O_CLOEXEC; mode 0644 when it creates); *size = the file's size
// then. The caller owns the descriptor.
Result<int> OpenWithSize(const std::string& path, int flags, uint64_t* size) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return PosixError(path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return PosixError(path, err);
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

class PosixFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return PosixError(path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0));
  }
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    uint64_t size = 0;
    ASSIGN_OR_RETURN(const int fd, OpenWithSize(path, O_WRONLY | O_CREAT | O_APPEND, &size));
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, size));
  }
  Result<std::unique_ptr<WritableFile>> NewOverwritingFile(const std::string& path) override {
    // No O_APPEND, no O_TRUNC: write() starts at offset 0 and overwrites.
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return PosixError(path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0));
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    uint64_t size = 0;
    ASSIGN_OR_RETURN(const int fd, OpenWithSize(path, O_RDONLY, &size));
    return std::unique_ptr<RandomAccessFile>(new PosixRandomAccessFile(path, fd, size));
  }
  Result<std::unique_ptr<RandomAccessFile>> NewMappedFile(const std::string& path) override {
    uint64_t size = 0;
    ASSIGN_OR_RETURN(const int fd, OpenWithSize(path, O_RDONLY, &size));
    // Not populated: a page is faulted in at its first read (a file that is not cached is
    // not read whole at open).
    void* base = size == 0 ? MAP_FAILED : ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {  // an empty file cannot be mapped: read it the usual way
      return std::unique_ptr<RandomAccessFile>(new PosixRandomAccessFile(path, fd, size));
    }
    ::close(fd);  // the mapping keeps the file
    return std::unique_ptr<RandomAccessFile>(
        new PosixMappedFile(static_cast<const char*>(base), size));
  }
  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return PosixError(path, errno);
    return static_cast<uint64_t>(st.st_size);
  }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return PosixError(path, errno);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    ::closedir(d);
    return names;
  }
  Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return PosixError(path, errno);
    return Status::OK();
  }
  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return PosixError(path, errno);
    return Status::OK();
  }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError(path, errno);
    return Status::OK();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return PosixError(from + " -> " + to, errno);
    return Status::OK();
  }
  Status LinkFile(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) return PosixError(from + " -> " + to, errno);
    return Status::OK();
  }
  Status Truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) return PosixError(path, errno);
    return Status::OK();
  }
  Status SyncDir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError(path, errno);
    int r = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (r != 0) return PosixError(path + ": fsync", err);
    return Status::OK();
  }
  Result<std::unique_ptr<FileLock>> LockFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return PosixError(path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      std::string holder;
      char buf[512];
      ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
      if (n > 0) holder.assign(buf, static_cast<size_t>(n));
      while (!holder.empty() && holder.back() == '\n') holder.pop_back();
      ::close(fd);
      if (err == EWOULDBLOCK) {
        return Status::Busy(path + ": database is locked by another process (" +
                            (holder.empty() ? std::string("holder unknown") : holder) + ")");
      }
      return PosixError(path, err);
    }
    std::string me = "pid " + std::to_string(::getpid()) + ": " + SelfCommand() + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) < 0) {
      // The lock itself is held; failing to record the holder only degrades the message.
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd));
  }
};

}  // namespace

FileSystem* FileSystem::Default() {
  static PosixFileSystem fs;
  return &fs;
}

}  // namespace usagedb
