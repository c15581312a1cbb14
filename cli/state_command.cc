// `dataflow state export|import`: a pipeline's checkpointed state as one
// readable JSON document (docs/state-format.md), and such a document back
// into a new checkpoint (DESIGN §4/§7).
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "cli/commands.h"
#include "cli/http_client.h"
#include "config/yaml_loader.h"
#include "engine/checkpoint/state_serde.h"
#include "engine/checkpoint/state_transfer.h"
#include "engine/checkpoint/storage.h"
#include "engine/plan/plan.h"
#include "engine/state/state_backend.h"

namespace df::cli {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string sentence(std::string m) {
  if (!m.empty() && m.back() != '.') m += '.';
  return m;
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1u << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  } else if (n >= 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

// The live "exporting: 1234567 entries, 85.3 MiB" line on a terminal.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { clear(); }
  checkpoint::ProgressFn fn() {
    if (!enabled_) return nullptr;
    return [this](const checkpoint::TransferProgress& p) {
      auto now = Clock::now();
      if (shown_ && now - last_ < std::chrono::milliseconds(200)) return;
      last_ = now;
      shown_ = true;
      std::fprintf(stderr, "\r\033[K%s: %llu entries, %s", p.phase,
                   static_cast<unsigned long long>(p.entries), human_bytes(p.bytes).c_str());
      std::fflush(stderr);
    };
  }
  void clear() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  Clock::time_point last_;
};

// Where `state export --output` goes: stdout for "-", else a temporary
// sibling renamed over the file by commit() once complete, so a failed
// export never leaves half a file; the destructor removes an uncommitted one.
class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)), buffer_(1 << 20) {}
  ~OutputFile() {
    if (file_.is_open()) file_.close();
    std::error_code ec;
    if (!tmp_.empty()) fs::remove(tmp_, ec);
  }

  bool to_stdout() const { return path_ == "-"; }
  // False after printing why the file cannot be written.
  bool open() {
    if (to_stdout()) return true;
    fs::path out(path_);
    tmp_ = ((out.parent_path().empty() ? fs::path(".") : out.parent_path()) /
            ("." + out.filename().string() + ".tmp-" + std::to_string(getpid())))
               .string();
    file_.rdbuf()->pubsetbuf(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    file_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!file_) {
      print_error("cannot write " + path_ + ": " + errno_text(errno) + ".");
      tmp_.clear();
      return false;
    }
    return true;
  }
  std::ostream& stream() { return to_stdout() ? std::cout : file_; }
  // Flushes and renames the temporary over the file.
  Status commit() {
    if (to_stdout()) {
      std::cout.flush();
      return std::cout ? Status::OK() : Status::io_error("cannot write to stdout");
    }
    file_.close();
    if (!file_) return Status::io_error("cannot write " + path_);
    std::error_code ec;
    fs::rename(tmp_, path_, ec);
    if (ec) return Status::io_error("cannot write " + path_ + ": " + ec.message());
    tmp_.clear();
    return Status::OK();
  }
  // Bytes written so far (0 for stdout).
  uint64_t size() {
    if (to_stdout()) return 0;
    std::error_code ec;
    auto n = fs::file_size(tmp_.empty() ? fs::path(path_) : fs::path(tmp_), ec);
    return ec ? 0 : n;
  }

 private:
  std::string path_;
  std::string tmp_;
  std::ofstream file_;
  std::vector<char> buffer_;
};

// Builds the plan of a pipeline file's text; nullptr after printing the problems.
std::shared_ptr<const plan::Plan> plan_of(const std::string& text, const std::string& name,
                                          int parallelism, int& exit_code) {
  auto doc = config::parse_yaml(text, name);
  if (!doc.ok()) {
    print_error(sentence(doc.status().message()));
    exit_code = kExitInvalidInput;
    return nullptr;
  }
  plan::PlanOptions options;
  options.parallelism_override = parallelism;
  auto built = plan::build_plan(*doc, plan::builtin_registry(), options);
  if (!built.ok()) {
    const std::string& m = built.status().message();
    size_t lines = 1 + static_cast<size_t>(std::count(m.begin(), m.end(), '\n'));
    std::fprintf(stderr, "%s\n", m.c_str());
    print_error(name + " has " + std::to_string(lines) + (lines == 1 ? " problem" : " problems") +
                ".");
    exit_code = kExitInvalidInput;
    return nullptr;
  }
  return std::move(built).value();
}

