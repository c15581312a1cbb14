#include "engine/server/metrics_history.h"

#include <algorithm>
#include <cmath>

namespace df::server {

namespace {

using SteadyClock = std::chrono::steady_clock;

// A counter's growth since `before`; a counter that went back started over
// (a new attempt of the run), so all of it is new.
uint64_t growth(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// `now` minus `before`, bucket by bucket (a reset histogram counts whole).
metrics::HistogramSnapshot histogram_growth(const metrics::HistogramSnapshot& now,
                                            const metrics::HistogramSnapshot& before) {
  if (now.upper_bounds != before.upper_bounds || now.count() < before.count()) return now;
  metrics::HistogramSnapshot out = now;
  for (size_t i = 0; i < out.cumulative.size(); ++i) {
    if (now.cumulative[i] < before.cumulative[i]) return now;
    out.cumulative[i] = now.cumulative[i] - before.cumulative[i];
  }
  out.sum = now.sum - before.sum;
  return out;
}

// Adds `h` into `total` (histograms of the same buckets; others are left out).
void merge_into(metrics::HistogramSnapshot& total, const metrics::HistogramSnapshot& h) {
  if (h.cumulative.empty()) return;
  if (total.cumulative.empty()) {
    total = h;
    return;
  }
  if (total.upper_bounds != h.upper_bounds) return;
  for (size_t i = 0; i < total.cumulative.size(); ++i) total.cumulative[i] += h.cumulative[i];
  total.sum += h.sum;
}

const NodeSnapshot* find_node(const PipelineSnapshot& snap, const std::string& id) {
  for (const NodeSnapshot& n : snap.nodes) {
    if (n.id == id) return &n;
  }
  return nullptr;
}

}  // namespace

std::optional<double> histogram_quantile(const metrics::HistogramSnapshot& h, double q) {
  const uint64_t total = h.count();
  if (total == 0 || h.cumulative.size() != h.upper_bounds.size() + 1) return std::nullopt;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  for (size_t i = 0; i < h.cumulative.size(); ++i) {
    if (static_cast<double>(h.cumulative[i]) < rank) continue;
    // The +Inf bucket has no upper bound: its lower one is the best answer.
    if (i == h.upper_bounds.size()) return h.upper_bounds.empty() ? 0.0 : h.upper_bounds.back();
    const double lower = i == 0 ? 0.0 : h.upper_bounds[i - 1];
    const double below = i == 0 ? 0.0 : static_cast<double>(h.cumulative[i - 1]);
    const double in_bucket = static_cast<double>(h.cumulative[i]) - below;
    if (in_bucket <= 0) return h.upper_bounds[i];
    return lower + (h.upper_bounds[i] - lower) * (rank - below) / in_bucket;
  }
  return h.upper_bounds.empty() ? 0.0 : h.upper_bounds.back();
}

struct MetricsHistory::Series {
  std::deque<HistorySample> samples;
  // The previous snapshot of the same run, the baseline of the next deltas.
  bool have_baseline = false;
  PipelineSnapshot previous;
  SteadyClock::time_point previous_at;
  std::map<std::string, NodeRates> node_rates;
};

MetricsHistory::MetricsHistory(const PipelineManager& manager, HistoryOptions options)
    : manager_(manager), options_(options) {}

MetricsHistory::~MetricsHistory() { stop(); }

void MetricsHistory::start() {
  std::lock_guard lock(thread_mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { sampler(); });
}

void MetricsHistory::stop() {
  {
    std::lock_guard lock(thread_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetricsHistory::sampler() {
  std::unique_lock lock(thread_mu_);
  auto next = SteadyClock::now() + options_.interval;
  while (!wake_.wait_until(lock, next, [this] { return stopping_; })) {
    lock.unlock();
    sample();
    lock.lock();
    // Fixed steps, not "interval after the sample": a slow sample does not drift the series.
    next += options_.interval;
    const auto now = SteadyClock::now();
    if (next < now) next = now + options_.interval;
  }
}

void MetricsHistory::sample() {
  // The snapshot is taken outside mu_: it takes the manager's lock.
  std::vector<PipelineSnapshot> snapshots = manager_.snapshot();
  const auto at = SteadyClock::now();
  const int64_t wall = now_ms();

  std::lock_guard lock(mu_);
  std::map<std::string, std::unique_ptr<Series>> kept;
  for (PipelineSnapshot& snap : snapshots) {
    auto it = series_.find(snap.name);
    std::unique_ptr<Series> series =
        it != series_.end() ? std::move(it->second) : std::make_unique<Series>();
    HistorySample sample;
    sample.time_ms = wall;
    sample.running = snap.running;
    bool record = true;
    if (!snap.running) {
      series->node_rates.clear();
      series->have_baseline = false;
    } else if (!series->have_baseline || series->previous.run_id != snap.run_id) {
      record = false;  // the first look at this run: a baseline only
      series->have_baseline = true;
    } else {
      const PipelineSnapshot& before = series->previous;
      const double seconds =
          std::max(1e-3, std::chrono::duration<double>(at - series->previous_at).count());
      sample.rows_per_second =
          static_cast<double>(growth(snap.events_processed, before.events_processed)) / seconds;
      sample.backpressure_per_second =
          static_cast<double>(growth(snap.backpressure_events, before.backpressure_events)) /
          seconds;
      if (snap.checkpoints_completed > before.checkpoints_completed) {
        sample.checkpoint_seconds = snap.last_checkpoint_seconds;
        sample.checkpoint_bytes = snap.last_checkpoint_bytes;
      }
      metrics::HistogramSnapshot sink_latency;
      series->node_rates.clear();
      for (const NodeSnapshot& node : snap.nodes) {
        const NodeSnapshot* prior = find_node(before, node.id);
        NodeRates rates;
        rates.rows_in_per_second =
            static_cast<double>(growth(node.rows_in, prior ? prior->rows_in : 0)) / seconds;
        rates.rows_out_per_second =
            static_cast<double>(growth(node.rows_out, prior ? prior->rows_out : 0)) / seconds;
        rates.backpressure_per_second =
            static_cast<double>(
                growth(node.backpressure_events, prior ? prior->backpressure_events : 0)) /
            seconds;
        if (node.role == runtime::NodeRole::kSink) {
          const metrics::HistogramSnapshot latency =
              prior ? histogram_growth(node.latency, prior->latency) : node.latency;
          rates.latency_p99_seconds = histogram_quantile(latency, 0.99);
          merge_into(sink_latency, latency);
        }
        series->node_rates[node.id] = rates;
      }
      sample.latency_p50_seconds = histogram_quantile(sink_latency, 0.50);
      sample.latency_p99_seconds = histogram_quantile(sink_latency, 0.99);
    }
    if (record) {
      series->samples.push_back(sample);
      while (series->samples.size() > options_.capacity) series->samples.pop_front();
    }
    series->previous = std::move(snap);
    series->previous_at = at;
    kept[series->previous.name] = std::move(series);
  }
  // Pipelines that are gone (deleted) take their history with them.
  series_ = std::move(kept);
}

std::vector<HistorySample> MetricsHistory::samples(const std::string& pipeline) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(pipeline);
  if (it == series_.end()) return {};
  return {it->second->samples.begin(), it->second->samples.end()};
}

std::map<std::string, NodeRates> MetricsHistory::node_rates(const std::string& pipeline) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(pipeline);
  if (it == series_.end()) return {};
  return it->second->node_rates;
}

}  // namespace df::server
