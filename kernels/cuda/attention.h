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
};

// One CTA per (query token, KV head) holding the whole GQA group; its warps split the page
// list and merge their online-softmax states in shared memory. head_dim <= 128, group <= 8;
// other shapes return cudaErrorInvalidValue.
cudaError_t PagedAttention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace lil::cuda
