// Builders shared by the expression tests: a schema with one field of every
// type, batches from rows of Values, and one-call compile+evaluate helpers.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/time.h"
#include "operators/expr/expr.h"

namespace df {
// Readable gtest failures: "int64 42", "string null".
inline void PrintTo(const Value& v, std::ostream* os) {
  *os << type_name(v.type()) << " " << v.to_string();
}
}  // namespace df

namespace df::expr::testing {

// auction int64, qty int64, price double, name string, flag bool, ts timestamp,
// `weird name` int64, other bool.
inline SchemaPtr test_schema() {
  return make_schema({{"auction", TypeId::kInt64},
                      {"qty", TypeId::kInt64},
                      {"price", TypeId::kDouble},
                      {"name", TypeId::kString},
                      {"flag", TypeId::kBool},
                      {"ts", TypeId::kTimestamp},
                      {"weird name", TypeId::kInt64},
                      {"other", TypeId::kBool}});
}

inline Value I(int64_t v) { return Value::int64(v); }
inline Value D(double v) { return Value::float64(v); }
inline Value S(std::string v) { return Value::string(std::move(v)); }
inline Value B(bool v) { return Value::boolean(v); }
inline Value T(int64_t ms) { return Value::timestamp(ms); }
inline Value N(TypeId t) { return Value::null(t); }
inline int64_t ts(std::string_view text) { return *parse_timestamp(text); }

// One row of test_schema(); unspecified trailing fields are null.
inline std::vector<Value> row(std::vector<Value> head) {
  static const std::vector<TypeId> kTypes = {TypeId::kInt64,  TypeId::kInt64, TypeId::kDouble,
                                             TypeId::kString, TypeId::kBool,  TypeId::kTimestamp,
                                             TypeId::kInt64,  TypeId::kBool};
  for (size_t i = head.size(); i < kTypes.size(); ++i) head.push_back(Value::null(kTypes[i]));
  return head;
}

inline BatchPtr make_batch(const SchemaPtr& schema, const std::vector<std::vector<Value>>& rows,
                           SelectionPtr selection = nullptr) {
  BatchBuilder b(schema);
  for (const auto& r : rows) b.append_row(r);
  BatchPtr batch = b.finish();
  if (selection) batch = batch->with_selection(std::move(selection));
  return batch;
}

inline CompiledExprPtr must_compile(std::string_view text, const Schema& schema) {
  auto r = compile(text, schema);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().message();
  if (!r.ok()) return nullptr;
  return *r;
}

// Values of the batch's alive rows, in order.
inline std::vector<Value> eval_alive(const CompiledExpr& e, const Batch& batch, EvalContext& ctx) {
  ColumnPtr col = e.evaluate(batch, ctx);
  EXPECT_EQ(col->size(), batch.num_rows());
  EXPECT_EQ(col->type(), e.result_type());
  std::vector<Value> out;
  batch.for_each_row([&](size_t r) { out.push_back(col->value_at(r)); });
  return out;
}

// Evaluates `text` over one row of test_schema() (all-null by default).
inline Value eval1(std::string_view text, std::vector<Value> head = {},
                   EvalContext* ctx_out = nullptr) {
  auto schema = test_schema();
  auto e = must_compile(text, *schema);
  if (!e) return Value::string("<compile error>");
  EvalContext local;
  EvalContext& ctx = ctx_out ? *ctx_out : local;
  auto batch = make_batch(schema, {row(std::move(head))});
  auto vals = eval_alive(*e, *batch, ctx);
  return vals.at(0);
}

// The compile error message for `text` ("" when it compiles).
inline std::string compile_error(std::string_view text, const SourceLocation& origin = {}) {
  auto r = compile(text, *test_schema(), origin);
  return r.ok() ? std::string() : r.status().message();
}

}  // namespace df::expr::testing
