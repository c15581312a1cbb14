// The one entry point of connectors/: registers every connector node type.
//
//   sources: file, generator, kafka        sinks: file, stdout, blackhole, kafka
//
// Call once while filling the registry (before planning; not thread-safe,
// like NodeRegistry::add). `kafka_defaults` are the server config's
// `sources.kafka` / `sinks.kafka` (connectors/kafka/client.h); they fill the
// options a Kafka node does not set.
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::connectors {

namespace kafka {
struct KafkaDefaults;
}

void register_connectors(df::runtime::NodeRegistry& registry);
void register_connectors(df::runtime::NodeRegistry& registry,
                         const kafka::KafkaDefaults& kafka_defaults);

}  // namespace df::connectors
