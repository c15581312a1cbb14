// map: builds each output row from expressions over the input row.
//   select: {name: expr, ...}   the output has exactly these fields, in order
//   set:    {name: expr, ...}   adds fields or overwrites existing ones
//   drop:   [name, ...]         removes fields
// A field passed through unchanged shares the input column (no copy), and the
// output keeps the input's selection vector, so map after filter copies nothing.
// A row whose expression fails (division by zero, bad cast) gets null there;
// with a dead-letter sink it goes there instead and leaves the output.
#include <algorithm>

#include "operators/expr/eval.h"
#include "operators/stateless.h"

namespace df::operators {

namespace {

// One output column: either an input column passed through or an expression.
struct OutputColumn {
  std::string name;
  std::optional<size_t> passthrough;
  expr::CompiledExprPtr expr;
  // False for an expression nothing downstream reads (PreparedNode::project):
  // it is not evaluated, its column is null.
  bool computed = true;
};

class MapOperator final : public runtime::Operator {
 public:
  MapOperator(SchemaPtr schema, std::shared_ptr<const std::vector<OutputColumn>> columns)
      : schema_(std::move(schema)), columns_(std::move(columns)) {
    for (const auto& c : *columns_) {
      if (c.expr && c.computed) exprs_.push_back(c.expr.get());
    }
  }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    return Status::OK();
  }

  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    std::vector<ColumnPtr> cols;
    cols.reserve(columns_->size());
    for (const auto& c : *columns_) {
      if (c.passthrough) {
        cols.push_back(batch->column(*c.passthrough));
      } else if (c.computed) {
        cols.push_back(c.expr->evaluate(*batch, eval_));
      } else {
        cols.push_back(Column::constant(Value::null(c.expr->result_type()), batch->num_rows()));
      }
    }
    BatchPtr mapped = batch->with_columns(schema_, std::move(cols));
    if (eval_.data_errors > 0 && ctx_->has_dead_letter_sink()) {
      mapped = dead_letter_failed_rows(*batch, std::move(mapped));
      if (!mapped) return Status::OK();
    } else {
      report_eval_errors(eval_, *ctx_);
    }
    out.emit(std::move(mapped));
    return Status::OK();
  }

 private:
  // Sends the input rows whose expressions failed to the dead-letter sink
  // and returns `mapped` without them (nullptr when none is left).
  BatchPtr dead_letter_failed_rows(const Batch& input, BatchPtr mapped) {
    const std::vector<expr::FailedRow> failed = expr::failed_rows(exprs_, input, eval_);
    auto keep = std::make_shared<Selection>();
    keep->reserve(input.active_rows());
    size_t next = 0;
    input.for_each_row([&](size_t r) {
      if (next < failed.size() && failed[next].row == r) {
        ctx_->report_bad_record(failed[next].message, expr::row_to_json(input, r), ctx_->node_id());
        ++next;
      } else {
        keep->push_back(static_cast<uint32_t>(r));
      }
    });
    return Batch::narrow(mapped, std::move(keep));
  }

  SchemaPtr schema_;
  std::shared_ptr<const std::vector<OutputColumn>> columns_;
  std::vector<const expr::CompiledExpr*> exprs_;  // the computed columns' expressions
  expr::EvalContext eval_;
  runtime::OperatorContext* ctx_ = nullptr;
};

class PreparedMap final : public runtime::PreparedNode {
 public:
  PreparedMap(SchemaPtr input, SchemaPtr schema,
              std::shared_ptr<const std::vector<OutputColumn>> columns, bool dead_letters)
      : input_(std::move(input)),
        schema_(std::move(schema)),
        columns_(std::move(columns)),
        dead_letters_(dead_letters) {}
  SchemaPtr output_schema() const override { return schema_; }
  // The fields passed through to a field read downstream and those the
  // expressions of such fields read; all of a row that may go to the
  // dead-letter sink (when an expression may fail).
  std::optional<runtime::FieldMask> input_fields_read(
      size_t, const runtime::FieldMask& output_read) const override {
    runtime::FieldMask read(input_->size(), false);
    for (size_t j = 0; j < columns_->size(); ++j) {
      const OutputColumn& c = (*columns_)[j];
      if (c.expr && dead_letters_) return std::nullopt;
      if (j < output_read.size() && !output_read[j]) continue;
      if (c.passthrough) {
        read[*c.passthrough] = true;
      } else {
        mark_fields_read(*c.expr, *input_, read);
      }
    }
    return read;
  }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return std::make_unique<MapOperator>(schema_, columns_);
  }
  std::string describe() const override {
    std::string d;
    for (const auto& c : *columns_) {
      if (!d.empty()) d += ", ";
      d += c.name;
      if (c.expr) d += " = " + c.expr->to_string();
    }
    return d + runtime::describe_fields_read(*schema_, read_);
  }
  // Leaves the expressions of fields nothing reads unevaluated (so they
  // cost nothing and report no errors), unless a row that fails any of them
  // goes to the dead-letter sink.
  runtime::PreparedNodePtr project(const runtime::FieldMask& read) const override {
    if (dead_letters_ || read.size() != columns_->size()) return nullptr;
    auto columns = std::make_shared<std::vector<OutputColumn>>(*columns_);
    bool skips = false;
    for (size_t j = 0; j < columns->size(); ++j) {
      OutputColumn& c = (*columns)[j];
      if (c.expr && !read[j]) {
        c.computed = false;
        skips = true;
      }
    }
    if (!skips) return nullptr;
    auto projected = std::make_shared<PreparedMap>(input_, schema_, std::move(columns), false);
    projected->read_ = read;
    return projected;
  }

 private:
  SchemaPtr input_;
  SchemaPtr schema_;
  std::shared_ptr<const std::vector<OutputColumn>> columns_;
  bool dead_letters_;        // the pipeline has a dead-letter sink
  runtime::FieldMask read_;  // project(): the fields read downstream; empty: all
};

