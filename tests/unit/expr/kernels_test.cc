// The hand-vectorized kernels (kernels.h), SSE2 and AVX-512, against their
// plain scalar loops:
// every comparison with NaN, infinities and signed zeros, every length (so
// the scalar tails run), int64 -> double at and beyond the fast range, and
// selection vectors from bool columns with and without validity.
#include "operators/expr/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace df::expr::internal::kernels {
namespace {

std::vector<double> interesting_doubles(size_t n, std::mt19937_64& rng) {
  const double specials[] = {0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             50.0,
                             std::nan(""),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::denorm_min(),
                             std::numeric_limits<double>::max()};
  std::uniform_real_distribution<double> u(-100, 100);
  std::vector<double> v(n);
  for (auto& x : v) {
    const uint64_t pick = rng() % 4;
    x = pick == 0   ? specials[rng() % std::size(specials)]
        : pick == 1 ? static_cast<double>(static_cast<int64_t>(rng() % 101) - 50)
                    : u(rng);
  }
  return v;
}

// Runs `body` with the AVX-512 kernels (where the CPU has them) and without.
template <class F>
void with_and_without_avx512(F&& body) {
  for (bool wide : {true, false}) {
    set_avx512(wide);
    body();
    set_avx512(true);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(ExprKernels, CompareDoublesMatchesScalarLoop) {
  with_and_without_avx512([] {
    std::mt19937_64 rng(1);
    const Op ops[] = {Op::kEq, Op::kNe, Op::kLt, Op::kLe, Op::kGt, Op::kGe};
    for (size_t n = 0; n < 70; ++n) {
      const auto x = interesting_doubles(n, rng);
      const auto y = interesting_doubles(n, rng);
      for (Op op : ops) {
        for (double ys : {50.0, 0.0, -0.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
          std::vector<uint8_t> fast(n + 1, 7), slow(n + 1, 7);
          compare_f64(op, x.data(), nullptr, ys, fast.data(), n);
          compare_f64_scalar(op, x.data(), nullptr, ys, slow.data(), n);
          ASSERT_EQ(fast, slow) << "n=" << n << " op=" << op_symbol(op) << " scalar " << ys;
        }
        std::vector<uint8_t> fast(n + 1, 7), slow(n + 1, 7);
        compare_f64(op, x.data(), y.data(), 0.0, fast.data(), n);
        compare_f64_scalar(op, x.data(), y.data(), 0.0, slow.data(), n);
        ASSERT_EQ(fast, slow) << "n=" << n << " op=" << op_symbol(op);
        EXPECT_EQ(fast[n], 7) << "wrote past the end";
      }
    }
  });
}

TEST(ExprKernels, CompareDoublesScalarLoopIsTheCppOperator) {
  const double nan = std::nan("");
  const double x[] = {1.0, nan, 2.0, -0.0};
  uint8_t o[4];
  compare_f64_scalar(Op::kGt, x, nullptr, 1.0, o, 4);
  EXPECT_EQ(std::vector<uint8_t>(o, o + 4), (std::vector<uint8_t>{0, 0, 1, 0}));
  compare_f64_scalar(Op::kNe, x, nullptr, 1.0, o, 4);
  EXPECT_EQ(std::vector<uint8_t>(o, o + 4), (std::vector<uint8_t>{0, 1, 1, 1}));
  compare_f64_scalar(Op::kEq, x, nullptr, 0.0, o, 4);
  EXPECT_EQ(std::vector<uint8_t>(o, o + 4), (std::vector<uint8_t>{0, 0, 0, 1}));
}

TEST(ExprKernels, Int64ToDoubleIsExactInRangeAndRefusesOutOfRange) {
  std::mt19937_64 rng(2);
  const int64_t lim = int64_t{1} << 51;
  const std::vector<int64_t> edges = {0, 1, -1, lim - 1, -lim, lim - 2, -lim + 1, 123456789, -42};
  for (size_t n = 0; n < 40; ++n) {
    std::vector<int64_t> x(n);
    for (auto& v : x) {
      v = rng() % 3 == 0 ? edges[rng() % edges.size()]
                         : static_cast<int64_t>(rng() % (2 * static_cast<uint64_t>(lim))) - lim;
    }
    std::vector<double> o(n, -7.0);
    ASSERT_TRUE(int64_to_double(x.data(), o.data(), n)) << n;
    for (size_t i = 0; i < n; ++i) {
      const double want = static_cast<double>(x[i]);
      ASSERT_EQ(std::memcmp(&o[i], &want, sizeof want), 0) << x[i];  // +0.0 bit for bit
    }
  }
  // One value outside [-2^51, 2^51) anywhere, in the vector part or the tail.
  for (int64_t bad : {lim, -lim - 1, std::numeric_limits<int64_t>::max(),
                      std::numeric_limits<int64_t>::min(), int64_t{1} << 60}) {
    for (size_t n : {size_t{2}, size_t{9}, size_t{16}}) {
      for (size_t at = 0; at < n; ++at) {
        std::vector<int64_t> x(n, 5);
        x[at] = bad;
        std::vector<double> o(n);
        if (int64_to_double(x.data(), o.data(), n)) {
          // Only the scalar tail may take it, and then exactly.
          ASSERT_EQ(o[at], static_cast<double>(bad)) << bad << " at " << at << " of " << n;
        }
      }
    }
  }
}

TEST(ExprKernels, SelectNonzeroMatchesScalarLoop) {
  with_and_without_avx512([] {
    std::mt19937_64 rng(3);
    for (size_t n = 0; n < 300; n += (n < 40 ? 1 : 37)) {
      for (int density : {0, 1, 50, 99, 100}) {
        std::vector<uint8_t> v(n), valid(n);
        for (size_t i = 0; i < n; ++i) {
          const bool on = static_cast<int>(rng() % 100) < density;
          v[i] = on ? static_cast<uint8_t>(1 + rng() % 255) : 0;  // any non-zero byte is true
          valid[i] = rng() % 5 == 0 ? 0 : static_cast<uint8_t>(1 + rng() % 3);
        }
        for (const uint8_t* vp :
             {static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(valid.data())}) {
          std::vector<uint32_t> fast(n + 16), slow(n + 16);
          const size_t kf = select_nonzero(v.data(), vp, n, fast.data());
          const size_t ks = select_nonzero_scalar(v.data(), vp, n, slow.data());
          ASSERT_EQ(kf, ks) << "n=" << n << " density=" << density;
          fast.resize(kf);
          slow.resize(ks);
          ASSERT_EQ(fast, slow) << "n=" << n << " density=" << density;
          std::vector<uint32_t> want;
          for (size_t i = 0; i < n; ++i) {
            if (v[i] != 0 && (vp == nullptr || vp[i] != 0))
              want.push_back(static_cast<uint32_t>(i));
          }
          ASSERT_EQ(slow, want);
        }
      }
    }
  });
}

// Lengths 0..40 cover the eight-row loop and every masked tail.
std::vector<int64_t> int64s(size_t n, int64_t limit, std::mt19937_64& rng) {
  std::vector<int64_t> x(n);
  for (auto& v : x) {
    const uint64_t pick = rng() % 4;
    // The last case subtracts in unsigned (wrapping) arithmetic: for
    // limit = INT64_MAX the signed difference would overflow.
    v = pick == 0   ? (rng() % 2 ? limit - 1 : -(limit - 1))
        : pick == 1 ? static_cast<int64_t>(rng() % 2001) - 1000
                    : static_cast<int64_t>(rng() % (2 * static_cast<uint64_t>(limit) - 1) -
                                           static_cast<uint64_t>(limit - 1));
  }
  return x;
}

TEST(ExprKernels, MulInt64IsTheCheckedProduct) {
  if (!avx512()) GTEST_SKIP() << "this CPU lacks AVX-512 F/DQ/VL/IFMA; the evaluator's loops run";
  std::mt19937_64 rng(4);
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t cs[] = {0, 1, -1, 2, -2, 7919, -7919, int64_t{1} << 32, kMax, kMin, kMax / 3};
  for (size_t n = 0; n <= 40; ++n) {
    for (int64_t limit : {int64_t{1} << 20, int64_t{1} << 40, kMax}) {
      auto x = int64s(n, limit, rng);
      if (n > 0 && rng() % 3 == 0) x[rng() % n] = rng() % 2 ? kMin : kMax;
      for (int64_t c : cs) {
        bool overflow = false;
        std::vector<int64_t> want(n);
        for (size_t i = 0; i < n; ++i) overflow |= __builtin_mul_overflow(x[i], c, &want[i]);
        std::vector<int64_t> o(n + 1, 7);
        ASSERT_EQ(mul_int64(x.data(), c, o.data(), n), !overflow) << "n=" << n << " c=" << c;
        EXPECT_EQ(o[n], 7) << "wrote past the end";
        o.resize(n);
        if (!overflow) {
          ASSERT_EQ(o, want) << "n=" << n << " c=" << c;
        }
      }
    }
  }
}

TEST(ExprKernels, DivInt64IsCppDivisionBelow2To51) {
  if (!avx512()) GTEST_SKIP() << "this CPU lacks AVX-512 F/DQ/VL/IFMA; the evaluator's loops run";
  std::mt19937_64 rng(5);
  const int64_t lim = int64_t{1} << 51;
  for (int64_t d :
       {int64_t{2}, int64_t{3}, int64_t{7}, int64_t{10}, int64_t{1000}, int64_t{-1000},
        int64_t{641}, int64_t{4096}, int64_t{-2}, lim - 1, -(lim - 1), int64_t{1} << 40}) {
    const SmallInt64Divisor div(d);
    for (size_t n = 0; n <= 40; ++n) {
      auto x = int64s(n, lim, rng);
      for (size_t i = 0; i < n; i += 3) {  // multiples of d and their neighbours
        const int64_t m = (x[i] / d) * d + (i % 2 ? 0 : -1);
        if (m > -lim && m < lim) x[i] = m;
      }
      for (bool mod : {false, true}) {
        std::vector<int64_t> o(n + 1, 7);
        ASSERT_TRUE(div_int64(x.data(), div, mod, o.data(), n)) << "n=" << n << " d=" << d;
        EXPECT_EQ(o[n], 7) << "wrote past the end";
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(o[i], mod ? x[i] % d : x[i] / d) << x[i] << (mod ? " % " : " / ") << d;
        }
      }
    }
  }
  // One dividend out of range anywhere, in the loop or the tail: declined.
  const SmallInt64Divisor div(1000);
  for (int64_t bad :
       {lim, -lim, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    for (size_t n : {size_t{1}, size_t{8}, size_t{13}}) {
      for (size_t at = 0; at < n; ++at) {
        std::vector<int64_t> x(n, 5), o(n);
        x[at] = bad;
        EXPECT_FALSE(div_int64(x.data(), div, true, o.data(), n)) << bad << " at " << at;
      }
    }
  }
}

TEST(ExprKernels, Int64ToDoubleWithAndWithoutAvx512) {
  // Any int64 when AVX-512 converts (rounded like static_cast), and the same
  // values through the SSE2 path when it is switched off.
  std::mt19937_64 rng(6);
  for (bool wide : {true, false}) {
    set_avx512(wide);
    for (size_t n = 0; n <= 20; ++n) {
      std::vector<int64_t> x(n);
      for (auto& v : x) v = static_cast<int64_t>(rng()) >> (rng() % 64);
      std::vector<double> o(n + 1, -7.0);
      const bool done = int64_to_double(x.data(), o.data(), n);
      EXPECT_EQ(o[n], -7.0) << "wrote past the end";
      if (wide && avx512()) {
        ASSERT_TRUE(done);
      }
      if (!done) continue;
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(o[i], static_cast<double>(x[i])) << x[i];
    }
  }
  set_avx512(true);
}

// Bit for bit the quotient, on random doubles of every magnitude, values
// near the edges of the fast range, specials and signed zeros.
TEST(ExprKernels, DivDoubleByScalarIsTheDivision) {
  if (!avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937_64 rng(11);
  const double divisors[] = {10.0,  3.0,    7.0, 0.908,   1e-3,      3.141592653589793,
                             -10.0, 1000.0, 0.1, 6.02e23, 1.0 / 3.0, 4.0};
  const double specials[] = {0.0,
                             -0.0,
                             1.0,
                             -1.0,
                             0x1p-400,
                             0x1p400,
                             0x1.fffffffffffffp-401,
                             0x1.0000000000001p400,
                             5e-324,
                             -2.2250738585072014e-308,
                             std::numeric_limits<double>::max(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN()};
  size_t fast = 0;
  for (double d : divisors) {
    for (int round = 0; round < 40; ++round) {
      const size_t n = 1 + rng() % 2000;
      std::vector<double> x(n);
      for (auto& v : x) {
        const uint64_t pick = rng() % 8;
        if (pick == 0) {
          v = specials[rng() % std::size(specials)];
        } else if (pick == 1) {
          v = static_cast<double>(static_cast<int64_t>(rng() % 2001) - 1000) / 10.0;
        } else {
          // Any finite bit pattern: every exponent, every mantissa.
          uint64_t bits = rng();
          std::memcpy(&v, &bits, sizeof v);
          if (!std::isfinite(v)) v = 1.5;
        }
      }
      std::vector<double> o(n + 1, -7.0);
      if (!div_f64_by_scalar(x.data(), d, o.data(), n)) continue;
      ++fast;
      EXPECT_EQ(o[n], -7.0) << "wrote past the end";
      for (size_t i = 0; i < n; ++i) {
        const double want = x[i] / d;
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(o[i])) << x[i] << " / " << d;
        } else {
          uint64_t a = 0, b = 0;
          std::memcpy(&a, &o[i], sizeof a);
          std::memcpy(&b, &want, sizeof b);
          ASSERT_EQ(a, b) << std::hexfloat << x[i] << " / " << d << " gave " << o[i] << ", want "
                          << want;
        }
      }
    }
  }
  EXPECT_GT(fast, 0u);
  // Divisors it declines: the caller divides.
  std::vector<double> x(4, 1.0), o(4);
  EXPECT_FALSE(div_f64_by_scalar(x.data(), 0x1p-600, o.data(), 4));
  EXPECT_FALSE(div_f64_by_scalar(x.data(), std::numeric_limits<double>::infinity(), o.data(), 4));
  set_avx512(false);
  EXPECT_FALSE(div_f64_by_scalar(x.data(), 10.0, o.data(), 4));
  set_avx512(true);
}

// Many quotients of one divisor near midpoints: x = k * d + small, the cases
// where a reciprocal without correction rounds the wrong way.
TEST(ExprKernels, DivDoubleByScalarNearMidpoints) {
  if (!avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (double d : {10.0, 3.0, 0.908, 7.0}) {
    std::vector<double> x;
    for (int64_t k = -200000; k <= 200000; ++k) {
      const double base = static_cast<double>(k) * d;
      x.push_back(base);
      x.push_back(std::nextafter(base, 1e300));
      x.push_back(std::nextafter(base, -1e300));
      x.push_back(static_cast<double>(k) / 10.0);
    }
    std::vector<double> o(x.size());
    if (!div_f64_by_scalar(x.data(), d, o.data(), x.size())) continue;
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(o[i], x[i] / d) << std::hexfloat << x[i] << " / " << d;
    }
  }
}

TEST(ExprKernels, IotaInt64MatchesScalarLoop) {
  // Every length around the vector width, strides that wrap past 2^64.
  const uint64_t starts[] = {0, 3, uint64_t{1} << 63, ~uint64_t{0} - 5};
  const uint64_t strides[] = {1, 2, 7, uint64_t{1} << 62};
  with_and_without_avx512([&] {
    for (size_t n = 0; n <= 20; ++n) {
      for (uint64_t first : starts) {
        for (uint64_t stride : strides) {
          std::vector<int64_t> want(n), got(n + 1, -7);
          iota_int64_scalar(want.data(), first, stride, n);
          iota_int64(got.data(), first, stride, n);
          EXPECT_EQ(got[n], -7) << "wrote past the end";
          got.pop_back();
          ASSERT_EQ(got, want) << "n=" << n << " first=" << first << " stride=" << stride;
        }
      }
    }
  });
  // The scalar loop is the definition: first + r * stride, wrapping.
  std::vector<int64_t> o(3);
  iota_int64_scalar(o.data(), ~uint64_t{0}, 2, 3);
  EXPECT_EQ(o, (std::vector<int64_t>{-1, 1, 3}));
}

}  // namespace
}  // namespace df::expr::internal::kernels
