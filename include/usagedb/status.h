// Status and Result<T>: every fallible call in usageDb returns one of these; nothing is thrown.
#pragma once

#include <cassert>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace usagedb {

enum class StatusCode : int {
  kOk = 0,
  kNotFound = 1,
  kCorruption = 2,
  kNotSupported = 3,
  kInvalidArgument = 4,
  kIOError = 5,
  kBusy = 6,                // e.g. the database lock is held by another process
  kUnavailable = 7,         // retry later: backpressure, WAL sealed after an error, shutting down
  kOverflow = 8,            // an exact result does not fit
  kFailedPrecondition = 9,  // state conflict (e.g. closing a period that has not ended)
  kAborted = 10,
  kAlreadyExists = 11,
  kInternal = 12,
};

// Status is cheap to copy when ok (one null pointer).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string_view msg);

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view m) { return Status(StatusCode::kNotFound, m); }
  static Status Corruption(std::string_view m) { return Status(StatusCode::kCorruption, m); }
  static Status NotSupported(std::string_view m) { return Status(StatusCode::kNotSupported, m); }
  static Status InvalidArgument(std::string_view m) {
    return Status(StatusCode::kInvalidArgument, m);
  }
  static Status IOError(std::string_view m) { return Status(StatusCode::kIOError, m); }
  static Status Busy(std::string_view m) { return Status(StatusCode::kBusy, m); }
  static Status Unavailable(std::string_view m) { return Status(StatusCode::kUnavailable, m); }
  static Status Overflow(std::string_view m) { return Status(StatusCode::kOverflow, m); }
  static Status FailedPrecondition(std::string_view m) {
    return Status(StatusCode::kFailedPrecondition, m);
  }
  static Status Aborted(std::string_view m) { return Status(StatusCode::kAborted, m); }
  static Status AlreadyExists(std::string_view m) { return Status(StatusCode::kAlreadyExists, m); }
  static Status Internal(std::string_view m) { return Status(StatusCode::kInternal, m); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsCorruption() const { return code() == StatusCode::kCorruption; }
  bool IsIOError() const { return code() == StatusCode::kIOError; }
  bool IsInvalidArgument() const { return code() == StatusCode::kInvalidArgument; }

  // "Corruption: wal/000001.log: bad checksum at offset 12".
  std::string ToString() const;
  // Returns a copy with "context: " prepended to the message.
  Status WithContext(std::string_view context) const;
  // Marks a deliberately ignored error so it can be found by grep.
  void IgnoreError() const {}

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

const char* StatusCodeName(StatusCode code);

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& value) : v_(value) {}                   // NOLINT: implicit by design
  Result(T&& value) : v_(std::move(value)) {}             // NOLINT
  Result(const Status& status) : v_(status) { assert(!status.ok()); }  // NOLINT
  Result(Status&& status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::OK() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace usagedb

#define USAGEDB_CONCAT_INNER(a, b) a##b
#define USAGEDB_CONCAT(a, b) USAGEDB_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::usagedb::Status _st = (expr);                \
    if (!_st.ok()) return _st;                     \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(USAGEDB_CONCAT(_result_, __LINE__), lhs, expr)
