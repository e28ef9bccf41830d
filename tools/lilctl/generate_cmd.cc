// File: tools/lilctl/generate_cmd.cc
// `lilctl generate`: in-process generation that streams text as it is produced.
#include <chrono>
#include <iostream>

#include "engine/single_sequence.h"
#include "tools/lilctl/command.h"
#include "tools/lilctl/model_flags.h"

namespace lil::ctl {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  bool chat = false;
  int32_t max_tokens = 128;
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  int64_t seed = -1;
  bool ignore_eos = false;
};

void Run(const GenerateFlags& f) {
  std::unique_ptr<Model> model = f.model.LoadOrDie();
  std::string text = f.prompt;
  if (f.chat) {
    auto rendered = model->RenderChat({{"user", f.prompt}});
    if (!rendered.ok()) {
      std::cerr << "lilctl: " << rendered.status().message() << "\n";
      throw CLI::RuntimeError(1);
    }
    text = *rendered;
  }
  const std::vector<TokenId> prompt = model->tokenizer().Encode(text, /*add_special_tokens=*/!f.chat);
  SingleSequenceOptions o;
  o.max_tokens = f.max_tokens;
  o.sampling.temperature = f.temperature;
  o.sampling.top_k = f.top_k;
  o.sampling.top_p = f.top_p;
  o.sampling.min_p = f.min_p;
  o.sampling.repetition_penalty = f.repetition_penalty;
  if (f.seed >= 0) o.sampling.seed = static_cast<uint64_t>(f.seed);
  if (!f.ignore_eos) o.stop_ids = model->eos_ids();

  IncrementalDetokenizer detok(model->tokenizer(), /*skip_special_tokens=*/true);
  const auto start = std::chrono::steady_clock::now();
  auto first = start;
  int32_t n = 0;
  auto result = RunSingleSequence(model->backend(), prompt, o, [&](TokenId t) {
    if (n++ == 0) first = std::chrono::steady_clock::now();
    std::cout << detok.Push(t) << std::flush;
    return true;
  });
  if (!result.ok()) {
    std::cerr << "\nlilctl: generation failed: " << result.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  std::cout << detok.Flush() << "\n";
  const auto end = std::chrono::steady_clock::now();
  const double ttft = std::chrono::duration<double>(first - start).count();
  const double decode = std::chrono::duration<double>(end - first).count();
  std::cerr << "[" << prompt.size() << " prompt tokens, " << result->tokens.size()
            << " generated; time to first token " << ttft * 1e3 << " ms; decode "
            << (result->tokens.size() > 1 ? (result->tokens.size() - 1) / decode : 0.0)
            << " tokens/s]\n";
}

CommandRegistrar reg([](CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text in-process and stream it");
  flags->model.Add(cmd);
  cmd->add_option("--prompt", flags->prompt, "prompt text")->required();
  cmd->add_flag("--chat", flags->chat, "wrap the prompt as a user message in the chat template");
  cmd->add_option("--max-tokens", flags->max_tokens, "tokens to generate at most")->capture_default_str();
  cmd->add_option("--temperature", flags->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--top-k", flags->top_k, "0 is off")->capture_default_str();
  cmd->add_option("--top-p", flags->top_p)->capture_default_str();
  cmd->add_option("--min-p", flags->min_p)->capture_default_str();
  cmd->add_option("--repetition-penalty", flags->repetition_penalty)->capture_default_str();
  cmd->add_option("--seed", flags->seed, "-1 is random")->capture_default_str();
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "keep generating past EOS");
  cmd->callback([flags] { Run(*flags); });
});

}  // namespace
}  // namespace lil::ctl
