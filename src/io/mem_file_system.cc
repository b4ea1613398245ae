// In-memory file system with a durability model; see mem_file_system.h.
//
// Everything lives under one mutex (Core::mu): tests care about determinism and simplicity,
// not about contention. Durable state is kept eagerly (a Sync copies only the bytes appended
// since the previous one), so dropping unsynced data is a walk of the durable tree.
#include "io/mem_file_system.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_set>

namespace usagedb {

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kAny:
      return "Any";
    case OpKind::kNewFile:
      return "NewFile";
    case OpKind::kAppend:
      return "Append";
    case OpKind::kSync:
      return "Sync";
    case OpKind::kClose:
      return "Close";
    case OpKind::kCreateDir:
      return "CreateDir";
    case OpKind::kRemoveDir:
      return "RemoveDir";
    case OpKind::kRemoveFile:
      return "RemoveFile";
    case OpKind::kRename:
      return "Rename";
    case OpKind::kLinkFile:
      return "LinkFile";
    case OpKind::kTruncate:
      return "Truncate";
    case OpKind::kSyncDir:
      return "SyncDir";
  }
  return "?";
}

namespace {

constexpr uint64_t kNoSpaceLimit = std::numeric_limits<uint64_t>::max();

struct Node;
using NodePtr = std::shared_ptr<Node>;
using Entries = std::map<std::string, NodePtr>;

struct Node {
  explicit Node(bool dir) : is_dir(dir) {}
  const bool is_dir;

  // Files. Invariant: when appended_only, `durable` is a prefix of `data`.
  std::string data;
  std::string durable;  // contents as of the last successful Sync()
  bool appended_only = true;

  // Directories.
  Entries entries;          // live
  Entries durable_entries;  // as of the last successful SyncDir()

  void SyncData() {
    if (appended_only) {
      durable.append(data, durable.size(), std::string::npos);
    } else {
      durable = data;
      appended_only = true;
    }
  }
  void SetSize(uint64_t size) {
    if (size < durable.size()) appended_only = false;
    data.resize(size, '\0');
  }
};

Status Err(const std::string& path, const char* what) {
  return Status::IOError(path + ": " + what);
}
Status NotFoundErr(const std::string& path) {
  return Status::NotFound(path + ": No such file or directory");
}

// Splits `path` into components (see the header for the rules). False for "".
bool SplitPath(const std::string& path, std::vector<std::string>* parts) {
  parts->clear();
  if (path.empty()) return false;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string_view c(path.data() + i, j - i);
    if (c == "..") {
      if (!parts->empty()) parts->pop_back();
    } else if (!c.empty() && c != ".") {
      parts->emplace_back(c);
    }
    i = j + 1;
  }
  return true;
}

}  // namespace

struct MemFileSystem::Core {
  struct LockInfo {
    uint64_t id;
    std::string holder;
  };
  struct FailRule {
    OpKind kind;
    int64_t remaining;  // the op that brings it to 0 fails
  };

  mutable std::mutex mu;
  NodePtr root = std::make_shared<Node>(true);
  // Bumped by DropUnsyncedData/Reopen; handles opened under an older generation are dead.
  uint64_t generation = 0;
  std::map<const Node*, LockInfo> locks;
  uint64_t next_lock_id = 1;

  int64_t mutating_ops = 0;
  int64_t crash_countdown = -1;  // -1: no crash scheduled
  bool crashed = false;
  std::vector<FailRule> fail_rules;
  bool partial_append = false;
  uint64_t space_limit = kNoSpaceLimit;

