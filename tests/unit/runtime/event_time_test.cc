// Event time in source tasks, idle sources, side outputs, per-input hash
// partitioning and state directories (engine/runtime/scheduler.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <future>
#include <optional>
#include <set>
#include <thread>

#include "engine/runtime/scheduler.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::kv_schema;
using testing::PlanBuilder;
using testing::run_bounded;
using Clock = std::chrono::steady_clock;

RunOptions opts(int workers = 2) {
  RunOptions o;
  o.workers = workers;
  o.batch_size = 64;
  o.buffer_size = 4096;
  o.io_threads = 1;
  return o;
}

// Rows {k: row number, v: event time (null when absent)}.
BatchPtr ts_rows(int64_t first_k, const std::vector<std::optional<int64_t>>& ts) {
  BatchBuilder b(kv_schema(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    b.column(0).append_int64(first_k + static_cast<int64_t>(i));
    if (ts[i]) {
      b.column(1).append_int64(*ts[i]);
    } else {
      b.column(1).append_null();
    }
    b.finish_row();
  }
  return b.finish();
}

PlanNode event_time_source(std::string id, testing::FnNode::SourceFn fn, Millis bound,
                           std::optional<Millis> idle = std::nullopt) {
  PlanNode n = testing::source_node(std::move(id), std::move(fn));
  n.event_time = EventTimeSpec{1, bound, idle};
  return n;
}

// Emits `batches` in order, one per produce() call, then ends.
class ListSource final : public SourceOperator {
 public:
  explicit ListSource(std::vector<BatchPtr> batches) : batches_(std::move(batches)) {}
  Result<SourceProgress> produce(Output& out) override {
    if (next_ >= batches_.size()) return SourceProgress::exhausted();
    out.emit(batches_[next_++]);
    return SourceProgress::more();
  }

 private:
  std::vector<BatchPtr> batches_;
  size_t next_ = 0;
};

testing::FnNode::SourceFn list_source(std::vector<BatchPtr> batches) {
  return [batches](int, int) { return std::make_unique<ListSource>(batches); };
}

// What a sink saw, in arrival order: rows (event time) and watermarks.
struct Timeline {
  std::mutex mu;
  struct Entry {
    bool watermark;
    int64_t value;
  };
  std::vector<Entry> entries;
  uint64_t rows = 0;
  bool event_time_shared = true;  // every batch's event_time() is its column 1
  bool saw_idle = false;          // an operator was handed an idle watermark
  std::atomic<int> finished{0};
  std::set<int64_t> ks;
};

class TimelineSink final : public Operator {
 public:
  explicit TimelineSink(std::shared_ptr<Timeline> t) : t_(std::move(t)) {}
  Status process(size_t, const BatchPtr& b, Output&) override {
    std::lock_guard<std::mutex> lock(t_->mu);
    if (b->event_time() != b->column(1)) t_->event_time_shared = false;
    b->for_each_row([&](size_t r) {
      t_->entries.push_back({false, b->event_time() ? b->event_time()->int64_at(r) : INT64_MIN});
      t_->ks.insert(b->column(0)->int64_at(r));
      ++t_->rows;
    });
    return Status::OK();
  }
  Status on_watermark(Watermark wm, Output&) override {
    std::lock_guard<std::mutex> lock(t_->mu);
    if (wm.idle) t_->saw_idle = true;
    t_->entries.push_back({true, wm.timestamp_ms});
    return Status::OK();
  }
  Status finish(Output&) override {
    t_->finished.fetch_add(1);
    return Status::OK();
  }

 private:
  std::shared_ptr<Timeline> t_;
};

testing::FnNode::OpFn timeline(std::shared_ptr<Timeline> t) {
  return [t](int, int) { return std::make_unique<TimelineSink>(t); };
}

// Forwards rows and watermarks; remembers whether it was handed an idle one.
class PassThrough final : public Operator {
 public:
  explicit PassThrough(std::shared_ptr<std::atomic<bool>> saw_idle)
      : saw_idle_(std::move(saw_idle)) {}
  Status process(size_t, const BatchPtr& b, Output& out) override {
    out.emit(b);
    return Status::OK();
  }
  Status on_watermark(Watermark wm, Output& out) override {
    if (wm.idle) saw_idle_->store(true);
    out.emit_watermark(wm);
    return Status::OK();
  }

 private:
  std::shared_ptr<std::atomic<bool>> saw_idle_;
};

testing::FnNode::OpFn pass_through(std::shared_ptr<std::atomic<bool>> saw_idle) {
  return [saw_idle](int, int) { return std::make_unique<PassThrough>(saw_idle); };
}

// --- Bounded out-of-orderness ------------------------------------------------

TEST(EventTimeTest, WatermarksTrailTheMaxByTheBoundAndNeverPassALaterRow) {
  // ts_i = 10 i - 12 (i mod 4): out of order by up to 26 ms, bound 40 ms.
  constexpr int kRows = 700;
  constexpr int64_t kBound = 40;
  std::vector<BatchPtr> batches;
  std::vector<std::optional<int64_t>> cur;
  int64_t max_ts = INT64_MIN;
  for (int i = 0; i < kRows; ++i) {
    const int64_t ts = 10 * i - 12 * (i % 4);
    max_ts = std::max(max_ts, ts);
    cur.push_back(ts);
    if (cur.size() == 7) {
      batches.push_back(ts_rows(i, cur));
      cur.clear();
    }
  }
  if (!cur.empty()) batches.push_back(ts_rows(kRows, cur));
  auto t = std::make_shared<Timeline>();
  PlanBuilder pb;
  size_t s = pb.vertex({event_time_source("src", list_source(batches), Millis(kBound))});
  size_t k = pb.vertex({testing::sink_node("out", timeline(t))});
  pb.edge(s, k, Partitioning::kForward);
  Scheduler sched(pb.plan, opts());
  ASSERT_TRUE(run_bounded(sched).ok());

  std::lock_guard<std::mutex> lock(t->mu);
  EXPECT_EQ(t->rows, static_cast<uint64_t>(kRows));
  EXPECT_TRUE(t->event_time_shared);
  size_t watermarks = 0;
  int64_t seen_max = INT64_MIN;
  int64_t last_wm = INT64_MIN;
  for (size_t i = 0; i < t->entries.size(); ++i) {
    const auto& e = t->entries[i];
    if (!e.watermark) {
      ASSERT_NE(e.value, INT64_MIN) << "row without event time";
      EXPECT_GT(e.value, last_wm) << "row " << i << " arrived after a watermark that passed it";
      seen_max = std::max(seen_max, e.value);
      continue;
    }
    ++watermarks;
    EXPECT_GT(e.value, last_wm);                // strictly advancing
    EXPECT_EQ(e.value, seen_max - kBound - 1);  // max seen so far - bound - 1
    last_wm = e.value;
  }
  EXPECT_GE(watermarks, 50u);
  EXPECT_EQ(last_wm, max_ts - kBound - 1);
  EXPECT_EQ(sched.metrics().find("src")->watermark_ms.load(), max_ts - kBound - 1);
  EXPECT_EQ(sched.metrics().find("out")->watermark_ms.load(), max_ts - kBound - 1);
}

TEST(EventTimeTest, RowsWithoutEventTimeAreDroppedAndCounted) {
  std::vector<BatchPtr> batches = {
      ts_rows(0, {100, std::nullopt, 300}),
      ts_rows(3, {std::nullopt, std::nullopt}),  // nothing left: no batch, no watermark
      ts_rows(5, {500, std::nullopt}),
  };
  auto t = std::make_shared<Timeline>();
  PlanBuilder pb;
  size_t s = pb.vertex({event_time_source("src", list_source(batches), Millis(0))});
  size_t k = pb.vertex({testing::sink_node("out", timeline(t))});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts());
  ASSERT_TRUE(run_bounded(sched).ok());
  const NodeMetrics* src = sched.metrics().find("src");
  EXPECT_EQ(src->data_errors.load(), 4u);
  EXPECT_EQ(src->rows_out.load(), 3u);
  std::lock_guard<std::mutex> lock(t->mu);
  EXPECT_EQ(t->ks, (std::set<int64_t>{0, 2, 5}));
  std::vector<int64_t> wms;
  for (const auto& e : t->entries) {
    if (e.watermark) wms.push_back(e.value);
  }
  EXPECT_EQ(wms, (std::vector<int64_t>{299, 499}));  // max - 0 - 1 after each batch
}

