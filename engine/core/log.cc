#include "engine/core/log.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <vector>

namespace df {

namespace fs = std::filesystem;

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

// This thread's context: the innermost LogContext's (or AdoptedLogContext's)
// fields; null = none. Scopes restore the outer pointer when they end.
thread_local const LogFields* t_context = nullptr;

const LogFields& context_fields() {
  static const LogFields kNone;
  return t_context ? *t_context : kNone;
}
// Set while this thread runs listeners: lines they log skip the listeners.
thread_local bool t_in_listener = false;

// Where lines go. A file is rotated by size; rotation and writing happen
// under one mutex, so concurrent writers never see a half-rotated file.
class Output {
 public:
  Status configure(const LogSettings& s) {
    FILE* file = nullptr;
    bool owned = false;
    uint64_t size = 0;
    if (s.output.empty() || s.output == "stderr") {
      file = stderr;
    } else if (s.output == "stdout") {
      file = stdout;
    } else {
      file = std::fopen(s.output.c_str(), "a");
      if (!file) {
        return Status::io_error("cannot open log file '" + s.output + "': " + std::strerror(errno));
      }
      owned = true;
      std::error_code ec;
      size = fs::file_size(s.output, ec);
      if (ec) size = 0;
    }
    std::lock_guard lock(mu_);
    close_locked();
    file_ = file;
    owned_ = owned;
    path_ = owned ? s.output : std::string();
    size_ = size;
    max_size_ = s.max_size_bytes;
    max_backups_ = s.max_backups;
    max_age_ = s.max_age;
    if (owned_) prune_locked();
    return Status::OK();
  }

  void write(std::string_view line) {
    std::lock_guard lock(mu_);
    if (owned_ && max_size_ > 0 && size_ > 0 && size_ + line.size() > max_size_) rotate_locked();
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
    size_ += line.size();
  }

 private:
  void close_locked() {
    if (owned_ && file_) std::fclose(file_);
    file_ = stderr;
    owned_ = false;
  }

  std::string backup(int n) const { return path_ + "." + std::to_string(n); }

  // file -> file.1 -> ... -> file.<max_backups>; the oldest falls off.
  void rotate_locked() {
    std::fclose(file_);
    file_ = nullptr;
    std::error_code ec;
    if (max_backups_ <= 0) {
      fs::remove(path_, ec);
    } else {
      fs::remove(backup(max_backups_), ec);
      for (int n = max_backups_ - 1; n >= 1; --n) {
        if (fs::exists(backup(n), ec)) fs::rename(backup(n), backup(n + 1), ec);
      }
      fs::rename(path_, backup(1), ec);
    }
    const std::string failed = ec ? ec.message() : std::string();
    prune_locked();
    file_ = std::fopen(path_.c_str(), "a");
    if (!file_) {
      // Losing the lines is worse than losing the file: fall back to stderr.
      std::fprintf(stderr, "cannot reopen log file '%s' after rotating it: %s\n", path_.c_str(),
                   std::strerror(errno));
      file_ = stderr;
      owned_ = false;
      return;
    }
    if (!failed.empty()) {
      // The file could not be moved away: keep appending to it.
      std::fprintf(stderr, "cannot rotate log file '%s': %s\n", path_.c_str(), failed.c_str());
    }
    std::error_code size_ec;
    size_ = fs::file_size(path_, size_ec);
    if (size_ec) size_ = 0;
  }

  // Deletes rotated files numbered past max_backups (left by an earlier,
  // larger setting) or older than max_age.
  void prune_locked() {
    const fs::path path(path_);
    const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    const std::string prefix = path.filename().string() + ".";
    const auto oldest = fs::file_time_type::clock::now() - max_age_;
    std::error_code ec;
    std::vector<fs::path> doomed;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(prefix) || name.size() == prefix.size()) continue;
      const std::string_view digits = std::string_view(name).substr(prefix.size());
      if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        continue;
      }
      const bool too_many = digits.size() > 9 || std::stoi(std::string(digits)) > max_backups_;
      std::error_code time_ec;
      const auto written = entry.last_write_time(time_ec);
      const bool too_old = max_age_.count() > 0 && !time_ec && written < oldest;
      if (too_many || too_old) doomed.push_back(entry.path());
    }
    for (const auto& p : doomed) fs::remove(p, ec);
  }

  std::mutex mu_;
  FILE* file_ = stderr;
  bool owned_ = false;
  std::string path_;  // the file's path when owned_
  uint64_t size_ = 0;
  uint64_t max_size_ = 0;
  int max_backups_ = 0;
  Millis max_age_{0};
};

// Listeners are called under a shared lock, so removing one (exclusive)
// waits for calls in flight.
class Listeners {
 public:
  uint64_t add(LogListener fn) {
    if (t_in_listener) throw std::logic_error("add_log_listener called from a log listener");
    std::unique_lock lock(mu_);
    const uint64_t id = ++last_id_;
    items_.push_back({id, std::move(fn)});
    any_.store(true, std::memory_order_release);
    return id;
  }

  void remove(uint64_t id) {
    if (t_in_listener) throw std::logic_error("remove_log_listener called from a log listener");
    std::unique_lock lock(mu_);
    std::erase_if(items_, [id](const Item& i) { return i.id == id; });
    any_.store(!items_.empty(), std::memory_order_release);
  }

  void call(const LogRecord& record) {
    if (t_in_listener || !any_.load(std::memory_order_acquire)) return;
    std::shared_lock lock(mu_);
    struct Reset {
      ~Reset() { t_in_listener = false; }
    } reset;
    t_in_listener = true;
    for (const Item& item : items_) item.fn(record);
  }