  // Counts one mutating operation and applies the injected faults. Non-ok means the operation
  // must fail without effect, except that an Append failed by a FailNth rule may write a prefix
  // (*partial_ok is set then). REQUIRES: mu held.
  Status Admit(OpKind kind, const std::string& path, bool* partial_ok = nullptr) {
    ++mutating_ops;
    if (crash_countdown == 0) {
      crashed = true;
      crash_countdown = -1;
    }
    if (crashed) {
      return Status::IOError(std::string("injected crash (") + OpKindName(kind) + " " + path + ")");
    }
    if (crash_countdown > 0) --crash_countdown;
    // Every matching rule counts this op; it fails when one of them reaches its n-th.
    bool fail = false;
    for (FailRule& r : fail_rules) {
      if (r.kind == OpKind::kAny || r.kind == kind) fail |= --r.remaining == 0;
    }
    if (fail) {
      std::erase_if(fail_rules, [](const FailRule& r) { return r.remaining <= 0; });
      if (partial_ok != nullptr) *partial_ok = partial_append;
      return Status::IOError(std::string("injected fault (") + OpKindName(kind) + " " + path + ")");
    }
    return Status::OK();
  }

  // Looks up the node named by `path`. REQUIRES: mu held.
  Status Lookup(const std::string& path, NodePtr* out) const {
    std::vector<std::string> parts;
    if (!SplitPath(path, &parts)) return NotFoundErr(path);
    NodePtr n = root;
    for (const std::string& c : parts) {
      if (!n->is_dir) return Err(path, "Not a directory");
      auto it = n->entries.find(c);
      if (it == n->entries.end()) return NotFoundErr(path);
      n = it->second;
    }
    *out = std::move(n);
    return Status::OK();
  }

  // Finds the directory that holds `path`'s last component. IOError for the root itself.
  // REQUIRES: mu held.
  Status LookupParent(const std::string& path, NodePtr* parent, std::string* name) const {
    std::vector<std::string> parts;
    if (!SplitPath(path, &parts)) return NotFoundErr(path);
    if (parts.empty()) return Err(path, "Device or resource busy");
    NodePtr n = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = n->entries.find(parts[i]);
      if (it == n->entries.end()) return NotFoundErr(path);
      n = it->second;
      if (!n->is_dir) return Err(path, "Not a directory");
    }
    *parent = std::move(n);
    *name = parts.back();
    return Status::OK();
  }

  // REQUIRES: mu held.
  uint64_t TotalBytes() const {
    uint64_t total = 0;
    std::unordered_set<const Node*> seen;
    std::vector<const Node*> stack{root.get()};
    while (!stack.empty()) {
      const Node* d = stack.back();
      stack.pop_back();
      for (const auto& [name, child] : d->entries) {
        if (child->is_dir) {
          stack.push_back(child.get());
        } else if (seen.insert(child.get()).second) {
          total += child->data.size();
        }
      }
    }
    return total;
  }

  // Ends the current "process": its handles die, its locks go, a scheduled or happened crash
  // is forgotten. REQUIRES: mu held.
  void EndProcess() {
    ++generation;
    locks.clear();
    crashed = false;
    crash_countdown = -1;
  }

  // REQUIRES: mu held. seed != 0: files written since their last sync keep a random subset of
  // their unsynced blocks of `block` bytes (see
  // FaultInjectionFileSystem::DropUnsyncedDataOutOfOrder).
  void RevertToDurable(uint64_t seed = 0, size_t block = 4096) {
    uint64_t rng = seed;
    auto next_random = [&rng] {  // splitmix64
      uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      return z ^ (z >> 31);
    };
    std::unordered_set<const Node*> seen;
    std::vector<Node*> stack{root.get()};
    while (!stack.empty()) {
      Node* d = stack.back();
      stack.pop_back();
      d->entries = d->durable_entries;
      for (auto& [name, child] : d->entries) {
        if (child->is_dir) {
          stack.push_back(child.get());
        } else if (seen.insert(child.get()).second) {
          const std::string& live = child->data;
          const std::string& old = child->durable;
          if (seed != 0 && live.size() >= old.size() && live != old) {
            // From the first changed byte on, each block is the written one or what the disk
            // had before (the old contents; zeros past the old size).
            const size_t first = static_cast<size_t>(
                std::mismatch(old.begin(), old.end(), live.begin()).first - old.begin());
            std::string kept = live.substr(0, first);
            size_t end = old.size();  // the end of the last new block kept, at least the old size
            for (size_t off = first; off < live.size();) {
              const size_t block_end = std::min(live.size(), (off / block + 1) * block);
              if (next_random() & 1) {
                kept.append(live, off, block_end - off);
                end = std::max(end, block_end);
              } else {
                const size_t from_old = off < old.size() ? std::min(block_end, old.size()) - off : 0;
                if (from_old > 0) kept.append(old, off, from_old);
                kept.append(block_end - off - from_old, '\0');
              }
              off = block_end;
            }
            // Past the old size: the new size reached the disk, or only up to the last block.
            if (live.size() > old.size() && (next_random() & 1)) kept.resize(end);
            child->data = std::move(kept);
          } else {
            child->data = child->durable;
          }
          child->durable = child->data;
          child->appended_only = true;
        }
      }
    }
  }

  // REQUIRES: mu held.
  void SyncEverything() {
    std::vector<Node*> stack{root.get()};
    while (!stack.empty()) {
      Node* d = stack.back();
      stack.pop_back();
      d->durable_entries = d->entries;
      for (auto& [name, child] : d->entries) {
        if (child->is_dir) {
          stack.push_back(child.get());
        } else {
          child->SyncData();
        }
      }
    }
  }
};

