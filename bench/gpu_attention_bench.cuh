// File: bench/gpu_attention_bench.cuh
// What the tables of gpu_attention_bench (gpu_attention_bench.cu: dense, batch-1 latency,
// split sweeps, prefill; gpu_attention_sparse.cu: Quest and sink+window) share: the
// Llama-3-8B attention shape, the page pool, one launch's device inputs and its parameters.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "kernels/cuda/attention.h"

namespace lil::bench::attention {

using lil::cuda::bf16;

constexpr int kHeads = 32, kKvHeads = 8, kDim = 128;
// Tokens per KV page: 16 (Quest's page, the server's default), or $LIL_BENCH_PAGE (a power of
// two from 16 to 256: how the dense kernel's rate depends on the contiguous run a page holds).
inline const int kPage = [] {
  const char* e = std::getenv("LIL_BENCH_PAGE");
  const int v = e != nullptr ? std::atoi(e) : 16;
  return v >= 16 && v <= 256 && (v & (v - 1)) == 0 ? v : 16;
}();
constexpr int kMaxTokens = 128;  // q and out hold this many decode tokens (the batched table's largest batch)
// The kernel the backend runs: tensor cores unless $LILSERVE_TC_DECODE=0 (the dense table
// times the CUDA-core kernel beside it either way).
inline const bool kTensorCores = [] {
  const char* e = std::getenv("LILSERVE_TC_DECODE");
  return !(e != nullptr && e[0] == '0');
}();

struct Pool {
  int32_t num_pages = 0;
  bf16* k = nullptr;
  bf16* v = nullptr;
  bf16* quest = nullptr;
  uint8_t* quest8 = nullptr;  // the same metadata in e4m3, rounded outward
  lil::cuda::PagedKvViewBf16 View(bool fp8 = false) const {
    lil::cuda::PagedKvViewBf16 view;
    view.k = k;
    view.v = v;
    view.quest = fp8 ? nullptr : quest;
    view.quest_fp8 = fp8 ? quest8 : nullptr;
    view.num_pages = num_pages;
    view.num_kv_heads = kKvHeads;
    view.page_size = kPage;
    view.head_dim = kDim;
    return view;
  }
};

// The A/B of the tensor-core kernel's cp.async stages (PagedAttentionParams::tc_stages): two
// instead of the default three, and the CUDA-core kernel: each with its own resident CTA
// count, so its own split (as the backend chooses them), into one workspace sized for any split.
inline int32_t g_target2 = 0, g_target_cc = 0;
inline float* g_partial_alt = nullptr;

// Device copies of one launch's inputs: page lists of `batch` sequences at `context`.
struct Launch {
  int32_t *pos, *seq, *indptr, *pages, *logical, *counters;
  float* partial;
  lil::cuda::SplitChoice split;
  lil::cuda::SplitChoice split2;    // with 2 stages (g_target2)
  lil::cuda::SplitChoice split_cc;  // the CUDA-core kernel (g_target_cc)
  int32_t nnz = 0;
  bool wide = false;  // 8-warp CTAs, as the backend picks them ($LILSERVE_TC_WIDE=0: never): one a row
                      // (WideTcRows), or over `split` (wide_split: WideSplit's few long rows)
  bool wide_split = false;
};

// Whether the launch runs one 8-warp CTA a row, unsplit (WideTcRows), rather than a split.
inline bool OneCtaARow(const Launch& l) { return l.wide && !l.wide_split; }

// $LILSERVE_TC_WIDE as the backend reads it: "0" never takes 8-warp CTAs.
inline const bool kWideAllowed = [] {
  const char* e = std::getenv("LILSERVE_TC_WIDE");
  return !(e != nullptr && e[0] == '0');
}();

inline int32_t* Upload(const std::vector<int32_t>& v) {
  int32_t* d = nullptr;
  CHECK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * 4));
  if (!v.empty()) CHECK(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  return d;
}

// A launch of tokens at positions `pos` of sequences `seq`: rows[s] = the logical pages
// sequence s attends (same for every KV head), tables[s] its physical pages.
inline Launch UploadLaunch(const std::vector<int32_t>& pos, const std::vector<int32_t>& seq,
                    const std::vector<std::vector<int32_t>>& tables, const std::vector<std::vector<int32_t>>& rows,
                    int32_t target_ctas) {
  const int32_t tokens = static_cast<int32_t>(pos.size());
  std::vector<int32_t> indptr{0}, pages, logical;
  for (size_t s = 0; s < tables.size(); ++s) {
    for (int32_t h = 0; h < kKvHeads; ++h) {
      for (int32_t lp : rows[s]) {
        pages.push_back(tables[s][lp]);
        logical.push_back(lp);
      }
      indptr.push_back(static_cast<int32_t>(pages.size()));
    }
  }
  Launch l;
  l.pos = Upload(pos);
  l.seq = Upload(seq);
  l.indptr = Upload(indptr);
  l.pages = Upload(pages);
  l.logical = Upload(logical);
  l.nnz = static_cast<int32_t>(pages.size());
  l.split = lil::cuda::ChooseSplit(tokens * kKvHeads, kPage, target_ctas);
  l.split2 = lil::cuda::ChooseSplit(tokens * kKvHeads, kPage, g_target2);
  l.split_cc = lil::cuda::ChooseSplit(tokens * kKvHeads, kPage, g_target_cc);
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  l.wide = kTensorCores && kWideAllowed && lil::cuda::WideTcRows(tokens * kKvHeads, static_cast<int32_t>(longest) * kPage, SmCount());
  if (kTensorCores && kWideAllowed && !l.wide) {
    const lil::cuda::SplitChoice ws = lil::cuda::WideSplit(tokens * kKvHeads, static_cast<int32_t>(longest) * kPage, kPage, SmCount());
    if (ws.min_chunk_entries > 0) {
      l.wide = l.wide_split = true;
      l.split = ws;
    }
  }
  l.counters = Upload(std::vector<int32_t>(tokens * kKvHeads, 0));
  CHECK(cudaMalloc(&l.partial, sizeof(float) * std::max<int64_t>(1, lil::cuda::SplitPartialFloats(tokens, kKvHeads, kDim, l.split.max_splits))));
  return l;
}

