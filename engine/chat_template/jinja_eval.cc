// File: engine/chat_template/jinja_eval.cc
// Expression evaluation with Python semantics: int vs float arithmetic, str/list operators,
// attribute vs item lookup as Jinja's sandbox does it, Undefined propagation and errors.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_format.h"
#include "engine/chat_template/jinja_interpreter.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

absl::Status UndefinedError(const Value& v) {
  return absl::InvalidArgumentError(v.undefined_hint().empty() ? "value is undefined"
                                                               : v.undefined_hint());
}

absl::Status OperandError(std::string_view op, const Value& a, const Value& b) {
  return absl::InvalidArgumentError(absl::StrCat("unsupported operand type(s) for ", std::string(op), ": '",
                                                 TypeName(a), "' and '", TypeName(b), "'"));
}

bool IsIntLike(const Value& v) { return v.kind() == Kind::kInt || v.kind() == Kind::kBool; }

absl::StatusOr<Value> Arithmetic(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) return UndefinedError(a);
  if (op == "%" && a.is_string()) {
    LIL_ASSIGN_OR_RETURN(std::string out, PyPercentFormat(a.str(), b));
    return Value::String(std::move(out));
  }
  if (b.is_undefined()) return UndefinedError(b);
  bool ints = IsIntLike(a) && IsIntLike(b);
  if (a.is_number() && b.is_number()) {
    int64_t x = a.int_value(), y = b.int_value(), r = 0;
    double fx = a.float_value(), fy = b.float_value();
    if (op == "+" || op == "-" || op == "*") {
      if (ints) {
        bool overflow = op == "+"   ? __builtin_add_overflow(x, y, &r)
                        : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                    : __builtin_mul_overflow(x, y, &r);
        if (overflow) return absl::OutOfRangeError("integer overflow");
        return Value::Int(r);
      }
      return Value::Float(op == "+" ? fx + fy : op == "-" ? fx - fy : fx * fy);
    }
    if (op == "/") {
      if (fy == 0) return absl::InvalidArgumentError("division by zero");
      return Value::Float(fx / fy);
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (y == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return absl::OutOfRangeError("integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value::Int(op == "//" ? q : m);
      }
      if (fy == 0) return absl::InvalidArgumentError("float division by zero");
      if (op == "//") return Value::Float(std::floor(fx / fy));
      double m = std::fmod(fx, fy);
      if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
      return Value::Float(m);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        int64_t result = 1, base = x;
        for (int64_t e = y; e > 0; e >>= 1) {
          if ((e & 1) && __builtin_mul_overflow(result, base, &result)) {
            return absl::OutOfRangeError("integer overflow");
          }
          if (e > 1 && __builtin_mul_overflow(base, base, &base)) {
            return absl::OutOfRangeError("integer overflow");
          }
        }
        return Value::Int(result);
      }
      if (fx == 0 && fy < 0) return absl::InvalidArgumentError("0.0 cannot be raised to a negative power");
      return Value::Float(std::pow(fx, fy));
    }
  }
  if (op == "+" && a.is_string() && b.is_string()) {
    LIL_RETURN_IF_ERROR(in.CheckSize(a.str().size() + b.str().size()));
    return Value::String(a.str() + b.str());
  }
  if (op == "+" && a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    LIL_RETURN_IF_ERROR(in.CheckSize(a.list().size() + b.list().size()));
    ValueList items = a.list();
    items.insert(items.end(), b.list().begin(), b.list().end());
    return Value::List(std::move(items), a.is_tuple());
  }
  if (op == "*" && (IsIntLike(a) || IsIntLike(b)) && (a.is_string() || b.is_string() || a.is_list() || b.is_list())) {
    const Value& seq = IsIntLike(a) ? b : a;
    int64_t n = std::max<int64_t>(0, IsIntLike(a) ? a.int_value() : b.int_value());
    size_t unit = seq.is_string() ? seq.str().size() : seq.list().size();
    if (unit > 0 && n > 0) LIL_RETURN_IF_ERROR(in.CheckSize(unit > SIZE_MAX / n ? SIZE_MAX : unit * n));
    if (seq.is_string()) {
      std::string out;
      for (int64_t i = 0; i < n && unit > 0; ++i) out += seq.str();
      return Value::String(std::move(out));
    }
    ValueList items;
    for (int64_t i = 0; i < n && unit > 0; ++i) items.insert(items.end(), seq.list().begin(), seq.list().end());
    return Value::List(std::move(items), seq.is_tuple());
  }
  return OperandError(op, a, b);
}

