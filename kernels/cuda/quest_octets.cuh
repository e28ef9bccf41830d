// File: kernels/cuda/quest_octets.cuh
// Quest scoring for the selection CTAs' own rows (QuestSelectParams::keys null) at head_dim 128
// with bf16 metadata: four candidates a warp instruction, eight lanes a candidate. Nsight
// Compute (docs/PERF.md, session 23) put the register path's (Score in quest.cu) top stall on
// shuffles and shared memory, not DRAM: each candidate cost a page-id shuffle and a share of a
// five-deep reduce-scatter. Here lane l holds dims 8 (l & 7) .. + 7 and 64 + 8 (l & 7) .. + 7 of
// candidate slot l >> 3, so a quad of candidates costs one page-id shuffle and a three-step sum
// over its eight lanes, and each 16-byte load instruction reads 128 contiguous bytes of four
// candidates' rows. The sum runs in another order than ScoreFour's, so a candidate's key can
// differ from the split scoring's in its last bits (both are checked against the CPU reference).
// Measured (session 23, batch 16 / 32k, 128 rows on 132 SMs): score + select 44.3 -> 43.0 us with
// 4 quads in flight (2 quads: 44.2), Quest 83.5 -> 81.9-82.1 us; batch 1's CTAs 35.6 -> 25.9.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/quest.h"

namespace lil::cuda {

// Float order as unsigned order (larger score, larger key).
__device__ __forceinline__ uint32_t QuestOrderKey(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Keys of candidates [first, end) into keys[c]: warp wi of nw takes first + wi + k * nw (as
// Score), kQuads quads of four in flight (kQuads * 2 KiB a warp).
template <int kQuads>
__device__ void ScoreOctets(const QuestSelectParams& p, int32_t s, int32_t h, int32_t first, int32_t end,
                            uint32_t* keys, int wi, int nw) {
  static_assert(32 % (4 * kQuads) == 0, "quads tiling a group of 32 candidates");
  constexpr int D = 128;
  const int lane = threadIdx.x & 31, sub = lane & 7, slot = lane >> 3;
  const int32_t group = p.num_heads / p.kv.num_kv_heads, c0 = p.cand_begin[s];
  // The group's query folded for this lane's 16 dims (LoadQ's qp / qn).
  float qp[16], qn[16];
#pragma unroll
  for (int j = 0; j < 16; ++j) qp[j] = qn[j] = 0.0f;
  const float* q = p.q + (static_cast<int64_t>(p.q_row[s]) * p.num_heads + h * group) * D + 8 * sub;
  for (int32_t g = 0; g < group; ++g) {
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const float x = q[g * D + (j < 8 ? j : 56 + j)];  // dims 8 sub + j, then 64 + 8 sub + (j - 8)
      qp[j] += fmaxf(x, 0.0f);
      qn[j] += fminf(x, 0.0f);
    }
  }
  const bf16* meta = p.kv.quest;
  for (int32_t base = first + wi; base < end; base += nw * 32) {
    const int32_t my_c = base + lane * nw;
    const int32_t my_page = my_c < end ? p.cand_pages[c0 + my_c] : 0;
#pragma unroll 1
    for (int b = 0; b < 32 / (4 * kQuads); ++b) {
      uint4 lo[kQuads][2], hi[kQuads][2];
      int32_t cs[kQuads];
#pragma unroll
      for (int u = 0; u < kQuads; ++u) {
        const int k = (b * kQuads + u) * 4 + slot;  // the candidate's place in the group of 32
        const int32_t page = __shfl_sync(0xffffffffu, my_page, k);
        cs[u] = base + k * nw;
        lo[u][0] = lo[u][1] = hi[u][0] = hi[u][1] = make_uint4(0, 0, 0, 0);
        if (cs[u] < end) {
          const bf16* mn = meta + p.kv.QuestOffset(page, h) + 8 * sub;
          lo[u][0] = *reinterpret_cast<const uint4*>(mn);
          lo[u][1] = *reinterpret_cast<const uint4*>(mn + 64);
          hi[u][0] = *reinterpret_cast<const uint4*>(mn + D);
          hi[u][1] = *reinterpret_cast<const uint4*>(mn + D + 64);
        }
      }
#pragma unroll
      for (int u = 0; u < kQuads; ++u) {
        float a = 0.0f, bsum = 0.0f;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const __nv_bfloat162* l2 = reinterpret_cast<const __nv_bfloat162*>(&lo[u][half]);
          const __nv_bfloat162* h2 = reinterpret_cast<const __nv_bfloat162*>(&hi[u][half]);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float2 lf = __bfloat1622float2(l2[j]), hf = __bfloat1622float2(h2[j]);
            a = fmaf(qp[8 * half + 2 * j], hf.x, a);
            a = fmaf(qp[8 * half + 2 * j + 1], hf.y, a);
            bsum = fmaf(qn[8 * half + 2 * j], lf.x, bsum);
            bsum = fmaf(qn[8 * half + 2 * j + 1], lf.y, bsum);
          }
        }
        float t = a + bsum;
        t += __shfl_xor_sync(0xffffffffu, t, 4);
        t += __shfl_xor_sync(0xffffffffu, t, 2);
        t += __shfl_xor_sync(0xffffffffu, t, 1);
        if (sub == 0 && cs[u] < end) keys[cs[u]] = QuestOrderKey(t);
      }
    }
  }
}

}  // namespace lil::cuda
