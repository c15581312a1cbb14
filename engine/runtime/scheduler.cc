// The Scheduler: tasks, their prepare/work steps, and the run's lifecycle.
//
// Shape (ClickHouse Processors style, on a TBB arena):
// - One Task per (vertex, subtask). A Task is a Wakeable with an atomic state
//   idle -> scheduled -> running (-> running+dirty) -> idle | scheduled | done.
//   wake() moves idle to scheduled and enqueues the task into the arena; a
//   wake while running only sets "dirty", and the running thread re-prepares
//   before it goes idle. So a wake is never lost and a task never runs on two
//   threads at once.
// - A run of a task is a loop of prepare() (O(1): looks at channels, flags and
//   can_accept()/drained(); never calls into operator work) and work() (one
//   unit: one input element, one produce(), one finish() or the close). The
//   loop stops when prepare() says there is nothing to do (the task goes idle
//   and waits for a wake) or when the quantum is used up (the task re-enqueues
//   itself at the back of the arena's FIFO, so other tasks get their turn).
// - Nobody waits on a worker: a full output channel, an operator that cannot
//   accept, a source with nothing to read — each just ends the run of the
//   task; channels, operators (ctx.wake()) and the timer wake it again.
#include "engine/runtime/scheduler.h"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define DF_TSAN_RELEASE(addr) __tsan_release(addr)
#define DF_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#else
#define DF_TSAN_RELEASE(addr) ((void)(addr))
#define DF_TSAN_ACQUIRE(addr) ((void)(addr))
#endif

#include "engine/core/log.h"
#include "engine/core/time.h"
#include "engine/runtime/channel.h"
#include "engine/runtime/dead_letter.h"
#include "engine/runtime/fault_injection.h"
#include "engine/runtime/hashing.h"
#include "engine/runtime/io_pool.h"
#include "engine/runtime/timer.h"

namespace df::runtime {

const std::vector<double>& latency_seconds_buckets() {
  static const std::vector<double> kBuckets = [] {
    std::vector<double> b = metrics::default_seconds_buckets();
    for (double fine : {0.0001, 0.00025, 0.002, 0.003, 0.004, 0.006, 0.007, 0.008, 0.009, 0.0125,
                        0.015, 0.0175, 0.02, 0.0375, 0.075}) {
      b.push_back(fine);
    }
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
    return b;
  }();
  return kBuckets;
}

const NodeMetrics* RunMetrics::find(const std::string& id) const {
  for (const auto& n : nodes) {
    if (n->id == id) return n.get();
  }
  return nullptr;
}

// Named (not anonymous) so the Task class, which Scheduler::Impl holds, may
// use these types without -Wsubobject-linkage; nothing outside this file
// refers to it.
namespace scheduler_internal {

using Clock = std::chrono::steady_clock;

// Fairness budget of one run of a task: whichever comes first.
constexpr int kMaxUnitsPerRun = 64;
constexpr auto kQuantum = std::chrono::microseconds(1000);
// report_data_error(): at most this many log lines per node per second.
constexpr int kDataErrorLogsPerSecond = 5;

// TBB caps its worker threads process-wide at hardware_concurrency - 1 unless
// a global_control raises the cap; without it an arena of 4 workers on a
// 2-core machine silently runs on 1 thread. The cap only grows, and the
// control object lives for the rest of the process (global_control takes the
// minimum of all live instances, so it must not be replaced by a smaller one).
void ensure_tbb_worker_cap(int workers) {
  static std::mutex mu;
  static tbb::global_control* control = nullptr;
  static size_t current = 0;
  const size_t want = static_cast<size_t>(workers) + 1;
  const size_t hw = std::max(1u, std::thread::hardware_concurrency());
  std::lock_guard<std::mutex> lock(mu);
  if (want <= std::max(current, hw)) return;
  delete control;
  control = new tbb::global_control(tbb::global_control::max_allowed_parallelism, want);
  current = want;
}

// <root>/<node id>/<subtask>, created (with its parents) if missing. Runs at
// build time on run()'s caller, not on a worker.
Result<std::string> make_state_dir(const std::string& root, const std::string& node_id, int subtask,
                                   const std::string& label) {
  if (node_id.empty() || node_id == "." || node_id == ".." ||
      node_id.find_first_of("/\\") != std::string::npos) {
    return Status::internal(label + ": the node id cannot name a state directory");
  }
  const std::filesystem::path dir = std::filesystem::path(root) / node_id / std::to_string(subtask);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::io_error(label + ": cannot create state directory " + dir.string() + ": " +
                            ec.message());
  }
  return dir.string();
}

// Allows a few events per second; the rest are counted as suppressed.
class RateLimiter {
 public:
  // Returns true when this event may be logged; `suppressed` gets how many
  // events were dropped since the last allowed one.
  bool allow(uint64_t& suppressed) {
    const int64_t sec =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
    int64_t w = window_.load(std::memory_order_relaxed);
    if (w != sec && window_.compare_exchange_strong(w, sec, std::memory_order_relaxed)) {
      count_.store(0, std::memory_order_relaxed);
    }
    if (count_.fetch_add(1, std::memory_order_relaxed) < kDataErrorLogsPerSecond) {
      suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
      return true;
    }
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

 private:
  std::atomic<int64_t> window_{-1};
  std::atomic<int> count_{0};
  std::atomic<uint64_t> suppressed_{0};
};

// Per plan node, shared by its subtasks.
struct NodeInfo {
  const PlanNode* node = nullptr;
  NodeMetrics* metrics = nullptr;
  std::string label;  // "node 'eur' (map)"
  int parallelism = 1;
  RateLimiter log_limiter;

  // The combined (non-idle) watermark each subtask has seen, and whether the
  // subtask is idle. NodeMetrics::watermark_ms is the minimum over the
  // subtasks that are not idle (over all of them when every one is idle).
  // Updated once per watermark or idle change, never per row, so a mutex
  // keeps the published minimum exact.
  void init_watermarks() {
    subtask_wm.assign(static_cast<size_t>(parallelism), INT64_MIN);
    subtask_idle.assign(static_cast<size_t>(parallelism), 0);
  }
  void set_watermark(int subtask, int64_t wm) {
    std::lock_guard<std::mutex> lock(wm_mu);
    int64_t& mine = subtask_wm[static_cast<size_t>(subtask)];
    mine = std::max(mine, wm);
    publish_watermark();
  }
  void set_idle(int subtask, bool idle) {
    std::lock_guard<std::mutex> lock(wm_mu);
    subtask_idle[static_cast<size_t>(subtask)] = idle ? 1 : 0;
    publish_watermark();
  }

 private:
  void publish_watermark() {
    int64_t active = INT64_MAX;
    int64_t all = INT64_MAX;
    for (size_t i = 0; i < subtask_wm.size(); ++i) {
      all = std::min(all, subtask_wm[i]);
      if (!subtask_idle[i]) active = std::min(active, subtask_wm[i]);
    }
    metrics->watermark_ms.store(active != INT64_MAX ? active : all, std::memory_order_relaxed);
  }

  std::mutex wm_mu;
  std::vector<int64_t> subtask_wm;    // guarded by wm_mu
  std::vector<uint8_t> subtask_idle;  // guarded by wm_mu
};

class Task;
class NodeContext;

// The run: what Scheduler::Impl is (Impl is private to Scheduler, so the
// tasks name this class instead).
class Engine {
 public:
  Engine(const PhysicalPlan& plan, RunOptions options);
  ~Engine();

  Status run();
  void request_stop();
  void cancel();
  ChannelStats channel_stats() const;

  // Checkpoints (Scheduler's public methods of the same names).
  bool trigger_checkpoint(uint64_t id, bool stop);
  void notify_checkpoint_complete(uint64_t id);
  void notify_checkpoint_aborted(uint64_t id);
  void notify_final_checkpoint_complete();
  size_t task_count() const;

  // --- Used by tasks. ---
  void enqueue(Task* task);
  void task_done() { done_tasks_.fetch_add(1, std::memory_order_acq_rel); }
  // Records the first error (and the node that raised it, when known) and
  // aborts the run.
  void fail(Status status, FailureSite site = {});
  bool aborted() const { return aborted_.load(std::memory_order_acquire); }
  bool stop_requested() const { return stop_requested_.load(std::memory_order_acquire); }
  IoExecutor& io() { return *io_; }
  Timer& timer() { return *timer_; }
  const RunOptions& options() const { return options_; }
  CheckpointListener* listener() const { return options_.checkpoint_listener; }
  // The newest checkpoint the coordinator completed (0: none yet).
  uint64_t latest_complete() const { return latest_complete_.load(std::memory_order_acquire); }
  // The id of a stop-with-checkpoint (0: none asked).
  uint64_t stop_checkpoint() const { return stop_checkpoint_.load(std::memory_order_acquire); }
  // What became of a waited-for checkpoint (a stop's, or the final one).
  enum class Outcome : uint8_t { kPending, kComplete, kAborted };
  Outcome stop_outcome() const { return stop_outcome_.load(std::memory_order_acquire); }
  Outcome final_outcome() const { return final_outcome_.load(std::memory_order_acquire); }
  // Records an error that does not abort the tasks: run() returns it at the end.
  void fail_later(Status status);
  FailureSite failure_site() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_site_;
  }
  // One more dead letter: the rate over the last minute when it passed
  // RunOptions::dead_letter_max_rate (nullopt otherwise, or without a limit).
  std::optional<double> dead_letter_rate_exceeded() {
    if (!dead_letter_rate_) return std::nullopt;
    uint64_t rows = 0;
    for (const NodeMetrics* m : source_metrics_)
      rows += m->rows_out.load(std::memory_order_relaxed);
    const int64_t now =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
            .count();
    return dead_letter_rate_->add(now, rows);
  }

  PhysicalPlan plan_;
  RunOptions options_;
  RunMetrics metrics_;
  std::vector<std::unique_ptr<NodeInfo>> nodes_;  // plan order: vertex by vertex, chain order
  std::vector<size_t> vertex_first_node_;         // index into nodes_ of chain.front()

 private:
  Status build();
  void release_inflight();
  void close_leftovers();

  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<std::unique_ptr<Task>> tasks_;
  std::vector<Task*> source_tasks_;
  tbb::task_arena arena_;
  std::unique_ptr<IoPool> io_;
  std::unique_ptr<Timer> timer_;

