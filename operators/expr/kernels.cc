#include "operators/expr/kernels.h"

#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define DF_HAVE_AVX512_KERNELS 1
#endif

namespace df::expr::internal::kernels {
namespace {

#if defined(DF_HAVE_AVX512_KERNELS)
#define DF_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512ifma")))

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512ifma");
}
const bool kCpuHasAvx512 = cpu_has_avx512();
#else
constexpr bool kCpuHasAvx512 = false;
#endif
thread_local bool t_avx512_enabled = true;

#if defined(DF_HAVE_AVX512_KERNELS)
// Rows [r, n) as an eight-lane mask, for the masked tail.
inline __mmask8 tail_mask(size_t r, size_t n) { return static_cast<__mmask8>((1u << (n - r)) - 1); }

DF_AVX512 bool mul_int64_avx512(const int64_t* x, int64_t c, int64_t* o, size_t n) {
  // x * c stays in int64 iff lo <= x <= hi (quotients truncate toward zero).
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t lo = kMin, hi = kMax;
  if (c > 1) {
    lo = kMin / c;
    hi = kMax / c;
  } else if (c == -1) {
    lo = -kMax;
  } else if (c < -1) {
    lo = kMax / c;
    hi = kMin / c;
  }
  const __m512i cv = _mm512_set1_epi64(c), lov = _mm512_set1_epi64(lo), hiv = _mm512_set1_epi64(hi);
  __mmask8 bad = 0;
  size_t r = 0;
  for (; r + 8 <= n; r += 8) {
    const __m512i v = _mm512_loadu_si512(x + r);
    bad |= _mm512_cmplt_epi64_mask(v, lov) | _mm512_cmpgt_epi64_mask(v, hiv);
    _mm512_storeu_si512(o + r, _mm512_mullo_epi64(v, cv));
  }
  if (r < n) {
    const __mmask8 k = tail_mask(r, n);
    const __m512i v = _mm512_maskz_loadu_epi64(k, x + r);
    bad |= _mm512_mask_cmplt_epi64_mask(k, v, lov) | _mm512_mask_cmpgt_epi64_mask(k, v, hiv);
    _mm512_mask_storeu_epi64(o + r, k, _mm512_mullo_epi64(v, cv));
  }
  return bad == 0;
}

// q = floor(|x| / |d|) by SmallInt64Divisor's 52-bit multiply, then the
// signs of C++ truncation: the quotient negative when x and d differ in
// sign, the remainder with the sign of x.
DF_AVX512 inline __m512i div_lanes(__m512i v, __m512i magic, __m128i shift, __m512i dv,
                                   __m512i dsign, bool mod, __mmask8& bad) {
  const __m512i limit = _mm512_set1_epi64(static_cast<int64_t>(SmallInt64Divisor::kLimit));
  const __m512i zero = _mm512_setzero_si512();
  const __m512i a = _mm512_abs_epi64(v);  // INT64_MIN stays 2^63 unsigned: caught below
  bad |= _mm512_cmpge_epu64_mask(a, limit);
  const __m512i q = _mm512_srl_epi64(_mm512_madd52hi_epu64(zero, a, magic), shift);
  const __m512i xsign = _mm512_srai_epi64(v, 63);  // all ones where x < 0
  if (mod) {
    const __m512i rem = _mm512_sub_epi64(a, _mm512_madd52lo_epu64(zero, q, dv));
    return _mm512_sub_epi64(_mm512_xor_si512(rem, xsign), xsign);
  }
  const __m512i s = _mm512_xor_si512(xsign, dsign);
  return _mm512_sub_epi64(_mm512_xor_si512(q, s), s);
}

DF_AVX512 bool div_int64_avx512(const int64_t* x, const SmallInt64Divisor& d, bool mod, int64_t* o,
                                size_t n) {
  const __m512i magic = _mm512_set1_epi64(static_cast<int64_t>(d.magic()));
  const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(d.shift()));
  const __m512i dv = _mm512_set1_epi64(static_cast<int64_t>(d.abs()));
  const __m512i dsign = _mm512_set1_epi64(d.negative() ? -1 : 0);
  __mmask8 bad = 0;
  size_t r = 0;
  for (; r + 8 <= n; r += 8) {
    const __m512i v = _mm512_loadu_si512(x + r);
    _mm512_storeu_si512(o + r, div_lanes(v, magic, shift, dv, dsign, mod, bad));
  }
  if (r < n) {
    const __mmask8 k = tail_mask(r, n);
    const __m512i v = _mm512_maskz_loadu_epi64(k, x + r);  // zeros beyond n: in range
    _mm512_mask_storeu_epi64(o + r, k, div_lanes(v, magic, shift, dv, dsign, mod, bad));
  }
  return bad == 0;
}

