// dedupe: first row per key within a horizon, in event time and processing time.
#include <gtest/gtest.h>

#include <thread>

#include "operators/operators.h"
#include "tests/support/operator_harness.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

SchemaPtr clicks_schema() {
  return make_schema({{"user", TypeId::kString}, {"page", TypeId::kString}, {"n", TypeId::kInt64}});
}

std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml, bool event_time) {
  return test::prepare_operator(yaml, "dedupe", {"clicks"}, {clicks_schema()}, {event_time});
}

struct Click {
  const char* user;  // nullptr: null
  const char* page;
  int64_t n;
  int64_t ts;
};

BatchPtr clicks(const std::vector<Click>& rows, bool event_time = true) {
  BatchBuilder b(clicks_schema());
  ColumnBuilder ts(TypeId::kInt64);
  for (const auto& c : rows) {
    b.append_row({c.user ? Value::string(c.user) : Value::null(TypeId::kString),
                  Value::string(c.page), Value::int64(c.n)});
    ts.append_int64(c.ts);
  }
  BatchPtr batch = b.finish();
  return event_time ? batch->with_event_time(ts.finish()) : batch;
}

// The `n` of every alive output row, in order.
std::vector<int64_t> ns_of(const test::CollectOutput& out) {
  std::vector<int64_t> ns;
  for (const auto& row : test::rows_of(out.batches)) ns.push_back(row[2].as_int64());
  return ns;
}

size_t entries(runtime::Operator& op) { return test::state_entries(op); }

TEST(Dedupe, KeepsTheFirstRowPerKeyWithinTheHorizonInEventTime) {
  auto b =
      prepare("{id: firsts, type: dedupe, input: clicks, key_by: [user, page], within: 5s}", true);
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  test::FakeContext ctx;
  test::CollectOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  BatchPtr in = clicks({{"ann", "/a", 1, 1000},
                        {"ann", "/a", 2, 3000},    // duplicate of 1
                        {"ann", "/b", 3, 3000},    // another key
                        {"bob", "/a", 4, 2000},    // another key
                        {"ann", "/a", 5, 500},     // late, still a duplicate of 1
                        {"ann", "/a", 6, 5999},    // last ms of 1's horizon
                        {"ann", "/a", 7, 6000}});  // horizon over: a new first
  ASSERT_TRUE(op->process(0, in, out).ok());
  EXPECT_EQ(ns_of(out), (std::vector<int64_t>{1, 3, 4, 7}));
  // No copy: the output shares the input's columns and event time.
  ASSERT_EQ(out.batches.size(), 1u);
  EXPECT_EQ(out.batches[0]->column(0), in->column(0));
  EXPECT_EQ(out.batches[0]->event_time(), in->event_time());
  EXPECT_EQ(entries(*op), 3u);

  // A duplicate of 7 in a later batch; 3 (ann,/b) is still in its horizon.
  out.batches.clear();
  ASSERT_TRUE(op->process(0, clicks({{"ann", "/a", 8, 10999}, {"ann", "/b", 9, 7999}}), out).ok());
  EXPECT_TRUE(ns_of(out).empty());
}

