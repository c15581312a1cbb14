// The interfaces operator and connector authors implement.
//
// The scheduler owns every Operator/SourceOperator instance (one per subtask)
// and calls it from one worker thread at a time, never concurrently, so an
// instance needs no locking of its own state. Instances must never block a
// worker thread: blocking I/O goes to OperatorContext::io() and the operator
// reports can_accept()/drained() == false until the I/O side calls
// OperatorContext::wake().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/element.h"
#include "engine/core/status.h"
#include "engine/runtime/checkpoint.h"

namespace df::runtime {

struct EventTimeSpec;  // physical_plan.h

// Runs blocking work (file writes, pipe writes, uploads) off the worker pool.
// Thread-safe. Jobs posted with the same `strand` key run one at a time in
// posting order.
class IoExecutor {
 public:
  virtual ~IoExecutor() = default;
  virtual void post(uint64_t strand, std::function<void()> job) = 0;
};

// What a running subtask may ask of the engine. Owned by the scheduler and
// valid from open() until close() returns.
class OperatorContext {
 public:
  virtual ~OperatorContext() = default;
  virtual const std::string& node_id() const = 0;
  virtual int subtask() const = 0;
  virtual int parallelism() const = 0;
  // Preferred rows per emitted batch (performance.batch_size).
  virtual size_t batch_size() const = 0;
  // Thread-safe, callable from any thread: schedule this task again. Used
  // after can_accept()/drained() turn true, or when an async source has data.
  virtual void wake() = 0;
  // Counts one bad record (decode error, bad cast, ...) against this node and
  // logs the message, rate-limited. The record is skipped.
  virtual void report_data_error(std::string_view message) = 0;
  // A bad record whose text is known: like report_data_error, and when the
  // pipeline has a dead-letter sink the record goes there with the message
  // and its source `position` ("data/in.jsonl:17", "orders/3@1042")
  // (engine/runtime/dead_letter.h). Call from the task's thread.
  virtual void report_bad_record(std::string_view message, std::string_view record,
                                 std::string_view position) {
    (void)record;
    (void)position;
    report_data_error(message);
  }
  // True when the pipeline has a dead-letter sink, so report_bad_record()
  // sends the record there: an operator may then leave the row out of its
  // output instead of passing it on with nulls.
  virtual bool has_dead_letter_sink() const { return false; }
  // A unique strand key for this subtask's ordered I/O.
  virtual uint64_t io_strand() const = 0;
  virtual IoExecutor& io() = 0;
  // True once the run was asked to stop gracefully: sources should end.
  virtual bool stop_requested() const = 0;
  // A directory private to this subtask for keyed state (RocksDB), created by
  // the engine and stable across restarts of the same run; empty when the run
  // keeps state in memory (tests, `state.backend: memory`).
  virtual std::string state_dir() const { return {}; }
  // Bytes of memory this subtask's state may cache before spilling (0: the
  // operator's default).
  virtual size_t state_memory_budget() const { return 0; }
  // True when the run takes checkpoints (snapshot() and checkpoint_complete()
  // will be called). Two-phase-commit sinks commit on checkpoint_complete()
  // then, and at close() otherwise.
  virtual bool checkpointing() const { return false; }
  // On a run resumed from a checkpoint: the JSON this subtask's snapshot gave
  // SnapshotContext::set_meta (state_dir() already holds its files).
  // nullptr on a fresh start or when the snapshot set no meta.
  virtual const std::string* restored_meta() const { return nullptr; }
  // On a resumed run: the meta of every subtask of this node that set one in
  // the checkpoint, by subtask (its parallelism may differ from this run's).
  // For sources whose work moves between subtasks (Kafka partitions follow
  // the consumer group). Empty on a fresh start.
  virtual std::vector<std::pair<int, const std::string*>> restored_node_metas() const { return {}; }
  // Sources: the node's `event_time` (field index, bound, idle timeout);
  // nullptr when its rows carry no event time.
  virtual const EventTimeSpec* event_time() const { return nullptr; }
  // Kafka clients, for metrics and health; thread-safe, callable from any
  // thread (librdkafka callbacks), until close() returns.
  // The consumer lag of partition `topic`/`partition` this subtask holds, in
  // messages (high watermark minus the next offset to emit); nullopt when the
  // subtask no longer holds it.
  virtual void report_consumer_lag(std::string_view topic, int32_t partition,
                                   std::optional<int64_t> lag) {
    (void)topic;
    (void)partition;
    (void)lag;
  }
  // How many brokers this subtask's client is connected to, and while it
  // cannot reach any, why (`problem` non-empty: the pipeline is degraded).
  virtual void report_brokers(int up, std::string_view problem) {
    (void)up;
    (void)problem;
  }
};

// Where an operator puts what it produces. Only valid inside the call that
// received it (process, on_watermark, finish, produce).
class Output {
 public:
  virtual ~Output() = default;
  virtual void emit(BatchPtr batch) = 0;
  virtual void emit_watermark(Watermark wm) = 0;
  // Emits to side output `port` (1-based, in PreparedNode::side_outputs()
  // order), e.g. a window's late rows. Port 0 is emit().
  virtual void emit_to(size_t port, BatchPtr batch) {
    if (port == 0) emit(std::move(batch));
  }
};

// The checkpoint side of operators and sources (runtime/checkpoint.h).
// Called on the task's thread, like everything else of an instance.
class CheckpointHooks {
 public:
  virtual ~CheckpointHooks() = default;
  // Checkpoint ctx.checkpoint_id(): every element before its barrier has
  // been processed (a source: emitted), none after. Write what must survive
  // a crash and keep it cheap:
  // - a source records the position after its last emitted row as JSON meta
  //   (file + byte offset, row number, Kafka offsets); it is called between
  //   produce() calls, right before Barrier(id) is injected;
  // - a stateful operator flushes caches and calls
  //   KvStore::checkpoint_to(ctx.files_dir()); slow work goes to the I/O
  //   pool under ctx.defer().
  // A resumed run gets the meta back as OperatorContext::restored_meta().
  // Also called once after finish() with kFinalCheckpoint when the subtask
  // ended. A non-OK status fails the checkpoint, not the run. Default: no
  // state.
  virtual Status snapshot(SnapshotContext& ctx) {
    (void)ctx;
    return Status::OK();
  }
  // Checkpoint `id` is durable and current (kFinalCheckpoint: the one that
  // covers this subtask's final snapshot). Sinks commit what their snapshots
  // of ids <= id pre-committed. May come after finish(), before close().
  virtual Status checkpoint_complete(uint64_t id) {
    (void)id;
    return Status::OK();
  }
};

// A transform or a sink; one instance per subtask.
class Operator : public CheckpointHooks {
 public:
  virtual ~Operator() = default;
  virtual Status open(OperatorContext& ctx) {
    (void)ctx;
    return Status::OK();
  }
  // One batch that arrived on input `input` (the position in the node's inputs).
  //
  // Transient errors (DESIGN §5): a process() that returns Unavailable (or
  // another error the healing classifier calls transient) is called again
  // later with the same batch, in place (runtime/retry.h; healing.retry).
  // So it must return such an error only before it consumed the batch: no
  // row emitted, no state changed, nothing handed to I/O. A sink whose
  // write fails half-way returns a non-transient error (the run restarts
  // from its checkpoint) or keeps the written part to itself and retries
  // only the rest. DATAFLOW_FAULTS's `unavailable` is raised before the
  // call, so it keeps the contract.
  virtual Status process(size_t input, const BatchPtr& batch, Output& out) = 0;
  // The combined watermark (minimum over inputs) advanced. Default: forward.
  virtual Status on_watermark(Watermark wm, Output& out) {
    out.emit_watermark(wm);
    return Status::OK();
  }
  // Every input has ended: emit what is left and start any final flush.
  virtual Status finish(Output& out) {
    (void)out;
    return Status::OK();
  }
  // External backpressure (e.g. a sink's I/O backlog is full): while false the
  // task is not scheduled; call ctx.wake() when it turns true.
  virtual bool can_accept() const { return true; }
  // After finish(): false while asynchronous work is still pending; call
  // ctx.wake() when it completes. The run ends only when all are drained.
  virtual bool drained() const { return true; }
  // Last call; report any error the asynchronous work met.
  virtual Status close() { return Status::OK(); }
};

struct SourceProgress {
  enum class State {
    kMore,       // call produce() again when the output has room
    kWait,       // nothing now: call again at wake_at, or earlier on ctx.wake()
    kExhausted,  // a bounded source reached its end; never called again
  };
  State state = State::kMore;
  std::chrono::steady_clock::time_point wake_at{};

