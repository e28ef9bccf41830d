// File: engine/chat_template/jinja_parser.h
// Tokens -> AST, following jinja2/parser.py's grammar and precedence. Statements live in
// jinja_parser.cc, expressions in jinja_expr_parser.cc.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chat_template/jinja_ast.h"
#include "engine/chat_template/jinja_lexer.h"

namespace lil::jinja {

// Parses a whole template; errors read "line L, column C: ...".
absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source);

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}
  absl::StatusOr<std::unique_ptr<Template>> Run();

 private:
  struct OpenBlock {
    std::string tag;
    int line, column;
  };
  // Statements.
  absl::StatusOr<NodeList> ParseBody(const std::vector<std::string>& end_tags,
                                     const OpenBlock& opener, std::string* found);
  absl::StatusOr<NodePtr> ParseStatement();
  absl::StatusOr<NodePtr> ParseFor(const Token& start);
  absl::StatusOr<NodePtr> ParseIf(const Token& start);
  absl::StatusOr<NodePtr> ParseSet(const Token& start);
  absl::StatusOr<NodePtr> ParseMacro(const Token& start);
  absl::StatusOr<NodePtr> ParseBlockOfBody(const Token& start, NodeType type,
                                           const std::string& end_tag);
  absl::StatusOr<ExprPtr> ParseAssignTarget(bool with_namespace);
  absl::Status ExpectBlockEnd();

  // Expressions (jinja_expr_parser.cc).
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr, const std::vector<std::string>& end_names,
                                     bool explicit_parentheses);
  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr = true);
  absl::StatusOr<ExprPtr> ParseCondExpr();
  absl::StatusOr<ExprPtr> ParseOr();
  absl::StatusOr<ExprPtr> ParseAnd();
  absl::StatusOr<ExprPtr> ParseNot();
  absl::StatusOr<ExprPtr> ParseCompare();
  absl::StatusOr<ExprPtr> ParseMath1();
  absl::StatusOr<ExprPtr> ParseConcat();
  absl::StatusOr<ExprPtr> ParseMath2();
  absl::StatusOr<ExprPtr> ParsePow();
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter);
  absl::StatusOr<ExprPtr> ParsePrimary();
  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseSubscribed();
  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr node, bool start_inline);
  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node);
  absl::Status ParseCallArgs(Expr* call);

  // Token helpers.
  const Token& Cur() const { return toks_[i_]; }
  const Token& Peek(size_t n = 1) const {
    return toks_[std::min(i_ + n, toks_.size() - 1)];
  }
  const Token& Next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool IsOp(std::string_view op) const { return Cur().type == TokenType::kOp && Cur().value == op; }
  bool IsName(std::string_view name) const {
    return Cur().type == TokenType::kName && Cur().value == name;
  }
  absl::Status Fail(const Token& at, std::string_view msg) const;
  absl::Status ExpectOp(std::string_view op);
  static std::string Describe(const Token& t);
  ExprPtr MakeExpr(ExprType type, const Token& at) const;

  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;       // expression / statement nesting, bounded so input cannot blow the stack
  int loop_depth_ = 0;  // for break / continue
  int macro_depth_ = 0;
};

}  // namespace lil::jinja
