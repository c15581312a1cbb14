// Metrics: a small Prometheus registry rendering the text exposition format
// 0.0.4 (what `promtool check metrics` and Prometheus scrape).
//
// Counter, Gauge and Histogram are standalone objects: any component may own
// one (runtime::NodeMetrics owns a latency Histogram) and update it from any
// thread without a lock (relaxed atomics). A Registry holds named families of
// them with label names; Family::with(values) finds or creates the series of
// those label values and returns a reference the caller caches. Values that
// live elsewhere (a running scheduler's counters, /proc) are read at scrape
// time by collectors (Registry::add_collector), which write samples through a
// MetricsWriter. render() merges registered families and collector samples of
// the same name into one # HELP/# TYPE block; families are sorted by name,
// series by label values.
//
// Threading: everything is thread-safe. Updating a series never locks; series
// lookup, removal and render() take a family's mutex. render() runs the
// collectors one at a time, and remove_collector() returns only once no scrape
// is running that collector, so its captures may be destroyed right after.
// Ownership: the registry owns its families and their series for its whole
// life. A removed series is no longer exported but stays allocated, so a
// reference cached by a writer that has not yet noticed the removal never
// dangles (a later with() of the same values starts a fresh series at zero).
//
// Misuse (an invalid metric or label name, a counter not named *_total, a
// wrong number of label values, one name registered with two types) is a bug
// and throws std::invalid_argument.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace df::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };
std::string_view metric_type_name(MetricType type);  // "counter", "gauge", "histogram"

// Label values, one per label name of the family, in the same order.
using LabelValues = std::vector<std::string>;

// A monotonically increasing value. inc() is one integer fetch_add; add()
// takes fractions (CPU seconds) through a compare-and-swap loop.
class Counter {
 public:
  void inc(uint64_t n = 1) { whole_.fetch_add(n, std::memory_order_relaxed); }
  // v >= 0; a counter never goes down (a negative or NaN v is a bug).
  void add(double v);
  double value() const;

 private:
  std::atomic<uint64_t> whole_{0};
  std::atomic<double> fractional_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  void inc() { add(1); }
  void dec() { add(-1); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Upper bounds for durations in seconds: 0.5 ms .. 60 s, roughly 1-2.5-5 steps.
const std::vector<double>& default_seconds_buckets();

// A histogram's counts at one moment, for rendering and tests.
struct HistogramSnapshot {
  std::vector<double> upper_bounds;  // finite, increasing; +Inf is implicit
  // Observations <= upper_bounds[i], then the +Inf bucket (all of them), so
  // upper_bounds.size() + 1 entries, non-decreasing.
  std::vector<uint64_t> cumulative;
  double sum = 0;
  uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }
};

// Counts observations into buckets fixed at construction. observe() is one
// bucket search over the bounds plus two relaxed atomic adds. A snapshot taken
// while others observe may count an observation in the buckets before its
// value reaches the sum; the +Inf bucket always equals _count.
class Histogram {
 public:
  // `upper_bounds`: finite and strictly increasing (else a bug).
  explicit Histogram(std::vector<double> upper_bounds = default_seconds_buckets());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double v);
  HistogramSnapshot snapshot() const;
  uint64_t count() const;
  const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  // Per bucket (not cumulative), bounds_.size() + 1 with +Inf last.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0.0};
};

namespace detail {

// One series as render() sees it: label pairs (histograms add `le` when
// printed) and a value or histogram.
struct SeriesSample {
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  HistogramSnapshot histogram;
};

struct FamilySamples {
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<SeriesSample> series;
};

// Name -> samples; std::map keeps families sorted by name.
using SampleSet = std::map<std::string, FamilySamples, std::less<>>;

// The family of `name` in `set`, created with `help` and `type`, or the
// existing one when the type matches (std::invalid_argument otherwise).
FamilySamples& family_in(SampleSet& set, const std::string& name, const std::string& help,
                         MetricType type);
// Checks a family declaration (names, suffixes, help); throws when invalid.
void validate_family(std::string_view name, std::string_view help, MetricType type,
                     const std::vector<std::string>& label_names);
void check_label_count(std::string_view family, const std::vector<std::string>& label_names,
                       const LabelValues& values);
std::vector<std::pair<std::string, std::string>> zip_labels(const std::vector<std::string>& names,
                                                            const LabelValues& values);

void add_series_sample(SeriesSample& out, const Counter& c);
void add_series_sample(SeriesSample& out, const Gauge& g);
void add_series_sample(SeriesSample& out, const Histogram& h);

}  // namespace detail

