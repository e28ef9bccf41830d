// File: engine/format/model_family.h
// Shapes and HuggingFace config.json of the model families lilserve serves, used to write
// random-weight checkpoints in real shapes (llama3-8b, qwen2.5-7b, qwen3-8b, smollm2-135m).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/safetensors_writer.h"

namespace lil {

// Which tokenizer (pre-tokenizer, special tokens, chat template) a family gets.
enum class TokenizerStyle { kLlama3, kQwen2, kQwen3, kSmolLM2 };

struct ModelFamilyConfig {
  std::string family;           // "llama3-8b"
  std::string architecture;     // "LlamaForCausalLM"
  std::string model_type;       // "llama", "qwen2", "qwen3"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position = 0;
  double rope_theta = 10000;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v biases (Qwen2)
  bool qk_norm = false;          // per-head RMSNorm on q and k (Qwen3)
  bool llama3_rope_scaling = false;
  TokenizerStyle tokenizer_style = TokenizerStyle::kLlama3;
};

// The named family with its real shapes; INVALID_ARGUMENT listing the known names otherwise.
absl::StatusOr<ModelFamilyConfig> ModelFamilyLike(std::string_view family);
std::vector<std::string> ModelFamilyNames();
// Checks the shapes are consistent (positive, heads divisible by kv heads, ...).
absl::Status ValidateModelFamilyConfig(const ModelFamilyConfig& c);

// The tensors of the HuggingFace checkpoint (names and shapes as transformers expects).
std::vector<TensorSpec> ModelTensorSpecs(const ModelFamilyConfig& c, DType dtype);

// Special-token ids in the generated tokenizer, written into config.json and
// generation_config.json.
struct SpecialTokenIds {
  int64_t bos = -1;                 // -1: none
  std::vector<int64_t> eos;         // first one is the tokenizer's eos_token
  int64_t pad = -1;
};
std::string ConfigJson(const ModelFamilyConfig& c, DType dtype, const SpecialTokenIds& ids);
std::string GenerationConfigJson(const SpecialTokenIds& ids);

}  // namespace lil
