#include "cli/pipeline_loader.h"

#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "config/yaml_loader.h"

namespace df::cli {

std::optional<LoadedPipeline> load_pipeline(const std::string& path,
                                            const plan::PlanOptions& options, int& exit_code,
                                            const healing::HealingSettings& healing_defaults) {
  auto doc = config::load_yaml_file(path);
  if (!doc.ok()) {
    print_error(doc.status().message());
    exit_code = kExitInvalidInput;
    return std::nullopt;
  }
  LoadedPipeline loaded;
  Diagnostics healing_diags;
  const ConfigValue* healing = doc->is_map() ? doc->find("healing") : nullptr;
  loaded.healing = healing::read_healing_settings(healing, healing_defaults, healing_diags);
  loaded.restart_set = healing && healing->is_map() && healing->find("restart");
  auto built = plan::build_plan(*doc, plan::builtin_registry(), options);
  // Every problem at once: the plan's and the healing section's.
  std::string problems = built.ok() ? std::string() : built.status().message();
  if (!healing_diags.empty()) {
    if (!problems.empty()) problems += '\n';
    problems += healing_diags.to_status().message();
  }
  if (!problems.empty()) {
    size_t lines = 1 + static_cast<size_t>(std::count(problems.begin(), problems.end(), '\n'));
    std::fprintf(stderr, "%s\n", problems.c_str());
    print_error(path + " has " + std::to_string(lines) + (lines == 1 ? " problem" : " problems") +
                ".");
    exit_code = kExitInvalidInput;
    return std::nullopt;
  }
  loaded.plan = std::move(built).value();
  exit_code = kExitOk;
  return loaded;
}

std::shared_ptr<const plan::Plan> load_plan(const std::string& path,
                                            const plan::PlanOptions& options, int& exit_code) {
  auto loaded = load_pipeline(path, options, exit_code);
  return loaded ? loaded->plan : nullptr;
}

}  // namespace df::cli
