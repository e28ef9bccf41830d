// File: engine/host_weights.h
// A model's weights in host memory as fp32, laid out for the CPU backend: q/k/v fused into
// one [q_dim + 2 kv_dim, hidden] matrix and gate/up into one [2 inter, hidden] matrix, so
// each projection is one GEMM. Quantized GGUF tensors are dequantized at load.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_files.h"

namespace lil {

struct HostLayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  std::vector<float> qkv;        // [q_dim + 2 kv_dim, hidden]
  std::vector<float> qkv_bias;   // [q_dim + 2 kv_dim] (Qwen2) or empty
  std::vector<float> q_norm;     // [head_dim] (Qwen3) or empty
  std::vector<float> k_norm;     // [head_dim] (Qwen3) or empty
  std::vector<float> o_proj;     // [hidden, q_dim]
  std::vector<float> mlp_norm;   // [hidden]
  std::vector<float> gate_up;    // [2 inter, hidden]
  std::vector<float> down;       // [hidden, inter]
};

struct HostWeights {
  std::vector<float> embed;       // [vocab, hidden]
  std::vector<HostLayerWeights> layers;
  std::vector<float> final_norm;  // [hidden]
  std::vector<float> lm_head;     // [vocab, hidden]; empty when tied to embed
  const float* lm_head_data() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

absl::StatusOr<HostWeights> LoadHostWeights(const ModelFiles& files);

}  // namespace lil
