// File: tests/engine/cuda/cuda_step_test.cc
// The CUDA backend's host-side step building (engine/cuda/cuda_step.h), no GPU needed.
// IntPack, the step's int inputs on their way to the GPU: offsets 16-byte aligned and past
// each array's capacity; the written runs (extents) merged when close and split across a wide
// capacity gap, so a graph step uploads no padding; a reused pack gives the same offsets and
// copies the new contents. BuildStepInputs into one StepInputs reused across different plans
// (prefill, Quest with dense first layers, h2o mass, batch sizes up and down) gives what a
// fresh StepInputs gets, field by field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/cuda/cuda_step.h"
#include "engine/model_config.h"
#include "scheduler/step_plan.h"
#include "tests/testing/tiny_model.h"

namespace lil::cuda {
namespace {

// What an upload of the extents leaves in a buffer that held `stale`: the written runs copied.
std::vector<int32_t> Upload(const IntPack& pack, std::vector<int32_t> stale) {
  stale.resize(pack.size(), -7);
  for (const IntPack::Extent& e : pack.extents()) {
    for (int64_t i = 0; i < e.count; ++i) stale[e.offset + i] = pack.data()[e.offset + i];
  }
  return stale;
}

TEST(IntPack, OffsetsCapacitiesAndExtents) {
  IntPack pack;
  EXPECT_EQ(pack.Add({1, 2, 3}), 0);
  EXPECT_EQ(pack.Add({4}, 6), 4);     // after 3 rounded up to 4
  EXPECT_EQ(pack.Add({}), 12);        // 4 + capacity 6, rounded up to 12; empty adds nothing
  EXPECT_EQ(pack.Add({5, 6}, 10000), 12);
  EXPECT_EQ(pack.Add({7}), 10012);    // past a capacity wider than kMergeGap
  EXPECT_EQ(pack.size(), 10016);
  ASSERT_EQ(pack.extents().size(), 2u);
  EXPECT_EQ(pack.extents()[0].offset, 0);
  EXPECT_EQ(pack.extents()[0].count, 14);  // {1,2,3} .. {5,6}: the small gaps merged
  EXPECT_EQ(pack.extents()[1].offset, 10012);
  EXPECT_EQ(pack.extents()[1].count, 1);
  const std::vector<int32_t> up = Upload(pack, {});
  EXPECT_EQ(up[0], 1);
  EXPECT_EQ(up[2], 3);
  EXPECT_EQ(up[4], 4);
  EXPECT_EQ(up[12], 5);
  EXPECT_EQ(up[13], 6);
  EXPECT_EQ(up[14], -7);  // capacity padding: not uploaded
  EXPECT_EQ(up[10012], 7);
}

TEST(IntPack, ReuseKeepsOffsetsAndCopiesNewContents) {
  IntPack pack;
  pack.Add({1, 2, 3}, 8);
  pack.Add({4, 5}, 8);
  const std::vector<int32_t> first = Upload(pack, {});
  pack.Reset();
  EXPECT_EQ(pack.size(), 0);
  EXPECT_TRUE(pack.extents().empty());
  EXPECT_EQ(pack.Add({9}, 8), 0);
  EXPECT_EQ(pack.Add({8, 7, 6}, 8), 8);
  const std::vector<int32_t> second = Upload(pack, first);
  EXPECT_EQ(second[0], 9);
  EXPECT_EQ(second[8], 8);
  EXPECT_EQ(second[9], 7);
  EXPECT_EQ(second[10], 6);
}

ScheduledSeq Seq(uint64_t id, int32_t start_pos, int32_t tokens, int32_t first_page, int32_t pages) {
  ScheduledSeq s;
  s.id = RequestId{id};
  s.start_pos = start_pos;
  for (int32_t i = 0; i < tokens; ++i) s.tokens.push_back(100 + i);
  for (int32_t p = 0; p < pages; ++p) s.page_table.push_back(PageId{first_page + p});
  s.sample = true;
  return s;
}

void ExpectSame(const StepInputs& a, const StepInputs& b, int plan) {
  SCOPED_TRACE("plan " + std::to_string(plan));
  EXPECT_EQ(a.num_tokens, b.num_tokens);
  EXPECT_EQ(a.mass_size, b.mass_size);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.pos, b.pos);
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.dst_page, b.dst_page);
  EXPECT_EQ(a.dst_slot, b.dst_slot);
  EXPECT_EQ(a.seq_first, b.seq_first);
  EXPECT_EQ(a.seq_len, b.seq_len);
  EXPECT_EQ(a.cand_indptr, b.cand_indptr);
  EXPECT_EQ(a.cand_pages, b.cand_pages);
  EXPECT_EQ(a.cand_logical, b.cand_logical);
  EXPECT_EQ(a.quest_budget, b.quest_budget);
  EXPECT_EQ(a.quest_dense_layers, b.quest_dense_layers);
  EXPECT_EQ(a.layer_layout, b.layer_layout);
  EXPECT_EQ(a.touched_pages, b.touched_pages);
  EXPECT_EQ(a.touched_last_slot, b.touched_last_slot);
  EXPECT_EQ(a.mass_offset, b.mass_offset);
  EXPECT_EQ(a.logit_rows, b.logit_rows);
  EXPECT_EQ(a.first_logit_row, b.first_logit_row);
  ASSERT_EQ(a.layouts.size(), b.layouts.size());
  for (size_t l = 0; l < a.layouts.size(); ++l) {
    EXPECT_EQ(a.layouts[l].indptr, b.layouts[l].indptr) << "layout " << l;
    EXPECT_EQ(a.layouts[l].pages, b.layouts[l].pages) << "layout " << l;
    EXPECT_EQ(a.layouts[l].logical, b.layouts[l].logical) << "layout " << l;
    EXPECT_EQ(a.layouts[l].entry_seq, b.layouts[l].entry_seq) << "layout " << l;
    EXPECT_EQ(a.layouts[l].quest_seqs, b.layouts[l].quest_seqs) << "layout " << l;
    EXPECT_EQ(a.layouts[l].per_seq, b.layouts[l].per_seq) << "layout " << l;
  }
}

