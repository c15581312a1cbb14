// Internal: hand-vectorized loops for the evaluator's hottest operations,
// where the compiler's auto-vectorizer gives up on baseline x86-64 (SSE2):
// comparisons that produce one byte per row, int64 -> double conversion, and
// turning a bool column into a selection vector. Each has a plain scalar
// version that defines its result; the SSE2 version must match it bit for bit
// (tests/unit/expr/kernels_test.cc checks both).
//
// int64 multiply and divide by a constant have no SSE2 instructions; on CPUs
// with AVX-512 (F, DQ, VL, BW and IFMA, checked once at run time) they, the
// int64 -> double conversion, double comparisons and select_nonzero run
// eight or sixteen rows per instruction. Without it
// mul_int64/div_int64 decline and the evaluator keeps its scalar loops.
// Thread-safe: no state but a per-thread switch for tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "operators/expr/ast.h"
#include "operators/expr/divide.h"

namespace df::expr::internal::kernels {

// Whether this CPU has the AVX-512 subsets the kernels use, and they are not
// switched off for the calling thread (tests compare both ways).
bool avx512();
void set_avx512(bool enabled);

// o[r] = x[r] * c for r in [0, n). Returns false (and leaves `o` partially
// written) without AVX-512 or if some product overflows int64; the caller
// then runs its checked loop.
bool mul_int64(const int64_t* x, int64_t c, int64_t* o, size_t n);

// o[r] = x[r] / d, or x[r] % d when `mod`, with C++ truncation, for r in
// [0, n). Returns false (and leaves `o` partially written) without AVX-512
// or if some |x[r]| >= 2^51.
bool div_int64(const int64_t* x, const SmallInt64Divisor& d, bool mod, int64_t* o, size_t n);

// o[r] = x[r] OP y[r] (or x[r] OP *y_scalar when y == nullptr), as 0/1, for
// r in [0, n). OP is a comparison (kEq..kGe), with IEEE semantics (NaN
// compares false except with <>).
void compare_f64(Op op, const double* x, const double* y, double y_scalar, uint8_t* o, size_t n);

// o[r] = (double)x[r] for r in [0, n). Returns false (and leaves `o`
// partially written) if some |x[r]| is too large for the fast method; the
// caller then converts with the scalar loop.
bool int64_to_double(const int64_t* x, double* o, size_t n);

// Writes the indexes r in [0, n) where v[r] != 0 (and valid[r] != 0 when
// valid is not null), ascending, to `out`, and returns how many. `out` must
// have room for n + 16 entries (the vector loops store 8 or 16 at a time).
size_t select_nonzero(const uint8_t* v, const uint8_t* valid, size_t n, uint32_t* out);

// o[r] = x[r] / d for r in [0, n), bit for bit what the division gives, by
// a multiplication with z = RN(1/d) and one FMA correction (Markstein,
// "Computation of elementary functions on the IBM RISC System/6000", 1990:
// if z is within 1/2 ulp of 1/d and q0 within 1 ulp of x/d, then with the
// exact r = x - q0*d, RN(q0 + r*z) = RN(x/d)). q0 = RN(x*z) is within 1 ulp
// when |z*d - 1| <= 2^-54 (checked per divisor); 2^-400 <= |x| <= 2^400 and
// 2^-500 <= |d| <= 2^500 keep every step clear of underflow and overflow,
// and other lanes (zeros, inf, NaN) divide. Returns false (nothing written)
// without AVX-512 or for a divisor outside those bounds; the caller divides.
bool div_f64_by_scalar(const double* x, double d, double* o, size_t n);

// o[r] = first + r * stride (uint64 arithmetic, wrapping) for r in [0, n):
// the row numbers a generator source emits.
void iota_int64(int64_t* o, uint64_t first, uint64_t stride, size_t n);

// The plain loops the vector versions are checked against.
void iota_int64_scalar(int64_t* o, uint64_t first, uint64_t stride, size_t n);
void compare_f64_scalar(Op op, const double* x, const double* y, double y_scalar, uint8_t* o,
                        size_t n);
size_t select_nonzero_scalar(const uint8_t* v, const uint8_t* valid, size_t n, uint32_t* out);

}  // namespace df::expr::internal::kernels
