#include "io/file_system.h"

namespace usagedb {

Status WritableFile::AppendV(std::span<const std::string_view> parts) {
  if (parts.size() == 1) return Append(parts[0]);
  size_t total = 0;
  for (std::string_view p : parts) total += p.size();
  std::string joined;
  joined.reserve(total);
  for (std::string_view p : parts) joined.append(p);
  return Append(joined);
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  std::string r(a);
  if (r.back() != '/') r += '/';
  r += b;
  return r;
}

std::string DirName(std::string_view path) {
  size_t pos = path.rfind('/');
  if (pos == std::string_view::npos) return ".";
  if (pos == 0) return "/";
  return std::string(path.substr(0, pos));
}

std::string BaseName(std::string_view path) {
  size_t pos = path.rfind('/');
  return std::string(pos == std::string_view::npos ? path : path.substr(pos + 1));
}

Status FileSystem::ReadFileToString(const std::string& path, std::string* out) {
  ASSIGN_OR_RETURN(auto file, NewRandomAccessFile(path));
  return file->Read(0, file->Size(), out);
}

Status FileSystem::WriteFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  {
    ASSIGN_OR_RETURN(auto f, NewWritableFile(tmp));
    RETURN_IF_ERROR(f->Append(data));
    RETURN_IF_ERROR(f->Sync());
    RETURN_IF_ERROR(f->Close());
  }
  RETURN_IF_ERROR(Rename(tmp, path));
  return SyncDir(DirName(path));
}

Status FileSystem::CreateDirs(const std::string& path) {
  if (path.empty() || path == "/" || path == "." || FileExists(path)) return Status::OK();
  RETURN_IF_ERROR(CreateDirs(DirName(path)));
  return CreateDir(path);
}

}  // namespace usagedb
