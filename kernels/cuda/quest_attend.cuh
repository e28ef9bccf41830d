// File: kernels/cuda/quest_attend.cuh
// The attention of a Quest row inside its selection CTA (QuestSelectParams::attn_out): once a
// selection CTA has written its row's pages, its first kAttendWarps warps attend them on tensor
// cores and the CTA merges their states into the row's output, so the step needs no attention
// kernel for these rows: no kernel boundary after the selection, no split partials through
// global memory. Head_dim 128, page size 16 (a page is one 16-key tile), bf16 KV, GQA group up
// to 8. The tile math is attention_tc.cu's (S = Q K^T with the group's query heads as the A
// rows of m16n8k16, the online softmax on the accumulators, O += P V with V^T from
// ldmatrix.trans; q and P rounded to bf16); the tiles come by cp.async, kAttendStages stages a
// warp, into the CTA's dynamic shared memory, which the selection's keys no longer need.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/quest.h"

namespace lil::cuda {

inline constexpr int kAttendWarps = 8, kAttendStages = 3;
inline constexpr int kAttendKeys = 16, kAttendDim = 128, kAttendMaxGroup = 8;
inline constexpr int kAttendStride = kAttendDim + 8;  // bf16 a shared row: 16 bytes of padding
inline constexpr int kAttendTile = kAttendKeys * kAttendStride;
// The stages of every attending warp (204 KiB), reused for the warps' states when they merge.
inline constexpr size_t kAttendSmem = sizeof(bf16) * kAttendWarps * kAttendStages * 2 * kAttendTile;
static_assert(sizeof(float) * kAttendWarps * kAttendMaxGroup * kAttendDim <= kAttendSmem, "merge states fit");

__device__ __forceinline__ void AttendLdMatrixX4Trans(uint32_t (&r)[4], const bf16* row) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// c0, c1 (row gid of C) += A B for an A whose rows gid + 8 are zero (the group's query heads
// fill at most 8 of its 16 rows): those rows' outputs are dropped, so the state holds half the
// accumulators attention_tc.cu's does.
__device__ __forceinline__ void MmaBf16RowsLo(float& c0, float& c1, const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  [[maybe_unused]] float d2, d3;  // rows gid + 8: zero, dropped
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %10, %10};\n"
      : "+f"(c0), "+f"(c1), "=f"(d2), "=f"(d3)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(0.0f));
}