  // Published (release) once tasks_, channels_ and the arena are ready.
  std::atomic<bool> started_{false};
  std::atomic<bool> ran_{false};
  std::atomic<bool> aborted_{false};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> stop_requested_{false};
  // Once set, enqueue() drops wakes: the run is over or being torn down.
  std::atomic<bool> stopping_{false};
  // Enqueued-but-unfinished task runs. run() returns only at zero, so no
  // arena job can touch a task after teardown.
  std::atomic<size_t> inflight_{0};
  std::atomic<size_t> done_tasks_{0};

  std::atomic<uint64_t> latest_complete_{0};
  std::atomic<uint64_t> stop_checkpoint_{0};
  std::atomic<Outcome> stop_outcome_{Outcome::kPending};
  std::atomic<Outcome> final_outcome_{Outcome::kPending};
  void wake_all();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Status first_error_;                                // guarded by mu_
  FailureSite failure_site_;                          // guarded by mu_
  std::unique_ptr<DeadLetterRate> dead_letter_rate_;  // null: no limit
  std::vector<const NodeMetrics*> source_metrics_;    // what DeadLetterRate compares with

  // Tasks waiting for a worker, oldest first; one arena job per entry.
  std::mutex run_queue_mu_;
  std::deque<Task*> run_queue_;
  // The log context of run()'s caller (pipeline, run id), put back on the
  // worker for every task run; set before the first task is enqueued.
  LogFields log_context_;
};

// One subtask of one vertex: its chain of operators, input and output
// channels, and the prepare/work state machine. Runs on one worker at a time.
class Task final : public Wakeable {
 public:
  Task(Engine& impl, size_t vertex, int subtask);
  ~Task() override;

  // Sticky wake; thread-safe (see the file comment).
  void wake() override;
  // A wake from the task's own operators (ctx.wake()): also ends a source's wait.
  void wake_from_operator() {
    source_wake_pending_.store(true, std::memory_order_release);
    wake();
  }
  // Called by the arena job; the state is kScheduled.
  void run();

  bool is_source() const { return nodes_.front().src != nullptr; }
  void close_leftovers();
  // Sources: inject Barrier(id) at the next step (thread-safe).
  void request_barrier(uint64_t id) {
    pending_barrier_.store(id, std::memory_order_release);
    wake_from_operator();
  }

  // --- Build-time wiring (before the run starts). ---
  Status make_operators();
  void add_input(Channel* ch, size_t input) { inputs_.push_back(InChannel{ch, input}); }
  struct OutEdge {
    size_t port = 0;  // PhysicalEdge::from_port
    Partitioning kind = Partitioning::kRebalance;
    std::vector<size_t> hash_fields;
    std::vector<Channel*> channels;  // indexed by downstream subtask (one for forward)
    size_t next = 0;                 // rebalance: round-robin cursor
  };
  // A record of node `info` went bad (NodeContext::report_bad_record): false
  // when the task has no dead-letter edge (the record is only counted).
  bool add_dead_letter(const NodeInfo& info, std::string_view message, std::string_view record,
                       std::string_view position);
  bool has_dead_letter_edge() const { return dead_letters_ != nullptr; }
  OutEdge& add_output(const PhysicalEdge& e) {
    if (e.from_port == kDeadLetterPort && !dead_letters_) {
      dead_letters_ = std::make_unique<BatchBuilder>(dead_letter_schema());
    }
    OutEdge o;
    o.port = e.from_port;
    o.kind = e.partitioning;
    o.hash_fields = e.hash_fields;
    o.next = static_cast<size_t>(subtask_);  // spread the first batches of subtasks
    outs_.push_back(std::move(o));
    return outs_.back();
  }

 private:
  enum class State : uint8_t { kIdle, kScheduled, kRunning, kRunningDirty, kDone };
  // kDraining: finish() done, waiting for drained(). With checkpoints the task
  // then sends end-of-stream, takes its final snapshot (not after a stop) and
  // waits in kAwaitCommit for the checkpoint that covers it; kClosing waits
  // for drained() again (sinks commit asynchronously) and closes.
  enum class Phase : uint8_t {
    kOpen,
    kRunning,
    kFinishing,
    kDraining,
    kAwaitCommit,
    kClosing,
    kDone
  };
  enum class Prep : uint8_t { kNeedData, kPortFull, kWaiting, kReady, kFinished };
  enum class Next : uint8_t { kIdle, kYield, kDone };

  // Feeds the node k+1 of the chain, or the output channels after the last.
  class ChainOutput final : public Output {
   public:
    ChainOutput(Task* task, size_t k) : task_(task), k_(k) {}
    void emit(BatchPtr batch) override { task_->emit(k_, std::move(batch)); }
    void emit_watermark(Watermark wm) override { task_->emit_watermark(k_, wm); }
    void emit_to(size_t port, BatchPtr batch) override {
      if (port == 0) {
        task_->emit(k_, std::move(batch));
      } else {
        task_->emit_side(k_, port, std::move(batch));
      }
    }

   private:
    Task* task_;
    size_t k_;
  };

  struct NodeSlot {
    NodeInfo* info = nullptr;
    std::unique_ptr<SourceOperator> src;  // node 0 of a source vertex
    std::unique_ptr<Operator> op;         // every other node
    std::unique_ptr<NodeContext> ctx;
    std::unique_ptr<ChainOutput> out;
    // In-place retries of process()/produce() (null: RunOptions::retry unset).
    std::unique_ptr<CallRetrier> retrier;
    CheckpointHooks& hooks() const {
      return src ? static_cast<CheckpointHooks&>(*src) : static_cast<CheckpointHooks&>(*op);
    }
    bool opened = false;
    bool closed = false;
  };

  struct InChannel {
    Channel* ch;
    size_t input;  // position in chain.front()'s inputs
    int64_t wm = INT64_MIN;
    int64_t wm_source_time_ns = 0;  // Watermark::source_time_ns of wm
    bool idle = false;              // the producer said it is idle and has not sent rows since
    bool ended = false;
    bool blocked = false;  // delivered the barrier being aligned
  };

  Next step();
  Prep prepare();
  void work();
  bool outputs_full();
  bool can_accept_from(size_t k) const;
  void begin_finishing();
  void handle(size_t in, StreamElement&& e);
  void on_barrier(size_t in, uint64_t id);
  void maybe_complete_alignment();
  // Snapshots every node of the chain for checkpoint `id` and reports to the
  // listener once deferred work is done.
  void take_snapshot(uint64_t id);
  // Sources: a barrier was requested and not injected yet.
  bool barrier_pending() const {
    return pending_barrier_.load(std::memory_order_acquire) > injected_barrier_;
  }
  void inject_barrier();
  // A completed checkpoint the operators have not been told about.
  bool completion_pending() const;
  void deliver_completions();
  // checkpoint_complete(id) on every node of the chain.
  void complete_chain(uint64_t id);
  bool all_drained() const;
  void close_all();
  // After the operators finished (or were stopped) and drained.
  void end_output();
  void update_combined_watermark();
  void deliver(size_t k, size_t input, const BatchPtr& batch);
  void emit(size_t k, BatchPtr batch);
  void emit_side(size_t k, size_t port, BatchPtr batch);
  void emit_watermark(size_t k, Watermark wm);
  void fan_out(size_t port, const BatchPtr& batch);
  // Tells every output edge that this task went idle / active again (an idle
  // or active Watermark carrying the last watermark it sent).
  void set_output_idle(bool idle);
  // Sources with an EventTimeSpec.
  BatchPtr assign_event_time(BatchPtr batch);
  void emit_generated_watermark();
  void note_source_rows();
  // Sources: the outputs (or the chain) cannot take rows now.
  void note_source_blocked();
  // Sends the buffered dead letters on the dead-letter edges (before any
  // watermark, barrier or end-of-stream leaves the task).
  void flush_dead_letters();
  bool idle_due(Clock::time_point now) const {
    return idle_timeout_ && !output_idle_ && now >= last_activity_ + *idle_timeout_;
  }
  void arm_idle_timer(Clock::time_point now);
  void broadcast(const StreamElement& e);
  // Runs one operator call, turning a bad Status or an exception into the
  // task's error, named after node k.
  template <typename F>
  void invoke(size_t k, F&& f);
  // Runs f, turning an exception into the error Status invoke() records.
  template <typename F>
  Status guarded(F&& f);
  void record_error(size_t k, Status s);

  // In-place retries (runtime/retry.h). A call that failed transiently is
  // held with its input, and so is every later call into its node or the
  // nodes after it in the chain (order is kept); the task takes no new work
  // until the timer wakes it at retry_at_ and the held calls are made again
  // in order.
  struct HeldCall {
    enum class Kind : uint8_t { kProduce, kProcess, kWatermark };
    Kind kind = Kind::kProcess;
    size_t k = 0;  // chain position
    size_t input = 0;
    BatchPtr batch;
    Watermark wm;
  };
  bool holding(size_t k) const { return !held_.empty() && k >= hold_from_; }
  // Runs the process()/produce() call f of node k. A transient failure the
  // node's retrier allows holds make_call() for a retry and returns false;
  // true when the call was made (successfully, or its error was recorded).
  // The HeldCall is built only then: a batch copy per call is an atomic
  // increment and decrement on the hot path.
  template <typename MakeCall, typename F>
  bool call_retrying(size_t k, MakeCall&& make_call, F&& f);
  void retry_held();
  void report_retry(RetryEvent::Kind kind, size_t k, int attempt, Millis delay,
                    std::string message);
  // A source's produce() and what it says about the next call.
  void produce();
  // on_watermark of node k (held while node k is).
  void deliver_watermark(size_t k, Watermark wm);

  Engine& impl_;
  const size_t vertex_;
  const int subtask_;
  std::atomic<State> state_{State::kIdle};

