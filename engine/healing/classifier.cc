#include "engine/healing/classifier.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cerrno>

namespace df::healing {

namespace {

using D = ErrorCause::Domain;
using C = FailureClass;

ClassifierRule cause(D domain, std::vector<int> codes, C result, std::string why) {
  return ClassifierRule{domain, std::move(codes), std::nullopt, result, std::move(why)};
}
ClassifierRule status(StatusCode code, C result, std::string why) {
  return ClassifierRule{D::kNone, {}, code, result, std::move(why)};
}

// The built-in table, most specific first.
std::vector<ClassifierRule> builtin_rules() {
  return {
      // Exceptions caught at a task boundary.
      cause(D::kException, {ErrorCause::kBadAlloc}, C::kResource, "out of memory (std::bad_alloc)"),
      cause(D::kException, {}, C::kTask, "an operator threw"),
      // errno values.
      cause(D::kErrno, {ENOSPC, EDQUOT, ENOMEM, EMFILE, ENFILE}, C::kResource,
            "disk full, quota, memory or file descriptors exhausted"),
      cause(D::kErrno,
            {ECONNRESET, ECONNREFUSED, ECONNABORTED, ETIMEDOUT, EAGAIN, EINTR, EHOSTUNREACH,
             ENETUNREACH, ENETDOWN, EPIPE, EBUSY},
            C::kTransient, "connection reset/refused, timeout, peer busy"),
      cause(D::kErrno, {EACCES, EPERM, EROFS, ENOENT, ENOTDIR, EISDIR}, C::kFatal,
            "permission denied, read-only or missing path"),
      // HTTP statuses (S3 and other HTTP peers).
      cause(D::kHttp, {408, 429, 500, 502, 503, 504}, C::kTransient,
            "timeout, throttling or server error"),
      cause(D::kHttp, {507}, C::kResource, "insufficient storage"),
      cause(D::kHttp, {400, 401, 403, 404, 405, 409, 411, 412, 413}, C::kFatal,
            "rejected request, bad credentials, missing bucket"),
      // librdkafka error codes.
      cause(D::kKafka,
            {RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
             RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
             RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
             RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
             RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
             RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
             RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
             RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
             RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, RD_KAFKA_RESP_ERR__QUEUE_FULL},
            C::kTransient, "broker unreachable, leader moving, timeout"),
      cause(D::kKafka,
            {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
             RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
             RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
             RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
             RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
             RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, RD_KAFKA_RESP_ERR__AUTHENTICATION,
             RD_KAFKA_RESP_ERR__SSL, RD_KAFKA_RESP_ERR_INVALID_CONFIG,
             RD_KAFKA_RESP_ERR__INVALID_ARG, RD_KAFKA_RESP_ERR__FENCED,
             RD_KAFKA_RESP_ERR_PRODUCER_FENCED, RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH},
            C::kFatal, "missing topic, authorization or authentication failure, fenced"),
      cause(D::kKafka,
            {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE,
             RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR__BAD_MSG},
            C::kData, "one message is too large or corrupt"),
      // Status codes, when no cause decided.
      status(StatusCode::kDataError, C::kData, "a bad record"),
      status(StatusCode::kUnavailable, C::kTransient, "a peer is temporarily unavailable"),
      status(StatusCode::kResourceExhausted, C::kResource, "memory, disk or quota exhausted"),
      status(StatusCode::kInvalidArgument, C::kFatal, "bad configuration or input"),
      status(StatusCode::kNotFound, C::kFatal, "something named does not exist"),
      status(StatusCode::kUnimplemented, C::kFatal, "not supported"),
      status(StatusCode::kAlreadyExists, C::kTask, "a conflicting object exists"),
      status(StatusCode::kIoError, C::kTask, "an I/O call failed"),
      status(StatusCode::kInternal, C::kTask, "a bug or broken invariant"),
      status(StatusCode::kCancelled, C::kTask, "cancelled"),
  };
}

bool matches(const ClassifierRule& rule, const Status& s, const ErrorCause& c) {
  if (rule.domain != D::kNone) {
    if (c.domain != rule.domain) return false;
    return rule.codes.empty() ||
           std::find(rule.codes.begin(), rule.codes.end(), c.code) != rule.codes.end();
  }
  return rule.status_code && *rule.status_code == s.code();
}

}  // namespace

FailureClassifier::FailureClassifier() : rules_(builtin_rules()) {}

void FailureClassifier::add_rule(ClassifierRule rule) {
  rules_.insert(rules_.begin(), std::move(rule));
}

FailureClass FailureClassifier::classify(const Status& status, const ErrorCause& cause) const {
  for (const ClassifierRule& r : rules_) {
    if (matches(r, status, cause)) return r.result;
  }
  return FailureClass::kTask;
}

FailureClass FailureClassifier::classify(const Failure& failure) const {
  if (failure.known_class) return *failure.known_class;
  return classify(failure.status, failure.cause);
}

}  // namespace df::healing
