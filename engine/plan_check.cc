// File: engine/plan_check.cc
#include "engine/plan_check.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace lil {

absl::Status CheckPlan(const StepPlan& plan, const ModelConfig& config, int32_t num_pages,
                       int32_t page_size) {
  absl::flat_hash_set<RequestId> ids;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    if (!ids.insert(s.id).second) return InvalidArgument("plan: request ", s.id.value, " appears twice");
    if (s.tokens.empty()) return InvalidArgument("plan: request ", s.id.value, " has no tokens");
    if (s.start_pos < 0) return InvalidArgument("plan: request ", s.id.value, " start_pos ", s.start_pos);
    const int64_t end = static_cast<int64_t>(s.start_pos) + s.tokens.size();
    if (end > config.max_position_embeddings) {
      return InvalidArgument("plan: request ", s.id.value, " reaches position ", end,
                             ", beyond the model's context of ", config.max_position_embeddings);
    }
    for (TokenId t : s.tokens) {
      if (t < 0 || t >= config.vocab_size) {
        return InvalidArgument("plan: request ", s.id.value, " token id ", t, " is outside [0, ",
                               config.vocab_size, ")");
      }
    }
    const int64_t pages_needed = (end + page_size - 1) / page_size;
    if (static_cast<int64_t>(s.page_table.size()) < pages_needed) {
      return InvalidArgument("plan: request ", s.id.value, " page_table has ", s.page_table.size(),
                             " pages, positions up to ", end, " need ", pages_needed);
    }
    for (int64_t lp = 0; lp < pages_needed; ++lp) {
      const PageId p = s.page_table[lp];
      if (p.value >= num_pages || p.value < kNoPage.value) {
        return InvalidArgument("plan: request ", s.id.value, " page_table[", lp, "] = ", p.value,
                               " is outside the pool of ", num_pages, " pages");
      }
      // Pages the new tokens are written to must exist.
      if (!p.valid() && lp >= s.start_pos / page_size) {
        return InvalidArgument("plan: request ", s.id.value, " page_table[", lp, "] is kNoPage but tokens ",
                               "are written there");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckQuestCandidates(const StepPlan& plan, const ModelConfig& config, int32_t page_size,
                                  int32_t max_candidates) {
  for (const ScheduledSeq& s : plan.seqs) {
    // The same test as the CUDA backend's layouts (BuildStepInputs): Quest selects in a layer
    // when the step has one token, the layer is past dense_layers and fewer pages are
    // budgeted than are resident.
    if (s.sparse.mode != SparseMode::kQuest || s.sparse.budget_tokens <= 0 || s.tokens.size() != 1 ||
        s.sparse.dense_layers >= config.num_layers) {
      continue;
    }
    const int64_t pages = (static_cast<int64_t>(s.start_pos) + 1 + page_size - 1) / page_size;
    if (pages <= max_candidates) continue;  // fewer entries than the limit: nothing to count
    int64_t resident = 0;
    for (int64_t lp = 0; lp < pages; ++lp) resident += s.page_table[lp].valid() ? 1 : 0;
    const int64_t budget = std::max<int64_t>(1, (s.sparse.budget_tokens + page_size - 1) / page_size);
    if (budget < resident && resident > max_candidates) {
      return absl::UnimplementedError(absl::StrCat("sequence ", s.id.value, ": Quest over more than ",
                                                   max_candidates, " resident pages (", resident, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace lil
