// What went wrong, in the words the SelfHealingService decides on (DESIGN §5):
// a Failure is an error Status plus where it came from; its FailureClass says
// which policy acts; an Action is what the policy did; a RunEvent records
// each decision for the operator (printed by `exec`, kept by the server).
//
// Plain values; no threading concerns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/core/error_cause.h"
#include "engine/core/status.h"

namespace df::healing {

enum class FailureClass : uint8_t {
  kTransient,  // the peer may come back: retry the call in place
  kData,       // one record is bad: dead-letter it and go on
  kResource,   // memory, disk: shrink batches, pause sources
  kTask,       // a task broke: restart the run from the last checkpoint
  kFatal,      // configuration, authentication, schema: fail at once
};
std::string_view failure_class_name(FailureClass c);  // "transient", ...
std::optional<FailureClass> parse_failure_class(std::string_view name);

enum class Action : uint8_t {
  kRetry,         // the failed call is tried again after a backoff
  kDeadLetter,    // the record went to the dead-letter sink
  kSkip,          // the record was counted, logged and dropped (no dead-letter sink)
  kThrottle,      // batches halved, sources paused for a while
  kRestart,       // the run restarts from its last completed checkpoint
  kFail,          // the run fails with the reason
  kOpenCircuit,   // a sink's circuit breaker opened: its calls stop for a while
  kCloseCircuit,  // a half-open probe succeeded: the breaker closed
};
std::string_view action_name(Action a);  // "retry", "dead_letter", ...

// Where a failure happened. Empty fields are unknown.
struct FailureOrigin {
  std::string pipeline;
  std::string node;
  int subtask = -1;
  std::string call;  // the connector or storage call, e.g. "produce", "PUT"
};

struct Failure {
  Status status;
  ErrorCause cause;  // when the raising code knew the low-level reason
  FailureOrigin origin;
  // Data failures: the offending record (as text) and its source position
  // ("data/in.jsonl:17", "orders/3@1042").
  std::string record;
  std::string position;
  // Set when the raising code already knows better than the classifier
  // (e.g. an exception caught at a task boundary is always kTask).
  std::optional<FailureClass> known_class;
};

// One decision, as the operator sees it (`/runs/{id}/events`, exec's stderr).
struct RunEvent {
  int64_t time_ms = 0;  // wall clock, ms since the epoch
  FailureClass failure_class = FailureClass::kTask;
  Action action = Action::kFail;
  std::string node;
  std::string message;
  int attempt = 0;       // 1-based attempt this decision starts (restarts, retries)
  int64_t delay_ms = 0;  // wait before the action (restart/retry backoff)

  // {"time":"2026-11-21T10:00:00.000Z","class":"task","action":"restart",
  //  "node":"agg","message":"...","attempt":2,"delay_ms":1000}
  std::string to_json() const;
};

}  // namespace df::healing
