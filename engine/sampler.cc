// File: engine/sampler.cc
#include "engine/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/container/flat_hash_set.h"

namespace lil {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// log(sum(exp(x))): float exponentials (each within an ulp), summed in double.
double LogSumExp(absl::Span<const float> x) {
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : x) mx = std::max(mx, v);
  double s = 0.0;
  for (float v : x) s += std::exp(v - mx);
  return mx + std::log(s);
}

TokenId Argmax(absl::Span<const float> x) {
  return static_cast<TokenId>(std::max_element(x.begin(), x.end()) - x.begin());
}

// Buckets of the tempered log-weight d = (best logit - logit) / T, kBucketsPerUnit to a unit
// (a weight ratio of e^(-1/8) a bucket); d past the last bucket's start shares the last one.
constexpr int kBuckets = 256;
constexpr float kBucketsPerUnit = 8.0f;

// Of the tokens still kept (e > 0), keeps those whose rank-order predecessors amount to less
// than `target` (their number, or with by_mass their weight e), and `best` always: the rank
// prefix that reaches the target, the token reaching it included. Tokens of equal logit
// share a bucket and a later one never outranks an earlier one, so only the bucket where the
// target is reached is sorted.
void KeepRankPrefix(absl::Span<const float> work, int32_t best, float inv_t, bool by_mass, double target,
                    std::vector<float>& e) {
  const int32_t vocab = static_cast<int32_t>(e.size());
  const float best_logit = work[best];
  auto bucket = [&](int32_t t) {
    const float d = (best_logit - work[t]) * inv_t * kBucketsPerUnit;
    return d >= kBuckets - 1 ? kBuckets - 1 : static_cast<int>(d);
  };
  std::array<double, kBuckets> amount{};
  for (int32_t t = 0; t < vocab; ++t) {
    if (e[t] > 0.0f) amount[bucket(t)] += by_mass ? e[t] : 1.0;
  }
  double before = 0.0;  // what the buckets ahead of `edge` hold
  int edge = 0;
  while (edge < kBuckets && before + amount[edge] < target) before += amount[edge++];
  if (edge == kBuckets) return;  // all of them together do not reach the target: keep all
  std::vector<int32_t> tied;
  for (int32_t t = 0; t < vocab; ++t) {
    if (e[t] > 0.0f && bucket(t) == edge) tied.push_back(t);
  }
  std::sort(tied.begin(), tied.end(),
            [&](int32_t a, int32_t b) { return work[a] != work[b] ? work[a] > work[b] : a < b; });
  for (int32_t t : tied) {
    const double w = by_mass ? e[t] : 1.0;
    if (before >= target && t != best) e[t] = 0.0f;
    before += w;
  }
  for (int32_t t = 0; t < vocab; ++t) {
    if (e[t] > 0.0f && bucket(t) > edge && t != best) e[t] = 0.0f;
  }
}

// The logits after the repetition penalty over `history` (HF: positive logits divided by it,
// negative ones multiplied).
std::vector<float> Penalized(absl::Span<const float> logits, const SamplingParams& params,
                             absl::Span<const TokenId> history) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  std::vector<float> work(logits.begin(), logits.end());
  if (params.repetition_penalty != 1.0f) {
    absl::flat_hash_set<TokenId> seen(history.begin(), history.end());
    for (TokenId t : seen) {
      if (t < 0 || t >= vocab) continue;
      work[t] = work[t] > 0 ? work[t] / params.repetition_penalty : work[t] * params.repetition_penalty;
    }
  }
  return work;
}

// TemperedKept on logits already penalized (temperature > 0).
std::vector<float> KeptWeights(absl::Span<const float> work, const SamplingParams& params) {
  // Rank order: logit, then the lower id. The kept set: the top_k best (all when 0), then the
  // smallest rank prefix of them holding top_p of their tempered mass, then those of at least
  // min_p times the best's probability. The cuts come from histograms of the tempered
  // log-weight (KeepRankPrefix), so the vocabulary is never sorted (a 128k row sorted whole
  // took 18 ms).
  const int32_t vocab = static_cast<int32_t>(work.size());
  const int32_t best = Argmax(work);
  const float inv_t = 1.0f / params.temperature;
  std::vector<float> e(vocab);
  for (int32_t t = 0; t < vocab; ++t) e[t] = std::exp((work[t] - work[best]) * inv_t);
  if (params.top_k > 0 && params.top_k < vocab) {
    KeepRankPrefix(work, best, inv_t, /*by_mass=*/false, params.top_k, e);
  }
  if (params.top_p < 1.0f) {
    double total = 0.0;
    for (float w : e) total += w;
    KeepRankPrefix(work, best, inv_t, /*by_mass=*/true, params.top_p * total, e);
  }
  if (params.min_p > 0.0f) {
    for (float& w : e) {
      if (w < params.min_p) w = 0.0f;  // the best's weight is 1: min_p of its probability
    }
  }
  return e;
}

}  // namespace

std::vector<float> TemperedKept(absl::Span<const float> logits, const SamplingParams& params,
                                absl::Span<const TokenId> history) {
  if (params.repetition_penalty == 1.0f) return KeptWeights(logits, params);
  return KeptWeights(Penalized(logits, params, history), params);
}

double UniformDraw(uint64_t seed, int64_t draw_index) {
  const uint64_t r = SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(draw_index));
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

SampleOutput Sample(absl::Span<const float> logits, const SamplingParams& params,
                    absl::Span<const TokenId> history, uint64_t seed, int64_t draw_index) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  SampleOutput out;
  const double lse = LogSumExp(logits);

  std::vector<float> penalized;  // only with a repetition penalty
  absl::Span<const float> work = logits;
  if (params.repetition_penalty != 1.0f) {
    penalized = Penalized(logits, params, history);
    work = penalized;
  }
  if (params.temperature <= 0.0f || params.top_k == 1) {
    out.token = Argmax(work);
  } else {
    const std::vector<float> e = KeptWeights(work, params);
    // The draw: the kept tokens in ascending id order (the order a GPU prefix sum over the
    // vocabulary walks; the rank order is never needed whole).
    double kept = 0.0;
    for (float w : e) kept += w;
    const double u = UniformDraw(seed, draw_index) * kept;
    double cum = 0.0;
    for (int32_t t = 0; t < vocab; ++t) {  // the best token is always kept: out.token is set
      if (e[t] == 0.0f) continue;
      out.token = t;  // the last kept token, should rounding leave u past the sum
      cum += e[t];
      if (u < cum) break;
    }
  }
  out.logprob = static_cast<float>(logits[out.token] - lse);

  if (params.logprobs > 0) {
    const int32_t k = std::min(params.logprobs, vocab);
    std::vector<int32_t> idx(vocab);
    std::iota(idx.begin(), idx.end(), 0);
    auto better = [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
    for (int32_t i = 0; i < k; ++i) {
      out.top_logprobs.push_back({idx[i], static_cast<float>(logits[idx[i]] - lse)});
    }
  }
  return out;
}

}  // namespace lil
