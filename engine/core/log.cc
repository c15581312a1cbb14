#include "engine/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "engine/core/time.h"

namespace df {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};
std::mutex g_mu;

std::string_view level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
void set_log_format(LogFormat format) { g_format.store(static_cast<int>(format)); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void append_json_string(std::string_view s, std::string& out) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (!log_enabled(level)) return;
  std::string line;
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    line = "{\"ts\":\"";
    append_timestamp(now_ms(), line);
    line += "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"component\":";
    append_json_string(component, line);
    line += ",\"msg\":";
    append_json_string(message, line);
    line += "}\n";
  } else {
    append_timestamp(now_ms(), line);
    line += " ";
    line += level_name(level);
    line += " [";
    line += component;
    line += "] ";
    line += message;
    line += "\n";
  }
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace df
