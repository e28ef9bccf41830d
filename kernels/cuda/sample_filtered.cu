// File: kernels/cuda/sample_filtered.cu
// SampleFiltered (sample.h): temperature sampling with top-k / top-p / min-p on the GPU, one
// CTA a row, following engine/sampler.h's definition (TemperedKept): rank order is by logit,
// ties to the lower id; top-k keeps the k first; top-p the smallest rank prefix of those
// holding top_p of their tempered weight exp((logit - best) / T); min-p the tokens of weight
// at least min_p; the draw is an inverse CDF over the kept tokens in ascending id order.
//
// No sort: each cut is a radix selection over an unsigned rank key of the logit (smaller key,
// larger logit), four rounds of a 256-bin histogram of the next 8 key bits among the tokens
// still tied with the cut's prefix; the histogram holds counts (top-k) or weights (top-p).
// The tokens whose key equals the selected one (equal logits) are then taken in id order by a
// block scan. Weights are summed as 2^-40 fixed-point integers: integer atomics give the same
// sums in any order, so the cuts and the draw are the same every run (seeded requests repeat).
// The logits row is read ~10 times; it stays in the L2 (a 128k row is 512 KB).
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/sample.h"

#include <climits>
#include <cstdint>

namespace lil::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;
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
  float best_logit, inv_t;
  // The tempered weight of a logit relative to the best (1 for the best), as the host's.
  __device__ float Weight(float logit) const { return expf((logit - best_logit) * inv_t); }
  __device__ uint64_t Fixed(float logit) const { return __float2ull_rn(Weight(logit) * kFixScale); }
};

// Tokens in a cut: a key below `key`, or equal to it with an id up to `last_id`. The default
// holds every token.
struct Cut {
  uint32_t key = 0xffffffffu;
  int32_t last_id = INT_MAX;
  __device__ bool In(uint32_t k, int32_t t) const { return k < key || (k == key && t <= last_id); }
};

struct Shared {
  unsigned long long hist[kBins];
  uint64_t warp[kWarps];
  uint64_t value;
  int32_t pick;
};

__device__ uint64_t BlockSum(uint64_t v, Shared& s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) s.warp[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t total = 0;
    for (int w = 0; w < kWarps; ++w) total += s.warp[w];
    s.value = total;
  }
  __syncthreads();
  const uint64_t total = s.value;
  __syncthreads();
  return total;
}

// What the threads before this one hold (thread order); *total gets the whole block's.
__device__ uint64_t BlockExclusiveScan(uint64_t v, Shared& s, uint64_t* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint64_t x = v;
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) s.warp[warp] = x;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t run = 0;
    for (int w = 0; w < kWarps; ++w) {
      const uint64_t inc = s.warp[w];
      s.warp[w] = run;  // exclusive: what the warps before hold
      run += inc;
    }
    s.value = run;
  }
  __syncthreads();
  const uint64_t ahead = s.warp[warp] + x - v;
  *total = s.value;
  __syncthreads();
  return ahead;
}

// The cut after which the tokens `admit` lets in stop, in rank order: a token is kept when what
// comes before it among them (their number, or with kMass their fixed-point weights) is below
// `target`, so the token that reaches the target is kept too. No cut when all of them together
// stay below the target.
template <bool kMass, typename Admit>
__device__ Cut SelectPrefix(const Row& row, Admit admit, uint64_t target, Shared& s) {
  uint32_t prefix = 0;
  uint64_t before = 0;  // what the admitted tokens with keys below the prefix's range hold
  for (int round = 0; round < 4; ++round) {
    const int shift = 24 - 8 * round;
    for (int b = threadIdx.x; b < kBins; b += kThreads) s.hist[b] = 0;
    __syncthreads();
    for (int32_t t = threadIdx.x; t < row.vocab; t += kThreads) {
      if (!admit(t)) continue;
      const float logit = row.logits[t];
      const uint32_t k = RankKey(logit);
      if (round > 0 && (k >> (shift + 8)) != prefix) continue;
      atomicAdd(&s.hist[(k >> shift) & 0xffu], kMass ? static_cast<unsigned long long>(row.Fixed(logit)) : 1ull);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t acc = before;
      int b = 0;
      while (b < kBins && acc + s.hist[b] < target) acc += s.hist[b++];
      s.pick = b;
      s.value = acc;
    }
    __syncthreads();
    const int b = s.pick;
    before = s.value;
    __syncthreads();
    if (b == kBins) return Cut{};
    prefix = (prefix << 8) | static_cast<uint32_t>(b);
  }
  // prefix is the cut's key; its tokens (equal logits, equal weights) are taken in id order
  // while what comes before stays below the target: the first `keep` of them.
  const uint64_t each = kMass ? row.Fixed(KeyLogit(prefix)) : 1;
  const uint64_t keep = each == 0 ? UINT64_MAX : (target - before + each - 1) / each;
  const int32_t chunk = (row.vocab + kThreads - 1) / kThreads;
  const int32_t c0 = min(row.vocab, static_cast<int32_t>(threadIdx.x) * chunk), c1 = min(row.vocab, c0 + chunk);
  uint64_t mine = 0;
  for (int32_t t = c0; t < c1; ++t) mine += admit(t) && RankKey(row.logits[t]) == prefix;
  uint64_t tied = 0;
  const uint64_t ahead = BlockExclusiveScan(mine, s, &tied);
  if (threadIdx.x == 0) s.pick = INT_MAX;  // every tied token kept
  __syncthreads();
  if (keep <= tied && ahead < keep && keep <= ahead + mine) {  // the last kept tie is in this chunk
    uint64_t seen = ahead;
    for (int32_t t = c0; t < c1; ++t) {
      if (admit(t) && RankKey(row.logits[t]) == prefix && ++seen == keep) {
        s.pick = t;
        break;
      }
    }
  }
  __syncthreads();
  Cut cut;
  cut.key = prefix;
  cut.last_id = s.pick;
  __syncthreads();
  return cut;
}

