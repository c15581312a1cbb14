// join: windowed and interval equi-joins, inner and left outer, driven with
// event-time batches and watermarks; and every validation error.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "operators/operators.h"
#include "tests/support/operator_harness.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

SchemaPtr left_schema() { return make_schema({{"k", TypeId::kInt64}, {"a", TypeId::kString}}); }
SchemaPtr right_schema() { return make_schema({{"k", TypeId::kInt64}, {"b", TypeId::kString}}); }

// Prepares a join from YAML text as the planner does: inputs named by
// `left`/`right`, with the given schemas and event-time flags.
std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml,
                                         std::vector<SchemaPtr> inputs = {},
                                         std::vector<bool> event_time = {true, true}) {
  if (inputs.empty()) inputs = {left_schema(), right_schema()};
  auto built = test::prepare_operator(yaml, "join", {"persons", "auctions"}, std::move(inputs),
                                      std::move(event_time), {"id", "type", "parallelism"});
  if (built->factory) {
    EXPECT_EQ(built->factory->input_keys(), (std::vector<std::string>{"left", "right"}));
  }
  return built;
}

std::string join_yaml(const std::string& extra) {
  return "{id: j, type: join, left: persons, right: auctions, on: [k], " + extra + "}";
}

// key nullptr: a null key.
struct In {
  const int64_t* key;
  const char* text;
  int64_t ts;
};
const int64_t k1 = 1, k2 = 2, k3 = 3;

BatchPtr side(const SchemaPtr& schema, const std::vector<In>& rows) {
  BatchBuilder b(schema);
  ColumnBuilder ts(TypeId::kInt64);
  for (const auto& r : rows) {
    b.append_row(
        {r.key ? Value::int64(*r.key) : Value::null(TypeId::kInt64), Value::string(r.text)});
    ts.append_int64(r.ts);
  }
  return b.finish()->with_event_time(ts.finish());
}
BatchPtr lefts(const std::vector<In>& rows) { return side(left_schema(), rows); }
BatchPtr rights(const std::vector<In>& rows) { return side(right_schema(), rows); }

// Every output row as "v1|v2|...@ts", sorted, and the output drained.
std::vector<std::string> take(test::CollectOutput& out) {
  std::vector<std::string> lines;
  for (const auto& b : out.batches) {
    EXPECT_TRUE(b->event_time()) << "join output without event time";
    test::append_row_lines(*b, lines);
  }
  out.batches.clear();
  std::sort(lines.begin(), lines.end());
  return lines;
}

using Lines = std::vector<std::string>;

size_t entries(runtime::Operator& op) { return test::state_entries(op); }

struct Running {
  test::FakeContext ctx;
  test::CollectOutput out;
  std::unique_ptr<runtime::Operator> op;
  // budget: the state memory budget (0: the default; 1 byte: rows go to the store).
  explicit Running(const runtime::PreparedNode& node, size_t batch_size = 1024, size_t budget = 0)
      : ctx(0, 1, batch_size), op(node.make_operator(0, 1)) {
    ctx.set_state_memory_budget(budget);
    EXPECT_TRUE(op->open(ctx).ok());
  }
  void left(const std::vector<In>& rows) { ASSERT_TRUE(op->process(0, lefts(rows), out).ok()); }
  void right(const std::vector<In>& rows) { ASSERT_TRUE(op->process(1, rights(rows), out).ok()); }
  void watermark(int64_t ts) { ASSERT_TRUE(op->on_watermark(Watermark{ts}, out).ok()); }
  void finish() { ASSERT_TRUE(op->finish(out).ok()); }
};

// --- Windowed join --------------------------------------------------------

TEST(WindowedJoin, InnerJoinFiresEachWindowWhenTheWatermarkReachesItsEnd) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 10s}"));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node);
  r.left({{&k1, "l1", 1000}, {&k2, "l2", 2000}, {&k1, "l3", 12000}});
  r.right({{&k1, "r1", 5000}, {&k1, "r2", 9999}, {&k2, "r3", 10000}, {&k1, "r4", 15000}});
  EXPECT_EQ(entries(*r.op), 7u);
  r.watermark(9998);
  EXPECT_TRUE(take(r.out).empty());
  r.watermark(9999);  // [0s, 10s): l1 meets r1 and r2; l2 has no partner (r3 is in [10s, 20s))
  EXPECT_EQ(take(r.out), (Lines{"1|l1|r1@9999", "1|l1|r2@9999"}));
  EXPECT_EQ(entries(*r.op), 3u);  // the window's state is gone
  ASSERT_EQ(r.out.watermarks.size(), 2u);
  EXPECT_EQ(r.out.watermarks.back().timestamp_ms, 9999);
  r.watermark(19999);
  EXPECT_EQ(take(r.out), (Lines{"1|l3|r4@19999"}));
  EXPECT_EQ(entries(*r.op), 0u);
}

TEST(WindowedJoin, LeftJoinEmitsUnmatchedLeftRowsWithNulls) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 10s}, join_type: left"));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node);
  r.left({{&k1, "l1", 1000}, {&k2, "l2", 2000}, {&k1, "l3", 12000}, {nullptr, "ln", 3000}});
  r.right({{&k1, "r1", 5000}, {&k1, "r2", 9999}, {&k2, "r3", 10000}, {nullptr, "rn", 3000}});
  r.watermark(9999);
  EXPECT_EQ(take(r.out),
            (Lines{"1|l1|r1@9999", "1|l1|r2@9999", "2|l2|null@9999", "null|ln|null@9999"}));
  r.finish();  // the last window fires at the end of input
  EXPECT_EQ(take(r.out), (Lines{"1|l3|null@19999"}));
  EXPECT_EQ(entries(*r.op), 0u);
}