TEST(EventTimeTest, BadEventTimeFieldFailsTheRun) {
  PlanBuilder pb;
  PlanNode src = testing::source_node("src", list_source({ts_rows(0, {1})}));
  src.event_time = EventTimeSpec{7, Millis(0), std::nullopt};
  size_t s = pb.vertex({src});
  size_t k = pb.vertex({testing::sink_node("out", timeline(std::make_shared<Timeline>()))});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts());
  Status st = run_bounded(sched);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.to_string().find("event-time field #7"), std::string::npos) << st.to_string();
}

// --- Idle sources --------------------------------------------------------------

// A paced source: every ~1 ms one row with event time base + step * n, where
// `base` may be moved by the test. With `hold`, it emits one row and then
// waits for ctx.wake() (wait() without a time) until `hold` is cleared.
struct PacedState {
  std::atomic<bool> hold{false};
  std::atomic<int64_t> base{0};
  std::atomic<int64_t> step{1000};
  std::atomic<OperatorContext*> ctx{nullptr};
  std::atomic<uint64_t> rows{0};
};

class PacedSource final : public SourceOperator {
 public:
  explicit PacedSource(std::shared_ptr<PacedState> st) : st_(std::move(st)) {}
  Status open(OperatorContext& ctx) override {
    st_->ctx = &ctx;
    return Status::OK();
  }
  Result<SourceProgress> produce(Output& out) override {
    if (st_->hold.load() && emitted_) return SourceProgress::wait();
    out.emit(ts_rows(n_, {st_->base.load() + st_->step.load() * n_}));
    ++n_;
    emitted_ = true;
    st_->rows.fetch_add(1);
    if (n_ >= 200000) return SourceProgress::exhausted();  // bounded: ~200 s at most
    return SourceProgress::wait_until(Clock::now() + 1ms);
  }

