// The circuit breaker around sinks (DESIGN §5, healing.circuit_breaker)
// against the real binary: DATAFLOW_FAULTS makes the sink's calls fail
// transiently many times in a row; the breaker opens (its calls stop, the
// pipeline is backpressured rather than buffering), half-open probes re-open
// it while the fault lasts and close it when the fault stops, and the
// exactly-once output is exact. Under the server, /health says degraded and
// dataflow_circuit_breaker_open is 1 while it is open. The same breaker
// guards checkpoint storage (checkpoints are declined while it is open), and
// a SIGTERM while a sink's breaker stays open ends within the grace period.
#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Two generator subtasks feed one sink subtask over channels (different
// parallelism: no chaining), so an open breaker backs rows up into them.
const char* kExecPipeline = R"yaml(
name: cb
checkpoint: {interval: 50ms, delivery: exactly_once}
healing:
  retry: {initial_backoff: 5ms, max_backoff: 20ms}
  circuit_breaker: {failure_threshold: 3, open_for: 200ms}
  restart: none
sources:
  - {id: gen, type: generator, parallelism: 2, count: 20000, rate: 20000,
     fields: {id: "i", v: "i % 97"}}
sinks:
  - {id: out, type: file, input: gen, parallelism: 1, path: out, format: json}
)yaml";

class BreakerExecTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("DATAFLOW_FAULTS"); }
  void TearDown() override { unsetenv("DATAFLOW_FAULTS"); }

  ProcessResult run(const std::string& faults) {
    tmp_.write("p.yaml", kExecPipeline);
    std::filesystem::remove_all(tmp_.path() / "out");
    std::filesystem::remove_all(tmp_.path() / "state");
    if (faults.empty()) {
      unsetenv("DATAFLOW_FAULTS");
    } else {
      setenv("DATAFLOW_FAULTS", faults.c_str(), 1);
    }
    ProcessResult r = run_process({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress", "--workers",
                                   "2", "--batch-size", "256", "--state-dir", "state"},
                                  tmp_.str(), 2min);
    unsetenv("DATAFLOW_FAULTS");
    return r;
  }

  TempDir tmp_;
};

TEST_F(BreakerExecTest, OpensAfterTheThresholdProbesUntilThePeerIsBackAndLosesNothing) {
  ProcessResult clean = run("");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  const auto expected = committed_rows(tmp_.path() / "out");
  ASSERT_EQ(expected.size(), 20000u);

  // 7 failures in a row: 2 retries, the 3rd opens the breaker, 4 failed
  // probes re-open it, the 5th probe succeeds and closes it.
  ProcessResult r = run("out:process:unavailable:after=10:times=7");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 8u) << r.err;
  EXPECT_TRUE(has(ev[0], R"("class":"transient","action":"retry","node":"out")")) << ev[0];
  EXPECT_TRUE(has(ev[1], R"("class":"transient","action":"retry","node":"out")")) << ev[1];
  for (size_t i = 2; i < 7; ++i) {
    EXPECT_TRUE(has(ev[i], R"("class":"transient","action":"open_circuit","node":"out")")) << ev[i];
    EXPECT_TRUE(has(ev[i], R"("delay_ms":200)")) << ev[i];
  }
  EXPECT_TRUE(has(ev[2], R"("attempt":3)")) << ev[2];
  EXPECT_TRUE(has(ev[7], R"("class":"transient","action":"close_circuit","node":"out")")) << ev[7];
  // While open, the failures did not count toward max_attempts (5): no
  // restart, no failure.
  EXPECT_FALSE(has(r.err, "1 restart")) << r.err;
  EXPECT_TRUE(has(r.err, "circuit breaker open")) << r.err;
  EXPECT_EQ(committed_rows(tmp_.path() / "out"), expected);
}

