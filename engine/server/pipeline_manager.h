// PipelineManager: the server's pipelines and runs (DESIGN §8). It keeps
// pipelines and their versions in the MetadataStore, runs each started
// pipeline on its own thread through healing::RunSupervisor (checkpoints
// under the server's checkpoint storage, restarts by the pipeline's healing
// settings), records every run's status changes and healing events, and
// resumes on startup every pipeline a previous server left running.
//
// Pipeline files are compiled by a PipelineCompiler the caller provides
// (config/ sits above the server: the server never parses YAML itself).
//
// Ownership: the manager owns the store, the checkpoint storages and the run
// threads. Threading: every public method is thread-safe and returns without
// waiting for a run (a stop is requested, not awaited), except shutdown()
// and wait_for_run(). One mutex serializes changes to pipelines; run threads
// take it only to record their end.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/checkpoint/history.h"
#include "engine/checkpoint/state_transfer.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/metrics.h"
#include "engine/core/status.h"
#include "engine/core/time.h"
#include "engine/healing/failure.h"
#include "engine/healing/settings.h"
#include "engine/plan/plan.h"
#include "engine/runtime/scheduler.h"
#include "engine/server/metadata_store.h"

namespace df::server {

// A pipeline file turned into a plan (config::compile_pipeline does it).
struct CompiledPipeline {
  std::string name;
  std::shared_ptr<const plan::Plan> plan;
  healing::HealingSettings healing;
  bool restart_set = false;  // the file chose `healing.restart` itself
};
struct CompileResult {
  std::optional<CompiledPipeline> pipeline;
  std::vector<std::string> errors;  // every problem, "source:line:col: message"
};
// `text` is YAML or JSON; `source` names it in messages.
using PipelineCompiler =
    std::function<CompileResult(const std::string& text, const std::string& source)>;

struct ManagerOptions {
  std::string data_dir;  // metadata in <data_dir>/metadata, live state in <data_dir>/work/<name>
  // Checkpoint storage URL or directory for pipelines whose file names none;
  // empty: <data_dir>/checkpoints.
  std::string checkpoint_storage;
  // Workers, batch and buffer sizes, state memory budget of every run
  // (state and snapshot roots are set per run).
  runtime::RunOptions run_options;
  // Checkpoint interval of pipelines whose file sets none.
  Millis checkpoint_interval{10000};
  // Runs at once; a start beyond it is refused (409).
  size_t max_running = 16;
  size_t max_events_per_run = 1000;
};

// A pipeline as the API shows it.
struct PipelineView {
  PipelineRecord record;
  VersionRecord version;  // the newest
  // stopped | running | failed | succeeded (from the newest run)
  std::string status;
  std::optional<RunRecord> current_run;
};

// Live numbers of one node of a running pipeline (this attempt).
struct NodeSnapshot {
  std::string id;
  runtime::NodeRole role = runtime::NodeRole::kTransform;
  uint64_t rows_in = 0;
  uint64_t rows_out = 0;
  uint64_t data_errors = 0;
  uint64_t dead_letters = 0;  // of data_errors, those sent to the dead-letter sink
  uint64_t backpressure_events = 0;
  metrics::HistogramSnapshot latency;  // sinks: source-to-sink seconds
  // Sinks: the circuit breaker is open in some subtask (healing; degraded).
  bool circuit_breaker_open = false;
  // Kafka nodes: lag per partition the sources hold, and how many brokers
  // their clients reach (-1: not a Kafka node, or no report yet).
  std::vector<runtime::KafkaClientStatus::PartitionLag> kafka_lag;
  int kafka_brokers_up = -1;
  // Non-empty while a client of the node reaches no broker: why (degraded).
  std::string kafka_brokers_problem;
};

// Live numbers of one pipeline, for the metrics endpoint.
struct PipelineSnapshot {
  std::string name;
  bool running = false;
  bool failed = false;            // not running, and its newest run failed
  std::string run_id;             // the newest run
  uint64_t events_processed = 0;  // rows the sources emitted (current attempt)
  uint64_t events_failed = 0;     // rows skipped as bad (current attempt)
  uint64_t backpressure_events = 0;
  uint64_t restarts = 0;
  uint64_t dead_letters = 0;
  uint64_t checkpoints_completed = 0;
  uint64_t checkpoints_failed = 0;  // failed or timed out
  double last_checkpoint_seconds = 0;
  uint64_t last_checkpoint_bytes = 0;
  metrics::HistogramSnapshot checkpoint_durations;  // the run's, over all attempts
  std::vector<NodeSnapshot> nodes;                  // in plan order, when running
  // Self-healing decisions of the run, by failure class and action.
  std::map<std::pair<healing::FailureClass, healing::Action>, uint64_t> recoveries;
};

class PipelineManager {
 public:
  // Opens the store, records runs a previous process left pending/running
  // as ended, and starts again every pipeline that should be running (each
  // resumes from its last checkpoint).
  static Result<std::unique_ptr<PipelineManager>> open(ManagerOptions options,
                                                       PipelineCompiler compiler);
  ~PipelineManager();  // shutdown(30 s) unless shutdown() ran
  PipelineManager(const PipelineManager&) = delete;
  PipelineManager& operator=(const PipelineManager&) = delete;

