// The Kafka source and sink through the real `dataflow` binary, against a
// librdkafka mock cluster (3 brokers on 127.0.0.1) in its own process
// (tests/support/kafka_cluster.h); messages are produced and read back with
// tests/support/kafka_client.h. Covers: a Kafka -> filter -> Kafka round trip;
// librdkafka's debug lines shown when a node sets the `debug` property;
// SIGKILL mid-stream and resume from checkpointed offsets (at-least-once
// Kafka sink loses nothing, exactly-once file sink writes exactly the input);
// two processes of one consumer group splitting the partitions; a blocked
// sink bounding memory with flow resuming after; the order of the
// exactly-once sink's transactional calls around checkpoints and a recovery.
//
// The mock keeps only about 5 MB per partition (older messages are dropped),
// so topics here have enough partitions for what they hold. Every source sets
// session_timeout_ms: 3000 (heartbeats every 500 ms to match): a run's
// consumers leave the group one by one as it ends, and those left wait up to
// a session timeout for the rebalance (librdkafka's default is 45 s).
#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/kafka_client.h"
#include "tests/support/kafka_cluster.h"
#include "tests/support/sanitizers.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// `text` with every occurrence of each key of `vars` replaced by its value.
std::string substitute(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [name, value] : vars) {
    for (size_t at = text.find(name); at != std::string::npos;
         at = text.find(name, at + value.size())) {
      text.replace(at, name.size(), value);
    }
  }
  return text;
}

// The `in` source of every pipeline here: JSON rows of topic `in`, a 3 s
// session and a 500 ms heartbeat so group changes take seconds, not 45 s;
// `extra` adds option lines (default: a bounded source).
// Options of a Kafka sink that paces the kill tests' runs: it holds at most
// 2000 unacknowledged messages (half of the producer queue) and librdkafka
// sends each partition's batch only after 100 ms, so the sink takes some
// 10-20k rows/s, a run over 150k messages lasts seconds and a kill lands
// mid-stream. (The source refills its prefetch at once, so it cannot pace.)
const char* const kPacingSinkOptions =
    "linger_ms: 100, properties: {queue.buffering.max.messages: 4000}";

std::string json_source(const std::string& brokers, const std::string& group,
                        const std::string& extra = "    bounded: true\n",
                        const std::string& properties = "{heartbeat.interval.ms: 500}") {
  return "  - id: in\n    type: kafka\n    brokers: \"" + brokers + "\"\n    topic: in\n" +
         "    group_id: " + group + "\n    session_timeout_ms: 3000\n" +
         "    properties: " + properties + "\n" + extra +
         "    format: json\n    schema: {id: int64, user: string, amount: int64}\n";
}

std::vector<std::string> exec_args(const std::string& pipeline, const std::string& state_dir = "") {
  std::vector<std::string> argv{DATAFLOW_BIN, "exec", pipeline, "--no-progress", "--workers", "2"};
  if (!state_dir.empty()) {
    argv.push_back("--state-dir");
    argv.push_back(state_dir);
  }
  return argv;
}

// Message i: {"id": i, "user": "u<i % 7>", "amount": i % 10}, sent to
// partition i % partitions so that every partition gets its share.
std::vector<ProduceRecord> json_records(int64_t n, int32_t partitions, int64_t first_id = 0) {
  std::vector<ProduceRecord> records;
  records.reserve(static_cast<size_t>(n));
  for (int64_t i = first_id; i < first_id + n; ++i) {
    ProduceRecord r;
    r.value = Json{{"id", i}, {"user", "u" + std::to_string(i % 7)}, {"amount", i % 10}}.dump();
    r.partition = static_cast<int32_t>(i % partitions);
    records.push_back(std::move(r));
  }
  return records;
}

// Polls `done` every 50 ms until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

int64_t sum_of(const std::map<int32_t, int64_t>& per_partition) {
  int64_t total = 0;
  for (const auto& [partition, n] : per_partition) total += n;
  return total;
}

// Messages written to `topic` so far (sum of its end offsets); -1 on error.
int64_t written(const KafkaCluster& kafka, const std::string& topic) {
  auto ends = end_offsets(kafka.bootstrap(), topic, 5s);
  return ends.ok() ? sum_of(*ends) : -1;
}

