// File: engine/chat_template/jinja_parser.cc
// Statement parsing: text, {{ }}, and the {% %} tags chat templates use (for, if, set, macro,
// filter, break/continue, generation, raw via the lexer).
#include "engine/chat_template/jinja_parser.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace lil::jinja {
namespace {

constexpr int kMaxNesting = 200;

class DepthGuard {
 public:
  explicit DepthGuard(int* depth) : depth_(depth) { ++*depth_; }
  ~DepthGuard() { --*depth_; }
  bool exceeded() const { return *depth_ > kMaxNesting; }

 private:
  int* depth_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source) {
  LIL_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  Parser parser(std::move(tokens));
  return parser.Run();
}

absl::StatusOr<std::unique_ptr<Template>> Parser::Run() {
  auto tmpl = std::make_unique<Template>();
  std::string found;
  LIL_ASSIGN_OR_RETURN(tmpl->body, ParseBody({}, OpenBlock{"", 1, 1}, &found));
  return tmpl;
}

absl::Status Parser::Fail(const Token& at, std::string_view msg) const {
  return absl::InvalidArgumentError(absl::StrCat(Where(at.line, at.column), std::string(msg)));
}

std::string Parser::Describe(const Token& t) {
  switch (t.type) {
    case TokenType::kEof:
      return "end of template";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kVarEnd:
      return "end of print statement";
    case TokenType::kBlockBegin:
      return "begin of statement block";
    case TokenType::kVarBegin:
      return "begin of print statement";
    case TokenType::kText:
      return "template data";
    case TokenType::kString:
      return "string literal";
    default:
      return absl::StrCat("'", t.value, "'");
  }
}

absl::Status Parser::ExpectOp(std::string_view op) {
  if (!IsOp(op)) return Fail(Cur(), absl::StrCat("expected '", std::string(op), "', got ", Describe(Cur())));
  Next();
  return absl::OkStatus();
}

absl::Status Parser::ExpectBlockEnd() {
  if (Cur().type != TokenType::kBlockEnd) {
    return Fail(Cur(), absl::StrCat("expected end of statement block, got ", Describe(Cur())));
  }
  Next();
  return absl::OkStatus();
}

absl::StatusOr<NodeList> Parser::ParseBody(const std::vector<std::string>& end_tags,
                                           const OpenBlock& opener, std::string* found) {
  DepthGuard guard(&depth_);
  if (guard.exceeded()) return Fail(Cur(), "blocks nested too deeply");
  NodeList body;
  while (true) {
    const Token& t = Cur();
    switch (t.type) {
      case TokenType::kText: {
        auto node = std::make_unique<Node>();
        node->type = NodeType::kText;
        node->line = t.line;
        node->column = t.column;
        node->text = t.value;
        body.push_back(std::move(node));
        Next();
        break;
      }
      case TokenType::kVarBegin: {
        Next();
        auto node = std::make_unique<Node>();
        node->type = NodeType::kOutput;
        node->line = t.line;
        node->column = t.column;
        LIL_ASSIGN_OR_RETURN(node->expr, ParseTuple(true, {}, false));
        if (Cur().type != TokenType::kVarEnd) {
          return Fail(Cur(), absl::StrCat("expected end of print statement '}}', got ", Describe(Cur())));
        }
        Next();
        body.push_back(std::move(node));
        break;
      }
      case TokenType::kBlockBegin: {
        const Token& name = Peek();
        if (name.type == TokenType::kName &&
            std::find(end_tags.begin(), end_tags.end(), name.value) != end_tags.end()) {
          Next();
          *found = Next().value;
          return body;
        }
        LIL_ASSIGN_OR_RETURN(NodePtr node, ParseStatement());
        if (node) body.push_back(std::move(node));
        break;
      }
      case TokenType::kEof:
        if (!end_tags.empty()) {
          return Fail(t, absl::StrCat("unexpected end of template: '", opener.tag,
                                      "' block opened at line ", opener.line, ", column ",
                                      opener.column, " is never closed (expected '",
                                      absl::StrJoin(end_tags, "' or '"), "')"));
        }
        return body;
      default:
        return Fail(t, absl::StrCat("unexpected ", Describe(t)));
    }
  }
}

absl::StatusOr<NodePtr> Parser::ParseStatement() {
  const Token start = Next();  // {%
  const Token& tag = Cur();
  if (tag.type != TokenType::kName) return Fail(tag, "tag name expected");
  const std::string name = tag.value;
  Next();
  if (name == "for") return ParseFor(start);
  if (name == "if") return ParseIf(start);
  if (name == "set") return ParseSet(start);
  if (name == "macro") return ParseMacro(start);
  if (name == "filter") return ParseBlockOfBody(start, NodeType::kFilterBlock, "endfilter");
  if (name == "generation") return ParseBlockOfBody(start, NodeType::kScope, "endgeneration");
  if (name == "break" || name == "continue") {
    if (loop_depth_ == 0) return Fail(tag, absl::StrCat("'", std::string(name), "' outside of a for loop"));
    LIL_RETURN_IF_ERROR(ExpectBlockEnd());
    auto node = std::make_unique<Node>();
    node->type = name == "break" ? NodeType::kBreak : NodeType::kContinue;
    node->line = start.line;
    node->column = start.column;
    return node;
  }
  static const char* kUnsupported[] = {"include", "extends", "import", "from", "block",
                                       "call", "with", "do", "autoescape", "trans"};
  for (const char* u : kUnsupported) {
    if (name == u) return absl::UnimplementedError(absl::StrCat(Where(tag.line, tag.column), "the '", std::string(name), "' tag is not supported in chat templates"));
  }
  return Fail(tag, absl::StrCat("encountered unknown tag '", std::string(name), "'"));
}

absl::StatusOr<NodePtr> Parser::ParseFor(const Token& start) {
  auto node = std::make_unique<Node>();
  node->type = NodeType::kFor;
  node->line = start.line;
  node->column = start.column;
  LIL_ASSIGN_OR_RETURN(node->target, ParseAssignTarget(false));
  if (!IsName("in")) return Fail(Cur(), absl::StrCat("expected 'in', got ", Describe(Cur())));
  Next();
  LIL_ASSIGN_OR_RETURN(node->expr, ParseTuple(false, {"recursive"}, false));
  if (IsName("if")) {
    Next();
    LIL_ASSIGN_OR_RETURN(node->filter, ParseExpression());
  }
  if (IsName("recursive")) {
    return absl::UnimplementedError(absl::StrCat(Where(Cur().line, Cur().column), "recursive for loops are not supported"));
  }
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  OpenBlock opener{"for", start.line, start.column};
  std::string found;
  ++loop_depth_;
  auto body = ParseBody({"endfor", "else"}, opener, &found);
  --loop_depth_;
  if (!body.ok()) return body.status();
  node->body = *std::move(body);
  if (found == "else") {
    LIL_RETURN_IF_ERROR(ExpectBlockEnd());
    LIL_ASSIGN_OR_RETURN(node->else_body, ParseBody({"endfor"}, opener, &found));
  }
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  return node;
}

absl::StatusOr<NodePtr> Parser::ParseIf(const Token& start) {
  auto node = std::make_unique<Node>();
  node->type = NodeType::kIf;
  node->line = start.line;
  node->column = start.column;
  OpenBlock opener{"if", start.line, start.column};
  while (true) {
    LIL_ASSIGN_OR_RETURN(ExprPtr cond, ParseTuple(false, {}, false));
    LIL_RETURN_IF_ERROR(ExpectBlockEnd());
    std::string found;
    LIL_ASSIGN_OR_RETURN(NodeList body, ParseBody({"elif", "else", "endif"}, opener, &found));
    node->branches.emplace_back(std::move(cond), std::move(body));
    if (found == "elif") continue;
    if (found == "else") {
      LIL_RETURN_IF_ERROR(ExpectBlockEnd());
      LIL_ASSIGN_OR_RETURN(node->else_body, ParseBody({"endif"}, opener, &found));
    }
    LIL_RETURN_IF_ERROR(ExpectBlockEnd());
    return node;
  }
}

absl::StatusOr<NodePtr> Parser::ParseSet(const Token& start) {
  auto node = std::make_unique<Node>();
  node->line = start.line;
  node->column = start.column;
  LIL_ASSIGN_OR_RETURN(node->target, ParseAssignTarget(true));
  if (IsOp("=")) {
    Next();
    node->type = NodeType::kSet;
    LIL_ASSIGN_OR_RETURN(node->expr, ParseTuple(true, {}, false));
    LIL_RETURN_IF_ERROR(ExpectBlockEnd());
    return node;
  }
  if (node->target->type == ExprType::kTuple) return Fail(Cur(), "expected '='");
  node->type = NodeType::kSetBlock;
  if (IsOp("|")) {
    LIL_ASSIGN_OR_RETURN(node->expr, ParseFilter(nullptr, false));
  }
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  std::string found;
  LIL_ASSIGN_OR_RETURN(node->body, ParseBody({"endset"}, OpenBlock{"set", start.line, start.column}, &found));
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  return node;
}

absl::StatusOr<NodePtr> Parser::ParseMacro(const Token& start) {
  auto node = std::make_unique<Node>();
  node->type = NodeType::kMacro;
  node->line = start.line;
  node->column = start.column;
  if (Cur().type != TokenType::kName) return Fail(Cur(), "expected macro name");
  node->text = Next().value;
  LIL_RETURN_IF_ERROR(ExpectOp("("));
  while (!IsOp(")")) {
    if (!node->params.empty()) LIL_RETURN_IF_ERROR(ExpectOp(","));
    if (IsOp(")")) break;
    if (Cur().type != TokenType::kName) return Fail(Cur(), "expected parameter name");
    MacroParam param;
    param.name = Next().value;
    if (IsOp("=")) {
      Next();
      LIL_ASSIGN_OR_RETURN(param.default_value, ParseExpression());
    } else if (!node->params.empty() && node->params.back().default_value) {
      return Fail(Cur(), "non-default argument follows default argument");
    }
    node->params.push_back(std::move(param));
  }
  Next();  // )
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  std::string found;
  int saved_loops = loop_depth_;
  loop_depth_ = 0;  // a loop outside the macro is not breakable from inside it
  auto body = ParseBody({"endmacro"}, OpenBlock{"macro", start.line, start.column}, &found);
  loop_depth_ = saved_loops;
  if (!body.ok()) return body.status();
  node->body = *std::move(body);
  if (Cur().type == TokenType::kName) Next();  // {% endmacro name %}
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  return node;
}

absl::StatusOr<NodePtr> Parser::ParseBlockOfBody(const Token& start, NodeType type,
                                                 const std::string& end_tag) {
  auto node = std::make_unique<Node>();
  node->type = type;
  node->line = start.line;
  node->column = start.column;
  if (type == NodeType::kFilterBlock) {
    LIL_ASSIGN_OR_RETURN(node->expr, ParseFilter(nullptr, true));
  }
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  std::string found;
  std::string tag = type == NodeType::kFilterBlock ? "filter" : "generation";
  LIL_ASSIGN_OR_RETURN(node->body, ParseBody({end_tag}, OpenBlock{tag, start.line, start.column}, &found));
  LIL_RETURN_IF_ERROR(ExpectBlockEnd());
  return node;
}

absl::StatusOr<ExprPtr> Parser::ParseAssignTarget(bool with_namespace) {
  // name | name.attr (namespace) | name, name, ... | (name, ...)
  auto parse_one = [&]() -> absl::StatusOr<ExprPtr> {
    if (Cur().type != TokenType::kName) {
      return Fail(Cur(), absl::StrCat("can't assign to ", Describe(Cur())));
    }
    const Token& t = Next();
    ExprPtr name = MakeExpr(ExprType::kName, t);
    name->name = t.value;
    if (with_namespace && IsOp(".") && Peek().type == TokenType::kName) {
      Next();
      ExprPtr attr = MakeExpr(ExprType::kGetAttr, t);
      attr->name = Next().value;
      attr->children.push_back(std::move(name));
      return attr;
    }
    return name;
  };
  bool paren = IsOp("(");
  if (paren) Next();
  const Token& first = Cur();
  LIL_ASSIGN_OR_RETURN(ExprPtr target, parse_one());
  if (!IsOp(",") && !paren) return target;
  ExprPtr tuple = MakeExpr(ExprType::kTuple, first);
  tuple->children.push_back(std::move(target));
  while (IsOp(",")) {
    Next();
    if (Cur().type != TokenType::kName) break;
    LIL_ASSIGN_OR_RETURN(ExprPtr item, parse_one());
    tuple->children.push_back(std::move(item));
  }
  if (paren) LIL_RETURN_IF_ERROR(ExpectOp(")"));
  for (const auto& c : tuple->children) {
    if (c->type != ExprType::kName) return Fail(first, "can't assign to a namespace attribute inside a tuple");
  }
  return tuple;
}

ExprPtr Parser::MakeExpr(ExprType type, const Token& at) const {
  auto e = std::make_unique<Expr>();
  e->type = type;
  e->line = at.line;
  e->column = at.column;
  return e;
}

}  // namespace lil::jinja
