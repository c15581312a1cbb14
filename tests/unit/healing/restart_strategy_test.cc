#include "engine/healing/restart_strategy.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/core/backoff.h"

namespace df::healing {
namespace {

using Clock = RestartStrategy::Clock;
using std::chrono::milliseconds;
using std::chrono::minutes;

TEST(RestartStrategyTest, FixedDelayGivesUpAfterItsAttempts) {
  RestartSettings s;
  s.strategy = RestartSettings::Strategy::kFixedDelay;
  s.attempts = 2;
  s.delay = Millis(300);
  RestartStrategy r(s);
  const auto t = Clock::time_point{} + minutes(1);
  EXPECT_EQ(r.on_failure(t), Millis(300));
  EXPECT_EQ(r.on_failure(t + minutes(60)), Millis(300));
  EXPECT_EQ(r.on_failure(t + minutes(120)), std::nullopt);  // attempts are not reset by time
  EXPECT_EQ(r.restarts(), 2);
}

TEST(RestartStrategyTest, ExponentialDelayGrowsCapsAndResetsAfterAQuietSpell) {
  RestartSettings s;
  s.strategy = RestartSettings::Strategy::kExponentialDelay;
  s.initial = Millis(100);
  s.max = Millis(500);
  s.multiplier = 2;
  s.reset_after = minutes(10);
  RestartStrategy r(s);
  auto t = Clock::time_point{} + minutes(1);
  EXPECT_EQ(r.on_failure(t), Millis(100));
  EXPECT_EQ(r.on_failure(t += milliseconds(150)), Millis(200));
  EXPECT_EQ(r.on_failure(t += milliseconds(250)), Millis(400));
  EXPECT_EQ(r.on_failure(t += milliseconds(450)), Millis(500));  // capped at max
  EXPECT_EQ(r.on_failure(t += milliseconds(550)), Millis(500));
  // Up for longer than reset_after since the last restart: back to initial.
  EXPECT_EQ(r.on_failure(t += minutes(11)), Millis(100));
  EXPECT_EQ(r.restarts(), 1);
}

TEST(RestartStrategyTest, ExponentialDelayWithMaxAttemptsGivesUp) {
  RestartSettings s;
  s.strategy = RestartSettings::Strategy::kExponentialDelay;
  s.initial = Millis(10);
  s.max_attempts = 2;
  RestartStrategy r(s);
  const auto t = Clock::time_point{} + minutes(1);
  EXPECT_TRUE(r.on_failure(t));
  EXPECT_TRUE(r.on_failure(t + Millis(20)));
  EXPECT_FALSE(r.on_failure(t + Millis(50)));
}

TEST(RestartStrategyTest, FailureRateCountsOnlyFailuresInsideTheInterval) {
  RestartSettings s;
  s.strategy = RestartSettings::Strategy::kFailureRate;
  s.max_failures = 2;
  s.interval = minutes(1);
  s.delay = Millis(50);
  RestartStrategy r(s);
  auto t = Clock::time_point{} + minutes(5);
  EXPECT_EQ(r.on_failure(t), Millis(50));
  EXPECT_EQ(r.on_failure(t + std::chrono::seconds(30)), Millis(50));
  // The first failure left the window: still two in the last minute.
  EXPECT_EQ(r.on_failure(t + std::chrono::seconds(61)), Millis(50));
  // Three within a minute: give up.
  EXPECT_EQ(r.on_failure(t + std::chrono::seconds(62)), std::nullopt);
}

TEST(BackoffTest, FullJitterStaysUnderTheCappedExponentialCeiling) {
  const Backoff b{Millis(100), Millis(5000), 2.0};
  EXPECT_EQ(b.ceiling(1), Millis(100));
  EXPECT_EQ(b.ceiling(3), Millis(400));
  EXPECT_EQ(b.ceiling(10), Millis(5000));
  EXPECT_EQ(b.ceiling(10000), Millis(5000));  // no overflow
  std::mt19937_64 rng(3);
  Millis longest{0};
  for (int i = 0; i < 500; ++i) {
    const Millis d = b.full_jitter(4, rng);
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d, Millis(800));
    longest = std::max(longest, d);
  }
  EXPECT_GT(longest, Millis(400));  // spread over the whole range
}

TEST(RestartStrategyTest, NoneNeverRestarts) {
  RestartSettings s;
  s.strategy = RestartSettings::Strategy::kNone;
  RestartStrategy r(s);
  EXPECT_EQ(r.on_failure(Clock::now()), std::nullopt);
}

}  // namespace
}  // namespace df::healing
