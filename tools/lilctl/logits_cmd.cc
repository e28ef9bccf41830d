// File: tools/lilctl/logits_cmd.cc
// `lilctl logits`: the engine's logits for a token sequence and its greedy continuation,
// for parity tests against HuggingFace transformers (tests/engine/logit_parity_test.py).
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "engine/single_sequence.h"
#include "tools/lilctl/command.h"
#include "tools/lilctl/model_flags.h"

namespace lil::ctl {
namespace {

struct LogitsFlags {
  ModelFlags model;
  std::string ids;  // JSON array
  int32_t greedy = 32;
  std::string out;
};

void Run(const LogitsFlags& f) {
  nlohmann::json ids = nlohmann::json::parse(f.ids, nullptr, false);
  if (ids.is_discarded() || !ids.is_array() || ids.empty()) {
    std::cerr << "lilctl logits: --ids must be a non-empty JSON array of token ids\n";
    throw CLI::RuntimeError(2);
  }
  std::vector<TokenId> prompt;
  for (const auto& v : ids) {
    if (!v.is_number_integer()) {
      std::cerr << "lilctl logits: --ids holds a non-integer: " << v.dump() << "\n";
      throw CLI::RuntimeError(2);
    }
    prompt.push_back(v.get<TokenId>());
  }
  std::unique_ptr<Model> model = f.model.LoadOrDie();
  SingleSequenceOptions o;
  o.max_tokens = f.greedy;
  o.sampling.temperature = 0.0f;
  o.return_prompt_logits = true;
  auto r = RunSingleSequence(model->backend(), prompt, o);
  if (!r.ok()) {
    std::cerr << "lilctl logits: " << r.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  if (!f.out.empty()) {  // raw float32, [prompt_len x vocab]
    std::ofstream out(f.out, std::ios::binary);
    out.write(reinterpret_cast<const char*>(r->prompt_logits.data()),
              static_cast<std::streamsize>(r->prompt_logits.size() * sizeof(float)));
  }
  nlohmann::json j;
  j["vocab"] = model->config().vocab_size;
  j["prompt_len"] = prompt.size();
  j["greedy"] = r->tokens;
  std::cout << j.dump() << "\n";
}

CommandRegistrar reg([](CLI::App& app) {
  auto flags = std::make_shared<LogitsFlags>();
  CLI::App* cmd = app.add_subcommand("logits", "Print greedy tokens and dump prompt logits");
  flags->model.Add(cmd);
  cmd->add_option("--ids", flags->ids, "prompt token ids as a JSON array")->required();
  cmd->add_option("--greedy", flags->greedy, "greedy tokens to generate")->capture_default_str();
  cmd->add_option("--out", flags->out, "file for the prompt logits (float32, [n x vocab])");
  cmd->callback([flags] { Run(*flags); });
});

}  // namespace
}  // namespace lil::ctl
