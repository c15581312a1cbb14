// The physical plan the Scheduler runs: vertices (chains of nodes that run as
// one task per subtask) joined by edges that say how rows cross them.
// Built by engine/plan; immutable while it runs.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "engine/runtime/node_factory.h"

namespace df::runtime {

struct PlanNode {
  std::string id;
  std::string type;
  NodeRole role = NodeRole::kTransform;
  PreparedNodePtr prepared;
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
  Partitioning partitioning = Partitioning::kRebalance;
  std::vector<size_t> hash_fields;  // kHash: field indexes in the edge's schema
};

struct PhysicalPlan {
  std::string pipeline_name;
  std::vector<PhysicalVertex> vertices;  // topological order
  std::vector<PhysicalEdge> edges;
};

}  // namespace df::runtime