__global__ void __launch_bounds__(kThreads) SampleFilteredKernel(SampleFilteredParams p) {
  PdlWait();
  PdlTrigger();
  __shared__ Shared s;
  const int32_t r = blockIdx.x;
  const int32_t* a = p.args + static_cast<int64_t>(r) * kSampleArgs;
  if (a[0] != 1) return;
  const float temperature = __int_as_float(a[1]), top_p = __int_as_float(a[3]), min_p = __int_as_float(a[4]);
  const int32_t top_k = a[2];
  const double u = __hiloint2double(a[6], a[5]);
  const int32_t best = p.token[r];  // Greedy's argmax, ties to the lower id
  Row row;
  row.logits = p.logits + static_cast<int64_t>(r) * p.vocab;
  row.vocab = p.vocab;
  row.best_logit = row.logits[best];
  row.inv_t = 1.0f / temperature;
  const float lse = row.best_logit - p.logprob[r];  // Greedy wrote logit[best] - log-sum-exp

  Cut by_k, by_p;
  if (top_k > 0 && top_k < p.vocab) {
    by_k = SelectPrefix<false>(row, [](int32_t) { return true; }, static_cast<uint64_t>(top_k), s);
  }
  auto in_k = [&](int32_t t) { return by_k.In(RankKey(row.logits[t]), t); };
  if (top_p < 1.0f) {
    uint64_t mine = 0;
    for (int32_t t = threadIdx.x; t < p.vocab; t += kThreads) {
      if (in_k(t)) mine += row.Fixed(row.logits[t]);
    }
    const uint64_t total = BlockSum(mine, s);
    const double want = static_cast<double>(top_p) * static_cast<double>(total);
    by_p = SelectPrefix<true>(row, in_k, static_cast<uint64_t>(ceil(want)), s);
  }
  auto kept = [&](int32_t t) {
    const float logit = row.logits[t];
    const uint32_t k = RankKey(logit);
    return t == best || (by_k.In(k, t) && by_p.In(k, t) && row.Weight(logit) >= min_p);
  };

  // The draw: the first token, in id order, whose running kept weight passes u times the whole.
  const int32_t chunk = (p.vocab + kThreads - 1) / kThreads;
  const int32_t c0 = min(p.vocab, static_cast<int32_t>(threadIdx.x) * chunk), c1 = min(p.vocab, c0 + chunk);
  uint64_t mine = 0;
  for (int32_t t = c0; t < c1; ++t) {
    if (kept(t)) mine += row.Fixed(row.logits[t]);
  }
  uint64_t whole = 0;
  const uint64_t ahead = BlockExclusiveScan(mine, s, &whole);
  uint64_t target = static_cast<uint64_t>(u * static_cast<double>(whole));
  if (whole > 0 && target >= whole) target = whole - 1;  // u < 1, but the product rounds
  if (threadIdx.x == 0) s.pick = best;
  __syncthreads();
  if (ahead <= target && target < ahead + mine) {
    uint64_t cum = ahead;
    for (int32_t t = c0; t < c1; ++t) {
      if (!kept(t)) continue;
      cum += row.Fixed(row.logits[t]);
      if (target < cum) {
        s.pick = t;
        break;
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    p.token[r] = s.pick;
    p.logprob[r] = row.logits[s.pick] - lse;
  }
}

}  // namespace

cudaError_t SampleFiltered(const SampleFilteredParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.vocab <= 0 || p.args == nullptr) return cudaErrorInvalidValue;
  return LaunchPdl(SampleFilteredKernel, dim3(p.rows), dim3(kThreads), 0, stream, p);
}

}  // namespace lil::cuda
