// The Kafka source against librdkafka's mock cluster (3 brokers in this
// process, a real Kafka protocol peer): options, formats, positions in
// checkpoints, committed offsets, backpressure, per-partition watermarks,
// bounded ends and errors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connectors/connectors.h"
#include "connectors/kafka/client.h"
#include "connectors/kafka/kafka_source.h"
#include "engine/core/log.h"
#include "engine/runtime/scheduler.h"
#include "tests/support/kafka_client.h"
#include "tests/support/operator_harness.h"

namespace df::connectors::kafka {
namespace {

using namespace std::chrono_literals;
using runtime::NodeRole;
using runtime::SourceProgress;
using test::CollectOutput;
using test::FakeContext;
using test::MockCluster;
using test::ProduceRecord;

#define ASSERT_OK(expr)                                                   \
  do {                                                                    \
    const Status assert_ok_status_ = (expr);                              \
    ASSERT_TRUE(assert_ok_status_.ok()) << assert_ok_status_.to_string(); \
  } while (0)

ConfigValue seq(std::vector<std::string> items) {
  std::vector<ConfigValue> values;
  for (auto& i : items) values.push_back(test::scalar(std::move(i)));
  return ConfigValue::sequence(std::move(values), SourceLocation{"pipe.yaml", 1, 1});
}

std::string unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(n.fetch_add(1));
}

class KafkaSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(kafka_.ok()) << kafka_.error();
    topic_ = unique("in");
    group_ = unique("group");
  }

  // A source node's options: brokers, topic, group, fast session timeouts,
  // plus `extra`.
  ConfigValue config(std::vector<ConfigValue::Entry> extra, bool with_brokers = true) {
    std::vector<ConfigValue::Entry> e = {{"id", test::scalar("in")},
                                         {"type", test::scalar("kafka")},
                                         {"topic", test::scalar(topic_)},
                                         {"group_id", test::scalar(group_)}};
    if (with_brokers) e.emplace_back("brokers", test::scalar(kafka_.bootstrap()));
    bool has_properties = false;
    for (auto& x : extra) {
      if (x.first == "properties") has_properties = true;
      e.push_back(std::move(x));
    }
    if (!has_properties) {
      e.emplace_back("properties", test::map({{"session.timeout.ms", test::scalar("3000")},
                                              {"heartbeat.interval.ms", test::scalar("500")}}));
    }
    return test::map(std::move(e));
  }

  runtime::PreparedNodePtr prepare(const ConfigValue& cfg, Diagnostics& diags,
                                   const KafkaSourceFactory& factory = KafkaSourceFactory()) {
    return test::prepare(factory, NodeRole::kSource, cfg, diags);
  }

  runtime::PreparedNodePtr prepare_ok(const ConfigValue& cfg) {
    Diagnostics diags;
    auto node = prepare(cfg, diags);
    EXPECT_TRUE(diags.empty()) << diags.to_status().message();
    return node;
  }

  static std::string json(int id, const std::string& name) {
    return "{\"id\":" + std::to_string(id) + ",\"name\":\"" + name + "\"}";
  }

  // `n` JSON messages {id: first+i, name: "n<first+i>"} to `partition`.
  void produce_json(int first, int n, int32_t partition = -1, int64_t ts = 0) {
    std::vector<ProduceRecord> recs;
    for (int i = first; i < first + n; ++i) {
      ProduceRecord r;
      r.value = json(i, "n" + std::to_string(i));
      r.partition = partition;
      r.timestamp_ms = ts;
      recs.push_back(std::move(r));
    }
    ASSERT_OK(test::produce(kafka_.bootstrap(), topic_, recs));
  }

  static ConfigValue json_schema() {
    return test::map({{"id", test::scalar("int64")}, {"name", test::scalar("string")}});
  }

  MockCluster kafka_;
  std::string topic_;
  std::string group_;
};

// Drives a source the way the scheduler does (waits until wake_at or a
// wake) until `done()` holds, the source ends, or `timeout` passes.
struct Driver {
  Driver(runtime::SourceOperator& s, FakeContext& c) : src(s), ctx(c) {}
  runtime::SourceOperator& src;
  FakeContext& ctx;
  CollectOutput out;
  bool exhausted = false;
  // What open() passes to the source; `ctx` when null.
  runtime::OperatorContext* open_ctx = nullptr;

  Status open() { return src.open(open_ctx ? *open_ctx : ctx); }

  Status run(const std::function<bool()>& done, std::chrono::milliseconds timeout = 8s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int calls = 0; calls < 1000000; ++calls) {
      if (done()) return Status::OK();
      if (exhausted) return Status::unavailable("the source ended first");
      if (std::chrono::steady_clock::now() >= deadline) {
        return Status::unavailable("the source did not get there in time");
      }
      const int wakes = ctx.wakes();
      auto p = src.produce(out);
      if (!p.ok()) return p.status();
      if (p->state == SourceProgress::State::kExhausted) {
        exhausted = true;
      } else if (p->state == SourceProgress::State::kWait) {
        const auto until = std::min(p->wake_at, deadline);
        ctx.wait_until(
            [&] { return ctx.wakes() != wakes || std::chrono::steady_clock::now() >= until; },
            1ms + std::chrono::duration_cast<std::chrono::milliseconds>(
                      until - std::chrono::steady_clock::now()));
      }
    }
    return Status::unavailable("too many produce() calls");
  }
  Status run_to_end(std::chrono::milliseconds timeout = 8s) {
    return run([&] { return exhausted; }, timeout);
  }
  size_t rows() const {
    size_t n = 0;
    for (const auto& b : out.batches) n += b->active_rows();
    return n;
  }
};

