// The web console's server side (console.h, metrics_history.h): the
// embedded assets, the graph and history endpoints, through a real
// HttpServer over a real PipelineManager running real pipelines.
#include "engine/server/console.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "engine/server/api.h"
#include "engine/server/metrics_history.h"
#include "engine/server/openapi.h"
#include "tests/unit/server/http_client.h"
#include "tests/unit/server/manager_fixture.h"

namespace df::server {
namespace {

using namespace std::chrono_literals;
using df::test::http_request;
using nlohmann::json;
using test::counting_pipeline;
using test::eventually;

const df::test::HttpFields kYaml = {{"Content-Type", "application/yaml"}};

// generator -> filter -> file sink; checkpoints every 100 ms.
std::string filtered_pipeline(const std::string& name, const std::string& out, long rate) {
  return "name: " + name +
         "\n"
         "checkpoint: {interval: 100ms}\n"
         "sources:\n"
         "  - {id: gen, type: generator, parallelism: 2, rate: " +
         std::to_string(rate) +
         ", fields: {i: \"i\"}}\n"
         "transforms:\n"
         "  - {id: even, type: filter, input: gen, where: \"i % 2 = 0\"}\n"
         "sinks:\n"
         "  - {id: out, type: file, input: even, path: " +
         out + ", format: json}\n";
}

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = PipelineManager::open(test::manager_options(tmp_.file("data")), test::real_compiler());
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    manager_ = std::move(m).value();
    history_ = std::make_unique<MetricsHistory>(*manager_, HistoryOptions{50ms, 600});
    auto router = std::make_shared<Router>();
    add_api_routes(*router, *manager_);
    add_console_routes(*router, *manager_, *history_);
    HttpServerOptions options;
    options.listeners.push_back({"127.0.0.1", 0, router});
    server_ = std::make_unique<HttpServer>(options);
    ASSERT_TRUE(server_->start().ok());
    port_ = server_->port(0);
  }
  void TearDown() override {
    if (server_) server_->stop(2000ms);
    if (history_) history_->stop();
    if (manager_) manager_->shutdown(20000ms);
  }
  json get_json(const std::string& target, int expected = 200) {
    auto r = http_request(port_, "GET", target);
    EXPECT_EQ(r.status, expected) << target << ": " << r.body << r.error;
    json j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }

  df::test::TempDir tmp_;
  std::unique_ptr<PipelineManager> manager_;
  std::unique_ptr<MetricsHistory> history_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST(ConsoleAssets, EmbedEveryFileOfWebConsole) {
  std::set<std::string> on_disk;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(DF_SOURCE_DIR) + "/web/console")) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name != "README.md") on_disk.insert(name);
  }
  std::set<std::string> embedded;
  for (const ConsoleAsset& a : console_assets()) {
    embedded.insert(std::string(a.name));
    EXPECT_FALSE(a.content.empty()) << a.name;
    EXPECT_EQ(
        df::test::read_file(std::string(DF_SOURCE_DIR) + "/web/console/" + std::string(a.name)),
        a.content)
        << a.name << " differs from web/console (re-run cmake)";
  }
  EXPECT_EQ(embedded, on_disk);
  EXPECT_TRUE(embedded.count("index.html"));
  // Every module an asset imports and every file index.html names is embedded.
  const std::regex import_re(R"(from '\./([\w.-]+)')");
  const std::regex html_re(R"(/console/([\w.-]+))");
  for (const ConsoleAsset& a : console_assets()) {
    const std::string text(a.content);
    const std::regex& re = a.name == "index.html" ? html_re : import_re;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
         ++it) {
      EXPECT_TRUE(embedded.count((*it)[1].str())) << a.name << " refers to " << (*it)[1];
    }
  }
}

