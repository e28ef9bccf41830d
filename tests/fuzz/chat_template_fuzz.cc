// File: tests/fuzz/chat_template_fuzz.cc
// The Jinja chat-template interpreter on arbitrary input. The first byte picks the mode:
//   even: the rest is "template \0 message \0 message ..." - a hostile template (as a model
//         file could carry) is parsed and rendered under the default limits: a status or a
//         string, never a crash, a hang or unbounded memory;
//   odd:  the real default-model template (SmolLM2's) renders arbitrary message contents, as
//         a request controls them: it must succeed and contain every content verbatim (a
//         message is data, never template code).
#include <optional>
#include <string>
#include <vector>

#include "engine/chat_template/chat_template.h"
#include "engine/format/gguf_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const std::optional<lil::ChatTemplate>& ModelTemplate() {
  static const std::optional<lil::ChatTemplate> t = []() -> std::optional<lil::ChatTemplate> {
    auto spec = lil::ReadGgufTokenizerSpec(lil::fuzz::RepoPath("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if (!spec.ok()) return std::nullopt;
    auto parsed = lil::ChatTemplate::Parse(spec->chat_template);
    if (!parsed.ok()) return std::nullopt;
    return std::move(*parsed);
  }();
  return t;
}

std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t nul = s.find('\0', start);
    parts.push_back(s.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
    if (nul == std::string::npos) break;
    start = nul + 1;
  }
  return parts;
}

const char* kRoles[] = {"system", "user", "assistant", "tool"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ModelTemplate();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 8192) return 0;
  const bool model_mode = (data[0] & 1) != 0;
  std::vector<std::string> parts = SplitNul(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  if (model_mode) {
    const auto& tmpl = ModelTemplate();
    FUZZ_CHECK(tmpl.has_value(), "the default model's chat template did not load");
    std::vector<lil::ChatMessage> messages;
    for (size_t i = 0; i < parts.size(); ++i) messages.push_back({kRoles[((data[0] >> 1) + i) & 3], parts[i]});
    auto out = tmpl->RenderChat(messages, true, "<|im_start|>", "<|im_end|>");
    FUZZ_CHECK(out.ok(), "the model template failed on request data: %s",
               std::string(out.status().message()).c_str());
    for (const auto& m : messages) {
      FUZZ_CHECK(out->find(m.content) != std::string::npos, "a message content is not in the output");
    }
    return 0;
  }
  auto tmpl = lil::ChatTemplate::Parse(parts[0]);
  if (!tmpl.ok()) return 0;
  std::vector<lil::ChatMessage> messages;
  for (size_t i = 1; i < parts.size(); ++i) messages.push_back({kRoles[i & 3], parts[i]});
  auto out = tmpl->RenderChat(messages, (data[0] & 2) != 0, "<s>", "</s>");
  if (out.ok()) {
    FUZZ_CHECK(out->size() <= static_cast<size_t>(lil::ChatTemplateLimits{}.max_output_bytes),
               "output of %zu bytes is over the limit", out->size());
  }
  return 0;
}
