#include "cli/pipeline_loader.h"

#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "config/yaml_loader.h"

namespace df::cli {

std::shared_ptr<const plan::Plan> load_plan(const std::string& path, const plan::PlanOptions& options,
                                            int& exit_code) {
  auto doc = config::load_yaml_file(path);
  if (!doc.ok()) {
    print_error(doc.status().message());
    exit_code = kExitInvalidInput;
    return nullptr;
  }
  auto built = plan::build_plan(*doc, plan::builtin_registry(), options);
  if (!built.ok()) {
    const std::string& m = built.status().message();
    size_t lines = 1 + static_cast<size_t>(std::count(m.begin(), m.end(), '\n'));
    std::fprintf(stderr, "%s\n", m.c_str());
    print_error(path + " has " + std::to_string(lines) + (lines == 1 ? " problem" : " problems") + ".");
    exit_code = kExitInvalidInput;
    return nullptr;
  }
  exit_code = kExitOk;
  return std::move(built).value();
}

}  // namespace df::cli
