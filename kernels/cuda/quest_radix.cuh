// File: kernels/cuda/quest_radix.cuh
// The selection CTA's threshold search (QuestSelectKernel, kernels/cuda/quest.cu): the need-th
// largest of its keys, a digit at a time from the top. Count the keys that match the digits
// chosen so far by their next 8 bits, walk the bins from 255 down to the one where the running
// count reaches what is still needed, keep that digit and subtract the keys above it. Measured
// and dropped (docs/PERF.md, session 24): one barrier a pass with every warp finding the digit
// from a third histogram (0.8-1.0 us slower than warp 0 finding it between two barriers).
#pragma once

#include <cstdint>

namespace lil::cuda {

// T = the largest T with count(keys[0, count) >= T) >= need (need >= 1); every thread of the
// CTA calls it. kFirstCounted: hist[0] holds the first pass's counts (the bins of key >> 24),
// complete before the barrier preceding the call; else this zeroes it.
template <bool kFirstCounted>
__device__ uint32_t RadixThreshold(const uint32_t* keys, int32_t count, int32_t need, int (*hist)[256]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint32_t threshold = 0;
  // Two histograms: the one a pass fills, and the next pass's, zeroed by warps 1.. while
  // warp 0 reads the digit off the first, so a pass costs two barriers.
  __shared__ uint32_t s_digit;
  __shared__ int s_above;
  __shared__ bool s_whole_bin;
  if constexpr (!kFirstCounted) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[0][i] = 0;
    __syncthreads();
  }
  uint32_t mask = 0;
  int remaining = need, buf = 0;
  for (int shift = 24; shift >= 0; shift -= 8, buf ^= 1) {
    int* hb = hist[buf];
    // One shared-memory atomic a key. Lanes of a bin adding once (__match_any_sync, to spare
    // the first pass's one or two crowded bins) cost 1.0-1.2 us more at batch 16 / 32k
    // (session 26: the selection kernel alone 8.5 -> 7.5 us, Quest 79.8 -> 78.8; a lane-0
    // leader's ballot on the first pass only, no faster than plain adds).
    for (int32_t cb = 0; cb < count && !(kFirstCounted && shift == 24); cb += blockDim.x) {
      const int32_t c = cb + threadIdx.x;
      if (c >= count) continue;
      const uint32_t k = keys[c];
      if ((k & mask) == threshold) atomicAdd(&hb[(k >> shift) & 255u], 1);
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
        cnt[j] = hb[255 - 8 * lane - j];
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
        int above = incl - mine, d = 255 - 8 * lane, in_bin = 0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          in_bin = cnt[j];
          if (d == 0 || above + cnt[j] >= remaining) break;
          above += cnt[j];
          --d;
        }
        s_digit = static_cast<uint32_t>(d);
        s_above = above;
        s_whole_bin = above + in_bin == remaining;
      }
    } else {
      for (int i = threadIdx.x - 32; i < 256; i += blockDim.x - 32) hist[buf ^ 1][i] = 0;
    }
    __syncthreads();
    threshold |= s_digit << shift;
    mask |= 255u << shift;
    remaining -= s_above;
    // Every key of the digit's bin is needed: T = the digits so far with zeros below keeps
    // them all (keys above T and those equal to it, the compaction's need_eq, are the bin and
    // those above it), so the passes left would change nothing. Scores that differ by more
    // than their last 8 bits leave one key in the bin after three passes, so the fourth is
    // skipped.
    if (s_whole_bin) break;
  }
  return threshold;
}

}  // namespace lil::cuda
