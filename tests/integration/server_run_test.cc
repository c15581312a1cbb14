// The server (`dataflow run --config`, DESIGN §8) as operators meet it: a
// SIGTERM under load exits 0 after a final checkpoint and the next start
// continues from it with exactly-once output; a real Prometheus scrapes
// /metrics and a query returns the processed count; `promtool check
// metrics` accepts the output, which names every metric the deployment
// assets (deploy/metrics.txt) rely on; a bad config exits 1 naming the key;
// JSON log lines written on worker, I/O and checkpoint threads carry the
// pipeline and run id.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cli/http_client.h"
#include "tests/support/server_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using nlohmann::json;
using namespace std::chrono_literals;

namespace df::test {
namespace {

using Clock = std::chrono::steady_clock;

// Polls the run until `done(run)` (bounded by `budget`).
json wait_for(const cli::HttpClient& http, const std::string& path,
              const std::function<bool(const json&)>& done, std::chrono::seconds budget) {
  json doc;
  const auto deadline = Clock::now() + budget;
  while (Clock::now() < deadline) {
    doc = get_json(http, path);
    if (done(doc)) return doc;
    std::this_thread::sleep_for(100ms);
  }
  ADD_FAILURE() << path << " never reached the expected state: " << doc.dump();
  return doc;
}

std::string pipeline_text(const std::string& out_dir, int rows, int rate) {
  std::ostringstream p;
  p << "name: orders\n"
    << "checkpoint: {interval: 300ms}\n"
    << "sources:\n"
    << "  - {id: gen, type: generator, count: " << rows << ", rate: " << rate
    << ", fields: {id: \"i\", amount: \"i % 97\"}}\n"
    << "transforms:\n"
    << "  - {id: big, type: filter, input: gen, where: \"amount >= 0\"}\n"
    << "sinks:\n"
    << "  - {id: out, type: file, input: big, path: " << out_dir << ", format: json}\n";
  return p.str();
}

TEST(Server, SigtermUnderLoadExitsZeroAndTheNextStartContinuesExactlyOnce) {
  TempDir dir;
  const std::string out = dir.file("out");
  constexpr int kRows = 20000;
  std::string run_id;
  {
    ServerProcess server(DATAFLOW_BIN, dir);
    ASSERT_TRUE(server.ready()) << server.log();
    auto api = client_for(server.api_port());
    auto created = api.request("POST", "/api/v1/pipelines?start=true",
                               pipeline_text(out, kRows, 4000), "application/yaml");
    ASSERT_TRUE(created.ok());
    ASSERT_EQ(created->status, 201) << created->body;
    run_id = json::parse(created->body)["current_run"].get<std::string>();
    // Under way, with at least one checkpoint behind it.
    wait_for(
        api, "/api/v1/runs/" + run_id, [](const json& r) { return r.value("checkpoints", 0) >= 1; },
        30s);
    const auto stopping = Clock::now();
    ProcessResult stopped = server.stop(SIGTERM, 30s);
    EXPECT_EQ(stopped.exit_code, 0) << server.log();
    EXPECT_LT(Clock::now() - stopping, 20s) << "past the grace period";
  }
  const size_t before = committed_ids(out).size();
  EXPECT_GT(before, 0u);
  EXPECT_LT(before, static_cast<size_t>(kRows)) << "the run should have been cut short";

  // The next server resumes the pipeline from the final checkpoint.
  ServerProcess server(DATAFLOW_BIN, dir);
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  json runs = get_json(api, "/api/v1/pipelines/orders/runs");
  ASSERT_TRUE(runs["runs"].is_array() && runs["runs"].size() == 2u) << runs.dump();
  EXPECT_EQ(runs["runs"][1]["id"], run_id);
  EXPECT_EQ(runs["runs"][1]["status"], "cancelled") << runs.dump();
  const std::string resumed = runs["runs"][0]["id"].get<std::string>();
  json run = wait_for(
      api, "/api/v1/runs/" + resumed,
      [](const json& r) { return r.value("status", "") != "running"; }, 60s);
  EXPECT_EQ(run["status"], "succeeded") << run.dump() << server.log();
  const std::multiset<int64_t> ids = committed_ids(out);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kRows)) << "duplicates or losses";
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), static_cast<size_t>(kRows));
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), kRows - 1);
  EXPECT_NE(server.log().find("resuming pipeline orders"), std::string::npos) << server.log();
}

