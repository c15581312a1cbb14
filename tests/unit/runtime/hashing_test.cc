#include "engine/runtime/hashing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "tests/unit/runtime/test_ops.h"

namespace df::runtime {
namespace {

TEST(HashingTest, CellHashMatchesValueHashForEveryType) {
  auto schema = make_schema({{"b", TypeId::kBool},
                             {"i", TypeId::kInt64},
                             {"d", TypeId::kDouble},
                             {"s", TypeId::kString},
                             {"t", TypeId::kTimestamp}});
  BatchBuilder bb(schema);
  std::vector<std::vector<Value>> rows = {
      {Value::boolean(true), Value::int64(42), Value::float64(4.2), Value::string("hello"),
       Value::timestamp(1700000000000)},
      {Value::null(TypeId::kBool), Value::null(TypeId::kInt64), Value::null(TypeId::kDouble),
       Value::null(TypeId::kString), Value::null(TypeId::kTimestamp)},
      {Value::boolean(false), Value::int64(-1), Value::float64(-0.0),
       Value::string("a longer string over eight bytes"), Value::timestamp(0)},
  };
  for (const auto& r : rows) bb.append_row(r);
  BatchPtr b = bb.finish();
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < schema->size(); ++c) {
      EXPECT_EQ(hash_cell(*b->column(c), r), hash_value(rows[r][c])) << r << "," << c;
    }
  }
  // Nulls hash alike whatever their type.
  for (size_t c = 0; c < schema->size(); ++c) EXPECT_EQ(hash_cell(*b->column(c), 1), kNullHash);
}

TEST(HashingTest, EqualValuesHashAlikeAndDifferentOnesApart) {
  EXPECT_EQ(hash_double(0.0), hash_double(-0.0));
  EXPECT_EQ(hash_double(std::nan("1")), hash_double(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_EQ(hash_int64(7), hash_value(Value::timestamp(7)));  // int64 and timestamp agree
  EXPECT_EQ(hash_string("abcdefghij"), hash_string(std::string("abcdefghij")));
  EXPECT_NE(hash_string("abcdefghij"), hash_string("abcdefghik"));
  EXPECT_NE(hash_string(""), hash_string(std::string_view("\0", 1)));
  EXPECT_NE(hash_int64(1), hash_int64(2));
  EXPECT_NE(hash_combine(hash_int64(1), hash_int64(2)), hash_combine(hash_int64(2), hash_int64(1)));
}

// A row marked as repeating the row before takes its hash: the same hashes
// as hashing every row, when the marks are right (runs of one key, rows
// picked by a selection).
TEST(HashingTest, RowsMarkedAsRepeatsTakeTheHashBeforeThem) {
  auto schema = make_schema({{"a", TypeId::kInt64}, {"s", TypeId::kString}});
  BatchBuilder bb(schema);
  for (int r = 0; r < 600; ++r) {
    bb.append_row({Value::int64(r / 50), Value::string("k" + std::to_string(r / 120))});
  }
  BatchPtr b = bb.finish();
  auto sel = std::make_shared<Selection>();
  for (uint32_t r = 0; r < 600; r += 7) sel->push_back(r);
  BatchPtr filtered = b->with_selection(sel);
  const std::vector<size_t> fields = {0, 1};
  std::vector<uint8_t> repeats(filtered->active_rows(), 0);
  size_t repeated = 0;
  for (size_t k = 1; k < repeats.size(); ++k) {
    const size_t r = filtered->row_at(k);
    const size_t before = filtered->row_at(k - 1);
    repeats[k] = r / 50 == before / 50 && r / 120 == before / 120;
    repeated += repeats[k];
  }
  ASSERT_GT(repeated, repeats.size() / 2);
  std::vector<uint64_t> each;
  std::vector<uint64_t> reused;
  hash_rows(*filtered, fields, each);
  hash_rows(*filtered, fields, reused, &repeats);
  EXPECT_EQ(reused, each);
  EXPECT_GT(std::set<uint64_t>(reused.begin(), reused.end()).size(), 10u);
}

TEST(HashingTest, RowHashesFollowTheSelectionAndSpreadOverSubtasks) {
  BatchPtr b = testing::make_rows(0, 1000);
  auto sel = std::make_shared<Selection>();
  for (uint32_t r = 0; r < 1000; r += 3) sel->push_back(r);
  BatchPtr filtered = b->with_selection(sel);
  std::vector<uint64_t> hashes;
  hash_rows(*filtered, {1}, hashes);
  ASSERT_EQ(hashes.size(), sel->size());
  for (size_t k = 0; k < hashes.size(); ++k) {
    EXPECT_EQ(hashes[k], hash_row(*filtered, {1}, filtered->row_at(k)));
  }
  std::vector<int> counts(4, 0);
  for (uint64_t h : hashes) {
    size_t s = subtask_for_hash(h, 4);
    ASSERT_LT(s, 4u);
    counts[s]++;
  }
  for (int c : counts) EXPECT_GT(c, 334 / 8) << "badly skewed";
  std::set<uint64_t> distinct(hashes.begin(), hashes.end());
  EXPECT_EQ(distinct.size(), hashes.size());
}

}  // namespace
}  // namespace df::runtime
