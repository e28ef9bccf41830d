// File: engine/single_sequence.cc
#include "engine/single_sequence.h"

#include <algorithm>

#include "common/status.h"

namespace lil {

absl::StatusOr<SingleSequenceResult> RunSingleSequence(Backend& backend,
                                                       const std::vector<TokenId>& prompt,
                                                       const SingleSequenceOptions& options,
                                                       const std::function<bool(TokenId)>& on_token) {
  if (prompt.empty()) return InvalidArgument("prompt must not be empty");
  const int32_t ps = backend.page_size();
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  const int64_t pages = (total + ps - 1) / ps;
  if (pages > backend.num_pages()) {
    return absl::ResourceExhaustedError(absl::StrCat("sequence of ", total, " tokens needs ", pages,
                                                     " KV pages, the pool has ", backend.num_pages()));
  }
  ScheduledSeq seq;
  seq.id = RequestId{options.request_id};
  seq.sampling = options.sampling;
  for (int64_t i = 0; i < pages; ++i) seq.page_table.push_back(PageId{static_cast<int32_t>(i)});

  SingleSequenceResult result;
  const int32_t vocab = backend.config().vocab_size;
  std::vector<TokenId> input;
  int32_t pos = 0;
  // Prefill in chunks; the last chunk samples the first token.
  while (pos < static_cast<int32_t>(prompt.size())) {
    const int32_t n = std::min<int32_t>(options.prefill_chunk, prompt.size() - pos);
    seq.tokens.assign(prompt.begin() + pos, prompt.begin() + pos + n);
    seq.start_pos = pos;
    seq.sample = pos + n == static_cast<int32_t>(prompt.size()) && options.max_tokens > 0;
    seq.return_logits = options.return_prompt_logits;
    StepPlan plan;
    plan.seqs.push_back(seq);
    LIL_ASSIGN_OR_RETURN(StepResult r, backend.Execute(plan));
    if (options.return_prompt_logits) {
      result.prompt_logits.insert(result.prompt_logits.end(), r.seqs[0].logits.begin(),
                                  r.seqs[0].logits.end());
    }
    pos += n;
    if (seq.sample) {
      result.tokens.push_back(r.seqs[0].token);
      result.logprobs.push_back(r.seqs[0].logprob);
    }
  }
  seq.return_logits = options.return_prompt_logits;
  auto stopped = [&](TokenId t) {
    if (on_token && !on_token(t)) return true;
    return std::find(options.stop_ids.begin(), options.stop_ids.end(), t) != options.stop_ids.end();
  };
  if (!result.tokens.empty() && options.return_prompt_logits) {
    result.step_logits.assign(result.prompt_logits.end() - vocab, result.prompt_logits.end());
  }
  bool done = result.tokens.empty() || stopped(result.tokens.back());
  while (!done && static_cast<int32_t>(result.tokens.size()) < options.max_tokens) {
    seq.tokens = {result.tokens.back()};
    seq.start_pos = pos++;
    seq.sample = true;
    seq.num_generated = static_cast<int32_t>(result.tokens.size());
    StepPlan plan;
    plan.seqs.push_back(seq);
    LIL_ASSIGN_OR_RETURN(StepResult r, backend.Execute(plan));
    if (options.return_prompt_logits) {
      result.step_logits.insert(result.step_logits.end(), r.seqs[0].logits.begin(), r.seqs[0].logits.end());
    }
    result.tokens.push_back(r.seqs[0].token);
    result.logprobs.push_back(r.seqs[0].logprob);
    done = stopped(r.seqs[0].token);
  }
  StepPlan release;
  release.released.push_back(seq.id);
  LIL_RETURN_IF_ERROR(backend.Execute(release).status());
  return result;
}

}  // namespace lil
