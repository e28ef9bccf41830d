// File: engine/sampler.cc
#include "engine/sampler.h"

#include <algorithm>
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

// log(sum(exp(x))) in double precision.
double LogSumExp(absl::Span<const float> x) {
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : x) mx = std::max(mx, v);
  double s = 0.0;
  for (float v : x) s += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(s);
}

TokenId Argmax(absl::Span<const float> x) {
  return static_cast<TokenId>(std::max_element(x.begin(), x.end()) - x.begin());
}

}  // namespace

double UniformDraw(uint64_t seed, int64_t draw_index) {
  const uint64_t r = SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(draw_index));
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

SampleOutput Sample(absl::Span<const float> logits, const SamplingParams& params,
                    absl::Span<const TokenId> history, uint64_t seed, int64_t draw_index) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  SampleOutput out;
  const double lse = LogSumExp(logits);

  std::vector<float> work(logits.begin(), logits.end());
  if (params.repetition_penalty != 1.0f) {
    absl::flat_hash_set<TokenId> seen(history.begin(), history.end());
    for (TokenId t : seen) {
      if (t < 0 || t >= vocab) continue;
      work[t] = work[t] > 0 ? work[t] / params.repetition_penalty : work[t] * params.repetition_penalty;
    }
  }

  if (params.temperature <= 0.0f || params.top_k == 1) {
    out.token = Argmax(work);
  } else {
    // Candidates sorted by logit, best first (top-k narrows them before the sort).
    std::vector<int32_t> cand(vocab);
    std::iota(cand.begin(), cand.end(), 0);
    auto better = [&](int32_t a, int32_t b) { return work[a] != work[b] ? work[a] > work[b] : a < b; };
    int32_t n = vocab;
    if (params.top_k > 0 && params.top_k < vocab) {
      std::nth_element(cand.begin(), cand.begin() + params.top_k, cand.end(), better);
      n = params.top_k;
    }
    std::sort(cand.begin(), cand.begin() + n, better);
    const double inv_t = 1.0 / params.temperature;
    std::vector<double> prob(n);
    double total = 0.0;
    for (int32_t i = 0; i < n; ++i) {
      prob[i] = std::exp((static_cast<double>(work[cand[i]]) - work[cand[0]]) * inv_t);
      total += prob[i];
    }
    for (double& p : prob) p /= total;
    if (params.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
      double cum = 0.0;
      int32_t keep = 0;
      while (keep < n && (keep == 0 || cum < params.top_p)) cum += prob[keep++];
      n = keep;
    }
    if (params.min_p > 0.0f) {
      const double floor = params.min_p * prob[0];
      int32_t keep = 1;
      while (keep < n && prob[keep] >= floor) ++keep;
      n = keep;
    }
    double kept = 0.0;
    for (int32_t i = 0; i < n; ++i) kept += prob[i];
    const double u = UniformDraw(seed, draw_index) * kept;
    double cum = 0.0;
    out.token = cand[n - 1];
    for (int32_t i = 0; i < n; ++i) {
      cum += prob[i];
      if (u < cum) {
        out.token = cand[i];
        break;
      }
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
