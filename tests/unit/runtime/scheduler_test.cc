#include "engine/runtime/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <set>
#include <thread>

#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

using namespace std::chrono_literals;
using testing::collect;
using testing::CollectSink;
using testing::counting;
using testing::eventually;
using testing::PlanBuilder;
using testing::run_bounded;
using testing::SinkState;
using testing::SourceStats;
using testing::sum_0_to;

RunOptions opts(int workers, size_t batch = 128, size_t buffer = 1024) {
  RunOptions o;
  o.workers = workers;
  o.batch_size = batch;
  o.buffer_size = buffer;
  o.backpressure_threshold = 0.8;
  o.io_threads = 1;
  return o;
}

// --- Termination and exactly-once delivery ---------------------------------

struct Shape {
  int workers;
  int parallelism;
};

class TerminationTest : public ::testing::TestWithParam<Shape> {};

// source -rebalance-> map(+1) -hash(k)-> sink, every vertex at the same
// parallelism; then a forward chain variant. Every row arrives exactly once.
TEST_P(TerminationTest, BoundedPipelineDeliversEveryRowOnce) {
  const auto [workers, par] = GetParam();
  constexpr int64_t kRows = 10000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, kRows, 128))}, par);
  size_t m = pb.vertex({testing::op_node("inc", "map", testing::add_one())}, par);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, par);
  pb.edge(s, m, Partitioning::kRebalance);
  pb.edge(m, k, Partitioning::kHash, 0, {0});
  Scheduler sched(pb.plan, opts(workers, 128, 512));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sink->sum.load(), sum_0_to(kRows) + kRows);
  EXPECT_EQ(sink->finished.load(), par);
  EXPECT_EQ(sink->closed.load(), par);
  EXPECT_EQ(src->closed.load(), par);
  const NodeMetrics* inc = sched.metrics().find("inc");
  ASSERT_NE(inc, nullptr);
  EXPECT_EQ(inc->rows_in.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(inc->rows_out.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sched.metrics().find("src")->rows_out.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sched.metrics().find("out")->rows_in.load(), static_cast<uint64_t>(kRows));
}

TEST_P(TerminationTest, ForwardChainDeliversEveryRowOnce) {
  const auto [workers, par] = GetParam();
  constexpr int64_t kRows = 5000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, kRows, 100)),
                        testing::op_node("inc", "map", testing::add_one())},
                       par);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, par);
  pb.edge(s, k, Partitioning::kForward);
  Scheduler sched(pb.plan, opts(workers, 100, 300));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sink->sum.load(), sum_0_to(kRows) + kRows);
  EXPECT_EQ(sched.channel_stats().channels, static_cast<size_t>(par));  // i -> i only
}

INSTANTIATE_TEST_SUITE_P(WorkersByParallelism, TerminationTest,
                         ::testing::Values(Shape{1, 1}, Shape{1, 2}, Shape{1, 3}, Shape{1, 4},
                                           Shape{2, 1}, Shape{2, 2}, Shape{2, 3}, Shape{2, 4},
                                           Shape{4, 1}, Shape{4, 2}, Shape{4, 3}, Shape{4, 4}));

// --- Chaining, fan-out, fan-in, partitioning ----------------------------------

TEST(SchedulerTest, ChainRunsAsOneTaskWithoutChannels) {
  constexpr int64_t kRows = 3000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  pb.vertex(
      {testing::source_node("src", counting(src, kRows, 64)),
       testing::op_node("a", "map", testing::add_one()),
       testing::op_node("b", "map", testing::add_one()),
       testing::op_node("c", "map", testing::add_one()), testing::sink_node("out", collect(sink))},
      1);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sched.channel_stats().channels, 0u);
  EXPECT_EQ(sink->rows.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sink->sum.load(), sum_0_to(kRows) + 3 * kRows);
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(sched.metrics().find(id)->rows_in.load(), static_cast<uint64_t>(kRows)) << id;
    EXPECT_EQ(sched.metrics().find(id)->rows_out.load(), static_cast<uint64_t>(kRows)) << id;
  }
}

TEST(SchedulerTest, FinishOutputOfOneOperatorReachesTheNextBeforeItsFinish) {
  constexpr int64_t kRows = 1000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  pb.vertex({testing::source_node("src", counting(src, kRows, 64)),
             testing::op_node("hold", "buffer",
                              [](int, int) { return std::make_unique<testing::BufferAll>(); }),
             testing::sink_node("out", collect(sink))});
  Scheduler sched(pb.plan, opts(1));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sink->rows_at_finish.load(), static_cast<uint64_t>(kRows));
}

