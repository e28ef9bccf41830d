// File: engine/chat_template/chat_template.h
// Renders a model's own Jinja chat template (tokenizer_config.json "chat_template" or GGUF
// tokenizer.chat_template) byte-identically to HF transformers' apply_chat_template.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace lil {

namespace jinja {
struct Template;  // the parsed AST (engine/chat_template/jinja_ast.h)
}  // namespace jinja

struct ChatMessage {
  std::string role;
  std::string content;
};

// Limits that keep a hostile template from crashing or hanging the daemon.
struct ChatTemplateLimits {
  int64_t max_output_bytes = 16 << 20;   // rendered text
  int max_call_depth = 64;               // nested macro calls / recursive evaluation
  int64_t max_loop_iterations = 1 << 20;  // summed over all for loops of one render
};

struct ChatRenderOptions {
  ChatTemplateLimits limits;
  // What strftime_now() sees, in seconds since the epoch (local time as Python's datetime.now,
  // i.e. the process TZ). Unset: the real clock. Tests set it so renderings are reproducible.
  std::optional<int64_t> now_unix_seconds;
};

class ChatTemplate {
 public:
  // Parses a Jinja template with transformers' settings (trim_blocks, lstrip_blocks, loop
  // controls, {% generation %}); errors name line and column.
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source);

  // Renders with an arbitrary JSON context (messages, add_generation_prompt, bos_token,
  // eos_token, tools, ...). Object key order matters for tojson; ordered_json keeps the
  // caller's order, json sorts keys.
  absl::StatusOr<std::string> Render(const nlohmann::json& context) const;
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                                     const ChatRenderOptions& options = {}) const;

  // The common case: messages + add_generation_prompt + bos/eos token texts, with tools and
  // documents set to none as transformers passes them.
  absl::StatusOr<std::string> RenderChat(const std::vector<ChatMessage>& messages,
                                         bool add_generation_prompt, const std::string& bos_token,
                                         const std::string& eos_token) const;

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ChatTemplate(const ChatTemplate&);
  ChatTemplate& operator=(const ChatTemplate&);
  ~ChatTemplate();

 private:
  explicit ChatTemplate(std::shared_ptr<const jinja::Template> tmpl);
  std::shared_ptr<const jinja::Template> template_;  // immutable, shared by copies
};

}  // namespace lil
