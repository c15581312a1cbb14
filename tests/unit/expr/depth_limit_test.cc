// Hostile expression text: nesting far past the parser's depth limit is an
// error with a location, never a stack overflow; nesting within it compiles.
#include <gtest/gtest.h>

#include <string>

#include "tests/unit/expr/expr_test_util.h"

namespace df::expr {
namespace {

using testing::compile_error;
using testing::eval1;
using testing::I;

std::string repeat(const std::string& s, int n) {
  std::string out;
  out.reserve(s.size() * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(ExprDepthLimit, HundredThousandNestedParenthesesIsAnErrorWithLineAndColumn) {
  const std::string text = repeat("(", 100000) + "1" + repeat(")", 100000);
  const std::string error = compile_error(text, SourceLocation{"p.yaml", 7, 12});
  // The 257th '(' (column 12 + 256) is where the limit is passed.
  EXPECT_EQ(error, "p.yaml:7:268: the expression nests deeper than 256 levels");
}

TEST(ExprDepthLimit, LongOperatorChainsAndPrefixRunsAreBoundedToo) {
  EXPECT_NE(compile_error("1" + repeat(" + 1", 100000)).find("nests deeper than 256 levels"),
            std::string::npos);
  EXPECT_NE(compile_error(repeat("not ", 100000) + "flag").find("nests deeper than 256 levels"),
            std::string::npos);
  EXPECT_NE(compile_error(repeat("-", 100000) + "qty").find("nests deeper than 256 levels"),
            std::string::npos);
  EXPECT_NE(compile_error(repeat("abs(", 100000) + "qty" + repeat(")", 100000))
                .find("nests deeper than 256 levels"),
            std::string::npos);
  EXPECT_NE(compile_error("qty" + repeat(" is null", 100000)).find("nests deeper than 256 levels"),
            std::string::npos);
}

TEST(ExprDepthLimit, ReasonableNestingStillCompilesAndEvaluates) {
  EXPECT_EQ(eval1(repeat("(", 100) + "1" + repeat(")", 100)), I(1));
  EXPECT_EQ(eval1("1" + repeat(" + 1", 200)), I(201));
}

}  // namespace
}  // namespace df::expr
