// File: engine/chat_template/jinja_methods.cc
// Python str and dict methods reachable from templates (content.startswith(...), msg.get(...)),
// and the globals: range, dict, namespace, raise_exception, strftime_now.
#include <ctime>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_format.h"
#include "engine/chat_template/jinja_interpreter.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

std::optional<std::string> OptStr(const Value* v) {
  if (v == nullptr || v->is_none()) return std::nullopt;
  return ToPyStr(*v);
}

int64_t OptInt(const Value* v, int64_t dflt) { return v && v->is_number() ? v->int_value() : dflt; }

ValueList Strings(const std::vector<std::string>& parts) {
  ValueList out;
  for (const auto& p : parts) out.push_back(Value::String(p));
  return out;
}

absl::StatusOr<bool> AffixTest(const std::string& s, const Value* arg, bool prefix) {
  if (arg == nullptr) return absl::InvalidArgumentError("startswith/endswith need an argument");
  ValueList options = arg->is_list() ? arg->list() : ValueList{*arg};
  for (const Value& o : options) {
    if (!o.is_string()) return absl::InvalidArgumentError("startswith/endswith take str or a tuple of str");
    const std::string& a = o.str();
    if (a.size() <= s.size() && (prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0)) {
      return true;
    }
  }
  return false;
}

// str.format with {} / {0} / {name} fields and optional !r / !s; format specs are not supported.
absl::StatusOr<std::string> PyFormat(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}' ) {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) return absl::InvalidArgumentError("format: single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 0;
    if (size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field = field.substr(0, bang);
    }
    if (field.find(':') != std::string::npos) return absl::UnimplementedError("format: format specs are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < a.positional.size() ? &a.positional[auto_index] : nullptr;
      ++auto_index;
    } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
      size_t idx = std::stoul(field.substr(0, 9));
      v = idx < a.positional.size() ? &a.positional[idx] : nullptr;
    } else {
      v = Arg(a, SIZE_MAX, field);
    }
    if (v == nullptr) return absl::InvalidArgumentError(absl::StrCat("format: no argument for field '{", field, "}'"));
    out += conversion == 'r' ? ToPyRepr(*v) : ToPyStr(*v);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> PyPercentFormat(const std::string& fmt, const Value& rhs) {
  // Python: a non-tuple right side is one argument; anything with __getitem__ but str/tuple is
  // also a mapping, which makes surplus arguments legal.
  ValueList args = rhs.is_tuple() ? rhs.list() : ValueList{rhs};
  bool is_mapping = !rhs.is_tuple() && (rhs.is_list() || rhs.is_dict() || rhs.is_undefined());
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) return absl::InvalidArgumentError("incomplete format");
    if (fmt[i] == '%') {
      out.push_back('%');
      continue;
    }
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos || !rhs.is_dict()) return absl::InvalidArgumentError("format requires a mapping");
      arg = rhs.dict().Find(fmt.substr(i + 1, close - i - 1));
      if (arg == nullptr) return absl::InvalidArgumentError(absl::StrCat("format key '", fmt.substr(i + 1, close - i - 1), "' not found"));
      i = close + 1;
    } else {
      if (next >= args.size()) return absl::InvalidArgumentError("not enough arguments for format string");
      arg = &args[next++];
    }
    if (i >= fmt.size()) return absl::InvalidArgumentError("incomplete format");
    char conv = fmt[i];
    if (conv == 's') {
      out += ToPyStr(*arg);
    } else if (conv == 'r') {
      out += ToPyRepr(*arg);
    } else if ((conv == 'd' || conv == 'i') && arg->is_number()) {
      out += arg->kind() == Kind::kFloat ? std::to_string(static_cast<int64_t>(arg->float_value()))
                                         : std::to_string(arg->int_value());
    } else {
      return absl::UnimplementedError(absl::StrCat("'%' formatting: only %s, %r, %d and %i are supported, got %", std::string(1, conv)));
    }
  }
  if (next < args.size() && !is_mapping) {
    return absl::InvalidArgumentError("not all arguments converted during string formatting");
  }
  return out;
}

