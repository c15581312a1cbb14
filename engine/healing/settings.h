// How a pipeline heals (DESIGN §5): the `healing:` section of a pipeline file,
// over the server's `runtime.retry` / `runtime.restart` defaults.
//
//   healing:
//     retry: {max_attempts: 5, initial_backoff: 100ms, max_backoff: 10s}
//     restart: {exponential_delay: {initial: 1s, max: 5m, multiplier: 2, reset_after: 1h}}
//       # or {fixed_delay: {attempts: 3, delay: 10s}}
//       # or {failure_rate: {max_failures: 3, interval: 5m, delay: 10s}}
//       # or none: a task failure fails the run
//     resource: {pause: 5s, max_attempts: 3}
//     circuit_breaker: {failure_threshold: 5, open_for: 5s, max_open: 0}
//
// The dead-letter sink and its max_rate stay where the pipeline file has
// always had them (`dead_letter:`, engine/plan's PipelineSettings).
// Plain values.
#pragma once

#include <optional>

#include "engine/core/config_value.h"
#include "engine/core/time.h"
#include "engine/runtime/retry.h"

namespace df::healing {

// `transient`: the failed call is retried in place (runtime/retry.h):
// max_attempts tries in all, the first included, with full-jitter backoff
// from initial_backoff up to max_backoff.
using RetrySettings = runtime::RetryPolicy;

// `task`: the run restarts from its last completed checkpoint.
struct RestartSettings {
  enum class Strategy { kNone, kFixedDelay, kExponentialDelay, kFailureRate };
  Strategy strategy = Strategy::kExponentialDelay;
  // fixed_delay: give up after `attempts` restarts, waiting `delay` before each.
  // failure_rate: give up when more than `max_failures` failures fall within
  // `interval`, waiting `delay` before each restart.
  int attempts = 3;
  Millis delay{10000};
  int max_failures = 3;
  Millis interval{300000};
  // exponential_delay: wait initial, initial*multiplier, ... up to max; back
  // to initial after the run stayed up for reset_after. max_attempts, when
  // set, gives up after that many restarts in a row (default: never).
  Millis initial{1000};
  Millis max{300000};
  double multiplier = 2.0;
  Millis reset_after{3600000};
  std::optional<int> max_attempts;
};
std::string_view restart_strategy_name(RestartSettings::Strategy s);  // "fixed_delay", ...

// `resource`: batches are halved and sources paused for `pause`; after
// `max_attempts` throttles in a row the failure escalates to `task`.
struct ResourceSettings {
  Millis pause{5000};
  int max_attempts = 3;
};

// `transient`, around sinks: after failure_threshold transient failures in
// a row the breaker opens for open_for, then a probe call closes or re-opens
// it; max_open (0: never) escalates to `task` (runtime/retry.h).
using CircuitBreakerSettings = runtime::CircuitBreakerPolicy;

struct HealingSettings {
  RetrySettings retry;
  RestartSettings restart;
  ResourceSettings resource;
  CircuitBreakerSettings circuit_breaker;
};

// Reads a `healing:` map (nullptr or null: nothing to read) over `base`,
// reporting every problem to `diags` with its location (unknown keys, bad
// durations, a multiplier below 1, two strategies at once, ...).
HealingSettings read_healing_settings(const ConfigValue* healing, HealingSettings base,
                                      Diagnostics& diags);
// The same for a server config's `runtime.retry` and `runtime.restart` maps.
RetrySettings read_retry_settings(const ConfigValue& retry, RetrySettings base, Diagnostics& diags);
CircuitBreakerSettings read_circuit_breaker_settings(const ConfigValue& breaker,
                                                     CircuitBreakerSettings base,
                                                     Diagnostics& diags);
RestartSettings read_restart_settings(const ConfigValue& restart, RestartSettings base,
                                      Diagnostics& diags);

}  // namespace df::healing
