// File: engine/chat_template/chat_template.cc
// The public chat template API over the Jinja parser and interpreter.
#include "engine/chat_template/chat_template.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/chat_template/jinja_ast.h"
#include "engine/chat_template/jinja_interpreter.h"
#include "engine/chat_template/jinja_parser.h"

namespace lil {

ChatTemplate::ChatTemplate(std::shared_ptr<const jinja::Template> tmpl) : template_(std::move(tmpl)) {}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::ChatTemplate(const ChatTemplate&) = default;
ChatTemplate& ChatTemplate::operator=(const ChatTemplate&) = default;
ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  auto parsed = jinja::ParseTemplate(source);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("chat template: ", parsed.status().message()));
  }
  return ChatTemplate(std::shared_ptr<const jinja::Template>(*std::move(parsed)));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& context) const {
  // Round-trip through text keeps every value; key order is json's (sorted) either way. Invalid
  // UTF-8 becomes U+FFFD instead of an exception.
  nlohmann::ordered_json ordered;
  try {
    ordered = nlohmann::ordered_json::parse(
        context.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: bad context JSON: ", e.what()));
  }
  return Render(ordered, ChatRenderOptions{});
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context,
                                                 const ChatRenderOptions& options) const {
  if (!context.is_object()) {
    return absl::InvalidArgumentError("chat template: the render context must be a JSON object");
  }
  LIL_ASSIGN_OR_RETURN(jinja::Value root, jinja::Value::FromJson(context));
  jinja::Interpreter interpreter(options);
  auto rendered = interpreter.Render(*template_, root.dict());
  if (!rendered.ok()) {
    return absl::Status(rendered.status().code(),
                        absl::StrCat("chat template: ", rendered.status().message()));
  }
  return rendered;
}

absl::StatusOr<std::string> ChatTemplate::RenderChat(const std::vector<ChatMessage>& messages,
                                                     bool add_generation_prompt,
                                                     const std::string& bos_token,
                                                     const std::string& eos_token) const {
  // transformers passes tools=None and documents=None, and only the special tokens that are
  // set: an empty bos/eos here means "not set" (undefined in the template), as for Qwen's bos.
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    list.push_back({{"role", m.role}, {"content", m.content}});
  }
  context["messages"] = std::move(list);
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  if (!bos_token.empty()) context["bos_token"] = bos_token;
  if (!eos_token.empty()) context["eos_token"] = eos_token;
  return Render(context, ChatRenderOptions{});
}

}  // namespace lil