  // A new pipeline from a file (`format`: "yaml" | "json"). kInvalidArgument
  // with every problem in `problems`; kAlreadyExists when the name is taken.
  Result<PipelineView> create(const std::string& body, const std::string& format, bool start,
                              std::vector<std::string>* problems = nullptr);
  // A new version of `name`. `if_match`: the version the caller saw (a
  // mismatch is kFailedPrecondition). A pipeline that is running or has
  // checkpoints must keep its operator state: otherwise kFailedPrecondition
  // with the reason, unless allow_state_loss (its checkpoints are then
  // dropped). A running pipeline stops with a final checkpoint and starts
  // again on the new version.
  Result<PipelineView> update(const std::string& name, const std::string& body,
                              const std::string& format, std::optional<uint64_t> if_match,
                              bool allow_state_loss, std::vector<std::string>* problems = nullptr);
  // kFailedPrecondition while running.
  Status remove(const std::string& name, std::optional<uint64_t> if_match);
  Result<PipelineView> get(const std::string& name) const;
  Result<std::vector<PipelineView>> list() const;

  // A new run of the newest version (resuming from the last checkpoint).
  Result<RunRecord> start(const std::string& name);
  // Graceful stop of the running run: final checkpoint, then `cancelled`.
  Result<RunRecord> stop(const std::string& name);
  // The same, by run id (cooperative: at the next safe point).
  Result<RunRecord> cancel(const std::string& run_id);

  Result<RunRecord> run(const std::string& run_id) const;              // live counters when running
  Result<std::vector<RunRecord>> runs(const std::string& name) const;  // newest first
  Result<std::vector<std::string>> events(const std::string& run_id) const;  // JSON objects
  // Blocks until the run ended (or `timeout`); the run as it is then.
  Result<RunRecord> wait_for_run(const std::string& run_id, Millis timeout) const;

  Result<std::vector<checkpoint::CheckpointInfo>> checkpoints(const std::string& name);
  Status request_checkpoint(const std::string& name);  // running pipelines only
  // Stopped pipelines only; see checkpoint::rollback.
  Result<uint64_t> rollback(const std::string& name, std::optional<int> offset,
                            std::optional<uint64_t> id);
  // The current checkpoint's state as a "dataflow-state" document.
  Status export_state(const std::string& name, std::ostream& out);
  // Stopped pipelines only: the document becomes the current checkpoint.
  Result<checkpoint::ImportResult> import_state(const std::string& name, std::istream& in);

  // Live updates of a run, one JSON object per call, from run threads and
  // logging threads: {"type":"status","run":{...}}, {"type":"event",
  // "event":{...}} and {"type":"log","log":{...}} (lines logged with the
  // run's id in their LogContext). `sink` must be thread-safe and quick.
  // Returns a token for unsubscribe(); after unsubscribe() returns, `sink`
  // may still be running once on another thread but is not called again.
  // Before returning, subscribe() hands `sink` the run's recent log lines
  // (the last kRecentLogLines, kept for the last kRecentLogRuns runs that
  // logged), oldest first; live messages follow, none lost or repeated.
  uint64_t subscribe(const std::string& run_id, std::function<void(const std::string&)> sink);
  void unsubscribe(uint64_t token);
  static constexpr size_t kRecentLogLines = 200;
  static constexpr size_t kRecentLogRuns = 64;

