// Internal: resolves names and checks types of a parsed tree, in place.
//
// After a successful bind every node has its result type, fields carry their
// column index, operands of mixed numeric type are wrapped in implicit casts
// (so the evaluator only ever sees matching operand types), string literals
// compared with timestamps are already timestamps, and literals carry a
// one-slot column. Single-threaded; the tree is immutable afterwards.
#pragma once

#include <string>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/core/schema.h"
#include "operators/expr/ast.h"
#include "operators/expr/parser.h"

namespace df::expr::internal {

struct BindInfo {
  std::vector<std::string> referenced_fields;  // first-use order, no duplicates
};

// Reports every independent error it finds into `diags`; false if any.
bool bind(NodePtr& root, const Schema& schema, const Locator& locator, Diagnostics& diags,
          BindInfo& info);

}  // namespace df::expr::internal
