// Minimal process-wide logger: one line per call to stderr, thread-safe.
// The server switches it to JSON lines (set_log_format).
#pragma once

#include <string>
#include <string_view>

namespace df {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

void set_log_level(LogLevel level);
void set_log_format(LogFormat format);
bool log_enabled(LogLevel level);
// component: "runtime", "file-source", ... ; message: one sentence.
void log(LogLevel level, std::string_view component, std::string_view message);

inline void log_info(std::string_view c, std::string_view m) { log(LogLevel::kInfo, c, m); }
inline void log_warn(std::string_view c, std::string_view m) { log(LogLevel::kWarn, c, m); }
inline void log_error(std::string_view c, std::string_view m) { log(LogLevel::kError, c, m); }
inline void log_debug(std::string_view c, std::string_view m) { log(LogLevel::kDebug, c, m); }

// Appends s to out as a JSON string literal (with quotes), escaping as RFC 8259 requires.
void append_json_string(std::string_view s, std::string& out);

}  // namespace df
