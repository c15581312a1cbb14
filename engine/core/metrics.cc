#include "engine/core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace df::metrics {

std::string_view metric_type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// --- Series ------------------------------------------------------------------

void Counter::add(double v) {
  if (!(v >= 0)) throw std::invalid_argument("Counter::add: negative or NaN increment");
  fractional_.fetch_add(v, std::memory_order_relaxed);
}

double Counter::value() const {
  return static_cast<double>(whole_.load(std::memory_order_relaxed)) +
         fractional_.load(std::memory_order_relaxed);
}

const std::vector<double>& default_seconds_buckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return kBuckets;
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw std::invalid_argument("Histogram: upper bounds must be finite and strictly increasing");
    }
  }
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  // Bucket i counts bounds_[i-1] < v <= bounds_[i]; NaN goes to +Inf.
  const size_t i = std::isnan(v)
                       ? bounds_.size()
                       : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                             bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  s.upper_bounds = bounds_;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += buckets_[i].load(std::memory_order_relaxed);
  return total;
}

// --- Validation --------------------------------------------------------------

namespace {

bool is_name_start(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
bool is_name_char(char c, bool colon) { return is_name_start(c, colon) || (c >= '0' && c <= '9'); }

// Metric names may contain ':', label names may not.
bool valid_name(std::string_view s, bool colon) {
  if (s.empty() || !is_name_start(s[0], colon)) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return is_name_char(c, colon); });
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

[[noreturn]] void misuse(std::string_view name, std::string_view what) {
  throw std::invalid_argument("metric '" + std::string(name) + "': " + std::string(what));
}

}  // namespace

namespace detail {

void validate_family(std::string_view name, std::string_view help, MetricType type,
                     const std::vector<std::string>& label_names) {
  if (!valid_name(name, true)) misuse(name, "invalid metric name");
  if (help.empty()) misuse(name, "help text is empty");
  // promtool's lint rules: counters end in _total, nothing else does, and
  // the suffixes a histogram renders are reserved.
  if (type == MetricType::kCounter) {
    if (!ends_with(name, "_total")) misuse(name, "a counter's name must end in _total");
  } else if (ends_with(name, "_total")) {
    misuse(name, "only counters end in _total");
  }
  for (std::string_view reserved : {"_bucket", "_count", "_sum"}) {
    if (ends_with(name, reserved)) misuse(name, "names may not end in " + std::string(reserved));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& l = label_names[i];
    if (!valid_name(l, false) || l.rfind("__", 0) == 0)
      misuse(name, "invalid label name '" + l + "'");
    if (type == MetricType::kHistogram && l == "le") misuse(name, "label 'le' is reserved");
    if (std::find(label_names.begin(), label_names.begin() + static_cast<ptrdiff_t>(i), l) !=
        label_names.begin() + static_cast<ptrdiff_t>(i)) {
      misuse(name, "label '" + l + "' appears twice");
    }
  }
}

void check_label_count(std::string_view family, const std::vector<std::string>& label_names,
                       const LabelValues& values) {
  if (values.size() != label_names.size()) {
    misuse(family, std::to_string(values.size()) + " label values for " +
                       std::to_string(label_names.size()) + " label names");
  }
}

std::vector<std::pair<std::string, std::string>> zip_labels(const std::vector<std::string>& names,
                                                            const LabelValues& values) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) out.emplace_back(names[i], values[i]);
  return out;
}

FamilySamples& family_in(SampleSet& set, const std::string& name, const std::string& help,
                         MetricType type) {
  auto it = set.find(name);
  if (it == set.end()) {
    it = set.emplace(name, FamilySamples{help, type, {}}).first;
  } else if (it->second.type != type) {
    misuse(name, "declared as " + std::string(metric_type_name(type)) + " and as " +
                     std::string(metric_type_name(it->second.type)));
  }
  return it->second;
}

void add_series_sample(SeriesSample& out, const Counter& c) { out.value = c.value(); }
void add_series_sample(SeriesSample& out, const Gauge& g) { out.value = g.value(); }
void add_series_sample(SeriesSample& out, const Histogram& h) { out.histogram = h.snapshot(); }

}  // namespace detail

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {
  detail::validate_family(name_, help_, type_, label_names_);
}

// --- MetricsWriter -----------------------------------------------------------

void MetricsWriter::FamilyWriter::sample(const LabelValues& values, double value) {
  if (family_->type == MetricType::kHistogram) misuse(name_, "a histogram takes snapshots");
  detail::check_label_count(name_, label_names_, values);
  detail::SeriesSample& s = family_->series.emplace_back();
  s.labels = detail::zip_labels(label_names_, values);
  s.value = value;
}

void MetricsWriter::FamilyWriter::sample(const LabelValues& values,
                                         const HistogramSnapshot& histogram) {
  if (family_->type != MetricType::kHistogram) misuse(name_, "only histograms take snapshots");
  detail::check_label_count(name_, label_names_, values);
  if (histogram.cumulative.size() != histogram.upper_bounds.size() + 1) {
    misuse(name_, "histogram snapshot needs one count per bound plus +Inf");
  }
  detail::SeriesSample& s = family_->series.emplace_back();
  s.labels = detail::zip_labels(label_names_, values);
  s.histogram = histogram;
}