// The "id" of every message value (or JSON line), in the order given.
std::vector<int64_t> ids_of(const std::vector<std::string>& json_values) {
  std::vector<int64_t> ids;
  ids.reserve(json_values.size());
  for (const auto& v : json_values) ids.push_back(Json::parse(v).at("id").get<int64_t>());
  return ids;
}

std::vector<std::string> values_of(const std::vector<ConsumedMessage>& messages) {
  std::vector<std::string> values;
  for (const auto& m : messages) values.push_back(m.value.value_or(""));
  return values;
}

std::vector<int64_t> consumed_ids(const KafkaCluster& kafka, const std::string& topic) {
  auto got = consume_all(kafka.bootstrap(), topic, 30s);
  EXPECT_TRUE(got.ok()) << got.status().message();
  return got.ok() ? ids_of(values_of(*got)) : std::vector<int64_t>{};
}

std::vector<int64_t> iota_ids(int64_t n) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = i;
  return ids;
}

// How many of `ids` are repeats; fails the test when one of 0..n-1 is
// missing or another id appears (counted, not listed: there are many).
int64_t expect_all_ids(std::vector<int64_t> ids, int64_t n) {
  std::sort(ids.begin(), ids.end());
  std::vector<int64_t> distinct = ids;
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  const auto foreign = std::count_if(distinct.begin(), distinct.end(),
                                     [&](int64_t id) { return id < 0 || id >= n; });
  const int64_t missing = n - (static_cast<int64_t>(distinct.size()) - foreign);
  EXPECT_EQ(missing, 0) << "ids of the input missing from the output";
  EXPECT_EQ(foreign, 0) << "ids in the output that were never produced";
  return static_cast<int64_t>(ids.size() - distinct.size());
}

// The checkpoint a run resumed from (its "resuming NAME from checkpoint N"), or 0.
uint64_t resumed_from(const std::string& log) {
  const size_t resuming = log.find("resuming ");
  const size_t at = log.find(" from checkpoint ", resuming);
  if (resuming == std::string::npos || at == std::string::npos) return 0;
  return std::stoull(log.substr(at + 17));
}

// True while `pid` runs (a zombie, exited but not reaped, does not).
bool running(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(") ");
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// Starts a pipeline, waits (at most 30 s) until `progress` holds, then kills
// it with SIGKILL. Fails the test when the run ended by itself first: then
// it could not prove a resume.
void kill_when(const std::vector<std::string>& argv, const TempDir& tmp, const std::string& log,
               const std::function<bool()>& progress) {
  Child child(argv, tmp.str(), tmp.file(log));
  const bool reached = wait_until([&] { return progress() || !running(child.pid()); }, 30s);
  ASSERT_TRUE(reached) << "no progress within 30 s: " << read_file(tmp.file(log));
  child.send_signal(SIGKILL);
  ProcessResult r = child.wait(10s);
  ASSERT_EQ(r.signal, SIGKILL) << "the run ended before the kill (exit " << r.exit_code
                               << "); give it more input: " << r.err;
}

class Kafka : public ::testing::Test {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "librdkafka starts its threads with C11 thrd_create, which GCC's "
                    "ThreadSanitizer does not intercept: its runtime crashes in them";
#endif
  }
};

