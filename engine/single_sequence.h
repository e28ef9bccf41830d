// File: engine/single_sequence.h
// Runs one sequence alone on an idle backend, without the scheduler: pages 0..n-1 hold it.
// For tools (logit dumps for parity tests, lilctl generate --no-scheduler) and tests that
// need the engine's output for a request run alone.
#pragma once

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend.h"

namespace lil {

struct SingleSequenceOptions {
  SamplingParams sampling;
  int32_t max_tokens = 32;
  std::vector<TokenId> stop_ids;    // generation ends after emitting one of these
  int32_t prefill_chunk = 512;      // prompt tokens per step
  bool return_prompt_logits = false;
  uint64_t request_id = 1;
};

struct SingleSequenceResult {
  std::vector<TokenId> tokens;         // generated tokens
  std::vector<float> logprobs;         // of each generated token
  std::vector<float> prompt_logits;    // [prompt_len x vocab] when requested
  std::vector<float> step_logits;      // [generated x vocab] logits each token was sampled from (when requested)
};

// `on_token` (optional) is called per generated token; returning false stops early.
absl::StatusOr<SingleSequenceResult> RunSingleSequence(
    Backend& backend, const std::vector<TokenId>& prompt, const SingleSequenceOptions& options,
    const std::function<bool(TokenId)>& on_token = nullptr);

}  // namespace lil
