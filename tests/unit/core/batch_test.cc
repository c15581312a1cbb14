#include "engine/core/batch.h"

#include <gtest/gtest.h>

#include "engine/core/element.h"

namespace df {
namespace {

SchemaPtr test_schema() {
  return make_schema({{"id", TypeId::kInt64},
                      {"name", TypeId::kString},
                      {"ok", TypeId::kBool},
                      {"price", TypeId::kDouble},
                      {"at", TypeId::kTimestamp}});
}

BatchPtr sample() {
  BatchBuilder b(test_schema());
  for (int i = 0; i < 5; ++i) {
    b.append_row({Value::int64(i),
                  i == 2 ? Value::null(TypeId::kString) : Value::string("n" + std::to_string(i)),
                  Value::boolean(i % 2 == 0), Value::float64(i * 1.5), Value::timestamp(1000 * i)});
  }
  return b.finish();
}

TEST(Schema, LooksUpNames) {
  auto s = test_schema();
  EXPECT_EQ(s->index_of("price"), 3u);
  EXPECT_FALSE(s->index_of("nope").has_value());
  EXPECT_EQ(s->to_string(), "{id: int64, name: string, ok: bool, price: double, at: timestamp}");
  EXPECT_EQ(parse_type_name("BIGINT"), TypeId::kInt64);
  EXPECT_FALSE(parse_type_name("decimal").has_value());
}

TEST(Column, BuilderKeepsValuesAndNulls) {
  auto b = sample();
  ASSERT_EQ(b->num_rows(), 5u);
  EXPECT_EQ(b->column(0)->int64_at(4), 4);
  EXPECT_EQ(b->column(1)->string_at(1), "n1");
  EXPECT_TRUE(b->column(1)->is_null(2));
  EXPECT_FALSE(b->column(1)->is_null(3));
  EXPECT_EQ(b->column(1)->string_at(3), "n3");
  EXPECT_FALSE(b->column(0)->has_nulls());
  EXPECT_EQ(b->column(4)->value_at(2), Value::timestamp(2000));
  EXPECT_EQ(b->column(3)->value_at(3).as_double(), 4.5);
}

TEST(Column, MakeAndSetNull) {
  auto c = Column::make(TypeId::kDouble, 3);
  c->mutable_double_data()[1] = 2.5;
  c->set_null(2);
  EXPECT_EQ(c->double_at(1), 2.5);
  EXPECT_TRUE(c->is_null(2));
  EXPECT_TRUE(c->is_valid(0));
  auto k = Column::constant(Value::string("x"), 4);
  EXPECT_EQ(k->size(), 4u);
  EXPECT_EQ(k->string_at(3), "x");
}

TEST(Batch, SelectionSharesColumns) {
  auto b = sample();
  auto sel = std::make_shared<const Selection>(Selection{1, 3, 4});
  auto f = b->with_selection(sel);
  EXPECT_EQ(f->active_rows(), 3u);
  EXPECT_EQ(f->num_rows(), 5u);
  EXPECT_EQ(f->column(0).get(), b->column(0).get());  // no copy
  std::vector<int64_t> seen;
  f->for_each_row([&](size_t r) { seen.push_back(f->column(0)->int64_at(r)); });
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(element_rows(StreamElement(f)), 3u);
  EXPECT_EQ(element_rows(StreamElement(Watermark{5})), 0u);
}

TEST(Batch, CompactAndSlice) {
  auto b = sample();
  auto f = b->with_selection(std::make_shared<const Selection>(Selection{0, 2, 4}));
  auto c = f->compact();
  ASSERT_EQ(c->num_rows(), 3u);
  EXPECT_EQ(c->selection(), nullptr);
  EXPECT_EQ(c->column(0)->int64_at(1), 2);
  EXPECT_TRUE(c->column(1)->is_null(1));
  EXPECT_EQ(c->column(1)->string_at(2), "n4");
  auto s = f->slice(1, 3);
  ASSERT_EQ(s->num_rows(), 2u);
  EXPECT_EQ(s->column(0)->int64_at(0), 2);
}

TEST(Batch, RejectsMismatchedColumns) {
  auto s = make_schema({{"a", TypeId::kInt64}});
  EXPECT_THROW(Batch(s, {}, 0), std::logic_error);
}

}  // namespace
}  // namespace df

namespace df {
namespace {

TEST(Batch, NarrowDropsEmptyKeepsWholeSharesPartial) {
  auto b = sample();
  EXPECT_EQ(Batch::narrow(b, std::make_shared<const Selection>()), nullptr);
  EXPECT_EQ(Batch::narrow(b, std::make_shared<const Selection>(Selection{0, 1, 2, 3, 4})), b);
  auto part = Batch::narrow(b, std::make_shared<const Selection>(Selection{1, 3}));
  ASSERT_NE(part, nullptr);
  EXPECT_EQ(part->active_rows(), 2u);
  EXPECT_EQ(part->column(0).get(), b->column(0).get());
}

// The runtime stamps every source batch; an unshared one is stamped in place,
// a shared one is copied so that its other holders never see it change.
TEST(Batch, StampedInPlaceOnlyWhenUnshared) {
  BatchPtr b = sample();
  const Batch* raw = b.get();
  b = Batch::stamped(std::move(b), 42);
  EXPECT_EQ(b.get(), raw);
  EXPECT_EQ(b->source_time_ns(), 42);

  const BatchPtr other_holder = b;
  BatchPtr restamped = Batch::stamped(b, 7);
  EXPECT_NE(restamped.get(), raw);
  EXPECT_EQ(restamped->source_time_ns(), 7);
  EXPECT_EQ(restamped->column(0).get(), b->column(0).get());
  EXPECT_EQ(other_holder->source_time_ns(), 42);
}

}  // namespace
}  // namespace df
