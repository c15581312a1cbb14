// The in-place retry and circuit-breaker state machine (engine/runtime/
// retry.h), the `healing.circuit_breaker` settings that configure it, and
// the run events the SelfHealingService makes of its decisions.
#include "engine/runtime/retry.h"

#include <gtest/gtest.h>

#include <vector>

#include "config/yaml_loader.h"
#include "engine/healing/service.h"
#include "engine/healing/settings.h"

namespace df::runtime {
namespace {

using Clock = CallRetrier::Clock;
using Kind = CallRetrier::Verdict::Kind;
using namespace std::chrono_literals;

RetryPolicy retry_policy(int max_attempts) { return {max_attempts, Millis(100), Millis(400)}; }

TEST(CallRetrierTest, RetriesWithFullJitterUpToMaxAttemptsThenEscalates) {
  CallRetrier r(retry_policy(4), std::nullopt, 7);
  const Clock::time_point t0 = Clock::now();
  // Ceilings 100, 200, 400 ms (capped at max_backoff).
  const Millis ceilings[] = {Millis(100), Millis(200), Millis(400)};
  for (int failure = 1; failure <= 3; ++failure) {
    const auto v = r.on_failure(t0);
    ASSERT_EQ(v.kind, Kind::kRetry) << failure;
    EXPECT_EQ(v.attempt, failure + 1);
    EXPECT_GE(v.delay.count(), 0);
    EXPECT_LE(v.delay, ceilings[failure - 1]);
    EXPECT_EQ(v.at, t0 + v.delay);
  }
  const auto v = r.on_failure(t0);
  EXPECT_EQ(v.kind, Kind::kEscalate);
  EXPECT_EQ(v.attempt, 4);
}

TEST(CallRetrierTest, ASuccessStartsTheCountAgain) {
  CallRetrier r(retry_policy(2), std::nullopt, 1);
  EXPECT_EQ(r.on_failure(Clock::now()).kind, Kind::kRetry);
  EXPECT_FALSE(r.on_success());  // no breaker was open
  EXPECT_EQ(r.failures(), 0);
  EXPECT_EQ(r.on_failure(Clock::now()).kind, Kind::kRetry);
  EXPECT_EQ(r.on_failure(Clock::now()).kind, Kind::kEscalate);
}

TEST(CallRetrierTest, MaxAttemptsOfOneNeverRetries) {
  CallRetrier r(retry_policy(1), std::nullopt, 1);
  EXPECT_EQ(r.on_failure(Clock::now()).kind, Kind::kEscalate);
}

TEST(CallRetrierTest, TheBreakerOpensAtTheThresholdAndProbesDoNotCountTowardMaxAttempts) {
  CircuitBreakerPolicy breaker{3, Millis(5000), Millis(0)};
  CallRetrier r(retry_policy(3), breaker, 1);
  const Clock::time_point t0 = Clock::now();
  EXPECT_EQ(r.on_failure(t0).kind, Kind::kRetry);
  EXPECT_EQ(r.on_failure(t0).kind, Kind::kRetry);
  // The third failure in a row reaches the threshold before max_attempts.
  auto v = r.on_failure(t0);
  ASSERT_EQ(v.kind, Kind::kOpened);
  EXPECT_EQ(r.state(), CallRetrier::State::kOpen);
  EXPECT_EQ(v.delay, Millis(5000));
  EXPECT_EQ(v.at, t0 + 5s);
  // Failed half-open probes re-open it, however many (max_open 0: forever).
  for (int probe = 1; probe <= 20; ++probe) {
    v = r.on_failure(t0 + probe * 5s);
    ASSERT_EQ(v.kind, Kind::kOpened) << probe;
    EXPECT_EQ(v.at, t0 + (probe + 1) * 5s);
  }
  // A successful probe closes it, and the count starts again.
  EXPECT_TRUE(r.on_success());
  EXPECT_EQ(r.state(), CallRetrier::State::kClosed);
  EXPECT_EQ(r.on_failure(t0).kind, Kind::kRetry);
}

TEST(CallRetrierTest, MaxOpenEscalatesABreakerThatStaysOpen) {
  CircuitBreakerPolicy breaker{1, Millis(1000), Millis(2500)};
  CallRetrier r(retry_policy(5), breaker, 1);
  const Clock::time_point t0 = Clock::now();
  EXPECT_EQ(r.on_failure(t0).kind, Kind::kOpened);
  EXPECT_EQ(r.on_failure(t0 + 1s).kind, Kind::kOpened);
  EXPECT_EQ(r.on_failure(t0 + 2s).kind, Kind::kOpened);
  EXPECT_EQ(r.on_failure(t0 + 3s).kind, Kind::kEscalate);  // open 3 s > 2.5 s
}

TEST(CallRetrierTest, WithoutABreakerMaxAttemptsDecides) {
  CallRetrier r(retry_policy(2), std::nullopt, 1);
  EXPECT_EQ(r.on_failure(Clock::now()).kind, Kind::kRetry);
  EXPECT_EQ(r.on_failure(Clock::now()).kind, Kind::kEscalate);
  EXPECT_EQ(r.state(), CallRetrier::State::kClosed);
}

TEST(CallRetrierTest, OnlyUnavailableIsRetriedByDefault) {
  EXPECT_TRUE(is_unavailable(Status::unavailable("peer down")));
  EXPECT_FALSE(is_unavailable(Status::io_error("disk")));
  EXPECT_FALSE(is_unavailable(Status::OK()));
}

}  // namespace
}  // namespace df::runtime

