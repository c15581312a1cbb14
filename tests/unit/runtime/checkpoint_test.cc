// Barrier snapshots in the Scheduler: sources inject barriers, tasks align and
// snapshot, deferred work delays the acknowledgement, final snapshots and the
// final checkpoint at the end of a bounded run, stop with a checkpoint, and
// restored meta handed back to operators.
//
// The listener here plays the coordinator's part (engine/checkpoint has the
// real one, tested with storage there): it completes a checkpoint once every
// task acknowledged it, as the coordinator does after uploading.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <thread>

#include "engine/runtime/checkpoint.h"
#include "engine/runtime/scheduler.h"
#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::make_rows;
using testing::PlanBuilder;
using testing::run_bounded;
using testing::sum_v;

RunOptions opts(int workers, CheckpointListener* listener) {
  RunOptions o;
  o.workers = workers;
  o.batch_size = 64;
  o.buffer_size = 512;
  o.io_threads = 1;
  o.checkpoint_listener = listener;
  o.snapshot_root = "/nonexistent-snapshots";  // nothing here writes files
  return o;
}

// Completes a checkpoint when all tasks acknowledged it (a final snapshot
// counts for every checkpoint its task no longer reaches by barrier).
class RecordingCoordinator final : public CheckpointListener {
 public:
  void attach(Scheduler* s) {
    std::lock_guard<std::mutex> lock(mu_);
    scheduler_ = s;
    tasks_ = s->task_count();
  }
  void on_task_snapshot(TaskSnapshot snap) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::pair<size_t, int> task{snap.vertex, snap.subtask};
    if (snap.checkpoint_id == kFinalCheckpoint) {
      finals_[task] = snap;
    } else {
      acks_[snap.checkpoint_id][task] = snap;
    }
    maybe_complete();
  }
  void on_task_snapshot_failed(uint64_t id, size_t, int, Status status) override {
    std::lock_guard<std::mutex> lock(mu_);
    failed_[id] = status.to_string();
    scheduler_->notify_checkpoint_aborted(id);
  }
  // Snapshots of checkpoint `id` by task (barrier acks, else finals).
  std::map<std::pair<size_t, int>, TaskSnapshot> checkpoint(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto all = finals_;
    for (auto& [k, v] : acks_[id]) all[k] = v;
    return all;
  }
  std::set<uint64_t> completed() {
    std::lock_guard<std::mutex> lock(mu_);
    return completed_;
  }
  bool final_done() {
    std::lock_guard<std::mutex> lock(mu_);
    return final_done_;
  }
  std::map<uint64_t, std::string> failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

 private:
  void maybe_complete() {
    for (auto& [id, acks] : acks_) {
      if (completed_.count(id) || failed_.count(id)) continue;
      size_t have = acks.size();
      for (auto& [task, snap] : finals_) have += acks.count(task) ? 0 : 1;
      if (have == tasks_) {
        completed_.insert(id);
        scheduler_->notify_checkpoint_complete(id);
      }
    }
    if (!final_done_ && finals_.size() == tasks_) {
      final_done_ = true;
      scheduler_->notify_final_checkpoint_complete();
    }
  }

  std::mutex mu_;
  Scheduler* scheduler_ = nullptr;
  size_t tasks_ = 0;
  std::map<uint64_t, std::map<std::pair<size_t, int>, TaskSnapshot>> acks_;
  std::map<std::pair<size_t, int>, TaskSnapshot> finals_;
  std::set<uint64_t> completed_;
  std::map<uint64_t, std::string> failed_;
  bool final_done_ = false;
};

