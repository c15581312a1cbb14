// CheckpointCoordinator: triggers checkpoints of one running pipeline,
// collects the tasks' snapshots, uploads them to CheckpointStorage, writes
// the manifest and moves _CURRENT (DESIGN §4); and restores a run from the
// newest good checkpoint.
//
// Threading: one internal thread triggers on the interval and times out
// checkpoints; uploads run on the coordinator's own I/O threads;
// on_task_snapshot* are called from worker/I/O threads and only queue work.
// Public methods are thread-safe. The coordinator must outlive the
// Scheduler's run() it was attached to.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint/storage.h"
#include "engine/core/status.h"
#include "engine/core/time.h"
#include "engine/runtime/checkpoint.h"
#include "engine/runtime/physical_plan.h"
#include "engine/runtime/scheduler.h"

namespace df::checkpoint {

struct CheckpointSettings {
  std::string pipeline;            // name; the storage prefix <pipeline>/
  std::optional<Millis> interval;  // none: only final/stop checkpoints
  Millis timeout{600000};
  int retained = 3;
  bool compression = false;  // zstd for non-SST files
  std::string pipeline_text;     // the pipeline file, stored with each checkpoint
  std::string pipeline_version;  // e.g. SHA-256 of pipeline_text
  int io_threads = 2;
};

// What restore() found.
struct RestorePoint {
  uint64_t checkpoint_id = 0;
  runtime::RestoredState state;
  std::vector<std::string> warnings;  // e.g. "checkpoint 7: ... ; used checkpoint 6"
};

struct CoordinatorStats {
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t aborted = 0;  // timed out
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
  Result<std::optional<RestorePoint>> restore(const runtime::PhysicalPlan& plan,
                                              const std::string& state_root);

  // Starts triggering every settings.interval on `scheduler` (call just
  // before scheduler.run(); triggers before the run starts are retried).
  void start(runtime::Scheduler& scheduler);
  // Asks for a final checkpoint and a stop (SIGTERM): Scheduler::stop_with_checkpoint.
  void request_stop_with_checkpoint();
  // After run() returned: stops the thread and waits for uploads.
  void stop();
  CoordinatorStats stats() const;

  // runtime::CheckpointListener
  void on_task_snapshot(runtime::TaskSnapshot snapshot) override;
  void on_task_snapshot_failed(uint64_t id, size_t vertex, int subtask, Status status) override;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace df::checkpoint