TEST(BuildStepInputs, ReusedInputsMatchFreshOnes) {
  testing::TinyModelOptions o;
  o.layers = 4;  // 4 query heads on 2 KV heads
  const ModelConfig c = testing::TinyConfig(o);
  constexpr int32_t kPage = 16;
  std::vector<StepPlan> plans(4);
  // 0: a 20-token prefill, a Quest decode past one dense layer (4 resident pages, a 2-page
  // budget), a decode collecting h2o mass.
  plans[0].seqs.push_back(Seq(1, 0, 20, 0, 2));
  plans[0].seqs.push_back(Seq(2, 60, 1, 10, 4));
  plans[0].seqs.back().sparse.mode = SparseMode::kQuest;
  plans[0].seqs.back().sparse.budget_tokens = 32;
  plans[0].seqs.back().sparse.dense_layers = 1;
  plans[0].seqs.push_back(Seq(3, 33, 1, 20, 3));
  plans[0].seqs.back().collect_page_mass = true;
  // 1: eight dense decodes (more of everything); 2: one decode (less); 3: plan 0 again.
  for (uint64_t s = 0; s < 8; ++s) plans[1].seqs.push_back(Seq(10 + s, 70, 1, 40 + 8 * static_cast<int32_t>(s), 5));
  plans[2].seqs.push_back(Seq(30, 5, 1, 100, 1));
  plans[3] = plans[0];
  StepInputs reused;
  for (size_t i = 0; i < plans.size(); ++i) {
    StepInputs fresh;
    BuildStepInputs(plans[i], c, kPage, &fresh);
    BuildStepInputs(plans[i], c, kPage, &reused);
    ExpectSame(fresh, reused, static_cast<int>(i));
  }
  StepInputs first;
  BuildStepInputs(plans[0], c, kPage, &first);
  EXPECT_EQ(first.num_tokens, 22);
  ASSERT_EQ(first.layouts.size(), 2u);  // layer 0 dense for all, layers 1-3 Quest for seq 1
  EXPECT_EQ(first.layer_layout, (std::vector<int32_t>{0, 1, 1, 1}));
  EXPECT_EQ(first.layouts[1].quest_seqs, std::vector<int32_t>{1});
  EXPECT_EQ(first.mass_size, 3);
  // Pages written, ascending, each with its highest slot: the prefill's pages 0 (slots 0-15)
  // and 1 (0-3), seq 2's position 60 (page 10 + 3, slot 12), seq 3's 33 (page 20 + 2, slot 1).
  EXPECT_EQ(first.touched_pages, (std::vector<int32_t>{0, 1, 13, 22}));
  EXPECT_EQ(first.touched_last_slot, (std::vector<int32_t>{15, 3, 12, 1}));
  // entry_seq (the h2o scatter's) for steps with mass only: plan 0 has it, plan 1 does not.
  EXPECT_EQ(first.layouts[0].entry_seq.size(), first.layouts[0].pages.size());
  EXPECT_EQ(first.layouts[0].entry_seq[first.layouts[0].indptr[2 * 2]], 2);  // seq 2's first entry (KV head 0)
  StepInputs dense;
  BuildStepInputs(plans[1], c, kPage, &dense);
  EXPECT_TRUE(dense.layouts[0].entry_seq.empty());
  EXPECT_EQ(dense.layouts[0].pages.size(), 8u * 2 * 5);
}

