// File: engine/sampler_state.h
// What a backend keeps per sequence for the host sampler: every input token so far (the
// repetition penalty's history) and the sequence's seed. Shared by the CPU and CUDA backends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/ids.h"
#include "scheduler/step_plan.h"

namespace lil {

struct SamplerState {
  std::vector<TokenId> history;  // every input token so far (prompt + generated)
  uint64_t seed = 0;

  // Folds one scheduled step in: the seed is fixed on the first step (the request's, or one
  // derived from the backend's `seed_base` and the id), the history is cut back to the step's
  // start (a preempted sequence recomputes) and extended with its tokens.
  void Update(const ScheduledSeq& seq, uint64_t seed_base) {
    if (history.empty() && seed == 0) {
      seed = seq.sampling.seed.value_or(seed_base ^ (seq.id.value * 0x9E3779B97F4A7C15ull));
    }
    if (seq.sampling.seed) seed = *seq.sampling.seed;
    history.resize(std::min<size_t>(history.size(), seq.start_pos));
    history.insert(history.end(), seq.tokens.begin(), seq.tokens.end());
  }
};

}  // namespace lil