// One decode token per sequence, at position context - 1.
inline Launch MakeLaunch(const std::vector<std::vector<int32_t>>& tables, const std::vector<std::vector<int32_t>>& rows,
                  int32_t context, int32_t target_ctas) {
  const int32_t batch = static_cast<int32_t>(tables.size());
  std::vector<int32_t> pos(batch, context - 1), seq(batch);
  std::iota(seq.begin(), seq.end(), 0);
  return UploadLaunch(pos, seq, tables, rows, target_ctas);
}

inline lil::cuda::PagedAttentionParams Params(const Pool& pool, const Launch& l, int32_t batch, const float* q, bf16* out,
                                       bool stages2 = false) {
  lil::cuda::PagedAttentionParams p;
  p.q = q;
  p.out = out;
  p.kv = pool.View();
  p.num_tokens = batch;
  p.num_heads = kHeads;
  p.token_pos = l.pos;
  p.token_seq = l.seq;
  p.row_indptr = l.indptr;
  p.row_pages = l.pages;
  p.row_logical = l.logical;
  p.rows_static = true;  // uploaded by the host
  p.tensor_cores = kTensorCores;
  p.scale = 0.08838834764f;
  lil::cuda::SetSplit(p, OneCtaARow(l) ? lil::cuda::SplitChoice{} : l.split);
  p.tc_warps = l.wide ? lil::cuda::kWideWarps : lil::cuda::kSplitWarps;
  p.partial = l.partial;
  p.counters = l.counters;
  if (stages2) {
    p.tc_warps = lil::cuda::kSplitWarps;  // the cp.async kernel with two stages (registers take two whatever tc_stages says)
    p.tc_tiles = lil::cuda::TcTiles::kCpAsync;
    p.tc_stages = 2;
    lil::cuda::SetSplit(p, l.split2);
    p.partial = g_partial_alt;
  }
  return p;
}

// Everything the tables read: the page pool (K, V and Quest metadata of every page), q for up
// to kMaxTokens tokens and an output buffer, the shuffled physical page order, the read ceiling
// measured in this run, the backend's resident-CTA target, and the random source.
struct Bench {
  Pool pool;
  float* q = nullptr;
  bf16* out = nullptr;
  std::vector<int32_t> perm;
  double read_tbs = 0.0;
  int32_t target = 0;
  bool quick = false;
  std::mt19937 rng{7};
};

// The chunks a row of `entries` pages is cut into under split choice `s` (the kernel's
// SplitChunkEntries): what the tables print as a row's splits.
inline int32_t RowSplits(const lil::cuda::SplitChoice& s, int32_t entries) {
  if (s.min_chunk_entries <= 0 || entries <= 0) return 1;
  const int32_t chunk =
      lil::cuda::SplitChunkEntries(s.min_chunk_entries, s.max_splits, s.row_splits, s.long_chunk_entries, entries);
  return (entries + chunk - 1) / chunk;
}

// The chunks a launch's rows of `entries` entries run in (1 for one 8-warp CTA a row).
inline int32_t LaunchSplits(const Launch& l, int32_t entries) { return OneCtaARow(l) ? 1 : RowSplits(l.split, entries); }

// Sets of page tables for `batch` sequences at `context`, each set on distinct pages.
inline std::vector<std::vector<std::vector<int32_t>>> MakeSets(const Bench& b, int32_t batch, int32_t context) {
  const int32_t pages_per_seq = context / kPage;
  const int32_t per_set = pages_per_seq * batch;
  const int32_t sets = std::max(1, std::min(8, b.pool.num_pages / per_set));
  std::vector<std::vector<std::vector<int32_t>>> out_sets(sets);
  for (int32_t st = 0; st < sets; ++st) {
    for (int32_t s = 0; s < batch; ++s) {
      out_sets[st].emplace_back(b.perm.begin() + st * per_set + s * pages_per_seq,
                                b.perm.begin() + st * per_set + (s + 1) * pages_per_seq);
    }
  }
  return out_sets;
}

// One launch per set of MakeSets, every sequence attending all its pages.
inline std::vector<Launch> DenseLaunches(const Bench& b, int32_t batch, int32_t context) {
  std::vector<Launch> launches;
  for (auto& tables : MakeSets(b, batch, context)) {
    std::vector<std::vector<int32_t>> rows(batch, std::vector<int32_t>(context / kPage));
    for (auto& r : rows) std::iota(r.begin(), r.end(), 0);
    launches.push_back(MakeLaunch(tables, rows, context, b.target));
  }
  return launches;
}

// gpu_attention_sparse.cu: Quest and sink+window at 32k with a 2,048-token budget (batch 16
// and 1), their parts and A/B rows, and the 2,048-token rows' split sweep.
void SparseTables(const Bench& b);

}  // namespace lil::bench::attention