// A FakeContext that also keeps what the source reports for metrics and
// health, in the scheduler's own store (runtime::KafkaClientStatus).
class ReportingContext final : public runtime::OperatorContext {
 public:
  explicit ReportingContext(FakeContext& base) : base_(base) {}
  const std::string& node_id() const override { return base_.node_id(); }
  int subtask() const override { return base_.subtask(); }
  int parallelism() const override { return base_.parallelism(); }
  size_t batch_size() const override { return base_.batch_size(); }
  void wake() override { base_.wake(); }
  void report_data_error(std::string_view message) override { base_.report_data_error(message); }
  uint64_t io_strand() const override { return base_.io_strand(); }
  runtime::IoExecutor& io() override { return base_.io(); }
  bool stop_requested() const override { return base_.stop_requested(); }
  bool checkpointing() const override { return base_.checkpointing(); }
  std::vector<std::pair<int, const std::string*>> restored_node_metas() const override {
    return base_.restored_node_metas();
  }
  const runtime::EventTimeSpec* event_time() const override { return base_.event_time(); }
  void report_consumer_lag(std::string_view topic, int32_t partition,
                           std::optional<int64_t> lag) override {
    status.set_lag(topic, partition, lag);
  }
  void report_brokers(int up, std::string_view problem) override {
    status.set_brokers(subtask(), up, problem);
  }

  // Lag by partition.
  std::map<int32_t, int64_t> lag() const {
    std::map<int32_t, int64_t> out;
    for (const auto& l : status.lag()) out[l.partition] = l.lag;
    return out;
  }

  runtime::KafkaClientStatus status;

 private:
  FakeContext& base_;
};

// Subtask 0 of 1 of a source node, driven with a ReportingContext.
struct ReportingRun {
  explicit ReportingRun(const runtime::PreparedNode& node)
      : src(node.make_source(0, 1)), d(*src, fake) {
    d.open_ctx = &ctx;
  }
  FakeContext fake;
  ReportingContext ctx{fake};
  std::unique_ptr<runtime::SourceOperator> src;
  Driver d;
};

// The `id` column (0) of every row.
std::vector<int64_t> ids(const CollectOutput& out) {
  std::vector<int64_t> v;
  for (const auto& row : test::rows_of(out.batches)) v.push_back(row[0].as_int64());
  return v;
}