TEST_F(BreakerExecTest, MaxOpenGivesUpOnAPeerThatStaysDown) {
  std::string p = kExecPipeline;
  p.replace(p.find("open_for: 200ms}"), 16, "open_for: 100ms, max_open: 250ms}");
  tmp_.write("p.yaml", p);
  setenv("DATAFLOW_FAULTS", "out:process:unavailable:times=0", 1);
  const auto started = Clock::now();
  ProcessResult r =
      run_process({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress"}, tmp_.str(), 1min);
  unsetenv("DATAFLOW_FAULTS");
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_LT(Clock::now() - started, 30s);
  EXPECT_TRUE(has(r.err, "the circuit breaker stayed open longer than max_open")) << r.err;
  const auto ev = exec_events(r.err);
  ASSERT_FALSE(ev.empty()) << r.err;
  EXPECT_TRUE(has(ev.back(), R"("action":"fail")")) << ev.back();
}

// --- Under the server ---

TEST(BreakerServerTest, HealthIsDegradedAndTheGaugeIsOneWhileTheBreakerIsOpen) {
  TempDir dir;
  constexpr int kRows = 60000;
  const std::string out = dir.file("out");
  // The sink fails 12 times in a row (threshold 3, then 9 failed probes of
  // 400 ms each): open for about 3.5 s of a run of about 6 s.
  setenv("DATAFLOW_FAULTS", "out:process:unavailable:after=20:times=12", 1);
  ServerProcess server(DATAFLOW_BIN, dir);
  unsetenv("DATAFLOW_FAULTS");
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  auto health = client_for(server.health_port());
  auto metrics = client_for(server.metrics_port());

  std::ostringstream p;
  p << "name: cb\n"
    << "checkpoint: {interval: 200ms}\n"
    << "healing:\n"
    << "  retry: {initial_backoff: 5ms, max_backoff: 20ms}\n"
    << "  circuit_breaker: {failure_threshold: 3, open_for: 400ms}\n"
    << "sources:\n"
    << "  - {id: gen, type: generator, parallelism: 2, count: " << kRows
    << ", rate: 10000, fields: {id: \"i\"}}\n"
    << "sinks:\n"
    << "  - {id: out, type: file, input: gen, parallelism: 1, path: " << out << ", format: json}\n";
  auto created = api.request("POST", "/api/v1/pipelines?start=true", p.str(), "application/yaml");
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string run_id = json::parse(created->body)["current_run"].get<std::string>();

  // While open: degraded, the gauge at 1, and no channel past its capacity.
  const std::string open_sample = R"(dataflow_circuit_breaker_open{pipeline="cb",node="out"} 1)";
  bool saw_degraded = false;
  bool saw_gauge = false;
  size_t high_water = 0;
  size_t capacity = 0;
  std::string last_health;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
    last_health = get_body(health, "/health");
    const json h = json::parse(last_health, nullptr, false);
    if (h.is_object() && h["status"] == "degraded" &&
        has(last_health, R"("circuit_breakers_open")") && has(last_health, "cb/out")) {
      saw_degraded = true;
    }
    if (has(get_body(metrics, "/metrics"), open_sample)) saw_gauge = true;
    const json graph = get_json(api, "/api/v1/pipelines/cb/graph");
    if (graph.is_object() && graph["channels"].is_object()) {
      high_water = std::max(high_water, graph["channels"]["high_water_rows"].get<size_t>());
      capacity = graph["channels"]["capacity_rows"].get<size_t>();
    }
    if (saw_degraded && saw_gauge) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(saw_degraded) << last_health;
  EXPECT_TRUE(saw_gauge);

  // The fault stops: a probe closes the breaker (healthy again, the gauge
  // at 0 while the run goes on) and the run completes.
  const std::string closed_sample = R"(dataflow_circuit_breaker_open{pipeline="cb",node="out"} 0)";
  bool saw_closed = false;
  json run;
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline;) {
    if (!saw_closed && !has(get_body(health, "/health"), "circuit_breakers_open") &&
        has(get_body(metrics, "/metrics"), closed_sample)) {
      saw_closed = true;
    }
    const json graph = get_json(api, "/api/v1/pipelines/cb/graph");
    if (graph.is_object() && graph["channels"].is_object()) {
      high_water = std::max(high_water, graph["channels"]["high_water_rows"].get<size_t>());
      capacity = graph["channels"]["capacity_rows"].get<size_t>();
    }
    run = get_json(api, "/api/v1/runs/" + run_id);
    if (run.value("status", "") != "running") break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(run.value("status", ""), "succeeded") << run.dump() << server.log();
  EXPECT_TRUE(saw_closed) << "the breaker never closed while the run went on";
  // Backpressure, not buffering: the rows the 10k rows/s source could not
  // send while the sink was stopped stayed in the source.
  EXPECT_GT(capacity, 0u);
  EXPECT_GT(high_water, 0u);
  EXPECT_LE(high_water, capacity);

  const std::string health_after = get_body(health, "/health");
  EXPECT_FALSE(has(health_after, "circuit_breakers_open")) << health_after;
  const json events = get_json(api, "/api/v1/runs/" + run_id + "/events");
  const std::string all = events.dump();
  EXPECT_TRUE(has(all, R"("action":"open_circuit")")) << all;
  EXPECT_TRUE(has(all, R"("action":"close_circuit")")) << all;
  EXPECT_FALSE(has(all, R"("action":"restart")")) << all;

  const std::multiset<int64_t> ids = committed_ids(out);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kRows)) << "duplicates or losses";
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), static_cast<size_t>(kRows));
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), kRows - 1);
}

