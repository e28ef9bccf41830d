// File: engine/cuda/cuda_step.cc
// Mirrors CpuBackend's batch building (engine/cpu_backend.cc) so both backends read the
// same pages for the same plan.
#include "engine/cuda/cuda_step.h"

#include <algorithm>
#include <map>

namespace lil::cuda {
namespace {

// Dense rows for every sequence, except those in `quest`, which get `budget` slots each.
// Refills *l (its vectors keep their capacity); entry_seq only for a step with h2o mass, its
// one reader (the GPU's ScatterAdd). per_seq (no Quest sequence, no mass): a row a sequence,
// its resident pages, shared by the KV heads.
void BuildLayout(const StepInputs& in, int32_t hkv, const std::vector<bool>& quest, bool per_seq, RowLayout* l) {
  const bool entry_seq = in.mass_size > 0;
  l->per_seq = per_seq && !entry_seq && std::find(quest.begin(), quest.end(), true) == quest.end();
  if (l->per_seq) {
    l->indptr.assign(in.cand_indptr.begin(), in.cand_indptr.end());
    l->pages.assign(in.cand_pages.begin(), in.cand_pages.end());
    l->logical.assign(in.cand_logical.begin(), in.cand_logical.end());
    l->entry_seq.clear();
    l->quest_seqs.clear();
    return;
  }
  const int32_t num_seqs = static_cast<int32_t>(in.seq_first.size());
  int64_t entries = 0;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t cands = in.cand_indptr[s + 1] - in.cand_indptr[s];
    entries += int64_t{hkv} * (quest[s] ? std::min(cands, in.quest_budget[s]) : cands);
  }
  l->indptr.clear();
  l->pages.clear();
  l->logical.clear();
  l->entry_seq.clear();
  l->quest_seqs.clear();
  l->indptr.reserve(int64_t{num_seqs} * hkv + 1);
  l->pages.reserve(entries);
  l->logical.reserve(entries);
  if (entry_seq) l->entry_seq.reserve(entries);
  l->indptr.push_back(0);
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t c0 = in.cand_indptr[s], c1 = in.cand_indptr[s + 1];
    if (quest[s]) l->quest_seqs.push_back(s);
    for (int32_t h = 0; h < hkv; ++h) {
      if (quest[s]) {
        const int32_t n = std::min(c1 - c0, in.quest_budget[s]);
        l->pages.insert(l->pages.end(), n, 0);  // filled by QuestSelect
        l->logical.insert(l->logical.end(), n, 0);
        if (entry_seq) l->entry_seq.insert(l->entry_seq.end(), n, s);
      } else {
        l->pages.insert(l->pages.end(), in.cand_pages.begin() + c0, in.cand_pages.begin() + c1);
        l->logical.insert(l->logical.end(), in.cand_logical.begin() + c0, in.cand_logical.begin() + c1);
        if (entry_seq) l->entry_seq.insert(l->entry_seq.end(), c1 - c0, s);
      }
      l->indptr.push_back(static_cast<int32_t>(l->pages.size()));
    }
  }
}

}  // namespace