  std::vector<NodeSlot> nodes_;
  std::vector<InChannel> inputs_;
  std::vector<OutEdge> outs_;
  size_t ended_inputs_ = 0;
  size_t next_input_ = 0;  // round-robin over inputs
  int64_t combined_wm_ = INT64_MIN;
  // The last watermark that left the task, and whether its outputs were told
  // that it is idle.
  int64_t out_wm_ = INT64_MIN;
  bool output_idle_ = false;
  // Side outputs chain.back() declares (valid ports are 1..side_ports_).
  size_t side_ports_ = 0;
  // Barrier alignment: the checkpoint id being aligned and how many inputs
  // delivered it. A blocked input is not read until the barrier completes.
  std::optional<uint64_t> aligning_;
  size_t blocked_inputs_ = 0;
  // Checkpoints: the last barrier a source injected, the last completion the
  // operators saw, and whether the pipeline is stopping with a checkpoint
  // (a source injected the stop barrier, or an input ended `stopped`).
  std::atomic<uint64_t> pending_barrier_{0};
  uint64_t injected_barrier_ = 0;
  uint64_t delivered_complete_ = 0;
  bool final_delivered_ = false;
  bool stopped_ = false;

  Phase phase_ = Phase::kOpen;
  size_t finish_index_ = 0;
  Status error_;
  size_t error_node_ = 0;  // the chain position whose call set error_
  // Dead letters reported by the chain, not yet sent (null: no dead-letter
  // edge, so reports are only counted and logged).
  std::unique_ptr<BatchBuilder> dead_letters_;
  bool in_backpressure_ = false;

  // Sources: kWait bookkeeping. The pending flag is cleared before produce()
  // so that a ctx.wake() during produce() ends the wait it returns.
  bool source_waiting_ = false;
  Clock::time_point source_wake_at_{};
  std::atomic<bool> source_wake_pending_{false};

  // Sources: event time (DESIGN §3). source_wm_ is the last watermark node 0
  // sent (its own or generated: max_event_time_ - max_out_of_orderness - 1);
  // they only advance. Idleness is measured from last_activity_: the last
  // row, active watermark or backpressure (a blocked source is not idle).
  const EventTimeSpec* event_time_ = nullptr;
  int64_t max_event_time_ = INT64_MIN;
  int64_t source_wm_ = INT64_MIN;
  std::optional<Clock::duration> idle_timeout_;
  Clock::time_point last_activity_{};
  Clock::time_point idle_timer_at_{};  // the pending idle timer (past: none)
  bool source_blocked_ = false;
  // Backpressure the source was told about (on_backpressure): its outputs
  // have been full since source_blocked_since_ for kSourceBackpressureDelay.
  Clock::time_point source_blocked_since_{};
  bool source_paused_ = false;
  // The source emits its own watermarks (SourceOperator::emits_watermarks).
  bool source_watermarks_ = false;
  std::string event_time_error_;  // "row without event time in field 'x'"

  // Latency (Watermark::source_time_ns): the source time the runtime gives
  // the new batches (and watermarks) of the operator call in progress, 0
  // outside one (stamped "now"); set around process(), on_watermark() and
  // finish() by EmitTime. latest_source_time_ns_: the latest source time
  // that reached this task (an input's batch or watermark, or a batch its
  // source emitted), which finish() runs on.
  int64_t emit_source_time_ns_ = 0;
  int64_t latest_source_time_ns_ = 0;
  // Sources: the source time of the last batch the current produce() call
  // emitted (0: none yet), which its watermarks carry.
  int64_t produced_source_time_ns_ = 0;
  class EmitTime {
   public:
    EmitTime(Task& task, int64_t source_time_ns) : task_(task), saved_(task.emit_source_time_ns_) {
      task.emit_source_time_ns_ = source_time_ns;
    }
    ~EmitTime() { task_.emit_source_time_ns_ = saved_; }
    EmitTime(const EmitTime&) = delete;
    EmitTime& operator=(const EmitTime&) = delete;

   private:
    Task& task_;
    int64_t saved_;
  };
  void note_source_time(int64_t source_time_ns) {
    latest_source_time_ns_ = std::max(latest_source_time_ns_, source_time_ns);
  }

  std::deque<HeldCall> held_;
  size_t hold_from_ = 0;  // with held_: the first chain position being held
  Clock::time_point retry_at_{};

  // Hash partitioning scratch, reused across batches.
  std::vector<uint64_t> hashes_;
  std::vector<Selection> parts_;
};

class NodeContext final : public OperatorContext {
 public:
  NodeContext(Engine& impl, Task& task, NodeInfo& info, int subtask, uint64_t strand)
      : impl_(impl), task_(task), info_(info), subtask_(subtask), strand_(strand) {}

  const std::string& node_id() const override { return info_.node->id; }
  int subtask() const override { return subtask_; }
  int parallelism() const override { return info_.parallelism; }
  size_t batch_size() const override { return impl_.options().batch_size; }
  void wake() override { task_.wake_from_operator(); }
  void report_data_error(std::string_view message) override {
    count_and_log_bad_record(message, "skipped");
  }
  void report_bad_record(std::string_view message, std::string_view record,
                         std::string_view position) override {
    const bool dead_lettered = task_.add_dead_letter(info_, message, record, position);
    if (dead_lettered) info_.metrics->dead_letters.fetch_add(1, std::memory_order_relaxed);
    count_and_log_bad_record(message, dead_lettered ? "sent to the dead-letter sink" : "skipped");
  }
  bool has_dead_letter_sink() const override { return task_.has_dead_letter_edge(); }
  uint64_t io_strand() const override { return strand_; }
  IoExecutor& io() override { return impl_.io(); }
  bool stop_requested() const override { return impl_.stop_requested(); }
  std::string state_dir() const override { return state_dir_; }
  size_t state_memory_budget() const override { return impl_.options().state_memory_budget; }
  bool checkpointing() const override { return impl_.listener() != nullptr; }
  const std::string* restored_meta() const override {
    return restored_ && !restored_->meta.empty() ? &restored_->meta : nullptr;
  }
  std::vector<std::pair<int, const std::string*>> restored_node_metas() const override {
    std::vector<std::pair<int, const std::string*>> out;
    const RestoredState& all = impl_.options().restored;
    for (auto it = all.lower_bound({node_id(), INT_MIN});
         it != all.end() && it->first.first == node_id(); ++it) {
      if (!it->second.meta.empty()) out.emplace_back(it->first.second, &it->second.meta);
    }
    return out;
  }
  const EventTimeSpec* event_time() const override {
    return info_.node->event_time ? &*info_.node->event_time : nullptr;
  }
  void report_consumer_lag(std::string_view topic, int32_t partition,
                           std::optional<int64_t> lag) override {
    info_.metrics->kafka.set_lag(topic, partition, lag);
  }
  void report_brokers(int up, std::string_view problem) override {
    info_.metrics->kafka.set_brokers(subtask_, up, problem);
  }

  void set_state_dir(std::string dir) { state_dir_ = std::move(dir); }
  // Counts a bad record against the node and logs it, rate-limited.
  void count_and_log_bad_record(std::string_view message, std::string_view what_happened) {
    info_.metrics->data_errors.fetch_add(1, std::memory_order_relaxed);
    uint64_t suppressed = 0;
    if (!info_.log_limiter.allow(suppressed)) return;
    std::string line = info_.label;
    line += ": bad record ";
    line += what_happened;
    line += ": ";
    line += message;
    if (suppressed > 0) {
      line += " (";
      line += std::to_string(suppressed);
      line += " similar messages suppressed)";
    }
    log_warn("runtime", line);
  }
  // Looked up once before open(); the map in RunOptions outlives the run.
  void set_restored(const RestoredNode* restored) { restored_ = restored; }
  const RestoredNode* restored() const { return restored_; }

 private:
  Engine& impl_;
  Task& task_;
  NodeInfo& info_;
  const int subtask_;
  const uint64_t strand_;
  std::string state_dir_;  // set before open(), constant after
  const RestoredNode* restored_ = nullptr;
};

// What a task's snapshot collects until every deferred completion is in;
// the last release reports to the listener. Shared by the task and the
// completions that SnapshotContext::defer() handed out.
class SnapshotAck {
 public:
  SnapshotAck(CheckpointListener* listener, TaskSnapshot snapshot)
      : listener_(listener), snapshot_(std::move(snapshot)) {}
  TaskSnapshot& snapshot() { return snapshot_; }
  void add() { pending_.fetch_add(1, std::memory_order_relaxed); }
  void fail(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.ok()) error_ = std::move(s);
  }
  void release() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    Status error;
    {
      std::lock_guard<std::mutex> lock(mu_);
      error = error_;
    }
    if (error.ok()) {
      listener_->on_task_snapshot(std::move(snapshot_));
    } else {
      listener_->on_task_snapshot_failed(snapshot_.checkpoint_id, snapshot_.vertex,
                                         snapshot_.subtask, std::move(error));
    }
  }

 private:
  CheckpointListener* listener_;
  TaskSnapshot snapshot_;
  std::atomic<int> pending_{1};  // the task's own reference until it is done
  std::mutex mu_;
  Status error_;  // guarded by mu_
};

class NodeSnapshotContext final : public SnapshotContext {
 public:
  NodeSnapshotContext(uint64_t id, std::string files_dir, std::string label,
                      std::shared_ptr<SnapshotAck> ack)
      : id_(id), files_dir_(std::move(files_dir)), label_(std::move(label)), ack_(std::move(ack)) {}
  uint64_t checkpoint_id() const override { return id_; }
  // Creates the parent on first use, so that only the nodes that write
  // files pay for directories on the task thread.
  const std::string& files_dir() const override {
    if (!parent_made_) {
      parent_made_ = true;
      const std::filesystem::path parent = std::filesystem::path(files_dir_).parent_path();
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        ack_->fail(
            Status::io_error(label_ + ": cannot create " + parent.string() + ": " + ec.message()));
      }
    }
    return files_dir_;
  }
  // files_dir() without creating anything.
  const std::string& files_path() const { return files_dir_; }
  void set_meta(std::string json) override { meta_ = std::move(json); }
  std::function<void(Status)> defer() override {
    ack_->add();
    auto ack = ack_;
    auto called = std::make_shared<std::atomic<bool>>(false);
    return [ack, called](Status s) {
      if (called->exchange(true)) return;  // exactly once, whatever the caller does
      if (!s.ok()) ack->fail(std::move(s));
      ack->release();
    };
  }
  std::string take_meta() { return std::move(meta_); }

 private:
  uint64_t id_;
  std::string files_dir_;
  std::string label_;
  std::shared_ptr<SnapshotAck> ack_;
  std::string meta_;
  mutable bool parent_made_ = false;
};

