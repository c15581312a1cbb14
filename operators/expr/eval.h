// Internal: the vectorized evaluator.
//
// Each node is evaluated over all rows of interest at once into a column, with
// one type-specialised loop per node; the type dispatch happens once per node
// and batch, never per row. Constant subtrees are evaluated once into a
// one-slot column. Only the batch's alive rows are computed, and if()/and/or/
// coalesce narrow the rows further so that, e.g., `qty <> 0 and price / qty > 2`
// never divides by zero. Reads the bound tree only: any number of threads may
// evaluate the same tree, each with its own EvalContext.
#pragma once

#include "engine/core/batch.h"
#include "operators/expr/ast.h"
#include "operators/expr/expr.h"

namespace df::expr::internal {

ColumnPtr evaluate(const Node& root, const Batch& batch, EvalContext& ctx);

}  // namespace df::expr::internal
