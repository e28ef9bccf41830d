// File: kernels/cuda/mlp_fused.h
// The whole MLP block of a one-token decode step in one kernel: y += down(silu(gate) * up)
// with gate / up from the RMSNorm of x. The decode GEMVs need a kernel boundary between the
// gate_up and down products because each down row reads every intermediate value; here the
// intermediate dimension is cut instead: each CTA owns a contiguous slice of intermediate
// units, computes their gate / up rows (a GEMV over its row block), keeps silu(gate) * up in
// shared memory, multiplies it by the same slice of down's columns, and adds its partial of
// every output into y with global atomics. So the slice's SwiGLU never leaves the CTA and no
// CTA waits for another: one kernel boundary a layer less (docs/GPU.md). The atomics make y's
// last bits depend on the order the CTAs add in (fp32 sums; the GEMV path's y is exact to
// within its own rounding, this one to within ~1e-7 relative of it).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/ops.h"

namespace lil::cuda {

struct FusedMlpParams {
  const bf16* x = nullptr;        // [hidden] the residual stream rounded to bf16 (xb)
  const bf16* gate_up = nullptr;  // [2 inter, hidden]: rows (gate j, up j) side by side
                                  // (InterleaveRowHalves), the norm's weight folded in
  const bf16* down = nullptr;     // [hidden, inter]
  float* y = nullptr;             // [hidden] the residual stream (fp32): y += the MLP's output
  int32_t hidden = 0;
  int32_t inter = 0;
  float norm_eps = 1e-6f;         // the RMSNorm of x (weight 1: folded into gate_up)
  // Benchmarks only (gpu_gemv_bench --mlp): down laid out slice by slice, each CTA's columns
  // [u0, u0 + n) as a contiguous [hidden][n] block at element u0 * hidden (a layout for one SM
  // count), to measure what contiguous slices would give against down's row-major columns.
  bool down_slice_major = false;
};

// hidden a multiple of 8 up to kFusedMlpMaxHidden, inter a multiple of 8 with at most 16 of its
// 8-unit groups an SM (14,336 on 132 SMs: 14), 16-byte aligned pointers.
inline constexpr int32_t kFusedMlpMaxHidden = 8192;
bool FusedMlpSupported(const FusedMlpParams& p);
cudaError_t FusedMlp(const FusedMlpParams& p, cudaStream_t stream);

}  // namespace lil::cuda
