// SelfHealingService: decides what to do about each failure of one pipeline's
// runs (DESIGN §5), records every decision as a RunEvent and counts it.
//
// Today it handles failures that end a run (Scheduler::run() returned an
// error); `exec` and the server supervise the run with it:
//   fatal                -> fail at once with the reason, never loop;
//   task                 -> restart from the last completed checkpoint after
//                           the restart strategy's delay, or fail when it
//                           gives up;
//   resource             -> throttle: restart with half the batch size after
//                           resource.pause, up to resource.max_attempts times
//                           in a row; then escalate to task;
//   transient            -> reaching the run means in-place retries did not
//                           help: escalate to task (restart);
//   data                 -> a bad record the operator could not skip: replay
//                           would meet it again, so fail with the reason.
// and records what tasks decided in place (on_retry_event): transient
// failures retried (`retry`) and circuit breakers opened and closed.
//
// Thread-safety: every method may be called from any thread (one mutex);
// the event sink is called with the mutex released, in decision order per
// calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/healing/classifier.h"
#include "engine/healing/failure.h"
#include "engine/healing/restart_strategy.h"
#include "engine/healing/settings.h"
#include "engine/runtime/retry.h"

namespace df::healing {

struct Decision {
  FailureClass failure_class = FailureClass::kTask;
  Action action = Action::kFail;
  Millis delay{0};  // before the action (kRestart, kThrottle, kRetry)
  int attempt = 0;  // 1-based number of this restart or retry
};

// What the service counted, for metrics (dataflow_recoveries_total{class,
// action}, dataflow_restarts_total, dataflow_dead_letters_total).
struct HealingCounters {
  std::map<std::pair<FailureClass, Action>, uint64_t> recoveries;
  uint64_t restarts = 0;
  uint64_t dead_letters = 0;
};

class SelfHealingService {
 public:
  using Clock = std::chrono::steady_clock;
  using EventSink = std::function<void(const RunEvent&)>;

  // Keeps the newest `kept_events` events for events().
  SelfHealingService(HealingSettings settings, EventSink sink,
                     FailureClassifier classifier = FailureClassifier(), size_t kept_events = 1000);

  // A failure ended the run at `now`: restart (after Decision::delay) or fail.
  Decision on_run_failure(const Failure& failure, Clock::time_point now = Clock::now());
  // A task retried a call in place or changed a breaker (of `pipeline`):
  // recorded and counted as class transient, action retry / open_circuit /
  // close_circuit.
  void on_retry_event(const runtime::RetryEvent& event, const std::string& pipeline);

  const FailureClassifier& classifier() const { return classifier_; }
  const HealingSettings& settings() const { return settings_; }
  HealingCounters counters() const;
  std::vector<RunEvent> events() const;

 private:
  void record(const Failure& failure, const Decision& d);

  const HealingSettings settings_;
  const EventSink sink_;
  const FailureClassifier classifier_;
  const size_t kept_events_;
  mutable std::mutex mu_;
  RestartStrategy restart_;
  int resource_throttles_ = 0;  // resource failures in a row
  HealingCounters counters_;
  std::vector<RunEvent> events_;  // oldest first, at most kept_events_
};

}  // namespace df::healing