  std::vector<PipelineSnapshot> snapshot() const;
  // For the web console (console.h): the plan of `name` (the running
  // attempt's, else its newest version compiled) and, while it runs, `live`
  // called with the run's scheduler under the manager's lock (a quick read of
  // metrics or channel stats; it must not call back into the manager).
  // kNotFound for an unknown pipeline.
  Result<std::shared_ptr<const plan::Plan>> inspect(
      const std::string& name, const std::function<void(const runtime::Scheduler&)>& live) const;
  // True once open() finished resuming pipelines, false once shutdown began.
  bool ready() const;
  const MetadataStore& store() const { return *store_; }

  // Stops accepting starts, stops every run with a final checkpoint and
  // waits up to `grace`; runs still going then are aborted and recorded as
  // cut. Pipelines stay marked to resume on the next start. Returns how many
  // runs were cut. Idempotent.
  size_t shutdown(Millis grace);

 private:
  struct Active;
  PipelineManager(ManagerOptions options, PipelineCompiler compiler,
                  std::unique_ptr<MetadataStore> store);
  Status recover();
  Result<CompiledPipeline> compile(const std::string& text, const std::string& source,
                                   std::vector<std::string>* problems) const;
  Result<checkpoint::CheckpointStorage*> storage_for(const plan::Plan& plan);
  // The checkpoint storage of `name`'s newest version (which it puts in
  // `version`, compiled in `compiled`);
  // kFailedPrecondition when `must_be_stopped` and it runs. mu_ held.
  Result<checkpoint::CheckpointStorage*> checkpoint_storage_locked(const std::string& name,
                                                                   bool must_be_stopped,
                                                                   VersionRecord& version,
                                                                   CompiledPipeline& compiled);
  Result<PipelineView> view_locked(const PipelineRecord& record) const;
  Result<RunRecord> start_locked(const std::string& name);  // mu_ held
  void run_thread(std::shared_ptr<Active> active);
  void finish_run(const std::shared_ptr<Active>& active);
  // `is_log`: a log line, also kept among the run's recent lines.
  void publish(const std::string& run_id, const std::string& message, bool is_log = false);
  void fill_live(RunRecord& run) const;  // mu_ held
  Status drop_checkpoints(const std::string& name, checkpoint::CheckpointStorage& storage);
  void reap_locked();

  const ManagerOptions options_;
  const PipelineCompiler compiler_;
  const std::unique_ptr<MetadataStore> store_;

  mutable std::mutex mu_;
  mutable std::condition_variable ended_;                  // a run ended
  std::map<std::string, std::shared_ptr<Active>> active_;  // by pipeline; guarded by mu_
  std::vector<std::shared_ptr<Active>> finished_;          // threads to join; guarded by mu_
  std::map<std::string, std::unique_ptr<checkpoint::CheckpointStorage>> storages_;  // by URL
  bool ready_ = false;
  bool shutting_down_ = false;
  uint64_t run_counter_ = 0;

  struct Subscriber;
  mutable std::mutex subs_mu_;
  uint64_t next_token_ = 1;                                      // guarded by subs_mu_
  std::map<uint64_t, std::shared_ptr<Subscriber>> subscribers_;  // guarded by subs_mu_
  // The recent log lines of each run and the runs in the order they first
  // logged (the oldest is forgotten first); guarded by subs_mu_.
  std::map<std::string, std::deque<std::string>> recent_logs_;
  std::deque<std::string> recent_log_runs_;
  uint64_t log_listener_ = 0;
};

// Why a pipeline running `current` cannot resume from its state on `next`
// (a stateful node gone, its type or parallelism changed), or "" when it can.
// The same rule as CheckpointCoordinator::restore's fit check, on plans.
std::string state_incompatibility(const plan::Plan& current, const plan::Plan& next);

// Pipeline names become directory names and storage prefixes.
Status validate_pipeline_name(const std::string& name);

}  // namespace df::server
