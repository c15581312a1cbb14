#include "engine/server/pipeline_manager.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <utility>

#include "engine/checkpoint/coordinator.h"
#include "engine/checkpoint/guarded_storage.h"
#include "engine/checkpoint/manifest.h"
#include "engine/core/log.h"
#include "engine/healing/supervisor.h"

namespace df::server {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// One run: its supervisor and thread. `run` and the flags are guarded by the
// manager's mu_; the supervisor is thread-safe.
struct PipelineManager::Active {
  std::string name;
  RunRecord run;
  CompiledPipeline compiled;
  std::unique_ptr<healing::RunSupervisor> supervisor;
  std::thread thread;
  bool done = false;
  bool user_stop = false;         // stop()/cancel(): do not resume on the next server start
  bool shutdown_stop = false;     // shutdown(): resume on the next server start
  bool cut = false;               // shutdown's grace ran out: aborted without a final checkpoint
  bool restart_after = false;     // a PUT: start the newest version once this run ended
  bool drop_state_after = false;  // ... without the old state (allow_state_loss)
};

namespace {

std::string sentence(std::string m) {
  if (!m.empty() && m.back() != '.') m += '.';
  return m;
}

std::string new_run_id(uint64_t counter) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t r;
  {
    std::lock_guard lock(mu);
    r = rng();
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "r-%llx-%llu-%04llx", static_cast<unsigned long long>(now_ms()),
                static_cast<unsigned long long>(counter),
                static_cast<unsigned long long>(r & 0xffff));
  return buf;
}

// What a run's WebSocket streams get when its status changes.
std::string status_message(const RunRecord& run) {
  return "{\"type\":\"status\",\"run\":" + run_to_json(run) + "}";
}

}  // namespace

std::string state_incompatibility(const plan::Plan& current, const plan::Plan& next) {
  std::string reasons;
  auto add = [&](const std::string& r) {
    if (!reasons.empty()) reasons += "; ";
    reasons += r;
  };
  for (const plan::LogicalNode& old : current.nodes) {
    auto it = std::find_if(next.nodes.begin(), next.nodes.end(),
                           [&](const plan::LogicalNode& n) { return n.id == old.id; });
    if (it == next.nodes.end()) {
      add("node '" + old.id + "' (" + old.type + ") is gone, and the checkpoint holds its state");
    } else if (it->type != old.type) {
      add("node '" + old.id + "' changes type from " + old.type + " to " + it->type);
    } else if (it->parallelism != old.parallelism) {
      add("node '" + old.id + "' changes parallelism from " + std::to_string(old.parallelism) +
          " to " + std::to_string(it->parallelism) + " (rescaling state is not supported)");
    }
  }
  return reasons;
}

Status validate_pipeline_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 128 && name[0] != '.' && name[0] != '-' &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                  });
  if (ok) return Status::OK();
  return Status::invalid("pipeline name '" + name +
                         "' must be 1 to 128 letters, digits, '-', '_' or '.', not starting "
                         "with '.' or '-'");
}

PipelineManager::PipelineManager(ManagerOptions options, PipelineCompiler compiler,
                                 std::unique_ptr<MetadataStore> store)
    : options_(std::move(options)), compiler_(std::move(compiler)), store_(std::move(store)) {}

Result<std::unique_ptr<PipelineManager>> PipelineManager::open(ManagerOptions options,
                                                               PipelineCompiler compiler) {
  if (options.data_dir.empty()) return Status::invalid("the server needs a data_dir");
  DF_ASSIGN_OR_RETURN(auto store,
                      MetadataStore::open((fs::path(options.data_dir) / "metadata").string(),
                                          options.max_events_per_run));
  std::unique_ptr<PipelineManager> manager(
      new PipelineManager(std::move(options), std::move(compiler), std::move(store)));
  PipelineManager* raw = manager.get();
  manager->log_listener_ = add_log_listener([raw](const LogRecord& record) {
    if (record.context.run_id.empty()) return;
    raw->publish(record.context.run_id,
                 "{\"type\":\"log\",\"log\":" + log_record_json(record) + "}", true);
  });
  DF_RETURN_IF_ERROR(manager->recover());
  return manager;
}

PipelineManager::~PipelineManager() {
  shutdown(Millis(30000));
  if (log_listener_ != 0) remove_log_listener(log_listener_);
}

