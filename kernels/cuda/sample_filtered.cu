// File: kernels/cuda/sample_filtered.cu
// SampleFiltered (sample.h): temperature sampling with top-k / top-p / min-p, and top
// logprobs, on the GPU, following engine/sampler.h's definition (TemperedKept): rank order is
// by logit, ties to the lower id; top-k keeps the k first; top-p the smallest rank prefix of
// those holding top_p of their tempered weight exp((logit - best) / T); min-p the tokens of
// weight at least min_p; the draw is an inverse CDF over the kept tokens in ascending id order.
// Top logprobs are the first n in rank order, by the same selection as top-k.
//
// No sort: each cut is a radix selection over an unsigned rank key of the logit (smaller key,
// larger logit), rounds of a 256-bin histogram of the next 8 key bits among the tokens still
// tied with the cut's prefix; the histogram holds counts (top-k) or weights (top-p). Once the
// cut's bin holds few tokens they are gathered into shared memory and ranked there
// (GatherCut); after four rounds the tokens of equal keys (equal logits) are taken in id
// order. Weights are summed as 2^-40 fixed-point integers: integer sums are the same in any
// order and any slicing, so the cuts and the draw are the same every run (seeded requests
// repeat).
//
// Speed: a row is cut into vocabulary slices, one CTA each, the CTAs of a row one thread-block
// cluster (8 up to 16 rows, fewer as rows fill the GPU: SampleFiltered below); every decision
// (a bin, a target, a cut) is taken by each CTA alike from the slices' sums, read through
// distributed shared memory. Every pass over a slice keeps several 16-byte loads in flight per
// thread; a thread adds a run of tokens falling in one bin as one atomic, and the 64-bit bins
// are two 32-bit words (a 64-bit shared-memory add compiles to a compare-and-swap loop, which
// 1,024 threads on one bin serialised for milliseconds). Searches in id order (the tied
// logits, the draw) sum 128-id tiles in one pass, scan the tile sums and the slices' totals,
// and search within the one tile that holds the target. The row stays in the L2 (a 128k row
// is 512 KB) for its passes.
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/sample.h"

#include <cooperative_groups.h>

#include <climits>
#include <cstdint>

namespace lil::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;
constexpr int kTile = 128;  // ids a warp reads at once: 4 a lane
constexpr int kUnroll = 4;  // loads a thread keeps in flight
constexpr int kMaxCluster = 8;  // the portable cluster size
namespace cg = cooperative_groups;
constexpr float kFixScale = 1099511627776.0f;  // 2^40: a weight <= 1 as an integer

// Rank order as an unsigned key: a larger logit gets a smaller key.
__device__ __forceinline__ uint32_t RankKey(float v) {
  const uint32_t b = __float_as_uint(v);
  const uint32_t ascending = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return ~ascending;
}

// The logit a rank key stands for (RankKey's inverse).
__device__ __forceinline__ float KeyLogit(uint32_t key) {
  const uint32_t ascending = ~key;
  return __uint_as_float((ascending & 0x80000000u) != 0 ? (ascending & 0x7fffffffu) : ~ascending);
}

struct Row {
  const float* logits;
  int32_t vocab;
  int32_t tile0, tile1;  // this CTA's slice: tiles [tile0, tile1), ids [tile0 * kTile, end)
  int32_t end;
  bool vec;  // 16-byte loads: the vocabulary a multiple of 4 and the logits 16-byte aligned
  float best_logit, inv_t;
  // The tempered weight of a logit relative to the best (1 for the best), as the host's.
  __device__ float Weight(float logit) const { return expf((logit - best_logit) * inv_t); }
  __device__ uint64_t Fixed(float logit) const { return __float2ull_rn(Weight(logit) * kFixScale); }
  // Ids t .. t + 3 (t a multiple of 4); those past the slice read as 0.
  __device__ void Quad(int32_t t, float (&x)[4]) const {
    if (vec && t + 3 < end) {
      const float4 v = __ldg(reinterpret_cast<const float4*>(logits + t));
      x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
    } else {
      for (int j = 0; j < 4; ++j) x[j] = t + j < end ? __ldg(logits + t + j) : 0.0f;
    }
  }
  __device__ int32_t Tiles() const { return tile1 - tile0; }
};

