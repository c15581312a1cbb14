// The runtime hooks a source with a client of its own (Kafka) relies on:
// on_backpressure() after its outputs stayed full, its own watermarks instead
// of generated ones, the restored meta of every subtask of its node, and the
// node's event-time settings.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>

#include "engine/runtime/scheduler.h"
#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

using namespace std::chrono_literals;
using testing::collect;
using testing::eventually;
using testing::make_rows;
using testing::PlanBuilder;
using testing::SinkState;

RunOptions opts() {
  RunOptions o;
  o.workers = 2;
  o.batch_size = 100;
  o.buffer_size = 1000;
  o.backpressure_threshold = 0.5;
  o.io_threads = 1;
  return o;
}

struct HookLog {
  std::mutex mu;
  std::vector<bool> backpressure;  // on_backpressure() arguments, in order
  std::atomic<uint64_t> produced{0};
  std::vector<std::pair<int, std::string>> restored;  // what open() saw
  const EventTimeSpec* event_time = nullptr;
  std::vector<bool> calls() {
    std::lock_guard lock(mu);
    return backpressure;
  }
};

// Unbounded rows v = 0, 1, ... with event time v; with `own_watermarks` it
// emits watermark v - 1000 after each batch and asks the runtime for none.
class HookedSource final : public SourceOperator {
 public:
  HookedSource(std::shared_ptr<HookLog> log, bool own_watermarks, int64_t total = -1)
      : log_(std::move(log)), own_(own_watermarks), total_(total) {}
  Status open(OperatorContext& ctx) override {
    std::lock_guard lock(log_->mu);
    for (const auto& [subtask, meta] : ctx.restored_node_metas()) {
      log_->restored.emplace_back(subtask, *meta);
    }
    log_->event_time = ctx.event_time();
    return Status::OK();
  }
  Result<SourceProgress> produce(Output& out) override {
    if (total_ >= 0 && next_ >= total_) return SourceProgress::exhausted();
    out.emit(make_rows(next_, 100));
    next_ += 100;
    log_->produced.fetch_add(100);
    if (own_) out.emit_watermark(Watermark{next_ - 1000});
    return SourceProgress::more();
  }
  void on_backpressure(bool blocked) override {
    std::lock_guard lock(log_->mu);
    log_->backpressure.push_back(blocked);
  }
  bool emits_watermarks() const override { return own_; }

 private:
  std::shared_ptr<HookLog> log_;
  bool own_;
  int64_t total_;
  int64_t next_ = 0;
};

PlanNode hooked(std::shared_ptr<HookLog> log, bool own_watermarks, int64_t total = -1) {
  PlanNode n = testing::source_node(
      "src", [=](int, int) { return std::make_unique<HookedSource>(log, own_watermarks, total); });
  n.event_time = EventTimeSpec{1, Millis(0), std::nullopt};  // v is the event time
  return n;
}

TEST(SourceHooksTest, BackpressureReachesTheSourceOnlyWhenItLasts) {
  auto log = std::make_shared<HookLog>();
  auto sink = std::make_shared<SinkState>();
  sink->accept = false;  // a stalled sink
  PlanBuilder pb;
  size_t s = pb.vertex({hooked(log, false)});
  size_t k = pb.vertex({testing::sink_node("out", collect(sink))});
  pb.edge(s, k);
  Scheduler sched(pb.plan, opts());
  auto fut = std::async(std::launch::async, [&] { return sched.run(); });

  // The outputs fill up; after kSourceBackpressureDelay the source hears of it, once.
  const auto filled = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return !log->calls().empty(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - filled, kSourceBackpressureDelay - 10ms);
  std::this_thread::sleep_for(2 * kSourceBackpressureDelay);
  EXPECT_EQ(log->calls(), std::vector<bool>{true});

  // Room again: the source is told before it produces more.
  const uint64_t before = log->produced.load();
  sink->accept = true;
  ASSERT_NE(sink->ctx.load(), nullptr);
  sink->ctx.load()->wake();
  ASSERT_TRUE(eventually([&] { return log->produced.load() > before + 5000; }));
  std::vector<bool> calls = log->calls();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls[0], true);
  EXPECT_EQ(calls[1], false);
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_NE(calls[i], calls[i - 1]) << i;
  sched.request_stop();
  ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());
}

TEST(SourceHooksTest, ASourceWithItsOwnWatermarksGetsNoGeneratedOnes) {
  for (bool own : {false, true}) {
    auto log = std::make_shared<HookLog>();
    auto sink = std::make_shared<SinkState>();
    PlanBuilder pb;
    size_t s = pb.vertex({hooked(log, own, 1000)});
    size_t k = pb.vertex({testing::sink_node("out", collect(sink))});
    pb.edge(s, k);
    RunOptions o = opts();
    o.restored[{"src", 0}].meta = "meta of 0";
    o.restored[{"src", 3}].meta = "meta of 3";  // a subtask of an earlier, wider run
    o.restored[{"other", 0}].meta = "not ours";
    Scheduler sched(pb.plan, o);
    ASSERT_TRUE(testing::run_bounded(sched).ok());
    std::lock_guard lock(sink->mu);
    ASSERT_FALSE(sink->watermarks.empty());
    // Own: v - 1000 after each batch (last 0 = 1000 - 1000); generated: max - 0 - 1 = 998.
    EXPECT_EQ(sink->watermarks.back(), own ? 0 : 998) << own;
    EXPECT_EQ(log->restored,
              (std::vector<std::pair<int, std::string>>{{0, "meta of 0"}, {3, "meta of 3"}}));
    ASSERT_NE(log->event_time, nullptr);
    EXPECT_EQ(log->event_time->field, 1u);
  }
}

}  // namespace
}  // namespace df::runtime