// Sends the log to a file of its own while alive, for tests that read log
// lines; then back to stderr.
class LogToFile {
 public:
  explicit LogToFile(LogLevel level)
      : path_((dir_.path() / "log.txt").string()),
        configured_(configure_logging(
            LogSettings{.level = level, .format = LogFormat::kText, .output = path_})) {}
  ~LogToFile() {
    configure_logging(LogSettings{.format = LogFormat::kText, .output = "stderr"}).ignore();
  }
  const Status& status() const { return configured_; }
  const std::string& path() const { return path_; }
  std::string text() const {
    std::ifstream in(path_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  test::TempDir dir_;
  const std::string path_;
  const Status configured_;
};

TEST_F(KafkaSourceTest, ReportsBadOptions) {
  Diagnostics diags;
  auto node = prepare(test::map({{"id", test::scalar("in")},
                                 {"type", test::scalar("kafka")},
                                 {"brokers", test::scalar(kafka_.bootstrap())},
                                 {"format", test::scalar("avro", 4, 3)},
                                 {"start", test::scalar("middle")},
                                 {"max_poll_records", test::scalar("0")},
                                 {"metadata", test::map({{"headers", test::scalar("h", 7, 5)}})},
                                 {"properties", test::map({{"group.id", test::scalar("x")},
                                                           {"no.such.thing", test::scalar("1")}})},
                                 {"colour", test::scalar("blue")}}),
                      diags);
  EXPECT_EQ(node, nullptr);
  std::string all = diags.to_status().message();
  EXPECT_NE(all.find("needs 'topic'"), std::string::npos) << all;
  EXPECT_NE(all.find("pipe.yaml:4:3"), std::string::npos) << all;
  EXPECT_NE(all.find("unknown format 'avro' (expected json, csv or raw)"), std::string::npos)
      << all;
  EXPECT_NE(all.find("expected earliest or latest, got 'middle'"), std::string::npos) << all;
  EXPECT_NE(all.find("max_poll_records"), std::string::npos) << all;
  EXPECT_NE(all.find("metadata 'headers': unknown"), std::string::npos) << all;
  EXPECT_NE(all.find("property 'group.id' is set by the source: use the option 'group_id'"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("kafka property 'no.such.thing'"), std::string::npos) << all;
  EXPECT_NE(all.find("unknown option 'colour'"), std::string::npos) << all;

  Diagnostics more;
  EXPECT_EQ(prepare(config({{"format", test::scalar("raw")}, {"schema", json_schema()}}), more),
            nullptr);
  EXPECT_NE(more.to_status().message().find("format raw has a fixed schema"), std::string::npos)
      << more.to_status().message();

  Diagnostics no_brokers;
  EXPECT_EQ(prepare(config({{"schema", json_schema()}}, /*with_brokers=*/false), no_brokers),
            nullptr);
  EXPECT_NE(no_brokers.to_status().message().find("option 'brokers': required"), std::string::npos)
      << no_brokers.to_status().message();

  Diagnostics clash;
  EXPECT_EQ(prepare(config({{"schema", json_schema()},
                            {"metadata", test::map({{"offset", test::scalar("id")}})}}),
                    clash),
            nullptr);
  EXPECT_NE(clash.to_status().message().find("column 'id' already exists"), std::string::npos);
}

TEST_F(KafkaSourceTest, ServerDefaultsFillWhatTheNodeLeavesUnset) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  produce_json(0, 5, 0);
  KafkaDefaults defaults;
  defaults.source =
      test::map({{"brokers", test::scalar(kafka_.bootstrap())},
                 {"group_id", test::scalar("from-defaults")},
                 {"max_poll_records", test::scalar("2")},
                 {"properties", test::map({{"session.timeout.ms", test::scalar("3000")}})}});
  runtime::NodeRegistry registry;
  register_connectors(registry, defaults);
  const runtime::NodeFactory* factory = registry.find(NodeRole::kSource, "kafka");
  ASSERT_NE(factory, nullptr);

  // No brokers and no group: both from the defaults.
  Diagnostics diags;
  auto node = test::prepare(*factory, NodeRole::kSource,
                            test::map({{"id", test::scalar("in")},
                                       {"type", test::scalar("kafka")},
                                       {"topic", test::scalar(topic_)},
                                       {"bounded", test::scalar("true")},
                                       {"schema", json_schema()}}),
                            diags);
  ASSERT_NE(node, nullptr) << diags.to_status().message();
  EXPECT_NE(node->describe().find("group from-defaults"), std::string::npos) << node->describe();
  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d{*src, ctx};
  ASSERT_OK(d.open());
  ASSERT_OK(d.run_to_end());
  EXPECT_EQ(ids(d.out), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // max_poll_records 2 from the defaults: no batch is larger.
  for (const auto& b : d.out.batches) EXPECT_LE(b->num_rows(), 2u);
  ASSERT_OK(src->close());

  // The node's own option wins.
  Diagnostics own;
  auto mine = test::prepare(*factory, NodeRole::kSource,
                            test::map({{"id", test::scalar("in")},
                                       {"type", test::scalar("kafka")},
                                       {"topic", test::scalar(topic_)},
                                       {"group_id", test::scalar("mine")},
                                       {"schema", json_schema()}}),
                            own);
  ASSERT_NE(mine, nullptr) << own.to_status().message();
  EXPECT_NE(mine->describe().find("group mine"), std::string::npos) << mine->describe();

  // A bad default is reported like a bad option.
  KafkaDefaults bad;
  bad.source = test::map({{"brokers", test::scalar(kafka_.bootstrap())},
                          {"properties", test::map({{"fetch.min.bytes", test::scalar("lots")}})}});
  Diagnostics bad_diags;
  EXPECT_EQ(test::prepare(KafkaSourceFactory(bad.source), NodeRole::kSource,
                          test::map({{"id", test::scalar("in")},
                                     {"type", test::scalar("kafka")},
                                     {"topic", test::scalar(topic_)},
                                     {"schema", json_schema()}}),
                          bad_diags),
            nullptr);
  EXPECT_NE(bad_diags.to_status().message().find("kafka property 'fetch.min.bytes'"),
            std::string::npos)
      << bad_diags.to_status().message();
}

TEST_F(KafkaSourceTest, DecodesJsonWithMetadataAndCountsBadMessages) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  std::vector<ProduceRecord> recs(4);
  recs[0].key = "k0";
  recs[0].value = json(1, "a");
  recs[0].timestamp_ms = 1700000000000;
  recs[1].value = "{not json";
  recs[1].timestamp_ms = 1700000000001;
  recs[2].value = json(3, "c");
  recs[2].timestamp_ms = 1700000000002;
  recs[3].key = "tomb";  // no value
  for (auto& r : recs) r.partition = 0;
  ASSERT_OK(test::produce(kafka_.bootstrap(), topic_, recs));

  auto node = prepare_ok(config({{"schema", json_schema()},
                                 {"bounded", test::scalar("true")},
                                 {"metadata", test::map({{"timestamp", test::scalar("ts")},
                                                         {"partition", test::scalar("p")},
                                                         {"offset", test::scalar("off")},
                                                         {"key", test::scalar("k")},
                                                         {"topic", test::scalar("t")}})}}));
  ASSERT_NE(node, nullptr);
  const Schema& schema = *node->output_schema();
  ASSERT_EQ(schema.size(), 7u);
  EXPECT_EQ(schema.field(2).name, "ts");
  EXPECT_EQ(schema.field(2).type, TypeId::kTimestamp);
  EXPECT_EQ(schema.field(6).type, TypeId::kString);

  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d{*src, ctx};
  ASSERT_OK(d.open());
  ASSERT_OK(d.run_to_end());
  auto rows = test::rows_of(d.out.batches);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0].as_int64(), 1);
  EXPECT_EQ(rows[0][1].as_string(), "a");
  EXPECT_EQ(rows[0][2].as_int64(), 1700000000000);
  EXPECT_EQ(rows[0][3].as_int64(), 0);
  EXPECT_EQ(rows[0][4].as_int64(), 0);
  EXPECT_EQ(rows[0][5].as_string(), "k0");
  EXPECT_EQ(rows[0][6].as_string(), topic_);
  EXPECT_EQ(rows[1][0].as_int64(), 3);
  EXPECT_EQ(rows[1][4].as_int64(), 2);
  EXPECT_TRUE(rows[1][5].is_null());
  auto errors = ctx.data_errors();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].rfind(topic_ + "/0@1: invalid JSON", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1], topic_ + "/0@3: the message has no value");
  ASSERT_OK(src->close());
}

TEST_F(KafkaSourceTest, DecodesCsvRecordsAndRawMessages) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  std::vector<ProduceRecord> recs(3);
  recs[0].value = "1,a";
  recs[1].value = "2,b\n3,\"c,d\"\n";  // two records in one message
  recs[2].value = "x,y";               // id is not a number
  recs[2].key = "key2";
  for (auto& r : recs) r.partition = 0;
  ASSERT_OK(test::produce(kafka_.bootstrap(), topic_, recs));

  {
    auto node = prepare_ok(config({{"format", test::scalar("csv")},
                                   {"schema", json_schema()},
                                   {"bounded", test::scalar("true")}}));
    ASSERT_NE(node, nullptr);
    FakeContext ctx;
    auto src = node->make_source(0, 1);
    Driver d{*src, ctx};
    ASSERT_OK(d.open());
    ASSERT_OK(d.run_to_end());
    auto rows = test::rows_of(d.out.batches);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[2][0].as_int64(), 3);
    EXPECT_EQ(rows[2][1].as_string(), "c,d");
    ASSERT_EQ(ctx.data_errors().size(), 1u);
    EXPECT_EQ(ctx.data_errors()[0].rfind(topic_ + "/0@2: ", 0), 0u) << ctx.data_errors()[0];
    ASSERT_OK(src->close());
  }
  {
    group_ = unique("raw");
    auto node =
        prepare_ok(config({{"format", test::scalar("raw")}, {"bounded", test::scalar("true")}}));
    ASSERT_NE(node, nullptr);
    ASSERT_EQ(node->output_schema()->size(), 5u);
    FakeContext ctx;
    auto src = node->make_source(0, 1);
    Driver d{*src, ctx};
    ASSERT_OK(d.open());
    ASSERT_OK(d.run_to_end());
    auto rows = test::rows_of(d.out.batches);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_TRUE(rows[0][0].is_null());
    EXPECT_EQ(rows[0][1].as_string(), "1,a");
    EXPECT_EQ(rows[2][0].as_string(), "key2");
    EXPECT_EQ(rows[2][2].as_int64(), 0);
    EXPECT_EQ(rows[2][3].as_int64(), 2);
    EXPECT_FALSE(rows[2][4].is_null());
    EXPECT_TRUE(ctx.data_errors().empty());
    ASSERT_OK(src->close());
  }
}

