// key_by: repartitions a stream by key and passes it through unchanged.
//   {id: by_user, type: key_by, input: clicks, fields: [user]}
// The node is never chained: its input edge is a hash exchange on `fields`,
// so every row of one key reaches the same subtask (e.g. before a custom
// sink). Other keyed operators take `key_by:` themselves.
#include <cstring>

#include "engine/state/codec.h"
#include "operators/stateful.h"
#include "operators/stateless.h"

namespace df::operators {

namespace {

class KeyByOperator final : public runtime::Operator {
 public:
  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    out.emit(batch);
    return Status::OK();
  }
};

class PreparedKeyBy final : public runtime::PreparedNode {
 public:
  PreparedKeyBy(SchemaPtr schema, std::vector<size_t> fields)
      : schema_(std::move(schema)), fields_(std::move(fields)) {}
  SchemaPtr output_schema() const override { return schema_; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return std::make_unique<KeyByOperator>();
  }
  bool chainable() const override { return false; }
  runtime::InputPartitioning input_partitioning() const override {
    return {runtime::InputPartitioning::Kind::kHash, fields_};
  }
  std::string describe() const override {
    std::string d = "by ";
    for (size_t i = 0; i < fields_.size(); ++i) {
      d += (i ? ", " : "") + schema_->field(fields_[i]).name;
    }
    return d;
  }

 private:
  SchemaPtr schema_;
  std::vector<size_t> fields_;
};

class KeyByFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    if (!require_single_input(spec, inputs, opts)) return nullptr;
    const ConfigValue* fields = opts.require("fields");
    if (!fields) return nullptr;
    auto keys =
        resolve_key_fields(*fields, *inputs[0], "key_by '" + spec.id + "' 'fields'", opts.diags());
    if (!keys) return nullptr;
    return std::make_shared<PreparedKeyBy>(inputs[0], std::move(*keys));
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_key_by_factory() {
  return std::make_unique<KeyByFactory>();
}

std::optional<std::vector<size_t>> resolve_key_fields(const ConfigValue& node, const Schema& schema,
                                                      const std::string& what, Diagnostics& diags) {
  std::vector<const ConfigValue*> items;
  if (node.is_scalar()) {
    items.push_back(&node);
  } else if (node.is_sequence()) {
    for (const auto& item : node.items()) items.push_back(&item);
  }
  if (items.empty()) {
    diags.error(node.location(), what + " must be a field name or a non-empty list of field names");
    return std::nullopt;
  }
  std::vector<size_t> out;
  bool ok = true;
  for (const ConfigValue* item : items) {
    if (!item->is_scalar()) {
      diags.error(item->location(),
                  what + ": expected a field name, got " + std::string(item->kind_name()));
      ok = false;
      continue;
    }
    auto index = schema.index_of(item->scalar_text());
    if (!index) {
      diags.error(item->location(), what + ": unknown field '" + item->scalar_text() +
                                        "' (fields: " + schema.to_string() + ")");
      ok = false;
      continue;
    }
    out.push_back(*index);
  }
  if (!ok) return std::nullopt;
  return out;
}

bool encode_row_key(const Batch& batch, const std::vector<size_t>& fields, size_t row,
                    std::string& out) {
  bool all_valid = true;
  for (size_t f : fields) {
    const Column& c = *batch.column(f);
    if (c.is_null(row)) {
      all_valid = false;
      state::encode_key_cell(c, row, out);
    } else if (c.type() == TypeId::kDouble && c.double_at(row) == 0.0) {
      state::encode_key_value(Value::float64(0.0), out);  // -0.0 joins 0.0
    } else {
      state::encode_key_cell(c, row, out);
    }
  }
  return all_valid;
}

bool same_key_cells(const Batch& batch, const std::vector<size_t>& fields, size_t a, size_t b) {
  for (size_t f : fields) {
    const Column& c = *batch.column(f);
    const bool null_a = c.is_null(a);
    if (null_a != c.is_null(b)) return false;
    if (null_a) continue;
    switch (c.type()) {
      case TypeId::kBool:
        if (c.bool_at(a) != c.bool_at(b)) return false;
        break;
      case TypeId::kInt64:
      case TypeId::kTimestamp:
        if (c.int64_at(a) != c.int64_at(b)) return false;
        break;
      case TypeId::kDouble:
        // Bit-equal: then the encodings are equal too.
        if (std::memcmp(c.double_data() + a, c.double_data() + b, sizeof(double)) != 0) {
          return false;
        }
        break;
      case TypeId::kString:
        if (c.string_at(a) != c.string_at(b)) return false;
        break;
    }
  }
  return true;
}

void mark_repeated_keys(const Batch& batch, const std::vector<size_t>& fields, const uint32_t* rows,
                        size_t n, std::vector<uint8_t>& repeats) {
  repeats.assign(n, 1);
  if (n == 0) return;
  repeats[0] = 0;
  auto row = [rows](size_t k) -> size_t { return rows ? rows[k] : k; };
  uint8_t* const rep = repeats.data();
  for (size_t f : fields) {
    const Column& c = *batch.column(f);
    if (stored_as_int64(c.type()) && !c.has_nulls()) {  // the common case, without a call per cell
      const int64_t* v = c.int64_data();
      if (rows == nullptr) {
        // Contiguous rows: a loop the compiler vectorizes.
        for (size_t k = 1; k < n; ++k) rep[k] &= v[k] == v[k - 1] ? 1 : 0;
      } else {
        for (size_t k = 1; k < n; ++k) rep[k] &= v[rows[k]] == v[rows[k - 1]] ? 1 : 0;
      }
      continue;
    }
    const std::vector<size_t> field{f};
    for (size_t k = 1; k < n; ++k) {
      if (repeats[k]) repeats[k] = same_key_cells(batch, field, row(k - 1), row(k)) ? 1 : 0;
    }
  }
}

}  // namespace df::operators
