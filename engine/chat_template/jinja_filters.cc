// File: engine/chat_template/jinja_filters.cc
// Jinja's built-in filters as chat templates use them, with transformers' tojson override.
#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_format.h"
#include "engine/chat_template/jinja_interpreter.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {

absl::StatusOr<int64_t> ValueLength(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(CodePointCount(v.str()));
    case Kind::kList:
      return static_cast<int64_t>(v.list().size());
    case Kind::kDict:
      return static_cast<int64_t>(v.dict().items.size());
    default:
      return absl::InvalidArgumentError(absl::StrCat("object of type '", TypeName(v), "' has no len()"));
  }
}

// list(v): list items, dict keys, string characters.
absl::StatusOr<ValueList> ValueItems(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return ValueList{};
    case Kind::kList:
      return v.list();
    case Kind::kDict: {
      ValueList keys;
      for (const auto& kv : v.dict().items) keys.push_back(Value::String(kv.first));
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      for (char32_t c : DecodeUtf8(v.str())) chars.push_back(Value::String(EncodeUtf8(std::u32string(1, c))));
      return chars;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("'", TypeName(v), "' object is not iterable"));
  }
}

// Jinja's attribute lookup for filters (map/selectattr/sort/join attribute=): "a.b" or "0".
Value GetAttributePath(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_dict() || cur.kind() == Kind::kNamespace) {
      const Value* f = cur.dict().Find(part);
      cur = f ? *f : Value::Undefined(absl::StrCat("'dict object' has no attribute '", part, "'"));
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      size_t i = std::stoul(part);
      cur = i < cur.list().size() ? cur.list()[i] : Value::Undefined("index out of range");
    } else {
      cur = Value::Undefined(absl::StrCat("'", TypeName(cur), " object' has no attribute '", part, "'"));
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

namespace {

std::optional<std::string> OptString(const Value* v) {
  if (v == nullptr || v->is_none() || v->is_undefined()) return std::nullopt;
  return ToPyStr(*v);
}

absl::StatusOr<Value> FDefault(Interpreter&, const Value& v, CallArgs& a) {
  const Value* dflt = Arg(a, 0, "default_value");
  const Value* boolean = Arg(a, 1, "boolean");
  bool use_default = v.is_undefined() || (boolean && boolean->Truthy() && !v.Truthy());
  if (!use_default) return v;
  return dflt ? *dflt : Value::String("");
}

absl::StatusOr<Value> FLength(Interpreter&, const Value& v, CallArgs&) {
  LIL_ASSIGN_OR_RETURN(int64_t n, ValueLength(v));
  return Value::Int(n);
}

absl::StatusOr<Value> FTrim(Interpreter&, const Value& v, CallArgs& a) {
  return Value::String(PyStrip(ToPyStr(v), OptString(Arg(a, 0, "chars")), true, true));
}
absl::StatusOr<Value> FUpper(Interpreter&, const Value& v, CallArgs&) { return Value::String(PyUpper(ToPyStr(v))); }
absl::StatusOr<Value> FLower(Interpreter&, const Value& v, CallArgs&) { return Value::String(PyLower(ToPyStr(v))); }
absl::StatusOr<Value> FCapitalize(Interpreter&, const Value& v, CallArgs&) {
  return Value::String(PyCapitalize(ToPyStr(v)));
}
absl::StatusOr<Value> FTitle(Interpreter&, const Value& v, CallArgs&) { return Value::String(JinjaTitle(ToPyStr(v))); }
absl::StatusOr<Value> FString(Interpreter&, const Value& v, CallArgs&) { return Value::String(ToPyStr(v)); }

absl::StatusOr<Value> FReplace(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* old = Arg(a, 0, "old");
  const Value* repl = Arg(a, 1, "new");
  const Value* count = Arg(a, 2, "count");
  if (!old || !repl) return absl::InvalidArgumentError("replace() needs the old and new strings");
  std::string out = PyReplace(ToPyStr(v), ToPyStr(*old), ToPyStr(*repl),
                              count && count->is_number() ? count->int_value() : -1);
  LIL_RETURN_IF_ERROR(in.CheckSize(out.size()));
  return Value::String(std::move(out));
}

absl::StatusOr<Value> FJoin(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* sep = Arg(a, 0, "d");
  const Value* attr = Arg(a, 1, "attribute");
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  std::string out, s = sep ? ToPyStr(*sep) : "";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += s;
    out += ToPyStr(attr ? GetAttributePath(items[i], ToPyStr(*attr)) : items[i]);
    LIL_RETURN_IF_ERROR(in.CheckSize(out.size()));
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> FFirst(Interpreter&, const Value& v, CallArgs&) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}
absl::StatusOr<Value> FLast(Interpreter&, const Value& v, CallArgs&) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

absl::StatusOr<Value> FList(Interpreter&, const Value& v, CallArgs&) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> FReverse(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_string()) {
    std::u32string cps = DecodeUtf8(v.str());
    std::reverse(cps.begin(), cps.end());
    return Value::String(EncodeUtf8(cps));
  }
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

absl::StatusOr<Value> FItems(Interpreter&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::List({});
  if (!v.is_dict()) return absl::InvalidArgumentError("can only get item pairs from a mapping");
  ValueList pairs;
  for (const auto& [k, val] : v.dict().items) pairs.push_back(Value::List({Value::String(k), val}, true));
  return Value::List(std::move(pairs));
}

absl::StatusOr<Value> FDictSort(Interpreter&, const Value& v, CallArgs& a) {
  if (!v.is_dict()) return absl::InvalidArgumentError("dictsort: value is not a mapping");
  const Value* cs = Arg(a, 0, "case_sensitive");
  const Value* by = Arg(a, 1, "by");
  const Value* rev = Arg(a, 2, "reverse");
  bool by_value = by && ToPyStr(*by) == "value";
  bool case_sensitive = cs && cs->Truthy();
  std::vector<std::pair<std::string, Value>> items = v.dict().items;
  absl::Status error;
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    Value kx = by_value ? x.second : Value::String(x.first);
    Value ky = by_value ? y.second : Value::String(y.first);
    if (!case_sensitive && kx.is_string() && ky.is_string()) {
      kx = Value::String(PyLower(kx.str()));
      ky = Value::String(PyLower(ky.str()));
    }
    absl::StatusOr<int> c = Compare(kx, ky);
    if (!c.ok()) error = c.status();
    return c.ok() && *c < 0;
  });
  LIL_RETURN_IF_ERROR(error);
  if (rev && rev->Truthy()) std::reverse(items.begin(), items.end());
  ValueList pairs;
  for (auto& [k, val] : items) pairs.push_back(Value::List({Value::String(k), val}, true));
  return Value::List(std::move(pairs));
}