// {partition: offset} of a snapshot meta's partitions of `topic`.
std::map<int32_t, int64_t> offsets_in(const std::string& meta, const std::string& topic) {
  std::map<int32_t, int64_t> out;
  const nlohmann::json j = nlohmann::json::parse(meta);
  for (const auto& e : j.at("partitions")) {
    if (e.at("topic").get<std::string>() == topic)
      out[e.at("partition").get<int32_t>()] = e.at("offset");
  }
  return out;
}

TEST_F(KafkaSourceTest, ResumesExactlyAfterTheCheckpointAndCommitsWhenComplete) {
  ASSERT_OK(kafka_.create_topic(topic_, 3));
  for (int32_t p = 0; p < 3; ++p) produce_json(p * 100, 30, p);
  auto first =
      prepare_ok(config({{"schema", json_schema()}, {"max_poll_records", test::scalar("10")}}));
  ASSERT_NE(first, nullptr);
  FakeContext ctx_a;
  ctx_a.set_checkpointing(true);
  auto a = first->make_source(0, 1);
  Driver da(*a, ctx_a);
  ASSERT_OK(da.open());
  // Each partition has emitted rows (a partition whose position is not known
  // yet is left out of a snapshot and resumes from the group).
  auto partitions_seen = [&] {
    std::set<int64_t> seen;
    for (int64_t id : ids(da.out)) seen.insert(id / 100);
    return seen.size();
  };
  ASSERT_OK(da.run([&] { return da.rows() >= 25 && partitions_seen() == 3; }));
  const std::vector<int64_t> before_1 = ids(da.out);
  test::TempDir dir;
  test::FakeSnapshotContext snap1(1, (dir.path() / "1").string());
  ASSERT_OK(a->snapshot(snap1));
  ASSERT_TRUE(da.run([&] { return da.rows() >= 50; }).ok());
  test::FakeSnapshotContext snap2(2, (dir.path() / "2").string());
  ASSERT_OK(a->snapshot(snap2));
  // Positions cover exactly what was emitted.
  int64_t emitted_1 = 0;
  for (const auto& [p, off] : offsets_in(snap1.meta(), topic_)) emitted_1 += off;
  EXPECT_EQ(emitted_1, static_cast<int64_t>(before_1.size())) << snap1.meta();

  // Checkpoint 2 completes: its offsets are committed to the group.
  ASSERT_OK(a->checkpoint_complete(2));
  const auto want = offsets_in(snap2.meta(), topic_);
  std::map<int32_t, int64_t> committed;
  for (int i = 0; i < 100 && committed != want; ++i) {
    // Commit results are served by the consumer's queue, as the scheduler would.
    ASSERT_TRUE(da.run([] { return false; }, 50ms).code() == StatusCode::kUnavailable);
    auto c = test::committed_offsets(kafka_.bootstrap(), group_, topic_);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    committed = *c;
  }
  EXPECT_EQ(committed, want);
  ASSERT_OK(a->close());

  // A new run restored from checkpoint 1 starts there, not at the group's
  // (later) committed offsets, and reads on to the end.
  auto second = prepare_ok(config({{"schema", json_schema()}, {"bounded", test::scalar("true")}}));
  FakeContext ctx_b;
  ctx_b.set_restored_node_metas({{0, snap1.meta()}});
  auto b = second->make_source(0, 1);
  Driver db(*b, ctx_b);
  ASSERT_OK(db.open());
  ASSERT_OK(db.run_to_end());
  std::vector<int64_t> all = before_1;
  for (int64_t id : ids(db.out)) all.push_back(id);
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected;
  for (int p = 0; p < 3; ++p) {
    for (int i = 0; i < 30; ++i) expected.push_back(p * 100 + i);
  }
  EXPECT_EQ(all, expected);
  ASSERT_OK(b->close());
}

TEST_F(KafkaSourceTest, BackpressurePausesAndResumesThePartitions) {
  ASSERT_OK(kafka_.create_topic(topic_, 2));
  auto node = prepare_ok(config({{"schema", json_schema()}}));
  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  produce_json(0, 4);
  ASSERT_TRUE(d.run([&] { return d.rows() == 4; }).ok());

  src->on_backpressure(true);
  produce_json(4, 6);
  // Paused: nothing arrives however long the source is polled.
  EXPECT_EQ(d.run([&] { return d.rows() > 4; }, 1500ms).code(), StatusCode::kUnavailable);
  EXPECT_EQ(d.rows(), 4u);

  src->on_backpressure(false);
  ASSERT_TRUE(d.run([&] { return d.rows() == 10; }).ok());
  std::vector<int64_t> got = ids(d.out);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  ASSERT_OK(src->close());
}

