#include <cstdio>

#include "cli/commands.h"
#include "cli/pipeline_loader.h"

namespace df::cli {

void add_validate_command(CLI::App& app, std::shared_ptr<ValidateArgs> args) {
  auto* cmd = app.add_subcommand(
      "validate", "Check a pipeline file and print its plan; exit 1 listing every problem.");
  cmd->add_option("pipeline", args->pipeline, "Pipeline file (YAML)")->required();
}

int run_validate(const ValidateArgs& args) {
  int code = kExitOk;
  auto plan = load_plan(args.pipeline, {}, code);
  if (!plan) return code;
  std::fputs(plan->describe().c_str(), stdout);
  std::printf("%s is valid.\n", args.pipeline.c_str());
  return kExitOk;
}

}  // namespace df::cli
