// File: kernels/cuda/quest.cu
// Three phases; the first runs in its own kernel when QuestSelectParams::keys is set (the
// backend's default: QuestScoreKernel over (KV heads, sequence, chunk of candidates) CTAs),
// the rest in one CTA per (sequence, KV head) (QuestSelectKernel):
//  1. scores: warps take candidate pages in turn; each lane reads a contiguous slice of the
//     page's min and max rows (bf16, or e4m3 rounded outward: kernels/quest_fp8.h; coalesced;
//     for head_dim 128 staged through shared memory by cp.async), dots it with the group's
//     folded query (LoadQ) and the warp sums four candidates at a time (WarpSums4); a selection
//     CTA scoring its own row at head_dim 128 in bf16 uses ScoreOctets (quest_octets.cuh);
//  2. threshold: the (keep-1)-th largest score by a radix select over order-preserving
//     integer keys, 8 bits a pass (up to four passes, each a 256-bin shared-memory histogram of
//     the keys that match the digits chosen so far, one barrier a pass); a pass whose digit's
//     bin is needed whole ends the search (usually after three; quest_radix.cuh). ScoreOctets
//     counts the first pass while it scores. Each thread holds its compaction run of keys (up
//     to 4: rows of up to 2,048 candidates) in registers for the passes, counts and compaction;
//  3. compaction in logical order with one block scan over runs of candidates: keys above the
//     threshold, then keys equal to it in index order (ties go to the lower index, as on the
//     CPU) until keep-1, plus the newest page; the entries the attention's warps read first go
//     to the L2 (QuestSelectParams::prefetch_entries). The CPU reference is kernels/cpu/quest.h.
// QuestSelectParams::timeline records where a selection CTA's time goes (gpu_attention_bench).
// Times and the designs measured and dropped: docs/PERF.md and docs/GPU.md "Missing / next".
#include "kernels/cuda/quest.h"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/quest_octets.cuh"
#include "kernels/cuda/quest_radix.cuh"
#include "kernels/cuda/smem_opt_in.h"
#include "kernels/quest_fp8.h"

#include <algorithm>
#include <atomic>

#include <cub/block/block_scan.cuh>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <type_traits>