// Tokens in a cut: a key below `key`, or equal to it with an id up to `last_id`. The default
// holds every token.
struct Cut {
  uint32_t key = 0xffffffffu;
  int32_t last_id = INT_MAX;
  __device__ bool In(uint32_t k, int32_t t) const { return k < key || (k == key && t <= last_id); }
};

constexpr int kMaxTiles = 2 * kThreads;  // a slice's tiles: TileTotals scans two a thread
static_assert(kSampleFilteredMaxVocab <= kMaxTiles * kTile);

// A bin of at most this many tokens is finished in shared memory (GatherCut); 128 when the row
// is sliced over a cluster (a pass over a slice costs little there beside the gather's merge
// and ranking: gpu_sample_bench, session 16).
constexpr int kGather = 512;
constexpr int kGatherSliced = 128;

struct Shared {
  uint32_t lo[2][kBins], hi[2][kBins];  // a round's 64-bit bin sums as two words (HistAdd);
                                        // rounds alternate, so one cluster barrier a round
  uint32_t cnt[2][kBins];               // ... and with weights their token counts
  uint64_t bins[kBins];                 // the cluster's sums of the round's bins
  uint32_t bin_count[kBins];            // ... and counts
  int32_t gather_n;                     // GatherCut: this slice's tokens of the bin
  uint32_t gather_key[kGather];
  int32_t gather_id[kGather];
  uint32_t merged_key[kGather];         // ... the cluster's, in slice order
  int32_t merged_id[kGather];
  int16_t order[kGather];               // ... ranked by (key, id)
  uint32_t cut_key;                     // ... the cut found there
  int32_t cut_id;
  uint64_t tile[kMaxTiles];             // TileTotals: what the slice's tiles before each hold
  uint64_t warp[kWarps];
  uint64_t before, target;              // SelectPrefix: a round's results, for every thread
  uint64_t slice_total;                 // TileTotals: this slice's, read by the other CTAs
  uint64_t slice_ahead;                 // ... and what the slices before it hold
  int32_t pick;
  int32_t found;                        // FindRunning's id, written by the CTA that finds it
  int32_t top_count;                    // TopLogprobs: this slice's members of the top n
  int32_t top_id[kMaxTopLogprobs];
  float top_logit[kMaxTopLogprobs];
};

// Adds v to bin b with 32-bit atomics: the low word's carry goes to the high word.
__device__ __forceinline__ void HistAdd(uint32_t* lo_words, uint32_t* hi_words, uint32_t b, uint64_t v) {
  const uint32_t lo = static_cast<uint32_t>(v);
  const uint32_t old = atomicAdd(&lo_words[b], lo);
  const uint32_t hi = static_cast<uint32_t>(v >> 32) + (old + lo < old ? 1u : 0u);
  if (hi != 0) atomicAdd(&hi_words[b], hi);
}

__device__ __forceinline__ uint64_t WarpInclusiveScan(uint64_t v) {
  const int lane = threadIdx.x & 31;
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t y = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += y;
  }
  return v;
}

// Calls f(id, logit) once for every id of the CTA's slice, in no particular order: a thread
// takes groups of 4 ids strided by the block, kUnroll groups loaded before any is used.
template <typename F>
__device__ __forceinline__ void ForEachId(const Row& row, F f) {
  const int32_t quads = (row.end + 3) / 4;
  for (int32_t g0 = row.tile0 * (kTile / 4) + threadIdx.x; g0 < quads; g0 += kThreads * kUnroll) {
    float x[kUnroll][4];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (g0 + u * kThreads < quads) row.Quad(4 * (g0 + u * kThreads), x[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int32_t t = 4 * (g0 + u * kThreads);
      if (g0 + u * kThreads >= quads) break;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (t + j < row.end) f(t + j, x[u][j]);
      }
    }
  }
}

