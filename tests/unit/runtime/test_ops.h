// Small operators and plan builders for the runtime tests.
//
// Rows have the schema {k: int64, v: int64}; sources emit v = 0..N-1 (spread
// over subtasks: subtask s emits v = s, s+p, s+2p, ...) and k = v % 13, so a
// test can check "every row exactly once" by count and sum.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/batch.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/physical_plan.h"
#include "engine/runtime/scheduler.h"

namespace df::runtime::testing {

inline SchemaPtr kv_schema() {
  static SchemaPtr s = make_schema({{"k", TypeId::kInt64}, {"v", TypeId::kInt64}});
  return s;
}

// Rows v = first, first+stride, ... (count of them), k = v % 13.
inline BatchPtr make_rows(int64_t first, size_t count, int64_t stride = 1) {
  BatchBuilder b(kv_schema(), count);
  for (size_t i = 0; i < count; ++i) {
    const int64_t v = first + static_cast<int64_t>(i) * stride;
    b.column(0).append_int64(v % 13);
    b.column(1).append_int64(v);
    b.finish_row();
  }
  return b.finish();
}

inline int64_t sum_v(const Batch& b) {
  int64_t s = 0;
  b.for_each_row([&](size_t r) { s += b.column(1)->int64_at(r); });
  return s;
}

// A PreparedNode made of lambdas.
class FnNode final : public PreparedNode {
 public:
  using SourceFn = std::function<std::unique_ptr<SourceOperator>(int, int)>;
  using OpFn = std::function<std::unique_ptr<Operator>(int, int)>;
  FnNode(SourceFn s, OpFn o) : src_(std::move(s)), op_(std::move(o)) {}
  SchemaPtr output_schema() const override { return kv_schema(); }
  std::unique_ptr<SourceOperator> make_source(int subtask, int parallelism) const override {
    return src_ ? src_(subtask, parallelism) : nullptr;
  }
  std::unique_ptr<Operator> make_operator(int subtask, int parallelism) const override {
    return op_ ? op_(subtask, parallelism) : nullptr;
  }

 private:
  SourceFn src_;
  OpFn op_;
};

inline PlanNode source_node(std::string id, FnNode::SourceFn fn, std::string type = "test-source") {
  return PlanNode{std::move(id), std::move(type), NodeRole::kSource,
                  std::make_shared<FnNode>(std::move(fn), nullptr), std::nullopt};
}
inline PlanNode op_node(std::string id, std::string type, FnNode::OpFn fn,
                        NodeRole role = NodeRole::kTransform) {
  return PlanNode{std::move(id), std::move(type), role,
                  std::make_shared<FnNode>(nullptr, std::move(fn)), std::nullopt};
}
inline PlanNode sink_node(std::string id, FnNode::OpFn fn) {
  return op_node(std::move(id), "test-sink", std::move(fn), NodeRole::kSink);
}

struct PlanBuilder {
  PhysicalPlan plan;
  size_t vertex(std::vector<PlanNode> chain, int parallelism = 1) {
    PhysicalVertex v;
    v.chain = std::move(chain);
    v.parallelism = parallelism;
    plan.vertices.push_back(std::move(v));
    return plan.vertices.size() - 1;
  }
  void edge(size_t from, size_t to, Partitioning p = Partitioning::kRebalance, size_t to_input = 0,
            std::vector<size_t> hash_fields = {}, size_t from_port = 0) {
    PhysicalEdge e;
    e.from = from;
    e.to = to;
    e.to_input = to_input;
    e.from_port = from_port;
    e.partitioning = p;
    e.hash_fields = std::move(hash_fields);
    plan.edges.push_back(std::move(e));
  }
};

// --- Sources ---------------------------------------------------------------

struct SourceStats {
  std::atomic<uint64_t> produce_calls{0};
  std::atomic<uint64_t> rows{0};
  std::atomic<int> closed{0};
  std::atomic<bool> exhausted{false};
};

// Emits its share of v = 0..total-1 (total < 0: unbounded) in batches of
// `batch` rows; after each batch, optionally a watermark = the last v.
class CountingSource final : public SourceOperator {
 public:
  CountingSource(std::shared_ptr<SourceStats> stats, int64_t total, size_t batch, int subtask,
                 int parallelism, bool watermarks = false)
      : stats_(std::move(stats)),
        total_(total),
        batch_(batch),
        next_(subtask),
        stride_(parallelism),
        watermarks_(watermarks) {}
  Result<SourceProgress> produce(Output& out) override {
    stats_->produce_calls.fetch_add(1);
    if (total_ >= 0 && next_ >= total_) {
      stats_->exhausted = true;
      return SourceProgress::exhausted();
    }
    size_t n = batch_;
    if (total_ >= 0) {
      const int64_t left = (total_ - next_ + stride_ - 1) / stride_;
      n = std::min<size_t>(n, static_cast<size_t>(left));
    }
    out.emit(make_rows(next_, n, stride_));
    stats_->rows.fetch_add(n);
    next_ += static_cast<int64_t>(n) * stride_;
    if (watermarks_) out.emit_watermark(Watermark{next_ - stride_});
    return SourceProgress::more();
  }
  Status close() override {
    stats_->closed.fetch_add(1);
    return Status::OK();
  }

