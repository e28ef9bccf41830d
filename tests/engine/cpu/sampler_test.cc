// File: tests/engine/cpu/sampler_test.cc
#include "engine/sampler.h"

#include <cmath>
#include <map>

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

}  // namespace
}  // namespace lil
