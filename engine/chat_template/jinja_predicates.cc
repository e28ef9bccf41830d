// File: engine/chat_template/jinja_predicates.cc
// Jinja's tests (`x is defined`, `x is string`, `x is divisibleby 3`, ...).
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_format.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

using TestFn = absl::StatusOr<bool> (*)(const Value&, const CallArgs&);

absl::StatusOr<const Value*> NeedArg(const CallArgs& a, std::string_view test) {
  const Value* v = Arg(a, 0, "other");
  if (v == nullptr) v = Arg(a, 0, "value");
  if (v == nullptr) return absl::InvalidArgumentError(absl::StrCat("test '", std::string(test), "' needs an argument"));
  return v;
}

absl::StatusOr<bool> Compared(const Value& v, const CallArgs& a, std::string_view op) {
  LIL_ASSIGN_OR_RETURN(const Value* other, NeedArg(a, op));
  if (op == "==") return Equals(v, *other);
  if (op == "!=") return !Equals(v, *other);
  LIL_ASSIGN_OR_RETURN(int c, Compare(v, *other));
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

bool HasCase(const std::string& s, bool want_lower) {
  // str.islower(): at least one cased character and no character of the other case.
  bool cased = false;
  std::string upper = PyUpper(s), lower = PyLower(s);
  if (upper == lower) return false;
  cased = true;
  return cased && (want_lower ? s == lower : s == upper);
}

const std::map<std::string_view, TestFn>& Tests() {
  static const auto* tests = new std::map<std::string_view, TestFn>{
      {"defined", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.is_none(); }},
      {"string", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.is_string(); }},
      {"mapping", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.is_dict(); }},
      {"boolean", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.kind() == Kind::kBool; }},
      {"integer", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.kind() == Kind::kInt; }},
      {"float", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.kind() == Kind::kFloat; }},
      {"number", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.is_number(); }},
      {"true", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.kind() == Kind::kBool && v.bool_value(); }},
      {"false", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return v.kind() == Kind::kBool && !v.bool_value(); }},
      // Jinja's Undefined defines __call__ (it raises), so Python's callable() says yes.
      {"callable", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> {
         return v.kind() == Kind::kCallable || v.is_undefined();
       }},
      // Jinja's Undefined is iterable (empty) and has len(), so it passes both.
      {"iterable", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
       }},
      {"sequence", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
       }},
      {"lower", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return HasCase(ToPyStr(v), true); }},
      {"upper", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> { return HasCase(ToPyStr(v), false); }},
      // Jinja: value % 2 == 0 / == 1, so floats work too (2.0 is even, 2.5 is neither).
      {"even", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> {
         if (!v.is_number()) return absl::InvalidArgumentError(absl::StrCat("even: '", TypeName(v), "' is not a number"));
         if (v.kind() == Kind::kFloat) return std::fmod(std::fabs(v.float_value()), 2.0) == 0.0;
         return v.int_value() % 2 == 0;
       }},
      {"odd", [](const Value& v, const CallArgs&) -> absl::StatusOr<bool> {
         if (!v.is_number()) return absl::InvalidArgumentError(absl::StrCat("odd: '", TypeName(v), "' is not a number"));
         if (v.kind() == Kind::kFloat) return std::fmod(std::fabs(v.float_value()), 2.0) == 1.0;
         return v.int_value() % 2 != 0;
       }},
      {"divisibleby", [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
         const Value* n = Arg(a, 0, "num");
         if (!n || !v.is_number() || !n->is_number()) return absl::InvalidArgumentError("divisibleby needs numbers");
         if (n->int_value() == 0) return absl::InvalidArgumentError("divisibleby: division by zero");
         return v.int_value() % n->int_value() == 0;
       }},
      {"sameas", [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
         LIL_ASSIGN_OR_RETURN(const Value* other, NeedArg(a, "sameas"));
         // Identity: singletons compare by value, containers by object.
         if (v.kind() != other->kind()) return false;
         if (v.is_list()) return &v.list() == &other->list();
         if (v.is_dict() || v.kind() == Kind::kNamespace) return &v.dict() == &other->dict();
         return Equals(v, *other);
       }},
      {"in", [](const Value& v, const CallArgs& a) -> absl::StatusOr<bool> {
         LIL_ASSIGN_OR_RETURN(const Value* seq, NeedArg(a, "in"));
         if (seq->is_string()) return v.is_string() && seq->str().find(v.str()) != std::string::npos;
         if (seq->is_dict()) return v.is_string() && seq->dict().Find(v.str()) != nullptr;
         for (const Value& item : seq->list()) {
           if (Equals(item, v)) return true;
         }
         return false;
       }},
      {"eq", [](const Value& v, const CallArgs& a) { return Compared(v, a, "=="); }},
      {"equalto", [](const Value& v, const CallArgs& a) { return Compared(v, a, "=="); }},
      {"==", [](const Value& v, const CallArgs& a) { return Compared(v, a, "=="); }},
      {"ne", [](const Value& v, const CallArgs& a) { return Compared(v, a, "!="); }},
      {"!=", [](const Value& v, const CallArgs& a) { return Compared(v, a, "!="); }},
      {"lt", [](const Value& v, const CallArgs& a) { return Compared(v, a, "<"); }},
      {"lessthan", [](const Value& v, const CallArgs& a) { return Compared(v, a, "<"); }},
      {"le", [](const Value& v, const CallArgs& a) { return Compared(v, a, "<="); }},
      {"gt", [](const Value& v, const CallArgs& a) { return Compared(v, a, ">"); }},
      {"greaterthan", [](const Value& v, const CallArgs& a) { return Compared(v, a, ">"); }},
      {"ge", [](const Value& v, const CallArgs& a) { return Compared(v, a, ">="); }},
  };
  return *tests;
}

}  // namespace

bool IsKnownTest(std::string_view name) { return Tests().count(name) > 0; }

absl::StatusOr<bool> ApplyTest(Interpreter&, std::string_view name, const Value& input, CallArgs& args) {
  auto it = Tests().find(name);
  if (it == Tests().end()) return absl::InvalidArgumentError(absl::StrCat("no test named '", std::string(name), "'"));
  absl::StatusOr<bool> r = it->second(input, args);
  if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("test '", std::string(name), "': ", r.status().message()));
  return r;
}

}  // namespace lil::jinja
