// File: engine/plan_check.cc
#include "engine/plan_check.h"

#include "absl/container/flat_hash_set.h"
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

}  // namespace lil
