// Loads a pipeline file and builds its plan, printing every problem.
#pragma once

#include <memory>
#include <string>

#include "engine/plan/plan.h"

namespace df::cli {

// nullptr after printing the problems to stderr; `exit_code` says why
// (1: invalid input).
std::shared_ptr<const plan::Plan> load_plan(const std::string& path, const plan::PlanOptions& options,
                                            int& exit_code);

}  // namespace df::cli