// The source's own prefetch budget (queued.min.messages: 200 here): it
// pauses every partition once it holds 200 messages and resumes them below
// 50, waking one partition's leader per broker (not every partition), and
// still emits every message exactly once, in offset order per partition.
TEST_F(KafkaSourceTest, ASmallPrefetchBudgetPausesAndResumesAndLosesNothing) {
  constexpr int32_t kPartitions = 6;
  constexpr int kPerPartition = 1500;
  ASSERT_OK(kafka_.create_topic(topic_, kPartitions));
  for (int32_t p = 0; p < kPartitions; ++p) produce_json(p * 10000, kPerPartition, p);
  auto node = prepare_ok(config(
      {{"schema", json_schema()},
       {"bounded", test::scalar("true")},
       {"max_poll_records", test::scalar("40")},
       {"metadata", test::map({{"partition", test::scalar("p")}, {"offset", test::scalar("o")}})},
       {"properties", test::map({{"queued.min.messages", test::scalar("200")}})}}));
  ASSERT_NE(node, nullptr);

  // The budget's pauses are logged at debug: this test reads them.
  LogToFile log(LogLevel::kDebug);
  ASSERT_OK(log.status());

  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  ASSERT_OK(d.run_to_end(60s));
  ASSERT_OK(src->close());

  // Every message once, in offset order per partition.
  std::map<int64_t, std::vector<int64_t>> offsets;  // partition -> offsets in emitted order
  for (const auto& row : test::rows_of(d.out.batches)) {
    const int64_t partition = row[2].as_int64();
    const int64_t offset = row[3].as_int64();
    EXPECT_EQ(row[0].as_int64(), partition * 10000 + offset);
    offsets[partition].push_back(offset);
  }
  ASSERT_EQ(offsets.size(), static_cast<size_t>(kPartitions));
  for (const auto& [partition, got] : offsets) {
    std::vector<int64_t> expected(kPerPartition);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(got, expected) << "partition " << partition;
  }

  // The pauses and resumes, each pause holding at most the budget.
  std::ifstream in(log.path());
  int pauses = 0;
  int resumes = 0;
  std::string wakes;
  std::string summary;
  for (std::string line; std::getline(in, line);) {
    const size_t budget = line.find("partitions (prefetch budget: ");
    if (budget != std::string::npos) {
      ++pauses;
      EXPECT_LE(std::stoi(line.substr(budget + 29)), 200) << line;
    }
    // (Fewer than 6 once some partitions are read to their ends.)
    if (line.find(": resumed ") != std::string::npos) ++resumes;
    if (line.find("a resume wakes") != std::string::npos) wakes = line;
    if (line.find("paused the partitions") != std::string::npos) summary = line;
  }
  // 9000 messages, 150 or more per cycle.
  EXPECT_GE(pauses, 2);
  EXPECT_GE(resumes, pauses - 1);
  EXPECT_LE(pauses, kPartitions * kPerPartition / 150 + 1);
  EXPECT_NE(summary.find("(200 messages, "), std::string::npos) << summary;
  EXPECT_NE(summary.find(" " + std::to_string(pauses) + " times"), std::string::npos) << summary;
  // One partition per leader broker, not every partition: the mock's 3
  // brokers lead the 6 partitions (the mock picks the leaders).
  const size_t at = wakes.find("a resume wakes ");
  ASSERT_NE(at, std::string::npos) << "no wake line";
  const int brokers = std::stoi(wakes.substr(at + 15));
  std::set<std::string> named;
  for (size_t b = wakes.find("(broker "); b != std::string::npos;
       b = wakes.find("(broker ", b + 1)) {
    named.insert(wakes.substr(b, wakes.find(')', b) - b));
  }
  EXPECT_GE(brokers, 1) << wakes;
  EXPECT_LE(brokers, 3) << wakes;
  EXPECT_EQ(named.size(), static_cast<size_t>(brokers)) << wakes;
}

TEST_F(KafkaSourceTest, WatermarkIsTheMinimumOverPartitions) {
  ASSERT_OK(kafka_.create_topic(topic_, 2));
  auto node = prepare_ok(config(
      {{"schema", json_schema()}, {"metadata", test::map({{"timestamp", test::scalar("ts")}})}}));
  ASSERT_NE(node, nullptr);
  FakeContext ctx;
  ctx.set_event_time(runtime::EventTimeSpec{2, Millis(0), std::nullopt});
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(src->emits_watermarks());
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  produce_json(0, 1, 0, 1000);
  produce_json(1, 1, 0, 1010);
  ASSERT_TRUE(d.run([&] { return d.rows() == 2; }).ok());
  // Partition 1 has no rows yet: it holds the watermark back.
  EXPECT_TRUE(d.out.watermarks.empty());
  produce_json(2, 1, 1, 5000);
  ASSERT_TRUE(d.run([&] { return d.rows() == 3; }).ok());
  ASSERT_EQ(d.out.watermarks.size(), 1u);
  EXPECT_EQ(d.out.watermarks.back().timestamp_ms, 1009);
  produce_json(3, 1, 0, 7000);
  ASSERT_TRUE(d.run([&] { return d.rows() == 4; }).ok());
  EXPECT_EQ(d.out.watermarks.back().timestamp_ms, 4999);

  // A checkpoint keeps each partition's highest event time.
  test::TempDir dir;
  test::FakeSnapshotContext snap(1, (dir.path() / "1").string());
  ASSERT_OK(src->snapshot(snap));
  auto meta = nlohmann::json::parse(snap.meta());
  std::map<int32_t, int64_t> highest;
  for (const auto& e : meta.at("partitions")) highest[e.at("partition")] = e.at("max_event_time");
  EXPECT_EQ(highest, (std::map<int32_t, int64_t>{{0, 7000}, {1, 5000}}));
  ASSERT_OK(src->close());
}

TEST_F(KafkaSourceTest, AnIdlePartitionStopsHoldingTheWatermark) {
  ASSERT_OK(kafka_.create_topic(topic_, 2));
  auto node = prepare_ok(config(
      {{"schema", json_schema()}, {"metadata", test::map({{"timestamp", test::scalar("ts")}})}}));
  FakeContext ctx;
  ctx.set_event_time(runtime::EventTimeSpec{2, Millis(10), Millis(300)});
  auto src = node->make_source(0, 1);
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  produce_json(0, 1, 0, 2000);
  ASSERT_TRUE(d.run([&] { return !d.out.watermarks.empty(); }).ok());
  EXPECT_EQ(d.out.watermarks.back().timestamp_ms, 2000 - 10 - 1);
  ASSERT_OK(src->close());
}