// Emits rows v = next.. of its share (like CountingSource) and snapshots
// "next"; resumes from restored meta. total < 0: unbounded. Paces itself
// with a short wait every `pace` batches so checkpoints interleave.
class PositionSource final : public SourceOperator {
 public:
  PositionSource(int64_t total, int subtask, int parallelism)
      : total_(total), next_(subtask), stride_(parallelism) {}
  Status open(OperatorContext& ctx) override {
    if (const std::string* meta = ctx.restored_meta()) next_ = std::stoll(*meta);
    return Status::OK();
  }
  Result<SourceProgress> produce(Output& out) override {
    if (total_ >= 0 && next_ >= total_) return SourceProgress::exhausted();
    size_t n = 16;
    if (total_ >= 0)
      n = std::min<size_t>(n, static_cast<size_t>((total_ - next_ + stride_ - 1) / stride_));
    out.emit(make_rows(next_, n, stride_));
    next_ += static_cast<int64_t>(n) * stride_;
    if (++batches_ % 8 == 0) {
      return SourceProgress::wait_until(std::chrono::steady_clock::now() + 200us);
    }
    return SourceProgress::more();
  }
  Status snapshot(SnapshotContext& ctx) override {
    ctx.set_meta(std::to_string(next_));
    return Status::OK();
  }

 private:
  int64_t total_;
  int64_t next_;
  int64_t stride_;
  uint64_t batches_ = 0;
};

// Everything a SummingSink subtask saw, shared with the test.
struct SumState {
  std::mutex mu;
  std::map<int, int64_t> rows;  // per subtask, live
  std::vector<uint64_t> completions;
  int finished = 0;
  int closed = 0;
  std::atomic<bool> fail_snapshots{false};
  std::atomic<bool> defer_acks{false};
};

// Counts rows; its snapshot is the count (meta); restores it.
class SummingSink final : public Operator {
 public:
  SummingSink(std::shared_ptr<SumState> st, int subtask) : st_(std::move(st)), subtask_(subtask) {}
  Status open(OperatorContext& ctx) override {
    ctx_ = &ctx;
    if (const std::string* meta = ctx.restored_meta()) rows_ = std::stoll(*meta);
    publish();
    return Status::OK();
  }
  Status process(size_t, const BatchPtr& b, Output&) override {
    rows_ += static_cast<int64_t>(b->active_rows());
    publish();
    return Status::OK();
  }
  Status finish(Output&) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    ++st_->finished;
    return Status::OK();
  }
  Status snapshot(SnapshotContext& ctx) override {
    if (st_->fail_snapshots.load()) return Status::io_error("disk full");
    ctx.set_meta(std::to_string(rows_));
    if (st_->defer_acks.load()) {
      auto done = ctx.defer();
      ctx_->io().post(ctx_->io_strand(), [done] {
        std::this_thread::sleep_for(2ms);
        done(Status::OK());
      });
    }
    return Status::OK();
  }
  Status checkpoint_complete(uint64_t id) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->completions.push_back(id);
    return Status::OK();
  }
  Status close() override {
    std::lock_guard<std::mutex> lock(st_->mu);
    ++st_->closed;
    return Status::OK();
  }

 private:
  void publish() {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->rows[subtask_] = rows_;
  }
  std::shared_ptr<SumState> st_;
  int subtask_;
  OperatorContext* ctx_ = nullptr;
  int64_t rows_ = 0;
};

// sources (p) -hash-> sink (p).
PhysicalPlan sum_plan(int parallelism, int64_t total, std::shared_ptr<SumState> st) {
  PlanBuilder b;
  auto src = b.vertex(
      {testing::source_node(
          "src", [total](int s, int p) { return std::make_unique<PositionSource>(total, s, p); })},
      parallelism);
  auto sink =
      b.vertex({testing::sink_node(
                   "sum", [st](int s, int) { return std::make_unique<SummingSink>(st, s); })},
               parallelism);
  b.edge(src, sink, Partitioning::kHash, 0, {0});
  return b.plan;
}

int64_t rows_emitted(int64_t next, int subtask, int parallelism) {
  return next <= subtask ? 0 : (next - subtask + parallelism - 1) / parallelism;
}

