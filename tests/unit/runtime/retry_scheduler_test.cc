// In-place retries in the real Scheduler (runtime/retry.h): a sink chained
// behind a source fails some calls with Unavailable; the held calls are made
// again in order (rows and watermarks), nothing is lost or repeated, each
// retry and breaker change is reported, and without a retry policy (or once
// it runs out) the transient error fails the run.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

using namespace std::chrono_literals;
using testing::counting;
using testing::PlanBuilder;
using testing::run_bounded;
using testing::SourceStats;

// What the flaky sink saw, in order: "b<first v>" per batch, "w<ts>" per
// watermark.
struct Seen {
  std::mutex mu;
  std::vector<std::string> log;
  uint64_t calls = 0;
};

// A sink whose process() calls number `fail` (1-based) return Unavailable
// before touching the batch, as the operator contract asks.
class FlakySink final : public Operator {
 public:
  FlakySink(std::shared_ptr<Seen> seen, std::set<uint64_t> fail)
      : seen_(std::move(seen)), fail_(std::move(fail)) {}
  Status process(size_t, const BatchPtr& b, Output&) override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    if (fail_.count(++seen_->calls)) return Status::unavailable("peer down");
    seen_->log.push_back("b" + std::to_string(b->column(1)->int64_at(b->row_at(0))));
    return Status::OK();
  }
  Status on_watermark(Watermark wm, Output&) override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    seen_->log.push_back("w" + std::to_string(wm.timestamp_ms));
    return Status::OK();
  }

 private:
  std::shared_ptr<Seen> seen_;
  std::set<uint64_t> fail_;
};

// source (batches of 100, a watermark after each) chained with the flaky sink.
PhysicalPlan chain_plan(std::shared_ptr<Seen> seen, std::set<uint64_t> fail, int64_t rows) {
  PlanBuilder pb;
  auto src = std::make_shared<SourceStats>();
  pb.vertex({testing::source_node("src", counting(src, rows, 100, /*watermarks=*/true)),
             testing::sink_node("out", [seen, fail](int, int) {
               return std::make_unique<FlakySink>(seen, fail);
             })});
  return pb.plan;
}

std::vector<std::string> expected_log(int64_t rows) {
  std::vector<std::string> log;
  for (int64_t first = 0; first < rows; first += 100) {
    log.push_back("b" + std::to_string(first));
    log.push_back("w" + std::to_string(std::min(first + 100, rows) - 1));
  }
  return log;
}

struct Events {
  std::mutex mu;
  std::vector<RetryEvent> all;
};

RunOptions retrying(std::shared_ptr<Events> events, RetryPolicy retry,
                    std::optional<CircuitBreakerPolicy> breaker = std::nullopt) {
  RunOptions o;
  o.workers = 2;
  o.batch_size = 100;
  o.io_threads = 1;
  o.retry = retry;
  o.circuit_breaker = breaker;
  o.on_retry_event = [events](const RetryEvent& e) {
    std::lock_guard<std::mutex> lock(events->mu);
    events->all.push_back(e);
  };
  return o;
}

TEST(InPlaceRetryTest, HeldCallsAreMadeAgainInOrderAndNothingIsLost) {
  auto seen = std::make_shared<Seen>();
  auto events = std::make_shared<Events>();
  const PhysicalPlan plan = chain_plan(seen, {3, 4}, 1000);
  Scheduler sched(plan, retrying(events, {5, Millis(1), Millis(5)}));
  ASSERT_TRUE(run_bounded(sched).ok());
  // The watermark after the failed batch waited for it.
  EXPECT_EQ(seen->log, expected_log(1000));
  ASSERT_EQ(events->all.size(), 2u);
  EXPECT_EQ(events->all[0].kind, RetryEvent::Kind::kRetry);
  EXPECT_EQ(events->all[0].node, "out");
  EXPECT_EQ(events->all[0].attempt, 2);
  EXPECT_EQ(events->all[0].message, "peer down");
  EXPECT_EQ(events->all[1].attempt, 3);
  // Rows are counted once, when the call that took them succeeded.
  EXPECT_EQ(sched.metrics().find("out")->rows_in.load(), 1000u);
  EXPECT_EQ(sched.metrics().find("out")->batches_in.load(), 10u);
}

TEST(InPlaceRetryTest, ABreakerOpensProbesAndClosesWithoutLosingOrder) {
  auto seen = std::make_shared<Seen>();
  auto events = std::make_shared<Events>();
  const PhysicalPlan plan = chain_plan(seen, {2, 3, 4, 5}, 600);
  Scheduler sched(plan, retrying(events, {3, Millis(1), Millis(5)},
                                 CircuitBreakerPolicy{2, Millis(20), Millis(0)}));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_bounded(sched).ok());
  // Open three times (the first opening and two failed probes) of 20 ms.
  EXPECT_GE(std::chrono::steady_clock::now() - started, 60ms);
  EXPECT_EQ(seen->log, expected_log(600));
  std::vector<RetryEvent::Kind> kinds;
  for (const RetryEvent& e : events->all) kinds.push_back(e.kind);
  // 4 failures in a row with max_attempts 3: the open breaker kept it alive.
  EXPECT_EQ(kinds, (std::vector<RetryEvent::Kind>{
                       RetryEvent::Kind::kRetry, RetryEvent::Kind::kBreakerOpen,
                       RetryEvent::Kind::kBreakerOpen, RetryEvent::Kind::kBreakerOpen,
                       RetryEvent::Kind::kBreakerClosed}));
  EXPECT_EQ(events->all[1].delay, Millis(20));
}

TEST(InPlaceRetryTest, RetriesThatRunOutFailTheRunWithTheError) {
  auto seen = std::make_shared<Seen>();
  auto events = std::make_shared<Events>();
  const PhysicalPlan plan = chain_plan(seen, {2, 3, 4}, 1000);
  Scheduler sched(plan, retrying(events, {3, Millis(1), Millis(2)}));
  const Status s = run_bounded(sched);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_NE(s.message().find("peer down (gave up after 3 attempts)"), std::string::npos)
      << s.to_string();
  EXPECT_EQ(sched.failure_site().node, "out");
  EXPECT_EQ(events->all.size(), 2u);
}

TEST(InPlaceRetryTest, WithoutARetryPolicyATransientErrorFailsTheRun) {
  auto seen = std::make_shared<Seen>();
  const PhysicalPlan plan = chain_plan(seen, {2}, 1000);
  RunOptions o;
  o.workers = 2;
  o.batch_size = 100;
  o.io_threads = 1;
  Scheduler sched(plan, o);
  const Status s = run_bounded(sched);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
}

TEST(InPlaceRetryTest, IsTransientDecidesWhatIsRetried) {
  auto seen = std::make_shared<Seen>();
  auto events = std::make_shared<Events>();
  const PhysicalPlan plan = chain_plan(seen, {2}, 1000);
  RunOptions o = retrying(events, {5, Millis(1), Millis(5)});
  o.is_transient = [](const Status&) { return false; };
  Scheduler sched(plan, o);
  EXPECT_EQ(run_bounded(sched).code(), StatusCode::kUnavailable);
  EXPECT_TRUE(events->all.empty());
}

}  // namespace
}  // namespace df::runtime
