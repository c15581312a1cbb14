#include "engine/core/config_value.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

namespace df {

std::string SourceLocation::to_string() const {
  if (line <= 0) return file;
  if (file.empty()) return "line " + std::to_string(line) + ", column " + std::to_string(column);
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::to_string() const {
  std::string loc = location.to_string();
  return loc.empty() ? message : loc + ": " + message;
}

void Diagnostics::error(SourceLocation loc, std::string message) {
  items_.push_back(Diagnostic{std::move(loc), std::move(message)});
}

void Diagnostics::append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

void Diagnostics::sort_by_location() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    const SourceLocation& x = a.location;
    const SourceLocation& y = b.location;
    if (x.file != y.file) return x.file < y.file;
    if (x.line != y.line) return x.line < y.line;
    return x.column < y.column;
  });
}

Status Diagnostics::to_status() const {
  if (items_.empty()) return Status::OK();
  std::string m;
  for (const auto& d : items_) {
    if (!m.empty()) m += "\n";
    m += d.to_string();
  }
  return Status::invalid(std::move(m));
}

ConfigValue ConfigValue::null(SourceLocation loc) {
  ConfigValue v;
  v.loc_ = std::move(loc);
  return v;
}

ConfigValue ConfigValue::scalar(std::string text, SourceLocation loc, bool quoted) {
  ConfigValue v;
  v.kind_ = Kind::kScalar;
  v.text_ = std::move(text);
  v.loc_ = std::move(loc);
  v.quoted_ = quoted;
  return v;
}

ConfigValue ConfigValue::sequence(std::vector<ConfigValue> items, SourceLocation loc) {
  ConfigValue v;
  v.kind_ = Kind::kSequence;
  v.items_ = std::move(items);
  v.loc_ = std::move(loc);
  return v;
}

ConfigValue ConfigValue::map(std::vector<Entry> entries, SourceLocation loc) {
  ConfigValue v;
  v.kind_ = Kind::kMap;
  v.entries_ = std::move(entries);
  v.loc_ = std::move(loc);
  return v;
}

SourceLocation ConfigValue::text_location() const {
  SourceLocation loc = loc_;
  if (quoted_ && loc.column > 0) loc.column += 1;
  return loc;
}