// ---------------------------------------------------------------------------
// Task

Task::Task(Engine& impl, size_t vertex, int subtask)
    : impl_(impl), vertex_(vertex), subtask_(subtask) {}

Task::~Task() = default;

Status Task::make_operators() {
  const PhysicalVertex& v = impl_.plan_.vertices[vertex_];
  const size_t first = impl_.vertex_first_node_[vertex_];
  nodes_.resize(v.chain.size());
  for (size_t k = 0; k < v.chain.size(); ++k) {
    const PlanNode& pn = v.chain[k];
    NodeSlot& slot = nodes_[k];
    slot.info = impl_.nodes_[first + k].get();
    if (!pn.prepared) return Status::internal(slot.info->label + ": the plan has no prepared node");
    try {
      if (k == 0 && pn.role == NodeRole::kSource) {
        slot.src = pn.prepared->make_source(subtask_, v.parallelism);
        if (!slot.src) return Status::internal(slot.info->label + ": the factory made no source");
        source_watermarks_ = slot.src->emits_watermarks();
      } else {
        if (pn.role == NodeRole::kSource) {
          return Status::internal(slot.info->label + ": a source must start its chain");
        }
        slot.op = pn.prepared->make_operator(subtask_, v.parallelism);
        if (!slot.op) return Status::internal(slot.info->label + ": the factory made no operator");
      }
    } catch (const std::exception& e) {
      return Status::internal(slot.info->label + ": exception while creating: " + e.what());
    }
    const uint64_t strand =
        (static_cast<uint64_t>(first + k) << 20) | static_cast<uint64_t>(subtask_);
    auto ctx = std::make_unique<NodeContext>(impl_, *this, *slot.info, subtask_, strand);
    if (slot.op && !impl_.options().state_root.empty()) {
      DF_ASSIGN_OR_RETURN(std::string dir, make_state_dir(impl_.options().state_root, pn.id,
                                                          subtask_, slot.info->label));
      ctx->set_state_dir(std::move(dir));
    }
    if (auto it = impl_.options().restored.find({pn.id, subtask_});
        it != impl_.options().restored.end()) {
      ctx->set_restored(&it->second);
    }
    slot.ctx = std::move(ctx);
    slot.out = std::make_unique<ChainOutput>(this, k);
    if (impl_.options().retry) {
      std::optional<CircuitBreakerPolicy> breaker;
      if (pn.role == NodeRole::kSink) breaker = impl_.options().circuit_breaker;
      slot.retrier = std::make_unique<CallRetrier>(*impl_.options().retry, breaker,
                                                   strand ^ 0x9e3779b97f4a7c15ULL);
    }
  }
  try {
    side_ports_ = v.chain.back().prepared->side_outputs().size();
  } catch (const std::exception& e) {
    return Status::internal(nodes_.back().info->label +
                            ": exception in side_outputs(): " + e.what());
  }
  const PlanNode& head = v.chain.front();
  if (head.role == NodeRole::kSource && head.event_time) {
    event_time_ = &*head.event_time;
    if (event_time_->max_out_of_orderness.count() < 0) {
      return Status::internal(nodes_[0].info->label + ": negative max out-of-orderness");
    }
    if (event_time_->idle_timeout) {
      if (event_time_->idle_timeout->count() <= 0) {
        return Status::internal(nodes_[0].info->label + ": idle timeout must be positive");
      }
      idle_timeout_ = std::chrono::duration_cast<Clock::duration>(*event_time_->idle_timeout);
    }
    const SchemaPtr schema = head.prepared->output_schema();
    const size_t field = event_time_->field;
    if (schema && field >= schema->size()) {
      return Status::internal(nodes_[0].info->label + ": event-time field #" +
                              std::to_string(field) + " is outside its " +
                              std::to_string(schema->size()) + " fields");
    }
    if (schema) {
      const Field& f = schema->field(field);
      if (!stored_as_int64(f.type)) {
        return Status::internal(nodes_[0].info->label + ": event-time field '" + f.name +
                                "' is neither a timestamp nor an int64");
      }
      event_time_error_ = "row without event time in field '" + f.name + "'";
    } else {
      event_time_error_ = "row without event time in field #" + std::to_string(field);
    }
  }
  return Status::OK();
}

void Task::wake() {
  State s = state_.load(std::memory_order_acquire);
  for (;;) {
    switch (s) {
      case State::kIdle:
        if (state_.compare_exchange_weak(s, State::kScheduled, std::memory_order_acq_rel)) {
          impl_.enqueue(this);
          return;
        }
        break;  // s reloaded by the failed CAS
      case State::kRunning:
        if (state_.compare_exchange_weak(s, State::kRunningDirty, std::memory_order_acq_rel)) {
          return;
        }
        break;
      case State::kScheduled:     // will prepare anyway
      case State::kRunningDirty:  // already marked
      case State::kDone:
        return;
    }
  }
}

void Task::run() {
  // Acquire: synchronizes with the wake (or yield) that scheduled this run and
  // through it with the previous run of the task, wherever that ran. TBB's
  // queue orders them too, but this keeps the hand-off in our own atomics.
  state_.exchange(State::kRunning, std::memory_order_acq_rel);
  for (;;) {
    Next next = Next::kDone;
    try {
      next = step();
    } catch (const std::exception& e) {
      // Operator calls are guarded by invoke(); this is the engine itself
      // (e.g. bad_alloc while partitioning).
      impl_.fail(Status::internal(nodes_.back().info->label + ": " + e.what()));
    } catch (...) {
      impl_.fail(Status::internal(nodes_.back().info->label + ": unknown exception"));
    }
    switch (next) {
      case Next::kYield:
        state_.store(State::kScheduled, std::memory_order_release);
        impl_.enqueue(this);
        return;
      case Next::kDone:
        state_.store(State::kDone, std::memory_order_release);
        impl_.task_done();
        return;
      case Next::kIdle: {
        State expected = State::kRunning;
        if (state_.compare_exchange_strong(expected, State::kIdle, std::memory_order_acq_rel)) {
          return;  // from here on another thread may run this task
        }
        // A wake arrived while we ran: look again before parking.
        state_.store(State::kRunning, std::memory_order_release);
        break;
      }
    }
  }
}

Task::Next Task::step() {
  const Clock::time_point deadline = Clock::now() + kQuantum;
  for (int unit = 0;; ++unit) {
    if (impl_.aborted()) return Next::kDone;
    switch (prepare()) {
      case Prep::kFinished:
        return Next::kDone;
      case Prep::kNeedData:
      case Prep::kPortFull:
      case Prep::kWaiting:
        return Next::kIdle;
      case Prep::kReady:
        break;
    }
    if (unit >= kMaxUnitsPerRun || (unit > 0 && Clock::now() >= deadline)) return Next::kYield;
    work();
    flush_dead_letters();
    if (!error_.ok()) {
      impl_.fail(error_, FailureSite{nodes_[error_node_].info->node->id, subtask_});
      return Next::kDone;
    }
  }
}

bool Task::outputs_full() {
  for (const OutEdge& o : outs_) {
    for (const Channel* ch : o.channels) {
      if (ch->full()) {
        if (!in_backpressure_) {
          in_backpressure_ = true;
          nodes_.back().info->metrics->backpressure_events.fetch_add(1, std::memory_order_relaxed);
        }
        return true;
      }
    }
  }
  in_backpressure_ = false;
  return false;
}

bool Task::can_accept_from(size_t k) const {
  for (size_t i = k; i < nodes_.size(); ++i) {
    if (nodes_[i].op && !nodes_[i].op->can_accept()) return false;
  }
  return true;
}

Task::Prep Task::prepare() {
  if (phase_ != Phase::kOpen && phase_ != Phase::kDone && completion_pending()) return Prep::kReady;
  if (!held_.empty()) {
    // Waiting out a retry backoff or an open breaker: the timer wakes us.
    // Barriers wait too, so a snapshot never misses a held input.
    return Clock::now() >= retry_at_ ? Prep::kReady : Prep::kWaiting;
  }
  switch (phase_) {
    case Phase::kOpen:
      return Prep::kReady;
    case Phase::kRunning:
      if (is_source()) {
        // A barrier is a control element: it goes out even when the outputs
        // are full (it weighs no rows), so checkpoints do not wait for a
        // backpressured source to get room.
        if (barrier_pending()) return Prep::kReady;
        if (outputs_full()) {
          note_source_blocked();
          return Prep::kPortFull;
        }
        if (impl_.stop_requested()) return Prep::kReady;  // work() ends the source
        if (!can_accept_from(1)) {
          note_source_blocked();
          return Prep::kWaiting;
        }
        const bool timed = idle_timeout_ || source_waiting_;
        const Clock::time_point now = timed ? Clock::now() : Clock::time_point{};
        if (source_blocked_) {
          // Backpressure is not idleness: the idle clock restarts when it ends.
          source_blocked_ = false;
          if (idle_timeout_) last_activity_ = now;
          if (source_paused_) {
            source_paused_ = false;
            nodes_[0].src->on_backpressure(false);
          }
        }
        if (idle_due(now)) return Prep::kReady;  // work() sends the idle watermark
        if (source_waiting_) {
          if (source_wake_pending_.exchange(false, std::memory_order_acq_rel) ||
              now >= source_wake_at_) {
            source_waiting_ = false;
            return Prep::kReady;
          }
          arm_idle_timer(now);
          return Prep::kWaiting;
        }
        return Prep::kReady;
      }
      if (outputs_full()) return Prep::kPortFull;
      if (!can_accept_from(0)) return Prep::kWaiting;
      if (ended_inputs_ == inputs_.size()) return Prep::kReady;  // work() starts finishing
      for (const InChannel& in : inputs_) {
        if (!in.blocked && !in.ended && !in.ch->empty()) return Prep::kReady;
      }
      return Prep::kNeedData;
    case Phase::kFinishing:
      if (outputs_full()) return Prep::kPortFull;
      if (!can_accept_from(finish_index_ + 1)) return Prep::kWaiting;
      return Prep::kReady;
    case Phase::kDraining:
    case Phase::kClosing:
      return all_drained() ? Prep::kReady : Prep::kWaiting;
    case Phase::kAwaitCommit: {
      // A finished task's final snapshot is part of the final checkpoint,
      // or of a stop checkpoint taken while it waited.
      const bool resolved = impl_.stop_outcome() != Engine::Outcome::kPending ||
                            (!stopped_ && impl_.final_outcome() != Engine::Outcome::kPending);
      return resolved ? Prep::kReady : Prep::kWaiting;
    }
    case Phase::kDone:
      return Prep::kFinished;
  }
  return Prep::kFinished;
}

