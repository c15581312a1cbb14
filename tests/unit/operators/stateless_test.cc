// filter, map and union through their factories, as the planner uses them.
#include <gtest/gtest.h>

#include "operators/operators.h"
#include "tests/support/operator_harness.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

SchemaPtr bids_schema() {
  return make_schema(
      {{"id", TypeId::kInt64}, {"name", TypeId::kString}, {"price", TypeId::kDouble}});
}

BatchPtr bids() {
  BatchBuilder b(bids_schema());
  b.append_row({Value::int64(1), Value::string("ann"), Value::float64(10)});
  b.append_row({Value::int64(2), Value::null(TypeId::kString), Value::float64(2000)});
  b.append_row({Value::int64(3), Value::string("cid"), Value::null(TypeId::kDouble)});
  b.append_row({Value::int64(4), Value::string("dee"), Value::float64(1500)});
  return b.finish();
}

// Prepares one transform (of the document's type) from YAML text against the
// given input schemas, named in0, in1, ...; `parallelism` is not allowed.
std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml, std::vector<SchemaPtr> inputs) {
  std::vector<std::string> names;
  for (size_t i = 0; i < inputs.size(); ++i) names.push_back("in" + std::to_string(i));
  return test::prepare_operator(yaml, "", std::move(names), std::move(inputs), {},
                                {"id", "type", "input", "inputs"});
}

// Every alive output row as "v1|v2|...".
std::vector<std::string> run(const runtime::PreparedNode& node, const std::vector<BatchPtr>& in,
                             test::FakeContext& ctx, BatchPtr* last = nullptr) {
  auto op = node.make_operator(0, 1);
  EXPECT_TRUE(op->open(ctx).ok());
  test::CollectOutput out;
  for (size_t i = 0; i < in.size(); ++i) EXPECT_TRUE(op->process(i, in[i], out).ok());
  EXPECT_TRUE(op->finish(out).ok());
  EXPECT_TRUE(op->close().ok());
  if (last && !out.batches.empty()) *last = out.batches.back();
  std::vector<std::string> rows;
  for (const auto& row : test::rows_of(out.batches)) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) line += (c ? "|" : "") + row[c].to_string();
    rows.push_back(line);
  }
  return rows;
}

TEST(Filter, KeepsTrueRowsWithoutCopying) {
  auto b = prepare("{id: f, type: filter, input: in0, where: \"price > 100\"}", {bids_schema()});
  ASSERT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  test::FakeContext ctx;
  BatchPtr input = bids();
  BatchPtr out;
  EXPECT_EQ(run(*b->node, {input}, ctx, &out),
            (std::vector<std::string>{"2|null|2000", "4|dee|1500"}));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->column(0).get(), input->column(0).get());  // shared, not copied
  EXPECT_NE(out->selection(), nullptr);
  EXPECT_EQ(b->node->output_schema()->to_string(), bids_schema()->to_string());
}

TEST(Filter, RejectsNonBooleanAndUnknownFields) {
  auto b = prepare("{id: f, type: filter, input: in0, where: \"price * 2\"}", {bids_schema()});
  EXPECT_EQ(b->node, nullptr);
  ASSERT_EQ(b->diags.size(), 1u);
  EXPECT_NE(b->diags.items()[0].to_string().find("must be a condition (bool), got double"),
            std::string::npos)
      << b->diags.items()[0].to_string();
  auto u = prepare("{id: f, type: filter, input: in0, where: \"prise > 1\"}", {bids_schema()});
  EXPECT_EQ(u->node, nullptr);
  ASSERT_FALSE(u->diags.empty());
  EXPECT_NE(u->diags.items()[0].to_string().find("t.yaml:1:43"), std::string::npos)
      << u->diags.items()[0].to_string();
}

TEST(Map, SelectBuildsANewSchemaAndSharesPassthroughColumns) {
  auto b =
      prepare("{id: m, type: map, input: in0, select: {who: name, id: id, eur: \"price * 0.5\"}}",
              {bids_schema()});
  ASSERT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  EXPECT_EQ(b->node->output_schema()->to_string(), "{who: string, id: int64, eur: double}");
  test::FakeContext ctx;
  BatchPtr input = bids();
  BatchPtr out;
  EXPECT_EQ(run(*b->node, {input}, ctx, &out),
            (std::vector<std::string>{"ann|1|5", "null|2|1000", "cid|3|null", "dee|4|750"}));
  EXPECT_EQ(out->column(0).get(), input->column(1).get());
}

TEST(Map, SetOverwritesAndAddsDropRemoves) {
  auto b = prepare(
      "{id: m, type: map, input: in0, "
      "set: {price: \"coalesce(price, 0) + 1\", big: \"price > 100\"},"
      " drop: [name]}",
      {bids_schema()});
  ASSERT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  EXPECT_EQ(b->node->output_schema()->to_string(), "{id: int64, price: double, big: bool}");
  test::FakeContext ctx;
  EXPECT_EQ(run(*b->node, {bids()}, ctx),
            (std::vector<std::string>{"1|11|false", "2|2001|true", "3|1|null", "4|1501|true"}));
}

