// The generator source: counts, determinism, parallel slices, rate limiting.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "connectors/generator_source.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::NodeRole;
using runtime::SourceProgress;
using test::CollectOutput;
using test::FakeContext;
using test::map;
using test::rows_of;
using test::scalar;

ConfigValue generator(std::vector<ConfigValue::Entry> extra,
                      std::vector<ConfigValue::Entry> fields = {
                          {"id", scalar("i")},
                          {"price", scalar("rand() * 100")},
                          {"name", scalar("concat('u', cast(i % 10 as string))")}}) {
  std::vector<ConfigValue::Entry> e = {{"id", scalar("gen")}, {"type", scalar("generator")}};
  for (auto& x : extra) e.push_back(std::move(x));
  e.push_back({"fields", map(std::move(fields), 5, 13)});
  return map(std::move(e), 2, 5);
}

runtime::PreparedNodePtr prepare_ok(const ConfigValue& cfg) {
  Diagnostics diags;
  auto node = test::prepare(GeneratorSourceFactory(), NodeRole::kSource, cfg, diags);
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

// Rows keyed by id from `parallelism` subtasks with batch size `batch`.
std::map<int64_t, std::vector<Value>> generate(const runtime::PreparedNode& node, int parallelism,
                                               size_t batch, size_t* total_rows = nullptr) {
  std::map<int64_t, std::vector<Value>> by_id;
  size_t total = 0;
  for (int k = 0; k < parallelism; ++k) {
    FakeContext ctx(k, parallelism, batch);
    CollectOutput out;
    EXPECT_TRUE(test::run_source(*node.make_source(k, parallelism), ctx, out).ok());
    for (const auto& b : out.batches) EXPECT_LE(b->active_rows(), batch);
    for (auto& row : rows_of(out.batches)) {
      ++total;
      by_id[row[0].as_int64()] = row;
    }
  }
  if (total_rows) *total_rows = total;
  return by_id;
}

TEST(Generator, CountSchemaAndValues) {
  auto node = prepare_ok(generator({{"count", scalar("1000")}, {"seed", scalar("42")}}));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->output_schema()->to_string(), "{id: int64, price: double, name: string}");
  EXPECT_EQ(node->describe(), "generator 1000 rows, seed 42");
  size_t total = 0;
  auto rows = generate(*node, 1, 256, &total);
  EXPECT_EQ(total, 1000u);
  ASSERT_EQ(rows.size(), 1000u);
  EXPECT_EQ(rows.begin()->first, 0);
  EXPECT_EQ(rows.rbegin()->first, 999);
  for (const auto& [i, row] : rows) {
    double p = row[1].as_double();
    EXPECT_GE(p, 0.0);
    EXPECT_LT(p, 100.0);
    EXPECT_EQ(row[2], Value::string("u" + std::to_string(i % 10)));
  }
}

TEST(Generator, SameSeedSameRowsForAnyBatchingAndParallelism) {
  auto node = prepare_ok(generator({{"count", scalar("5000")}, {"seed", scalar("7")}}));
  ASSERT_TRUE(node);
  auto base = generate(*node, 1, 1024);
  ASSERT_EQ(base.size(), 5000u);
  for (auto [parallelism, batch] : {std::pair{1, 7}, std::pair{3, 100}, std::pair{4, 1024}}) {
    size_t total = 0;
    auto other = generate(*node, parallelism, batch, &total);
    // The union over subtasks is exactly rows 0..count-1, each once.
    EXPECT_EQ(total, 5000u) << parallelism;
    EXPECT_EQ(other, base) << "parallelism " << parallelism << " batch " << batch;
  }
  auto other_seed = prepare_ok(generator({{"count", scalar("5000")}, {"seed", scalar("8")}}));
  ASSERT_TRUE(other_seed);
  auto diff = generate(*other_seed, 1, 1024);
  size_t differing = 0;
  for (const auto& [i, row] : base) differing += row[1] != diff[i][1];
  EXPECT_GT(differing, 4900u);
}

TEST(Generator, RandInDifferentFieldsIsIndependent) {
  auto node = prepare_ok(
      generator({{"count", scalar("20000")}, {"seed", scalar("7")}},
                {{"id", scalar("i")}, {"a", scalar("rand()")}, {"b", scalar("rand()")}}));
  ASSERT_TRUE(node);
  auto rows = generate(*node, 1, 1024);
  ASSERT_EQ(rows.size(), 20000u);
  // Independent uniforms: both below 0.2 for about 4% of rows (not 20%).
  size_t both_low = 0, equal = 0;
  for (const auto& [i, row] : rows) {
    both_low += row[1].as_double() < 0.2 && row[2].as_double() < 0.2;
    equal += row[1] == row[2];
  }
  EXPECT_EQ(equal, 0u);
  EXPECT_GT(both_low, 600u);
  EXPECT_LT(both_low, 1000u);
}