 private:
  std::shared_ptr<SourceStats> stats_;
  int64_t total_;
  size_t batch_;
  int64_t next_;
  int64_t stride_;
  bool watermarks_;
};

inline FnNode::SourceFn counting(std::shared_ptr<SourceStats> stats, int64_t total, size_t batch,
                                 bool watermarks = false) {
  return [=](int s, int p) {
    return std::make_unique<CountingSource>(stats, total, batch, s, p, watermarks);
  };
}

// --- Transforms --------------------------------------------------------------

// v -> v + 1.
class AddOne final : public Operator {
 public:
  Status process(size_t, const BatchPtr& b, Output& out) override {
    ColumnBuilder v(TypeId::kInt64, b->num_rows());
    for (size_t r = 0; r < b->num_rows(); ++r) v.append_int64(b->column(1)->int64_at(r) + 1);
    out.emit(b->with_columns(b->schema(), {b->column(0), v.finish()}));
    return Status::OK();
  }
};
inline FnNode::OpFn add_one() {
  return [](int, int) { return std::make_unique<AddOne>(); };
}

// Forwards every batch from any input.
class Union final : public Operator {
 public:
  Status process(size_t, const BatchPtr& b, Output& out) override {
    out.emit(b);
    return Status::OK();
  }
};

// Fails with a data error once it has seen `after` rows.
class FailingOp final : public Operator {
 public:
  explicit FailingOp(uint64_t after) : after_(after) {}
  Status process(size_t, const BatchPtr& b, Output& out) override {
    seen_ += b->active_rows();
    if (seen_ > after_) return Status::data_error("boom");
    out.emit(b);
    return Status::OK();
  }

 private:
  uint64_t after_;
  uint64_t seen_ = 0;
};

class ThrowingOp final : public Operator {
 public:
  Status process(size_t, const BatchPtr&, Output&) override { throw std::runtime_error("kaboom"); }
};

// Holds every batch until finish(), then emits them.
class BufferAll final : public Operator {
 public:
  Status process(size_t, const BatchPtr& b, Output&) override {
    held_.push_back(b);
    return Status::OK();
  }
  Status finish(Output& out) override {
    for (auto& b : held_) out.emit(b);
    held_.clear();
    return Status::OK();
  }

 private:
  std::vector<BatchPtr> held_;
};

// --- Sinks -------------------------------------------------------------------

struct SinkState {
  explicit SinkState(int subtasks = 4) : keys(subtasks), batches_by_subtask(subtasks, 0) {}
  std::atomic<uint64_t> rows{0};
  std::atomic<int64_t> sum{0};
  std::atomic<int> opened{0};
  std::atomic<int> finished{0};
  std::atomic<int> closed{0};
  std::atomic<uint64_t> rows_at_finish{0};
  // Slow sink: while false, can_accept() is false. The test flips it and
  // calls ctx->wake().
  std::atomic<bool> accept{true};
  std::atomic<OperatorContext*> ctx{nullptr};
  std::mutex mu;
  std::vector<std::set<int64_t>> keys;       // per subtask
  std::vector<uint64_t> batches_by_subtask;  // per subtask
  std::vector<int64_t> watermarks;           // in arrival order
};

class CollectSink final : public Operator {
 public:
  CollectSink(std::shared_ptr<SinkState> st, int subtask) : st_(std::move(st)), subtask_(subtask) {}
  Status open(OperatorContext& ctx) override {
    st_->ctx = &ctx;
    st_->opened.fetch_add(1);
    return Status::OK();
  }
  Status process(size_t, const BatchPtr& b, Output&) override {
    st_->rows.fetch_add(b->active_rows());
    st_->sum.fetch_add(sum_v(*b));
    std::lock_guard<std::mutex> lock(st_->mu);
    b->for_each_row([&](size_t r) { st_->keys[subtask_].insert(b->column(0)->int64_at(r)); });
    st_->batches_by_subtask[subtask_]++;
    return Status::OK();
  }
  Status on_watermark(Watermark wm, Output&) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->watermarks.push_back(wm.timestamp_ms);
    return Status::OK();
  }
  Status finish(Output&) override {
    st_->rows_at_finish = st_->rows.load();
    st_->finished.fetch_add(1);
    return Status::OK();
  }
  bool can_accept() const override { return st_->accept.load(); }
  Status close() override {
    st_->closed.fetch_add(1);
    return Status::OK();
  }

 private:
  std::shared_ptr<SinkState> st_;
  size_t subtask_;
};

inline FnNode::OpFn collect(std::shared_ptr<SinkState> st) {
  return [st](int s, int) { return std::make_unique<CollectSink>(st, s); };
}

// --- Running -----------------------------------------------------------------

// Runs the scheduler on another thread; fails (and cancels) after `limit`.
inline Status run_bounded(Scheduler& s,
                          std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto fut = std::async(std::launch::async, [&] { return s.run(); });
  if (fut.wait_for(limit) != std::future_status::ready) {
    s.cancel();
    fut.wait();
    return Status::internal("run did not end in time");
  }
  return fut.get();
}

// Polls `cond` every millisecond for at most `limit`.
template <typename F>
bool eventually(F&& cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

inline int64_t sum_0_to(int64_t n) { return n * (n - 1) / 2; }  // 0 + 1 + ... + n-1

}  // namespace df::runtime::testing
