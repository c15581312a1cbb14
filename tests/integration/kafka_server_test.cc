// A Kafka source in the server (`dataflow run --config`), against the
// librdkafka mock cluster in its own process (tests/support/kafka_cluster.h):
// /metrics shows the consumer lag per partition and the brokers the client
// reaches (and passes `promtool check metrics`); with every broker down
// /health reports the pipeline degraded with the reason and brokers_up is 0;
// once they are back the health is healthy again and the file sink holds
// every message exactly once.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "tests/support/kafka_client.h"
#include "tests/support/kafka_cluster.h"
#include "tests/support/server_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The value of the sample `series` (name{labels}) in an exposition; nullopt
// when absent.
std::optional<double> sample(const std::string& exposition, const std::string& series) {
  const size_t at = exposition.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  const size_t value = at + series.size() + 2;
  return std::stod(exposition.substr(value, exposition.find('\n', value) - value));
}

// Messages {"id": i} for i in [first, first + n), spread over `partitions`.
std::vector<ProduceRecord> records(int64_t first, int64_t n, int32_t partitions) {
  std::vector<ProduceRecord> out;
  for (int64_t i = first; i < first + n; ++i) {
    ProduceRecord r;
    r.value = Json{{"id", i}}.dump();
    r.partition = static_cast<int32_t>(i % partitions);
    out.push_back(std::move(r));
  }
  return out;
}

class KafkaServer : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "librdkafka starts its threads with C11 thrd_create, which GCC's "
                    "ThreadSanitizer does not intercept: its runtime crashes in them";
#endif
  }
};

TEST_F(KafkaServer, LagAndBrokersInMetricsDegradedWhileBrokersAreDownNothingLost) {
  constexpr int32_t kPartitions = 2;
  constexpr int64_t kFirst = 600;
  KafkaCluster kafka({{"in", kPartitions}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", records(0, kFirst, kPartitions)).ok());

  TempDir dir;
  const std::string out = dir.file("out");
  ServerProcess server(DATAFLOW_BIN, dir);
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  auto metrics = client_for(server.metrics_port());
  auto health = client_for(server.health_port());

  // Unbounded, so it keeps its partitions (and its lag) while it runs.
  const std::string pipeline =
      "name: kin\n"
      "checkpoint: {interval: 300ms}\n"
      "sources:\n"
      "  - id: in\n"
      "    type: kafka\n"
      "    brokers: \"" +
      kafka.bootstrap() +
      "\"\n"
      "    topic: in\n"
      "    group_id: kin-group\n"
      "    session_timeout_ms: 6000\n"
      "    properties: {heartbeat.interval.ms: 500, statistics.interval.ms: 200,\n"
      "                 reconnect.backoff.max.ms: 500}\n"
      "    format: json\n"
      "    schema: {id: int64}\n"
      "sinks:\n"
      "  - {id: out, type: file, input: in, path: " +
      out + ", format: json}\n";
  auto created = api.request("POST", "/api/v1/pipelines?start=true", pipeline, "application/yaml");
  ASSERT_TRUE(created.ok()) << created.status().message();
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string run =
      "/api/v1/runs/" + Json::parse(created->body)["current_run"].get<std::string>();

  // The lag of both partitions, and the brokers the consumer reaches.
  const std::string lag0 =
      R"(dataflow_kafka_consumer_lag{pipeline="kin",node="in",topic="in",partition="0"})";
  const std::string lag1 =
      R"(dataflow_kafka_consumer_lag{pipeline="kin",node="in",topic="in",partition="1"})";
  const std::string brokers = R"(dataflow_kafka_brokers_up{pipeline="kin",node="in"})";
  std::string exposition;
  EXPECT_TRUE(eventually(
      [&] {
        exposition = get_body(metrics, "/metrics");
        return sample(exposition, lag0) == 0.0 && sample(exposition, lag1) == 0.0 &&
               sample(exposition, brokers).value_or(0) >= 1 &&
               committed_ids(out).size() == static_cast<size_t>(kFirst);
      },
      60s))
      << exposition << server.log();
  const std::string file = dir.write("metrics.txt", exposition);
  ProcessResult checked =
      run_process({"/bin/sh", "-c", "promtool check metrics < " + file}, dir.str(), 30s);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
  EXPECT_EQ(checked.out + checked.err, "");
  Json report = Json::parse(get_body(health, "/health"), nullptr, false);
  EXPECT_EQ(report["checks"]["pipelines"]["status"], "healthy") << report.dump();

  // Every broker down: degraded with the reason, no broker up.
  ASSERT_TRUE(kafka.set_brokers_down());
  EXPECT_TRUE(eventually(
      [&] {
        report = Json::parse(get_body(health, "/health"), nullptr, false);
        exposition = get_body(metrics, "/metrics");
        return report.value("status", "") == "degraded" &&
               report["checks"]["pipelines"].contains("kafka_brokers_down") &&
               sample(exposition, brokers) == 0.0;
      },
      30s))
      << report.dump() << "\n"
      << exposition;
  const Json down = report["checks"]["pipelines"]["kafka_brokers_down"];
  ASSERT_TRUE(down.is_array() && down.size() == 1u) << report.dump();
  EXPECT_EQ(down[0].get<std::string>().rfind("kin/in: ", 0), 0u) << down;
  // Retrying, not failed.
  EXPECT_EQ(Json::parse(get_body(api, run), nullptr, false).value("status", ""), "running");

  // Back up: healthy again, and what arrives meanwhile is read too.
  ASSERT_TRUE(kafka.set_brokers_up());
  EXPECT_TRUE(eventually(
      [&] {
        report = Json::parse(get_body(health, "/health"), nullptr, false);
        exposition = get_body(metrics, "/metrics");
        return report["checks"]["pipelines"].value("status", "") == "healthy" &&
               sample(exposition, brokers).value_or(0) >= 1;
      },
      30s))
      << report.dump() << "\n"
      << exposition;
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", records(kFirst, kFirst, kPartitions)).ok());
  std::multiset<int64_t> ids;
  EXPECT_TRUE(eventually(
      [&] {
        ids = committed_ids(out);
        return ids.size() >= static_cast<size_t>(2 * kFirst);
      },
      60s))
      << ids.size() << " rows\n"
      << server.log();
  EXPECT_EQ(ids.size(), static_cast<size_t>(2 * kFirst)) << "duplicates";
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), static_cast<size_t>(2 * kFirst));
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), 2 * kFirst - 1);
}

}  // namespace
}  // namespace df::test
