// Schema: the ordered, named and typed fields of a stream.
//
// Immutable once built and shared by pointer (SchemaPtr) between batches,
// operators and threads. Names resolve to indexes when a plan is built.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/types.h"

namespace df {

struct Field {
  std::string name;
  TypeId type;
  bool operator==(const Field&) const = default;
};

class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<Field> fields) : fields_(std::move(fields)) {}

  size_t size() const { return fields_.size(); }
  const Field& field(size_t i) const { return fields_[i]; }
  const std::vector<Field>& fields() const { return fields_; }
  std::optional<size_t> index_of(std::string_view name) const;
  // "{a: int64, b: string}"
  std::string to_string() const;
  bool operator==(const Schema& other) const { return fields_ == other.fields_; }

 private:
  std::vector<Field> fields_;
};

using SchemaPtr = std::shared_ptr<const Schema>;

inline SchemaPtr make_schema(std::vector<Field> fields) {
  return std::make_shared<const Schema>(std::move(fields));
}

}  // namespace df
