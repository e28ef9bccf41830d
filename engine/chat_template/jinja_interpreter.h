// File: engine/chat_template/jinja_interpreter.h
// Walks the AST and renders it: scopes (a fresh one per for-iteration and macro call, as Jinja
// does), expression evaluation, output with size / depth / iteration limits. Not thread-safe; one
// Interpreter per render.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chat_template/chat_template.h"
#include "engine/chat_template/jinja_ast.h"
#include "engine/chat_template/jinja_value.h"

namespace lil::jinja {

class Interpreter {
 public:
  explicit Interpreter(const ChatRenderOptions& options);
  ~Interpreter();

  // `context` holds the template's variables; builtin globals sit below it.
  absl::StatusOr<std::string> Render(const Template& tmpl, Dict context);

  // Used by filters and globals.
  absl::StatusOr<Value> Call(const Value& fn, CallArgs& args);
  const ChatRenderOptions& options() const { return options_; }
  // Errors when a string or list of `size` bytes/items would pass the output limit.
  absl::Status CheckSize(size_t size) const;
  // Errors when a value nests deeper than kMaxValueDepth.
  absl::Status CheckDepth(const Value& v) const;
  // Creates a namespace that is emptied after the render (breaks self-reference cycles).
  Value NewNamespace(Dict attrs);

 private:
  struct Scope {
    std::shared_ptr<Scope> parent;
    Dict vars;
  };
  enum class Flow { kNormal, kBreak, kContinue };

  absl::StatusOr<Flow> Exec(const NodeList& body, std::string* out);
  absl::StatusOr<Flow> ExecNode(const Node& node, std::string* out);
  absl::StatusOr<Flow> ExecFor(const Node& node, std::string* out);
  absl::Status ExecSet(const Node& node, Value value);
  absl::Status Append(std::string* out, std::string_view text) const;
  Value DefineMacro(const Node& node);

  // Expressions.
  absl::StatusOr<Value> Eval(const Expr& e);
  absl::StatusOr<Value> EvalBinary(const Expr& e);
  absl::StatusOr<Value> EvalCompare(const Expr& e);
  absl::StatusOr<Value> EvalCall(const Expr& e);
  absl::StatusOr<Value> EvalFilter(const Expr& e, const Value* block_input);
  absl::StatusOr<Value> EvalGetItem(const Expr& e);
  absl::Status EvalArgs(const Expr& e, size_t first_child, CallArgs* args);
  Value Lookup(const std::string& name) const;
  absl::Status Located(const absl::Status& s, int line, int column) const;

  ChatRenderOptions options_;
  std::shared_ptr<Scope> globals_;
  std::shared_ptr<Scope> scope_;
  int depth_ = 0;
  int64_t loop_iterations_ = 0;
  std::vector<Value> namespaces_;
};

}  // namespace lil::jinja