TEST_F(Kafka, RoundTripThroughAFilter) {
  KafkaCluster kafka({{"in", 4}, {"out", 2}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  constexpr int64_t kRows = 2000;
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(kRows, 4)).ok());

  TempDir tmp;
  tmp.write("p.yaml", substitute(R"yaml(
name: roundtrip
parallelism: 2
sources:
)yaml" + json_source(kafka.bootstrap(), "roundtrip") +
                                     R"yaml(transforms:
  - {id: big, type: filter, input: in, where: "amount >= 5"}
sinks:
  - {id: out, type: kafka, input: big, brokers: "BROKERS", topic: out, key: user, format: json}
)yaml",
                                 {{"BROKERS", kafka.bootstrap()}}));
  ProcessResult r = run_process(exec_args("p.yaml"), tmp.str(), 60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Exactly the input rows with amount >= 5, each keyed by its user.
  std::vector<std::pair<std::string, Json>> expected;
  for (int64_t i = 0; i < kRows; ++i) {
    if (i % 10 < 5) continue;
    const std::string user = "u" + std::to_string(i % 7);
    expected.emplace_back(user, Json{{"id", i}, {"user", user}, {"amount", i % 10}});
  }
  auto out = consume_all(kafka.bootstrap(), "out", 30s);
  ASSERT_TRUE(out.ok()) << out.status().message();
  std::vector<std::pair<std::string, Json>> got;
  for (const auto& m : *out) got.emplace_back(m.key.value_or("<none>"), Json::parse(*m.value));
  std::sort(expected.begin(), expected.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "output differs from the filtered input";

  // Without checkpoints the final positions are committed when the source
  // closes, so lag tools see the group at the end of the topic.
  auto ends = end_offsets(kafka.bootstrap(), "in");
  auto committed = committed_offsets(kafka.bootstrap(), "roundtrip", "in");
  ASSERT_TRUE(ends.ok() && committed.ok());
  EXPECT_EQ(*committed, *ends);
}

// librdkafka's own log through `dataflow exec`: a node whose properties set
// `debug` shows the lines of those contexts (logged at info by our logger,
// component kafka, which exec writes to stderr); without `debug` none appear.
TEST_F(Kafka, DebugPropertyShowsLibrdkafkaLogLines) {
  KafkaCluster kafka({{"in", 2}, {"out", 2}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  constexpr int64_t kRows = 200;
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(kRows, 2)).ok());

  TempDir tmp;
  // `source_debug` and `sink_debug` are property entries ("" for none). Each
  // run has its own group: a bounded run commits its final offsets, and the
  // next run of that group would start there and read nothing.
  auto run = [&](const std::string& group, const std::string& source_debug,
                 const std::string& sink_debug) {
    tmp.write("p.yaml", "name: debug-log\nsources:\n" +
                            json_source(kafka.bootstrap(), group, "    bounded: true\n",
                                        "{heartbeat.interval.ms: 500" + source_debug + "}") +
                            "sinks:\n  - {id: out, type: kafka, input: in, brokers: \"" +
                            kafka.bootstrap() + "\", topic: out, properties: {" + sink_debug +
                            "}}\n");
    return run_process(exec_args("p.yaml"), tmp.str(), 60s);
  };
  // A librdkafka line of `client` ("consumer", "producer") and facility `fac`.
  auto has_line = [](const std::string& log, const std::string& client, const std::string& fac) {
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
      if (line.find(" [kafka] ") != std::string::npos &&
          line.find("#" + client + "-") != std::string::npos &&
          line.find(" " + fac + ": ") != std::string::npos) {
        return true;
      }
    }
    return false;
  };

  ProcessResult debug = run("debug-on", ", debug: \"broker,fetch\"", "debug: msg");
  ASSERT_EQ(debug.exit_code, 0) << debug.err;
  EXPECT_TRUE(has_line(debug.err, "consumer", "FETCH")) << debug.err;
  EXPECT_TRUE(has_line(debug.err, "producer", "PRODUCE")) << debug.err;

  ProcessResult quiet = run("debug-off", "", "");
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_FALSE(has_line(quiet.err, "consumer", "FETCH")) << quiet.err;
  EXPECT_FALSE(has_line(quiet.err, "producer", "PRODUCE")) << quiet.err;
  // Both runs delivered every row.
  EXPECT_EQ(written(kafka, "out"), 2 * kRows);
}

// At-least-once Kafka sink: SIGKILL mid-stream, then a restart resumes from
// the checkpointed offsets. Nothing is lost; what repeats is at most what
// the killed run wrote after its last checkpoint (a restart from the
// beginning would repeat everything it wrote).
TEST_F(Kafka, SigkillAndRestartLosesNothingAtLeastOnce) {
  constexpr int64_t kRows = 150000;
  KafkaCluster kafka({{"in", 8}, {"out", 16}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(kRows, 8), 60s).ok());

  TempDir tmp;
  tmp.write("p.yaml", substitute(R"yaml(
name: kafka-alo
parallelism: 2
checkpoint: {interval: 200ms, delivery: at_least_once}
sources:
)yaml" + json_source(kafka.bootstrap(), "kafka-alo") +
                                     R"yaml(sinks:
  - {id: out, type: kafka, input: in, brokers: "BROKERS", topic: out, key: id, format: json, PACING}
)yaml",
                                 {{"BROKERS", kafka.bootstrap()}, {"PACING", kPacingSinkOptions}}));
  const std::string state = tmp.file("state");
  // A fifth of the input written plus a checkpoint interval: some checkpoint
  // with positions past the start has completed.
  kill_when(exec_args("p.yaml", state), tmp, "run1.log", [&] {
    if (written(kafka, "out") < kRows / 5) return false;
    std::this_thread::sleep_for(400ms);
    return true;
  });
  if (HasFatalFailure()) return;
  const int64_t written_by_killed_run = written(kafka, "out");
  ASSERT_LT(written_by_killed_run, kRows) << "the killed run had written everything";

  ProcessResult r = run_process(exec_args("p.yaml", state), tmp.str(), 90s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(resumed_from(r.err), 0u) << "the restart did not resume from a checkpoint: " << r.err;
  const int64_t repeats = expect_all_ids(consumed_ids(kafka, "out"), kRows);
  EXPECT_LT(repeats, written_by_killed_run) << "the restart did not start at checkpointed offsets";
  std::cerr << "killed run wrote " << written_by_killed_run << "; repeated after resume " << repeats
            << "\n";
}

