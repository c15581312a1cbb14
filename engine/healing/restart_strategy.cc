#include "engine/healing/restart_strategy.h"

#include "engine/core/backoff.h"

namespace df::healing {

using Strategy = RestartSettings::Strategy;

RestartStrategy::RestartStrategy(RestartSettings settings) : settings_(settings) {}

std::optional<Millis> RestartStrategy::on_failure(Clock::time_point now) {
  std::optional<Millis> delay;
  switch (settings_.strategy) {
    case Strategy::kNone:
      return std::nullopt;
    case Strategy::kFixedDelay:
      if (restarts_ >= settings_.attempts) return std::nullopt;
      delay = settings_.delay;
      break;
    case Strategy::kFailureRate:
      recent_failures_.push_back(now);
      while (!recent_failures_.empty() && now - recent_failures_.front() > settings_.interval) {
        recent_failures_.pop_front();
      }
      if (static_cast<int>(recent_failures_.size()) > settings_.max_failures) return std::nullopt;
      delay = settings_.delay;
      break;
    case Strategy::kExponentialDelay: {
      // A run that stayed up for reset_after since its last restart starts
      // the backoff over: the failure is news, not a crash loop.
      if (last_restart_at_ && now - *last_restart_at_ >= settings_.reset_after) restarts_ = 0;
      if (settings_.max_attempts && restarts_ >= *settings_.max_attempts) return std::nullopt;
      // Deterministic exponential growth (no jitter): one run restarts alone,
      // there is no herd to spread.
      const Backoff backoff{settings_.initial, settings_.max, settings_.multiplier};
      delay = backoff.ceiling(restarts_ + 1);
      break;
    }
  }
  ++restarts_;
  last_restart_at_ = now + *delay;
  return delay;
}

}  // namespace df::healing
