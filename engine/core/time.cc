#include "engine/core/time.h"

#include <charconv>
#include <cstdio>

#include "engine/core/digits.h"

namespace df {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

// Reads exactly n digits at s[pos].
bool digits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
  std::string_view s = text;
  auto bad = [&] {
    return Status::invalid("invalid duration '" + std::string(text) +
                           "': expected e.g. 500ms, 10s, 5m, 1h or 1h30m");
  };
  if (s.empty()) return bad();
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  if (s == "0") return Millis(0);
  int64_t total = 0;
  if (s.empty()) return bad();
  while (!s.empty()) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p == s.data()) return bad();
    s.remove_prefix(static_cast<size_t>(p - s.data()));
    int64_t unit = 0;
    if (s.starts_with("ms")) {
      unit = 1;
      s.remove_prefix(2);
    } else if (s.starts_with("s")) {
      unit = 1000;
      s.remove_prefix(1);
    } else if (s.starts_with("m")) {
      unit = 60'000;
      s.remove_prefix(1);
    } else if (s.starts_with("h")) {
      unit = 3'600'000;
      s.remove_prefix(1);
    } else if (s.starts_with("d")) {
      unit = 86'400'000;
      s.remove_prefix(1);
    } else {
      return bad();
    }
    total += n * unit;
  }
  return Millis(negative ? -total : total);
}

std::string format_duration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string sign = ms < 0 ? "-" : "";
  int64_t a = ms < 0 ? -ms : ms;
  if (a % 3'600'000 == 0) return sign + std::to_string(a / 3'600'000) + "h";
  if (a % 60'000 == 0) return sign + std::to_string(a / 60'000) + "m";
  if (a % 1000 == 0) return sign + std::to_string(a / 1000) + "s";
  return sign + std::to_string(a) + "ms";
}

Result<int64_t> parse_timestamp(std::string_view s) {
  auto bad = [&] {
    return Status::invalid("invalid timestamp '" + std::string(s) +
                           "': expected RFC 3339 like 2026-11-21T10:00:00Z");
  };
  size_t pos = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  int64_t frac_ms = 0;
  if (!digits(s, pos, 4, y) || pos >= s.size() || s[pos++] != '-' || !digits(s, pos, 2, mo) ||
      pos >= s.size() || s[pos++] != '-' || !digits(s, pos, 2, d)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return bad();
  int64_t offset_ms = 0;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ') return bad();
    ++pos;
    if (!digits(s, pos, 2, h) || pos >= s.size() || s[pos++] != ':' || !digits(s, pos, 2, mi)) {
      return bad();
    }
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!digits(s, pos, 2, sec)) return bad();
    }
    if (h > 23 || mi > 59 || sec > 60) return bad();
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
      ++pos;
      int64_t scale = 100;
      size_t start = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        frac_ms += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) return bad();
    }
    if (pos < s.size()) {
      char z = s[pos];
      if (z == 'Z' || z == 'z') {
        ++pos;
      } else if (z == '+' || z == '-') {
        ++pos;
        int oh = 0, om = 0;
        if (!digits(s, pos, 2, oh)) return bad();
        if (pos < s.size() && s[pos] == ':') ++pos;
        if (pos < s.size() && !digits(s, pos, 2, om)) return bad();
        offset_ms = (static_cast<int64_t>(oh) * 60 + om) * 60'000 * (z == '+' ? 1 : -1);
      } else {
        return bad();
      }
    }
    if (pos != s.size()) return bad();
  }
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t ms = ((days * 24 + h) * 60 + mi) * 60'000 + static_cast<int64_t>(sec) * 1000 + frac_ms;
  return ms - offset_ms;
}

void append_timestamp(int64_t epoch_ms, std::string& out) {
  char buf[kMaxTimestampChars];
  out.append(buf, write_timestamp(buf, epoch_ms));
}

char* write_timestamp(char* out, int64_t epoch_ms) {
  // Floor division without negating (INT64_MIN has no negation).
  const int64_t days = floor_div(epoch_ms, 86'400'000);
  const int64_t rem = epoch_ms % 86'400'000 + (epoch_ms % 86'400'000 < 0 ? 86'400'000 : 0);
  int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  const auto hour = static_cast<uint32_t>(rem / 3'600'000);
  const auto minute = static_cast<uint32_t>(rem / 60'000 % 60);
  const auto second = static_cast<uint32_t>(rem / 1000 % 60);
  const auto milli = static_cast<uint32_t>(rem % 1000);
  if (y < 0 || y > 9999) {
    // Years RFC 3339 cannot spell (sign, more digits): rare, so snprintf.
    const int n = std::snprintf(out, kMaxTimestampChars, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                                static_cast<long long>(y), m, d, hour, minute, second, milli);
    return out + n;
  }
  // Sinks format one per row and cell: digits written in place.
  char* p = write_fixed_digits(out, static_cast<uint32_t>(y), 4);
  *p++ = '-';
  p = write_fixed_digits(p, m, 2);
  *p++ = '-';
  p = write_fixed_digits(p, d, 2);
  *p++ = 'T';
  p = write_fixed_digits(p, hour, 2);
  *p++ = ':';
  p = write_fixed_digits(p, minute, 2);
  *p++ = ':';
  p = write_fixed_digits(p, second, 2);
  *p++ = '.';
  p = write_fixed_digits(p, milli, 3);
  *p++ = 'Z';
  return p;
}

std::string format_timestamp(int64_t epoch_ms) {
  std::string s;
  append_timestamp(epoch_ms, s);
  return s;
}

int64_t now_ms() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace df