// Exactly-once file sink: killed twice mid-stream, the committed output of
// the final run is exactly the input, each row once.
TEST_F(Kafka, SigkillAndRestartWritesExactlyTheInputExactlyOnce) {
  constexpr int64_t kRows = 150000;
  KafkaCluster kafka({{"in", 8}, {"pace", 8}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(kRows, 8), 60s).ok());

  TempDir tmp;
  // The Kafka sink `pace` only paces the run (kPacingSinkOptions).
  tmp.write("p.yaml", substitute(R"yaml(
name: kafka-eos
parallelism: 2
checkpoint: {interval: 200ms, delivery: exactly_once}
sources:
)yaml" + json_source(kafka.bootstrap(), "kafka-eos") +
                                     R"yaml(sinks:
  - {id: out, type: file, input: in, path: out, format: json}
  - {id: pace, type: kafka, input: in, brokers: "BROKERS", topic: pace, format: json,
     delivery: at_least_once, PACING}
)yaml",
                                 {{"BROKERS", kafka.bootstrap()}, {"PACING", kPacingSinkOptions}}));
  const std::string state = tmp.file("state");
  const fs::path out = tmp.path() / "out";
  // First kill after the first commit, the second once more is committed.
  kill_when(exec_args("p.yaml", state), tmp, "run1.log",
            [&] { return !committed_rows(out).empty(); });
  if (HasFatalFailure()) return;
  const size_t after_first = committed_rows(out).size();
  kill_when(exec_args("p.yaml", state), tmp, "run2.log",
            [&] { return committed_rows(out).size() > after_first; });
  if (HasFatalFailure()) return;
  EXPECT_GT(resumed_from(read_file(tmp.file("run2.log"))), 0u) << read_file(tmp.file("run2.log"));

  ProcessResult r = run_process(exec_args("p.yaml", state), tmp.str(), 90s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(resumed_from(r.err), 0u) << r.err;
  std::vector<int64_t> ids = ids_of(committed_rows(out));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids.size(), static_cast<size_t>(kRows));
  EXPECT_TRUE(ids == iota_ids(kRows)) << "committed output is not exactly the input";
  for (const auto& name : list_dir(out)) EXPECT_NE(name[0], '.') << "in-progress file " << name;

  // Offsets of the last checkpoint were committed to the group for lag tools.
  auto ends = end_offsets(kafka.bootstrap(), "in");
  auto committed = committed_offsets(kafka.bootstrap(), "kafka-eos", "in");
  ASSERT_TRUE(ends.ok() && committed.ok());
  EXPECT_EQ(*committed, *ends);
}

