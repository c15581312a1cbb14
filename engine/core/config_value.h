// ConfigValue: a parsed YAML/JSON document as a tree that remembers where each
// node came from, so every error can name file:line:column.
//
// config/ builds these from YAML; factories in operators/ and connectors/ read
// their options from them through OptionReader, which also reports unknown
// keys. Immutable after construction; safe to share between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/time.h"

namespace df {

struct SourceLocation {
  std::string file;  // may be empty (e.g. a request body)
  int line = 0;      // 1-based; 0 = unknown
  int column = 0;    // 1-based; 0 = unknown
  // "file:line:col", "line 3, column 5" without a file, "" when unknown.
  std::string to_string() const;
};

struct Diagnostic {
  SourceLocation location;
  std::string message;
  // "pipe.yaml:12:7: unknown field 'prise'"
  std::string to_string() const;
};

// Collects every problem found while validating, so all are reported at once.
class Diagnostics {
 public:
  void error(SourceLocation loc, std::string message);
  void append(const Diagnostics& other);
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  // Orders the diagnostics as they appear in their files (stable).
  void sort_by_location();
  // InvalidArgument listing every diagnostic, one per line; OK when empty.
  Status to_status() const;

 private:
  std::vector<Diagnostic> items_;
};

class ConfigValue {
 public:
  enum class Kind { kNull, kScalar, kSequence, kMap };
  using Entry = std::pair<std::string, ConfigValue>;

  ConfigValue() = default;  // null, unknown location
  static ConfigValue null(SourceLocation loc);
  // `quoted` records that YAML quoted the scalar (so "null"/"true" are text).
  static ConfigValue scalar(std::string text, SourceLocation loc, bool quoted = false);
  static ConfigValue sequence(std::vector<ConfigValue> items, SourceLocation loc);
  static ConfigValue map(std::vector<Entry> entries, SourceLocation loc);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_scalar() const { return kind_ == Kind::kScalar; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }
  bool is_map() const { return kind_ == Kind::kMap; }
  const SourceLocation& location() const { return loc_; }
  // Where the scalar's text itself starts: YAML marks a quoted scalar at its
  // quote, one column before the text (expression errors point into the text).
  SourceLocation text_location() const;

  const std::string& scalar_text() const { return text_; }
  bool quoted() const { return quoted_; }
  const std::vector<ConfigValue>& items() const { return items_; }
  const std::vector<Entry>& entries() const { return entries_; }
  // Map lookup; nullptr when absent or not a map.
  const ConfigValue* find(std::string_view key) const;

  // Typed reads; errors name the location ("pipe.yaml:3:9: expected an integer, got 'x'").
  Result<std::string> as_string() const;
  Result<int64_t> as_int() const;
  Result<double> as_double() const;
  Result<bool> as_bool() const;
  Result<Millis> as_duration() const;
  // A scalar or a sequence of scalars, as strings.
  Result<std::vector<std::string>> as_string_list() const;

  // The kind as a word, for messages: "null", "a scalar", "a list", "a map".
  std::string_view kind_name() const;

 private:
  Kind kind_ = Kind::kNull;
  SourceLocation loc_;
  std::string text_;
  bool quoted_ = false;
  std::vector<ConfigValue> items_;
  std::vector<Entry> entries_;
};

// Reads the options of one map node and remembers which keys were read, so
// that finish() can report every key nobody asked for as "unknown option".
// Errors go to `diags`; getters return nullopt when the key is absent or bad.
// Not thread-safe; one reader per validation pass.
class OptionReader {
 public:
  // `what` names the owner in messages, e.g. "source 'bids' (file)".
  OptionReader(const ConfigValue& node, std::string what, Diagnostics& diags);

  bool has(std::string_view key) const;
  // Marks the key as known and returns its node (nullptr when absent).
  const ConfigValue* get(std::string_view key);
  // Marks the key as known without reading it (another reader handles it).
  void allow(std::string_view key) { (void)get(key); }
  // Reports an error when absent.
  const ConfigValue* require(std::string_view key);

  std::optional<std::string> string(std::string_view key, bool required = false);
  std::optional<int64_t> int64(std::string_view key, bool required = false);
  std::optional<double> float64(std::string_view key, bool required = false);
  std::optional<bool> boolean(std::string_view key, bool required = false);
  std::optional<Millis> duration(std::string_view key, bool required = false);
  std::optional<std::vector<std::string>> string_list(std::string_view key, bool required = false);

  // Adds an error for every key that no getter asked for.
  void finish();

  const ConfigValue& node() const { return node_; }
  const std::string& what() const { return what_; }
  Diagnostics& diags() { return diags_; }

 private:
  template <typename T>
  std::optional<T> typed(std::string_view key, bool required,
                         Result<T> (ConfigValue::*read)() const);

  const ConfigValue& node_;
  std::string what_;
  Diagnostics& diags_;
  std::vector<std::string> used_;
};

// Levenshtein distance: insertions, deletions and substitutions of bytes.
size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" naming the entry of `known` nearest to `name` when
// it is a likely typo of it (at most 2 edits, and fewer than `name` has
// characters; the first of equals wins), else "". For messages about unknown
// keys, types and ids.
std::string did_you_mean(std::string_view name, const std::vector<std::string>& known);

}  // namespace df