TEST(SchedulerTest, FanOutDeliversEveryRowToEveryConsumer) {
  constexpr int64_t kRows = 4000;
  auto src = std::make_shared<SourceStats>();
  auto a = std::make_shared<SinkState>();
  auto b = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, kRows, 100))}, 2);
  size_t ka = pb.vertex({testing::sink_node("a", collect(a))}, 1);
  size_t kb = pb.vertex({testing::sink_node("b", collect(b))}, 3);
  pb.edge(s, ka, Partitioning::kRebalance);
  pb.edge(s, kb, Partitioning::kRebalance);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  for (auto* st : {a.get(), b.get()}) {
    EXPECT_EQ(st->rows.load(), static_cast<uint64_t>(kRows));
    EXPECT_EQ(st->sum.load(), sum_0_to(kRows));
  }
}

TEST(SchedulerTest, FanInMergesTwoSources) {
  constexpr int64_t kRows = 3000;
  auto s1 = std::make_shared<SourceStats>();
  auto s2 = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t a = pb.vertex({testing::source_node("a", counting(s1, kRows, 100))}, 1);
  size_t b = pb.vertex({testing::source_node("b", counting(s2, kRows, 70))}, 2);
  size_t u = pb.vertex(
      {testing::op_node("u", "union", [](int, int) { return std::make_unique<testing::Union>(); }),
       testing::sink_node("out", collect(sink))},
      2);
  pb.edge(a, u, Partitioning::kRebalance, 0);
  pb.edge(b, u, Partitioning::kForward, 1);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), static_cast<uint64_t>(2 * kRows));
  EXPECT_EQ(sink->sum.load(), 2 * sum_0_to(kRows));
}

TEST(SchedulerTest, HashPartitioningKeepsEqualKeysTogether) {
  constexpr int64_t kRows = 6000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, kRows, 100))}, 2);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 3);
  pb.edge(s, k, Partitioning::kHash, 0, {0});
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), static_cast<uint64_t>(kRows));
  EXPECT_EQ(sink->sum.load(), sum_0_to(kRows));
  std::set<int64_t> all;
  int used = 0;
  for (int i = 0; i < 3; ++i) {
    for (int64_t key : sink->keys[i])
      EXPECT_TRUE(all.insert(key).second) << "key " << key << " on two subtasks";
    used += sink->keys[i].empty() ? 0 : 1;
  }
  EXPECT_EQ(all.size(), 13u);  // k = v % 13
  EXPECT_GE(used, 2);          // 13 keys over 3 subtasks do not all hash alike
}

TEST(SchedulerTest, RebalanceSpreadsBatchesRoundRobin) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 4000, 100))}, 1);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 4);
  pb.edge(s, k, Partitioning::kRebalance);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(sink->batches_by_subtask[i], 10u) << "subtask " << i;
  EXPECT_EQ(sink->rows.load(), 4000u);
}

TEST(SchedulerTest, BroadcastSendsEveryRowToEverySubtask) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 1000, 100))}, 1);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 3);
  pb.edge(s, k, Partitioning::kBroadcast);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), 3000u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sink->batches_by_subtask[i], 10u);
}

// --- Backpressure ---------------------------------------------------------------