 private:
  std::shared_ptr<PacedState> st_;
  int64_t n_ = 0;
  bool emitted_ = false;
};

testing::FnNode::SourceFn paced(std::shared_ptr<PacedState> st) {
  return [st](int, int) { return std::make_unique<PacedSource>(st); };
}

int64_t wm_of(const Scheduler& s, const char* id) {
  return s.metrics().find(id)->watermark_ms.load();
}

// Whether the sink got a row with event time in [lo, hi].
bool saw_row_between(Timeline& t, int64_t lo, int64_t hi) {
  std::lock_guard<std::mutex> lock(t.mu);
  return std::any_of(t.entries.begin(), t.entries.end(),
                     [&](const auto& e) { return !e.watermark && e.value >= lo && e.value <= hi; });
}

bool non_decreasing_watermarks(Timeline& t) {
  std::lock_guard<std::mutex> lock(t.mu);
  int64_t last = INT64_MIN;
  for (const auto& e : t.entries) {
    if (!e.watermark) continue;
    if (e.value < last) return false;
    last = e.value;
  }
  return true;
}

TEST(IdleSourceTest, IdleInputStopsHoldingBackAndHoldsAgainAfterItResumes) {
  constexpr auto kIdle = 1000ms;
  auto fast = std::make_shared<PacedState>();  // ts 0, 1000, 2000, ... every ms
  auto slow = std::make_shared<PacedState>();
  slow->hold = true;
  slow->base = 1000;  // its one row: ts 1000 -> watermark 999
  auto t = std::make_shared<Timeline>();
  PlanBuilder pb;
  size_t a = pb.vertex({event_time_source("fast", paced(fast), Millis(0))});
  size_t b = pb.vertex({event_time_source("slow", paced(slow), Millis(0), Millis(kIdle))});
  size_t u = pb.vertex(
      {testing::op_node("u", "union", [](int, int) { return std::make_unique<testing::Union>(); }),
       testing::sink_node("out", timeline(t))});
  pb.edge(a, u, Partitioning::kForward, 0);
  pb.edge(b, u, Partitioning::kForward, 1);
  Scheduler sched(pb.plan, opts());
  const auto started = Clock::now();
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });

  // The quiet source holds the union at 999 while the other races ahead.
  EXPECT_TRUE(eventually([&] { return wm_of(sched, "u") == 999 && wm_of(sched, "fast") > 20000; }));
  // After idle_timeout (never earlier) the union follows the active input.
  EXPECT_TRUE(eventually([&] { return wm_of(sched, "u") > 20000; }));
  EXPECT_GE(Clock::now() - started, kIdle);
  const int64_t idle_wm = wm_of(sched, "u");

  // It resumes behind the union's watermark: the union neither goes back nor
  // runs ahead of it, though the other input keeps advancing.
  slow->base = 2000;
  slow->step = 1;
  slow->hold = false;
  slow->ctx.load()->wake();
  // Once the union has seen a resumed row, it counts the input again.
  EXPECT_TRUE(eventually([&] { return saw_row_between(*t, 2001, 2999); }));
  const int64_t u1 = wm_of(sched, "u");
  EXPECT_GE(u1, idle_wm);
  EXPECT_TRUE(eventually([&] { return wm_of(sched, "fast") > u1 + 50000; }));
  EXPECT_EQ(wm_of(sched, "u"), u1);

  // Once it catches up it holds the union again: the minimum is its watermark.
  slow->base = u1 + 5000;
  // (Read in this order: every watermark only grows.)
  EXPECT_TRUE(eventually([&] {
    const int64_t uw = wm_of(sched, "u");
    return uw > u1 && uw <= wm_of(sched, "slow") && wm_of(sched, "fast") > uw + 50000;
  }));

  sched.request_stop();
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
  ASSERT_TRUE(fut.get().ok());
  EXPECT_TRUE(non_decreasing_watermarks(*t));
  std::lock_guard<std::mutex> lock(t->mu);
  EXPECT_FALSE(t->saw_idle);  // operators only ever see active watermarks
}

