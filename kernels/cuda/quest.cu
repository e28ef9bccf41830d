// File: kernels/cuda/quest.cu
// Three phases; the first runs in its own kernel when QuestSelectParams::keys is set (the
// backend's default: QuestScoreKernel over (KV head, sequence, 256 candidates) CTAs), the
// rest in one CTA per (sequence, KV head) (QuestSelectKernel):
//  1. scores: warps take candidate pages in turn; each lane reads a contiguous slice of the
//     page's bf16 min and max rows (coalesced; for head_dim 128 staged through shared memory
//     by cp.async) and the warp sums the group's bounds;
//  2. threshold: the (keep-1)-th largest score by a radix select over order-preserving
//     integer keys, 8 bits a pass (four passes, each a 256-bin shared-memory histogram of the
//     keys that match the digits chosen so far; until session 5 a 32-step bisection, one
//     pass and three barriers per bit);
//  3. compaction in logical order with block scans: keys above the threshold, then keys equal
//     to it in index order (ties go to the lower index, as on the CPU) until keep-1, plus the
//     newest page. The CPU reference is kernels/cpu/quest.h.
#include "kernels/cuda/quest.h"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/smem_opt_in.h"

#include <algorithm>
#include <atomic>

#include <cub/block/block_scan.cuh>
#include <type_traits>

