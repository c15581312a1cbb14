#include "config/pipeline_compiler.h"

#include "config/yaml_loader.h"

namespace df::config {

namespace {

void add_lines(const std::string& text, std::vector<std::string>& out) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

CompileOutcome compile_document(const Result<ConfigValue>& doc, const plan::PlanOptions& options,
                                const healing::HealingSettings& healing_defaults,
                                const runtime::NodeRegistry& registry) {
  CompileOutcome out;
  if (!doc.ok()) {
    out.problems.push_back(doc.status().message());
    out.unreadable = true;
    return out;
  }
  CompiledPipeline compiled;
  Diagnostics healing_diags;
  const ConfigValue* healing = doc->is_map() ? doc->find("healing") : nullptr;
  compiled.healing = healing::read_healing_settings(healing, healing_defaults, healing_diags);
  compiled.restart_set = healing && healing->is_map() && healing->find("restart");
  auto built = plan::build_plan(*doc, registry, options);
  // Every problem at once: the plan's and the healing section's.
  if (!built.ok()) add_lines(built.status().message(), out.problems);
  if (!healing_diags.empty()) add_lines(healing_diags.to_status().message(), out.problems);
  if (!out.problems.empty()) return out;
  compiled.plan = std::move(built).value();
  out.pipeline = std::move(compiled);
  return out;
}

}  // namespace

CompileOutcome compile_pipeline(std::string_view text, const std::string& source,
                                const plan::PlanOptions& options,
                                const healing::HealingSettings& healing_defaults,
                                const runtime::NodeRegistry& registry) {
  return compile_document(parse_yaml(text, source), options, healing_defaults, registry);
}

CompileOutcome compile_pipeline_file(const std::string& path, const plan::PlanOptions& options,
                                     const healing::HealingSettings& healing_defaults) {
  return compile_document(load_yaml_file(path), options, healing_defaults,
                          plan::builtin_registry());
}

}  // namespace df::config