TEST(Generator, AProjectedGeneratorEvaluatesOnlyTheFieldsRead) {
  auto node = prepare_ok(generator({{"count", scalar("3000")}, {"seed", scalar("7")}},
                                   {{"id", scalar("i")},
                                    {"a", scalar("rand()")},
                                    {"b", scalar("rand() * i")},
                                    {"c", scalar("concat('u', cast(i as string))")}}));
  ASSERT_TRUE(node);
  auto projected = node->project({true, false, true, false});
  ASSERT_TRUE(projected);
  EXPECT_EQ(projected->output_schema()->to_string(), node->output_schema()->to_string());
  EXPECT_EQ(projected->describe(), "generator 3000 rows, seed 7; read downstream: id, b");
  const auto all = generate(*node, 1, 256);
  const auto some = generate(*projected, 2, 100);
  ASSERT_EQ(some.size(), 3000u);
  for (const auto& [i, row] : some) {
    // b draws the same numbers as when a is evaluated before it.
    EXPECT_EQ(row[2], all.at(i)[2]) << i;
    EXPECT_TRUE(row[1].is_null()) << i;
    EXPECT_TRUE(row[3].is_null()) << i;
    EXPECT_FALSE(all.at(i)[1].is_null()) << i;
  }
}

TEST(Generator, SubtasksBeyondCountProduceNothing) {
  auto node = prepare_ok(generator({{"count", scalar("2")}}));
  ASSERT_TRUE(node);
  size_t total = 0;
  auto rows = generate(*node, 5, 1024, &total);
  EXPECT_EQ(total, 2u);
  EXPECT_EQ(rows.size(), 2u);
  auto none = prepare_ok(generator({{"count", scalar("0")}}));
  ASSERT_TRUE(none);
  EXPECT_TRUE(generate(*none, 1, 1024).empty());
}

TEST(Generator, UnboundedUntilStopRequested) {
  auto node = prepare_ok(generator({}));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "generator unbounded, seed 0");
  FakeContext ctx(0, 1, 500);
  CollectOutput out;
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(src->open(ctx).ok());
  for (int i = 0; i < 10; ++i) {
    auto p = src->produce(out);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->state, SourceProgress::State::kMore);
  }
  EXPECT_EQ(rows_of(out.batches).size(), 5000u);
  ctx.request_stop();
  auto p = src->produce(out);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, SourceProgress::State::kExhausted);
}

TEST(Generator, RateLimitReturnsWaitUntilInsteadOfSleeping) {
  // 20 rows/s over 2 subtasks: 10 rows/s each, so one row every 100 ms.
  auto node = prepare_ok(generator({{"count", scalar("100")}, {"rate", scalar("20")}}));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "generator 100 rows at 20 rows/s, seed 0");
  FakeContext ctx(0, 2);
  CollectOutput out;
  auto src = node->make_source(0, 2);
  ASSERT_TRUE(src->open(ctx).ok());
  auto start = std::chrono::steady_clock::now();
  auto p = src->produce(out);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, SourceProgress::State::kMore);
  EXPECT_EQ(rows_of(out.batches).size(), 1u);
  p = src->produce(out);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->state, SourceProgress::State::kWait);
  auto calls_took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(calls_took, std::chrono::milliseconds(50));  // it did not sleep
  EXPECT_GT(p->wake_at, start + std::chrono::milliseconds(60));
  EXPECT_LT(p->wake_at, start + std::chrono::milliseconds(150));
  EXPECT_EQ(rows_of(out.batches).size(), 1u);

  // Driven for ~0.5 s, it emits about rate * time rows, never a burst.
  auto until = start + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < until) {
    p = src->produce(out);
    ASSERT_TRUE(p.ok());
    if (p->state == SourceProgress::State::kWait) {
      std::this_thread::sleep_until(std::min(p->wake_at, until));
    }
  }
  size_t n = rows_of(out.batches).size();
  EXPECT_GE(n, 4u);
  EXPECT_LE(n, 7u);
}

TEST(GeneratorOptions, BadOptionsAndExpressionsAreReported) {
  auto cfg = generator({{"count", scalar("-1", 3, 12)},
                        {"rate", scalar("fast", 4, 11)},
                        {"speed", scalar("1", 4, 20)}},
                       {{"ok", scalar("i * 2", 6, 9)}, {"bad", scalar("nosuch + 1", 7, 10)}});
  Diagnostics diags;
  EXPECT_FALSE(test::prepare(GeneratorSourceFactory(), NodeRole::kSource, cfg, diags));
  std::string all = diags.to_status().message();
  EXPECT_NE(all.find("pipe.yaml:3:12: source 'gen' (generator) option 'count': must not be "
                     "negative"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("pipe.yaml:4:11: source 'gen' (generator) option 'rate': expected a "
                     "number, got 'fast'"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("pipe.yaml:4:20: unknown option 'speed' for source 'gen' (generator)"),
            std::string::npos)
      << all;
  // The expression error keeps compile()'s location inside the field's text.
  EXPECT_NE(all.find("pipe.yaml:7:"), std::string::npos) << all;
  EXPECT_NE(all.find("nosuch"), std::string::npos) << all;
  EXPECT_NE(all.find("(in source 'gen' (generator) field 'bad')"), std::string::npos) << all;

  Diagnostics d2;
  auto no_fields = map({{"id", scalar("gen")}, {"type", scalar("generator")}}, 2, 5);
  EXPECT_FALSE(test::prepare(GeneratorSourceFactory(), NodeRole::kSource, no_fields, d2));
  EXPECT_EQ(d2.to_status().message(), "pipe.yaml:2:5: source 'gen' (generator) needs 'fields'");
}

}  // namespace
}  // namespace df::connectors