// Checkpoint storage fails 6 calls in a row after a few checkpoints: three
// failed checkpoints open the breaker (threshold 3), later checkpoints are
// declined instead of piling up, three failed probes re-open it, the fourth
// closes it, and the checkpoints after that complete. Output exactly once.
TEST(BreakerServerTest, AroundCheckpointStorageCheckpointsAreDeclinedWhileOpen) {
  TempDir dir;
  constexpr int kRows = 60000;
  const std::string out = dir.file("out");
  setenv("DATAFLOW_FAULTS", "checkpoint_storage:process:unavailable:after=20:times=6", 1);
  ServerProcess server(DATAFLOW_BIN, dir);
  unsetenv("DATAFLOW_FAULTS");
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  auto health = client_for(server.health_port());
  auto metrics = client_for(server.metrics_port());

  std::ostringstream p;
  p << "name: cs\n"
    << "checkpoint: {interval: 100ms, delivery: exactly_once}\n"
    << "healing:\n"
    << "  circuit_breaker: {failure_threshold: 3, open_for: 400ms}\n"
    << "sources:\n"
    << "  - {id: gen, type: generator, count: " << kRows << ", rate: 10000, fields: {id: \"i\"}}\n"
    << "sinks:\n"
    << "  - {id: out, type: file, input: gen, path: " << out << ", format: json}\n";
  auto created = api.request("POST", "/api/v1/pipelines?start=true", p.str(), "application/yaml");
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  const std::string run_id = json::parse(created->body)["current_run"].get<std::string>();

  const std::string open_sample =
      R"(dataflow_circuit_breaker_open{pipeline="cs",node="checkpoint_storage"} 1)";
  bool saw_degraded = false;
  bool saw_gauge = false;
  std::string last_health;
  for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
    last_health = get_body(health, "/health");
    const json h = json::parse(last_health, nullptr, false);
    if (h.is_object() && h["status"] == "degraded" && has(last_health, "cs/checkpoint_storage")) {
      saw_degraded = true;
    }
    if (has(get_body(metrics, "/metrics"), open_sample)) saw_gauge = true;
    if (saw_degraded && saw_gauge) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(saw_degraded) << last_health << server.log();
  EXPECT_TRUE(saw_gauge);

  // Storage is back: a probe closes the breaker and checkpoints complete again.
  json run;
  uint64_t checkpoints_when_closed = 0;
  for (auto deadline = Clock::now() + 60s; Clock::now() < deadline;) {
    run = get_json(api, "/api/v1/runs/" + run_id);
    if (checkpoints_when_closed == 0 && !has(get_body(health, "/health"), "checkpoint_storage")) {
      checkpoints_when_closed = run.value("checkpoints", 0);
    }
    if (run.value("status", "") != "running") break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(run.value("status", ""), "succeeded") << run.dump() << server.log();
  EXPECT_GT(run.value("checkpoints", 0), checkpoints_when_closed) << run.dump();
  EXPECT_FALSE(has(get_body(health, "/health"), "circuit_breakers_open"));
  const std::string log = server.log();
  EXPECT_TRUE(has(log, "are declined while the circuit breaker around checkpoint storage")) << log;

  const json events = get_json(api, "/api/v1/runs/" + run_id + "/events");
  std::vector<std::string> storage_actions;
  for (const json& e : events["events"]) {
    if (e.value("node", "") == "checkpoint_storage") storage_actions.push_back(e["action"]);
    EXPECT_NE(e.value("action", ""), "restart") << e.dump();
  }
  // Opened at the 3rd failure, re-opened by 3 failed probes, closed by the 4th.
  const std::vector<std::string> expected_actions = {"open_circuit", "open_circuit", "open_circuit",
                                                     "open_circuit", "close_circuit"};
  EXPECT_EQ(storage_actions, expected_actions) << events.dump();

  const std::multiset<int64_t> ids = committed_ids(out);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kRows)) << "duplicates or losses";
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), static_cast<size_t>(kRows));
}

