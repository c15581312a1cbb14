// Internal: exact int64 division by a divisor that stays the same for a whole
// column (a literal or a constant subtree), by multiplying with a precomputed
// reciprocal instead of the CPU's slow 64-bit divide.
//
// The method (Granlund & Montgomery, "Division by invariant integers using
// multiplication", 1994, theorem 4.2): for a divisor 2 <= d <= 2^63 let
// l = ceil(log2 d), so 2^(l-1) < d <= 2^l. With k = N + l and
// m = floor(2^k / d) + 1 we have 2^k < m*d <= 2^k + d <= 2^k + 2^l, and then
// floor(n / d) == floor(m * n / 2^k) for every 0 <= n < 2^N. Writing
// n = q*d + r: m*n / 2^k = n/d + n*(m*d - 2^k) / (d * 2^k) and the error term
// is below (2^N * 2^l) / (d * 2^k) = 1/d, too small to reach the next
// multiple of 1/d past r/d <= (d-1)/d.
//
//  * N = 63 (numerators below 2^63, i.e. non-negative int64): m < 2^64 fits
//    one register, q = mulhi(m, n) >> (l - 1).
//  * N = 64 (every uint64, including |INT64_MIN| = 2^63): m needs 65 bits;
//    we keep m' = m - 2^64 and compute floor((n + mulhi(m', n)) / 2^l)
//    without overflowing as (t + ((n - t) >> 1)) >> (l - 1), t = mulhi(m', n)
//    (t <= n because m' < 2^64).
//
// Signed truncating division is then sign(n) * sign(d) * floor(|n| / |d|),
// and the remainder n - q*d (the sign of n, as C++ '%').
#pragma once

#include <cstdint>

namespace df::expr::internal {

class Int64Divisor {
 public:
  // True when `d` can use this class: |d| >= 2 (INT64_MIN included). 0, 1
  // and -1 are the caller's business (error, identity, negation).
  static bool supports(int64_t d) { return d > 1 || d < -1; }

  explicit Int64Divisor(int64_t d) : d_(d), negative_(d < 0) {
    // |d| as uint64: well-defined for INT64_MIN too (2^63).
    abs_ = negative_ ? ~static_cast<uint64_t>(d) + 1 : static_cast<uint64_t>(d);
    const unsigned l = 64 - static_cast<unsigned>(__builtin_clzll(abs_ - 1));  // ceil(log2 |d|)
    shift_ = l - 1;
    using U128 = unsigned __int128;
    // floor(2^(63+l) / |d|) + 1 < 2^64 because |d| > 2^(l-1).
    magic63_ = static_cast<uint64_t>((U128{1} << (63 + l)) / abs_) + 1;
    // floor(2^64 * (2^l - |d|) / |d|) + 1: the 65-bit multiplier minus 2^64.
    const U128 excess = (U128{1} << l) - abs_;
    magic64_ = static_cast<uint64_t>((excess << 64) / abs_) + 1;
  }

  int64_t divisor() const { return d_; }

  // floor(n / |d|) for n < 2^63.
  uint64_t udiv_small(uint64_t n) const { return mulhi(magic63_, n) >> shift_; }
  // floor(n / |d|) for any n.
  uint64_t udiv(uint64_t n) const {
    const uint64_t t = mulhi(magic64_, n);
    return (t + ((n - t) >> 1)) >> shift_;
  }

  // n / d and n % d with C++ truncation, for n >= 0.
  int64_t div_nonneg(int64_t n) const {
    const uint64_t q = udiv_small(static_cast<uint64_t>(n));
    return static_cast<int64_t>(negative_ ? 0 - q : q);
  }
  int64_t mod_nonneg(int64_t n) const {
    const uint64_t u = static_cast<uint64_t>(n);
    return static_cast<int64_t>(u - udiv_small(u) * abs_);
  }

  // n / d and n % d with C++ truncation, for any n (INT64_MIN included; the
  // quotient never overflows because |d| >= 2).
  int64_t div(int64_t n) const {
    const uint64_t sn = static_cast<uint64_t>(n >> 63);  // all ones when n < 0
    const uint64_t a = (static_cast<uint64_t>(n) ^ sn) - sn;
    const uint64_t s = negative_ ? ~sn : sn;  // all ones when the quotient is negative
    return static_cast<int64_t>((udiv(a) ^ s) - s);
  }
  int64_t mod(int64_t n) const {
    const uint64_t sn = static_cast<uint64_t>(n >> 63);
    const uint64_t a = (static_cast<uint64_t>(n) ^ sn) - sn;
    const uint64_t r = a - udiv(a) * abs_;  // |n| % |d|
    return static_cast<int64_t>((r ^ sn) - sn);
  }

 private:
  static uint64_t mulhi(uint64_t a, uint64_t b) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
  }

  int64_t d_;
  bool negative_;
  uint64_t abs_;
  unsigned shift_;
  uint64_t magic63_;
  uint64_t magic64_;
};

// The same division for 52-bit multipliers (AVX-512 IFMA, kernels.h):
// theorem 4.2 with N = 51. For 2 <= d < 2^51, l = ceil(log2 d), k = 51 + l
// and m = floor(2^k / d) + 1 < 2^52, floor(u / d) == floor(m * u / 2^k) for
// every 0 <= u < 2^51. The IFMA instruction yields the product's bits 52 and
// up, floor(m * u / 2^52), so q = that >> (l - 1) (floor of a floor).
// udiv() is the scalar statement of what the vector kernel computes.
class SmallInt64Divisor {
 public:
  static constexpr uint64_t kLimit = uint64_t{1} << 51;  // dividends and |divisor| below this
  static bool supports(int64_t d) {
    return (d > 1 && static_cast<uint64_t>(d) < kLimit) ||
           (d < -1 && d > -static_cast<int64_t>(kLimit));
  }

  explicit SmallInt64Divisor(int64_t d) : negative_(d < 0) {
    abs_ = static_cast<uint64_t>(negative_ ? -d : d);
    const unsigned l = 64 - static_cast<unsigned>(__builtin_clzll(abs_ - 1));
    shift_ = l - 1;
    magic_ = static_cast<uint64_t>((static_cast<unsigned __int128>(1) << (51 + l)) / abs_) + 1;
  }

  uint64_t magic() const { return magic_; }
  unsigned shift() const { return shift_; }
  uint64_t abs() const { return abs_; }
  bool negative() const { return negative_; }

  // floor(u / |d|) for u < 2^51.
  uint64_t udiv(uint64_t u) const {
    const auto hi52 = static_cast<uint64_t>((static_cast<unsigned __int128>(magic_) * u) >> 52);
    return hi52 >> shift_;
  }

 private:
  bool negative_;
  uint64_t abs_;
  unsigned shift_;
  uint64_t magic_;
};

}  // namespace df::expr::internal
