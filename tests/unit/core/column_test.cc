// Column::make_for_overwrite: recycled per thread, always handed out with the
// requested type and length and without nulls, whatever the column held before.
// ColumnBuilder's string arenas: reused per thread by a builder told to expect
// enough rows, never too big, the values always exactly the appended ones.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/column.h"

namespace df {
namespace {

TEST(ColumnForOverwrite, HasTheTypeAndLengthAndNoNulls) {
  for (TypeId t : {TypeId::kBool, TypeId::kInt64, TypeId::kTimestamp, TypeId::kDouble}) {
    auto c = Column::make_for_overwrite(t, 100);
    EXPECT_EQ(c->type(), t);
    EXPECT_EQ(c->size(), 100u);
    EXPECT_FALSE(c->has_nulls());
  }
  EXPECT_THROW(Column::make_for_overwrite(TypeId::kString, 3), std::logic_error);
}

TEST(ColumnForOverwrite, ReusesAReleasedColumnWithoutItsNulls) {
  const Column* first = nullptr;
  {
    auto c = Column::make_for_overwrite(TypeId::kDouble, 64);
    for (size_t i = 0; i < 64; ++i) c->mutable_double_data()[i] = static_cast<double>(i) / 4;
    c->set_null(7);
    ASSERT_TRUE(c->is_null(7));
    first = c.get();
    ColumnPtr shared = c;  // a reader still holds it after the writer let go
    c.reset();
    EXPECT_EQ(shared->double_at(9), 2.25);
  }
  auto again = Column::make_for_overwrite(TypeId::kDouble, 64);
  EXPECT_EQ(again.get(), first);  // the most recently released column of the type
  EXPECT_FALSE(again->has_nulls());
  EXPECT_FALSE(again->is_null(7));
  again->set_null(3);
  EXPECT_TRUE(again->is_null(3));
  EXPECT_FALSE(again->is_null(7));
}

TEST(ColumnForOverwrite, ShorterAndLongerRequests) {
  const Column* released = nullptr;
  {
    auto c = Column::make_for_overwrite(TypeId::kInt64, 32);
    for (size_t i = 0; i < 32; ++i) c->mutable_int64_data()[i] = -1;
    released = c.get();
  }
  // A shorter column fits in the released one's storage.
  auto shorter = Column::make_for_overwrite(TypeId::kInt64, 10);
  EXPECT_EQ(shorter.get(), released);
  EXPECT_EQ(shorter->size(), 10u);
  shorter.reset();
  // A longer one than anything free is new; every slot is readable (zero or old values).
  auto longer = Column::make_for_overwrite(TypeId::kInt64, 4096);
  EXPECT_EQ(longer->size(), 4096u);
  int64_t sum = 0;
  for (size_t i = 0; i < longer->size(); ++i) sum += longer->int64_at(i) != 0;
  EXPECT_LE(sum, 32);
  // Another type never gets this storage.
  auto other = Column::make_for_overwrite(TypeId::kBool, 10);
  EXPECT_NE(static_cast<const void*>(other.get()), static_cast<const void*>(released));
}

TEST(ColumnForOverwrite, ReleasedOnAnotherThreadAndAtThreadExit) {
  // A column made here and released there goes to that thread's free list,
  // which is freed when the thread ends (checked by ASan's leak detector).
  std::vector<std::shared_ptr<Column>> made;
  for (int i = 0; i < 40; ++i) made.push_back(Column::make_for_overwrite(TypeId::kDouble, 256));
  std::thread t([cols = std::move(made)]() mutable {
    cols.clear();
    auto c = Column::make_for_overwrite(TypeId::kDouble, 256);
    c->mutable_double_data()[255] = 1.5;
    EXPECT_EQ(c->double_at(255), 1.5);
  });
  t.join();
  auto here = Column::make_for_overwrite(TypeId::kDouble, 256);
  EXPECT_EQ(here->size(), 256u);
}

// A string column of `rows` values of `len` bytes each ('a' + row % 26),
// every 10th null when `nulls`.
ColumnPtr build_strings(size_t rows, size_t len, size_t reserve, bool nulls = false) {
  ColumnBuilder b(TypeId::kString, reserve);
  for (size_t i = 0; i < rows; ++i) {
    if (nulls && i % 10 == 0) {
      b.append_null();
    } else {
      b.append_string(std::string(len, static_cast<char>('a' + i % 26)));
    }
  }
  return b.finish();
}

void expect_strings(const Column& c, size_t rows, size_t len, bool nulls = false) {
  ASSERT_EQ(c.size(), rows);
  for (size_t i = 0; i < rows; ++i) {
    if (nulls && i % 10 == 0) {
      ASSERT_TRUE(c.is_null(i)) << i;
    } else {
      ASSERT_TRUE(c.is_valid(i)) << i;
      ASSERT_EQ(c.string_at(i), std::string(len, static_cast<char>('a' + i % 26))) << i;
    }
  }
}

// append_int64_repeated (n copies) and append_int64s (n values), after
// cells with and without nulls.
TEST(ColumnBuilderInts, RepeatedAndCopiedValuesFollowWhatWasAppended) {
  ColumnBuilder plain(TypeId::kTimestamp);
  plain.append_int64(-5);
  plain.append_int64_repeated(1000, 3);
  plain.append_int64_repeated(7, 0);
  const int64_t more[] = {3, -4};
  plain.append_int64s(more, 2);
  ColumnPtr c = plain.finish();
  ASSERT_EQ(c->size(), 6u);
  EXPECT_FALSE(c->has_nulls());
  EXPECT_EQ(std::vector<int64_t>(c->int64_data(), c->int64_data() + 6),
            (std::vector<int64_t>{-5, 1000, 1000, 1000, 3, -4}));

  ColumnBuilder nulls(TypeId::kInt64);
  nulls.append_null();
  nulls.append_int64_repeated(42, 2);
  nulls.append_null();
  nulls.append_int64s(more, 1);
  ColumnPtr n = nulls.finish();
  ASSERT_EQ(n->size(), 5u);
  EXPECT_TRUE(n->is_null(0));
  EXPECT_FALSE(n->is_null(1));
  EXPECT_FALSE(n->is_null(2));
  EXPECT_TRUE(n->is_null(3));
  EXPECT_FALSE(n->is_null(4));
  EXPECT_EQ(n->int64_data()[1], 42);
  EXPECT_EQ(n->int64_data()[2], 42);
  EXPECT_EQ(n->int64_data()[4], 3);
}

// append_int64_slots: n valid slots the caller writes, any of which
// set_null() marks null, between cells appended one at a time.
TEST(ColumnBuilderInts, SlotsWrittenInPlaceAndMarkedNull) {
  ColumnBuilder b(TypeId::kInt64);
  b.append_int64(1);
  int64_t* slots = b.append_int64_slots(3);
  slots[0] = 10;
  slots[1] = 0;
  slots[2] = 30;
  b.set_null(2);  // the middle slot
  b.append_int64(4);
  slots = b.append_int64_slots(2);  // after a null: valid slots all the same
  slots[0] = 50;
  slots[1] = 60;
  ColumnPtr c = b.finish();
  ASSERT_EQ(c->size(), 7u);
  const std::vector<bool> nulls{false, false, true, false, false, false, false};
  for (size_t i = 0; i < nulls.size(); ++i) EXPECT_EQ(c->is_null(i), nulls[i]) << "slot " << i;
  for (size_t i : {0, 1, 3, 4, 5, 6}) {
    EXPECT_EQ(c->int64_at(i), (std::vector<int64_t>{1, 10, 0, 30, 4, 50, 60}[i])) << "slot " << i;
  }
}

TEST(ColumnBuilderStrings, ReusesAReleasedArenaThatFitsTheExpectedRows) {
  // On a thread of its own, so that no other test's arenas are on its list.
  std::thread t([] {
    const char* arena = nullptr;
    {
      ColumnPtr first = build_strings(256, 100, 256);
      expect_strings(*first, 256, 100);
      arena = first->string_at(0).data();
    }
    // Similar rows: the released arena, overwritten.
    ColumnPtr second = build_strings(256, 90, 256, /*nulls=*/true);
    EXPECT_EQ(second->string_at(1).data(), arena);
    expect_strings(*second, 256, 90, true);
    second.reset();
    // Much smaller needs (more than 4x below the arena): not that arena.
    ColumnPtr small = build_strings(64, 80, 64);
    EXPECT_NE(small->string_at(0).data(), arena);
    expect_strings(*small, 64, 80);
    // No row count given: grows as it goes.
    ColumnPtr unsized = build_strings(300, 100, 0);
    expect_strings(*unsized, 300, 100);
    // A builder that expects rows it then exceeds grows beyond the arena.
    ColumnPtr longer = build_strings(1000, 100, 256);
    expect_strings(*longer, 1000, 100);
    // A reader keeps its column (arena included) whatever is built after.
    ColumnPtr kept = build_strings(256, 100, 256);
    ColumnPtr later = build_strings(256, 100, 256);
    EXPECT_NE(later->string_at(0).data(), kept->string_at(0).data());
    expect_strings(*kept, 256, 100);
    expect_strings(*later, 256, 100);
  });
  t.join();
}

TEST(ColumnBuilderStrings, ReleasedOnAnotherThread) {
  // Arenas go to the list of the thread that drops the last reference and
  // are freed when it ends (checked by ASan's leak detector).
  std::vector<ColumnPtr> made;
  for (int i = 0; i < 40; ++i) made.push_back(build_strings(128, 64, 128));
  std::thread t([cols = std::move(made)]() mutable {
    cols.clear();
    ColumnPtr c = build_strings(128, 64, 128);
    expect_strings(*c, 128, 64);
  });
  t.join();
}

}  // namespace
}  // namespace df
