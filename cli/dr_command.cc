// `dataflow dr list --from LOCATION` and `dataflow dr restore --from LOCATION
// --data-dir DIR`: see cli/dr_command.h and docs/operations/runbooks.md
// ("Restore from backup").
#include "cli/dr_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/server/disaster_recovery.h"

namespace df::cli {

void add_dr_command(CLI::App& app, std::shared_ptr<DrArgs> args) {
  auto* cmd =
      app.add_subcommand("dr", "Disaster recovery: list backups, restore a data directory.");
  cmd->require_subcommand(1);
  auto* list =
      cmd->add_subcommand("list", "List the complete backups at a location, newest first.");
  list->add_option("--from", args->from, "Backup location: a directory or s3://bucket/prefix")
      ->required();
  list->add_flag("--json", args->json, "Print JSON");
  list->parse_complete_callback([args] { args->action = "list"; });
  auto* restore = cmd->add_subcommand(
      "restore",
      "Rebuild a server's data directory (metadata store and checkpoints) from a backup.");
  restore->add_option("--from", args->from, "Backup location: a directory or s3://bucket/prefix")
      ->required();
  restore->add_option("--data-dir", args->data_dir, "The new data directory (server.data_dir)")
      ->required();
  restore->add_option("--backup", args->backup, "The backup's id (default: the newest)");
  restore->add_option("--checkpoint-storage", args->checkpoint_storage,
                      "Where pipelines that used the server's runtime.checkpoint_storage get "
                      "their checkpoints back (default: <data-dir>/checkpoints)");
  restore->parse_complete_callback([args] { args->action = "restore"; });
}

namespace {

int run_list(const DrArgs& args) {
  auto backups = server::list_backups(args.from);
  if (!backups.ok()) {
    print_error("cannot list the backups in " + args.from + ": " + backups.status().message());
    return exit_code_for(backups.status());
  }
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& b : *backups) {
      out.push_back({{"id", b.id},
                     {"created", b.created},
                     {"pipelines", b.pipelines},
                     {"checkpoints", b.checkpoints},
                     {"bytes", b.bytes}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  if (backups->empty()) {
    print_error("no complete backup in " + args.from + ".");
    return kExitInvalidInput;
  }
  std::printf("%-20s  %-24s  %12s  %s\n", "ID", "CREATED", "BYTES", "PIPELINES@CHECKPOINT");
  for (const auto& b : *backups) {
    std::string names;
    for (const auto& [name, checkpoint] : b.checkpoints) {
      names += (names.empty() ? "" : ",") + name + "@" + std::to_string(checkpoint);
    }
    std::printf("%-20s  %-24s  %12llu  %s\n", b.id.c_str(), b.created.c_str(),
                static_cast<unsigned long long>(b.bytes), names.empty() ? "-" : names.c_str());
  }
  return kExitOk;
}

int run_restore(const DrArgs& args) {
  server::RestoreOptions options;
  options.from = args.from;
  options.backup_id = args.backup;
  options.data_dir = args.data_dir;
  options.checkpoint_storage = args.checkpoint_storage;
  auto restored = server::restore_backup(options);
  if (!restored.ok()) {
    print_error("restore failed: " + restored.status().message());
    return exit_code_for(restored.status());
  }
  // Which checkpoint each pipeline resumes from: the newest completed one
  // of its storage, which may be newer than the backup's.
  for (const server::PipelineRestore& p : restored->pipelines) {
    std::printf("%s\n", server::describe(p).c_str());
  }
  std::printf("Restored backup %s (%s) into %s: %llu metadata keys, %zu pipeline checkpoints.\n",
              restored->backup.id.c_str(), restored->backup.created.c_str(), args.data_dir.c_str(),
              static_cast<unsigned long long>(restored->metadata_keys),
              restored->backup.pipelines.size());
  std::printf(
      "Start the server with server.data_dir: %s; it resumes the pipelines that were "
      "running, each from the checkpoint above.\n",
      args.data_dir.c_str());
  return kExitOk;
}

}  // namespace

int run_dr(const DrArgs& args) {
  if (args.action == "list") return run_list(args);
  if (args.action == "restore") return run_restore(args);
  return kExitUsage;
}

}  // namespace df::cli
