// Internal to engine/checkpoint: the CheckpointCoordinator's implementation
// class, split over coordinator.cc (trigger, upload, complete, retention) and
// restore.cc (restore with fallback). See coordinator.h for the contract.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/checkpoint/coordinator.h"
#include "engine/checkpoint/guarded_storage.h"
#include "engine/checkpoint/manifest.h"
#include "engine/core/log.h"
#include "engine/runtime/io_pool.h"

namespace df::checkpoint {

using Clock = std::chrono::steady_clock;
using TaskKey = std::pair<size_t, int>;  // (vertex, subtask)
// An SST already in storage: (node, subtask, file name, size, inode). RocksDB
// never reuses a file name within a DB, and a snapshot hard-links the DB's
// SSTs, so the same inode under the same name is the same file; the inode
// also keeps apart same-named files of a different DB (e.g. a store rebuilt
// from scratch).
using StoredKey = std::tuple<std::string, int, std::string, uint64_t, uint64_t>;

// "12.3 MiB"
std::string format_bytes(uint64_t bytes);

// One task's snapshot (a barrier acknowledgement or a final snapshot) while
// its files upload. Contents guarded by Impl::mu_.
struct TaskAck {
  std::vector<TaskEntry> entries;  // FileRef::key empty until uploaded
  std::vector<std::string> dirs;   // local files_dirs, removed after upload
  int outstanding = 0;             // uploads not finished
  uint64_t uploaded_bytes = 0;
  bool bytes_counted = false;  // counted as incremental bytes of a manifest
  Status error;                // first failure
  Clock::time_point received;
};

// The checkpoint in flight (at most one). Coordinator thread only.
struct Inflight {
  uint64_t id = 0;
  std::string kind;
  Clock::time_point triggered;
  size_t expected = 0;
  std::map<TaskKey, std::shared_ptr<TaskAck>> acks;
};

struct Event {
  bool failed = false;
  runtime::TaskSnapshot snapshot;  // !failed
  uint64_t id = 0;                 // failed
  size_t vertex = 0;
  int subtask = 0;
  Status status;
  Clock::time_point at;
};

class CheckpointCoordinator::Impl {
 public:
  Impl(CheckpointStorage& storage, CheckpointSettings settings);
  ~Impl();

  Result<std::optional<RestorePoint>> restore(const runtime::PhysicalPlan& plan,
                                              const std::string& state_root);
  void start(CheckpointTarget& target);
  void request(bool stop);
  void stop();
  CoordinatorStats stats() const;
  bool wait_for(uint64_t count, Millis timeout) const;
  void enqueue(Event e);

 private:
  void loop();
  void handle(Event e);
  std::shared_ptr<TaskAck> build_ack(const runtime::TaskSnapshot& s,
                                     std::optional<uint64_t> private_id, Clock::time_point at);
  void check_inflight();
  void check_timeout();
  void check_final();
  // Triggers when due; returns when to try again after a refused trigger.
  Clock::time_point maybe_trigger(Clock::time_point& next_trigger);
  // Stores the pipeline file, the manifest and _CURRENT, counts and logs
  // the checkpoint, applies retention.
  Status publish(Manifest& m, Clock::time_point triggered, Clock::time_point last_ack,
                 uint64_t incremental);
  void retain();
  std::set<std::string> pinned_keys();
  void fail_inflight(const std::string& reason);
  void give_up_inflight(bool timed_out, const std::string& why);

  GuardedStorage guarded_;      // around the caller's storage
  CheckpointStorage& storage_;  // guarded_: every call goes through the breaker
  const CheckpointSettings settings_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // wakes the coordinator thread
  mutable std::condition_variable stats_cv_;
  std::deque<Event> events_;
  bool started_ = false;
  bool stopped_ = false;
  bool stopping_ = false;
  bool wake_ = false;
  bool checkpoint_requested_ = false;
  bool stop_requested_ = false;
  bool stop_sent_ = false;
  std::map<StoredKey, FileRef> stored_;  // dedupe of SSTs
  std::set<std::string> uploading_;      // keys being stored right now
  CoordinatorStats stats_;

  // Coordinator thread only (and restore(), before start()).
  CheckpointTarget* target_ = nullptr;
  uint64_t next_id_ = 1;
  bool ids_known_ = false;
  size_t task_count_ = 0;
  std::unique_ptr<Inflight> inflight_;
  std::map<TaskKey, std::shared_ptr<TaskAck>> finals_;
  bool final_done_ = false;
  Clock::time_point retry_at_{};
  uint64_t strand_ = 0;
  bool decline_logged_ = false;  // this open spell of the storage breaker

  // The constructing thread's log context (pipeline, run id), for the lines
  // the coordinator thread logs; the pool captures it too.
  const LogFields log_context_;
  std::thread thread_;
  runtime::IoPool pool_;  // last: destroyed (and drained) first
};

}  // namespace df::checkpoint
