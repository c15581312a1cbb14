// RestartStrategy: how long to wait before restarting a run after a `task`
// failure, and when to give up (Flink's fixed-delay, exponential-delay and
// failure-rate strategies; settings.h documents the options).
//
// Time is passed in, so tests drive it without sleeping. Not thread-safe: one
// strategy per run, used by whoever supervises that run.
#pragma once

#include <chrono>
#include <deque>
#include <optional>

#include "engine/healing/settings.h"

namespace df::healing {

class RestartStrategy {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RestartStrategy(RestartSettings settings);

  // A task failure happened at `now`. Returns the delay before the restart,
  // or nullopt when the strategy gives up (the run fails).
  std::optional<Millis> on_failure(Clock::time_point now);
  // Restarts granted so far (since the last reset, for exponential_delay).
  int restarts() const { return restarts_; }
  const RestartSettings& settings() const { return settings_; }

 private:
  RestartSettings settings_;
  int restarts_ = 0;
  std::optional<Clock::time_point> last_restart_at_;  // failure time + delay
  std::deque<Clock::time_point> recent_failures_;     // failure_rate window
};

}  // namespace df::healing
