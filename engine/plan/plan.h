// engine/plan: a pipeline document (DESIGN §6) -> validated logical DAG ->
// physical plan (parallelism, exchanges, chains) that the Scheduler runs.
//
// build_plan() checks everything it can before anything runs and reports every
// problem at once, each with file:line:column: unknown top-level keys, missing
// or duplicate ids, unknown node types, dangling inputs, cycles, sinks that no
// source reaches, and each node's own option, field and type errors.
// Stateless and thread-safe; the returned Plan is immutable.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint/state_transfer.h"
#include "engine/core/config_value.h"
#include "engine/core/status.h"
#include "engine/runtime/node_factory.h"
#include "engine/runtime/physical_plan.h"

namespace df::plan {

// Pipeline-level settings from the file (DESIGN §6).
struct PipelineSettings {
  std::string name;
  int parallelism = 1;
  std::optional<Millis> checkpoint_interval;
  std::string delivery = "at_least_once";  // or exactly_once
  Millis checkpoint_timeout{600000};       // checkpoint.timeout (default 10m)
  int checkpoint_retained = 3;             // checkpoint.retained
  std::string checkpoint_storage;          // checkpoint.storage: path or s3://bucket/prefix
  bool checkpoint_compression = false;     // checkpoint.compression
  std::string dead_letter_sink;            // empty: none; the sink takes no `input`
  double dead_letter_max_rate = 0.01;
  std::optional<size_t> batch_size;        // performance override
};

// One node of the logical DAG.
struct LogicalNode {
  std::string id;
  std::string type;
  runtime::NodeRole role = runtime::NodeRole::kTransform;
  SourceLocation location;
  std::vector<size_t> inputs;       // indexes into Plan::nodes
  std::vector<size_t> input_ports;  // per input: 0 = main output, k = side output k
  int parallelism = 1;
  runtime::PreparedNodePtr prepared;
  SchemaPtr output_schema;  // nullptr for sinks
  bool has_event_time = false;  // emitted rows carry event time
  std::optional<runtime::EventTimeSpec> event_time;  // sources with `event_time:`
};

struct Plan {
  PipelineSettings settings;
  std::vector<LogicalNode> nodes;  // topological order
  runtime::PhysicalPlan physical;
  // Human-readable plan for `dataflow validate`.
  std::string describe() const;
};

struct PlanOptions {
  size_t batch_size = 1024;
  // Overrides the file's parallelism for every node (e.g. a CLI flag); 0 = keep.
  int parallelism_override = 0;
};

// The plan's nodes as state export/import sees them (id, type,
// parallelism, and the StateSerde of stateful ones).
std::vector<checkpoint::NodeView> checkpoint_node_views(const Plan& plan);

// The registry with every built-in operator and connector.
const runtime::NodeRegistry& builtin_registry();
// The same, with the server's defaults for Kafka nodes (config.yaml's
// sources.kafka / sinks.kafka: located maps, or null for none).
runtime::NodeRegistry make_registry(const ConfigValue& kafka_source_defaults,
                                    const ConfigValue& kafka_sink_defaults);

// `document` is the parsed pipeline file. On failure: InvalidArgument whose
// message lists every problem, one "file:line:col: message" per line.
Result<std::shared_ptr<const Plan>> build_plan(const ConfigValue& document,
                                               const runtime::NodeRegistry& registry,
                                               const PlanOptions& options = {});

}  // namespace df::plan