MetricsWriter::FamilyWriter MetricsWriter::declare(const std::string& name, const std::string& help,
                                                   MetricType type,
                                                   std::vector<std::string> label_names) {
  detail::validate_family(name, help, type, label_names);
  return FamilyWriter(&detail::family_in(set_, name, help, type), name, std::move(label_names));
}

MetricsWriter::FamilyWriter MetricsWriter::counter(const std::string& name, const std::string& help,
                                                   std::vector<std::string> label_names) {
  return declare(name, help, MetricType::kCounter, std::move(label_names));
}
MetricsWriter::FamilyWriter MetricsWriter::gauge(const std::string& name, const std::string& help,
                                                 std::vector<std::string> label_names) {
  return declare(name, help, MetricType::kGauge, std::move(label_names));
}
MetricsWriter::FamilyWriter MetricsWriter::histogram(const std::string& name,
                                                     const std::string& help,
                                                     std::vector<std::string> label_names) {
  return declare(name, help, MetricType::kHistogram, std::move(label_names));
}

// --- Registry ----------------------------------------------------------------

template <typename Series>
Family<Series>& Registry::get_or_add(const std::string& name, const std::string& help,
                                     MetricType type, std::vector<std::string> label_names,
                                     typename Family<Series>::MakeSeries make,
                                     const std::vector<double>* upper_bounds) {
  std::lock_guard<std::mutex> lock(families_mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    FamilyBase& existing = *it->second;
    if (existing.type() != type || existing.label_names() != label_names ||
        (upper_bounds && histogram_bounds_[name] != *upper_bounds)) {
      misuse(name, "registered twice with different type, labels or buckets");
    }
    return static_cast<Family<Series>&>(existing);
  }
  auto family =
      std::make_unique<Family<Series>>(name, help, type, std::move(label_names), std::move(make));
  Family<Series>& ref = *family;
  families_.emplace(name, std::move(family));
  if (upper_bounds) histogram_bounds_[name] = *upper_bounds;
  return ref;
}

CounterFamily& Registry::counter(const std::string& name, const std::string& help,
                                 std::vector<std::string> label_names) {
  return get_or_add<Counter>(name, help, MetricType::kCounter, std::move(label_names),
                             [] { return std::make_unique<Counter>(); });
}

GaugeFamily& Registry::gauge(const std::string& name, const std::string& help,
                             std::vector<std::string> label_names) {
  return get_or_add<Gauge>(name, help, MetricType::kGauge, std::move(label_names),
                           [] { return std::make_unique<Gauge>(); });
}

HistogramFamily& Registry::histogram(const std::string& name, const std::string& help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> upper_bounds) {
  Histogram check(upper_bounds);  // rejects bad bounds before anything is registered
  return get_or_add<Histogram>(
      name, help, MetricType::kHistogram, std::move(label_names),
      [upper_bounds] { return std::make_unique<Histogram>(upper_bounds); }, &upper_bounds);
}

size_t Registry::remove_matching(std::string_view label, std::string_view value) {
  std::lock_guard<std::mutex> lock(families_mu_);
  size_t removed = 0;
  for (auto& [name, family] : families_) removed += family->remove_matching(label, value);
  return removed;
}

Registry::CollectorId Registry::add_collector(Collector collect) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  const CollectorId id = next_collector_++;
  collectors_.emplace(id, std::move(collect));
  return id;
}

void Registry::remove_collector(CollectorId id) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  collectors_.erase(id);
}

std::string Registry::render() const {
  detail::SampleSet set;
  {
    std::lock_guard<std::mutex> lock(families_mu_);
    for (const auto& [name, family] : families_) family->collect(set);
  }
  {
    std::lock_guard<std::mutex> lock(collectors_mu_);
    MetricsWriter writer(set);
    for (const auto& [id, collect] : collectors_) collect(writer);
  }
  return render_samples(set);
}

// --- Rendering ---------------------------------------------------------------

std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::to_chars_result r;
  // Integers below 2^53 print exactly, with no exponent ("1000000", not "1e+06").
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
    return std::string(buf, r.ptr);
  }
  // Shortest digits that round-trip; plain decimals unless the exponent is
  // extreme (as Go's 'g' formatting does for small values: 0.0005, 1e-05).
  r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  int exponent = 0;
  const size_t e = sci.find('e');
  std::from_chars(sci.data() + e + (sci[e + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exponent);
  if (exponent < -4 || exponent >= 21) return std::string(sci);
  r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, r.ptr);
}

