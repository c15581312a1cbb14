// `dataflow exec`: runs one pipeline in this process until its sources end
// (or SIGINT/SIGTERM asks it to stop), then prints a one-line summary.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/pipeline_loader.h"
#include "engine/checkpoint/coordinator.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/log.h"
#include "engine/core/time.h"
#include "engine/healing/service.h"
#include "engine/runtime/scheduler.h"
#include "engine/state/state_backend.h"

namespace df::cli {

namespace {

using Clock = std::chrono::steady_clock;

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

// "gen 1000 out | big 1000 in 412 out | out 412 in"
std::string node_counts(const plan::Plan& plan, const runtime::RunMetrics& metrics, bool human) {
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

// The run's working directory: --state-dir/<pipeline>/work, or a temporary
// directory removed at exit. Live keyed state goes to <work>/state (emptied
// at start: a resumed run gets it back from the checkpoint), snapshots to
// <work>/snapshots until they are uploaded.
class StateRoot {
 public:
  StateRoot(const ExecArgs& args, const std::string& pipeline) {
    if (args.state_backend == "memory") return;
    namespace fs = std::filesystem;
    if (!args.state_dir.empty()) {
      path_ = (fs::path(args.state_dir) / pipeline / "work").string();
      std::error_code ec;
      fs::remove_all(path_, ec);
      fs::create_directories(path_, ec);
      if (ec) path_.clear();
    } else {
      std::string tmpl = (fs::temp_directory_path() / "dataflow-state-XXXXXX").string();
      if (mkdtemp(tmpl.data())) {
        path_ = tmpl;
        temporary_ = true;
      }
    }
  }
  ~StateRoot() {
    std::error_code ec;
    if (temporary_) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string state() const { return path_.empty() ? path_ : path_ + "/state"; }
  std::string snapshots() const { return path_.empty() ? path_ : path_ + "/snapshots"; }

 private:
  std::string path_;
  bool temporary_ = false;
};

uint64_t total_errors(const runtime::RunMetrics& metrics) {
  uint64_t e = 0;
  for (const auto& m : metrics.nodes) e += m->data_errors.load();
  return e;
}

uint64_t source_rows(const plan::Plan& plan, const runtime::RunMetrics& metrics) {
  uint64_t rows = 0;
  for (const auto& n : plan.nodes) {
    if (n.role != runtime::NodeRole::kSource) continue;
    if (const auto* m = metrics.find(n.id)) rows += m->rows_out.load();
  }
  return rows;
}

}  // namespace

void add_exec_command(CLI::App& app, std::shared_ptr<ExecArgs> args) {
  auto* cmd = app.add_subcommand("exec", "Run one pipeline in this process until its sources end.");
  cmd->add_option("pipeline", args->pipeline, "Pipeline file (YAML)")->required();
  cmd->add_option("--workers", args->workers, "Worker threads (default: one per core)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--parallelism", args->parallelism, "Override every node's parallelism")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--batch-size", args->batch_size, "Rows per batch")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--buffer-size", args->buffer_size, "Rows a channel holds before backpressure")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 26));
  cmd->add_option("--backpressure-threshold", args->backpressure_threshold,
                  "Fraction of --buffer-size at which a producer pauses")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_flag("--no-progress", args->no_progress, "Do not print the live progress line");
  cmd->add_option("--state-dir", args->state_dir,
                  "Directory for keyed state (default: a temporary directory removed at exit)");
  cmd->add_option("--state-backend", args->state_backend, "Where keyed state lives")
      ->capture_default_str()
      ->check(CLI::IsMember({"rocksdb", "memory"}));
  cmd->add_option("--state-cache-mb", args->state_cache_mb,
                  "RocksDB block cache shared by all tasks (MiB)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--state-memory-mb", args->state_memory_mb,
                  "Memory a stateful task uses before spilling to RocksDB (MiB)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--checkpoint-storage", args->checkpoint_storage,
                  "Where checkpoints go: s3://bucket/prefix or a directory (default: the "
                  "pipeline's checkpoint.storage, else --state-dir)");
}

