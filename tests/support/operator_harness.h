// Drives operators and connectors without a scheduler: a fake OperatorContext whose IoExecutor runs
// jobs on a real thread, an Output that collects, temp dirs, ConfigValue
// builders, and loops that drive sources and sinks the way the scheduler would.
// For unit tests; one test thread drives each object.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/config_value.h"
#include "engine/runtime/node_factory.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/physical_plan.h"
#include "tests/support/temp_dir.h"

namespace df::test {

// Runs jobs in posting order on one thread (so every strand is ordered).
class ThreadIoExecutor final : public runtime::IoExecutor {
 public:
  ThreadIoExecutor();
  ~ThreadIoExecutor() override;
  void post(uint64_t strand, std::function<void()> job) override;

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

class FakeContext final : public runtime::OperatorContext {
 public:
  explicit FakeContext(int subtask = 0, int parallelism = 1, size_t batch_size = 1024)
      : subtask_(subtask), parallelism_(parallelism), batch_size_(batch_size) {}

  const std::string& node_id() const override { return id_; }
  int subtask() const override { return subtask_; }
  int parallelism() const override { return parallelism_; }
  size_t batch_size() const override { return batch_size_; }
  void wake() override;
  void report_data_error(std::string_view message) override;
  uint64_t io_strand() const override { return 7; }
  runtime::IoExecutor& io() override { return io_; }
  bool stop_requested() const override { return stop_.load(); }
  std::string state_dir() const override { return state_dir_; }
  size_t state_memory_budget() const override { return state_memory_budget_; }
  bool checkpointing() const override { return checkpointing_; }
  const std::string* restored_meta() const override {
    return restored_meta_ ? &*restored_meta_ : nullptr;
  }
  std::vector<std::pair<int, const std::string*>> restored_node_metas() const override {
    std::vector<std::pair<int, const std::string*>> out;
    for (const auto& [subtask, meta] : restored_node_metas_) out.emplace_back(subtask, &meta);
    return out;
  }
  const runtime::EventTimeSpec* event_time() const override {
    return event_time_ ? &*event_time_ : nullptr;
  }

  // Set before open().
  void set_state_dir(std::string dir) { state_dir_ = std::move(dir); }
  void set_state_memory_budget(size_t bytes) { state_memory_budget_ = bytes; }
  void set_checkpointing(bool on) { checkpointing_ = on; }
  void set_restored_meta(std::optional<std::string> meta) { restored_meta_ = std::move(meta); }
  // The restored meta of every subtask of the node, by subtask.
  void set_restored_node_metas(std::map<int, std::string> metas) {
    restored_node_metas_ = std::move(metas);
  }
  void set_event_time(std::optional<runtime::EventTimeSpec> spec) { event_time_ = std::move(spec); }

  void request_stop() { stop_.store(true); }
  int wakes() const { return wakes_.load(); }
  // Waits until `pred` holds, re-checking on every wake() (and every 10 ms).
  bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);
  std::vector<std::string> data_errors() const;

 private:
  std::string id_ = "test";
  int subtask_;
  int parallelism_;
  size_t batch_size_;
  std::string state_dir_;
  size_t state_memory_budget_ = 0;
  bool checkpointing_ = false;
  std::optional<std::string> restored_meta_;
  std::map<int, std::string> restored_node_metas_;
  std::optional<runtime::EventTimeSpec> event_time_;
  std::atomic<int> wakes_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> errors_;
  ThreadIoExecutor io_;  // last: joined first, while the rest is still alive
};

// A SnapshotContext as the scheduler gives one: files go to `files_dir`
// (which must not exist yet), meta is kept, and wait() blocks until every
// deferred completion was called, returning the first error.
class FakeSnapshotContext final : public runtime::SnapshotContext {
 public:
  FakeSnapshotContext(uint64_t id, std::string files_dir)
      : id_(id), files_dir_(std::move(files_dir)) {}
  uint64_t checkpoint_id() const override { return id_; }
  const std::string& files_dir() const override { return files_dir_; }
  void set_meta(std::string json) override { meta_ = std::move(json); }
  std::function<void(Status)> defer() override;

  const std::string& meta() const { return meta_; }
  Status wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  uint64_t id_;
  std::string files_dir_;
  std::string meta_;
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
  Status first_error_;
};

class CollectOutput final : public runtime::Output {
 public:
  void emit(BatchPtr batch) override { batches.push_back(std::move(batch)); }
  void emit_watermark(Watermark wm) override { watermarks.push_back(wm); }
  std::vector<BatchPtr> batches;
  std::vector<Watermark> watermarks;
};

// ConfigValue builders. Scalars get the location pipe.yaml:<line>:<col>.
ConfigValue scalar(std::string text, int line = 1, int col = 1);
ConfigValue map(std::vector<ConfigValue::Entry> entries, int line = 1, int col = 1);

// Prepares a node with `factory`, as the plan does: id/type/input/parallelism
// allowed, finish() called. Diagnostics go to `diags`.
runtime::PreparedNodePtr prepare(const runtime::NodeFactory& factory, runtime::NodeRole role,
                                 const ConfigValue& config, Diagnostics& diags,
                                 std::vector<SchemaPtr> inputs = {});

// All alive rows of `batches` as values.
std::vector<std::vector<Value>> rows_of(const std::vector<BatchPtr>& batches);

// Drives a source until exhausted, honouring waits (sleeps, as the scheduler
// would); fails the test after `max_calls` produce() calls.
Status run_source(runtime::SourceOperator& src, FakeContext& ctx, CollectOutput& out,
                  int max_calls = 100000);

// Drives a sink: open, process every batch (waiting while !can_accept()),
// finish, wait for drained(), close. Returns the first error.
Status run_sink(runtime::Operator& sink, FakeContext& ctx, const std::vector<BatchPtr>& batches,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace df::test