// In every completed checkpoint, what the sinks had counted equals what the
// sources had emitted: the barrier cut is consistent.
void expect_consistent(RecordingCoordinator& c, uint64_t id, int parallelism) {
  int64_t emitted = 0;
  int64_t counted = 0;
  for (const auto& [task, snap] : c.checkpoint(id)) {
    ASSERT_EQ(snap.nodes.size(), 1u);
    const NodeSnapshot& n = snap.nodes[0];
    ASSERT_FALSE(n.meta.empty()) << "checkpoint " << id << " node " << n.node_id;
    if (n.node_id == "src") {
      emitted += rows_emitted(std::stoll(n.meta), n.subtask, parallelism);
    } else {
      counted += std::stoll(n.meta);
    }
  }
  EXPECT_EQ(emitted, counted) << "checkpoint " << id;
}

TEST(CheckpointTest, BarrierSnapshotsAreConsistentAndFinalCheckpointCommitsBeforeClose) {
  for (int parallelism : {1, 2}) {
    auto st = std::make_shared<SumState>();
    RecordingCoordinator coord;
    Scheduler s(sum_plan(parallelism, 200000, st), opts(2, &coord));
    coord.attach(&s);
    std::atomic<bool> stop{false};
    std::thread trigger([&] {
      for (uint64_t id = 1; id <= 20 && !stop.load(); ++id) {
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (!s.trigger_checkpoint(id) && !stop.load() &&
               std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(1ms);
        }
        eventually([&] { return coord.completed().count(id) > 0 || stop.load(); }, 2s);
      }
    });
    Status status = run_bounded(s);
    stop = true;
    trigger.join();
    ASSERT_TRUE(status.ok()) << status.to_string();
    auto done = coord.completed();
    EXPECT_GE(done.size(), 2u) << "parallelism " << parallelism;
    for (uint64_t id : done) expect_consistent(coord, id, parallelism);
    EXPECT_TRUE(coord.final_done());
    std::lock_guard<std::mutex> lock(st->mu);
    int64_t total = 0;
    for (auto& [sub, rows] : st->rows) total += rows;
    EXPECT_EQ(total, 200000);
    EXPECT_EQ(st->closed, parallelism);
    // Every sink learned of the final checkpoint before it closed.
    EXPECT_EQ(std::count(st->completions.begin(), st->completions.end(), kFinalCheckpoint),
              parallelism);
  }
}

TEST(CheckpointTest, DeferredWorkDelaysTheAcknowledgement) {
  auto st = std::make_shared<SumState>();
  st->defer_acks = true;
  RecordingCoordinator coord;
  Scheduler s(sum_plan(1, -1, st), opts(2, &coord));
  coord.attach(&s);
  auto fut = std::async(std::launch::async, [&] { return s.run(); });
  ASSERT_TRUE(eventually([&] { return s.trigger_checkpoint(1); }, 5s));
  ASSERT_TRUE(eventually([&] { return coord.completed().count(1) > 0; }, 5s));
  expect_consistent(coord, 1, 1);
  ASSERT_TRUE(s.stop_with_checkpoint(2));
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(fut.get().ok());
}

TEST(CheckpointTest, StopWithCheckpointKeepsStateAndSkipsFinish) {
  auto st = std::make_shared<SumState>();
  RecordingCoordinator coord;
  Scheduler s(sum_plan(2, -1, st), opts(2, &coord));
  coord.attach(&s);
  auto fut = std::async(std::launch::async, [&] { return s.run(); });
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lock(st->mu);
    return st->rows.size() == 2 && st->rows[0] + st->rows[1] > 5000;
  }));
  ASSERT_TRUE(s.stop_with_checkpoint(7));
  EXPECT_FALSE(s.trigger_checkpoint(8)) << "no checkpoint after a stop";
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  Status status = fut.get();
  ASSERT_TRUE(status.ok()) << status.to_string();
  ASSERT_TRUE(coord.completed().count(7));
  expect_consistent(coord, 7, 2);
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_EQ(st->finished, 0) << "a stop does not drain";
  EXPECT_EQ(st->closed, 2);
  EXPECT_EQ(std::count(st->completions.begin(), st->completions.end(), 7u), 2);
  // Nothing after the barrier: the sinks' live counts equal the snapshot.
  int64_t live = st->rows[0] + st->rows[1];
  int64_t snap = 0;
  for (const auto& [task, ts] : coord.checkpoint(7)) {
    if (ts.nodes[0].node_id == "sum") snap += std::stoll(ts.nodes[0].meta);
  }
  EXPECT_EQ(live, snap);
}