// What every family has, whatever its series type.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Stops exporting the series with these values; false when there is none.
  virtual bool remove(const LabelValues& values) = 0;
  // Stops exporting every series whose label `label` equals `value` (e.g. the
  // series of a deleted pipeline); returns how many.
  virtual size_t remove_matching(std::string_view label, std::string_view value) = 0;
  // Appends this family's series to `set`.
  virtual void collect(detail::SampleSet& set) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names);

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// The series of one metric name, one per distinct label values.
template <typename Series>
class Family final : public FamilyBase {
 public:
  using MakeSeries = std::function<std::unique_ptr<Series>()>;
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         MakeSeries make)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        make_(std::move(make)) {
    // A family without labels has exactly one series: export it from the start.
    if (this->label_names().empty()) with({});
  }

  // The series of `values` (one per label name), created at zero on first
  // use. Valid for the registry's life; cache it on hot paths.
  Series& with(const LabelValues& values) {
    detail::check_label_count(name(), label_names(), values);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = series_.find(values);
    if (it == series_.end()) it = series_.emplace(values, make_()).first;
    return *it->second;
  }

  bool remove(const LabelValues& values) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = series_.find(values);
    if (it == series_.end()) return false;
    retire(it);
    return true;
  }

  size_t remove_matching(std::string_view label, std::string_view value) override {
    size_t index = 0;
    while (index < label_names().size() && label_names()[index] != label) ++index;
    if (index == label_names().size()) return 0;
    std::lock_guard<std::mutex> lock(mu_);
    size_t removed = 0;
    for (auto it = series_.begin(); it != series_.end();) {
      if (it->first[index] == value) {
        it = retire(it);
        ++removed;
      } else {
        ++it;
      }
    }
    return removed;
  }

  void collect(detail::SampleSet& set) const override {
    detail::FamilySamples& out = detail::family_in(set, name(), help(), type());
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [values, series] : series_) {
      detail::SeriesSample& s = out.series.emplace_back();
      s.labels = detail::zip_labels(label_names(), values);
      detail::add_series_sample(s, *series);
    }
  }

 private:
  using SeriesMap = std::map<LabelValues, std::unique_ptr<Series>>;
  typename SeriesMap::iterator retire(typename SeriesMap::iterator it) {
    retired_.push_back(std::move(it->second));
    return series_.erase(it);
  }

  MakeSeries make_;
  mutable std::mutex mu_;
  SeriesMap series_;
  std::vector<std::unique_ptr<Series>> retired_;  // removed, kept for cached references
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Lets a collector emit samples at scrape time. Declare a family (name, help,
// label names) with counter()/gauge()/histogram(), then add its series.
// Families of the same name from several collectors and the registry merge;
// declaring a name with another type than before is a bug. Only valid during
// the collector call it was given to.
class MetricsWriter {
 public:
  class FamilyWriter {
   public:
    // Counters and gauges.
    void sample(const LabelValues& values, double value);
    // Histograms.
    void sample(const LabelValues& values, const HistogramSnapshot& histogram);

   private:
    friend class MetricsWriter;
    FamilyWriter(detail::FamilySamples* family, std::string_view name,
                 std::vector<std::string> label_names)
        : family_(family), name_(name), label_names_(std::move(label_names)) {}
    detail::FamilySamples* family_;
    std::string name_;
    std::vector<std::string> label_names_;
  };

  explicit MetricsWriter(detail::SampleSet& set) : set_(set) {}
  FamilyWriter counter(const std::string& name, const std::string& help,
                       std::vector<std::string> label_names = {});
  FamilyWriter gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  FamilyWriter histogram(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});

 private:
  FamilyWriter declare(const std::string& name, const std::string& help, MetricType type,
                       std::vector<std::string> label_names);
  detail::SampleSet& set_;
};

class Registry {
 public:
  using CollectorId = uint64_t;
  using Collector = std::function<void(MetricsWriter&)>;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the one already registered under `name`
  // when type, label names (and buckets) are the same. Counters end in _total.
  CounterFamily& counter(const std::string& name, const std::string& help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& gauge(const std::string& name, const std::string& help,
                     std::vector<std::string> label_names = {});
  HistogramFamily& histogram(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names = {},
                             std::vector<double> upper_bounds = default_seconds_buckets());

  // Every registered family: remove_matching(label, value); returns how many
  // series stopped being exported.
  size_t remove_matching(std::string_view label, std::string_view value);

  // `collect` runs at every render(); it must not call add_collector,
  // remove_collector or render (they would deadlock).
  CollectorId add_collector(Collector collect);
  // After it returns, `id` is not running and never runs again. Unknown ids
  // are ignored.
  void remove_collector(CollectorId id);

  // The text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4).
  std::string render() const;

 private:
  // The family of `name` (created by `make` when absent), checked to be a T
  // with these label names.
  template <typename Series>
  Family<Series>& get_or_add(const std::string& name, const std::string& help, MetricType type,
                             std::vector<std::string> label_names,
                             typename Family<Series>::MakeSeries make,
                             const std::vector<double>* upper_bounds = nullptr);

  mutable std::mutex families_mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
  std::map<std::string, std::vector<double>> histogram_bounds_;  // by family name
  // Held while collectors run, so remove_collector() waits for a scrape.
  mutable std::mutex collectors_mu_;
  std::map<CollectorId, Collector> collectors_;
  CollectorId next_collector_ = 1;
};

// Renders `set` (families sorted by name, series by labels; of series with
// identical labels only the first is kept).
std::string render_samples(detail::SampleSet& set);

// A sample value as Prometheus parses it: integers without exponent or
// fraction, others in the shortest form that round-trips, NaN, +Inf, -Inf.
std::string format_number(double v);

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds, read from /proc (Linux). A metric whose source
// cannot be read is left out.
void collect_process_metrics(MetricsWriter& out);
// VmRSS of this process, from /proc/self/status (nullopt where unreadable).
std::optional<double> process_resident_memory_bytes();
Registry::CollectorId add_process_collector(Registry& registry);

}  // namespace df::metrics