namespace {

absl::StatusOr<Value> CallStringMethod(Interpreter& in, const std::string& s, std::string_view name, CallArgs& a) {
  const Value* a0 = Arg(a, 0, "");
  const Value* a1 = Arg(a, 1, "");
  if (name == "startswith" || name == "endswith") {
    LIL_ASSIGN_OR_RETURN(bool r, AffixTest(s, a0, name == "startswith"));
    return Value::Bool(r);
  }
  if (name == "strip") return Value::String(PyStrip(s, OptStr(Arg(a, 0, "chars")), true, true));
  if (name == "lstrip") return Value::String(PyStrip(s, OptStr(Arg(a, 0, "chars")), true, false));
  if (name == "rstrip") return Value::String(PyStrip(s, OptStr(Arg(a, 0, "chars")), false, true));
  if (name == "split" || name == "rsplit") {
    std::optional<std::string> sep = OptStr(Arg(a, 0, "sep"));
    if (sep && sep->empty()) return absl::InvalidArgumentError("split: empty separator");
    int64_t maxsplit = OptInt(Arg(a, 1, "maxsplit"), -1);
    return Value::List(Strings(name == "split" ? PySplit(s, sep, maxsplit) : PyRSplit(s, sep, maxsplit)));
  }
  if (name == "splitlines") return Value::List(Strings(PySplitLines(s)));
  if (name == "upper") return Value::String(PyUpper(s));
  if (name == "lower") return Value::String(PyLower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(PyCapitalize(s));
  if (name == "replace") {
    if (!a0 || !a1) return absl::InvalidArgumentError("replace() takes the old and new strings");
    std::string out = PyReplace(s, ToPyStr(*a0), ToPyStr(*a1), OptInt(Arg(a, 2, "count"), -1));
    LIL_RETURN_IF_ERROR(in.CheckSize(out.size()));
    return Value::String(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    if (!a0 || !a0->is_string()) return absl::InvalidArgumentError(absl::StrCat(std::string(name), "() needs a str argument"));
    const std::string& sub = a0->str();
    if (name == "count") {
      if (sub.empty()) return Value::Int(CodePointCount(s) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::Int(n);
    }
    size_t p = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") return absl::InvalidArgumentError("substring not found");
      return Value::Int(-1);
    }
    return Value::Int(CodePointCount(std::string_view(s).substr(0, p)));
  }
  if (name == "join") {
    if (!a0) return absl::InvalidArgumentError("join() takes an iterable");
    LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(*a0));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) return absl::InvalidArgumentError(absl::StrCat("join: sequence item ", i, ": expected str instance, ", TypeName(items[i]), " found"));
      if (i) out += s;
      out += items[i].str();
      LIL_RETURN_IF_ERROR(in.CheckSize(out.size()));
    }
    return Value::String(std::move(out));
  }
  if (name == "format") {
    LIL_ASSIGN_OR_RETURN(std::string out, PyFormat(s, a));
    return Value::String(std::move(out));
  }
  std::u32string cps = DecodeUtf8(s);
  auto all = [&](auto pred) { return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred); };
  auto ascii_digit = [](char32_t c) { return c >= '0' && c <= '9'; };
  auto alpha = [](char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && !IsPySpace(c)); };
  if (name == "isdigit") return Value::Bool(all(ascii_digit));
  if (name == "isalpha") return Value::Bool(all(alpha));
  if (name == "isalnum") return Value::Bool(all([&](char32_t c) { return alpha(c) || ascii_digit(c); }));
  if (name == "isspace") return Value::Bool(all(IsPySpace));
  if (name == "islower") return Value::Bool(PyUpper(s) != s && PyLower(s) == s);
  if (name == "isupper") return Value::Bool(PyLower(s) != s && PyUpper(s) == s);
  return absl::InvalidArgumentError(absl::StrCat("'str' object has no attribute '", std::string(name), "'"));
}

absl::StatusOr<Value> CallDictMethod(const Value& d, std::string_view name, CallArgs& a) {
  if (name == "get") {
    const Value* key = Arg(a, 0, "key");
    const Value* dflt = Arg(a, 1, "default");
    if (key == nullptr) return absl::InvalidArgumentError("get() needs a key");
    if (key->is_string()) {
      if (const Value* v = d.dict().Find(key->str())) return *v;
    }
    return dflt ? *dflt : Value::None();
  }
  ValueList out;
  for (const auto& [k, v] : d.dict().items) {
    if (name == "items") out.push_back(Value::List({Value::String(k), v}, true));
    if (name == "keys") out.push_back(Value::String(k));
    if (name == "values") out.push_back(v);
  }
  if (name == "copy") return d;
  return Value::List(std::move(out));
}

constexpr std::string_view kStringMethods[] = {
    "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
    "upper", "lower", "title", "capitalize", "replace", "find", "rfind", "index", "rindex",
    "count", "join", "format", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"};
constexpr std::string_view kDictMethods[] = {"get", "items", "keys", "values", "copy"};
// Methods that mutate: the sandbox hands out an undefined that fails when used.
constexpr std::string_view kUnsafeDictMethods[] = {"clear", "pop", "popitem", "setdefault", "update"};

absl::StatusOr<Value> StrftimeNow(Interpreter& in, CallArgs& a) {
  const Value* fmt = Arg(a, 0, "format");
  if (fmt == nullptr || !fmt->is_string()) return absl::InvalidArgumentError("strftime_now() needs a format string");
  if (fmt->str().size() > 256) return absl::InvalidArgumentError("strftime_now(): format string too long");
  std::time_t now = in.options().now_unix_seconds ? static_cast<std::time_t>(*in.options().now_unix_seconds) : std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[2048];
  size_t n = std::strftime(buf, sizeof(buf), fmt->str().c_str(), &tm);
  return Value::String(std::string(buf, n));
}

absl::StatusOr<Value> Range(Interpreter& in, CallArgs& a) {
  if (a.positional.empty() || a.positional.size() > 3) return absl::InvalidArgumentError("range() takes 1 to 3 integers");
  for (const Value& v : a.positional) {
    if (v.kind() != Kind::kInt && v.kind() != Kind::kBool) return absl::InvalidArgumentError("range() arguments must be integers");
  }
  int64_t start = 0, stop, step = 1;
  if (a.positional.size() == 1) {
    stop = a.positional[0].int_value();
  } else {
    start = a.positional[0].int_value();
    stop = a.positional[1].int_value();
    if (a.positional.size() == 3) step = a.positional[2].int_value();
  }
  if (step == 0) return absl::InvalidArgumentError("range() arg 3 must not be zero");
  long double count = step > 0 ? (static_cast<long double>(stop) - start) / step : (static_cast<long double>(start) - stop) / -step;
  if (count > in.options().limits.max_loop_iterations) {
    return absl::ResourceExhaustedError(absl::StrCat("range() of ", static_cast<double>(count), " items exceeds the loop limit"));
  }
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value::Int(i));
  return Value::List(std::move(out));
}