TEST(SchedulerTest, FullChannelStopsTheProducerAndBoundsMemory) {
  constexpr size_t kBatch = 100;
  constexpr size_t kBuffer = 1000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  sink->accept = false;  // a stalled sink
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, -1, kBatch))}, 1);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 1);
  pb.edge(s, k, Partitioning::kRebalance);
  RunOptions o = opts(2, kBatch, kBuffer);
  o.backpressure_threshold = 0.5;
  Scheduler sched(pb.plan, o);
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });

  // The producer fills the channel past the threshold, then is parked.
  ASSERT_TRUE(eventually([&] { return sched.channel_stats().buffered_rows > 500; }));
  const uint64_t calls = src->produce_calls.load();
  std::this_thread::sleep_for(100ms);  // give a (wrongly) scheduled producer time to show up
  EXPECT_EQ(src->produce_calls.load(), calls) << "a producer over the threshold was scheduled";
  ChannelStats st = sched.channel_stats();
  EXPECT_LE(st.buffered_rows, st.threshold_rows + kBatch);  // one step's overshoot at most
  EXPECT_LE(st.buffered_rows, kBuffer + kBatch);
  EXPECT_EQ(sink->rows.load(), 0u);
  EXPECT_GE(sched.metrics().find("src")->backpressure_events.load(), 1u);

  // Un-stall: the sink drains, the producer resumes.
  sink->accept = true;
  ASSERT_NE(sink->ctx.load(), nullptr);
  sink->ctx.load()->wake();
  ASSERT_TRUE(eventually([&] { return sink->rows.load() > 5000; }));
  EXPECT_GT(src->produce_calls.load(), calls);
  sched.request_stop();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());
  st = sched.channel_stats();
  EXPECT_LE(st.high_water_rows, st.threshold_rows + kBatch);
  EXPECT_EQ(sink->rows.load(), src->rows.load());  // the drain delivered everything
}

// --- Watermarks ----------------------------------------------------------------

struct ScriptState {
  std::atomic<bool> release{false};
  std::atomic<OperatorContext*> ctx{nullptr};
  std::atomic<bool> parked{false};
};

// Emits one batch and watermark `wm1`, then waits (wait() without a time)
// until released, then emits watermark `wm2` and ends.
class ScriptedSource final : public SourceOperator {
 public:
  ScriptedSource(std::shared_ptr<ScriptState> st, int64_t wm1, int64_t wm2)
      : st_(std::move(st)), wm1_(wm1), wm2_(wm2) {}
  Status open(OperatorContext& ctx) override {
    st_->ctx = &ctx;
    return Status::OK();
  }
  Result<SourceProgress> produce(Output& out) override {
    switch (step_) {
      case 0:
        out.emit(testing::make_rows(0, 10));
        out.emit_watermark(Watermark{wm1_});
        step_ = 1;
        return SourceProgress::more();
      case 1:
        if (!st_->release.load()) {
          st_->parked = true;
          return SourceProgress::wait();
        }
        out.emit_watermark(Watermark{wm2_});
        step_ = 2;
        return SourceProgress::more();
      default:
        return SourceProgress::exhausted();
    }
  }

 private:
  std::shared_ptr<ScriptState> st_;
  int64_t wm1_, wm2_;
  int step_ = 0;
};

TEST(SchedulerTest, MultiInputWatermarkIsTheMinimumOverInputs) {
  auto sa = std::make_shared<ScriptState>();
  auto sb = std::make_shared<ScriptState>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t a = pb.vertex({testing::source_node(
      "a", [sa](int, int) { return std::make_unique<ScriptedSource>(sa, 100, 10000); })});
  size_t b = pb.vertex({testing::source_node(
      "b", [sb](int, int) { return std::make_unique<ScriptedSource>(sb, 5000, 6000); })});
  size_t u = pb.vertex(
      {testing::op_node("u", "union", [](int, int) { return std::make_unique<testing::Union>(); }),
       testing::sink_node("out", collect(sink))});
  pb.edge(a, u, Partitioning::kForward, 0);
  pb.edge(b, u, Partitioning::kForward, 1);
  Scheduler sched(pb.plan, opts(2));
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });

  // Both sources parked after their first watermark: the union sees min = 100.
  ASSERT_TRUE(eventually([&] {
    return sa->parked.load() && sb->parked.load() &&
           sched.metrics().find("u")->watermark_ms.load() == 100 && sink->rows.load() == 20;
  }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(sched.metrics().find("u")->watermark_ms.load(), 100);
  {
    std::lock_guard<std::mutex> lock(sink->mu);
    EXPECT_EQ(sink->watermarks, std::vector<int64_t>({100}));
  }
  // b moves to 6000 and ends; a still holds the minimum until it moves.
  sb->release = true;
  sb->ctx.load()->wake();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(sched.metrics().find("u")->watermark_ms.load(), 100);
  sa->release = true;
  sa->ctx.load()->wake();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  ASSERT_TRUE(fut.get().ok());
  std::lock_guard<std::mutex> lock(sink->mu);
  // An ended input stops counting. The order in which the union reads the
  // inputs' last elements decides the tail: b's end first -> a's 10000 is the
  // minimum of what is left; a's 10000 before b's end -> min(10000, 6000),
  // then 10000; a's end first (possible when the machine is slow) -> b's 5000
  // and 6000. All are right; what is never right is passing 100 while both
  // inputs live (checked above).
  const std::vector<int64_t> b_ended_first{100, 10000};
  const std::vector<int64_t> a_moved_before_b_ended{100, 6000, 10000};
  const std::vector<int64_t> a_ended_first{100, 5000, 6000};
  EXPECT_TRUE(sink->watermarks == b_ended_first || sink->watermarks == a_moved_before_b_ended ||
              sink->watermarks == a_ended_first)
      << ::testing::PrintToString(sink->watermarks);
  EXPECT_EQ(sched.metrics().find("a")->watermark_ms.load(), 10000);
}

TEST(SchedulerTest, SourceWatermarksFlowThroughChannels) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 1000, 100, true))}, 1);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 1);
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  std::lock_guard<std::mutex> lock(sink->mu);
  ASSERT_EQ(sink->watermarks.size(), 10u);
  EXPECT_TRUE(std::is_sorted(sink->watermarks.begin(), sink->watermarks.end()));
  EXPECT_EQ(sink->watermarks.back(), 999);
}

