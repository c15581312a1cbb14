// Digits: fixed-width decimal digits written straight into a buffer (the hot
// paths that format timestamps and generated fields call this per row, where
// snprintf costs thousands of instructions a call), hex digits read back, and
// the shortest text of a double.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>

namespace df {

// Writes the last `width` decimal digits of v, zero-padded, at out; returns
// out + width. Digits of v above 10^width are dropped: callers pass v below it.
inline char* write_fixed_digits(char* out, uint32_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  return out + width;
}

// The value of hex digit c (either case), or -1 when c is not one.
constexpr int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The most bytes write_double writes ("-2.2250738585072014e-308").
inline constexpr size_t kMaxDoubleChars = 24;

// Writes v at out (room for kMaxDoubleChars) in the shortest form that reads
// back to the same double ("4.2", "1e+100"; "inf", "nan"); returns the end.
// Sinks that spell non-finite values otherwise (JSON null, CSV empty) test
// std::isfinite first.
inline char* write_double(char* out, double v) {
  return std::to_chars(out, out + kMaxDoubleChars, v).ptr;
}

// Appends what write_double writes.
inline void append_double(double v, std::string& out) {
  char buf[kMaxDoubleChars];
  out.append(buf, write_double(buf, v));
}

}  // namespace df
