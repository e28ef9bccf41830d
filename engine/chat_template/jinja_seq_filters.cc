// File: engine/chat_template/jinja_seq_filters.cc
// Filters that call back into the interpreter (map, select/reject[attr]) or order values (sort,
// unique, min, max, sum), and the filter dispatcher.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_builtins.h"
#include "engine/chat_template/jinja_format.h"
#include "engine/chat_template/jinja_interpreter.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

// Arguments after the first `skip` positional ones, keywords dropped.
CallArgs RestArgs(const CallArgs& a, size_t skip) {
  CallArgs rest;
  for (size_t i = skip; i < a.positional.size(); ++i) rest.positional.push_back(a.positional[i]);
  return rest;
}

// select/reject/selectattr/rejectattr.
absl::StatusOr<Value> Select(Interpreter& in, const Value& v, CallArgs& a, bool by_attr, bool keep) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  std::string attr;
  size_t next = 0;
  if (by_attr) {
    if (a.positional.empty()) return absl::InvalidArgumentError("selectattr/rejectattr need an attribute name");
    attr = ToPyStr(a.positional[0]);
    next = 1;
  }
  std::optional<std::string> test;
  if (a.positional.size() > next) test = ToPyStr(a.positional[next]);
  if (test && !IsKnownTest(*test)) return absl::InvalidArgumentError(absl::StrCat("no test named '", *test, "'"));
  CallArgs test_args = RestArgs(a, next + 1);
  ValueList out;
  for (const Value& item : items) {
    Value subject = by_attr ? GetAttributePath(item, attr) : item;
    bool ok = subject.Truthy();
    if (test) {
      CallArgs args = test_args;
      LIL_ASSIGN_OR_RETURN(ok, ApplyTest(in, *test, subject, args));
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Map(Interpreter& in, const Value& v, CallArgs& a) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  ValueList out;
  if (const Value* attr = Arg(a, 99, "attribute")) {
    const Value* dflt = Arg(a, 99, "default");
    for (const Value& item : items) {
      Value got = GetAttributePath(item, ToPyStr(*attr));
      out.push_back(got.is_undefined() && dflt ? *dflt : got);
    }
    return Value::List(std::move(out));
  }
  if (a.positional.empty()) return absl::InvalidArgumentError("map() needs a filter name or attribute=");
  std::string filter = ToPyStr(a.positional[0]);
  if (!IsKnownFilter(filter)) return absl::InvalidArgumentError(absl::StrCat("no filter named '", filter, "'"));
  CallArgs rest = RestArgs(a, 1);
  rest.keyword = a.keyword;
  for (const Value& item : items) {
    CallArgs args = rest;
    LIL_ASSIGN_OR_RETURN(Value r, ApplyFilter(in, filter, item, args));
    out.push_back(std::move(r));
  }
  return Value::List(std::move(out));
}

// Sort key: the attribute if given, lower-cased strings unless case_sensitive.
Value SortKey(const Value& item, const Value* attr, bool case_sensitive) {
  Value key = attr ? GetAttributePath(item, ToPyStr(*attr)) : item;
  if (!case_sensitive && key.is_string()) return Value::String(PyLower(key.str()));
  return key;
}

absl::StatusOr<Value> Sort(Interpreter&, const Value& v, CallArgs& a) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  const Value* rev = Arg(a, 0, "reverse");
  const Value* cs = Arg(a, 1, "case_sensitive");
  const Value* attr = Arg(a, 2, "attribute");
  bool case_sensitive = cs && cs->Truthy();
  absl::Status error;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    absl::StatusOr<int> c = Compare(SortKey(x, attr, case_sensitive), SortKey(y, attr, case_sensitive));
    if (!c.ok()) error = c.status();
    return c.ok() && *c < 0;
  });
  LIL_RETURN_IF_ERROR(error);
  if (rev && rev->Truthy()) std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

absl::StatusOr<Value> Unique(Interpreter&, const Value& v, CallArgs& a) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  const Value* cs = Arg(a, 0, "case_sensitive");
  const Value* attr = Arg(a, 1, "attribute");
  ValueList out, seen;
  for (const Value& item : items) {
    Value key = SortKey(item, attr, cs && cs->Truthy());
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); });
    if (dup) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> MinMax(const Value& v, CallArgs& a, bool want_max) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  const Value* cs = Arg(a, 0, "case_sensitive");
  const Value* attr = Arg(a, 1, "attribute");
  if (items.empty()) return Value::Undefined(want_max ? "No aggregated item, sequence was empty." : "No aggregated item, sequence was empty.");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    LIL_ASSIGN_OR_RETURN(int c, Compare(SortKey(items[i], attr, cs && cs->Truthy()),
                                        SortKey(items[best], attr, cs && cs->Truthy())));
    if (want_max ? c > 0 : c < 0) best = i;
  }
  return items[best];
}

absl::StatusOr<Value> Sum(Interpreter& in, const Value& v, CallArgs& a) {
  LIL_ASSIGN_OR_RETURN(ValueList items, ValueItems(v));
  const Value* attr = Arg(a, 0, "attribute");
  const Value* start = Arg(a, 1, "start");
  Value total = start ? *start : Value::Int(0);
  for (const Value& item : items) {
    Value x = attr ? GetAttributePath(item, ToPyStr(*attr)) : item;
    if (!total.is_number() || !x.is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("sum: unsupported operand types '", TypeName(total), "' and '", TypeName(x), "'"));
    }
    if (total.kind() == Kind::kFloat || x.kind() == Kind::kFloat) {
      total = Value::Float(total.float_value() + x.float_value());
    } else {
      int64_t r;
      if (__builtin_add_overflow(total.int_value(), x.int_value(), &r)) return absl::OutOfRangeError("integer overflow");
      total = Value::Int(r);
    }
  }
  return total;
}

}  // namespace

bool IsKnownFilter(std::string_view name) {
  static const char* kSeq[] = {"map", "select", "reject", "selectattr", "rejectattr",
                               "sort", "unique", "min", "max", "sum"};
  for (const char* n : kSeq) {
    if (name == n) return true;
  }
  return SimpleFilters().count(name) > 0;
}

absl::StatusOr<Value> ApplyFilter(Interpreter& in, std::string_view name, const Value& input, CallArgs& args) {
  auto it = SimpleFilters().find(name);
  absl::StatusOr<Value> result;
  if (it != SimpleFilters().end()) {
    result = it->second(in, input, args);
  } else if (name == "map") {
    result = Map(in, input, args);
  } else if (name == "select" || name == "reject") {
    result = Select(in, input, args, false, name == "select");
  } else if (name == "selectattr" || name == "rejectattr") {
    result = Select(in, input, args, true, name == "selectattr");
  } else if (name == "sort") {
    result = Sort(in, input, args);
  } else if (name == "unique") {
    result = Unique(in, input, args);
  } else if (name == "min" || name == "max") {
    result = MinMax(input, args, name == "max");
  } else if (name == "sum") {
    result = Sum(in, input, args);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("no filter named '", std::string(name), "'"));
  }
  if (!result.ok()) {
    return absl::Status(result.status().code(), absl::StrCat("filter '", std::string(name), "': ", result.status().message()));
  }
  return result;
}

}  // namespace lil::jinja
