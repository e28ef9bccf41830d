// File: engine/chat_template/jinja_expr_parser.cc
// Expression parsing with Jinja's precedence: condexpr < or < and < not < compare < +,- < ~ <
// *,/,//,% < ** < unary -,+ < postfix ([], ., ()) and filters / tests.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_parser.h"

namespace lil::jinja {
namespace {

constexpr int kMaxExprDepth = 200;

}  // namespace

absl::StatusOr<ExprPtr> Parser::ParseTuple(bool with_condexpr,
                                           const std::vector<std::string>& end_names,
                                           bool explicit_parentheses) {
  const Token& start = Cur();
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  auto at_end = [&]() {
    const Token& t = Cur();
    if (t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEof) {
      return true;
    }
    if (t.type == TokenType::kOp && t.value == ")") return true;
    if (t.type == TokenType::kName) {
      for (const auto& n : end_names) {
        if (t.value == n) return true;
      }
    }
    return false;
  };
  while (true) {
    if (!items.empty()) LIL_RETURN_IF_ERROR(ExpectOp(","));
    if (at_end()) break;
    LIL_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(with_condexpr));
    items.push_back(std::move(item));
    if (IsOp(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) {
      ExprPtr only = std::move(items[0]);
      return only;
    }
    if (!explicit_parentheses) {
      return Fail(Cur(), absl::StrCat("expected an expression, got ", Describe(Cur())));
    }
  }
  ExprPtr tuple = MakeExpr(ExprType::kTuple, start);
  tuple->children = std::move(items);
  return tuple;
}

absl::StatusOr<ExprPtr> Parser::ParseExpression(bool with_condexpr) {
  if (++depth_ > kMaxExprDepth) {
    --depth_;
    return Fail(Cur(), "expression nested too deeply");
  }
  auto result = with_condexpr ? ParseCondExpr() : ParseOr();
  --depth_;
  return result;
}

absl::StatusOr<ExprPtr> Parser::ParseCondExpr() {
  LIL_ASSIGN_OR_RETURN(ExprPtr expr1, ParseOr());
  while (IsName("if")) {
    const Token& at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
    ExprPtr otherwise;
    if (IsName("else")) {
      Next();
      LIL_ASSIGN_OR_RETURN(otherwise, ParseExpression(true));
    }
    ExprPtr node = MakeExpr(ExprType::kCondExpr, at);
    node->children.push_back(std::move(expr1));
    node->children.push_back(std::move(cond));
    node->children.push_back(std::move(otherwise));
    expr1 = std::move(node);
  }
  return expr1;
}

namespace {
ExprPtr Binary(ExprPtr left, std::string op, ExprPtr right, int line, int column) {
  auto e = std::make_unique<Expr>();
  e->type = ExprType::kBinary;
  e->line = line;
  e->column = column;
  e->name = std::move(op);
  e->children.push_back(std::move(left));
  e->children.push_back(std::move(right));
  return e;
}
}  // namespace

absl::StatusOr<ExprPtr> Parser::ParseOr() {
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
  while (IsName("or")) {
    const Token& at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
    left = Binary(std::move(left), "or", std::move(right), at.line, at.column);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseAnd() {
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
  while (IsName("and")) {
    const Token& at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
    left = Binary(std::move(left), "and", std::move(right), at.line, at.column);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseNot() {
  if (IsName("not")) {
    const Token& at = Next();
    if (++depth_ > kMaxExprDepth) return Fail(at, "expression nested too deeply");
    auto operand = ParseNot();
    --depth_;
    if (!operand.ok()) return operand.status();
    ExprPtr node = MakeExpr(ExprType::kUnary, at);
    node->name = "not";
    node->children.push_back(*std::move(operand));
    return node;
  }
  return ParseCompare();
}

absl::StatusOr<ExprPtr> Parser::ParseCompare() {
  const Token first = Cur();
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParseMath1());
  ExprPtr chain;
  while (true) {
    const Token& at = Cur();
    std::string op;
    if (at.type == TokenType::kOp && (at.value == "==" || at.value == "!=" || at.value == "<" ||
                                      at.value == "<=" || at.value == ">" || at.value == ">=")) {
      op = at.value;
      Next();
    } else if (IsName("in")) {
      op = "in";
      Next();
    } else if (IsName("not") && Peek().type == TokenType::kName && Peek().value == "in") {
      op = "notin";
      Next();
      Next();
    } else {
      break;
    }
    if (!chain) {
      chain = MakeExpr(ExprType::kCompare, first);
      chain->children.push_back(std::move(left));
    }
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParseMath1());
    chain->ops.push_back(op);
    chain->children.push_back(std::move(right));
  }
  if (chain) return chain;
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseMath1() {
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
  while (IsOp("+") || IsOp("-")) {
    const Token at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
    left = Binary(std::move(left), at.value, std::move(right), at.line, at.column);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseConcat() {
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
  while (IsOp("~")) {
    const Token at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
    left = Binary(std::move(left), "~", std::move(right), at.line, at.column);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseMath2() {
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
  while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
    const Token at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
    left = Binary(std::move(left), at.value, std::move(right), at.line, at.column);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParsePow() {
  LIL_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
  while (IsOp("**")) {
    const Token at = Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
    left = Binary(std::move(left), "**", std::move(right), at.line, at.column);
  }
  return left;
}

absl::StatusOr<ExprPtr> Parser::ParseUnary(bool with_filter) {
  if (++depth_ > kMaxExprDepth) {
    --depth_;
    return Fail(Cur(), "expression nested too deeply");
  }
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    const Token at = Next();
    auto operand = ParseUnary(false);
    if (!operand.ok()) {
      --depth_;
      return operand.status();
    }
    node = MakeExpr(ExprType::kUnary, at);
    node->name = at.value;
    node->children.push_back(*std::move(operand));
  } else {
    auto primary = ParsePrimary();
    if (!primary.ok()) {
      --depth_;
      return primary.status();
    }
    node = *std::move(primary);
  }
  --depth_;
  LIL_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
  if (with_filter) return ParseFilterExpr(std::move(node));
  return node;
}

absl::StatusOr<ExprPtr> Parser::ParsePrimary() {
  const Token t = Cur();
  if (t.type == TokenType::kName) {
    Next();
    ExprPtr node = MakeExpr(ExprType::kLiteral, t);
    if (t.value == "true" || t.value == "True") {
      node->literal = Value::Bool(true);
    } else if (t.value == "false" || t.value == "False") {
      node->literal = Value::Bool(false);
    } else if (t.value == "none" || t.value == "None") {
      node->literal = Value::None();
    } else {
      node->type = ExprType::kName;
      node->name = t.value;
    }
    return node;
  }
  if (t.type == TokenType::kString) {
    std::string s;
    while (Cur().type == TokenType::kString) s += Next().value;  // adjacent literals join
    ExprPtr node = MakeExpr(ExprType::kLiteral, t);
    node->literal = Value::String(std::move(s));
    return node;
  }
  if (t.type == TokenType::kInt || t.type == TokenType::kFloat) {
    Next();
    ExprPtr node = MakeExpr(ExprType::kLiteral, t);
    node->literal = t.type == TokenType::kInt ? Value::Int(t.int_value) : Value::Float(t.float_value);
    return node;
  }
  if (IsOp("(")) {
    Next();
    LIL_ASSIGN_OR_RETURN(ExprPtr inner, ParseTuple(true, {}, true));
    LIL_RETURN_IF_ERROR(ExpectOp(")"));
    return inner;
  }
  if (IsOp("[") || IsOp("{")) {
    bool is_list = IsOp("[");
    Next();
    ExprPtr node = MakeExpr(is_list ? ExprType::kList : ExprType::kDict, t);
    const char* close = is_list ? "]" : "}";
    while (!IsOp(close)) {
      if (!node->children.empty()) LIL_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(close)) break;
      LIL_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
      node->children.push_back(std::move(item));
      if (!is_list) {
        LIL_RETURN_IF_ERROR(ExpectOp(":"));
        LIL_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
        node->children.push_back(std::move(value));
      }
    }
    Next();
    return node;
  }
  return Fail(t, absl::StrCat("unexpected ", Describe(t)));
}

absl::StatusOr<ExprPtr> Parser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".") || IsOp("[")) {
      LIL_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
    } else if (IsOp("(")) {
      ExprPtr call = MakeExpr(ExprType::kCall, Cur());
      call->line = node->line;  // errors point at the callee, not at '('
      call->column = node->column;
      call->children.push_back(std::move(node));
      LIL_RETURN_IF_ERROR(ParseCallArgs(call.get()));
      node = std::move(call);
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> Parser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (IsOp("|")) {
      LIL_ASSIGN_OR_RETURN(node, ParseFilter(std::move(node), false));
    } else if (IsName("is")) {
      LIL_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
    } else if (IsOp("(")) {
      ExprPtr call = MakeExpr(ExprType::kCall, Cur());
      call->line = node->line;  // errors point at the callee, not at '('
      call->column = node->column;
      call->children.push_back(std::move(node));
      LIL_RETURN_IF_ERROR(ParseCallArgs(call.get()));
      node = std::move(call);
    } else {
      return node;
    }
  }
}

absl::StatusOr<ExprPtr> Parser::ParseSubscript(ExprPtr node) {
  const Token at = Next();
  if (at.value == ".") {
    const Token& attr = Cur();
    if (attr.type == TokenType::kName) {
      Next();
      ExprPtr e = MakeExpr(ExprType::kGetAttr, at);
      e->name = attr.value;
      e->children.push_back(std::move(node));
      return e;
    }
    if (attr.type == TokenType::kInt) {
      Next();
      ExprPtr e = MakeExpr(ExprType::kGetItem, at);
      ExprPtr index = MakeExpr(ExprType::kLiteral, attr);
      index->literal = Value::Int(attr.int_value);
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(index));
      return e;
    }
    return Fail(attr, absl::StrCat("expected name or number after '.', got ", Describe(attr)));
  }
  std::vector<ExprPtr> args;
  while (!IsOp("]")) {
    if (!args.empty()) {
      LIL_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp("]")) break;
    }
    LIL_ASSIGN_OR_RETURN(ExprPtr arg, ParseSubscribed());
    args.push_back(std::move(arg));
  }
  LIL_RETURN_IF_ERROR(ExpectOp("]"));
  if (args.empty()) return Fail(at, "empty subscript");
  ExprPtr e = MakeExpr(ExprType::kGetItem, at);
  e->children.push_back(std::move(node));
  if (args.size() == 1) {
    e->children.push_back(std::move(args[0]));
  } else {
    ExprPtr tuple = MakeExpr(ExprType::kTuple, at);
    tuple->children = std::move(args);
    e->children.push_back(std::move(tuple));
  }
  return e;
}

absl::StatusOr<ExprPtr> Parser::ParseSubscribed() {
  const Token at = Cur();
  ExprPtr start, stop, step;
  if (!IsOp(":")) {
    LIL_ASSIGN_OR_RETURN(start, ParseExpression());
    if (!IsOp(":")) return start;
  }
  Next();  // first ':'
  if (!IsOp("]") && !IsOp(",") && !IsOp(":")) {
    LIL_ASSIGN_OR_RETURN(stop, ParseExpression());
  }
  if (IsOp(":")) {
    Next();
    if (!IsOp("]") && !IsOp(",")) {
      LIL_ASSIGN_OR_RETURN(step, ParseExpression());
    }
  }
  ExprPtr slice = MakeExpr(ExprType::kSlice, at);
  slice->children.push_back(std::move(start));
  slice->children.push_back(std::move(stop));
  slice->children.push_back(std::move(step));
  return slice;
}

absl::Status Parser::ParseCallArgs(Expr* call) {
  LIL_RETURN_IF_ERROR(ExpectOp("("));
  bool first = true;
  while (!IsOp(")")) {
    if (!first) {
      LIL_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
    }
    first = false;
    if (IsOp("*") || IsOp("**")) return Fail(Cur(), "*args and **kwargs in calls are not supported");
    if (Cur().type == TokenType::kName && Peek().type == TokenType::kOp && Peek().value == "=") {
      std::string key = Next().value;
      Next();
      LIL_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
      call->kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      if (!call->kwargs.empty()) return Fail(Cur(), "positional argument follows keyword argument");
      LIL_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
      call->children.push_back(std::move(value));
    }
  }
  Next();  // )
  return absl::OkStatus();
}

absl::StatusOr<ExprPtr> Parser::ParseFilter(ExprPtr node, bool start_inline) {
  while (IsOp("|") || start_inline) {
    if (!start_inline) Next();
    start_inline = false;
    const Token at = Cur();
    if (at.type != TokenType::kName) return Fail(at, "expected filter name");
    std::string name = Next().value;
    while (IsOp(".") && Peek().type == TokenType::kName) {
      Next();
      name += "." + Next().value;
    }
    if (!IsKnownFilter(name)) return Fail(at, absl::StrCat("no filter named '", name, "'"));
    ExprPtr f = MakeExpr(ExprType::kFilter, at);
    f->name = name;
    f->children.push_back(std::move(node));  // null for filter blocks: the body is the input
    if (IsOp("(")) LIL_RETURN_IF_ERROR(ParseCallArgs(f.get()));
    node = std::move(f);
  }
  return node;
}

absl::StatusOr<ExprPtr> Parser::ParseTest(ExprPtr node) {
  Next();  // is
  bool negated = false;
  if (IsName("not")) {
    Next();
    negated = true;
  }
  const Token at = Cur();
  if (at.type != TokenType::kName) return Fail(at, "expected test name after 'is'");
  std::string name = Next().value;
  while (IsOp(".") && Peek().type == TokenType::kName) {
    Next();
    name += "." + Next().value;
  }
  if (!IsKnownTest(name)) return Fail(at, absl::StrCat("no test named '", name, "'"));
  ExprPtr t = MakeExpr(ExprType::kTest, at);
  t->name = name;
  t->negated = negated;
  t->children.push_back(std::move(node));
  const Token& c = Cur();
  bool arg_start = c.type == TokenType::kName || c.type == TokenType::kString ||
                   c.type == TokenType::kInt || c.type == TokenType::kFloat ||
                   (c.type == TokenType::kOp && (c.value == "[" || c.value == "{"));
  if (IsOp("(")) {
    LIL_RETURN_IF_ERROR(ParseCallArgs(t.get()));
  } else if (arg_start && !IsName("else") && !IsName("or") && !IsName("and")) {
    if (IsName("is")) return Fail(Cur(), "you cannot chain multiple tests with 'is'");
    LIL_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
    LIL_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
    t->children.push_back(std::move(arg));
  }
  return t;
}

}  // namespace lil::jinja