namespace {

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Checkpoints every 10 s unless the pipeline says otherwise (DESIGN §6).
constexpr Millis kDefaultCheckpointInterval{10000};

}  // namespace

namespace {

// What the signal and progress threads act on: the attempt running now.
// Between attempts (a restart's delay) both pointers are null.
class RunControl {
 public:
  void attach(runtime::Scheduler* scheduler, checkpoint::CheckpointCoordinator* coordinator) {
    std::lock_guard lock(mu_);
    scheduler_ = scheduler;
    coordinator_ = coordinator;
    // A signal that came while no attempt ran is applied at once.
    if (stops_ > 0 && scheduler_) apply_stop_locked();
  }
  void detach() { attach(nullptr, nullptr); }
  // The first signal stops gracefully, a second one aborts.
  void on_signal() {
    std::lock_guard lock(mu_);
    if (++stops_ == 1) {
      if (scheduler_) apply_stop_locked();
    } else if (scheduler_) {
      scheduler_->cancel();
    }
  }
  bool stopping() const {
    std::lock_guard lock(mu_);
    return stops_ > 0;
  }
  template <typename F>
  void with_scheduler(F&& f) const {
    std::lock_guard lock(mu_);
    if (scheduler_) f(*scheduler_);
  }

 private:
  void apply_stop_locked() {
    if (coordinator_) {
      std::fprintf(stderr,
                   "\ndataflow: stopping: taking a final checkpoint (send the signal again "
                   "to abort)\n");
      coordinator_->request_stop_with_checkpoint();
    } else {
      std::fprintf(stderr,
                   "\ndataflow: stopping: draining the pipeline (send the signal again to "
                   "abort)\n");
      scheduler_->request_stop();
    }
  }

  mutable std::mutex mu_;
  runtime::Scheduler* scheduler_ = nullptr;
  checkpoint::CheckpointCoordinator* coordinator_ = nullptr;
  int stops_ = 0;
};

// Empties the run's live state and snapshot directories before a restart:
// the restore fills them again from the last completed checkpoint.
void reset_work_dirs(const StateRoot& root) {
  std::error_code ec;
  for (const std::string& dir : {root.state(), root.snapshots()}) {
    if (dir.empty()) continue;
    std::filesystem::remove_all(dir, ec);
  }
}

}  // namespace

