// The Kafka sink against librdkafka's in-process mock cluster (3 brokers on
// 127.0.0.1, a real Kafka protocol peer): options and server defaults, JSON
// and CSV values with keys, at-least-once flush before a checkpoint
// completes, the exactly-once transaction sequence over checkpoints, a crash
// and a resume (recorded through DATAFLOW_KAFKA_TXN_LOG, since the mock does
// not enforce transactions), backpressure on a small producer queue, an
// unknown topic, and brokers that come back. Every wait is bounded.
#include "connectors/kafka/kafka_sink.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/kafka_client.h"
#include "tests/support/operator_harness.h"

// Under ThreadSanitizer, tests/support/kafka_client.cc starts librdkafka's
// threads through pthread_create (see there).

namespace df::connectors::kafka {
namespace {

using runtime::kFinalCheckpoint;
using runtime::NodeRole;
using test::CollectOutput;
using test::FakeContext;
using test::FakeSnapshotContext;
using test::map;
using test::MockCluster;
using test::scalar;
using test::TempDir;
using Json = nlohmann::json;
using Entries = std::vector<ConfigValue::Entry>;

constexpr auto kWait = std::chrono::seconds(10);

SchemaPtr schema() { return make_schema({{"k", TypeId::kInt64}, {"name", TypeId::kString}}); }

// Rows k = from .. to-1, name "n<k % 3>".
BatchPtr rows(int from, int to) {
  BatchBuilder bb(schema());
  for (int k = from; k < to; ++k) {
    bb.append_row({Value::int64(k), Value::string("n" + std::to_string(k % 3))});
  }
  return bb.finish();
}

ConfigValue sink_config(const std::string& brokers, Entries extra = {}) {
  Entries e = {{"id", scalar("out")}, {"type", scalar("kafka")}, {"input", scalar("x")}};
  if (!brokers.empty()) e.push_back({"brokers", scalar(brokers, 4, 13)});
  e.push_back({"topic", scalar("out", 5, 11)});
  for (auto& x : extra) e.push_back(std::move(x));
  return map(std::move(e), 2, 5);
}

// As the plan prepares a sink, with the pipeline's checkpoint.delivery.
runtime::PreparedNodePtr prepare(const ConfigValue& cfg, Diagnostics& diags,
                                 const ConfigValue& defaults = {},
                                 const std::string& pipeline_delivery = "at_least_once") {
  runtime::NodeSpec spec;
  spec.id = "out";
  spec.type = "kafka";
  spec.role = NodeRole::kSink;
  spec.config = &cfg;
  spec.pipeline_name = "orders";
  spec.delivery = pipeline_delivery;
  OptionReader opts(cfg, "sink 'out' (kafka)", diags);
  for (const char* k : {"id", "type", "input"}) opts.allow(k);
  auto node = KafkaSinkFactory(defaults).prepare(spec, {schema()}, opts);
  opts.finish();
  return node;
}

runtime::PreparedNodePtr prepare_ok(const ConfigValue& cfg, const ConfigValue& defaults = {}) {
  Diagnostics diags;
  auto node = prepare(cfg, diags, defaults);
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

// The diagnostics of preparing `cfg` (unknown keys are reported by the
// caller's finish(), so the node itself may still have been made then).
std::string errors_of(const ConfigValue& cfg, const ConfigValue& defaults = {}) {
  Diagnostics diags;
  (void)prepare(cfg, diags, defaults);
  EXPECT_FALSE(diags.empty());
  return diags.to_status().message();
}

// A mock cluster with topic "out" (3 partitions).
struct Kafka {
  Kafka() {
    EXPECT_TRUE(cluster.ok()) << cluster.error();
    EXPECT_TRUE(cluster.create_topic("out", 3).ok());
  }
  std::vector<test::ConsumedMessage> messages() {
    auto got = test::consume_all(cluster.bootstrap(), "out", kWait);
    EXPECT_TRUE(got.ok()) << got.status().message();
    return got.ok() ? *got : std::vector<test::ConsumedMessage>{};
  }
  // The k of every message value (JSON), with multiplicity.
  std::multiset<int64_t> ks() {
    std::multiset<int64_t> out;
    for (const auto& m : messages()) out.insert(Json::parse(*m.value)["k"].get<int64_t>());
    return out;
  }
  MockCluster cluster;
};

std::multiset<int64_t> range(int from, int to) {
  std::multiset<int64_t> s;
  for (int k = from; k < to; ++k) s.insert(k);
  return s;
}

// One attempt of one sink subtask, driven the way the scheduler drives it.
struct SinkRun {
  explicit SinkRun(const runtime::PreparedNode& node, std::optional<std::string> meta = {},
                   bool checkpointing = true)
      : sink(node.make_operator(0, 1)) {
    ctx.set_checkpointing(checkpointing);
    ctx.set_restored_meta(std::move(meta));
  }
  void open() { ASSERT_TRUE(sink->open(ctx).ok()); }
  void write(int from, int to) {
    ASSERT_TRUE(ctx.wait_until([&] { return sink->can_accept(); }, kWait));
    Status s = sink->process(0, rows(from, to), out);
    ASSERT_TRUE(s.ok()) << s.to_string();
  }
  // snapshot(id) and its deferred completion; returns the meta.
  std::string snapshot(uint64_t id) {
    TempDir files;
    FakeSnapshotContext snap(id, files.file("snap"));
    Status s = sink->snapshot(snap);
    EXPECT_TRUE(s.ok()) << s.to_string();
    s = snap.wait(kWait);
    EXPECT_TRUE(s.ok()) << s.to_string();
    return snap.meta();
  }
  void complete(uint64_t id) {
    ASSERT_TRUE(sink->checkpoint_complete(id).ok());
    settle();
  }
  void settle() {
    ASSERT_TRUE(ctx.wait_until([&] { return sink->drained(); }, kWait));
  }

  FakeContext ctx;
  std::unique_ptr<runtime::Operator> sink;
  CollectOutput out;
};

// Points DATAFLOW_KAFKA_TXN_LOG at a temp file for the test's lifetime.
struct TxnLogFile {
  TxnLogFile() { ::setenv(kTxnLogEnv, path.c_str(), 1); }
  ~TxnLogFile() { ::unsetenv(kTxnLogEnv); }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    if (!std::filesystem::exists(path)) return out;
    std::istringstream in(test::read_file(path));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  // Waits (bounded) until the log has `n` lines.
  std::vector<std::string> wait_for(size_t n) const {
    auto deadline = std::chrono::steady_clock::now() + kWait;
    while (lines().size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return lines();
  }
  TempDir dir;
  std::string path = dir.file("txn.log");
};

TEST(KafkaSinkOptions, ReportsBadOptionsWithTheirLocation) {
  EXPECT_NE(errors_of(sink_config("127.0.0.1:9", {{"color", scalar("red", 6, 3)}}))
                .find("pipe.yaml:6:3: unknown option 'color'"),
            std::string::npos);
  ConfigValue no_topic = map({{"id", scalar("out")},
                              {"type", scalar("kafka")},
                              {"input", scalar("x")},
                              {"brokers", scalar("127.0.0.1:9")}},
                             2, 5);
  EXPECT_NE(errors_of(no_topic).find("topic"), std::string::npos) << errors_of(no_topic);
  std::string bad_format = errors_of(sink_config("127.0.0.1:9", {{"format", scalar("xml", 6, 9)}}));
  EXPECT_NE(bad_format.find("xml"), std::string::npos) << bad_format;
  std::string no_brokers = errors_of(sink_config(""));
  EXPECT_NE(no_brokers.find("brokers"), std::string::npos) << no_brokers;
  std::string bad_delivery =
      errors_of(sink_config("127.0.0.1:9", {{"delivery", scalar("twice", 6, 11)}}));
  EXPECT_NE(bad_delivery.find("must be at_least_once or exactly_once, got 'twice'"),
            std::string::npos)
      << bad_delivery;
  std::string bad_key = errors_of(sink_config("127.0.0.1:9", {{"key", scalar("nope + 1", 6, 6)}}));
  EXPECT_NE(bad_key.find("nope"), std::string::npos) << bad_key;
  std::string bad_property = errors_of(sink_config(
      "127.0.0.1:9", {{"properties", map({{"no.such.property", scalar("1", 7, 9)}}, 7, 5)}}));
  EXPECT_NE(bad_property.find("kafka property 'no.such.property'"), std::string::npos)
      << bad_property;
  std::string header = errors_of(sink_config(
      "127.0.0.1:9",
      {{"format", scalar("csv")}, {"csv", map({{"header", scalar("true", 8, 13)}}, 8, 5)}}));
  EXPECT_NE(header.find("pipe.yaml:8:13: sink 'out' (kafka) option 'csv': 'header' does not apply"),
            std::string::npos)
      << header;
}

TEST(KafkaSinkOptions, ServerDefaultsFillWhatTheNodeLeavesUnset) {
  // `sinks.kafka` of the server config: brokers and a producer key.
  ConfigValue defaults =
      map({{"brokers", scalar("127.0.0.1:9")}, {"acks", scalar("bogus", 20, 9)}}, 19, 3);
  // The default's acks applies (and librdkafka refuses it) ...
  std::string e = errors_of(sink_config(""), defaults);
  EXPECT_NE(e.find("kafka property 'acks'"), std::string::npos) << e;
  // ... unless the node sets its own, which wins; brokers come from the defaults.
  auto node = prepare_ok(sink_config("", {{"acks", scalar("1")}}), defaults);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "kafka out (json)");
}

TEST(KafkaSinkOptions, DefaultBrokersAreUsedAndTheNodesOwnWin) {
  Kafka kafka;
  ConfigValue good = map({{"brokers", scalar(kafka.cluster.bootstrap())}});
  // Brokers from the defaults only.
  auto node = prepare_ok(sink_config(""), good);
  ASSERT_TRUE(node);
  SinkRun a(*node, {}, false);
  ASSERT_TRUE(test::run_sink(*a.sink, a.ctx, {rows(0, 5)}).ok());
  // A default pointing nowhere loses against the node's own brokers.
  ConfigValue nowhere = map({{"brokers", scalar("127.0.0.1:1")}});
  auto node2 = prepare_ok(sink_config(kafka.cluster.bootstrap()), nowhere);
  ASSERT_TRUE(node2);
  SinkRun b(*node2, {}, false);
  ASSERT_TRUE(test::run_sink(*b.sink, b.ctx, {rows(5, 10)}).ok());
  EXPECT_EQ(kafka.ks(), range(0, 10));
}

TEST(KafkaSink, WritesJsonValuesAndTextKeys) {
  Kafka kafka;
  auto node = prepare_ok(sink_config(kafka.cluster.bootstrap(), {{"key", scalar("name")}}));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "kafka out (json, key name)");
  SinkRun run(*node, {}, false);
  Status s = test::run_sink(*run.sink, run.ctx, {rows(0, 30), rows(30, 60)});
  ASSERT_TRUE(s.ok()) << s.to_string();
  auto msgs = kafka.messages();
  ASSERT_EQ(msgs.size(), 60u);
  std::map<std::string, std::set<int32_t>> partitions_of_key;
  std::multiset<int64_t> ks;
  for (const auto& m : msgs) {
    Json j = Json::parse(*m.value);
    ks.insert(j["k"].get<int64_t>());
    ASSERT_TRUE(m.key);
    EXPECT_EQ(*m.key, j["name"].get<std::string>());
    partitions_of_key[*m.key].insert(m.partition);
  }
  EXPECT_EQ(ks, range(0, 60));
  // One key, one partition (librdkafka's key hash).
  for (const auto& [key, parts] : partitions_of_key) EXPECT_EQ(parts.size(), 1u) << key;
  EXPECT_EQ(Json::parse(*msgs[0].value).size(), 2u);
}

TEST(KafkaSink, WritesCsvRecordsAndKeysOfAnyType) {
  Kafka kafka;
  auto node =
      prepare_ok(sink_config(kafka.cluster.bootstrap(), {{"format", scalar("csv")},
                                                         {"csv", map({{"delimiter", scalar(";")}})},
                                                         {"key", scalar("k * 10")}}));
  ASSERT_TRUE(node);
  SinkRun run(*node, {}, false);
  ASSERT_TRUE(test::run_sink(*run.sink, run.ctx, {rows(0, 4)}).ok());
  std::set<std::pair<std::string, std::string>> got;
  for (const auto& m : kafka.messages()) got.insert({m.key.value_or("-"), m.value.value_or("-")});
  std::set<std::pair<std::string, std::string>> want = {
      {"0", "0;n0"}, {"10", "1;n1"}, {"20", "2;n2"}, {"30", "3;n0"}};
  EXPECT_EQ(got, want);
}

TEST(KafkaSink, AtLeastOnceCompletesACheckpointOnlyOnceItsMessagesAreAcknowledged) {
  Kafka kafka;
  // A long linger keeps messages in the producer: the completion must wait.
  auto node = prepare_ok(sink_config(kafka.cluster.bootstrap(), {{"linger_ms", scalar("300")}}));
  ASSERT_TRUE(node);
  SinkRun run(*node);
  run.open();
  run.write(0, 100);
  run.write(100, 200);
  std::string meta = run.snapshot(1);  // returns once the deferred completion ran
  EXPECT_EQ(Json::parse(meta), Json::parse(R"({"delivery":"at_least_once"})"));
  // Everything before the barrier is in Kafka now, without waiting further.
  auto end = test::end_offsets(kafka.cluster.bootstrap(), "out");
  ASSERT_TRUE(end.ok());
  int64_t total = 0;
  for (const auto& [p, off] : *end) total += off;
  EXPECT_EQ(total, 200);
  run.write(200, 250);
  run.snapshot(2);
  ASSERT_TRUE(run.sink->finish(run.out).ok());
  run.settle();
  ASSERT_TRUE(run.sink->close().ok());
  EXPECT_EQ(kafka.ks(), range(0, 250));
}

TEST(KafkaSink, ExactlyOnceBeginsCommitsAndFencesInOrder) {
  Kafka kafka;
  TxnLogFile log;
  auto node = prepare_ok(sink_config(
      kafka.cluster.bootstrap(),
      {{"delivery", scalar("exactly_once")}, {"transactional_id_prefix", scalar("txn-test")}}));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "kafka out (json, exactly once)");
  std::string meta2;
  {
    SinkRun run(*node);
    run.open();
    run.write(0, 50);
    std::string meta1 = run.snapshot(1);
    EXPECT_EQ(Json::parse(meta1)["pending"], Json::parse(R"([{"checkpoint":1,"slot":0}])"));
    run.write(50, 80);  // the next epoch, on slot 1, before checkpoint 1 completes
    run.complete(1);
    run.write(80, 100);
    meta2 = run.snapshot(2);
    run.write(100, 120);  // never checkpointed
    run.settle();
    // Crash: no checkpoint_complete(2), no close().
  }
  Json m2 = Json::parse(meta2);
  EXPECT_EQ(m2["slots"], 2);
  EXPECT_EQ(m2["transactional_id_prefix"], "txn-test");
  EXPECT_EQ(m2["pending"], Json::parse(R"([{"checkpoint":2,"slot":1}])"));
  std::vector<std::string> first = {
      "out/0 0 init 0",  "out/0 1 init 0",   "out/0 0 begin 0",
      "out/0 1 begin 1", "out/0 0 commit 1", "out/0 0 begin 1",
  };
  EXPECT_EQ(log.wait_for(first.size()), first);

