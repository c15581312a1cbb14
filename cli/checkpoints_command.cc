// `dataflow checkpoints list|rollback`: a pipeline's checkpoint history and
// moving _CURRENT back to an older checkpoint (DESIGN §4/§7). Also the
// storage options every checkpoint-related sub-command shares.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/http_client.h"
#include "engine/checkpoint/history.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/status.h"

namespace df::cli {

namespace {

std::string human_bytes(uint64_t n) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

std::string human_duration(int64_t ms) {
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(ms));
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f min", ms / 60000.0);
  }
  return buf;
}

std::string where(const StorageArgs& args) {
  return args.state_dir.empty() ? args.checkpoint_storage : args.state_dir;
}

int run_list(const CheckpointsArgs& args, checkpoint::CheckpointStorage& storage) {
  auto list = checkpoint::list_checkpoints(storage, args.pipeline);
  if (!list.ok()) {
    print_error("cannot list the checkpoints of " + args.pipeline + ": " + list.status().message());
    return exit_code_for(list.status());
  }
  if (list->empty()) {
    print_error("pipeline '" + args.pipeline + "' has no checkpoints in " + where(args.storage) +
                ".");
    return kExitInvalidInput;
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : *list) {
      nlohmann::json j{{"id", c.id}, {"current", c.current}, {"valid", c.valid}};
      if (c.valid) {
        j["created"] = c.created;
        j["kind"] = c.kind;
        j["size_bytes"] = c.size_bytes;
        j["duration_ms"] = c.duration_ms;
        j["incremental_bytes"] = c.incremental_bytes;
      } else {
        j["problem"] = c.problem;
      }
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("  %-6s %-24s %-8s %10s %9s %12s\n", "ID", "CREATED", "KIND", "SIZE", "DURATION",
              "INCREMENTAL");
  for (const auto& c : *list) {
    const char* mark = c.current ? "*" : " ";
    if (!c.valid) {
      std::printf("%s %-6llu invalid: %s\n", mark, static_cast<unsigned long long>(c.id),
                  c.problem.c_str());
      continue;
    }
    std::printf("%s %-6llu %-24s %-8s %10s %9s %12s\n", mark, static_cast<unsigned long long>(c.id),
                c.created.c_str(), c.kind.c_str(), human_bytes(c.size_bytes).c_str(),
                human_duration(c.duration_ms).c_str(), human_bytes(c.incremental_bytes).c_str());
  }
  std::printf("(* = current: the next run resumes from it)\n");
  return kExitOk;
}

// --id as a checkpoint id; false after printing why it is not one.
bool parse_checkpoint_id(const std::string& text, uint64_t& id) {
  try {
    size_t used = 0;
    unsigned long long v = std::stoull(text, &used);
    if (used != text.size() || text[0] == '-') throw std::invalid_argument(text);
    id = v;
    return true;
  } catch (const std::exception&) {
    print_error("--id must be a checkpoint id (a non-negative integer), not '" + text + "'.");
    return false;
  }
}

int run_rollback(const CheckpointsArgs& args, checkpoint::CheckpointStorage& storage) {
  std::optional<int> offset;
  std::optional<uint64_t> id;
  if (args.offset >= 0) offset = static_cast<int>(args.offset);
  if (!args.id.empty()) {
    uint64_t v = 0;
    if (!parse_checkpoint_id(args.id, v)) return kExitUsage;
    id = v;
  }
  // What _CURRENT names before (the newest when it names none).
  std::string was = "none";
  if (auto list = checkpoint::list_checkpoints(storage, args.pipeline); list.ok()) {
    for (const auto& c : *list) {
      if (c.current) was = std::to_string(c.id);
    }
  }
  auto moved = checkpoint::rollback(storage, args.pipeline, offset, id);
  if (!moved.ok()) {
    std::string m = moved.status().message();
    if (!m.empty() && m.back() != '.') m += '.';
    print_error("cannot roll back " + args.pipeline + ": " + m);
    return exit_code_for(moved.status());
  }
  std::printf("rolled back %s to checkpoint %llu (was %s)\n", args.pipeline.c_str(),
              static_cast<unsigned long long>(*moved), was.c_str());
  return kExitOk;
}

// The server's view: GET /pipelines/{name}/checkpoints and POST .../rollback.
std::string server_path(const CheckpointsArgs& args, const char* leaf) {
  return "/pipelines/" + encode_path_segment(args.pipeline) + "/" + leaf;
}

int run_list_server(const CheckpointsArgs& args) {
  HttpClientResponse response;
  int code = call_server(args.storage.server, "GET", server_path(args, "checkpoints"), response);
  if (code != kExitOk) return code;
  auto doc = nlohmann::ordered_json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("checkpoints") || !doc["checkpoints"].is_array()) {
    print_error("the server's answer has no checkpoint list.");
    return kExitRuntimeFailure;
  }
  if (args.json) {
    std::printf("%s\n", doc.dump(2).c_str());
    return kExitOk;
  }
  const auto& list = doc["checkpoints"];
  if (list.empty()) {
    print_error("pipeline '" + args.pipeline + "' has no checkpoints on the server at " +
                args.storage.server + ".");
    return kExitInvalidInput;
  }
  // The local table's columns, as far as the server reports them.
  auto number = [](const nlohmann::ordered_json& c, const char* key) -> uint64_t {
    auto it = c.find(key);
    return it != c.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
  };
  std::printf("  %-6s %-24s %-8s %10s %9s\n", "ID", "CREATED", "KIND", "SIZE", "DURATION");
  for (const auto& c : list) {
    const char* mark = c.value("current", false) ? "*" : " ";
    const auto id = static_cast<unsigned long long>(number(c, "id"));
    if (!c.value("valid", true)) {
      std::printf("%s %-6llu invalid: %s\n", mark, id, c.value("problem", std::string()).c_str());
      continue;
    }
    std::printf(
        "%s %-6llu %-24s %-8s %10s %9s\n", mark, id, c.value("time", std::string("-")).c_str(),
        c.value("kind", std::string("-")).c_str(), human_bytes(number(c, "size_bytes")).c_str(),
        human_duration(static_cast<int64_t>(number(c, "duration_ms"))).c_str());
  }
  std::printf("(* = current: the next run resumes from it)\n");
  return kExitOk;
}

