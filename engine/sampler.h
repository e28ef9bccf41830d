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
// greedy (ties go to the lowest id). Log-probabilities are reported from the raw logits.
// The draw uses a counter-based generator keyed by (seed, draw_index), so a request's output
// does not depend on what else is in the batch.
SampleOutput Sample(absl::Span<const float> logits, const SamplingParams& params,
                    absl::Span<const TokenId> history, uint64_t seed, int64_t draw_index);

// The uniform [0, 1) value Sample uses for (seed, draw_index).
double UniformDraw(uint64_t seed, int64_t draw_index);

}  // namespace lil
