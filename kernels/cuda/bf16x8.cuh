// File: kernels/cuda/bf16x8.cuh
// Eight bf16 values in one 16-byte vector (uint4), the unit the decode GEMV (gemv.cu) and the
// fused MLP (mlp_fused.cu) stream weights and activations in.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace lil::cuda {

// sum_i a[i] * b[i] over the eight bf16 pairs, in fp32 (a bf16 is the top half of a float).
__device__ __forceinline__ float Dot8(const uint4& a, const uint4& b) {
  const uint32_t wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    s = fmaf(__uint_as_float(wa[i] << 16), __uint_as_float(wb[i] << 16), s);
    s = fmaf(__uint_as_float(wa[i] & 0xffff0000u), __uint_as_float(wb[i] & 0xffff0000u), s);
  }
  return s;
}

}  // namespace lil::cuda
