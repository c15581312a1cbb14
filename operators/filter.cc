// filter: keeps the rows where `where` is true (null counts as false).
// Never copies: the output shares the input's columns with a narrower
// selection vector. A row whose condition fails (division by zero, bad cast)
// is dropped; with a dead-letter sink it goes there with the error.
#include "operators/expr/eval.h"
#include "operators/stateless.h"

namespace df::operators {

namespace {

class FilterOperator final : public runtime::Operator {
 public:
  explicit FilterOperator(expr::CompiledExprPtr predicate) : predicate_(std::move(predicate)) {}

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    return Status::OK();
  }

  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    ColumnPtr keep = predicate_->evaluate(*batch, eval_);
    if (eval_.data_errors > 0 && ctx_->has_dead_letter_sink()) {
      for (const expr::FailedRow& f : expr::failed_rows({predicate_.get()}, *batch, eval_)) {
        ctx_->report_bad_record(f.message, expr::row_to_json(*batch, f.row), ctx_->node_id());
      }
    } else {
      report_eval_errors(eval_, *ctx_);
    }
    SelectionPtr selection = expr::select_true(*batch, *keep);
    if (BatchPtr kept = Batch::narrow(batch, std::move(selection))) out.emit(std::move(kept));
    return Status::OK();
  }

 private:
  expr::CompiledExprPtr predicate_;
  expr::EvalContext eval_;
  runtime::OperatorContext* ctx_ = nullptr;
};

class PreparedFilter final : public runtime::PreparedNode {
 public:
  PreparedFilter(SchemaPtr schema, expr::CompiledExprPtr predicate, bool dead_letters)
      : schema_(std::move(schema)), predicate_(std::move(predicate)), dead_letters_(dead_letters) {}
  SchemaPtr output_schema() const override { return schema_; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return std::make_unique<FilterOperator>(predicate_);
  }
  std::string describe() const override { return "where " + predicate_->to_string(); }
  // What is read downstream and what the condition reads; all of a row
  // that may go to the dead-letter sink.
  std::optional<runtime::FieldMask> input_fields_read(
      size_t, const runtime::FieldMask& output_read) const override {
    if (dead_letters_) return std::nullopt;
    runtime::FieldMask read = output_read;
    mark_fields_read(*predicate_, *schema_, read);
    return read;
  }

 private:
  SchemaPtr schema_;
  expr::CompiledExprPtr predicate_;
  bool dead_letters_;  // the pipeline has a dead-letter sink
};

class FilterFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    const std::string what = "filter '" + spec.id + "'";
    if (!require_single_input(spec, inputs, opts)) return nullptr;
    const ConfigValue* where = opts.require("where");
    if (!where) return nullptr;
    auto predicate = compile_option(*where, *inputs[0], what + " 'where'", opts.diags());
    if (!predicate) return nullptr;
    if (predicate->result_type() != TypeId::kBool) {
      opts.diags().error(where->location(), what + ": 'where' must be a condition (bool), got " +
                                                std::string(type_name(predicate->result_type())));
      return nullptr;
    }
    return std::make_shared<PreparedFilter>(inputs[0], std::move(predicate),
                                            spec.has_dead_letter_sink);
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_filter_factory() {
  return std::make_unique<FilterFactory>();
}

}  // namespace df::operators