Status PipelineManager::recover() {
  // Runs a previous process left unfinished ended with it.
  DF_ASSIGN_OR_RETURN(auto runs, store_->runs());
  for (RunRecord& r : runs) {
    if (run_status_final(r.status)) continue;
    r.error = "the server stopped while the run was " + std::string(run_status_name(r.status));
    r.status = RunStatus::kFailed;
    r.ended_ms = now_ms();
    DF_RETURN_IF_ERROR(store_->put_run(r));
  }
  DF_ASSIGN_OR_RETURN(auto pipelines, store_->pipelines());
  std::unique_lock lock(mu_);
  for (const PipelineRecord& p : pipelines) {
    if (!p.desired_running) continue;
    auto started = start_locked(p.name);
    if (!started.ok()) {
      log_warn("server", "cannot resume pipeline " + p.name + ": " + started.status().message());
    } else {
      log_info("server", "resuming pipeline " + p.name + " as run " + started->id);
    }
  }
  ready_ = true;
  return Status::OK();
}

Result<CompiledPipeline> PipelineManager::compile(const std::string& text,
                                                  const std::string& source,
                                                  std::vector<std::string>* problems) const {
  CompileResult result = compiler_(text, source);
  if (!result.pipeline || !result.errors.empty()) {
    if (result.errors.empty()) result.errors.push_back(source + ": the pipeline is invalid");
    const size_t n = result.errors.size();
    if (problems) *problems = result.errors;
    return Status::invalid("the pipeline has " + std::to_string(n) +
                           (n == 1 ? " problem" : " problems"));
  }
  DF_RETURN_IF_ERROR(validate_pipeline_name(result.pipeline->name));
  return std::move(*result.pipeline);
}

Result<checkpoint::CheckpointStorage*> PipelineManager::storage_for(const plan::Plan& plan) {
  std::string url = plan.settings.checkpoint_storage;
  if (url.empty()) url = options_.checkpoint_storage;
  if (url.empty()) url = (fs::path(options_.data_dir) / "checkpoints").string();
  auto it = storages_.find(url);
  if (it != storages_.end()) return it->second.get();
  auto opened = checkpoint::open_storage(url);
  if (!opened.ok()) {
    return opened.status().with_context("cannot open checkpoint storage " + url);
  }
  checkpoint::CheckpointStorage* raw = opened->get();
  storages_.emplace(url, std::move(opened).value());
  return raw;
}

void PipelineManager::fill_live(RunRecord& run) const {
  for (const auto& [name, a] : active_) {
    if (a->run.id != run.id || a->done) continue;
    run.status = a->run.status;
    const healing::SupervisorStats stats = a->supervisor->stats();
    run.restarts = stats.restarts;
    run.checkpoints = stats.checkpoints.completed;
    if (stats.checkpoints.completed > 0) run.last_checkpoint = stats.checkpoints.last_id;
  }
}

Result<PipelineView> PipelineManager::view_locked(const PipelineRecord& record) const {
  PipelineView view;
  view.record = record;
  DF_ASSIGN_OR_RETURN(view.version, store_->version(record.name, record.version));
  if (!record.current_run.empty()) {
    auto run = store_->run(record.current_run);
    if (run.ok()) {
      fill_live(*run);
      view.current_run = std::move(run).value();
    }
  }
  auto it = active_.find(record.name);
  if (it != active_.end() && !it->second->done) {
    view.status = "running";
  } else if (view.current_run && view.current_run->status == RunStatus::kFailed) {
    view.status = "failed";
  } else if (view.current_run && view.current_run->status == RunStatus::kSucceeded) {
    view.status = "succeeded";
  } else {
    view.status = "stopped";
  }
  return view;
}

Result<PipelineView> PipelineManager::create(const std::string& body, const std::string& format,
                                             bool start, std::vector<std::string>* problems) {
  DF_ASSIGN_OR_RETURN(CompiledPipeline compiled, compile(body, "pipeline." + format, problems));
  std::unique_lock lock(mu_);
  if (shutting_down_) return Status::unavailable("the server is shutting down");
  auto existing = store_->pipeline(compiled.name);
  if (existing.ok()) {
    return Status::already_exists("pipeline '" + compiled.name +
                                  "' exists already; PUT /pipelines/" + compiled.name +
                                  " stores a new version");
  }
  if (existing.status().code() != StatusCode::kNotFound) return existing.status();
  const int64_t now = now_ms();
  PipelineRecord record{compiled.name, 1, now, now, false, ""};
  VersionRecord version{compiled.name, 1, body, format, now};
  DF_RETURN_IF_ERROR(store_->put_version(record, version));
  if (start) DF_RETURN_IF_ERROR(start_locked(compiled.name).status());
  DF_ASSIGN_OR_RETURN(PipelineRecord stored, store_->pipeline(compiled.name));
  return view_locked(stored);
}

