// File: kernels/cpu/attention.h
// CPU reference of paged attention over explicit page lists (dense and page-sparse).
//
// Each (sequence, KV head) is one "row" with its own list of pages to read; the G = num_heads
// / num_kv_heads query heads of that KV head read the same list. Dense attention lists every
// resident page; Quest lists its selection; sink/h2o list the pages they kept. A key at
// logical page L, slot s has position L * page_size + s and is attended by a query at
// position p when it is <= p (causal), which also covers chunked prefill.
#pragma once

#include <cstdint>

#include "kernels/paged_kv.h"

namespace lil::cpu {

struct PagedAttentionParams {
  const float* q;              // [num_tokens, num_heads, head_dim]
  float* out;                  // [num_tokens, num_heads, head_dim]
  PagedKvView kv;              // the layer's pools (k, v)
  int32_t num_tokens = 0;
  int32_t num_heads = 0;       // a multiple of kv.num_kv_heads
  const int32_t* token_pos;    // [num_tokens] position of each query token
  const int32_t* token_seq;    // [num_tokens] sequence index of each query token
  const int32_t* row_indptr;   // [num_seqs * num_kv_heads + 1]: row = seq * num_kv_heads + h
  const int32_t* row_pages;    // [nnz] physical page of each list entry
  const int32_t* row_logical;  // [nnz] logical page index of each list entry
  float scale = 1.0f;          // softmax scale, usually 1/sqrt(head_dim)
  // Optional [nnz]: += the attention probability that falls on each entry's tokens, summed
  // over the row's query heads and over the query tokens (h2o's per-page mass).
  float* page_mass = nullptr;
};

void PagedAttention(const PagedAttentionParams& p);

}  // namespace lil::cpu
