// Evaluation: operators, SQL null semantics, per-row data errors, selection
// vectors, timestamps, rand(), select_true().
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "tests/unit/expr/expr_test_util.h"

namespace df::expr::testing {
namespace {

// Values of `text` for rows a, b of a two-column table (both of types ta, tb).
std::vector<Value> eval_pairs(std::string_view text, TypeId ta, TypeId tb,
                              const std::vector<std::pair<Value, Value>>& pairs,
                              EvalContext* ctx_out = nullptr) {
  auto schema = make_schema({{"a", ta}, {"b", tb}});
  std::vector<std::vector<Value>> rows;
  for (const auto& [a, b] : pairs) rows.push_back({a, b});
  auto e = must_compile(text, *schema);
  if (!e) return {};
  EvalContext local;
  return eval_alive(*e, *make_batch(schema, rows), ctx_out ? *ctx_out : local);
}

TEST(ExprArithmetic, IntegerOps) {
  EXPECT_EQ(eval1("7 + 3"), I(10));
  EXPECT_EQ(eval1("7 - 10"), I(-3));
  EXPECT_EQ(eval1("7 * 3"), I(21));
  EXPECT_EQ(eval1("7 / 2"), I(3));
  EXPECT_EQ(eval1("-7 / 2"), I(-3));  // truncates toward zero
  EXPECT_EQ(eval1("7 % 3"), I(1));
  EXPECT_EQ(eval1("-7 % 3"), I(-1));
  EXPECT_EQ(eval1("-9223372036854775808 % -1"), I(0));
  EXPECT_EQ(eval1("-qty", {I(0), I(5)}), I(-5));
}

TEST(ExprArithmetic, DoubleAndMixedOps) {
  EXPECT_EQ(eval1("7 / 2.0"), D(3.5));
  EXPECT_EQ(eval1("qty * price", {I(0), I(3), D(1.5)}), D(4.5));
  EXPECT_EQ(eval1("price - 1", {I(0), I(3), D(1.5)}), D(0.5));
  EXPECT_EQ(eval1("7.5 % 2"), D(1.5));
  EXPECT_EQ(eval1("-price", {I(0), I(0), D(2.5)}), D(-2.5));
  EXPECT_EQ(eval1("0.1 + 0.2"), D(0.1 + 0.2));
}

TEST(ExprArithmetic, ColumnsWithNullsPropagateNull) {
  auto vals = eval_pairs("a + b", TypeId::kInt64, TypeId::kInt64,
                         {{I(1), I(2)}, {N(TypeId::kInt64), I(2)}, {I(1), N(TypeId::kInt64)}});
  EXPECT_EQ(vals, (std::vector<Value>{I(3), N(TypeId::kInt64), N(TypeId::kInt64)}));
  EXPECT_TRUE(eval1("qty + 1").is_null());
  EXPECT_TRUE(eval1("null * 2").is_null());
  EXPECT_TRUE(eval1("price / null").is_null());
  EXPECT_TRUE(eval1("-qty").is_null());
}

TEST(ExprDataErrors, DivisionByZeroIsNullAndRecorded) {
  auto schema = test_schema();
  auto e = must_compile("price / qty", *schema);
  auto batch = make_batch(
      schema, {row({I(1), I(2), D(5.0)}), row({I(1), I(0), D(5.0)}), row({I(1), I(4), D(2.0)})});
  EvalContext ctx;
  auto vals = eval_alive(*e, *batch, ctx);
  EXPECT_EQ(vals, (std::vector<Value>{D(2.5), N(TypeId::kDouble), D(0.5)}));
  ASSERT_EQ(ctx.data_errors, 1u);
  ASSERT_EQ(ctx.errors.size(), 1u);
  EXPECT_EQ(ctx.errors[0].row, 1u);
  EXPECT_EQ(ctx.errors[0].message, "division by zero in 'price / qty' (5 / 0)");
  ctx.clear_errors();
  EXPECT_EQ(ctx.data_errors, 0u);

  EvalContext c2;
  EXPECT_TRUE(eval1("qty / 0", {I(0), I(3)}, &c2).is_null());
  EXPECT_TRUE(eval1("qty % 0", {I(0), I(3)}, &c2).is_null());
  EXPECT_TRUE(eval1("price % 0", {I(0), I(3), D(1)}, &c2).is_null());
  ASSERT_EQ(c2.data_errors, 3u);
  EXPECT_EQ(c2.errors[0].message, "division by zero in 'qty / 0' (3 / 0)");
  EXPECT_EQ(c2.errors[1].message, "modulo by zero in 'qty % 0' (3 % 0)");
  EXPECT_EQ(c2.errors[2].message, "modulo by zero in 'price % 0' (1 % 0)");
}

TEST(ExprDataErrors, Int64OverflowIsNullAndRecorded) {
  EvalContext ctx;
  EXPECT_TRUE(eval1("qty + 1", {I(0), I(INT64_MAX)}, &ctx).is_null());
  EXPECT_TRUE(eval1("qty - 1", {I(0), I(INT64_MIN)}, &ctx).is_null());
  EXPECT_TRUE(eval1("qty * 2", {I(0), I(INT64_MAX)}, &ctx).is_null());
  EXPECT_TRUE(eval1("-qty", {I(0), I(INT64_MIN)}, &ctx).is_null());
  EXPECT_TRUE(eval1("qty / -1", {I(0), I(INT64_MIN)}, &ctx).is_null());
  EXPECT_TRUE(eval1("abs(qty)", {I(0), I(INT64_MIN)}, &ctx).is_null());
  EXPECT_EQ(ctx.data_errors, 6u);
  EXPECT_EQ(ctx.errors[2].message, "int64 overflow in 'qty * 2' (9223372036854775807 * 2)");
  EXPECT_EQ(ctx.errors[5].message, "int64 overflow in 'abs(qty)' (-9223372036854775808)");
  EXPECT_EQ(eval1("qty * 2", {I(0), I(INT64_MAX / 2)}), I(INT64_MAX - 1));
}

TEST(ExprDataErrors, ConstantErrorsAreChargedToEveryAliveRow) {
  auto schema = test_schema();
  auto e = must_compile("qty + 1 / 0", *schema);
  auto batch = make_batch(schema, {row({I(0), I(1)}), row({I(0), I(2)}), row({I(0), I(3)})},
                          std::make_shared<Selection>(Selection{0, 2}));
  EvalContext ctx;
  auto vals = eval_alive(*e, *batch, ctx);
  EXPECT_EQ(vals, (std::vector<Value>{N(TypeId::kInt64), N(TypeId::kInt64)}));
  ASSERT_EQ(ctx.data_errors, 2u);
  EXPECT_EQ(ctx.errors[0].row, 0u);
  EXPECT_EQ(ctx.errors[1].row, 2u);
  EXPECT_EQ(ctx.errors[0].message, "division by zero in '1 / 0' (1 / 0)");
}

TEST(ExprDataErrors, KeepsOnlyTheFirstErrorsButCountsAll) {
  auto schema = make_schema({{"a", TypeId::kInt64}});
  std::vector<std::vector<Value>> rows(100, {I(0)});
  auto e = must_compile("10 / a", *schema);
  EvalContext ctx;
  auto vals = eval_alive(*e, *make_batch(schema, rows), ctx);
  EXPECT_EQ(ctx.data_errors, 100u);
  EXPECT_EQ(ctx.errors.size(), EvalContext::kMaxKeptErrors);
  for (const auto& v : vals) EXPECT_TRUE(v.is_null());
}

TEST(ExprComparison, AllOperatorsAllTypes) {
  EXPECT_EQ(eval1("1 = 1"), B(true));
  EXPECT_EQ(eval1("1 != 1"), B(false));
  EXPECT_EQ(eval1("1 <> 2"), B(true));
  EXPECT_EQ(eval1("1 < 2"), B(true));
  EXPECT_EQ(eval1("2 <= 2"), B(true));
  EXPECT_EQ(eval1("1 > 2"), B(false));
  EXPECT_EQ(eval1("2 >= 3"), B(false));
  EXPECT_EQ(eval1("1 = 1.0"), B(true));  // int64 promotes to double
  EXPECT_EQ(eval1("qty < price", {I(0), I(2), D(2.5)}), B(true));
  EXPECT_EQ(eval1("'abc' < 'abd'"), B(true));
  EXPECT_EQ(eval1("'b' > 'abc'"), B(true));
  EXPECT_EQ(eval1("name = 'x'", {I(0), I(0), D(0), S("x")}), B(true));
  EXPECT_EQ(eval1("true = flag", {I(0), I(0), D(0), S(""), B(true)}), B(true));
  EXPECT_EQ(eval1("false < true"), B(true));
  EXPECT_EQ(eval1("1 == 1"), B(true));
  EXPECT_TRUE(eval1("qty = 1").is_null());
  EXPECT_TRUE(eval1("null = null").is_null());
  EXPECT_TRUE(eval1("name <> 'x'").is_null());
}

TEST(ExprComparison, ColumnAgainstColumnWithNulls) {
  const Value n = N(TypeId::kBool);
  EXPECT_EQ(eval_pairs("a < b", TypeId::kInt64, TypeId::kDouble,
                       {{I(1), D(1.5)},
                        {I(2), D(1.5)},
                        {N(TypeId::kInt64), D(0)},
                        {I(3), N(TypeId::kDouble)},
                        {I(-1), D(-1.0)}}),
            (std::vector<Value>{B(true), B(false), n, n, B(false)}));
  EXPECT_EQ(eval_pairs(
                "a = b", TypeId::kString, TypeId::kString,
                {{S("x"), S("x")}, {S("x"), S("y")}, {S(""), S("")}, {N(TypeId::kString), S("x")}}),
            (std::vector<Value>{B(true), B(false), B(true), n}));
  EXPECT_EQ(eval_pairs("a >= b", TypeId::kTimestamp, TypeId::kTimestamp,
                       {{T(5), T(4)}, {T(4), T(5)}, {T(5), T(5)}}),
            (std::vector<Value>{B(true), B(false), B(true)}));
  EXPECT_EQ(eval_pairs("a + b", TypeId::kInt64, TypeId::kDouble,
                       {{I(1), D(0.5)}, {N(TypeId::kInt64), D(0.5)}}),
            (std::vector<Value>{D(1.5), N(TypeId::kDouble)}));
  EXPECT_EQ(eval_pairs("concat(a, '-', b)", TypeId::kString, TypeId::kInt64,
                       {{S("a"), I(1)}, {N(TypeId::kString), I(2)}, {S("c"), I(3)}}),
            (std::vector<Value>{S("a-1"), N(TypeId::kString), S("c-3")}));
  EXPECT_EQ(eval_pairs("a like b", TypeId::kString, TypeId::kString,
                       {{S("abc"), S("a%")}, {S("abc"), S("b%")}, {S("abc"), S("_bc")}}),
            (std::vector<Value>{B(true), B(false), B(true)}));
}

TEST(ExprPredicates, LikeDoesNotBacktrackExponentially) {
  std::string text(5000, 'a');
  auto vals = eval_pairs("a like b", TypeId::kString, TypeId::kString,
                         {{S(text), S("%a%a%a%a%a%a%a%a%b")}, {S(text + "b"), S("%a%a%a%b")}});
  EXPECT_EQ(vals, (std::vector<Value>{B(false), B(true)}));
}

TEST(ExprLogic, ThreeValuedTruthTables) {
  const Value t = B(true), f = B(false), n = N(TypeId::kBool);
  const std::vector<std::pair<Value, Value>> pairs = {{t, t}, {t, f}, {t, n}, {f, t}, {f, f},
                                                      {f, n}, {n, t}, {n, f}, {n, n}};
  EXPECT_EQ(eval_pairs("a and b", TypeId::kBool, TypeId::kBool, pairs),
            (std::vector<Value>{t, f, n, f, f, f, n, f, n}));
  EXPECT_EQ(eval_pairs("a or b", TypeId::kBool, TypeId::kBool, pairs),
            (std::vector<Value>{t, t, t, t, f, n, t, n, n}));
  EXPECT_EQ(eval_pairs("not a", TypeId::kBool, TypeId::kBool, pairs),
            (std::vector<Value>{f, f, f, t, t, t, n, n, n}));
  EXPECT_EQ(eval1("false and null"), f);
  EXPECT_EQ(eval1("true or null"), t);
  EXPECT_EQ(eval1("null and true"), n);
  EXPECT_EQ(eval1("not null"), n);
}

TEST(ExprLogic, RightSideOnlyEvaluatedWhereItMatters) {
  auto schema = test_schema();
  auto batch = make_batch(schema, {row({I(0), I(0), D(5)}), row({I(0), I(2), D(5)})});
  EvalContext ctx;
  auto vals = eval_alive(*must_compile("qty <> 0 and price / qty > 2", *schema), *batch, ctx);
  EXPECT_EQ(vals, (std::vector<Value>{B(false), B(true)}));
  vals = eval_alive(*must_compile("qty = 0 or price / qty > 2", *schema), *batch, ctx);
  EXPECT_EQ(vals, (std::vector<Value>{B(true), B(true)}));
  EXPECT_EQ(ctx.data_errors, 0u);
}

TEST(ExprPredicates, IsNull) {
  EXPECT_EQ(eval1("qty is null"), B(true));
  EXPECT_EQ(eval1("qty is not null", {I(0), I(1)}), B(true));
  EXPECT_EQ(eval1("name is null", {I(0), I(1), D(0), S("")}), B(false));
  EXPECT_EQ(eval1("(qty + 1) is null"), B(true));
  EXPECT_EQ(eval1("1 is null"), B(false));
}

TEST(ExprPredicates, InWithSqlNulls) {
  EXPECT_EQ(eval1("1 in (1, null)"), B(true));
  EXPECT_TRUE(eval1("2 in (1, null)").is_null());
  EXPECT_TRUE(eval1("2 not in (1, null)").is_null());
  EXPECT_EQ(eval1("1 not in (1, null)"), B(false));
  EXPECT_EQ(eval1("2 in (1, 3)"), B(false));
  EXPECT_EQ(eval1("2 not in (1, 3)"), B(true));
  EXPECT_TRUE(eval1("qty in (1, 2)").is_null());
  EXPECT_EQ(eval1("qty in (1.0, 2.5)", {I(0), I(1)}), B(true));
  EXPECT_EQ(eval1("price in (1, 2)", {I(0), I(1), D(2.0)}), B(true));
  EXPECT_EQ(eval1("name in ('a', 'b')", {I(0), I(1), D(0), S("b")}), B(true));
  EXPECT_EQ(eval1("qty in (auction, 5)", {I(7), I(7)}), B(true));
  EXPECT_EQ(eval1("ts in ('2026-01-01', '2026-01-02')",
                  row({I(0), I(0), D(0), S(""), B(true), T(ts("2026-01-02"))})),
            B(true));
}

TEST(ExprPredicates, Between) {
  EXPECT_EQ(eval1("2 between 1 and 3"), B(true));
  EXPECT_EQ(eval1("1 between 1 and 3"), B(true));
  EXPECT_EQ(eval1("3 between 1 and 3"), B(true));
  EXPECT_EQ(eval1("4 between 1 and 3"), B(false));
  EXPECT_EQ(eval1("4 not between 1 and 3"), B(true));
  EXPECT_EQ(eval1("2 not between 1 and 3"), B(false));
  EXPECT_EQ(eval1("2.5 between 1 and 3"), B(true));
  EXPECT_EQ(eval1("'b' between 'a' and 'c'"), B(true));
  EXPECT_TRUE(eval1("qty between 1 and 3").is_null());
  EXPECT_EQ(eval1("0 between 1 and null"), B(false));  // (0 >= 1) is false, so null does not matter
  EXPECT_TRUE(eval1("2 between 1 and null").is_null());
}

TEST(ExprPredicates, Like) {
  auto like = [](std::string text, std::string pattern) {
    return eval1("name like '" + pattern + "'", {I(0), I(0), D(0), S(std::move(text))});
  };
  EXPECT_EQ(like("abc", "abc"), B(true));
  EXPECT_EQ(like("abc", "ab"), B(false));
  EXPECT_EQ(like("abc", "a%"), B(true));
  EXPECT_EQ(like("abc", "%c"), B(true));
  EXPECT_EQ(like("abc", "%b%"), B(true));
  EXPECT_EQ(like("abc", "%"), B(true));
  EXPECT_EQ(like("", "%"), B(true));
  EXPECT_EQ(like("", ""), B(true));
  EXPECT_EQ(like("abc", ""), B(false));
  EXPECT_EQ(like("abc", "_b_"), B(true));
  EXPECT_EQ(like("abc", "__"), B(false));
  EXPECT_EQ(like("abc", "___"), B(true));
  EXPECT_EQ(like("aXbXc", "%X%c"), B(true));
  EXPECT_EQ(like("mississippi", "%iss%pi"), B(true));
  EXPECT_EQ(like("mississippi", "%iss%px"), B(false));
  EXPECT_EQ(like("ABC", "abc"), B(false));            // case-sensitive
  EXPECT_EQ(like("h\xC3\xA9llo", "h_llo"), B(true));  // '_' is one UTF-8 character
  EXPECT_EQ(eval1("'abc' not like 'a%'"), B(false));
  EXPECT_EQ(eval1("'abc' not like 'b%'"), B(true));
  EXPECT_TRUE(eval1("name like 'a%'").is_null());
  EXPECT_EQ(eval1("'a%c' like concat('a', '%')"), B(true));
}

TEST(ExprFunctions, IfAndCoalesce) {
  EXPECT_EQ(eval1("if(true, 1, 2)"), I(1));
  EXPECT_EQ(eval1("if(false, 1, 2)"), I(2));
  EXPECT_EQ(eval1("if(null, 1, 2)"), I(2));  // null condition takes the else branch
  EXPECT_EQ(eval1("if(true, 1, 2.5)"), D(1.0));
  EXPECT_TRUE(eval1("if(true, null, 'x')").is_null());
  EXPECT_EQ(eval1("if(flag, 'y', 'n')", {I(0), I(0), D(0), S(""), B(true)}), S("y"));
  EXPECT_EQ(eval1("coalesce(qty, auction, 3)", {I(9)}), I(9));
  EXPECT_EQ(eval1("coalesce(qty, 3)"), I(3));
  EXPECT_EQ(eval1("coalesce(qty, 2.5)"), D(2.5));
  EXPECT_TRUE(eval1("coalesce(qty, null)").is_null());
  EXPECT_EQ(eval1("coalesce(name, 'none')"), S("none"));
  EXPECT_EQ(eval1("coalesce(null, null, true)"), B(true));

  // Only the chosen branch is evaluated, row by row.
  auto schema = test_schema();
  auto batch = make_batch(schema, {row({I(0), I(0), D(5)}), row({I(0), I(2), D(5)}),
                                   row({I(0), N(TypeId::kInt64), D(5)})});
  EvalContext ctx;
  EXPECT_EQ(eval_alive(*must_compile("if(qty = 0, 0.0, price / qty)", *schema), *batch, ctx),
            (std::vector<Value>{D(0), D(2.5), N(TypeId::kDouble)}));
  EXPECT_EQ(eval_alive(*must_compile("if(qty != 0, 1 / 0, 7)", *schema), *batch, ctx),
            (std::vector<Value>{I(7), N(TypeId::kInt64), I(7)}));
  ASSERT_EQ(ctx.data_errors, 1u);
  EXPECT_EQ(ctx.errors[0].row, 1u);
  ctx.clear_errors();
  EXPECT_EQ(eval_alive(*must_compile("coalesce(qty, 10 / auction)", *schema), *batch, ctx),
            (std::vector<Value>{I(0), I(2), N(TypeId::kInt64)}));
  ASSERT_EQ(ctx.data_errors, 1u);
  EXPECT_EQ(ctx.errors[0].row, 2u);
}

TEST(ExprFunctions, Strings) {
  EXPECT_EQ(eval1("lower('AbC')"), S("abc"));
  EXPECT_EQ(eval1("upper('AbC1')"), S("ABC1"));
  EXPECT_EQ(eval1("length('hello')"), I(5));
  EXPECT_EQ(eval1("length('')"), I(0));
  EXPECT_EQ(eval1("length('h\xC3\xA9llo')"), I(5));
  EXPECT_TRUE(eval1("length(name)").is_null());
  EXPECT_TRUE(eval1("upper(name)").is_null());
  EXPECT_EQ(eval1("concat('a', 'b', 'c')"), S("abc"));
  EXPECT_EQ(eval1("concat('n=', 42, ' p=', 4.2, ' ', true)"), S("n=42 p=4.2 true"));
  EXPECT_TRUE(eval1("concat('a', name)").is_null());
  EXPECT_EQ(eval1("substr('hello', 2)"), S("ello"));
  EXPECT_EQ(eval1("substr('hello', 2, 3)"), S("ell"));
  EXPECT_EQ(eval1("substr('hello', 1, 1)"), S("h"));
  EXPECT_EQ(eval1("substr('hello', 0, 3)"), S("he"));
  EXPECT_EQ(eval1("substr('hello', -1, 3)"), S("h"));
  EXPECT_EQ(eval1("substr('hello', 4, 100)"), S("lo"));
  EXPECT_EQ(eval1("substr('hello', 9)"), S(""));
  EXPECT_EQ(eval1("substr('hello', 2, 0)"), S(""));
  EXPECT_EQ(eval1("substr('h\xC3\xA9llo', 2, 2)"), S("\xC3\xA9l"));
  EXPECT_EQ(eval1("SUBSTRING('hello', 2, 2)"), S("el"));
  EvalContext ctx;
  EXPECT_TRUE(eval1("substr('hello', 2, -1)", {}, &ctx).is_null());
  ASSERT_EQ(ctx.data_errors, 1u);
  EXPECT_EQ(ctx.errors[0].message, "negative length in 'substr('hello', 2, -1)' ('hello', 2, -1)");
}

TEST(ExprFunctions, Numeric) {
  EXPECT_EQ(eval1("abs(-3)"), I(3));
  EXPECT_EQ(eval1("abs(3)"), I(3));
  EXPECT_EQ(eval1("abs(-2.5)"), D(2.5));
  EXPECT_EQ(eval1("round(2.5)"), D(3.0));
  EXPECT_EQ(eval1("round(-2.5)"), D(-3.0));
  EXPECT_EQ(eval1("round(2.4)"), D(2.0));
  EXPECT_EQ(eval1("round(3.14159, 2)"), D(3.14));
  EXPECT_EQ(eval1("round(1234.5, -2)"), D(1200.0));
  EXPECT_EQ(eval1("round(7)"), I(7));
  EXPECT_EQ(eval1("round(1250, -2)"), I(1300));
  EXPECT_EQ(eval1("round(-1250, -2)"), I(-1300));
  EXPECT_EQ(eval1("round(1249, -2)"), I(1200));
  EXPECT_EQ(eval1("round(17, 2)"), I(17));
  EXPECT_EQ(eval1("round(17, -30)"), I(0));
  EXPECT_EQ(eval1("floor(2.7)"), D(2.0));
  EXPECT_EQ(eval1("floor(-2.2)"), D(-3.0));
  EXPECT_EQ(eval1("ceil(2.2)"), D(3.0));
  EXPECT_EQ(eval1("CEILING(-2.7)"), D(-2.0));
  EXPECT_EQ(eval1("floor(5)"), I(5));
  EXPECT_EQ(eval1("ceil(5)"), I(5));
  EXPECT_TRUE(eval1("round(price, 2)").is_null());
  EXPECT_TRUE(eval1("abs(qty)").is_null());
  EvalContext ctx;
  EXPECT_TRUE(eval1("round(9223372036854775807, -1)", {}, &ctx).is_null());
  EXPECT_EQ(ctx.data_errors, 1u);
}

TEST(ExprCast, FromString) {
  EXPECT_EQ(eval1("cast(' 42 ' as int64)"), I(42));
  EXPECT_EQ(eval1("cast('-7' as int)"), I(-7));
  EXPECT_EQ(eval1("cast('4.25' as double)"), D(4.25));
  EXPECT_EQ(eval1("cast('1e3' as float)"), D(1000.0));
  EXPECT_EQ(eval1("cast('TRUE' as bool)"), B(true));
  EXPECT_EQ(eval1("cast('0' as boolean)"), B(false));
  EXPECT_EQ(eval1("cast('2026-11-21T10:00:00Z' as timestamp)"), T(ts("2026-11-21T10:00:00Z")));
  EXPECT_EQ(eval1("cast(' 2026-11-21 ' as timestamp)"), T(ts("2026-11-21")));
  EXPECT_TRUE(eval1("cast(name as int64)").is_null());
}

TEST(ExprCast, BadCastsAreNullAndRecorded) {
  EvalContext ctx;
  EXPECT_TRUE(eval1("cast('abc' as int64)", {}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast('4.5' as int64)", {}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast('x' as double)", {}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast('maybe' as bool)", {}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast(name as timestamp)", {I(0), I(0), D(0), S("soon")}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast(price as int64)", {I(0), I(0), D(1e30)}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast(price / 0.0 as int64)", {I(0), I(0), D(0)}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast('99999999999999999999' as int64)", {}, &ctx).is_null());
  EXPECT_TRUE(eval1("cast(cast('nan' as double) as int64)", {}, &ctx).is_null());
  // The division by zero is recorded; the cast then sees null, which is not an error.
  EXPECT_EQ(ctx.data_errors, 9u);
  EXPECT_EQ(ctx.errors[0].message, "cannot cast 'abc' to int64 in 'cast('abc' as int64)'");
  EXPECT_EQ(ctx.errors[4].message, "cannot cast 'soon' to timestamp in 'cast(name as timestamp)'");
  EXPECT_EQ(ctx.errors[5].message, "cannot cast 1e+30 to int64 in 'cast(price as int64)'");
}

TEST(ExprCast, BetweenNonStringTypes) {
  EXPECT_EQ(eval1("cast(7 as double)"), D(7.0));
  EXPECT_EQ(eval1("cast(-2.7 as int64)"), I(-2));
  EXPECT_EQ(eval1("cast(2.7 as int64)"), I(2));
  EXPECT_EQ(eval1("cast(true as int64)"), I(1));
  EXPECT_EQ(eval1("cast(false as int64)"), I(0));
  EXPECT_EQ(eval1("cast(true as double)"), D(1.0));
  EXPECT_EQ(eval1("cast(3 as bool)"), B(true));
  EXPECT_EQ(eval1("cast(0.0 as bool)"), B(false));
  EXPECT_EQ(eval1("cast(1000 as timestamp)"), T(1000));
  EXPECT_EQ(eval1("cast(ts as int64)", row({I(0), I(0), D(0), S(""), B(true), T(1234)})), I(1234));
  EXPECT_EQ(eval1("cast(qty as int64)", {I(0), I(5)}), I(5));
  EXPECT_TRUE(eval1("cast(null as string)").is_null());
}

TEST(ExprCast, ToString) {
  EXPECT_EQ(eval1("cast(4.2 as string)"), S("4.2"));
  EXPECT_EQ(eval1("cast(0.1 + 0.2 as string)"), S("0.30000000000000004"));
  EXPECT_EQ(eval1("cast(1e100 as string)"), S("1e+100"));
  EXPECT_EQ(eval1("cast(-42 as varchar)"), S("-42"));
  EXPECT_EQ(eval1("cast(true as text)"), S("true"));
  EXPECT_EQ(eval1("cast(ts as string)",
                  row({I(0), I(0), D(0), S(""), B(true), T(ts("2026-11-21T10:00:00Z"))})),
            S("2026-11-21T10:00:00.000Z"));
  EXPECT_EQ(eval1("cast('x' as string)"), S("x"));
}

TEST(ExprTimestamps, ArithmeticAndComparisonWithLiterals) {
  const int64_t t0 = ts("2026-11-21T10:00:00Z");
  auto r = row({I(0), I(0), D(0), S(""), B(true), T(t0)});
  EXPECT_EQ(eval1("ts + 1000", r), T(t0 + 1000));
  EXPECT_EQ(eval1("1000 + ts", r), T(t0 + 1000));
  EXPECT_EQ(eval1("ts - 60000", r), T(t0 - 60000));
  EXPECT_EQ(eval1("ts - ts", r), I(0));
  EXPECT_EQ(eval1("ts - cast('2026-11-21T09:59:59Z' as timestamp)", r), I(1000));
  EXPECT_EQ(eval1("ts > '2026-11-21T09:00:00Z'", r), B(true));
  EXPECT_EQ(eval1("'2026-11-22' > ts", r), B(true));
  EXPECT_EQ(eval1("ts = '2026-11-21T11:00:00+01:00'", r), B(true));
  EXPECT_EQ(eval1("ts between '2026-11-21' and '2026-11-22'", r), B(true));
  EXPECT_EQ(eval1("coalesce(ts, '2026-01-01') = ts", r), B(true));
  EXPECT_EQ(eval1("coalesce(ts, '2026-01-01')"), T(ts("2026-01-01")));
  EXPECT_TRUE(eval1("ts + null", r).is_null());
}

TEST(ExprSelection, OnlySelectedRowsAreEvaluated) {
  auto schema = test_schema();
  // Row 1 would divide by zero, but it is filtered out.
  auto batch = make_batch(schema,
                          {row({I(0), I(2), D(8), S("a")}), row({I(0), I(0), D(8), S("b")}),
                           row({I(0), I(4), D(8), S("c")})},
                          std::make_shared<Selection>(Selection{0, 2}));
  EvalContext ctx;
  auto e = must_compile("price / qty", *schema);
  ColumnPtr col = e->evaluate(*batch, ctx);
  EXPECT_EQ(col->size(), 3u);
  EXPECT_EQ(col->value_at(0), D(4));
  EXPECT_EQ(col->value_at(2), D(2));
  EXPECT_EQ(ctx.data_errors, 0u);

  // Strings and constants also produce num_rows() slots.
  col = must_compile("concat(name, '!')", *schema)->evaluate(*batch, ctx);
  ASSERT_EQ(col->size(), 3u);
  EXPECT_EQ(col->value_at(0), S("a!"));
  EXPECT_EQ(col->value_at(2), S("c!"));
  col = must_compile("'k'", *schema)->evaluate(*batch, ctx);
  ASSERT_EQ(col->size(), 3u);
  EXPECT_EQ(col->value_at(2), S("k"));

  // An empty selection evaluates nothing.
  auto none = batch->with_selection(std::make_shared<Selection>());
  col = must_compile("10 / qty + 1 / 0", *schema)->evaluate(*none, ctx);
  EXPECT_EQ(col->size(), 3u);
  EXPECT_EQ(ctx.data_errors, 0u);
}

TEST(ExprSelection, FieldPassThroughSharesTheColumn) {
  auto schema = test_schema();
  auto batch = make_batch(schema, {row({I(1), I(2)})});
  EvalContext ctx;
  EXPECT_EQ(must_compile("qty", *schema)->evaluate(*batch, ctx), batch->column(1));
}

TEST(ExprSelectTrue, NullIsFalseAndSelectionRespected) {
  auto schema = test_schema();
  std::vector<std::vector<Value>> rows;
  for (int64_t i = 0; i < 6; ++i) {
    rows.push_back(row({I(i), i == 3 ? N(TypeId::kInt64) : I(i)}));
  }
  auto batch = make_batch(schema, rows);
  auto e = must_compile("qty % 2 = 1 or qty > 3", *schema);
  EvalContext ctx;
  auto sel = select_true(*batch, *e->evaluate(*batch, ctx));
  ASSERT_TRUE(sel);
  EXPECT_EQ(*sel, (Selection{1, 4, 5}));  // row 3 is null -> dropped

  auto filtered = batch->with_selection(std::make_shared<Selection>(Selection{0, 1, 2, 3, 4}));
  auto sel2 = select_true(*filtered, *e->evaluate(*filtered, ctx));
  EXPECT_EQ(*sel2, (Selection{1, 4}));

  auto all = must_compile("auction >= 0", *schema);
  auto sel3 = select_true(*filtered, *all->evaluate(*filtered, ctx));
  EXPECT_EQ(*sel3, (Selection{0, 1, 2, 3, 4}));
  auto sel4 = select_true(*batch, *must_compile("false", *schema)->evaluate(*batch, ctx));
  EXPECT_TRUE(sel4->empty());
}

std::vector<double> rand_values(const CompiledExpr& e, int64_t first_id, size_t n, uint64_t seed) {
  auto schema = test_schema();
  std::vector<std::vector<Value>> rows(n, row({I(0)}));
  auto batch = make_batch(schema, rows);
  ColumnBuilder ids(TypeId::kInt64);
  for (size_t i = 0; i < n; ++i) ids.append_int64(first_id + static_cast<int64_t>(i));
  ColumnPtr id_col = ids.finish();
  EvalContext ctx;
  ctx.seed = seed;
  ctx.row_ids = id_col.get();
  ColumnPtr col = e.evaluate(*batch, ctx);
  std::vector<double> out;
  for (size_t i = 0; i < n; ++i) out.push_back(col->double_at(i));
  return out;
}

TEST(ExprRand, DeterministicPerSeedRowIdAndCallSite) {
  auto schema = test_schema();
  auto e = must_compile("rand()", *schema);
  auto whole = rand_values(*e, 0, 10, 42);
  auto part1 = rand_values(*e, 0, 4, 42);
  auto part2 = rand_values(*e, 4, 6, 42);
  part1.insert(part1.end(), part2.begin(), part2.end());
  EXPECT_EQ(whole, part1);
  for (double v : whole) {
    EXPECT_GE(v, 0.0);
    EXPECT_LT(v, 1.0);
  }
  EXPECT_NE(rand_values(*e, 0, 10, 43), whole);
  // Distinct rows get distinct values.
  std::vector<double> sorted = whole;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());

  // Two call sites are independent streams; the same expression compiled twice agrees.
  auto diff = rand_values(*must_compile("rand() - rand()", *schema), 0, 10, 42);
  EXPECT_TRUE(std::any_of(diff.begin(), diff.end(), [](double d) { return d != 0.0; }));
  EXPECT_EQ(rand_values(*must_compile("rand()", *schema), 0, 10, 42), whole);

  // Scaled as in the generator source.
  auto scaled = rand_values(*must_compile("rand() * 100", *schema), 0, 10, 42);
  for (size_t i = 0; i < scaled.size(); ++i) EXPECT_DOUBLE_EQ(scaled[i], whole[i] * 100);
}

TEST(ExprRand, WithoutRowIdsAPrngAdvances) {
  auto schema = test_schema();
  auto e = must_compile("rand()", *schema);
  auto batch = make_batch(schema, std::vector<std::vector<Value>>(50, row({I(0)})));
  EvalContext a, b;
  a.seed = b.seed = 7;
  ColumnPtr x = e->evaluate(*batch, a);
  ColumnPtr y = e->evaluate(*batch, b);
  ColumnPtr z = e->evaluate(*batch, a);
  bool differs = false;
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(x->double_at(i), y->double_at(i));  // same seed, same sequence
    EXPECT_GE(x->double_at(i), 0.0);
    EXPECT_LT(x->double_at(i), 1.0);
    differs |= x->double_at(i) != z->double_at(i);
  }
  EXPECT_TRUE(differs);
}

TEST(ExprConcurrency, OneCompiledExprManyThreads) {
  auto schema = test_schema();
  std::vector<std::vector<Value>> rows;
  for (int64_t i = 0; i < 1000; ++i) rows.push_back(row({I(i), I(i % 7), D(1.5 * i), S("n")}));
  auto batch = make_batch(schema, rows);
  auto e = must_compile("if(qty = 0, -1.0, price / qty) + length(concat(name, qty))", *schema);
  EvalContext ref_ctx;
  ColumnPtr ref = e->evaluate(*batch, ref_ctx);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      EvalContext ctx;
      for (int k = 0; k < 20; ++k) {
        ColumnPtr c = e->evaluate(*batch, ctx);
        bool same = true;
        for (size_t i = 0; i < c->size(); ++i) same &= c->double_at(i) == ref->double_at(i);
        ok[t] += same;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 20);
}

}  // namespace
}  // namespace df::expr::testing
