// File: engine/chat_template/jinja_interpreter.cc
// Statement execution: output, if, for (with loop.*), set, macros, filter blocks, limits.
// Expression evaluation lives in jinja_eval.cc.
#include "engine/chat_template/jinja_interpreter.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_format.h"
#include "engine/chat_template/jinja_lexer.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

Value MakeLoop(const ValueList& items, size_t i) {
  Dict loop;
  int64_t n = static_cast<int64_t>(items.size());
  int64_t idx = static_cast<int64_t>(i);
  loop.Set("index", Value::Int(idx + 1));
  loop.Set("index0", Value::Int(idx));
  loop.Set("revindex", Value::Int(n - idx));
  loop.Set("revindex0", Value::Int(n - idx - 1));
  loop.Set("first", Value::Bool(i == 0));
  loop.Set("last", Value::Bool(idx == n - 1));
  loop.Set("length", Value::Int(n));
  loop.Set("depth", Value::Int(1));
  loop.Set("depth0", Value::Int(0));
  loop.Set("previtem", i > 0 ? items[i - 1] : Value::Undefined("there is no previous item"));
  loop.Set("nextitem", idx + 1 < n ? items[i + 1] : Value::Undefined("there is no next item"));
  loop.Set("cycle", Value::Function("loop.cycle", [idx](Interpreter&, CallArgs& args) -> absl::StatusOr<Value> {
    if (args.positional.empty()) return absl::InvalidArgumentError("loop.cycle: no items given");
    return args.positional[idx % args.positional.size()];
  }));
  // Jinja's loop is an object, not a dict; a namespace keeps `loop.items` etc. from resolving to
  // dict methods.
  return Value::Namespace(std::move(loop));
}

}  // namespace

Interpreter::Interpreter(const ChatRenderOptions& options) : options_(options) {}

Interpreter::~Interpreter() {
  for (Value& ns : namespaces_) ns.mutable_namespace().items.clear();
}

Value Interpreter::NewNamespace(Dict attrs) {
  Value ns = Value::Namespace(std::move(attrs));
  namespaces_.push_back(ns);
  return ns;
}

