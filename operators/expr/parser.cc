#include "operators/expr/parser.h"

#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace df::expr::internal {

Locator::Locator(std::string_view text, SourceLocation origin) : origin_(std::move(origin)) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') line_starts_.push_back(i + 1);
  }
}

SourceLocation Locator::at(size_t offset) const {
  SourceLocation loc;
  loc.file = origin_.file;
  size_t k = 0;
  while (k + 1 < line_starts_.size() && line_starts_[k + 1] <= offset) ++k;
  const int in_line = static_cast<int>(offset - line_starts_[k]);
  if (origin_.line <= 0) {
    loc.line = static_cast<int>(k) + 1;
    loc.column = in_line + 1;
  } else if (line_starts_.size() == 1) {
    loc.line = origin_.line;
    loc.column = (origin_.column > 0 ? origin_.column : 1) + in_line;
  } else {
    loc.line = origin_.line + static_cast<int>(k);
    loc.column = in_line + 1;
  }
  return loc;
}

namespace {

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kQuotedIdent,
  kInt,
  kFloat,
  kString,
  kLParen,
  kRParen,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kError,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifiers as written; string/quoted-identifier contents decoded
  size_t begin = 0;
  size_t end = 0;
};

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Splits the text into tokens; an invalid character or unterminated literal
// becomes one kError token whose text is the message.
std::vector<Token> lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  auto push = [&](Tok k, size_t b, size_t e, std::string t = {}) {
    out.push_back(Token{k, std::move(t), b, e});
  };
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    const size_t b = i;
    if (ident_start(c)) {
      while (i < s.size() && ident_char(s[i])) ++i;
      push(Tok::kIdent, b, i, std::string(s.substr(b, i - b)));
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      bool is_float = false;
      while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      if (i < s.size() && s[i] == '.') {
        is_float = true;
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
      }
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
        if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
          is_float = true;
          i = j;
          while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        }
      }
      if (i < s.size() && ident_char(s[i])) {
        while (i < s.size() && ident_char(s[i])) ++i;
        push(Tok::kError, b, i, "invalid number '" + std::string(s.substr(b, i - b)) + "'");
        return out;
      }
      push(is_float ? Tok::kFloat : Tok::kInt, b, i, std::string(s.substr(b, i - b)));
      continue;
    }
    if (c == '\'' || c == '`') {
      // SQL-style quoting: a doubled quote stands for one quote character.
      std::string text;
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == c) {
          if (i + 1 < s.size() && s[i + 1] == c) {
            text += c;
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        text += s[i++];
      }
      if (!closed) {
        push(Tok::kError, b, s.size(),
             c == '\'' ? "unterminated string literal" : "unterminated quoted field name");
        return out;
      }
      push(c == '\'' ? Tok::kString : Tok::kQuotedIdent, b, i, std::move(text));
      continue;
    }
    auto two = [&](char next) { return i + 1 < s.size() && s[i + 1] == next; };
    Tok k;
    size_t len = 1;
    switch (c) {
      case '(':
        k = Tok::kLParen;
        break;
      case ')':
        k = Tok::kRParen;
        break;
      case ',':
        k = Tok::kComma;
        break;
      case '+':
        k = Tok::kPlus;
        break;
      case '-':
        k = Tok::kMinus;
        break;
      case '*':
        k = Tok::kStar;
        break;
      case '/':
        k = Tok::kSlash;
        break;
      case '%':
        k = Tok::kPercent;
        break;
      case '=':
        k = Tok::kEq;
        if (two('=')) len = 2;
        break;
      case '!':
        if (!two('=')) {
          push(Tok::kError, b, b + 1, "unexpected character '!'");
          return out;
        }
        k = Tok::kNe;
        len = 2;
        break;
      case '<':
        if (two('=')) {
          k = Tok::kLe;
          len = 2;
        } else if (two('>')) {
          k = Tok::kNe;
          len = 2;
        } else {
          k = Tok::kLt;
        }
        break;
      case '>':
        if (two('=')) {
          k = Tok::kGe;
          len = 2;
        } else {
          k = Tok::kGt;
        }
        break;
      default:
        push(Tok::kError, b, b + 1, "unexpected character '" + std::string(1, c) + "'");
        return out;
    }
    i += len;
    push(k, b, i, std::string(s.substr(b, len)));
  }
  push(Tok::kEnd, s.size(), s.size());
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct ParseError {
  size_t offset;
  std::string message;
};

