// File: kernels/cuda/gemm_skinny.h
// The skinny GEMM: GemmParams products of 1..kSkinnyMaxRows rows (decode batches) on tensor
// cores, with every GEMV fusion (norm_eps, add_to_y, y_bf16, swiglu_out, rope_epilogue), so
// with $LILSERVE_SKINNY=1 a decode step of 2-32 sequences runs the fused path: five kernels a
// layer (qkv with the norm and RoPE + KV write, attention, o with the residual add, gate_up
// with the norm and SwiGLU, down with the residual add) instead of eleven (cuBLAS products,
// their split-K reductions, two AddRmsNorm, QkvRopeWrite, SiluMul). Each launch costs ~2.5 us
// of boundary on an H200 however small (bench/gpu_boundary_bench), and the small kernels of a
// batch-32 step took ~21 us a layer; but this kernel streams the weights at 30-61% of the
// read ceiling at 32 rows where cuBLAS reaches 50-83%, so the step is slower and the switch
// stays off (docs/PERF.md, session 12, where the five designs measured are listed).
// Persistent (two CTAs an SM, each streaming an equal share of the (128-column tile, 64-deep k
// step) products: "stream-K"), five stages deep, each stage two TMA box copies (weights, x);
// a tile cut between CTAs is summed by the last of its pieces to arrive (deterministic
// order). Details in gemm_skinny.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/ops.h"

namespace lil::cuda {

inline constexpr int32_t kSkinnyMaxRows = 32;
inline constexpr int32_t kSkinnyColumns = 128;  // output columns of a tile
inline constexpr int32_t kSkinnyK = 64;         // k per pipeline stage; `in` must be a multiple

// Scratch for tiles cut between CTAs: two fp32 slots a CTA and one counter per tile (zero at
// rest: the last piece of a tile resets its counter).
struct SkinnyWorkspace {
  float* partial = nullptr;
  int64_t partial_floats = 0;
  int32_t* counters = nullptr;
  int32_t num_counters = 0;
};
// The workspace SkinnyCtas sizes its grid for (12 MiB: 381 CTAs' slots).
inline constexpr int64_t kSkinnyPartialFloats = int64_t{3} << 20;
inline constexpr int32_t kSkinnyCounters = 4096;

// Whether p can run here: 1..kSkinnyMaxRows rows, `in` a multiple of kSkinnyK, 16-byte aligned
// x and w, and GemvSupported's conditions for the fusions.
bool SkinnySupported(const GemmParams& p);
// The persistent grid for `out` columns over `in` on `sms` SMs: one CTA an SM, each at least
// eight k steps, within the workspace's slots.
int32_t SkinnyCtas(int32_t out, int32_t in, int32_t sms);
cudaError_t SkinnyGemm(const GemmParams& p, const SkinnyWorkspace& ws, cudaStream_t stream);

}  // namespace lil::cuda
