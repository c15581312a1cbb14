#include "engine/core/value.h"

#include <cstdio>

#include "engine/core/time.h"

namespace df {

std::string Value::to_string() const {
  if (is_null()) return "null";
  switch (type_) {
    case TypeId::kBool: return as_bool() ? "true" : "false";
    case TypeId::kInt64: return std::to_string(as_int64());
    case TypeId::kTimestamp: return format_timestamp(as_int64());
    case TypeId::kDouble: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", as_double());
      return buf;
    }
    case TypeId::kString: return as_string();
  }
  return "?";
}

}  // namespace df