int run_export(const StateArgs& args, checkpoint::CheckpointStorage& storage) {
  auto manifest = checkpoint::load_current_manifest(storage, args.pipeline);
  if (!manifest.ok()) {
    print_error("cannot export the state of " + args.pipeline + ": " +
                sentence(manifest.status().message()));
    return exit_code_for(manifest.status());
  }
  auto text = checkpoint::load_pipeline_text(storage, *manifest);
  if (!text.ok()) {
    print_error("cannot export the state of " + args.pipeline + ": " +
                sentence(text.status().message()));
    return exit_code_for(text.status());
  }
  int code = kExitOk;
  auto plan =
      plan_of(*text, "the pipeline file of checkpoint " + std::to_string(manifest->id), 0, code);
  if (!plan) return code;
  auto nodes = plan::checkpoint_node_views(*plan);

  OutputFile output(args.output);
  if (!output.open()) return kExitInvalidInput;
  ProgressLine progress(!args.no_progress && isatty(STDERR_FILENO));
  checkpoint::ExportOptions options;
  options.progress = progress.fn();
  auto result = checkpoint::export_state(storage, *manifest, nodes, output.stream(), options);
  progress.clear();
  if (result.ok()) {
    if (Status done = output.commit(); !done.ok()) result = done;
  }
  if (!result.ok()) {
    print_error("cannot export the state of " + args.pipeline + ": " +
                sentence(result.status().message()));
    return exit_code_for(result.status());
  }
  std::fprintf(
      stderr, "dataflow: exported checkpoint %llu of %s: %zu node states, %llu entries, %s%s%s\n",
      static_cast<unsigned long long>(result->checkpoint_id), args.pipeline.c_str(), result->nodes,
      static_cast<unsigned long long>(result->entries), human_bytes(result->bytes).c_str(),
      output.to_stdout() ? "" : " to ", output.to_stdout() ? "" : args.output.c_str());
  return kExitOk;
}

int run_import(const StateArgs& args, checkpoint::CheckpointStorage& storage) {
  // The plan the document must fit: --pipeline-file, else the current checkpoint's.
  std::string text;
  std::string text_name;
  if (!args.pipeline_file.empty()) {
    std::ifstream in(args.pipeline_file, std::ios::binary);
    if (!in) {
      print_error("cannot read " + args.pipeline_file + ": " + errno_text(errno) + ".");
      return kExitInvalidInput;
    }
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
    text_name = args.pipeline_file;
  } else {
    auto manifest = checkpoint::load_current_manifest(storage, args.pipeline);
    if (!manifest.ok()) {
      if (manifest.status().code() == StatusCode::kNotFound) {
        print_error(
            "pipeline '" + args.pipeline +
            "' has no checkpoint to take its pipeline file from; give --pipeline-file FILE.");
        return kExitInvalidInput;
      }
      print_error("cannot import into " + args.pipeline + ": " +
                  sentence(manifest.status().message()));
      return exit_code_for(manifest.status());
    }
    auto stored = checkpoint::load_pipeline_text(storage, *manifest);
    if (!stored.ok()) {
      if (stored.status().code() == StatusCode::kNotFound) {
        print_error("checkpoint " + std::to_string(manifest->id) + " of " + args.pipeline +
                    " has no pipeline file; give --pipeline-file FILE.");
        return kExitInvalidInput;
      }
      print_error("cannot import into " + args.pipeline + ": " +
                  sentence(stored.status().message()));
      return exit_code_for(stored.status());
    }
    text = std::move(stored).value();
    text_name = "the pipeline file of checkpoint " + std::to_string(manifest->id);
  }
  int code = kExitOk;
  auto plan = plan_of(text, text_name, args.parallelism, code);
  if (!plan) return code;
  if (plan->settings.name != args.pipeline) {
    print_error(text_name + " is pipeline '" + plan->settings.name + "', not '" + args.pipeline +
                "'.");
    return kExitInvalidInput;
  }
  auto nodes = plan::checkpoint_node_views(*plan);

  std::ifstream in(args.input, std::ios::binary);
  if (!in) {
    print_error("cannot read " + args.input + ": " + errno_text(errno) + ".");
    return kExitInvalidInput;
  }
  std::vector<char> buffer(1 << 20);
  in.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));

  ProgressLine progress(!args.no_progress && isatty(STDERR_FILENO));
  checkpoint::ImportOptions options;
  options.pipeline = args.pipeline;
  options.pipeline_text = text;
  options.input_name = args.input;
  options.compression = plan->settings.checkpoint_compression;
  options.progress = progress.fn();
  auto result = checkpoint::import_state(storage, in, nodes, options);
  progress.clear();
  if (!result.ok()) {
    print_error(sentence(result.status().message()));
    return exit_code_for(result.status());
  }
  for (const std::string& note : result->notes)
    std::fprintf(stderr, "dataflow: note: %s\n", note.c_str());
  std::printf("imported %llu entries (%zu node states) into %s as checkpoint %llu (was %s)\n",
              static_cast<unsigned long long>(result->entries), result->nodes,
              args.pipeline.c_str(), static_cast<unsigned long long>(result->checkpoint_id),
              result->previous_id ? std::to_string(*result->previous_id).c_str() : "none");
  return kExitOk;
}

// The server's copies: GET|PUT /pipelines/{name}/state (docs/rest-api.md).
constexpr int64_t kStateTimeoutMs = 10 * 60 * 1000;  // each read: the server may build it first