TEST(IdleSourceTest, IdleStatusPropagatesThroughAChainOfTasks) {
  auto fast = std::make_shared<PacedState>();
  auto quiet = std::make_shared<PacedState>();
  quiet->hold = true;
  quiet->base = 500;  // watermark 499, then nothing
  auto saw_idle = std::make_shared<std::atomic<bool>>(false);
  auto t = std::make_shared<Timeline>();
  PlanBuilder pb;
  // quiet -> m1 (chained) -> m2 (own task) -> union <- fast
  size_t q = pb.vertex({event_time_source("quiet", paced(quiet), Millis(0), Millis(200)),
                        testing::op_node("m1", "map", pass_through(saw_idle))});
  size_t m = pb.vertex({testing::op_node("m2", "map", pass_through(saw_idle))});
  size_t f = pb.vertex({event_time_source("fast", paced(fast), Millis(0))});
  size_t u = pb.vertex(
      {testing::op_node("u", "union", [](int, int) { return std::make_unique<testing::Union>(); }),
       testing::sink_node("out", timeline(t))});
  pb.edge(q, m, Partitioning::kForward, 0);
  pb.edge(m, u, Partitioning::kForward, 0);
  pb.edge(f, u, Partitioning::kForward, 1);
  Scheduler sched(pb.plan, opts());
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });

  EXPECT_TRUE(eventually([&] { return wm_of(sched, "m2") == 499; }));
  EXPECT_TRUE(eventually([&] { return wm_of(sched, "u") > 10000; }));
  EXPECT_EQ(wm_of(sched, "m2"), 499);  // the idle task's own watermark does not move

  // A row wakes the chain up again: m2 is active and holds the union back
  // (read in this order: every watermark only grows).
  const int64_t before = wm_of(sched, "u");
  quiet->base = before + 5000;
  quiet->step = 1;
  quiet->hold = false;
  quiet->ctx.load()->wake();
  EXPECT_TRUE(eventually([&] {
    const int64_t uw = wm_of(sched, "u");
    return uw > before && uw <= wm_of(sched, "m2") && wm_of(sched, "fast") > uw + 50000;
  }));

  sched.request_stop();
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
  ASSERT_TRUE(fut.get().ok());
  EXPECT_FALSE(saw_idle->load());
  EXPECT_TRUE(non_decreasing_watermarks(*t));
}

// --- Side outputs ------------------------------------------------------------------