namespace {

void append_escaped(std::string_view s, bool quotes, std::string& out) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// `name{a="x",le="0.5"}` (no braces without labels).
void append_series_name(std::string_view name, std::string_view suffix,
                        const std::vector<std::pair<std::string, std::string>>& labels,
                        const std::string* le, std::string& out) {
  out.append(name).append(suffix);
  if (labels.empty() && !le) return;
  out += '{';
  bool first = true;
  auto add = [&](std::string_view k, std::string_view v) {
    if (!first) out += ',';
    first = false;
    out.append(k).append("=\"");
    append_escaped(v, true, out);
    out += '"';
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (le) add("le", *le);
  out += '}';
}

void append_line_end(std::string_view value, std::string& out) {
  out += ' ';
  out.append(value);
  out += '\n';
}

}  // namespace

std::string render_samples(detail::SampleSet& set) {
  std::string out;
  for (auto& [name, family] : set) {
    auto& series = family.series;
    if (series.empty()) continue;
    std::stable_sort(series.begin(), series.end(),
                     [](const auto& a, const auto& b) { return a.labels < b.labels; });
    series.erase(std::unique(series.begin(), series.end(),
                             [](const auto& a, const auto& b) { return a.labels == b.labels; }),
                 series.end());
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped(family.help, false, out);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += metric_type_name(family.type);
    out += '\n';
    for (const detail::SeriesSample& s : series) {
      if (family.type != MetricType::kHistogram) {
        append_series_name(name, "", s.labels, nullptr, out);
        append_line_end(format_number(s.value), out);
        continue;
      }
      const HistogramSnapshot& h = s.histogram;
      for (size_t i = 0; i <= h.upper_bounds.size(); ++i) {
        const std::string le =
            i < h.upper_bounds.size() ? format_number(h.upper_bounds[i]) : "+Inf";
        append_series_name(name, "_bucket", s.labels, &le, out);
        append_line_end(std::to_string(h.cumulative[i]), out);
      }
      append_series_name(name, "_sum", s.labels, nullptr, out);
      append_line_end(format_number(h.sum), out);
      append_series_name(name, "_count", s.labels, nullptr, out);
      append_line_end(std::to_string(h.count()), out);
    }
  }
  return out;
}

// --- Process metrics ---------------------------------------------------------

namespace {

// /proc reports CPU times in USER_HZ, which Linux fixes at 100 for user space
// (Prometheus' procfs assumes the same).
constexpr double kUserHz = 100;

std::string read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return {};
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool parse_number(std::string_view s, double& out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// The number after `key` on the line starting with it ("VmRSS:   1234 kB").
bool find_number(const std::string& text, std::string_view key, double& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.substr(0, key.size()) == key) {
      std::istringstream fields{std::string(line.substr(key.size()))};
      return static_cast<bool>(fields >> out);
    }
    pos = end + 1;
  }
  return false;
}

}  // namespace

std::optional<double> process_resident_memory_bytes() {
  double kib = 0;
  if (!find_number(read_file("/proc/self/status"), "VmRSS:", kib)) return std::nullopt;
  return kib * 1024;
}

void collect_process_metrics(MetricsWriter& out) {
  // /proc/self/stat: the fields after "(comm)", which may itself hold spaces.
  const std::string stat = read_file("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren != std::string::npos) {
    std::istringstream in(stat.substr(paren + 1));
    std::vector<std::string> f{std::istream_iterator<std::string>(in),
                               std::istream_iterator<std::string>()};
    // f[0] is field 3 (state): utime 14, stime 15, starttime 22.
    double utime = 0, stime = 0, start_ticks = 0, boot_time = 0;
    if (f.size() > 19 && parse_number(f[11], utime) && parse_number(f[12], stime)) {
      out.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
          .sample({}, (utime + stime) / kUserHz);
    }
    if (f.size() > 19 && parse_number(f[19], start_ticks) &&
        find_number(read_file("/proc/stat"), "btime", boot_time)) {
      out.gauge("process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.")
          .sample({}, boot_time + start_ticks / kUserHz);
    }
  }
  if (std::optional<double> rss = process_resident_memory_bytes()) {
    out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.").sample({}, *rss);
  }
  double kib = 0;
  if (find_number(read_file("/proc/self/status"), "VmSize:", kib)) {
    out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.")
        .sample({}, kib * 1024);
  }
  std::error_code ec;
  std::filesystem::directory_iterator fds("/proc/self/fd", ec);
  if (!ec) {
    size_t open = 0;
    for (; fds != std::filesystem::directory_iterator(); fds.increment(ec)) {
      if (ec) break;
      ++open;
    }
    if (!ec) {
      out.gauge("process_open_fds", "Number of open file descriptors.")
          .sample({}, static_cast<double>(open));
    }
  }
  double max_fds = 0;
  if (find_number(read_file("/proc/self/limits"), "Max open files", max_fds)) {
    out.gauge("process_max_fds", "Maximum number of open file descriptors.").sample({}, max_fds);
  }
}

Registry::CollectorId add_process_collector(Registry& registry) {
  return registry.add_collector(collect_process_metrics);
}

}  // namespace df::metrics