absl::StatusOr<Value> FToJson(Interpreter& in, const Value& v, CallArgs& a) {
  JsonOptions opt;
  const Value* ensure_ascii = Arg(a, 0, "ensure_ascii");
  const Value* indent = Arg(a, 1, "indent");
  const Value* separators = Arg(a, 2, "separators");
  const Value* sort_keys = Arg(a, 3, "sort_keys");
  opt.ensure_ascii = ensure_ascii && ensure_ascii->Truthy();
  if (indent && !indent->is_none() && !indent->is_undefined()) {
    if (indent->is_string()) {
      opt.indent = indent->str();
    } else if (indent->is_number()) {
      opt.indent = std::string(std::clamp<int64_t>(indent->int_value(), 0, 64), ' ');
    } else {
      return absl::InvalidArgumentError("tojson: indent must be an int or a string");
    }
  }
  if (separators && separators->is_list()) {
    if (separators->list().size() != 2) return absl::InvalidArgumentError("tojson: separators must be a pair");
    opt.item_separator = ToPyStr(separators->list()[0]);
    opt.key_separator = ToPyStr(separators->list()[1]);
  }
  opt.sort_keys = sort_keys && sort_keys->Truthy();
  LIL_ASSIGN_OR_RETURN(std::string json, ToJson(v, opt));
  LIL_RETURN_IF_ERROR(in.CheckSize(json.size()));
  return Value::String(std::move(json));
}

absl::StatusOr<Value> FInt(Interpreter&, const Value& v, CallArgs& a) {
  const Value* dflt = Arg(a, 0, "default");
  Value fallback = dflt ? *dflt : Value::Int(0);
  if (v.is_undefined()) return absl::InvalidArgumentError(v.undefined_hint());  // int(Undefined) raises
  if (v.kind() == Kind::kFloat) {
    double f = v.float_value();
    if (!std::isfinite(f) || std::fabs(f) > 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(f));
  }
  if (v.is_number()) return Value::Int(v.int_value());
  if (v.is_string()) {
    std::string s = PyStrip(v.str(), std::nullopt, true, true);
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end && *end == '\0' && errno == 0) return Value::Int(i);
    double f = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0' && std::isfinite(f) && std::fabs(f) < 9.2e18) {
      return Value::Int(static_cast<int64_t>(f));
    }
  }
  return fallback;
}

