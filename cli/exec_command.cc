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
  auto plan = load_plan(args.pipeline, plan_options, code);
  if (!plan) return code;

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
  options.state_memory_budget = args.state_memory_mb << 20;
  state::set_block_cache_bytes(args.state_cache_mb << 20);

  // Checkpoints: to --checkpoint-storage, the pipeline's checkpoint.storage,
  // or --state-dir; none without any of them (a run that cannot resume).
  std::string storage_url = args.checkpoint_storage;
  if (storage_url.empty()) storage_url = plan->settings.checkpoint_storage;
  if (storage_url.empty()) storage_url = args.state_dir;
  std::unique_ptr<checkpoint::CheckpointStorage> storage;
  std::unique_ptr<checkpoint::CheckpointCoordinator> coordinator;
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
    checkpoint::CheckpointSettings cs;
    cs.pipeline = plan->settings.name;
    cs.interval = plan->settings.checkpoint_interval.value_or(kDefaultCheckpointInterval);
    cs.timeout = plan->settings.checkpoint_timeout;
    cs.retained = plan->settings.checkpoint_retained;
    cs.compression = plan->settings.checkpoint_compression;
    cs.pipeline_text = *text;
    cs.pipeline_version = checkpoint::sha256_hex(*text);
    coordinator = std::make_unique<checkpoint::CheckpointCoordinator>(*storage, cs);
    const auto restore_started = Clock::now();
    auto restored = coordinator->restore(plan->physical, options.state_root);
    const double restore_secs =
        std::chrono::duration<double>(Clock::now() - restore_started).count();
    if (!restored.ok()) {
      print_error(restored.status().message());
      return exit_code_for(restored.status());
    }
    if (*restored) {
      std::fprintf(stderr, "dataflow: resuming %s from checkpoint %llu (state restored in %.3fs)\n",
                   plan->settings.name.c_str(),
                   static_cast<unsigned long long>((*restored)->checkpoint_id), restore_secs);
      options.restored = std::move((*restored)->state);
    }
    options.checkpoint_listener = coordinator.get();
    options.snapshot_root = state_root.snapshots();
  }

  runtime::Scheduler scheduler(plan->physical, options);
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    int received = 0;
    timespec tick{0, 200'000'000};
    while (!done.load()) {
      int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig <= 0) continue;
      if (++received == 1) {
        if (coordinator) {
          std::fprintf(stderr,
                       "\ndataflow: stopping: taking a final checkpoint (send the signal again "
                       "to abort)\n");
          coordinator->request_stop_with_checkpoint();
        } else {
          std::fprintf(stderr,
                       "\ndataflow: stopping: draining the pipeline (send the signal again to "
                       "abort)\n");
          scheduler.request_stop();
        }
      } else {
        scheduler.cancel();
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
        auto now = Clock::now();
        uint64_t rows = source_rows(*plan, scheduler.metrics());
        double secs = std::chrono::duration<double>(now - last).count();
        double rate = secs > 0 ? (rows - last_rows) / secs : 0;
        last = now;
        last_rows = rows;
        std::string line = node_counts(*plan, scheduler.metrics(), true);
        std::fprintf(stderr, "\r\033[K%s  (%s rows/s)", line.c_str(),
                     human_count(static_cast<uint64_t>(rate)).c_str());
        std::fflush(stderr);
      }
    });
  }

  auto started = Clock::now();
  if (coordinator) coordinator->start(scheduler);
  Status status = scheduler.run();
  if (coordinator) coordinator->stop();
  double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  done.store(true);
  if (progress_thread.joinable()) progress_thread.join();
  signal_thread.join();
  if (progress) std::fprintf(stderr, "\r\033[K");

  const auto& metrics = scheduler.metrics();
  std::string checkpoints;
  if (coordinator) {
    const checkpoint::CoordinatorStats cs = coordinator->stats();
    checkpoints = "; " + std::to_string(cs.completed) + " checkpoints";
    if (cs.completed > 0) checkpoints += " (last " + std::to_string(cs.last_id) + ")";
    if (cs.failed + cs.aborted > 0) {
      checkpoints += ", " + std::to_string(cs.failed + cs.aborted) + " failed";
    }
  }
  std::fprintf(stderr, "dataflow: pipeline %s %s in %.3fs: %s; %llu errors%s\n",
               plan->settings.name.c_str(), status.ok() ? "finished" : "failed", elapsed,
               node_counts(*plan, metrics, false).c_str(),
               static_cast<unsigned long long>(total_errors(metrics)), checkpoints.c_str());
  if (!status.ok()) {
    print_error(status.code() == StatusCode::kCancelled ? "the run was aborted."
                                                        : status.message());
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace df::cli