TEST(WindowedJoin, EveryPairOfAKeyMatchesAndNullKeysNever) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 1s}"));
  ASSERT_TRUE(b->node);
  Running r(*b->node);
  r.left({{&k1, "x", 100}, {&k1, "y", 200}, {nullptr, "n", 300}, {&k3, "z", 400}});
  r.right({{&k1, "p", 500}, {&k1, "q", 999}, {nullptr, "m", 300}});
  EXPECT_EQ(entries(*r.op), 5u);  // null-key rows of an inner join are not kept
  r.watermark(1000);
  EXPECT_EQ(take(r.out), (Lines{"1|x|p@999", "1|x|q@999", "1|y|p@999", "1|y|q@999"}));
}

TEST(WindowedJoin, EmitsBatchesOfAboutBatchSizeRows) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 1s}"));
  ASSERT_TRUE(b->node);
  Running r(*b->node, /*batch_size=*/4);
  r.left({{&k1, "a", 1}, {&k1, "b", 2}, {&k1, "c", 3}});
  r.right({{&k1, "x", 4}, {&k1, "y", 5}, {&k1, "z", 6}});
  r.watermark(999);
  ASSERT_EQ(r.out.batches.size(), 3u);  // 9 rows: 4 + 4 + 1
  EXPECT_EQ(r.out.batches[0]->num_rows(), 4u);
  EXPECT_EQ(r.out.batches[2]->num_rows(), 1u);
  EXPECT_EQ(take(r.out).size(), 9u);
}

TEST(WindowedJoin, LateRowsAreCountedAndDropped) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 1s}"));
  ASSERT_TRUE(b->node);
  Running r(*b->node);
  r.watermark(1999);
  r.left({{&k1, "late", 1500}, {&k1, "ok", 2000}});
  r.right({{&k1, "r", 2500}});
  r.finish();
  EXPECT_EQ(take(r.out), (Lines{"1|ok|r@2999"}));
  ASSERT_EQ(r.ctx.data_errors().size(), 1u);
  EXPECT_NE(r.ctx.data_errors()[0].find("late"), std::string::npos);
}

TEST(WindowedJoin, KeepsTheRowsOfFilteredSparseAndSmallBatches) {
  // Rows are kept by reference into their batch; or into a dense copy of the
  // kept rows when they are few (a filter's selection, late rows) or when
  // the batch's columns are far larger than its rows (reserved for many);
  // or, from batches keeping a few rows, copied into one gathering batch.
  auto b = prepare(join_yaml("window: {type: tumbling, size: 10s}, join_type: left"));
  ASSERT_TRUE(b->node);
  Running r(*b->node);
  r.watermark(9999);  // [0s, 10s) has fired: rows in it are late
  // key k, text "<side><k>", in [10s, 20s) unless late.
  auto make = [](const SchemaPtr& schema, const char* side, int64_t from, int64_t to,
                 size_t reserve, bool late) {
    BatchBuilder batch(schema, reserve);
    ColumnBuilder ts(TypeId::kInt64, reserve);
    for (int64_t k = from; k < to; ++k) {
      batch.append_row({Value::int64(k), Value::string(side + std::to_string(k))});
      ts.append_int64(late ? 5000 : 10000 + k);
    }
    return batch.finish()->with_event_time(ts.finish());
  };
  Lines expected;
  auto expect = [&](int64_t k, bool matched) {
    expected.push_back(std::to_string(k) + "|l" + std::to_string(k) + "|" +
                       (matched ? "r" + std::to_string(k) : std::string("null")) + "@19999");
  };
  // 200 rows, 150 selected, of which the 70 of keys 0..69 are in time: a
  // dense copy of them.
  auto late = make(left_schema(), "l", 1000, 1130, 0, true);
  std::vector<BatchPtr> parts = {make(left_schema(), "l", 0, 70, 0, false), late};
  BatchBuilder filtered(left_schema());
  ColumnBuilder filtered_ts(TypeId::kInt64);
  Selection selection;
  for (const auto& part : parts) {
    for (size_t i = 0; i < part->num_rows(); ++i) {
      filtered.append_row({part->column(0)->value_at(i), part->column(1)->value_at(i)});
      filtered_ts.append_int64(part->event_time()->int64_at(i));
      if (filtered.num_rows() <= 150)
        selection.push_back(static_cast<uint32_t>(i + (part == late ? 70 : 0)));
    }
  }
  ASSERT_TRUE(r.op->process(0,
                            filtered.finish()
                                ->with_event_time(filtered_ts.finish())
                                ->with_selection(std::make_shared<const Selection>(selection)),
                            r.out)
                  .ok());
  EXPECT_EQ(r.ctx.data_errors().size(), 80u);  // the selected late rows
  for (int64_t k = 0; k < 70; ++k) expect(k, k % 2 == 0);
  // 70 rows in columns reserved for 8192: a dense copy. Every row kept: the
  // batch itself. Two rows: gathered.
  ASSERT_TRUE(r.op->process(0, make(left_schema(), "l", 100, 170, 8192, false), r.out).ok());
  ASSERT_TRUE(r.op->process(0, make(left_schema(), "l", 200, 300, 0, false), r.out).ok());
  ASSERT_TRUE(r.op->process(0, make(left_schema(), "l", 300, 302, 0, false), r.out).ok());
  for (int64_t k = 100; k < 170; ++k) expect(k, k % 2 == 0);
  for (int64_t k = 200; k < 302; ++k) expect(k, k < 300 && k % 2 == 0);
  EXPECT_EQ(entries(*r.op), 70u + 70u + 100u + 2u);
  // Right rows of every even key: one-row batches (gathered), then one batch.
  for (int64_t k = 0; k < 100; k += 2) {
    ASSERT_TRUE(r.op->process(1, make(right_schema(), "r", k, k + 1, 0, false), r.out).ok());
  }
  BatchBuilder evens(right_schema());
  ColumnBuilder evens_ts(TypeId::kInt64);
  for (int64_t k = 100; k < 300; k += 2) {
    evens.append_row({Value::int64(k), Value::string("r" + std::to_string(k))});
    evens_ts.append_int64(19000);
  }
  ASSERT_TRUE(r.op->process(1, evens.finish()->with_event_time(evens_ts.finish()), r.out).ok());
  r.watermark(19999);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(take(r.out), expected);
  EXPECT_EQ(entries(*r.op), 0u);
}