// Even v to the main output, odd v to side output 1.
class Splitter final : public Operator {
 public:
  Status process(size_t, const BatchPtr& b, Output& out) override {
    auto even = std::make_shared<Selection>();
    auto odd = std::make_shared<Selection>();
    b->for_each_row([&](size_t r) {
      (b->column(1)->int64_at(r) % 2 == 0 ? even : odd)->push_back(static_cast<uint32_t>(r));
    });
    out.emit(b->with_selection(even));
    out.emit_to(1, b->with_selection(odd));
    return Status::OK();
  }
};

class SplitterNode final : public PreparedNode {
 public:
  SchemaPtr output_schema() const override { return kv_schema(); }
  std::unique_ptr<Operator> make_operator(int, int) const override {
    return std::make_unique<Splitter>();
  }
  std::vector<SideOutput> side_outputs() const override {
    return {SideOutput{"odd", kv_schema(), {}}};
  }
};

PlanNode splitter(std::string id) {
  return PlanNode{std::move(id), "split", NodeRole::kTransform, std::make_shared<SplitterNode>(),
                  std::nullopt};
}

TEST(SideOutputTest, SideOutputRowsReachOnlyTheirEdges) {
  constexpr int64_t kRows = 3000;
  auto src = std::make_shared<testing::SourceStats>();
  auto main_sink = std::make_shared<testing::SinkState>();
  auto side_sink = std::make_shared<testing::SinkState>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", testing::counting(src, kRows, 100, true))}, 2);
  size_t sp = pb.vertex({splitter("split")}, 2);
  size_t a = pb.vertex({testing::sink_node("evens", testing::collect(main_sink))}, 2);
  size_t b = pb.vertex({testing::sink_node("odds", testing::collect(side_sink))}, 1);
  pb.edge(s, sp, Partitioning::kForward);
  pb.edge(sp, a, Partitioning::kHash, 0, {0}, 0);
  pb.edge(sp, b, Partitioning::kRebalance, 0, {}, 1);
  Scheduler sched(pb.plan, opts());
  ASSERT_TRUE(run_bounded(sched).ok());
  EXPECT_EQ(main_sink->rows.load(), static_cast<uint64_t>(kRows / 2));
  EXPECT_EQ(side_sink->rows.load(), static_cast<uint64_t>(kRows / 2));
  int64_t even_sum = 0, odd_sum = 0;
  for (int64_t v = 0; v < kRows; ++v) (v % 2 == 0 ? even_sum : odd_sum) += v;
  EXPECT_EQ(main_sink->sum.load(), even_sum);
  EXPECT_EQ(side_sink->sum.load(), odd_sum);
  EXPECT_EQ(sched.metrics().find("split")->rows_out.load(), static_cast<uint64_t>(kRows));
  // Watermarks and end-of-stream reach every port's edges.
  EXPECT_EQ(main_sink->finished.load(), 2);
  EXPECT_EQ(side_sink->finished.load(), 1);
  std::lock_guard<std::mutex> l1(main_sink->mu);
  std::lock_guard<std::mutex> l2(side_sink->mu);
  ASSERT_FALSE(main_sink->watermarks.empty());
  ASSERT_FALSE(side_sink->watermarks.empty());
  // The last watermark of each source subtask is its last v: 2998 and 2999
  // (the minimum, or 2999 once the other subtask ended).
  // (main_sink's two subtasks share one list, so only the side sink's is ordered.)
  EXPECT_TRUE(std::is_sorted(side_sink->watermarks.begin(), side_sink->watermarks.end()));
  EXPECT_GE(side_sink->watermarks.back(), kRows - 2);
  EXPECT_GE(main_sink->watermarks.back(), kRows - 2);
}

TEST(SideOutputTest, SideOutputFromTheMiddleOfAChainFailsTheRun) {
  auto src = std::make_shared<testing::SourceStats>();
  auto sink = std::make_shared<testing::SinkState>();
  PlanBuilder pb;
  pb.vertex({testing::source_node("src", testing::counting(src, 1000, 100)), splitter("split"),
             testing::sink_node("out", testing::collect(sink))});
  Scheduler sched(pb.plan, opts());
  Status st = run_bounded(sched);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.to_string().find("middle of the chain"), std::string::npos) << st.to_string();
  EXPECT_NE(st.to_string().find("split"), std::string::npos) << st.to_string();
}

