#include "cli/pipeline_loader.h"

#include <cstdio>

#include "cli/commands.h"
#include "config/pipeline_compiler.h"

namespace df::cli {

std::optional<LoadedPipeline> load_pipeline(const std::string& path,
                                            const plan::PlanOptions& options, int& exit_code,
                                            const healing::HealingSettings& healing_defaults) {
  config::CompileOutcome compiled = config::compile_pipeline_file(path, options, healing_defaults);
  if (!compiled.pipeline) {
    const size_t n = compiled.problems.size();
    // A file that cannot be read or parsed is one sentence; a document with
    // problems lists them all, then counts them.
    if (compiled.unreadable) {
      print_error(compiled.problems[0]);
    } else {
      for (const std::string& p : compiled.problems) std::fprintf(stderr, "%s\n", p.c_str());
      print_error(path + " has " + std::to_string(n) + (n == 1 ? " problem" : " problems") + ".");
    }
    exit_code = kExitInvalidInput;
    return std::nullopt;
  }
  exit_code = kExitOk;
  return std::move(*compiled.pipeline);
}

std::shared_ptr<const plan::Plan> load_plan(const std::string& path,
                                            const plan::PlanOptions& options, int& exit_code) {
  auto loaded = load_pipeline(path, options, exit_code);
  return loaded ? loaded->plan : nullptr;
}

}  // namespace df::cli
