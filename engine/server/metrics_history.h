// MetricsHistory: the last minutes of every pipeline's numbers, for the web
// console's charts (console.h) without Prometheus. A sampler thread takes
// PipelineManager::snapshot() once per interval (1 s) and turns counter
// deltas into one sample per pipeline (rows/s, sink latency p50/p99 of the
// batches that arrived within the interval, the duration of a checkpoint
// that completed within it) kept in a ring buffer per pipeline (900 samples:
// 15 minutes). It also keeps each running pipeline's latest per-node rates,
// which the DAG view shows.
//
// Ownership: borrows the manager, which must outlive it (stop() first).
// Threading: start()/stop() from one owner thread; sample() and the readers
// are thread-safe (one mutex; sample() takes the snapshot outside it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/metrics.h"
#include "engine/core/time.h"
#include "engine/server/pipeline_manager.h"

namespace df::server {

struct HistoryOptions {
  Millis interval{1000};
  size_t capacity = 900;  // samples kept per pipeline (15 minutes at 1 s)
};

// One pipeline over one interval.
struct HistorySample {
  int64_t time_ms = 0;  // wall clock at the end of the interval
  bool running = false;
  double rows_per_second = 0;  // rows the sources emitted
  double backpressure_per_second = 0;
  // Source-to-sink latency of the batches the sinks took within the
  // interval; unset when none arrived.
  std::optional<double> latency_p50_seconds;
  std::optional<double> latency_p99_seconds;
  // A checkpoint completed within the interval: the newest one's duration.
  std::optional<double> checkpoint_seconds;
  uint64_t checkpoint_bytes = 0;
};

// A node's rates over the newest interval.
struct NodeRates {
  double rows_in_per_second = 0;
  double rows_out_per_second = 0;
  double backpressure_per_second = 0;
  std::optional<double> latency_p99_seconds;  // sinks
};

// The `q` quantile (0..1) of the observations in `h` (Prometheus'
// histogram_quantile: linear within the bucket); unset when `h` is empty.
std::optional<double> histogram_quantile(const metrics::HistogramSnapshot& h, double q);

class MetricsHistory {
 public:
  explicit MetricsHistory(const PipelineManager& manager, HistoryOptions options = {});
  ~MetricsHistory();  // stop()
  MetricsHistory(const MetricsHistory&) = delete;
  MetricsHistory& operator=(const MetricsHistory&) = delete;

  // Starts the sampler thread (one sample per interval). Idempotent.
  void start();
  // Stops and joins it. Idempotent.
  void stop();

  // One sample of every pipeline now (the sampler thread calls it). The
  // first sample after a pipeline appears or a run starts sets the baseline
  // and records nothing.
  void sample();

  // `pipeline`'s samples, oldest first (empty for an unknown pipeline).
  std::vector<HistorySample> samples(const std::string& pipeline) const;
  // `pipeline`'s per-node rates over the newest interval, by node id
  // (empty unless it ran during the last sample).
  std::map<std::string, NodeRates> node_rates(const std::string& pipeline) const;
  const HistoryOptions& options() const { return options_; }

 private:
  struct Series;
  void sampler();

  const PipelineManager& manager_;
  const HistoryOptions options_;

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Series>> series_;  // by pipeline; guarded by mu_

  std::mutex thread_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by thread_mu_
  std::thread thread_;
};

}  // namespace df::server
