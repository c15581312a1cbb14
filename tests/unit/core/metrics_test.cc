#include "engine/core/metrics.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace df::metrics {
namespace {

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  }
  return out;
}

TEST(MetricsTest, RendersCountersGaugesAndHistogramsWithLabels) {
  Registry reg;
  CounterFamily& events =
      reg.counter("dataflow_events_processed_total", "Rows processed.", {"pipeline", "node"});
  events.with({"p1", "src"}).inc(5);
  events.with({"p1", "out"}).inc();
  events.with({"p1", "out"}).add(0.5);
  reg.gauge("dataflow_pipeline_running", "1 while the pipeline runs.", {"pipeline"})
      .with({"p1"})
      .set(1);
  HistogramFamily& lat =
      reg.histogram("dataflow_pipeline_latency_seconds", "Latency.", {"pipeline"}, {0.1, 1, 2.5});
  Histogram& h = lat.with({"p1"});
  h.observe(0.1);  // a value on a bound counts in that bucket
  h.observe(0.5);
  h.observe(3);

  EXPECT_EQ(reg.render(),
            "# HELP dataflow_events_processed_total Rows processed.\n"
            "# TYPE dataflow_events_processed_total counter\n"
            "dataflow_events_processed_total{pipeline=\"p1\",node=\"out\"} 1.5\n"
            "dataflow_events_processed_total{pipeline=\"p1\",node=\"src\"} 5\n"
            "# HELP dataflow_pipeline_latency_seconds Latency.\n"
            "# TYPE dataflow_pipeline_latency_seconds histogram\n"
            "dataflow_pipeline_latency_seconds_bucket{pipeline=\"p1\",le=\"0.1\"} 1\n"
            "dataflow_pipeline_latency_seconds_bucket{pipeline=\"p1\",le=\"1\"} 2\n"
            "dataflow_pipeline_latency_seconds_bucket{pipeline=\"p1\",le=\"2.5\"} 2\n"
            "dataflow_pipeline_latency_seconds_bucket{pipeline=\"p1\",le=\"+Inf\"} 3\n"
            "dataflow_pipeline_latency_seconds_sum{pipeline=\"p1\"} 3.6\n"
            "dataflow_pipeline_latency_seconds_count{pipeline=\"p1\"} 3\n"
            "# HELP dataflow_pipeline_running 1 while the pipeline runs.\n"
            "# TYPE dataflow_pipeline_running gauge\n"
            "dataflow_pipeline_running{pipeline=\"p1\"} 1\n");
}