// rows_per_seq: a dense layout of a step without h2o mass gets one row per sequence holding
// exactly what each of its KV heads' rows holds without it; Quest layouts and steps with mass
// keep a row per (sequence, KV head); everything else is the same. Reused across the switch.
TEST(BuildStepInputs, RowsPerSequenceHoldEachHeadsRow) {
  testing::TinyModelOptions o;
  o.layers = 4;  // 4 query heads on 2 KV heads
  const ModelConfig c = testing::TinyConfig(o);
  const int32_t hkv = c.num_kv_heads;
  constexpr int32_t kPage = 16;
  // A prefill, a Quest decode past one dense layer, a decode with a freed page (a sparse policy's hole).
  StepPlan quest;
  quest.seqs.push_back(Seq(1, 0, 20, 0, 2));
  quest.seqs.push_back(Seq(2, 60, 1, 10, 4));
  quest.seqs.back().sparse.mode = SparseMode::kQuest;
  quest.seqs.back().sparse.budget_tokens = 32;
  quest.seqs.back().sparse.dense_layers = 1;
  quest.seqs.push_back(Seq(3, 40, 1, 20, 3));
  quest.seqs.back().page_table[1] = kNoPage;
  StepPlan mass = quest;
  mass.seqs[2].collect_page_mass = true;
  StepPlan decode;
  for (uint64_t s = 0; s < 5; ++s) decode.seqs.push_back(Seq(10 + s, 17 * static_cast<int32_t>(s), 1, 40 + 8 * static_cast<int32_t>(s), 3));
  StepInputs reused;
  int plan_index = 0;
  for (const StepPlan* plan : {&quest, &mass, &decode, &quest}) {
    SCOPED_TRACE("plan " + std::to_string(plan_index++));
    StepInputs heads, seqs;
    BuildStepInputs(*plan, c, kPage, &heads);
    BuildStepInputs(*plan, c, kPage, &seqs, /*rows_per_seq=*/true);
    BuildStepInputs(*plan, c, kPage, &reused, /*rows_per_seq=*/true);
    ExpectSame(seqs, reused, plan_index);
    ASSERT_EQ(heads.layouts.size(), seqs.layouts.size());
    EXPECT_EQ(heads.layer_layout, seqs.layer_layout);
    EXPECT_EQ(heads.tokens, seqs.tokens);
    EXPECT_EQ(heads.cand_pages, seqs.cand_pages);
    const int32_t num_seqs = static_cast<int32_t>(plan->seqs.size());
    for (size_t l = 0; l < heads.layouts.size(); ++l) {
      const RowLayout& a = heads.layouts[l];
      const RowLayout& b = seqs.layouts[l];
      EXPECT_FALSE(a.per_seq);
      const bool want = plan != &mass && a.quest_seqs.empty();
      ASSERT_EQ(b.per_seq, want) << "layout " << l;
      if (!want) {
        EXPECT_EQ(a.indptr, b.indptr);
        EXPECT_EQ(a.pages, b.pages);
        EXPECT_EQ(a.entry_seq, b.entry_seq);
        continue;
      }
      ASSERT_EQ(b.indptr.size(), static_cast<size_t>(num_seqs) + 1);
      EXPECT_EQ(b.pages.size() * hkv, a.pages.size());
      for (int32_t s = 0; s < num_seqs; ++s) {
        const std::vector<int32_t> seq_pages(b.pages.begin() + b.indptr[s], b.pages.begin() + b.indptr[s + 1]);
        const std::vector<int32_t> seq_logical(b.logical.begin() + b.indptr[s], b.logical.begin() + b.indptr[s + 1]);
        for (int32_t h = 0; h < hkv; ++h) {
          const int32_t r = s * hkv + h;
          EXPECT_EQ(std::vector<int32_t>(a.pages.begin() + a.indptr[r], a.pages.begin() + a.indptr[r + 1]), seq_pages)
              << "layout " << l << " seq " << s << " head " << h;
          EXPECT_EQ(std::vector<int32_t>(a.logical.begin() + a.indptr[r], a.logical.begin() + a.indptr[r + 1]),
                    seq_logical);
        }
      }
    }
  }
}

}  // namespace
}  // namespace lil::cuda
