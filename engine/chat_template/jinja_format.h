// File: engine/chat_template/jinja_format.h
// Values as text: Python's str() and repr(), and json.dumps as transformers' tojson filter calls
// it (ensure_ascii=False by default, indent / separators / sort_keys).
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/chat_template/jinja_value.h"

namespace lil::jinja {

// str(v); Undefined prints as "" (Jinja's default Undefined).
std::string ToPyStr(const Value& v);
// repr(v), as Python prints list items and dict keys/values.
std::string ToPyRepr(const Value& v);

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // unset: one line; "" or spaces: pretty-printed
  std::optional<std::string> item_separator;  // default ", " (one line) or "," (indented)
  std::optional<std::string> key_separator;   // default ": "
  bool sort_keys = false;
};

// json.dumps(v); errors for values JSON cannot hold (Undefined, functions).
absl::StatusOr<std::string> ToJson(const Value& v, const JsonOptions& options);

}  // namespace lil::jinja