absl::StatusOr<Value> FFloat(Interpreter&, const Value& v, CallArgs& a) {
  const Value* dflt = Arg(a, 0, "default");
  if (v.is_undefined()) return absl::InvalidArgumentError(v.undefined_hint());  // float(Undefined) raises
  if (v.is_number()) return Value::Float(v.float_value());
  if (v.is_string()) {
    std::string s = PyStrip(v.str(), std::nullopt, true, true);
    char* end = nullptr;
    double f = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value::Float(f);
  }
  return dflt ? *dflt : Value::Float(0.0);
}

absl::StatusOr<Value> FAbs(Interpreter&, const Value& v, CallArgs&) {
  if (v.kind() == Kind::kFloat) return Value::Float(std::fabs(v.float_value()));
  if (v.is_number() && v.int_value() != INT64_MIN) return Value::Int(std::llabs(v.int_value()));
  return absl::InvalidArgumentError(absl::StrCat("bad operand type for abs(): '", TypeName(v), "'"));
}

absl::StatusOr<Value> FRound(Interpreter&, const Value& v, CallArgs& a) {
  if (!v.is_number()) return absl::InvalidArgumentError("round: value is not a number");
  const Value* prec = Arg(a, 0, "precision");
  const Value* method = Arg(a, 1, "method");
  int64_t p = prec && prec->is_number() ? std::clamp<int64_t>(prec->int_value(), -20, 20) : 0;
  std::string m = method ? ToPyStr(*method) : "common";
  double scale = std::pow(10.0, static_cast<double>(p));
  double x = v.float_value() * scale;
  double r = m == "ceil" ? std::ceil(x) : m == "floor" ? std::floor(x) : std::nearbyint(x);
  if (m != "common" && m != "ceil" && m != "floor") {
    return absl::InvalidArgumentError("round: method must be common, ceil or floor");
  }
  if (m == "common" && v.kind() != Kind::kFloat) return Value::Int(v.int_value());
  return Value::Float(r / scale);
}

absl::StatusOr<Value> FSafe(Interpreter&, const Value& v, CallArgs&) { return Value::String(ToPyStr(v)); }

absl::StatusOr<Value> FEscape(Interpreter&, const Value& v, CallArgs&) {
  std::string out;
  for (char c : ToPyStr(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> FIndent(Interpreter& in, const Value& v, CallArgs& a) {
  const Value* width = Arg(a, 0, "width");
  const Value* first = Arg(a, 1, "first");
  const Value* blank = Arg(a, 2, "blank");
  std::string ind = width && width->is_string() ? width->str()
                    : std::string(width && width->is_number() ? std::clamp<int64_t>(width->int_value(), 0, 256) : 4, ' ');
  std::vector<std::string> lines = PySplitLines(ToPyStr(v) + "\n");
  std::string rv;
  if (blank && blank->Truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else if (!lines.empty()) {
    rv = lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : ind) + lines[i];
  }
  if (first && first->Truthy()) rv = ind + rv;
  LIL_RETURN_IF_ERROR(in.CheckSize(rv.size()));
  return Value::String(std::move(rv));
}

absl::StatusOr<Value> FWordCount(Interpreter&, const Value& v, CallArgs&) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : DecodeUtf8(ToPyStr(v))) {
    bool word = c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= 0xAA && !IsPySpace(c));
    if (word && !in_word) ++n;
    in_word = word;
  }
  return Value::Int(n);
}

absl::StatusOr<Value> FAttr(Interpreter&, const Value& v, CallArgs& a) {
  const Value* name = Arg(a, 0, "name");
  if (!name) return absl::InvalidArgumentError("attr() needs an attribute name");
  if (std::optional<Value> m = GetMethod(v, ToPyStr(*name))) return *m;
  return GetAttributePath(v, ToPyStr(*name));
}

}  // namespace

bool IsIntLikeValue(const Value& v) { return v.kind() == Kind::kInt || v.kind() == Kind::kBool; }

const std::map<std::string_view, FilterFn>& SimpleFilters() {
  static const auto* filters = new std::map<std::string_view, FilterFn>{
      {"abs", FAbs},         {"attr", FAttr},     {"capitalize", FCapitalize}, {"count", FLength},
      {"d", FDefault},       {"default", FDefault}, {"dictsort", FDictSort}, {"e", FEscape},
      {"escape", FEscape},   {"first", FFirst},   {"float", FFloat},     {"indent", FIndent},
      {"int", FInt},         {"items", FItems},   {"join", FJoin},       {"last", FLast},
      {"length", FLength},   {"list", FList},     {"lower", FLower},     {"replace", FReplace},
      {"reverse", FReverse}, {"round", FRound},   {"safe", FSafe},       {"string", FString},
      {"title", FTitle},     {"tojson", FToJson}, {"trim", FTrim},       {"upper", FUpper},
      {"wordcount", FWordCount},
  };
  return *filters;
}

}  // namespace lil::jinja