namespace {

using Core = MemFileSystem::Core;

class MemWritableFile : public WritableFile {
 public:
  // overwrite: writes start at offset 0 over the old contents (NewOverwritingFile).
  MemWritableFile(std::shared_ptr<Core> core, NodePtr node, std::string path,
                  bool overwrite = false)
      : core_(std::move(core)),
        node_(std::move(node)),
        path_(std::move(path)),
        generation_(core_->generation),
        overwrite_(overwrite) {}

  Status Append(std::string_view data) override {
    std::lock_guard<std::mutex> l(core_->mu);
    bool partial_ok = false;
    Status s = core_->Admit(OpKind::kAppend, path_, &partial_ok);
    if (!s.ok()) {
      if (partial_ok && Usable().ok()) Write(data.substr(0, data.size() / 2));
      return s;
    }
    RETURN_IF_ERROR(Usable());
    if (core_->space_limit != kNoSpaceLimit) {
      const uint64_t end = overwrite_ ? pos_ + data.size() : node_->data.size() + data.size();
      const uint64_t growth = end > node_->data.size() ? end - node_->data.size() : 0;
      uint64_t total = core_->TotalBytes();
      if (growth > 0 && total + growth > core_->space_limit) {  // overwriting takes no space
        uint64_t room = total < core_->space_limit ? core_->space_limit - total : 0;
        const uint64_t fits = data.size() - growth + room;
        if (core_->partial_append) Write(data.substr(0, fits));
        return Err(path_, "No space left on device");
      }
    }
    Write(data);
    return Status::OK();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> l(core_->mu);
    RETURN_IF_ERROR(core_->Admit(OpKind::kSync, path_));
    RETURN_IF_ERROR(Usable());
    node_->SyncData();
    return Status::OK();
  }

  Status Close() override {
    std::lock_guard<std::mutex> l(core_->mu);
    RETURN_IF_ERROR(core_->Admit(OpKind::kClose, path_));
    if (closed_) return Status::OK();
    closed_ = true;
    if (generation_ != core_->generation) return Dead();
    return Status::OK();
  }

  uint64_t Size() const override {
    std::lock_guard<std::mutex> l(core_->mu);
    return overwrite_ ? pos_ : node_->data.size();
  }

 private:
  // REQUIRES: core_->mu held.
  void Write(std::string_view data) {
    if (!overwrite_) {
      node_->data.append(data);
      return;
    }
    // Overwritten synced bytes: the durable contents are no longer a prefix of the live ones.
    if (pos_ < node_->durable.size() && !data.empty()) node_->appended_only = false;
    if (pos_ + data.size() > node_->data.size()) node_->data.resize(pos_ + data.size(), '\0');
    node_->data.replace(pos_, data.size(), data);
    pos_ += data.size();
  }