// dict(...) / namespace(...): positional mappings (or lists of pairs), then keywords.
absl::StatusOr<Dict> CollectAttrs(const CallArgs& a) {
  Dict d;
  for (const Value& p : a.positional) {
    if (p.is_dict()) {
      for (const auto& kv : p.dict().items) d.Set(kv.first, kv.second);
    } else if (p.is_list()) {
      for (const Value& pair : p.list()) {
        if (!pair.is_list() || pair.list().size() != 2 || !pair.list()[0].is_string()) {
          return absl::InvalidArgumentError("dict(): expected (str, value) pairs");
        }
        d.Set(pair.list()[0].str(), pair.list()[1]);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("dict(): cannot convert '", TypeName(p), "' to a dict"));
    }
  }
  for (const auto& [k, v] : a.keyword) d.Set(k, v);
  return d;
}

}  // namespace

const Value* Arg(const CallArgs& args, size_t index, std::string_view name) {
  if (index < args.positional.size()) return &args.positional[index];
  if (!name.empty()) {
    for (const auto& [k, v] : args.keyword) {
      if (k == name) return &v;
    }
  }
  return nullptr;
}

absl::Status CheckArity(std::string_view fn, const CallArgs& args, size_t max_positional) {
  if (args.positional.size() > max_positional) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(fn), "() takes at most ", max_positional, " positional arguments"));
  }
  return absl::OkStatus();
}

std::optional<Value> GetMethod(const Value& obj, std::string_view name) {
  if (obj.is_string()) {
    for (std::string_view m : kStringMethods) {
      if (m != name) continue;
      std::string method(name);
      std::string s = obj.str();
      return Value::Function("str." + method, [s, method](Interpreter& in, CallArgs& a) {
        return CallStringMethod(in, s, method, a);
      });
    }
  } else if (obj.is_dict()) {
    for (std::string_view m : kDictMethods) {
      if (m != name) continue;
      std::string method(name);
      return Value::Function("dict." + method, [obj, method](Interpreter&, CallArgs& a) {
        return CallDictMethod(obj, method, a);
      });
    }
    for (std::string_view m : kUnsafeDictMethods) {
      if (m == std::string(name)) return Value::Undefined(absl::StrCat("access to attribute '", std::string(name), "' of 'dict' object is unsafe"));
    }
  }
  return std::nullopt;
}

Dict MakeGlobals() {
  Dict g;
  g.Set("range", Value::Function("range", Range));
  g.Set("strftime_now", Value::Function("strftime_now", StrftimeNow));
  g.Set("raise_exception", Value::Function("raise_exception", [](Interpreter&, CallArgs& a) -> absl::StatusOr<Value> {
    const Value* msg = Arg(a, 0, "message");
    return absl::InvalidArgumentError(absl::StrCat("raise_exception: ", msg ? ToPyStr(*msg) : ""));
  }));
  g.Set("dict", Value::Function("dict", [](Interpreter& in, CallArgs& a) -> absl::StatusOr<Value> {
    LIL_ASSIGN_OR_RETURN(Dict d, CollectAttrs(a));
    Value v = Value::MakeDict(std::move(d));
    LIL_RETURN_IF_ERROR(in.CheckDepth(v));
    return v;
  }));
  g.Set("namespace", Value::Function("namespace", [](Interpreter& in, CallArgs& a) -> absl::StatusOr<Value> {
    LIL_ASSIGN_OR_RETURN(Dict d, CollectAttrs(a));
    for (const auto& kv : d.items) {
      if (!kv.first.empty() && kv.first[0] == '_') {
        return absl::PermissionDeniedError(absl::StrCat("chat templates cannot store underscore-prefixed attributes on a namespace, got '", kv.first, "'"));
      }
    }
    return in.NewNamespace(std::move(d));
  }));
  return g;
}

}  // namespace lil::jinja
