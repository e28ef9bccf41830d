// File: engine/cuda/cuda_step.h
// The host side of one CUDA step: a StepPlan flattened into the int32 arrays the kernels
// read (token rows, KV destinations, attention page lists per layer, Quest inputs, h2o
// mass slices, logits rows), packed into one buffer so a step makes one upload.
#pragma once

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "engine/model_config.h"
#include "scheduler/step_plan.h"

namespace lil::cuda {

// Attention rows (seq * num_kv_heads + h) of one layer. Rows of sequences in Quest mode are
// sized here (min(budget, candidates) entries) and filled on the GPU by QuestSelect.
struct RowLayout {
  // Rows of page entries: one per (sequence, KV head), indptr [num_seqs * num_kv_heads + 1];
  // or, per_seq, one per sequence shared by its KV heads, indptr [num_seqs + 1] (a dense
  // layout without h2o mass, when BuildStepInputs is asked for it: PagedAttentionParams::
  // rows_per_seq).
  std::vector<int32_t> indptr, pages, logical;
  bool per_seq = false;
  std::vector<int32_t> entry_seq;   // the sequence of each entry; built for steps with h2o mass only
  std::vector<int32_t> quest_seqs;  // sequences whose rows the GPU fills in this layout
};

struct StepInputs {
  int32_t num_tokens = 0;
  std::vector<int32_t> tokens, pos, seq, dst_page, dst_slot;
  std::vector<int32_t> seq_first, seq_len;
  std::vector<int32_t> cand_indptr, cand_pages, cand_logical;  // resident pages per seq
  std::vector<int32_t> quest_budget, quest_dense_layers;       // per seq (budget 0: dense)
  std::vector<RowLayout> layouts;
  std::vector<int32_t> layer_layout;                           // [num_layers] index
  std::vector<int32_t> touched_pages, touched_last_slot;       // Quest metadata to refresh
  std::vector<int32_t> mass_offset;                            // per seq, -1: no h2o mass
  int32_t mass_size = 0;
  std::vector<int32_t> logit_rows;                             // token rows needing logits
  std::vector<int32_t> first_logit_row;                        // per seq, -1: none

  // Empties every field above, keeping the vectors' memory (a field added above belongs here).
  void Clear() {
    num_tokens = 0;
    mass_size = 0;
    for (std::vector<int32_t>* v : {&tokens, &pos, &seq, &dst_page, &dst_slot, &seq_first, &seq_len, &cand_indptr,
                                    &cand_pages, &cand_logical, &quest_budget, &quest_dense_layers, &layer_layout,
                                    &touched_pages, &touched_last_slot, &mass_offset, &logit_rows,
                                    &first_logit_row}) {
      v->clear();
    }
    layouts.clear();
    touched_scratch.clear();
  }
  // BuildStepInputs' working list of (page, slot) written, kept for its capacity.
  std::vector<std::pair<int32_t, int32_t>> touched_scratch;
};

// Fills *in for `plan`, reusing its vectors' memory (the CUDA backend keeps one StepInputs for
// all its steps). rows_per_seq: layouts with no Quest sequence in a step without h2o mass get
// one row per sequence (RowLayout::per_seq) instead of one per (sequence, KV head).
void BuildStepInputs(const StepPlan& plan, const ModelConfig& c, int32_t page_size, StepInputs* in,
                     bool rows_per_seq = false);

// Concatenates int32 arrays for one upload; Add returns the array's element offset. An array
// may be given a capacity (fixed offsets for CUDA graphs) whose padding is never written:
// extents() lists the written runs, runs less than kMergeGap elements apart merged, so a step
// uploads what it wrote in few copies (what lies between merged runs is stale and unread).
// Reused from step to step (Reset), so its buffer is not zero-filled again each step. `Alloc`
// is where the buffer lives: the CUDA backend's is page-locked (PinnedAllocator, cuda_util.h),
// so the step's copies to the GPU read it directly, with no staging copy.
template <typename Alloc = std::allocator<int32_t>>
class BasicIntPack {
 public:
  static constexpr int64_t kMergeGap = 4096;
  struct Extent {
    int64_t offset, count;
  };
  void Reset() {
    size_ = 0;
    extents_.clear();
  }
  int64_t Add(const std::vector<int32_t>& v, int64_t capacity = 0) {
    const int64_t off = size_, n = static_cast<int64_t>(v.size());
    size_ = (off + std::max(capacity, n) + 3) / 4 * 4;  // 16-byte aligned starts
    if (static_cast<int64_t>(data_.size()) < size_) data_.resize(size_);
    std::copy(v.begin(), v.end(), data_.begin() + off);
    if (n > 0) {
      if (!extents_.empty() && off - (extents_.back().offset + extents_.back().count) < kMergeGap) {
        extents_.back().count = off + n - extents_.back().offset;
      } else {
        extents_.push_back({off, n});
      }
    }
    return off;
  }
  int64_t size() const { return size_; }  // elements, padding included
  const int32_t* data() const { return data_.data(); }
  const std::vector<Extent>& extents() const { return extents_; }

 private:
  std::vector<int32_t, Alloc> data_;
  int64_t size_ = 0;
  std::vector<Extent> extents_;
};
using IntPack = BasicIntPack<>;

}  // namespace lil::cuda
