// File: kernels/cuda/rope_kv.cuh
// The per-element steps of QkvRopeWrite shared by its kernel (ops.cu) and the qkv rope
// epilogues of the GEMV (gemv.cu) and the skinny GEMM (gemm_skinny.cu), so all three write
// bit-identical q, K, V and Quest metadata from the same products: the RoPE rotation of one
// pair, the store of one K / V element into its page slot, and an epilogue's column pair.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/ops.h"
#include "kernels/quest_fp8.h"

namespace lil::cuda {

// (a, b) = dims (j, j + head_dim / 2) of a q or k head, rotated by pos * inv_freq_j
// (rotate_half).
__device__ __forceinline__ void RotatePair(float& a, float& b, int32_t pos, float inv_freq_j) {
  const float angle = static_cast<float>(pos) * inv_freq_j;
  const float c = cosf(angle), s = sinf(angle);
  const float ra = a * c - b * s, rb = b * c + a * s;
  a = ra;
  b = rb;
}

// Where head vector hv (a k or v head: hv >= num_heads) of token t goes: its page slot, and
// for a k head of a decode step (quest_update) its page's Quest (min, max) block (bf16, or
// e4m3 in meta8), else null.
struct KvSlot {
  bf16* dst;
  bf16* meta;
  uint8_t* meta8;
  int32_t slot;
};
__device__ __forceinline__ KvSlot LocateKvSlot(const QkvRopeWriteParams& p, int32_t t, int32_t hv) {
  const int32_t hq = p.num_heads, hkv = p.kv.num_kv_heads;
  const bool is_k = hv < hq + hkv;
  const int32_t h = is_k ? hv - hq : hv - hq - hkv, page = p.dst_page[t];
  KvSlot s;
  s.slot = p.dst_slot[t];
  s.dst = (is_k ? p.kv.k : p.kv.v) + p.kv.Offset(page, h, s.slot);
  const bool meta = is_k && p.quest_update;
  s.meta = meta && p.kv.quest != nullptr ? p.kv.quest + p.kv.QuestOffset(page, h) : nullptr;
  s.meta8 = meta && p.kv.quest_fp8 != nullptr ? p.kv.quest_fp8 + p.kv.QuestOffset(page, h) : nullptr;
  return s;
}

// Stores dim i (of head_dim d) as bf16 and widens the Quest min / max with the stored value
// (slot 0 resets): min / max of bf16 values are exact, and the e4m3 outward rounding is
// monotone and exact on e4m3 values, so either equals QuestMeta's recomputation.
__device__ __forceinline__ void StoreKv(const KvSlot& s, int32_t d, int32_t i, float x) {
  const bf16 b = __float2bfloat16(x);
  s.dst[i] = b;
  if (s.meta != nullptr) {
    const float y = __bfloat162float(b);
    s.meta[i] = __float2bfloat16(s.slot == 0 ? y : fminf(__bfloat162float(s.meta[i]), y));
    s.meta[d + i] = __float2bfloat16(s.slot == 0 ? y : fmaxf(__bfloat162float(s.meta[d + i]), y));
  }
  if (s.meta8 != nullptr) {
    const float y = __bfloat162float(b);
    s.meta8[i] = E4m3RoundDown(s.slot == 0 ? y : fminf(E4m3ToFloat(s.meta8[i]), y));
    s.meta8[d + i] = E4m3RoundUp(s.slot == 0 ? y : fmaxf(E4m3ToFloat(s.meta8[d + i]), y));
  }
}

// GemmParams::rope_epilogue for one column pair: columns (col, col + 1) of token t's qkv
// product, a RoPE pair of a q or k head (pairs_adjacent) or two neighbouring v dims, through
// QkvRopeWriteKernel's own steps above, so a decode step's q / K / V and Quest metadata are
// those of the unfused path.
__device__ __forceinline__ void RopeStorePair(const QkvRopeWriteParams& rp, int32_t t, int32_t col, float a, float b) {
  const int32_t d = rp.kv.head_dim, hq = rp.num_heads, hkv = rp.kv.num_kv_heads;
  if (rp.bias != nullptr) {
    a += rp.bias[col];
    b += rp.bias[col + 1];
  }
  const int32_t hv = col / d, i = col - hv * d;
  int32_t d0 = i, d1 = i + 1;
  if (hv < hq + hkv) {  // q or k: dims (j, j + d / 2), rotated
    d0 = i / 2;
    d1 = d0 + d / 2;
    RotatePair(a, b, rp.pos[t], rp.inv_freq[d0]);
  }
  if (hv < hq) {
    float* q = rp.q_out + (static_cast<int64_t>(t) * hq + hv) * d;
    q[d0] = a;
    q[d1] = b;
    return;
  }
  const KvSlot slot = LocateKvSlot(rp, t, hv);
  StoreKv(slot, d, d0, a);
  StoreKv(slot, d, d1, b);
}

}  // namespace lil::cuda
