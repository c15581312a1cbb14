#include "engine/server/server_metrics.h"

#include <map>
#include <optional>
#include <string>

#include "engine/core/log.h"
#include "engine/healing/failure.h"

namespace df::server {

namespace {

void collect(metrics::MetricsWriter& out, const PipelineManager& manager) {
  const std::vector<PipelineSnapshot> pipelines = manager.snapshot();
  auto running = out.gauge("dataflow_pipeline_running",
                           "1 while the pipeline has a running run, else 0.", {"pipeline"});
  auto processed = out.counter("dataflow_events_processed_total",
                               "Rows the pipeline's sources emitted (this run).", {"pipeline"});
  auto failed = out.counter("dataflow_events_failed_total",
                            "Rows skipped as bad records (this run).", {"pipeline"});
  auto rows_in = out.counter("dataflow_node_rows_in_total", "Rows a node consumed (this run).",
                             {"pipeline", "node"});
  auto rows_out = out.counter("dataflow_node_rows_out_total", "Rows a node emitted (this run).",
                              {"pipeline", "node"});
  auto latency = out.histogram("dataflow_pipeline_latency_seconds",
                               "Time from a batch leaving its source to a sink taking it (rows "
                               "a window emits: from the source batch that closed the window).",
                               {"pipeline", "node"});
  auto backpressure =
      out.counter("dataflow_backpressure_events_total",
                  "Times a node found an output channel over the backpressure threshold.",
                  {"pipeline", "node"});
  auto checkpoints = out.counter("dataflow_checkpoints_total", "Checkpoints by result (this run).",
                                 {"pipeline", "result"});
  auto duration = out.histogram("dataflow_checkpoint_duration_seconds",
                                "Time from triggering a checkpoint to its manifest being written.",
                                {"pipeline"});
  auto size = out.gauge("dataflow_checkpoint_size_bytes",
                        "Size of all files the last checkpoint references.", {"pipeline"});
  auto restarts = out.counter("dataflow_restarts_total",
                              "Restarts of the pipeline's run from a checkpoint.", {"pipeline"});
  auto dead_letters = out.counter("dataflow_dead_letters_total",
                                  "Records sent to the dead-letter sink.", {"pipeline", "node"});
  auto recoveries =
      out.counter("dataflow_recoveries_total",
                  "Self-healing decisions by failure class and action.", {"class", "action"});
  auto kafka_lag =
      out.gauge("dataflow_kafka_consumer_lag",
                "Messages between a Kafka partition's high watermark and the source's position.",
                {"pipeline", "node", "topic", "partition"});
  auto kafka_brokers =
      out.gauge("dataflow_kafka_brokers_up",
                "Kafka brokers the node's clients are connected to (the least over its subtasks).",
                {"pipeline", "node"});
  std::map<std::pair<std::string, std::string>, uint64_t> recovery_totals;
  auto breaker_open =
      out.gauge("dataflow_circuit_breaker_open",
                "1 while the circuit breaker around the sink is open (its calls stopped), else 0.",
                {"pipeline", "node"});
  for (const PipelineSnapshot& p : pipelines) {
    running.sample({p.name}, p.running ? 1 : 0);
    processed.sample({p.name}, static_cast<double>(p.events_processed));
    failed.sample({p.name}, static_cast<double>(p.events_failed));
    restarts.sample({p.name}, static_cast<double>(p.restarts));
    checkpoints.sample({p.name, "completed"}, static_cast<double>(p.checkpoints_completed));
    checkpoints.sample({p.name, "failed"}, static_cast<double>(p.checkpoints_failed));
    size.sample({p.name}, static_cast<double>(p.last_checkpoint_bytes));
    if (p.checkpoint_durations.count() > 0) duration.sample({p.name}, p.checkpoint_durations);
    for (const NodeSnapshot& n : p.nodes) {
      rows_in.sample({p.name, n.id}, static_cast<double>(n.rows_in));
      rows_out.sample({p.name, n.id}, static_cast<double>(n.rows_out));
      backpressure.sample({p.name, n.id}, static_cast<double>(n.backpressure_events));
      if (n.role == runtime::NodeRole::kSink) {
        latency.sample({p.name, n.id}, n.latency);
        breaker_open.sample({p.name, n.id}, n.circuit_breaker_open ? 1 : 0);
      }
      if (n.dead_letters > 0) {
        dead_letters.sample({p.name, n.id}, static_cast<double>(n.dead_letters));
      }
      for (const auto& part : n.kafka_lag) {
        kafka_lag.sample({p.name, n.id, part.topic, std::to_string(part.partition)},
                         static_cast<double>(part.lag));
      }
      if (n.kafka_brokers_up >= 0) {
        kafka_brokers.sample({p.name, n.id}, static_cast<double>(n.kafka_brokers_up));
      }
    }
    for (const auto& [key, count] : p.recoveries) {
      recovery_totals[{std::string(healing::failure_class_name(key.first)),
                       std::string(healing::action_name(key.second))}] += count;
    }
  }
  for (const auto& [key, count] : recovery_totals) {
    recoveries.sample({key.first, key.second}, static_cast<double>(count));
  }
  // The whole process's resident memory: pipelines share the process (and
  // the RocksDB block cache), so a per-pipeline split would be a guess.
  if (std::optional<double> rss = metrics::process_resident_memory_bytes()) {
    out.gauge("dataflow_memory_used_bytes", "Resident memory of the server process.")
        .sample({}, *rss);
  }
}

}  // namespace

metrics::Registry::CollectorId add_server_collector(metrics::Registry& registry,
                                                    const PipelineManager& manager) {
  return registry.add_collector([&manager](metrics::MetricsWriter& out) { collect(out, manager); });
}

HealthCheckResult pipelines_health(const PipelineManager& manager) {
  size_t running = 0;
  size_t failed = 0;
  // Running pipelines whose Kafka clients reach no broker (librdkafka keeps
  // retrying): "pipeline/node: why".
  std::string unreachable;
  // Sinks whose circuit breaker is open: "pipeline/node".
  std::string open_breakers;
  for (const PipelineSnapshot& p : manager.snapshot()) {
    if (p.running) ++running;
    if (p.failed) ++failed;
    for (const NodeSnapshot& n : p.nodes) {
      if (n.circuit_breaker_open) {
        open_breakers += open_breakers.empty() ? "[" : ", ";
        append_json_string(p.name + "/" + n.id, open_breakers);
      }
      if (n.kafka_brokers_problem.empty()) continue;
      unreachable += unreachable.empty() ? "[" : ", ";
      append_json_string(p.name + "/" + n.id + ": " + n.kafka_brokers_problem, unreachable);
    }
  }
  std::string detail =
      "{\"running\": " + std::to_string(running) + ", \"failed\": " + std::to_string(failed);
  if (!unreachable.empty()) detail += ", \"kafka_brokers_down\": " + unreachable + "]";
  if (!open_breakers.empty()) detail += ", \"circuit_breakers_open\": " + open_breakers + "]";
  detail += "}";
  return failed > 0 || !unreachable.empty() || !open_breakers.empty()
             ? HealthCheckResult::degraded(std::move(detail))
             : HealthCheckResult::healthy(std::move(detail));
}

}  // namespace df::server
