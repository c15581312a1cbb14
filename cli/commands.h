// Sub-commands of the `dataflow` binary. Each returns the process exit code
// (DESIGN §7): 0 ok, 1 invalid input, 2 usage, 3 runtime failure.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace df {
class Status;
namespace checkpoint {
class CheckpointStorage;
}
}  // namespace df

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
  std::string state_dir;  // empty: a temporary directory
  std::string state_backend = "rocksdb";
  size_t state_cache_mb = 64;   // RocksDB block cache shared by all subtasks
  size_t state_memory_mb = 64;  // per stateful subtask, before spilling to RocksDB
  // Where checkpoints go (s3://bucket/prefix or a directory); default: the
  // pipeline's checkpoint.storage, else --state-dir.
  std::string checkpoint_storage;
};

struct RunArgs {
  std::string config;  // --config config.yaml
  bool check = false;  // --check: validate, print the effective config, exit
};

struct ValidateArgs {
  std::string pipeline;
};

// Where a pipeline's checkpoints live: exactly one of the two.
struct StorageArgs {
  std::string state_dir;           // --state-dir DIR: local storage rooted at DIR
  std::string checkpoint_storage;  // --checkpoint-storage URL: s3://bucket/prefix or a path
  std::string server;  // --server URL: ask a DataFlow server instead (client_commands.cc)
};

struct StateArgs {
  std::string action;  // "export" or "import": the sub-command given
  std::string pipeline;
  StorageArgs storage;
  std::string output;  // export: a file, or "-" for stdout
  std::string input;   // import
  std::string
      pipeline_file;    // import: the plan to check against (default: the current checkpoint's)
  int parallelism = 0;  // import: as `exec --parallelism` (0: the file's)
  bool no_progress = false;
};

struct CheckpointsArgs {
  std::string action;  // "list" or "rollback"
  std::string pipeline;
  StorageArgs storage;
  bool json = false;    // list
  int64_t offset = -1;  // rollback --offset (-1: not given)
  std::string id;       // rollback --id (empty: not given)
};

// Adds the sub-command to `app`; `run` is set to the code to call when it is chosen.
void add_exec_command(CLI::App& app, std::shared_ptr<ExecArgs> args);
void add_validate_command(CLI::App& app, std::shared_ptr<ValidateArgs> args);
void add_run_command(CLI::App& app, std::shared_ptr<RunArgs> args);
void add_state_command(CLI::App& app, std::shared_ptr<StateArgs> args);
void add_checkpoints_command(CLI::App& app, std::shared_ptr<CheckpointsArgs> args);

int run_exec(const ExecArgs& args);
int run_validate(const ValidateArgs& args);
int run_server(const RunArgs& args);  // run_command.cc
int run_state(const StateArgs& args);
int run_checkpoints(const CheckpointsArgs& args);

// --state-dir and --checkpoint-storage on a sub-command (checkpoints_command.cc).
void add_storage_options(CLI::App& cmd, StorageArgs& args);
// The storage `args` names, or nullptr after printing why (`exit_code`: 2
// when neither or both are given, 1 when `must_exist` and --state-dir is
// not a directory, 3 when it cannot be opened).
std::unique_ptr<checkpoint::CheckpointStorage> open_checkpoint_storage(const StorageArgs& args,
                                                                       const std::string& pipeline,
                                                                       bool must_exist,
                                                                       int& exit_code);
// Exit code for a failed status: 1 for bad input (invalid, data, not found), else 3.
int exit_code_for(const Status& status);

// Prints "dataflow: <message>" to stderr.
void print_error(const std::string& message);

// The REST client (client_commands.cc, over cli/http_client.h): `submit`,
// `pipelines list|get|start|stop|delete`, `runs list|get|cancel|events`,
// one call to a DataFlow server's /api/v1 each (docs/rest-api.md).
struct ClientArgs {
  std::string command;            // the chosen one: "submit", "pipelines list", "runs get", ...
  std::string server;             // --server URL (empty: $DATAFLOW_SERVER, else 127.0.0.1:8080)
  std::string timeout = "60s";    // --timeout: the bound on each step of a call
  std::string output = "table";   // --output table|json
  std::string file;               // submit PIPELINE.yaml
  std::string name;               // the pipeline: pipelines get|start|stop|delete, runs list
  std::string run_id;             // runs get|cancel|events ID
  bool start = false;             // submit --start
  bool update = false;            // submit --update: a new version when the pipeline exists
  bool allow_state_loss = false;  // submit --update --allow-state-loss
  bool spec = false;              // pipelines get --spec: print the stored pipeline file
};
void add_client_commands(CLI::App& app, std::shared_ptr<ClientArgs> args);
// The chosen client command's exit code; kExitUsage when none was chosen.
int run_client(const ClientArgs& args);

struct HttpClientResponse;
// Calls `method` on `path` (under /api/v1, e.g. "/pipelines/x/state") of
// the server at `server` (empty: the default), sending `body` as
// `content_type` when not empty. A 2xx answer fills `response` (its body
// goes to `sink` instead when given) and returns kExitOk. Otherwise prints
// why ("dataflow: <the server's sentence>", its details lines before it)
// and returns 1 for a 4xx caused by the input, 2 for a bad --server, 3 when
// the server is unreachable or fails.
int call_server(const std::string& server, const std::string& method, const std::string& path,
                HttpClientResponse& response, const std::string& body = {},
                const std::string& content_type = {}, std::ostream* sink = nullptr,
                int64_t timeout_ms = 60000);

}  // namespace df::cli