  Status Dead() const {
    return Err(path_, "Bad file descriptor (handle invalidated by a simulated crash)");
  }
  // REQUIRES: core_->mu held.
  Status Usable() const {
    if (closed_) return Err(path_, "Bad file descriptor (file is closed)");
    if (generation_ != core_->generation) return Dead();
    return Status::OK();
  }

  const std::shared_ptr<Core> core_;
  const NodePtr node_;
  const std::string path_;
  const uint64_t generation_;
  const bool overwrite_;
  uint64_t pos_ = 0;     // the next write's offset when overwrite_; guarded by core_->mu
  bool closed_ = false;  // guarded by core_->mu
};

class MemRandomAccessFile : public RandomAccessFile {
 public:
  MemRandomAccessFile(std::shared_ptr<Core> core, NodePtr node, std::string path)
      : core_(std::move(core)),
        node_(std::move(node)),
        path_(std::move(path)),
        generation_(core_->generation),
        size_(node_->data.size()) {}

  Status Read(uint64_t offset, size_t n, std::string* out) const override {
    std::lock_guard<std::mutex> l(core_->mu);
    if (generation_ != core_->generation) {
      return Err(path_, "Bad file descriptor (handle invalidated by a simulated crash)");
    }
    const std::string& d = node_->data;
    if (offset >= d.size()) {
      out->clear();
    } else {
      out->assign(d, offset, std::min<uint64_t>(n, d.size() - offset));
    }
    return Status::OK();
  }
  uint64_t Size() const override { return size_; }

 private:
  const std::shared_ptr<Core> core_;
  const NodePtr node_;
  const std::string path_;
  const uint64_t generation_;
  const uint64_t size_;
};

class MemFileLock : public FileLock {
 public:
  MemFileLock(std::shared_ptr<Core> core, NodePtr node, uint64_t id)
      : core_(std::move(core)), node_(std::move(node)), id_(id) {}
  ~MemFileLock() override {
    std::lock_guard<std::mutex> l(core_->mu);
    auto it = core_->locks.find(node_.get());
    // After a simulated crash the lock may already be gone, or re-taken by a new "process".
    if (it != core_->locks.end() && it->second.id == id_) core_->locks.erase(it);
  }

 private:
  const std::shared_ptr<Core> core_;
  const NodePtr node_;  // keeps the node (the lock table key) alive
  const uint64_t id_;
};

}  // namespace

MemFileSystem::MemFileSystem() : core_(std::make_shared<Core>()) {}
MemFileSystem::~MemFileSystem() = default;

Result<std::unique_ptr<WritableFile>> MemFileSystem::NewWritableFile(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kNewFile, path));
  NodePtr parent;
  std::string name;
  RETURN_IF_ERROR(core_->LookupParent(path, &parent, &name));
  NodePtr& slot = parent->entries[name];
  if (slot == nullptr) {
    slot = std::make_shared<Node>(false);
  } else if (slot->is_dir) {
    return Err(path, "Is a directory");
  } else {
    slot->SetSize(0);
  }
  return std::unique_ptr<WritableFile>(new MemWritableFile(core_, slot, path));
}

Result<std::unique_ptr<WritableFile>> MemFileSystem::NewAppendableFile(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kNewFile, path));
  NodePtr parent;
  std::string name;
  RETURN_IF_ERROR(core_->LookupParent(path, &parent, &name));
  NodePtr& slot = parent->entries[name];
  if (slot == nullptr) {
    slot = std::make_shared<Node>(false);
  } else if (slot->is_dir) {
    return Err(path, "Is a directory");
  }
  return std::unique_ptr<WritableFile>(new MemWritableFile(core_, slot, path));
}

Result<std::unique_ptr<WritableFile>> MemFileSystem::NewOverwritingFile(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kNewFile, path));
  NodePtr n;
  RETURN_IF_ERROR(core_->Lookup(path, &n));
  if (n->is_dir) return Err(path, "Is a directory");
  return std::unique_ptr<WritableFile>(new MemWritableFile(core_, n, path, /*overwrite=*/true));
}

