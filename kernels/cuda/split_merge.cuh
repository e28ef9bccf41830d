// File: kernels/cuda/split_merge.cuh
// Pieces shared by the two split-KV decode kernels (attention.cu: CUDA cores;
// attention_tc.cu: tensor cores): the partial-state slot layout and the end of a CTA, which
// merges its warps' online-softmax states and, when the row is split, writes its partial and
// lets the last CTA of the row merge every split (XQA's multi-block pattern: no second launch).
#pragma once

#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cp_async.cuh"

namespace lil::cuda {

inline constexpr int kSlotGroup = 8;             // partial slots are laid out for the largest group
inline constexpr int kMaxSplits = 128;           // ChooseSplit never asks for more
inline constexpr float kLog2e = 1.4426950408889634f;

__host__ __device__ constexpr int64_t SlotFloats(int d) { return static_cast<int64_t>(kSlotGroup) * d + 2 * kSlotGroup; }

// A split CTA's place: blockIdx.x = token * num_kv_heads + KV head (x), blockIdx.y = split.
// The row's entries are cut into chunks of max(min_chunk_entries, ceil(n / splits)), splits
// max_splits or (a row shorter than the long-row length) row_splits, from device data, so a
// captured graph serves any page-list lengths; this CTA reads [cb, ce).
struct SplitRow {
  int32_t x, split, t, kvh, group, nsplit, cb, ce;
};
// False when the row has fewer chunks than blockIdx.y: the CTA has nothing to do.
__device__ __forceinline__ bool LocateSplit(const PagedAttentionParams& p, SplitRow& r) {
  const int32_t hkv = p.kv.num_kv_heads;
  r.x = blockIdx.x;
  r.split = blockIdx.y;
  r.t = r.x / hkv;
  r.kvh = r.x % hkv;
  r.group = p.num_heads / hkv;
  const int32_t row = RowOf(p, p.token_seq[r.t], r.kvh);
  const int32_t begin = p.row_indptr[row], end = p.row_indptr[row + 1], nent = end - begin;
  const int32_t chunk = p.min_chunk_entries > 0 ? SplitChunkEntries(p.min_chunk_entries, p.max_splits, p.row_splits,
                                                                     p.long_chunk_entries, nent)
                                                 : max(nent, 1);
  r.nsplit = max(1, (nent + chunk - 1) / chunk);
  r.cb = begin + r.split * chunk;
  r.ce = min(end, r.cb + chunk);
  return r.split < r.nsplit;
}

// Lanes 0 and 1 of each of the CTA's W warps send the warp's first two pages of [cb, ce)
// (entries cb + warp + i * W) to the L2. Called before PdlWait when the row lists are the
// host's (rows_static): the fetch then overlaps the previous kernel.
template <int D, int W = kSplitWarps>
__device__ __forceinline__ void PrefetchFirstPages(const PagedAttentionParams& p, int32_t cb, int32_t ce, int32_t kvh,
                                                   int32_t pos) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t e = cb + warp + lane * W;
  if (lane >= 2 || e >= ce) return;
  const int32_t n = min(p.kv.page_size, pos - p.row_logical[e] * p.kv.page_size + 1);
  if (n <= 0) return;
  const size_t off = p.kv.Offset(p.row_pages[e], kvh, 0);
  PrefetchL2(p.kv.k + off, static_cast<uint32_t>(n) * D * sizeof(bf16));
  PrefetchL2(p.kv.v + off, static_cast<uint32_t>(n) * D * sizeof(bf16));
}

// The CTA's state for output i of head g, from its W warps' states in shared memory (below):
// the largest max, the sum and the accumulator rescaled to it.
template <int D, int G, int W>
__device__ __forceinline__ void MergeWarps(const float* s_acc, const float (*s_m)[G], const float (*s_l)[G], int g, int i,
                                           float* mx, float* sum, float* a) {
  *mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < W; ++w) *mx = fmaxf(*mx, s_m[w][g]);
  *sum = 0.0f;
  *a = 0.0f;
#pragma unroll
  for (int w = 0; w < W; ++w) {
    const float f = s_m[w][g] == -INFINITY ? 0.0f : exp2f(s_m[w][g] - *mx);
    *sum += s_l[w][g] * f;
    *a += s_acc[(w * G + g) * D + i] * f;
  }
}

