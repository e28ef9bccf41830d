// File: engine/chat_template/jinja_ast.h
// The parsed template: expression and statement nodes, each with its source line and column.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/chat_template/jinja_value.h"

namespace lil::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprType {
  kLiteral,   // literal
  kName,      // name
  kList,      // children
  kTuple,     // children
  kDict,      // children: key0, value0, key1, value1, ...
  kGetAttr,   // children[0].name
  kGetItem,   // children[0][children[1]]
  kSlice,     // children[0][children[1]:children[2]:children[3]] (null parts omitted)
  kCall,      // children[0](children[1..], kwargs)
  kFilter,    // children[0] | name(children[1..], kwargs)
  kTest,      // children[0] is [not] name(children[1..])
  kUnary,     // op children[0]: "not", "-", "+"
  kBinary,    // children[0] op children[1]
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ...: a Python comparison chain
  kCondExpr,  // children[0] if children[1] else children[2] (children[2] may be null)
};

struct Expr {
  ExprType type = ExprType::kLiteral;
  int line = 0;
  int column = 0;
  Value literal;
  std::string name;  // variable, attribute, filter or test name; operator for unary/binary
  bool negated = false;  // kTest: "is not"
  std::vector<std::string> ops;  // kCompare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

enum class NodeType {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (cond, body)..., else_body
  kFor,          // for target in expr [if filter] body [else else_body]
  kSet,          // set target = expr
  kSetBlock,     // set target [| filters] body endset (expr: the filter chain over a null input)
  kMacro,        // macro name(params) body
  kBreak,
  kContinue,
  kFilterBlock,  // filter expr body endfilter (expr: the filter chain over a null input)
  kScope,        // body rendered as is ({% generation %}, {% with %} without bindings)
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Node {
  NodeType type = NodeType::kText;
  int line = 0;
  int column = 0;
  std::string text;  // kText; kMacro: name
  ExprPtr expr;      // kOutput value, kFor iterable, kSet value, filter chains
  ExprPtr target;    // kFor / kSet: kName, kTuple of kName, or kGetAttr on a namespace
  ExprPtr filter;    // kFor: loop filter (may be null)
  std::vector<std::pair<ExprPtr, NodeList>> branches;  // kIf
  NodeList body;
  NodeList else_body;
  std::vector<MacroParam> params;  // kMacro
};

struct Template {
  NodeList body;
};

}  // namespace lil::jinja