// A window's output comes in key order (null keys first), whether its rows
// were in memory or moved to the store: integer keys by value, others by
// their encoded bytes.
TEST(WindowedJoin, AWindowComesOutInKeyOrderFromMemoryAndFromTheStore) {
  const int64_t keys[] = {7, -5, 0, 3, -1};
  // The string key of k: "a" for -5 .. "m" for 7, in the same order.
  auto letter = [](int64_t k) { return std::string(1, static_cast<char>('a' + k + 5)); };
  for (const bool string_keys : {false, true}) {
    const TypeId key_type = string_keys ? TypeId::kString : TypeId::kInt64;
    const SchemaPtr left = make_schema({{"k", key_type}, {"a", TypeId::kString}});
    const SchemaPtr right = make_schema({{"k", key_type}, {"b", TypeId::kString}});
    auto make = [&](const SchemaPtr& schema, const char* text, bool with_null) {
      BatchBuilder batch(schema);
      ColumnBuilder ts(TypeId::kInt64);
      for (int64_t k : keys) {
        batch.append_row({string_keys ? Value::string(letter(k)) : Value::int64(k),
                          Value::string(text + std::to_string(k))});
        ts.append_int64(100 + k);
      }
      if (with_null) {
        batch.append_row({Value::null(key_type), Value::string("null")});
        ts.append_int64(100);
      }
      return batch.finish()->with_event_time(ts.finish());
    };
    auto b =
        prepare(join_yaml("window: {type: tumbling, size: 1s}, join_type: left"), {left, right});
    ASSERT_TRUE(b->node) << b->diags.to_status().message();
    std::vector<std::string> in_memory;
    for (const size_t budget : {size_t{0}, size_t{1}}) {  // 1 byte: every window to the store
      SCOPED_TRACE(std::string(string_keys ? "string" : "int64") + " keys, budget " +
                   std::to_string(budget));
      test::FakeContext ctx(0, 1, 1024);
      ctx.set_state_memory_budget(budget);
      test::CollectOutput out;
      auto op = b->node->make_operator(0, 1);
      ASSERT_TRUE(op->open(ctx).ok());
      ASSERT_TRUE(op->process(0, make(left, "l", true), out).ok());
      ASSERT_TRUE(op->process(1, make(right, "r", false), out).ok());
      ASSERT_TRUE(op->on_watermark(Watermark{999}, out).ok());
      std::vector<std::string> lines;
      for (const auto& batch : out.batches) test::append_row_lines(*batch, lines);
      auto key = [&](int64_t v) { return string_keys ? letter(v) : std::to_string(v); };
      std::vector<std::string> expected = {"null|null|null@999"};
      for (int64_t v : {-5, -1, 0, 3, 7}) {
        expected.push_back(key(v) + "|l" + std::to_string(v) + "|r" + std::to_string(v) + "@999");
      }
      EXPECT_EQ(lines, expected);
      if (budget == 0) {
        in_memory = lines;
      } else {
        EXPECT_EQ(lines, in_memory);
      }
      EXPECT_TRUE(op->close().ok());
    }
  }
}

// Rows of {k: string, n: int64, <text>: string} for the composite-key tests:
// k null when nullptr, event time ts.
struct KeyedTextRow {
  const char* k;
  int64_t n;
  const char* text;
  int64_t ts;
};
SchemaPtr keyed_text_schema(const char* text) {
  return make_schema({{"k", TypeId::kString}, {"n", TypeId::kInt64}, {text, TypeId::kString}});
}
BatchPtr keyed_text_rows(const SchemaPtr& schema, const std::vector<KeyedTextRow>& rows) {
  BatchBuilder b(schema);
  ColumnBuilder ts(TypeId::kInt64);
  for (const auto& r : rows) {
    b.append_row({r.k ? Value::string(r.k) : Value::null(TypeId::kString), Value::int64(r.n),
                  Value::string(r.text)});
    ts.append_int64(r.ts);
  }
  return b.finish()->with_event_time(ts.finish());
}

// Keys other than one int64 or timestamp field are held as encoded bytes.
TEST(WindowedJoin, StringAndCompositeKeysMatchLikeIntegerKeys) {
  const SchemaPtr left = keyed_text_schema("a");
  const SchemaPtr right = keyed_text_schema("b");
  auto make = keyed_text_rows;
  for (const char* on : {"[k]", "[k, n]"}) {
    SCOPED_TRACE(on);
    auto b = prepare("{id: j, type: join, left: persons, right: auctions, on: " + std::string(on) +
                         ", window: {type: tumbling, size: 10s}, join_type: left}",
                     {left, right});
    ASSERT_TRUE(b->node) << b->diags.to_status().message();
    Running r(*b->node);
    ASSERT_TRUE(
        r.op->process(1, make(right, {{"x", 1, "r1", 1000}, {"y", 2, "r2", 9000}}), r.out).ok());
    ASSERT_TRUE(r.op->process(0,
                              make(left, {{"x", 1, "l1", 2000},
                                          {"x", 2, "l2", 3000},
                                          {"y", 2, "l3", 4000},
                                          {nullptr, 1, "ln", 5000}}),
                              r.out)
                    .ok());
    EXPECT_EQ(entries(*r.op), 6u);
    r.watermark(9999);
    const bool composite = std::string(on) == "[k, n]";
    // On [k, n] l2 ("x", 2) has no partner; on [k] it meets r1 (and the
    // output has the right side's n too).
    Lines expected = composite ? Lines{"x|1|l1|r1@9999", "x|2|l2|null@9999", "y|2|l3|r2@9999",
                                       "null|1|ln|null@9999"}
                               : Lines{"x|1|l1|1|r1@9999", "x|2|l2|1|r1@9999", "y|2|l3|2|r2@9999",
                                       "null|1|ln|null|null@9999"};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(take(r.out), expected);
    EXPECT_EQ(entries(*r.op), 0u);
  }
}

