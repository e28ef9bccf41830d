// File: kernels/cuda/quest_radix.cuh
// The selection CTA's threshold search (QuestSelectKernel, kernels/cuda/quest.cu): the need-th
// largest of its keys, a digit at a time from the top. Count the keys that match the digits
// chosen so far by their next 8 bits, find the bin, walking down from 255, where the running
// count reaches what is still needed, keep that digit and subtract the keys above it.
// Measured and dropped (docs/PERF.md, session 27): 11-bit digits (three passes at most, but the
// 2,048-bin digit search cost more than the pass it saved: 1.8 -> 3.5 us at batch 16 / 32k).
#pragma once

#include <cstdint>

namespace lil::cuda {

struct RadixDigit {
  uint32_t digit;  // the bin
  int above;       // keys in the bins above it
  bool whole;      // the bin's keys are exactly what is still needed
};

// A warp's search of a 256-bin histogram hb: the digit d where the keys in the bins above d
// are fewer than `remaining` and with bin d's they are not (digit 0 if no bin gets there),
// returned to every lane. Lane i holds bins 255 - 8i .. 248 - 8i as two 16-byte loads (8
// 4-byte loads at a stride of 32 bytes were 8-way bank conflicts each); a prefix sum over the
// lanes finds the lane, which walks its 8 bins.
__device__ __forceinline__ RadixDigit FindDigit(const int* hb, int remaining) {
  const int lane = threadIdx.x & 31;
  const int4 lo = reinterpret_cast<const int4*>(hb)[62 - 2 * lane], hi = reinterpret_cast<const int4*>(hb)[63 - 2 * lane];
  const int cnt[8] = {hi.w, hi.z, hi.y, hi.x, lo.w, lo.z, lo.y, lo.x};  // bins from the top down
  const int mine = ((cnt[0] + cnt[1]) + (cnt[2] + cnt[3])) + ((cnt[4] + cnt[5]) + (cnt[6] + cnt[7]));
  int incl = mine;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int u = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += u;
  }
  const uint32_t reach = __ballot_sync(0xffffffffu, incl >= remaining);
  const int owner = reach != 0 ? __ffs(reach) - 1 : 31;
  int above = incl - mine, d = 255 - 8 * lane, in_bin = 0;
  if (lane == owner) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      in_bin = cnt[j];
      if (d == 0 || above + cnt[j] >= remaining) break;
      above += cnt[j];
      --d;
    }
  }
  RadixDigit r;
  r.digit = static_cast<uint32_t>(__shfl_sync(0xffffffffu, d, owner));
  r.above = __shfl_sync(0xffffffffu, above, owner);
  r.whole = __shfl_sync(0xffffffffu, above + in_bin == remaining ? 1 : 0, owner) != 0;
  return r;
}

// T = the largest T with count(keys >= T) >= need (need >= 1) over the CTA's keys; every
// thread of the CTA calls it, each passing `for_each_key(f)`, which calls f(key) on each of its
// share of the keys (its compaction run, held in registers, or a strided walk of shared
// memory). hist: three 256-bin histograms, 16-byte aligned. kFirstCounted: hist[0 .. 255]
// holds the first pass's counts (the bins of key >> 24) and hist[256 .. 511] zeros, both
// complete before the barrier preceding the call; else this zeroes the first two. `passes` gets
// the number of passes made, the first counted one included.
//
// One barrier a pass: after it every warp reads the digit off the histogram just filled (the
// same digit in each), while the next pass counts into the next histogram, which was zeroed
// during the pass before (it was last read two passes ago). Warp 0 alone finding the digit
// between two barriers, the others zeroing, measured the same (docs/PERF.md, session 27: 1.9
// us median at batch 16 / 32k either way); in session 24 this form had been 0.8-1.0 us slower,
// when each warp's reads of the bins were 8-way bank conflicts.
template <bool kFirstCounted, typename ForEachKey>
__device__ uint32_t RadixThreshold(ForEachKey for_each_key, int32_t need, int* hist, int& passes) {
  uint32_t threshold = 0;
  if constexpr (!kFirstCounted) {
    for (int i = threadIdx.x; i < 2 * 256 / 4; i += blockDim.x) reinterpret_cast<int4*>(hist)[i] = make_int4(0, 0, 0, 0);
    __syncthreads();
  }
  uint32_t mask = 0;
  int remaining = need, buf = 0;
  for (int shift = 24; shift >= 0; shift -= 8, buf = buf == 2 ? 0 : buf + 1) {
    int* hb = hist + buf * 256;
    ++passes;
    // One shared-memory atomic a key. Lanes of a bin adding once (__match_any_sync, to spare
    // the first pass's one or two crowded bins) cost 1.0-1.2 us more at batch 16 / 32k
    // (session 26: the selection kernel alone 8.5 -> 7.5 us, Quest 79.8 -> 78.8; a lane-0
    // leader's ballot on the first pass only, no faster than plain adds).
    // The folded first pass needs no barrier here: the caller's, after the scoring, orders it.
    if (!(kFirstCounted && shift == 24)) {
      for_each_key([&](uint32_t k) {
        if ((k & mask) == threshold) atomicAdd(&hb[(k >> shift) & 255u], 1);
      });
      __syncthreads();
    }
    // The histogram after next, zeroed for it: the last pass's, which every warp has read by
    // now (each finished that pass's digit before this pass's barrier, or for the folded first
    // pass, the caller's). The next pass's was zeroed by the pass before (or by the caller).
    if (shift >= 16 && threadIdx.x < 64) {
      reinterpret_cast<int4*>(hist + (buf == 0 ? 2 : buf - 1) * 256)[threadIdx.x] = make_int4(0, 0, 0, 0);
    }
    const RadixDigit r = FindDigit(hb, remaining);
    threshold |= r.digit << shift;
    mask |= 255u << shift;
    remaining -= r.above;
    // Every key of the digit's bin is needed: T = the digits so far with zeros below keeps
    // them all (keys above T and those equal to it, the compaction's need_eq, are the bin and
    // those above it), so the passes left would change nothing. Scores that differ by more
    // than their last 8 bits leave one key in the bin after three passes, so the fourth is
    // skipped.
    if (r.whole) break;
  }
  return threshold;
}

}  // namespace lil::cuda
