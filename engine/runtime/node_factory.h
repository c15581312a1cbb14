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
  // The pipeline's `checkpoint.delivery`: "at_least_once" or "exactly_once".
  // A sink may override it with its own `delivery` option.
  std::string delivery = "at_least_once";
  // Whether the pipeline has a dead-letter sink: a row that fails goes
  // there whole, every field of it read.
  bool has_dead_letter_sink = false;
  // Per input: whether its rows carry event time (Batch::event_time()). A
  // window or join reports a located error when it needs event time and an
  // input lacks it.
  std::vector<bool> input_has_event_time;
};

// A named extra output stream of a node (e.g. a window's `late_output`);
// other nodes read it by name as if it were a node id.
struct SideOutput {
  std::string name;
  SchemaPtr schema;
  SourceLocation location;  // where the name is declared
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

// One flag per field of a stream: whether a node downstream reads it.
using FieldMask = std::vector<bool>;
// For describe() of a projected node (PreparedNode::project): "; read
// downstream: a, b" (the flagged fields of `schema`), or "" when `read` is
// empty (every field).
std::string describe_fields_read(const Schema& schema, const FieldMask& read);

class PreparedNode;
using PreparedNodePtr = std::shared_ptr<const PreparedNode>;

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
  // of their single input (filter, map). False forces a task boundary. Not
  // asked of sources: a source always heads its own chain.
  virtual bool chainable() const { return true; }
  // How rows of input `input` reach the subtasks (key_fields index that
  // input's schema). The default asks the one-argument form.
  virtual InputPartitioning input_partitioning(size_t input) const {
    (void)input;
    return input_partitioning();
  }
  virtual InputPartitioning input_partitioning() const { return {}; }
  // Extra output streams; port k+1 of Output::emit_to is side_outputs()[k].
  virtual std::vector<SideOutput> side_outputs() const { return {}; }
  // Whether emitted rows carry event time: nullopt = when every input does
  // (1:1 operators); windows and joins say true.
  virtual std::optional<bool> output_has_event_time() const { return std::nullopt; }
  // Some nodes cannot run in parallel (stdout); the plan clamps to this.
  virtual std::optional<int> max_parallelism() const { return std::nullopt; }
  // One line for `dataflow validate`, e.g. "where price > 1000".
  virtual std::string describe() const { return {}; }
  // The fields of input `input` the node reads (its own use, its dead
  // letters and side outputs included), given which of its main output's
  // fields are read downstream (`output_read`; empty for a sink): nullopt,
  // the default, for all of them. engine/plan works this out from the sinks
  // up so that a source fills only the columns something reads.
  virtual std::optional<FieldMask> input_fields_read(size_t input,
                                                     const FieldMask& output_read) const {
    (void)input;
    (void)output_read;
    return std::nullopt;
  }
  // The same node filling only the output fields flagged in `read` (the
  // others may come out null: nothing reads them), or nullptr when it would
  // fill every field anyway. Its output schema does not change. Sources skip
  // what they would decode or generate, a map the expressions nothing reads.
  // The plan asks only nodes without side outputs: `read` is the main one's.
  virtual PreparedNodePtr project(const FieldMask& read) const {
    (void)read;
    return nullptr;
  }
};

class NodeFactory {
 public:
  virtual ~NodeFactory() = default;
  // Option keys naming this node's inputs, in input order, for nodes whose
  // inputs have roles (a join's `left` and `right`). Empty: the generic
  // `input` / `inputs` keys.
  virtual std::vector<std::string> input_keys() const { return {}; }
  // Option keys whose value names a side output stream (a window's
  // `late_output`); the planner lets other nodes read those names as inputs.
  // The prepared node's side_outputs() lists the same names.
  virtual std::vector<std::string> side_output_keys() const { return {}; }
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
