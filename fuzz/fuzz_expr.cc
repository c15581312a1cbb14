// Fuzzes the expression language (operators/expr): text -> parser (with its
// depth limit) -> binder (names and types against a small schema) and, for
// what compiles, the evaluator over a few rows chosen to reach edge cases
// (zero, INT64_MIN, NaN, empty strings, nulls) and the normalised text.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "engine/core/batch.h"
#include "fuzz/fuzz_common.h"
#include "operators/expr/expr.h"

namespace {

using df::TypeId;
using df::Value;

const df::SchemaPtr& expr_schema() {
  static const df::SchemaPtr schema = df::make_schema({{"auction", TypeId::kInt64},
                                                       {"qty", TypeId::kInt64},
                                                       {"price", TypeId::kDouble},
                                                       {"name", TypeId::kString},
                                                       {"flag", TypeId::kBool},
                                                       {"ts", TypeId::kTimestamp}});
  return schema;
}

df::BatchPtr edge_rows() {
  df::BatchBuilder rows(expr_schema());
  rows.append_row({Value::int64(7), Value::int64(3), Value::float64(2.5), Value::string("bid"),
                   Value::boolean(true), Value::timestamp(1700000000000)});
  rows.append_row({Value::int64(std::numeric_limits<int64_t>::min()), Value::int64(-1),
                   Value::float64(std::nan("")), Value::string(""), Value::boolean(false),
                   Value::timestamp(std::numeric_limits<int64_t>::max())});
  rows.append_row({Value::int64(std::numeric_limits<int64_t>::max()), Value::int64(0),
                   Value::float64(-0.0), Value::string("\xff\xfe"), Value::boolean(true),
                   Value::timestamp(0)});
  rows.append_row({Value::null(TypeId::kInt64), Value::null(TypeId::kInt64),
                   Value::null(TypeId::kDouble), Value::null(TypeId::kString),
                   Value::null(TypeId::kBool), Value::null(TypeId::kTimestamp)});
  return rows.finish();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  df::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const df::BatchPtr batch = edge_rows();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto compiled = df::expr::compile(text, *expr_schema());
  if (!compiled.ok()) return 0;
  (void)(*compiled)->to_string();
  df::expr::EvalContext context;
  df::ColumnPtr out = (*compiled)->evaluate(*batch, context);
  if ((*compiled)->result_type() == TypeId::kBool) (void)df::expr::select_true(*batch, *out);
  return 0;
}
