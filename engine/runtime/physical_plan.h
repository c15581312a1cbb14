// The physical plan the Scheduler runs: vertices (chains of nodes that run as
// one task per subtask) joined by edges that say how rows cross them.
// Built by engine/plan; immutable while it runs.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/time.h"
#include "engine/runtime/node_factory.h"

namespace df::runtime {

// Event time of a source (DESIGN §3/§6): the runtime's source task sets each
// emitted batch's event-time column from `field` and emits watermarks of
// max_seen - max_out_of_orderness - 1 as they advance; after `idle_timeout`
// without rows it sends an idle watermark so it stops holding others back.
struct EventTimeSpec {
  size_t field = 0;  // index in the source's output schema (timestamp or int64 ms)
  Millis max_out_of_orderness{0};
  std::optional<Millis> idle_timeout;
};

struct PlanNode {
  std::string id;
  std::string type;
  NodeRole role = NodeRole::kTransform;
  PreparedNodePtr prepared;
  std::optional<EventTimeSpec> event_time;  // sources only
};

struct PhysicalVertex {
  // The chained nodes, upstream first; only chain.front() may be a source,
  // only chain.back() may be a sink. Every node in between has exactly one
  // input: its predecessor in the chain.
  std::vector<PlanNode> chain;
  int parallelism = 1;
  // "big -> eur" for logs and summaries.
  std::string name() const;
};

enum class Partitioning {
  kForward,    // subtask i -> subtask i (equal parallelism)
  kRebalance,  // round-robin by batch
  kHash,       // by hash of key fields (rows of a batch are split)
  kBroadcast,  // every downstream subtask
};

struct PhysicalEdge {
  size_t from = 0;      // vertex index; rows are the output of its chain.back()
  size_t to = 0;        // vertex index
  size_t to_input = 0;  // input position at chain.front() of `to`
  size_t from_port = 0;  // 0: the main output; k: side output k of chain.back()
  Partitioning partitioning = Partitioning::kRebalance;
  std::vector<size_t> hash_fields;  // kHash: field indexes in the edge's schema
};

struct PhysicalPlan {
  std::string pipeline_name;
  std::vector<PhysicalVertex> vertices;  // topological order
  std::vector<PhysicalEdge> edges;
};

}  // namespace df::runtime
