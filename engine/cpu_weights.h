// File: engine/cpu_weights.h
// The CPU backend's weights: large matrices stay in their storage format (fp32, fp16, bf16,
// Q8_0, Q4_0, Q4_1; other GGUF types are expanded to fp32 at load) and are multiplied by
// kernels/cpu/qmatrix, which expands 32 weights at a time in registers. q/k/v are fused
// into one matrix and gate/up into another when they share a format.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/host_weights.h"
#include "engine/model_files.h"
#include "kernels/cpu/qmatrix.h"

namespace lil {

struct CpuMatrix {
  cpu::QType type = cpu::QType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> bytes;  // [rows][QRowBytes(type, cols)]
  cpu::QMatrix view() const { return {type, bytes.data(), rows, cols}; }
  bool empty() const { return rows == 0; }
};

CpuMatrix CpuMatrixFromF32(const std::vector<float>& w, int64_t rows, int64_t cols);

struct CpuLayerWeights {
  std::vector<float> attn_norm;            // [hidden]
  CpuMatrix qkv;                           // [q_dim + 2 kv_dim, hidden]
  std::vector<float> qkv_bias;             // [q_dim + 2 kv_dim] or empty
  std::vector<float> q_norm, k_norm;       // [head_dim] or empty
  CpuMatrix o_proj;                        // [hidden, q_dim]
  std::vector<float> mlp_norm;             // [hidden]
  CpuMatrix gate_up;                       // [2 inter, hidden]
  CpuMatrix down;                          // [hidden, inter]
};

struct CpuWeights {
  CpuMatrix embed;                         // [vocab, hidden]
  std::vector<CpuLayerWeights> layers;
  std::vector<float> final_norm;           // [hidden]
  CpuMatrix lm_head;                       // [vocab, hidden]; empty when tied to embed
  const CpuMatrix& lm_head_or_embed() const { return lm_head.empty() ? embed : lm_head; }
};

absl::StatusOr<CpuWeights> LoadCpuWeights(const ModelFiles& files);
CpuWeights CpuWeightsFromHost(const HostWeights& w, const ModelConfig& c);

}  // namespace lil
