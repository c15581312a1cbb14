// Internal to operators/window: the validated configuration of one window
// node and the operator that runs it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/schema.h"
#include "engine/runtime/operator.h"
#include "operators/window/aggregate.h"

namespace df::operators::window {

enum class WindowType { kTumbling, kSliding, kSession };

// Immutable after the factory built it; shared by every subtask.
struct WindowConfig {
  std::string id;
  WindowType type = WindowType::kTumbling;
  int64_t size_ms = 0;   // tumbling, sliding
  int64_t slide_ms = 0;  // sliding
  int64_t gap_ms = 0;    // session
  int64_t allowed_lateness_ms = 0;
  std::vector<size_t> key_fields;  // input field indexes
  std::vector<TypeId> key_types;
  std::vector<AggSpec> aggs;
  SchemaPtr input_schema;
  SchemaPtr output_schema;  // keys, window_start, window_end, aggregates
  std::string late_output;  // empty: late rows are dropped and counted
};

// One instance per subtask. Not thread-safe (the scheduler never calls it
// concurrently).
std::unique_ptr<runtime::Operator> make_window_operator(std::shared_ptr<const WindowConfig> config);

}  // namespace df::operators::window
