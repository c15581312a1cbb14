#include "engine/runtime/retry.h"

#include <algorithm>

namespace df::runtime {

bool is_unavailable(const Status& status) { return status.code() == StatusCode::kUnavailable; }

CallRetrier::CallRetrier(RetryPolicy retry, std::optional<CircuitBreakerPolicy> breaker,
                         uint64_t seed)
    : retry_(retry),
      breaker_(breaker),
      backoff_{retry.initial_backoff, std::max(retry.initial_backoff, retry.max_backoff), 2.0},
      rng_(seed) {}

CallRetrier::Verdict CallRetrier::on_failure(Clock::time_point now) {
  Verdict v;
  ++failures_;
  if (state_ == State::kOpen) {
    // The half-open probe failed: open again, unless it stayed open too long.
    const Millis open_for_so_far = std::chrono::duration_cast<Millis>(now - opened_at_);
    if (breaker_->max_open.count() > 0 && open_for_so_far >= breaker_->max_open) {
      v.kind = Verdict::Kind::kEscalate;
      v.attempt = failures_;
      return v;
    }
    v.kind = Verdict::Kind::kOpened;
    v.delay = breaker_->open_for;
    v.at = now + v.delay;
    return v;
  }
  if (breaker_ && failures_ >= breaker_->failure_threshold) {
    state_ = State::kOpen;
    opened_at_ = now;
    v.kind = Verdict::Kind::kOpened;
    v.delay = breaker_->open_for;
    v.at = now + v.delay;
    return v;
  }
  if (failures_ >= retry_.max_attempts) {
    v.kind = Verdict::Kind::kEscalate;
    v.attempt = failures_;
    return v;
  }
  v.kind = Verdict::Kind::kRetry;
  v.delay = backoff_.full_jitter(failures_, rng_);
  v.at = now + v.delay;
  v.attempt = failures_ + 1;
  return v;
}

bool CallRetrier::on_success() {
  const bool closed = state_ == State::kOpen;
  state_ = State::kClosed;
  failures_ = 0;
  return closed;
}

}  // namespace df::runtime