int run_rollback_server(const CheckpointsArgs& args) {
  nlohmann::json body;
  if (!args.id.empty()) {
    uint64_t id = 0;
    if (!parse_checkpoint_id(args.id, id)) return kExitUsage;
    body["id"] = id;
  } else {
    body["offset"] = args.offset >= 0 ? args.offset : 1;  // default: one older, as locally
  }
  HttpClientResponse response;
  int code = call_server(args.storage.server, "POST", server_path(args, "rollback"), response,
                         body.dump(), "application/json");
  if (code != kExitOk) return code;
  auto doc = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  std::string current = "?";
  if (doc.is_object() && doc.contains("current")) current = doc["current"].dump();
  std::printf("rolled back %s to checkpoint %s\n", args.pipeline.c_str(), current.c_str());
  return kExitOk;
}

}  // namespace

int exit_code_for(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kDataError:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
      return kExitInvalidInput;
    default:
      return kExitRuntimeFailure;
  }
}

void add_storage_options(CLI::App& cmd, StorageArgs& args) {
  auto* dir = cmd.add_option("--state-dir", args.state_dir,
                             "Local checkpoint storage: DIR/<pipeline>/checkpoints/...");
  auto* url =
      cmd.add_option("--checkpoint-storage", args.checkpoint_storage,
                     "Checkpoint storage URL: s3://bucket/prefix (AWS_* variables) or a path");
  auto* server = cmd.add_option("--server", args.server,
                                "Ask the DataFlow server at URL (http://host:port) instead");
  dir->excludes(url);
  url->excludes(dir);
  server->excludes(dir);
  server->excludes(url);
  dir->excludes(server);
  url->excludes(server);
}

std::unique_ptr<checkpoint::CheckpointStorage> open_checkpoint_storage(const StorageArgs& args,
                                                                       const std::string& pipeline,
                                                                       bool must_exist,
                                                                       int& exit_code) {
  if (args.state_dir.empty() == args.checkpoint_storage.empty()) {
    print_error(
        "give the checkpoint storage: --state-dir DIR or --checkpoint-storage URL (or ask a "
        "server with --server URL).");
    exit_code = kExitUsage;
    return nullptr;
  }
  std::string url = args.state_dir.empty() ? args.checkpoint_storage : args.state_dir;
  bool local = url.find("://") == std::string::npos;
  if (must_exist && local) {
    std::error_code ec;
    if (!std::filesystem::is_directory(url, ec)) {
      print_error("pipeline '" + pipeline + "' has no checkpoints in " + url +
                  " (no such directory).");
      exit_code = kExitInvalidInput;
      return nullptr;
    }
  }
  auto storage = checkpoint::open_storage(url);
  if (!storage.ok()) {
    std::string m = storage.status().message();
    if (!m.empty() && m.back() != '.') m += '.';
    print_error(m);
    exit_code =
        storage.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntimeFailure;
    return nullptr;
  }
  exit_code = kExitOk;
  return std::move(storage).value();
}

void add_checkpoints_command(CLI::App& app, std::shared_ptr<CheckpointsArgs> args) {
  auto* cmd =
      app.add_subcommand("checkpoints", "List a pipeline's checkpoints or roll back to one.");
  cmd->require_subcommand(1);

  auto* list = cmd->add_subcommand(
      "list", "List the checkpoints of a pipeline, newest first; * marks the current one.");
  list->add_option("--pipeline", args->pipeline, "Pipeline name")->required();
  add_storage_options(*list, args->storage);
  list->add_flag("--json", args->json, "Print a JSON array instead of a table");
  list->parse_complete_callback([args] { args->action = "list"; });

  auto* rb = cmd->add_subcommand(
      "rollback",
      "Move the pipeline's current checkpoint back (default: one older); nothing is deleted.");
  rb->add_option("--pipeline", args->pipeline, "Pipeline name")->required();
  add_storage_options(*rb, args->storage);
  auto* offset = rb->add_option("--offset", args->offset,
                                "Go back N checkpoints from the current one (0 = the current one)")
                     ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  auto* id = rb->add_option("--id", args->id, "Go to checkpoint ID");
  offset->excludes(id);
  id->excludes(offset);
  rb->parse_complete_callback([args] { args->action = "rollback"; });
}

int run_checkpoints(const CheckpointsArgs& args) {
  if (!args.storage.server.empty()) {
    if (args.action == "list") return run_list_server(args);
    if (args.action == "rollback") return run_rollback_server(args);
    return kExitUsage;
  }
  int code = kExitOk;
  auto storage = open_checkpoint_storage(args.storage, args.pipeline, /*must_exist=*/true, code);
  if (!storage) return code;
  if (args.action == "list") return run_list(args, *storage);
  if (args.action == "rollback") return run_rollback(args, *storage);
  return kExitUsage;
}

}  // namespace df::cli
