// `dataflow dr list|restore`: the disaster-recovery backups a server wrote
// (runtime.disaster_recovery, engine/server/disaster_recovery.h), and
// rebuilding a data directory from one.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace df::cli {

struct DrArgs {
  std::string action;              // "list" or "restore": the sub-command given
  std::string from;                // --from LOCATION: a directory or s3://bucket/prefix
  std::string data_dir;            // restore --data-dir DIR
  std::string backup;              // restore --backup ID (empty: the newest)
  std::string checkpoint_storage;  // restore --checkpoint-storage URL
  bool json = false;               // list --json
};

void add_dr_command(CLI::App& app, std::shared_ptr<DrArgs> args);
int run_dr(const DrArgs& args);

}  // namespace df::cli