TEST_F(ConsoleTest, ServesAssetsWithTypesAndETags) {
  auto r = http_request(port_, "GET", "/");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("/console/app.js"), std::string::npos);
  EXPECT_EQ(r.headers["cache-control"], "no-cache");
  EXPECT_NE(r.headers["content-security-policy"].find("default-src 'self'"), std::string::npos);
  const std::string etag = r.headers["etag"];
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(etag.front(), '"');

  // Unchanged: 304 without a body.
  auto again = http_request(port_, "GET", "/", "", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(http_request(port_, "GET", "/", "", {{"If-None-Match", "\"other\""}}).status, 200);

  const std::map<std::string, std::string> types = {{"app.js", "text/javascript; charset=utf-8"},
                                                    {"style.css", "text/css; charset=utf-8"},
                                                    {"favicon.svg", "image/svg+xml"}};
  for (const auto& [file, type] : types) {
    auto a = http_request(port_, "GET", "/console/" + file);
    EXPECT_EQ(a.status, 200) << file;
    EXPECT_EQ(a.headers["content-type"], type) << file;
    EXPECT_EQ(a.headers["x-content-type-options"], "nosniff");
    EXPECT_NE(a.headers["etag"], etag) << "each file has its own ETag";
  }
  EXPECT_EQ(http_request(port_, "HEAD", "/console/app.js").status, 200);
  EXPECT_EQ(http_request(port_, "GET", "/console/nothing.js").status, 404);
  EXPECT_EQ(http_request(port_, "GET", "/console/..%2Fapi.h").status, 404);
  EXPECT_EQ(http_request(port_, "POST", "/console/app.js").status, 405);
}

TEST_F(ConsoleTest, GraphOfAStoppedPipelineIsItsPlan) {
  auto created = http_request(port_, "POST", "/api/v1/pipelines",
                              filtered_pipeline("g", tmp_.file("out"), 1000), kYaml);
  ASSERT_EQ(created.status, 201) << created.body;
  json g = get_json("/api/v1/pipelines/g/graph");
  EXPECT_EQ(g["pipeline"], "g");
  EXPECT_FALSE(g["running"].get<bool>());
  EXPECT_TRUE(g["channels"].is_null());
  ASSERT_EQ(g["nodes"].size(), 3u) << g.dump();
  EXPECT_EQ(g["nodes"][0]["id"], "gen");
  EXPECT_EQ(g["nodes"][0]["role"], "source");
  EXPECT_EQ(g["nodes"][0]["type"], "generator");
  EXPECT_EQ(g["nodes"][0]["parallelism"], 2);
  EXPECT_EQ(g["nodes"][0]["inputs"], json::array());
  EXPECT_EQ(g["nodes"][1]["id"], "even");
  EXPECT_EQ(g["nodes"][1]["role"], "transform");
  EXPECT_EQ(g["nodes"][1]["type"], "filter");
  EXPECT_EQ(g["nodes"][1]["inputs"], json::array({"gen"}));
  EXPECT_EQ(g["nodes"][2]["role"], "sink");
  EXPECT_EQ(g["nodes"][2]["inputs"], json::array({"even"}));
  EXPECT_TRUE(g["nodes"][1]["rows_in_per_second"].is_null());
  ASSERT_EQ(g["edges"].size(), 2u);
  EXPECT_EQ(g["edges"][0]["from"], "gen");
  EXPECT_EQ(g["edges"][0]["to"], "even");
  EXPECT_TRUE(g["edges"][0]["backpressure"].is_null());

  get_json("/api/v1/pipelines/missing/graph", 404);
  get_json("/api/v1/pipelines/missing/history", 404);
  get_json("/api/v1/pipelines/g/graph?x=1", 400);
  // Stopped and never sampled: no samples yet, but the pipeline is known.
  json h = get_json("/api/v1/pipelines/g/history");
  EXPECT_EQ(h["interval_ms"], 50);
  EXPECT_EQ(h["window_seconds"], 30);
  EXPECT_EQ(h["samples"], json::array());
}

