// File: kernels/cuda/attention.h
// Paged attention over explicit per-(sequence, KV head) page lists, bf16 KV, fp32 math: one
// kernel for prefill chunks, decode, dense and page-sparse (Quest / h2o / sink) reads. Same
// Params as the CPU reference (kernels/cpu/attention.h) except the bf16 pools and output.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/ops.h"

namespace lil::cuda {

struct PagedAttentionParams {
  const float* q;              // [num_tokens, num_heads, head_dim]
  bf16* out;                   // [num_tokens, num_heads, head_dim]
  PagedKvViewBf16 kv;          // the layer's pools (k, v)
  int32_t num_tokens = 0;
  int32_t num_heads = 0;       // a multiple of kv.num_kv_heads; the group is at most 8
  const int32_t* token_pos;    // [num_tokens]
  const int32_t* token_seq;    // [num_tokens]
  const int32_t* row_indptr;   // [num_seqs * num_kv_heads + 1]
  const int32_t* row_pages;    // [nnz]
  const int32_t* row_logical;  // [nnz]
  float scale = 1.0f;
  float* page_mass = nullptr;  // optional [nnz], += (see the CPU reference)
  // Split-KV (flash-decoding): each (token, KV head) row's entries are cut into chunks of
  // `chunk_entries`, one CTA each; the last CTA of a row to finish merges the partial
  // (max, sum, acc) states. 0: one CTA per row. Needs `partial` (SplitPartialFloats) and
  // `counters` ([num_tokens * num_kv_heads], zero at rest: the merging CTA re-zeroes them).
  int32_t chunk_entries = 0;
  int32_t max_splits = 1;      // grid size along the split axis: >= ceil(max entries / chunk), <= 128
  float* partial = nullptr;
  int32_t* counters = nullptr;
};

// The split chosen for a step: rows = num_tokens * num_kv_heads CTAs before splitting, each
// with at most `max_row_entries` pages. Splits aim at `target_ctas` (about four per SM) with
// chunks of at least 64 tokens (FlashInfer's rule, with a smaller floor). No split when the
// rows alone fill the GPU.
struct SplitChoice {
  int32_t chunk_entries = 0;
  int32_t max_splits = 1;
};
// Whether the vectorized (splittable) kernel serves this head_dim.
inline bool SplitSupported(int32_t head_dim) {
  return head_dim == 8 || head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}
SplitChoice ChooseSplit(int32_t rows, int32_t max_row_entries, int32_t page_size, int32_t target_ctas);
// fp32 workspace of the split partial states.
int64_t SplitPartialFloats(int32_t num_tokens, int32_t num_kv_heads, int32_t head_dim, int32_t max_splits);


// One CTA per (query token, KV head[, split]) holding the whole GQA group; its warps split
// the page list and merge their online-softmax states in shared memory. head_dim in {8, 16,
// 32, 64, 128} runs the vectorized kernel (16-byte loads, split-KV); other head_dim <= 128
// and the h2o page-mass pass run the scalar kernel (no split). group <= 8; other shapes
// return cudaErrorInvalidValue.
cudaError_t PagedAttention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace lil::cuda