// --- Fairness ------------------------------------------------------------------

TEST(SchedulerTest, OneWorkerRunsIndependentBranchesFairly) {
  auto endless = std::make_shared<SourceStats>();
  auto bounded = std::make_shared<SourceStats>();
  auto sa = std::make_shared<SinkState>();
  auto sb = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s1 = pb.vertex({testing::source_node("endless", counting(endless, -1, 64))});
  size_t k1 = pb.vertex({testing::sink_node("sa", collect(sa))});
  size_t s2 = pb.vertex({testing::source_node("bounded", counting(bounded, 20000, 64))});
  size_t k2 = pb.vertex({testing::sink_node("sb", collect(sb))});
  pb.edge(s1, k1);
  pb.edge(s2, k2);
  Scheduler sched(pb.plan, opts(1, 64, 4096));
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });
  ASSERT_TRUE(eventually([&] { return sb->closed.load() == 1; }, 20s))
      << "the bounded branch starved";
  EXPECT_EQ(sb->rows.load(), 20000u);
  EXPECT_GT(sa->rows.load(), 0u);
  EXPECT_EQ(sa->finished.load(), 0);  // the endless branch is still running
  EXPECT_EQ(fut.wait_for(0s), std::future_status::timeout);
  sched.request_stop();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());
  EXPECT_EQ(sa->rows.load(), endless->rows.load());
}

// --- Errors, stop, cancel ----------------------------------------------------

TEST(SchedulerTest, OperatorErrorFailsTheRunAndNamesTheNode) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, -1, 100))}, 2);
  size_t m = pb.vertex(
      {testing::op_node("eur", "map",
                        [](int, int) { return std::make_unique<testing::FailingOp>(500); }),
       testing::sink_node("out", collect(sink))},
      2);
  pb.edge(s, m);
  Scheduler sched(pb.plan, opts(2));
  Status st = run_bounded(sched);
  EXPECT_EQ(st.code(), StatusCode::kDataError) << st.to_string();
  EXPECT_NE(st.message().find("node 'eur' (map): boom"), std::string::npos) << st.message();
  // Every operator that was opened is closed after an abort too.
  EXPECT_GE(sink->opened.load(), 1);
  EXPECT_EQ(sink->closed.load(), sink->opened.load());
}

TEST(SchedulerTest, ExceptionBecomesAnError) {
  auto src = std::make_shared<SourceStats>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 1000, 100))});
  size_t m = pb.vertex({testing::op_node(
      "thrower", "map", [](int, int) { return std::make_unique<testing::ThrowingOp>(); },
      NodeRole::kSink)});
  pb.edge(s, m);
  Scheduler sched(pb.plan, opts(2));
  Status st = run_bounded(sched);
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("node 'thrower' (map)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("kaboom"), std::string::npos) << st.message();
}

class FailingOpen final : public Operator {
 public:
  Status open(OperatorContext&) override { return Status::io_error("cannot open /nope"); }
  Status process(size_t, const BatchPtr&, Output&) override { return Status::OK(); }
};

TEST(SchedulerTest, OpenErrorFailsTheRun) {
  auto src = std::make_shared<SourceStats>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, -1, 100))});
  size_t k = pb.vertex(
      {testing::sink_node("out", [](int, int) { return std::make_unique<FailingOpen>(); })});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts(1));
  Status st = run_bounded(sched);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_EQ(st.message(), "node 'out' (test-sink): cannot open /nope");
}