TEST(SideOutputTest, EdgeFromAnUndeclaredPortIsRejected) {
  auto src = std::make_shared<testing::SourceStats>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", testing::counting(src, 10, 10))});
  size_t sp = pb.vertex({splitter("split")});
  size_t k = pb.vertex(
      {testing::sink_node("out", testing::collect(std::make_shared<testing::SinkState>()))});
  pb.edge(s, sp);
  pb.edge(sp, k, Partitioning::kRebalance, 0, {}, 2);
  Scheduler sched(pb.plan, opts());
  Status st = run_bounded(sched);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.to_string().find("side output 2"), std::string::npos) << st.to_string();
}

// --- Per-input partitioning ------------------------------------------------------

// Rows {k: v, v: v % 13}: the key is field 1 (the opposite of make_rows).
class SwappedSource final : public SourceOperator {
 public:
  SwappedSource(int64_t total, int subtask, int parallelism)
      : total_(total), next_(subtask), stride_(parallelism) {}
  Result<SourceProgress> produce(Output& out) override {
    if (next_ >= total_) return SourceProgress::exhausted();
    BatchBuilder b(kv_schema(), 64);
    for (int i = 0; i < 64 && next_ < total_; ++i, next_ += stride_) {
      b.column(0).append_int64(next_);
      b.column(1).append_int64(next_ % 13);
      b.finish_row();
    }
    out.emit(b.finish());
    return SourceProgress::more();
  }

 private:
  int64_t total_, next_, stride_;
};

struct KeysByInput {
  std::mutex mu;
  // [subtask][input] -> keys seen
  std::vector<std::array<std::set<int64_t>, 2>> keys =
      std::vector<std::array<std::set<int64_t>, 2>>(3);
  uint64_t rows[2] = {0, 0};
};

class KeyRecorder final : public Operator {
 public:
  KeyRecorder(std::shared_ptr<KeysByInput> st, int subtask)
      : st_(std::move(st)), subtask_(subtask) {}
  Status process(size_t input, const BatchPtr& b, Output&) override {
    const size_t field = input == 0 ? 0 : 1;
    std::lock_guard<std::mutex> lock(st_->mu);
    b->for_each_row([&](size_t r) {
      st_->keys[static_cast<size_t>(subtask_)][input].insert(b->column(field)->int64_at(r));
      ++st_->rows[input];
    });
    return Status::OK();
  }

 private:
  std::shared_ptr<KeysByInput> st_;
  int subtask_;
};

// A two-input node keyed on field 0 of input 0 and field 1 of input 1.
class TwoKeyNode final : public PreparedNode {
 public:
  explicit TwoKeyNode(std::shared_ptr<KeysByInput> st) : st_(std::move(st)) {}
  SchemaPtr output_schema() const override { return nullptr; }
  std::unique_ptr<Operator> make_operator(int subtask, int) const override {
    return std::make_unique<KeyRecorder>(st_, subtask);
  }
  using PreparedNode::input_partitioning;
  InputPartitioning input_partitioning(size_t input) const override {
    return {InputPartitioning::Kind::kHash, {input == 0 ? size_t{0} : size_t{1}}};
  }

 private:
  std::shared_ptr<KeysByInput> st_;
};

