// The hand-vectorized kernels (kernels.h) against their plain scalar loops:
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

TEST(ExprKernels, CompareDoublesMatchesScalarLoop) {
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
        std::vector<uint32_t> fast(n + 8), slow(n + 8);
        const size_t kf = select_nonzero(v.data(), vp, n, fast.data());
        const size_t ks = select_nonzero_scalar(v.data(), vp, n, slow.data());
        ASSERT_EQ(kf, ks) << "n=" << n << " density=" << density;
        fast.resize(kf);
        slow.resize(ks);
        ASSERT_EQ(fast, slow) << "n=" << n << " density=" << density;
        std::vector<uint32_t> want;
        for (size_t i = 0; i < n; ++i) {
          if (v[i] != 0 && (vp == nullptr || vp[i] != 0)) want.push_back(static_cast<uint32_t>(i));
        }
        ASSERT_EQ(slow, want);
      }
    }
  }
}

}  // namespace
}  // namespace df::expr::internal::kernels
