// File: kernels/cuda/attention.h
// Paged attention over explicit per-(sequence, KV head) page lists, bf16 KV, fp32 math: one
// kernel for prefill chunks, decode, dense and page-sparse (Quest / h2o / sink) reads. Same
// Params as the CPU reference (kernels/cpu/attention.h) except the bf16 pools and output.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/ops.h"

namespace lil::cuda {

// How the tensor-core decode kernel brings a K / V tile into shared memory (attention_tc.cu).
// kRegisters (the default since session 17): plain 16-byte loads into registers, stored one
// tile later, two stages whatever tc_stages says; cp.async into the padded rows had cost the L2
// 1.5x the sectors and read at 0.88 / 0.89 of the read ceiling (batch 16, 16k / 32k), registers
// at 0.93 / 0.94. kCpAsync: cp.async, tc_stages stages. (A TMA path, tiles as swizzled 2-D /
// 3-D tensor-map boxes on per-stage mbarriers, read at 0.83-0.84 at batch 16 / 16k against
// registers' 0.94 and was removed in session 18: docs/PERF.md.)
enum class TcTiles : int32_t { kCpAsync = 0, kRegisters = 1 };

struct PagedAttentionParams {
  const float* q;              // [num_tokens, num_heads, head_dim]
  bf16* out;                   // [num_tokens, num_heads, head_dim]
  PagedKvViewBf16 kv;          // the layer's pools (k, v)
  int32_t num_tokens = 0;
  int32_t num_heads = 0;       // a multiple of kv.num_kv_heads; the group is at most 8
  const int32_t* token_pos;    // [num_tokens]
  const int32_t* token_seq;    // [num_tokens]
  const int32_t* row_indptr;   // [num_seqs * num_kv_heads + 1], or [num_seqs + 1] with rows_per_seq
  const int32_t* row_pages;    // [nnz]
  const int32_t* row_logical;  // [nnz]
  float scale = 1.0f;
  float* page_mass = nullptr;  // optional [nnz], += (see the CPU reference)
  // Split-KV (flash-decoding): each (token, KV head) row's n entries are cut into chunks of
  // max(min_chunk_entries, ceil(n / max_splits)) entries, one CTA each; the last CTA of a row
  // to finish merges the partial (max, sum, acc) states. The split depends on device data
  // only, so a captured graph replays correctly for any page-list lengths. 0: one CTA per
  // row. Needs `partial` (SplitPartialFloats) and `counters` ([num_tokens * num_kv_heads],
  // zero at rest: the merging CTA re-zeroes them).
  int32_t min_chunk_entries = 0;
  int32_t max_splits = 1;      // grid size along the split axis, <= 128
  // Long rows (ChooseSplit's two-wave rule; 0: off): with long_chunk_entries > 0, a row of n <
  // max_splits * long_chunk_entries entries is cut by row_splits (1..max_splits) instead, into
  // chunks of max(min_chunk_entries, ceil(n / row_splits)); longer rows into max_splits chunks
  // of at least long_chunk_entries. Still device data only, so graphs keep one set of params.
  int32_t row_splits = 0;
  int32_t long_chunk_entries = 0;
  float* partial = nullptr;
  int32_t* counters = nullptr;
  // token_pos, token_seq and row_indptr are always host uploads, written before the previous
  // kernel on the stream began, so the split kernels read them (the row's shape and split)
  // before waiting on that kernel. rows_static: the row lists (row_pages, row_logical) are too
  // (not Quest selection's output): the kernel then also reads them, and prefetches its first
  // pages into the L2, before the wait.
  bool rows_static = false;
  // Run the split-KV decode on tensor cores where TcDecodeSupported (kernels/cuda/
  // attention_tc.cu; q and P rounded to bf16); else the CUDA-core kernel.
  bool tensor_cores = false;
  // cp.async stages a warp of the tensor-core kernel's cp.async path keeps, 2 or 3 (3: two tiles
  // in flight a warp, two CTAs an SM instead of three; SplitResidentCtas must be asked with the
  // same tile path and stages).
  // 3 since session 9: batch 1 4-13% less time, batch 16 equal, 8B decode steps 1.7-3.8% less.
  int32_t tc_stages = 3;
  // One row per sequence, shared by its KV heads (dense layouts without h2o mass: every head of
  // a sequence attends the same pages): row_indptr has num_seqs + 1 entries and the lists are
  // num_kv_heads times shorter than with a row per (sequence, KV head). Not with page_mass
  // (its entries are per head) nor for rows Quest selects (per head). CudaBackend builds such
  // layouts unless $LILSERVE_SEQ_ROWS=0 (RowLayout::per_seq).
  bool rows_per_seq = false;
  // The tensor-core kernel's tile path (TcTiles). CudaBackend: $LILSERVE_TC_REGS=0 for
  // kCpAsync.
  TcTiles tc_tiles = TcTiles::kRegisters;
  // Warps a CTA of the tensor-core kernel's register path: kSplitWarps, or kWideWarps for rows
  // WideTcRows picks (one CTA a row, no split). The CUDA-core kernel and the cp.async path
  // always take kSplitWarps.
  int32_t tc_warps = 4;
  // Diagnostics (gpu_attention_bench --timeline; the tensor-core kernel only): where set, thread
  // 0 of each CTA writes kAttnTimelineWords words from timeline[(blockIdx.y * gridDim.x +
  // blockIdx.x) * kAttnTimelineWords]: clock64 at the kAttnTimelinePoints points AttnPoint
  // names, then %globaltimer (ns) at its start and at its end, its row's split count, whether
  // it merged the row, its SM. A CTA past its row's split count writes nothing. Not for
  // production steps.
  uint64_t* timeline = nullptr;
};

// The points of PagedAttentionParams::timeline, in order.
enum AttnPoint : int {
  kAtStart = 0,        // the kernel's first instruction
  kAtRowKnown,         // the split located, the first entries read, the first pages' L2 prefetch sent
  kAtWaited,           // the PDL wait returned
  kAtQReady,           // q in registers (the first tile's loads went out before q's)
  kAtFirstTile,        // warp 0's first tile in shared memory
  kAtLoopDone,         // warp 0 past its last tile
  kAtWarpsDone,        // every warp's state in shared memory
  kAtCounted,          // partial stored and the row's counter bumped (an unsplit row: = kAtWarpsDone)
  kAtEnd,              // output written (the row's merging CTA), or nothing left to do
  kAttnTimelinePoints
};
inline constexpr int kAttnTimelineWords = kAttnTimelinePoints + 5;

// The row a (sequence, KV head) pair reads: RowOf(p, seq, kvh).
__host__ __device__ inline int32_t RowOf(const PagedAttentionParams& p, int32_t seq, int32_t kvh) {
  return p.rows_per_seq ? seq : seq * p.kv.num_kv_heads + kvh;
}

// Warps a CTA of the split-KV decode kernels (the tensor-core one's register path: or
// kWideWarps, PagedAttentionParams::tc_warps).
inline constexpr int kSplitWarps = 4;
inline constexpr int kWideWarps = 8;

// Entries a split CTA of a row of `nent` entries takes (PagedAttentionParams' split fields;
// min_chunk_entries > 0): chunks of max(min_chunk_entries, ceil(nent / splits)), splits being
// max_splits, or row_splits for a row shorter than the long-row length. Device data only.
__host__ __device__ inline int32_t SplitChunkEntries(int32_t min_chunk_entries, int32_t max_splits, int32_t row_splits,
                                                     int32_t long_chunk_entries, int32_t nent) {
  const int32_t splits = long_chunk_entries > 0 && nent < max_splits * long_chunk_entries ? row_splits : max_splits;
  const int32_t per = (nent + splits - 1) / splits;
  return min_chunk_entries > per ? min_chunk_entries : per;
}

// The split chosen for a step: rows = num_tokens * num_kv_heads CTAs before splitting, and
// `resident_ctas` of the kernel fit on the GPU at once (SplitResidentCtas). The split count s
// is the smallest whose last wave is at least 85% full relative to the best count up to 128
// (FlashAttention-2's wave rule); chunks hold at least 64 tokens (kMinChunkTokens), so
// short rows use fewer CTAs than the grid offers. When s <= 4 (8 or more rows a wave), rows of
// at least 2s x 4,096 tokens get 2s chunks instead (two waves: at batch 16 / 32k four splits
// read at 0.97 of the ceiling against two's 0.95, while 2,048-token rows lose with four;
// docs/PERF.md, session 20): max_splits = 2s, row_splits = s, long_chunk_entries = 4,096
// tokens of pages.
struct SplitChoice {
  int32_t min_chunk_entries = 0;
  int32_t max_splits = 1;
  int32_t row_splits = 0;
  int32_t long_chunk_entries = 0;
};
// Whether the vectorized (splittable) kernel serves this head_dim.
inline bool SplitSupported(int32_t head_dim) {
  return head_dim == 8 || head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}
SplitChoice ChooseSplit(int32_t rows, int32_t page_size, int32_t resident_ctas);
// Whether a step's tensor-core decode attention (register tiles) takes one 8-warp CTA a row,
// unsplit (PagedAttentionParams::tc_warps = 8), instead of ChooseSplit's 4-warp split: where
// the rows (tokens x KV heads) are one wave of such CTAs, one an SM (0.9 to 1 x `sms`), and the
// longest is at most kWideMaxRowTokens tokens. Then two 4-warp CTAs an SM split each row in 2,
// and each pays its own start and the merge through global memory; one CTA with the same 8
// warps merges in shared memory. Measured (session 27, batch 16 x 8 KV heads = 128 rows on 132
// SMs, docs/PERF.md): rows of 512 / 1k / 2k / 4k / 8k tokens 1.18 / 1.10 / 1.05 / 1.03 / 1.02x
// faster (Quest's selected 2,048-token rows 36.5 -> 34.7 us), while dense 32k rows, which
// ChooseSplit cuts into two waves, were 3.5% slower in 8-warp CTAs.
inline constexpr int32_t kWideMaxRowTokens = 8192;
bool WideTcRows(int32_t rows, int32_t max_row_tokens, int32_t sms);
// Few long rows (one decode token, at most kWideSplitMaxRows of them) in 8-warp CTAs too, each
// row cut into sms / rows chunks (at least 2) so the grid is one wave of such CTAs, one an SM,
// where the longest row holds at least kWideSplitMinRowTokens tokens. Measured against
// ChooseSplit's 4-warp split in two CTAs an SM (docs/PERF.md sessions 27-29, 8 KV heads on 132
// SMs). The kernel alone (`gpu_attention_bench --wide`, 4k / 16k / 32k rows): batch 1 (8 rows, 16
// chunks) 12.7 -> 10.4, 25.1 -> 22.6, 41.0 -> 38.0 us; batch 2 (16 rows, 8 chunks) 16.0 -> 14.5,
// 39.4 -> 37.3, 70.1 -> 67.3; batch 4 (32 rows, 4 chunks) 23.1 -> 22.0, 67.9 -> 67.3, 127.9 ->
// 127.2; batch 8 (64 rows, 2 chunks) 37.6 -> 37.3, 128.0 -> 127.3, 250.3 -> 248.2; batch 1's 1k
// rows slower (6.3 -> 6.9: 64-token chunks leave half of the 8 warps idle), hence the length.
// The 8B decode step: batch 1 0.5-1.0% faster from 4k (session 28), but batch 2 equal (three
// rounds: 4k +0.5%, 32k -0.3% on average), batch 4 within +-0.6% and batch 8 0.8-2.5% slower
// (session 29). The bench launches the kernel back to back under PDL, so one launch's last CTAs
// overlap the next one's first; in a step of two or more sequences the o product after the
// attention is cuBLAS's, which waits for the last CTA, and a one-wave grid of long chunks leaves
// that tail exposed. Hence batch 1 only: at most 8 rows. The chunks hold at least
// kMinChunkTokens (attention.cu), as ChooseSplit's. Graph steps key their graph on it (the split
// then stays valid as the rows grow). No choice (max_splits 1, min_chunk_entries 0) where the
// rule does not apply.
inline constexpr int32_t kWideSplitMaxRows = 8;
inline constexpr int32_t kWideSplitMinRowTokens = 4096;
SplitChoice WideSplit(int32_t rows, int32_t max_row_tokens, int32_t page_size, int32_t sms);
// A step's split into the kernel's parameters (the four fields; the workspace is the caller's).
inline void SetSplit(PagedAttentionParams& p, const SplitChoice& c) {
  p.min_chunk_entries = c.min_chunk_entries;
  p.max_splits = c.max_splits;
  p.row_splits = c.row_splits;
  p.long_chunk_entries = c.long_chunk_entries;
}
// CTAs of the vectorized kernel (or, with tensor_cores and a TcDecodeSupported shape, of the
// tensor-core one with tc_tiles / tc_stages, as PagedAttentionParams) for (head_dim, group)
// resident at once on `sms` SMs (its occupancy times the SM count); 4 * sms for head dims it
// does not serve.
int32_t SplitResidentCtas(int32_t head_dim, int32_t group, int32_t sms, bool tensor_cores = false,
                          TcTiles tc_tiles = TcTiles::kRegisters, int32_t tc_stages = 3);
// Shapes the tensor-core split-KV decode kernel serves: head_dim 64 or 128, group 1..8.
bool TcDecodeSupported(int32_t head_dim, int32_t group);
// fp32 workspace of the split partial states.
int64_t SplitPartialFloats(int32_t num_tokens, int32_t num_kv_heads, int32_t head_dim, int32_t max_splits);


// One CTA per (query token, KV head[, split]) holding the whole GQA group; its warps split
// the page list and merge their online-softmax states in shared memory. head_dim in {8, 16,
// 32, 64, 128} runs the vectorized kernel (16-byte loads, split-KV); other head_dim <= 128
// and the h2o page-mass pass run the scalar kernel (no split). group <= 8; other shapes
// return cudaErrorInvalidValue.
cudaError_t PagedAttention(const PagedAttentionParams& p, cudaStream_t stream);

// Prefill attention on tensor cores (kernels/cuda/flash_prefill.cu): one CTA per (tile,
// KV head), a tile being up to 64 / group consecutive tokens of one sequence (their 64 (token,
// query head) rows share every K/V tile read). Uses attn's q, out, kv, num_heads,
// token_pos, row_indptr / row_pages / row_logical (entries in ascending logical order, as
// dense prefill rows are) and scale; no page mass, no split. head_dim 64 or 128, group 1, 2,
// 4 or 8 (FlashPrefillSupported); otherwise cudaErrorInvalidValue. Written in session 6 and
// not yet run on a GPU: the backend does not call it until gpu_attention_test's
// FlashPrefill cases have passed (docs/GPU.md).
struct FlashPrefillParams {
  PagedAttentionParams attn;
  const int32_t* tiles = nullptr;  // [num_tiles][3]: sequence, first token, token count
  int32_t num_tiles = 0;
};
bool FlashPrefillSupported(int32_t head_dim, int32_t group);
// The tiles of a step on the host: each run of consecutive tokens of one sequence, cut every
// 64 / group tokens.
std::vector<int32_t> FlashPrefillTiles(const std::vector<int32_t>& token_seq, int32_t group);
cudaError_t FlashPrefill(const FlashPrefillParams& p, cudaStream_t stream);

}  // namespace lil::cuda