TEST(PartitioningTest, EachInputIsHashedOnItsOwnKeyFields) {
  static constexpr int64_t kRows = 4000;
  auto st = std::make_shared<KeysByInput>();
  auto src = std::make_shared<testing::SourceStats>();
  auto node = std::make_shared<TwoKeyNode>(st);
  PlanBuilder pb;
  size_t a = pb.vertex({testing::source_node("a", testing::counting(src, kRows, 64))}, 2);
  size_t b = pb.vertex(
      {testing::source_node(
          "b", [](int s, int p) { return std::make_unique<SwappedSource>(kRows, s, p); })},
      2);
  size_t j = pb.vertex({PlanNode{"j", "join", NodeRole::kSink, node, std::nullopt}}, 3);
  // What the planner does: each edge hashes on input_partitioning(input).
  for (size_t input = 0; input < 2; ++input) {
    const InputPartitioning part = node->input_partitioning(input);
    ASSERT_EQ(part.kind, InputPartitioning::Kind::kHash);
    pb.edge(input == 0 ? a : b, j, Partitioning::kHash, input, part.key_fields);
  }
  Scheduler sched(pb.plan, opts());
  ASSERT_TRUE(run_bounded(sched).ok());
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_EQ(st->rows[0], static_cast<uint64_t>(kRows));
  EXPECT_EQ(st->rows[1], static_cast<uint64_t>(kRows));
  // Each key lives on exactly one subtask, the same one for both inputs.
  std::set<int64_t> all;
  int busy = 0;
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(st->keys[s][0], st->keys[s][1]) << "subtask " << s;
    for (int64_t key : st->keys[s][0]) EXPECT_TRUE(all.insert(key).second) << "key " << key;
    busy += st->keys[s][0].empty() ? 0 : 1;
  }
  EXPECT_EQ(all.size(), 13u);
  EXPECT_GE(busy, 2);  // the keys really were spread
}

// --- State directories ---------------------------------------------------------------

struct DirState {
  std::mutex mu;
  std::vector<std::string> dirs;  // state_dir() seen in open(), existing
  std::vector<size_t> budgets;
  bool all_existed = true;
};

class DirRecorder final : public Operator {
 public:
  explicit DirRecorder(std::shared_ptr<DirState> st) : st_(std::move(st)) {}
  Status open(OperatorContext& ctx) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    const std::string dir = ctx.state_dir();
    if (!dir.empty() && !std::filesystem::is_directory(dir)) st_->all_existed = false;
    st_->dirs.push_back(dir);
    st_->budgets.push_back(ctx.state_memory_budget());
    return Status::OK();
  }
  Status process(size_t, const BatchPtr& b, Output& out) override {
    out.emit(b);
    return Status::OK();
  }

 private:
  std::shared_ptr<DirState> st_;
};

TEST(StateDirTest, EachTransformAndSinkSubtaskGetsItsOwnDirectory) {
  test::TempDir tmp;
  const std::string root = (tmp.path() / "state").string();
  auto st = std::make_shared<DirState>();
  auto src = std::make_shared<testing::SourceStats>();
  auto rec = [st](int, int) { return std::make_unique<DirRecorder>(st); };
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", testing::counting(src, 100, 10))}, 2);
  size_t m = pb.vertex({testing::op_node("agg", "window", rec)}, 2);
  size_t k = pb.vertex({testing::sink_node("out", rec)}, 1);
  pb.edge(s, m, Partitioning::kForward);
  pb.edge(m, k);
  RunOptions o = opts();
  o.state_root = root;
  o.state_memory_budget = 12345;
  Scheduler sched(pb.plan, o);
  ASSERT_TRUE(run_bounded(sched).ok());
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_TRUE(st->all_existed);
  std::vector<std::string> dirs = st->dirs;
  std::sort(dirs.begin(), dirs.end());
  namespace fs = std::filesystem;
  EXPECT_EQ(dirs, (std::vector<std::string>{(fs::path(root) / "agg" / "0").string(),
                                            (fs::path(root) / "agg" / "1").string(),
                                            (fs::path(root) / "out" / "0").string()}));
  EXPECT_EQ(st->budgets, (std::vector<size_t>{12345, 12345, 12345}));
  EXPECT_FALSE(fs::exists(fs::path(root) / "src"));  // sources keep no keyed state
}

TEST(StateDirTest, NoStateRootMeansNoDirectory) {
  auto st = std::make_shared<DirState>();
  auto src = std::make_shared<testing::SourceStats>();
  PlanBuilder pb;
  size_t s = pb.vertex({testing::source_node("src", testing::counting(src, 10, 10))});
  size_t k = pb.vertex(
      {testing::sink_node("out", [st](int, int) { return std::make_unique<DirRecorder>(st); })});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts());
  ASSERT_TRUE(run_bounded(sched).ok());
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_EQ(st->dirs, std::vector<std::string>{""});
  EXPECT_EQ(st->budgets, std::vector<size_t>{RunOptions{}.state_memory_budget});
}

}  // namespace
}  // namespace df::runtime