// Rows whose key cells repeat the row before skip the key's encoding; a
// window's matches go out column by column, 4096 at a time, in batches of
// batch_size. Runs of repeated composite keys (null key cells among them,
// keys coming back after others, a key changing only in its second cell),
// 9,000 output rows in batches of 1000: every row and column as a direct
// model gives, in key order.
TEST(WindowedJoin, RunsOfRepeatedKeysAndManyMatchesComeOutWhole) {
  const SchemaPtr left = keyed_text_schema("a");
  const SchemaPtr right = keyed_text_schema("b");
  auto b = prepare(
      "{id: j, type: join, left: persons, right: auctions, on: [k, n], window: {type: tumbling, "
      "size: 10s}, join_type: left}",
      {left, right});
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node, /*batch_size=*/1000);
  const char* ks[] = {"x", "y", nullptr};
  std::vector<std::string> texts;  // stable storage for the rows' text
  texts.reserve(8000);
  std::vector<KeyedTextRow> lefts;
  std::vector<KeyedTextRow> rights;
  Lines want;
  for (int i = 0; i < 6000; ++i) {
    // Runs of 50 rows per key; (k, n) comes back every 12 runs.
    const int run = i / 50;
    const char* k = ks[run % 3];
    const int64_t n = (run / 3) % 4;
    texts.push_back("l" + std::to_string(i));
    lefts.push_back({k, n, texts.back().c_str(), 1000 + i});
  }
  for (int k = 0; k < 2; ++k) {
    for (int64_t n = 0; n < 3; ++n) {  // no right row for n == 3
      for (int j = 0; j < 2; ++j) {
        texts.push_back("r" + std::to_string(k) + std::to_string(n) + std::to_string(j));
        rights.push_back({ks[k], n, texts.back().c_str(), 9000});
      }
    }
  }
  for (const KeyedTextRow& l : lefts) {
    bool matched = false;
    for (const KeyedTextRow& rr : rights) {
      if (l.k && std::string(l.k) == rr.k && l.n == rr.n) {
        want.push_back(std::string(l.k) + "|" + std::to_string(l.n) + "|" + l.text + "|" + rr.text +
                       "@9999");
        matched = true;
      }
    }
    if (!matched) {
      want.push_back(std::string(l.k ? l.k : "null") + "|" + std::to_string(l.n) + "|" + l.text +
                     "|null@9999");
    }
  }
  std::sort(want.begin(), want.end());
  for (size_t at = 0; at < lefts.size(); at += 700) {  // batches cutting through runs
    const std::vector<KeyedTextRow> slice(
        lefts.begin() + static_cast<std::ptrdiff_t>(at),
        lefts.begin() + static_cast<std::ptrdiff_t>(std::min(lefts.size(), at + 700)));
    ASSERT_TRUE(r.op->process(0, keyed_text_rows(left, slice), r.out).ok());
  }
  ASSERT_TRUE(r.op->process(1, keyed_text_rows(right, rights), r.out).ok());
  r.watermark(9999);
  size_t rows = 0;
  for (const auto& out : r.out.batches) {
    EXPECT_LE(out->num_rows(), 1000u);
    rows += out->num_rows();
  }
  EXPECT_EQ(rows, want.size());
  EXPECT_EQ(rows, 9'000u);  // 6,000 matches, 3,000 left rows without a partner
  EXPECT_EQ(take(r.out), want);
  EXPECT_EQ(entries(*r.op), 0u);
}

// `where`: the digits of a and b, "l12" -> 12; a pair holds when a's are at
// least b's, and b's may not be 2 (a division by zero: a data error, no match).
const char* kWhere =
    "where: \"cast(substr(a, 2) as int64) >= 12 / (cast(substr(b, 2) as int64) - 2) * 0 + "
    "cast(substr(b, 2) as int64)\"";

TEST(WindowedJoin, WhereJoinsOnlyThePairsItHoldsForInMemoryAndInTheStore) {
  for (const bool left_join : {false, true}) {
    auto b = prepare(join_yaml(std::string("window: {type: tumbling, size: 10s}, ") + kWhere +
                               (left_join ? ", join_type: left" : "")));
    ASSERT_TRUE(b->node) << b->diags.to_status().message();
    for (const size_t budget : {size_t{0}, size_t{1}}) {  // 1 byte: every window to the store
      SCOPED_TRACE(std::string(left_join ? "left" : "inner") + " join, budget " +
                   std::to_string(budget));
      Running r(*b->node, 1024, budget);
      // k1: l1 meets r1 only, l5 meets r1 and r3, r2 fails to evaluate for
      // both; k2: l1 meets nothing (r9 is too high); k3: no right row.
      r.left({{&k1, "l1", 1000}, {&k1, "l5", 2000}, {&k2, "l1", 3000}, {&k3, "l7", 4000}});
      r.right({{&k1, "r1", 5000}, {&k1, "r3", 6000}, {&k1, "r2", 6500}, {&k2, "r9", 7000}});
      r.watermark(9999);
      Lines want = {"1|l1|r1@9999", "1|l5|r1@9999", "1|l5|r3@9999"};
      if (left_join) want.insert(want.end(), {"2|l1|null@9999", "3|l7|null@9999"});
      std::sort(want.begin(), want.end());
      EXPECT_EQ(take(r.out), want);
      EXPECT_EQ(r.ctx.data_errors().size(), 2u);  // r2 with l1 and with l5
      EXPECT_TRUE(r.op->close().ok());
    }
  }
}

