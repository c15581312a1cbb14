#include "connectors/connectors.h"

#include <memory>

#include "connectors/file_sink.h"
#include "connectors/file_source.h"
#include "connectors/generator_source.h"
#include "connectors/kafka/client.h"
#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_source.h"
#include "connectors/nexmark_source.h"
#include "connectors/stdout_sink.h"

namespace df::connectors {

void register_connectors(df::runtime::NodeRegistry& registry) {
  register_connectors(registry, kafka::KafkaDefaults{});
}

void register_connectors(df::runtime::NodeRegistry& registry,
                         const kafka::KafkaDefaults& kafka_defaults) {
  using runtime::NodeRole;
  registry.add(NodeRole::kSource, "file", std::make_unique<FileSourceFactory>());
  registry.add(NodeRole::kSource, "generator", std::make_unique<GeneratorSourceFactory>());
  registry.add(NodeRole::kSource, "kafka",
               std::make_unique<kafka::KafkaSourceFactory>(kafka_defaults.source));
  registry.add(NodeRole::kSource, "nexmark", std::make_unique<NexmarkSourceFactory>());
  registry.add(NodeRole::kSink, "file", std::make_unique<FileSinkFactory>());
  registry.add(NodeRole::kSink, "stdout", std::make_unique<StdoutSinkFactory>());
  registry.add(NodeRole::kSink, "blackhole", std::make_unique<BlackholeSinkFactory>());
  registry.add(NodeRole::kSink, "kafka",
               std::make_unique<kafka::KafkaSinkFactory>(kafka_defaults.sink));
}

}  // namespace df::connectors