// value(id, logit) of the 4 ids lane `lane` holds in slice tile i; their sum in *sum.
template <typename Value>
__device__ __forceinline__ void TileValues(const Row& row, Value value, int32_t i, int lane, uint64_t (&v)[4],
                                           uint64_t* sum) {
  const int32_t t = (row.tile0 + i) * kTile + 4 * lane;
  float x[4];
  row.Quad(t, x);
  *sum = 0;
  for (int j = 0; j < 4; ++j) {
    v[j] = t + j < row.end ? value(t + j, x[j]) : 0;
    *sum += v[j];
  }
}

// The sum of value(id, logit) over the whole row (every slice of the cluster); leaves in
// s.tile what the slice's tiles before each hold, in s.slice_ahead what the slices before
// this one hold, for FindRunning with the same value.
template <typename Value>
__device__ uint64_t TileTotals(const Row& row, Value value, Shared& s, cg::cluster_group& cluster) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t tiles = row.Tiles();
  for (int32_t i0 = warp; i0 < tiles; i0 += kWarps * kUnroll) {
    float x[kUnroll][4];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (i0 + u * kWarps < tiles) row.Quad((row.tile0 + i0 + u * kWarps) * kTile + 4 * lane, x[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int32_t i = i0 + u * kWarps, t = (row.tile0 + i) * kTile + 4 * lane;
      if (i >= tiles) break;
      uint64_t sum = 0;
      for (int j = 0; j < 4; ++j) sum += t + j < row.end ? value(t + j, x[u][j]) : 0;
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) s.tile[i] = sum;
    }
  }
  __syncthreads();
  // Exclusive scan over the slice's tiles, two a thread.
  const int32_t a = 2 * threadIdx.x, b = a + 1;
  const uint64_t va = a < tiles ? s.tile[a] : 0, vb = b < tiles ? s.tile[b] : 0;
  const uint64_t through = WarpInclusiveScan(va + vb);
  if (lane == 31) s.warp[warp] = through;
  __syncthreads();
  if (warp == 0) {
    const uint64_t w = s.warp[lane], w_through = WarpInclusiveScan(w);
    s.warp[lane] = w_through - w;
    if (lane == 31) s.slice_total = w_through;
  }
  __syncthreads();
  const uint64_t ahead = s.warp[warp] + through - (va + vb);
  if (a < tiles) s.tile[a] = ahead;
  if (b < tiles) s.tile[b] = ahead + va;
  cluster.sync();  // every slice's total is in its CTA's shared memory
  const int rank = static_cast<int>(cluster.block_rank()), slices = static_cast<int>(cluster.num_blocks());
  uint64_t before = 0, total = 0;
  for (int c = 0; c < slices; ++c) {
    const uint64_t t = *cluster.map_shared_rank(&s.slice_total, c);
    if (c < rank) before += t;
    total += t;
  }
  if (threadIdx.x == 0) s.slice_ahead = before;
  cluster.sync();  // no slice_total is overwritten while another CTA may read it
  return total;
}

