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

#include <string>
#include <vector>

#include "engine/core/batch.h"
#include "operators/expr/ast.h"
#include "operators/expr/expr.h"

namespace df::expr {

// A row whose evaluation recorded a data error (division by zero, bad cast).
struct FailedRow {
  size_t row;           // physical row index in the batch
  std::string message;  // the first error of the row
};
// The rows of `batch` for which evaluating any of `exprs` recorded a data
// error, ascending, one entry per row; `ctx` holds what evaluating them over
// `batch` recorded, and is cleared. When ctx kept fewer errors than it
// counted (more than EvalContext::kMaxKeptErrors), halves of the batch are
// evaluated again until each half's errors fit, so every failed row is named.
// For dead letters (operators/filter.cc, map.cc).
std::vector<FailedRow> failed_rows(const std::vector<const CompiledExpr*>& exprs,
                                   const Batch& batch, EvalContext& ctx);
// Physical row `row` of `batch` as one JSON object, fields in schema order
// (timestamps as RFC 3339 strings, non-finite doubles as null).
std::string row_to_json(const Batch& batch, size_t row);

}  // namespace df::expr

namespace df::expr::internal {

ColumnPtr evaluate(const Node& root, const Batch& batch, EvalContext& ctx);

// Evaluates each largest constant subtree of a bound tree once and stores its
// value in Node::folded, so batches do not recompute it. A subtree whose
// evaluation raises a data error (e.g. `1 / 0`) is not folded: it must still
// charge the error to every row that asks for it.
void fold_constants(Node& root);

// The specialised kernels (literal operands kept scalar, branch-free loops
// without nulls, division by a constant by multiplication, dense loops over a
// selection) must give exactly what the general per-row loops give. Tests
// switch them off for the calling thread to compare both; on by default.
void set_fast_paths(bool enabled);
bool fast_paths();

}  // namespace df::expr::internal
