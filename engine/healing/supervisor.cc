#include "engine/healing/supervisor.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/log.h"
#include "engine/core/time.h"

namespace df::healing {

namespace {

using Clock = std::chrono::steady_clock;

uint64_t total_errors(const runtime::RunMetrics& metrics) {
  uint64_t e = 0;
  for (const auto& m : metrics.nodes) e += m->data_errors.load();
  return e;
}

void remove_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

checkpoint::CheckpointSettings checkpoint_settings(const plan::PipelineSettings& settings,
                                                   const std::string& pipeline_text,
                                                   Millis default_interval) {
  checkpoint::CheckpointSettings cs;
  cs.pipeline = settings.name;
  cs.interval = settings.checkpoint_interval.value_or(default_interval);
  cs.timeout = settings.checkpoint_timeout;
  cs.retained = settings.checkpoint_retained;
  cs.compression = settings.checkpoint_compression;
  cs.pipeline_text = pipeline_text;
  cs.pipeline_version = checkpoint::sha256_hex(pipeline_text);
  return cs;
}

std::string human_count(uint64_t n) {
  char buf[32];
  if (n >= 10'000'000'000ULL) {
    std::snprintf(buf, sizeof buf, "%.1fG", n / 1e9);
  } else if (n >= 10'000'000) {
    std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  } else if (n >= 100'000) {
    std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  }
  return buf;
}

std::string describe_node_counts(const plan::Plan& plan, const runtime::RunMetrics& metrics,
                                 bool human) {
  std::string s;
  auto fmt = [&](uint64_t n) { return human ? human_count(n) : std::to_string(n); };
  for (const auto& n : plan.nodes) {
    const runtime::NodeMetrics* m = metrics.find(n.id);
    if (!m) continue;
    if (!s.empty()) s += " | ";
    s += n.id;
    if (n.role != runtime::NodeRole::kSource) s += " " + fmt(m->rows_in.load()) + " in";
    if (n.role != runtime::NodeRole::kSink) s += " " + fmt(m->rows_out.load()) + " out";
    if (uint64_t e = m->data_errors.load()) s += " " + fmt(e) + " errors";
    if (int64_t wm = m->watermark_ms.load(); wm != INT64_MIN && !human)
      s += " wm " + format_timestamp(wm);
  }
  return s;
}

RunSupervisor::RunSupervisor(SupervisorOptions options, Listener listener)
    : options_(std::move(options)),
      listener_(std::move(listener)),
      healer_(options_.healing, [this](const RunEvent& e) { queue_event(e); }) {
  options_.checkpoint.duration_seconds = &checkpoint_durations_;
}

RunSupervisor::~RunSupervisor() = default;

void RunSupervisor::queue_event(const RunEvent& event) {
  if (!listener_.on_event) return;
  {
    std::lock_guard lock(events_mu_);
    if (events_open_) {
      pending_events_.push_back(event);
      events_cv_.notify_one();
      return;
    }
  }
  listener_.on_event(event);  // outside run(): no worker is involved
}

void RunSupervisor::deliver_events() {
  std::unique_lock lock(events_mu_);
  for (;;) {
    events_cv_.wait(lock, [&] { return !pending_events_.empty() || !events_open_; });
    if (pending_events_.empty()) return;  // closed and drained
    const RunEvent e = std::move(pending_events_.front());
    pending_events_.pop_front();
    lock.unlock();
    listener_.on_event(e);
    lock.lock();
  }
}

void RunSupervisor::stop() {
  std::lock_guard lock(mu_);
  if (++stop_requests_ > 1 || !scheduler_) return;
  if (coordinator_) {
    coordinator_->request_stop_with_checkpoint();
  } else {
    scheduler_->request_stop();
  }
}

void RunSupervisor::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  ++stop_requests_;
  if (scheduler_) scheduler_->cancel();
}

bool RunSupervisor::stopping() const {
  std::lock_guard lock(mu_);
  return stop_requests_ > 0;
}

bool RunSupervisor::request_checkpoint() {
  std::lock_guard lock(mu_);
  if (!coordinator_) return false;
  coordinator_->request_checkpoint();
  return true;
}

void RunSupervisor::with_scheduler(const std::function<void(const runtime::Scheduler&)>& f) const {
  std::lock_guard lock(mu_);
  if (scheduler_) f(*scheduler_);
}

SupervisorStats RunSupervisor::stats() const {
  SupervisorStats s;
  {
    std::lock_guard lock(mu_);
    s = stats_;
    if (coordinator_) s.checkpoints = coordinator_->stats();
    for (const auto& [node, subtask] : open_breakers_) {
      if (s.open_breakers.empty() || s.open_breakers.back() != node)
        s.open_breakers.push_back(node);
    }
  }
  s.healing = healer_.counters();
  s.restarts = s.healing.restarts;
  return s;
}

std::vector<RunEvent> RunSupervisor::events() const { return healer_.events(); }

SupervisedOutcome RunSupervisor::run() {
  SupervisedOutcome out;
  const auto started = Clock::now();
  if (listener_.on_event) {
    std::lock_guard lock(events_mu_);
    events_open_ = true;
    event_thread_ = std::thread([this, context = LogContext::current()] {
      LogContext log_context(context);
      deliver_events();
    });
  }
  // Every event of this run reaches the listener before run() returns.
  struct CloseEvents {
    RunSupervisor* self;
    ~CloseEvents() {
      {
        std::lock_guard lock(self->events_mu_);
        self->events_open_ = false;
      }
      self->events_cv_.notify_all();
      if (self->event_thread_.joinable()) self->event_thread_.join();
    }
  } close_events{this};
  const plan::Plan& plan = *options_.plan;
  runtime::RunOptions options = options_.run_options;
  const std::string state_dir = options_.work_dir.empty() ? "" : options_.work_dir + "/state";
  const std::string snapshot_dir =
      options_.work_dir.empty() ? "" : options_.work_dir + "/snapshots";
  options.state_root = state_dir;
  // `transient` failures are retried in place, under circuit breakers
  // around the sinks; every decision is a run event.
  options.retry = options_.healing.retry;
  options.circuit_breaker = options_.healing.circuit_breaker;
  options.is_transient = [this](const Status& s) {
    return healer_.classifier().classify(s) == FailureClass::kTransient;
  };
  options.on_retry_event = [this, &plan](const runtime::RetryEvent& e) {
    {
      std::lock_guard lock(mu_);
      if (e.kind == runtime::RetryEvent::Kind::kBreakerOpen) {
        open_breakers_.insert({e.node, e.subtask});
      } else if (e.kind == runtime::RetryEvent::Kind::kBreakerClosed) {
        open_breakers_.erase({e.node, e.subtask});
      }
    }
    healer_.on_retry_event(e, plan.settings.name);
  };

  // Self-healing (DESIGN §5): a failed run restarts from its last completed
  // checkpoint as the restart strategy allows.
  for (int attempt = 1;; ++attempt) {
    // Live state and unsent snapshots of an earlier attempt (or process)
    // are stale: the restore fills the state again from the checkpoint.
    remove_dir(state_dir);
    remove_dir(snapshot_dir);
    std::unique_ptr<checkpoint::CheckpointCoordinator> coordinator;
    runtime::RunOptions attempt_options = options;
    std::optional<uint64_t> resumed_from;
    if (options_.storage) {
      // The sinks' breaker policy guards the storage too; its changes are
      // recorded like a sink's (node "checkpoint_storage").
      checkpoint::CheckpointSettings cs = options_.checkpoint;
      cs.storage_breaker = options_.healing.circuit_breaker;
      cs.is_transient = options.is_transient;
      cs.on_storage_event = options.on_retry_event;
      coordinator =
          std::make_unique<checkpoint::CheckpointCoordinator>(*options_.storage, std::move(cs));
      const auto restore_started = Clock::now();
      auto restored = coordinator->restore(plan.physical, attempt_options.state_root);
      if (!restored.ok()) {
        out.status = restored.status();
        out.restore_failed = true;
        out.error = out.status.message();
        break;
      }
      if (*restored) {
        resumed_from = (*restored)->checkpoint_id;
        if (listener_.on_resumed) {
          listener_.on_resumed(
              (*restored)->checkpoint_id,
              std::chrono::duration<double>(Clock::now() - restore_started).count(),
              (*restored)->warnings);
        }
        attempt_options.restored = std::move((*restored)->state);
      }
      attempt_options.checkpoint_listener = coordinator.get();
      attempt_options.snapshot_root = snapshot_dir;
    }

    runtime::Scheduler scheduler(plan.physical, attempt_options);
    {
      std::lock_guard lock(mu_);
      scheduler_ = &scheduler;
      coordinator_ = coordinator.get();
      stats_.attempt = attempt;
      stats_.resumed_from = resumed_from;
      stats_.checkpoints = {};
      // A stop that came between attempts (or before the first) applies now.
      if (cancelled_) {
        scheduler.cancel();
      } else if (stop_requests_ > 0) {
        if (coordinator) {
          coordinator->request_stop_with_checkpoint();
        } else {
          scheduler.request_stop();
        }
      }
    }
    if (coordinator) coordinator->start(scheduler);
    out.status = scheduler.run();
    if (coordinator) coordinator->stop();
    {
      std::lock_guard lock(mu_);
      scheduler_ = nullptr;
      coordinator_ = nullptr;
      open_breakers_.clear();  // the next attempt's tasks start closed
      if (coordinator) stats_.checkpoints = coordinator->stats();
    }

    const auto& metrics = scheduler.metrics();
    out.summary = describe_node_counts(plan, metrics, false);
    out.consumer_lag.clear();
    for (const auto& n : plan.nodes) {
      if (n.role != runtime::NodeRole::kSource) continue;
      const auto* m = metrics.find(n.id);
      if (!m) continue;
      auto lag = m->kafka.lag();
      // A Kafka source stopped between a rebalance's revoke and its next
      // assignment holds nothing: still a line, so the summary says so.
      if (!lag.empty() || n.type == "kafka") out.consumer_lag[n.id] = std::move(lag);
    }
    out.data_errors += total_errors(metrics);
    out.summary += "; " + std::to_string(out.data_errors) + " errors";
    if (coordinator) {
      const checkpoint::CoordinatorStats cs = coordinator->stats();
      out.checkpoints = cs;
      out.summary += "; " + std::to_string(cs.completed) + " checkpoints";
      if (cs.completed > 0) out.summary += " (last " + std::to_string(cs.last_id) + ")";
      if (cs.failed + cs.aborted > 0) {
        out.summary += ", " + std::to_string(cs.failed + cs.aborted) + " failed";
      }
    }
    if (out.status.ok() || out.status.code() == StatusCode::kCancelled || stopping()) break;

    Failure failure;
    failure.status = out.status;
    failure.origin.pipeline = plan.settings.name;
    const runtime::FailureSite site = scheduler.failure_site();
    failure.origin.node = site.node;
    failure.origin.subtask = site.subtask;
    const Decision decision = healer_.on_run_failure(failure);
    if (decision.action == Action::kThrottle) {
      // Out of memory or disk: the next attempt moves smaller batches.
      options.batch_size = std::max<size_t>(1, options.batch_size / 2);
      log_warn("healing", "resource failure: restarting with batches of " +
                              std::to_string(options.batch_size) + " rows after " +
                              format_duration(decision.delay));
    } else if (decision.action != Action::kRestart) {
      // A restartable failure the strategy refused (fatal and data failures
      // are not restarted at all).
      out.gave_up = decision.failure_class != FailureClass::kFatal &&
                    decision.failure_class != FailureClass::kData &&
                    options_.healing.restart.strategy != RestartSettings::Strategy::kNone;
      break;
    }
    // Wait out the restart delay, but not past a stop.
    const auto restart_at = Clock::now() + decision.delay;
    while (Clock::now() < restart_at && !stopping()) {
      std::this_thread::sleep_for(
          std::min<Clock::duration>(std::chrono::milliseconds(50), restart_at - Clock::now()));
    }
    if (stopping()) break;
  }
  out.elapsed_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  out.stopped = stopping();
  out.restarts = healer_.counters().restarts;
  if (out.restarts > 0) {
    out.summary +=
        "; " + std::to_string(out.restarts) + (out.restarts == 1 ? " restart" : " restarts");
  }
  if (!out.status.ok() && out.error.empty()) {
    if (out.status.code() == StatusCode::kCancelled) {
      out.error = "the run was aborted.";
    } else if (out.gave_up) {
      out.error = "the restart strategy (" +
                  std::string(restart_strategy_name(options_.healing.restart.strategy)) +
                  ") gave up after " + std::to_string(out.restarts) +
                  (out.restarts == 1 ? " restart: " : " restarts: ") + out.status.message();
    } else {
      out.error = out.status.message();
    }
  }
  return out;
}

}  // namespace df::healing