int run_export_server(const StateArgs& args) {
  OutputFile output(args.output);
  if (!output.open()) return kExitInvalidInput;
  HttpClientResponse response;
  int code = call_server(args.storage.server, "GET",
                         "/pipelines/" + encode_path_segment(args.pipeline) + "/state", response,
                         {}, {}, &output.stream(), kStateTimeoutMs);
  if (code != kExitOk) return code;
  const uint64_t bytes = output.size();
  if (Status done = output.commit(); !done.ok()) {
    print_error("cannot export the state of " + args.pipeline + ": " + sentence(done.message()));
    return kExitInvalidInput;
  }
  if (output.to_stdout()) {
    std::fprintf(stderr, "dataflow: exported the state of %s from %s\n", args.pipeline.c_str(),
                 args.storage.server.c_str());
  } else {
    std::fprintf(stderr, "dataflow: exported the state of %s from %s: %s to %s\n",
                 args.pipeline.c_str(), args.storage.server.c_str(), human_bytes(bytes).c_str(),
                 args.output.c_str());
  }
  return kExitOk;
}

int run_import_server(const StateArgs& args) {
  if (!args.pipeline_file.empty() || args.parallelism != 0) {
    print_error(
        "--pipeline-file and --parallelism apply to local storage; with --server the document "
        "is checked against the pipeline's stored version.");
    return kExitUsage;
  }
  std::ifstream in(args.input, std::ios::binary);
  if (!in) {
    print_error("cannot read " + args.input + ": " + errno_text(errno) + ".");
    return kExitInvalidInput;
  }
  std::ostringstream body;
  body << in.rdbuf();
  HttpClientResponse response;
  int code = call_server(args.storage.server, "PUT",
                         "/pipelines/" + encode_path_segment(args.pipeline) + "/state", response,
                         body.str(), "application/json", nullptr, kStateTimeoutMs);
  if (code != kExitOk) return code;
  // {"checkpoint", "previous", "entries", "notes"}, as the local import reports them.
  auto answer = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  auto text = [&answer](const char* key, const char* otherwise) {
    if (!answer.is_object() || !answer.contains(key) || answer[key].is_null())
      return std::string(otherwise);
    return answer[key].dump();
  };
  if (answer.is_object() && answer.contains("notes") && answer["notes"].is_array()) {
    for (const auto& note : answer["notes"]) {
      if (note.is_string())
        std::fprintf(stderr, "dataflow: note: %s\n", note.get<std::string>().c_str());
    }
  }
  std::printf("imported %s entries into %s as checkpoint %s (was %s)\n",
              text("entries", "?").c_str(), args.pipeline.c_str(), text("checkpoint", "?").c_str(),
              text("previous", "none").c_str());
  return kExitOk;
}

}  // namespace

void add_state_command(CLI::App& app, std::shared_ptr<StateArgs> args) {
  auto* cmd =
      app.add_subcommand("state", "Export a pipeline's checkpointed state as JSON, or import it.");
  cmd->require_subcommand(1);

  auto* exp = cmd->add_subcommand("export",
                                  "Write the state of the pipeline's current checkpoint as JSON.");
  exp->add_option("--pipeline", args->pipeline, "Pipeline name")->required();
  exp->add_option("--output", args->output, "The JSON file to write ('-': stdout)")->required();
  add_storage_options(*exp, args->storage);
  exp->add_flag("--no-progress", args->no_progress, "Do not print the live progress line");
  exp->parse_complete_callback([args] { args->action = "export"; });

  auto* imp = cmd->add_subcommand(
      "import",
      "Store a JSON state export as the pipeline's new current checkpoint (validated first).");
  imp->add_option("--pipeline", args->pipeline, "Pipeline name")->required();
  imp->add_option("--input", args->input, "The JSON file to read")->required();
  add_storage_options(*imp, args->storage);
  imp->add_option("--pipeline-file", args->pipeline_file,
                  "Pipeline file to check the state against and store with it "
                  "(default: the current checkpoint's)");
  imp->add_option("--parallelism", args->parallelism,
                  "As `exec --parallelism`: override every node's parallelism")
      ->check(CLI::Range(1, 1024));
  imp->add_flag("--no-progress", args->no_progress, "Do not print the live progress line");
  imp->parse_complete_callback([args] { args->action = "import"; });
}

int run_state(const StateArgs& args) {
  if (!args.storage.server.empty()) {
    if (args.action == "export") return run_export_server(args);
    if (args.action == "import") return run_import_server(args);
    return kExitUsage;
  }
  // One store is open at a time and read or written once, front to back: a
  // small block cache keeps memory flat however large the state.
  state::set_block_cache_bytes(8u << 20);
  int code = kExitOk;
  auto storage = open_checkpoint_storage(args.storage, args.pipeline,
                                         /*must_exist=*/args.action == "export", code);
  if (!storage) return code;
  if (args.action == "export") return run_export(args, *storage);
  if (args.action == "import") return run_import(args, *storage);
  return kExitUsage;
}

}  // namespace df::cli
