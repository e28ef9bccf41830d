// File: engine/model_config.h
// The architecture hyper-parameters of a Llama-family model, read from a HuggingFace
// config.json (+ generation_config.json) or from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ids.h"

namespace lil {

class GgufFile;

enum class ModelFamily { kLlama, kMistral, kQwen2, kQwen3 };
std::string_view ModelFamilyName(ModelFamily f);

struct RopeScaling {
  enum class Kind { kNone, kLinear, kLlama3 } kind = Kind::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int32_t original_max_position = 8192;
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kLlama;
  std::string architecture;  // e.g. "LlamaForCausalLM" or GGUF's "llama"
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t num_layers = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  int32_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2)
  bool qk_norm = false;         // per-head RMSNorm of q and k before RoPE (Qwen3)
  std::vector<TokenId> eos_token_ids;  // from generation_config.json / config / GGUF
  std::vector<float> rope_freq_factors;  // GGUF rope_freqs.weight (Llama 3.1 scaling), may be empty

  int32_t q_dim() const { return num_heads * head_dim; }
  int32_t kv_dim() const { return num_kv_heads * head_dim; }
  // The rotary inverse frequencies after scaling, [head_dim / 2].
  std::vector<float> RopeInvFreq() const;
  // A clear error if the hyper-parameters are inconsistent (heads not dividing, zeros, ...).
  absl::Status Validate() const;
};

// Reads config.json (and generation_config.json when present) of a HuggingFace model dir.
absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& model_dir);
// Reads the {arch}.* metadata of a GGUF file.
absl::StatusOr<ModelConfig> ReadGgufConfig(const GgufFile& gguf, const std::string& path);

}  // namespace lil