TEST(CheckpointTest, FailedSnapshotFailsTheCheckpointNotTheRun) {
  auto st = std::make_shared<SumState>();
  st->fail_snapshots = true;
  RecordingCoordinator coord;
  Scheduler s(sum_plan(1, -1, st), opts(2, &coord));
  coord.attach(&s);
  auto fut = std::async(std::launch::async, [&] { return s.run(); });
  ASSERT_TRUE(eventually([&] { return s.trigger_checkpoint(1); }, 5s));
  ASSERT_TRUE(eventually([&] { return coord.failed().count(1) > 0; }, 5s));
  EXPECT_NE(coord.failed()[1].find("disk full"), std::string::npos) << coord.failed()[1];
  EXPECT_NE(coord.failed()[1].find("'sum'"), std::string::npos) << coord.failed()[1];
  st->fail_snapshots = false;
  ASSERT_TRUE(s.trigger_checkpoint(2));
  ASSERT_TRUE(eventually([&] { return coord.completed().count(2) > 0; }, 5s));
  s.cancel();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(fut.get().code(), StatusCode::kCancelled);
}

TEST(CheckpointTest, AbortedStopCheckpointEndsTheRunWithAnError) {
  // A coordinator that never completes: the stop must still end, with a reason.
  class Silent final : public CheckpointListener {
   public:
    void on_task_snapshot(TaskSnapshot) override {}
    void on_task_snapshot_failed(uint64_t, size_t, int, Status) override {}
  } silent;
  auto st = std::make_shared<SumState>();
  Scheduler s(sum_plan(1, -1, st), opts(2, &silent));
  auto fut = std::async(std::launch::async, [&] { return s.run(); });
  ASSERT_TRUE(eventually([&] { return s.stop_with_checkpoint(3); }, 5s));
  EXPECT_EQ(fut.wait_for(200ms), std::future_status::timeout) << "waits for the checkpoint";
  s.notify_checkpoint_aborted(3);
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  Status status = fut.get();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("stop checkpoint 3"), std::string::npos) << status.to_string();
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_TRUE(st->completions.empty()) << "nothing commits after an abort";
}

TEST(CheckpointTest, RestoredMetaReachesOperatorsAndSourcesResume) {
  auto st = std::make_shared<SumState>();
  RecordingCoordinator coord;
  RunOptions o = opts(2, &coord);
  // As if checkpoint 4 had been taken after 1000 rows: the source resumes
  // at v = 1000 and the sink's count continues from 1000.
  o.restored[{"src", 0}] = RestoredNode{"1000", INT64_MIN};
  o.restored[{"sum", 0}] = RestoredNode{"1000", INT64_MIN};
  Scheduler s(sum_plan(1, 5000, st), o);
  coord.attach(&s);
  Status status = run_bounded(s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_EQ(st->rows[0], 5000);
}

TEST(CheckpointTest, WithoutListenerNothingIsTriggered) {
  auto st = std::make_shared<SumState>();
  Scheduler s(sum_plan(1, 1000, st), opts(2, nullptr));
  EXPECT_FALSE(s.trigger_checkpoint(1));
  Status status = run_bounded(s);
  ASSERT_TRUE(status.ok()) << status.to_string();
  std::lock_guard<std::mutex> lock(st->mu);
  EXPECT_TRUE(st->completions.empty());
  EXPECT_EQ(st->finished, 1);
}

}  // namespace
}  // namespace df::runtime
