#include "operators/expr/scalar.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <vector>

namespace df::expr::internal {

std::string format_double(double v) {
  std::string s;
  append_double(v, s);
  return s;
}

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::optional<int64_t> parse_int64(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  s = trim(s);
  std::string l(s);
  for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (l == "true" || l == "t" || l == "yes" || l == "y" || l == "on" || l == "1") return true;
  if (l == "false" || l == "f" || l == "no" || l == "n" || l == "off" || l == "0") return false;
  return std::nullopt;
}

namespace {
// Bytes of the UTF-8 character starting at s[i] (1 for stray continuation bytes).
size_t char_len(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  return i + n <= s.size() ? n : s.size() - i;
}
}  // namespace

bool like_match(std::string_view t, std::string_view p) {
  // Iterative matcher with single-star backtracking: on a mismatch, retry from
  // the last '%' one character further. Linear in practice, never exponential.
  size_t ti = 0, pi = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '%') {
      star_p = ++pi;
      star_t = ti;
      continue;
    }
    if (pi < p.size() && p[pi] == '_') {
      ti += char_len(t, ti);
      ++pi;
      continue;
    }
    if (pi < p.size() && p[pi] == t[ti]) {
      ++ti;
      ++pi;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p;
    star_t += char_len(t, star_t);
    ti = star_t;
  }
  while (pi < p.size() && p[pi] == '%') ++pi;
  return pi == p.size();
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::string_view utf8_substr(std::string_view s, int64_t start, int64_t len) {
  // Characters [start, start + len) in 1-based positions, clipped to the string
  // (PostgreSQL: substr('hello', 0, 3) = 'he').
  int64_t first = start < 1 ? 1 : start;
  int64_t last_excl;  // 1-based exclusive end; INT64_MAX = to the end
  if (len < 0) {
    last_excl = INT64_MAX;
  } else if (__builtin_add_overflow(start, len, &last_excl)) {
    last_excl = start < 0 ? INT64_MIN : INT64_MAX;
  }
  if (last_excl <= first) return {};
  size_t i = 0;
  int64_t pos = 1;
  while (i < s.size() && pos < first) {
    i += char_len(s, i);
    ++pos;
  }
  size_t j = i;
  while (j < s.size() && pos < last_excl) {
    j += char_len(s, j);
    ++pos;
  }
  return s.substr(i, j - i);
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

double rand_at(uint64_t seed, uint64_t row_id, uint32_t site) {
  const uint64_t h =
      splitmix64(splitmix64(seed ^ (uint64_t{site} * 0xD1B54A32D192ED03ULL)) ^ row_id);
  return unit_double(splitmix64(h));
}

}  // namespace df::expr::internal
