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
// Session 24: the first pass counted here and the page ids a group ahead, 42.9-43.0 -> 41.9-42.2
// us, Quest 81.7-82.2 -> 80.7-81.0. Measured and dropped (docs/PERF.md): the next stage's loads
// issued before this one is summed (two buffers of 2 or 1 quads: 42.3-42.7), a threshold search
// with one barrier a pass (every warp finding the digit: +0.8-1.0 us).
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
// Score), kQuads quads of four in flight (kQuads * 2 KiB a warp), the next group of 32's page ids
// loaded a group ahead. Each key is also counted into hist0 by its top 8 bits, which is the
// threshold search's first pass (QuestSelectKernel skips that pass): hist0 must be zero before.
template <int kQuads>
__device__ void ScoreOctets(const QuestSelectParams& p, int32_t s, int32_t h, int32_t first, int32_t end,
                            uint32_t* keys, int wi, int nw, int* hist0) {
  static_assert(32 % (4 * kQuads) == 0, "quads tiling a group of 32 candidates");
  constexpr int D = 128, kStages = 32 / (4 * kQuads);
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
  const int32_t stride = nw * 32;
  // This lane's candidate of the group of 32 at `base` (its page id; 0 past the end).
  auto page_of = [&](int32_t base) {
    const int32_t c = base + lane * nw;
    return c < end ? p.cand_pages[c0 + c] : 0;
  };
  // Stage b of the group at `base` (pages: the group's ids, one a lane): its kQuads quads' loads.
  auto issue = [&](uint4 (&v)[kQuads][4], int32_t base, int b, int32_t pages) {
#pragma unroll
    for (int u = 0; u < kQuads; ++u) {
      const int k = (b * kQuads + u) * 4 + slot;  // the candidate's place in the group of 32
      const int32_t page = __shfl_sync(0xffffffffu, pages, k);
      v[u][0] = v[u][1] = v[u][2] = v[u][3] = make_uint4(0, 0, 0, 0);
      if (base + k * nw < end) {
        const bf16* mn = meta + p.kv.QuestOffset(page, h) + 8 * sub;
        v[u][0] = *reinterpret_cast<const uint4*>(mn);
        v[u][1] = *reinterpret_cast<const uint4*>(mn + 64);
        v[u][2] = *reinterpret_cast<const uint4*>(mn + D);
        v[u][3] = *reinterpret_cast<const uint4*>(mn + D + 64);
      }
    }
  };
  auto consume = [&](const uint4 (&v)[kQuads][4], int32_t base, int b) {
#pragma unroll
    for (int u = 0; u < kQuads; ++u) {
      float a = 0.0f, bsum = 0.0f;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const __nv_bfloat162* l2 = reinterpret_cast<const __nv_bfloat162*>(&v[u][half]);
        const __nv_bfloat162* h2 = reinterpret_cast<const __nv_bfloat162*>(&v[u][2 + half]);
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
      const int32_t c = base + ((b * kQuads + u) * 4 + slot) * nw;
      if (sub == 0 && c < end) {
        const uint32_t key = QuestOrderKey(t);
        keys[c] = key;
        atomicAdd(&hist0[key >> 24], 1);
      }
    }
  };
  int32_t base = first + wi;
  if (base >= end) return;
  int32_t pages = page_of(base);
  for (; base < end; base += stride) {
    const int32_t next = page_of(base + stride);  // in flight while this group is scored
#pragma unroll 1
    for (int b = 0; b < kStages; ++b) {
      uint4 v[kQuads][4];
      issue(v, base, b, pages);
      consume(v, base, b);
    }
    pages = next;
  }
}

}  // namespace lil::cuda
