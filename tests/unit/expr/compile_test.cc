// Parsing, binding and compile-time errors: literals, precedence, names,
// types, error locations, to_string(), referenced_fields(), is_constant().
#include <gtest/gtest.h>

#include "tests/unit/expr/expr_test_util.h"

namespace df::expr::testing {
namespace {

std::string normalized(std::string_view text) {
  auto e = must_compile(text, *test_schema());
  return e ? e->to_string() : "<error>";
}

TEST(ExprLiterals, EveryKindOfLiteral) {
  EXPECT_EQ(eval1("42"), I(42));
  EXPECT_EQ(eval1("4.2"), D(4.2));
  EXPECT_EQ(eval1(".5"), D(0.5));
  EXPECT_EQ(eval1("1e3"), D(1000.0));
  EXPECT_EQ(eval1("'text'"), S("text"));
  EXPECT_EQ(eval1("'it''s'"), S("it's"));
  EXPECT_EQ(eval1("''"), S(""));
  EXPECT_EQ(eval1("true"), B(true));
  EXPECT_EQ(eval1("FALSE"), B(false));
  EXPECT_TRUE(eval1("null").is_null());
  EXPECT_EQ(eval1("-9223372036854775808"), I(INT64_MIN));
  EXPECT_EQ(eval1("9223372036854775807"), I(INT64_MAX));
  EXPECT_EQ(eval1("-2.5"), D(-2.5));
}

TEST(ExprLiterals, OutOfRangeIntegerIsACompileError) {
  EXPECT_EQ(compile_error("9223372036854775808"),
            "line 1, column 1: integer literal 9223372036854775808 is out of the int64 range");
}

TEST(ExprLiterals, ResultTypes) {
  auto s = test_schema();
  EXPECT_EQ(must_compile("1", *s)->result_type(), TypeId::kInt64);
  EXPECT_EQ(must_compile("1.5", *s)->result_type(), TypeId::kDouble);
  EXPECT_EQ(must_compile("qty + 1", *s)->result_type(), TypeId::kInt64);
  EXPECT_EQ(must_compile("qty + 1.0", *s)->result_type(), TypeId::kDouble);
  EXPECT_EQ(must_compile("qty * price", *s)->result_type(), TypeId::kDouble);
  EXPECT_EQ(must_compile("ts - ts", *s)->result_type(), TypeId::kInt64);
  EXPECT_EQ(must_compile("ts + 1000", *s)->result_type(), TypeId::kTimestamp);
  EXPECT_EQ(must_compile("1000 + ts", *s)->result_type(), TypeId::kTimestamp);
  EXPECT_EQ(must_compile("ts - 1000", *s)->result_type(), TypeId::kTimestamp);
  EXPECT_EQ(must_compile("name = 'x'", *s)->result_type(), TypeId::kBool);
  EXPECT_EQ(must_compile("concat(name, qty)", *s)->result_type(), TypeId::kString);
  EXPECT_EQ(must_compile("floor(price)", *s)->result_type(), TypeId::kDouble);
  EXPECT_EQ(must_compile("floor(qty)", *s)->result_type(), TypeId::kInt64);
  EXPECT_EQ(must_compile("round(price, 2)", *s)->result_type(), TypeId::kDouble);
  EXPECT_EQ(must_compile("round(qty)", *s)->result_type(), TypeId::kInt64);
  EXPECT_EQ(must_compile("if(flag, qty, price)", *s)->result_type(), TypeId::kDouble);
  EXPECT_EQ(must_compile("coalesce(null, qty)", *s)->result_type(), TypeId::kInt64);
  EXPECT_EQ(must_compile("cast(qty as text)", *s)->result_type(), TypeId::kString);
  EXPECT_EQ(must_compile("rand()", *s)->result_type(), TypeId::kDouble);
}

TEST(ExprFields, PlainAndBackquotedNames) {
  EXPECT_EQ(eval1("qty", {I(1), I(7)}), I(7));
  EXPECT_EQ(eval1("`weird name` + 1", {I(1), I(7), D(0), S(""), B(true), T(0), I(41)}), I(42));
  auto s = make_schema({{"a`b", TypeId::kInt64}, {"and", TypeId::kInt64}});
  auto e = must_compile("`a``b` + `and`", *s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->to_string(), "(`a``b` + `and`)");
  EvalContext ctx;
  auto vals = eval_alive(*e, *make_batch(s, {{I(2), I(3)}}), ctx);
  EXPECT_EQ(vals[0], I(5));
}

TEST(ExprFields, NamesAreCaseSensitiveKeywordsAreNot) {
  EXPECT_EQ(compile_error("QTY > 1"),
            "line 1, column 1: unknown field 'QTY' (fields: auction, qty, price, name, flag, ts, "
            "weird name, other)");
  EXPECT_EQ(eval1("qty > 1 AND NOT flag Or FALSE", {I(0), I(5), D(0), S(""), B(false)}), B(true));
  EXPECT_EQ(eval1("Lower(UPPER('aB'))"), S("ab"));
  EXPECT_EQ(eval1("CAST('7' AS INT64) + 1"), I(8));
  EXPECT_EQ(eval1("qty IS NULL"), B(true));
  EXPECT_EQ(eval1("qty Is Not Null"), B(false));
  EXPECT_EQ(eval1("2 IN (1, 2)"), B(true));
  EXPECT_EQ(eval1("2 BETWEEN 1 AND 3"), B(true));
  EXPECT_EQ(eval1("'abc' LIKE 'a%'"), B(true));
  EXPECT_EQ(eval1("NULL IS NULL"), B(true));
  EXPECT_EQ(eval1("TRUE"), B(true));
}

TEST(ExprPrecedence, ArithmeticBindsTighterThanComparison) {
  EXPECT_EQ(eval1("1 + 2 * 3"), I(7));
  EXPECT_EQ(eval1("(1 + 2) * 3"), I(9));
  EXPECT_EQ(eval1("7 - 2 - 1"), I(4));
  EXPECT_EQ(eval1("8 / 2 / 2"), I(2));
  EXPECT_EQ(eval1("2 + 7 % 3"), I(3));
  EXPECT_EQ(eval1("2 * 7 % 3"), I(2));
  EXPECT_EQ(eval1("-2 * 3"), I(-6));
  EXPECT_EQ(eval1("- (2 + 3) * 2"), I(-10));
  EXPECT_EQ(eval1("1 + 1 = 2"), B(true));
  EXPECT_EQ(normalized("1 + 2 * 3 = 7"), "((1 + (2 * 3)) = 7)");
}

TEST(ExprPrecedence, NotThenAndThenOr) {
  // not > and > or; comparison binds tighter than not (SQL).
  EXPECT_EQ(eval1("not false and false"), B(false));
  EXPECT_EQ(eval1("not (false and false)"), B(true));
  EXPECT_EQ(eval1("true or true and false"), B(true));
  EXPECT_EQ(eval1("(true or true) and false"), B(false));
  EXPECT_EQ(eval1("false and false or true"), B(true));
  EXPECT_EQ(eval1("not 1 = 2"), B(true));
  EXPECT_EQ(eval1("1 < 2 and 3 > 2 or 1 = 0"), B(true));
  EXPECT_EQ(normalized("not qty = 1 and flag or other"), "(((not (qty = 1)) and flag) or other)");
  EXPECT_EQ(normalized("qty between 1 and 2 and flag"), "((qty between 1 and 2) and flag)");
}

TEST(ExprToString, NormalisedFullyParenthesised) {
  EXPECT_EQ(normalized("price * 0.908"), "(price * 0.908)");
  EXPECT_EQ(normalized("price*1"), "(price * 1)");  // implicit casts are not printed
  EXPECT_EQ(normalized("qty <> 1"), "(qty != 1)");
  EXPECT_EQ(normalized("'it''s'"), "'it''s'");
  EXPECT_EQ(normalized("4.0"), "4.0");
  EXPECT_EQ(normalized("-qty"), "(-qty)");
  EXPECT_EQ(normalized("qty is not null"), "(qty is not null)");
  EXPECT_EQ(normalized("qty not in (1,2)"), "(qty not in (1, 2))");
  EXPECT_EQ(normalized("qty not between 1 and 2"), "(qty not between 1 and 2)");
  EXPECT_EQ(normalized("name not like 'a%'"), "(name not like 'a%')");
  EXPECT_EQ(normalized("COALESCE(qty, 0)"), "coalesce(qty, 0)");
  EXPECT_EQ(normalized("cast(qty as BIGINT)"), "cast(qty as int64)");
  EXPECT_EQ(normalized("ts > '2026-01-01'"), "(ts > '2026-01-01T00:00:00.000Z')");
  EXPECT_EQ(normalized("`weird name`"), "`weird name`");
  // to_string() reads back to the same expression.
  EXPECT_EQ(normalized(normalized("not qty + 1 > 2 * price or name like '%x'")),
            normalized("not qty + 1 > 2 * price or name like '%x'"));
}

TEST(ExprInfo, ReferencedFieldsAndConstness) {
  auto s = test_schema();
  auto e = must_compile("price * qty + price > `weird name`", *s);
  EXPECT_EQ(e->referenced_fields(), (std::vector<std::string>{"price", "qty", "weird name"}));
  EXPECT_FALSE(e->is_constant());
  EXPECT_TRUE(must_compile("1 + 2 * 3", *s)->is_constant());
  EXPECT_TRUE(must_compile("upper('a') = 'A'", *s)->is_constant());
  EXPECT_TRUE(must_compile("null", *s)->is_constant());
  EXPECT_TRUE(must_compile("1", *s)->referenced_fields().empty());
  EXPECT_FALSE(must_compile("rand()", *s)->is_constant());
  EXPECT_FALSE(must_compile("rand() * 100 + 1", *s)->is_constant());
}

TEST(ExprErrors, TypeErrorPointsAtTheOperator) {
  SourceLocation origin{"pipe.yaml", 12, 12};
  //                    0123456789
  EXPECT_EQ(compile_error("name + qty", origin),
            "pipe.yaml:12:17: operator '+' cannot apply to string and int64");
  EXPECT_EQ(compile_error("price > 'x'", origin),
            "pipe.yaml:12:18: operator '>' cannot apply to double and string");
  EXPECT_EQ(compile_error("qty and flag", origin),
            "pipe.yaml:12:16: operator 'and' cannot apply to int64 and bool");
  EXPECT_EQ(compile_error("not qty", origin),
            "pipe.yaml:12:12: operator 'not' cannot apply to int64");
  EXPECT_EQ(compile_error("-name", origin), "pipe.yaml:12:12: operator '-' cannot apply to string");
  EXPECT_EQ(compile_error("ts * 2", origin),
            "pipe.yaml:12:15: operator '*' cannot apply to timestamp and int64");
  EXPECT_EQ(compile_error("qty in (1, 'a')", origin),
            "pipe.yaml:12:16: operator 'in' cannot apply to int64 and string");
  EXPECT_EQ(compile_error("name like 1", origin),
            "pipe.yaml:12:17: operator 'like' cannot apply to string and int64");
  EXPECT_EQ(compile_error("cast(price as timestamp)", origin),
            "pipe.yaml:12:12: cannot cast double to timestamp");
  EXPECT_EQ(compile_error("if(qty, 1, 2)", origin),
            "pipe.yaml:12:15: function 'if' expects bool for argument 1, got int64");
  EXPECT_EQ(compile_error("if(flag, 1, 'a')", origin),
            "pipe.yaml:12:12: if() cannot apply to int64 and string");
  EXPECT_EQ(compile_error("lower(qty)", origin),
            "pipe.yaml:12:18: function 'lower' expects string for argument 1, got int64");
  EXPECT_EQ(compile_error("abs(name)", origin),
            "pipe.yaml:12:16: function 'abs' expects a number for argument 1, got string");
}

TEST(ExprErrors, UnknownFieldListsCandidates) {
  auto s = make_schema(
      {{"auction", TypeId::kInt64}, {"bidder", TypeId::kInt64}, {"price", TypeId::kDouble}});
  auto r = compile("prise * 2", *s, SourceLocation{"pipe.yaml", 3, 10});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "pipe.yaml:3:10: unknown field 'prise' (fields: auction, bidder, price)");
}

TEST(ExprErrors, FunctionsAndArity) {
  EXPECT_EQ(compile_error("foo(1)"),
            "line 1, column 1: unknown function 'foo' (functions: if, coalesce, lower, upper, "
            "length, concat, substr, abs, round, floor, ceil, rand, and cast(x as type))");
  EXPECT_EQ(compile_error("substr('a')"),
            "line 1, column 1: function 'substr' takes 2 or 3 arguments, got 1");
  EXPECT_EQ(compile_error("if(true, 1)"),
            "line 1, column 1: function 'if' takes 3 arguments, got 2");
  EXPECT_EQ(compile_error("lower()"), "line 1, column 1: function 'lower' takes 1 argument, got 0");
  EXPECT_EQ(compile_error("rand(1)"), "line 1, column 1: function 'rand' takes 0 arguments, got 1");
  EXPECT_EQ(compile_error("coalesce()"),
            "line 1, column 1: function 'coalesce' takes at least 1 argument, got 0");
  EXPECT_EQ(compile_error("round(price, 1.5)"),
            "line 1, column 14: function 'round' expects int64 for argument 2, got double");
  EXPECT_EQ(compile_error("cast(qty as money)"),
            "line 1, column 13: unknown type 'money' (types: bool, int64, double, string, "
            "timestamp)");
}

TEST(ExprErrors, SyntaxErrors) {
  EXPECT_EQ(compile_error(""), "line 1, column 1: empty expression");
  EXPECT_EQ(compile_error("'abc"), "line 1, column 1: unterminated string literal");
  EXPECT_EQ(compile_error("`abc"), "line 1, column 1: unterminated quoted field name");
  EXPECT_EQ(compile_error("qty # 2"), "line 1, column 5: unexpected character '#'");
  EXPECT_EQ(compile_error("(qty + 1"), "line 1, column 9: expected ')', got end of expression");
  EXPECT_EQ(compile_error("qty +"), "line 1, column 6: unexpected end of expression");
  EXPECT_EQ(compile_error("qty 2"), "line 1, column 5: unexpected '2'");
  EXPECT_EQ(compile_error("qty is 1"), "line 1, column 8: expected 'null' after 'is'");
  EXPECT_EQ(compile_error("qty in ()"), "line 1, column 9: 'in' list is empty");
  EXPECT_EQ(compile_error("qty between 1 or 2"), "line 1, column 15: expected 'and' in 'between'");
  EXPECT_EQ(compile_error("concat(1 2)"),
            "line 1, column 10: expected ',' or ')' in arguments of 'concat', got '2'");
  EXPECT_EQ(compile_error("12abc"), "line 1, column 1: invalid number '12abc'");
  EXPECT_EQ(compile_error("and = 1"),
            "line 1, column 1: unexpected keyword 'and' (quote a field with this name as `and`)");
}

TEST(ExprErrors, SeveralErrorsAtOnceOnePerLine) {
  SourceLocation origin{"p.yaml", 4, 10};
  EXPECT_EQ(compile_error("prise > 1 and nme = 'x' or name + 1 > 2", origin),
            "p.yaml:4:10: unknown field 'prise' (fields: auction, qty, price, name, flag, ts, "
            "weird name, other)\n"
            "p.yaml:4:24: unknown field 'nme' (fields: auction, qty, price, name, flag, ts, "
            "weird name, other)\n"
            "p.yaml:4:42: operator '+' cannot apply to string and int64");
}

TEST(ExprErrors, MultiLineTextCountsLines) {
  SourceLocation origin{"p.yaml", 7, 12};
  EXPECT_EQ(compile_error("qty > 1\n  and name + 1 > 0", origin),
            "p.yaml:8:12: operator '+' cannot apply to string and int64");
  EXPECT_EQ(compile_error("qty > 1\nand\n   nope", origin),
            "p.yaml:9:4: unknown field 'nope' (fields: auction, qty, price, name, flag, ts, "
            "weird name, other)");
  // Without an origin lines and columns count from 1.
  EXPECT_EQ(compile_error("qty\n + 'a'"),
            "line 2, column 2: operator '+' cannot apply to int64 and string");
}

TEST(ExprErrors, BadTimestampLiteralIsACompileError) {
  EXPECT_EQ(compile_error("ts > 'yesterday'", SourceLocation{"p.yaml", 2, 8}),
            "p.yaml:2:13: cannot use 'yesterday' as a timestamp: invalid timestamp 'yesterday': "
            "expected RFC 3339 like 2026-11-21T10:00:00Z");
  // A string column is not implicitly a timestamp.
  EXPECT_EQ(compile_error("ts > name"),
            "line 1, column 4: operator '>' cannot apply to timestamp and string");
}

}  // namespace
}  // namespace df::expr::testing