Result<std::unique_ptr<RandomAccessFile>> MemFileSystem::NewRandomAccessFile(
    const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  NodePtr n;
  RETURN_IF_ERROR(core_->Lookup(path, &n));
  if (n->is_dir) return Err(path, "Is a directory");
  return std::unique_ptr<RandomAccessFile>(new MemRandomAccessFile(core_, n, path));
}

bool MemFileSystem::FileExists(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  NodePtr n;
  return core_->Lookup(path, &n).ok();
}

Result<uint64_t> MemFileSystem::FileSize(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  NodePtr n;
  RETURN_IF_ERROR(core_->Lookup(path, &n));
  return n->is_dir ? uint64_t{0} : static_cast<uint64_t>(n->data.size());
}

Result<std::vector<std::string>> MemFileSystem::ListDir(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  NodePtr n;
  RETURN_IF_ERROR(core_->Lookup(path, &n));
  if (!n->is_dir) return Err(path, "Not a directory");
  std::vector<std::string> names;
  names.reserve(n->entries.size());
  for (const auto& [name, child] : n->entries) names.push_back(name);
  return names;
}

Status MemFileSystem::CreateDir(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kCreateDir, path));
  NodePtr n;
  if (core_->Lookup(path, &n).ok()) {
    return n->is_dir ? Status::OK() : Err(path, "File exists");
  }
  NodePtr parent;
  std::string name;
  RETURN_IF_ERROR(core_->LookupParent(path, &parent, &name));
  parent->entries[name] = std::make_shared<Node>(true);
  return Status::OK();
}

Status MemFileSystem::RemoveDir(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kRemoveDir, path));
  NodePtr parent;
  std::string name;
  RETURN_IF_ERROR(core_->LookupParent(path, &parent, &name));
  auto it = parent->entries.find(name);
  if (it == parent->entries.end()) return NotFoundErr(path);
  if (!it->second->is_dir) return Err(path, "Not a directory");
  if (!it->second->entries.empty()) return Err(path, "Directory not empty");
  parent->entries.erase(it);
  return Status::OK();
}

Status MemFileSystem::RemoveFile(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kRemoveFile, path));
  NodePtr parent;
  std::string name;
  RETURN_IF_ERROR(core_->LookupParent(path, &parent, &name));
  auto it = parent->entries.find(name);
  if (it == parent->entries.end()) return NotFoundErr(path);
  if (it->second->is_dir) return Err(path, "Is a directory");
  parent->entries.erase(it);
  return Status::OK();
}

Status MemFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(core_->mu);
  const std::string what = from + " -> " + to;
  RETURN_IF_ERROR(core_->Admit(OpKind::kRename, what));
  NodePtr from_parent, to_parent;
  std::string from_name, to_name;
  Status s = core_->LookupParent(from, &from_parent, &from_name);
  if (!s.ok()) return s.IsNotFound() ? NotFoundErr(what) : s.WithContext(what);
  auto from_it = from_parent->entries.find(from_name);
  if (from_it == from_parent->entries.end()) return NotFoundErr(what);
  s = core_->LookupParent(to, &to_parent, &to_name);
  if (!s.ok()) return s.IsNotFound() ? NotFoundErr(what) : s.WithContext(what);
  NodePtr node = from_it->second;
  auto to_it = to_parent->entries.find(to_name);
  if (to_it != to_parent->entries.end()) {
    const NodePtr& target = to_it->second;
    if (target == node) return Status::OK();  // two names of one file: POSIX does nothing
    if (!node->is_dir && target->is_dir) return Err(what, "Is a directory");
    if (node->is_dir && !target->is_dir) return Err(what, "Not a directory");
    if (target->is_dir && !target->entries.empty()) return Err(what, "Directory not empty");
  }
  if (node->is_dir) {
    // A directory may not move into its own subtree.
    std::vector<std::string> fp, tp;
    SplitPath(from, &fp);
    SplitPath(to, &tp);
    if (tp.size() > fp.size() && std::equal(fp.begin(), fp.end(), tp.begin())) {
      return Err(what, "Invalid argument");
    }
  }
  from_parent->entries.erase(from_it);
  to_parent->entries[to_name] = std::move(node);
  return Status::OK();
}

