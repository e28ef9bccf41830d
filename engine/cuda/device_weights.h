// File: engine/cuda/device_weights.h
// A model's weights on the GPU: matrices in bf16 (q/k/v fused into one [q_dim + 2 kv_dim,
// hidden] matrix and gate/up into one [2 inter, hidden], as on the CPU), norms and biases in
// fp32. One allocation holds everything. Tensors stream from the files one at a time
// (fp32 staging, then bf16), so host memory stays small whatever the model size.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "engine/cuda/cuda_util.h"
#include "engine/host_weights.h"
#include "engine/model_files.h"
#include "engine/parallel/tp_shard.h"
#include "kernels/cuda/ops.h"

namespace lil::cuda {

struct DeviceLayerWeights {
  const float* attn_norm = nullptr;  // [hidden]
  const bf16* qkv = nullptr;         // [q_dim + 2 kv_dim, hidden]
  const float* qkv_bias = nullptr;   // [q_dim + 2 kv_dim] or null
  const float* q_norm = nullptr;     // [head_dim] or null
  const float* k_norm = nullptr;     // [head_dim] or null
  const bf16* o_proj = nullptr;      // [hidden, q_dim]
  const float* mlp_norm = nullptr;   // [hidden]
  const bf16* gate_up = nullptr;     // [2 inter, hidden]
  const bf16* down = nullptr;        // [hidden, inter]
};

// With a tensor-parallel shard (engine/parallel/tp_shard.h) the matrices are the rank's
// slices: qkv rows of its heads, o_proj columns of its query heads, gate/up rows and down
// columns of its intermediate slice, lm_head rows of its vocabulary slice. The embedding is
// whole on every rank (a GPU has room; it saves the CPU layout's embedding all-reduce), and a
// tied lm_head points into it at the rank's first vocabulary row.
struct DeviceWeights {
  const bf16* embed = nullptr;       // [vocab, hidden], the whole vocabulary
  std::vector<DeviceLayerWeights> layers;
  const float* final_norm = nullptr;
  const bf16* lm_head = nullptr;     // [shard vocab, hidden]; inside embed when tied
  const float* inv_freq = nullptr;   // [head_dim / 2] RoPE inverse frequencies
  DeviceBuffer storage;
  int64_t bytes = 0;
};

// `shard` null: the whole model.
absl::StatusOr<DeviceWeights> UploadWeights(const ModelFiles& files, const TpShard* shard = nullptr);
// From fp32 host weights (tests build these in memory).
absl::StatusOr<DeviceWeights> UploadWeights(const ModelConfig& config, const HostWeights& w,
                                            const TpShard* shard = nullptr);

}  // namespace lil::cuda
