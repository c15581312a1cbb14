#include <algorithm>
#include <cctype>
#include <string>

#include "engine/core/schema.h"
#include "engine/core/types.h"

namespace df {

std::string_view type_name(TypeId type) {
  switch (type) {
    case TypeId::kBool: return "bool";
    case TypeId::kInt64: return "int64";
    case TypeId::kDouble: return "double";
    case TypeId::kString: return "string";
    case TypeId::kTimestamp: return "timestamp";
  }
  return "unknown";
}

std::optional<TypeId> parse_type_name(std::string_view name) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (n == "bool" || n == "boolean") return TypeId::kBool;
  if (n == "int64" || n == "int" || n == "integer" || n == "bigint" || n == "long") return TypeId::kInt64;
  if (n == "double" || n == "float" || n == "float64") return TypeId::kDouble;
  if (n == "string" || n == "text" || n == "varchar") return TypeId::kString;
  if (n == "timestamp") return TypeId::kTimestamp;
  return std::nullopt;
}

std::optional<size_t> Schema::index_of(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name == name) return i;
  }
  return std::nullopt;
}

std::string Schema::to_string() const {
  std::string s = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i) s += ", ";
    s += fields_[i].name;
    s += ": ";
    s += type_name(fields_[i].type);
  }
  s += "}";
  return s;
}

}  // namespace df
