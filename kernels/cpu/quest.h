// File: kernels/cpu/quest.h
// Quest page selection (Tang et al. 2024) at page level, per KV head: score each candidate
// page by the upper bound of q.k over its keys, sum_i max(q_i * min_i, q_i * max_i), summed
// over the KV head's query heads; keep the best (budget - 1) pages plus the newest one.
#pragma once

#include <cstdint>

#include "kernels/paged_kv.h"

namespace lil::cpu {

struct QuestSelectParams {
  const float* q;               // [num_seqs, num_heads, head_dim] decode queries (post-RoPE)
  PagedKvView kv;               // kv.quest holds the metadata
  int32_t num_seqs = 0;
  int32_t num_heads = 0;
  const int32_t* cand_indptr;   // [num_seqs + 1] resident pages of each sequence, logical order
  const int32_t* cand_pages;    // [nnz] physical pages
  const int32_t* cand_logical;  // [nnz] logical page indices (ascending within a sequence)
  const int32_t* budget_pages;  // [num_seqs] pages to attend, the newest included (>= 1)
  // Outputs, rows = seq * num_kv_heads + h, entries in ascending logical order.
  int32_t* out_indptr;          // [num_seqs * num_kv_heads + 1]
  int32_t* out_pages;           // capacity: sum over rows of min(budget, candidates)
  int32_t* out_logical;
};

// Ties are broken by the lower logical page, so the selection is deterministic.
void QuestSelect(const QuestSelectParams& p);

}  // namespace lil::cpu
