#include "operators/expr/binder.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "engine/core/time.h"

namespace df::expr::internal {

namespace {

struct FuncInfo {
  const char* name;
  Func func;
  size_t min_args;
  size_t max_args;  // SIZE_MAX: variadic
};

constexpr FuncInfo kFunctions[] = {
    {"if", Func::kIf, 3, 3},         {"coalesce", Func::kCoalesce, 1, SIZE_MAX},
    {"lower", Func::kLower, 1, 1},   {"upper", Func::kUpper, 1, 1},
    {"length", Func::kLength, 1, 1}, {"concat", Func::kConcat, 1, SIZE_MAX},
    {"substr", Func::kSubstr, 2, 3}, {"abs", Func::kAbs, 1, 1},
    {"round", Func::kRound, 1, 2},   {"floor", Func::kFloor, 1, 1},
    {"ceil", Func::kCeil, 1, 1},     {"rand", Func::kRand, 0, 0},
};

const FuncInfo* find_function(std::string_view name) {
  for (const auto& f : kFunctions) {
    if (name == f.name) return &f;
  }
  // Common spellings users bring from other SQL dialects.
  if (name == "substring") return find_function("substr");
  if (name == "ceiling") return find_function("ceil");
  return nullptr;
}

std::string tn(TypeId t) { return std::string(type_name(t)); }

bool cast_allowed(TypeId from, TypeId to) {
  if (from == to || from == TypeId::kString || to == TypeId::kString) return true;
  auto numeric_or_bool = [](TypeId t) {
    return t == TypeId::kBool || t == TypeId::kInt64 || t == TypeId::kDouble;
  };
  if (numeric_or_bool(from) && numeric_or_bool(to)) return true;
  return (from == TypeId::kInt64 && to == TypeId::kTimestamp) ||
         (from == TypeId::kTimestamp && to == TypeId::kInt64);
}

class Binder {
 public:
  Binder(const Schema& schema, const Locator& locator, Diagnostics& diags, BindInfo& info)
      : schema_(schema), loc_(locator), diags_(diags), info_(info) {}

  bool visit(NodePtr& slot) {
    Node& n = *slot;
    bool ok = true;
    // Bind every child even after one fails so independent errors are all reported.
    for (auto& c : n.args) ok = visit(c) && ok;
    if (!ok) return false;
    n.constant =
        std::all_of(n.args.begin(), n.args.end(), [](const NodePtr& c) { return c->constant; });
    switch (n.kind) {
      case NodeKind::kLiteral:
        n.type = n.literal.type();
        n.constant = true;
        return true;
      case NodeKind::kField:
        return bind_field(n);
      case NodeKind::kUnary:
        return bind_unary(n);
      case NodeKind::kBinary:
        return bind_binary(n);
      case NodeKind::kIsNull:
        n.type = TypeId::kBool;
        return true;
      case NodeKind::kIn:
      case NodeKind::kBetween:
        return bind_list_compare(n);
      case NodeKind::kLike:
        n.type = TypeId::kBool;
        if (!coerce(n.args[0], TypeId::kString) || !coerce(n.args[1], TypeId::kString)) {
          return error(n.pos, operands_error("like", n.args[0]->type, n.args[1]->type));
        }
        return true;
      case NodeKind::kCall:
        return bind_call(n);
      case NodeKind::kCast: {
        Node& arg = *n.args[0];
        n.type = n.cast_to;
        if (arg.null_literal) return coerce(n.args[0], n.cast_to);
        if (!cast_allowed(arg.type, n.cast_to)) {
          return error(n.pos, "cannot cast " + tn(arg.type) + " to " + tn(n.cast_to));
        }
        return true;
      }
    }
    return false;
  }

 private:
  bool error(size_t pos, std::string message) {
    diags_.error(loc_.at(pos), std::move(message));
    return false;
  }
  static std::string operands_error(const char* op, TypeId a, TypeId b) {
    return std::string("operator '") + op + "' cannot apply to " + tn(a) + " and " + tn(b);
  }

