// Internal: the per-value building blocks the evaluator's loops call (text
// conversions, LIKE matching, UTF-8 helpers, rand() hashing). Pure functions,
// safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/core/digits.h"

namespace df::expr::internal {

// Shortest text that reads back as the same double (df::append_double).
std::string format_double(double v);

// Text -> value conversions of cast(); surrounding spaces are ignored.
std::optional<int64_t> parse_int64(std::string_view s);
std::optional<double> parse_double(std::string_view s);
// true/false, t/f, yes/no, on/off, 1/0; case-insensitive.
std::optional<bool> parse_bool(std::string_view s);
std::string_view trim(std::string_view s);

// SQL LIKE: '%' matches any run of characters, '_' exactly one (UTF-8) character.
bool like_match(std::string_view text, std::string_view pattern);

// Number of UTF-8 code points.
size_t utf8_length(std::string_view s);
// SQL substr with 1-based `start`; `len` < 0 means "to the end".
std::string_view utf8_substr(std::string_view s, int64_t start, int64_t len);

// rand(): a uniform double in [0, 1) that is a pure function of its inputs.
uint64_t splitmix64(uint64_t x);
double rand_at(uint64_t seed, uint64_t row_id, uint32_t site);
inline double unit_double(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

}  // namespace df::expr::internal