// Sixteen rows per step: two eight-lane compares give one bit per row, and
// each bit becomes a 0/1 byte. Returns how many rows it did (the caller's
// scalar loop does the rest).
template <int kPredicate>
DF_AVX512 size_t compare_f64_avx512(const double* x, const double* y, double ys, uint8_t* o,
                                    size_t n) {
  const __m512d yv = _mm512_set1_pd(ys);
  const __m128i ones = _mm_set1_epi8(1);
  size_t r = 0;
  for (; r + 16 <= n; r += 16) {
    const __m512d b0 = y ? _mm512_loadu_pd(y + r) : yv;
    const __m512d b1 = y ? _mm512_loadu_pd(y + r + 8) : yv;
    const unsigned lo = _mm512_cmp_pd_mask(_mm512_loadu_pd(x + r), b0, kPredicate);
    const unsigned hi = _mm512_cmp_pd_mask(_mm512_loadu_pd(x + r + 8), b1, kPredicate);
    const auto bits = static_cast<__mmask16>(lo | (hi << 8));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + r), _mm_maskz_mov_epi8(bits, ones));
  }
  return r;
}

// Sixteen rows per step: one bit per kept row, and the kept row numbers
// packed to the front of a sixteen-lane register that is stored whole.
DF_AVX512 size_t select_nonzero_avx512(const uint8_t* v, const uint8_t* valid, size_t n,
                                       uint32_t* out, size_t& done) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  size_t k = 0;
  size_t r = 0;
  for (; r + 16 <= n; r += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + r));
    __mmask16 keep = _mm_test_epi8_mask(bytes, bytes);
    if (valid) {
      const __m128i ok = _mm_loadu_si128(reinterpret_cast<const __m128i*>(valid + r));
      keep &= _mm_test_epi8_mask(ok, ok);
    }
    const __m512i rows = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int>(r)));
    _mm512_storeu_si512(out + k, _mm512_maskz_compress_epi32(keep, rows));
    k += static_cast<size_t>(__builtin_popcount(keep));
  }
  done = r;
  return k;
}

DF_AVX512 void iota_int64_avx512(int64_t* o, uint64_t first, uint64_t stride, size_t n) {
  const auto lane = [&](uint64_t k) { return static_cast<long long>(first + k * stride); };
  __m512i v =
      _mm512_setr_epi64(lane(0), lane(1), lane(2), lane(3), lane(4), lane(5), lane(6), lane(7));
  const __m512i step = _mm512_set1_epi64(static_cast<long long>(stride * 8));
  size_t r = 0;
  for (; r + 8 <= n; r += 8) {
    _mm512_storeu_si512(o + r, v);
    v = _mm512_add_epi64(v, step);  // wraps like the uint64 arithmetic of the scalar loop
  }
  if (r < n) _mm512_mask_storeu_epi64(o + r, tail_mask(r, n), v);
}

