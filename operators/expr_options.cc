#include "operators/expr_options.h"

namespace df::operators {

expr::CompiledExprPtr compile_option(const ConfigValue& value, const Schema& schema,
                                     const std::string& what, Diagnostics& diags) {
  if (!value.is_scalar()) {
    diags.error(value.location(),
                what + " must be an expression, got " + std::string(value.kind_name()));
    return nullptr;
  }
  return expr::compile(value.scalar_text(), schema, value.text_location(), diags);
}

void report_eval_errors(expr::EvalContext& eval, runtime::OperatorContext& ctx) {
  if (eval.data_errors == 0) return;
  for (const auto& e : eval.errors) ctx.report_data_error(e.message);
  // Errors beyond the kept sample are counted with the first message.
  for (uint64_t i = eval.errors.size(); i < eval.data_errors; ++i) {
    ctx.report_data_error(eval.errors.empty() ? "expression error" : eval.errors.front().message);
  }
  eval.clear_errors();
}

void mark_fields_read(const expr::CompiledExpr& e, const Schema& schema, runtime::FieldMask& read) {
  for (const std::string& name : e.referenced_fields()) {
    if (std::optional<size_t> f = schema.index_of(name)) read[*f] = true;
  }
}

}  // namespace df::operators
