// File: tests/engine/cpu/sampler_test.cc
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

namespace lil {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f};

TEST(SamplerTest, GreedyTakesArgmaxLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0.0f;
  EXPECT_EQ(Sample(kLogits, p, {}, 1, 0).token, 1);
}

TEST(SamplerTest, LogprobIsLogSoftmaxOfRawLogits) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logprobs = 3;
  SampleOutput o = Sample(kLogits, p, {}, 1, 0);
  double z = 0;
  for (float l : kLogits) z += std::exp(l);
  EXPECT_NEAR(o.logprob, 3.0 - std::log(z), 1e-5);
  ASSERT_EQ(o.top_logprobs.size(), 3u);
  EXPECT_EQ(o.top_logprobs[0].token, 1);
  EXPECT_EQ(o.top_logprobs[1].token, 3);
  EXPECT_EQ(o.top_logprobs[2].token, 2);
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 4.0f;
  std::vector<TokenId> history = {1, 3};  // both 3.0 -> 0.75; token 2 (2.0) wins
  EXPECT_EQ(Sample(kLogits, p, history, 1, 0).token, 2);
}

TEST(SamplerTest, SameSeedSameDrawsAndDistributionMatches) {
  SamplingParams p;
  p.temperature = 1.0f;
  std::map<TokenId, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const TokenId a = Sample(kLogits, p, {}, 77, i).token;
    EXPECT_EQ(a, Sample(kLogits, p, {}, 77, i).token);
    counts[a]++;
  }
  double z = 0;
  for (float l : kLogits) z += std::exp(l);
  for (int t = 0; t < 6; ++t) {
    EXPECT_NEAR(counts[t] / double(n), std::exp(kLogits[t]) / z, 0.015) << "token " << t;
  }
}

TEST(SamplerTest, TopKTopPMinPRestrictTheSupport) {
  SamplingParams p;
  p.temperature = 1.0f;
  for (int i = 0; i < 2000; ++i) {
    p.top_k = 2;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    TokenId t = Sample(kLogits, p, {}, 5, i).token;
    EXPECT_TRUE(t == 1 || t == 3) << t;
    p.top_k = 0;
    p.top_p = 0.5f;  // the two 3.0 logits hold ~0.69 of the mass: the first alone is ~0.35
    t = Sample(kLogits, p, {}, 5, i).token;
    EXPECT_TRUE(t == 1 || t == 3) << t;
    p.top_p = 1.0f;
    p.min_p = 0.3f;  // exp(2 - 3) = 0.37 >= 0.3 keeps token 2, exp(1 - 3) = 0.14 drops token 0
    t = Sample(kLogits, p, {}, 5, i).token;
    EXPECT_TRUE(t == 1 || t == 2 || t == 3) << t;
  }
}

// The kept set against the definition spelled out with a full sort: rank order by logit then
// lower id; the top_k best; the smallest rank prefix of those with top_p of their tempered
// mass (at least one); then weight >= min_p times the best's. Rows of 5,000 logits drawn from
// 40 values (so ties cross every cut), several temperatures and cut combinations.
std::vector<bool> ReferenceKept(const std::vector<float>& logits, const SamplingParams& p) {
  const int32_t n_all = static_cast<int32_t>(logits.size());
  std::vector<int32_t> order(n_all);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  int32_t n = p.top_k > 0 ? std::min(p.top_k, n_all) : n_all;
  std::vector<double> w(n);
  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) total += w[i] = std::exp((logits[order[i]] - logits[order[0]]) / p.temperature);
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    int32_t keep = 0;
    while (keep < n && (keep == 0 || cum < p.top_p * total)) cum += w[keep++];
    n = keep;
  }
  std::vector<bool> kept(n_all, false);
  for (int32_t i = 0; i < n; ++i) kept[order[i]] = i == 0 || w[i] >= p.min_p;
  return kept;
}

TEST(SamplerTest, KeptSetMatchesTheSortedDefinition) {
  std::mt19937 rng(3);
  int checked = 0;
  for (int row = 0; row < 12; ++row) {
    std::vector<float> logits(5000);
    for (float& x : logits) x = -4.0f + 0.25f * static_cast<float>(rng() % 40);  // 40 distinct values
    for (const float temperature : {0.5f, 1.0f, 1.7f}) {
      for (const int32_t top_k : {0, 1, 7, 600, 5000}) {
        for (const float top_p : {1.0f, 0.9f, 0.3f, 0.01f}) {
          for (const float min_p : {0.0f, 0.05f, 0.5f}) {
            SamplingParams p;
            p.temperature = temperature;
            p.top_k = top_k;
            p.top_p = top_p;
            p.min_p = min_p;
            const std::vector<float> e = TemperedKept(logits, p, {});
            const std::vector<bool> want = ReferenceKept(logits, p);
            int32_t mismatched = 0;
            for (size_t t = 0; t < logits.size(); ++t) mismatched += (e[t] > 0.0f) != want[t];
            EXPECT_EQ(mismatched, 0) << "row " << row << " T " << temperature << " top_k " << top_k << " top_p " << top_p
                                     << " min_p " << min_p;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 12 * 3 * 5 * 4 * 3);
}

// Draws follow the kept weights: over 30,000 seeded draws from one row with top_p and min_p,
// every token drawn is kept and each kept token's share matches its weight.
TEST(SamplerTest, DrawsFollowTheKeptWeights) {
  std::mt19937 rng(9);
  std::vector<float> logits(300);
  for (float& x : logits) x = std::normal_distribution<float>(0.0f, 1.5f)(rng);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.8f;
  p.min_p = 0.02f;
  const std::vector<float> e = TemperedKept(logits, p, {});
  double kept = 0.0;
  for (float w : e) kept += w;
  std::map<TokenId, int> counts;
  const int n = 30000;
  for (int i = 0; i < n; ++i) counts[Sample(logits, p, {}, 123, i).token]++;
  for (const auto& [t, k] : counts) EXPECT_GT(e[t], 0.0f) << "token " << t << " was cut";
  for (size_t t = 0; t < e.size(); ++t) {
    if (e[t] > 0.0f) {
      EXPECT_NEAR(counts[static_cast<TokenId>(t)] / double(n), e[t] / kept, 0.012) << "token " << t;
    }
  }
}

}  // namespace
}  // namespace lil