// After TileTotals(row, value) returned `total`: the first id, in id order, at which the
// running sum of value passes `target` (the sum through it is above target); `none` when
// target >= total. The CTA whose slice holds it finds it and tells the others.
template <typename Value>
__device__ int32_t FindRunning(const Row& row, Value value, uint64_t target, uint64_t total, int32_t none,
                               Shared& s, cg::cluster_group& cluster) {
  if (target >= total) return none;
  const uint64_t ahead = s.slice_ahead;
  if (ahead <= target && target < ahead + s.slice_total) {  // this slice holds it
    const uint64_t local = target - ahead;
    const int32_t tiles = row.Tiles();
    for (int32_t i = threadIdx.x; i < tiles; i += kThreads) {  // the one tile holding it
      const uint64_t next = i + 1 < tiles ? s.tile[i + 1] : s.slice_total;
      if (s.tile[i] <= local && local < next) s.pick = i;
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      const int lane = threadIdx.x;
      const int32_t i = s.pick;
      uint64_t v[4], mine;
      TileValues(row, value, i, lane, v, &mine);
      const uint64_t through = s.tile[i] + WarpInclusiveScan(mine);
      const unsigned hit = __ballot_sync(0xffffffffu, through > local);
      if (lane == __ffs(hit) - 1) {
        uint64_t run = through - mine;
        int j = 0;
        while (j < 3 && (run += v[j]) <= local) ++j;
        const int32_t id = (row.tile0 + i) * kTile + 4 * lane + j;
        for (int c = 0; c < static_cast<int>(cluster.num_blocks()); ++c) *cluster.map_shared_rank(&s.found, c) = id;
      }
    }
  }
  cluster.sync();  // s.found is written in every CTA
  return s.found;
}

// The cut among the few tokens `admit` lets in whose keys start with `prefix` (key >> shift ==
// prefix; at most kGather in the cluster): each CTA gathers its slice's into shared memory,
// every CTA copies the cluster's and ranks them by (key, id), and one warp walks them in that
// order from `before` (what the tokens of smaller keys hold) to the first that reaches the
// target. Replaces the remaining radix rounds and the pass over the tied logits.
template <bool kMass, typename Admit>
__device__ Cut GatherCut(const Row& row, Admit admit, uint32_t prefix, int shift, uint64_t before, uint64_t target,
                         Shared& s, cg::cluster_group& cluster) {
  if (threadIdx.x == 0) s.gather_n = 0;
  __syncthreads();
  ForEachId(row, [&](int32_t t, float logit) {
    if (!admit(t, logit)) return;
    const uint32_t k = RankKey(logit);
    if ((k >> shift) != prefix) return;
    const int32_t i = atomicAdd(&s.gather_n, 1);
    s.gather_key[i] = k;
    s.gather_id[i] = t;
  });
  cluster.sync();  // every slice's tokens are gathered
  int32_t n = 0;
  for (int c = 0; c < static_cast<int>(cluster.num_blocks()); ++c) {
    Shared& o = *cluster.map_shared_rank(&s, c);
    const int32_t nc = o.gather_n;
    for (int32_t i = threadIdx.x; i < nc; i += kThreads) {
      s.merged_key[n + i] = o.gather_key[i];
      s.merged_id[n + i] = o.gather_id[i];
    }
    n += nc;
  }
  cluster.sync();  // no slice's list is written again while another CTA may copy it
  if (threadIdx.x < n) {
    const uint32_t k = s.merged_key[threadIdx.x];
    const int32_t id = s.merged_id[threadIdx.x];
    int32_t rank = 0;
    for (int32_t j = 0; j < n; ++j) {
      const uint32_t kj = s.merged_key[j];
      rank += kj < k || (kj == k && s.merged_id[j] < id);
    }
    s.order[rank] = static_cast<int16_t>(threadIdx.x);
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    uint64_t acc = before;
    for (int32_t base = 0; base < n; base += 32) {
      const int32_t i = base + lane;
      uint32_t k = 0;
      int32_t id = 0;
      uint64_t v = 0;
      if (i < n) {
        k = s.merged_key[s.order[i]];
        id = s.merged_id[s.order[i]];
        v = kMass ? row.Fixed(KeyLogit(k)) : 1;
      }
      const uint64_t through = acc + WarpInclusiveScan(v);
      const unsigned hit = __ballot_sync(0xffffffffu, i < n && through >= target);
      if (hit != 0) {
        if (lane == __ffs(hit) - 1) {
          s.cut_key = k;
          s.cut_id = id;
        }
        break;
      }
      acc = __shfl_sync(0xffffffffu, through, 31);
    }
  }
  __syncthreads();
  Cut cut;
  cut.key = s.cut_key;
  cut.last_id = s.cut_id;
  __syncthreads();
  return cut;
}