// A sink whose peer stays down holds the stop checkpoint's barrier; SIGTERM
// must still end the server once the grace period (2 s) is over: exit 3,
// naming the cut run, not a hang.
TEST(BreakerServerTest, SigtermWhileASinksBreakerIsOpenEndsWithinTheGracePeriod) {
  TempDir dir;
  const std::vector<uint16_t> ports = free_ports(3);
  const std::string config =
      dir.write("config.yaml",
                "server: {host: 127.0.0.1, port: " + std::to_string(ports[0]) +
                    ", data_dir: " + dir.file("data") + ", shutdown_grace_period: 2s}\n" +
                    "runtime: {workers: 2, checkpoint_storage: " + dir.file("checkpoints") + "}\n" +
                    "monitoring:\n  metrics: {host: 127.0.0.1, port: " + std::to_string(ports[1]) +
                    "}\n  health: {host: 127.0.0.1, port: " + std::to_string(ports[2]) +
                    "}\n  logging: {level: info, format: text, output: stderr}\n");
  setenv("DATAFLOW_FAULTS", "out:process:unavailable:after=5:times=0", 1);
  Child server({DATAFLOW_BIN, "run", "--config", config}, dir.str(), dir.file("server.err"));
  unsetenv("DATAFLOW_FAULTS");
  auto api = client_for(ports[0]);
  auto health = client_for(ports[2]);
  ASSERT_TRUE(eventually(
      [&] {
        auto r = health.request("GET", "/health/ready");
        return r.ok() && r->status == 200;
      },
      15s))
      << read_file(dir.file("server.err"));

  const std::string p =
      "name: stuck\n"
      "checkpoint: {interval: 200ms}\n"
      "healing:\n"
      "  retry: {initial_backoff: 5ms, max_backoff: 20ms}\n"
      "  circuit_breaker: {failure_threshold: 3, open_for: 60s}\n"
      "sources:\n"
      "  - {id: gen, type: generator, rate: 5000, fields: {id: \"i\"}}\n"
      "sinks:\n"
      "  - {id: out, type: file, input: gen, path: " +
      dir.file("out") + ", format: json}\n";
  auto created = api.request("POST", "/api/v1/pipelines?start=true", p, "application/yaml");
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  ASSERT_TRUE(eventually([&] { return has(get_body(health, "/health"), "stuck/out"); }, 30s))
      << read_file(dir.file("server.err"));

  const auto signalled = Clock::now();
  server.send_signal(SIGTERM);
  ProcessResult r = server.wait(30s);
  const auto took = Clock::now() - signalled;
  const std::string err = read_file(dir.file("server.err"));
  EXPECT_FALSE(r.timed_out) << err;
  EXPECT_EQ(r.exit_code, 3) << err;
  EXPECT_LT(took, 6s) << "grace 2 s; " << err;
  EXPECT_TRUE(has(err, "cut 1 run")) << err;
}

}  // namespace
}  // namespace df::test