TEST(WindowedJoin, WhereDecidesALeftRowsMatchOverAllItsPairs) {
  // One left row meets 5,000 right rows (more than one slice of pairs):
  // with `where` holding for the last one only, a left join emits that pair
  // and no null row; holding for none, one null row.
  for (const bool any_holds : {false, true}) {
    SCOPED_TRACE(any_holds ? "the last pair holds" : "no pair holds");
    auto b =
        prepare(join_yaml("window: {type: tumbling, size: 10s}, join_type: left, where: \"b = " +
                          std::string(any_holds ? "'r4999'" : "'none'") + "\""));
    ASSERT_TRUE(b->node) << b->diags.to_status().message();
    Running r(*b->node);
    std::vector<std::string> texts;
    texts.reserve(5000);
    std::vector<In> many;
    for (int i = 0; i < 5000; ++i) {
      texts.push_back("r" + std::to_string(i));
      many.push_back({&k1, texts.back().c_str(), 5000});
    }
    r.left({{&k1, "l0", 1000}, {&k2, "l1", 1000}});
    r.right(many);
    r.watermark(9999);
    EXPECT_EQ(take(r.out), any_holds ? (Lines{"1|l0|r4999@9999", "2|l1|null@9999"})
                                     : (Lines{"1|l0|null@9999", "2|l1|null@9999"}));
  }
}

TEST(WindowedJoin, WhereOverManyLeftRowsAndAFewRightRowsKeepsTheLeftRowsOrder) {
  // 5,000 left rows (more than a slice) x 3 right rows of one key: left row
  // i meets right row j when i % 1000 = j; the rest come out once with
  // nulls, all in the left rows' arrival order, each left row's pairs in
  // the right rows' order.
  auto b = prepare(join_yaml(
      "window: {type: tumbling, size: 10s}, join_type: left, where: \"cast(substr(a, 2) as "
      "int64) % 1000 = cast(substr(b, 2) as int64) or (a = 'l7' and b <> 'r1')\""));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node);
  std::vector<std::string> texts;
  texts.reserve(5000);
  std::vector<In> lefts;
  Lines want;
  for (int i = 0; i < 5000; ++i) {
    texts.push_back("l" + std::to_string(i));
    lefts.push_back({&k1, texts.back().c_str(), 1000});
    if (i == 7) {
      want.insert(want.end(), {"1|l7|r0@9999", "1|l7|r2@9999"});
    } else if (i % 1000 < 3) {
      want.push_back("1|" + texts.back() + "|r" + std::to_string(i % 1000) + "@9999");
    } else {
      want.push_back("1|" + texts.back() + "|null@9999");
    }
  }
  r.left(lefts);
  r.right({{&k1, "r0", 2000}, {&k1, "r1", 2000}, {&k1, "r2", 2000}});
  r.watermark(9999);
  Lines got;
  for (const auto& out : r.out.batches) test::append_row_lines(*out, got);
  EXPECT_EQ(got, want);
}

// --- Interval join ----------------------------------------------------------

// right.ts in [left.ts - 2s, left.ts + 3s]
const char* kInterval = "between: {lower: -2s, upper: 3s}";

TEST(IntervalJoin, InnerJoinMatchesWithinTheBoundsInAnyArrivalOrder) {
  auto b = prepare(join_yaml(kInterval));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node);
  r.right({{&k1, "r2", 13000}});  // before its left partner arrives
  EXPECT_TRUE(take(r.out).empty());
  r.left({{&k1, "l1", 10000}});
  EXPECT_EQ(take(r.out), (Lines{"1|l1|r2@13000"}));  // emitted at once, ts = max
  // Out of order within the bound: earlier right rows after the left one.
  r.right({{&k1, "r1", 8000}, {&k1, "r3", 13001}, {&k1, "r4", 7999}, {&k2, "r5", 10000}});
  EXPECT_EQ(take(r.out), (Lines{"1|l1|r1@10000"}));
  r.left({{&k1, "l2", 11000}});  // [9s, 14s]: r2, r3 (r1 at 8s is outside)
  EXPECT_EQ(take(r.out), (Lines{"1|l2|r2@13000", "1|l2|r3@13001"}));
  r.finish();
  EXPECT_TRUE(take(r.out).empty());
}

TEST(IntervalJoin, StateIsDroppedAsTheWatermarkPasses) {
  auto b = prepare(join_yaml(kInterval));
  ASSERT_TRUE(b->node);
  Running r(*b->node);
  r.left({{&k1, "l1", 10000}});                      // kept until wm > 13000
  r.right({{&k1, "r1", 8000}, {&k1, "r2", 12000}});  // kept until wm > 10000 / 14000
  EXPECT_EQ(take(r.out).size(), 2u);
  EXPECT_EQ(entries(*r.op), 3u);
  r.watermark(10000);
  EXPECT_EQ(entries(*r.op), 3u);
  r.watermark(10001);
  EXPECT_EQ(entries(*r.op), 2u);
  r.watermark(13001);
  EXPECT_EQ(entries(*r.op), 1u);
  // r2 (12s) is still kept: a left row at 14s looks at [12s, 17s].
  r.left({{&k1, "l2", 14000}});
  EXPECT_EQ(take(r.out), (Lines{"1|l2|r2@14000"}));
  r.watermark(20000);
  EXPECT_EQ(entries(*r.op), 0u);
  ASSERT_FALSE(r.out.watermarks.empty());
  EXPECT_EQ(r.out.watermarks.back().timestamp_ms, 20000);  // inner: not held back
}

