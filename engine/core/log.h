// The process-wide logger: one line per call, text or JSON lines, to stderr
// (the default, for the CLI's commands), stdout or a file with size rotation.
//
// Every line carries its time, level and component, plus the fields of the
// calling thread's LogContext (pipeline, run id, request id) when set:
//
//   {"time":"2026-11-21T10:00:00.000Z","level":"info","component":"runtime",
//    "msg":"run started","pipeline":"orders","run_id":"r-17"}
//   2026-11-21T10:00:00.000Z info [runtime] run started pipeline=orders run_id=r-17
//
// Threading: every function here is thread-safe. Lines from concurrent
// threads never interleave; a line is written (and flushed) before log()
// returns. configure_logging() may be called while other threads log.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "engine/core/status.h"
#include "engine/core/time.h"

namespace df {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

// "debug", "info", "warn", "error".
std::string_view log_level_name(LogLevel level);
// The names above ("warning" is taken for "warn"), any case.
Result<LogLevel> parse_log_level(std::string_view name);
std::string_view log_format_name(LogFormat format);  // "text", "json"
Result<LogFormat> parse_log_format(std::string_view name);

// `monitoring.logging` of the server config (DESIGN §8). The defaults are
// the server's; a process that never calls configure_logging() logs text to
// stderr at info.
struct LogSettings {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kJson;
  // "stdout", "stderr" or a file path (its directory must exist).
  std::string output = "stdout";
  // A file is rotated before a line would make it larger than this
  // (file -> file.1 -> ... -> file.<max_backups>); 0 = never rotated. One
  // process per file: rotation is not coordinated between processes.
  uint64_t max_size_bytes = 100ull << 20;
  // Rotated files kept; older ones are deleted. 0 = none kept.
  int max_backups = 5;
  // Rotated files older than this (by modification time) are deleted when
  // the file rotates; 0 = no age limit.
  Millis max_age{7LL * 24 * 3600 * 1000};
};

// Switches every later line to `settings`. Opens (appends to) the file
// first: when it cannot be opened, returns an IoError naming it and keeps
// the current output. Rotated files beyond max_backups or max_age are
// deleted at once.
Status configure_logging(const LogSettings& settings);

void set_log_level(LogLevel level);
void set_log_format(LogFormat format);
bool log_enabled(LogLevel level);

// The context fields a thread's log lines carry; empty = not set.
// (Initialized members, so `{.run_id = r}` compiles without warnings.)
struct LogFields {
  std::string pipeline{};
  std::string run_id{};
  std::string request_id{};
};

// A scope whose fields every line logged on this thread carries, until it
// ends. Scopes nest: a field the inner scope sets overrides the outer one's,
// a field it leaves empty is inherited, and the outer fields come back when
// the inner scope ends. Work handed to another thread takes its context
// along explicitly: `LogContext ctx(captured)` with captured =
// LogContext::current() on the handing thread (or, on a hot path,
// AdoptedLogContext).
//
//   LogContext ctx({.pipeline = "orders", .run_id = "r-17"});
//
// Must end on the thread that created it (it is a stack variable).
class LogContext {
 public:
  explicit LogContext(const LogFields& fields);
  ~LogContext();
  LogContext(const LogContext&) = delete;
  LogContext& operator=(const LogContext&) = delete;

  // This thread's fields now (valid until this thread's context changes).
  static const LogFields& current();

 private:
  LogFields fields_;        // the merged fields this scope installs
  const LogFields* outer_;  // what current() was before
};

// Installs `fields`, owned by the caller, as this thread's whole context
// (no merging) until it ends: no copy and no allocation, for hot paths that
// put a captured context back on every run of a task (the scheduler's
// workers, I/O threads). `fields` must outlive the scope and not change
// meanwhile. Must end on the thread that created it.
class AdoptedLogContext {
 public:
  explicit AdoptedLogContext(const LogFields& fields);
  ~AdoptedLogContext();
  AdoptedLogContext(const AdoptedLogContext&) = delete;
  AdoptedLogContext& operator=(const AdoptedLogContext&) = delete;

 private:
  const LogFields* outer_;
};

// One log line as listeners see it. The views and the context are valid
// only during the listener call: copy what you keep.
struct LogRecord {
  int64_t time_ms = 0;  // wall clock, ms since the epoch
  LogLevel level = LogLevel::kInfo;
  std::string_view component;
  std::string_view message;
  const LogFields& context;
};

// The record as one JSON object, without a newline (the JSON line format).
std::string log_record_json(const LogRecord& record);

// Listeners get every line that passes the level, after it was written, on
// the thread that logged it and outside the output's lock, so they run
// concurrently with each other and with logging on other threads: they must
// be thread-safe and quick (hand the line to a queue). A line logged from
// inside a listener is written but not passed to listeners (no recursion).
// A listener must not add or remove listeners (a bug; it throws
// std::logic_error).
using LogListener = std::function<void(const LogRecord&)>;
// Returns the id to remove it with.
uint64_t add_log_listener(LogListener listener);
// After it returns, the listener is not running and will not be called
// again. Unknown ids are ignored.
void remove_log_listener(uint64_t id);

// component: "runtime", "file-source", ... ; message: one sentence.
void log(LogLevel level, std::string_view component, std::string_view message);

inline void log_info(std::string_view c, std::string_view m) { log(LogLevel::kInfo, c, m); }
inline void log_warn(std::string_view c, std::string_view m) { log(LogLevel::kWarn, c, m); }
inline void log_error(std::string_view c, std::string_view m) { log(LogLevel::kError, c, m); }
inline void log_debug(std::string_view c, std::string_view m) { log(LogLevel::kDebug, c, m); }

// Appends s to out as a JSON string literal (with quotes), escaping as RFC 8259 requires.
void append_json_string(std::string_view s, std::string& out);
// The most bytes write_json_string writes for s: quotes, and \u00XX per byte.
constexpr size_t max_json_string_chars(std::string_view s) { return 2 + 6 * s.size(); }
// Writes what append_json_string appends at out (room for
// max_json_string_chars(s)); returns the end.
char* write_json_string(char* out, std::string_view s);

}  // namespace df
