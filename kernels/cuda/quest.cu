// File: kernels/cuda/quest.cu
// Three phases; the first runs in its own kernel when QuestSelectParams::keys is set (the
// backend's default: QuestScoreKernel over (KV heads, sequence, chunk of candidates) CTAs),
// the rest in one CTA per (sequence, KV head) (QuestSelectKernel):
//  1. scores: warps take candidate pages in turn; each lane reads a contiguous slice of the
//     page's min and max rows (bf16, or e4m3 rounded outward: kernels/quest_fp8.h; coalesced;
//     for head_dim 128 staged through shared memory by cp.async), dots it with the group's
//     folded query (LoadQ) and the warp sums four candidates at a time (WarpSums4; all in
//     quest_score.cuh); a selection CTA scoring its own row at head_dim 128 in bf16 uses
//     ScoreOctets (quest_octets.cuh);
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
#include "kernels/cuda/quest_score.cuh"
#include "kernels/cuda/smem_opt_in.h"
#include "kernels/cuda/timer.cuh"
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
  // Three histograms for the threshold search below (quest_radix.cuh); kFold: the scoring
  // counts the first pass into the first, and the second must be zero before the search too.
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
    // TMA unit (~20 ns each, inferred: the 32 of a batch-16 CTA add ~0.6 us to its outputs
    // phase in gpu_attention_bench's timeline, not timed alone): issued here, from the warps
    // holding the chunks' first entries, they overlap the other warps' work (session 27: the 32
    // from lane 0 of every warp in turn after a barrier, or as plain 128-byte line prefetches a
    // warp a page, were 0.4-0.5 us slower).
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
      t[kQuestTimelinePoints + 3] = SmId();
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
