// File: kernels/cpu/ops.h
// CPU reference of the element-wise and normalization ops of a Llama/Qwen forward pass
// (fp32). Each takes a Params struct; shapes are in the field comments.
#pragma once

#include <cstdint>

namespace lil::cpu {

struct RmsNormParams {
  const float* x;       // [rows, dim]
  const float* weight;  // [dim]
  float* out;           // [rows, dim] (may alias x)
  int32_t rows = 0;
  int32_t dim = 0;
  float eps = 1e-6f;
};
void RmsNorm(const RmsNormParams& p);

// Rotary embedding, HuggingFace "rotate_half" layout: pairs (i, i + rot_dim/2).
struct RopeParams {
  float* x;                 // [tokens, heads, head_dim], rotated in place
  const int32_t* pos;       // [tokens]
  const float* inv_freq;    // [rot_dim / 2]
  int32_t tokens = 0;
  int32_t heads = 0;
  int32_t head_dim = 0;
  int32_t rot_dim = 0;      // rotated dimensions (== head_dim for the supported models)
};
void Rope(const RopeParams& p);

// out = silu(gate) * up, where gate_up is [rows, 2 * inter] (gate first, then up).
struct SiluMulParams {
  const float* gate_up;  // [rows, 2 * inter]
  float* out;            // [rows, inter]
  int32_t rows = 0;
  int32_t inter = 0;
};
void SiluMul(const SiluMulParams& p);

// out[r] = table[ids[r]]
struct EmbeddingParams {
  const float* table;  // [vocab, dim]
  const int32_t* ids;  // [rows]
  float* out;          // [rows, dim]
  int32_t rows = 0;
  int32_t dim = 0;
};
void Embedding(const EmbeddingParams& p);

// x += y, both [n]
void AddInPlace(float* x, const float* y, int64_t n);

}  // namespace lil::cpu