Result<PipelineView> PipelineManager::update(const std::string& name, const std::string& body,
                                             const std::string& format,
                                             std::optional<uint64_t> if_match,
                                             bool allow_state_loss,
                                             std::vector<std::string>* problems) {
  DF_ASSIGN_OR_RETURN(CompiledPipeline compiled, compile(body, "pipeline." + format, problems));
  if (compiled.name != name) {
    return Status::invalid("the body is pipeline '" + compiled.name + "', not '" + name + "'");
  }
  std::unique_lock lock(mu_);
  if (shutting_down_) return Status::unavailable("the server is shutting down");
  DF_ASSIGN_OR_RETURN(PipelineRecord record, store_->pipeline(name));
  if (if_match && *if_match != record.version) {
    return Status::failed_precondition("pipeline '" + name + "' is at version " +
                                       std::to_string(record.version) + ", not " +
                                       std::to_string(*if_match));
  }
  DF_ASSIGN_OR_RETURN(checkpoint::CheckpointStorage * storage, storage_for(*compiled.plan));
  auto it = active_.find(name);
  std::shared_ptr<Active> running = it != active_.end() && !it->second->done ? it->second : nullptr;

  // The plan whose state the new version must take over: the running one
  // (its final checkpoint), else the one of the current checkpoint.
  std::shared_ptr<const plan::Plan> current;
  if (running) {
    current = running->compiled.plan;
  } else {
    auto manifest = checkpoint::load_current_manifest(*storage, name);
    if (manifest.ok()) {
      DF_ASSIGN_OR_RETURN(std::string text, checkpoint::load_pipeline_text(*storage, *manifest));
      auto old = compile(text, "checkpoint " + std::to_string(manifest->id), nullptr);
      if (old.ok()) current = old->plan;
    } else if (manifest.status().code() != StatusCode::kNotFound) {
      return manifest.status();
    }
  }
  bool drop_state = false;
  if (current) {
    const std::string why = state_incompatibility(*current, *compiled.plan);
    if (!why.empty()) {
      if (!allow_state_loss) {
        return Status::failed_precondition(
            "version " + std::to_string(record.version + 1) + " of pipeline '" + name +
            "' would drop operator state: " + why + "; PUT with ?allow_state_loss=true to " +
            "start it without its state");
      }
      drop_state = true;
    }
  }
  record.version += 1;
  record.updated_ms = now_ms();
  VersionRecord version{name, record.version, body, format, record.updated_ms};
  DF_RETURN_IF_ERROR(store_->put_version(record, version));
  if (running) {
    // Final checkpoint, then the run thread starts the new version.
    running->restart_after = true;
    running->drop_state_after = drop_state;
    running->supervisor->stop();
  } else if (drop_state) {
    DF_RETURN_IF_ERROR(drop_checkpoints(name, *storage));
  }
  return view_locked(record);
}

Status PipelineManager::drop_checkpoints(const std::string& name,
                                         checkpoint::CheckpointStorage& storage) {
  DF_ASSIGN_OR_RETURN(auto objects, storage.list(name + "/"));
  // _CURRENT first, so a failure half-way leaves no current checkpoint.
  DF_RETURN_IF_ERROR(storage.remove(checkpoint::current_key(name)));
  for (const checkpoint::ObjectInfo& o : objects) DF_RETURN_IF_ERROR(storage.remove(o.key));
  log_info("server", "dropped the checkpoints of pipeline " + name);
  return Status::OK();
}

Status PipelineManager::remove(const std::string& name, std::optional<uint64_t> if_match) {
  std::unique_lock lock(mu_);
  DF_ASSIGN_OR_RETURN(PipelineRecord record, store_->pipeline(name));
  if (if_match && *if_match != record.version) {
    return Status::failed_precondition("pipeline '" + name + "' is at version " +
                                       std::to_string(record.version) + ", not " +
                                       std::to_string(*if_match));
  }
  auto it = active_.find(name);
  if (it != active_.end() && !it->second->done) {
    return Status::failed_precondition("pipeline '" + name + "' is running; stop it first");
  }
  // Its checkpoints go too: a new pipeline of the same name starts afresh.
  DF_ASSIGN_OR_RETURN(VersionRecord version, store_->version(name, record.version));
  auto compiled = compile(version.spec, name, nullptr);
  if (compiled.ok()) {
    DF_ASSIGN_OR_RETURN(checkpoint::CheckpointStorage * storage, storage_for(*compiled->plan));
    DF_RETURN_IF_ERROR(drop_checkpoints(name, *storage));
  }
  DF_RETURN_IF_ERROR(store_->remove_pipeline(name));
  std::error_code ec;
  fs::remove_all(fs::path(options_.data_dir) / "work" / name, ec);
  return Status::OK();
}