  bool bind_field(Node& n) {
    auto idx = schema_.index_of(n.name);
    if (!idx) {
      std::string names;
      for (const auto& f : schema_.fields()) {
        if (!names.empty()) names += ", ";
        names += f.name;
      }
      return error(n.pos, "unknown field '" + n.name + "' (fields: " + names + ")");
    }
    n.field_index = *idx;
    n.type = schema_.field(*idx).type;
    n.constant = false;
    auto& refs = info_.referenced_fields;
    if (std::find(refs.begin(), refs.end(), n.name) == refs.end()) refs.push_back(n.name);
    return true;
  }

  // Makes `slot` produce `to`: retypes a null literal, widens int64 to double,
  // parses a string literal as a timestamp. False when no such conversion exists
  // (the caller reports it); a timestamp literal that does not parse is reported here.
  bool coerce(NodePtr& slot, TypeId to) {
    Node& n = *slot;
    if (n.null_literal) {
      n.literal = Value::null(to);
      n.type = to;
      return true;
    }
    if (n.type == to) return true;
    if (n.type == TypeId::kInt64 && to == TypeId::kDouble) {
      auto cast = std::make_unique<Node>();
      cast->kind = NodeKind::kCast;
      cast->implicit = true;
      cast->cast_to = to;
      cast->type = to;
      cast->pos = n.pos;
      cast->text = n.text;
      cast->constant = n.constant;
      cast->args.push_back(std::move(slot));
      slot = std::move(cast);
      return true;
    }
    if (n.kind == NodeKind::kLiteral && n.type == TypeId::kString && to == TypeId::kTimestamp) {
      auto ts = parse_timestamp(n.literal.as_string());
      if (!ts.ok()) {
        error(n.pos, "cannot use '" + n.literal.as_string() +
                         "' as a timestamp: " + ts.status().message());
        n.type = TypeId::kTimestamp;  // reported; keep the caller from reporting again
        reported_ = true;
        return false;
      }
      n.literal = Value::timestamp(*ts);
      n.type = TypeId::kTimestamp;
      return true;
    }
    return false;
  }

  // The type all `nodes` can be brought to: equal types, int64/double -> double,
  // timestamp with string literals -> timestamp; null literals adapt.
  static std::optional<TypeId> common_type(const std::vector<const Node*>& nodes) {
    std::optional<TypeId> t;
    bool string_literal = false;
    for (const Node* n : nodes) {
      if (n->null_literal) continue;
      if (n->kind == NodeKind::kLiteral && n->type == TypeId::kString) string_literal = true;
      if (!t || *t == n->type) {
        t = n->type;
        continue;
      }
      if (is_numeric(*t) && is_numeric(n->type)) {
        t = TypeId::kDouble;
      } else if (*t == TypeId::kString && n->type == TypeId::kTimestamp && string_literal) {
        t = TypeId::kTimestamp;
      } else if (*t == TypeId::kTimestamp && n->type == TypeId::kString &&
                 n->kind == NodeKind::kLiteral) {
        // stays timestamp; the literal is parsed by coerce()
      } else {
        return std::nullopt;
      }
    }
    if (t && *t == TypeId::kTimestamp) {
      // Every string operand must be a literal to become a timestamp.
      for (const Node* n : nodes) {
        if (n->type == TypeId::kString && n->kind != NodeKind::kLiteral && !n->null_literal) {
          return std::nullopt;
        }
      }
    }
    return t.value_or(TypeId::kInt64);
  }

  // Brings every arg in [first, args.size()) to a common type; reports `what` on failure.
  std::optional<TypeId> unify(Node& n, size_t first, const std::string& what) {
    std::vector<const Node*> nodes;
    for (size_t i = first; i < n.args.size(); ++i) nodes.push_back(n.args[i].get());
    auto t = common_type(nodes);
    if (!t) {
      // Name the first operand that disagrees with the first typed one.
      const Node* first = nullptr;
      const Node* bad = nullptr;
      for (const Node* x : nodes) {
        if (x->null_literal) continue;
        if (!first) {
          first = x;
        } else if (!common_type({first, x})) {
          bad = x;
          break;
        }
      }
      if (!bad) {
        for (const Node* x : nodes) {
          if (!x->null_literal && x->type != first->type) bad = x;
        }
      }
      error(n.pos, what + " cannot apply to " + tn(first->type) + " and " +
                       tn(bad ? bad->type : first->type));
      return std::nullopt;
    }
    reported_ = false;
    bool ok = true;
    for (size_t i = first; i < n.args.size(); ++i) ok = coerce(n.args[i], *t) && ok;
    if (!ok) {
      if (!reported_) error(n.pos, what + " cannot apply to these operand types");
      return std::nullopt;
    }
    return t;
  }

