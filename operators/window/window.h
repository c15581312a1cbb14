// The `window` transform (DESIGN.md §6): tumbling, sliding and session
// windows over event time, optionally keyed, with count/sum/avg/min/max/
// first/last/count_distinct aggregates, allowed lateness and a late-row side
// output. See operators/README.md for the state layout.
#pragma once

#include <memory>

#include "engine/runtime/node_factory.h"

namespace df::operators {

std::unique_ptr<runtime::NodeFactory> make_window_factory();

}  // namespace df::operators