Status MemFileSystem::LinkFile(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(core_->mu);
  const std::string what = from + " -> " + to;
  RETURN_IF_ERROR(core_->Admit(OpKind::kLinkFile, what));
  NodePtr node;
  Status s = core_->Lookup(from, &node);
  if (!s.ok()) return s.IsNotFound() ? NotFoundErr(what) : s.WithContext(what);
  if (node->is_dir) return Err(what, "Operation not permitted");
  NodePtr to_parent;
  std::string to_name;
  s = core_->LookupParent(to, &to_parent, &to_name);
  if (!s.ok()) return s.IsNotFound() ? NotFoundErr(what) : s.WithContext(what);
  if (to_parent->entries.count(to_name) != 0) return Err(what, "File exists");
  to_parent->entries[to_name] = std::move(node);
  return Status::OK();
}

Status MemFileSystem::Truncate(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kTruncate, path));
  NodePtr n;
  RETURN_IF_ERROR(core_->Lookup(path, &n));
  if (n->is_dir) return Err(path, "Is a directory");
  n->SetSize(size);
  return Status::OK();
}

Status MemFileSystem::SyncDir(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  RETURN_IF_ERROR(core_->Admit(OpKind::kSyncDir, path));
  NodePtr n;
  RETURN_IF_ERROR(core_->Lookup(path, &n));
  if (!n->is_dir) return Err(path, "Not a directory");
  n->durable_entries = n->entries;
  return Status::OK();
}

Result<std::unique_ptr<FileLock>> MemFileSystem::LockFile(const std::string& path) {
  std::lock_guard<std::mutex> l(core_->mu);
  NodePtr parent;
  std::string name;
  RETURN_IF_ERROR(core_->LookupParent(path, &parent, &name));
  NodePtr& slot = parent->entries[name];
  if (slot == nullptr) slot = std::make_shared<Node>(false);
  if (slot->is_dir) return Err(path, "Is a directory");
  auto it = core_->locks.find(slot.get());
  if (it != core_->locks.end()) {
    return Status::Busy(path + ": database is locked by another holder (" + it->second.holder +
                        ")");
  }
  uint64_t id = core_->next_lock_id++;
  core_->locks[slot.get()] = Core::LockInfo{
      id, "pid " + std::to_string(::getpid()) + ", in-memory lock #" + std::to_string(id)};
  return std::unique_ptr<FileLock>(new MemFileLock(core_, slot, id));
}

void MemFileSystem::DropUnsyncedData() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->RevertToDurable();
  core_->EndProcess();
}

void MemFileSystem::DropUnsyncedDataOutOfOrder(uint64_t seed, size_t block) {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->RevertToDurable(seed == 0 ? 1 : seed, std::max<size_t>(block, 1));
  core_->EndProcess();
}

void MemFileSystem::Reopen() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->EndProcess();
}

void MemFileSystem::MakeAllDurable() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->SyncEverything();
}

int64_t MemFileSystem::mutating_ops() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->mutating_ops;
}

void MemFileSystem::CrashAfter(int64_t k) {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->crash_countdown = std::max<int64_t>(k, 0);
}

bool MemFileSystem::crashed() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->crashed;
}

void MemFileSystem::FailNth(int64_t n, OpKind kind) {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->fail_rules.push_back(Core::FailRule{kind, std::max<int64_t>(n, 1)});
}

void MemFileSystem::set_partial_append(bool partial) {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->partial_append = partial;
}

void MemFileSystem::SetSpaceLimit(uint64_t bytes) {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->space_limit = bytes;
}

void MemFileSystem::ResetFaults() {
  std::lock_guard<std::mutex> l(core_->mu);
  core_->crashed = false;
  core_->crash_countdown = -1;
  core_->fail_rules.clear();
  core_->partial_append = false;
  core_->space_limit = kNoSpaceLimit;
}

uint64_t MemFileSystem::TotalFileBytes() const {
  std::lock_guard<std::mutex> l(core_->mu);
  return core_->TotalBytes();
}

}  // namespace usagedb
