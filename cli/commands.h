// Sub-commands of the `dataflow` binary. Each returns the process exit code
// (DESIGN §7): 0 ok, 1 invalid input, 2 usage, 3 runtime failure.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace df::cli {

enum ExitCode : int { kExitOk = 0, kExitInvalidInput = 1, kExitUsage = 2, kExitRuntimeFailure = 3 };

struct ExecArgs {
  std::string pipeline;
  int workers = 0;  // 0: one per core
  int parallelism = 0;
  size_t batch_size = 1024;
  size_t buffer_size = 8192;
  double backpressure_threshold = 0.8;
  bool no_progress = false;
  std::string state_dir;              // empty: a temporary directory
  std::string state_backend = "rocksdb";
  size_t state_cache_mb = 64;         // RocksDB block cache shared by all subtasks
  size_t state_memory_mb = 64;        // per stateful subtask, before spilling to RocksDB
};

struct ValidateArgs {
  std::string pipeline;
};

// Adds the sub-command to `app`; `run` is set to the code to call when it is chosen.
void add_exec_command(CLI::App& app, std::shared_ptr<ExecArgs> args);
void add_validate_command(CLI::App& app, std::shared_ptr<ValidateArgs> args);

int run_exec(const ExecArgs& args);
int run_validate(const ValidateArgs& args);

// Prints "dataflow: <message>" to stderr.
void print_error(const std::string& message);

}  // namespace df::cli