// Two processes in one consumer group: each gets a non-empty share of the
// partitions, no partition is read by both, and together they read all.
TEST_F(Kafka, TwoProcessesOfOneGroupSplitThePartitions) {
  constexpr int64_t kRows = 4000;
  KafkaCluster kafka({{"in", 4}, {"out-a", 2}, {"out-b", 2}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  TempDir tmp;
  const std::string pipeline = R"yaml(
name: split-OUT
sources:
)yaml" + json_source(kafka.bootstrap(), "split", "    metadata: {partition: part}\n") +
                               R"yaml(sinks:
  - {id: out, type: kafka, input: in, brokers: "BROKERS", topic: OUT, format: json}
)yaml";
  for (const std::string out : {"out-a", "out-b"}) {
    tmp.write(out + ".yaml", substitute(pipeline, {{"BROKERS", kafka.bootstrap()},
                                                   {"OUT", out},
                                                   {"heartbeat.interval.ms: 500",
                                                    "heartbeat.interval.ms: 500, "
                                                    "statistics.interval.ms: 100"}}));
  }
  Child a(exec_args("out-a.yaml"), tmp.str(), tmp.file("a.log"));
  auto assigned = [&](const std::string& log) {
    return read_file(tmp.file(log)).find(": assigned in/") != std::string::npos;
  };
  ASSERT_TRUE(wait_until([&] { return assigned("a.log"); }, 20s)) << read_file(tmp.file("a.log"));
  Child b(exec_args("out-b.yaml"), tmp.str(), tmp.file("b.log"));
  // B's first assignment comes out of the rebalance that moves partitions to it.
  ASSERT_TRUE(wait_until([&] { return assigned("b.log"); }, 30s)) << read_file(tmp.file("b.log"));

  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(kRows, 4)).ok());
  const bool all_out =
      wait_until([&] { return written(kafka, "out-a") + written(kafka, "out-b") >= kRows; }, 30s);
  // The group settled: each process's last word is an assignment of
  // partitions (on a loaded machine a missed heartbeat rebalances it).
  auto holds = [&](const std::string& log) {
    const std::string text = read_file(tmp.file(log));
    const size_t revoked = text.rfind(": revoked");
    const size_t got = text.rfind(": assigned in/");
    return got != std::string::npos && (revoked == std::string::npos || got > revoked);
  };
  if (all_out) wait_until([&] { return holds("a.log") && holds("b.log"); }, 30s);
  // Statistics every 100 ms report the lag, exec samples it every 200 ms:
  // let both see the partitions read to their ends.
  if (all_out) std::this_thread::sleep_for(600ms);
  // Both at once: one stopping alone leaves the group, and the rebalance
  // revokes the other's partitions before it is stopped (its summary then
  // says it held none).
  a.send_signal(SIGTERM);
  b.send_signal(SIGTERM);
  for (Child* c : {&a, &b}) {
    ProcessResult r = c->wait(20s);
    EXPECT_FALSE(r.timed_out);
  }
  ASSERT_TRUE(all_out) << "A: " << read_file(tmp.file("a.log"))
                       << "\nB: " << read_file(tmp.file("b.log"));
  // exec's summary: the consumer lag of the partitions each process held
  // last, read to their ends. A rebalance as they stopped may have left one
  // holding none (it says so), never both.
  const std::regex lag_line(
      "dataflow: consumer lag of in: (0 messages over ([1-4]) partitions|unknown, it held no "
      "partition with a known position when the run ended)\n");
  int held = 0;
  for (const std::string log : {"a.log", "b.log"}) {
    const std::string text = read_file(tmp.file(log));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, lag_line)) << log << ": " << text;
    if (m[2].matched) held += std::stoi(m[2].str());
  }
  EXPECT_GE(held, 2) << "A: " << read_file(tmp.file("a.log"))
                     << "\nB: " << read_file(tmp.file("b.log"));

  std::map<std::string, std::set<int64_t>> partitions;
  std::vector<int64_t> all_ids;
  for (const std::string out : {"out-a", "out-b"}) {
    auto got = consume_all(kafka.bootstrap(), out, 30s);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_FALSE(got->empty()) << out << " got no share of the partitions";
    for (const auto& m : *got) {
      const Json row = Json::parse(*m.value);
      partitions[out].insert(row.at("part").get<int64_t>());
      all_ids.push_back(row.at("id").get<int64_t>());
    }
  }
  std::vector<int64_t> both;
  std::set_intersection(partitions["out-a"].begin(), partitions["out-a"].end(),
                        partitions["out-b"].begin(), partitions["out-b"].end(),
                        std::back_inserter(both));
  EXPECT_TRUE(both.empty()) << "partitions read by both processes: " << both.size();
  EXPECT_EQ(expect_all_ids(all_ids, kRows), 0);
}

