// File: tools/lilctl/model_flags.h
// Flags shared by the in-process subcommands that load a model (generate, logits, bench).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/model.h"

namespace lil::ctl {

struct ModelFlags {
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string device = "cpu";
  int32_t page_size = 16;
  int64_t kv_mib = 256;
  int32_t tensor_parallel = 1;

  void Add(CLI::App* cmd);
  // Loads the model or prints the error and throws CLI::RuntimeError.
  std::unique_ptr<Model> LoadOrDie() const;
};

}  // namespace lil::ctl
