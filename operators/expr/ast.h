// Internal: the expression tree shared by the parser, binder and evaluator.
//
// The parser builds a tree of Nodes; the binder annotates it in place (types,
// column indexes, implicit casts, literal columns) and from then on the tree is
// immutable and read concurrently by every thread that evaluates it. Nodes own
// their children.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/column.h"
#include "engine/core/types.h"
#include "engine/core/value.h"

namespace df::expr::internal {

enum class NodeKind : uint8_t {
  kLiteral,
  kField,
  kUnary,    // op: kNeg, kNot
  kBinary,   // arithmetic, comparison, and/or
  kIsNull,   // negated: is not null
  kIn,       // args[0] in (args[1..])
  kBetween,  // args[0] between args[1] and args[2]
  kLike,     // args[0] like args[1]
  kCall,
  kCast,
};

enum class Op : uint8_t {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kNeg,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
  kNot,
};

enum class Func : uint8_t {
  kIf,
  kCoalesce,
  kLower,
  kUpper,
  kLength,
  kConcat,
  kSubstr,
  kAbs,
  kRound,
  kFloor,
  kCeil,
  kRand,
};

const char* op_symbol(Op op);
inline bool is_comparison(Op op) { return op >= Op::kEq && op <= Op::kGe; }
inline bool is_arithmetic(Op op) { return op <= Op::kMod; }

struct Node;
using NodePtr = std::unique_ptr<Node>;

struct Node {
  NodeKind kind = NodeKind::kLiteral;
  // Byte offset of the token an error about this node points at (the operator
  // of a binary node, the name of a call), and the node's source span, which
  // data-error messages quote.
  uint32_t pos = 0;
  std::string text;

  Value literal;              // kLiteral
  bool null_literal = false;  // `null`: its type is taken from the context
  std::string name;           // kField (as written), kCall (lower-cased)
  Op op = Op::kAdd;           // kUnary, kBinary
  Func func = Func::kIf;      // kCall
  bool negated = false;       // is not null, not in, not between, not like
  bool implicit = false;      // kCast inserted by the binder (not printed)
  TypeId cast_to = TypeId::kInt64;
  std::vector<NodePtr> args;

  // --- Set by the binder. ---
  TypeId type = TypeId::kInt64;
  bool constant = false;     // built only from literals: evaluated once per batch
  size_t field_index = 0;    // kField
  uint32_t rand_site = 0;    // kCall rand(): which call site, for reproducible streams
  ColumnPtr literal_column;  // kLiteral: one slot holding `literal`
  // A constant non-literal subtree that evaluates without data errors, computed
  // once after binding (fold_constants): one slot holding its value.
  ColumnPtr folded;
};

// Normalised, fully parenthesised text of a (bound) tree.
std::string to_string(const Node& node);

}  // namespace df::expr::internal