TEST(Dedupe, ForgetsKeysOnceTheWatermarkPassesTheirHorizon) {
  auto b = prepare("{id: firsts, type: dedupe, input: clicks, key_by: user, within: 5s}", true);
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  test::FakeContext ctx;
  test::CollectOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  ASSERT_TRUE(op->process(0, clicks({{"ann", "/", 1, 1000}, {"bob", "/", 2, 4000}}), out).ok());
  EXPECT_EQ(entries(*op), 2u);
  ASSERT_TRUE(op->on_watermark(Watermark{5999}, out).ok());  // ann expires at 6000
  EXPECT_EQ(entries(*op), 2u);
  ASSERT_TRUE(op->on_watermark(Watermark{6000}, out).ok());
  // Purged at most once per `within` of clock: 6000 < 5999 + 5000.
  ASSERT_TRUE(op->on_watermark(Watermark{11000}, out).ok());
  EXPECT_EQ(entries(*op), 0u);  // ann (6000) and bob (9000) are gone
  ASSERT_EQ(out.watermarks.size(), 3u);
  EXPECT_EQ(out.watermarks.back().timestamp_ms, 11000);
  ASSERT_TRUE(op->process(0, clicks({{"ann", "/", 3, 11001}, {"ann", "/", 4, 11002}}), out).ok());
  EXPECT_EQ(ns_of(out), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(entries(*op), 1u);
}

TEST(Dedupe, NullKeysAreEqualToEachOther) {
  auto b = prepare("{id: d, type: dedupe, input: clicks, key_by: [user], within: 1h}", true);
  ASSERT_TRUE(b->node);
  test::FakeContext ctx;
  test::CollectOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  ASSERT_TRUE(
      op->process(0, clicks({{nullptr, "/", 1, 1}, {nullptr, "/x", 2, 2}, {"", "/", 3, 3}}), out)
          .ok());
  EXPECT_EQ(ns_of(out), (std::vector<int64_t>{1, 3}));  // null and '' differ
}

TEST(Dedupe, ProcessingTimeForgetsKeysAfterWithin) {
  auto b = prepare("{id: d, type: dedupe, input: clicks, key_by: [user], within: 300ms}", false);
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  EXPECT_NE(b->node->describe().find("processing time"), std::string::npos);
  test::FakeContext ctx;
  test::CollectOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  ASSERT_TRUE(op->process(0, clicks({{"ann", "/", 1, 0}, {"ann", "/", 2, 0}}, false), out).ok());
  ASSERT_TRUE(op->process(0, clicks({{"ann", "/", 3, 0}, {"bob", "/", 4, 0}}, false), out).ok());
  EXPECT_EQ(ns_of(out), (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(entries(*op), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(450));
  ASSERT_TRUE(op->process(0, clicks({{"ann", "/", 5, 0}, {"ann", "/", 6, 0}}, false), out).ok());
  EXPECT_EQ(ns_of(out), (std::vector<int64_t>{1, 4, 5}));
  EXPECT_EQ(entries(*op), 1u);  // bob expired and was purged; ann is new
}

TEST(Dedupe, DeclaresAHashExchangeOnItsKey) {
  auto b = prepare("{id: d, type: dedupe, input: clicks, key_by: [page, user], within: 1m}", true);
  ASSERT_TRUE(b->node);
  EXPECT_FALSE(b->node->chainable());
  auto p = b->node->input_partitioning(0);
  EXPECT_EQ(p.kind, runtime::InputPartitioning::Kind::kHash);
  EXPECT_EQ(p.key_fields, (std::vector<size_t>{1, 0}));
  EXPECT_EQ(*b->node->output_schema(), *clicks_schema());
  EXPECT_FALSE(b->node->output_has_event_time().has_value());  // as its input
}

TEST(Dedupe, ReportsEveryOptionErrorWithItsLocation) {
  auto missing = prepare("{id: d, type: dedupe, input: clicks}", true);
  EXPECT_FALSE(missing->node);
  EXPECT_EQ(missing->diags.size(), 2u) << missing->diags.to_status().message();
  const std::string all = missing->diags.to_status().message();
  EXPECT_NE(all.find("key_by"), std::string::npos) << all;
  EXPECT_NE(all.find("within"), std::string::npos) << all;

  auto bad = prepare("id: d\ntype: dedupe\ninput: clicks\nkey_by: [usr]\nwithin: 0s\n", true);
  EXPECT_FALSE(bad->node);
  ASSERT_EQ(bad->diags.size(), 2u) << bad->diags.to_status().message();
  EXPECT_EQ(bad->diags.items()[0].location.line, 4);
  EXPECT_EQ(bad->diags.items()[0].location.column, 10);
  EXPECT_NE(bad->diags.items()[0].message.find("unknown field 'usr'"), std::string::npos);
  EXPECT_EQ(bad->diags.items()[1].location.line, 5);
  EXPECT_NE(bad->diags.items()[1].message.find("positive"), std::string::npos);
}

}  // namespace
}  // namespace df::operators
