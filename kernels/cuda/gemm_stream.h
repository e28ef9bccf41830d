// File: kernels/cuda/gemm_stream.h
// The streaming GEMM: y[rows, out] (fp32) = x[rows, in] (bf16) * w[out, in]^T (bf16) for
// decode batches of 2..kStreamMaxRows rows, on tensor cores, shaped like the one-row GEMV
// (gemv.cu) rather than like a tiled GEMM. The weights, which are what a decode product pays
// for, go from HBM straight into the registers that mma.sync takes as its B operand (16-byte
// loads, several in flight a lane, issued before the PDL wait); only x, which every warp of a
// CTA shares, is staged in shared memory. The five designs of gemm_skinny.cu all moved the
// weights through shared memory (cp.async or TMA) and streamed them at 30-61% of the read
// ceiling at 32 rows; the GEMV's direct loads reach ~90% at one row.
//
// The k trick: mma.sync's B fragment gives lane (gid, tig) the k pairs 2tig..+1 and
// 2tig+8..+9 of column gid, which would be two 4-byte loads. The sum over k does not care
// which k sits in which slot as long as A and B agree, so lane (gid, tig) loads the 8
// consecutive k values 8tig..8tig+7 of weight row gid (one 16-byte load) and uses them as the
// B fragments of two m16n8k16 products (the first four, then the last four); x's fragments
// are read from shared memory the same way (one 16-byte load a row).
//
// Work: a CTA of 8 warps owns 64 R output columns and one of `splits` equal k slices; warp w
// owns R n-tiles of 8 columns over the whole slice and walks it in 32-wide k chunks, U chunks
// of loads in flight. With splits > 1 each CTA writes its partial to the workspace and the
// last CTA of a column block to arrive (a counter per block, zero at rest) sums the splits in
// split order (deterministic) into y.
//
// It has no fusions (GemmParams' norm_eps and the rest are for the GEMV and the skinny GEMM).
// Gemm (engine/cuda/gemm.h) times its configurations beside cuBLAS's candidates for each
// decode shape and keeps the fastest.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/ops.h"

namespace lil::cuda {

inline constexpr int32_t kStreamMaxRows = 64;
inline constexpr int32_t kStreamChunk = 32;  // k per load step; in must be a multiple of splits * this

// One configuration: R n-tiles of 8 columns a warp (1 or 2), U chunks of loads in flight a
// lane (4 or 8), k split `splits` ways.
// kw: the CTA's 8 warps share R n-tiles and split the CTA's k slice 8 ways (summed in shared
// memory) instead of owning 8 R n-tiles each; in must then be a multiple of splits * 8 *
// kStreamChunk.
struct StreamConfig {
  int32_t r = 2;
  int32_t u = 4;
  int32_t splits = 1;
  bool kw = false;
};
std::string StreamConfigName(const StreamConfig& c);

// The split-K scratch: partial [splits, rows, out] floats and one counter per column block
// (zero at rest: the last CTA of a block resets it).
struct StreamWorkspace {
  float* partial = nullptr;
  int64_t partial_floats = 0;
  int32_t* counters = nullptr;
  int32_t num_counters = 0;
};
inline constexpr int64_t kStreamPartialFloats = int64_t{4} << 20;  // 16 MiB
inline constexpr int32_t kStreamCounters = 4096;

// Whether p can run in configuration c: a plain product (no fusions), 1..kStreamMaxRows rows,
// out a multiple of 8, in a multiple of c.splits * kStreamChunk, x / w / y 16-byte aligned, x's
// slice within one SM's shared memory, and (splits > 1) the workspace large enough.
bool StreamGemmSupported(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws);
// The configurations worth timing for p on `sms` SMs: those supported whose x slice leaves room
// for two CTAs an SM and whose grid is at least one CTA an SM and at most 16 waves.
std::vector<StreamConfig> StreamGemmCandidates(const GemmParams& p, const StreamWorkspace& ws, int32_t sms);
cudaError_t StreamGemm(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws, cudaStream_t stream);

}  // namespace lil::cuda