TEST(IntervalJoin, LeftJoinEmitsUnmatchedLeftRowsWhenTheyExpire) {
  auto b = prepare(join_yaml(std::string(kInterval) + ", join_type: left"));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node);
  r.left({{&k1, "l1", 10000}, {&k3, "l9", 10000}, {&k2, "l5", 20000}});
  EXPECT_TRUE(take(r.out).empty());
  r.right({{&k1, "r1", 12000}});  // l1 is matched afterwards
  EXPECT_EQ(take(r.out), (Lines{"1|l1|r1@12000"}));
  r.watermark(13000);  // l9 may still meet a right row at 13s
  EXPECT_TRUE(take(r.out).empty());
  r.watermark(13001);  // l9 expired unmatched; l1 expired matched
  EXPECT_EQ(take(r.out), (Lines{"3|l9|null@10000"}));
  // The output watermark is held back by `upper`, so that row is not late.
  ASSERT_FALSE(r.out.watermarks.empty());
  EXPECT_EQ(r.out.watermarks.back().timestamp_ms, 10001);
  EXPECT_EQ(entries(*r.op), 2u);  // l5 and r1 (until wm > 14s)
  r.finish();                     // l5 never met anything
  EXPECT_EQ(take(r.out), (Lines{"2|l5|null@20000"}));
  EXPECT_EQ(entries(*r.op), 0u);
}

TEST(IntervalJoin, NullKeysNeverMatch) {
  auto inner = prepare(join_yaml(kInterval));
  ASSERT_TRUE(inner->node);
  Running r(*inner->node);
  r.right({{nullptr, "rn", 10000}});
  r.left({{nullptr, "ln", 10000}});
  EXPECT_TRUE(take(r.out).empty());
  EXPECT_EQ(entries(*r.op), 0u);

  auto outer = prepare(join_yaml(std::string(kInterval) + ", join_type: left"));
  ASSERT_TRUE(outer->node);
  Running o(*outer->node);
  o.right({{nullptr, "rn", 10000}});
  o.left({{nullptr, "ln", 10000}});  // can never match: out at once
  EXPECT_EQ(take(o.out), (Lines{"null|ln|null@10000"}));
}

// Without a `where`, an arriving batch's matches wait and go out column by
// column (JoinOutput::add_all_pairs): still in arrival order, each with its
// own event time, around the left rows that can never match, and whole past
// the most that wait at once (4096).
TEST(IntervalJoin, AnArrivingBatchsMatchesComeOutInOrderWithTheirOwnTimes) {
  auto b = prepare(join_yaml(std::string(kInterval) + ", join_type: left"));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  Running r(*b->node);
  const auto in_order = [&] {
    Lines lines;
    for (const auto& batch : r.out.batches) test::append_row_lines(*batch, lines);
    r.out.batches.clear();
    return lines;
  };
  r.right({{&k1, "r1", 12000}, {&k2, "r2", 9000}});
  r.watermark(9500);
  r.left({{&k1, "a", 10000},
          {nullptr, "n", 10000},  // a null key: out at once
          {&k2, "b", 11000},
          {&k3, "late", 1000},  // expired on arrival, unmatched: out at once
          {&k1, "c", 13000}});
  EXPECT_EQ(in_order(), (Lines{"1|a|r1@12000", "null|n|null@10000", "2|b|r2@11000",
                               "3|late|null@1000", "1|c|r1@13000"}));

  std::vector<In> many(5000, In{&k2, "x", 20000});
  r.right(many);
  r.left({{&k2, "m", 19000}, {nullptr, "z", 19500}});
  const Lines out = in_order();
  ASSERT_EQ(out.size(), 5001u);
  EXPECT_EQ(std::count(out.begin(), out.end(), "2|m|x@20000"), 5000);
  EXPECT_EQ(out.back(), "null|z|null@19500");
}

TEST(IntervalJoin, LateLeftRowsStillProbeAndAreNotKept) {
  auto b = prepare(join_yaml(std::string(kInterval) + ", join_type: left"));
  ASSERT_TRUE(b->node);
  Running r(*b->node);
  r.right({{&k1, "r1", 20000}});
  r.watermark(18000);  // r1 kept until wm > 22s
  r.left({{&k1, "late", 14000}, {&k2, "alone", 1000}});
  EXPECT_EQ(take(r.out), (Lines{"1|late|null@14000", "2|alone|null@1000"}));
  r.left({{&k1, "near", 17500}});  // [15.5s, 20.5s] holds r1; expired only after wm > 20.5s
  EXPECT_EQ(take(r.out), (Lines{"1|near|r1@20000"}));
  EXPECT_EQ(entries(*r.op), 2u);
}

TEST(IntervalJoin, KeepsTheRightRowsOfAFilteredOrPartlyExpiredBatch) {
  // Rows are kept by reference into their batch, or into a dense copy of the
  // kept rows when they are few: either way a match names the right row.
  auto b = prepare(join_yaml(std::string(kInterval) + ", join_type: left"));
  ASSERT_TRUE(b->node);
  Running r(*b->node);
  r.watermark(10000);  // left rows before 7s are expired on arrival
  auto batch = lefts({{&k1, "old1", 1000},
                      {&k1, "keep1", 9000},
                      {&k2, "filtered", 9500},
                      {&k2, "old2", 2000},
                      {&k2, "keep2", 12000},
                      {&k3, "old3", 3000}});
  ASSERT_TRUE(
      r.op->process(
              0, batch->with_selection(std::make_shared<const Selection>(Selection{0, 1, 3, 4, 5})),
              r.out)
          .ok());
  EXPECT_EQ(take(r.out), (Lines{"1|old1|null@1000", "2|old2|null@2000", "3|old3|null@3000"}));
  EXPECT_EQ(entries(*r.op), 2u);
  r.right({{&k2, "r2", 13000}, {&k1, "r1", 10000}});
  EXPECT_EQ(take(r.out), (Lines{"1|keep1|r1@10000", "2|keep2|r2@13000"}));
  // The same rows again, every one kept: the batch itself is held.
  r.left({{&k1, "all1", 10500}, {&k2, "all2", 11000}});
  EXPECT_EQ(take(r.out), (Lines{"1|all1|r1@10500", "2|all2|r2@13000"}));
  r.finish();
  EXPECT_TRUE(take(r.out).empty());
  EXPECT_EQ(entries(*r.op), 0u);
}

