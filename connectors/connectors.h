// The one entry point of connectors/: registers every connector node type.
//
//   sources: file, generator        sinks: file, stdout, blackhole
//
// Call once while filling the registry (before planning; not thread-safe,
// like NodeRegistry::add).
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::connectors {

void register_connectors(df::runtime::NodeRegistry& registry);

}  // namespace df::connectors
