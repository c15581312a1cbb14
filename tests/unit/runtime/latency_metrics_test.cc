// Pipeline latency: batches carry the time they left their source
// (Batch::source_time_ns) and a sink's NodeMetrics::latency_seconds observes
// every batch it processed.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "engine/core/batch.h"
#include "engine/runtime/scheduler.h"
#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

using testing::collect;
using testing::counting;
using testing::PlanBuilder;
using testing::run_bounded;
using testing::SinkState;
using testing::SourceStats;

RunOptions opts(int workers) {
  RunOptions o;
  o.workers = workers;
  o.batch_size = 100;
  o.buffer_size = 1000;
  o.io_threads = 1;
  return o;
}

// Every batch the sink processed was observed once, between 0 and 60 s.
void expect_latency_of_every_batch(const Scheduler& sched, const char* sink_id,
                                   uint64_t min_batches) {
  const NodeMetrics* sink = sched.metrics().find(sink_id);
  ASSERT_NE(sink, nullptr);
  const metrics::HistogramSnapshot h = sink->latency_seconds.snapshot();
  const uint64_t batches = sink->batches_in.load();
  EXPECT_GE(batches, min_batches);
  EXPECT_EQ(h.count(), batches);
  ASSERT_EQ(h.upper_bounds.back(), 60);  // the default seconds buckets end at 60 s
  EXPECT_EQ(h.cumulative[h.upper_bounds.size() - 1], batches) << "a latency over 60 s";
  EXPECT_GE(h.sum, 0);
  EXPECT_LT(h.sum, 60.0 * static_cast<double>(batches));
  for (const auto& m : sched.metrics().nodes) {
    if (m->id != sink_id) {
      EXPECT_EQ(m->latency_seconds.count(), 0u) << m->id << " is no sink";
    }
  }
}

TEST(LatencyMetricsTest, SinkObservesEveryBatchThroughChannels) {
  constexpr int64_t kRows = 4000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  const size_t s = pb.vertex({testing::source_node("src", counting(src, kRows, 100))}, 2);
  const size_t m = pb.vertex({testing::op_node("inc", "map", testing::add_one())}, 2);
  const size_t k = pb.vertex({testing::sink_node("out", collect(sink))}, 2);
  pb.edge(s, m, Partitioning::kRebalance);
  pb.edge(m, k, Partitioning::kHash, 0, {0});  // splits batches: each part keeps its time
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  ASSERT_EQ(sink->rows.load(), static_cast<uint64_t>(kRows));
  expect_latency_of_every_batch(sched, "out", kRows / 100);
}

TEST(LatencyMetricsTest, SinkChainedToItsSourceObservesEveryBatch) {
  constexpr int64_t kRows = 1000;
  auto src = std::make_shared<SourceStats>();
  auto sink = std::make_shared<SinkState>();
  PlanBuilder pb;
  pb.vertex({testing::source_node("src", counting(src, kRows, 100)),
             testing::op_node("inc", "map", testing::add_one()),
             testing::sink_node("out", collect(sink))});
  Scheduler sched(pb.plan, opts(1));
  ASSERT_TRUE(run_bounded(sched).ok());
  expect_latency_of_every_batch(sched, "out", kRows / 100);
  EXPECT_EQ(sched.metrics().find("out")->latency_seconds.count(), 10u);
}

// Builds a fresh batch per input batch, as windows and joins do: its output
// has no source time, so the runtime times it from this node's emit.
class Rebuild final : public Operator {
 public:
  Status process(size_t, const BatchPtr& b, Output& out) override {
    BatchBuilder builder(b->schema(), b->active_rows());
    b->for_each_row([&](size_t r) {
      builder.column(0).append_int64(b->column(0)->int64_at(r));
      builder.column(1).append_int64(b->column(1)->int64_at(r));
      builder.finish_row();
    });
    out.emit(builder.finish());
    return Status::OK();
  }
};

// Holds each batch for `delay` before it counts as consumed.
class SlowSink final : public Operator {
 public:
  explicit SlowSink(std::chrono::milliseconds delay) : delay_(delay) {}
  Status process(size_t, const BatchPtr&, Output&) override {
    std::this_thread::sleep_for(delay_);
    return Status::OK();
  }

 private:
  std::chrono::milliseconds delay_;
};

TEST(LatencyMetricsTest, NewBatchesAreTimedFromTheOperatorThatBuiltThem) {
  constexpr int64_t kRows = 500;
  auto src = std::make_shared<SourceStats>();
  PlanBuilder pb;
  const size_t s = pb.vertex({testing::source_node("src", counting(src, kRows, 100)),
                              testing::op_node("rebuild", "rebuild", [](int, int) {
                                return std::make_unique<Rebuild>();
                              })});
  const size_t k = pb.vertex({testing::sink_node(
      "out", [](int, int) { return std::make_unique<SlowSink>(std::chrono::milliseconds(20)); })});
  pb.edge(s, k, Partitioning::kForward);
  Scheduler sched(pb.plan, opts(2));
  ASSERT_TRUE(run_bounded(sched).ok());
  expect_latency_of_every_batch(sched, "out", kRows / 100);
  // The sink's own 20 ms are part of every observation.
  const metrics::HistogramSnapshot h = sched.metrics().find("out")->latency_seconds.snapshot();
  EXPECT_EQ(h.cumulative[4], 0u) << "an observation under " << h.upper_bounds[4] << " s";
  EXPECT_GE(h.sum, 0.02 * static_cast<double>(h.count()));
}

TEST(LatencyMetricsTest, DerivedBatchesKeepTheirSourceTime) {
  BatchPtr b = testing::make_rows(0, 10);
  EXPECT_EQ(b->source_time_ns(), 0);
  const int64_t t = source_clock_ns();
  EXPECT_GT(t, 0);
  b = b->with_source_time(t);
  EXPECT_EQ(b->source_time_ns(), t);
  auto half = make_selection(5);
  for (uint32_t i = 0; i < 5; ++i) (*half)[i] = i * 2;
  const BatchPtr narrowed = Batch::narrow(b, half);  // what filter emits
  EXPECT_EQ(narrowed->source_time_ns(), t);
  EXPECT_EQ(narrowed->with_columns(b->schema(), b->columns())->source_time_ns(), t);  // map
  EXPECT_EQ(b->with_event_time(b->column(1))->source_time_ns(), t);
  EXPECT_EQ(narrowed->compact()->source_time_ns(), t);
  EXPECT_EQ(b->slice(2, 4)->source_time_ns(), t);
}

}  // namespace
}  // namespace df::runtime