// The cut after which the tokens `admit` lets in stop, in rank order: a token is kept when what
// comes before it among them (their number, or with kMass their fixed-point weights) is below
// the target, so the token that reaches the target is kept too. The target is
// target_of(what they all hold), known after the first round. No cut when all of them
// together stay below it.
template <bool kMass, typename Admit, typename TargetOf>
__device__ Cut SelectPrefix(const Row& row, Admit admit, TargetOf target_of, Shared& s, cg::cluster_group& cluster) {
  uint32_t prefix = 0;
  uint64_t before = 0;  // what the admitted tokens with keys below the prefix's range hold
  uint64_t target = 0;
  for (int round = 0; round < 4; ++round) {
    const int shift = 24 - 8 * round;
    uint32_t* lo = s.lo[round & 1];
    uint32_t* hi = s.hi[round & 1];
    uint32_t* cnt = s.cnt[round & 1];
    if (threadIdx.x < kBins) lo[threadIdx.x] = hi[threadIdx.x] = cnt[threadIdx.x] = 0;
    __syncthreads();
    uint32_t run_bin = kBins, run_count = 0;
    uint64_t run = 0;
    auto flush = [&] {
      if (run_count == 0) return;
      HistAdd(lo, hi, run_bin, run);
      if (kMass) atomicAdd(&cnt[run_bin], run_count);
    };
    ForEachId(row, [&](int32_t t, float logit) {
      if (!admit(t, logit)) return;
      const uint32_t k = RankKey(logit);
      if (round > 0 && (k >> (shift + 8)) != prefix) return;
      const uint32_t bin = (k >> shift) & 0xffu;
      if (bin != run_bin) {
        flush();
        run_bin = bin;
        run = 0;
        run_count = 0;
      }
      run += kMass ? row.Fixed(logit) : 1;
      ++run_count;
    });
    flush();
    cluster.sync();  // every slice's histogram is complete
    if (threadIdx.x < kBins) {
      uint64_t sum = 0;
      uint32_t count = 0;
      for (int c = 0; c < static_cast<int>(cluster.num_blocks()); ++c) {
        sum += (static_cast<uint64_t>(*cluster.map_shared_rank(&hi[threadIdx.x], c)) << 32) |
               *cluster.map_shared_rank(&lo[threadIdx.x], c);
        if (kMass) count += *cluster.map_shared_rank(&cnt[threadIdx.x], c);
      }
      s.bins[threadIdx.x] = sum;
      s.bin_count[threadIdx.x] = kMass ? count : static_cast<uint32_t>(sum);
    }
    __syncthreads();
    if (threadIdx.x < 32) {  // one warp finds the first bin where the running sum reaches the target
      const int lane = threadIdx.x;
      constexpr int kPer = kBins / 32;
      uint64_t bins[kPer], mine = 0;
      for (int i = 0; i < kPer; ++i) mine += bins[i] = s.bins[lane * kPer + i];
      const uint64_t through = WarpInclusiveScan(mine);
      if (round == 0) target = target_of(__shfl_sync(0xffffffffu, through, 31));
      const unsigned hit = __ballot_sync(0xffffffffu, before + through >= target);
      if (hit == 0) {
        if (lane == 0) s.pick = kBins;
      } else if (lane == __ffs(hit) - 1) {
        uint64_t acc = before + through - mine;
        int b = lane * kPer;
        for (int i = 0; i < kPer && acc + bins[i] < target; ++i, ++b) acc += bins[i];
        s.pick = b;
        s.before = acc;
        s.target = target;
      }
    }
    __syncthreads();
    const int b = s.pick;
    if (b == kBins) {
      cluster.sync();  // (the other CTAs may still read this round's histogram)
      return Cut{};
    }
    before = s.before;
    target = s.target;
    const uint32_t in_bin = s.bin_count[b];
    __syncthreads();
    prefix = (prefix << 8) | static_cast<uint32_t>(b);
    if (in_bin <= (cluster.num_blocks() == 1 ? kGather : kGatherSliced)) {
      return GatherCut<kMass>(row, admit, prefix, shift, before, target, s, cluster);
    }
  }
  // prefix is the cut's key; its tokens (equal logits, equal weights) are taken in id order
  // while what comes before stays below the target: the first `keep` of them (keep >= 1, as
  // before stays below the target).
  const uint64_t each = kMass ? row.Fixed(KeyLogit(prefix)) : 1;
  const uint64_t keep = each == 0 ? UINT64_MAX : (target - before + each - 1) / each;
  auto tie = [&](int32_t t, float logit) -> uint64_t { return admit(t, logit) && RankKey(logit) == prefix ? 1 : 0; };
  const uint64_t tied = TileTotals(row, tie, s, cluster);
  Cut cut;
  cut.key = prefix;
  cut.last_id = keep <= tied ? FindRunning(row, tie, keep - 1, tied, INT_MAX, s, cluster) : INT_MAX;
  return cut;
}

