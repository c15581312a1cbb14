#include "engine/core/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace df {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid("not positive: " + std::to_string(v));
  return v;
}

Result<int> twice(int v) {
  DF_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check(int v) {
  DF_RETURN_IF_ERROR(parse_positive(v).status());
  return Status::OK();
}

TEST(Status, OkAndErrors) {
  EXPECT_TRUE(Status::OK().ok());
  Status s = Status::io_error("disk gone");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.to_string(), "IoError: disk gone");
  EXPECT_EQ(s.with_context("writing x").message(), "writing x: disk gone");
  EXPECT_EQ(Status::OK().with_context("ignored").to_string(), "OK");
}

TEST(Result, MacrosPropagate) {
  auto ok = twice(21);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 42);
  auto bad = twice(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "not positive: -1");
  EXPECT_TRUE(check(3).ok());
  EXPECT_EQ(check(0).message(), "not positive: 0");
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(5));
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

}  // namespace
}  // namespace df