namespace df::healing {
namespace {

HealingSettings parse(const std::string& yaml, Diagnostics& diags) {
  auto doc = config::parse_yaml(yaml, "p.yaml");
  EXPECT_TRUE(doc.ok()) << doc.status().to_string();
  return read_healing_settings(doc->find("healing"), HealingSettings{}, diags);
}

TEST(CircuitBreakerSettingsTest, DefaultsAndEveryKey) {
  Diagnostics none;
  const HealingSettings d = parse("name: x\n", none);
  EXPECT_EQ(d.circuit_breaker.failure_threshold, 5);
  EXPECT_EQ(d.circuit_breaker.open_for, Millis(5000));
  EXPECT_EQ(d.circuit_breaker.max_open, Millis(0));

  Diagnostics diags;
  const HealingSettings s =
      parse("healing:\n  circuit_breaker: {failure_threshold: 3, open_for: 200ms, max_open: 1m}\n",
            diags);
  ASSERT_TRUE(diags.empty()) << diags.to_status().message();
  EXPECT_EQ(s.circuit_breaker.failure_threshold, 3);
  EXPECT_EQ(s.circuit_breaker.open_for, Millis(200));
  EXPECT_EQ(s.circuit_breaker.max_open, Millis(60000));
}

TEST(CircuitBreakerSettingsTest, RejectsUnknownKeysAndBadValues) {
  Diagnostics diags;
  parse(
      "healing:\n  circuit_breaker: {failure_threshold: 0, open_for: 0, max_open: -1s, "
      "half_open: 1}\n",
      diags);
  const std::string m = diags.to_status().message();
  EXPECT_NE(m.find("failure_threshold must be between 1 and 1000000"), std::string::npos) << m;
  EXPECT_NE(m.find("open_for must be longer than 0"), std::string::npos) << m;
  EXPECT_NE(m.find("max_open must not be negative"), std::string::npos) << m;
  EXPECT_NE(m.find("half_open"), std::string::npos) << m;
}

TEST(RetryEventsTest, EveryInPlaceDecisionIsARunEventAndCounted) {
  std::vector<RunEvent> seen;
  SelfHealingService svc(HealingSettings{}, [&](const RunEvent& e) { seen.push_back(e); });
  runtime::RetryEvent retry;
  retry.kind = runtime::RetryEvent::Kind::kRetry;
  retry.node = "out";
  retry.attempt = 2;
  retry.delay = Millis(40);
  retry.message = "peer down";
  svc.on_retry_event(retry, "p");
  runtime::RetryEvent open = retry;
  open.kind = runtime::RetryEvent::Kind::kBreakerOpen;
  svc.on_retry_event(open, "p");
  runtime::RetryEvent closed;
  closed.kind = runtime::RetryEvent::Kind::kBreakerClosed;
  closed.node = "out";
  svc.on_retry_event(closed, "p");

  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NE(seen[0].to_json().find(R"("class":"transient","action":"retry","node":"out",)"
                                   R"("message":"peer down","attempt":2,"delay_ms":40)"),
            std::string::npos)
      << seen[0].to_json();
  EXPECT_EQ(seen[1].action, Action::kOpenCircuit);
  EXPECT_EQ(seen[2].action, Action::kCloseCircuit);
  EXPECT_EQ(action_name(Action::kOpenCircuit), "open_circuit");
  EXPECT_EQ(action_name(Action::kCloseCircuit), "close_circuit");
  const HealingCounters c = svc.counters();
  EXPECT_EQ((c.recoveries.at({FailureClass::kTransient, Action::kRetry})), 1u);
  EXPECT_EQ((c.recoveries.at({FailureClass::kTransient, Action::kOpenCircuit})), 1u);
  EXPECT_EQ(c.restarts, 0u);
}

}  // namespace
}  // namespace df::healing
