// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
// Backoff and Jitter"): attempt n (1-based) waits a uniform random time in
// [0, min(max, initial * multiplier^(n-1))]. Spreading retries uniformly keeps
// many clients that failed together from retrying together.
//
// Thread-safety: a Backoff is a value; next_delay() uses the caller's random
// engine, so each thread keeps its own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "engine/core/time.h"

namespace df {

struct Backoff {
  Millis initial{100};
  Millis max{10000};
  double multiplier = 2.0;

  // The ceiling of attempt `attempt` (1-based): min(max, initial *
  // multiplier^(attempt-1)), without overflow for large attempts.
  Millis ceiling(int attempt) const {
    const double exp = std::pow(multiplier, std::max(0, attempt - 1));
    const double ms = static_cast<double>(initial.count()) * exp;
    const double cap = static_cast<double>(max.count());
    return Millis(static_cast<int64_t>(std::min(ms, cap)));
  }
  // A full-jitter delay for attempt `attempt`.
  template <typename Rng>
  Millis full_jitter(int attempt, Rng& rng) const {
    std::uniform_int_distribution<int64_t> dist(0, ceiling(attempt).count());
    return Millis(dist(rng));
  }
};

}  // namespace df