// Row (s, h)'s attention over out_pages / out_logical [out0, out0 + count) into attn_out: warp w
// of the first kAttendWarps takes entries w, w + kAttendWarps, ...; every thread of the CTA
// calls it (the merge has barriers). smem: kAttendSmem bytes of dynamic shared memory. Not
// inlined: inside the selection kernel's body ptxas spilled (the kernel's 128-register cap);
// called once a CTA, it runs in 111 registers with none spilled.
__device__ __noinline__ void AttendSelected(const QuestSelectParams& p, int32_t s, int32_t h, int32_t out0, int32_t count,
                               unsigned char* smem) {
  constexpr int D = kAttendDim, G = kAttendMaxGroup;
  __shared__ float s_m[kAttendWarps][G], s_l[kAttendWarps][G];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;
  const int32_t group = p.num_heads / p.kv.num_kv_heads;
  const int32_t t = p.q_row[s], pos = p.token_pos[t];
  float o[D / 8][2];  // row gid's accumulators: dims 8n + 2tig, + 1
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // row gid's running max (log2 units) and this lane's share of the sum
  // Q pre-scaled to log2 units as bf16 pairs, row g = query head g of the group (rows >= group
  // zero: the A rows' padding), read as A fragments a tile at a time (held in registers they
  // would not leave the 128 a thread of a 512-thread CTA room). Rows padded by 4 words, so the
  // eight rows of a fragment load fall in distinct banks.
  __shared__ uint32_t s_q[G][D / 2 + 4];
  {
    const float qs = p.scale * 1.4426950408889634f;
    const float* q = p.q + (static_cast<int64_t>(t) * p.num_heads + h * group) * D;
    for (int32_t i = threadIdx.x; i < G * D / 2; i += blockDim.x) {
      const int32_t g = i / (D / 2), j = i % (D / 2);
      float2 v = make_float2(0.0f, 0.0f);
      if (g < group) v = *reinterpret_cast<const float2*>(q + g * D + 2 * j);
      s_q[g][j] = PackBf16x2(v.x * qs, v.y * qs);
    }
  }
  __syncthreads();
  if (warp < kAttendWarps) {
    bf16* stages = reinterpret_cast<bf16*>(smem) + warp * kAttendStages * 2 * kAttendTile;
    // The warp's entries' pages and visible keys, 32 at a time in a lane each (entry i of the
    // warp is lane i % 32 of batch i / 32), so a tile's issue does not wait on a load.
    int32_t batch = -1, my_page = 0, my_visible = -1, issued = 0;
    auto issue = [&](int st) -> int32_t {
      if (issued >> 5 != batch) {
        batch = issued >> 5;
        const int32_t e = warp + ((batch << 5) + lane) * kAttendWarps;
        my_page = e < count ? p.out_pages[out0 + e] : 0;
        my_visible = e < count ? max(0, min(kAttendKeys, pos - p.out_logical[out0 + e] * kAttendKeys + 1)) : -1;
      }
      const int32_t page = __shfl_sync(0xffffffffu, my_page, issued & 31);
      const int32_t visible = __shfl_sync(0xffffffffu, my_visible, issued & 31);
      if (visible >= 0) {
        bf16* ks = stages + st * 2 * kAttendTile;
        bf16* vs = ks + kAttendTile;
        // Lane l copies 16-byte chunk l % 16 of keys l / 16 + 2i (i < 8): one address a lane
        // plus constant steps.
        const size_t base = p.kv.Offset(page, h, 0) + (lane >> 4) * D + (lane & 15) * 8;
        const int row0 = (lane >> 4) * kAttendStride + (lane & 15) * 8;
#pragma unroll
        for (int i = 0; i < kAttendKeys / 2; ++i) {
          const bool valid = (lane >> 4) + 2 * i < visible;
          const size_t off = valid ? base + static_cast<size_t>(2 * i) * D : base;
          CpAsync16</*kL2Block=*/true>(ks + row0 + 2 * i * kAttendStride, p.kv.k + off, valid);
          CpAsync16</*kL2Block=*/true>(vs + row0 + 2 * i * kAttendStride, p.kv.v + off, valid);
        }
        ++issued;
      }
      CpAsyncCommit();
      return visible;
    };
    int32_t ahead[kAttendStages - 1];
#pragma unroll
    for (int i = 0; i < kAttendStages - 1; ++i) ahead[i] = issue(i);
    for (int k = 0; ahead[0] >= 0; ++k) {
      const int st = k % kAttendStages;
      const int32_t v = ahead[0];
      __syncwarp();  // every lane is done reading the stage the next issue overwrites
#pragma unroll
      for (int i = 0; i + 1 < kAttendStages - 1; ++i) ahead[i] = ahead[i + 1];
      ahead[kAttendStages - 2] = issue((k + kAttendStages - 1) % kAttendStages);
      CpAsyncWait<kAttendStages - 1>();
      __syncwarp();  // the tile landed for every lane of the warp
      if (v <= 0) continue;
      const bf16* ks = stages + st * 2 * kAttendTile;
      const bf16* vs = ks + kAttendTile;
      const auto kpair = [&](int row, int col) -> uint32_t {
        return *reinterpret_cast<const uint32_t*>(ks + row * kAttendStride + col);
      };
      float sc[2][2];  // row gid's scores of keys 8j + 2tig, + 1
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        sc[j][0] = sc[j][1] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          const uint32_t qa[4] = {s_q[gid][8 * kk + tig], 0u, s_q[gid][8 * kk + 4 + tig], 0u};
          MmaBf16RowsLo(sc[j][0], sc[j][1], qa, kpair(8 * j + gid, 16 * kk + 2 * tig),
                        kpair(8 * j + gid, 16 * kk + 8 + 2 * tig));
        }
      }
      float tmax = -INFINITY;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          if (8 * j + 2 * tig + c >= v) sc[j][c] = -INFINITY;
          tmax = fmaxf(tmax, sc[j][c]);
        }
      }
      tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
      tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
      const float mn = fmaxf(m, tmax);  // finite: key 0 of the tile is visible
      const float corr = exp2f(m - mn);
      m = mn;
      l *= corr;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          sc[j][c] = exp2f(sc[j][c] - mn);
          l += sc[j][c];
        }
      }
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][0] *= corr;
        o[n][1] *= corr;
      }
      // P (row gid; rows gid + 8 zero) as the A fragment of the tile's one 16-key slice.
      const uint32_t pa[4] = {PackBf16x2(sc[0][0], sc[0][1]), 0u, PackBf16x2(sc[1][0], sc[1][1]), 0u};
      // V^T fragments: lane supplies row (key) lane % 8 + 8 ((lane / 8) & 1) at dims 16u + 8 (lane / 16).
      const int vr = (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
      for (int u = 0; u < D / 16; ++u) {
        uint32_t b[4];
        AttendLdMatrixX4Trans(b, vs + vr * kAttendStride + 16 * u + 8 * (lane >> 4));
        MmaBf16RowsLo(o[2 * u][0], o[2 * u][1], pa, b[0], b[1]);
        MmaBf16RowsLo(o[2 * u + 1][0], o[2 * u + 1][1], pa, b[2], b[3]);
      }
    }
    CpAsyncWaitAll();  // only empty groups can remain; nothing may land after the aliasing below
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
  }
  __syncthreads();  // every warp is out of its stages: the states below reuse them
  float* s_acc = reinterpret_cast<float*>(smem);  // [kAttendWarps][G][D]
  if (warp < kAttendWarps && gid < group) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      s_acc[(warp * G + gid) * D + 8 * n + 2 * tig] = o[n][0];
      s_acc[(warp * G + gid) * D + 8 * n + 2 * tig + 1] = o[n][1];
    }
    if (tig == 0) {
      s_m[warp][gid] = m;
      s_l[warp][gid] = l;
    }
  }
  __syncthreads();
  for (int32_t i = threadIdx.x; i < group * D; i += blockDim.x) {
    const int32_t g = i / D, d = i % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kAttendWarps; ++w) mx = fmaxf(mx, s_m[w][g]);
    float sum = 0.0f, acc = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttendWarps; ++w) {
      const float f = s_m[w][g] == -INFINITY ? 0.0f : exp2f(s_m[w][g] - mx);  // a warp with no keys adds nothing
      sum += f * s_l[w][g];
      acc += f * s_acc[(w * G + g) * D + d];
    }
    p.attn_out[(static_cast<int64_t>(t) * p.num_heads + h * group + g) * D + d] = __float2bfloat16(acc / sum);
  }
}

}  // namespace lil::cuda