// How deep an expression may nest: parentheses, operators and calls alike.
// The parser, the binder and the evaluator all recurse over the tree, so
// this bounds their stack use (a hostile `((((...` or `a+a+a+...` is an error,
// not a stack overflow).
constexpr int kMaxDepth = 256;

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens)
      : text_(text), toks_(std::move(tokens)) {}

  NodePtr parse_all() {
    if (peek().kind == Tok::kEnd) return fail(peek(), "empty expression");
    NodePtr n = parse_or();
    if (!n) return nullptr;
    if (peek().kind != Tok::kEnd) return fail(peek(), "unexpected " + describe(peek()));
    return n;
  }

  const std::optional<ParseError>& error() const { return error_; }

 private:
  const Token& peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, toks_.size() - 1);
    return toks_[i];
  }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    prev_end_ = t.end;
    return t;
  }
  bool at_keyword(std::string_view kw, size_t ahead = 0) const {
    const Token& t = peek(ahead);
    return t.kind == Tok::kIdent && iequals(t.text, kw);
  }

  NodePtr fail(const Token& t, std::string message) {
    if (t.kind == Tok::kError) message = t.text;
    if (!error_) error_ = ParseError{t.begin, std::move(message)};
    return nullptr;
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd:
        return "end of expression";
      case Tok::kString:
        return "string '" + t.text + "'";
      case Tok::kQuotedIdent:
        return "`" + t.text + "`";
      default:
        return "'" + t.text + "'";
    }
  }

  NodePtr make(NodeKind kind, size_t pos, size_t begin) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->pos = static_cast<uint32_t>(pos);
    n->text = std::string(text_.substr(begin, prev_end_ - begin));
    return n;
  }
  void finish(Node& n, size_t begin) {
    n.text = std::string(text_.substr(begin, prev_end_ - begin));
  }

  NodePtr binary(Op op, size_t pos, size_t begin, NodePtr l, NodePtr r) {
    auto n = make(NodeKind::kBinary, pos, begin);
    n->op = op;
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return checked(std::move(n));
  }

  // Counts the parser's nesting while a parse_* call that can recurse runs.
  class Nesting {
   public:
    explicit Nesting(Parser& p) : p_(p) { ++p_.nesting_; }
    ~Nesting() { --p_.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    bool too_deep() const { return p_.nesting_ > kMaxDepth; }

   private:
    Parser& p_;
  };

  NodePtr too_deep_error() {
    return fail(peek(),
                "the expression nests deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  // Records n's height (its children's are known) and refuses a tree taller
  // than kMaxDepth, however it was built (a long operator chain is as tall
  // as deep parentheses).
  NodePtr checked(NodePtr n) {
    if (!n) return n;
    int height = 1;
    for (const NodePtr& arg : n->args) {
      if (!arg) continue;
      auto it = heights_.find(arg.get());
      height = std::max(height, (it == heights_.end() ? 1 : it->second) + 1);
    }
    if (height > kMaxDepth) {
      if (!error_) {
        error_ = ParseError{
            n->pos, "the expression nests deeper than " + std::to_string(kMaxDepth) + " levels"};
      }
      return nullptr;
    }
    heights_[n.get()] = height;
    return n;
  }

  NodePtr parse_or() {
    Nesting nesting(*this);
    if (nesting.too_deep()) return too_deep_error();
    const size_t begin = peek().begin;
    NodePtr l = parse_and();
    while (l && at_keyword("or")) {
      const size_t pos = next().begin;
      NodePtr r = parse_and();
      if (!r) return nullptr;
      l = binary(Op::kOr, pos, begin, std::move(l), std::move(r));
    }
    return l;
  }

  NodePtr parse_and() {
    const size_t begin = peek().begin;
    NodePtr l = parse_not();
    while (l && at_keyword("and")) {
      const size_t pos = next().begin;
      NodePtr r = parse_not();
      if (!r) return nullptr;
      l = binary(Op::kAnd, pos, begin, std::move(l), std::move(r));
    }
    return l;
  }

  // SQL precedence: `not a = b` is `not (a = b)`.
  NodePtr parse_not() {
    if (at_keyword("not")) {
      Nesting nesting(*this);
      if (nesting.too_deep()) return too_deep_error();
      const size_t begin = next().begin;
      NodePtr operand = parse_not();
      if (!operand) return nullptr;
      auto n = make(NodeKind::kUnary, begin, begin);
      n->op = Op::kNot;
      n->args.push_back(std::move(operand));
      return checked(std::move(n));
    }
    return parse_predicate();
  }

  std::optional<Op> comparison_op(Tok t) const {
    switch (t) {
      case Tok::kEq:
        return Op::kEq;
      case Tok::kNe:
        return Op::kNe;
      case Tok::kLt:
        return Op::kLt;
      case Tok::kLe:
        return Op::kLe;
      case Tok::kGt:
        return Op::kGt;
      case Tok::kGe:
        return Op::kGe;
      default:
        return std::nullopt;
    }
  }

  NodePtr parse_predicate() {
    const size_t begin = peek().begin;
    NodePtr l = parse_additive();
    while (l) {
      if (auto op = comparison_op(peek().kind)) {
        const size_t pos = next().begin;
        NodePtr r = parse_additive();
        if (!r) return nullptr;
        l = binary(*op, pos, begin, std::move(l), std::move(r));
        continue;
      }
      if (at_keyword("is")) {
        const size_t pos = next().begin;
        bool negated = false;
        if (at_keyword("not")) {
          next();
          negated = true;
        }
        if (!at_keyword("null")) return fail(peek(), "expected 'null' after 'is'");
        next();
        auto n = make(NodeKind::kIsNull, pos, begin);
        n->negated = negated;
        n->args.push_back(std::move(l));
        l = checked(std::move(n));
        continue;
      }
      bool negated = false;
      size_t ahead = 0;
      if (at_keyword("not") &&
          (at_keyword("in", 1) || at_keyword("between", 1) || at_keyword("like", 1))) {
        negated = true;
        ahead = 1;
      }
      if (at_keyword("in", ahead)) {
        const size_t pos = peek().begin;
        if (negated) next();
        next();
        if (peek().kind != Tok::kLParen) return fail(peek(), "expected '(' after 'in'");
        next();
        auto n = std::make_unique<Node>();
        n->args.push_back(std::move(l));
        if (!parse_list(n->args, "'in' list")) return nullptr;
        if (n->args.size() == 1) return fail(toks_[pos_ - 1], "'in' list is empty");
        n->kind = NodeKind::kIn;
        n->pos = static_cast<uint32_t>(pos);
        n->negated = negated;
        finish(*n, begin);
        l = checked(std::move(n));
        continue;
      }
      if (at_keyword("between", ahead)) {
        const size_t pos = peek().begin;
        if (negated) next();
        next();
        NodePtr lo = parse_additive();
        if (!lo) return nullptr;
        if (!at_keyword("and")) return fail(peek(), "expected 'and' in 'between'");
        next();
        NodePtr hi = parse_additive();
        if (!hi) return nullptr;
        auto n = make(NodeKind::kBetween, pos, begin);
        n->negated = negated;
        n->args.push_back(std::move(l));
        n->args.push_back(std::move(lo));
        n->args.push_back(std::move(hi));
        l = checked(std::move(n));
        continue;
      }
      if (at_keyword("like", ahead)) {
        const size_t pos = peek().begin;
        if (negated) next();
        next();
        NodePtr pattern = parse_additive();
        if (!pattern) return nullptr;
        auto n = make(NodeKind::kLike, pos, begin);
        n->negated = negated;
        n->args.push_back(std::move(l));
        n->args.push_back(std::move(pattern));
        l = checked(std::move(n));
        continue;
      }
      break;
    }
    return l;
  }

  // Parses "a, b, c)" after an opening parenthesis; `what` names the list in errors.
  bool parse_list(std::vector<NodePtr>& out, const std::string& what) {
    if (peek().kind == Tok::kRParen) {
      next();
      return true;
    }
    while (true) {
      NodePtr e = parse_or();
      if (!e) return false;
      out.push_back(std::move(e));
      if (peek().kind == Tok::kComma) {
        next();
        continue;
      }
      if (peek().kind == Tok::kRParen) {
        next();
        return true;
      }
      fail(peek(), "expected ',' or ')' in " + what + ", got " + describe(peek()));
      return false;
    }
  }

  NodePtr parse_additive() {
    const size_t begin = peek().begin;
    NodePtr l = parse_multiplicative();
    while (l && (peek().kind == Tok::kPlus || peek().kind == Tok::kMinus)) {
      const Op op = peek().kind == Tok::kPlus ? Op::kAdd : Op::kSub;
      const size_t pos = next().begin;
      NodePtr r = parse_multiplicative();
      if (!r) return nullptr;
      l = binary(op, pos, begin, std::move(l), std::move(r));
    }
    return l;
  }

  NodePtr parse_multiplicative() {
    const size_t begin = peek().begin;
    NodePtr l = parse_unary();
    while (l && (peek().kind == Tok::kStar || peek().kind == Tok::kSlash ||
                 peek().kind == Tok::kPercent)) {
      const Op op = peek().kind == Tok::kStar    ? Op::kMul
                    : peek().kind == Tok::kSlash ? Op::kDiv
                                                 : Op::kMod;
      const size_t pos = next().begin;
      NodePtr r = parse_unary();
      if (!r) return nullptr;
      l = binary(op, pos, begin, std::move(l), std::move(r));
    }
    return l;
  }

  NodePtr parse_unary() {
    if (peek().kind == Tok::kMinus || peek().kind == Tok::kPlus) {
      Nesting nesting(*this);
      if (nesting.too_deep()) return too_deep_error();
      const bool minus = peek().kind == Tok::kMinus;
      const size_t begin = next().begin;
      // Fold a sign into a numeric literal so that -9223372036854775808 is
      // representable and to_string() prints -2 rather than (-2).
      if (peek().kind == Tok::kInt || peek().kind == Tok::kFloat) {
        return number(next(), begin, minus);
      }
      NodePtr operand = parse_unary();
      if (!operand) return nullptr;
      if (!minus) return operand;
      auto n = make(NodeKind::kUnary, begin, begin);
      n->op = Op::kNeg;
      n->args.push_back(std::move(operand));
      return checked(std::move(n));
    }
    return parse_primary();
  }

  NodePtr number(const Token& t, size_t begin, bool negative) {
    auto n = make(NodeKind::kLiteral, begin, begin);
    if (t.kind == Tok::kInt) {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
      const uint64_t limit =
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0);
      if (ec != std::errc() || p != t.text.data() + t.text.size() || v > limit) {
        return fail(t, "integer literal " + std::string(negative ? "-" : "") + t.text +
                           " is out of the int64 range");
      }
      n->literal = Value::int64(negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v));
    } else {
      double v = 0;
      auto [p, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), v);
      if (ec != std::errc() || p != t.text.data() + t.text.size()) {
        return fail(t, "invalid number '" + t.text + "'");
      }
      n->literal = Value::float64(negative ? -v : v);
    }
    return n;
  }

  NodePtr parse_primary() {
    const Token& t = peek();
    const size_t begin = t.begin;
    switch (t.kind) {
      case Tok::kInt:
      case Tok::kFloat:
        return number(next(), begin, false);
      case Tok::kString: {
        std::string s = next().text;
        auto n = make(NodeKind::kLiteral, begin, begin);
        n->literal = Value::string(std::move(s));
        return n;
      }
      case Tok::kQuotedIdent: {
        std::string name = next().text;
        auto n = make(NodeKind::kField, begin, begin);
        n->name = std::move(name);
        return n;
      }
      case Tok::kLParen: {
        next();
        NodePtr inner = parse_or();
        if (!inner) return nullptr;
        if (peek().kind != Tok::kRParen) {
          return fail(peek(), "expected ')', got " + describe(peek()));
        }
        next();
        return inner;
      }
      case Tok::kIdent:
        break;
      default:
        return fail(t, "unexpected " + describe(t));
    }
    if (iequals(t.text, "true") || iequals(t.text, "false")) {
      const bool v = iequals(t.text, "true");
      next();
      auto n = make(NodeKind::kLiteral, begin, begin);
      n->literal = Value::boolean(v);
      return n;
    }
    if (iequals(t.text, "null")) {
      next();
      auto n = make(NodeKind::kLiteral, begin, begin);
      n->literal = Value::null(TypeId::kInt64);
      n->null_literal = true;
      return n;
    }
    if (peek(1).kind == Tok::kLParen) {
      if (iequals(t.text, "cast")) return parse_cast();
      std::string name = lower(next().text);
      next();  // '('
      auto n = std::make_unique<Node>();
      n->kind = NodeKind::kCall;
      n->pos = static_cast<uint32_t>(begin);
      n->name = std::move(name);
      if (!parse_list(n->args, "arguments of '" + n->name + "'")) return nullptr;
      finish(*n, begin);
      return checked(std::move(n));
    }
    if (is_reserved_word(t.text)) {
      return fail(t, "unexpected keyword '" + t.text + "' (quote a field with this name as `" +
                         t.text + "`)");
    }
    std::string name = next().text;
    auto n = make(NodeKind::kField, begin, begin);
    n->name = std::move(name);
    return n;
  }

  // cast(expr as type)
  NodePtr parse_cast() {
    const size_t begin = next().begin;
    next();  // '('
    NodePtr operand = parse_or();
    if (!operand) return nullptr;
    if (!at_keyword("as")) return fail(peek(), "expected 'as' in cast, got " + describe(peek()));
    next();
    const Token& type_tok = peek();
    if (type_tok.kind != Tok::kIdent) {
      return fail(type_tok, "expected a type name after 'as', got " + describe(type_tok));
    }
    auto type = parse_type_name(type_tok.text);
    if (!type) {
      return fail(type_tok, "unknown type '" + type_tok.text +
                                "' (types: bool, int64, double, string, timestamp)");
    }
    next();
    if (peek().kind != Tok::kRParen) return fail(peek(), "expected ')' after the cast type");
    next();
    auto n = make(NodeKind::kCast, begin, begin);
    n->cast_to = *type;
    n->args.push_back(std::move(operand));
    return checked(std::move(n));
  }

  std::string_view text_;
  std::vector<Token> toks_;
  int nesting_ = 0;                               // see Nesting
  std::unordered_map<const Node*, int> heights_;  // see checked()
  size_t pos_ = 0;
  size_t prev_end_ = 0;
  std::optional<ParseError> error_;
};

}  // namespace

// Words that cannot be used as bare field names (backquote them instead).
bool is_reserved_word(std::string_view w) {
  static constexpr std::string_view kWords[] = {"and",  "or",      "not",  "is",    "null", "in",
                                                "like", "between", "true", "false", "as"};
  for (auto k : kWords) {
    if (iequals(w, k)) return true;
  }
  return false;
}

NodePtr parse(std::string_view text, const Locator& locator, Diagnostics& diags) {
  std::vector<Token> tokens = lex(text);
  if (tokens.back().kind == Tok::kError) {
    diags.error(locator.at(tokens.back().begin), tokens.back().text);
    return nullptr;
  }
  Parser p(text, std::move(tokens));
  NodePtr root = p.parse_all();
  if (!root) {
    const ParseError& e = *p.error();
    diags.error(locator.at(e.offset), e.message);
    return nullptr;
  }
  return root;
}

}  // namespace df::expr::internal