// Keys other than one int64 or timestamp field are compared as encoded bytes.
TEST(IntervalJoin, StringAndCompositeKeysMatchLikeIntegerKeys) {
  const SchemaPtr left = keyed_text_schema("a");
  const SchemaPtr right = keyed_text_schema("b");
  auto make = keyed_text_rows;
  for (const char* on : {"[k]", "[k, n]"}) {
    SCOPED_TRACE(on);
    auto b = prepare("{id: j, type: join, left: persons, right: auctions, on: " + std::string(on) +
                         ", " + kInterval + ", join_type: left}",
                     {left, right});
    ASSERT_TRUE(b->node) << b->diags.to_status().message();
    Running r(*b->node);
    ASSERT_TRUE(
        r.op->process(1, make(right, {{"x", 1, "r1", 11000}, {"y", 2, "r2", 9000}}), r.out).ok());
    ASSERT_TRUE(r.op->process(0,
                              make(left, {{"x", 1, "l1", 10000},
                                          {"x", 2, "l2", 10000},
                                          {"y", 2, "l3", 10500},
                                          {nullptr, 1, "ln", 10000}}),
                              r.out)
                    .ok());
    const bool composite = std::string(on) == "[k, n]";
    // On [k, n] l2 ("x", 2) has no partner; on [k] it meets r1 (and the
    // output has the right side's n too).
    Lines matched = composite ? Lines{"x|1|l1|r1@11000", "y|2|l3|r2@10500", "null|1|ln|null@10000"}
                              : Lines{"x|1|l1|1|r1@11000", "x|2|l2|1|r1@11000", "y|2|l3|2|r2@10500",
                                      "null|1|ln|null|null@10000"};
    std::sort(matched.begin(), matched.end());
    EXPECT_EQ(take(r.out), matched);
    r.finish();
    EXPECT_EQ(take(r.out), composite ? Lines{"x|2|l2|null@10000"} : Lines{});
    EXPECT_EQ(entries(*r.op), 0u);
  }
}

TEST(IntervalJoin, WhereDecidesWhichPairsMatchInMemoryAndInTheStore) {
  for (const size_t budget : {size_t{0}, size_t{1}}) {  // 1 byte: the rows go to the store
    SCOPED_TRACE("budget " + std::to_string(budget));
    auto b = prepare(join_yaml(std::string(kInterval) + ", join_type: left, " + kWhere));
    ASSERT_TRUE(b->node) << b->diags.to_status().message();
    Running r(*b->node, 1024, budget);
    // l5 probes r3 (holds); r9 arrives after l5 and l2 (holds for neither; l2 does not hold with
    // r3), r2 fails to evaluate; r1 then matches l2 when it comes.
    r.right({{&k1, "r3", 10000}});
    r.left({{&k1, "l5", 10000}, {&k1, "l2", 10000}});
    EXPECT_EQ(take(r.out), (Lines{"1|l5|r3@10000"}));
    r.right({{&k1, "r9", 11000}, {&k1, "r2", 11000}});
    EXPECT_TRUE(take(r.out).empty());
    EXPECT_EQ(r.ctx.data_errors().size(), 2u);  // r2 with l5 and with l2
    r.left({{&k2, "l8", 10000}});
    r.right({{&k2, "r9", 11000}});
    EXPECT_TRUE(take(r.out).empty());
    r.right({{&k1, "r1", 12000}});
    EXPECT_EQ(take(r.out), (Lines{"1|l2|r1@12000", "1|l5|r1@12000"}));
    // At expiry only l8 is unmatched: r9 was its only partner and did not hold.
    r.watermark(13001);
    EXPECT_EQ(take(r.out), (Lines{"2|l8|null@10000"}));
    r.finish();
    EXPECT_TRUE(take(r.out).empty());
    EXPECT_TRUE(r.op->close().ok());
  }
}

// --- Validation and the prepared node --------------------------------------

TEST(JoinPrepare, OutputSchemaRenamesCollidingRightFields) {
  auto persons = make_schema({{"id", TypeId::kInt64}, {"name", TypeId::kString}});
  auto auctions = make_schema(
      {{"item", TypeId::kString}, {"seller", TypeId::kInt64}, {"name", TypeId::kString}});
  auto b = prepare(
      "{id: j, type: join, left: persons, right: auctions, on: {left: [id], right: [seller]}, "
      "between: {lower: 0s, upper: 1s}}",
      {persons, auctions});
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  EXPECT_EQ(b->node->output_schema()->to_string(),
            "{id: int64, name: string, item: string, seller: int64, auctions_name: string}");
  EXPECT_FALSE(b->node->chainable());
  EXPECT_EQ(b->node->output_has_event_time(), std::optional<bool>(true));
  auto p0 = b->node->input_partitioning(0);
  auto p1 = b->node->input_partitioning(1);
  EXPECT_EQ(p0.kind, runtime::InputPartitioning::Kind::kHash);
  EXPECT_EQ(p0.key_fields, (std::vector<size_t>{0}));
  EXPECT_EQ(p1.kind, runtime::InputPartitioning::Kind::kHash);
  EXPECT_EQ(p1.key_fields, (std::vector<size_t>{1}));
  EXPECT_EQ(b->node->describe(),
            "inner join on id = seller, right.ts in [left.ts + 0s, left.ts + 1s]");
}

TEST(JoinPrepare, SharedKeyNamesAppearOnce) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 1m}"));
  ASSERT_TRUE(b->node);
  EXPECT_EQ(b->node->output_schema()->to_string(), "{k: int64, a: string, b: string}");
}

