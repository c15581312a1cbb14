// `dataflow exec`: runs one pipeline in this process until its sources end
// (or SIGINT/SIGTERM asks it to stop), then prints a one-line summary.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
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
#include "engine/healing/supervisor.h"
#include "engine/runtime/scheduler.h"
#include "engine/state/state_backend.h"

namespace df::cli {

namespace {

using Clock = std::chrono::steady_clock;

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

uint64_t source_rows(const plan::Plan& plan, const runtime::RunMetrics& metrics) {
  uint64_t rows = 0;
  for (const auto& n : plan.nodes) {
    if (n.role != runtime::NodeRole::kSource) continue;
    if (const auto* m = metrics.find(n.id)) rows += m->rows_out.load();
  }
  return rows;
}

// One line per Kafka source after the summary: the total lag when the run
// ended and the partitions still behind (the first 20).
void print_consumer_lag(const healing::SupervisedOutcome& outcome) {
  constexpr size_t kListed = 20;
  for (const auto& [node, parts] : outcome.consumer_lag) {
    if (parts.empty()) {
      std::fprintf(stderr,
                   "dataflow: consumer lag of %s: unknown, it held no partition with a known "
                   "position when the run ended\n",
                   node.c_str());
      continue;
    }
    int64_t total = 0;
    std::string behind;
    size_t listed = 0;
    for (const auto& p : parts) {
      total += p.lag;
      if (p.lag == 0) continue;
      if (++listed <= kListed) {
        behind += " " + p.topic + "/" + std::to_string(p.partition) + "=" + std::to_string(p.lag);
      }
    }
    if (listed > kListed) behind += " (+" + std::to_string(listed - kListed) + " more)";
    std::fprintf(stderr, "dataflow: consumer lag of %s: %lld messages over %zu partitions%s%s\n",
                 node.c_str(), static_cast<long long>(total), parts.size(),
                 listed > 0 ? "; behind:" : "", behind.c_str());
  }
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

  healing::SupervisorOptions supervised;
  supervised.plan = plan;
  runtime::RunOptions& options = supervised.run_options;
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
  supervised.work_dir = state_root.path();
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
    supervised.storage = storage.get();
    supervised.checkpoint =
        healing::checkpoint_settings(plan->settings, *text, kDefaultCheckpointInterval);
  }

  // Without checkpoints a restart would start over and repeat output, so,
  // as in Flink, there is none unless the pipeline asks for one.
  supervised.healing = loaded->healing;
  if (!storage && !loaded->restart_set) {
    supervised.healing.restart.strategy = healing::RestartSettings::Strategy::kNone;
  }
  healing::RunSupervisor::Listener listener;
  listener.on_event = [](const healing::RunEvent& e) {
    std::fprintf(stderr, "dataflow: event %s\n", e.to_json().c_str());
  };
  listener.on_resumed = [&](uint64_t id, double seconds, const std::vector<std::string>&) {
    std::fprintf(stderr, "dataflow: resuming %s from checkpoint %llu (state restored in %.3fs)\n",
                 plan->settings.name.c_str(), static_cast<unsigned long long>(id), seconds);
  };
  healing::RunSupervisor supervisor(supervised, std::move(listener));

  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    timespec tick{0, 200'000'000};
    int signals = 0;
    while (!done.load()) {
      // A signal after `done` is the one below that ends this thread.
      if (sigtimedwait(&stop_signals, nullptr, &tick) <= 0 || done.load()) continue;
      // The first signal stops gracefully, a second one aborts.
      if (++signals == 1) {
        std::fprintf(stderr, storage ? "\ndataflow: stopping: taking a final checkpoint (send the "
                                       "signal again to abort)\n"
                                     : "\ndataflow: stopping: draining the pipeline (send the "
                                       "signal again to abort)\n");
        supervisor.stop();
      } else {
        supervisor.cancel();
      }
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
        supervisor.with_scheduler([&](const runtime::Scheduler& scheduler) {
          auto now = Clock::now();
          uint64_t rows = source_rows(*plan, scheduler.metrics());
          if (rows < last_rows) last_rows = 0;  // a restarted attempt counts anew
          double secs = std::chrono::duration<double>(now - last).count();
          double rate = secs > 0 ? (rows - last_rows) / secs : 0;
          last = now;
          last_rows = rows;
          std::string line = healing::describe_node_counts(*plan, scheduler.metrics(), true);
          std::fprintf(stderr, "\r\033[K%s  (%s rows/s)", line.c_str(),
                       healing::human_count(static_cast<uint64_t>(rate)).c_str());
          std::fflush(stderr);
        });
      }
    });
  }

  const healing::SupervisedOutcome outcome = supervisor.run();
  done.store(true);
  // Wakes the signal thread now, not at its next tick: a short run would
  // otherwise end up to 200 ms late. The signal goes to that thread alone.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  if (progress_thread.joinable()) progress_thread.join();
  signal_thread.join();
  if (progress) std::fprintf(stderr, "\r\033[K");

  if (outcome.restore_failed) {
    print_error(outcome.error);
    return exit_code_for(outcome.status);
  }
  std::fprintf(stderr, "dataflow: pipeline %s %s in %.3fs: %s\n", plan->settings.name.c_str(),
               outcome.status.ok() ? "finished" : "failed", outcome.elapsed_seconds,
               outcome.summary.c_str());
  print_consumer_lag(outcome);
  if (!outcome.status.ok()) {
    print_error(outcome.error);
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace df::cli