  bool bind_unary(Node& n) {
    Node& a = *n.args[0];
    if (n.op == Op::kNot) {
      n.type = TypeId::kBool;
      if (!coerce(n.args[0], TypeId::kBool)) {
        return error(n.pos, "operator 'not' cannot apply to " + tn(a.type));
      }
      return true;
    }
    if (a.null_literal) coerce(n.args[0], TypeId::kInt64);
    if (!is_numeric(n.args[0]->type)) {
      return error(n.pos, "operator '-' cannot apply to " + tn(n.args[0]->type));
    }
    n.type = n.args[0]->type;
    return true;
  }

  bool bind_binary(Node& n) {
    NodePtr& l = n.args[0];
    NodePtr& r = n.args[1];
    const char* sym = op_symbol(n.op);
    if (n.op == Op::kAnd || n.op == Op::kOr) {
      n.type = TypeId::kBool;
      const TypeId lt = l->type, rt = r->type;
      if (!coerce(l, TypeId::kBool) || !coerce(r, TypeId::kBool)) {
        return error(n.pos, operands_error(sym, lt, rt));
      }
      return true;
    }
    if (is_comparison(n.op)) {
      n.type = TypeId::kBool;
      return unify(n, 0, std::string("operator '") + sym + "'").has_value();
    }
    // Arithmetic. A null literal takes the other side's type (int64 next to a timestamp).
    if (l->null_literal && r->null_literal) {
      coerce(l, TypeId::kInt64);
      coerce(r, TypeId::kInt64);
    } else if (l->null_literal) {
      coerce(l, r->type == TypeId::kTimestamp && n.op == Op::kAdd ? TypeId::kInt64 : r->type);
    } else if (r->null_literal) {
      coerce(r, l->type == TypeId::kTimestamp ? TypeId::kInt64 : l->type);
    }
    const TypeId lt = l->type, rt = r->type;
    if (is_numeric(lt) && is_numeric(rt)) {
      n.type = lt == rt ? lt : TypeId::kDouble;
      coerce(l, n.type);
      coerce(r, n.type);
      return true;
    }
    if (n.op == Op::kAdd && lt == TypeId::kTimestamp && rt == TypeId::kInt64) {
      n.type = TypeId::kTimestamp;
      return true;
    }
    if (n.op == Op::kAdd && lt == TypeId::kInt64 && rt == TypeId::kTimestamp) {
      n.type = TypeId::kTimestamp;
      return true;
    }
    if (n.op == Op::kSub && lt == TypeId::kTimestamp && rt == TypeId::kInt64) {
      n.type = TypeId::kTimestamp;
      return true;
    }
    if (n.op == Op::kSub && lt == TypeId::kTimestamp && rt == TypeId::kTimestamp) {
      n.type = TypeId::kInt64;
      return true;
    }
    // Strings are joined with concat(), never with '+'.
    return error(n.pos, operands_error(sym, lt, rt));
  }

  bool bind_list_compare(Node& n) {
    n.type = TypeId::kBool;
    return unify(n, 0, n.kind == NodeKind::kIn ? "operator 'in'" : "operator 'between'")
        .has_value();
  }

  bool expect(Node& n, size_t i, TypeId t) {
    if (coerce(n.args[i], t)) return true;
    return error(n.args[i]->pos, "function '" + n.name + "' expects " + tn(t) + " for argument " +
                                     std::to_string(i + 1) + ", got " + tn(n.args[i]->type));
  }
  bool expect_numeric(Node& n, size_t i) {
    if (n.args[i]->null_literal) coerce(n.args[i], TypeId::kInt64);
    if (is_numeric(n.args[i]->type)) return true;
    return error(n.args[i]->pos, "function '" + n.name + "' expects a number for argument " +
                                     std::to_string(i + 1) + ", got " + tn(n.args[i]->type));
  }