// The drawn token: the top-k, top-p and min-p cuts, then the first token, in id order, whose
// running kept weight passes u times the whole.
__device__ int32_t Draw(const Row& row, int32_t top_k, float top_p, float min_p, double u, int32_t best, Shared& s,
                        cg::cluster_group& cluster) {
  Cut by_k, by_p;
  if (top_k > 0 && top_k < row.vocab) {
    by_k = SelectPrefix<false>(
        row, [](int32_t, float) { return true; }, [=](uint64_t) { return static_cast<uint64_t>(top_k); }, s, cluster);
  }
  if (top_p < 1.0f) {
    auto in_k = [&](int32_t t, float logit) { return by_k.In(RankKey(logit), t); };
    auto share = [=](uint64_t total) {
      return static_cast<uint64_t>(ceil(static_cast<double>(top_p) * static_cast<double>(total)));
    };
    by_p = SelectPrefix<true>(row, in_k, share, s, cluster);
  }
  auto weight = [&](int32_t t, float logit) -> uint64_t {
    const uint32_t k = RankKey(logit);
    if (t != best && !(by_k.In(k, t) && by_p.In(k, t))) return 0;
    const float w = row.Weight(logit);
    return t == best || w >= min_p ? __float2ull_rn(w * kFixScale) : 0;
  };
  const uint64_t whole = TileTotals(row, weight, s, cluster);
  uint64_t target = static_cast<uint64_t>(u * static_cast<double>(whole));
  if (whole > 0 && target >= whole) target = whole - 1;  // u < 1, but the product rounds
  return FindRunning(row, weight, target, whole, best, s, cluster);
}


// The n best tokens by raw logit (ties to the lower id), best first, with logit - lse, into
// the row's top_ids / top_logprobs: the first n in rank order by a count selection, each
// slice's members gathered in its shared memory, merged and ordered by CTA 0.
__device__ void TopLogprobs(const Row& row, int32_t n, float lse, int32_t* ids, float* logprobs, Shared& s,
                            cg::cluster_group& cluster) {
  Cut top;
  if (n < row.vocab) {
    top = SelectPrefix<false>(
        row, [](int32_t, float) { return true; }, [=](uint64_t) { return static_cast<uint64_t>(n); }, s, cluster);
  }
  if (threadIdx.x == 0) s.top_count = 0;
  __syncthreads();
  ForEachId(row, [&](int32_t t, float logit) {
    if (!top.In(RankKey(logit), t)) return;
    const int32_t i = atomicAdd(&s.top_count, 1);
    if (i < kMaxTopLogprobs) {
      s.top_id[i] = t;
      s.top_logit[i] = logit;
    }
  });
  cluster.sync();  // every slice's members are in its CTA's shared memory
  if (cluster.block_rank() == 0 && threadIdx.x == 0) {
    int32_t id[kMaxTopLogprobs];
    float logit[kMaxTopLogprobs];
    int32_t m = 0;
    for (int c = 0; c < static_cast<int>(cluster.num_blocks()); ++c) {
      const Shared& o = *cluster.map_shared_rank(&s, c);
      for (int32_t i = 0; i < min(o.top_count, kMaxTopLogprobs) && m < kMaxTopLogprobs; ++i, ++m) {
        // Insertion in rank order: a larger logit first, equal logits by id.
        int32_t j = m;
        const int32_t t = o.top_id[i];
        const float v = o.top_logit[i];
        for (; j > 0 && (logit[j - 1] < v || (logit[j - 1] == v && id[j - 1] > t)); --j) {
          id[j] = id[j - 1];
          logit[j] = logit[j - 1];
        }
        id[j] = t;
        logit[j] = v;
      }
    }
    for (int32_t i = 0; i < min(n, m); ++i) {
      ids[i] = id[i];
      logprobs[i] = logit[i] - lse;
    }
  }
  cluster.sync();  // no CTA leaves while CTA 0 may still read its shared memory
}