// A bare field name (possibly quoted) that names an input field.
std::optional<size_t> as_field_reference(const ConfigValue& v, const Schema& schema) {
  if (!v.is_scalar()) return std::nullopt;
  std::string t = v.scalar_text();
  auto b = t.find_first_not_of(" \t");
  auto e = t.find_last_not_of(" \t");
  if (b == std::string::npos) return std::nullopt;
  return schema.index_of(t.substr(b, e - b + 1));
}

class MapFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    const std::string what = "map '" + spec.id + "'";
    if (!require_single_input(spec, inputs, opts)) return nullptr;
    const Schema& in = *inputs[0];
    Diagnostics& diags = opts.diags();
    const ConfigValue* select = opts.get("select");
    const ConfigValue* set = opts.get("set");
    const ConfigValue* drop = opts.get("drop");
    if (!select && !set && !drop) {
      diags.error(opts.node().location(), what + " needs 'select', 'set' or 'drop'");
      return nullptr;
    }
    if (select && (set || drop)) {
      diags.error(select->location(), what + " takes either 'select' or 'set'/'drop', not both");
      return nullptr;
    }
    size_t errors_before = diags.size();
    std::vector<OutputColumn> out;
    auto add_exprs = [&](const ConfigValue& m, const char* key) {
      if (!m.is_map()) {
        diags.error(m.location(), what + " '" + key + "' must be a map of name: expression");
        return;
      }
      for (const auto& [name, value] : m.entries()) {
        OutputColumn col{name, as_field_reference(value, in), nullptr};
        if (!col.passthrough) {
          col.expr = compile_option(value, in, what + " field '" + name + "'", diags);
          if (!col.expr) continue;
        }
        auto existing = std::find_if(out.begin(), out.end(), [&name = name](const OutputColumn& c) {
          return c.name == name;
        });
        if (existing != out.end()) {
          *existing = std::move(col);
        } else {
          out.push_back(std::move(col));
        }
      }
    };
    if (select) {
      add_exprs(*select, "select");
    } else {
      for (size_t i = 0; i < in.size(); ++i) out.push_back({in.field(i).name, i, nullptr});
      if (set) add_exprs(*set, "set");
      if (drop) {
        auto names = drop->as_string_list();
        if (!names.ok()) {
          diags.error(drop->location(), what + " 'drop' must be a list of field names");
        } else {
          for (const auto& name : *names) {
            auto it = std::find_if(out.begin(), out.end(),
                                   [&](const OutputColumn& c) { return c.name == name; });
            if (it == out.end()) {
              diags.error(drop->location(), what + " cannot drop unknown field '" + name +
                                                "' (fields: " + in.to_string() + ")");
            } else {
              out.erase(it);
            }
          }
        }
      }
    }
    if (diags.size() != errors_before) return nullptr;
    if (out.empty()) {
      diags.error(opts.node().location(), what + " leaves no fields");
      return nullptr;
    }
    std::vector<Field> fields;
    for (const auto& c : out) {
      fields.push_back(
          {c.name, c.passthrough ? in.field(*c.passthrough).type : c.expr->result_type()});
    }
    return std::make_shared<PreparedMap>(
        inputs[0], make_schema(std::move(fields)),
        std::make_shared<const std::vector<OutputColumn>>(std::move(out)),
        spec.has_dead_letter_sink);
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_map_factory() { return std::make_unique<MapFactory>(); }

}  // namespace df::operators
