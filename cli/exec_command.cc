// `dataflow exec`: runs one pipeline in this process until its sources end
// (or SIGINT/SIGTERM asks it to stop), then prints a one-line summary.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/pipeline_loader.h"
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
    if (int64_t wm = m->watermark_ms.load(); wm != INT64_MIN && !human) s += " wm " + format_timestamp(wm);
  }
  return s;
}

// The run's state root: --state-dir/<pipeline>/work, or a temporary
// directory; removed at exit unless the user named the directory.
class StateRoot {
 public:
  StateRoot(const ExecArgs& args, const std::string& pipeline) {
    if (args.state_backend == "memory") return;
    namespace fs = std::filesystem;
    if (!args.state_dir.empty()) {
      // Keyed state does not outlive a run until checkpoints can resume it.
      path_ = (fs::path(args.state_dir) / pipeline / "work").string();
      std::error_code ec;
      fs::remove_all(path_, ec);
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
  cmd->add_option("--state-cache-mb", args->state_cache_mb, "RocksDB block cache shared by all tasks (MiB)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--state-memory-mb", args->state_memory_mb,
                  "Memory a stateful task uses before spilling to RocksDB (MiB)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
}

int run_exec(const ExecArgs& args) {
  plan::PlanOptions plan_options;
  plan_options.batch_size = args.batch_size;
  plan_options.parallelism_override = args.parallelism;
  int code = kExitOk;
  auto plan = load_plan(args.pipeline, plan_options, code);
  if (!plan) return code;

  runtime::RunOptions options;
  options.workers = args.workers > 0 ? args.workers
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
  options.state_root = state_root.path();
  options.state_memory_budget = args.state_memory_mb << 20;
  state::set_block_cache_bytes(args.state_cache_mb << 20);

  // Signals are taken by a dedicated thread: block them before any other
  // thread exists so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A closed stdout must surface as EPIPE in the sink, not kill the process.
  signal(SIGPIPE, SIG_IGN);

  runtime::Scheduler scheduler(plan->physical, options);
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    int received = 0;
    timespec tick{0, 200'000'000};
    while (!done.load()) {
      int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig <= 0) continue;
      if (++received == 1) {
        std::fprintf(stderr, "\ndataflow: stopping: draining the pipeline (send the signal again to abort)\n");
        scheduler.request_stop();
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
        for (int i = 0; i < 5 && !done.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        auto now = Clock::now();
        uint64_t rows = source_rows(*plan, scheduler.metrics());
        double secs = std::chrono::duration<double>(now - last).count();
        double rate = secs > 0 ? (rows - last_rows) / secs : 0;
        last = now;
        last_rows = rows;
        std::string line = node_counts(*plan, scheduler.metrics(), true);
        std::fprintf(stderr, "\r\033[K%s  (%s rows/s)", line.c_str(), human_count(static_cast<uint64_t>(rate)).c_str());
        std::fflush(stderr);
      }
    });
  }

  auto started = Clock::now();
  Status status = scheduler.run();
  double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  done.store(true);
  if (progress_thread.joinable()) progress_thread.join();
  signal_thread.join();
  if (progress) std::fprintf(stderr, "\r\033[K");

  const auto& metrics = scheduler.metrics();
  std::fprintf(stderr, "dataflow: pipeline %s %s in %.3fs: %s; %llu errors\n",
               plan->settings.name.c_str(), status.ok() ? "finished" : "failed", elapsed,
               node_counts(*plan, metrics, false).c_str(),
               static_cast<unsigned long long>(total_errors(metrics)));
  if (!status.ok()) {
    print_error(status.code() == StatusCode::kCancelled ? "the run was aborted."
                                                        : status.message());
    return kExitRuntimeFailure;
  }
  return kExitOk;
}

}  // namespace df::cli