// Two members of a group on one partition: the one left without a partition
// says so in its summary rather than printing no lag at all.
TEST_F(Kafka, AMemberHoldingNoPartitionSaysSoInItsSummary) {
  KafkaCluster kafka({{"in", 1}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(10, 1)).ok());
  TempDir tmp;
  tmp.write("p.yaml", "name: idle\nsources:\n" + json_source(kafka.bootstrap(), "idle", "") +
                          "sinks:\n  - {id: out, type: blackhole, input: in}\n");
  auto log_has = [&](const std::string& log, const std::string& text) {
    return read_file(tmp.file(log)).find(text) != std::string::npos;
  };
  Child a(exec_args("p.yaml"), tmp.str(), tmp.file("a.log"));
  ASSERT_TRUE(wait_until([&] { return log_has("a.log", ": assigned in/0"); }, 20s))
      << read_file(tmp.file("a.log"));
  Child b(exec_args("p.yaml"), tmp.str(), tmp.file("b.log"));
  // The rebalance that lets B in leaves one of the two without the partition.
  std::string idle;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const std::string log : {"a.log", "b.log"}) {
          if (log_has(log, ": assigned nothing")) idle = log;
        }
        return !idle.empty();
      },
      30s))
      << "A: " << read_file(tmp.file("a.log")) << "\nB: " << read_file(tmp.file("b.log"));
  const std::string holder = idle == "a.log" ? "b.log" : "a.log";
  Child& idle_run = idle == "a.log" ? a : b;
  Child& holder_run = idle == "a.log" ? b : a;
  // Whether the holder's last word on the partition is "assigned", and how
  // often it said so.
  auto holds = [&] {
    const std::string text = read_file(tmp.file(holder));
    const size_t assigned = text.rfind(": assigned in/0");
    const size_t revoked = text.rfind(": revoked in/0");
    return assigned != std::string::npos && (revoked == std::string::npos || revoked < assigned);
  };
  auto assignments = [&] {
    const std::string text = read_file(tmp.file(holder));
    size_t n = 0;
    for (size_t at = text.find(": assigned in/0"); at != std::string::npos;
         at = text.find(": assigned in/0", at + 1)) {
      ++n;
    }
    return n;
  };
  ASSERT_TRUE(wait_until(holds, 30s)) << holder << ": " << read_file(tmp.file(holder));
  // The idle one stops first. Its leaving rebalances the group, which takes
  // the partition from the holder and gives it back; the holder stops once it
  // has it again, so no rebalance is under way as it ends. (Stopping both at
  // once let that rebalance revoke the holder's partition during its drain.)
  const size_t before = assignments();
  idle_run.send_signal(SIGTERM);
  EXPECT_FALSE(idle_run.wait(20s).timed_out);
  ASSERT_TRUE(wait_until([&] { return assignments() > before && holds(); }, 30s))
      << holder << ": " << read_file(tmp.file(holder));
  holder_run.send_signal(SIGTERM);
  EXPECT_FALSE(holder_run.wait(20s).timed_out);
  EXPECT_TRUE(log_has(idle,
                      "dataflow: consumer lag of in: unknown, it held no partition with a known "
                      "position when the run ended\n"))
      << idle << ": " << read_file(tmp.file(idle));
  // 0 when it read the partition; 10 when B got it and stopped before its
  // first fetch (nothing committed, so it starts at the earliest offset).
  const std::regex held("dataflow: consumer lag of in: (0|10) messages over 1 partitions\n");
  EXPECT_TRUE(std::regex_search(read_file(tmp.file(holder)), held))
      << holder << ": " << read_file(tmp.file(holder));
}

