// Pipeline latency: batches carry the time they left their source
// (Batch::source_time_ns) and a sink's NodeMetrics::latency_seconds observes
// every batch it processed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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

// Builds a fresh batch per input batch, as joins do: its output has no
// source time, so the runtime gives it the input batch's.
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

TEST(LatencyMetricsTest, NewBatchesKeepTheTimeOfTheBatchTheyWereBuiltFrom) {
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
  const size_t under_10ms = static_cast<size_t>(
      std::find(h.upper_bounds.begin(), h.upper_bounds.end(), 0.01) - h.upper_bounds.begin());
  ASSERT_LT(under_10ms, h.upper_bounds.size());
  EXPECT_EQ(h.cumulative[under_10ms], 0u) << "an observation under 10 ms";
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

// What a window-like operator saw: per input, the source time of the batch
// ending at each v (CountingSource's watermark after a batch is its last v);
// the watermarks it got; the source times of the batches the sink took.
struct WindowTrace {
  std::mutex mu;
  std::vector<std::map<int64_t, int64_t>> batch_time_by_last_v{2};
  std::vector<Watermark> watermarks;
  std::vector<int64_t> emitted_at_finish;  // the latest source time seen before finish()
  std::vector<int64_t> sink_times;
};

// Closes a "window" at every watermark: emits a fresh one-row batch (no
// source time of its own), and one more from finish().
class WindowLike final : public Operator {
 public:
  explicit WindowLike(std::shared_ptr<WindowTrace> t) : t_(std::move(t)) {}
  Status process(size_t input, const BatchPtr& b, Output&) override {
    int64_t last = INT64_MIN;
    b->for_each_row([&](size_t r) { last = std::max(last, b->column(1)->int64_at(r)); });
    std::lock_guard<std::mutex> lock(t_->mu);
    t_->batch_time_by_last_v[input][last] = b->source_time_ns();
    latest_ = std::max(latest_, b->source_time_ns());
    return Status::OK();
  }
  Status on_watermark(Watermark wm, Output& out) override {
    {
      std::lock_guard<std::mutex> lock(t_->mu);
      t_->watermarks.push_back(wm);
    }
    out.emit(testing::make_rows(wm.timestamp_ms, 1));
    return Status::OK();
  }
  Status finish(Output& out) override {
    {
      std::lock_guard<std::mutex> lock(t_->mu);
      t_->emitted_at_finish.push_back(latest_);
    }
    out.emit(testing::make_rows(-1, 1));
    return Status::OK();
  }

 private:
  std::shared_ptr<WindowTrace> t_;
  int64_t latest_ = 0;
};

class TimeSink final : public Operator {
 public:
  explicit TimeSink(std::shared_ptr<WindowTrace> t) : t_(std::move(t)) {}
  Status process(size_t, const BatchPtr& b, Output&) override {
    std::lock_guard<std::mutex> lock(t_->mu);
    t_->sink_times.push_back(b->source_time_ns());
    return Status::OK();
  }

 private:
  std::shared_ptr<WindowTrace> t_;
};

// Runs sources -> window_like -> sink (one subtask each); the sources emit
// 0..rows-1 in batches of batch_sizes[i] rows and a watermark after each.
void run_window_like(const std::vector<size_t>& batch_sizes, int64_t rows,
                     const std::shared_ptr<WindowTrace>& trace) {
  PlanBuilder pb;
  std::vector<size_t> sources;
  for (size_t i = 0; i < batch_sizes.size(); ++i) {
    sources.push_back(pb.vertex({testing::source_node(
        "src" + std::to_string(i),
        counting(std::make_shared<SourceStats>(), rows, batch_sizes[i], /*watermarks=*/true))}));
  }
  const size_t w = pb.vertex({testing::op_node(
      "window", "window-like", [trace](int, int) { return std::make_unique<WindowLike>(trace); })});
  const size_t k = pb.vertex(
      {testing::sink_node("out", [trace](int, int) { return std::make_unique<TimeSink>(trace); })});
  for (size_t i = 0; i < sources.size(); ++i) pb.edge(sources[i], w, Partitioning::kForward, i);
  pb.edge(w, k, Partitioning::kForward);
  Scheduler sched(pb.plan, opts(1));
  ASSERT_TRUE(run_bounded(sched).ok());
  // One batch per watermark and one from finish(), each observed once.
  std::lock_guard<std::mutex> lock(trace->mu);
  ASSERT_FALSE(trace->watermarks.empty());
  ASSERT_EQ(trace->sink_times.size(), trace->watermarks.size() + 1);
  EXPECT_EQ(sched.metrics().find("out")->latency_seconds.count(), trace->sink_times.size());
}

TEST(LatencyMetricsTest, AWindowsRowsCarryTheSourceTimeOfTheBatchWhoseWatermarkClosedIt) {
  auto trace = std::make_shared<WindowTrace>();
  run_window_like({10}, 200, trace);
  std::lock_guard<std::mutex> lock(trace->mu);
  const auto& times = trace->batch_time_by_last_v[0];
  ASSERT_EQ(times.size(), 20u);
  for (size_t i = 0; i < trace->watermarks.size(); ++i) {
    const Watermark& wm = trace->watermarks[i];
    auto it = times.find(wm.timestamp_ms);
    ASSERT_NE(it, times.end()) << "watermark " << wm.timestamp_ms << " ends no batch";
    EXPECT_NE(it->second, 0);
    EXPECT_EQ(wm.source_time_ns, it->second) << "watermark " << wm.timestamp_ms;
    EXPECT_EQ(trace->sink_times[i], it->second) << "window closed by " << wm.timestamp_ms;
  }
  // finish() after the last batch: timed from the last input.
  ASSERT_EQ(trace->emitted_at_finish.size(), 1u);
  EXPECT_EQ(trace->sink_times.back(), trace->emitted_at_finish[0]);
  EXPECT_EQ(trace->sink_times.back(), times.rbegin()->second);
}

TEST(LatencyMetricsTest, WithTwoInputsTheWatermarkCarriesTheSourceTimeOfTheMinimumsInput) {
  auto trace = std::make_shared<WindowTrace>();
  // Watermarks 9, 19, 29, ... and 6, 13, 20, ...: the minimum moves with
  // either input. Each combined watermark must carry the time of a batch
  // ending at it (the input at the minimum; of both, when both are there),
  // never that of the other input's later batches.
  run_window_like({10, 7}, 200, trace);
  std::lock_guard<std::mutex> lock(trace->mu);
  size_t from_each[2] = {0, 0};
  for (size_t i = 0; i < trace->watermarks.size(); ++i) {
    const Watermark& wm = trace->watermarks[i];
    std::vector<int64_t> candidates;
    for (size_t in = 0; in < 2; ++in) {
      auto it = trace->batch_time_by_last_v[in].find(wm.timestamp_ms);
      if (it == trace->batch_time_by_last_v[in].end()) continue;
      candidates.push_back(it->second);
      if (wm.source_time_ns == it->second) ++from_each[in];
    }
    ASSERT_FALSE(candidates.empty()) << "watermark " << wm.timestamp_ms << " ends no batch";
    EXPECT_NE(std::find(candidates.begin(), candidates.end(), wm.source_time_ns), candidates.end())
        << "watermark " << wm.timestamp_ms;
    EXPECT_EQ(trace->sink_times[i], wm.source_time_ns) << "window closed by " << wm.timestamp_ms;
  }
  // Which input held the minimum depends on scheduling; every watermark was
  // matched to one of them.
  EXPECT_GE(from_each[0] + from_each[1], trace->watermarks.size());
}

}  // namespace
}  // namespace df::runtime