absl::StatusOr<bool> Contains(const Value& container, const Value& needle) {
  switch (container.kind()) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!needle.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(needle)));
      }
      return container.str().find(needle.str()) != std::string::npos;
    case Kind::kList:
      for (const Value& item : container.list()) {
        if (Equals(item, needle)) return true;
      }
      return false;
    case Kind::kDict:
      if (needle.is_list() && !needle.is_tuple()) return absl::InvalidArgumentError("unhashable type: 'list'");
      if (needle.is_dict()) return absl::InvalidArgumentError("unhashable type: 'dict'");
      return needle.is_string() && container.dict().Find(needle.str()) != nullptr;
    default:
      return absl::InvalidArgumentError(absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }
}

absl::StatusOr<bool> CompareOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in" || op == "notin") {
    LIL_ASSIGN_OR_RETURN(bool r, Contains(b, a));
    return r == (op == "in");
  }
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  LIL_ASSIGN_OR_RETURN(int c, Compare(a, b));
  return op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
}

// Python slice indices for a sequence of length n.
ValueList SliceIndices(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step) {
  ValueList out;
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt, bool is_start) -> int64_t {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) x += n;
    if (step > 0) return std::clamp<int64_t>(x, 0, n);
    (void)is_start;
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = clamp(start, step > 0 ? 0 : n - 1, true);
  int64_t e = clamp(stop, step > 0 ? n : -1, false);
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) out.push_back(Value::Int(i));
  return out;
}

}  // namespace

Value Interpreter::Lookup(const std::string& name) const {
  for (const Scope* s = scope_.get(); s != nullptr; s = s->parent.get()) {
    if (const Value* v = s->vars.Find(name)) return *v;
  }
  return Value::Undefined(absl::StrCat("'", std::string(name), "' is undefined"));
}

absl::StatusOr<Value> Interpreter::Eval(const Expr& e) {
  absl::StatusOr<Value> result;
  switch (e.type) {
    case ExprType::kLiteral:
      return e.literal;
    case ExprType::kName:
      return Lookup(e.name);
    case ExprType::kList:
    case ExprType::kTuple: {
      ValueList items;
      for (const auto& c : e.children) {
        LIL_ASSIGN_OR_RETURN(Value v, Eval(*c));
        items.push_back(std::move(v));
      }
      Value list = Value::List(std::move(items), e.type == ExprType::kTuple);
      LIL_RETURN_IF_ERROR(Located(CheckDepth(list), e.line, e.column));
      return list;
    }
    case ExprType::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        LIL_ASSIGN_OR_RETURN(Value k, Eval(*e.children[i]));
        LIL_ASSIGN_OR_RETURN(Value v, Eval(*e.children[i + 1]));
        if (!k.is_string()) {
          return Located(absl::UnimplementedError(absl::StrCat("dict keys must be strings, got ", TypeName(k))), e.line, e.column);
        }
        d.Set(k.str(), std::move(v));
      }
      Value dict = Value::MakeDict(std::move(d));
      LIL_RETURN_IF_ERROR(Located(CheckDepth(dict), e.line, e.column));
      return dict;
    }
    case ExprType::kGetAttr: {
      LIL_ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
      if (obj.is_undefined()) return Located(UndefinedError(obj), e.line, e.column);
      if (std::optional<Value> m = GetMethod(obj, e.name)) return *m;
      if (obj.is_dict() || obj.kind() == Kind::kNamespace) {
        if (const Value* v = obj.dict().Find(e.name)) return *v;
      }
      return Value::Undefined(absl::StrCat("'", TypeName(obj), " object' has no attribute '", e.name, "'"));
    }
    case ExprType::kGetItem:
      result = EvalGetItem(e);
      break;
    case ExprType::kSlice:
      return Located(absl::InvalidArgumentError("a slice is only valid inside []"), e.line, e.column);
    case ExprType::kCall:
      result = EvalCall(e);
      break;
    case ExprType::kFilter:
      result = EvalFilter(e, nullptr);
      break;
    case ExprType::kTest: {
      LIL_ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
      CallArgs args;
      LIL_RETURN_IF_ERROR(EvalArgs(e, 1, &args));
      absl::StatusOr<bool> r = ApplyTest(*this, e.name, v, args);
      if (!r.ok()) return Located(r.status(), e.line, e.column);
      return Value::Bool(*r != e.negated);
    }
    case ExprType::kUnary: {
      LIL_ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
      if (e.name == "not") return Value::Bool(!v.Truthy());
      if (v.is_undefined()) return Located(UndefinedError(v), e.line, e.column);
      if (!v.is_number()) {
        return Located(absl::InvalidArgumentError(absl::StrCat("bad operand type for unary ", e.name, ": '", TypeName(v), "'")), e.line, e.column);
      }
      if (e.name == "+") return v.kind() == Kind::kFloat ? v : Value::Int(v.int_value());
      if (v.kind() == Kind::kFloat) return Value::Float(-v.float_value());
      if (v.int_value() == INT64_MIN) return Located(absl::OutOfRangeError("integer overflow"), e.line, e.column);
      return Value::Int(-v.int_value());
    }
    case ExprType::kBinary:
      result = EvalBinary(e);
      break;
    case ExprType::kCompare:
      result = EvalCompare(e);
      break;
    case ExprType::kCondExpr: {
      LIL_ASSIGN_OR_RETURN(Value c, Eval(*e.children[1]));
      if (c.Truthy()) return Eval(*e.children[0]);
      if (e.children[2]) return Eval(*e.children[2]);
      return Value::Undefined("the inline if-expression evaluated to false and no else section was defined");
    }
  }
  if (!result.ok()) return Located(result.status(), e.line, e.column);
  return result;
}

