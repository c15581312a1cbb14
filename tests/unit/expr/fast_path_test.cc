// The evaluator's specialised kernels (scalar literal operands, branch-free
// loops without nulls, division by a constant by multiplication, dense loops
// over a selection, SSE2 comparisons and conversions, recycled scratch
// columns, constants folded at compile time) against its general per-row
// loops: internal::set_fast_paths(false) turns them off for this thread, and
// every expression below must give the same values, the same nulls and the
// same recorded data errors either way, over batches with and without nulls,
// with no, sparse and dense selections, and with negative numbers, zeros,
// INT64_MIN/INT64_MAX and NaN. The fast paths run twice: with the AVX-512
// kernels (where the CPU has them) and without (kernels::set_avx512(false)),
// over int64 values of any size and over values all below 2^51 in magnitude
// (the range of the AVX-512 division).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "operators/expr/eval.h"
#include "operators/expr/kernels.h"
#include "tests/unit/expr/expr_test_util.h"

namespace df::expr::testing {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// a, b int64; d, e double; f bool; t timestamp.
SchemaPtr schema() {
  return make_schema({{"a", TypeId::kInt64},
                      {"b", TypeId::kInt64},
                      {"d", TypeId::kDouble},
                      {"e", TypeId::kDouble},
                      {"f", TypeId::kBool},
                      {"t", TypeId::kTimestamp}});
}

// Rows mixing small numbers of both signs, zeros, the int64 extremes, values
// around the 2^51 limit of the fast int64 -> double conversion, and doubles
// with NaN and infinities. `null_percent` of the values are null.
// With `small`, every int64 has |v| < 2^51.
std::vector<std::vector<Value>> rows(size_t n, int null_percent, bool non_negative, bool small,
                                     std::mt19937_64& rng) {
  const int64_t ints[] = {0,
                          1,
                          -1,
                          2,
                          -2,
                          7,
                          -7,
                          999,
                          1000,
                          -1000,
                          1001,
                          kMin,
                          kMin + 1,
                          kMax,
                          kMax - 1,
                          int64_t{1} << 51,
                          -(int64_t{1} << 51),
                          (int64_t{1} << 51) - 1,
                          -(int64_t{1} << 51) - 1,
                          1LL << 62};
  const double dbls[] = {
      0.0,   -0.0,  50.0,   49.9,         50.1,
      -3.5,  1e300, -1e300, std::nan(""), std::numeric_limits<double>::infinity(),
      0.908, 100.0};
  auto int_value = [&]() -> int64_t {
    int64_t v;
    switch (rng() % 4) {
      case 0:
        v = ints[rng() % std::size(ints)];
        break;
      case 1:
        v = static_cast<int64_t>(rng());
        break;
      default:
        v = static_cast<int64_t>(rng() % 4001) - 2000;
    }
    if (small) {
      constexpr int64_t kSmall = int64_t{1} << 51;
      if (v >= kSmall || v <= -kSmall) v = v % kSmall;
      if (rng() % 8 == 0) v = rng() % 2 ? kSmall - 1 : -(kSmall - 1);
    }
    if (non_negative) v = v == kMin ? 0 : (v < 0 ? -v : v);
    return v;
  };
  auto null_here = [&] { return static_cast<int>(rng() % 100) < null_percent; };
  std::vector<std::vector<Value>> out;
  for (size_t i = 0; i < n; ++i) {
    std::vector<Value> r;
    r.push_back(null_here() ? N(TypeId::kInt64) : I(int_value()));
    r.push_back(null_here() ? N(TypeId::kInt64) : I(int_value()));
    for (int k = 0; k < 2; ++k) {
      const double x = rng() % 3 == 0
                           ? dbls[rng() % std::size(dbls)]
                           : static_cast<double>(static_cast<int64_t>(rng() % 2001) - 1000) / 10.0;
      r.push_back(null_here() ? N(TypeId::kDouble) : D(x));
    }
    r.push_back(null_here() ? N(TypeId::kBool) : B(rng() % 2 == 0));
    r.push_back(null_here() ? N(TypeId::kTimestamp)
                            : T(static_cast<int64_t>(rng() % 100000) - 50000));
    out.push_back(std::move(r));
  }
  return out;
}

// Same value, NaN equal to NaN, doubles bit for bit (so -0.0 differs from 0.0).
bool same(const Value& x, const Value& y) {
  if (x.type() != y.type() || x.is_null() != y.is_null()) return false;
  if (x.is_null()) return true;
  if (x.type() == TypeId::kDouble) {
    const double a = x.as_double(), b = y.as_double();
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return std::memcmp(&a, &b, sizeof a) == 0;
  }
  return x == y;
}

struct Outcome {
  std::vector<Value> values;
  uint64_t data_errors = 0;
  std::vector<EvalContext::RowError> errors;
};

Outcome run(const CompiledExpr& e, const Batch& batch, bool fast, bool avx512 = true) {
  internal::set_fast_paths(fast);
  internal::kernels::set_avx512(avx512);
  EvalContext ctx;
  Outcome o;
  o.values = eval_alive(e, batch, ctx);
  o.data_errors = ctx.data_errors;
  o.errors = ctx.errors;
  internal::set_fast_paths(true);
  internal::kernels::set_avx512(true);
  return o;
}

void expect_same(const std::string& text, const Batch& batch, const std::string& what) {
  auto e = must_compile(text, *batch.schema());
  ASSERT_TRUE(e);
  const Outcome general = run(*e, batch, false);
  // Twice with the fast paths: the second run gets recycled scratch columns
  // holding the first run's values. Then without the AVX-512 kernels.
  for (int pass = 0; pass < 3; ++pass) {
    const Outcome fast = run(*e, batch, true, pass < 2);
    ASSERT_EQ(fast.values.size(), general.values.size());
    for (size_t i = 0; i < fast.values.size(); ++i) {
      ASSERT_TRUE(same(fast.values[i], general.values[i]))
          << text << " (" << what << ") alive row " << i << ": fast " << fast.values[i].to_string()
          << ", general " << general.values[i].to_string();
    }
    ASSERT_EQ(fast.data_errors, general.data_errors) << text << " (" << what << ")";
    ASSERT_EQ(fast.errors.size(), general.errors.size()) << text << " (" << what << ")";
    for (size_t i = 0; i < fast.errors.size(); ++i) {
      EXPECT_EQ(fast.errors[i].row, general.errors[i].row) << text << " (" << what << ")";
      EXPECT_EQ(fast.errors[i].message, general.errors[i].message) << text << " (" << what << ")";
    }
  }
}

const char* const kExpressions[] = {
    // int64 division and modulo by constants: the multiply-and-shift kernels
    "a % 1000", "a / 1000", "a % -7", "a / -7", "a % 2", "a / 2", "a % 3", "a / 3",
    "a / 9223372036854775807", "a % 9223372036854775807", "a / -9223372036854775808",
    "a % -9223372036854775808", "a / (500 * 2)", "(a * 7919) % 1000", "(a * 7919) / 1000",
    // divisors the kernels leave alone: 1 and -1 (x / -1 overflows for INT64_MIN), 0, columns, null
    "a / 1", "a % 1", "a % -1", "a / -1", "a / 0", "a % 0", "a / b", "a % b", "a / null",
    "a % (1 - 1)", "1000 / a", "7 % a", "a % 2251799813685247", "a / -2251799813685247",
    "a % 2251799813685248", "b / 4096", "b % -4096",
    // int64 arithmetic with overflow checks
    "a * 7919", "7919 * a", "a * -7919", "a * 0", "a * 2", "a * -9223372036854775808",
    "a * 4096 * 4096 * 4096", "(a % 1000) * 7919", "-7919 * (b % 100000) % 1000", "a + b", "a - b",
    "a * b", "a + 1", "-a", "a * -1", "t + a", "t - 5", "t - t", "a * null",
    // doubles
    "d / 10.0", "d * 0.908", "d + e", "d - e", "d * e", "d / e", "d % e", "d % 2.5", "d / 0.0",
    "d % 0.0", "d / -0.0", "10.0 / d", "d / null", "-d", "((a * 7919) % 1000) / 10.0",
    // comparisons, column against literal (either side) and column
    "d > 50", "50 < d", "d >= 50.0", "d <= -3.5", "d = 0", "d <> 0", "d = e", "d <> e", "d < e",
    "d >= e", "d > null", "a > 5", "5 < a", "a = b", "a <> b", "a <= b", "t > '1970-01-01'",
    "f = true", "a + 0.5 > d",
    // casts (implicit and explicit)
    "cast(a as double)", "a + 0.5", "cast(a as bool)", "cast(a as timestamp)", "cast(t as int64)",
    "cast(f as int64)", "cast(f as double)", "cast(d as bool)", "cast(d as int64)",
    // logic and nesting
    "not f", "f and d > 50", "d > 50 or a % 3 = 0", "if(a % 2 = 0, d / 10.0, d * 2)",
    "coalesce(a / 0, a % 10)", "a % 1000 between 100 and 200", "a % 10 in (1, 2, 3)",
    "((a * 7919) % 1000) / 10.0 > 50",
    // constant subtrees (folded once) and constants with errors (never folded)
    "d > 25 * 2", "a + (3 * 4 - 2)", "a + 1 / 0", "d * (1 + 1) / 4.0"};

struct Selection_ {
  const char* name;
  std::function<bool(size_t, std::mt19937_64&)> keep;  // nullptr: no selection
};

// One shard per (nulls, signs, magnitudes): eight ctest cases that a
// parallel ctest runs side by side (under ASan with coverage, all of it in
// one case took over a minute). Each shard draws from its own seed.
struct RowKind {
  int null_percent;
  bool non_negative;
  bool small;
};

class ExprFastPathsShard : public ::testing::TestWithParam<RowKind> {};

TEST_P(ExprFastPathsShard, SameResultsAsTheGeneralLoops) {
  const RowKind kind = GetParam();
  std::mt19937_64 rng(11 + (kind.null_percent ? 4 : 0) + (kind.non_negative ? 2 : 0) +
                      (kind.small ? 1 : 0));
  const Selection_ selections[] = {
      {"no selection", nullptr},
      {"dense selection", [](size_t i, std::mt19937_64&) { return i % 5 != 0; }},
      {"half selection", [](size_t, std::mt19937_64& g) { return g() % 2 == 0; }},
      {"sparse selection", [](size_t i, std::mt19937_64&) { return i % 7 == 3; }},
      {"empty selection", [](size_t, std::mt19937_64&) { return false; }},
  };
  for (size_t n : {size_t{1}, size_t{37}, size_t{1024}}) {
    auto data = rows(n, kind.null_percent, kind.non_negative, kind.small, rng);
    for (const auto& s : selections) {
      SelectionPtr sel;
      if (s.keep) {
        auto v = std::make_shared<Selection>();
        for (size_t i = 0; i < n; ++i) {
          if (s.keep(i, rng)) v->push_back(static_cast<uint32_t>(i));
        }
        sel = v;
      }
      const BatchPtr batch = make_batch(schema(), data, sel);
      const std::string what = std::string(s.name) + ", " + std::to_string(n) + " rows, " +
                               std::to_string(kind.null_percent) + "% nulls" +
                               (kind.non_negative ? ", non-negative ints" : "") +
                               (kind.small ? ", ints below 2^51" : "");
      for (const char* text : kExpressions) {
        expect_same(text, *batch, what);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ExprFastPaths, ExprFastPathsShard,
                         ::testing::Values(RowKind{0, false, false}, RowKind{0, false, true},
                                           RowKind{0, true, false}, RowKind{0, true, true},
                                           RowKind{10, false, false}, RowKind{10, false, true},
                                           RowKind{10, true, false}, RowKind{10, true, true}),
                         [](const ::testing::TestParamInfo<RowKind>& info) {
                           return std::string(info.param.null_percent ? "Nulls" : "NoNulls") +
                                  (info.param.non_negative ? "NonNegative" : "AnySign") +
                                  (info.param.small ? "Below2To51" : "AnySize");
                         });

TEST(ExprFastPaths, DivisionByConstantIsExactForEveryResidue) {
  // Every dividend in a range around zero and around the int64 extremes, for
  // divisors of both signs, checked against C++ directly.
  auto s = make_schema({{"a", TypeId::kInt64}});
  std::vector<std::vector<Value>> data;
  for (int64_t v = -3000; v <= 3000; ++v) data.push_back({I(v)});
  for (int64_t v = 0; v < 1000; ++v) {
    data.push_back({I(kMin + v)});
    data.push_back({I(kMax - v)});
  }
  auto batch = make_batch(s, data);
  for (int64_t c : {int64_t{2}, int64_t{3}, int64_t{10}, int64_t{1000}, int64_t{-1000}, int64_t{-7},
                    int64_t{641}, int64_t{1} << 40, kMax, kMin}) {
    for (const char* op : {"/", "%"}) {
      const std::string text =
          "a " + std::string(op) + " " +
          (c == kMin ? std::string("-9223372036854775808") : std::to_string(c));
      auto e = must_compile(text, *s);
      ASSERT_TRUE(e);
      EvalContext ctx;
      auto vals = eval_alive(*e, *batch, ctx);
      ASSERT_EQ(ctx.data_errors, 0u);
      for (size_t i = 0; i < data.size(); ++i) {
        const int64_t x = data[i][0].as_int64();
        ASSERT_EQ(vals[i], I(*op == '/' ? x / c : x % c)) << x << " " << op << " " << c;
      }
    }
  }
}

TEST(ExprFastPaths, DataErrorsOfSelectedRowsOnly) {
  // A dense loop over a selection computes unselected slots too; their
  // failures must neither be reported nor null selected rows.
  auto s = make_schema({{"a", TypeId::kInt64}, {"b", TypeId::kInt64}});
  std::vector<std::vector<Value>> data;
  for (int64_t i = 0; i < 100; ++i)
    data.push_back({I(i % 10 == 0 ? kMax : i), I(i % 10 == 0 ? 0 : 2)});
  auto sel = std::make_shared<Selection>();
  for (uint32_t i = 0; i < 100; ++i) {
    if (i % 10 != 0) sel->push_back(i);
  }
  auto batch = make_batch(s, data, sel);
  for (const char* text :
       {"a * 2", "a + a", "a / b", "a % b", "cast(a as double) / cast(b as double)"}) {
    auto e = must_compile(text, *s);
    EvalContext ctx;
    auto vals = eval_alive(*e, *batch, ctx);
    EXPECT_EQ(ctx.data_errors, 0u) << text;
    for (const Value& v : vals) EXPECT_FALSE(v.is_null()) << text;
  }
}

TEST(ExprFastPaths, ConstantsAreFoldedWithoutChangingTheText) {
  auto s = make_schema({{"d", TypeId::kDouble}});
  auto e = must_compile("d > 25 * 2", *s);
  EXPECT_EQ(e->to_string(), "(d > (25 * 2))");
  auto c = must_compile("3 * 4 - 2", *s);
  EXPECT_TRUE(c->is_constant());
  auto batch = make_batch(s, {{D(1)}, {D(60)}, {D(70)}});
  EvalContext ctx;
  EXPECT_EQ(eval_alive(*c, *batch, ctx), (std::vector<Value>{I(10), I(10), I(10)}));
  EXPECT_EQ(eval_alive(*e, *batch, ctx), (std::vector<Value>{B(false), B(true), B(true)}));
  // A constant that fails is not folded: every row still gets its error.
  auto bad = must_compile("d + 1 / 0", *s);
  EXPECT_EQ(eval_alive(*bad, *batch, ctx),
            (std::vector<Value>{N(TypeId::kDouble), N(TypeId::kDouble), N(TypeId::kDouble)}));
  EXPECT_EQ(ctx.data_errors, 3u);
}

}  // namespace
}  // namespace df::expr::testing
