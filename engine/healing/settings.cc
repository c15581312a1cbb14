#include "engine/healing/settings.h"

#include <string>

namespace df::healing {

namespace {

using Strategy = RestartSettings::Strategy;

void read_positive_int(OptionReader& r, std::string_view key, int& out) {
  if (auto v = r.int64(key)) {
    if (*v < 1 || *v > 1'000'000) {
      r.diags().error(r.get(key)->location(),
                      r.what() + " " + std::string(key) + " must be between 1 and 1000000");
    } else {
      out = static_cast<int>(*v);
    }
  }
}

void read_positive_duration(OptionReader& r, std::string_view key, Millis& out) {
  if (auto v = r.duration(key)) {
    if (v->count() <= 0) {
      r.diags().error(r.get(key)->location(),
                      r.what() + " " + std::string(key) + " must be longer than 0");
    } else {
      out = *v;
    }
  }
}

void read_strategy_options(const ConfigValue& options, Strategy strategy, RestartSettings& s,
                           Diagnostics& diags) {
  if (options.is_null()) return;
  OptionReader r(options, "restart " + std::string(restart_strategy_name(strategy)), diags);
  switch (strategy) {
    case Strategy::kNone:
      break;
    case Strategy::kFixedDelay:
      read_positive_int(r, "attempts", s.attempts);
      read_positive_duration(r, "delay", s.delay);
      break;
    case Strategy::kFailureRate:
      read_positive_int(r, "max_failures", s.max_failures);
      read_positive_duration(r, "interval", s.interval);
      read_positive_duration(r, "delay", s.delay);
      break;
    case Strategy::kExponentialDelay: {
      read_positive_duration(r, "initial", s.initial);
      read_positive_duration(r, "max", s.max);
      read_positive_duration(r, "reset_after", s.reset_after);
      if (auto m = r.float64("multiplier")) {
        if (*m < 1.0 || *m > 100.0) {
          diags.error(r.get("multiplier")->location(),
                      r.what() + " multiplier must be between 1 and 100");
        } else {
          s.multiplier = *m;
        }
      }
      int attempts = 0;
      if (r.has("max_attempts")) {
        read_positive_int(r, "max_attempts", attempts);
        if (attempts > 0) s.max_attempts = attempts;
      }
      if (s.max < s.initial) {
        diags.error(options.location(), r.what() + " max must not be shorter than initial");
      }
      break;
    }
  }
  r.finish();
}

std::optional<Strategy> parse_strategy(std::string_view name) {
  if (name == "none") return Strategy::kNone;
  if (name == "fixed_delay") return Strategy::kFixedDelay;
  if (name == "exponential_delay") return Strategy::kExponentialDelay;
  if (name == "failure_rate") return Strategy::kFailureRate;
  return std::nullopt;
}

}  // namespace

std::string_view restart_strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kNone:
      return "none";
    case Strategy::kFixedDelay:
      return "fixed_delay";
    case Strategy::kExponentialDelay:
      return "exponential_delay";
    case Strategy::kFailureRate:
      return "failure_rate";
  }
  return "none";
}

RetrySettings read_retry_settings(const ConfigValue& retry, RetrySettings s, Diagnostics& diags) {
  if (retry.is_null()) return s;
  OptionReader r(retry, "retry", diags);
  read_positive_int(r, "max_attempts", s.max_attempts);
  read_positive_duration(r, "initial_backoff", s.initial_backoff);
  read_positive_duration(r, "max_backoff", s.max_backoff);
  if (s.max_backoff < s.initial_backoff) {
    diags.error(retry.location(), "retry max_backoff must not be shorter than initial_backoff");
  }
  r.finish();
  return s;
}

CircuitBreakerSettings read_circuit_breaker_settings(const ConfigValue& breaker,
                                                     CircuitBreakerSettings s, Diagnostics& diags) {
  if (breaker.is_null()) return s;
  OptionReader r(breaker, "circuit_breaker", diags);
  read_positive_int(r, "failure_threshold", s.failure_threshold);
  read_positive_duration(r, "open_for", s.open_for);
  if (auto v = r.duration("max_open")) {
    if (v->count() < 0) {
      diags.error(r.get("max_open")->location(),
                  "circuit_breaker max_open must not be negative (0: never give up)");
    } else {
      s.max_open = *v;
    }
  }
  r.finish();
  return s;
}

RestartSettings read_restart_settings(const ConfigValue& restart, RestartSettings s,
                                      Diagnostics& diags) {
  const std::string expected =
      "restart must name one strategy: none, fixed_delay, exponential_delay or failure_rate";
  if (restart.is_null()) return s;
  if (restart.is_scalar()) {
    auto strategy = parse_strategy(restart.scalar_text());
    if (!strategy) {
      diags.error(restart.location(), expected + ", not '" + restart.scalar_text() + "'");
      return s;
    }
    s.strategy = *strategy;
    return s;
  }
  if (!restart.is_map() || restart.entries().size() != 1) {
    diags.error(restart.location(),
                expected + " as a one-key map, e.g. {fixed_delay: {attempts: 3, delay: 10s}}");
    return s;
  }
  const auto& [name, options] = restart.entries().front();
  auto strategy = parse_strategy(name);
  if (!strategy) {
    diags.error(restart.location(), expected + ", not '" + name + "'");
    return s;
  }
  if (!options.is_null() && !options.is_map()) {
    diags.error(options.location(), "restart " + name + " takes a map of options");
    return s;
  }
  s.strategy = *strategy;
  read_strategy_options(options, *strategy, s, diags);
  return s;
}

HealingSettings read_healing_settings(const ConfigValue* healing, HealingSettings s,
                                      Diagnostics& diags) {
  if (!healing || healing->is_null()) return s;
  if (!healing->is_map()) {
    diags.error(healing->location(),
                "healing must be a map with retry, restart, resource or circuit_breaker");
    return s;
  }
  OptionReader r(*healing, "healing", diags);
  if (const ConfigValue* retry = r.get("retry"))
    s.retry = read_retry_settings(*retry, s.retry, diags);
  if (const ConfigValue* restart = r.get("restart")) {
    s.restart = read_restart_settings(*restart, s.restart, diags);
  }
  if (const ConfigValue* resource = r.get("resource"); resource && !resource->is_null()) {
    OptionReader rr(*resource, "resource", diags);
    read_positive_duration(rr, "pause", s.resource.pause);
    read_positive_int(rr, "max_attempts", s.resource.max_attempts);
    rr.finish();
  }
  if (const ConfigValue* breaker = r.get("circuit_breaker")) {
    s.circuit_breaker = read_circuit_breaker_settings(*breaker, s.circuit_breaker, diags);
  }
  r.finish();
  return s;
}

}  // namespace df::healing