absl::StatusOr<Value> Interpreter::EvalBinary(const Expr& e) {
  const std::string& op = e.name;
  LIL_ASSIGN_OR_RETURN(Value a, Eval(*e.children[0]));
  if (op == "and") return a.Truthy() ? Eval(*e.children[1]) : a;
  if (op == "or") return a.Truthy() ? a : Eval(*e.children[1]);
  LIL_ASSIGN_OR_RETURN(Value b, Eval(*e.children[1]));
  if (op == "~") {
    std::string sa = ToPyStr(a), sb = ToPyStr(b);
    LIL_RETURN_IF_ERROR(CheckSize(sa.size() + sb.size()));
    return Value::String(sa + sb);
  }
  return Arithmetic(*this, op, a, b);
}

absl::StatusOr<Value> Interpreter::EvalCompare(const Expr& e) {
  // a < b < c is (a < b) and (b < c), each operand evaluated once.
  LIL_ASSIGN_OR_RETURN(Value left, Eval(*e.children[0]));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    LIL_ASSIGN_OR_RETURN(Value right, Eval(*e.children[i + 1]));
    LIL_ASSIGN_OR_RETURN(bool holds, CompareOp(e.ops[i], left, right));
    if (!holds) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

absl::StatusOr<Value> Interpreter::EvalGetItem(const Expr& e) {
  LIL_ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
  if (obj.is_undefined()) return UndefinedError(obj);
  const Expr& index_expr = *e.children[1];
  if (index_expr.type == ExprType::kSlice) {
    std::optional<int64_t> parts[3];
    for (int i = 0; i < 3; ++i) {
      if (!index_expr.children[i]) continue;
      LIL_ASSIGN_OR_RETURN(Value p, Eval(*index_expr.children[i]));
      if (p.is_none() || p.is_undefined()) continue;
      if (!IsIntLike(p)) return absl::InvalidArgumentError("slice indices must be integers or None");
      parts[i] = p.int_value();
    }
    int64_t step = parts[2].value_or(1);
    if (step == 0) return absl::InvalidArgumentError("slice step cannot be zero");
    if (obj.is_list()) {
      ValueList out;
      for (const Value& i : SliceIndices(obj.list().size(), parts[0], parts[1], step)) {
        out.push_back(obj.list()[i.int_value()]);
      }
      return Value::List(std::move(out), obj.is_tuple());
    }
    if (obj.is_string()) {
      std::u32string cps = DecodeUtf8(obj.str());
      std::u32string out;
      for (const Value& i : SliceIndices(cps.size(), parts[0], parts[1], step)) out.push_back(cps[i.int_value()]);
      return Value::String(EncodeUtf8(out));
    }
    return absl::InvalidArgumentError(absl::StrCat("'", TypeName(obj), "' object is not subscriptable"));
  }
  LIL_ASSIGN_OR_RETURN(Value index, Eval(index_expr));
  if ((obj.is_dict() || obj.kind() == Kind::kNamespace) && index.is_string()) {
    if (const Value* v = obj.dict().Find(index.str())) return *v;
    if (std::optional<Value> m = GetMethod(obj, index.str())) return *m;
    return Value::Undefined(absl::StrCat("'dict object' has no attribute '", index.str(), "'"));
  }
  if ((obj.is_list() || obj.is_string()) && IsIntLike(index)) {
    int64_t i = index.int_value();
    if (obj.is_list()) {
      int64_t n = obj.list().size();
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.list()[i];
    } else {
      std::u32string cps = DecodeUtf8(obj.str());
      int64_t n = cps.size();
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value::String(EncodeUtf8(cps.substr(i, 1)));
    }
    return Value::Undefined(absl::StrCat("'", TypeName(obj), " object' has no element ", index.int_value()));
  }
  if (index.is_string()) {
    if (std::optional<Value> m = GetMethod(obj, index.str())) return *m;
  }
  return Value::Undefined(absl::StrCat("'", TypeName(obj), " object' has no element ", ToPyRepr(index)));
}

absl::Status Interpreter::EvalArgs(const Expr& e, size_t first_child, CallArgs* args) {
  for (size_t i = first_child; i < e.children.size(); ++i) {
    LIL_ASSIGN_OR_RETURN(Value v, Eval(*e.children[i]));
    args->positional.push_back(std::move(v));
  }
  for (const auto& [key, expr] : e.kwargs) {
    LIL_ASSIGN_OR_RETURN(Value v, Eval(*expr));
    args->keyword.emplace_back(key, std::move(v));
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Interpreter::EvalCall(const Expr& e) {
  LIL_ASSIGN_OR_RETURN(Value fn, Eval(*e.children[0]));
  if (fn.is_undefined()) return UndefinedError(fn);
  if (fn.kind() != Kind::kCallable) {
    return absl::InvalidArgumentError(absl::StrCat("'", TypeName(fn), "' object is not callable"));
  }
  CallArgs args;
  LIL_RETURN_IF_ERROR(EvalArgs(e, 1, &args));
  return Call(fn, args);
}

absl::StatusOr<Value> Interpreter::Call(const Value& fn, CallArgs& args) {
  if (fn.kind() != Kind::kCallable) {
    return absl::InvalidArgumentError(absl::StrCat("'", TypeName(fn), "' object is not callable"));
  }
  return fn.callable().fn(*this, args);
}

absl::StatusOr<Value> Interpreter::EvalFilter(const Expr& e, const Value* block_input) {
  // A filter chain over a block ({% filter %}, {% set x | f %}) has a null innermost input.
  Value input;
  if (e.children[0]) {
    if (e.children[0]->type == ExprType::kFilter) {
      LIL_ASSIGN_OR_RETURN(input, EvalFilter(*e.children[0], block_input));
    } else {
      LIL_ASSIGN_OR_RETURN(input, Eval(*e.children[0]));
    }
  } else if (block_input != nullptr) {
    input = *block_input;
  }
  CallArgs args;
  LIL_RETURN_IF_ERROR(EvalArgs(e, 1, &args));
  absl::StatusOr<Value> out = ApplyFilter(*this, e.name, input, args);
  if (!out.ok()) return Located(out.status(), e.line, e.column);
  LIL_RETURN_IF_ERROR(Located(CheckDepth(*out), e.line, e.column));
  return out;
}

}  // namespace lil::jinja