Result<PipelineView> PipelineManager::get(const std::string& name) const {
  std::lock_guard lock(mu_);
  DF_ASSIGN_OR_RETURN(PipelineRecord record, store_->pipeline(name));
  return view_locked(record);
}

Result<std::vector<PipelineView>> PipelineManager::list() const {
  std::lock_guard lock(mu_);
  DF_ASSIGN_OR_RETURN(auto records, store_->pipelines());
  std::vector<PipelineView> out;
  for (const PipelineRecord& r : records) {
    DF_ASSIGN_OR_RETURN(PipelineView v, view_locked(r));
    out.push_back(std::move(v));
  }
  return out;
}

Result<RunRecord> PipelineManager::start(const std::string& name) {
  std::unique_lock lock(mu_);
  return start_locked(name);
}

void PipelineManager::reap_locked() {
  for (auto it = finished_.begin(); it != finished_.end();) {
    std::shared_ptr<Active>& a = *it;
    if (!a->done || a->thread.get_id() == std::this_thread::get_id()) {
      ++it;
      continue;
    }
    // done is set at the very end of the run thread: joining is immediate.
    if (a->thread.joinable()) a->thread.join();
    it = finished_.erase(it);
  }
}

Result<RunRecord> PipelineManager::start_locked(const std::string& name) {
  if (shutting_down_) return Status::unavailable("the server is shutting down");
  DF_ASSIGN_OR_RETURN(PipelineRecord record, store_->pipeline(name));
  auto it = active_.find(name);
  if (it != active_.end() && !it->second->done) {
    return Status::failed_precondition("pipeline '" + name + "' is running already (run " +
                                       it->second->run.id + ")");
  }
  const size_t running = static_cast<size_t>(std::count_if(
      active_.begin(), active_.end(), [](const auto& kv) { return !kv.second->done; }));
  if (running >= options_.max_running) {
    return Status::failed_precondition("the server runs " + std::to_string(running) +
                                       " pipelines, its limit; stop one first");
  }
  if (it != active_.end()) {
    finished_.push_back(it->second);
    active_.erase(it);
  }
  reap_locked();
  DF_ASSIGN_OR_RETURN(VersionRecord version, store_->version(name, record.version));
  DF_ASSIGN_OR_RETURN(
      CompiledPipeline compiled,
      compile(version.spec, name + " version " + std::to_string(version.version), nullptr));
  DF_ASSIGN_OR_RETURN(checkpoint::CheckpointStorage * storage, storage_for(*compiled.plan));
  const plan::Plan& plan = *compiled.plan;

  auto active = std::make_shared<Active>();
  active->name = name;
  active->run.id = new_run_id(++run_counter_);
  active->run.pipeline = name;
  active->run.version = version.version;
  active->run.status = RunStatus::kPending;
  active->run.started_ms = now_ms();

  healing::SupervisorOptions so;
  so.plan = compiled.plan;
  so.run_options = options_.run_options;
  if (plan.settings.batch_size) so.run_options.batch_size = *plan.settings.batch_size;
  if (!plan.settings.dead_letter_sink.empty()) {
    so.run_options.dead_letter_max_rate = plan.settings.dead_letter_max_rate;
  }
  // Live state starts empty: the supervisor restores it from the checkpoint.
  const fs::path work = fs::path(options_.data_dir) / "work" / name;
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work, ec);
  if (ec) return Status::io_error("cannot create " + work.string() + ": " + ec.message());
  so.work_dir = work.string();
  so.storage = storage;
  so.checkpoint =
      healing::checkpoint_settings(plan.settings, version.spec, options_.checkpoint_interval);
  so.checkpoint.pipeline = name;
  so.healing = compiled.healing;

  healing::RunSupervisor::Listener listener;
  const std::string run_id = active->run.id;
  listener.on_event = [this, run_id](const healing::RunEvent& e) {
    const std::string json = e.to_json();
    Status s = store_->append_event(run_id, json);
    if (!s.ok()) log_warn("server", "cannot store an event of run " + run_id + ": " + s.message());
    publish(run_id, "{\"type\":\"event\",\"event\":" + json + "}");
  };
  active->compiled = std::move(compiled);
  active->supervisor = std::make_unique<healing::RunSupervisor>(std::move(so), std::move(listener));

  DF_RETURN_IF_ERROR(store_->put_run(active->run));
  record.current_run = active->run.id;
  record.desired_running = true;
  DF_RETURN_IF_ERROR(store_->put_pipeline(record));
  active_[name] = active;
  publish(run_id, status_message(active->run));
  active->thread = std::thread([this, active] { run_thread(active); });
  return active->run;
}

