// Internal: lexer and recursive-descent parser for expression text.
//
// Stateless functions; safe to call from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/core/status.h"
#include "operators/expr/ast.h"

namespace df::expr::internal {

// Maps byte offsets in the expression text to file positions. Single-line
// text: line = origin.line, column = origin.column + offset. Multi-line text
// (e.g. a YAML block scalar): line = origin.line + k, column = offset in that
// line + 1. An unknown origin (line 0) counts lines and columns from 1.
class Locator {
 public:
  Locator(std::string_view text, SourceLocation origin);
  SourceLocation at(size_t offset) const;

 private:
  SourceLocation origin_;
  std::vector<size_t> line_starts_;  // byte offsets where each line begins
};

// Parses the whole text into an unbound tree. Syntax errors stop at the first
// one (what follows a syntax error is rarely meaningful) and are reported via
// `diags` with their location; the result is then null.
// Keywords that a bare field name cannot be (backquote such fields: `and`).
bool is_reserved_word(std::string_view word);

NodePtr parse(std::string_view text, const Locator& locator, Diagnostics& diags);

}  // namespace df::expr::internal
