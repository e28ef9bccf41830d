// File: engine/model.h
// A loaded model: its config, tokenizer, chat template and the backend holding its weights.
// Model::Load takes a HuggingFace directory or a GGUF file and picks the device.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/chat_template/chat_template.h"
#include "engine/model_config.h"
#include "engine/tokenizer/tokenizer.h"

namespace lil {

enum class DeviceKind { kAuto, kCpu, kCuda };

struct LoadOptions {
  DeviceKind device = DeviceKind::kCpu;
  KvCacheOptions kv;
  // Ranks of tensor parallelism (docs/PARALLEL.md); must divide the model's query and KV
  // heads. The CPU device runs the ranks on threads of this process (kv.kv_bytes is each
  // rank's); the CUDA device needs the NCCL backend (not built yet) for more than 1.
  int32_t tensor_parallel = 1;
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path,
                                                     const LoadOptions& options);

  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  Backend& backend() { return *backend_; }
  // Tokens that end generation: the config's eos ids and the tokenizer's eos.
  const std::vector<TokenId>& eos_ids() const { return eos_ids_; }

  // Renders messages with the model's chat template (add_generation_prompt true);
  // FAILED_PRECONDITION when the model has none.
  absl::StatusOr<std::string> RenderChat(const std::vector<ChatMessage>& messages) const;

 private:
  Model() = default;
  std::string path_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  std::unique_ptr<Backend> backend_;
  std::vector<TokenId> eos_ids_;
};

}  // namespace lil