void PipelineManager::run_thread(std::shared_ptr<Active> active) {
  // Lines this thread logs carry the run (and reach its WebSocket streams).
  LogContext log_context({.pipeline = active->name, .run_id = active->run.id});
  {
    std::lock_guard lock(mu_);
    if (!active->user_stop && !active->shutdown_stop) {
      active->run.status = RunStatus::kRunning;
      Status s = store_->put_run(active->run);
      if (!s.ok()) log_warn("server", s.message());
      publish(active->run.id, status_message(active->run));
    }
  }
  healing::SupervisedOutcome outcome = active->supervisor->run();

  std::unique_lock lock(mu_);
  RunRecord& run = active->run;
  run.ended_ms = now_ms();
  run.restarts = outcome.restarts;
  run.checkpoints = outcome.checkpoints.completed;
  if (outcome.checkpoints.completed > 0) run.last_checkpoint = outcome.checkpoints.last_id;
  const bool stopped =
      outcome.stopped || active->user_stop || active->shutdown_stop || active->restart_after;
  if (stopped && (outcome.status.ok() || outcome.status.code() == StatusCode::kCancelled)) {
    run.status = RunStatus::kCancelled;
    if (active->cut) {
      run.error = "the server's shutdown grace period ran out before the final checkpoint";
    }
  } else if (outcome.status.ok()) {
    run.status = RunStatus::kSucceeded;
  } else {
    run.status = RunStatus::kFailed;
    run.error = sentence(outcome.error.empty() ? outcome.status.message() : outcome.error);
  }
  Status s = store_->put_run(run);
  if (!s.ok()) log_warn("server", s.message());
  // Resume on the next server start only when the server stopped it.
  auto record = store_->pipeline(active->name);
  const bool restart = active->restart_after && !active->user_stop && !shutting_down_;
  if (record.ok() && record->current_run == run.id) {
    const bool keep = restart || (active->shutdown_stop && !active->user_stop);
    if (record->desired_running != keep) {
      record->desired_running = keep;
      s = store_->put_pipeline(*record);
      if (!s.ok()) log_warn("server", s.message());
    }
  }
  log_info("server", "run " + run.id + " of pipeline " + active->name + " ended " +
                         std::string(run_status_name(run.status)) +
                         (run.error.empty() ? "" : ": " + run.error));
  publish(run.id, status_message(run));
  // A PUT that gave up the state drops it even when the server stops
  // before the new version starts (the next server would resume it).
  Status dropped;
  if (active->restart_after && active->drop_state_after && !active->user_stop) {
    auto storage = storage_for(*active->compiled.plan);
    dropped = storage.ok() ? drop_checkpoints(active->name, **storage) : storage.status();
    if (!dropped.ok()) {
      log_warn("server",
               "cannot drop the state of pipeline " + active->name + ": " + dropped.message());
    }
  }
  if (restart && record.ok() && dropped.ok()) {
    active->done = true;  // so start_locked sees the pipeline stopped
    auto next = start_locked(active->name);
    if (!next.ok()) {
      log_warn("server", "cannot restart pipeline " + active->name +
                             " on its new version: " + next.status().message());
    }
  }
  active->done = true;
  ended_.notify_all();
}

Result<RunRecord> PipelineManager::stop(const std::string& name) {
  std::lock_guard lock(mu_);
  DF_RETURN_IF_ERROR(store_->pipeline(name).status());
  auto it = active_.find(name);
  if (it == active_.end() || it->second->done) {
    return Status::failed_precondition("pipeline '" + name + "' is not running");
  }
  Active& a = *it->second;
  a.user_stop = true;
  a.restart_after = false;
  a.supervisor->stop();
  RunRecord run = a.run;
  fill_live(run);
  return run;
}

Result<RunRecord> PipelineManager::cancel(const std::string& run_id) {
  std::unique_lock lock(mu_);
  for (auto& [name, a] : active_) {
    if (a->run.id == run_id && !a->done) {
      lock.unlock();
      return stop(name);
    }
  }
  DF_ASSIGN_OR_RETURN(RunRecord run, store_->run(run_id));
  return Status::failed_precondition("run " + run_id + " has ended (" +
                                     std::string(run_status_name(run.status)) + ")");
}

Result<RunRecord> PipelineManager::run(const std::string& run_id) const {
  std::lock_guard lock(mu_);
  DF_ASSIGN_OR_RETURN(RunRecord run, store_->run(run_id));
  fill_live(run);
  return run;
}

