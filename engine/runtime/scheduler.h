// Scheduler: runs a PhysicalPlan on one tbb::task_arena of `workers` threads.
//
// Each vertex runs as `parallelism` tasks. A task is scheduled when it has
// input and every output channel is below the backpressure threshold; a task
// whose outputs are full is simply not scheduled until its consumers drain
// (ClickHouse-style prepare/work), so no worker thread ever blocks. A bounded
// pipeline ends when every source is exhausted and end-of-stream has reached
// every sink.
//
// Thread-safety: run() is called from one (non-worker) thread and returns when
// the run ends; request_stop(), cancel() and metrics() may be called from any
// thread meanwhile.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/metrics.h"
#include "engine/core/status.h"
#include "engine/runtime/checkpoint.h"
#include "engine/runtime/physical_plan.h"
#include "engine/runtime/retry.h"

namespace df::runtime {

struct RunOptions {
  int workers = 2;                      // runtime.workers
  size_t batch_size = 1024;             // performance.batch_size (rows)
  size_t buffer_size = 8192;            // performance.buffer_size: rows per channel
  double backpressure_threshold = 0.8;  // performance.backpressure_threshold
  int io_threads = 2;
  // Root for keyed state: subtask state lives in <state_root>/<node>/<subtask>
  // (OperatorContext::state_dir). Empty: operators keep state in memory.
  std::string state_root;
  // OperatorContext::state_memory_budget() of every stateful subtask.
  size_t state_memory_budget = 64u << 20;
  // Checkpoints (runtime/checkpoint.h). Null: the run takes none, snapshot()
  // is never called and sinks commit at close. Not owned; must outlive run().
  CheckpointListener* checkpoint_listener = nullptr;
  // Snapshot files of checkpoint n go to <snapshot_root>/<n>/<node>/<subtask>
  // (same filesystem as state_root, so RocksDB can hard-link). Required with
  // a listener.
  std::string snapshot_root;
  // A resumed run: what each (node, subtask) snapshot recorded.
  RestoredState restored;
  // dead_letter.max_rate: when dead letters pass this share of the rows the
  // sources emitted over the last minute, the run fails (InvalidArgument,
  // a fatal failure). nullopt: no limit (no dead-letter sink).
  std::optional<double> dead_letter_max_rate;
  // healing.retry (runtime/retry.h): a transient failure of a process() or
  // produce() call is retried in place. nullopt: no in-place retries; a
  // transient failure fails the run like any other.
  std::optional<RetryPolicy> retry;
  // healing.circuit_breaker around sinks (with `retry` only). nullopt: none.
  std::optional<CircuitBreakerPolicy> circuit_breaker;
  // Which failures are transient (engine/healing's classifier). Empty:
  // is_unavailable().
  std::function<bool(const Status&)> is_transient;
  // Every retry and breaker change, called on the worker that saw it.
  RetryEventSink on_retry_event;
};

// What a node's Kafka clients report (OperatorContext::report_consumer_lag,
// report_brokers), for the server's metrics and health. Thread-safe: written
// by subtasks and librdkafka callbacks, read by scrapes.
class KafkaClientStatus {
 public:
  struct PartitionLag {
    std::string topic;
    int32_t partition = 0;
    int64_t lag = 0;  // messages
  };
  struct Brokers {
    int up = -1;          // the least over the subtasks that reported; -1: none did
    std::string problem;  // non-empty while a subtask reaches no broker: why
  };

