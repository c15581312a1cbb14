// Loads a pipeline file and builds its plan, printing every problem.
#pragma once

#include <memory>
#include <string>

#include "config/pipeline_compiler.h"

namespace df::cli {

using LoadedPipeline = config::CompiledPipeline;

// The plan and the `healing:` settings (over `healing_defaults`), or nullopt
// after printing every problem of both to stderr; `exit_code` says why
// (1: invalid input).
std::optional<LoadedPipeline> load_pipeline(const std::string& path,
                                            const plan::PlanOptions& options, int& exit_code,
                                            const healing::HealingSettings& healing_defaults = {});

// load_pipeline() for callers that need only the plan.
std::shared_ptr<const plan::Plan> load_plan(const std::string& path,
                                            const plan::PlanOptions& options, int& exit_code);

}  // namespace df::cli