TEST(MetricsTest, FamilyWithoutLabelsExportsItsSeriesFromTheStart) {
  Registry reg;
  reg.counter("dataflow_restarts_total", "Restarts.");
  EXPECT_EQ(reg.render(),
            "# HELP dataflow_restarts_total Restarts.\n"
            "# TYPE dataflow_restarts_total counter\n"
            "dataflow_restarts_total 0\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry reg;
  reg.gauge("g", "back\\slash and\nnewline \"quotes\" stay", {"path"})
      .with({"C:\\dir\n\"x\""})
      .set(2);
  EXPECT_EQ(reg.render(),
            "# HELP g back\\\\slash and\\nnewline \"quotes\" stay\n"
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\dir\\n\\\"x\\\"\"} 2\n");
}

TEST(MetricsTest, FormatsNumbersAsPrometheusParsesThem) {
  EXPECT_EQ(format_number(0), "0");
  EXPECT_EQ(format_number(-0.0), "0");
  EXPECT_EQ(format_number(-3), "-3");
  EXPECT_EQ(format_number(1e6), "1000000");
  EXPECT_EQ(format_number(123456789012.0), "123456789012");
  EXPECT_EQ(format_number(0.25), "0.25");
  EXPECT_EQ(format_number(0.1), "0.1");
  EXPECT_EQ(format_number(0.0005), "0.0005");
  EXPECT_EQ(format_number(0.00001), "1e-05");
  EXPECT_EQ(format_number(-2.5), "-2.5");
  EXPECT_EQ(format_number(1234567.5), "1234567.5");
  EXPECT_EQ(std::stod(format_number(1e-9)), 1e-9);
  EXPECT_EQ(std::stod(format_number(0.1 + 0.2)), 0.1 + 0.2);
  EXPECT_EQ(std::stod(format_number(1e300)), 1e300);
  EXPECT_EQ(format_number(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(format_number(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_number(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(MetricsTest, HistogramIsUsableWithoutARegistry) {
  Histogram h;  // default seconds buckets
  EXPECT_EQ(h.upper_bounds(), default_seconds_buckets());
  h.observe(0.0001);
  h.observe(0.002);
  h.observe(100);
  h.observe(std::numeric_limits<double>::quiet_NaN());
  const HistogramSnapshot s = h.snapshot();
  ASSERT_EQ(s.cumulative.size(), s.upper_bounds.size() + 1);
  EXPECT_EQ(s.cumulative[0], 1u);                          // <= 0.0005
  EXPECT_EQ(s.cumulative[2], 2u);                          // <= 0.0025
  EXPECT_EQ(s.cumulative[s.upper_bounds.size() - 1], 2u);  // <= 60
  EXPECT_EQ(s.count(), 4u);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_TRUE(std::isnan(s.sum));
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
}

TEST(MetricsTest, ConcurrentUpdatesAreExact) {
  Registry reg;
  CounterFamily& c = reg.counter("hits_total", "Hits.", {"pipeline"});
  GaugeFamily& g = reg.gauge("level", "Level.", {"pipeline"});
  HistogramFamily& h = reg.histogram("wait_seconds", "Wait.", {"pipeline"}, {0.5, 1.5});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  std::atomic<bool> done{false};
  std::atomic<int> looked_up{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      // Each thread looks the series up itself: with() must hand out one object.
      Counter& mine = c.with({"p1"});
      Gauge& level = g.with({"p1"});
      Histogram& wait = h.with({"p1"});
      looked_up.fetch_add(1);
      for (int i = 0; i < kPerThread; ++i) {
        mine.inc();
        level.add(1);
        wait.observe(i % 2);  // 0 and 1
      }
    });
  }
  // Scrapes while the writers run, once a series exists (families without
  // series render nothing).
  std::thread scraper([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (looked_up.load() == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    for (int i = 0; i < 50 && !done.load(); ++i) EXPECT_FALSE(reg.render().empty());
  });
  for (auto& t : threads) t.join();
  done = true;
  scraper.join();
  constexpr uint64_t kTotal = kThreads * kPerThread;
  EXPECT_EQ(c.with({"p1"}).value(), static_cast<double>(kTotal));
  EXPECT_EQ(g.with({"p1"}).value(), static_cast<double>(kTotal));
  const HistogramSnapshot s = h.with({"p1"}).snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{kTotal / 2, kTotal, kTotal}));
  EXPECT_EQ(s.sum, static_cast<double>(kTotal / 2));
}

TEST(MetricsTest, CollectorsMergeWithRegisteredFamiliesIntoOneBlock) {
  Registry reg;
  reg.gauge("dataflow_pipeline_running", "1 while the pipeline runs.", {"pipeline"})
      .with({"p1"})
      .set(1);
  auto a = reg.add_collector([](MetricsWriter& w) {
    w.gauge("dataflow_pipeline_running", "1 while the pipeline runs.", {"pipeline"})
        .sample({"p3"}, 0);
    Histogram h({1});
    h.observe(0.5);
    w.histogram("dataflow_pipeline_latency_seconds", "Latency.", {"pipeline", "node"})
        .sample({"p3", "out"}, h.snapshot());
  });
  auto b = reg.add_collector([](MetricsWriter& w) {
    w.gauge("dataflow_pipeline_running", "1 while the pipeline runs.", {"pipeline"})
        .sample({"p2"}, 1);
    w.counter("dataflow_events_processed_total", "Rows.", {"pipeline"}).sample({"p2"}, 7);
  });
  const std::string text = reg.render();
  EXPECT_EQ(count_of(text, "# TYPE dataflow_pipeline_running gauge\n"), 1u) << text;
  EXPECT_EQ(count_of(text, "# HELP dataflow_pipeline_running "), 1u) << text;
  // Series sorted by labels, whatever produced them.
  EXPECT_EQ(lines_starting(text, "dataflow_pipeline_running{"),
            (std::vector<std::string>{"dataflow_pipeline_running{pipeline=\"p1\"} 1",
                                      "dataflow_pipeline_running{pipeline=\"p2\"} 1",
                                      "dataflow_pipeline_running{pipeline=\"p3\"} 0"}));
  EXPECT_NE(text.find("dataflow_pipeline_latency_seconds_bucket{pipeline=\"p3\",node=\"out\","
                      "le=\"+Inf\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dataflow_events_processed_total{pipeline=\"p2\"} 7\n"), std::string::npos);
  // Families sorted by name.
  EXPECT_LT(text.find("# TYPE dataflow_events_processed_total"),
            text.find("# TYPE dataflow_pipeline_latency_seconds"));
  EXPECT_LT(text.find("# TYPE dataflow_pipeline_latency_seconds"),
            text.find("# TYPE dataflow_pipeline_running"));

  reg.remove_collector(a);
  reg.remove_collector(b);
  EXPECT_EQ(reg.render(),
            "# HELP dataflow_pipeline_running 1 while the pipeline runs.\n"
            "# TYPE dataflow_pipeline_running gauge\n"
            "dataflow_pipeline_running{pipeline=\"p1\"} 1\n");
}

TEST(MetricsTest, CollectorDeclaringAnotherTypeIsABug) {
  Registry reg;
  reg.gauge("things", "Things.");
  reg.add_collector([](MetricsWriter& w) { w.histogram("things", "Things.").sample({}, 1.0); });
  EXPECT_THROW(reg.render(), std::invalid_argument);
}

TEST(MetricsTest, RemovedSeriesStopExportingAndCachedReferencesStayUsable) {
  Registry reg;
  CounterFamily& events = reg.counter("events_total", "Events.", {"pipeline", "node"});
  GaugeFamily& running = reg.gauge("running", "Running.", {"pipeline"});
  Counter& p1_src = events.with({"p1", "src"});
  events.with({"p1", "out"}).inc(2);
  events.with({"p2", "src"}).inc(3);
  running.with({"p1"}).set(1);
  running.with({"p2"}).set(1);
  p1_src.inc(4);

  EXPECT_TRUE(events.remove({"p2", "src"}));
  EXPECT_FALSE(events.remove({"p2", "src"}));
  EXPECT_EQ(reg.remove_matching("pipeline", "p1"), 3u);  // two events series, one gauge
  EXPECT_EQ(reg.remove_matching("pipeline", "p1"), 0u);
  EXPECT_EQ(reg.remove_matching("no_such_label", "p1"), 0u);
  p1_src.inc();  // a writer that has not noticed yet
  EXPECT_EQ(reg.render(),
            "# HELP running Running.\n"
            "# TYPE running gauge\n"
            "running{pipeline=\"p2\"} 1\n");
  // A pipeline created again under the same name starts from zero.
  EXPECT_EQ(events.with({"p1", "src"}).value(), 0);
  EXPECT_NE(&events.with({"p1", "src"}), &p1_src);
}

TEST(MetricsTest, RemoveCollectorWaitsForARunningScrape) {
  Registry reg;
  std::atomic<bool> in_collector{false};
  std::atomic<bool> removed{false};
  std::atomic<bool> saw_removed_inside{false};
  auto id = reg.add_collector([&](MetricsWriter& w) {
    in_collector = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (removed.load()) saw_removed_inside = true;
    w.gauge("slow", "Slow.").sample({}, 1);
  });
  std::thread scrape([&] { reg.render(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!in_collector.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(in_collector.load());
  reg.remove_collector(id);
  removed = true;
  scrape.join();
  EXPECT_FALSE(saw_removed_inside.load());
  EXPECT_EQ(reg.render(), "");
}

TEST(MetricsTest, MisuseThrows) {
  Registry reg;
  EXPECT_THROW(reg.counter("events", "No _total."), std::invalid_argument);
  EXPECT_THROW(reg.gauge("events_total", "Only counters."), std::invalid_argument);
  EXPECT_THROW(reg.gauge("bad-name", "Dash."), std::invalid_argument);
  EXPECT_THROW(reg.gauge("ok", ""), std::invalid_argument);
  EXPECT_THROW(reg.gauge("ok", "Bad label.", {"1x"}), std::invalid_argument);
  EXPECT_THROW(reg.gauge("ok", "Twice.", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(reg.gauge("x_count", "Reserved suffix."), std::invalid_argument);
  EXPECT_THROW(reg.histogram("h_seconds", "Reserved le.", {"le"}), std::invalid_argument);
  GaugeFamily& g = reg.gauge("level", "Level.", {"pipeline"});
  EXPECT_EQ(&reg.gauge("level", "Level.", {"pipeline"}), &g);  // same declaration: same family
  EXPECT_THROW(reg.gauge("level", "Level.", {"node"}), std::invalid_argument);
  EXPECT_THROW(reg.counter("level_total", "Level.").with({"x"}), std::invalid_argument);
  EXPECT_THROW(g.with({}), std::invalid_argument);
  EXPECT_THROW(g.with({"a", "b"}), std::invalid_argument);
  reg.histogram("h_seconds", "H.", {}, {1, 2});
  EXPECT_THROW(reg.histogram("h_seconds", "H.", {}, {1, 3}), std::invalid_argument);
  EXPECT_THROW(reg.counter("c_total", "C.").with({}).add(-1), std::invalid_argument);
}

// --- promtool ----------------------------------------------------------------

constexpr const char* kPromtool = "/usr/bin/promtool";

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// `promtool check metrics` on `text`, via a file under the test's temp dir.
CommandResult promtool_check(const std::string& text) {
  const auto dir = std::filesystem::path(::testing::TempDir()) /
                   ("metrics_test_" +
                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(dir);
  const auto input = dir / "metrics.txt";
  const auto output = dir / "promtool.out";
  std::ofstream(input) << text;
  const std::string cmd = std::string(kPromtool) + " check metrics < '" + input.string() + "' > '" +
                          output.string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(output);
  r.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  return r;
}

TEST(MetricsTest, PromtoolAcceptsEveryKindOfMetric) {
  ASSERT_TRUE(std::filesystem::exists(kPromtool))
      << kPromtool << " is missing: install Debian's prometheus package (scripts/install-deps.sh)";
  Registry reg;
  reg.counter("dataflow_events_processed_total", "Rows each node processed.", {"pipeline", "node"})
      .with({"p1", "src"})
      .inc(12345678);
  reg.counter("dataflow_events_failed_total", "Rows that failed.", {"pipeline"})
      .with({"we\"ird\\name\nx"})
      .add(0.25);
  reg.gauge("dataflow_memory_used_bytes", "Memory the pipelines use.", {"pipeline"})
      .with({"p1"})
      .set(1.5e12);
  reg.gauge("dataflow_kafka_lag", "Consumer lag. With \\ and\nnewline.", {"pipeline"})
      .with({"p1"})
      .set(std::numeric_limits<double>::quiet_NaN());
  reg.gauge("dataflow_limits", "Infinities.", {"side"}).with({"up"}).set(HUGE_VAL);
  reg.gauge("dataflow_limits", "Infinities.", {"side"}).with({"down"}).set(-HUGE_VAL);
  Histogram& lat = reg.histogram("dataflow_pipeline_latency_seconds", "Source-to-sink latency.",
                                 {"pipeline", "node"})
                       .with({"p1", "out"});
  for (int i = 0; i < 100; ++i) lat.observe(i * 0.01);
  reg.histogram("dataflow_checkpoint_duration_seconds", "Checkpoint duration.").with({}).observe(2);
  reg.add_collector([](MetricsWriter& w) {
    w.gauge("dataflow_pipeline_running", "1 while the pipeline runs.", {"pipeline"})
        .sample({"p2"}, 1);
    w.counter("dataflow_events_processed_total", "Rows each node processed.", {"pipeline", "node"})
        .sample({"p2", "src"}, 3);
    Histogram h;
    h.observe(0.003);
    w.histogram("dataflow_pipeline_latency_seconds", "Source-to-sink latency.",
                {"pipeline", "node"})
        .sample({"p2", "out"}, h.snapshot());
  });
  add_process_collector(reg);

  const std::string text = reg.render();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    EXPECT_EQ(lines_starting(text, std::string(name) + " ").size(), 1u) << name << "\n" << text;
  }
  const CommandResult r = promtool_check(text);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n" << text;
  EXPECT_EQ(r.output, "") << text;
}

TEST(MetricsTest, ProcessMetricsArePlausible) {
  Registry reg;
  add_process_collector(reg);
  const std::string text = reg.render();
  auto value_of = [&](const std::string& name) {
    const auto lines = lines_starting(text, name + " ");
    return lines.size() == 1 ? std::stod(lines[0].substr(name.size() + 1)) : -1.0;
  };
  EXPECT_GT(value_of("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(value_of("process_virtual_memory_bytes"), value_of("process_resident_memory_bytes"));
  EXPECT_GE(value_of("process_open_fds"), 3);
  EXPECT_GE(value_of("process_max_fds"), value_of("process_open_fds"));
  EXPECT_GE(value_of("process_cpu_seconds_total"), 0);
  const double now = static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  const double start = value_of("process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600);  // this test process started recently
}

}  // namespace
}  // namespace df::metrics