  // The resumed run fences both slot ids before it begins anew.
  SinkRun resumed(*node, meta2);
  resumed.open();
  resumed.write(1000, 1010);
  std::vector<std::string> all = first;
  for (const char* l : {"out/0 0 init 2", "out/0 1 init 2", "out/0 0 begin 2"}) all.push_back(l);
  EXPECT_EQ(log.wait_for(all.size()), all);
  // End of input: the final snapshot's transaction commits, no new one begins.
  ASSERT_TRUE(resumed.sink->finish(resumed.out).ok());
  resumed.settle();
  std::string final_meta = resumed.snapshot(kFinalCheckpoint);
  EXPECT_EQ(Json::parse(final_meta)["pending"][0]["slot"], 0);
  resumed.complete(kFinalCheckpoint);
  ASSERT_TRUE(resumed.sink->close().ok());
  all.push_back("out/0 0 commit final");
  EXPECT_EQ(log.wait_for(all.size()), all);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(log.lines(), all);  // nothing after the end
  // The mock does not enforce transactions: every produced row is readable.
  EXPECT_EQ(kafka.messages().size(), 130u);
}

TEST(KafkaSink, ExactlyOnceCloseAbortsTheOpenTransaction) {
  Kafka kafka;
  TxnLogFile log;
  auto node =
      prepare_ok(sink_config(kafka.cluster.bootstrap(), {{"delivery", scalar("exactly_once")}}));
  ASSERT_TRUE(node);
  SinkRun run(*node);
  run.open();
  run.write(0, 10);
  run.settle();
  ASSERT_TRUE(run.sink->close().ok());
  std::vector<std::string> want = {"out/0 0 init 0", "out/0 1 init 0", "out/0 0 begin 0",
                                   "out/0 0 abort 0"};
  EXPECT_EQ(log.wait_for(want.size()), want);
}

TEST(KafkaSink, BackpressureWhileTheProducerQueueIsFull) {
  Kafka kafka;
  // librdkafka's queue holds 10 messages; the sink stops accepting above 5
  // unacknowledged ones, and a batch larger than the queue is stashed.
  auto node = prepare_ok(
      sink_config(kafka.cluster.bootstrap(),
                  {{"linger_ms", scalar("50")},
                   {"properties", map({{"queue.buffering.max.messages", scalar("10")}})}}));
  ASSERT_TRUE(node);
  SinkRun run(*node, {}, false);
  run.open();
  ASSERT_TRUE(run.sink->can_accept());
  run.write(0, 25);
  EXPECT_FALSE(run.sink->can_accept());
  EXPECT_FALSE(run.sink->drained());
  for (int b = 1; b < 4; ++b) run.write(b * 25, b * 25 + 25);  // each waits for room
  ASSERT_TRUE(run.sink->finish(run.out).ok());
  run.settle();
  ASSERT_TRUE(run.sink->close().ok());
  EXPECT_GT(run.ctx.wakes(), 0);
  EXPECT_EQ(kafka.ks(), range(0, 100));
}

TEST(KafkaSink, UnknownTopicFailsTheRunWithTheBrokersReason) {
  Kafka kafka;
  rd_kafka_mock_topic_set_error(kafka.cluster.raw(), "out",
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  auto node = prepare_ok(sink_config(kafka.cluster.bootstrap()));
  ASSERT_TRUE(node);
  SinkRun run(*node, {}, false);
  run.open();
  ASSERT_TRUE(
      run.ctx.wait_until([&] { return !run.sink->process(0, rows(0, 1), run.out).ok(); }, kWait));
  Status s = run.sink->close();
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find("kafka sink 'out' subtask 0: topic 'out': the topic does not exist"),
            std::string::npos)
      << s.message();
}

TEST(KafkaSink, KeepsRetryingWhileBrokersAreDown) {
  Kafka kafka;
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(kafka.cluster.set_broker_down(b).ok());
  auto node = prepare_ok(sink_config(kafka.cluster.bootstrap()));
  ASSERT_TRUE(node);
  SinkRun run(*node);
  run.open();
  run.write(0, 20);
  TempDir files;
  FakeSnapshotContext snap(1, files.file("snap"));
  ASSERT_TRUE(run.sink->snapshot(snap).ok());
  // Nothing can be acknowledged: the checkpoint waits instead of failing.
  EXPECT_FALSE(snap.wait(std::chrono::milliseconds(700)).ok());
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(kafka.cluster.set_broker_up(b).ok());
  Status s = snap.wait(std::chrono::seconds(20));
  EXPECT_TRUE(s.ok()) << s.to_string();
  ASSERT_TRUE(run.sink->finish(run.out).ok());
  run.settle();
  ASSERT_TRUE(run.sink->close().ok());
  EXPECT_EQ(kafka.ks(), range(0, 20));
}

}  // namespace
}  // namespace df::connectors::kafka
