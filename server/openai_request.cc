// File: server/openai_request.cc
#include "server/openai_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace lil {
namespace {

namespace v1 = ::lilserve::v1;
using json = nlohmann::json;

// A short rendering of a JSON value for error messages.
std::string Describe(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// OpenAI fields accepted and ignored: they do not change what is generated.
const std::set<std::string>& IgnoredFields() {
  static const auto* s = new std::set<std::string>{"user",
                                                   "store",
                                                   "metadata",
                                                   "service_tier",
                                                   "parallel_tool_calls",
                                                   "prompt_cache_key",
                                                   "safety_identifier"};
  return *s;
}

class Parser {
 public:
  Parser(OpenAiEndpoint endpoint, OpenAiRequest* out, OpenAiError* error)
      : chat_(endpoint == OpenAiEndpoint::kChat), out_(out), error_(error) {
    out_->endpoint = endpoint;
  }

  bool Parse(std::string_view body) {
    json doc;
    try {
      doc = json::parse(body.begin(), body.end());
    } catch (const json::parse_error& e) {
      return Fail("", absl::StrCat("the request body is not valid JSON: ", e.what()));
    }
    if (!doc.is_object()) return Fail("", "the request body must be a JSON object");
    for (const auto& [key, value] : doc.items()) {
      if (value.is_null()) continue;  // null means the default for every optional field
      if (!Field(key, value)) return false;
    }
    if (chat_ && !out_->generate.has_messages()) return Fail("messages", "messages is required");
    if (!chat_ && out_->generate.input_case() == v1::GenerateRequest::INPUT_NOT_SET) {
      return Fail("prompt", "prompt is required");
    }
    if (chat_ && top_logprobs_set_ && !out_->logprobs) {
      return Fail("top_logprobs", "top_logprobs requires logprobs: true");
    }
    if (out_->logprobs) out_->generate.mutable_sampling()->set_logprobs(out_->top_logprobs);
    return true;
  }

 private:
  bool Fail(std::string param, std::string message) {
    error_->http_status = 400;
    error_->type = "invalid_request_error";
    error_->param = std::move(param);
    error_->message = std::move(message);
    return false;
  }
  bool NotSupported(const std::string& field, const std::string& why = "") {
    return Fail(field, absl::StrCat(field, " is not supported",
                                    why.empty() ? std::string() : absl::StrCat(" (", why, ")")));
  }

  bool Number(const std::string& field, const json& v, double* out) {
    if (!v.is_number())
      return Fail(field, absl::StrCat(field, " must be a number, got ", Describe(v)));
    *out = v.get<double>();
    return true;
  }
  bool Float(const std::string& field, const json& v, float* out) {
    double d = 0;
    if (!Number(field, v, &d)) return false;
    *out = static_cast<float>(d);
    return true;
  }
  bool Int64(const std::string& field, const json& v, int64_t* out) {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Fail(field, absl::StrCat(field, " is out of range, got ", Describe(v)));
      }
      *out = static_cast<int64_t>(v.get<uint64_t>());
      return true;
    }
    if (v.is_number_integer()) {
      *out = v.get<int64_t>();
      return true;
    }
    if (v.is_number_float()) {  // 10.0 is an integer too
      const double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 9e15) {
        *out = static_cast<int64_t>(d);
        return true;
      }
    }
    return Fail(field, absl::StrCat(field, " must be an integer, got ", Describe(v)));
  }
  bool Int32(const std::string& field, const json& v, int32_t* out) {
    int64_t x = 0;
    if (!Int64(field, v, &x)) return false;
    if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max()) {
      return Fail(field, absl::StrCat(field, " is out of range, got ", x));
    }
    *out = static_cast<int32_t>(x);
    return true;
  }
  bool Bool(const std::string& field, const json& v, bool* out) {
    if (!v.is_boolean())
      return Fail(field, absl::StrCat(field, " must be true or false, got ", Describe(v)));
    *out = v.get<bool>();
    return true;
  }
  bool String(const std::string& field, const json& v, std::string* out) {
    if (!v.is_string())
      return Fail(field, absl::StrCat(field, " must be a string, got ", Describe(v)));
    *out = v.get<std::string>();
    return true;
  }

  bool Field(const std::string& key, const json& v) {
    v1::SamplingParams* s = out_->generate.mutable_sampling();
    v1::StoppingParams* st = out_->generate.mutable_stopping();
    float f = 0;
    int32_t i32 = 0;
    int64_t i64 = 0;
    bool b = false;
    std::string str;
    // Inputs.
    if (key == "model") return String(key, v, &out_->model);
    if (key == "prompt" && !chat_) return Prompt(v);
    if (key == "messages" && chat_) return Messages(v);
    // Sampling.
    if (key == "temperature") return Float(key, v, &f) && (s->set_temperature(f), true);
    if (key == "top_p") return Float(key, v, &f) && (s->set_top_p(f), true);
    if (key == "top_k") {  // extension; vLLM's -1 means off, as our 0 does
      if (!Int32(key, v, &i32)) return false;
      s->set_top_k(i32 == -1 ? 0 : i32);
      return true;
    }
    if (key == "min_p") return Float(key, v, &f) && (s->set_min_p(f), true);
    if (key == "repetition_penalty")
      return Float(key, v, &f) && (s->set_repetition_penalty(f), true);
    if (key == "seed") {  // any 64-bit integer; negative seeds are as good as positive ones
      if (!Int64(key, v, &i64)) return false;
      s->set_seed(static_cast<uint64_t>(i64));
      return true;
    }
    if (key == "presence_penalty" || key == "frequency_penalty") {
      double d = 0;
      if (!Number(key, v, &d)) return false;
      if (d != 0)
        return NotSupported(key, "only 0; repetition_penalty is the penalty lilserve has");
      return true;
    }
    if (key == "logit_bias") {
      if (!v.is_object())
        return Fail(key, absl::StrCat(key, " must be an object, got ", Describe(v)));
      return v.empty() ? true : NotSupported(key);
    }
    if (key == "logprobs") {
      if (chat_) return Bool(key, v, &out_->logprobs);
      if (!Int32(key, v, &out_->top_logprobs)) return false;
      out_->logprobs = true;
      return true;
    }
    if (key == "top_logprobs" && chat_) {
      top_logprobs_set_ = true;
      return Int32(key, v, &out_->top_logprobs);
    }
    // Stopping.
    if (key == "max_tokens" || (key == "max_completion_tokens" && chat_)) {
      if (!Int32(key, v, &i32)) return false;
      // max_completion_tokens wins over the deprecated max_tokens, whatever the order.
      if (key == "max_tokens" && out_->max_tokens_field == "max_completion_tokens") return true;
      out_->max_tokens_field = key;
      st->set_max_tokens(i32);
      return true;
    }
    if (key == "min_tokens") return Int32(key, v, &i32) && (st->set_min_tokens(i32), true);
    if (key == "stop") return Stop(v);
    if (key == "stop_token_ids") {
      if (!v.is_array())
        return Fail(key, absl::StrCat(key, " must be a list of token ids, got ", Describe(v)));
      for (size_t i = 0; i < v.size(); ++i) {
        if (!Int32(absl::StrCat(key, "[", i, "]"), v[i], &i32)) return false;
        st->add_stop_token_ids(i32);
      }
      return true;
    }
    if (key == "ignore_eos") return Bool(key, v, &b) && (st->set_ignore_eos(b), true);
    if (key == "time_limit_ms") return Int64(key, v, &i64) && (st->set_time_limit_ms(i64), true);
    // Choices and streaming.
    if (key == "n" || (key == "best_of" && !chat_)) {
      if (!Int64(key, v, &i64)) return false;
      if (i64 != 1) {
        return Fail(key,
                    absl::StrCat(key, " must be 1 (lilserve returns one choice per request; send ",
                                 "several requests instead), got ", i64));
      }
      return true;
    }
    if (key == "stream") return Bool(key, v, &out_->stream);
    if (key == "stream_options") return StreamOptions(v);
    if (key == "echo" && !chat_) {
      if (!Bool(key, v, &b)) return false;
      return b ? NotSupported(key) : true;
    }
    if (key == "suffix" && !chat_) {
      if (!String(key, v, &str)) return false;
      return str.empty() ? true : NotSupported(key);
    }
    // Chat features lilserve does not have.
    if (chat_ && (key == "tools" || key == "functions")) {
      if (!v.is_array()) return Fail(key, absl::StrCat(key, " must be a list, got ", Describe(v)));
      return v.empty() ? true : NotSupported(key);
    }
    if (chat_ && (key == "tool_choice" || key == "function_call")) {
      if (v.is_string() && (v.get<std::string>() == "none" || v.get<std::string>() == "auto"))
        return true;
      return NotSupported(key);
    }
    if (chat_ && key == "response_format") {
      if (v.is_object() && v.size() == 1 && v.contains("type") && v["type"] == "text") return true;
      return NotSupported(key, "only {\"type\": \"text\"}");
    }
    if (chat_ && key == "modalities") {
      if (v == json::array({"text"})) return true;
      return NotSupported(key, "only [\"text\"]");
    }
    // lilserve's own extensions, with the gRPC API's fields.
    if (key == "sparse") return Extension("sparse", v, out_->generate.mutable_sparse());
    if (key == "monitor") return Extension("monitor", v, out_->generate.mutable_monitor());
    if (key == "priority") return Int32(key, v, &i32) && (out_->generate.set_priority(i32), true);
    if (key == "return_token_ids") return Bool(key, v, &out_->return_token_ids);
    if (IgnoredFields().count(key) > 0) return true;
    return Fail(key, absl::StrCat("unrecognized request argument supplied: ", key));
  }

  bool Prompt(const json& v) {
    if (v.is_string()) {
      out_->generate.set_prompt(v.get<std::string>());
      return true;
    }
    if (!v.is_array()) {
      return Fail("prompt", absl::StrCat("prompt must be a string or a list of token ids, got ",
                                         Describe(v)));
    }
    if (v.empty()) return Fail("prompt", "prompt is empty");
    const json* ids = &v;
    if (v[0].is_string() || v[0].is_array()) {
      if (v.size() != 1) {
        return Fail("prompt",
                    absl::StrCat("prompt: a batch of ", v.size(),
                                 " prompts is not supported; send one request per prompt"));
      }
      if (v[0].is_string()) {
        out_->generate.set_prompt(v[0].get<std::string>());
        return true;
      }
      ids = &v[0];
    }
    v1::TokenIds* t = out_->generate.mutable_token_ids();
    for (size_t i = 0; i < ids->size(); ++i) {
      int32_t id = 0;
      if (!Int32(absl::StrCat("prompt[", i, "]"), (*ids)[i], &id)) return false;
      t->add_ids(id);
    }
    return true;
  }

  bool Messages(const json& v) {
    if (!v.is_array())
      return Fail("messages", absl::StrCat("messages must be a list, got ", Describe(v)));
    v1::Messages* msgs =
        out_->generate.mutable_messages();  // set even when empty: "messages is empty"
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string at = absl::StrCat("messages[", i, "]");
      const json& m = v[i];
      if (!m.is_object())
        return Fail(at, absl::StrCat(at, " must be an object, got ", Describe(m)));
      v1::ChatMessage* out = msgs->add_messages();
      for (const auto& [key, value] : m.items()) {
        const std::string field = absl::StrCat(at, ".", key);
        if (key == "role") {
          std::string role;
          if (!String(field, value, &role)) return false;
          out->set_role(role == "developer" ? "system" : role);  // OpenAI's newer name
        } else if (key == "content") {
          if (!Content(field, value, out->mutable_content())) return false;
        } else if (key == "name") {
          continue;
        } else if (value.is_null() || (value.is_array() && value.empty())) {
          continue;
        } else if (key == "tool_calls" || key == "tool_call_id" || key == "function_call" ||
                   key == "audio" || key == "refusal") {
          return NotSupported(field);
        } else {
          return Fail(field, absl::StrCat("unrecognized message field: ", field));
        }
      }
      if (!m.contains("role")) return Fail(at + ".role", absl::StrCat(at, ".role is required"));
    }
    return true;
  }

  // A string, or a list of {"type": "text", "text": ...} parts (joined with newlines).
  bool Content(const std::string& field, const json& v, std::string* out) {
    if (v.is_null()) return true;
    if (v.is_string()) {
      *out = v.get<std::string>();
      return true;
    }
    if (!v.is_array()) {
      return Fail(field, absl::StrCat(field, " must be a string or a list of text parts, got ",
                                      Describe(v)));
    }
    for (size_t j = 0; j < v.size(); ++j) {
      const std::string part = absl::StrCat(field, "[", j, "]");
      const json& p = v[j];
      if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
        return Fail(part,
                    absl::StrCat(part, " must be an object with a \"type\", got ", Describe(p)));
      }
      if (p["type"] != "text") {
        return Fail(part + ".type", absl::StrCat(part, ".type ", Describe(p["type"]),
                                                 " is not supported (only \"text\")"));
      }
      std::string text;
      if (!p.contains("text") || !String(part + ".text", p["text"], &text)) {
        return Fail(part + ".text", absl::StrCat(part, ".text must be a string"));
      }
      if (j > 0) out->append("\n");
      out->append(text);
    }
    return true;
  }

  bool Stop(const json& v) {
    v1::StoppingParams* st = out_->generate.mutable_stopping();
    if (v.is_string()) {
      st->add_stop(v.get<std::string>());
      return true;
    }
    if (!v.is_array()) {
      return Fail("stop",
                  absl::StrCat("stop must be a string or a list of strings, got ", Describe(v)));
    }
    for (size_t i = 0; i < v.size(); ++i) {
      std::string s;
      if (!String(absl::StrCat("stop[", i, "]"), v[i], &s)) return false;
      st->add_stop(s);
    }
    return true;
  }

  bool StreamOptions(const json& v) {
    if (!v.is_object())
      return Fail("stream_options",
                  absl::StrCat("stream_options must be an object, got ", Describe(v)));
    for (const auto& [key, value] : v.items()) {
      const std::string field = absl::StrCat("stream_options.", key);
      if (value.is_null()) continue;
      if (key == "include_usage") {
        if (!Bool(field, value, &out_->include_usage)) return false;
      } else if (key == "continuous_usage_stats" || key == "include_obfuscation") {
        bool ignored = false;
        if (!Bool(field, value, &ignored)) return false;
      } else {
        return Fail(field, absl::StrCat("unrecognized field ", field));
      }
    }
    return true;
  }

  // Our `sparse` and `monitor` extensions: a JSON object with the fields of the .proto message
  // (v1::SparseParams / v1::MonitorParams) by name, so both APIs accept the same fields. Enum
  // fields take the value's lower-case name.
  bool Extension(const std::string& name, const json& v, google::protobuf::Message* msg) {
    if (!v.is_object()) return Fail(name, absl::StrCat(name, " must be an object, got ", Describe(v)));
    const google::protobuf::Descriptor* d = msg->GetDescriptor();
    const google::protobuf::Reflection* r = msg->GetReflection();
    for (const auto& [key, value] : v.items()) {
      const std::string field = absl::StrCat(name, ".", key);
      if (value.is_null()) continue;
      const google::protobuf::FieldDescriptor* f = d->FindFieldByName(key);
      if (f == nullptr) {
        std::vector<std::string> keys;
        for (int k = 0; k < d->field_count(); ++k) keys.push_back(d->field(k)->name());
        return Fail(field, absl::StrCat("unrecognized field ", field, " (", name, " has ",
                                        absl::StrJoin(keys, ", "), ")"));
      }
      switch (f->cpp_type()) {
        case google::protobuf::FieldDescriptor::CPPTYPE_ENUM: {
          std::string m;
          if (!String(field, value, &m)) return false;
          const google::protobuf::EnumDescriptor* e = f->enum_type();
          const google::protobuf::EnumValueDescriptor* ev = e->FindValueByName(absl::AsciiStrToUpper(m));
          if (ev == nullptr || ev->number() == 0) {  // 0 is *_UNSPECIFIED: not a choice
            std::vector<std::string> names;
            for (int k = 1; k < e->value_count(); ++k) names.push_back(absl::AsciiStrToLower(e->value(k)->name()));
            const std::string last = names.back();
            names.pop_back();
            return Fail(field, absl::StrCat(field, " must be ", absl::StrJoin(names, ", "), " or ", last,
                                            ", got ", Describe(value)));
          }
          r->SetEnum(msg, f, ev);
          break;
        }
        case google::protobuf::FieldDescriptor::CPPTYPE_INT32: {
          int32_t x = 0;
          if (!Int32(field, value, &x)) return false;
          r->SetInt32(msg, f, x);
          break;
        }
        case google::protobuf::FieldDescriptor::CPPTYPE_STRING: {
          std::string t;
          if (!String(field, value, &t)) return false;
          r->SetString(msg, f, t);
          break;
        }
        default:
          return Fail(field, absl::StrCat(field, " is not settable over HTTP"));
      }
    }
    return true;
  }

  const bool chat_;
  OpenAiRequest* out_;
  OpenAiError* error_;
  bool top_logprobs_set_ = false;
};

}  // namespace

bool ParseOpenAiRequest(OpenAiEndpoint endpoint, std::string_view body, OpenAiRequest* out,
                        OpenAiError* error) {
  return Parser(endpoint, out, error).Parse(body);
}

}  // namespace lil