// A sink that cannot write (stdout into a pipe nobody reads) stops the
// source: memory stays far below the input's size however much is waiting in
// Kafka, and everything arrives once the reader reads.
TEST_F(Kafka, BlockedSinkBoundsMemoryAndFlowResumes) {
  // 200 MB waiting in Kafka: 80 partitions of 2500 messages of ~1 KB.
  constexpr int64_t kRows = 200000;
  constexpr int32_t kPartitions = 80;
  KafkaCluster kafka({{"in", kPartitions}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  {
    std::vector<ProduceRecord> records = json_records(kRows, kPartitions);
    for (auto& r : records) {
      Json row = Json::parse(*r.value);
      row["user"] = row["user"].get<std::string>() + std::string(1000, 'x');
      r.value = row.dump();
    }
    ASSERT_TRUE(produce(kafka.bootstrap(), "in", records, 60s).ok());
  }
  TempDir tmp;
  tmp.write("p.yaml", substitute(R"yaml(
name: kafka-slow
sources:
)yaml" + json_source(kafka.bootstrap(), "kafka-slow") +
                                     R"yaml(sinks:
  - {id: out, type: stdout, input: in}
)yaml",
                                 {{"BROKERS", kafka.bootstrap()}}));
  Child child(exec_args("p.yaml"), tmp.str(), tmp.file("err.log"));
  // The source's prefetch (32 MiB of queue + one 8 MiB fetch in flight per
  // broker: 56 MiB on three) plus the process and its bounded channels
  // (~40 MiB); the input is 200 MB.
  constexpr size_t kLimit = 120u << 20;
  size_t peak = 0;
  for (int i = 0; i < 16; ++i) {  // the reader sleeps 4 s
    child.read_for(250ms, 0);
    peak = std::max(peak, child.peak_rss_bytes());
  }
  EXPECT_GT(peak, 0u);
#if defined(DF_SANITIZED)
  // Shadow memory and ASan's quarantine (256 MB) swamp the measure there;
  // the flow below is still checked.
  std::cerr << "sanitizer build: peak RSS " << (peak >> 20) << " MiB not compared with "
            << (kLimit >> 20) << " MiB\n";
#else
  EXPECT_LT(peak, kLimit) << "peak RSS " << (peak >> 20) << " MiB while the sink was blocked";
#endif

  // The reader reads: every message arrives and the run ends.
  std::string output;
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline && running(child.pid()) &&
         std::count(output.begin(), output.end(), '\n') < static_cast<long>(kRows)) {
    child.read_for(200ms, 64u << 20, &output);
  }
  ProcessResult r = child.wait(30s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  output += r.out;
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(expect_all_ids(ids_of(lines), kRows), 0);
  std::cerr << "peak RSS " << (peak >> 20) << " MiB while blocked\n";
}

// One line of the DATAFLOW_KAFKA_TXN_LOG file (connectors/kafka/kafka_sink.h):
// "<node>/<subtask> <slot> init|begin|commit|abort <checkpoint|final>".
struct TxnStep {
  std::string subtask;  // "<node>/<subtask>"
  std::string slot;
  std::string op;
  std::string checkpoint;
};

std::vector<TxnStep> read_txn_log(const std::string& path) {
  std::vector<TxnStep> steps;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    TxnStep s;
    if (fields >> s.subtask >> s.slot >> s.op >> s.checkpoint) steps.push_back(s);
  }
  return steps;
}

// Checks one run's transactional steps: each slot starts with init naming the
// checkpoint the run started from; begin only on an initialized slot with no
// open transaction; commit/abort only on an open one, closing it; commits of
// a subtask name strictly increasing checkpoints, each later than the one
// its begin named. Returns the slots left with an open transaction.
std::set<std::pair<std::string, std::string>> check_txn_run(const std::vector<TxnStep>& steps,
                                                            uint64_t started_from) {
  struct Slot {
    bool initialized = false;
    bool open = false;
    uint64_t begun_after = 0;
  };
  std::map<std::pair<std::string, std::string>, Slot> slots;
  std::map<std::string, uint64_t> last_commit;
  for (size_t i = 0; i < steps.size(); ++i) {
    const TxnStep& s = steps[i];
    SCOPED_TRACE("step " + std::to_string(i) + ": " + s.subtask + " " + s.slot + " " + s.op + " " +
                 s.checkpoint);
    Slot& slot = slots[{s.subtask, s.slot}];
    const bool final = s.checkpoint == "final";
    const uint64_t cp = final ? UINT64_MAX : std::stoull(s.checkpoint);
    if (s.op == "init") {
      EXPECT_FALSE(slot.initialized) << "init twice";
      // The slots a run opens with name the checkpoint it started from; a
      // slot added later, while every other one still waits for its
      // checkpoint to complete (a loaded machine), names the last barrier.
      EXPECT_GE(cp, started_from) << "init names a checkpoint before the run's start";
      slot.initialized = true;
    } else if (s.op == "begin") {
      EXPECT_TRUE(slot.initialized) << "begin before init";
      EXPECT_FALSE(slot.open) << "begin while a transaction is open";
      EXPECT_GE(cp, started_from);
      slot.open = true;
      slot.begun_after = cp;
    } else if (s.op == "commit" || s.op == "abort") {
      EXPECT_TRUE(slot.open) << s.op << " without an open transaction";
      slot.open = false;
      if (s.op == "commit") {
        EXPECT_GT(cp, slot.begun_after) << "commit of a checkpoint before the transaction began";
        EXPECT_GT(cp, last_commit[s.subtask]) << "commits out of checkpoint order";
        last_commit[s.subtask] = cp;
      }
    } else {
      ADD_FAILURE() << "unknown step";
    }
  }
  std::set<std::pair<std::string, std::string>> open;
  for (const auto& [key, slot] : slots) {
    if (slot.open) open.insert(key);
  }
  return open;
}

