// RunSupervisor: runs one pipeline until it ends, under the
// SelfHealingService (DESIGN §5). Each attempt restores the last completed
// checkpoint (when there is checkpoint storage), runs the scheduler with a
// CheckpointCoordinator, and on failure asks the service what to do:
// restart after a delay, throttle (halve the batch size), or fail.
// `dataflow exec` and the server's PipelineManager both run pipelines
// through it, so a pipeline heals the same way wherever it runs.
//
// Ownership: the supervisor owns its service, coordinators and schedulers;
// `storage` and the listener are borrowed and must outlive run().
// Threading: run() blocks the calling thread; stop(), cancel(), stats(),
// with_scheduler() and events() may be called from any thread at any time.
// Listener callbacks run on the thread that called run(), except
// on_event(): decisions made on worker, I/O and coordinator threads are
// queued and delivered in order by the supervisor's event thread (so a
// listener that stores events never blocks a worker); run() returns after
// every event was delivered.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/checkpoint/coordinator.h"
#include "engine/core/metrics.h"
#include "engine/core/status.h"
#include "engine/healing/service.h"
#include "engine/healing/settings.h"
#include "engine/plan/plan.h"
#include "engine/runtime/scheduler.h"

namespace df::checkpoint {
class CheckpointStorage;
}

namespace df::healing {

struct SupervisorOptions {
  std::shared_ptr<const plan::Plan> plan;
  // Workers, batch and buffer sizes, memory budget. state_root and
  // snapshot_root are set by the supervisor from work_dir.
  runtime::RunOptions run_options;
  // The run's working directory: live keyed state in <work_dir>/state,
  // snapshots in <work_dir>/snapshots; both are emptied before a restart.
  // Empty: operators keep state in memory and no checkpoints are taken.
  std::string work_dir;
  // Null: no checkpoints, and a failure cannot resume (see healing below).
  checkpoint::CheckpointStorage* storage = nullptr;
  checkpoint::CheckpointSettings checkpoint;
  HealingSettings healing;
};

// What the supervised run came to.
struct SupervisedOutcome {
  Status status;         // OK, or why the run failed / was cancelled
  bool stopped = false;  // ended by stop() or cancel()
  bool gave_up = false;  // the restart strategy refused another restart
  // Restoring the checkpoint failed (before any task ran): the plan does
  // not fit it (kInvalidArgument) or no checkpoint was usable. Not retried.
  bool restore_failed = false;
  uint64_t restarts = 0;                     // attempts after the first
  uint64_t data_errors = 0;                  // rows skipped as bad, over all attempts
  checkpoint::CoordinatorStats checkpoints;  // of the last attempt
  double elapsed_seconds = 0;
  // "gen 1000 out | out 1000 in; 0 errors; 3 checkpoints (last 3)": the
  // last attempt's counts, as `exec` prints them.
  std::string summary;
  // One sentence for the user: status.message(), prefixed with the
  // restart strategy's verdict when it gave up. Empty on success.
  std::string error;
  // Per Kafka source node, the lag of each partition it held when the last
  // attempt ended (the scheduler is gone by the time run() returns).
  std::map<std::string, std::vector<runtime::KafkaClientStatus::PartitionLag>> consumer_lag;
};

// Live numbers of the supervised run, for progress lines and metrics.
struct SupervisorStats {
  int attempt = 0;  // 0 before run(), then 1-based
  uint64_t restarts = 0;
  std::optional<uint64_t> resumed_from;      // checkpoint id the current attempt restored
  checkpoint::CoordinatorStats checkpoints;  // current attempt's coordinator
  HealingCounters healing;
  // Nodes of the current attempt whose circuit breaker is open (in some
  // subtask), sorted: the pipeline is degraded while any is.
  std::vector<std::string> open_breakers;
};

class RunSupervisor {
 public:
  // Hooks for the caller; every member may be left empty.
  struct Listener {
    // A decision of the SelfHealingService (printed by exec, stored by the server).
    std::function<void(const RunEvent&)> on_event;
    // The attempt restored checkpoint `id` in `seconds` (before it runs).
    std::function<void(uint64_t id, double seconds, const std::vector<std::string>& warnings)>
        on_resumed;
  };

  RunSupervisor(SupervisorOptions options, Listener listener = {});
  ~RunSupervisor();
  RunSupervisor(const RunSupervisor&) = delete;
  RunSupervisor& operator=(const RunSupervisor&) = delete;

  // Runs attempts until the pipeline ends, fails for good, or is stopped.
  // Call once.
  SupervisedOutcome run();

  // Graceful stop: with checkpoints, take a final checkpoint and end the
  // run there (a later run resumes from it); without, drain the sources.
  // Also ends a pending restart delay. Idempotent.
  void stop();
  // Abort now: no final checkpoint; sinks roll back uncommitted output.
  void cancel();
  bool stopping() const;
  // One checkpoint now, besides the interval (POST .../checkpoints). False
  // when no attempt with checkpoints is running.
  bool request_checkpoint();

  // Calls f(scheduler) under the supervisor's lock when an attempt is
  // running (not during a restart delay). Keep f short: it blocks stop().
  void with_scheduler(const std::function<void(const runtime::Scheduler&)>& f) const;
  SupervisorStats stats() const;
  // The newest healing events (at most 1000), oldest first.
  std::vector<RunEvent> events() const;
  // Durations of the checkpoints completed so far, over all attempts.
  metrics::HistogramSnapshot checkpoint_durations() const {
    return checkpoint_durations_.snapshot();
  }

 private:
  metrics::Histogram checkpoint_durations_;  // before options_: they point at it
  SupervisorOptions options_;
  Listener listener_;
  SelfHealingService healer_;

  mutable std::mutex mu_;
  runtime::Scheduler* scheduler_ = nullptr;                   // current attempt's, guarded by mu_
  checkpoint::CheckpointCoordinator* coordinator_ = nullptr;  // guarded by mu_
  int stop_requests_ = 0;                                     // guarded by mu_
  bool cancelled_ = false;                                    // guarded by mu_
  SupervisorStats stats_;                                     // guarded by mu_
  std::set<std::pair<std::string, int>> open_breakers_;       // (node, subtask), guarded by mu_

  // Events on their way to listener_.on_event (see the threading note).
  void queue_event(const RunEvent& event);
  void deliver_events();  // the event thread
  std::mutex events_mu_;
  std::condition_variable events_cv_;
  std::deque<RunEvent> pending_events_;  // guarded by events_mu_
  bool events_open_ = false;             // the event thread runs; guarded by events_mu_
  std::thread event_thread_;
};

// The checkpoint settings of a pipeline whose file is `pipeline_text`: its
// checkpoint: section, with `default_interval` when it names none.
checkpoint::CheckpointSettings checkpoint_settings(const plan::PipelineSettings& settings,
                                                   const std::string& pipeline_text,
                                                   Millis default_interval);

// "gen 1000 out | big 1000 in 412 out | out 412 in": per node rows in/out
// and errors; `human` abbreviates counts (1.2M) and leaves out watermarks.
std::string describe_node_counts(const plan::Plan& plan, const runtime::RunMetrics& metrics,
                                 bool human);
// 1234567 -> "1.2M" (counts up to 100k are printed in full).
std::string human_count(uint64_t n);

}  // namespace df::healing