const ConfigValue* ConfigValue::find(std::string_view key) const {
  if (kind_ != Kind::kMap) return nullptr;
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string_view ConfigValue::kind_name() const {
  switch (kind_) {
    case Kind::kNull:
      return "null";
    case Kind::kScalar:
      return "a scalar";
    case Kind::kSequence:
      return "a list";
    case Kind::kMap:
      return "a map";
  }
  return "?";
}

namespace {
Status type_error(const ConfigValue& v, std::string_view expected) {
  std::string got = v.is_scalar() ? "'" + v.scalar_text() + "'" : std::string(v.kind_name());
  std::string loc = v.location().to_string();
  std::string m = "expected " + std::string(expected) + ", got " + got;
  return Status::invalid(loc.empty() ? m : loc + ": " + m);
}
}  // namespace

Result<std::string> ConfigValue::as_string() const {
  if (!is_scalar()) return type_error(*this, "a string");
  return text_;
}

Result<int64_t> ConfigValue::as_int() const {
  if (!is_scalar()) return type_error(*this, "an integer");
  int64_t v = 0;
  std::string_view s = text_;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return type_error(*this, "an integer");
  return v;
}

Result<double> ConfigValue::as_double() const {
  if (!is_scalar() || text_.empty()) return type_error(*this, "a number");
  char* end = nullptr;
  double v = std::strtod(text_.c_str(), &end);
  if (end != text_.c_str() + text_.size()) return type_error(*this, "a number");
  return v;
}

Result<bool> ConfigValue::as_bool() const {
  if (is_scalar()) {
    std::string t = text_;
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
    if (t == "true" || t == "yes" || t == "on") return true;
    if (t == "false" || t == "no" || t == "off") return false;
  }
  return type_error(*this, "true or false");
}

Result<Millis> ConfigValue::as_duration() const {
  if (!is_scalar()) return type_error(*this, "a duration such as 10s");
  auto d = parse_duration(text_);
  if (!d.ok()) {
    std::string loc = loc_.to_string();
    return Status::invalid(loc.empty() ? d.status().message() : loc + ": " + d.status().message());
  }
  return d;
}

Result<std::vector<std::string>> ConfigValue::as_string_list() const {
  if (is_scalar()) return std::vector<std::string>{text_};
  if (!is_sequence()) return type_error(*this, "a list of strings");
  std::vector<std::string> out;
  for (const auto& item : items_) {
    if (!item.is_scalar()) return type_error(item, "a string");
    out.push_back(item.text_);
  }
  return out;
}

OptionReader::OptionReader(const ConfigValue& node, std::string what, Diagnostics& diags)
    : node_(node), what_(std::move(what)), diags_(diags) {
  if (!node_.is_map()) diags_.error(node_.location(), what_ + " must be a map");
}

bool OptionReader::has(std::string_view key) const { return node_.find(key) != nullptr; }

const ConfigValue* OptionReader::get(std::string_view key) {
  if (std::find(used_.begin(), used_.end(), key) == used_.end()) used_.emplace_back(key);
  return node_.find(key);
}

const ConfigValue* OptionReader::require(std::string_view key) {
  const ConfigValue* v = get(key);
  if (!v) diags_.error(node_.location(), what_ + " needs '" + std::string(key) + "'");
  return v;
}

template <typename T>
std::optional<T> OptionReader::typed(std::string_view key, bool required,
                                     Result<T> (ConfigValue::*read)() const) {
  const ConfigValue* v = required ? require(key) : get(key);
  if (!v) return std::nullopt;
  Result<T> r = (v->*read)();
  if (!r.ok()) {
    // The value's own message already carries its location; drop it to prefix the key.
    std::string m = r.status().message();
    std::string loc = v->location().to_string();
    if (!loc.empty() && m.starts_with(loc + ": ")) m = m.substr(loc.size() + 2);
    diags_.error(v->location(), what_ + " option '" + std::string(key) + "': " + m);
    return std::nullopt;
  }
  return std::move(r).value();
}

std::optional<std::string> OptionReader::string(std::string_view key, bool required) {
  return typed<std::string>(key, required, &ConfigValue::as_string);
}
std::optional<int64_t> OptionReader::int64(std::string_view key, bool required) {
  return typed<int64_t>(key, required, &ConfigValue::as_int);
}
std::optional<double> OptionReader::float64(std::string_view key, bool required) {
  return typed<double>(key, required, &ConfigValue::as_double);
}
std::optional<bool> OptionReader::boolean(std::string_view key, bool required) {
  return typed<bool>(key, required, &ConfigValue::as_bool);
}
std::optional<Millis> OptionReader::duration(std::string_view key, bool required) {
  return typed<Millis>(key, required, &ConfigValue::as_duration);
}
std::optional<std::vector<std::string>> OptionReader::string_list(std::string_view key,
                                                                  bool required) {
  return typed<std::vector<std::string>>(key, required, &ConfigValue::as_string_list);
}

void OptionReader::finish() {
  if (!node_.is_map()) return;
  for (const auto& [k, v] : node_.entries()) {
    if (std::find(used_.begin(), used_.end(), k) == used_.end()) {
      // used_ holds every key a getter asked for: the accepted ones.
      diags_.error(v.location(),
                   "unknown option '" + k + "' for " + what_ + did_you_mean(k, used_));
    }
  }
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string did_you_mean(std::string_view name, const std::vector<std::string>& known) {
  constexpr size_t kMaxEdits = 2;
  const std::string* best = nullptr;
  size_t best_distance = std::min(kMaxEdits, name.empty() ? 0 : name.size() - 1) + 1;
  for (const std::string& k : known) {
    const size_t d = edit_distance(name, k);
    if (d < best_distance) {
      best_distance = d;
      best = &k;
    }
  }
  return best ? " (did you mean '" + *best + "'?)" : "";
}

}  // namespace df
