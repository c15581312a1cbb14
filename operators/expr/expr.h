// The expression language of pipeline files (DESIGN.md §6): public API.
//
//   auto e = df::expr::compile("price * 0.908", *schema, location_of_text);
//   df::expr::EvalContext ctx;
//   df::ColumnPtr out = (*e)->evaluate(*batch, ctx);
//
// An expression is parsed once and bound (type-checked, names resolved to
// column indexes) against one input schema when the plan is built; errors
// carry file:line:column of the offending token. A CompiledExpr is immutable
// and may be evaluated from many threads at once, each with its own
// EvalContext.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/config_value.h"
#include "engine/core/status.h"

namespace df::expr {

// Per-evaluation scratch: counts per-row data errors (division by zero, bad
// casts), which yield null instead of failing the batch. Owned by one task.
struct EvalContext {
  struct RowError {
    size_t row;  // physical row index in the evaluated batch
    std::string message;
  };
  uint64_t data_errors = 0;
  // The first few errors, for logs and (later) the dead-letter path.
  std::vector<RowError> errors;
  static constexpr size_t kMaxKeptErrors = 64;

  // rand(): with row_ids set, rand() for row r is a pure function of
  // (seed, row_ids[r], call site), so results do not depend on batching or
  // parallelism; without it, a PRNG seeded with `seed` advances per call.
  uint64_t seed = 0;
  const Column* row_ids = nullptr;
  uint64_t rng_state = 0;

  void record_error(size_t row, std::string message) {
    ++data_errors;
    if (errors.size() < kMaxKeptErrors) errors.push_back({row, std::move(message)});
  }
  void clear_errors() {
    data_errors = 0;
    errors.clear();
  }
};

class CompiledExpr {
 public:
  virtual ~CompiledExpr() = default;
  virtual TypeId result_type() const = 0;
  // True when the expression is a literal or built only from literals.
  virtual bool is_constant() const = 0;
  // Evaluates over the batch's alive rows. The result has batch.num_rows()
  // slots; slots of rows not selected are unspecified. Never throws for data:
  // bad rows become null and are recorded in ctx.
  virtual ColumnPtr evaluate(const Batch& batch, EvalContext& ctx) const = 0;
  // The expression as parsed, normalised ("(price * 0.908)").
  virtual std::string to_string() const = 0;
  // Names of the input fields it reads.
  virtual const std::vector<std::string>& referenced_fields() const = 0;
};

using CompiledExprPtr = std::shared_ptr<const CompiledExpr>;

// Parses and binds `text` against `schema`. `origin` is where the text starts
// in its file; error locations are offset from it. Errors are InvalidArgument
// with messages "file:line:col: ..." (every error found, one per line).
Result<CompiledExprPtr> compile(std::string_view text, const Schema& schema,
                                const SourceLocation& origin = {});
// The same, adding each problem to `diags` with its location; nullptr on error.
CompiledExprPtr compile(std::string_view text, const Schema& schema, const SourceLocation& origin,
                        Diagnostics& diags);

// Boolean predicate helper for filters: the alive rows where `predicate`
// (a bool column from evaluate) is true; null counts as false.
SelectionPtr select_true(const Batch& batch, const Column& predicate);

}  // namespace df::expr