// The exactly-once Kafka sink around checkpoints and a recovery. The mock
// cluster accepts transactions but does not enforce them (aborted messages
// stay visible, fencing is not checked), so this verifies the sequence of
// init/begin/commit/abort calls the sink logs; exactly-once end to end is
// proven on the file sink above.
TEST_F(Kafka, ExactlyOnceSinkTransactionsFollowCheckpoints) {
  constexpr int64_t kRows = 150000;
  KafkaCluster kafka({{"in", 8}, {"out", 16}});
  ASSERT_TRUE(kafka.ok()) << kafka.error();
  ASSERT_TRUE(produce(kafka.bootstrap(), "in", json_records(kRows, 8), 60s).ok());
  TempDir tmp;
  tmp.write("p.yaml", substitute(R"yaml(
name: kafka-txn
parallelism: 2
checkpoint: {interval: 50ms, delivery: exactly_once}
sources:
)yaml" + json_source(kafka.bootstrap(), "kafka-txn") +
                                     R"yaml(sinks:
  - {id: out, type: kafka, input: in, brokers: "BROKERS", topic: out, key: id, format: json}
)yaml",
                                 {{"BROKERS", kafka.bootstrap()}}));
  const std::string state = tmp.file("state");
  const std::string txn1 = tmp.file("txn1.log");
  const std::string txn2 = tmp.file("txn2.log");

  // Run 1 is killed after its first commit; children inherit the variable.
  setenv("DATAFLOW_KAFKA_TXN_LOG", txn1.c_str(), 1);
  kill_when(exec_args("p.yaml", state), tmp, "run1.log",
            [&] { return read_file(txn1).find(" commit ") != std::string::npos; });
  setenv("DATAFLOW_KAFKA_TXN_LOG", txn2.c_str(), 1);
  ProcessResult r;
  if (!HasFatalFailure()) r = run_process(exec_args("p.yaml", state), tmp.str(), 90s);
  unsetenv("DATAFLOW_KAFKA_TXN_LOG");
  if (HasFatalFailure()) return;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const uint64_t resumed = resumed_from(r.err);
  ASSERT_GT(resumed, 0u) << r.err;

  const std::vector<TxnStep> run1 = read_txn_log(txn1);
  const std::vector<TxnStep> run2 = read_txn_log(txn2);
  // Checkpoints every 50 ms put the first commit well before the end of the
  // input, so the kill lands mid-stream, not after the final checkpoint.
  for (const TxnStep& s : run1) {
    ASSERT_NE(s.checkpoint, "final") << "the killed run committed its final checkpoint first";
  }
  {
    SCOPED_TRACE("killed run");
    check_txn_run(run1, 0);
  }
  {
    SCOPED_TRACE("recovery run");
    // Only the transaction begun ahead for the next epoch may stay open (it
    // holds no rows: close() aborts one that does).
    std::map<std::string, int> open_per_subtask;
    for (const auto& open : check_txn_run(run2, resumed)) {
      EXPECT_EQ(++open_per_subtask[open.first], 1)
          << open.first << " left several transactions open";
    }
  }
  // Recovery fences the killed run: every slot it used is initialized again
  // (which aborts what it left open) before its subtask begins anything.
  std::set<std::pair<std::string, std::string>> used;
  for (const TxnStep& s : run1) used.insert({s.subtask, s.slot});
  std::set<std::pair<std::string, std::string>> fenced;
  std::set<std::string> begun;
  for (const TxnStep& s : run2) {
    if (s.op == "begin") begun.insert(s.subtask);
    if (s.op == "init" && !begun.count(s.subtask)) fenced.insert({s.subtask, s.slot});
  }
  for (const auto& [subtask, slot] : used) {
    EXPECT_TRUE(fenced.count({subtask, slot}))
        << subtask << " slot " << slot << " was not initialized before the recovery began";
  }
  // Every step of both runs, for the record when something above fails.
  if (HasFailure()) std::cerr << "run 1:\n" << read_file(txn1) << "run 2:\n" << read_file(txn2);

  // Aborted transactions stay visible on the mock: at least every row.
  expect_all_ids(consumed_ids(kafka, "out"), kRows);
}

}  // namespace
}  // namespace df::test
