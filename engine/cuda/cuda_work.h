// File: engine/cuda/cuda_work.h
// Internal to the CUDA backend (cuda_backend.cc, cuda_forward.cc): the device pointers and
// int-pack offsets of one step, carved by Execute and read by the step's kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "kernels/cuda/attention.h"

namespace lil::cuda {

struct CudaBackend::Work {
  const int32_t* ints = nullptr;  // the uploaded IntPack
  int64_t tokens, pos, seq, dst_page, dst_slot, touched_pages, touched_last, mass_offset,
      logit_rows, cand_pages, cand_logical;
  int64_t flash_tiles = 0;
  int32_t num_flash_tiles = 0;  // > 0: prefill attention through FlashPrefill
  int64_t sample_args = 0;      // [logit rows, kSampleArgs] (SampleFilteredParams::args)
  bool gpu_sampled = false;     // some row draws through SampleFiltered this step
  bool gpu_top_logprobs = false;  // ... and some row it handles wants top logprobs (PackSampleArgs)
  bool tp_greedy = false;  // tensor parallel, every row greedy on the GPU (CudaBackend::TpGreedyStep)
  struct Layout {
    int64_t indptr, pages, logical, entry_seq, q_row, cand_begin, cand_count, budget, out_begin;
    int32_t nnz, num_quest, max_cand;
    bool quest_split;  // Quest scores through quest_keys (CudaBackend::quest_split_, QuestSplitScoringPays)
    bool per_seq;  // RowLayout::per_seq: a row a sequence (PagedAttentionParams::rows_per_seq)
    SplitChoice split;
    bool wide;  // one 8-warp CTA a row, unsplit (CudaBackend::wide_rows_, WideTcRows)
  };
  std::vector<Layout> layouts;
  float *x, *qkv, *q, *delta, *gate_up, *entry_mass, *seq_mass, *logits, *logprob, *split_partial;
  float *logits_local, *logits_gather;  // world > 1: this rank's vocab slice, all ranks' slices
  float* greedy_gather;  // world > 1: [logit rows, world, 4] (GreedyParams::gather)
  bf16 *h, *attn, *act;
  bf16* xb;  // fused_norm_: x rounded to bf16, written by the o and down GEMVs
  int32_t* token_out;
  int32_t* top_ids;      // [logit rows, kMaxTopLogprobs]: SampleFiltered's top logprobs
  float* top_logprobs;
  int32_t* split_counters;
  int32_t* pages_rw;  // device copies of the layouts' pages/logical (Quest writes them)
  uint32_t* quest_keys;  // layouts with quest_split: Quest score keys (QuestSelectParams::keys)
  const int32_t* I(int64_t off) const { return ints + off; }
};

}  // namespace lil::cuda