TEST(SchedulerTest, RequestStopDrainsAndReturnsOk) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, -1, 100)),
                        testing::op_node("inc", "map", testing::add_one())},
                       2);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 2);
  pb.edge(s, k, Partitioning::kHash, 0, {0});
  Scheduler sched(pb.plan, opts(2));
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });
  ASSERT_TRUE(eventually([&] { return sink->rows.load() > 2000; }));
  sched.request_stop();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());
  EXPECT_EQ(sink->rows.load(), src->rows.load());  // nothing lost in the drain
  EXPECT_EQ(sink->finished.load(), 2);
  EXPECT_EQ(sink->closed.load(), 2);
}

TEST(SchedulerTest, CancelReturnsCancelled) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  sink->accept = false;
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, -1, 100))});
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts(2));
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });
  ASSERT_TRUE(
      eventually([&] { return src->produce_calls.load() > 0 && sink->opened.load() == 1; }));
  sched.cancel();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(fut.get().code(), StatusCode::kCancelled);
  EXPECT_EQ(sink->finished.load(), 0);
  EXPECT_EQ(sink->closed.load(), 1);
}

TEST(SchedulerTest, CancelBeforeRunReturnsCancelled) {
  auto src = std::make_shared<SourceStats>();
  PlanBuilder pb;
  pb.vertex({testing::source_node("src", counting(src, -1, 100))});
  Scheduler sched(pb.plan, opts(1));
  sched.cancel();
  EXPECT_EQ(run_bounded(sched).code(), StatusCode::kCancelled);
  EXPECT_EQ(src->produce_calls.load(), 0u);
}

TEST(SchedulerTest, BadPlanIsAnError) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 10, 10))}, 2);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 3);
  pb.edge(s, k, Partitioning::kForward);
  Scheduler sched(pb.plan, opts(1));
  Status st = run_bounded(sched);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("forward edge"), std::string::npos) << st.message();
}

// --- Waiting sources, timer, I/O, context --------------------------------------

// Waits `delay` (timer) before its only batch.
class TimedSource final : public SourceOperator {
 public:
  TimedSource(std::chrono::milliseconds delay, std::shared_ptr<std::atomic<int64_t>> waited_ms)
      : delay_(delay), waited_ms_(std::move(waited_ms)) {}
  Result<SourceProgress> produce(Output& out) override {
    const auto now = std::chrono::steady_clock::now();
    if (!started_) {
      started_ = true;
      start_ = now;
      return SourceProgress::wait_until(now + delay_);
    }
    if (now < start_ + delay_) return Status::internal("woken before its time");
    waited_ms_->store(std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count());
    out.emit(testing::make_rows(0, 5));
    return SourceProgress::exhausted();
  }

 private:
  std::chrono::milliseconds delay_;
  std::shared_ptr<std::atomic<int64_t>> waited_ms_;
  bool started_ = false;
  std::chrono::steady_clock::time_point start_;
};

TEST(SchedulerTest, TimerWakesAWaitingSource) {
  auto waited = std::make_shared<std::atomic<int64_t>>(-1);
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  pb.vertex({testing::source_node(
                 "src", [waited](int, int) { return std::make_unique<TimedSource>(80ms, waited); }),
             testing::sink_node("out", collect(sink))});
  Scheduler sched(pb.plan, opts(1));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_GE(waited->load(), 80);
  EXPECT_LT(waited->load(), 5000);
  EXPECT_EQ(sink->rows.load(), 5u);
}

// Asks the I/O pool for data, waits (no time) for ctx.wake() from the job.
class IoSource final : public SourceOperator {
 public:
  Status open(OperatorContext& ctx) override {
    ctx_ = &ctx;
    return Status::OK();
  }
  Result<SourceProgress> produce(Output& out) override {
    if (ready_->load()) {
      out.emit(testing::make_rows(0, 7));
      return SourceProgress::exhausted();
    }
    if (!asked_) {
      asked_ = true;
      auto ready = ready_;
      OperatorContext* ctx = ctx_;
      ctx_->io().post(ctx_->io_strand(), [ready, ctx] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a blocking read
        ready->store(true);
        ctx->wake();
      });
    }
    return SourceProgress::wait();
  }

 private:
  OperatorContext* ctx_ = nullptr;
  std::shared_ptr<std::atomic<bool>> ready_ = std::make_shared<std::atomic<bool>>(false);
  bool asked_ = false;
};

