// Int64Divisor (division by an invariant divisor by multiply and shift) must
// agree exactly with the CPU's truncating '/' and '%' for every divisor it
// accepts and every numerator, INT64_MIN and INT64_MAX included.
#include "operators/expr/divide.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace df::expr::internal {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

std::vector<int64_t> divisors() {
  std::vector<int64_t> ds;
  for (int64_t d = -1100; d <= 1100; ++d) ds.push_back(d);
  for (int k = 1; k < 63; ++k) {
    const int64_t p = int64_t{1} << k;
    for (int64_t e = -2; e <= 2; ++e) {
      ds.push_back(p + e);
      ds.push_back(-p + e);
    }
  }
  for (int64_t d : {kMin, kMin + 1, kMin + 2, kMax, kMax - 1, kMax / 2, kMax / 3, kMin / 3,
                    int64_t{1'000'000'007}, int64_t{-1'000'000'007}, int64_t{10'000'000'000}}) {
    ds.push_back(d);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const auto x = static_cast<int64_t>(rng());
    ds.push_back(x);
    ds.push_back(x >> (rng() % 63));  // every magnitude
  }
  return ds;
}

// Numerators that stress the divisor d: the extremes, the neighbours of
// multiples of d (where a quotient estimate that is off by one shows), random
// values of every magnitude and sign.
std::vector<int64_t> numerators(int64_t d, std::mt19937_64& rng) {
  std::vector<int64_t> ns = {0, 1, -1, 2, -2, kMin, kMin + 1, kMax, kMax - 1, d};
  if (d != kMin) ns.insert(ns.end(), {-d, d - 1});
  if (d != kMax) ns.push_back(d + 1);
  for (int64_t q : {kMax / d, kMin / d, int64_t{1}, int64_t{2}, int64_t{-3}}) {
    __int128 m = static_cast<__int128>(q) * d;
    for (int e = -1; e <= 1; ++e) {
      const __int128 v = m + e;
      if (v >= kMin && v <= kMax) ns.push_back(static_cast<int64_t>(v));
    }
  }
  for (int i = 0; i < 60; ++i) {
    ns.push_back(static_cast<int64_t>(rng()));
    ns.push_back(static_cast<int64_t>(rng() >> (rng() % 64)));
    ns.push_back(-static_cast<int64_t>(rng() >> (1 + rng() % 63)));
    const int64_t q = static_cast<int64_t>(rng() >> (1 + rng() % 63));
    const __int128 m = static_cast<__int128>(q) * d;
    if (m > kMin && m < kMax) {
      ns.push_back(static_cast<int64_t>(m));
      ns.push_back(static_cast<int64_t>(m + 1));
      ns.push_back(static_cast<int64_t>(m - 1));
    }
  }
  return ns;
}

TEST(ExprInt64Divisor, SupportsEverythingButZeroAndPlusMinusOne) {
  EXPECT_FALSE(Int64Divisor::supports(0));
  EXPECT_FALSE(Int64Divisor::supports(1));
  EXPECT_FALSE(Int64Divisor::supports(-1));
  EXPECT_TRUE(Int64Divisor::supports(2));
  EXPECT_TRUE(Int64Divisor::supports(-2));
  EXPECT_TRUE(Int64Divisor::supports(kMin));
  EXPECT_TRUE(Int64Divisor::supports(kMax));
}

TEST(ExprInt64Divisor, MatchesTruncatingDivisionAndRemainder) {
  std::mt19937_64 rng(42);
  size_t checked = 0;
  for (int64_t d : divisors()) {
    if (!Int64Divisor::supports(d)) continue;
    const Int64Divisor div(d);
    ASSERT_EQ(div.divisor(), d);
    for (int64_t n : numerators(d, rng)) {
      // |d| >= 2, so n / d cannot overflow.
      ASSERT_EQ(div.div(n), n / d) << n << " / " << d;
      ASSERT_EQ(div.mod(n), n % d) << n << " % " << d;
      if (n >= 0) {
        ASSERT_EQ(div.div_nonneg(n), n / d) << n << " / " << d;
        ASSERT_EQ(div.mod_nonneg(n), n % d) << n << " % " << d;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 1'000'000u);
}

TEST(ExprInt64Divisor, UnsignedQuotientsOverTheirWholeRange) {
  // udiv covers every uint64 (|INT64_MIN| = 2^63 included), udiv_small every value below 2^63.
  std::mt19937_64 rng(3);
  for (int64_t d : {int64_t{2}, int64_t{3}, int64_t{7}, int64_t{1000}, int64_t{641}, kMax, kMin,
                    int64_t{-1000}, int64_t{(int64_t{1} << 62) + 1}}) {
    const Int64Divisor div(d);
    const uint64_t ad = d < 0 ? ~static_cast<uint64_t>(d) + 1 : static_cast<uint64_t>(d);
    for (uint64_t n : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}, uint64_t{1} << 63,
                       (uint64_t{1} << 63) - 1, (uint64_t{1} << 63) + 1, ad, ad - 1, ad + 1}) {
      EXPECT_EQ(div.udiv(n), n / ad) << n << " / " << ad;
      if (n < (uint64_t{1} << 63)) {
        EXPECT_EQ(div.udiv_small(n), n / ad) << n << " / " << ad;
      }
    }
    for (int i = 0; i < 100000; ++i) {
      const uint64_t n = rng() >> (rng() % 64);
      ASSERT_EQ(div.udiv(n), n / ad) << n << " / " << ad;
      ASSERT_EQ(div.udiv_small(n >> 1), (n >> 1) / ad) << (n >> 1) << " / " << ad;
    }
  }
}

TEST(ExprSmallInt64Divisor, QuotientsOfDividendsBelow2To51) {
  // The 52-bit-multiplier variant behind the AVX-512 kernel: every divisor of
  // divisors() it accepts, the neighbours of multiples of d and random
  // dividends of every magnitude below 2^51.
  constexpr uint64_t kLimit = SmallInt64Divisor::kLimit;
  EXPECT_FALSE(SmallInt64Divisor::supports(0));
  EXPECT_FALSE(SmallInt64Divisor::supports(1));
  EXPECT_FALSE(SmallInt64Divisor::supports(-1));
  EXPECT_TRUE(SmallInt64Divisor::supports(static_cast<int64_t>(kLimit - 1)));
  EXPECT_TRUE(SmallInt64Divisor::supports(-static_cast<int64_t>(kLimit - 1)));
  EXPECT_FALSE(SmallInt64Divisor::supports(static_cast<int64_t>(kLimit)));
  EXPECT_FALSE(SmallInt64Divisor::supports(-static_cast<int64_t>(kLimit)));
  std::mt19937_64 rng(5);
  size_t checked = 0;
  for (int64_t d : divisors()) {
    if (!SmallInt64Divisor::supports(d)) continue;
    const SmallInt64Divisor div(d);
    const uint64_t ad = div.abs();
    ASSERT_EQ(ad, static_cast<uint64_t>(d < 0 ? -d : d));
    ASSERT_LT(div.magic(), uint64_t{1} << 52) << d;
    std::vector<uint64_t> us = {0, 1, kLimit - 1, kLimit - 2, ad - 1, ad, ad + 1};
    for (uint64_t q : {(kLimit - 1) / ad, uint64_t{2}, uint64_t{3}}) {
      us.insert(us.end(), {q * ad - 1, q * ad, q * ad + 1});
    }
    for (int i = 0; i < 40; ++i) us.push_back((rng() >> 13) >> (rng() % 51));
    for (uint64_t u : us) {
      if (u >= kLimit) continue;
      ASSERT_EQ(div.udiv(u), u / ad) << u << " / " << ad;
      ++checked;
    }
  }
  EXPECT_GT(checked, 100000u);
}

}  // namespace
}  // namespace df::expr::internal