  bool bind_call(Node& n) {
    const FuncInfo* f = find_function(n.name);
    if (!f) {
      std::string names;
      for (const auto& fi : kFunctions) {
        if (!names.empty()) names += ", ";
        names += fi.name;
      }
      return error(n.pos, "unknown function '" + n.name + "' (functions: " + names +
                              ", and cast(x as type))");
    }
    n.func = f->func;
    n.name = f->name;
    const size_t argc = n.args.size();
    if (argc < f->min_args || argc > f->max_args) {
      std::string want;
      if (f->min_args == f->max_args) {
        want = std::to_string(f->min_args) + (f->min_args == 1 ? " argument" : " arguments");
      } else if (f->max_args == SIZE_MAX) {
        want = "at least " + std::to_string(f->min_args) +
               (f->min_args == 1 ? " argument" : " arguments");
      } else {
        want = std::to_string(f->min_args) + " or " + std::to_string(f->max_args) + " arguments";
      }
      return error(n.pos,
                   "function '" + n.name + "' takes " + want + ", got " + std::to_string(argc));
    }
    switch (f->func) {
      case Func::kIf: {
        if (!expect(n, 0, TypeId::kBool)) return false;
        auto t = unify(n, 1, "if()");
        if (!t) return false;
        n.type = *t;
        return true;
      }
      case Func::kCoalesce: {
        auto t = unify(n, 0, "coalesce()");
        if (!t) return false;
        n.type = *t;
        return true;
      }
      case Func::kLower:
      case Func::kUpper:
        n.type = TypeId::kString;
        return expect(n, 0, TypeId::kString);
      case Func::kLength:
        n.type = TypeId::kInt64;
        return expect(n, 0, TypeId::kString);
      case Func::kConcat:
        n.type = TypeId::kString;
        for (auto& a : n.args) {
          if (a->null_literal) {
            coerce(a, TypeId::kString);
          } else if (a->type != TypeId::kString) {
            auto cast = std::make_unique<Node>();
            cast->kind = NodeKind::kCast;
            cast->implicit = true;
            cast->cast_to = TypeId::kString;
            cast->type = TypeId::kString;
            cast->pos = a->pos;
            cast->text = a->text;
            cast->constant = a->constant;
            cast->args.push_back(std::move(a));
            a = std::move(cast);
          }
        }
        return true;
      case Func::kSubstr: {
        n.type = TypeId::kString;
        bool ok = expect(n, 0, TypeId::kString);
        ok = expect(n, 1, TypeId::kInt64) && ok;
        if (argc == 3) ok = expect(n, 2, TypeId::kInt64) && ok;
        return ok;
      }
      case Func::kAbs:
      case Func::kFloor:
      case Func::kCeil:
        if (!expect_numeric(n, 0)) return false;
        n.type = n.args[0]->type;
        return true;
      case Func::kRound: {
        bool ok = expect_numeric(n, 0);
        if (argc == 2) ok = expect(n, 1, TypeId::kInt64) && ok;
        if (!ok) return false;
        n.type = n.args[0]->type;
        return true;
      }
      case Func::kRand:
        n.type = TypeId::kDouble;
        n.constant = false;
        n.rand_site = next_rand_site_++;
        return true;
    }
    return false;
  }

  const Schema& schema_;
  const Locator& loc_;
  Diagnostics& diags_;
  BindInfo& info_;
  uint32_t next_rand_site_ = 0;
  bool reported_ = false;  // coerce() already reported the current failure
};

void attach_literal_columns(Node& n) {
  if (n.kind == NodeKind::kLiteral) {
    n.type = n.literal.type();
    n.literal_column = Column::constant(n.literal, 1);
  }
  for (auto& c : n.args) attach_literal_columns(*c);
}

}  // namespace

bool bind(NodePtr& root, const Schema& schema, const Locator& locator, Diagnostics& diags,
          BindInfo& info) {
  Binder b(schema, locator, diags, info);
  if (!b.visit(root)) return false;
  attach_literal_columns(*root);
  return true;
}

}  // namespace df::expr::internal
