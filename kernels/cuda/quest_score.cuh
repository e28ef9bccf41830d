// File: kernels/cuda/quest_score.cuh
// The Quest scoring passes of kernels/cuda/quest.cu (QuestScoreKernel and QuestSelectKernel
// scoring their own candidates): a candidate page's bound from its min / max metadata and the
// group's folded query (LoadQ), summed four candidates a warp (WarpSums4), through registers
// (Score) or staged in shared memory by cp.async (ScoreStaged). ScoreOctets
// (quest_octets.cuh) is the selection CTA's own head_dim-128 bf16 form. Included by quest.cu
// only (its helpers live in an unnamed namespace).
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <type_traits>

#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/quest.h"
#include "kernels/cuda/quest_octets.cuh"
#include "kernels/quest_fp8.h"

namespace lil::cuda {
namespace {

// The group's query rows folded for this lane's kDpl contiguous dims: qp[j] = sum over the
// group of max(q, 0), qn[j] = sum of min(q, 0). A page's bound sum_g sum_j max(q lo, q hi) =
// sum_g sum_j (max(q, 0) hi + min(q, 0) lo) (lo <= hi) is then sum_j (qp hi + qn lo): two FMAs
// a dim whatever the group (the per-row form, a select, an FMA and a branch a dim and row, kept
// session 9's scoring at ~0.6 us a candidate a warp).
template <int kDpl>
__device__ __forceinline__ void LoadQ(const QuestSelectParams& p, int32_t s, int32_t h, float (&qp)[kDpl],
                                      float (&qn)[kDpl]) {
  const int32_t d = p.kv.head_dim, group = p.num_heads / p.kv.num_kv_heads, lane = threadIdx.x & 31;
  const float* q = p.q + (static_cast<int64_t>(p.q_row[s]) * p.num_heads + h * group) * d;
#pragma unroll
  for (int j = 0; j < kDpl; ++j) {
    qp[j] = 0.0f;
    qn[j] = 0.0f;
  }
  for (int32_t g = 0; g < group; ++g) {
#pragma unroll
    for (int j = 0; j < kDpl; ++j) {
      const float x = q[g * d + lane * kDpl + j];
      qp[j] += fmaxf(x, 0.0f);
      qn[j] += fminf(x, 0.0f);
    }
  }
}

// The metadata's element type M: bf16 (kv.quest) or e4m3 bytes (kv.quest_fp8).
template <typename M>
__device__ __forceinline__ const M* MetaBase(const PagedKvViewBf16& kv);
template <>
__device__ __forceinline__ const bf16* MetaBase<bf16>(const PagedKvViewBf16& kv) {
  return kv.quest;
}
template <>
__device__ __forceinline__ const uint8_t* MetaBase<uint8_t>(const PagedKvViewBf16& kv) {
  return kv.quest_fp8;
}

__device__ __forceinline__ float MetaToFloat(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float MetaToFloat(uint8_t x) { return E4m3ToFloat(x); }
// n consecutive elements to float (e4m3 two at a time: one cvt on sm_90, exact like
// E4m3ToFloat: e4m3 values are fp16 values).
template <int n>
__device__ __forceinline__ void MetaToFloats(const bf16* src, float (&out)[n]) {
#pragma unroll
  for (int j = 0; j < n; ++j) out[j] = __bfloat162float(src[j]);
}
template <int n>
__device__ __forceinline__ void MetaToFloats(const uint8_t* src, float (&out)[n]) {
  if constexpr (n % 2 == 0) {
#pragma unroll
    for (int j = 0; j < n; j += 2) {
      const __nv_fp8x2_storage_t pair = static_cast<__nv_fp8x2_storage_t>(src[j] | (src[j + 1] << 8));
      const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
      out[j] = f.x;
      out[j + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int j = 0; j < n; ++j) out[j] = MetaToFloat(src[j]);
  }
}

// A register vector of `bytes` bytes (one lane's slice of a min or max row).
template <int bytes>
using VecOf = typename std::conditional<
    bytes == 8, uint2,
    typename std::conditional<bytes == 4, uint32_t, typename std::conditional<bytes == 2, uint16_t, uint8_t>::type>::type>::type;

// This lane's part of one candidate's score: sum over its dims of qp hi + qn lo (LoadQ).
template <int kDpl, typename M>
__device__ __forceinline__ float PartialBound(const float (&qp)[kDpl], const float (&qn)[kDpl], const M* lo_m,
                                              const M* hi_m) {
  float lo_f[kDpl], hi_f[kDpl];
  MetaToFloats<kDpl>(lo_m, lo_f);
  MetaToFloats<kDpl>(hi_m, hi_f);
  float a = 0.0f, b = 0.0f;
#pragma unroll
  for (int j = 0; j < kDpl; ++j) {
    a = fmaf(qp[j], hi_f[j], a);
    b = fmaf(qn[j], lo_f[j], b);
  }
  return a + b;
}

// The warp sums of four candidates' partial scores, reduce-scattered: after the xor-16 and
// xor-8 steps each quarter of the warp holds one candidate's partial sums (6 shuffles for 4
// candidates instead of 20); returns the total of candidate lane >> 3 (in all 8 lanes of its
// quarter). Every head_dim-32/64/128 path sums every candidate this way (ScoreFour), so a
// candidate scores the same in any of them.
__device__ __forceinline__ float WarpSums4(const float (&v)[4]) {
  const int lane = threadIdx.x & 31;
  const bool hi16 = (lane & 16) != 0, hi8 = (lane & 8) != 0;
  // xor 16: lanes 0-15 keep candidates 0, 1, lanes 16-31 candidates 2, 3.
  const float k0 = hi16 ? v[2] : v[0], k1 = hi16 ? v[3] : v[1];
  const float s0 = hi16 ? v[0] : v[2], s1 = hi16 ? v[1] : v[3];
  const float w0 = k0 + __shfl_xor_sync(0xffffffffu, s0, 16), w1 = k1 + __shfl_xor_sync(0xffffffffu, s1, 16);
  // xor 8: the lower 8 of each half keep the first, the upper 8 the second.
  float t = (hi8 ? w1 : w0) + __shfl_xor_sync(0xffffffffu, hi8 ? w0 : w1, 8);
#pragma unroll
  for (int o = 4; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
  return t;
}

// Four candidates' scores from this lane's slices of their min / max rows (register vectors
// Vec of kDpl elements M): the total of candidate lane >> 3, as WarpSums4.
template <int kDpl, typename M, typename Vec>
__device__ __forceinline__ float ScoreFour(const float (&qp)[kDpl], const float (&qn)[kDpl], const Vec* lo,
                                           const Vec* hi) {
  float part[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    part[k] = PartialBound<kDpl>(qp, qn, reinterpret_cast<const M*>(&lo[k]), reinterpret_cast<const M*>(&hi[k]));
  }
  return WarpSums4(part);
}

// Scores of candidates [first, end) into keys[c] (c indexes the sequence's candidates) by nw
// warps, this one being number wi of them: it takes candidates first + wi + j * nw. kDpl =
// head_dim / 32 contiguous dims per lane (head_dim 32, 64, 128), or 0 for any other head_dim
// (strided scalar reads).
template <int kDpl, typename M, int kBatch = 8>
__device__ void Score(const QuestSelectParams& p, int32_t s, int32_t h, int32_t first, int32_t end, uint32_t* keys,
                      int wi, int nw) {
  const int32_t d = p.kv.head_dim, group = p.num_heads / p.kv.num_kv_heads, c0 = p.cand_begin[s];
  const int lane = threadIdx.x & 31;
  if constexpr (kDpl > 0) {
    static_assert(kBatch % 4 == 0 && 32 % kBatch == 0, "four at a time, batches tiling a group of 32");
    float qp[kDpl], qn[kDpl];
    LoadQ<kDpl>(p, s, h, qp, qn);
    // kBatch candidates per warp in flight: their min/max loads are all issued before any is
    // used (the metadata stream is latency-bound otherwise). The page ids of 32 candidates
    // come in one load, a lane each, and reach the batches by shuffles: each batch then waits
    // on one round trip (the metadata), not two (page id, then metadata).
    using Vec = VecOf<kDpl * sizeof(M)>;
    const M* meta = MetaBase<M>(p.kv);
    for (int32_t base = first + wi; base < end; base += nw * 32) {
      const int32_t my_c = base + lane * nw;
      const int32_t my_page = my_c < end ? p.cand_pages[c0 + my_c] : 0;
#pragma unroll 1
      for (int b = 0; b < 32 / kBatch; ++b) {
        const int32_t cb = base + b * kBatch * nw;
        if (cb >= end) break;
        Vec lo_v[kBatch], hi_v[kBatch];
#pragma unroll
        for (int k = 0; k < kBatch; ++k) {
          const int32_t c = cb + k * nw;
          const int32_t page = __shfl_sync(0xffffffffu, my_page, b * kBatch + k);
          if (c < end) {
            const M* mn = meta + p.kv.QuestOffset(page, h) + lane * kDpl;
            lo_v[k] = *reinterpret_cast<const Vec*>(mn);
            hi_v[k] = *reinterpret_cast<const Vec*>(mn + d);
          }
        }
#pragma unroll
        for (int k4 = 0; k4 < kBatch; k4 += 4) {
          const float total = ScoreFour<kDpl, M>(qp, qn, &lo_v[k4], &hi_v[k4]);
          const int32_t c = cb + (k4 + (lane >> 3)) * nw;
          if ((lane & 7) == 0 && c < end) keys[c] = QuestOrderKey(total);
        }
      }
    }
  } else {
    const float* q = p.q + (static_cast<int64_t>(p.q_row[s]) * p.num_heads + h * group) * d;
    for (int32_t c = first + wi; c < end; c += nw) {
      const M* mn = MetaBase<M>(p.kv) + p.kv.QuestOffset(p.cand_pages[c0 + c], h);
      const M* mx = mn + d;
      float total = 0.0f;
      for (int32_t i = lane; i < d; i += 32) {
        float qp = 0.0f, qn = 0.0f;  // the folded group, as LoadQ
        for (int32_t g = 0; g < group; ++g) {
          qp += fmaxf(q[g * d + i], 0.0f);
          qn += fminf(q[g * d + i], 0.0f);
        }
        total += qp * MetaToFloat(mx[i]) + qn * MetaToFloat(mn[i]);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
      if (lane == 0) keys[c] = QuestOrderKey(total);
    }
  }
}

// Score for head_dim 128 with the metadata staged in shared memory: a candidate's (min, max)
// block is 512 bytes in bf16 (one 16-byte cp.async a lane) or 256 in e4m3 (half a warp).
// Each warp walks its candidates (first + wi + j * nw) as one pipeline of batches of 2 KiB,
// kStagedStages - 1 batches in flight while it scores another, holding no registers for them
// (the register path's loads cap it at 2-3 CTAs an SM with 4-8 candidates a warp). The page
// ids come 32 at a time, a lane each, loaded a group of 32 ahead. Same ScoreFour, so the same
// keys as Score.
constexpr int kStagedStages = 4;
constexpr int kStagedBatchBytes = 2048;  // a warp's batch: 4 cp.async of 16 bytes a lane

template <typename M>
__device__ void ScoreStaged(const QuestSelectParams& p, int32_t s, int32_t h, int32_t first, int32_t end, uint32_t* keys,
                            int wi, int nw, uint8_t* smem) {
  constexpr int kDpl = 4;
  constexpr int kBlock = 2 * 128 * sizeof(M);        // bytes of a candidate's (min, max)
  constexpr int kLanesPerBlock = kBlock / 16;        // 32 (bf16) or 16 (e4m3)
  constexpr int kPerCopy = 32 / kLanesPerBlock;      // candidates one warp-wide cp.async moves
  constexpr int kBatch = kStagedBatchBytes / kBlock;  // candidates a batch: 4 or 8, a divisor of 32
  const int32_t c0 = p.cand_begin[s] + first;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const M* meta = MetaBase<M>(p.kv);
  const int32_t count = max(0, (end - first - wi + nw - 1) / nw);  // this warp's candidates
  if (count == 0) return;
  // Page ids of the warp's candidates 32g .. 32g + 31, lane l holding 32g + l.
  auto group_pages = [&](int32_t g) {
    const int32_t j = 32 * g + lane;
    return j < count ? p.cand_pages[c0 + wi + j * nw] : 0;
  };
  int32_t g_cur = 0, ids_cur = group_pages(0), ids_next = group_pages(1);
  // The page ids are the host's; q and the metadata (the newest page's bounds) are written
  // by the kernel before this one.
  PdlWait();
  uint8_t* ws = smem + warp * kStagedStages * kStagedBatchBytes;
  const int sub = lane / kLanesPerBlock, part = lane % kLanesPerBlock;  // this lane's candidate of a copy, its 16 bytes
  const int32_t batches = (count + kBatch - 1) / kBatch;
  auto issue = [&](int32_t b) {  // batch b into stage b % kStagedStages (an empty group past the end)
    if (b < batches) {
      const int32_t g = b * kBatch / 32;  // a batch lies in one group of 32
      if (g != g_cur) {  // the issue moves on a group: its ids were loaded a group ago
        g_cur = g;
        ids_cur = ids_next;
        ids_next = group_pages(g + 1);
      }
      uint8_t* st = ws + (b % kStagedStages) * kStagedBatchBytes;
#pragma unroll
      for (int k = 0; k < kBatch / kPerCopy; ++k) {
        const int slot = k * kPerCopy + sub;
        const int32_t j = b * kBatch + slot;
        const int32_t page = __shfl_sync(0xffffffffu, ids_cur, j & 31);
        CpAsync16(st + slot * kBlock + part * 16,
                  reinterpret_cast<const uint8_t*>(meta + p.kv.QuestOffset(page, h)) + part * 16, j < count);
      }
    }
    CpAsyncCommit();
  };
#pragma unroll
  for (int b = 0; b < kStagedStages - 1; ++b) issue(b);
  // q after the first batches' copies are out, so its round trip overlaps theirs.
  float qp[kDpl], qn[kDpl];
  LoadQ<kDpl>(p, s, h, qp, qn);
#pragma unroll 1
  for (int32_t b = 0; b < batches; ++b) {
    issue(b + kStagedStages - 1);  // into the stage batch b - 1 used
    CpAsyncWait<kStagedStages - 1>();
    __syncwarp();
    const uint8_t* st = ws + (b % kStagedStages) * kStagedBatchBytes;
#pragma unroll
    for (int k4 = 0; k4 < kBatch; k4 += 4) {
      using Vec = VecOf<kDpl * sizeof(M)>;
      Vec lo_v[4], hi_v[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const M* blk = reinterpret_cast<const M*>(st + (k4 + k) * kBlock);
        lo_v[k] = *reinterpret_cast<const Vec*>(blk + lane * kDpl);
        hi_v[k] = *reinterpret_cast<const Vec*>(blk + 128 + lane * kDpl);
      }
      const float total = ScoreFour<kDpl, M>(qp, qn, lo_v, hi_v);
      const int32_t j = b * kBatch + k4 + (lane >> 3);
      if ((lane & 7) == 0 && j < count) keys[first + wi + j * nw] = QuestOrderKey(total);
    }
    __syncwarp();  // the stage is free for the next issue
  }
  CpAsyncWaitAll();
}

}  // namespace
}  // namespace lil::cuda