// x / d by Markstein's correction (see div_f64_by_scalar): q0 = x * z,
// r = x - q0 * d exactly (FMA), q = RN(q0 + r * z). Lanes outside the range
// where that is proven (zeros, tiny or huge values, inf, NaN) divide.
DF_AVX512 inline __m512d div_lanes_f64(__m512d v, __m512d dv, __m512d zv) {
  const __m512d lo = _mm512_set1_pd(0x1p-400), hi = _mm512_set1_pd(0x1p400);
  const __m512d q0 = _mm512_mul_pd(v, zv);
  const __m512d r = _mm512_fnmadd_pd(q0, dv, v);
  __m512d q = _mm512_fmadd_pd(r, zv, q0);
  const __m512d a = _mm512_abs_pd(v);
  const __mmask8 ok = _mm512_cmp_pd_mask(a, lo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(a, hi, _CMP_LE_OQ);
  if (ok != 0xff) q = _mm512_mask_div_pd(q, static_cast<__mmask8>(~ok), v, dv);
  return q;
}

DF_AVX512 void div_f64_avx512(const double* x, double d, double z, double* o, size_t n) {
  const __m512d dv = _mm512_set1_pd(d), zv = _mm512_set1_pd(z);
  size_t r = 0;
  for (; r + 8 <= n; r += 8) _mm512_storeu_pd(o + r, div_lanes_f64(_mm512_loadu_pd(x + r), dv, zv));
  if (r < n) {
    const __mmask8 k = tail_mask(r, n);
    _mm512_mask_storeu_pd(o + r, k, div_lanes_f64(_mm512_maskz_loadu_pd(k, x + r), dv, zv));
  }
}

DF_AVX512 void int64_to_double_avx512(const int64_t* x, double* o, size_t n) {
  size_t r = 0;
  for (; r + 8 <= n; r += 8) {
    _mm512_storeu_pd(o + r, _mm512_cvtepi64_pd(_mm512_loadu_si512(x + r)));
  }
  if (r < n) {
    const __mmask8 k = tail_mask(r, n);
    _mm512_mask_storeu_pd(o + r, k, _mm512_cvtepi64_pd(_mm512_maskz_loadu_epi64(k, x + r)));
  }
}
#endif

template <class Cmp>
void compare_loop(const double* x, const double* y, double ys, uint8_t* o, size_t n, Cmp cmp) {
  if (y) {
    for (size_t r = 0; r < n; ++r) o[r] = cmp(x[r], y[r]) ? 1 : 0;
  } else {
    for (size_t r = 0; r < n; ++r) o[r] = cmp(x[r], ys) ? 1 : 0;
  }
}

template <class F>
decltype(auto) with_cmp(Op op, F&& f) {
  switch (op) {
    case Op::kEq:
      return f([](double a, double b) { return a == b; });
    case Op::kNe:
      return f([](double a, double b) { return a != b; });
    case Op::kLt:
      return f([](double a, double b) { return a < b; });
    case Op::kLe:
      return f([](double a, double b) { return a <= b; });
    case Op::kGt:
      return f([](double a, double b) { return a > b; });
    case Op::kGe:
      return f([](double a, double b) { return a >= b; });
    default:
      break;
  }
  throw std::logic_error("expr kernels: not a comparison");
}

#if defined(__SSE2__)

// kBytes[m]: eight bytes, byte i = bit i of m.
constexpr std::array<uint64_t, 256> make_bytes() {
  std::array<uint64_t, 256> t{};
  for (unsigned m = 0; m < 256; ++m) {
    for (unsigned i = 0; i < 8; ++i) {
      if (m & (1u << i)) t[m] |= uint64_t{1} << (8 * i);
    }
  }
  return t;
}
constexpr std::array<uint64_t, 256> kBytes = make_bytes();

// kPositions[m]: the positions of m's set bits, ascending, one per byte;
// kCounts[m]: how many.
struct Positions {
  std::array<uint64_t, 256> pos{};
  std::array<uint8_t, 256> count{};
};
constexpr Positions make_positions() {
  Positions p;
  for (unsigned m = 0; m < 256; ++m) {
    unsigned k = 0;
    for (unsigned i = 0; i < 8; ++i) {
      if (m & (1u << i)) p.pos[m] |= uint64_t{i} << (8 * k++);
    }
    p.count[m] = static_cast<uint8_t>(k);
  }
  return p;
}
constexpr Positions kPositions = make_positions();

template <bool kColumnY, class VCmp>
size_t compare_sse2_loop(const double* x, const double* y, double ys, uint8_t* o, size_t n,
                         VCmp vcmp) {
  const __m128d yv = _mm_set1_pd(ys);
  size_t r = 0;
  for (; r + 8 <= n; r += 8) {
    unsigned bits = 0;
    for (unsigned j = 0; j < 4; ++j) {
      const __m128d a = _mm_loadu_pd(x + r + 2 * j);
      __m128d b = yv;
      if constexpr (kColumnY) b = _mm_loadu_pd(y + r + 2 * j);
      bits |= static_cast<unsigned>(_mm_movemask_pd(vcmp(a, b))) << (2 * j);
    }
    std::memcpy(o + r, &kBytes[bits], 8);
  }
  return r;
}

template <class VCmp>
size_t compare_sse2(const double* x, const double* y, double ys, uint8_t* o, size_t n, VCmp vcmp) {
  return y ? compare_sse2_loop<true>(x, y, ys, o, n, vcmp)
           : compare_sse2_loop<false>(x, y, ys, o, n, vcmp);
}

#endif

}  // namespace

void compare_f64_scalar(Op op, const double* x, const double* y, double y_scalar, uint8_t* o,
                        size_t n) {
  with_cmp(op, [&](auto cmp) { compare_loop(x, y, y_scalar, o, n, cmp); });
}

