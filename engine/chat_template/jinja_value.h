// File: engine/chat_template/jinja_value.h
// The values a chat template computes with: Python's None/bool/int/float/str/list/tuple/dict plus
// Jinja's Undefined, namespace() objects and callables (macros, methods, globals).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace lil::jinja {

class Value;
using ValueList = std::vector<Value>;

// An insertion-ordered dict with string keys (Python dicts keep insertion order; tojson shows it).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(std::string_view key) const;
  void Set(std::string key, Value value);
};

// Arguments of a call: f(a, b, key=c).
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class Interpreter;
using NativeFunction = std::function<absl::StatusOr<Value>(Interpreter&, CallArgs&)>;

struct Callable {
  std::string name;  // for error messages
  NativeFunction fn;
};

constexpr int kMaxValueDepth = 256;

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

// A cheap-to-copy immutable value (strings, lists and dicts are shared); only a namespace is
// mutable, and it is shared by reference as in Python.
class Value {
 public:
  Value() = default;  // undefined
  static Value Undefined(std::string hint = "");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(ValueList items, bool is_tuple = false);
  static Value MakeDict(Dict dict);
  static Value Namespace(Dict attrs);
  static Value Function(std::string name, NativeFunction fn);
  // nlohmann::json objects sort keys, ordered_json keeps them; both convert. Fails on nesting
  // deeper than kMaxValueDepth.
  static absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j, int depth = 0);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }

  bool bool_value() const { return int_ != 0; }
  int64_t int_value() const { return int_; }  // also bools (Python's True == 1)
  double float_value() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& str() const;
  const ValueList& list() const;
  const Dict& dict() const;          // kDict or kNamespace
  Dict& mutable_namespace() const;   // kNamespace only
  const Callable& callable() const;
  const std::string& undefined_hint() const { return str(); }

  bool Truthy() const;
  // Nesting depth of lists/dicts (scalars 0). Everything recursive (repr, tojson, ==) is bounded
  // because the interpreter refuses values deeper than kMaxValueDepth.
  int depth() const { return depth_; }

 private:
  Kind kind_ = Kind::kUndefined;
  bool is_tuple_ = false;
  int depth_ = 0;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> str_;  // string, or the name an undefined came from
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<Dict> dict_;  // const for kDict by convention; shared mutable for kNamespace
  std::shared_ptr<const Callable> fn_;
};

// Python type name for error messages ("str", "int", "list", "dict", "NoneType", "Undefined").
std::string TypeName(const Value& v);

// Python ==.
bool Equals(const Value& a, const Value& b);
// Python <: -1 / 0 / 1, or an error for unorderable types ("'<' not supported between ...").
absl::StatusOr<int> Compare(const Value& a, const Value& b);

}  // namespace lil::jinja
