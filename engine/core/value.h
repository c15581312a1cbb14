// Value: one nullable scalar, for literals, row-at-a-time paths and tests.
// The hot path works on Columns, not Values.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "engine/core/types.h"

namespace df {

class Value {
 public:
  Value() = default;  // null int64
  static Value null(TypeId type) { return Value(type, std::monostate{}); }
  static Value boolean(bool v) { return Value(TypeId::kBool, v); }
  static Value int64(int64_t v) { return Value(TypeId::kInt64, v); }
  static Value float64(double v) { return Value(TypeId::kDouble, v); }
  static Value string(std::string v) { return Value(TypeId::kString, std::move(v)); }
  static Value timestamp(int64_t ms) { return Value(TypeId::kTimestamp, ms); }

  TypeId type() const { return type_; }
  bool is_null() const { return std::holds_alternative<std::monostate>(data_); }
  bool as_bool() const { return std::get<bool>(data_); }
  // int64 and timestamp (ms).
  int64_t as_int64() const { return std::get<int64_t>(data_); }
  double as_double() const { return std::get<double>(data_); }
  const std::string& as_string() const { return std::get<std::string>(data_); }

  // Human-readable: null, true, 42, 4.2, text (unquoted), RFC 3339 timestamp.
  std::string to_string() const;
  bool operator==(const Value& other) const = default;

 private:
  using Data = std::variant<std::monostate, bool, int64_t, double, std::string>;
  Value(TypeId type, Data data) : type_(type), data_(std::move(data)) {}

  TypeId type_ = TypeId::kInt64;
  Data data_;
};

}  // namespace df