bool Task::all_drained() const {
  for (const NodeSlot& n : nodes_) {
    if (n.op && !n.op->drained()) return false;
  }
  return true;
}

void Task::work() {
  if (phase_ != Phase::kOpen && phase_ != Phase::kDone && completion_pending()) {
    deliver_completions();
    return;
  }
  if (!held_.empty()) {
    retry_held();
    return;
  }
  switch (phase_) {
    case Phase::kOpen:
      last_activity_ = Clock::now();  // a source is idle only after a quiet idle_timeout
      for (size_t k = 0; k < nodes_.size() && error_.ok(); ++k) {
        NodeSlot& n = nodes_[k];
        n.opened = true;  // close() is owed even when open() fails half-way
        if (n.src) {
          invoke(k, [&] { return n.src->open(*n.ctx); });
        } else {
          invoke(k, [&] { return n.op->open(*n.ctx); });
        }
      }
      phase_ = Phase::kRunning;
      if (event_time_ && !source_watermarks_ && nodes_[0].ctx->restored() &&
          nodes_[0].ctx->restored()->max_event_time != INT64_MIN) {
        // Resume the watermarks where the checkpoint left them.
        max_event_time_ = nodes_[0].ctx->restored()->max_event_time;
        emit_generated_watermark();
      }
      return;

    case Phase::kRunning:
      if (is_source()) {
        if (barrier_pending()) {
          inject_barrier();
          return;
        }
        if (impl_.stop_requested()) {
          begin_finishing();
          return;
        }
        if (idle_timeout_ && idle_due(Clock::now())) {
          // No rows for idle_timeout: stop holding back the consumers'
          // watermarks until the next row (DESIGN §3).
          set_output_idle(true);
          return;
        }
        produce();
        return;
      }
      if (ended_inputs_ == inputs_.size()) {
        if (stopped_) {
          phase_ = Phase::kDraining;  // stopping: state stays as snapshotted
        } else {
          begin_finishing();
        }
        return;
      }
      for (size_t tries = 0; tries < inputs_.size(); ++tries) {
        const size_t i = next_input_;
        next_input_ = (next_input_ + 1) % inputs_.size();
        InChannel& in = inputs_[i];
        if (in.blocked || in.ended) continue;
        StreamElement e;
        if (in.ch->pop(e)) {
          handle(i, std::move(e));
          return;
        }
      }
      return;

    case Phase::kFinishing:
      if (finish_index_ < nodes_.size()) {
        const size_t k = finish_index_++;
        // What finish() emits was determined by the last input.
        EmitTime at(*this, latest_source_time_ns_);
        invoke(k, [&] { return nodes_[k].op->finish(*nodes_[k].out); });
      } else {
        phase_ = Phase::kDraining;
      }
      return;

    case Phase::kDraining:
      if (!impl_.listener()) {
        close_all();
        // After a failed close the rest are closed by the teardown.
        if (error_.ok()) broadcast(EndOfStream{});
        phase_ = Phase::kDone;
        return;
      }
      // Downstream may finish now; this task still owes its snapshot and
      // must not close before the checkpoint covering it completes.
      end_output();
      return;

    case Phase::kAwaitCommit: {
      const uint64_t stop_id = impl_.stop_checkpoint();
      if (stopped_) {
        if (impl_.stop_outcome() == Engine::Outcome::kComplete && delivered_complete_ < stop_id) {
          delivered_complete_ = stop_id;
          complete_chain(stop_id);
        }
      } else if ((impl_.final_outcome() == Engine::Outcome::kComplete ||
                  impl_.stop_outcome() == Engine::Outcome::kComplete) &&
                 !final_delivered_) {
        final_delivered_ = true;
        complete_chain(kFinalCheckpoint);
      }
      phase_ = Phase::kClosing;
      return;
    }

    case Phase::kClosing:
      close_all();
      phase_ = Phase::kDone;
      return;

    case Phase::kDone:
      return;
  }
}

void Task::produce() {
  source_wake_pending_.store(false, std::memory_order_release);
  std::optional<SourceProgress> progress;
  auto make_call = [] {
    HeldCall call;
    call.kind = HeldCall::Kind::kProduce;
    return call;
  };
  produced_source_time_ns_ = 0;
  call_retrying(0, make_call, [&]() -> Status {
    DF_RETURN_IF_ERROR(faults().check(nodes_[0].info->node->id, "produce"));
    Result<SourceProgress> r = nodes_[0].src->produce(*nodes_[0].out);
    if (!r.ok()) return r.status();
    progress = *r;
    return Status::OK();
  });
  produced_source_time_ns_ = 0;
  if (!progress) return;  // error recorded, or held for a retry
  switch (progress->state) {
    case SourceProgress::State::kMore:
      break;
    case SourceProgress::State::kWait:
      source_waiting_ = true;
      source_wake_at_ = progress->wake_at;
      if (source_wake_at_ != Clock::time_point::max()) {
        impl_.timer().schedule(source_wake_at_, this);
      }
      if (idle_timeout_) arm_idle_timer(Clock::now());
      break;
    case SourceProgress::State::kExhausted:
      begin_finishing();
      break;
  }
}

void Task::retry_held() {
  // Calls that fail again are held anew, in the same order; calls into
  // nodes before the first one held run now.
  std::deque<HeldCall> calls;
  calls.swap(held_);
  for (HeldCall& c : calls) {
    if (!error_.ok()) return;
    switch (c.kind) {
      case HeldCall::Kind::kProduce:
        produce();
        break;
      case HeldCall::Kind::kProcess:
        deliver(c.k, c.input, c.batch);
        break;
      case HeldCall::Kind::kWatermark:
        deliver_watermark(c.k, c.wm);
        break;
    }
  }
}

void Task::report_retry(RetryEvent::Kind kind, size_t k, int attempt, Millis delay,
                        std::string message) {
  const RetryEventSink& sink = impl_.options().on_retry_event;
  if (!sink) return;
  RetryEvent e;
  e.kind = kind;
  e.node = nodes_[k].info->node->id;
  e.subtask = subtask_;
  e.attempt = attempt;
  e.delay = delay;
  e.message = std::move(message);
  sink(e);
}

template <typename MakeCall, typename F>
bool Task::call_retrying(size_t k, MakeCall&& make_call, F&& f) {
  if (!error_.ok()) return true;
  Status s = guarded(f);
  CallRetrier* retrier = nodes_[k].retrier.get();
  if (s.ok()) {
    if (retrier && retrier->failures() > 0 && retrier->on_success()) {
      log_info("runtime", nodes_[k].info->label + ": circuit breaker closed");
      report_retry(RetryEvent::Kind::kBreakerClosed, k, 0, Millis(0), {});
    }
    return true;
  }
  const auto& is_transient = impl_.options().is_transient;
  if (!retrier || !(is_transient ? is_transient(s) : is_unavailable(s))) {
    record_error(k, std::move(s));
    return true;
  }
  const Clock::time_point now = Clock::now();
  const CallRetrier::Verdict v = retrier->on_failure(now);
  switch (v.kind) {
    case CallRetrier::Verdict::Kind::kEscalate: {
      const bool breaker = retrier->state() == CallRetrier::State::kOpen;
      record_error(k, Status(s.code(), s.message() +
                                           (breaker ? " (the circuit breaker stayed open "
                                                      "longer than max_open after "
                                                    : " (gave up after ") +
                                           std::to_string(v.attempt) + " attempts)"));
      return true;
    }
    case CallRetrier::Verdict::Kind::kRetry:
      report_retry(RetryEvent::Kind::kRetry, k, v.attempt, v.delay, s.message());
      break;
    case CallRetrier::Verdict::Kind::kOpened:
      log_warn("runtime", nodes_[k].info->label + ": circuit breaker open for " +
                              format_duration(v.delay) + " after " +
                              std::to_string(retrier->failures()) +
                              " transient failures in a row: " + s.message());
      report_retry(RetryEvent::Kind::kBreakerOpen, k, retrier->failures(), v.delay, s.message());
      break;
  }
  if (held_.empty() || k < hold_from_) hold_from_ = k;
  HeldCall call = make_call();
  call.k = k;
  held_.push_back(std::move(call));
  retry_at_ = v.at;
  impl_.timer().schedule(v.at, this);
  return false;
}

void Task::deliver_watermark(size_t k, Watermark wm) {
  if (!error_.ok()) return;
  if (holding(k)) {
    HeldCall call;
    call.kind = HeldCall::Kind::kWatermark;
    call.k = k;
    call.wm = wm;
    held_.push_back(std::move(call));
    return;
  }
  nodes_[k].info->set_watermark(subtask_, wm.timestamp_ms);
  // A window this watermark closes is timed from the batch that advanced it.
  EmitTime at(*this, wm.source_time_ns);
  invoke(k, [&] { return nodes_[k].op->on_watermark(wm, *nodes_[k].out); });
}

void Task::close_all() {
  for (size_t k = 0; k < nodes_.size() && error_.ok(); ++k) {
    NodeSlot& n = nodes_[k];
    n.closed = true;
    invoke(k, [&] { return n.src ? n.src->close() : n.op->close(); });
  }
}

void Task::end_output() {
  broadcast(EndOfStream{stopped_});
  // A stopped task's state was snapshotted at the stop barrier; nothing
  // happened since. A finished one takes its final snapshot now.
  if (!stopped_) take_snapshot(kFinalCheckpoint);
  phase_ = Phase::kAwaitCommit;
}

bool Task::completion_pending() const {
  const uint64_t latest = impl_.latest_complete();
  return latest > delivered_complete_ && latest != impl_.stop_checkpoint();
}

// Tells the operators about the newest completed checkpoint (sinks commit
// everything up to it). The stop checkpoint is delivered by kAwaitCommit,
// after the task stopped, so that nothing commits while rows still flow.
void Task::deliver_completions() {
  const uint64_t id = impl_.latest_complete();
  delivered_complete_ = id;
  complete_chain(id);
}