void compare_f64(Op op, const double* x, const double* y, double y_scalar, uint8_t* o, size_t n) {
  size_t done = 0;
#if defined(DF_HAVE_AVX512_KERNELS)
  // The AVX-512 predicates with the NaN behaviour of the C++ operators
  // (ordered, quiet; <> unordered).
  if (avx512()) {
    switch (op) {
      case Op::kEq:
        done = compare_f64_avx512<_CMP_EQ_OQ>(x, y, y_scalar, o, n);
        break;
      case Op::kNe:
        done = compare_f64_avx512<_CMP_NEQ_UQ>(x, y, y_scalar, o, n);
        break;
      case Op::kLt:
        done = compare_f64_avx512<_CMP_LT_OQ>(x, y, y_scalar, o, n);
        break;
      case Op::kLe:
        done = compare_f64_avx512<_CMP_LE_OQ>(x, y, y_scalar, o, n);
        break;
      case Op::kGt:
        done = compare_f64_avx512<_CMP_GT_OQ>(x, y, y_scalar, o, n);
        break;
      case Op::kGe:
        done = compare_f64_avx512<_CMP_GE_OQ>(x, y, y_scalar, o, n);
        break;
      default:
        throw std::logic_error("expr kernels: not a comparison");
    }
    compare_f64_scalar(op, x + done, y ? y + done : nullptr, y_scalar, o + done, n - done);
    return;
  }
#endif
#if defined(__SSE2__)
  // The SSE2 predicates with the same NaN behaviour as the C++ operators:
  // ordered (false on NaN) for all but <>, which is "unordered or not equal".
  switch (op) {
    case Op::kEq:
      done = compare_sse2(x, y, y_scalar, o, n,
                          [](__m128d a, __m128d b) { return _mm_cmpeq_pd(a, b); });
      break;
    case Op::kNe:
      done = compare_sse2(x, y, y_scalar, o, n,
                          [](__m128d a, __m128d b) { return _mm_cmpneq_pd(a, b); });
      break;
    case Op::kLt:
      done = compare_sse2(x, y, y_scalar, o, n,
                          [](__m128d a, __m128d b) { return _mm_cmplt_pd(a, b); });
      break;
    case Op::kLe:
      done = compare_sse2(x, y, y_scalar, o, n,
                          [](__m128d a, __m128d b) { return _mm_cmple_pd(a, b); });
      break;
    case Op::kGt:
      done = compare_sse2(x, y, y_scalar, o, n,
                          [](__m128d a, __m128d b) { return _mm_cmpgt_pd(a, b); });
      break;
    case Op::kGe:
      done = compare_sse2(x, y, y_scalar, o, n,
                          [](__m128d a, __m128d b) { return _mm_cmpge_pd(a, b); });
      break;
    default:
      throw std::logic_error("expr kernels: not a comparison");
  }
#endif
  compare_f64_scalar(op, x + done, y ? y + done : nullptr, y_scalar, o + done, n - done);
}

bool avx512() { return kCpuHasAvx512 && t_avx512_enabled; }
void set_avx512(bool enabled) { t_avx512_enabled = enabled; }

bool mul_int64(const int64_t* x, int64_t c, int64_t* o, size_t n) {
#if defined(DF_HAVE_AVX512_KERNELS)
  if (avx512()) return mul_int64_avx512(x, c, o, n);
#endif
  (void)x, (void)c, (void)o, (void)n;
  return false;
}

bool div_int64(const int64_t* x, const SmallInt64Divisor& d, bool mod, int64_t* o, size_t n) {
#if defined(DF_HAVE_AVX512_KERNELS)
  if (avx512()) return div_int64_avx512(x, d, mod, o, n);
#endif
  (void)x, (void)d, (void)mod, (void)o, (void)n;
  return false;
}

bool div_f64_by_scalar(const double* x, double d, double* o, size_t n) {
#if defined(DF_HAVE_AVX512_KERNELS)
  if (!avx512()) return false;
  const double ad = std::fabs(d);
  if (!(ad >= 0x1p-500 && ad <= 0x1p500)) return false;
  const double z = 1.0 / d;
  // z * d - 1 is exact with an FMA; within 2^-54 the product x * z is within
  // one ulp of x / d, the precondition of Markstein's correction.
  if (std::fabs(std::fma(z, d, -1.0)) > 0x1p-54) return false;
  div_f64_avx512(x, d, z, o, n);
  return true;
#else
  (void)x, (void)d, (void)o, (void)n;
  return false;
#endif
}

