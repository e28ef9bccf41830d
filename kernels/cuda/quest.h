// File: kernels/cuda/quest.h
// Quest page selection on the GPU, per (sequence, KV head): bound scores from the bf16 (or
// e4m3, rounded outward: kernels/quest_fp8.h) min/max metadata, top-(budget-1) pages plus the
// newest, written in ascending logical order. CPU reference: kernels/cpu/quest.h (the same
// bound, summed in another order; the same tie rule: lower page first).
// Output offsets come from the host (each row keeps min(budget, candidates) entries, a
// number the host knows), so no step needs to wait for the GPU to learn list sizes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/ops.h"

namespace lil::cuda {

struct QuestSelectParams {
  const float* q;               // [*, num_heads, head_dim]; row q_row[i] is sequence i's query
  PagedKvViewBf16 kv;           // kv.quest or kv.quest_fp8 holds the metadata
  int32_t num_seqs = 0;
  int32_t num_heads = 0;
  const int32_t* q_row;         // [num_seqs]
  const int32_t* cand_begin;    // [num_seqs] first candidate of the sequence in cand_*
  const int32_t* cand_count;    // [num_seqs] candidates (resident pages, logical order)
  const int32_t* cand_pages;    // physical pages
  const int32_t* cand_logical;  // logical page indices (ascending within a sequence)
  const int32_t* budget_pages;  // [num_seqs] pages to attend, the newest included (>= 1)
  const int32_t* out_begin;     // [num_seqs * num_kv_heads] first output entry of each row
  int32_t* out_pages;           // row r gets min(budget, count) entries from out_begin[r]
  int32_t* out_logical;
  // Optional: scoring in its own kernel over (sequence, KV head, chunk of candidates) CTAs, the
  // keys of row (i, h) at keys[(i * num_kv_heads + h) * key_stride + c]. Null: each selection
  // CTA scores its own row (QuestSplitScoringPays decides).
  uint32_t* keys = nullptr;
  // >= every cand_count; required with `keys`. Without them it sizes the selection CTA's key
  // buffer (0: for kQuestMaxCandidates, 64 KiB; sized to the row, the L1 beside it grows, which
  // measured the same speed at batch 16 / 32k in session 24).
  int32_t key_stride = 0;
  // head_dim 128: the scoring kernel stages the metadata through shared memory (cp.async,
  // several batches of candidates a warp in flight, no registers held); false: register
  // loads, 4 candidates a warp in flight. gpu_attention_bench times both.
  bool score_staged = true;
  // Candidates a scoring CTA takes; 0: sized so the grid is about one wave (tests force a
  // size, a multiple of 32, to give each warp several groups of 32).
  int32_t score_chunk = 0;
  // The attention that reads the rows next: the selection CTA sends the first
  // `prefetch_entries` entries of each chunk that attention's split CTAs take (attend_split, as
  // SetSplit gives PagedAttentionParams; min_chunk_entries 0: one chunk a row) to the L2 as it
  // writes them, so their K / V are on their way while this kernel ends and the attention
  // starts (entry cb + w + Wi of a chunk goes to warp w of the attention's W-warp CTA, so 2W
  // are every warp's first two pages: QuestPrefetchEntries). 0: none; nor where
  // 2 * prefetch_entries exceeds the chunk (short chunks: batch 1).
  SplitChoice attend_split;
  int32_t prefetch_entries = 0;
  // Benchmarks: `keys` already hold this step's scores, so only the selection kernel runs
  // (gpu_attention_bench times the two kernels apart this way).
  bool keys_ready = false;
  // Diagnostics (gpu_attention_bench --sparse's timeline): where set, thread 0 of selection CTA
  // (s, h) writes kQuestTimelineWords words from timeline[(h * num_seqs + s) * kQuestTimelineWords]:
  // clock64 at kQuestTimelinePoints points (0 its start, 1 after the PDL wait, 2 the keys
  // complete (scored or loaded), 3 the threshold found, 4 the compaction's scan done, 5 thread 0's
  // outputs written, 6 every thread's), then %globaltimer (ns) at its start and at its end, then
  // the threshold search's passes, then its SM. Not for production steps (a barrier more).
  uint64_t* timeline = nullptr;
};
inline constexpr int kQuestTimelinePoints = 7;
inline constexpr int kQuestTimelineWords = kQuestTimelinePoints + 4;

// Candidates per sequence are limited to kQuestMaxCandidates (scores live in shared memory:
// 64 KiB), GQA groups to kMaxQuestGroup.
inline constexpr int32_t kQuestMaxCandidates = 16384;
inline constexpr int32_t kMaxQuestGroup = 8;
// The backend's QuestSelectParams::prefetch_entries for an attention of `warps`-warp CTAs
// (PagedAttentionParams::tc_warps): each warp's first two pages. gpu_attention_bench --sparse
// sweeps it at batch 16 / 32k (best of 3 rounds, two runs, us). Session 26, 4-warp split CTAs:
// bf16 0: 81.3 / 81.5, 4: 80.8 / 81.1, 8: 80.3 / 80.7, 16: 80.8 / 81.2, 32: 82.6 / 83.0, 64:
// 87.2 / 87.6 (e4m3 73.0 / 73.4 at 0, 72.4 / 72.6 at 8). Session 27, one 8-warp CTA a row: bf16
// 0: 76.0 / 75.9, 8: 76.1 / 75.9, 16: 75.7 / 75.7, 32: 76.1 / 76.0, 64: 77.4 / 77.2 (e4m3 67.4 at
// 16 against 67.8-68.0 at 8). Past two a warp the pages fetched early are evicted before their
// warps get to them and the prefetches compete with the attention's own stream.
inline constexpr int32_t QuestPrefetchEntries(int32_t warps) { return 2 * warps; }
cudaError_t QuestSelect(const QuestSelectParams& p, cudaStream_t stream);

// Whether the split scoring (QuestSelectParams::keys) should serve `rows` (sequences x KV
// heads) this step on the current GPU. Not where bf16 rows fill one wave of selection CTAs
// (one an SM, rows in [0.9, 1] x SMs): each CTA then scores its own row with the whole GPU
// busy, which saves the scoring kernel's boundary and its keys' round trip through the L2
// (batch 16 / 32k, 8 KV heads, 128 rows on 132 SMs: 85.3 us split, 81.9-82.1 not, in one run;
// the 8B step at 16k / batch 16 7.35-7.36 ms against 7.43-7.48 split: docs/PERF.md, session 23). Fewer rows leave SMs idle (batch 4 at 16k was 10% slower), more need a second
// wave of whole rows, and e4m3 rows (half the bytes) were faster split (71.7 against 74.5 us).
bool QuestSplitScoringPays(int32_t rows, bool fp8);

}  // namespace lil::cuda