Result<std::vector<RunRecord>> PipelineManager::runs(const std::string& name) const {
  std::lock_guard lock(mu_);
  DF_RETURN_IF_ERROR(store_->pipeline(name).status());
  DF_ASSIGN_OR_RETURN(auto runs, store_->runs(name));
  for (RunRecord& r : runs) fill_live(r);
  return runs;
}

Result<std::vector<std::string>> PipelineManager::events(const std::string& run_id) const {
  DF_RETURN_IF_ERROR(store_->run(run_id).status());
  return store_->events(run_id);
}

Result<RunRecord> PipelineManager::wait_for_run(const std::string& run_id, Millis timeout) const {
  {
    std::unique_lock lock(mu_);
    auto running = [&] {
      for (const auto& [name, a] : active_) {
        if (a->run.id == run_id && !a->done) return true;
      }
      return false;
    };
    ended_.wait_for(lock, timeout, [&] { return !running(); });
  }
  return run(run_id);
}

Result<std::vector<checkpoint::CheckpointInfo>> PipelineManager::checkpoints(
    const std::string& name) {
  checkpoint::CheckpointStorage* storage = nullptr;
  {
    std::lock_guard lock(mu_);
    VersionRecord version;
    CompiledPipeline current;
    DF_ASSIGN_OR_RETURN(
        storage, checkpoint_storage_locked(name, /*must_be_stopped=*/false, version, current));
  }
  return checkpoint::list_checkpoints(*storage, name);
}

Status PipelineManager::request_checkpoint(const std::string& name) {
  std::lock_guard lock(mu_);
  DF_RETURN_IF_ERROR(store_->pipeline(name).status());
  auto it = active_.find(name);
  if (it == active_.end() || it->second->done) {
    return Status::failed_precondition("pipeline '" + name + "' is not running");
  }
  if (!it->second->supervisor->request_checkpoint()) {
    return Status::failed_precondition("pipeline '" + name +
                                       "' is between attempts (restarting); try again");
  }
  return Status::OK();
}

Result<checkpoint::CheckpointStorage*> PipelineManager::checkpoint_storage_locked(
    const std::string& name, bool must_be_stopped, VersionRecord& version,
    CompiledPipeline& compiled) {
  DF_ASSIGN_OR_RETURN(PipelineRecord record, store_->pipeline(name));
  auto it = active_.find(name);
  if (must_be_stopped && it != active_.end() && !it->second->done) {
    return Status::failed_precondition("pipeline '" + name + "' is running; stop it first");
  }
  DF_ASSIGN_OR_RETURN(version, store_->version(name, record.version));
  DF_ASSIGN_OR_RETURN(compiled, compile(version.spec, name, nullptr));
  return storage_for(*compiled.plan);
}

Result<uint64_t> PipelineManager::rollback(const std::string& name, std::optional<int> offset,
                                           std::optional<uint64_t> id) {
  // Held throughout: no run may start while _CURRENT moves.
  std::lock_guard lock(mu_);
  VersionRecord version;
  CompiledPipeline compiled;
  DF_ASSIGN_OR_RETURN(checkpoint::CheckpointStorage * storage,
                      checkpoint_storage_locked(name, /*must_be_stopped=*/true, version, compiled));
  return checkpoint::rollback(*storage, name, offset, id);
}

Status PipelineManager::export_state(const std::string& name, std::ostream& out) {
  checkpoint::CheckpointStorage* storage = nullptr;
  {
    std::lock_guard lock(mu_);
    VersionRecord version;
    CompiledPipeline current;
    DF_ASSIGN_OR_RETURN(
        storage, checkpoint_storage_locked(name, /*must_be_stopped=*/false, version, current));
  }
  DF_ASSIGN_OR_RETURN(checkpoint::Manifest manifest,
                      checkpoint::load_current_manifest(*storage, name));
  DF_ASSIGN_OR_RETURN(std::string text, checkpoint::load_pipeline_text(*storage, manifest));
  // The checkpoint's own pipeline file describes its state.
  DF_ASSIGN_OR_RETURN(CompiledPipeline compiled,
                      compile(text, "checkpoint " + std::to_string(manifest.id), nullptr));
  checkpoint::ExportOptions options;
  options.scratch_dir = (fs::path(options_.data_dir) / "tmp").string();
  std::error_code ec;
  fs::create_directories(options.scratch_dir, ec);
  return checkpoint::export_state(*storage, manifest, plan::checkpoint_node_views(*compiled.plan),
                                  out, options)
      .status();
}

