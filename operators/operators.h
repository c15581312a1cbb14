// Stateless transforms of the pipeline language: filter, map, union.
// register_operators() adds their factories to a registry (engine/plan calls it).
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::operators {

void register_operators(runtime::NodeRegistry& registry);

}  // namespace df::operators