__global__ void __launch_bounds__(kThreads) SampleFilteredKernel(SampleFilteredParams p) {
  PdlWait();
  PdlTrigger();
  __shared__ Shared s;
  cg::cluster_group cluster = cg::this_cluster();
  const int32_t r = blockIdx.x;
  const int32_t* a = p.args + static_cast<int64_t>(r) * kSampleArgs;
  const bool draw = a[0] == 1;
  const int32_t n_top = min(a[7], kMaxTopLogprobs);
  if (!draw && n_top <= 0) return;  // the whole cluster (one row) leaves
  const float temperature = draw ? __int_as_float(a[1]) : 1.0f, top_p = __int_as_float(a[3]),
              min_p = __int_as_float(a[4]);
  const int32_t top_k = a[2];
  const double u = __hiloint2double(a[6], a[5]);
  const int32_t best = p.token[r];  // Greedy's argmax, ties to the lower id
  Row row;
  row.logits = p.logits + static_cast<int64_t>(r) * p.vocab;
  row.vocab = p.vocab;
  row.vec = p.vocab % 4 == 0 && reinterpret_cast<uintptr_t>(p.logits) % 16 == 0;
  const int32_t tiles = (p.vocab + kTile - 1) / kTile, slices = static_cast<int32_t>(cluster.num_blocks());
  const int32_t per = (tiles + slices - 1) / slices;
  row.tile0 = min(tiles, static_cast<int32_t>(cluster.block_rank()) * per);
  row.tile1 = min(tiles, row.tile0 + per);
  row.end = min(p.vocab, row.tile1 * kTile);
  row.best_logit = row.logits[best];
  row.inv_t = 1.0f / temperature;
  const float lse = row.best_logit - p.logprob[r];  // Greedy wrote logit[best] - log-sum-exp

  int32_t pick = best;
  if (draw) pick = Draw(row, top_k, top_p, min_p, u, best, s, cluster);
  if (n_top > 0) {
    TopLogprobs(row, n_top, lse, p.top_ids + static_cast<int64_t>(r) * kMaxTopLogprobs,
                p.top_logprobs + static_cast<int64_t>(r) * kMaxTopLogprobs, s, cluster);
  }
  if (draw && cluster.block_rank() == 0 && threadIdx.x == 0) {  // after the last cluster barrier: all read token[r]
    p.token[r] = pick;
    p.logprob[r] = row.logits[pick] - lse;
  }
}

}  // namespace

cudaError_t SampleFiltered(const SampleFilteredParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.vocab <= 0 || p.vocab > kSampleFilteredMaxVocab || p.args == nullptr) return cudaErrorInvalidValue;
  // A row's cluster: as many slices as keep the GPU's SMs busy, up to the portable 8.
  const unsigned slices = p.rows <= 16 ? kMaxCluster : p.rows <= 33 ? 4 : p.rows <= 66 ? 2 : 1;
  return LaunchPdlCluster(SampleFilteredKernel, dim3(p.rows, slices), dim3(kThreads), 0, slices, stream, p);
}

}  // namespace lil::cuda