Result<checkpoint::ImportResult> PipelineManager::import_state(const std::string& name,
                                                               std::istream& in) {
  // Held throughout: no run may start while the checkpoint is written.
  std::lock_guard lock(mu_);
  VersionRecord version;
  CompiledPipeline compiled;
  DF_ASSIGN_OR_RETURN(checkpoint::CheckpointStorage * storage,
                      checkpoint_storage_locked(name, /*must_be_stopped=*/true, version, compiled));
  checkpoint::ImportOptions options;
  options.pipeline = name;
  options.pipeline_text = version.spec;
  options.input_name = "the request body";
  options.scratch_dir = (fs::path(options_.data_dir) / "tmp").string();
  std::error_code ec;
  fs::create_directories(options.scratch_dir, ec);
  options.compression = compiled.plan->settings.checkpoint_compression;
  return checkpoint::import_state(*storage, in, plan::checkpoint_node_views(*compiled.plan),
                                  options);
}

// One subscriber of a run's stream. While subscribe() replays the recent
// lines, live messages wait in `held` so they come after them.
struct PipelineManager::Subscriber {
  std::string run_id;
  std::function<void(const std::string&)> sink;
  std::mutex mu;
  bool replaying = true;         // guarded by mu
  std::deque<std::string> held;  // guarded by mu
};

uint64_t PipelineManager::subscribe(const std::string& run_id,
                                    std::function<void(const std::string&)> sink) {
  auto subscriber = std::make_shared<Subscriber>();
  subscriber->run_id = run_id;
  subscriber->sink = std::move(sink);
  std::deque<std::string> pending;
  uint64_t token = 0;
  {
    // One lock with publish(): a line is either in the copy or delivered live.
    std::lock_guard lock(subs_mu_);
    token = next_token_++;
    subscribers_.emplace(token, subscriber);
    if (auto it = recent_logs_.find(run_id); it != recent_logs_.end()) pending = it->second;
  }
  // Outside subs_mu_: a sink that logs must not deadlock the log listener.
  while (true) {
    for (const std::string& message : pending) subscriber->sink(message);
    std::lock_guard lock(subscriber->mu);
    if (subscriber->held.empty()) {
      subscriber->replaying = false;
      break;
    }
    pending = std::exchange(subscriber->held, {});
  }
  return token;
}

void PipelineManager::unsubscribe(uint64_t token) {
  std::lock_guard lock(subs_mu_);
  subscribers_.erase(token);
}

void PipelineManager::publish(const std::string& run_id, const std::string& message, bool is_log) {
  // Sinks are called outside subs_mu_: a sink that logs must not deadlock
  // the log listener.
  std::vector<std::shared_ptr<Subscriber>> subscribers;
  {
    std::lock_guard lock(subs_mu_);
    if (is_log) {
      auto [it, first] = recent_logs_.try_emplace(run_id);
      if (first) {
        recent_log_runs_.push_back(run_id);
        if (recent_log_runs_.size() > kRecentLogRuns) {
          recent_logs_.erase(recent_log_runs_.front());
          recent_log_runs_.pop_front();
        }
      }
      it->second.push_back(message);
      if (it->second.size() > kRecentLogLines) it->second.pop_front();
    }
    for (const auto& [token, subscriber] : subscribers_) {
      if (subscriber->run_id == run_id) subscribers.push_back(subscriber);
    }
  }
  for (const auto& subscriber : subscribers) {
    {
      std::lock_guard lock(subscriber->mu);
      if (subscriber->replaying) {
        subscriber->held.push_back(message);
        continue;
      }
    }
    subscriber->sink(message);
  }
}