 private:
  struct Item {
    uint64_t id;
    LogListener fn;
  };
  std::shared_mutex mu_;
  std::vector<Item> items_;
  uint64_t last_id_ = 0;
  std::atomic<bool> any_{false};
};

// Never destroyed: threads may log while the process exits.
Output& output() {
  static auto* o = new Output;
  return *o;
}
Listeners& listeners() {
  static auto* l = new Listeners;
  return *l;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void append_text_line(const LogRecord& r, std::string& line) {
  append_timestamp(r.time_ms, line);
  line += ' ';
  line += log_level_name(r.level);
  line += " [";
  line += r.component;
  line += "] ";
  line += r.message;
  auto field = [&line](std::string_view name, const std::string& value) {
    if (value.empty()) return;
    line += ' ';
    line += name;
    line += '=';
    line += value;
  };
  field("pipeline", r.context.pipeline);
  field("run_id", r.context.run_id);
  field("request_id", r.context.request_id);
}

}  // namespace

std::string_view log_level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

Result<LogLevel> parse_log_level(std::string_view name) {
  const std::string n = lower(name);
  if (n == "debug") return LogLevel::kDebug;
  if (n == "info") return LogLevel::kInfo;
  if (n == "warn" || n == "warning") return LogLevel::kWarn;
  if (n == "error") return LogLevel::kError;
  return Status::invalid("log level must be debug, info, warn or error, not '" + std::string(name) +
                         "'");
}

std::string_view log_format_name(LogFormat format) {
  return format == LogFormat::kJson ? "json" : "text";
}

Result<LogFormat> parse_log_format(std::string_view name) {
  const std::string n = lower(name);
  if (n == "json") return LogFormat::kJson;
  if (n == "text") return LogFormat::kText;
  return Status::invalid("log format must be json or text, not '" + std::string(name) + "'");
}

Status configure_logging(const LogSettings& settings) {
  if (settings.max_backups < 0) return Status::invalid("log max_backups must not be negative");
  if (settings.max_age.count() < 0) return Status::invalid("log max_age must not be negative");
  DF_RETURN_IF_ERROR(output().configure(settings));
  set_log_level(settings.level);
  set_log_format(settings.format);
  return Status::OK();
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
void set_log_format(LogFormat format) { g_format.store(static_cast<int>(format)); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

LogContext::LogContext(const LogFields& fields) : fields_(context_fields()), outer_(t_context) {
  if (!fields.pipeline.empty()) fields_.pipeline = fields.pipeline;
  if (!fields.run_id.empty()) fields_.run_id = fields.run_id;
  if (!fields.request_id.empty()) fields_.request_id = fields.request_id;
  t_context = &fields_;
}

LogContext::~LogContext() { t_context = outer_; }

const LogFields& LogContext::current() { return context_fields(); }

AdoptedLogContext::AdoptedLogContext(const LogFields& fields) : outer_(t_context) {
  t_context = &fields;
}

AdoptedLogContext::~AdoptedLogContext() { t_context = outer_; }

uint64_t add_log_listener(LogListener listener) { return listeners().add(std::move(listener)); }
void remove_log_listener(uint64_t id) { listeners().remove(id); }

void append_json_string(std::string_view s, std::string& out) {
  const size_t at = out.size();
  out.resize(at + max_json_string_chars(s));
  char* const end = write_json_string(out.data() + at, s);
  out.resize(static_cast<size_t>(end - out.data()));
}

char* write_json_string(char* out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  *out++ = '"';
  // Copies runs of bytes that need no escape at once (most strings are one
  // run); per-byte appends cost 14 % of the Kafka bench's CPU.
  const char* run = s.data();
  const char* const end = s.data() + s.size();
  auto put = [&out](const char* text, size_t n) {
    if (n == 0) return;  // text may be null then
    std::memcpy(out, text, n);
    out += n;
  };
  for (const char* p = run; p != end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    put(run, static_cast<size_t>(p - run));
    run = p + 1;
    switch (c) {
      case '"':
        put("\\\"", 2);
        break;
      case '\\':
        put("\\\\", 2);
        break;
      case '\n':
        put("\\n", 2);
        break;
      case '\r':
        put("\\r", 2);
        break;
      case '\t':
        put("\\t", 2);
        break;
      case '\b':
        put("\\b", 2);
        break;
      case '\f':
        put("\\f", 2);
        break;
      default:
        put("\\u00", 4);
        *out++ = hex[c >> 4];
        *out++ = hex[c & 15];
    }
  }
  put(run, static_cast<size_t>(end - run));
  *out++ = '"';
  return out;
}

std::string log_record_json(const LogRecord& r) {
  std::string line = "{\"time\":\"";
  append_timestamp(r.time_ms, line);
  line += "\",\"level\":\"";
  line += log_level_name(r.level);
  line += "\",\"component\":";
  append_json_string(r.component, line);
  line += ",\"msg\":";
  append_json_string(r.message, line);
  auto field = [&line](std::string_view name, const std::string& value) {
    if (value.empty()) return;
    line += ",\"";
    line += name;
    line += "\":";
    append_json_string(value, line);
  };
  field("pipeline", r.context.pipeline);
  field("run_id", r.context.run_id);
  field("request_id", r.context.request_id);
  line += '}';
  return line;
}

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (!log_enabled(level)) return;
  const LogRecord record{now_ms(), level, component, message, context_fields()};
  std::string line;
  if (static_cast<LogFormat>(g_format.load()) == LogFormat::kJson) {
    line = log_record_json(record);
  } else {
    append_text_line(record, line);
  }
  line += '\n';
  output().write(line);
  listeners().call(record);
}

}  // namespace df
