// In-place retries of transient failures and the circuit breaker around a
// node's calls (DESIGN §5, `transient`). The runtime side of
// `healing.retry` and `healing.circuit_breaker`: engine/healing parses the
// settings and passes the numbers down in RunOptions; tasks keep one
// CallRetrier per node and ask it what to do after each failed or
// successful call.
//
// A transient failure (Unavailable, or what RunOptions::is_transient says)
// of a transform's or sink's process() or a source's produce() is retried
// with the same input after a full-jitter backoff; the task is re-scheduled
// by the timer meanwhile (no worker waits). After `max_attempts` tries the
// failure escalates: the run fails (and restarts from its checkpoint).
//
// With a breaker (sinks): `failure_threshold` failures in a row open it. An
// open breaker stops the node's calls for `open_for`, then lets one probe
// call through (half-open): success closes it, failure re-opens it. While
// open, failures do not count toward max_attempts; the breaker escalates
// only when it stayed open longer than `max_open` (0: never).
//
// Plain values; a CallRetrier belongs to one task (not thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "engine/core/backoff.h"
#include "engine/core/status.h"
#include "engine/core/time.h"

namespace df::runtime {

// healing.retry
struct RetryPolicy {
  int max_attempts = 5;  // tries in all, the first included; 1: no retries
  Millis initial_backoff{100};
  Millis max_backoff{10000};
};

// healing.circuit_breaker
struct CircuitBreakerPolicy {
  int failure_threshold = 5;  // transient failures in a row that open the breaker
  Millis open_for{5000};      // open this long before a half-open probe
  Millis max_open{0};         // escalate when open longer than this; 0: never
};

// What a task reports about its retries and breakers (turned into run
// events by engine/healing). Called on worker threads: keep it quick.
struct RetryEvent {
  enum class Kind : uint8_t {
    kRetry,          // a transient failure: the call is retried after `delay`
    kBreakerOpen,    // the breaker opened (or re-opened after a failed probe)
    kBreakerClosed,  // a half-open probe succeeded
  };
  Kind kind = Kind::kRetry;
  std::string node;
  int subtask = 0;
  int attempt = 0;      // retries: the 1-based try the retry makes
  Millis delay{0};      // until the retry or the probe
  std::string message;  // the failure's message (empty for kBreakerClosed)
};
using RetryEventSink = std::function<void(const RetryEvent&)>;

// True for a Status the runtime retries in place: Unavailable.
bool is_unavailable(const Status& status);

class CallRetrier {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t { kClosed, kOpen };

  // `breaker`: nullopt for nodes without one (transforms, sources).
  CallRetrier(RetryPolicy retry, std::optional<CircuitBreakerPolicy> breaker, uint64_t seed);

  struct Verdict {
    enum class Kind : uint8_t {
      kRetry,     // try again at `at`
      kOpened,    // the breaker opened (or re-opened): probe at `at`
      kEscalate,  // give up: the failure goes to the run
    };
    Kind kind = Kind::kEscalate;
    Clock::time_point at{};
    Millis delay{0};
    int attempt = 0;  // kRetry: the 1-based try it makes; kEscalate: tries made
  };
  // The call failed transiently at `now`.
  Verdict on_failure(Clock::time_point now);
  // The call succeeded. True when that closed an open breaker (the probe).
  bool on_success();

  State state() const { return state_; }
  int failures() const { return failures_; }  // in a row, the open spell included

 private:
  const RetryPolicy retry_;
  const std::optional<CircuitBreakerPolicy> breaker_;
  const Backoff backoff_;
  std::mt19937_64 rng_;
  State state_ = State::kClosed;
  int failures_ = 0;
  Clock::time_point opened_at_{};
};

}  // namespace df::runtime