// The metric names the Grafana dashboard and the alert rules query.
std::vector<std::string> documented_metrics() {
  std::ifstream in(std::string(DATAFLOW_SOURCE_DIR) + "/deploy/metrics.txt");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != '#') names.push_back(line);
  }
  return names;
}

TEST(Server, MetricsPassPromtoolAndAPrometheusScrapesTheProcessedCount) {
  TempDir dir;
  ServerProcess server(DATAFLOW_BIN, dir);
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  // Unbounded (no count) and slow, so it is still running when scraped.
  std::string text = pipeline_text(dir.file("out"), 0, 500);
  text.replace(text.find("count: 0, "), 10, "");
  auto created = api.request("POST", "/api/v1/pipelines?start=true", text, "application/yaml");
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string run_id = json::parse(created->body)["current_run"].get<std::string>();
  wait_for(
      api, "/api/v1/runs/" + run_id, [](const json& r) { return r.value("checkpoints", 0) >= 1; },
      30s);

  auto metrics = client_for(server.metrics_port()).request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->content_type.find("text/plain"), std::string::npos);
  const std::string exposition = dir.write("metrics.txt", metrics->body);
  ProcessResult checked =
      run_process({"/bin/sh", "-c", "promtool check metrics < " + exposition}, dir.str(), 30s);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
  EXPECT_EQ(checked.out + checked.err, "");
  for (const std::string& name : documented_metrics()) {
    // These have series only once there is something to count: a Kafka
    // node's lag and brokers, a dead letter, a self-healing decision.
    if (name == "dataflow_kafka_consumer_lag" || name == "dataflow_kafka_brokers_up" ||
        name == "dataflow_dead_letters_total" || name == "dataflow_recoveries_total") {
      continue;
    }
    EXPECT_NE(metrics->body.find("# TYPE " + name + " "), std::string::npos)
        << name << " is not exported";
  }
  EXPECT_NE(metrics->body.find("dataflow_pipeline_running{pipeline=\"orders\"} 1"),
            std::string::npos);

  // A real Prometheus scrapes it; the query returns the processed count.
  const uint16_t prom_port = free_ports(1)[0];
  const std::string prom_config = dir.write("prometheus.yml",
                                            "global: {scrape_interval: 1s}\n"
                                            "scrape_configs:\n"
                                            "  - job_name: dataflow\n"
                                            "    static_configs: [{targets: ['127.0.0.1:" +
                                                std::to_string(server.metrics_port()) + "']}]\n");
  Child prometheus({"/usr/bin/prometheus", "--config.file=" + prom_config,
                    "--storage.tsdb.path=" + dir.file("prom-data"),
                    "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                   dir.str(), dir.file("prometheus.err"));
  auto prom = client_for(prom_port);
  double processed = 0;
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline && processed <= 0) {
    std::this_thread::sleep_for(500ms);
    auto r = prom.request("GET",
                          "/api/v1/query?query=dataflow_events_processed_total%7Bpipeline%3D%22"
                          "orders%22%7D");
    if (!r.ok() || r->status != 200) continue;
    json answer = json::parse(r->body, nullptr, false);
    if (!answer.is_object() || answer["data"]["result"].empty()) continue;
    processed = std::stod(answer["data"]["result"][0]["value"][1].get<std::string>());
  }
  prometheus.send_signal(SIGTERM);
  prometheus.wait(20s);
  EXPECT_GT(processed, 0) << read_file(dir.file("prometheus.err"));
}