  void set_lag(std::string_view topic, int32_t partition, std::optional<int64_t> lag) {
    std::lock_guard lock(mu_);
    auto key = std::make_pair(std::string(topic), partition);
    if (lag) {
      lag_[std::move(key)] = *lag;
    } else {
      lag_.erase(key);
    }
  }
  void set_brokers(int subtask, int up, std::string_view problem) {
    std::lock_guard lock(mu_);
    brokers_[subtask] = {up, std::string(problem)};
  }
  std::vector<PartitionLag> lag() const {
    std::lock_guard lock(mu_);
    std::vector<PartitionLag> out;
    out.reserve(lag_.size());
    for (const auto& [key, lag] : lag_) out.push_back({key.first, key.second, lag});
    return out;
  }
  Brokers brokers() const {
    std::lock_guard lock(mu_);
    Brokers out;
    for (const auto& [subtask, b] : brokers_) {
      if (out.up < 0 || b.up < out.up) out.up = b.up;
      if (out.problem.empty()) out.problem = b.problem;
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int32_t>, int64_t> lag_;  // guarded by mu_
  std::map<int, Brokers> brokers_;                          // guarded by mu_; by subtask
};

// The bounds of NodeMetrics::latency_seconds: the default seconds buckets
// plus finer ones below 25 ms (1 ms steps up to 10 ms), where the latency
// targets lie.
const std::vector<double>& latency_seconds_buckets();

// Live counters of one logical node, summed over its subtasks. Written by
// workers with relaxed atomics; read at any time by anyone.
struct NodeMetrics {
  std::string id;
  std::string type;
  std::atomic<uint64_t> rows_in{0};
  std::atomic<uint64_t> rows_out{0};
  std::atomic<uint64_t> batches_in{0};
  std::atomic<uint64_t> data_errors{0};
  std::atomic<uint64_t> dead_letters{0};  // of data_errors, those sent to the dead-letter sink
  std::atomic<int64_t> watermark_ms{INT64_MIN};
  // Times a task of this node found an output over the threshold.
  std::atomic<uint64_t> backpressure_events{0};
  // Sinks: seconds from Batch::source_time_ns to the sink having processed
  // the batch, one observation per batch. New rows an operator builds carry
  // the source time of what it was handling: the input batch (a join's
  // matches), the watermark (a window it closes: from the source batch that
  // advanced the watermark past the window's end) or, from finish(), the
  // last input.
  metrics::Histogram latency_seconds{latency_seconds_buckets()};
  // Kafka sources and sinks: partition lag and broker connectivity.
  KafkaClientStatus kafka;
};

struct RunMetrics {
  std::vector<std::unique_ptr<NodeMetrics>> nodes;  // one per plan node, in plan order
  std::chrono::steady_clock::time_point started;
  const NodeMetrics* find(const std::string& id) const;
};

// A snapshot of the channels of a running plan (all zero before run()).
struct ChannelStats {
  size_t channels = 0;
  size_t buffered_rows = 0;     // rows queued in all channels right now
  size_t max_channel_rows = 0;  // the fullest channel right now
  size_t high_water_rows = 0;   // the most rows any one channel ever held
  size_t capacity_rows = 0;     // RunOptions::buffer_size
  size_t threshold_rows = 0;    // above this a channel is full()
};

// Where the error run() returned was raised, when a task's operator raised it.
struct FailureSite {
  std::string node;  // node id; empty when the engine itself failed
  int subtask = -1;
};

class Scheduler {
 public:
  Scheduler(const PhysicalPlan& plan, RunOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs to the end. OK when every source ended and every sink drained (or
  // after request_stop()); the first error otherwise (the run is cancelled).
  Status run();
  // Sources end at their next call; the pipeline drains and run() returns OK.
  void request_stop();
  // Aborts: tasks stop at their next step; run() returns Cancelled.
  void cancel();
  const RunMetrics& metrics() const;
  // After run() returned an error: the node and subtask that raised it.
  FailureSite failure_site() const;
  // Thread-safe; for progress lines, backpressure gauges and tests.
  ChannelStats channel_stats() const;

  // --- Checkpoints; all thread-safe, for the CheckpointCoordinator. ---

  // Starts checkpoint `id` (greater than every earlier id): sources record
  // their positions and inject Barrier(id). False (and nothing happens) when
  // the run has not started, is ending, or was stopped.
  bool trigger_checkpoint(uint64_t id);
  // Like trigger_checkpoint, then every source ends right after its barrier
  // and the pipeline stops without draining: finish() is skipped (windows
  // stay in state), and tasks close once checkpoint `id` completes or is
  // aborted. run() then returns OK if it completed, an error otherwise.
  bool stop_with_checkpoint(uint64_t id);
  // Checkpoint `id` is durable and current: operators' checkpoint_complete(id).
  void notify_checkpoint_complete(uint64_t id);
  // Checkpoint `id` was given up (timeout, failed upload). Tasks waiting on
  // it (a stop with checkpoint) close; nothing is committed. With
  // kFinalCheckpoint: the final checkpoint failed; finished tasks close
  // without committing and run() returns an error.
  void notify_checkpoint_aborted(uint64_t id);
  // The checkpoint covering every final snapshot is complete: operators get
  // checkpoint_complete(kFinalCheckpoint) and the finished tasks close.
  void notify_final_checkpoint_complete();
  // Number of tasks (acknowledgements a checkpoint needs): the sum of the
  // vertices' parallelism.
  size_t task_count() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace df::runtime
