// How node types (filter, map, file, generator, ...) plug into the engine.
//
// operators/ and connectors/ register one NodeFactory per (role, type) into a
// NodeRegistry; engine/plan looks them up while building a plan. A factory
// validates a node's options against its input schemas and returns a
// PreparedNode: an immutable, thread-safe description that makes one
// operator instance per subtask.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/core/schema.h"
#include "engine/runtime/operator.h"

namespace df::runtime {

enum class NodeRole { kSource, kTransform, kSink };
std::string_view node_role_name(NodeRole role);  // "source", "transform", "sink"

struct NodeSpec {
  std::string id;
  std::string type;
  NodeRole role = NodeRole::kTransform;
  // The node's whole map in the pipeline file (id, type, input, ... included).
  const ConfigValue* config = nullptr;
  std::vector<std::string> inputs;  // upstream node ids, in input order
  int parallelism = 1;
  // Pipeline-wide settings a factory may need.
  size_t batch_size = 1024;
  std::string pipeline_name;
};

// How rows of a node's inputs are spread over its subtasks.
struct InputPartitioning {
  enum class Kind {
    kAny,        // any subtask may take any row: forward or round-robin
    kHash,       // rows with equal key_fields go to the same subtask
    kBroadcast,  // every subtask sees every row
  };
  Kind kind = Kind::kAny;
  std::vector<size_t> key_fields;  // kHash: field indexes in the input schema
};

class PreparedNode {
 public:
  virtual ~PreparedNode() = default;
  // Schema of the rows the node emits; nullptr for sinks.
  virtual SchemaPtr output_schema() const = 0;
  // Sources only.
  virtual std::unique_ptr<SourceOperator> make_source(int subtask, int parallelism) const {
    (void)subtask;
    (void)parallelism;
    return nullptr;
  }
  // Transforms and sinks.
  virtual std::unique_ptr<Operator> make_operator(int subtask, int parallelism) const {
    (void)subtask;
    (void)parallelism;
    return nullptr;
  }
  // True for record-at-a-time operators that may be chained into the task
  // of their single input (filter, map). False forces a task boundary.
  virtual bool chainable() const { return true; }
  virtual InputPartitioning input_partitioning() const { return {}; }
  // Some nodes cannot run in parallel (stdout); the plan clamps to this.
  virtual std::optional<int> max_parallelism() const { return std::nullopt; }
  // One line for `dataflow validate`, e.g. "where price > 1000".
  virtual std::string describe() const { return {}; }
};

using PreparedNodePtr = std::shared_ptr<const PreparedNode>;

class NodeFactory {
 public:
  virtual ~NodeFactory() = default;
  // Reads the node's options through `opts` (the keys id, type, input,
  // inputs and parallelism are already allowed), checks them against
  // `inputs` (one schema per input; empty for sources) and reports every
  // problem to opts.diags() with its location. Returns nullptr when the node
  // cannot be built; the caller calls opts.finish() to report unknown keys.
  virtual PreparedNodePtr prepare(const NodeSpec& spec, const std::vector<SchemaPtr>& inputs,
                                  OptionReader& opts) const = 0;
};

// Not thread-safe while being filled; read-only (and so thread-safe) after.
class NodeRegistry {
 public:
  void add(NodeRole role, std::string type, std::unique_ptr<NodeFactory> factory);
  const NodeFactory* find(NodeRole role, std::string_view type) const;
  std::vector<std::string> types(NodeRole role) const;

 private:
  std::map<std::pair<NodeRole, std::string>, std::unique_ptr<NodeFactory>, std::less<>> factories_;
};

}  // namespace df::runtime
