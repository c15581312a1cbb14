// The value types a stream can carry. Every type is nullable.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace df {

enum class TypeId : unsigned char {
  kBool,
  kInt64,
  kDouble,
  kString,
  kTimestamp,  // milliseconds since the Unix epoch, UTC
};

// "bool", "int64", "double", "string", "timestamp".
std::string_view type_name(TypeId type);
// Accepts the canonical names and common aliases (boolean, int, bigint, long,
// float, float64, text, varchar). Case-insensitive.
std::optional<TypeId> parse_type_name(std::string_view name);
inline bool is_numeric(TypeId t) { return t == TypeId::kInt64 || t == TypeId::kDouble; }
// Whether a column of type t holds its cells as int64s (int64 and timestamp).
inline bool stored_as_int64(TypeId t) { return t == TypeId::kInt64 || t == TypeId::kTimestamp; }

}  // namespace df
