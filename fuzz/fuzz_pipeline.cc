// Fuzzes the pipeline file path: YAML (or JSON) text -> located ConfigValue
// (config/yaml_loader, with its depth and alias limits) -> build_plan
// (engine/plan: every node factory's options, expressions, schemas, DAG
// checks) and the `healing:` settings, as `dataflow validate` and the
// server's POST /pipelines do. Nothing runs: plans are only built.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/pipeline_compiler.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  df::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  df::config::CompileOutcome outcome =
      df::config::compile_pipeline(text, "fuzz.yaml", df::plan::PlanOptions{});
  if (outcome.pipeline) (void)outcome.pipeline->plan->describe();
  return 0;
}
