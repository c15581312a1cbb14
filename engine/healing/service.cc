#include "engine/healing/service.h"

#include <algorithm>

#include "engine/core/time.h"

namespace df::healing {

SelfHealingService::SelfHealingService(HealingSettings settings, EventSink sink,
                                       FailureClassifier classifier, size_t kept_events)
    : settings_(settings),
      sink_(std::move(sink)),
      classifier_(std::move(classifier)),
      kept_events_(std::max<size_t>(1, kept_events)),
      restart_(settings.restart) {}

Decision SelfHealingService::on_run_failure(const Failure& failure, Clock::time_point now) {
  Decision d;
  d.failure_class = classifier_.classify(failure);
  {
    std::lock_guard lock(mu_);
    if (d.failure_class != FailureClass::kResource) resource_throttles_ = 0;
    switch (d.failure_class) {
      case FailureClass::kFatal:
      case FailureClass::kData:
        d.action = Action::kFail;
        break;
      case FailureClass::kResource:
        // Memory or disk ran out: restart with half the batch size after a
        // pause, up to resource.max_attempts times in a row; then it is a
        // task failure like any other.
        if (++resource_throttles_ <= settings_.resource.max_attempts) {
          d.action = Action::kThrottle;
          d.delay = settings_.resource.pause;
          d.attempt = resource_throttles_;
          break;
        }
        [[fallthrough]];
      case FailureClass::kTransient:
      case FailureClass::kTask:
        if (auto delay = restart_.on_failure(now)) {
          d.action = Action::kRestart;
          d.delay = *delay;
          d.attempt = restart_.restarts();
          ++counters_.restarts;
        } else {
          d.action = Action::kFail;
          d.attempt = restart_.restarts() + 1;
        }
        break;
    }
  }
  record(failure, d);
  return d;
}

void SelfHealingService::on_retry_event(const runtime::RetryEvent& event,
                                        const std::string& pipeline) {
  Failure failure;
  failure.status = Status::unavailable(event.message);
  failure.origin.pipeline = pipeline;
  failure.origin.node = event.node;
  failure.origin.subtask = event.subtask;
  Decision d;
  d.failure_class = FailureClass::kTransient;
  d.delay = event.delay;
  d.attempt = event.attempt;
  switch (event.kind) {
    case runtime::RetryEvent::Kind::kRetry:
      d.action = Action::kRetry;
      break;
    case runtime::RetryEvent::Kind::kBreakerOpen:
      d.action = Action::kOpenCircuit;
      break;
    case runtime::RetryEvent::Kind::kBreakerClosed:
      d.action = Action::kCloseCircuit;
      failure.status = Status::unavailable("the half-open probe succeeded");
      break;
  }
  record(failure, d);
}

void SelfHealingService::record(const Failure& failure, const Decision& d) {
  RunEvent e;
  e.time_ms = now_ms();
  e.failure_class = d.failure_class;
  e.action = d.action;
  e.node = failure.origin.node;
  e.message = failure.status.message();
  e.attempt = d.attempt;
  e.delay_ms = d.delay.count();
  {
    std::lock_guard lock(mu_);
    ++counters_.recoveries[{d.failure_class, d.action}];
    if (d.action == Action::kDeadLetter) ++counters_.dead_letters;
    if (events_.size() == kept_events_) events_.erase(events_.begin());
    events_.push_back(e);
  }
  if (sink_) sink_(e);
}

HealingCounters SelfHealingService::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

std::vector<RunEvent> SelfHealingService::events() const {
  std::lock_guard lock(mu_);
  return events_;
}

}  // namespace df::healing