void Task::complete_chain(uint64_t id) {
  for (size_t k = 0; k < nodes_.size(); ++k) {
    invoke(k, [&] { return nodes_[k].hooks().checkpoint_complete(id); });
  }
}

void Task::inject_barrier() {
  const uint64_t id = pending_barrier_.load(std::memory_order_acquire);
  injected_barrier_ = id;
  take_snapshot(id);
  broadcast(Barrier{id});
  if (id == impl_.stop_checkpoint()) {
    // Stop right after the barrier: nothing is produced after it, and the
    // chained operators skip finish() so their state stays as snapshotted.
    stopped_ = true;
    phase_ = Phase::kDraining;
  }
}

void Task::take_snapshot(uint64_t id) {
  if (!error_.ok()) return;
  CheckpointListener* listener = impl_.listener();
  if (!listener) return;
  TaskSnapshot snap;
  snap.checkpoint_id = id;
  snap.vertex = vertex_;
  snap.subtask = subtask_;
  auto ack = std::make_shared<SnapshotAck>(listener, std::move(snap));
  const std::filesystem::path root =
      std::filesystem::path(impl_.options().snapshot_root) /
      (id == kFinalCheckpoint ? std::string("final") : std::to_string(id));
  for (size_t k = 0; k < nodes_.size(); ++k) {
    NodeSlot& n = nodes_[k];
    const std::string& node_id = n.info->node->id;
    NodeSnapshotContext ctx(id, (root / node_id / std::to_string(subtask_)).string(), n.info->label,
                            ack);
    Status status;
    invoke(k, [&] {
      // A snapshot that fails fails the checkpoint, not the run; an
      // exception is a bug and fails the run (invoke).
      status = n.hooks().snapshot(ctx);
      return Status::OK();
    });
    if (!status.ok()) ack->fail(status.with_context(n.info->label));
    NodeSnapshot ns;
    ns.node_id = node_id;
    ns.subtask = subtask_;
    ns.files_dir = ctx.files_path();
    ns.meta = ctx.take_meta();
    if (k == 0 && n.src && event_time_) ns.max_event_time = max_event_time_;
    ack->snapshot().nodes.push_back(std::move(ns));
  }
  if (!error_.ok()) return;  // the run is failing; no acknowledgement
  ack->release();
}

void Task::begin_finishing() {
  phase_ = Phase::kFinishing;
  finish_index_ = is_source() ? 1 : 0;
}

void Task::handle(size_t in, StreamElement&& e) {
  if (auto* b = std::get_if<BatchPtr>(&e)) {
    if (*b && (*b)->active_rows() > 0) {
      if (inputs_[in].idle) {
        // Rows make an idle input active again (before they are delivered, so
        // our own outputs turn active before anything derived from them).
        inputs_[in].idle = false;
        update_combined_watermark();
      }
      note_source_time((*b)->source_time_ns());
      deliver(0, inputs_[in].input, *b);
    }
  } else if (auto* wm = std::get_if<Watermark>(&e)) {
    if (wm->timestamp_ms > inputs_[in].wm) {
      inputs_[in].wm = wm->timestamp_ms;
      inputs_[in].wm_source_time_ns = wm->source_time_ns;
      note_source_time(wm->source_time_ns);
    }
    inputs_[in].idle = wm->idle;
    update_combined_watermark();
  } else if (auto* barrier = std::get_if<Barrier>(&e)) {
    on_barrier(in, barrier->checkpoint_id);
  } else {
    if (std::get<EndOfStream>(e).stopped) stopped_ = true;
    inputs_[in].ended = true;
    ++ended_inputs_;
    // An ended input no longer holds back the watermark or an alignment.
    update_combined_watermark();
    maybe_complete_alignment();
  }
}

void Task::on_barrier(size_t in, uint64_t id) {
  if (aligning_ && *aligning_ != id) {
    // A channel is FIFO and sources inject barriers in id order, so a
    // different id mid-alignment means a broken producer.
    record_error(0, Status::internal("barrier " + std::to_string(id) + " arrived while aligning " +
                                     std::to_string(*aligning_)));
    return;
  }
  aligning_ = id;
  inputs_[in].blocked = true;
  ++blocked_inputs_;
  maybe_complete_alignment();
}

void Task::maybe_complete_alignment() {
  if (!aligning_ || blocked_inputs_ + ended_inputs_ < inputs_.size()) return;
  // Every live input delivered the barrier: snapshot the chain, then let the
  // barrier move on.
  take_snapshot(*aligning_);
  broadcast(Barrier{*aligning_});
  for (InChannel& in : inputs_) in.blocked = false;
  blocked_inputs_ = 0;
  aligning_.reset();
}

// The minimum over inputs that are neither ended nor idle. When every live
// input is idle the task is idle itself: the combined watermark stays where it
// is and the outputs get one idle watermark. An input that comes back from
// idle counts again at once; if it is behind, the combined watermark holds
// (never goes back) until it catches up.
void Task::update_combined_watermark() {
  int64_t low = INT64_MAX;
  int64_t low_source_time_ns = 0;
  bool live = false;
  bool active = false;
  for (const InChannel& in : inputs_) {
    if (in.ended) continue;
    live = true;
    if (in.idle) continue;
    active = true;
    // The input at the minimum is the one whose watermark advanced it (of
    // several there, the latest to arrive).
    if (in.wm < low) {
      low = in.wm;
      low_source_time_ns = in.wm_source_time_ns;
    } else if (in.wm == low) {
      low_source_time_ns = std::max(low_source_time_ns, in.wm_source_time_ns);
    }
  }
  if (live && !active) {
    set_output_idle(true);
    return;
  }
  if (active) set_output_idle(false);
  // All inputs ended: finish() takes over; no synthetic +inf watermark.
  if (low == INT64_MAX || low <= combined_wm_) return;
  combined_wm_ = low;
  deliver_watermark(0, Watermark{low, false, low_source_time_ns});
}

void Task::set_output_idle(bool idle) {
  if (idle == output_idle_ || !error_.ok()) return;
  output_idle_ = idle;
  for (NodeSlot& n : nodes_) n.info->set_idle(subtask_, idle);
  broadcast(Watermark{out_wm_, idle});
}

BatchPtr Task::assign_event_time(BatchPtr batch) {
  const size_t field = event_time_->field;
  if (field >= batch->num_columns()) {
    record_error(0, Status::internal("event-time field #" + std::to_string(field) +
                                     " is outside the batch's " +
                                     std::to_string(batch->num_columns()) + " columns"));
    return nullptr;
  }
  const ColumnPtr& col = batch->column(field);
  if (!stored_as_int64(col->type())) {
    record_error(0, Status::internal("event-time field #" + std::to_string(field) +
                                     " is neither a timestamp nor an int64"));
    return nullptr;
  }
  if (col->has_nulls()) {
    auto keep = std::make_shared<Selection>();
    keep->reserve(batch->active_rows());
    size_t dropped = 0;
    batch->for_each_row([&](size_t r) {
      if (col->is_null(r)) {
        ++dropped;
      } else {
        keep->push_back(static_cast<uint32_t>(r));
      }
    });
    for (size_t i = 0; i < dropped; ++i) nodes_[0].ctx->report_data_error(event_time_error_);
    if (dropped > 0) batch = batch->with_selection(std::move(keep));
  }
  const int64_t* ts = col->int64_data();
  int64_t high = max_event_time_;
  batch->for_each_row([&](size_t r) { high = std::max(high, ts[r]); });
  max_event_time_ = high;
  return batch->with_event_time(col);
}

// Bounded out-of-orderness (Flink's generator): max seen - bound - 1, sent
// when it advances.
void Task::emit_generated_watermark() {
  if (max_event_time_ == INT64_MIN) return;
  const int64_t bound = event_time_->max_out_of_orderness.count();
  if (max_event_time_ < INT64_MIN + bound + 1) return;  // would underflow: nothing to say yet
  const int64_t wm = max_event_time_ - bound - 1;
  if (wm > source_wm_) emit_watermark(0, Watermark{wm});
}

void Task::note_source_blocked() {
  const Clock::time_point now = Clock::now();
  if (!source_blocked_) {
    source_blocked_ = true;
    source_blocked_since_ = now;
    // Look again once the delay is over, in case nothing else wakes us.
    impl_.timer().schedule(now + kSourceBackpressureDelay, this);
  } else if (!source_paused_ && now >= source_blocked_since_ + kSourceBackpressureDelay) {
    source_paused_ = true;
    nodes_[0].src->on_backpressure(true);
  }
}

bool Task::add_dead_letter(const NodeInfo& info, std::string_view message, std::string_view record,
                           std::string_view position) {
  if (!dead_letters_) return false;
  BatchBuilder& b = *dead_letters_;
  b.column(0).append_int64(now_ms());
  b.column(1).append_string(impl_.plan_.pipeline_name);
  b.column(2).append_string(info.node->id);
  b.column(3).append_int64(subtask_);
  b.column(4).append_string("data");
  b.column(5).append_string(message);
  b.column(6).append_string(position);
  b.column(7).append_string(record);
  b.finish_row();
  if (b.num_rows() >= impl_.options().batch_size) flush_dead_letters();
  if (auto rate = impl_.dead_letter_rate_exceeded()) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.2f%%", *rate * 100);
    size_t k = 0;
    while (k + 1 < nodes_.size() && nodes_[k].info != &info) ++k;
    char limit[32];
    std::snprintf(limit, sizeof limit, "%g%%", *impl_.options().dead_letter_max_rate * 100);
    record_error(k, Status::invalid("dead letters are " + std::string(pct) +
                                    " of the rows over the last minute, more than the " + limit +
                                    " dead_letter.max_rate allows"));
  }
  return true;
}

void Task::flush_dead_letters() {
  if (!dead_letters_ || dead_letters_->num_rows() == 0) return;
  BatchPtr batch = dead_letters_->finish();
  fan_out(kDeadLetterPort, batch);
}

void Task::note_source_rows() {
  if (idle_timeout_) last_activity_ = Clock::now();
  set_output_idle(false);
}

void Task::arm_idle_timer(Clock::time_point now) {
  if (!idle_timeout_ || output_idle_ || idle_timer_at_ > now) return;
  idle_timer_at_ = last_activity_ + *idle_timeout_;
  impl_.timer().schedule(idle_timer_at_, this);
}

