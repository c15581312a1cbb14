// The server's pipeline metrics (DESIGN §8) and the pipelines' health check,
// read from the PipelineManager at scrape time: no pipeline code updates a
// registry on its hot path; the runtime's own atomics are read when
// Prometheus asks.
//
// Ownership: the collector borrows the manager, which must outlive the
// registry's renders (remove the collector, or stop the metrics listener,
// before destroying the manager). Threading: as metrics::Registry.
#pragma once

#include "engine/core/metrics.h"
#include "engine/server/health.h"
#include "engine/server/pipeline_manager.h"

namespace df::server {

// dataflow_pipeline_running, dataflow_events_processed_total,
// dataflow_events_failed_total, dataflow_pipeline_latency_seconds,
// dataflow_backpressure_events_total, dataflow_checkpoints_total,
// dataflow_checkpoint_duration_seconds, dataflow_checkpoint_size_bytes,
// dataflow_restarts_total, dataflow_dead_letters_total,
// dataflow_recoveries_total and dataflow_memory_used_bytes.
metrics::Registry::CollectorId add_server_collector(metrics::Registry& registry,
                                                    const PipelineManager& manager);

// Healthy while no pipeline's newest run failed; degraded when one did
// (the server still serves the others). Details: running and failed counts.
HealthCheckResult pipelines_health(const PipelineManager& manager);

}  // namespace df::server
