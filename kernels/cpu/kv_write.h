// File: kernels/cpu/kv_write.h
// Writes new keys/values into the paged pools and keeps Quest's per-page metadata current.
#pragma once

#include <cstdint>

#include "kernels/paged_kv.h"

namespace lil::cpu {

struct KvWriteParams {
  const float* k;             // [num_tokens, num_kv_heads, head_dim] (post-RoPE)
  const float* v;             // [num_tokens, num_kv_heads, head_dim]
  PagedKvView kv;             // destination pools; kv.quest may be null
  int32_t num_tokens = 0;
  const int32_t* dst_page;    // [num_tokens] physical page of each token
  const int32_t* dst_slot;    // [num_tokens] slot within the page
  // Keep the Quest min / max as e4m3 values rounded outward (kernels/quest_fp8.h), as the
  // CUDA backend stores them with LILSERVE_QUEST_FP8=1: the min rounded down, the max up.
  bool quest_e4m3 = false;
};

// Tokens are applied in order: a token in slot 0 resets its page's Quest min/max (the page
// may have held another request's keys), later slots widen them.
void KvWrite(const KvWriteParams& p);

}  // namespace lil::cpu