std::vector<PipelineSnapshot> PipelineManager::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<PipelineSnapshot> out;
  auto records = store_->pipelines();
  if (!records.ok()) return out;
  for (const PipelineRecord& r : *records) {
    PipelineSnapshot snap;
    snap.name = r.name;
    snap.run_id = r.current_run;
    auto it = active_.find(r.name);
    if (it != active_.end() && !it->second->done) {
      const Active& a = *it->second;
      snap.running = true;
      const healing::SupervisorStats stats = a.supervisor->stats();
      snap.restarts = stats.restarts;
      snap.checkpoints_completed = stats.checkpoints.completed;
      snap.checkpoints_failed = stats.checkpoints.failed + stats.checkpoints.aborted;
      snap.last_checkpoint_seconds = stats.checkpoints.last_duration_ms / 1000.0;
      snap.last_checkpoint_bytes = stats.checkpoints.last_size_bytes;
      snap.checkpoint_durations = a.supervisor->checkpoint_durations();
      const plan::Plan& plan = *a.compiled.plan;
      a.supervisor->with_scheduler([&](const runtime::Scheduler& scheduler) {
        const runtime::RunMetrics& metrics = scheduler.metrics();
        for (const auto& n : plan.nodes) {
          const runtime::NodeMetrics* m = metrics.find(n.id);
          if (!m) continue;
          NodeSnapshot node;
          node.id = n.id;
          node.role = n.role;
          node.rows_in = m->rows_in.load();
          node.rows_out = m->rows_out.load();
          node.data_errors = m->data_errors.load();
          node.dead_letters = m->dead_letters.load();
          node.backpressure_events = m->backpressure_events.load();
          if (n.role == runtime::NodeRole::kSink) node.latency = m->latency_seconds.snapshot();
          node.circuit_breaker_open =
              std::find(stats.open_breakers.begin(), stats.open_breakers.end(), n.id) !=
              stats.open_breakers.end();
          node.kafka_lag = m->kafka.lag();
          runtime::KafkaClientStatus::Brokers brokers = m->kafka.brokers();
          node.kafka_brokers_up = brokers.up;
          node.kafka_brokers_problem = std::move(brokers.problem);
          if (n.role == runtime::NodeRole::kSource) snap.events_processed += node.rows_out;
          snap.events_failed += node.data_errors;
          snap.dead_letters += node.dead_letters;
          snap.backpressure_events += node.backpressure_events;
          snap.nodes.push_back(std::move(node));
        }
      });
      // The breaker around checkpoint storage has no plan node: while open it
      // is reported like a sink's (gauge and health), as node checkpoint_storage.
      if (std::find(stats.open_breakers.begin(), stats.open_breakers.end(),
                    checkpoint::kStorageBreakerNode) != stats.open_breakers.end()) {
        NodeSnapshot storage;
        storage.id = checkpoint::kStorageBreakerNode;
        storage.role = runtime::NodeRole::kSink;
        storage.circuit_breaker_open = true;
        storage.latency =  // none, but well-formed, with the sinks' buckets
            metrics::Histogram(runtime::latency_seconds_buckets()).snapshot();
        snap.nodes.push_back(std::move(storage));
      }
      snap.recoveries = stats.healing.recoveries;
    } else if (!r.current_run.empty()) {
      auto run = store_->run(r.current_run);
      snap.failed = run.ok() && run->status == RunStatus::kFailed;
    }
    out.push_back(std::move(snap));
  }
  return out;
}

Result<std::shared_ptr<const plan::Plan>> PipelineManager::inspect(
    const std::string& name, const std::function<void(const runtime::Scheduler&)>& live) const {
  std::string spec;
  {
    std::lock_guard lock(mu_);
    DF_ASSIGN_OR_RETURN(PipelineRecord record, store_->pipeline(name));
    auto it = active_.find(name);
    if (it != active_.end() && !it->second->done) {
      const Active& a = *it->second;
      if (live) a.supervisor->with_scheduler(live);
      return a.compiled.plan;
    }
    DF_ASSIGN_OR_RETURN(PipelineView view, view_locked(record));
    spec = std::move(view.version.spec);
  }
  // Compiled outside the lock: a stopped pipeline's plan is not kept.
  DF_ASSIGN_OR_RETURN(CompiledPipeline compiled, compile(spec, name, nullptr));
  return compiled.plan;
}

bool PipelineManager::ready() const {
  std::lock_guard lock(mu_);
  return ready_ && !shutting_down_;
}

size_t PipelineManager::shutdown(Millis grace) {
  std::vector<std::shared_ptr<Active>> runs;
  {
    std::unique_lock lock(mu_);
    if (!shutting_down_) {
      shutting_down_ = true;
      for (auto& [name, a] : active_) {
        if (a->done) continue;
        a->shutdown_stop = true;
        a->supervisor->stop();
      }
    }
    const auto deadline = Clock::now() + grace;
    ended_.wait_until(lock, deadline, [&] {
      return std::all_of(active_.begin(), active_.end(),
                         [](const auto& kv) { return kv.second->done; });
    });
    for (auto& [name, a] : active_) runs.push_back(a);
    for (auto& a : finished_) runs.push_back(a);
    active_.clear();
    finished_.clear();
  }
  size_t cut = 0;
  for (auto& a : runs) {
    {
      std::lock_guard lock(mu_);
      if (!a->done) {
        a->cut = true;
        ++cut;
        a->supervisor->cancel();
      }
    }
    if (a->thread.joinable()) a->thread.join();
  }
  return cut;
}

}  // namespace df::server
