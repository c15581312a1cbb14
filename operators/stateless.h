// Internal to operators/: the factories of the stateless operators.
#pragma once

#include <memory>
#include <vector>

#include "engine/runtime/node_factory.h"
#include "operators/expr_options.h"

namespace df::operators {

std::unique_ptr<runtime::NodeFactory> make_filter_factory();
std::unique_ptr<runtime::NodeFactory> make_map_factory();
std::unique_ptr<runtime::NodeFactory> make_union_factory();

// Reports an error unless the node has exactly one input.
bool require_single_input(const runtime::NodeSpec& spec, const std::vector<SchemaPtr>& inputs,
                          OptionReader& opts);

}  // namespace df::operators