// bounded: no group membership; subtask i statically takes the partitions p
// with p % parallelism == i of every topic and ends on its own.
TEST_F(KafkaSourceTest, BoundedSubtasksSplitThePartitionsStatically) {
  const std::string other = unique("other");
  ASSERT_OK(kafka_.create_topic(topic_, 2));
  ASSERT_OK(kafka_.create_topic(other, 2));
  std::vector<int64_t> expected;
  for (int32_t p = 0; p < 2; ++p) {
    produce_json(p * 100, 20, p);
    std::vector<ProduceRecord> recs;
    for (int i = 0; i < 20; ++i) {
      ProduceRecord r;
      r.value = json(1000 + p * 100 + i, "o");
      r.partition = p;
      recs.push_back(std::move(r));
      expected.push_back(p * 100 + i);
      expected.push_back(1000 + p * 100 + i);
    }
    ASSERT_OK(test::produce(kafka_.bootstrap(), other, recs));
  }
  std::sort(expected.begin(), expected.end());
  auto cfg = config({{"schema", json_schema()},
                     {"bounded", test::scalar("true")},
                     {"max_poll_records", test::scalar("5")}});
  std::vector<ConfigValue::Entry> entries = cfg.entries();
  for (auto& [k, v] : entries) {
    if (k == "topic") v = seq({topic_, other});
  }
  auto node = prepare_ok(test::map(std::move(entries)));
  ASSERT_NE(node, nullptr);
  FakeContext ctx0(0, 2);
  FakeContext ctx1(1, 2);
  auto s0 = node->make_source(0, 2);
  auto s1 = node->make_source(1, 2);
  Driver d0(*s0, ctx0);
  Driver d1(*s1, ctx1);
  ASSERT_OK(d0.open());
  ASSERT_OK(d1.open());
  // One thread drives both, a slice at a time, until both ended.
  const auto deadline = std::chrono::steady_clock::now() + 9s;
  while (!(d0.exhausted && d1.exhausted) && std::chrono::steady_clock::now() < deadline) {
    for (Driver* d : {&d0, &d1}) {
      if (d->exhausted) continue;
      Status s = d->run([] { return false; }, 20ms);
      ASSERT_TRUE(s.code() == StatusCode::kUnavailable) << s.to_string();
    }
  }
  ASSERT_TRUE(d0.exhausted && d1.exhausted);
  std::vector<int64_t> got = ids(d0.out);
  for (int64_t id : ids(d1.out)) got.push_back(id);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expected);  // every message once
  // Subtask 0 read partition 0 of both topics, subtask 1 partition 1.
  for (int64_t id : ids(d0.out)) EXPECT_EQ(id % 1000 / 100, 0) << id;
  for (int64_t id : ids(d1.out)) EXPECT_EQ(id % 1000 / 100, 1) << id;
  ASSERT_OK(s0->close());
  ASSERT_OK(s1->close());
}

// bounded: a stall longer than the session / poll interval takes nothing
// away (no group membership), so the run still emits every message.
TEST_F(KafkaSourceTest, BoundedSourceLosesNothingAcrossASessionTimeout) {
  ASSERT_OK(kafka_.create_topic(topic_, 2));
  for (int32_t p = 0; p < 2; ++p) produce_json(p * 100, 20, p);
  auto node = prepare_ok(
      config({{"schema", json_schema()},
              {"bounded", test::scalar("true")},
              {"max_poll_records", test::scalar("5")},
              {"properties", test::map({{"session.timeout.ms", test::scalar("1000")},
                                        {"heartbeat.interval.ms", test::scalar("300")},
                                        {"max.poll.interval.ms", test::scalar("1000")}})}}));
  ASSERT_NE(node, nullptr);
  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  ASSERT_OK(d.run([&] { return d.rows() >= 10; }));
  std::this_thread::sleep_for(2500ms);  // not polled for 2.5 session timeouts
  ASSERT_OK(d.run_to_end());
  std::vector<int64_t> got = ids(d.out);
  std::sort(got.begin(), got.end());
  std::vector<int64_t> expected;
  for (int p = 0; p < 2; ++p) {
    for (int i = 0; i < 20; ++i) expected.push_back(p * 100 + i);
  }
  EXPECT_EQ(got, expected);
  ASSERT_OK(src->close());
}

// Two bounded subtasks (not group members) commit their final checkpoint's
// offsets for the group: every partition's committed offset is its end.
TEST_F(KafkaSourceTest, CommitsOfBoundedSubtasksAllLand) {
  ASSERT_OK(kafka_.create_topic(topic_, 4));
  for (int32_t p = 0; p < 4; ++p) produce_json(p * 100, 10 + p, p);
  auto node = prepare_ok(config({{"schema", json_schema()}, {"bounded", test::scalar("true")}}));
  ASSERT_NE(node, nullptr);
  FakeContext ctx0(0, 2);
  FakeContext ctx1(1, 2);
  ctx0.set_checkpointing(true);
  ctx1.set_checkpointing(true);
  auto s0 = node->make_source(0, 2);
  auto s1 = node->make_source(1, 2);
  Driver d0(*s0, ctx0);
  Driver d1(*s1, ctx1);
  ASSERT_OK(d0.open());
  ASSERT_OK(d1.open());
  // Subtask 0 ends first, and alone: it need not wait for subtask 1.
  ASSERT_OK(d0.run_to_end());
  ASSERT_OK(d1.run_to_end());
  EXPECT_EQ(d0.rows() + d1.rows(), 10u + 11u + 12u + 13u);
  test::TempDir dir;
  test::FakeSnapshotContext snap0(runtime::kFinalCheckpoint, (dir.path() / "0").string());
  test::FakeSnapshotContext snap1(runtime::kFinalCheckpoint, (dir.path() / "1").string());
  ASSERT_OK(s0->snapshot(snap0));
  ASSERT_OK(s1->snapshot(snap1));
  ASSERT_OK(s0->checkpoint_complete(runtime::kFinalCheckpoint));
  ASSERT_OK(s1->checkpoint_complete(runtime::kFinalCheckpoint));
  // close() lets the asynchronous commits finish before the consumer goes.
  ASSERT_OK(s0->close());
  ASSERT_OK(s1->close());
  auto ends = test::end_offsets(kafka_.bootstrap(), topic_);
  ASSERT_TRUE(ends.ok()) << ends.status().to_string();
  EXPECT_EQ(*ends, (std::map<int32_t, int64_t>{{0, 10}, {1, 11}, {2, 12}, {3, 13}}));
  std::map<int32_t, int64_t> committed;
  for (int i = 0; i < 100 && committed != *ends; ++i) {
    if (i > 0) std::this_thread::sleep_for(50ms);
    auto c = test::committed_offsets(kafka_.bootstrap(), group_, topic_);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    committed = *c;
  }
  EXPECT_EQ(committed, *ends);
}

