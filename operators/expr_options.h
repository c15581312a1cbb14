// Helpers shared by operators that read expressions from their options.
#pragma once

#include <string>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/runtime/node_factory.h"
#include "engine/runtime/operator.h"
#include "operators/expr/expr.h"

namespace df::operators {

// Compiles the scalar at `value` against `schema`; errors go to `diags`.
// Returns nullptr on error.
expr::CompiledExprPtr compile_option(const ConfigValue& value, const Schema& schema,
                                     const std::string& what, Diagnostics& diags);

// Hands the per-row errors an evaluation recorded to the runtime (counted and
// logged there), then clears them.
void report_eval_errors(expr::EvalContext& eval, runtime::OperatorContext& ctx);

// Flags in `read` the fields of `schema` (the expression's input) that `e`
// reads.
void mark_fields_read(const expr::CompiledExpr& e, const Schema& schema, runtime::FieldMask& read);

}  // namespace df::operators
