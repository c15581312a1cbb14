// union: merges several inputs of one schema into one stream.
#include "operators/stateful.h"
#include "operators/stateless.h"
#include "operators/window/top_n.h"
#include "operators/window/window.h"

namespace df::operators {

namespace {

class UnionOperator final : public runtime::Operator {
 public:
  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    out.emit(batch);
    return Status::OK();
  }
};

class PreparedUnion final : public runtime::PreparedNode {
 public:
  explicit PreparedUnion(SchemaPtr schema) : schema_(std::move(schema)) {}
  SchemaPtr output_schema() const override { return schema_; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return std::make_unique<UnionOperator>();
  }
  bool chainable() const override { return false; }

 private:
  SchemaPtr schema_;
};

class UnionFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    if (inputs.empty()) {
      opts.diags().error(opts.node().location(), "union '" + spec.id + "' needs 'inputs'");
      return nullptr;
    }
    bool ok = true;
    for (size_t i = 1; i < inputs.size(); ++i) {
      if (!(*inputs[i] == *inputs[0])) {
        opts.diags().error(opts.node().location(),
                           "union '" + spec.id + "': input '" + spec.inputs[i] + "' has schema " +
                               inputs[i]->to_string() + " but '" + spec.inputs[0] + "' has " +
                               inputs[0]->to_string());
        ok = false;
      }
    }
    return ok ? std::make_shared<PreparedUnion>(inputs[0]) : nullptr;
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_union_factory() {
  return std::make_unique<UnionFactory>();
}

bool require_single_input(const runtime::NodeSpec& spec, const std::vector<SchemaPtr>& inputs,
                          OptionReader& opts) {
  if (inputs.size() == 1) return true;
  opts.diags().error(opts.node().location(),
                     spec.type + " '" + spec.id + "' takes exactly one input, got " +
                         std::to_string(inputs.size()) + " (use a union to merge streams)");
  return false;
}

void register_operators(runtime::NodeRegistry& registry) {
  registry.add(runtime::NodeRole::kTransform, "filter", make_filter_factory());
  registry.add(runtime::NodeRole::kTransform, "map", make_map_factory());
  registry.add(runtime::NodeRole::kTransform, "union", make_union_factory());
  registry.add(runtime::NodeRole::kTransform, "key_by", make_key_by_factory());
  registry.add(runtime::NodeRole::kTransform, "dedupe", make_dedupe_factory());
  registry.add(runtime::NodeRole::kTransform, "join", make_join_factory());
  registry.add(runtime::NodeRole::kTransform, "window", make_window_factory());
  registry.add(runtime::NodeRole::kTransform, "top_n", make_top_n_factory());
}

}  // namespace df::operators