void iota_int64(int64_t* o, uint64_t first, uint64_t stride, size_t n) {
#if defined(DF_HAVE_AVX512_KERNELS)
  if (avx512()) return iota_int64_avx512(o, first, stride, n);
#endif
  iota_int64_scalar(o, first, stride, n);
}

void iota_int64_scalar(int64_t* o, uint64_t first, uint64_t stride, size_t n) {
  uint64_t v = first;
  for (size_t r = 0; r < n; ++r, v += stride) o[r] = static_cast<int64_t>(v);
}

bool int64_to_double(const int64_t* x, double* o, size_t n) {
#if defined(DF_HAVE_AVX512_KERNELS)
  // Exact for every int64 (rounds to nearest like static_cast).
  if (avx512()) {
    int64_to_double_avx512(x, o, n);
    return true;
  }
#endif
  size_t r = 0;
#if defined(__SSE2__)
  // For |v| < 2^51 the double 2^52 + 2^51 + v has the bit pattern
  // bits(2^52 + 2^51) + v (every integer in [2^52, 2^53) is a double, one
  // unit of the last place apart), and subtracting 2^52 + 2^51 again is
  // exact. In range iff (v + 2^51) as unsigned < 2^52.
  const __m128i bias = _mm_set1_epi64x(int64_t{1} << 51);
  const __m128i magic_bits = _mm_set1_epi64x(0x4338000000000000);  // 2^52 + 2^51
  const __m128d magic = _mm_set1_pd(6755399441055744.0);
  __m128i out_of_range = _mm_setzero_si128();
  for (; r + 2 <= n; r += 2) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + r));
    out_of_range = _mm_or_si128(out_of_range, _mm_srli_epi64(_mm_add_epi64(v, bias), 52));
    _mm_storeu_pd(o + r, _mm_sub_pd(_mm_castsi128_pd(_mm_add_epi64(v, magic_bits)), magic));
  }
  if (_mm_movemask_epi8(_mm_cmpeq_epi32(out_of_range, _mm_setzero_si128())) != 0xFFFF) {
    return false;
  }
#endif
  for (; r < n; ++r) o[r] = static_cast<double>(x[r]);
  return true;
}

size_t select_nonzero_scalar(const uint8_t* v, const uint8_t* valid, size_t n, uint32_t* out) {
  size_t k = 0;
  if (valid) {
    for (size_t r = 0; r < n; ++r) {
      out[k] = static_cast<uint32_t>(r);
      k += (v[r] != 0) & (valid[r] != 0);
    }
  } else {
    for (size_t r = 0; r < n; ++r) {
      out[k] = static_cast<uint32_t>(r);
      k += v[r] != 0;
    }
  }
  return k;
}

size_t select_nonzero(const uint8_t* v, const uint8_t* valid, size_t n, uint32_t* out) {
  size_t k = 0;
  size_t r = 0;
#if defined(DF_HAVE_AVX512_KERNELS)
  if (avx512()) k = select_nonzero_avx512(v, valid, n, out, r);
#endif
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  for (; r + 16 <= n; r += 16) {
    // One bit per row: set where the byte is non-zero (and valid).
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v + r));
    unsigned keep = ~static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, zero)));
    if (valid) {
      const __m128i ok = _mm_loadu_si128(reinterpret_cast<const __m128i*>(valid + r));
      keep &= ~static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(ok, zero)));
    }
    for (unsigned half = 0; half < 2; ++half) {
      const unsigned m = (keep >> (8 * half)) & 0xFF;
      // Widen the eight byte positions to uint32, add the row base, store
      // eight (only the first count[m] are kept).
      const __m128i pos8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(&kPositions.pos[m]));
      const __m128i pos16 = _mm_unpacklo_epi8(pos8, zero);
      const __m128i base = _mm_set1_epi32(static_cast<int>(r + 8 * half));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k),
                       _mm_add_epi32(_mm_unpacklo_epi16(pos16, zero), base));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k + 4),
                       _mm_add_epi32(_mm_unpackhi_epi16(pos16, zero), base));
      k += kPositions.count[m];
    }
  }
#endif
  const size_t rest = select_nonzero_scalar(v + r, valid ? valid + r : nullptr, n - r, out + k);
  for (size_t i = 0; i < rest; ++i) out[k + i] += static_cast<uint32_t>(r);
  return k + rest;
}

}  // namespace df::expr::internal::kernels
