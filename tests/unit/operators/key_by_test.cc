// key_by: declares a hash exchange on its fields and passes rows through.
#include <gtest/gtest.h>

#include "operators/operators.h"
#include "tests/support/operator_harness.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

SchemaPtr clicks_schema() {
  return make_schema({{"user", TypeId::kString}, {"page", TypeId::kString}, {"n", TypeId::kInt64}});
}

std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml) {
  return test::prepare_operator(yaml, "key_by", {"clicks"}, {clicks_schema()});
}

TEST(KeyBy, DeclaresHashPartitioningOnItsFields) {
  auto b = prepare("{id: by_user, type: key_by, input: clicks, fields: [page, user]}");
  ASSERT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  ASSERT_TRUE(b->node);
  EXPECT_FALSE(b->node->chainable());
  auto p = b->node->input_partitioning(0);
  EXPECT_EQ(p.kind, runtime::InputPartitioning::Kind::kHash);
  EXPECT_EQ(p.key_fields, (std::vector<size_t>{1, 0}));
  EXPECT_EQ(*b->node->output_schema(), *clicks_schema());
  EXPECT_EQ(b->node->describe(), "by page, user");
}

TEST(KeyBy, AcceptsOneFieldAsAScalar) {
  auto b = prepare("{id: k, type: key_by, input: clicks, fields: n}");
  ASSERT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  EXPECT_EQ(b->node->input_partitioning(0).key_fields, (std::vector<size_t>{2}));
}

TEST(KeyBy, PassesBatchesThroughUnchanged) {
  auto b = prepare("{id: k, type: key_by, input: clicks, fields: [user]}");
  ASSERT_TRUE(b->node);
  BatchBuilder bb(clicks_schema());
  bb.append_row({Value::string("ann"), Value::string("/"), Value::int64(1)});
  bb.append_row({Value::null(TypeId::kString), Value::string("/a"), Value::int64(2)});
  BatchPtr in = bb.finish();
  test::FakeContext ctx;
  test::CollectOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  ASSERT_TRUE(op->process(0, in, out).ok());
  ASSERT_TRUE(op->on_watermark(Watermark{42}, out).ok());
  ASSERT_TRUE(op->finish(out).ok());
  ASSERT_EQ(out.batches.size(), 1u);
  EXPECT_EQ(out.batches[0], in);  // the same batch, not a copy
  ASSERT_EQ(out.watermarks.size(), 1u);
  EXPECT_EQ(out.watermarks[0].timestamp_ms, 42);
}

TEST(KeyBy, ReportsUnknownFieldsAtTheirLocation) {
  auto b = prepare("id: k\ntype: key_by\ninput: clicks\nfields: [user, usr, pgae]\n");
  EXPECT_FALSE(b->node);
  ASSERT_EQ(b->diags.size(), 2u) << b->diags.to_status().message();
  EXPECT_EQ(b->diags.items()[0].location.line, 4);
  EXPECT_EQ(b->diags.items()[0].location.column, 16);
  EXPECT_NE(b->diags.items()[0].message.find("unknown field 'usr'"), std::string::npos)
      << b->diags.items()[0].message;
  EXPECT_NE(b->diags.items()[1].message.find("unknown field 'pgae'"), std::string::npos);
  EXPECT_EQ(b->diags.items()[1].location.column, 21);
}

TEST(KeyBy, RequiresFields) {
  auto b = prepare("{id: k, type: key_by, input: clicks}");
  EXPECT_FALSE(b->node);
  ASSERT_EQ(b->diags.size(), 1u);
  EXPECT_NE(b->diags.items()[0].message.find("fields"), std::string::npos)
      << b->diags.items()[0].message;
  auto empty = prepare("{id: k, type: key_by, input: clicks, fields: []}");
  EXPECT_FALSE(empty->node);
  ASSERT_EQ(empty->diags.size(), 1u);
  EXPECT_NE(empty->diags.items()[0].message.find("non-empty list"), std::string::npos);
}

}  // namespace
}  // namespace df::operators