// The one diagnostic of `yaml`, which must fail.
Diagnostic only_error(const std::string& yaml, std::vector<SchemaPtr> inputs = {},
                      std::vector<bool> event_time = {true, true}) {
  auto b = prepare(yaml, std::move(inputs), std::move(event_time));
  EXPECT_FALSE(b->node);
  EXPECT_EQ(b->diags.size(), 1u) << b->diags.to_status().message();
  return b->diags.empty() ? Diagnostic{} : b->diags.items()[0];
}

TEST(JoinPrepare, KeyTypeMismatchIsLocated) {
  auto right = make_schema({{"k", TypeId::kDouble}, {"b", TypeId::kString}});
  auto d = only_error(
      "id: j\ntype: join\nleft: persons\nright: auctions\non: {left: [k], right: [k]}\n"
      "window: {type: tumbling, size: 1s}\n",
      {left_schema(), right});
  EXPECT_EQ(d.location.line, 5);
  EXPECT_EQ(d.location.column, 25);
  EXPECT_NE(d.message.find("left 'k' is int64 but right 'k' is double"), std::string::npos)
      << d.message;
}

TEST(JoinPrepare, UnknownKeyFieldsAreLocatedPerSide) {
  auto b = prepare(
      "id: j\ntype: join\nleft: persons\nright: auctions\non: {left: [kk], right: [k]}\n"
      "window: {type: tumbling, size: 1s}\n");
  EXPECT_FALSE(b->node);
  ASSERT_EQ(b->diags.size(), 1u) << b->diags.to_status().message();
  const Diagnostic& d = b->diags.items()[0];
  EXPECT_EQ(d.location.line, 5);
  EXPECT_EQ(d.location.column, 13);
  EXPECT_NE(d.message.find("left input 'persons'"), std::string::npos) << d.message;
  EXPECT_NE(d.message.find("unknown field 'kk'"), std::string::npos) << d.message;
  auto both = prepare(
      "{id: j, type: join, left: persons, right: auctions, on: [x], "
      "window: {type: tumbling, size: 1s}}");
  EXPECT_FALSE(both->node);
  ASSERT_EQ(both->diags.size(), 2u) << both->diags.to_status().message();
  EXPECT_NE(both->diags.items()[1].message.find("right input 'auctions'"), std::string::npos);
}

TEST(JoinPrepare, KeyCountsMustAgree) {
  auto d = only_error(
      "{id: j, type: join, left: persons, right: auctions, on: {left: [k, a], right: [k]}, "
      "window: {type: tumbling, size: 1s}}");
  EXPECT_NE(d.message.find("2 left key field(s) but 1 right"), std::string::npos) << d.message;
  EXPECT_EQ(d.location.column, 57);
}

TEST(JoinPrepare, NeedsExactlyOneOfWindowAndBetween) {
  auto both = only_error(
      "id: j\ntype: join\nleft: persons\nright: auctions\non: [k]\n"
      "window: {type: tumbling, size: 1s}\nbetween: {lower: 0s, upper: 1s}\n");
  EXPECT_EQ(both.location.line, 7);
  EXPECT_NE(both.message.find("either 'window' or 'between', not both"), std::string::npos)
      << both.message;
  auto neither = only_error("id: j\ntype: join\nleft: persons\nright: auctions\non: [k]\n");
  EXPECT_EQ(neither.location.line, 1);
  EXPECT_NE(neither.message.find("needs 'window'"), std::string::npos) << neither.message;
}

TEST(JoinPrepare, BothInputsNeedEventTime) {
  auto d = only_error(
      "id: j\ntype: join\nleft: persons\nright: auctions\non: [k]\n"
      "between: {lower: 0s, upper: 1s}\n",
      {}, {true, false});
  EXPECT_EQ(d.location.line, 4);
  EXPECT_NE(d.message.find("right input 'auctions' has no event time"), std::string::npos)
      << d.message;
  auto left = only_error(
      "id: j\ntype: join\nleft: persons\nright: auctions\non: [k]\n"
      "between: {lower: 0s, upper: 1s}\n",
      {}, {false, true});
  EXPECT_EQ(left.location.line, 3);
  EXPECT_NE(left.message.find("left input 'persons'"), std::string::npos) << left.message;
}

TEST(JoinPrepare, BadWindowBetweenAndJoinType) {
  auto sliding = only_error(join_yaml("window: {type: sliding, size: 1s}"));
  EXPECT_NE(sliding.message.find("must be 'tumbling'"), std::string::npos) << sliding.message;
  auto reversed = only_error(join_yaml("between: {lower: 5s, upper: -5s}"));
  EXPECT_NE(reversed.message.find("lower (5s) is after upper (-5s)"), std::string::npos)
      << reversed.message;
  auto unknown = only_error(join_yaml("between: {lower: 0s, upper: 1s, uper: 2s}"));
  EXPECT_NE(unknown.message.find("uper"), std::string::npos) << unknown.message;
  auto type = only_error(join_yaml("between: {lower: 0s, upper: 1s}, join_type: outer"));
  EXPECT_NE(type.message.find("'inner' or 'left'"), std::string::npos) << type.message;
}

TEST(JoinPrepare, WhereIsAConditionOverTheOutputRow) {
  auto b = prepare(join_yaml("window: {type: tumbling, size: 1s}, where: \"a < b\""));
  ASSERT_TRUE(b->node) << b->diags.to_status().message();
  EXPECT_EQ(b->node->describe(), "inner join on k = k, tumbling window 1s, where (a < b)");
  auto unknown = only_error(join_yaml("window: {type: tumbling, size: 1s}, where: \"c > 1\""));
  // Bound to the output row: its fields are both sides'.
  EXPECT_NE(unknown.message.find("unknown field 'c' (fields: k, a, b)"), std::string::npos)
      << unknown.message;
  auto not_bool = only_error(join_yaml("window: {type: tumbling, size: 1s}, where: \"k + 1\""));
  EXPECT_NE(not_bool.message.find("'where' must be a condition (bool), got int64"),
            std::string::npos)
      << not_bool.message;
}

}  // namespace
}  // namespace df::operators
