// File: engine/sampler.h
// Token sampling on the host (the CPU backend's, and the reference for the GPU sampler):
// repetition penalty, temperature, top-k, top-p, min-p, greedy, seeded draws, top logprobs.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "scheduler/request_params.h"
#include "scheduler/step_plan.h"

namespace lil {

struct SampleOutput {
  TokenId token = -1;
  float logprob = 0.0f;                // log-probability of `token` under the model (raw logits)
  std::vector<TokenLogprob> top_logprobs;  // params.logprobs best tokens, best first
};

// Order of processing (as in HuggingFace generate): repetition penalty over `history`
// (prompt + output so far), then temperature, then top-k, top-p, min-p; temperature 0 is
// greedy (ties go to the lowest id). Rank order is by logit, ties to the lower id; top-p keeps
// the smallest rank prefix of the top-k holding top_p of their mass, min-p the tokens of at
// least min_p times the best's probability. The draw walks the kept tokens in ascending id
// order (inverse CDF; the same distribution as any order, and what a GPU prefix sum over the
// vocabulary computes). Log-probabilities are reported from the raw logits.
// The draw uses a counter-based generator keyed by (seed, draw_index), so a request's output
// does not depend on what else is in the batch.
SampleOutput Sample(absl::Span<const float> logits, const SamplingParams& params,
                    absl::Span<const TokenId> history, uint64_t seed, int64_t draw_index);

// What Sample draws from at temperature > 0 (not greedy): each token's tempered weight
// exp((logit - best logit) / temperature) after the repetition penalty, or 0 where top-k,
// top-p or min-p cut it; the best token's weight is 1. (The reference for a GPU sampler.)
std::vector<float> TemperedKept(absl::Span<const float> logits, const SamplingParams& params,
                                absl::Span<const TokenId> history);

// The uniform [0, 1) value Sample uses for (seed, draw_index).
double UniformDraw(uint64_t seed, int64_t draw_index);

}  // namespace lil