namespace lil::cuda {
namespace {

constexpr int kThreads = 512;  // 16 warps: twice the metadata loads in flight of 256 (one CTA per SM at batch 16)
constexpr int kWarps = kThreads / 32;
// Candidates of its compaction run a selection thread loads before the PDL wait: the whole run
// up to 2,048 candidates (per = 4).
constexpr int kRunAhead = 4;

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

__device__ __forceinline__ uint64_t GlobalTimerNs() {
  uint64_t ns;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
  return ns;
}

// kOctetQuads > 0: the CTA's own scoring (launched only with keys null) through ScoreOctets,
// which also counts the threshold search's first pass. The explicit minimum of one CTA an SM let
// ptxas keep 112 registers for Score where it chose 100 (49.6 -> 44.3 us at batch 16 / 32k);
// ScoreOctets<4> then 44.3 -> 43.0, its first pass and page ids a group ahead 43.0 -> 42.0
// (docs/PERF.md, sessions 23-24).
template <int kDpl, typename M, int kOctetQuads = 0>
__global__ void __launch_bounds__(kThreads, 1) QuestSelectKernel(QuestSelectParams p) {
  PdlTrigger();
  extern __shared__ __align__(16) uint32_t keys[];  // [n - 1]
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  const int32_t s = blockIdx.x, h = blockIdx.y;
  const int32_t hkv = p.kv.num_kv_heads;
  // Before the PDL wait, what the host uploaded (no kernel writes the candidate lists, the
  // budgets or the offsets), so these round trips overlap the scoring kernel's tail where an
  // SM has room for this CTA: the row's shape and this thread's run of the compaction below
  // (thread i takes candidates [i * per, (i + 1) * per); the first kRunAhead of them here).
  const int32_t n = p.cand_count[s], c0 = p.cand_begin[s];
  const int32_t keep = min(n, max(1, p.budget_pages[s]));
  const int32_t out0 = p.out_begin[s * hkv + h];
  const int32_t per = (n + kThreads - 1) / kThreads;
  const int32_t lo = min(n, static_cast<int32_t>(threadIdx.x) * per), hi = min(n, lo + per);
  int32_t run_pages[kRunAhead], run_logical[kRunAhead];
#pragma unroll
  for (int i = 0; i < kRunAhead; ++i) {
    run_pages[i] = lo + i < hi ? p.cand_pages[c0 + lo + i] : 0;
    run_logical[i] = lo + i < hi ? p.cand_logical[c0 + lo + i] : 0;
  }
  // Two histograms for the threshold search below; kFold: the scoring counts the first pass.
  constexpr bool kFold = kOctetQuads > 0;
  __shared__ __align__(16) int hist[3 * 256];
  if constexpr (kFold) {
    for (int i = threadIdx.x; i < 2 * 256 / 4; i += blockDim.x) reinterpret_cast<int4*>(hist)[i] = make_int4(0, 0, 0, 0);
    __syncthreads();
  }
  // Diagnostics (QuestSelectParams::timeline): thread 0 notes the SM clock at each point in
  // shared memory (s_clock[kQuestTimelinePoints]: %globaltimer at the start).
  __shared__ uint64_t s_clock[kQuestTimelinePoints + 1];
  auto stamp = [&](int i) {
    if (p.timeline != nullptr && threadIdx.x == 0) s_clock[i] = clock64();
  };
  if (p.timeline != nullptr && threadIdx.x == 0) s_clock[kQuestTimelinePoints] = GlobalTimerNs();
  stamp(0);
  PdlWait();
  stamp(1);
  if (keep >= n) {  // everything fits: copy the candidates
    for (int32_t c = threadIdx.x; c < n; c += blockDim.x) {
      p.out_pages[out0 + c] = p.cand_pages[c0 + c];
      p.out_logical[out0 + c] = p.cand_logical[c0 + c];
    }
    return;
  }
  if constexpr (kOctetQuads > 0) {
    ScoreOctets<kOctetQuads>(p, s, h, 0, n - 1, keys, threadIdx.x >> 5, kWarps, hist);
  } else if (p.keys != nullptr) {  // QuestScoreKernel scored them
    // Four keys a 16-byte load, every load of a thread issued before its stores: a row of
    // 2,047 keys is one load a thread, one L2 round trip (the scalar loop's load -> store pairs
    // were four dependent round trips).
    const uint32_t* row_keys = p.keys + static_cast<int64_t>(s * hkv + h) * p.key_stride;
    int32_t c = threadIdx.x;
    if ((reinterpret_cast<uintptr_t>(row_keys) & 15) == 0) {
      const int32_t quads = (n - 1) / 4;
#pragma unroll 4
      for (int32_t i = threadIdx.x; i < quads; i += blockDim.x) {
        reinterpret_cast<uint4*>(keys)[i] = __ldcg(reinterpret_cast<const uint4*>(row_keys) + i);
      }
      c += quads * 4;
    }
    for (; c < n - 1; c += blockDim.x) keys[c] = row_keys[c];
  } else {
    Score<kDpl, M>(p, s, h, 0, n - 1, keys, threadIdx.x >> 5, kWarps);
  }
  __syncthreads();
  stamp(2);
  // This thread's run of keys in registers where it is at most kRunAhead long (rows of up to
  // 2,048 candidates; one 16-byte load at 4): the threshold search's passes, the counts and the
  // compaction below then read no shared memory. Longer runs: the search walks shared memory.
  const int32_t need = keep - 1, run_keys = max(0, min(hi, n - 1) - lo);
  const bool regs = per <= kRunAhead;
  uint32_t mine[kRunAhead];
  if (regs && run_keys == 4) {
    const uint4 v = *reinterpret_cast<const uint4*>(keys + lo);  // lo = 4i
    mine[0] = v.x, mine[1] = v.y, mine[2] = v.z, mine[3] = v.w;
  } else {
#pragma unroll
    for (int i = 0; i < kRunAhead; ++i) mine[i] = regs && i < run_keys ? keys[lo + i] : 0u;
  }
  // The need-th largest key T (kernels/cuda/quest_radix.cuh).
  uint32_t threshold = 0;
  int passes = 0;
  if (need > 0 && regs) {
    threshold = RadixThreshold<kFold>([&](auto f) {
#pragma unroll
      for (int i = 0; i < kRunAhead; ++i) {
        if (i < run_keys) f(mine[i]);
      }
    }, need, hist, passes);
  } else if (need > 0) {
    threshold = RadixThreshold<kFold>([&](auto f) {
      for (int32_t c = threadIdx.x; c < n - 1; c += kThreads) f(keys[c]);
    }, need, hist, passes);
  }
  stamp(3);
  // Compaction in one block scan: thread i takes the run [i * per, (i + 1) * per) of the
  // candidates and counts its keys above the threshold and equal to it (packed, equal << 16:
  // counts <= kQuestMaxCandidates < 2^16); the exclusive scan gives each run its place. The
  // candidates kept, in logical order: every key above T, the first need_eq keys equal to T
  // (need_eq = need - all keys above T), and the newest page, the last candidate.
  int gt = 0, eq = 0;
  if (need > 0 && regs) {
#pragma unroll
    for (int i = 0; i < kRunAhead; ++i) {
      gt += i < run_keys && mine[i] > threshold ? 1 : 0;
      eq += i < run_keys && mine[i] == threshold ? 1 : 0;
    }
  } else if (need > 0) {
    for (int32_t c = lo; c < lo + run_keys; ++c) {
      gt += keys[c] > threshold ? 1 : 0;
      eq += keys[c] == threshold ? 1 : 0;
    }
  }
  int before = 0, total = 0;
  Scan(scan_storage).ExclusiveSum((eq << 16) | gt, before, total);
  stamp(4);
  const int32_t need_eq = need - (total & 0xffff);
  int e_run = before >> 16;  // keys equal to T before this run
  // The place of the run's first chosen entry; the run's chosen entries take the next places.
  int32_t at = (before & 0xffff) + min(e_run, need_eq);
  const SplitChoice& sp = p.attend_split;
  const int32_t chunk = sp.min_chunk_entries > 0
                            ? SplitChunkEntries(sp.min_chunk_entries, sp.max_splits, sp.row_splits, sp.long_chunk_entries, keep)
                            : keep;
  const uint32_t page_bytes = static_cast<uint32_t>(p.kv.page_size * p.kv.head_dim) * sizeof(bf16);
  // Bulk prefetches take 16-byte units; and where the prefetch would cover more than half of each
  // chunk (batch 1's 5-entry chunks: every page sent, 28.0 -> 30.9 us at 32k) it is left off.
  const int32_t prefetch = page_bytes % 16 == 0 && chunk >= 2 * p.prefetch_entries ? p.prefetch_entries : 0;
  // at's place in its chunk of the attention split (prefetch > 0 only).
  int32_t in_chunk = prefetch > 0 ? at % chunk : 0;
  // Every thread of the CTA runs this part (instruction-bound: one modulo a run, not a candidate).
  // Whether candidate c with `key` is kept: the newest page; keys above T; keys equal to T while
  // need_eq lasts (in index order).
  auto kept = [&](int32_t c, uint32_t key) {
    if (c == n - 1) return true;
    if (need == 0 || key < threshold) return false;
    return key > threshold || e_run++ < need_eq;
  };
  auto put = [&](int32_t page, int32_t logical) {
    p.out_pages[out0 + at] = page;
    p.out_logical[out0 + at] = logical;
    // One of the attention's first tiles (quest.h). The bulk prefetches go through the SM's one
    // TMA unit, ~30 ns each: issued here, from the warps holding the chunks' first entries, they
    // overlap the other warps' work (session 27: the 32 of a batch-16 CTA from lane 0 of every
    // warp in turn after a barrier, or as plain 128-byte line prefetches a warp a page, were
    // 0.4-0.5 us slower).
    if (in_chunk < prefetch) {
      const size_t off = p.kv.Offset(page, h, 0);  // 16-byte aligned, as page_bytes is a multiple of 16
      PrefetchL2(p.kv.k + off, page_bytes);
      PrefetchL2(p.kv.v + off, page_bytes);
    }
    ++at;
    if (++in_chunk == chunk) in_chunk = 0;
  };
#pragma unroll
  for (int i = 0; i < kRunAhead; ++i) {
    if (lo + i < hi && kept(lo + i, regs ? mine[i] : keys[min(lo + i, n - 2)])) put(run_pages[i], run_logical[i]);
  }
  for (int32_t c = lo + kRunAhead; c < hi; ++c) {
    if (kept(c, keys[min(c, n - 2)])) put(p.cand_pages[c0 + c], p.cand_logical[c0 + c]);
  }
  stamp(5);
  if (p.timeline != nullptr) {  // the end of the whole CTA's stores
    __syncthreads();
    stamp(6);
    if (threadIdx.x == 0) {
      uint64_t* t = p.timeline + (static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x) * kQuestTimelineWords;
      for (int i = 0; i < kQuestTimelinePoints; ++i) t[i] = s_clock[i];
      t[kQuestTimelinePoints] = s_clock[kQuestTimelinePoints];
      t[kQuestTimelinePoints + 1] = GlobalTimerNs();
      t[kQuestTimelinePoints + 2] = static_cast<uint64_t>(passes);
      uint32_t sm;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
      t[kQuestTimelinePoints + 3] = sm;
    }
  }
}

// The scoring pass spread over CTAs (QuestSelectParams::keys): one per (group of up to eight
// KV heads, sequence, chunk of candidates), eight warps, keys to global memory for
// QuestSelectKernel. The warps map onto the KV heads (warp w scores head w % hpc, hpc =
// min(KV heads, 8), its candidates w / hpc, w / hpc + 8 / hpc, ...): the heads' metadata of a
// page lie side by side ([page][head][min, max]: 4 KiB for 8 heads of 128 dims in bf16), and
// warps of one CTA walking the same candidates in step read those blocks together. The chunk
// is sized so the grid is about one wave (ScoreChunk; other sizes measured no faster, and
// until session 9 a CTA was one head's: docs/PERF.md sessions 9 and 20).
constexpr int kScoreWarps = 8;
constexpr int kScoreCtasPerSm = 3;  // __launch_bounds__ below; 64 KiB of stages each
constexpr int32_t kMinScoreChunk = 32;
constexpr size_t kStagedSmem = size_t{kScoreWarps} * kStagedStages * kStagedBatchBytes;  // 64 KiB

// KV heads a scoring CTA takes.
__host__ __device__ inline int32_t ScoreHeads(int32_t num_kv_heads) { return num_kv_heads < kScoreWarps ? num_kv_heads : kScoreWarps; }

// Candidates a scoring CTA takes: the rows' candidates over one wave of CTAs, in multiples of
// 32, at least kMinScoreChunk.
int32_t ScoreChunk(int32_t key_stride, int32_t ctas_per_chunk) {
  const int32_t sms = CurrentSmCount();  // ranks of a TP group each ask about their own GPU
  const int32_t chunks = std::max(1, kScoreCtasPerSm * sms / std::max(1, ctas_per_chunk));
  const int32_t chunk = (key_stride + chunks - 1) / chunks;
  return std::max(kMinScoreChunk, (chunk + 31) / 32 * 32);
}

template <int kDpl, bool kStaged, typename M>
__global__ void __launch_bounds__(kScoreWarps * 32, kScoreCtasPerSm) QuestScoreKernel(QuestSelectParams p, int32_t chunk) {
  // The selection kernel may launch now: it loads its host-written inputs, then waits.
  PdlTrigger();
  extern __shared__ __align__(16) uint8_t staged[];  // kStaged: kStagedSmem bytes
  const int32_t hkv = p.kv.num_kv_heads, hpc = ScoreHeads(hkv), subsets = kScoreWarps / hpc;
  const int warp = threadIdx.x >> 5;
  const int32_t h = blockIdx.x * hpc + warp % hpc, s = blockIdx.y;
  const int32_t n = p.cand_count[s];
  const int32_t keep = min(n, max(1, p.budget_pages[s]));
  const int32_t first = blockIdx.z * chunk, end = min(n - 1, first + chunk);
  // The selection copies every candidate, or no work here, or a warp past the heads.
  if (keep >= n || first >= end || h >= hkv || warp >= hpc * subsets) return;
  uint32_t* row_keys = p.keys + static_cast<int64_t>(s * hkv + h) * p.key_stride;
  if constexpr (kStaged) {
    ScoreStaged<M>(p, s, h, first, end, row_keys, warp / hpc, subsets, staged);  // waits after its page ids
  } else {
    PdlWait();
    Score<kDpl, M, 4>(p, s, h, first, end, row_keys, warp / hpc, subsets);  // 4 in flight: 80 registers, 3 CTAs an SM
  }
}

template <int kDpl, typename M>
cudaError_t Launch(const QuestSelectParams& p, cudaStream_t stream) {
  // The keys of the longest row (key_stride bounds every cand_count), else the limit, for which
  // the opt-in is made. A CTA holding 64 KiB it does not use keeps a scoring CTA off its SM
  // while it waits on PDL (session 24: one CTA an SM scoring its own row measured the same).
  const size_t max_smem = sizeof(uint32_t) * kQuestMaxCandidates;
  const size_t smem = p.key_stride > 0 ? sizeof(uint32_t) * std::max(1, std::min(p.key_stride, kQuestMaxCandidates)) : max_smem;
  // A CTA scoring its own row at head_dim 128 in bf16 does it through ScoreOctets, 4 quads in flight.
  constexpr int kOwnQuads = kDpl == 4 && std::is_same_v<M, bf16> ? 4 : 0;
  const bool octets = kOwnQuads > 0 && p.keys == nullptr;
  auto* const select = octets ? QuestSelectKernel<kDpl, M, kOwnQuads> : QuestSelectKernel<kDpl, M>;
  static std::atomic<uint64_t> configured{0}, octets_configured{0};
  if (const cudaError_t e = OptInDynamicSmem(reinterpret_cast<const void*>(select), max_smem, octets ? octets_configured : configured);
      e != cudaSuccess) {
    return e;
  }
  if (p.keys != nullptr && !p.keys_ready) {
    const int32_t head_groups = (p.kv.num_kv_heads + ScoreHeads(p.kv.num_kv_heads) - 1) / ScoreHeads(p.kv.num_kv_heads);
    const int32_t chunk = p.score_chunk > 0 ? p.score_chunk : ScoreChunk(p.key_stride, p.num_seqs * head_groups);
    const dim3 grid(head_groups, p.num_seqs, std::max<int32_t>(1, (p.key_stride + chunk - 1) / chunk));
    bool staged = false;
    if constexpr (kDpl == 4) {  // head_dim 128
      staged = p.score_staged;
      static std::atomic<uint64_t> staged_configured{0};
      if (staged) {
        if (const cudaError_t e = OptInDynamicSmem(reinterpret_cast<const void*>(QuestScoreKernel<kDpl, true, M>),
                                                   kStagedSmem, staged_configured);
            e != cudaSuccess) {
          return e;
        }
        if (const cudaError_t e = LaunchPdl(QuestScoreKernel<kDpl, true, M>, grid, kScoreWarps * 32, kStagedSmem, stream, p, chunk);
            e != cudaSuccess) {
          return e;
        }
      }
    }
    if (!staged) {
      if (const cudaError_t e = LaunchPdl(QuestScoreKernel<kDpl, false, M>, grid, kScoreWarps * 32, 0, stream, p, chunk);
          e != cudaSuccess) {
        return e;
      }
    }
  }
  return LaunchPdl(select, dim3(p.num_seqs, p.kv.num_kv_heads), kThreads, smem, stream, p);
}

template <typename M>
cudaError_t LaunchFor(const QuestSelectParams& p, cudaStream_t stream) {
  switch (p.kv.head_dim) {
    case 32: return Launch<1, M>(p, stream);
    case 64: return Launch<2, M>(p, stream);
    case 128: return Launch<4, M>(p, stream);
    default: return Launch<0, M>(p, stream);
  }
}

}  // namespace

bool QuestSplitScoringPays(int32_t rows, bool fp8) {
  const int32_t sms = CurrentSmCount();
  return fp8 || rows > sms || 10 * rows < 9 * sms;
}

cudaError_t QuestSelect(const QuestSelectParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  if ((p.kv.quest == nullptr) == (p.kv.quest_fp8 == nullptr) || p.num_heads % p.kv.num_kv_heads != 0 ||
      p.num_heads / p.kv.num_kv_heads > kMaxQuestGroup) {
    return cudaErrorInvalidValue;
  }
  return p.kv.quest_fp8 != nullptr ? LaunchFor<uint8_t>(p, stream) : LaunchFor<bf16>(p, stream);
}

}  // namespace lil::cuda