int run_exec(const ExecArgs& args) {
  // Signals are taken by a dedicated thread: block them before any other
  // thread exists (the coordinator's I/O threads, the scheduler's) so every
  // thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A closed stdout must surface as EPIPE in the sink, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  plan::PlanOptions plan_options;
  plan_options.batch_size = args.batch_size;
  plan_options.parallelism_override = args.parallelism;
  int code = kExitOk;
  auto loaded = load_pipeline(args.pipeline, plan_options, code);
  if (!loaded) return code;
  const std::shared_ptr<const plan::Plan> plan = loaded->plan;

  runtime::RunOptions options;
  options.workers = args.workers > 0
                        ? args.workers
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.batch_size = args.batch_size;
  options.buffer_size = args.buffer_size;
  options.backpressure_threshold = args.backpressure_threshold;
  StateRoot state_root(args, plan->settings.name);
  if (args.state_backend == "rocksdb" && state_root.path().empty()) {
    print_error("cannot create a state directory under " +
                std::filesystem::temp_directory_path().string() + ".");
    return kExitRuntimeFailure;
  }
  options.state_root = state_root.state();
  if (!plan->settings.dead_letter_sink.empty()) {
    options.dead_letter_max_rate = plan->settings.dead_letter_max_rate;
  }
  options.state_memory_budget = args.state_memory_mb << 20;
  state::set_block_cache_bytes(args.state_cache_mb << 20);

  // Checkpoints: to --checkpoint-storage, the pipeline's checkpoint.storage,
  // or --state-dir; none without any of them (a run that cannot resume).
  std::string storage_url = args.checkpoint_storage;
  if (storage_url.empty()) storage_url = plan->settings.checkpoint_storage;
  if (storage_url.empty()) storage_url = args.state_dir;
  std::unique_ptr<checkpoint::CheckpointStorage> storage;
  checkpoint::CheckpointSettings cs;
  if (!storage_url.empty()) {
    if (args.state_backend != "rocksdb") {
      print_error(
          "checkpoints need --state-backend rocksdb; drop --state-dir and "
          "--checkpoint-storage to run with state in memory.");
      return kExitUsage;
    }
    auto opened = checkpoint::open_storage(storage_url);
    if (!opened.ok()) {
      print_error("cannot open checkpoint storage " + storage_url + ": " +
                  opened.status().message());
      return kExitRuntimeFailure;
    }
    storage = std::move(*opened);
    auto text = read_text(args.pipeline);
    if (!text) {
      print_error("cannot read " + args.pipeline + ".");
      return kExitInvalidInput;
    }
    cs.pipeline = plan->settings.name;
    cs.interval = plan->settings.checkpoint_interval.value_or(kDefaultCheckpointInterval);
    cs.timeout = plan->settings.checkpoint_timeout;
    cs.retained = plan->settings.checkpoint_retained;
    cs.compression = plan->settings.checkpoint_compression;
    cs.pipeline_text = *text;
    cs.pipeline_version = checkpoint::sha256_hex(*text);
  }

  // Self-healing (DESIGN §5): a failed run restarts from its last completed
  // checkpoint as the restart strategy allows. Without checkpoints a restart
  // would start over and repeat output, so, as in Flink, there is none
  // unless the pipeline asks for one.
  healing::HealingSettings healing_settings = loaded->healing;
  if (!storage && !loaded->restart_set) {
    healing_settings.restart.strategy = healing::RestartSettings::Strategy::kNone;
  }
  healing::SelfHealingService healer(healing_settings, [](const healing::RunEvent& e) {
    std::fprintf(stderr, "dataflow: event %s\n", e.to_json().c_str());
  });

  RunControl control;
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    timespec tick{0, 200'000'000};
    while (!done.load()) {
      int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig > 0) control.on_signal();
    }
  });
  const bool progress = !args.no_progress && isatty(STDERR_FILENO);
  std::thread progress_thread;
  if (progress) {
    progress_thread = std::thread([&] {
      auto last = Clock::now();
      uint64_t last_rows = 0;
      while (!done.load()) {
        for (int i = 0; i < 5 && !done.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        control.with_scheduler([&](const runtime::Scheduler& scheduler) {
          auto now = Clock::now();
          uint64_t rows = source_rows(*plan, scheduler.metrics());
          if (rows < last_rows) last_rows = 0;  // a restarted attempt counts anew
          double secs = std::chrono::duration<double>(now - last).count();
          double rate = secs > 0 ? (rows - last_rows) / secs : 0;
          last = now;
          last_rows = rows;
          std::string line = node_counts(*plan, scheduler.metrics(), true);
          std::fprintf(stderr, "\r\033[K%s  (%s rows/s)", line.c_str(),
                       human_count(static_cast<uint64_t>(rate)).c_str());
          std::fflush(stderr);
        });
      }
    });
  }
  auto finish_threads = [&] {
    done.store(true);
    if (progress_thread.joinable()) progress_thread.join();
    signal_thread.join();
    if (progress) std::fprintf(stderr, "\r\033[K");
  };

  const auto started = Clock::now();
  Status status;
  std::string summary;
  uint64_t errors = 0;
  bool gave_up = false;
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<checkpoint::CheckpointCoordinator> coordinator;
    runtime::RunOptions attempt_options = options;
    if (storage) {
      if (attempt > 0) reset_work_dirs(state_root);
      coordinator = std::make_unique<checkpoint::CheckpointCoordinator>(*storage, cs);
      const auto restore_started = Clock::now();
      auto restored = coordinator->restore(plan->physical, attempt_options.state_root);
      const double restore_secs =
          std::chrono::duration<double>(Clock::now() - restore_started).count();
      if (!restored.ok()) {
        finish_threads();
        print_error(restored.status().message());
        return exit_code_for(restored.status());
      }
      if (*restored) {
        std::fprintf(stderr,
                     "dataflow: resuming %s from checkpoint %llu (state restored in %.3fs)\n",
                     plan->settings.name.c_str(),
                     static_cast<unsigned long long>((*restored)->checkpoint_id), restore_secs);
        attempt_options.restored = std::move((*restored)->state);
      }
      attempt_options.checkpoint_listener = coordinator.get();
      attempt_options.snapshot_root = state_root.snapshots();
    }

    runtime::Scheduler scheduler(plan->physical, attempt_options);
    control.attach(&scheduler, coordinator.get());
    if (coordinator) coordinator->start(scheduler);
    status = scheduler.run();
    if (coordinator) coordinator->stop();
    control.detach();

    const auto& metrics = scheduler.metrics();
    summary = node_counts(*plan, metrics, false);
    errors += total_errors(metrics);
    if (coordinator) {
      const checkpoint::CoordinatorStats stats = coordinator->stats();
      summary += "; " + std::to_string(errors) + " errors; " + std::to_string(stats.completed) +
                 " checkpoints";
      if (stats.completed > 0) summary += " (last " + std::to_string(stats.last_id) + ")";
      if (stats.failed + stats.aborted > 0) {
        summary += ", " + std::to_string(stats.failed + stats.aborted) + " failed";
      }
    } else {
      summary += "; " + std::to_string(errors) + " errors";
    }
    if (status.ok() || status.code() == StatusCode::kCancelled || control.stopping()) break;

    healing::Failure failure;
    failure.status = status;
    failure.origin.pipeline = plan->settings.name;
    const runtime::FailureSite site = scheduler.failure_site();
    failure.origin.node = site.node;
    failure.origin.subtask = site.subtask;
    const healing::Decision decision = healer.on_run_failure(failure);
    if (decision.action == healing::Action::kThrottle) {
      // Out of memory or disk: the next attempt moves smaller batches.
      options.batch_size = std::max<size_t>(1, options.batch_size / 2);
      log_warn("healing", "resource failure: restarting with batches of " +
                              std::to_string(options.batch_size) + " rows after " +
                              format_duration(decision.delay));
    } else if (decision.action != healing::Action::kRestart) {
      // A restartable failure the strategy refused (fatal and data failures
      // are not restarted at all).
      gave_up = decision.failure_class != healing::FailureClass::kFatal &&
                decision.failure_class != healing::FailureClass::kData &&
                healing_settings.restart.strategy != healing::RestartSettings::Strategy::kNone;
      break;
    }
    // Wait out the restart delay, but not past a stop signal.
    const auto restart_at = Clock::now() + decision.delay;
    while (Clock::now() < restart_at && !control.stopping()) {
      std::this_thread::sleep_for(
          std::min<Clock::duration>(std::chrono::milliseconds(50), restart_at - Clock::now()));
    }
    if (control.stopping()) break;
  }
  // Measured before finish_threads(): joining the signal thread waits out its
  // sigtimedwait tick (up to 200 ms), which is not the pipeline's time.
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  finish_threads();

  const uint64_t restarts = healer.counters().restarts;
  if (restarts > 0) {
    summary += "; " + std::to_string(restarts) + (restarts == 1 ? " restart" : " restarts");
  }
  std::fprintf(stderr, "dataflow: pipeline %s %s in %.3fs: %s\n", plan->settings.name.c_str(),
               status.ok() ? "finished" : "failed", elapsed, summary.c_str());
  if (!status.ok()) {
    if (status.code() == StatusCode::kCancelled) {
      print_error("the run was aborted.");
    } else if (gave_up) {
      print_error("the restart strategy (" +
                  std::string(healing::restart_strategy_name(healing_settings.restart.strategy)) +
                  ") gave up after " + std::to_string(restarts) +
                  (restarts == 1 ? " restart: " : " restarts: ") + status.message());
    } else {
      print_error(status.message());
    }
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace df::cli
