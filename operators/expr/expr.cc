#include "operators/expr/expr.h"

#include <stdexcept>
#include <utility>

#include "operators/expr/ast.h"
#include "operators/expr/binder.h"
#include "operators/expr/eval.h"
#include "operators/expr/kernels.h"
#include "operators/expr/parser.h"

namespace df::expr {
namespace {

// Owns the bound tree; everything is computed at compile time, so evaluate()
// only reads and is safe to call concurrently.
class CompiledExprImpl final : public CompiledExpr {
 public:
  CompiledExprImpl(internal::NodePtr root, std::vector<std::string> fields)
      : root_(std::move(root)), fields_(std::move(fields)), text_(internal::to_string(*root_)) {}

  TypeId result_type() const override { return root_->type; }
  bool is_constant() const override { return root_->constant; }
  ColumnPtr evaluate(const Batch& batch, EvalContext& ctx) const override {
    return internal::evaluate(*root_, batch, ctx);
  }
  std::string to_string() const override { return text_; }
  const std::vector<std::string>& referenced_fields() const override { return fields_; }

 private:
  internal::NodePtr root_;
  std::vector<std::string> fields_;
  std::string text_;
};

}  // namespace

CompiledExprPtr compile(std::string_view text, const Schema& schema, const SourceLocation& origin,
                        Diagnostics& diags) {
  const internal::Locator locator(text, origin);
  internal::NodePtr root = internal::parse(text, locator, diags);
  if (!root) return nullptr;
  internal::BindInfo info;
  if (!internal::bind(root, schema, locator, diags, info)) return nullptr;
  internal::fold_constants(*root);
  return std::make_shared<CompiledExprImpl>(std::move(root), std::move(info.referenced_fields));
}

Result<CompiledExprPtr> compile(std::string_view text, const Schema& schema,
                                const SourceLocation& origin) {
  Diagnostics diags;
  CompiledExprPtr compiled = compile(text, schema, origin, diags);
  if (!compiled) return diags.to_status();
  return compiled;
}

SelectionPtr select_true(const Batch& batch, const Column& predicate) {
  if (predicate.type() != TypeId::kBool || predicate.size() < batch.num_rows()) {
    throw std::logic_error("select_true: predicate must be a bool column of the batch's length");
  }
  const uint8_t* v = predicate.bool_data();
  const uint8_t* valid = predicate.validity();
  const Selection* in = batch.selection();
  const size_t n = batch.active_rows();
  // The vector kernels store up to sixteen indexes at a time.
  std::shared_ptr<Selection> out = make_selection(in == nullptr ? n + 16 : n);
  if (in == nullptr) {
    out->resize(internal::kernels::select_nonzero(v, valid, n, out->data()));
  } else {
    // Branch-free: every candidate row index is written, and the write
    // position advances only when the row is kept (predicates are unpredictable).
    uint32_t* o = out->data();
    const uint32_t* sel = in->data();
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t r = sel[i];
      o[k] = r;
      k += (v[r] != 0) & (valid == nullptr || valid[r] != 0);
    }
    out->resize(k);
  }
  // Nothing filtered out of an already-filtered batch: share its selection.
  if (batch.selection() && out->size() == batch.active_rows()) return batch.selection_ptr();
  return out;
}

}  // namespace df::expr