// Called by every thread of the CTA after __syncthreads(), with its W warps' states in shared
// memory: s_m / s_l [W][G] (log2-domain max and sum; -inf max: no key), s_acc [W][G][D]
// (unnormalized outputs). Rows g < group are live. Returns whether this CTA wrote the row's
// output (one split, or the last to finish). clocks: where set (shared memory, the timeline's
// points), thread 0 notes kAtCounted in it.
template <int D, int G, int W = kSplitWarps>
__device__ __forceinline__ bool MergeSplits(const PagedAttentionParams& p, const SplitRow& r, const float* s_acc,
                                            const float (*s_m)[G], const float (*s_l)[G], uint64_t* clocks = nullptr) {
  const int32_t x = r.x, split = r.split, nsplit = r.nsplit, t = r.t, kvh = r.kvh, group = r.group;
  __shared__ int s_last;
  const bool single = nsplit == 1;
  float* slot = single ? nullptr : p.partial + (static_cast<int64_t>(x) * p.max_splits + split) * SlotFloats(D);
  for (int idx = threadIdx.x; idx < group * D; idx += blockDim.x) {
    const int g = idx / D, i = idx % D;
    float mx, sum, a;
    MergeWarps<D, G, W>(s_acc, s_m, s_l, g, i, &mx, &sum, &a);
    if (single) {
      bf16* out = p.out + (static_cast<int64_t>(t) * p.num_heads + kvh * group + g) * D;
      out[i] = __float2bfloat16(sum > 0.0f ? a / sum : 0.0f);  // nothing visible: zeros
    } else {
      slot[g * D + i] = a;
      if (i == 0) {
        slot[kSlotGroup * D + g] = mx;
        slot[kSlotGroup * D + kSlotGroup + g] = sum;
      }
    }
  }
  if (single) {
    if (clocks != nullptr && threadIdx.x == 0) clocks[kAtCounted] = clock64();
    return true;
  }
  // Last CTA of the row merges the splits (XQA's multi-block pattern: no second launch).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) s_last = atomicAdd(p.counters + x, 1) == nsplit - 1;
  __syncthreads();
  if (clocks != nullptr && threadIdx.x == 0) clocks[kAtCounted] = clock64();
  if (!s_last) return false;
  __threadfence();
  // One pass: each thread owns 4 consecutive outputs of one head and folds the splits in
  // batches of kMergeBatch with an online softmax, every load of a batch (the split's max, sum
  // and 4 accumulators, 16 B) issued before any is used. The critical path is
  // ceil(nsplit / kMergeBatch) L2 round trips. (It was a max pass, a barrier, then 4 outputs
  // a thread each summing its splits 8 loads at a time: ~10 dependent round trips at 16
  // splits, most of the batch-1 attention's time; docs/PERF.md, session 11.)
  constexpr int kMergeBatch = G >= 4 ? 16 : 8, kQuads = D / 4;
  const float* parts = p.partial + static_cast<int64_t>(x) * p.max_splits * SlotFloats(D);
  for (int idx = threadIdx.x; idx < group * kQuads; idx += blockDim.x) {
    const int g = idx / kQuads, i4 = idx % kQuads;
    float mx = -INFINITY, sum = 0.0f;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int sp0 = 0; sp0 < nsplit; sp0 += kMergeBatch) {
      float ms[kMergeBatch], ls[kMergeBatch];
      float4 as[kMergeBatch];
#pragma unroll
      for (int b = 0; b < kMergeBatch; ++b) {
        const float* slot_b = parts + (sp0 + b) * SlotFloats(D);
        const bool live = sp0 + b < nsplit;
        ms[b] = live ? __ldcg(slot_b + kSlotGroup * D + g) : -INFINITY;
        ls[b] = live ? __ldcg(slot_b + kSlotGroup * D + kSlotGroup + g) : 0.0f;
        as[b] = live ? __ldcg(reinterpret_cast<const float4*>(slot_b + g * D) + i4) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
      float bm = mx;
#pragma unroll
      for (int b = 0; b < kMergeBatch; ++b) bm = fmaxf(bm, ms[b]);
      if (bm == -INFINITY) continue;  // no key in any split so far
      const float c = exp2f(mx - bm);  // 0 while mx is -inf
      sum *= c;
      a.x *= c; a.y *= c; a.z *= c; a.w *= c;
#pragma unroll
      for (int b = 0; b < kMergeBatch; ++b) {
        const float f = ms[b] == -INFINITY ? 0.0f : exp2f(ms[b] - bm);
        sum = fmaf(ls[b], f, sum);
        a.x = fmaf(as[b].x, f, a.x); a.y = fmaf(as[b].y, f, a.y);
        a.z = fmaf(as[b].z, f, a.z); a.w = fmaf(as[b].w, f, a.w);
      }
      mx = bm;
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // nothing visible: zeros
    bf16* out = p.out + (static_cast<int64_t>(t) * p.num_heads + kvh * group + g) * D + 4 * i4;
    reinterpret_cast<__nv_bfloat162*>(out)[0] = __floats2bfloat162_rn(a.x * inv, a.y * inv);
    reinterpret_cast<__nv_bfloat162*>(out)[1] = __floats2bfloat162_rn(a.z * inv, a.w * inv);
  }
  if (threadIdx.x == 0) p.counters[x] = 0;
  return true;
}

// attention_tc.cu: the tensor-core kernel's CTAs per SM with that tile path (and, for
// cp.async, `stages` stages; its occupancy; 0 on error), and its launch (the same grid and
// contract as the CUDA-core split kernel; TcDecodeSupported shapes).
int32_t TcResidentPerSm(int32_t head_dim, TcTiles tiles, int32_t stages);
cudaError_t TcSplitAttention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace lil::cuda