namespace lil::cuda {
namespace {

constexpr int kThreads = 512;  // 16 warps: twice the metadata loads in flight of 256 (one CTA per SM at batch 16)
constexpr int kWarps = kThreads / 32;

// Float order as unsigned order (larger score, larger key).
__device__ __forceinline__ uint32_t OrderKey(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ int BlockCount(int local, int* s_count) {
  if (threadIdx.x == 0) *s_count = 0;
  __syncthreads();
  const int w = __reduce_add_sync(0xffffffffu, local);
  if ((threadIdx.x & 31) == 0 && w != 0) atomicAdd(s_count, w);
  __syncthreads();
  const int total = *s_count;
  __syncthreads();
  return total;
}

// This lane's slice of the GQA group's query rows: kDpl contiguous dims of each (zeros for
// g >= group).
template <int kDpl>
__device__ __forceinline__ void LoadQ(const QuestSelectParams& p, int32_t s, int32_t h, float (&qr)[kMaxQuestGroup][kDpl]) {
  const int32_t d = p.kv.head_dim, group = p.num_heads / p.kv.num_kv_heads, lane = threadIdx.x & 31;
  const float* q = p.q + (static_cast<int64_t>(p.q_row[s]) * p.num_heads + h * group) * d;
#pragma unroll
  for (int g = 0; g < kMaxQuestGroup; ++g) {
#pragma unroll
    for (int j = 0; j < kDpl; ++j) qr[g][j] = g < group ? q[g * d + lane * kDpl + j] : 0.0f;
  }
}

// One candidate's score: sum over the group and this lane's dims of max(q lo, q hi), then
// over the warp in a fixed lane order, so a candidate scores the same in any kernel.
template <int kDpl>
__device__ __forceinline__ float BoundSum(const float (&qr)[kMaxQuestGroup][kDpl], int32_t group, const bf16* lo_h,
                                          const bf16* hi_h) {
  float total = 0.0f;
#pragma unroll
  for (int j = 0; j < kDpl; ++j) {
    const float lo = __bfloat162float(lo_h[j]), hi = __bfloat162float(hi_h[j]);
#pragma unroll
    for (int g = 0; g < kMaxQuestGroup; ++g) {
      if (g >= group) break;
      // max(q lo, q hi) is q hi for q >= 0 (lo <= hi) and q lo otherwise: a select and an FMA
      // instead of two products, a max and an add.
      total = fmaf(qr[g][j], qr[g][j] >= 0.0f ? hi : lo, total);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
  return total;
}

// Scores of candidates [first, end) into keys[c] (c indexes the sequence's candidates), by
// the kW warps of the CTA. kDpl = head_dim / 32 contiguous dims per lane (head_dim 32, 64,
// 128), or 0 for any other head_dim (strided scalar reads).
template <int kDpl, int kW, int kBatch = 8>
__device__ void Score(const QuestSelectParams& p, int32_t s, int32_t h, int32_t first, int32_t end, uint32_t* keys) {
  const int32_t d = p.kv.head_dim, group = p.num_heads / p.kv.num_kv_heads, c0 = p.cand_begin[s];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if constexpr (kDpl > 0) {
    float qr[kMaxQuestGroup][kDpl];
    LoadQ<kDpl>(p, s, h, qr);
    // kBatch candidates per warp in flight: their min/max loads are all issued before any is
    // used (the metadata stream is latency-bound otherwise). The page ids of 32 candidates
    // come in one load, a lane each, and reach the batches by shuffles: each batch then waits
    // on one round trip (the metadata), not two (page id, then metadata).
    using Vec = typename std::conditional<kDpl == 4, uint2, typename std::conditional<kDpl == 2, uint32_t, uint16_t>::type>::type;
    for (int32_t base = first + warp; base < end; base += kW * 32) {
      const int32_t my_c = base + lane * kW;
      const int32_t my_page = my_c < end ? p.cand_pages[c0 + my_c] : 0;
#pragma unroll 1
      for (int b = 0; b < 32 / kBatch; ++b) {
        const int32_t cb = base + b * kBatch * kW;
        if (cb >= end) break;
        Vec lo_v[kBatch], hi_v[kBatch];
#pragma unroll
        for (int k = 0; k < kBatch; ++k) {
          const int32_t c = cb + k * kW;
          const int32_t page = __shfl_sync(0xffffffffu, my_page, b * kBatch + k);
          if (c < end) {
            const bf16* mn = p.kv.quest + p.kv.QuestOffset(page, h) + lane * kDpl;
            lo_v[k] = *reinterpret_cast<const Vec*>(mn);
            hi_v[k] = *reinterpret_cast<const Vec*>(mn + d);
          }
        }
#pragma unroll
        for (int k = 0; k < kBatch; ++k) {
          const float total = BoundSum<kDpl>(qr, group, reinterpret_cast<const bf16*>(&lo_v[k]),
                                             reinterpret_cast<const bf16*>(&hi_v[k]));
          if (lane == 0 && cb + k * kW < end) keys[cb + k * kW] = OrderKey(total);
        }
      }
    }
  } else {
    const float* q = p.q + (static_cast<int64_t>(p.q_row[s]) * p.num_heads + h * group) * d;
    for (int32_t c = first + warp; c < end; c += kW) {
      const bf16* mn = p.kv.quest + p.kv.QuestOffset(p.cand_pages[c0 + c], h);
      const bf16* mx = mn + d;
      float total = 0.0f;
      for (int32_t i = lane; i < d; i += 32) {
        const float lo = __bfloat162float(mn[i]), hi = __bfloat162float(mx[i]);
        for (int32_t g = 0; g < group; ++g) total += fmaxf(q[g * d + i] * lo, q[g * d + i] * hi);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
      if (lane == 0) keys[c] = OrderKey(total);
    }
  }
}

// Score for head_dim 128 with the metadata staged in shared memory: a candidate's (min, max)
// block is 512 bytes, one 16-byte cp.async a lane, and each warp keeps kStagedStages - 1
// batches of kStagedBatch candidates in flight while it scores another, holding no registers
// for them (the register path's loads cap it at 2-3 CTAs an SM with 4-8 candidates a warp).
// Same BoundSum, so the same keys as Score.
constexpr int kStagedBatch = 4, kStagedStages = 4;
constexpr int kStagedBlock = 256;  // bf16 per candidate block: min[128], max[128]

template <int kW>
__device__ void ScoreStaged(const QuestSelectParams& p, int32_t s, int32_t h, int32_t first, int32_t end, uint32_t* keys,
                            bf16* smem) {
  constexpr int kDpl = 4;
  const int32_t group = p.num_heads / p.kv.num_kv_heads, c0 = p.cand_begin[s];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float qr[kMaxQuestGroup][kDpl];
  LoadQ<kDpl>(p, s, h, qr);
  bf16* ws = smem + warp * kStagedStages * kStagedBatch * kStagedBlock;
  for (int32_t base = first + warp; base < end; base += kW * 32) {
    const int32_t my_c = base + lane * kW;
    const int32_t my_page = my_c < end ? p.cand_pages[c0 + my_c] : 0;
    const int32_t count = min(32, (end - base + kW - 1) / kW);  // this warp's candidates here
    const int batches = (count + kStagedBatch - 1) / kStagedBatch;
    auto issue = [&](int b) {  // batch b into stage b % kStagedStages (an empty group past the end)
      if (b < batches) {
        bf16* st = ws + (b % kStagedStages) * kStagedBatch * kStagedBlock;
#pragma unroll
        for (int k = 0; k < kStagedBatch; ++k) {
          const int idx = b * kStagedBatch + k;
          const int32_t page = __shfl_sync(0xffffffffu, my_page, idx);
          CpAsync16(st + k * kStagedBlock + lane * 8, p.kv.quest + p.kv.QuestOffset(page, h) + lane * 8, idx < count);
        }
      }
      CpAsyncCommit();
    };
#pragma unroll
    for (int b = 0; b < kStagedStages - 1; ++b) issue(b);
#pragma unroll 1
    for (int b = 0; b < batches; ++b) {
      issue(b + kStagedStages - 1);  // into the stage batch b - 1 used
      CpAsyncWait<kStagedStages - 1>();
      __syncwarp();
      const bf16* st = ws + (b % kStagedStages) * kStagedBatch * kStagedBlock;
#pragma unroll
      for (int k = 0; k < kStagedBatch; ++k) {
        const bf16* blk = st + k * kStagedBlock;
        const uint2 lo_v = *reinterpret_cast<const uint2*>(blk + lane * kDpl);
        const uint2 hi_v = *reinterpret_cast<const uint2*>(blk + 128 + lane * kDpl);
        const float total = BoundSum<kDpl>(qr, group, reinterpret_cast<const bf16*>(&lo_v),
                                           reinterpret_cast<const bf16*>(&hi_v));
        const int idx = b * kStagedBatch + k;
        if (lane == 0 && idx < count) keys[base + idx * kW] = OrderKey(total);
      }
      __syncwarp();  // the stage is free for the issue two iterations on
    }
    CpAsyncWaitAll();
  }
}

template <int kDpl>
__global__ void __launch_bounds__(kThreads) QuestSelectKernel(QuestSelectParams p) {
  PdlWait();
  PdlTrigger();
  extern __shared__ uint32_t keys[];  // [n - 1]
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int s_count, s_base, s_eq_base;
  const int32_t s = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t hkv = p.kv.num_kv_heads;
  const int32_t n = p.cand_count[s], c0 = p.cand_begin[s];
  const int32_t keep = min(n, max(1, p.budget_pages[s]));
  const int32_t out0 = p.out_begin[s * hkv + h];
  if (keep >= n) {  // everything fits: copy the candidates
    for (int32_t c = threadIdx.x; c < n; c += blockDim.x) {
      p.out_pages[out0 + c] = p.cand_pages[c0 + c];
      p.out_logical[out0 + c] = p.cand_logical[c0 + c];
    }
    return;
  }
  if (p.keys != nullptr) {  // QuestScoreKernel scored them
    const uint32_t* row_keys = p.keys + static_cast<int64_t>(s * hkv + h) * p.key_stride;
    for (int32_t c = threadIdx.x; c < n - 1; c += blockDim.x) keys[c] = row_keys[c];
  } else {
    Score<kDpl, kWarps>(p, s, h, 0, n - 1, keys);
  }
  __syncthreads();
  // The need-th largest key T (the largest T with count(key >= T) >= need), a digit at a
  // time from the top: count the keys that match the digits chosen so far by their next 8
  // bits, walk the bins from 255 down to the one where the running count reaches what is
  // still needed, keep that digit and subtract the keys above it.
  const int32_t need = keep - 1;
  uint32_t threshold = 0;
  if (need > 0) {
    __shared__ int hist[256];
    __shared__ uint32_t s_digit;
    __shared__ int s_above;
    uint32_t mask = 0;
    int remaining = need;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
      __syncthreads();
      // Lanes with the same bin add once, their count (__match_any_sync): scores of similar
      // size share their top bits, so the first passes would otherwise send most of the 2,047
      // keys' atomics to one or two bins, one lane at a time.
      for (int32_t cb = 0; cb < n - 1; cb += blockDim.x) {
        const int32_t c = cb + threadIdx.x;
        const uint32_t k = c < n - 1 ? keys[c] : 0u;
        const int bin = c < n - 1 && (k & mask) == threshold ? static_cast<int>((k >> shift) & 255u) : -1;
        const uint32_t peers = __match_any_sync(0xffffffffu, bin);
        if (bin >= 0 && lane == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
      }
      __syncthreads();
      // The digit: walking the bins from 255 down, the first where the running count reaches
      // `remaining` (digit 0 if none does). Warp 0, lane i holding bins 255 - 8i .. 248 - 8i:
      // a prefix sum over the lanes finds the lane, which walks its eight bins (the serial
      // 256-bin walk of one thread cost ~4 us a pass).
      if (warp == 0) {
        int cnt[8], mine = 0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          cnt[j] = hist[255 - 8 * lane - j];
          mine += cnt[j];
        }
        int incl = mine;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const int v = __shfl_up_sync(0xffffffffu, incl, o);
          if (lane >= o) incl += v;
        }
        const uint32_t reach = __ballot_sync(0xffffffffu, incl >= remaining);
        const int owner = reach != 0 ? __ffs(reach) - 1 : 31;
        if (lane == owner) {
          int above = incl - mine, d = 255 - 8 * lane;
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            if (d == 0 || above + cnt[j] >= remaining) break;
            above += cnt[j];
            --d;
          }
          s_digit = static_cast<uint32_t>(d);
          s_above = above;
        }
      }
      __syncthreads();
      threshold |= s_digit << shift;
      mask |= 255u << shift;
      remaining -= s_above;
      __syncthreads();  // hist and s_digit are rewritten by the next pass
    }
  }
  int local_gt = 0;
  for (int32_t c = threadIdx.x; c < n - 1; c += blockDim.x) local_gt += (need > 0 && keys[c] > threshold) ? 1 : 0;
  const int32_t need_eq = need - BlockCount(local_gt, &s_count);  // equal keys still to take
  if (threadIdx.x == 0) {
    s_base = 0;
    s_eq_base = 0;
  }
  __syncthreads();
  // Chunks of kThreads candidates, in order, so the scans keep logical order.
  for (int32_t c_base = 0; c_base < n; c_base += kThreads) {
    const int32_t c = c_base + threadIdx.x;
    const bool inner = c < n - 1 && need > 0;
    const int eq = inner && keys[c] == threshold ? 1 : 0;
    int eq_rank = 0, eq_total = 0;
    Scan(scan_storage).ExclusiveSum(eq, eq_rank, eq_total);
    __syncthreads();
    int chosen = 0;
    if (c == n - 1) {
      chosen = 1;  // the newest page is always attended
    } else if (inner) {
      chosen = keys[c] > threshold || (eq && s_eq_base + eq_rank < need_eq) ? 1 : 0;
    }
    int offset = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(chosen, offset, total);
    if (chosen) {
      p.out_pages[out0 + s_base + offset] = p.cand_pages[c0 + c];
      p.out_logical[out0 + s_base + offset] = p.cand_logical[c0 + c];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      s_base += total;
      s_eq_base += eq_total;
    }
    __syncthreads();
  }
}

// The scoring pass spread over CTAs (QuestSelectParams::keys): one per (sequence, KV head,
// kScoreChunk candidates), eight warps, keys to global memory for QuestSelectKernel. At batch
// 16 / 32k that is 1,024 CTAs streaming the metadata instead of 128.
constexpr int kScoreWarps = 8;
constexpr int32_t kScoreChunk = 256;

constexpr size_t kStagedSmem = sizeof(bf16) * kScoreWarps * kStagedStages * kStagedBatch * kStagedBlock;  // 64 KiB

template <int kDpl, bool kStaged>
__global__ void __launch_bounds__(kScoreWarps * 32, 3) QuestScoreKernel(QuestSelectParams p) {
  PdlWait();
  PdlTrigger();
  extern __shared__ __align__(16) bf16 staged[];  // kStaged: kStagedSmem bytes
  // The KV head is the fastest grid index: CTAs launched together score one page's heads,
  // whose metadata lie side by side ([page][head][min, max]), so the DRAM sees 4 KiB runs
  // rather than scattered 512-byte blocks.
  const int32_t h = blockIdx.x, s = blockIdx.y;
  const int32_t n = p.cand_count[s];
  const int32_t keep = min(n, max(1, p.budget_pages[s]));
  const int32_t first = blockIdx.z * kScoreChunk, end = min(n - 1, first + kScoreChunk);
  if (keep >= n || first >= end) return;  // the selection copies every candidate, or no work here
  uint32_t* row_keys = p.keys + static_cast<int64_t>(s * p.kv.num_kv_heads + h) * p.key_stride;
  if constexpr (kStaged) {
    ScoreStaged<kScoreWarps>(p, s, h, first, end, row_keys, staged);
  } else {
    Score<kDpl, kScoreWarps, 4>(p, s, h, first, end, row_keys);  // 4 in flight: 80 registers, 3 CTAs an SM
  }
}

template <int kDpl>
cudaError_t Launch(const QuestSelectParams& p, cudaStream_t stream) {
  const size_t smem = sizeof(uint32_t) * kQuestMaxCandidates;
  static std::atomic<uint64_t> configured{0};
  if (const cudaError_t e = OptInDynamicSmem(reinterpret_cast<const void*>(QuestSelectKernel<kDpl>), smem, configured);
      e != cudaSuccess) {
    return e;
  }
  if (p.keys != nullptr) {
    const int32_t chunks = std::max<int32_t>(1, (p.key_stride + kScoreChunk - 1) / kScoreChunk);
    const dim3 grid(p.kv.num_kv_heads, p.num_seqs, chunks);
    bool staged = false;
    if constexpr (kDpl == 4) {  // head_dim 128
      staged = p.score_staged;
      static std::atomic<uint64_t> staged_configured{0};
      if (staged) {
        if (const cudaError_t e = OptInDynamicSmem(reinterpret_cast<const void*>(QuestScoreKernel<kDpl, true>),
                                                   kStagedSmem, staged_configured);
            e != cudaSuccess) {
          return e;
        }
        if (const cudaError_t e = LaunchPdl(QuestScoreKernel<kDpl, true>, grid, kScoreWarps * 32, kStagedSmem, stream, p);
            e != cudaSuccess) {
          return e;
        }
      }
    }
    if (!staged) {
      if (const cudaError_t e = LaunchPdl(QuestScoreKernel<kDpl, false>, grid, kScoreWarps * 32, 0, stream, p);
          e != cudaSuccess) {
        return e;
      }
    }
  }
  return LaunchPdl(QuestSelectKernel<kDpl>, dim3(p.num_seqs, p.kv.num_kv_heads), kThreads, smem, stream, p);
}

}  // namespace

cudaError_t QuestSelect(const QuestSelectParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  if (p.kv.quest == nullptr || p.num_heads % p.kv.num_kv_heads != 0 ||
      p.num_heads / p.kv.num_kv_heads > kMaxQuestGroup) {
    return cudaErrorInvalidValue;
  }
  switch (p.kv.head_dim) {
    case 32: return Launch<1>(p, stream);
    case 64: return Launch<2>(p, stream);
    case 128: return Launch<4>(p, stream);
    default: return Launch<0>(p, stream);
  }
}

}  // namespace lil::cuda