TEST_F(ConsoleTest, RunningPipelineShowsLiveRatesAndHistory) {
  history_->start();
  auto created = http_request(port_, "POST", "/api/v1/pipelines?start=true",
                              filtered_pipeline("live", tmp_.file("out"), 20000), kYaml);
  ASSERT_EQ(created.status, 201) << created.body;

  json g;
  ASSERT_TRUE(eventually([&] {
    g = get_json("/api/v1/pipelines/live/graph");
    return g["running"] == true && g["nodes"][0]["rows_out_per_second"].is_number() &&
           g["nodes"][0]["rows_out_per_second"].get<double>() > 0 &&
           g["nodes"][2]["rows_in_per_second"].is_number() &&
           g["nodes"][2]["rows_in_per_second"].get<double>() > 0;
  })) << g.dump();
  EXPECT_TRUE(g["run"].is_string());
  EXPECT_GT(g["nodes"][0]["rows_out"].get<uint64_t>(), 0u);
  ASSERT_TRUE(g["channels"].is_object()) << g.dump();
  EXPECT_GT(g["channels"]["capacity_rows"].get<uint64_t>(), 0u);
  EXPECT_GE(g["channels"]["fill"].get<double>(), 0.0);
  EXPECT_LE(g["channels"]["fill"].get<double>(), 1.0);
  for (const json& e : g["edges"]) {
    EXPECT_TRUE(e["backpressure"] == "none" || e["backpressure"] == "low" ||
                e["backpressure"] == "high")
        << e.dump();
  }

  // Rows/s, sink latency and a checkpoint's duration land in the history.
  json h;
  auto has = [&](const char* key) {
    for (const json& s : h["samples"]) {
      if (s[key].is_number() && s[key].get<double>() > 0) return true;
    }
    return false;
  };
  ASSERT_TRUE(eventually([&] {
    h = get_json("/api/v1/pipelines/live/history");
    return has("rows_per_second") && has("latency_p99_seconds") && has("checkpoint_seconds");
  })) << h.dump();
  for (const json& s : h["samples"]) {
    EXPECT_TRUE(s["time"].is_string());
    if (s["latency_p50_seconds"].is_number()) {
      EXPECT_LE(s["latency_p50_seconds"].get<double>(), s["latency_p99_seconds"].get<double>());
    }
  }

  // Stopped: the graph loses its live numbers, the history keeps its samples.
  ASSERT_EQ(http_request(port_, "POST", "/api/v1/pipelines/live/stop").status, 202);
  ASSERT_TRUE(
      eventually([&] { return get_json("/api/v1/pipelines/live/graph")["running"] == false; }));
  g = get_json("/api/v1/pipelines/live/graph");
  EXPECT_TRUE(g["nodes"][0]["rows_out_per_second"].is_null());
  EXPECT_FALSE(get_json("/api/v1/pipelines/live/history")["samples"].empty());
}

TEST_F(ConsoleTest, HistoryKeepsTheNewestSamplesAndForgetsDeletedPipelines) {
  auto small = std::make_unique<MetricsHistory>(*manager_, HistoryOptions{50ms, 5});
  ASSERT_EQ(http_request(port_, "POST", "/api/v1/pipelines",
                         counting_pipeline("p", tmp_.file("out"), 10, 0), kYaml)
                .status,
            201);
  for (int i = 0; i < 8; ++i) small->sample();
  const std::vector<HistorySample> samples = small->samples("p");
  ASSERT_EQ(samples.size(), 5u);
  for (const HistorySample& s : samples) EXPECT_FALSE(s.running);
  EXPECT_TRUE(small->samples("nothing").empty());
  ASSERT_EQ(http_request(port_, "DELETE", "/api/v1/pipelines/p").status, 204);
  small->sample();
  EXPECT_TRUE(small->samples("p").empty());
}

TEST(HistogramQuantile, InterpolatesWithinTheBucket) {
  metrics::HistogramSnapshot h;
  h.upper_bounds = {0.1, 1.0, 10.0};
  h.cumulative = {0, 0, 0, 0};
  EXPECT_FALSE(histogram_quantile(h, 0.5));
  h.cumulative = {50, 100, 100, 100};  // half <= 0.1, half in (0.1, 1]
  EXPECT_NEAR(*histogram_quantile(h, 0.5), 0.1, 1e-9);
  EXPECT_NEAR(*histogram_quantile(h, 0.75), 0.55, 1e-9);
  EXPECT_NEAR(*histogram_quantile(h, 1.0), 1.0, 1e-9);
  h.cumulative = {0, 0, 0, 10};  // all above the last bound
  EXPECT_NEAR(*histogram_quantile(h, 0.99), 10.0, 1e-9);
}

TEST(ConsoleRoutes, NeedPipelineReadAndAreDocumented) {
  json doc = json::parse(openapi_document());
  for (const ConsoleApi::Route& r : ConsoleApi::routes()) {
    EXPECT_EQ(r.action, Action::kPipelineRead) << r.pattern;
    std::string path = std::string(r.pattern).substr(std::string("/api/v1").size());
    ASSERT_TRUE(doc["paths"].contains(path)) << path;
    EXPECT_TRUE(doc["paths"][path].contains("get")) << path;
  }
}

}  // namespace
}  // namespace df::server
