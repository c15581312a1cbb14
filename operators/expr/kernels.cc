#include "operators/expr/kernels.h"

#include <array>
#include <cstring>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace df::expr::internal::kernels {
namespace {

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

bool int64_to_double(const int64_t* x, double* o, size_t n) {
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