TEST(Map, KeepsTheFilterSelection) {
  auto f = prepare("{id: f, type: filter, input: in0, where: \"id % 2 = 0\"}", {bids_schema()});
  auto m = prepare("{id: m, type: map, input: in0, select: {id: id, twice: \"id * 2\"}}",
                   {bids_schema()});
  test::FakeContext ctx;
  BatchPtr filtered;
  run(*f->node, {bids()}, ctx, &filtered);
  ASSERT_TRUE(filtered);
  EXPECT_EQ(run(*m->node, {filtered}, ctx), (std::vector<std::string>{"2|4", "4|8"}));
}

TEST(Map, DataErrorsBecomeNullAndAreReported) {
  auto b =
      prepare("{id: m, type: map, input: in0, select: {q: \"id / (id - 2)\"}}", {bids_schema()});
  ASSERT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  test::FakeContext ctx;
  EXPECT_EQ(run(*b->node, {bids()}, ctx), (std::vector<std::string>{"-1", "null", "3", "2"}));
  auto errors = ctx.data_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("division by zero"), std::string::npos) << errors[0];
}

TEST(Map, ReportsEveryProblem) {
  auto b =
      prepare("{id: m, type: map, input: in0, set: {x: \"nope + 1\"}, drop: [ghost], colour: red}",
              {bids_schema()});
  EXPECT_EQ(b->node, nullptr);
  std::string all = b->diags.to_status().message();
  EXPECT_NE(all.find("unknown field 'nope'"), std::string::npos) << all;
  EXPECT_NE(all.find("cannot drop unknown field 'ghost'"), std::string::npos) << all;
  EXPECT_NE(all.find("unknown option 'colour'"), std::string::npos) << all;
  auto both =
      prepare("{id: m, type: map, input: in0, select: {a: id}, drop: [id]}", {bids_schema()});
  EXPECT_NE(both->diags.to_status().message().find("either 'select' or 'set'/'drop'"),
            std::string::npos);
}

TEST(FilterMap, OutputsStillHeldSurviveRecycledBuffers) {
  // The benchmark's filter -> map over full batches: selections and result
  // columns come from per-thread free lists, so every output still held must
  // keep its values while later batches reuse what earlier ones released.
  auto schema = make_schema({{"id", TypeId::kInt64}, {"price", TypeId::kDouble}});
  auto f = prepare("{id: f, type: filter, input: in0, where: \"price > 50\"}", {schema});
  auto m = prepare(
      "{id: m, type: map, input: in0, select: {id: id, eur: \"price * 0.908\", "
      "q: \"(id * 7919) % 1000\"}}",
      {schema});
  ASSERT_TRUE(f->diags.empty() && m->diags.empty());
  test::FakeContext ctx;
  auto filter = f->node->make_operator(0, 1);
  auto map = m->node->make_operator(0, 1);
  ASSERT_TRUE(filter->open(ctx).ok());
  ASSERT_TRUE(map->open(ctx).ok());
  test::CollectOutput filtered, mapped;
  constexpr int64_t kRows = 1024;
  constexpr int kBatches = 24;
  for (int b = 0; b < kBatches; ++b) {
    BatchBuilder in(schema, kRows);
    for (int64_t i = 0; i < kRows; ++i) {
      const int64_t id = b * kRows + i;
      in.append_row(
          {Value::int64(id), Value::float64(static_cast<double>((id * 7919) % 1000) / 10)});
    }
    ASSERT_TRUE(filter->process(0, in.finish(), filtered).ok());
    ASSERT_EQ(filtered.batches.size(), static_cast<size_t>(b + 1));
    ASSERT_TRUE(map->process(0, filtered.batches.back(), mapped).ok());
    // Release every third batch at once (its buffers go back to the free lists).
    if (b % 3 == 1) {
      filtered.batches.back().reset();
      mapped.batches.back().reset();
    }
  }
  size_t checked = 0;
  for (int b = 0; b < kBatches; ++b) {
    const BatchPtr& out = mapped.batches[static_cast<size_t>(b)];
    if (b % 3 == 1) continue;
    ASSERT_TRUE(out);
    size_t k = 0;
    for (int64_t id = b * kRows; id < (b + 1) * kRows; ++id) {
      const double price = static_cast<double>((id * 7919) % 1000) / 10;
      if (!(price > 50)) continue;
      ASSERT_LT(k, out->active_rows());
      const size_t r = out->row_at(k++);
      ASSERT_EQ(out->column(0)->int64_at(r), id);
      ASSERT_EQ(out->column(1)->double_at(r), price * 0.908) << id;
      ASSERT_EQ(out->column(2)->int64_at(r), (id * 7919) % 1000) << id;
      ++checked;
    }
    EXPECT_EQ(k, out->active_rows());
  }
  EXPECT_GT(checked, 8000u);
}

TEST(Union, PassesEveryInputThroughAndChecksSchemas) {
  auto b = prepare("{id: u, type: union, inputs: [in0, in1]}", {bids_schema(), bids_schema()});
  ASSERT_TRUE(b->diags.empty());
  EXPECT_FALSE(b->node->chainable());
  test::FakeContext ctx;
  EXPECT_EQ(run(*b->node, {bids(), bids()}, ctx).size(), 8u);
  auto other = make_schema({{"id", TypeId::kInt64}});
  auto bad = prepare("{id: u, type: union, inputs: [in0, in1]}", {bids_schema(), other});
  EXPECT_EQ(bad->node, nullptr);
  EXPECT_NE(bad->diags.to_status().message().find("input 'in1' has schema {id: int64}"),
            std::string::npos)
      << bad->diags.to_status().message();
}

}  // namespace
}  // namespace df::operators
