#include "engine/healing/service.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>

namespace df::healing {
namespace {

Failure failure(Status s, std::string node = "agg") {
  Failure f;
  f.status = std::move(s);
  f.origin.node = std::move(node);
  return f;
}

HealingSettings fixed(int attempts) {
  HealingSettings h;
  h.restart.strategy = RestartSettings::Strategy::kFixedDelay;
  h.restart.attempts = attempts;
  h.restart.delay = Millis(20);
  return h;
}

TEST(SelfHealingServiceTest, FatalFailsAtOnceAndTaskRestartsUntilTheStrategyGivesUp) {
  std::vector<RunEvent> seen;
  SelfHealingService svc(fixed(2), [&](const RunEvent& e) { seen.push_back(e); });

  Decision d = svc.on_run_failure(failure(Status::internal("agg[0]: exception: boom")));
  EXPECT_EQ(d.failure_class, FailureClass::kTask);
  EXPECT_EQ(d.action, Action::kRestart);
  EXPECT_EQ(d.delay, Millis(20));
  EXPECT_EQ(d.attempt, 1);
  d = svc.on_run_failure(failure(Status::unavailable("broker down")));  // escalated
  EXPECT_EQ(d.failure_class, FailureClass::kTransient);
  EXPECT_EQ(d.action, Action::kRestart);
  EXPECT_EQ(d.attempt, 2);
  d = svc.on_run_failure(failure(Status::internal("again")));
  EXPECT_EQ(d.action, Action::kFail);  // strategy exhausted
  EXPECT_EQ(d.attempt, 3);

  SelfHealingService other(fixed(5), nullptr);
  d = other.on_run_failure(failure(Status::invalid("unknown topic 'x'"), "in"));
  EXPECT_EQ(d.failure_class, FailureClass::kFatal);
  EXPECT_EQ(d.action, Action::kFail);
  EXPECT_EQ(other.counters().restarts, 0u);

  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].action, Action::kRestart);
  EXPECT_EQ(seen[2].action, Action::kFail);
  const HealingCounters c = svc.counters();
  EXPECT_EQ(c.restarts, 2u);
  EXPECT_EQ((c.recoveries.at({FailureClass::kTask, Action::kRestart})), 1u);
  EXPECT_EQ((c.recoveries.at({FailureClass::kTask, Action::kFail})), 1u);
  EXPECT_EQ((c.recoveries.at({FailureClass::kTransient, Action::kRestart})), 1u);
  EXPECT_EQ(svc.events().size(), 3u);
}

TEST(SelfHealingServiceTest, DataAndCausesAreClassifiedFromTheFailure) {
  SelfHealingService svc(fixed(5), nullptr);
  Failure disk = failure(Status::io_error("write out/part: No space left on device"));
  disk.cause = ErrorCause::from_errno(ENOSPC);
  Decision d = svc.on_run_failure(disk);
  EXPECT_EQ(d.failure_class, FailureClass::kResource);
  EXPECT_EQ(d.action, Action::kThrottle);
  EXPECT_EQ(svc.on_run_failure(failure(Status::data_error("bad row"))).action, Action::kFail);
}

TEST(SelfHealingServiceTest, ResourceFailuresThrottleThenEscalateToTheRestartStrategy) {
  HealingSettings h = fixed(1);
  h.resource.max_attempts = 2;
  h.resource.pause = Millis(70);
  SelfHealingService svc(h, nullptr);
  const Failure oom = failure(Status::resource_exhausted("out of memory"));
  Decision d = svc.on_run_failure(oom);
  EXPECT_EQ(d.action, Action::kThrottle);
  EXPECT_EQ(d.delay, Millis(70));
  EXPECT_EQ(d.attempt, 1);
  EXPECT_EQ(svc.on_run_failure(oom).action, Action::kThrottle);
  d = svc.on_run_failure(oom);  // persists: a task failure now
  EXPECT_EQ(d.failure_class, FailureClass::kResource);
  EXPECT_EQ(d.action, Action::kRestart);
  EXPECT_EQ(svc.on_run_failure(oom).action, Action::kFail);  // fixed_delay(1) gave up
  // Another class in between starts the throttles over.
  SelfHealingService other(h, nullptr);
  EXPECT_EQ(other.on_run_failure(oom).action, Action::kThrottle);
  EXPECT_EQ(other.on_run_failure(oom).action, Action::kThrottle);
  EXPECT_EQ(other.on_run_failure(failure(Status::internal("x"))).action, Action::kRestart);
  EXPECT_EQ(other.on_run_failure(oom).action, Action::kThrottle);
}

TEST(SelfHealingServiceTest, KeepsTheNewestEventsAndWritesThemAsJson) {
  SelfHealingService svc(fixed(100), nullptr, FailureClassifier(), 2);
  for (int i = 0; i < 3; ++i)
    (void)svc.on_run_failure(failure(Status::internal("n" + std::to_string(i))));
  auto events = svc.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].message, "n1");
  auto j = nlohmann::json::parse(events[1].to_json());
  EXPECT_EQ(j["class"], "task");
  EXPECT_EQ(j["action"], "restart");
  EXPECT_EQ(j["node"], "agg");
  EXPECT_EQ(j["message"], "n2");
  EXPECT_EQ(j["attempt"], 3);
  EXPECT_EQ(j["delay_ms"], 20);
  EXPECT_EQ(j["time"].get<std::string>().back(), 'Z');
}

}  // namespace
}  // namespace df::healing
