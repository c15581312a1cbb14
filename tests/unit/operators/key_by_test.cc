// key_by: declares a hash exchange on its fields and passes rows through.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "operators/operators.h"
#include "operators/stateful.h"
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

// mark_repeated_keys agrees with same_key_cells row by row, over every row
// (the contiguous loop for int64 columns) and over picked rows, with int64
// runs, a string column and a column holding nulls.
TEST(MarkRepeatedKeys, AgreesWithComparingEachRowToTheOneBefore) {
  auto schema = make_schema({{"a", TypeId::kInt64},
                             {"t", TypeId::kTimestamp},
                             {"s", TypeId::kString},
                             {"m", TypeId::kInt64}});
  BatchBuilder bb(schema);
  for (int r = 0; r < 3000; ++r) {
    bb.append_row({Value::int64(r / 40), Value::timestamp(r / 100 * 7),
                   Value::string("s" + std::to_string(r / 250)),
                   r % 97 == 0 ? Value::null(TypeId::kInt64) : Value::int64(r / 60)});
  }
  BatchPtr b = bb.finish();
  std::vector<uint32_t> picked;
  for (uint32_t r = 0; r < 3000; r += r % 5 == 0 ? 3 : 1) picked.push_back(r);
  for (const std::vector<size_t>& fields : {std::vector<size_t>{0}, std::vector<size_t>{0, 1},
                                            std::vector<size_t>{1, 2}, std::vector<size_t>{3, 0}}) {
    std::vector<uint8_t> every;
    mark_repeated_keys(*b, fields, nullptr, b->num_rows(), every);
    ASSERT_EQ(every.size(), b->num_rows());
    size_t repeated = 0;
    for (size_t k = 0; k < every.size(); ++k) {
      ASSERT_EQ(every[k] != 0, k > 0 && same_key_cells(*b, fields, k - 1, k)) << k;
      repeated += every[k];
    }
    EXPECT_GT(repeated, every.size() / 2);
    EXPECT_LT(repeated, every.size());
    std::vector<uint8_t> some;
    mark_repeated_keys(*b, fields, picked.data(), picked.size(), some);
    ASSERT_EQ(some.size(), picked.size());
    for (size_t k = 0; k < some.size(); ++k) {
      ASSERT_EQ(some[k] != 0, k > 0 && same_key_cells(*b, fields, picked[k - 1], picked[k])) << k;
    }
  }
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

// same_key_cells says true only when the rows' key encodings are equal:
// equal cells of every type, null against null; never for a null against a
// value, -0.0 against 0.0 or an equal prefix of another field.
TEST(SameKeyCells, TrueOnlyForEqualCellsOfEveryKeyField) {
  const SchemaPtr schema = make_schema({{"s", TypeId::kString},
                                        {"i", TypeId::kInt64},
                                        {"d", TypeId::kDouble},
                                        {"b", TypeId::kBool},
                                        {"t", TypeId::kTimestamp}});
  BatchBuilder bb(schema);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto row = [&](Value s, Value i, Value d, Value b, Value t) {
    bb.append_row({std::move(s), std::move(i), std::move(d), std::move(b), std::move(t)});
  };
  row(Value::string("ab"), Value::int64(1), Value::float64(0.0), Value::boolean(true),
      Value::timestamp(5));  // 0
  row(Value::string("ab"), Value::int64(1), Value::float64(0.0), Value::boolean(true),
      Value::timestamp(5));  // 1: = 0
  row(Value::string("a"), Value::int64(2), Value::float64(-0.0), Value::boolean(false),
      Value::timestamp(6));  // 2: every cell differs from 0
  row(Value::null(TypeId::kString), Value::null(TypeId::kInt64), Value::float64(nan),
      Value::null(TypeId::kBool), Value::null(TypeId::kTimestamp));  // 3
  row(Value::null(TypeId::kString), Value::null(TypeId::kInt64), Value::float64(nan),
      Value::null(TypeId::kBool), Value::null(TypeId::kTimestamp));  // 4: = 3
  row(Value::string("ab"), Value::int64(1), Value::float64(0.0), Value::boolean(true),
      Value::timestamp(9));  // 5: 0 but for t
  const BatchPtr batch = bb.finish();
  const std::vector<size_t> all = {0, 1, 2, 3, 4};
  EXPECT_TRUE(same_key_cells(*batch, all, 0, 1));
  EXPECT_TRUE(same_key_cells(*batch, all, 3, 4));  // nulls, and a NaN of the same bits
  EXPECT_FALSE(same_key_cells(*batch, all, 0, 3));
  for (size_t f = 0; f < 5; ++f) {
    SCOPED_TRACE(f);
    EXPECT_FALSE(same_key_cells(*batch, {f}, 0, 2));  // -0.0 too: a false "different" is safe
    EXPECT_FALSE(same_key_cells(*batch, {f}, 0, 3));  // a value against a null
    EXPECT_FALSE(same_key_cells(*batch, {f}, 3, 0));
  }
  EXPECT_TRUE(same_key_cells(*batch, {0, 1, 2, 3}, 0, 5));  // only the fields asked
  EXPECT_FALSE(same_key_cells(*batch, all, 0, 5));
  // Whenever it says true, the encodings are equal.
  for (size_t a = 0; a < 6; ++a) {
    for (size_t c = 0; c < 6; ++c) {
      std::string ka;
      std::string kc;
      encode_row_key(*batch, all, a, ka);
      encode_row_key(*batch, all, c, kc);
      if (same_key_cells(*batch, all, a, c)) {
        EXPECT_EQ(ka, kc) << a << " " << c;
      }
    }
  }
}

}  // namespace
}  // namespace df::operators
