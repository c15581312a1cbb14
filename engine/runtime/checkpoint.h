// The runtime side of checkpoints (DESIGN §4): what operators write at a
// barrier, what a task reports when its snapshot is done, and what a resumed
// run hands back to operators.
//
// Flow of checkpoint n (asynchronous barrier snapshots):
//   coordinator: Scheduler::trigger_checkpoint(n)
//   source task: SourceOperator::snapshot (position) and the snapshots of the
//                rest of its chain, then Barrier(n) on every output
//   other tasks: align Barrier(n) over their inputs, snapshot their chain,
//                forward Barrier(n)
//   each task:   when its snapshot (and every SnapshotContext::defer()ed
//                completion) is done -> CheckpointListener::on_task_snapshot
//   coordinator: uploads, writes the manifest, moves _CURRENT, then
//                Scheduler::notify_checkpoint_complete(n) -> every operator's
//                checkpoint_complete(n) (sinks commit, two-phase commit)
//
// Finished subtasks: a task whose inputs all ended (or whose source is
// exhausted) takes a final snapshot with id kFinalCheckpoint after finish()
// and its operators drained, reports it, and waits before close() until
// Scheduler::notify_final_checkpoint_complete(). The coordinator uses a final
// snapshot as that task's part of every checkpoint the task did not reach
// with a barrier, and writes one last checkpoint once every task is final.
//
// Stop with a checkpoint (SIGTERM): Scheduler::stop_with_checkpoint(n):
// sources inject Barrier(n) and then end without draining (windows are not
// fired; state stays for the next run); tasks snapshot at the barrier, skip
// finish(), and close after notify_checkpoint_complete(n) (or abort).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/status.h"

namespace df::runtime {

// SnapshotContext::checkpoint_id() of a subtask's final snapshot.
inline constexpr uint64_t kFinalCheckpoint = UINT64_MAX;

// Given to Operator::snapshot / SourceOperator::snapshot on the task thread.
// Valid only during that call, except the completions defer() returns.
class SnapshotContext {
 public:
  virtual ~SnapshotContext() = default;
  virtual uint64_t checkpoint_id() const = 0;
  // A directory that does not exist yet, on the filesystem of state_dir(),
  // for the files of this subtask's snapshot (e.g. KvStore::checkpoint_to).
  // Whatever is in it once the snapshot is acknowledged belongs to the
  // checkpoint; the coordinator uploads it and then deletes it.
  virtual const std::string& files_dir() const = 0;
  // The operator's small state as one JSON document (source positions,
  // pending part files, counters); handed back on resume as
  // OperatorContext::restored_meta() and shown by `dataflow state export`.
  virtual void set_meta(std::string json) = 0;
  // For work the checkpoint must wait for (a sink's fsync on its I/O strand):
  // returns a completion to call exactly once, from any thread. The task's
  // snapshot is acknowledged when every completion was called; a non-OK
  // status fails this checkpoint (not the run).
  virtual std::function<void(Status)> defer() = 0;
};

// One node's part of a task snapshot.
struct NodeSnapshot {
  std::string node_id;
  int subtask = 0;
  // SnapshotContext::files_dir(); it exists only if the operator wrote files.
  std::string files_dir;
  std::string meta;  // SnapshotContext::set_meta (empty: none)
  // Sources with event time: the highest event time seen, so a resumed run
  // continues the same watermarks. INT64_MIN otherwise.
  int64_t max_event_time = INT64_MIN;
};

// What one task (one subtask of a vertex) reports for a checkpoint.
struct TaskSnapshot {
  uint64_t checkpoint_id = 0;  // kFinalCheckpoint for a final snapshot
  size_t vertex = 0;           // index in PhysicalPlan::vertices
  int subtask = 0;
  std::vector<NodeSnapshot> nodes;  // the task's chain, upstream first
};

// Implemented by engine/checkpoint's CheckpointCoordinator. Called from
// worker or I/O threads; implementations must be thread-safe and must not
// block (queue the work).
class CheckpointListener {
 public:
  virtual ~CheckpointListener() = default;
  // A task's snapshot for snapshot.checkpoint_id is complete.
  virtual void on_task_snapshot(TaskSnapshot snapshot) = 0;
  // A task could not take its snapshot of checkpoint `id` (an operator's
  // snapshot() or a deferred completion failed): the checkpoint fails.
  virtual void on_task_snapshot_failed(uint64_t id, size_t vertex, int subtask, Status status) = 0;
};

// The state a resumed run starts from, per (node id, subtask). The files of
// the node's snapshot already lie in <state_root>/<node id>/<subtask>.
struct RestoredNode {
  std::string meta;
  int64_t max_event_time = INT64_MIN;
};
using RestoredState = std::map<std::pair<std::string, int>, RestoredNode>;

}  // namespace df::runtime
