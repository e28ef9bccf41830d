// File: scheduler/step_plan.h
// The values that cross between the scheduler and the engine each step (DESIGN.md §3):
// Scheduler::Schedule() -> StepPlan -> Engine::Execute() -> StepResult -> Scheduler::Update().
//
// Paged KV layout of one sequence (page_size = 4 in this picture):
//
//   positions   0 1 2 3 | 4 5 6 7 | 8 9 10 11 | 12 13
//   page_table  [  p7   ,  kNoPage ,    p2     ,  p9   ]   (logical page i -> PageId)
//
// Logical page i holds positions [i*page_size, (i+1)*page_size). A kNoPage slot was freed by
// a sparse policy (sink window, h2o eviction): its tokens are gone and never attended.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/ids.h"
#include "scheduler/request_params.h"

namespace lil {

// One sequence's share of a step: run `tokens` at positions [start_pos, start_pos + n).
// A prefill chunk, a decode token and a recompute after preemption are all this shape.
struct ScheduledSeq {
  RequestId id;
  std::vector<TokenId> tokens;      // input tokens of this step (n >= 1)
  int32_t start_pos = 0;            // position of tokens[0] (= num_computed_tokens)
  std::vector<PageId> page_table;   // covers positions [0, start_pos + n); see picture above
  bool sample = false;              // sample one token after the last input token
  int32_t num_generated = 0;        // tokens generated so far (index of the one sampled now)
  SamplingParams sampling;
  SparseParams sparse;              // decode steps: which pages attention reads (engine selects)
  bool collect_page_mass = false;   // h2o: return attention mass per logical page
  bool return_logits = false;       // tests and tools: return the logits of every input token
};

struct StepPlan {
  int64_t step = 0;
  std::vector<ScheduledSeq> seqs;
  // Requests that ended since the last plan: the engine drops its per-request state.
  std::vector<RequestId> released;
};

struct TokenLogprob {
  TokenId token = -1;
  float logprob = 0.0f;
};

struct SeqOutput {
  RequestId id;
  TokenId token = -1;                     // the sampled token (when sample was set)
  float logprob = 0.0f;                   // its log-probability (after temperature)
  std::vector<TokenLogprob> top_logprobs; // sampling.logprobs entries, best first
  std::vector<float> page_mass;           // per logical page; empty unless collect_page_mass
  int32_t pages_attended = 0;             // pages read by the last layer's attention (stats)
  std::vector<float> logits;              // [tokens.size() x vocab] when return_logits
  std::string text;                       // detokenized delta of `token` (filled by the engine loop)
};

struct StepResult {
  std::vector<SeqOutput> seqs;  // same order as StepPlan::seqs
};

}  // namespace lil
