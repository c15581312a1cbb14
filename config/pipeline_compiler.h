// Turns a pipeline document (YAML or JSON text, or a file) into its plan and
// `healing:` settings, collecting every problem of both at once. Used by the
// CLI (exec, validate) and handed to the server, which may not parse YAML
// itself (layering: config/ sits above engine/server). Stateless and
// thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/healing/settings.h"
#include "engine/plan/plan.h"

namespace df::config {

struct CompiledPipeline {
  std::shared_ptr<const plan::Plan> plan;
  healing::HealingSettings healing;
  // Whether the document chose a restart strategy itself (`healing.restart`).
  bool restart_set = false;
};

struct CompileOutcome {
  std::optional<CompiledPipeline> pipeline;  // set when there is no problem
  // Every problem, one sentence each ("file:line:col: message" where the
  // document has a location), in document order.
  std::vector<std::string> problems;
  // The text could not be read or parsed at all: `problems` holds that
  // one sentence.
  bool unreadable = false;
};

// `source` names the text in locations ("pipeline.yaml", "request body").
// `registry`: the node types (the server's carries its Kafka defaults).
CompileOutcome compile_pipeline(std::string_view text, const std::string& source,
                                const plan::PlanOptions& options,
                                const healing::HealingSettings& healing_defaults = {},
                                const runtime::NodeRegistry& registry = plan::builtin_registry());
// The same for a file; a file that cannot be read is one problem.
CompileOutcome compile_pipeline_file(const std::string& path, const plan::PlanOptions& options,
                                     const healing::HealingSettings& healing_defaults = {});

}  // namespace df::config