  static SourceProgress more() { return {State::kMore, {}}; }
  static SourceProgress exhausted() { return {State::kExhausted, {}}; }
  static SourceProgress wait_until(std::chrono::steady_clock::time_point t) {
    return {State::kWait, t};
  }
  // Wait for ctx.wake() only.
  static SourceProgress wait() {
    return {State::kWait, std::chrono::steady_clock::time_point::max()};
  }
};

// A source subtask; one instance per subtask.
class SourceOperator : public CheckpointHooks {
 public:
  virtual ~SourceOperator() = default;
  virtual Status open(OperatorContext& ctx) {
    (void)ctx;
    return Status::OK();
  }
  // Emits at most about one batch (ctx.batch_size() rows) and returns. Must
  // not block. Returns an error to fail the run. A transient error (see
  // Operator::process) makes the runtime call produce() again after a
  // backoff; it must come before anything was emitted or the position moved.
  virtual Result<SourceProgress> produce(Output& out) = 0;
  virtual Status close() { return Status::OK(); }
  // Backpressure: `true` once the task's outputs (or the rest of its chain)
  // stayed full for kSourceBackpressureDelay, `false` when produce() may run
  // again after that. Short stalls never reach the source, so a client with
  // a bounded prefetch (Kafka) pauses fetching only on real backpressure.
  // Called between produce() calls on the task thread; must not block.
  virtual void on_backpressure(bool blocked) { (void)blocked; }
  // With event time: true when the source emits its own watermarks through
  // Output::emit_watermark (e.g. the minimum over Kafka partitions) and the
  // runtime must not generate them from the maximum event time. The runtime
  // still assigns event time, sends idle watermarks and records the maximum
  // in snapshots. Asked once, before open().
  virtual bool emits_watermarks() const { return false; }
};

// How long a source's outputs must stay full before on_backpressure(true).
inline constexpr std::chrono::milliseconds kSourceBackpressureDelay{50};

}  // namespace df::runtime
