#include "operators/expr/ast.h"

#include <cctype>

#include "engine/core/time.h"
#include "operators/expr/parser.h"
#include "operators/expr/scalar.h"

namespace df::expr::internal {

const char* op_symbol(Op op) {
  switch (op) {
    case Op::kAdd:
      return "+";
    case Op::kSub:
      return "-";
    case Op::kMul:
      return "*";
    case Op::kDiv:
      return "/";
    case Op::kMod:
      return "%";
    case Op::kNeg:
      return "-";
    case Op::kEq:
      return "=";
    case Op::kNe:
      return "!=";
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kAnd:
      return "and";
    case Op::kOr:
      return "or";
    case Op::kNot:
      return "not";
  }
  return "?";
}

namespace {

void quote(std::string_view s, char q, std::string& out) {
  out += q;
  for (char c : s) {
    out += c;
    if (c == q) out += q;
  }
  out += q;
}

void append_literal(const Value& v, std::string& out) {
  if (v.is_null()) {
    out += "null";
    return;
  }
  switch (v.type()) {
    case TypeId::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case TypeId::kInt64:
      out += std::to_string(v.as_int64());
      return;
    case TypeId::kDouble: {
      const size_t start = out.size();
      append_double(v.as_double(), out);
      // Keep it a double when read back: 4.0 prints "4.0", not "4".
      if (out.find_first_of(".eEn", start) == std::string::npos) out += ".0";
      return;
    }
    case TypeId::kString:
      quote(v.as_string(), '\'', out);
      return;
    case TypeId::kTimestamp:
      quote(format_timestamp(v.as_int64()), '\'', out);
      return;
  }
}

bool plain_identifier(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return !is_reserved_word(s);
}

void append(const Node& n, std::string& out) {
  auto list = [&](size_t from) {
    for (size_t i = from; i < n.args.size(); ++i) {
      if (i > from) out += ", ";
      append(*n.args[i], out);
    }
  };
  switch (n.kind) {
    case NodeKind::kLiteral:
      append_literal(n.literal, out);
      return;
    case NodeKind::kField:
      if (plain_identifier(n.name)) {
        out += n.name;
      } else {
        quote(n.name, '`', out);
      }
      return;
    case NodeKind::kUnary:
      out += n.op == Op::kNot ? "(not " : "(-";
      append(*n.args[0], out);
      out += ')';
      return;
    case NodeKind::kBinary:
      out += '(';
      append(*n.args[0], out);
      out += ' ';
      out += op_symbol(n.op);
      out += ' ';
      append(*n.args[1], out);
      out += ')';
      return;
    case NodeKind::kIsNull:
      out += '(';
      append(*n.args[0], out);
      out += n.negated ? " is not null)" : " is null)";
      return;
    case NodeKind::kIn:
      out += '(';
      append(*n.args[0], out);
      out += n.negated ? " not in (" : " in (";
      list(1);
      out += "))";
      return;
    case NodeKind::kBetween:
      out += '(';
      append(*n.args[0], out);
      out += n.negated ? " not between " : " between ";
      append(*n.args[1], out);
      out += " and ";
      append(*n.args[2], out);
      out += ')';
      return;
    case NodeKind::kLike:
      out += '(';
      append(*n.args[0], out);
      out += n.negated ? " not like " : " like ";
      append(*n.args[1], out);
      out += ')';
      return;
    case NodeKind::kCall:
      out += n.name;
      out += '(';
      list(0);
      out += ')';
      return;
    case NodeKind::kCast:
      if (n.implicit) {
        append(*n.args[0], out);
        return;
      }
      out += "cast(";
      append(*n.args[0], out);
      out += " as ";
      out += type_name(n.cast_to);
      out += ')';
      return;
  }
}

}  // namespace

std::string to_string(const Node& node) {
  std::string out;
  append(node, out);
  return out;
}

}  // namespace df::expr::internal
