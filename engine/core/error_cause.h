// The low-level reason behind an error Status, when the code that made the
// Status knew one: an errno value, an HTTP status, a librdkafka error code, or
// the kind of a caught exception. engine/healing's FailureClassifier reads it
// to pick a failure class more precisely than the StatusCode alone can.
#pragma once

#include <cstdint>
#include <string_view>

namespace df {

struct ErrorCause {
  enum class Domain : uint8_t {
    kNone,
    kErrno,      // code: an errno value (ENOSPC, ECONNRESET, ...)
    kHttp,       // code: an HTTP status (503, 403, ...)
    kKafka,      // code: an rd_kafka_resp_err_t value
    kException,  // code: an ExceptionKind
  };
  enum ExceptionKind : int { kOtherException = 0, kBadAlloc = 1 };

  Domain domain = Domain::kNone;
  int code = 0;

  static ErrorCause from_errno(int e) { return {Domain::kErrno, e}; }
  static ErrorCause http(int status) { return {Domain::kHttp, status}; }
  static ErrorCause kafka(int err) { return {Domain::kKafka, err}; }
  static ErrorCause exception(ExceptionKind kind) { return {Domain::kException, kind}; }
  bool known() const { return domain != Domain::kNone; }
};

// "errno", "http", "kafka", "exception" ("" for kNone).
constexpr std::string_view error_cause_domain_name(ErrorCause::Domain d) {
  switch (d) {
    case ErrorCause::Domain::kNone:
      return "";
    case ErrorCause::Domain::kErrno:
      return "errno";
    case ErrorCause::Domain::kHttp:
      return "http";
    case ErrorCause::Domain::kKafka:
      return "kafka";
    case ErrorCause::Domain::kException:
      return "exception";
  }
  return "";
}

}  // namespace df
