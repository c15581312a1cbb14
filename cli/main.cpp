// The one DataFlow binary. Sub-commands live in *_command.cc.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "cli/dr_command.h"

#ifndef DATAFLOW_VERSION
#define DATAFLOW_VERSION "0.0.0"
#endif

namespace df::cli {
void print_error(const std::string& message) {
  std::fprintf(stderr, "dataflow: %s\n", message.c_str());
}
}  // namespace df::cli

int main(int argc, char** argv) {
  using namespace df::cli;
  CLI::App app{"DataFlow: stateful stream pipelines, exactly once, in one small binary."};
  app.name("dataflow");
  app.set_version_flag("--version", DATAFLOW_VERSION);
  app.require_subcommand(1);
  auto exec_args = std::make_shared<ExecArgs>();
  auto validate_args = std::make_shared<ValidateArgs>();
  add_exec_command(app, exec_args);
  add_validate_command(app, validate_args);
  auto run_args = std::make_shared<RunArgs>();
  add_run_command(app, run_args);
  auto state_args = std::make_shared<StateArgs>();
  auto checkpoints_args = std::make_shared<CheckpointsArgs>();
  add_state_command(app, state_args);
  add_checkpoints_command(app, checkpoints_args);
  auto client_args = std::make_shared<ClientArgs>();
  add_client_commands(app, client_args);
  auto dr_args = std::make_shared<DrArgs>();
  add_dr_command(app, dr_args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  try {
    if (app.got_subcommand("exec")) return run_exec(*exec_args);
    if (app.got_subcommand("validate")) return run_validate(*validate_args);
    if (app.got_subcommand("run")) return run_server(*run_args);
    if (app.got_subcommand("state")) return run_state(*state_args);
    if (app.got_subcommand("checkpoints")) return run_checkpoints(*checkpoints_args);
    if (app.got_subcommand("dr")) return run_dr(*dr_args);
    if (!client_args->command.empty()) return run_client(*client_args);
  } catch (const std::exception& e) {
    print_error(std::string("internal error: ") + e.what());
    return kExitRuntimeFailure;
  }
  return kExitUsage;
}