TEST(Server, EveryLogLineOfAPipelineCarriesItsNameAndRunIdWhateverThreadLoggedIt) {
  TempDir dir;
  ServerProcess server(DATAFLOW_BIN, dir);
  ASSERT_TRUE(server.ready()) << server.log();
  // Switch the running server to JSON lines (SIGHUP applies the logging
  // section) and wait for the first one.
  std::string config = read_file(server.config_path());
  const size_t text = config.find("format: text");
  ASSERT_NE(text, std::string::npos) << config;
  config.replace(text, 12, "format: json");
  dir.write("config.yaml", config);
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return server.log().find("{\"time\":") != std::string::npos; }, 10s))
      << server.log();

  // Bad lines make the file source's worker log warnings; checkpoints log
  // on the coordinator's thread, the file sink writes on the I/O pool.
  std::string input;
  for (int i = 0; i < 300; ++i) {
    input += i % 50 == 7 ? "{not json\n" : "{\"id\": " + std::to_string(i) + "}\n";
  }
  const std::string in = dir.write("in.jsonl", input);
  std::ostringstream p;
  p << "name: logctx\n"
    << "checkpoint: {interval: 100ms}\n"
    << "sources:\n"
    << "  - {id: shaky_input, type: file, path: " << in << ", format: json, schema: {id: int64}}\n"
    << "sinks:\n"
    << "  - {id: logged_out, type: file, input: shaky_input, path: " << dir.file("out")
    << ", format: json}\n";
  auto api = client_for(server.api_port());
  auto created = api.request("POST", "/api/v1/pipelines?start=true", p.str(), "application/yaml");
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string run_id = json::parse(created->body)["current_run"].get<std::string>();
  wait_for(
      api, "/api/v1/runs/" + run_id,
      [](const json& r) { return r.value("status", "") == "succeeded"; }, 60s);

  size_t bad_record_lines = 0;
  size_t checkpoint_lines = 0;
  std::istringstream lines(server.log());
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    const json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    const std::string msg = j.value("msg", "");
    const bool ours = msg.find("shaky_input") != std::string::npos ||
                      msg.find("logged_out") != std::string::npos ||
                      msg.find("pipeline logctx") != std::string::npos;
    if (!ours) continue;
    EXPECT_EQ(j.value("pipeline", ""), "logctx") << line;
    EXPECT_EQ(j.value("run_id", ""), run_id) << line;
    if (msg.find("bad record") != std::string::npos) ++bad_record_lines;
    if (j.value("component", "") == "checkpoint") ++checkpoint_lines;
  }
  EXPECT_GE(bad_record_lines, 1u) << server.log();
  EXPECT_GE(checkpoint_lines, 1u) << server.log();
}

TEST(Server, ABadConfigExitsOneNamingTheKeyAndCheckMasksSecrets) {
  TempDir dir;
  const std::string bad = dir.write("bad.yaml",
                                    "server: {port: 8080}\n"
                                    "monitoring:\n"
                                    "  metrics: {enabled: true, prot: 9090}\n");
  ProcessResult r = run_process({DATAFLOW_BIN, "run", "--config", bad}, dir.str(), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.yaml:3:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("prot"), std::string::npos) << r.err;

  const std::string good =
      dir.write("good.yaml", "server: {port: 8080, data_dir: " + dir.file("data") +
                                 "}\n"
                                 "security:\n"
                                 "  auth:\n"
                                 "    enabled: true\n"
                                 "    api_keys: [{name: ci, key: s3cr3t-k3y, role: admin}]\n");
  ProcessResult check =
      run_process({DATAFLOW_BIN, "run", "--config", good, "--check"}, dir.str(), 30s);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("port: 8080"), std::string::npos) << check.out;
  EXPECT_EQ(check.out.find("s3cr3t-k3y"), std::string::npos) << "a secret was printed";
  EXPECT_NE(check.out.find("****"), std::string::npos) << check.out;
}

TEST(Server, APortInUseExitsThreeInOneSentence) {
  TempDir dir;
  ServerProcess first(DATAFLOW_BIN, dir);
  ASSERT_TRUE(first.ready()) << first.log();
  TempDir other;
  const std::string config = other.write(
      "config.yaml", "server: {host: 127.0.0.1, port: " + std::to_string(first.api_port()) +
                         ", data_dir: " + other.file("data") +
                         "}\nmonitoring: {metrics: {enabled: false}, health: {enabled: false}}\n");
  ProcessResult r = run_process({DATAFLOW_BIN, "run", "--config", config}, other.str(), 30s);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find(std::to_string(first.api_port())), std::string::npos) << r.err;
}

}  // namespace
}  // namespace df::test
