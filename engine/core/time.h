// Durations ("500ms", "10s", "5m", "1h", "1h30m") and timestamps (RFC 3339).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/core/status.h"

namespace df {

// a / b rounded toward negative infinity (b != 0), so times before the epoch
// fall into the right window: floor_div(-1, 10) == -1.
constexpr int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

using Millis = std::chrono::milliseconds;

// Parses a duration: one or more <integer><unit> parts with unit ms, s, m, h
// or d ("1h30m"); a bare "0" is zero. Negative durations take a leading '-'.
Result<Millis> parse_duration(std::string_view text);
// The shortest exact spelling: 1500ms -> "1500ms", 90000 -> "90s", 3600000 -> "1h".
std::string format_duration(Millis d);

// Parses RFC 3339 / ISO 8601 ("2026-11-21T10:00:00Z", "...T10:00:00.123+01:00",
// a space instead of 'T', or a bare date) into milliseconds since the epoch.
Result<int64_t> parse_timestamp(std::string_view text);
// Appends "2026-11-21T10:00:00.000Z".
void append_timestamp(int64_t epoch_ms, std::string& out);
// The most bytes write_timestamp writes (years past 9999 or before 0 take more).
inline constexpr size_t kMaxTimestampChars = 40;
// Writes what append_timestamp appends at out (room for kMaxTimestampChars);
// returns the end.
char* write_timestamp(char* out, int64_t epoch_ms);
std::string format_timestamp(int64_t epoch_ms);

// Milliseconds since the epoch, wall clock.
int64_t now_ms();

}  // namespace df
