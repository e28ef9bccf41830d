// File: engine/chat_template/jinja_format.cc
// Python str()/repr() and json.dumps over template values.
#include "engine/chat_template/jinja_format.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_text.h"

namespace lil::jinja {
namespace {

constexpr int kMaxJsonDepth = 128;

std::string ReprList(const Value& v) {
  const ValueList& items = v.list();
  std::string out = v.is_tuple() ? "(" : "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += ToPyRepr(items[i]);
  }
  if (v.is_tuple() && items.size() == 1) out += ",";
  out += v.is_tuple() ? ")" : "]";
  return out;
}

std::string ReprDict(const Dict& d) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, val] : d.items) {
    if (!first) out += ", ";
    first = false;
    out += PyStrRepr(k) + ": " + ToPyRepr(val);
  }
  return out + "}";
}

std::string JsonNumber(const Value& v) {
  if (v.kind() == Kind::kBool) return v.bool_value() ? "true" : "false";
  if (v.kind() == Kind::kInt) return std::to_string(v.int_value());
  double f = v.float_value();
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return PyFloatRepr(f);
}

absl::Status DumpJson(const Value& v, const JsonOptions& opt, int depth, std::string* out) {
  if (depth > kMaxJsonDepth) return absl::InvalidArgumentError("tojson: value nested too deeply");
  const std::string item_sep = opt.item_separator.value_or(opt.indent ? "," : ", ");
  const std::string key_sep = opt.key_separator.value_or(": ");
  auto newline = [&](int level) {
    if (!opt.indent) return;
    out->push_back('\n');
    for (int i = 0; i < level; ++i) out->append(*opt.indent);
  };
  switch (v.kind()) {
    case Kind::kNone:
      out->append("null");
      return absl::OkStatus();
    case Kind::kBool:
    case Kind::kInt:
    case Kind::kFloat:
      out->append(JsonNumber(v));
      return absl::OkStatus();
    case Kind::kString:
      out->append(JsonQuote(v.str(), opt.ensure_ascii));
      return absl::OkStatus();
    case Kind::kList: {
      if (v.list().empty()) {
        out->append("[]");
        return absl::OkStatus();
      }
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.list()) {
        if (!first) out->append(item_sep);
        first = false;
        newline(depth + 1);
        LIL_RETURN_IF_ERROR(DumpJson(item, opt, depth + 1, out));
      }
      newline(depth);
      out->push_back(']');
      return absl::OkStatus();
    }
    case Kind::kDict: {
      if (v.dict().items.empty()) {
        out->append("{}");
        return absl::OkStatus();
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict().items) items.push_back(&kv);
      if (opt.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out->push_back('{');
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out->append(item_sep);
        first = false;
        newline(depth + 1);
        out->append(JsonQuote(kv->first, opt.ensure_ascii));
        out->append(key_sep);
        LIL_RETURN_IF_ERROR(DumpJson(kv->second, opt, depth + 1, out));
      }
      newline(depth);
      out->push_back('}');
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("tojson: object of type ", TypeName(v), " is not JSON serializable"));
  }
}

}  // namespace

std::string ToPyStr(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return v.str();
    default:
      return ToPyRepr(v);
  }
}

std::string ToPyRepr(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.bool_value() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.int_value());
    case Kind::kFloat:
      return PyFloatRepr(v.float_value());
    case Kind::kString:
      return PyStrRepr(v.str());
    case Kind::kList:
      return ReprList(v);
    case Kind::kDict:
      return ReprDict(v.dict());
    case Kind::kNamespace: {
      // A namespace can hold itself; show nested ones without recursing.
      static thread_local int namespace_depth = 0;
      if (namespace_depth > 0) return "<Namespace ...>";
      ++namespace_depth;
      std::string out = "<Namespace " + ReprDict(v.dict()) + ">";
      --namespace_depth;
      return out;
    }
    case Kind::kCallable:
      return "<function " + v.callable().name + ">";
  }
  return "";
}

absl::StatusOr<std::string> ToJson(const Value& v, const JsonOptions& options) {
  std::string out;
  LIL_RETURN_IF_ERROR(DumpJson(v, options, 0, &out));
  return out;
}

}  // namespace lil::jinja