absl::Status Interpreter::CheckSize(size_t size) const {
  if (static_cast<int64_t>(size) > options_.limits.max_output_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("value of ", size, " bytes/items exceeds the limit of ",
                                                     options_.limits.max_output_bytes));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::CheckDepth(const Value& v) const {
  if (v.depth() > kMaxValueDepth) {
    return absl::ResourceExhaustedError(absl::StrCat("value nested deeper than ", kMaxValueDepth, " levels"));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::Append(std::string* out, std::string_view text) const {
  if (static_cast<int64_t>(out->size() + text.size()) > options_.limits.max_output_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("rendered text exceeds the limit of ",
                                                     options_.limits.max_output_bytes, " bytes"));
  }
  out->append(text);
  return absl::OkStatus();
}

absl::Status Interpreter::Located(const absl::Status& s, int line, int column) const {
  if (s.ok() || absl::StartsWith(s.message(), "line ")) return s;
  return absl::Status(s.code(), absl::StrCat(Where(line, column), s.message()));
}

absl::StatusOr<std::string> Interpreter::Render(const Template& tmpl, Dict context) {
  globals_ = std::make_shared<Scope>();
  globals_->vars = MakeGlobals();
  scope_ = std::make_shared<Scope>();
  scope_->parent = globals_;
  scope_->vars = std::move(context);
  std::string out;
  LIL_ASSIGN_OR_RETURN(Flow flow, Exec(tmpl.body, &out));
  (void)flow;
  return out;
}

absl::StatusOr<Interpreter::Flow> Interpreter::Exec(const NodeList& body, std::string* out) {
  for (const NodePtr& node : body) {
    LIL_ASSIGN_OR_RETURN(Flow flow, ExecNode(*node, out));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

absl::StatusOr<Interpreter::Flow> Interpreter::ExecNode(const Node& node, std::string* out) {
  switch (node.type) {
    case NodeType::kText:
      LIL_RETURN_IF_ERROR(Append(out, node.text));
      return Flow::kNormal;
    case NodeType::kOutput: {
      LIL_ASSIGN_OR_RETURN(Value v, Eval(*node.expr));
      LIL_RETURN_IF_ERROR(Append(out, ToPyStr(v)));
      return Flow::kNormal;
    }
    case NodeType::kIf:
      for (const auto& [cond, body] : node.branches) {
        LIL_ASSIGN_OR_RETURN(Value c, Eval(*cond));
        if (c.Truthy()) return Exec(body, out);
      }
      return Exec(node.else_body, out);
    case NodeType::kFor:
      return ExecFor(node, out);
    case NodeType::kSet: {
      LIL_ASSIGN_OR_RETURN(Value v, Eval(*node.expr));
      LIL_RETURN_IF_ERROR(Located(ExecSet(node, std::move(v)), node.line, node.column));
      return Flow::kNormal;
    }
    case NodeType::kSetBlock:
    case NodeType::kFilterBlock: {
      std::string inner;
      LIL_ASSIGN_OR_RETURN(Flow flow, Exec(node.body, &inner));
      Value v = Value::String(std::move(inner));
      if (node.expr) {
        LIL_ASSIGN_OR_RETURN(v, EvalFilter(*node.expr, &v));
      }
      if (node.type == NodeType::kFilterBlock) {
        LIL_RETURN_IF_ERROR(Append(out, ToPyStr(v)));
      } else {
        LIL_RETURN_IF_ERROR(Located(ExecSet(node, std::move(v)), node.line, node.column));
      }
      return flow;
    }
    case NodeType::kMacro:
      scope_->vars.Set(node.text, DefineMacro(node));
      return Flow::kNormal;
    case NodeType::kBreak:
      return Flow::kBreak;
    case NodeType::kContinue:
      return Flow::kContinue;
    case NodeType::kScope:
      return Exec(node.body, out);
  }
  return Flow::kNormal;
}

absl::StatusOr<Interpreter::Flow> Interpreter::ExecFor(const Node& node, std::string* out) {
  LIL_ASSIGN_OR_RETURN(Value iterable, Eval(*node.expr));
  auto items_or = ValueItems(iterable);
  if (!items_or.ok()) return Located(items_or.status(), node.expr->line, node.expr->column);
  ValueList items = *std::move(items_or);
  std::shared_ptr<Scope> outer = scope_;
  auto bind = [&](const Value& item) -> absl::Status {
    scope_ = std::make_shared<Scope>();
    scope_->parent = outer;
    return ExecSet(node, item);
  };
  if (node.filter) {
    ValueList kept;
    for (const Value& item : items) {
      if (++loop_iterations_ > options_.limits.max_loop_iterations) break;
      absl::Status s = bind(item);
      absl::StatusOr<Value> keep = s.ok() ? Eval(*node.filter) : absl::StatusOr<Value>(s);
      scope_ = outer;
      if (!keep.ok()) return Located(keep.status(), node.line, node.column);
      if (keep->Truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) return Exec(node.else_body, out);
  for (size_t i = 0; i < items.size(); ++i) {
    if (++loop_iterations_ > options_.limits.max_loop_iterations) {
      scope_ = outer;
      return absl::ResourceExhaustedError(absl::StrCat(
          Where(node.line, node.column), "for loops ran more than ",
          options_.limits.max_loop_iterations, " iterations in one render"));
    }
    absl::Status s = bind(items[i]);
    if (!s.ok()) {
      scope_ = outer;
      return Located(s, node.line, node.column);
    }
    scope_->vars.Set("loop", MakeLoop(items, i));
    absl::StatusOr<Flow> flow = Exec(node.body, out);
    scope_ = outer;
    if (!flow.ok()) return flow.status();
    if (*flow == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

absl::Status Interpreter::ExecSet(const Node& node, Value value) {
  const Expr& target = *node.target;
  if (target.type == ExprType::kName) {
    scope_->vars.Set(target.name, std::move(value));
    return absl::OkStatus();
  }
  if (target.type == ExprType::kGetAttr) {
    const std::string& ns_name = target.children[0]->name;
    Value ns = Lookup(ns_name);
    if (ns.kind() != Kind::kNamespace) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot assign attribute '", target.name, "' on '", ns_name,
                       "': it is a ", TypeName(ns), ", not a namespace()"));
    }
    if (absl::StartsWith(target.name, "_")) {
      return absl::PermissionDeniedError(absl::StrCat(
          "chat templates cannot store underscore-prefixed attributes on a namespace, got '",
          target.name, "'"));
    }
    ns.mutable_namespace().Set(target.name, std::move(value));
    return absl::OkStatus();
  }
  // Tuple unpacking (any iterable, as Python does).
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(value));
  if (items.size() != target.children.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot unpack ", items.size(),
                                                   " values into ", target.children.size(), " names"));
  }
  for (size_t i = 0; i < items.size(); ++i) scope_->vars.Set(target.children[i]->name, items[i]);
  return absl::OkStatus();
}

Value Interpreter::DefineMacro(const Node& node) {
  const Node* macro = &node;
  // Weak: the macro is usually stored in the very scope it closes over; a strong pointer would
  // make a cycle that leaks every render that defines a macro.
  std::weak_ptr<Scope> closure = scope_;
  return Value::Function(node.text, [macro, closure](Interpreter& in, CallArgs& args) -> absl::StatusOr<Value> {
    if (args.positional.size() > macro->params.size()) {
      return absl::InvalidArgumentError(absl::StrCat("macro '", macro->text, "' takes not more than ",
                                                     macro->params.size(), " argument(s)"));
    }
    if (in.depth_ >= in.options_.limits.max_call_depth) {
      return absl::ResourceExhaustedError(absl::StrCat("macro calls nested deeper than ",
                                                       in.options_.limits.max_call_depth));
    }
    auto frame = std::make_shared<Scope>();
    frame->parent = closure.lock();
    if (!frame->parent) frame->parent = in.globals_;  // called after its defining scope ended
    std::shared_ptr<Scope> saved = in.scope_;
    in.scope_ = frame;
    ++in.depth_;
    auto finish = [&](absl::StatusOr<Value> result) {
      --in.depth_;
      in.scope_ = saved;
      return result;
    };
    for (const auto& [key, value] : args.keyword) {
      bool known = false;
      for (const MacroParam& p : macro->params) known |= p.name == key;
      if (!known) {
        return finish(absl::InvalidArgumentError(
            absl::StrCat("macro '", macro->text, "' got an unexpected keyword argument '", key, "'")));
      }
    }
    for (size_t i = 0; i < macro->params.size(); ++i) {
      const MacroParam& p = macro->params[i];
      const Value* given = Arg(args, i, p.name);
      if (given != nullptr) {
        frame->vars.Set(p.name, *given);
      } else if (p.default_value) {
        absl::StatusOr<Value> d = in.Eval(*p.default_value);
        if (!d.ok()) return finish(d.status());
        frame->vars.Set(p.name, *std::move(d));
      } else {
        frame->vars.Set(p.name, Value::Undefined(absl::StrCat("'", p.name, "' is undefined")));
      }
    }
    std::string out;
    absl::StatusOr<Flow> flow = in.Exec(macro->body, &out);
    if (!flow.ok()) return finish(flow.status());
    return finish(Value::String(std::move(out)));
  });
}

}  // namespace lil::jinja