void BuildStepInputs(const StepPlan& plan, const ModelConfig& c, int32_t page_size, StepInputs* out,
                     bool rows_per_seq) {
  // Every vector is cleared, not freed: refilled step after step, they stop allocating (a
  // batch-64 step's page lists are hundreds of KB, which the allocator would otherwise map
  // and fault in again every step).
  std::vector<RowLayout> spare = std::move(out->layouts);
  out->Clear();
  StepInputs& in = *out;
  const int32_t num_seqs = static_cast<int32_t>(plan.seqs.size());
  std::vector<std::pair<int32_t, int32_t>>& touched = out->touched_scratch;  // (page, slot) of every token
  int64_t cands = 0;
  for (const ScheduledSeq& seq : plan.seqs) cands += static_cast<int64_t>(seq.page_table.size());
  in.cand_pages.reserve(cands);
  in.cand_logical.reserve(cands);
  in.cand_indptr.push_back(0);
  for (int32_t s = 0; s < num_seqs; ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    const int32_t n = static_cast<int32_t>(seq.tokens.size());
    in.seq_first.push_back(in.num_tokens);
    in.seq_len.push_back(n);
    for (int32_t j = 0; j < n; ++j) {
      const int32_t pos = seq.start_pos + j;
      const int32_t page = seq.page_table[pos / page_size].value, slot = pos % page_size;
      in.tokens.push_back(seq.tokens[j]);
      in.pos.push_back(pos);
      in.seq.push_back(s);
      in.dst_page.push_back(page);
      in.dst_slot.push_back(slot);
      touched.emplace_back(page, slot);
    }
    in.num_tokens += n;
    const int32_t pages = (seq.start_pos + n + page_size - 1) / page_size;
    for (int32_t lp = 0; lp < pages; ++lp) {
      if (!seq.page_table[lp].valid()) continue;
      in.cand_pages.push_back(seq.page_table[lp].value);
      in.cand_logical.push_back(lp);
    }
    in.cand_indptr.push_back(static_cast<int32_t>(in.cand_pages.size()));
    const bool quest = seq.sparse.mode == SparseMode::kQuest && seq.sparse.budget_tokens > 0;
    in.quest_budget.push_back(quest ? std::max(1, (seq.sparse.budget_tokens + page_size - 1) / page_size) : 0);
    in.quest_dense_layers.push_back(seq.sparse.dense_layers);
    in.mass_offset.push_back(seq.collect_page_mass ? in.mass_size : -1);
    if (seq.collect_page_mass) in.mass_size += pages;
    if (seq.return_logits) {
      in.first_logit_row.push_back(static_cast<int32_t>(in.logit_rows.size()));
      for (int32_t j = 0; j < n; ++j) in.logit_rows.push_back(in.seq_first[s] + j);
    } else if (seq.sample) {
      in.first_logit_row.push_back(static_cast<int32_t>(in.logit_rows.size()));
      in.logit_rows.push_back(in.seq_first[s] + n - 1);
    } else {
      in.first_logit_row.push_back(-1);
    }
  }
  // Each page once, ascending, with the highest slot the step writes in it.
  std::sort(touched.begin(), touched.end());
  for (size_t i = 0; i < touched.size(); ++i) {
    if (i + 1 < touched.size() && touched[i + 1].first == touched[i].first) continue;
    in.touched_pages.push_back(touched[i].first);
    in.touched_last_slot.push_back(touched[i].second);
  }
  // One layout per distinct set of Quest-active sequences (as in CpuBackend: decode steps of
  // one token, past dense_layers, with fewer pages budgeted than resident). Without any Quest
  // budget every layer reads the one dense layout.
  if (std::all_of(in.quest_budget.begin(), in.quest_budget.end(), [](int32_t b) { return b == 0; })) {
    in.layouts.push_back(!spare.empty() ? std::move(spare[0]) : RowLayout{});
    BuildLayout(in, c.num_kv_heads, std::vector<bool>(num_seqs, false), rows_per_seq, &in.layouts.back());
    in.layer_layout.assign(c.num_layers, 0);
    return;
  }
  std::map<std::vector<bool>, int32_t> seen;
  for (int32_t layer = 0; layer < c.num_layers; ++layer) {
    std::vector<bool> quest(num_seqs);
    for (int32_t s = 0; s < num_seqs; ++s) {
      const int32_t cands = in.cand_indptr[s + 1] - in.cand_indptr[s];
      quest[s] = in.quest_budget[s] > 0 && layer >= in.quest_dense_layers[s] && in.seq_len[s] == 1 &&
                 in.quest_budget[s] < cands;
    }
    auto [it, fresh] = seen.emplace(quest, static_cast<int32_t>(in.layouts.size()));
    if (fresh) {
      const size_t k = in.layouts.size();
      in.layouts.push_back(k < spare.size() ? std::move(spare[k]) : RowLayout{});
      BuildLayout(in, c.num_kv_heads, quest, rows_per_seq, &in.layouts.back());
    }
    in.layer_layout.push_back(it->second);
  }
}

}  // namespace lil::cuda
