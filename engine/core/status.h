// Status and Result<T>: how every expected failure travels in DataFlow.
//
// Exceptions are reserved for bugs; they are caught at task boundaries.
// Both types are value types, cheap to move, and safe to share between
// threads once constructed (they are immutable through const access).
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace df {

enum class StatusCode : unsigned char {
  kOk = 0,
  kInvalidArgument,  // bad input from a user: config, pipeline, request
  kNotFound,
  kAlreadyExists,
  kIoError,            // a file, socket or storage call failed
  kDataError,          // one record is bad (undecodable, type error, div by zero)
  kResourceExhausted,  // memory, disk, quota
  kUnavailable,        // a peer is temporarily unreachable; retrying may help
  kCancelled,
  kInternal,  // a bug or broken invariant
  kUnimplemented,
  kFailedPrecondition,  // the request conflicts with the current state (a running pipeline)
};

std::string_view status_code_name(StatusCode code);

// The text of an errno value ("No such file or directory"), for messages.
std::string errno_text(int err);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status invalid(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status already_exists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status data_error(std::string m) { return {StatusCode::kDataError, std::move(m)}; }
  static Status resource_exhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
  static Status failed_precondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "IoError: cannot open x" (or "OK").
  std::string to_string() const;
  // Same code, message prefixed with "context: ".
  Status with_context(std::string_view context) const;

  // Explicitly discard a status whose failure is deliberately ignored.
  void ignore() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace df

#define DF_CONCAT_IMPL(a, b) a##b
#define DF_CONCAT(a, b) DF_CONCAT_IMPL(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define DF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::df::Status df_status_ = (expr);        \
    if (!df_status_.ok()) return df_status_; \
  } while (0)

#define DF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// `DF_ASSIGN_OR_RETURN(auto x, f());` binds x to the value or returns the error.
#define DF_ASSIGN_OR_RETURN(lhs, expr) \
  DF_ASSIGN_OR_RETURN_IMPL(DF_CONCAT(df_result_, __LINE__), lhs, expr)
