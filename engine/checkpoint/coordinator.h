// CheckpointCoordinator: triggers checkpoints of one running pipeline,
// collects the tasks' snapshots, uploads them to CheckpointStorage, writes
// the manifest and moves _CURRENT (DESIGN §4); and restores a run from the
// newest good checkpoint.
//
// Every storage call goes through a GuardedStorage (guarded_storage.h): after
// repeated transient storage failures checkpoints are declined, not piled up.
//
// Threading: one internal thread triggers on the interval and times out
// checkpoints; uploads run on the coordinator's own I/O threads;
// on_task_snapshot* are called from worker/I/O threads and only queue work.
// Public methods are thread-safe. The coordinator must outlive the
// Scheduler's run() it was attached to.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint/storage.h"
#include "engine/core/metrics.h"
#include "engine/core/status.h"
#include "engine/core/time.h"
#include "engine/runtime/checkpoint.h"
#include "engine/runtime/physical_plan.h"
#include "engine/runtime/scheduler.h"

namespace df::checkpoint {

// What the coordinator needs of a running pipeline: the checkpoint methods of
// runtime::Scheduler (see scheduler.h for their contracts). start(Scheduler&)
// adapts the real scheduler; the coordinator's unit tests implement it to
// record calls. Methods are called from the coordinator's thread only.
class CheckpointTarget {
 public:
  virtual ~CheckpointTarget() = default;
  virtual bool trigger_checkpoint(uint64_t id) = 0;
  virtual bool stop_with_checkpoint(uint64_t id) = 0;
  virtual void notify_checkpoint_complete(uint64_t id) = 0;
  virtual void notify_checkpoint_aborted(uint64_t id) = 0;
  virtual void notify_final_checkpoint_complete() = 0;
  virtual size_t task_count() const = 0;
};

struct CheckpointSettings {
  std::string pipeline;            // name; the storage prefix <pipeline>/
  std::optional<Millis> interval;  // none: only final/stop checkpoints
  Millis timeout{600000};
  int retained = 3;
  bool compression = false;      // zstd for non-SST files
  std::string pipeline_text;     // the pipeline file, stored with each checkpoint
  std::string pipeline_version;  // e.g. SHA-256 of pipeline_text
  int io_threads = 2;
  // Observes every completed checkpoint's duration in seconds (the server's
  // dataflow_checkpoint_duration_seconds). Not owned; may be null.
  metrics::Histogram* duration_seconds = nullptr;
  // The circuit breaker around the storage (guarded_storage.h): while it is
  // open, checkpoints are declined instead of triggered; a probe at the
  // first trigger after open_for closes it. nullopt: no breaker.
  std::optional<runtime::CircuitBreakerPolicy> storage_breaker;
  // Which storage failures count toward it; empty: Unavailable.
  std::function<bool(const Status&)> is_transient;
  // Its changes (node "checkpoint_storage"), on an I/O or the coordinator's
  // thread. Must be thread-safe and quick.
  runtime::RetryEventSink on_storage_event;
};

// What restore() found.
struct RestorePoint {
  uint64_t checkpoint_id = 0;
  runtime::RestoredState state;
  std::vector<std::string> warnings;  // e.g. "checkpoint 7: ... ; used checkpoint 6"
  size_t files = 0;                   // files restored
  uint64_t bytes = 0;                 // their size
  int64_t duration_ms = 0;            // restore() wall time
};

struct CoordinatorStats {
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t aborted = 0;   // timed out
  uint64_t declined = 0;  // not triggered: the storage's circuit breaker was open
  uint64_t last_id = 0;
  int64_t last_duration_ms = 0;
  uint64_t last_size_bytes = 0;         // all files the manifest references
  uint64_t last_incremental_bytes = 0;  // bytes uploaded for it
};

class CheckpointCoordinator final : public runtime::CheckpointListener {
 public:
  CheckpointCoordinator(CheckpointStorage& storage, CheckpointSettings settings);
  ~CheckpointCoordinator() override;

  // Before the run: reads _CURRENT (falling back to up to 3 older manifests
  // when one fails its checksums, with a warning naming what was wrong),
  // checks it fits `plan` (same nodes and parallelism), puts each subtask's
  // files into <state_root>/<node>/<subtask> (state_root is emptied first)
  // and returns what to put in RunOptions::restored. nullopt when the
  // pipeline has no checkpoint yet. Later checkpoints get larger ids.
  // Call before start(). Warnings (fallbacks, missing _CURRENT) are logged
  // and returned; "no usable checkpoint for pipeline P: checkpoint 7: ...,
  // checkpoint 6: ..." (kDataError) when every candidate failed; a plan
  // that does not fit (node gone, parallelism changed) is kInvalidArgument;
  // a state_root that contains the local storage is refused.
  Result<std::optional<RestorePoint>> restore(const runtime::PhysicalPlan& plan,
                                              const std::string& state_root);

  // Starts triggering every settings.interval on `scheduler` (call just
  // before scheduler.run(); triggers before the run starts are retried).
  // Call start() once per coordinator.
  void start(runtime::Scheduler& scheduler);
  // The same on any CheckpointTarget (not owned; must outlive stop()).
  void start(CheckpointTarget& target);
  // Asks for one checkpoint now (besides the interval), e.g. from
  // `POST /pipelines/{name}/checkpoints`: triggered on the coordinator's
  // thread as soon as none is in flight. Does not block.
  void request_checkpoint();
  // Asks for a final checkpoint and a stop (SIGTERM): Scheduler::stop_with_checkpoint,
  // after the checkpoint in flight (if any) ended. Does not block.
  void request_stop_with_checkpoint();
  // After run() returned: stops the thread, waits for uploads and removes
  // the local snapshot directories nobody will upload. Idempotent.
  void stop();
  CoordinatorStats stats() const;
  // Waits until stats().completed + failed + aborted reaches `count` (or
  // `timeout` passes); true when it did. For tests and tools.
  bool wait_for_checkpoints(uint64_t count, Millis timeout) const;

  // runtime::CheckpointListener
  void on_task_snapshot(runtime::TaskSnapshot snapshot) override;
  void on_task_snapshot_failed(uint64_t id, size_t vertex, int subtask, Status status) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<CheckpointTarget> scheduler_target_;  // start(Scheduler&)
};

// Adapts a Scheduler (coordinator_scheduler.cc).
std::unique_ptr<CheckpointTarget> make_scheduler_target(runtime::Scheduler& scheduler);

}  // namespace df::checkpoint
