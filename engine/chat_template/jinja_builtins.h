// File: engine/chat_template/jinja_builtins.h
// Jinja's built-in filters and tests, Python str/dict methods, and the globals transformers adds
// (raise_exception, strftime_now, namespace, dict) plus range. Filters/tests: jinja_filters.cc;
// methods and globals: jinja_methods.cc.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/chat_template/jinja_value.h"

namespace lil::jinja {

class Interpreter;

bool IsKnownFilter(std::string_view name);
bool IsKnownTest(std::string_view name);

absl::StatusOr<Value> ApplyFilter(Interpreter& interp, std::string_view name, const Value& input,
                                  CallArgs& args);
absl::StatusOr<bool> ApplyTest(Interpreter& interp, std::string_view name, const Value& input,
                               CallArgs& args);

// obj.name when it names a method of a str or dict (bound to obj); nullopt otherwise.
std::optional<Value> GetMethod(const Value& obj, std::string_view name);

// Python's `fmt % rhs` for %s, %r, %d, %i, %(key)s and %%.
absl::StatusOr<std::string> PyPercentFormat(const std::string& fmt, const Value& rhs);

// The globals every render sees.
Dict MakeGlobals();

// Shared by the builtin files.
using FilterFn = absl::StatusOr<Value> (*)(Interpreter&, const Value&, CallArgs&);
const std::map<std::string_view, FilterFn>& SimpleFilters();  // filters without callbacks
absl::StatusOr<int64_t> ValueLength(const Value& v);           // len(v)
absl::StatusOr<ValueList> ValueItems(const Value& v);          // list(v)
Value GetAttributePath(const Value& v, const std::string& path);  // "a.b.0" as map(attribute=)

// Argument access for builtins: positional `index` or keyword `name`.
const Value* Arg(const CallArgs& args, size_t index, std::string_view name);
absl::Status CheckArity(std::string_view fn, const CallArgs& args, size_t max_positional);

}  // namespace lil::jinja