TEST_F(KafkaSourceTest, SubtasksOfAGroupReadDisjointPartitions) {
  ASSERT_OK(kafka_.create_topic(topic_, 4));
  auto node = prepare_ok(config({{"schema", json_schema()}}));
  FakeContext ctx0(0, 2);
  FakeContext ctx1(1, 2);
  auto s0 = node->make_source(0, 2);
  auto s1 = node->make_source(1, 2);
  Driver d0(*s0, ctx0);
  Driver d1(*s1, ctx1);
  ASSERT_OK(d0.open());
  ASSERT_OK(d1.open());
  test::TempDir dir;
  // Until the group settled: each holds two partitions (empty ones are known
  // from their end events).
  auto held = [&](runtime::SourceOperator& s) {
    test::FakeSnapshotContext snap(1, (dir.path() / "x").string());
    EXPECT_TRUE(s.snapshot(snap).ok());
    return offsets_in(snap.meta(), topic_);
  };
  const auto deadline = std::chrono::steady_clock::now() + 9s;
  while (std::chrono::steady_clock::now() < deadline &&
         !(held(*s0).size() == 2 && held(*s1).size() == 2)) {
    for (Driver* d : {&d0, &d1})
      ASSERT_EQ(d->run([] { return false; }, 20ms).code(), StatusCode::kUnavailable);
  }
  auto p0 = held(*s0);
  auto p1 = held(*s1);
  ASSERT_EQ(p0.size(), 2u);
  ASSERT_EQ(p1.size(), 2u);
  for (const auto& [p, off] : p0) EXPECT_EQ(p1.count(p), 0u);

  for (int32_t p = 0; p < 4; ++p) produce_json(p * 10, 5, p);
  // Its own bound: the group may have taken most of the first one to settle.
  const auto read_deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < read_deadline && d0.rows() + d1.rows() < 20) {
    for (Driver* d : {&d0, &d1})
      ASSERT_EQ(d->run([] { return false; }, 20ms).code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(d0.rows(), 10u);
  EXPECT_EQ(d1.rows(), 10u);
  for (int64_t id : ids(d0.out)) EXPECT_EQ(p0.count(static_cast<int32_t>(id / 10)), 1u) << id;
  ASSERT_OK(s0->close());
  ASSERT_OK(s1->close());
}

TEST_F(KafkaSourceTest, AnAuthorizationFailureFailsWithTheBrokersReason) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  // The mock creates unknown topics on request, so a missing topic cannot be
  // staged; a broker refusing the topic can.
  kafka_.push_request_errors(3 /* Metadata */, 50, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  kafka_.push_request_errors(1 /* Fetch */, 50, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  auto node = prepare_ok(config(
      {{"schema", json_schema()},
       {"properties", test::map({{"topic.metadata.propagation.max.ms", test::scalar("500")}})}}));
  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  produce_json(0, 1, 0);
  Status s = d.run([] { return false; });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("kafka source 'in'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("uthorization"), std::string::npos) << s.message();
  ASSERT_OK(src->close());
}

TEST_F(KafkaSourceTest, KeepsRetryingWhileTheBrokersAreDown) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  auto node = prepare_ok(
      config({{"schema", json_schema()},
              {"properties", test::map({{"session.timeout.ms", test::scalar("6000")},
                                        {"reconnect.backoff.max.ms", test::scalar("200")}})}}));
  FakeContext ctx;
  auto src = node->make_source(0, 1);
  Driver d(*src, ctx);
  ASSERT_OK(d.open());
  produce_json(0, 3, 0);
  ASSERT_TRUE(d.run([&] { return d.rows() == 3; }).ok());
  ASSERT_OK(kafka_.set_broker_down(-1));
  // No error while they are down: the client retries.
  EXPECT_EQ(d.run([] { return false; }, 1500ms).code(), StatusCode::kUnavailable);
  ASSERT_OK(kafka_.set_broker_up(-1));
  produce_json(3, 3, 0);
  ASSERT_TRUE(d.run([&] { return d.rows() == 6; }).ok());
  EXPECT_EQ(ids(d.out), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  ASSERT_OK(src->close());
}

TEST_F(KafkaSourceTest, ReportsTheLagOfEachPartitionItHolds) {
  ASSERT_OK(kafka_.create_topic(topic_, 2));
  produce_json(0, 30, 0);
  produce_json(100, 20, 1);
  const std::map<int32_t, int64_t> produced = {{0, 30}, {1, 20}};
  // A budget of 4 messages: what the source drained before the pause (and
  // still emits) cannot be the whole input.
  auto node =
      prepare_ok(config({{"schema", json_schema()},
                         {"max_poll_records", test::scalar("5")},
                         {"properties", test::map({{"session.timeout.ms", test::scalar("3000")},
                                                   {"heartbeat.interval.ms", test::scalar("500")},
                                                   {"statistics.interval.ms", test::scalar("100")},
                                                   {"queued.min.messages", test::scalar("4")}})}}));
  ReportingRun run(*node);
  ReportingContext& ctx = run.ctx;
  Driver& d = run.d;
  runtime::SourceOperator* src = run.src.get();
  ASSERT_OK(d.open());
  auto emitted = [&] {
    std::map<int32_t, int64_t> n;
    for (int64_t id : ids(d.out)) ++n[static_cast<int32_t>(id / 100)];
    return n;
  };
  // Part of each partition, then no more (what it drained already, at most
  // the budget): paused as under backpressure. Joining the group takes the
  // mock's 3 s rebalance delay and, on a loaded machine, longer.
  ASSERT_OK(d.run([&] { return d.rows() >= 10 && emitted().size() == 2; }, 20s));
  src->on_backpressure(true);
  std::map<int32_t, int64_t> want;
  auto lag_is_the_rest = [&] {
    want.clear();
    for (const auto& [p, n] : emitted()) want[p] = produced.at(p) - n;
    return ctx.lag() == want;
  };
  EXPECT_TRUE(d.run(lag_is_the_rest, 15s).ok())
      << "want " << testing::PrintToString(want) << ", reported "
      << testing::PrintToString(ctx.lag());
  EXPECT_LT(d.rows(), 50u);
  EXPECT_GT(want[0] + want[1], 0);
  EXPECT_GE(ctx.status.brokers().up, 1);
  EXPECT_EQ(ctx.status.brokers().problem, "");

  // Read to the end: no lag left. The budget of 4 pauses and resumes the
  // partitions a few times on the way, each a fetch round trip: slow on a
  // loaded machine.
  src->on_backpressure(false);
  const std::map<int32_t, int64_t> none = {{0, 0}, {1, 0}};
  EXPECT_TRUE(d.run([&] { return d.rows() == 50 && ctx.lag() == none; }, 15s).ok())
      << d.rows() << " rows, lag " << testing::PrintToString(ctx.lag());
  // Closed: the final lag stays (exec's summary prints it), the client leaves.
  ASSERT_OK(src->close());
  EXPECT_EQ(ctx.lag(), none);
  EXPECT_EQ(ctx.status.brokers().up, -1);
}

// A partition assigned while the source is paused has no fetched position:
// its final lag is looked up at close, from the group's committed offset to
// the partition's end (10 here; from the earliest offset it would be 40).
TEST_F(KafkaSourceTest, TheFinalLagOfAPartitionNotFetchedYetStartsAtTheCommittedOffset) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  produce_json(0, 30, 0);
  auto node = prepare_ok(config({{"schema", json_schema()}}));
  {
    // Without checkpoints a closing source commits what it emitted.
    FakeContext ctx;
    auto first = node->make_source(0, 1);
    Driver d(*first, ctx);
    ASSERT_OK(d.open());
    ASSERT_OK(d.run([&] { return d.rows() == 30; }, 20s));
    ASSERT_OK(first->close());
  }
  const std::map<int32_t, int64_t> thirty = {{0, 30}};
  std::map<int32_t, int64_t> committed;
  for (int i = 0; i < 100 && committed != thirty; ++i) {
    if (i > 0) std::this_thread::sleep_for(100ms);
    auto c = test::committed_offsets(kafka_.bootstrap(), group_, topic_);
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    committed = *c;
  }
  ASSERT_EQ(committed, thirty);
  produce_json(30, 10, 0);

  LogToFile log(LogLevel::kInfo);
  ASSERT_OK(log.status());
  ReportingRun run(*node);
  ReportingContext& ctx = run.ctx;
  Driver& d = run.d;
  runtime::SourceOperator* second = run.src.get();
  ASSERT_OK(d.open());
  second->on_backpressure(true);
  auto assigned = [&] {
    return log.text().find(": assigned " + topic_ + "/0") != std::string::npos;
  };
  ASSERT_OK(d.run(assigned, 20s));
  ASSERT_OK(second->close());
  // (A fetch that raced the pause would have emitted rows, all 10 of them.)
  EXPECT_EQ(ctx.lag(), (std::map<int32_t, int64_t>{{0, 10 - static_cast<int64_t>(d.rows())}}));
}

TEST_F(KafkaSourceTest, ReportsBrokersDownWithTheReasonUntilTheyAreBack) {
  ASSERT_OK(kafka_.create_topic(topic_, 1));
  auto node = prepare_ok(
      config({{"schema", json_schema()},
              {"properties", test::map({{"session.timeout.ms", test::scalar("6000")},
                                        {"reconnect.backoff.max.ms", test::scalar("200")},
                                        {"statistics.interval.ms", test::scalar("100")}})}}));
  ReportingRun run(*node);
  ReportingContext& ctx = run.ctx;
  Driver& d = run.d;
  runtime::SourceOperator* src = run.src.get();
  ASSERT_OK(d.open());
  produce_json(0, 3, 0);
  ASSERT_OK(d.run([&] { return d.rows() == 3 && ctx.status.brokers().up >= 1; }));
  EXPECT_EQ(ctx.status.brokers().problem, "");

  ASSERT_OK(kafka_.set_broker_down(-1));
  // librdkafka's reason: "3/3 brokers are down" or the last connection error. Until its error
  // callback arrives, a statistics callback may already report "no broker is connected", so
  // the wait is for the reason itself.
  const auto has_reason = [](const std::string& why) {
    return why.find("down") != std::string::npos || why.find("Connect") != std::string::npos ||
           why.find("Disconnected") != std::string::npos;
  };
  const Status down = d.run(
      [&] {
        const auto b = ctx.status.brokers();
        return b.up == 0 && has_reason(b.problem);
      },
      10s);
  ASSERT_TRUE(down.ok()) << down.to_string() << "; last problem: " << ctx.status.brokers().problem;

  ASSERT_OK(kafka_.set_broker_up(-1));
  ASSERT_OK(d.run(
      [&] {
        const auto b = ctx.status.brokers();
        return b.up >= 1 && b.problem.empty();
      },
      10s));
  produce_json(3, 3, 0);
  ASSERT_OK(d.run([&] { return d.rows() == 6; }));
  EXPECT_EQ(ids(d.out), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  ASSERT_OK(src->close());
}

}  // namespace
}  // namespace df::connectors::kafka