void Task::deliver(size_t k, size_t input, const BatchPtr& batch) {
  if (!error_.ok()) return;
  auto make_call = [&] {
    HeldCall call;
    call.kind = HeldCall::Kind::kProcess;
    call.input = input;
    call.batch = batch;
    return call;
  };
  if (holding(k)) {
    HeldCall call = make_call();
    call.k = k;
    held_.push_back(std::move(call));
    return;
  }
  // New batches built from this one (a join's matches) keep its source time.
  EmitTime at(*this, batch->source_time_ns());
  const bool made = call_retrying(k, make_call, [&] {
    DF_RETURN_IF_ERROR(faults().check(nodes_[k].info->node->id, "process"));
    return nodes_[k].op->process(input, batch, *nodes_[k].out);
  });
  if (!made) return;  // held for a retry: counted when it is made
  NodeMetrics& m = *nodes_[k].info->metrics;
  m.rows_in.fetch_add(batch->active_rows(), std::memory_order_relaxed);
  m.batches_in.fetch_add(1, std::memory_order_relaxed);
  if (nodes_[k].info->node->role == NodeRole::kSink && batch->source_time_ns() != 0) {
    m.latency_seconds.observe(static_cast<double>(source_clock_ns() - batch->source_time_ns()) *
                              1e-9);
  }
}

void Task::emit(size_t k, BatchPtr batch) {
  // After an error nothing more moves; the run is being aborted.
  if (!error_.ok() || !batch) return;
  const bool source = k == 0 && nodes_[0].src;
  if (source && event_time_) {
    batch = assign_event_time(std::move(batch));
    if (!batch) return;  // error recorded
  }
  if (batch->active_rows() == 0) return;
  if (source) note_source_rows();
  // Latency is timed from here for rows new to the pipeline (a source's);
  // batches derived from others keep their time, and new ones an operator
  // builds take the time of what it is handling (EmitTime).
  if (batch->source_time_ns() == 0) {
    batch = Batch::stamped(std::move(batch),
                           emit_source_time_ns_ != 0 ? emit_source_time_ns_ : source_clock_ns());
  }
  if (source) {
    produced_source_time_ns_ = batch->source_time_ns();
    note_source_time(produced_source_time_ns_);
  }
  nodes_[k].info->metrics->rows_out.fetch_add(batch->active_rows(), std::memory_order_relaxed);
  if (k + 1 < nodes_.size()) {
    deliver(k + 1, 0, batch);
  } else {
    fan_out(0, batch);
  }
  if (source && event_time_ && !source_watermarks_) emit_generated_watermark();
}

void Task::emit_side(size_t k, size_t port, BatchPtr batch) {
  if (!error_.ok() || !batch || batch->active_rows() == 0) return;
  if (k + 1 < nodes_.size()) {
    // The planner ends a chain at a node whose side outputs anyone reads, so
    // nothing downstream could receive these rows: fail rather than drop.
    record_error(k, Status::internal("emitted to side output " + std::to_string(port) +
                                     " from the middle of the chain '" +
                                     impl_.plan_.vertices[vertex_].name() +
                                     "'; a node with side outputs must end its chain"));
    return;
  }
  if (port > side_ports_) {
    record_error(k, Status::internal("emitted to side output " + std::to_string(port) +
                                     " but declares " + std::to_string(side_ports_)));
    return;
  }
  nodes_[k].info->metrics->rows_out.fetch_add(batch->active_rows(), std::memory_order_relaxed);
  fan_out(port, batch);
}

void Task::emit_watermark(size_t k, Watermark wm) {
  if (!error_.ok()) return;
  if (wm.source_time_ns == 0) {
    // A source's watermark was advanced by the batch it emitted in the same
    // produce() call, if any (else it is new now); an operator's carries the
    // time of what it is handling.
    const bool source = k == 0 && nodes_[0].src;
    const int64_t known = source ? produced_source_time_ns_ : emit_source_time_ns_;
    wm.source_time_ns = known != 0 ? known : source_clock_ns();
  }
  if (k == 0 && nodes_[0].src) {
    if (wm.idle) {
      set_output_idle(true);  // a source may declare itself idle
      return;
    }
    if (wm.timestamp_ms <= source_wm_) return;  // a source's watermarks only advance
    source_wm_ = wm.timestamp_ms;
    if (idle_timeout_) last_activity_ = Clock::now();
    set_output_idle(false);
    nodes_[0].info->set_watermark(subtask_, wm.timestamp_ms);
  } else if (wm.idle) {
    // Idle status is the runtime's business (update_combined_watermark);
    // an operator's idle mark carries no new time.
    return;
  }
  if (k + 1 < nodes_.size()) {
    deliver_watermark(k + 1, wm);
  } else {
    out_wm_ = std::max(out_wm_, wm.timestamp_ms);
    broadcast(wm);
  }
}

void Task::fan_out(size_t port, const BatchPtr& batch) {
  for (OutEdge& o : outs_) {
    if (o.port != port) continue;
    const size_t n = o.channels.size();
    switch (o.kind) {
      case Partitioning::kForward:
        o.channels[0]->push(batch);
        break;
      case Partitioning::kBroadcast:
        for (Channel* ch : o.channels) ch->push(batch);
        break;
      case Partitioning::kRebalance:
        o.channels[o.next % n]->push(batch);
        o.next = (o.next + 1) % n;
        break;
      case Partitioning::kHash: {
        if (n == 1) {
          o.channels[0]->push(batch);
          break;
        }
        hash_rows(*batch, o.hash_fields, hashes_);
        parts_.resize(n);
        for (Selection& p : parts_) p.clear();
        const size_t rows = batch->active_rows();
        for (size_t r = 0; r < rows; ++r) {
          parts_[subtask_for_hash(hashes_[r], n)].push_back(
              static_cast<uint32_t>(batch->row_at(r)));
        }
        for (size_t j = 0; j < n; ++j) {
          if (parts_[j].empty()) continue;
          if (parts_[j].size() == rows) {
            o.channels[j]->push(batch);  // every row goes here: share as is
          } else {
            // Rows are visited in ascending physical order, so each part is a
            // valid (ascending, subset) selection over the same columns.
            o.channels[j]->push(
                batch->with_selection(std::make_shared<const Selection>(parts_[j])));
          }
        }
        break;
      }
    }
  }
}

void Task::broadcast(const StreamElement& e) {
  flush_dead_letters();
  for (OutEdge& o : outs_) {
    for (Channel* ch : o.channels) ch->push(e);
  }
}

template <typename F>
Status Task::guarded(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    // Out of memory is a resource failure (DESIGN §5), not a bug.
    return Status::resource_exhausted("out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    return Status::internal(std::string("exception: ") + e.what());
  } catch (...) {
    return Status::internal("unknown exception");
  }
}

template <typename F>
void Task::invoke(size_t k, F&& f) {
  if (!error_.ok()) return;
  Status s = guarded(std::forward<F>(f));
  if (!s.ok()) record_error(k, std::move(s));
}

void Task::record_error(size_t k, Status s) {
  if (!error_.ok()) return;
  error_ = s.with_context(nodes_[k].info->label);
  error_node_ = k;
}

void Task::close_leftovers() {
  for (NodeSlot& n : nodes_) {
    if (!n.opened || n.closed) continue;
    n.closed = true;
    try {
      Status s = n.src ? n.src->close() : n.op->close();
      if (!s.ok()) log_debug("runtime", n.info->label + ": close after abort: " + s.to_string());
    } catch (const std::exception& e) {
      log_debug("runtime", n.info->label + ": close after abort threw: " + e.what());
    } catch (...) {
      log_debug("runtime", n.info->label + ": close after abort threw");
    }
  }
}

// ---------------------------------------------------------------------------
// Engine

Engine::Engine(const PhysicalPlan& plan, RunOptions options) : plan_(plan), options_(options) {
  if (options_.workers < 1) options_.workers = 1;
  if (options_.io_threads < 1) options_.io_threads = 1;
  if (options_.batch_size < 1) options_.batch_size = 1;
  if (options_.buffer_size < 1) options_.buffer_size = 1;
  for (const PhysicalVertex& v : plan_.vertices) {
    vertex_first_node_.push_back(nodes_.size());
    for (const PlanNode& pn : v.chain) {
      auto m = std::make_unique<NodeMetrics>();
      m->id = pn.id;
      m->type = pn.type;
      auto info = std::make_unique<NodeInfo>();
      info->node = &pn;
      info->metrics = m.get();
      info->label = "node '" + pn.id + "' (" + pn.type + ")";
      info->parallelism = std::max(1, v.parallelism);
      info->init_watermarks();
      metrics_.nodes.push_back(std::move(m));
      nodes_.push_back(std::move(info));
    }
  }
  metrics_.started = Clock::now();
  if (options_.dead_letter_max_rate) {
    dead_letter_rate_ = std::make_unique<DeadLetterRate>(*options_.dead_letter_max_rate);
    for (const auto& n : nodes_) {
      if (n->node->role == NodeRole::kSource) source_metrics_.push_back(n->metrics);
    }
  }
}

Engine::~Engine() {
  // run() joined everything it started; tasks and channels die here, after
  // the arena has no job left that points at them.
  tasks_.clear();
  channels_.clear();
}

