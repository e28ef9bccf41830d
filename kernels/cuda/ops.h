// File: kernels/cuda/ops.h
// CUDA element-wise and normalization ops of a Llama/Qwen forward pass (bf16 storage, fp32
// math). CPU references: kernels/cpu/ops.h and kv_write.h. Launchers take a stream, never
// allocate, and return the launch error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/allreduce.h"
#include "kernels/paged_kv.h"

namespace lil::cuda {

using bf16 = __nv_bfloat16;
using PagedKvViewBf16 = PagedKvViewT<bf16>;

// out[r] = float(table[ids[r]]); ids outside [0, vocab) give zeros (the plan check rejects
// them earlier; this keeps a bad id from reading out of bounds).
struct EmbeddingParams {
  const bf16* table;    // [vocab, dim]
  const int32_t* ids;   // [rows]
  float* out;           // [rows, dim]
  int32_t rows = 0;
  int32_t dim = 0;
  int32_t vocab = 0;
  // Optional [rows, dim]: the same rows in bf16 (exact: the table is bf16), the x the fused
  // decode path's first qkv GEMV reads with its norm, so layer 0 needs no norm kernel.
  bf16* out_bf16 = nullptr;
};
cudaError_t Embedding(const EmbeddingParams& p, cudaStream_t stream);

// x += residual (when residual is not null), then out = bf16(rmsnorm(x) * weight): the
// residual add of the previous block fused with the next norm.
struct AddRmsNormParams {
  float* x;                 // [rows, dim] residual stream, updated in place
  const float* residual;    // [rows, dim] or null
  const float* weight;      // [dim], or null: 1 (the weight folded into the next GEMM)
  bf16* out;                // [rows, dim]
  int32_t rows = 0;
  int32_t dim = 0;
  float eps = 1e-6f;
  const int32_t* row_index = nullptr;  // optional [rows]: x row of output row r (gather)
};
cudaError_t AddRmsNorm(const AddRmsNormParams& p, cudaStream_t stream);

// w[r, c] = bf16(w[r, c] * g[c]) for a [rows, cols] bf16 matrix: folds an RMSNorm weight g
// into the matrix that reads the norm's output (then the norm runs with weight null).
cudaError_t ScaleColumns(bf16* w, const float* g, int64_t rows, int32_t cols, cudaStream_t stream);
// Reorders the rows of w [blocks][2 * half_rows, cols] in place so that in each block row 2j
// is old row j and row 2j + 1 old row half_rows + j (gate j beside up j; with blocks = heads
// and half_rows = head_dim / 2, each head's RoPE pairs side by side); uses a temporary copy
// of w. Load time only. The float overload reorders a bias the same way (cols 1).
cudaError_t InterleaveRowHalves(bf16* w, int64_t half_rows, int32_t cols, cudaStream_t stream, int32_t blocks = 1);
cudaError_t InterleaveRowHalves(float* w, int64_t half_rows, int32_t cols, cudaStream_t stream, int32_t blocks = 1);

// Splits the fused QKV GEMM output, adds the bias (Qwen2), applies per-head q/k RMSNorm
// (Qwen3) and RoPE (rotate_half), writes q (fp32) and writes k/v into the paged pools.
struct QkvRopeWriteParams {
  const float* qkv;          // [tokens, (num_heads + 2 num_kv_heads) * head_dim]
  const float* bias = nullptr;    // [(num_heads + 2 num_kv_heads) * head_dim] or null
  const float* q_norm = nullptr;  // [head_dim] or null
  const float* k_norm = nullptr;  // [head_dim] or null
  float eps = 1e-6f;
  const int32_t* pos;        // [tokens]
  const float* inv_freq;     // [head_dim / 2]
  float* q_out;              // [tokens, num_heads, head_dim]
  PagedKvViewBf16 kv;        // destination pools
  const int32_t* dst_page;   // [tokens]
  const int32_t* dst_slot;   // [tokens]
  int32_t tokens = 0;
  int32_t num_heads = 0;
  // Every token writes a page no other token of the step writes (a decode step): each K
  // head also updates its page's Quest min/max in kv.quest or kv.quest_fp8 (slot 0
  // resets), which is what QuestMeta would compute, so the step skips QuestMeta.
  bool quest_update = false;
  // The q and k heads' columns of qkv (and bias) hold each RoPE pair side by side: column 2j
  // of a head is dimension j, column 2j + 1 dimension j + head_dim / 2 (the qkv weight's rows
  // reordered by InterleaveRowHalves at load, so the GEMV's rope epilogue finds both halves
  // of a pair in one warp). v columns keep their order.
  bool pairs_adjacent = false;
};
cudaError_t QkvRopeWrite(const QkvRopeWriteParams& p, cudaStream_t stream);

// Quest metadata of the pages a step wrote: min/max over slots [0, last_slot] of each
// (page, KV head). Equals the CPU's in-order KvWrite (slot 0 resets, later slots widen)
// because a page's slots are always written in order. Run after QkvRopeWrite.
struct QuestMetaParams {
  PagedKvViewBf16 kv;          // kv.quest (bf16) or kv.quest_fp8 (e4m3, outward) is written
  const int32_t* pages;        // [num_pages] distinct pages written this step
  const int32_t* last_slot;    // [num_pages] highest slot written in each
  int32_t num_pages = 0;
};
cudaError_t QuestMeta(const QuestMetaParams& p, cudaStream_t stream);

// out = bf16(silu(gate) * up); gate_up is [rows, 2 * inter]: gate first, or with
// `interleaved` (gate, up) pairs, as the GEMM over InterleaveRowHalves' weight writes it.
struct SiluMulParams {
  const float* gate_up;
  bf16* out;            // [rows, inter]
  int32_t rows = 0;
  int32_t inter = 0;
  bool interleaved = false;
};
cudaError_t SiluMul(const SiluMulParams& p, cudaStream_t stream);

// x[i] += y[i]
cudaError_t AddInPlace(float* x, const float* y, int64_t n, cudaStream_t stream);

// dst[dst_index[e]] += src[e] for dst_index[e] >= 0 (h2o page mass per logical page).
struct ScatterAddParams {
  const float* src;            // [n]
  const int32_t* entry_seq;    // [n] sequence of each entry
  const int32_t* entry_logical;  // [n] logical page of each entry
  const int32_t* seq_offset;   // [num_seqs] start of the sequence's slice of dst, -1: skip
  float* dst;
  int32_t n = 0;
};
cudaError_t ScatterAdd(const ScatterAddParams& p, cudaStream_t stream);

// y[rows, out] = x[rows, in] * w[out, in]^T in fp32: the fallback when cuBLAS is missing,
// and the reference the cuBLAS path is checked against.
struct GemmParams {
  const bf16* x;
  const bf16* w;
  float* y;
  int32_t rows = 0;
  int32_t in = 0;
  int32_t out = 0;
  // Decode fusions, GEMV only (GemvVariant; GemmFallback and cuBLAS reject them):
  // norm_eps > 0: output row m is scaled by rsqrt(mean(x[m]^2) + norm_eps), the RMSNorm of x
  //   whose weight was folded into w's columns (ScaleColumns), computed from the x this
  //   kernel reads anyway; add_to_y: y += x w^T (a residual add) instead of y = x w^T;
  // y_bf16: also receives the new y rounded to bf16 (the next fused GEMV's x).
  // swiglu_out: w's rows come in (gate, up) pairs (row 2j gate j, row 2j + 1 up j:
  //   InterleaveRowHalves at load), and instead of y the kernel writes
  //   swiglu_out[m, j] = bf16(silu(gate) * up), [rows, out / 2]; out must be even.
  // rope_epilogue: w is a qkv weight with rope.pairs_adjacent rows and output row m is the
  //   token rope.pos[m] etc.; instead of y the kernel does QkvRopeWrite's work for its rows
  //   (bias, RoPE, q to rope.q_out, K / V into their page slots, the Quest min / max with
  //   rope.quest_update), so a decode step needs no QkvRopeWrite kernel. No q / k norm
  //   (those need the whole head); rope.qkv is unused.
  float norm_eps = 0.0f;
  bool add_to_y = false;
  bf16* y_bf16 = nullptr;
  // x_f32 (GEMV, one row; then x is unused and may be null): x given in fp32, [rows, in], each value
  //   rounded to bf16 as it is read, so the products are those of x = bf16(x_f32): the residual
  //   stream itself, when no kernel before wrote its bf16 copy (after the fused MLP, whose
  //   atomics leave no CTA knowing the final x: mlp_fused.h).
  const float* x_f32 = nullptr;
  bf16* swiglu_out = nullptr;
  bool rope_epilogue = false;
  QkvRopeWriteParams rope{};
  // reduce.world > 0 (one row, out even, none of the fusions above): y receives this rank's
  //   partial and the kernel also all-reduces it into reduce.residual (allreduce.h GemvAllReduce).
  GemvAllReduce reduce{};
  bool fused() const {
    return norm_eps > 0.0f || add_to_y || y_bf16 != nullptr || swiglu_out != nullptr || rope_epilogue ||
           reduce.world > 0 || x_f32 != nullptr;
  }
};
cudaError_t GemmFallback(const GemmParams& p, cudaStream_t stream);
// SMs of the current device (132 if the query fails): launch sizing from the host, so every
// tensor-parallel rank asks about its own GPU.
int32_t CurrentSmCount();
// Whether p's fusions can run (pairs for swiglu_out / rope_epilogue, RoPE pairs side by side,
// no q / k norm); the GEMV and the skinny GEMM (gemm_skinny.h) check it.
bool GemmFusionsSupported(const GemmParams& p);

// The decode GEMV (kernels/cuda/gemv.cu): same contract as GemmFallback for 1..kGemvMaxRows
// rows, `in` a multiple of 8 and 16-byte aligned x and w; a bandwidth-bound weight stream.
inline constexpr int32_t kGemvMaxRows = 4;
bool GemvSupported(const GemmParams& p);
cudaError_t Gemv(const GemmParams& p, cudaStream_t stream);
// One of the GEMV's kGemvVariants work splits (rows per warp, loads in flight, pipelining,
// warps per row; listed in gemv.cu). Gemv uses $LILSERVE_GEMV_VARIANT, default
// kGemvDefaultVariant's split fitted to `in` (gemv.cu). For tests and benchmarks.
inline constexpr int kGemvVariants = 7;
// Variant 4 (K split over 4 warps): the fastest of variants 0-5 at one row on every Llama-3-8B
// matrix and over a step's 128 GEMVs (3.44 ms, 91% of the read ceiling, against 3.88 ms for
// variant 0 and 3.95 ms for cuBLAS; docs/PERF.md, gpu_gemv_bench, session 6); since session 13
// held to 64 registers at one row (four CTAs an SM; 8 layers' GEMVs 0.879 -> 0.862 ms).
inline constexpr int kGemvDefaultVariant = 4;
cudaError_t GemvVariant(const GemmParams& p, int variant, cudaStream_t stream);
// $LILSERVE_GEMV_VARIANT when it is a variant number (0..kGemvVariants-1), else -1 (unset,
// `auto`, or anything else).
int GemvVariantFromEnv();

// fp32 -> bf16 conversion of n elements (device to device).
cudaError_t ToBf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream);

}  // namespace lil::cuda