TEST(SchedulerTest, IoJobWakesAWaitingSource) {
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex(
      {testing::source_node("src", [](int, int) { return std::make_unique<IoSource>(); })}, 2);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sink->rows.load(), 14u);
}

// finish() starts an asynchronous flush on the I/O pool; drained() is false
// until it completes; close() checks it ran.
class AsyncSink final : public Operator {
 public:
  explicit AsyncSink(std::shared_ptr<std::atomic<int>> closes_ok)
      : closes_ok_(std::move(closes_ok)) {}
  Status open(OperatorContext& ctx) override {
    ctx_ = &ctx;
    return Status::OK();
  }
  Status process(size_t, const BatchPtr& b, Output&) override {
    rows_ += b->active_rows();
    return Status::OK();
  }
  Status finish(Output&) override {
    auto flushed = flushed_;
    OperatorContext* ctx = ctx_;
    ctx_->io().post(ctx_->io_strand(), [flushed, ctx] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      flushed->store(true);
      ctx->wake();
    });
    return Status::OK();
  }
  bool drained() const override { return flushed_->load(); }
  Status close() override {
    if (!flushed_->load()) return Status::internal("closed before the flush ended");
    closes_ok_->fetch_add(1);
    return Status::OK();
  }

 private:
  std::shared_ptr<std::atomic<int>> closes_ok_;
  OperatorContext* ctx_ = nullptr;
  std::shared_ptr<std::atomic<bool>> flushed_ = std::make_shared<std::atomic<bool>>(false);
  uint64_t rows_ = 0;
};

TEST(SchedulerTest, RunWaitsForDrainedBeforeClose) {
  auto src = std::make_shared<SourceStats>();
  auto closes = std::make_shared<std::atomic<int>>(0);
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 1000, 100))});
  size_t k =
      pb.vertex({testing::sink_node(
                    "out", [closes](int, int) { return std::make_unique<AsyncSink>(closes); })},
                2);
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(closes->load(), 2);
}

// Reports a data error for every row whose v is a multiple of 10.
class PickyOp final : public Operator {
 public:
  Status open(OperatorContext& ctx) override {
    ctx_ = &ctx;
    EXPECT_EQ(ctx.node_id(), "picky");
    EXPECT_EQ(ctx.parallelism(), 2);
    EXPECT_EQ(ctx.batch_size(), 128u);
    EXPECT_FALSE(ctx.stop_requested());
    return Status::OK();
  }
  Status process(size_t, const BatchPtr& b, Output& out) override {
    auto sel = std::make_shared<Selection>();
    b->for_each_row([&](size_t r) {
      if (b->column(1)->int64_at(r) % 10 == 0) {
        ctx_->report_data_error("v is a multiple of 10");
      } else {
        sel->push_back(static_cast<uint32_t>(r));
      }
    });
    out.emit(b->with_selection(std::move(sel)));
    return Status::OK();
  }

 private:
  OperatorContext* ctx_ = nullptr;
};

TEST(SchedulerTest, DataErrorsAreCountedAndRowsSkipped) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, 2000, 128))}, 2);
  size_t m = pb.vertex(
      {testing::op_node("picky", "filter", [](int, int) { return std::make_unique<PickyOp>(); })},
      2);
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 1);
  pb.edge(s, m, Partitioning::kForward);
  pb.edge(m, k);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(sched.metrics().find("picky")->data_errors.load(), 200u);
  EXPECT_EQ(sink->rows.load(), 1800u);
  EXPECT_EQ(sched.metrics().find("picky")->rows_out.load(), 1800u);
}

TEST(SchedulerTest, MetricsAreReadableWhileRunning) {
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", counting(src, -1, 100))});
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_EQ(sched.metrics().nodes.size(), 2u);
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });
  uint64_t last = 0;
  int increases = 0;
  for (int i = 0; i < 2000 && increases < 3; ++i) {
    const uint64_t now = sched.metrics().find("out")->rows_in.load();
    EXPECT_GE(now, last);
    if (now > last) ++increases;
    last = now;
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GE(increases, 3);
  sched.request_stop();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());
}

}  // namespace
}  // namespace df::runtime