Status Engine::build() {
  const size_t nv = plan_.vertices.size();
  if (nv == 0) return Status::invalid("the plan has no vertices");
  std::vector<size_t> task_base(nv);
  for (size_t v = 0; v < nv; ++v) {
    const PhysicalVertex& vx = plan_.vertices[v];
    if (vx.chain.empty())
      return Status::internal("vertex " + std::to_string(v) + " has an empty chain");
    if (vx.parallelism < 1) {
      return Status::invalid("vertex '" + vx.name() + "' has parallelism " +
                             std::to_string(vx.parallelism));
    }
    task_base[v] = tasks_.size();
    for (int s = 0; s < vx.parallelism; ++s) {
      tasks_.push_back(std::make_unique<Task>(*this, v, s));
      DF_RETURN_IF_ERROR(tasks_.back()->make_operators());
      if (tasks_.back()->is_source()) source_tasks_.push_back(tasks_.back().get());
    }
  }
  for (const PhysicalEdge& e : plan_.edges) {
    if (e.from >= nv || e.to >= nv) return Status::internal("a plan edge names a missing vertex");
    const PhysicalVertex& from = plan_.vertices[e.from];
    const PhysicalVertex& to = plan_.vertices[e.to];
    if (to.chain.front().role == NodeRole::kSource) {
      return Status::internal("vertex '" + to.name() + "' starts with a source but has an input");
    }
    if (e.from_port > 0 && e.from_port != kDeadLetterPort) {
      size_t declared = 0;
      try {
        declared = from.chain.back().prepared->side_outputs().size();
      } catch (const std::exception& ex) {
        return Status::internal("vertex '" + from.name() + "': side_outputs() threw: " + ex.what());
      }
      if (e.from_port > declared) {
        return Status::internal("edge '" + from.name() + "' => '" + to.name() +
                                "' reads side output " + std::to_string(e.from_port) + " but '" +
                                from.chain.back().id + "' declares " + std::to_string(declared));
      }
    }
    if (e.partitioning == Partitioning::kForward && from.parallelism != to.parallelism) {
      return Status::internal("forward edge '" + from.name() + "' => '" + to.name() +
                              "' joins different parallelisms");
    }
    for (int p = 0; p < from.parallelism; ++p) {
      Task* producer = tasks_[task_base[e.from] + static_cast<size_t>(p)].get();
      Task::OutEdge& out = producer->add_output(e);
      for (int c = 0; c < to.parallelism; ++c) {
        if (e.partitioning == Partitioning::kForward && p != c) continue;
        Task* consumer = tasks_[task_base[e.to] + static_cast<size_t>(c)].get();
        auto ch = std::make_unique<Channel>(options_.buffer_size, options_.backpressure_threshold);
        ch->connect(producer, consumer);
        out.channels.push_back(ch.get());
        consumer->add_input(ch.get(), e.to_input);
        channels_.push_back(std::move(ch));
      }
    }
  }
  return Status::OK();
}

Status Engine::run() {
  if (ran_.exchange(true)) return Status::internal("Scheduler::run() may be called only once");
  metrics_.started = Clock::now();
  if (Status s = build(); !s.ok()) {
    stopping_.store(true);
    return s;
  }
  log_context_ = LogContext::current();
  scheduler_internal::ensure_tbb_worker_cap(options_.workers);
  // No slot reserved for this thread: it only waits, all `workers` slots
  // are for arena workers.
  arena_.initialize(options_.workers, 0);
  io_ = std::make_unique<IoPool>(options_.io_threads);
  timer_ = std::make_unique<Timer>();
  started_.store(true, std::memory_order_release);

  for (auto& t : tasks_) t->wake();  // every task prepares once (opens its operators)

  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      return (done_tasks_.load() == tasks_.size() || aborted_.load()) && inflight_.load() == 0;
    });
    // From now on wakes are dropped. A wake that raced past the flag is
    // counted in inflight_ (enqueue() increments before it checks), so wait
    // for it too.
    stopping_.store(true);
    cv_.wait(lock, [&] { return inflight_.load() == 0; });
  }
  // Let outstanding I/O finish (jobs capture operators), then stop the
  // timer; both may still call wake(), which is now a no-op.
  io_->shutdown();
  timer_->stop();
  close_leftovers();

  std::lock_guard<std::mutex> lock(mu_);
  if (!first_error_.ok()) return first_error_;
  if (cancelled_.load()) return Status::cancelled("the run was cancelled");
  return Status::OK();
}

void Engine::close_leftovers() {
  for (auto& t : tasks_) t->close_leftovers();
}

void Engine::enqueue(Task* task) {
  inflight_.fetch_add(1);
  if (stopping_.load()) {
    release_inflight();
    return;
  }
  // The task goes into our own FIFO and the arena job only says "run the
  // next one". Two reasons: the run queue is strictly first-in first-out
  // whatever TBB's queue does (fairness: a yielding task goes to the back),
  // and every hand-off of a task between threads passes through our mutex,
  // which ThreadSanitizer can see (the Debian libtbb is not instrumented).
  {
    std::lock_guard<std::mutex> lock(run_queue_mu_);
    run_queue_.push_back(task);
  }
  // TBB's queue orders this enqueue before the job runs, but it is not
  // instrumented: tell ThreadSanitizer (no-op in other builds).
  DF_TSAN_RELEASE(&run_queue_);
  arena_.enqueue([this] {
    DF_TSAN_ACQUIRE(&run_queue_);
    Task* next = nullptr;
    {
      std::lock_guard<std::mutex> lock(run_queue_mu_);
      next = run_queue_.front();  // one job per queued task: never empty here
      run_queue_.pop_front();
    }
    {
      AdoptedLogContext log_context(log_context_);  // a pointer swap: no copy
      next->run();
    }
    release_inflight();
  });
}

void Engine::release_inflight() {
  size_t v = inflight_.load();
  for (;;) {
    if (v == 1) {
      // Possibly the last: decrement under the lock so run() cannot see zero,
      // return and destroy us between our decrement and our notify.
      std::lock_guard<std::mutex> lock(mu_);
      if (inflight_.fetch_sub(1) == 1) cv_.notify_all();
      return;
    }
    if (inflight_.compare_exchange_weak(v, v - 1)) return;
  }
}

void Engine::fail(Status status, FailureSite site) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_error_.ok() && !aborted_.load()) {
      first_error_ = std::move(status);
      failure_site_ = std::move(site);
      log_error("runtime", "run failed: " + first_error_.to_string());
    }
    aborted_.store(true);
  }
  cv_.notify_all();
}

void Engine::cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!aborted_.load()) cancelled_.store(true);
    aborted_.store(true);
  }
  cv_.notify_all();
}

void Engine::wake_all() {
  if (!started_.load(std::memory_order_acquire)) return;
  for (auto& t : tasks_) t->wake();
}

size_t Engine::task_count() const {
  size_t n = 0;
  for (const PhysicalVertex& v : plan_.vertices)
    n += static_cast<size_t>(std::max(1, v.parallelism));
  return n;
}

bool Engine::trigger_checkpoint(uint64_t id, bool stop) {
  if (!options_.checkpoint_listener || id == 0 || id == kFinalCheckpoint) return false;
  if (!started_.load(std::memory_order_acquire) || stopping_.load() || aborted_.load())
    return false;
  if (stop_checkpoint_.load(std::memory_order_acquire) != 0) return false;  // already stopping
  if (stop) {
    uint64_t none = 0;
    if (!stop_checkpoint_.compare_exchange_strong(none, id, std::memory_order_acq_rel))
      return false;
  }
  for (Task* t : source_tasks_) t->request_barrier(id);
  return true;
}

void Engine::notify_checkpoint_complete(uint64_t id) {
  uint64_t cur = latest_complete_.load(std::memory_order_acquire);
  while (cur < id && !latest_complete_.compare_exchange_weak(cur, id, std::memory_order_acq_rel)) {
  }
  if (id == stop_checkpoint_.load(std::memory_order_acquire)) {
    stop_outcome_.store(Outcome::kComplete, std::memory_order_release);
  }
  wake_all();
}

void Engine::notify_checkpoint_aborted(uint64_t id) {
  if (id == kFinalCheckpoint) {
    final_outcome_.store(Outcome::kAborted, std::memory_order_release);
    fail_later(
        Status::unavailable("the final checkpoint did not complete; sinks were not committed"));
  } else if (id != 0 && id == stop_checkpoint_.load(std::memory_order_acquire)) {
    stop_outcome_.store(Outcome::kAborted, std::memory_order_release);
    fail_later(Status::unavailable("the stop checkpoint " + std::to_string(id) +
                                   " did not complete; the next run resumes from the one before"));
  }
  wake_all();
}

void Engine::notify_final_checkpoint_complete() {
  final_outcome_.store(Outcome::kComplete, std::memory_order_release);
  wake_all();
}

void Engine::fail_later(Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (first_error_.ok()) {
    first_error_ = std::move(status);
    log_error("runtime", first_error_.to_string());
  }
}

void Engine::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  // Sources parked on a wait must look again; sources parked on a full output
  // will be woken by the drain. Before the start, the first prepare sees it.
  if (!started_.load(std::memory_order_acquire)) return;
  for (Task* t : source_tasks_) t->wake_from_operator();
}

ChannelStats Engine::channel_stats() const {
  ChannelStats st;
  st.capacity_rows = options_.buffer_size;
  if (!started_.load(std::memory_order_acquire)) return st;
  st.channels = channels_.size();
  for (const auto& ch : channels_) {
    const size_t r = ch->rows();
    st.buffered_rows += r;
    st.max_channel_rows = std::max(st.max_channel_rows, r);
    st.high_water_rows = std::max(st.high_water_rows, ch->high_water_rows());
    st.threshold_rows = ch->threshold_rows();
  }
  return st;
}

}  // namespace scheduler_internal

// ---------------------------------------------------------------------------
// Scheduler

class Scheduler::Impl final : public scheduler_internal::Engine {
 public:
  using Engine::Engine;
};

Scheduler::Scheduler(const PhysicalPlan& plan, RunOptions options)
    : impl_(std::make_unique<Impl>(plan, options)) {}

Scheduler::~Scheduler() = default;

Status Scheduler::run() { return impl_->run(); }
void Scheduler::request_stop() { impl_->request_stop(); }
void Scheduler::cancel() { impl_->cancel(); }
bool Scheduler::trigger_checkpoint(uint64_t id) { return impl_->trigger_checkpoint(id, false); }
bool Scheduler::stop_with_checkpoint(uint64_t id) { return impl_->trigger_checkpoint(id, true); }
void Scheduler::notify_checkpoint_complete(uint64_t id) { impl_->notify_checkpoint_complete(id); }
void Scheduler::notify_checkpoint_aborted(uint64_t id) { impl_->notify_checkpoint_aborted(id); }
void Scheduler::notify_final_checkpoint_complete() { impl_->notify_final_checkpoint_complete(); }
size_t Scheduler::task_count() const { return impl_->task_count(); }
const RunMetrics& Scheduler::metrics() const { return impl_->metrics_; }

FailureSite Scheduler::failure_site() const { return impl_->failure_site(); }

ChannelStats Scheduler::channel_stats() const { return impl_->channel_stats(); }

}  // namespace df::runtime
