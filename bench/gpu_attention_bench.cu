// File: bench/gpu_attention_bench.cu
// Decode attention alone on the GPU, Llama-3-8B heads (32 query / 8 KV heads, head_dim 128,
// 16-token pages): dense paged attention at batch 1 and 16 over 4k-32k contexts, and Quest
// (2,048-token budget) and sink+window page lists at 32k, each beside the HBM read
// bandwidth measured by this program in the same run (a streaming sum over 4 GiB). Every
// timed launch reads a different set of pages (rotated past 4x the L2), and page tables are
// shuffled as a long-running server's would be. A/B rows: the tensor-core kernel with two
// cp.async stages (LILSERVE_TC_STAGES=2) beside the default three, Quest with e4m3 metadata
// (LILSERVE_QUEST_FP8=1) and the overlap of its choice with bf16's, the 2,048-token rows cut
// into other split counts; batch 1 at 1k (the 8B batch-1 step's latency-bound shape) with the
// split chunk swept for both kernels. Then prefill attention of one 1k-8k prompt: the
// tensor-core flash kernel against the per-token kernel. Prints Markdown tables.
// --cluster-merge: only the batch-1 / 1k experiment with each row's splits merged through a
// thread-block cluster (PagedAttentionParams::cluster_merge) beside the global merge.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/quest.h"
#include "bench/gpu_bench_util.cuh"

namespace {

using lil::cuda::bf16;
using lil::bench::FillKernel;
using lil::bench::MedianMs;

constexpr int kHeads = 32, kKvHeads = 8, kDim = 128, kPage = 16;
// The kernel the backend runs: tensor cores unless $LILSERVE_TC_DECODE=0 (the dense table
// times the CUDA-core kernel beside it either way).
const bool kTensorCores = [] {
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
int32_t g_target2 = 0, g_target_cc = 0;
float* g_partial_alt = nullptr;

// Device copies of one launch's inputs: page lists of `batch` sequences at `context`.
struct Launch {
  int32_t *pos, *seq, *indptr, *pages, *logical, *counters;
  float* partial;
  lil::cuda::SplitChoice split;
  lil::cuda::SplitChoice split2;    // with 2 stages (g_target2)
  lil::cuda::SplitChoice split_cc;  // the CUDA-core kernel (g_target_cc)
  int32_t nnz = 0;
};

int32_t* Upload(const std::vector<int32_t>& v) {
  int32_t* d = nullptr;
  CHECK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * 4));
  if (!v.empty()) CHECK(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  return d;
}

// A launch of tokens at positions `pos` of sequences `seq`: rows[s] = the logical pages
// sequence s attends (same for every KV head), tables[s] its physical pages.
Launch UploadLaunch(const std::vector<int32_t>& pos, const std::vector<int32_t>& seq,
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
  l.counters = Upload(std::vector<int32_t>(tokens * kKvHeads, 0));
  CHECK(cudaMalloc(&l.partial, sizeof(float) * std::max<int64_t>(1, lil::cuda::SplitPartialFloats(tokens, kKvHeads, kDim, l.split.max_splits))));
  return l;
}

// One decode token per sequence, at position context - 1.
Launch MakeLaunch(const std::vector<std::vector<int32_t>>& tables, const std::vector<std::vector<int32_t>>& rows,
                  int32_t context, int32_t target_ctas) {
  const int32_t batch = static_cast<int32_t>(tables.size());
  std::vector<int32_t> pos(batch, context - 1), seq(batch);
  std::iota(seq.begin(), seq.end(), 0);
  return UploadLaunch(pos, seq, tables, rows, target_ctas);
}

lil::cuda::PagedAttentionParams Params(const Pool& pool, const Launch& l, int32_t batch, const float* q, bf16* out,
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
  p.min_chunk_entries = l.split.min_chunk_entries;
  p.max_splits = l.split.max_splits;
  p.partial = l.partial;
  p.counters = l.counters;
  if (stages2) {
    p.tc_stages = 2;
    p.min_chunk_entries = l.split2.min_chunk_entries;
    p.max_splits = l.split2.max_splits;
    p.partial = g_partial_alt;
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const bool cluster_only = argc > 1 && std::string(argv[1]) == "--cluster-merge";
  const int sms = lil::bench::SmCount();
  const int32_t target = lil::cuda::SplitResidentCtas(kDim, kHeads / kKvHeads, sms, kTensorCores);
  std::printf("split-KV: %d resident CTAs (%d SMs)\n", target, sms);
  g_target2 = lil::cuda::SplitResidentCtas(kDim, kHeads / kKvHeads, sms, true, 2);
  std::printf("split-KV, tensor cores with 2 cp.async stages (LILSERVE_TC_STAGES=2): %d resident CTAs\n", g_target2);
  g_target_cc = lil::cuda::SplitResidentCtas(kDim, kHeads / kKvHeads, sms, false);
  std::printf("split-KV, CUDA-core kernel (one-token steps): %d resident CTAs\n", g_target_cc);
  CHECK(cudaMalloc(&g_partial_alt, sizeof(float) * lil::cuda::SplitPartialFloats(16, kKvHeads, kDim, 128)));
  const double read_tbs = lil::bench::PrintReadTbs();

  // One pool of pages, big enough that each timed launch reads pages no other recent launch
  // touched: >= 1 GiB of KV per rotation set, the L2 is ~50-60 MB.
  const size_t pool_bytes_target = size_t{6} << 30;
  const size_t page_bytes = size_t{kKvHeads} * kPage * kDim * 2 * 2;  // K + V
  Pool pool;
  pool.num_pages = static_cast<int32_t>(pool_bytes_target / page_bytes);
  const size_t elems = static_cast<size_t>(pool.num_pages) * kKvHeads * kPage * kDim;
  CHECK(cudaMalloc(&pool.k, elems * 2));
  CHECK(cudaMalloc(&pool.v, elems * 2));
  CHECK(cudaMalloc(&pool.quest, static_cast<size_t>(pool.num_pages) * kKvHeads * 2 * kDim * 2));
  CHECK(cudaMalloc(&pool.quest8, static_cast<size_t>(pool.num_pages) * kKvHeads * 2 * kDim));
  FillKernel<<<sms * 8, 256>>>(pool.k, elems, 1);
  FillKernel<<<sms * 8, 256>>>(pool.v, elems, 2);
  {  // Quest metadata of every page
    std::vector<int32_t> all(pool.num_pages), last(pool.num_pages, kPage - 1);
    std::iota(all.begin(), all.end(), 0);
    int32_t* d_all = Upload(all);
    int32_t* d_last = Upload(last);
    CHECK(lil::cuda::QuestMeta({pool.View(), d_all, d_last, pool.num_pages}, nullptr));
    CHECK(lil::cuda::QuestMeta({pool.View(true), d_all, d_last, pool.num_pages}, nullptr));
    CHECK(cudaDeviceSynchronize());
  }
  std::mt19937 rng(7);
  std::vector<int32_t> perm(pool.num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);

  float* q = nullptr;
  bf16* out = nullptr;
  CHECK(cudaMalloc(&q, sizeof(float) * 16 * kHeads * kDim));
  CHECK(cudaMalloc(&out, sizeof(bf16) * 16 * kHeads * kDim));
  FillKernel<<<64, 256>>>(out, 16 * kHeads * kDim, 3);
  {
    std::vector<float> hq(16 * kHeads * kDim);
    for (float& x : hq) x = std::uniform_real_distribution<float>(-1, 1)(rng);
    CHECK(cudaMemcpy(q, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
  }

  // Sets of page tables for `batch` sequences at `context`, each set on distinct pages.
  auto make_sets = [&](int32_t batch, int32_t context) {
    const int32_t pages_per_seq = context / kPage;
    const int32_t per_set = pages_per_seq * batch;
    const int32_t sets = std::max(1, std::min(8, pool.num_pages / per_set));
    std::vector<std::vector<std::vector<int32_t>>> out_sets(sets);
    for (int32_t st = 0; st < sets; ++st) {
      for (int32_t s = 0; s < batch; ++s) {
        std::vector<int32_t> table(perm.begin() + st * per_set + s * pages_per_seq,
                                   perm.begin() + st * per_set + (s + 1) * pages_per_seq);
        out_sets[st].push_back(table);
      }
    }
    return out_sets;
  };

  std::printf("## Dense paged decode attention (32/8 heads, d 128, 16-token pages)\n\n");
  std::printf("| batch | context | KV MiB | time us | achieved TB/s | read TB/s | ratio | splits | CUDA-core kernel us | ratio "
              "| 2 stages us | ratio | splits |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<int32_t> contexts = quick ? std::vector<int32_t>{4096} : std::vector<int32_t>{4096, 8192, 16384, 32768};
  for (int32_t batch : cluster_only ? std::vector<int32_t>{} : std::vector<int32_t>{1, 16}) {
    for (int32_t context : contexts) {
      auto sets = make_sets(batch, context);
      std::vector<Launch> launches;
      for (auto& tables : sets) {
        std::vector<std::vector<int32_t>> rows(batch);
        for (auto& r : rows) {
          r.resize(context / kPage);
          std::iota(r.begin(), r.end(), 0);
        }
        launches.push_back(MakeLaunch(tables, rows, context, target));
      }
      auto time_kernel = [&](bool tensor_cores, bool stages2 = false) {
        return MedianMs([&](int i) {
          const Launch& l = launches[i % launches.size()];
          lil::cuda::PagedAttentionParams ap = Params(pool, l, batch, q, out, stages2);
          ap.tensor_cores = tensor_cores;
          if (!tensor_cores) {  // its own split, as the backend gives one-token steps
            ap.min_chunk_entries = l.split_cc.min_chunk_entries;
            ap.max_splits = l.split_cc.max_splits;
            ap.partial = g_partial_alt;
          }
          CHECK(lil::cuda::PagedAttention(ap, nullptr));
        }, 20, 9);
      };
      const double ms = time_kernel(kTensorCores), cuda_core_ms = time_kernel(false), s2_ms = time_kernel(true, true);
      const lil::cuda::SplitChoice s2 = launches[0].split2;
      const double bytes = static_cast<double>(batch) * context * kKvHeads * kDim * 2 * 2;
      const double tbs = bytes / (ms * 1e-3) / 1e12, cuda_core_tbs = bytes / (cuda_core_ms * 1e-3) / 1e12;
      std::printf("| %d | %d | %.0f | %.1f | %.3f | %.3f | %.2f | %d | %.1f | %.2f | %.1f | %.2f | %d |\n", batch, context,
                  bytes / (1 << 20), ms * 1e3, tbs, read_tbs, tbs / read_tbs,
                  launches[0].split.min_chunk_entries > 0 ? launches[0].split.max_splits : 1, cuda_core_ms * 1e3,
                  cuda_core_tbs / read_tbs, s2_ms * 1e3, bytes / (s2_ms * 1e-3) / 1e12 / read_tbs,
                  s2.min_chunk_entries > 0 ? s2.max_splits : 1);
    }
  }

  // Batch 1 at 1k, the 8B batch-1 step's shape: 4 MB of KV, so the time is latency (the step's
  // attention costs ~14.5 us a layer, docs/PERF.md session 10). The chunk a split CTA reads
  // (min_chunk_entries pages, splits = 64 / chunk) swept for both kernels; the CUDA-core kernel
  // is what one-token steps run, the backend's choice is 4 pages. 64 page sets rotate (256 MB,
  // past the L2), as the step reads a layer's KV from HBM.
  {
    const int32_t context = 1024, npages = context / kPage, nsets = 64;
    std::vector<Launch> sets;
    for (int32_t st = 0; st < nsets; ++st) {
      std::vector<int32_t> table(perm.begin() + st * npages, perm.begin() + (st + 1) * npages), all(npages);
      std::iota(all.begin(), all.end(), 0);
      sets.push_back(MakeLaunch({table}, {all}, context, g_target_cc));
    }
    if (!cluster_only) {
      std::printf("\n## Batch 1, 1k context: the split chunk (latency; the backend's choice: 4 pages, 16 splits)\n\n");
      std::printf("| chunk pages | splits | CTAs | CUDA-core kernel us | tensor-core kernel us |\n|---|---|---|---|---|\n");
      for (int32_t chunk : {1, 2, 4, 8, 16, 64}) {
        double us[2];
        for (int tc = 0; tc < 2; ++tc) {
          us[tc] = 1e3 * MedianMs([&](int i) {
            const Launch& l = sets[i % nsets];
            lil::cuda::PagedAttentionParams ap = Params(pool, l, 1, q, out);
            ap.tensor_cores = tc == 1;
            ap.min_chunk_entries = chunk;
            ap.max_splits = npages / chunk;
            ap.partial = g_partial_alt;
            CHECK(lil::cuda::PagedAttention(ap, nullptr));
          }, 20, 9);
        }
        std::printf("| %d | %d | %d | %.1f | %.1f |\n", chunk, npages / chunk, kKvHeads * (npages / chunk), us[0], us[1]);
      }
    }
    // Experiment (PagedAttentionParams::cluster_merge): the CUDA-core kernel with each row's
    // splits as one thread-block cluster, merged through distributed shared memory.
    if (cluster_only) {
      std::printf("\n## Batch 1, 1k context: splits merged through a cluster (experiment)\n\n"
                  "| chunk pages | splits = cluster size | CUDA-core kernel, global merge us | cluster merge us |\n"
                  "|---|---|---|---|\n");
    }
    for (int32_t chunk : cluster_only ? std::vector<int32_t>{4, 8, 16} : std::vector<int32_t>{}) {
      double us[2];
      for (int cl = 0; cl < 2; ++cl) {
        us[cl] = 1e3 * MedianMs([&](int i) {
          const Launch& l = sets[i % nsets];
          lil::cuda::PagedAttentionParams ap = Params(pool, l, 1, q, out);
          ap.tensor_cores = false;
          ap.min_chunk_entries = chunk;
          ap.max_splits = npages / chunk;
          ap.partial = g_partial_alt;
          ap.cluster_merge = cl == 1;
          CHECK(lil::cuda::PagedAttention(ap, nullptr));
        }, 20, 9);
      }
      // Both merges on one page set: the outputs must agree to bf16 rounding.
      std::vector<bf16> got[2];
      for (int cl = 0; cl < 2; ++cl) {
        lil::cuda::PagedAttentionParams ap = Params(pool, sets[0], 1, q, out);
        ap.tensor_cores = false;
        ap.min_chunk_entries = chunk;
        ap.max_splits = npages / chunk;
        ap.partial = g_partial_alt;
        ap.cluster_merge = cl == 1;
        CHECK(lil::cuda::PagedAttention(ap, nullptr));
        CHECK(cudaDeviceSynchronize());
        got[cl].resize(kHeads * kDim);
        CHECK(cudaMemcpy(got[cl].data(), out, sizeof(bf16) * got[cl].size(), cudaMemcpyDeviceToHost));
      }
      float worst = 0.0f;
      for (size_t i = 0; i < got[0].size(); ++i) {
        worst = std::max(worst, std::fabs(__bfloat162float(got[0][i]) - __bfloat162float(got[1][i])));
      }
      std::printf("| %d | %d | %.1f | %.1f (max abs diff %.2g) |\n", chunk, npages / chunk, us[0], us[1], worst);
    }
  }
  if (cluster_only) return 0;

  // Batch 16 at 16k / 32k, the tensor-core kernel's split count swept: the dense table's
  // ratio climbs with context (a fixed cost per launch: the first loads' latency, the slowest
  // CTA, the merge), so this asks whether more, shorter splits hide it. The backend's choice
  // is the dense table's "splits" column.
  if (!quick) {
    std::printf("\n## Batch 16: the tensor-core kernel's split count (the backend's choice: the dense table's)\n\n");
    std::printf("| context | splits | CTAs | time us | of read |\n|---|---|---|---|---|\n");
    for (int32_t context : {16384, 32768}) {
      auto sets = make_sets(16, context);
      std::vector<Launch> launches;
      for (auto& tables : sets) {
        std::vector<std::vector<int32_t>> rows(16);
        for (auto& r : rows) {
          r.resize(context / kPage);
          std::iota(r.begin(), r.end(), 0);
        }
        launches.push_back(MakeLaunch(tables, rows, context, target));
      }
      const int32_t npages = context / kPage;
      const double bytes = 16.0 * context * kKvHeads * kDim * 2 * 2;
      for (int32_t splits : {1, 2, 3, 4, 6, 8}) {
        const double ms = MedianMs([&](int i) {
          const Launch& l = launches[i % launches.size()];
          lil::cuda::PagedAttentionParams ap = Params(pool, l, 16, q, out);
          ap.tensor_cores = true;
          ap.min_chunk_entries = splits == 1 ? 0 : (npages + splits - 1) / splits;
          ap.max_splits = splits;
          ap.partial = g_partial_alt;
          CHECK(lil::cuda::PagedAttention(ap, nullptr));
        }, 20, 9);
        std::printf("| %d | %d | %d | %.1f | %.2f |\n", context, splits, 16 * kKvHeads * splits, ms * 1e3,
                    bytes / (ms * 1e-3) / 1e12 / read_tbs);
      }
    }
  }

  // Quest and sink+window at 32k, budget 2,048 tokens (128 pages), batch 16 (and 1).
  std::printf("\n## Sparse decode at 32k context, 2,048-token budget\n\n");
  std::printf("| batch | mode | time us | dense us | speedup | byte floor us | vs floor |\n|---|---|---|---|---|---|---|\n");
  const int32_t context = quick ? 8192 : 32768, budget_pages = 128;
  std::string split_table;
  for (int32_t batch : {16, 1}) {
    auto sets = make_sets(batch, context);
    const int32_t pages_per_seq = context / kPage;
    std::vector<Launch> dense, window, quest;
    for (auto& tables : sets) {
      std::vector<std::vector<int32_t>> all(batch), sw(batch);
      for (int32_t s = 0; s < batch; ++s) {
        all[s].resize(pages_per_seq);
        std::iota(all[s].begin(), all[s].end(), 0);
        for (int32_t lp = 0; lp < 4; ++lp) sw[s].push_back(lp);  // 64 sink tokens
        for (int32_t lp = pages_per_seq - (budget_pages - 4); lp < pages_per_seq; ++lp) sw[s].push_back(lp);
      }
      dense.push_back(MakeLaunch(tables, all, context, target));
      window.push_back(MakeLaunch(tables, sw, context, target));
      // Quest: rows sized to the budget, filled by QuestSelect from all resident pages.
      std::vector<std::vector<int32_t>> budget_rows(batch, std::vector<int32_t>(budget_pages, 0));
      Launch ql = MakeLaunch(tables, budget_rows, context, target);
      quest.push_back(ql);
    }
    // Quest candidate inputs, per set: the whole table.
    struct QuestIn {
      int32_t *q_row, *cand_begin, *cand_count, *cand_pages, *cand_logical, *budget, *out_begin;
    };
    std::vector<QuestIn> qins;
    for (auto& tables : sets) {
      std::vector<int32_t> q_row(batch), cb(batch), cn(batch, pages_per_seq), cp, cl, bud(batch, budget_pages), ob;
      for (int32_t s = 0; s < batch; ++s) {
        q_row[s] = s;
        cb[s] = s * pages_per_seq;
        for (int32_t lp = 0; lp < pages_per_seq; ++lp) {
          cp.push_back(tables[s][lp]);
          cl.push_back(lp);
        }
        for (int32_t h = 0; h < kKvHeads; ++h) ob.push_back((s * kKvHeads + h) * budget_pages);
      }
      qins.push_back({Upload(q_row), Upload(cb), Upload(cn), Upload(cp), Upload(cl), Upload(bud), Upload(ob)});
    }

    // Score keys for the split scoring (QuestSelectParams::keys), one row per (sequence, KV head).
    uint32_t* score_keys = nullptr;
    CHECK(cudaMalloc(&score_keys, sizeof(uint32_t) * batch * kKvHeads * pages_per_seq));
    bool split_scoring = true, attend = true;
    bool score_staged = true, fp8 = false, keys_ready = false, stages2 = false;
    auto run = [&](std::vector<Launch>& ls, bool select) {
      return MedianMs([&](int i) {
        const size_t k = i % ls.size();
        if (select) {
          const QuestIn& in = qins[k];
          lil::cuda::QuestSelectParams qp;
          qp.q = q;
          qp.kv = pool.View(fp8);
          qp.num_seqs = batch;
          qp.num_heads = kHeads;
          qp.q_row = in.q_row;
          qp.cand_begin = in.cand_begin;
          qp.cand_count = in.cand_count;
          qp.cand_pages = in.cand_pages;
          qp.cand_logical = in.cand_logical;
          qp.budget_pages = in.budget;
          qp.out_begin = in.out_begin;
          qp.out_pages = ls[k].pages;
          qp.out_logical = ls[k].logical;
          if (split_scoring) {
            qp.keys = score_keys;
            qp.key_stride = pages_per_seq;
            qp.score_staged = score_staged;
            qp.keys_ready = keys_ready;
          }
          CHECK(lil::cuda::QuestSelect(qp, nullptr));
        }
        if (!attend) return;
        lil::cuda::PagedAttentionParams ap = Params(pool, ls[k], batch, q, out, stages2);
        ap.rows_static = !select;  // Quest's rows come from the selection kernel
        CHECK(lil::cuda::PagedAttention(ap, nullptr));
      }, 10, 7);
    };
    const double dense_ms = run(dense, false);
    const double sw_ms = run(window, false);
    const double quest_ms = run(quest, true);  // the backend's default: scoring split over CTAs
    // The parts: the selected rows are left in `quest` by the runs above, so the attention
    // over them alone is the attend part.
    const double quest_attend_ms = run(quest, false);
    attend = false;
    const double quest_select_ms = run(quest, true);
    keys_ready = true;  // the keys of the runs above: the selection kernel alone
    const double select_alone_ms = run(quest, true);
    keys_ready = false;

    score_staged = false;
    const double quest_select_regs_ms = run(quest, true);
    score_staged = true;
    split_scoring = false;
    const double quest_select_one_ms = run(quest, true);
    attend = true;
    const double quest_one_ms = run(quest, true);
    split_scoring = true;
    fp8 = true;  // e4m3 metadata (LILSERVE_QUEST_FP8=1)
    const double quest_fp8_ms = run(quest, true);
    attend = false;
    const double quest_fp8_select_ms = run(quest, true);
    attend = true;
    // How many of the pages chosen from bf16 metadata the e4m3 bounds also choose (set 0; on
    // this random data: it says how much the looser bounds move the choice, not its quality).
    auto chosen = [&](bool use_fp8) {
      fp8 = use_fp8;
      attend = false;
      run(quest, true);  // leaves every set's selection in its rows
      attend = true;
      std::vector<int32_t> rows(quest[0].nnz);
      CHECK(cudaMemcpy(rows.data(), quest[0].pages, rows.size() * 4, cudaMemcpyDeviceToHost));
      return rows;
    };
    const std::vector<int32_t> sel_bf16 = chosen(false), sel_fp8 = chosen(true);
    fp8 = false;
    stages2 = true;  // the attention with 2 cp.async stages (LILSERVE_TC_STAGES=2)
    const double sw2_ms = run(window, false), quest2_attend_ms = run(quest, false), quest2_ms = run(quest, true);
    stages2 = false;
    int64_t same = 0;
    for (size_t r = 0; r < sel_bf16.size(); r += budget_pages) {
      std::vector<int32_t> a(sel_bf16.begin() + r, sel_bf16.begin() + r + budget_pages),
          b(sel_fp8.begin() + r, sel_fp8.begin() + r + budget_pages);
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      std::vector<int32_t> both;
      std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
      same += static_cast<int64_t>(both.size());
    }
    CHECK(cudaFree(score_keys));
    const double kv_sel = static_cast<double>(batch) * budget_pages * kPage * kKvHeads * kDim * 2 * 2;
    const double meta = static_cast<double>(batch) * pages_per_seq * kKvHeads * 2 * kDim * 2;
    const double floor_sw = kv_sel / (read_tbs * 1e12) * 1e6, floor_q = (kv_sel + meta) / (read_tbs * 1e12) * 1e6;
    std::printf("| %d | dense | %.1f | %.1f | 1.00x | %.1f | %.2fx |\n", batch, dense_ms * 1e3, dense_ms * 1e3,
                static_cast<double>(batch) * context * kKvHeads * kDim * 4 / (read_tbs * 1e12) * 1e6,
                dense_ms * 1e3 / (static_cast<double>(batch) * context * kKvHeads * kDim * 4 / (read_tbs * 1e12) * 1e6));
    std::printf("| %d | sink+window | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch, sw_ms * 1e3, dense_ms * 1e3,
                dense_ms / sw_ms, floor_sw, sw_ms * 1e3 / floor_sw);
    std::printf("| %d | quest (score+select+attend) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch, quest_ms * 1e3,
                dense_ms * 1e3, dense_ms / quest_ms, floor_q, quest_ms * 1e3 / floor_q);
    const double floor_meta = meta / (read_tbs * 1e12) * 1e6;
    std::printf("| %d | quest: score+select alone | %.1f | | | %.1f (metadata) | %.2fx |\n", batch,
                quest_select_ms * 1e3, floor_meta, quest_select_ms * 1e3 / floor_meta);
    std::printf("| %d | quest: selection kernel alone (keys ready) | %.1f | | | | |\n", batch, select_alone_ms * 1e3);

    std::printf("| %d | quest: score+select alone, metadata through registers (not staged) | %.1f | | | %.1f (metadata) | %.2fx |\n",
                batch, quest_select_regs_ms * 1e3, floor_meta, quest_select_regs_ms * 1e3 / floor_meta);
    std::printf("| %d | quest: attend alone (selected pages) | %.1f | | | %.1f | %.2fx |\n", batch,
                quest_attend_ms * 1e3, floor_sw, quest_attend_ms * 1e3 / floor_sw);
    std::printf("| %d | quest, scoring in the selection CTA (LILSERVE_QUEST_SPLIT=0) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n",
                batch, quest_one_ms * 1e3, dense_ms * 1e3, dense_ms / quest_one_ms, floor_q, quest_one_ms * 1e3 / floor_q);
    std::printf("| %d | quest, LILSERVE_QUEST_SPLIT=0: score+select alone | %.1f | | | %.1f (metadata) | %.2fx |\n", batch,
                quest_select_one_ms * 1e3, floor_meta, quest_select_one_ms * 1e3 / floor_meta);
    const double floor_q8 = (kv_sel + meta / 2) / (read_tbs * 1e12) * 1e6, floor_meta8 = floor_meta / 2;
    std::printf("| %d | quest, e4m3 metadata (LILSERVE_QUEST_FP8=1) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                quest_fp8_ms * 1e3, dense_ms * 1e3, dense_ms / quest_fp8_ms, floor_q8, quest_fp8_ms * 1e3 / floor_q8);
    std::printf("| %d | quest, e4m3: score+select alone | %.1f | | | %.1f (metadata) | %.2fx |\n", batch,
                quest_fp8_select_ms * 1e3, floor_meta8, quest_fp8_select_ms * 1e3 / floor_meta8);
    std::printf("| %d | quest, e4m3: pages also chosen with bf16 metadata | %.1f%% | | | | |\n", batch,
                100.0 * same / std::max<size_t>(1, sel_bf16.size()));
    std::printf("| %d | sink+window, 2 stages (LILSERVE_TC_STAGES=2) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                sw2_ms * 1e3, dense_ms * 1e3, dense_ms / sw2_ms, floor_sw, sw2_ms * 1e3 / floor_sw);
    std::printf("| %d | quest: attend alone, 2 stages | %.1f | | | %.1f | %.2fx |\n", batch, quest2_attend_ms * 1e3,
                floor_sw, quest2_attend_ms * 1e3 / floor_sw);
    std::printf("| %d | quest, 2 stages | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch, quest2_ms * 1e3,
                dense_ms * 1e3, dense_ms / quest2_ms, floor_q, quest2_ms * 1e3 / floor_q);
    // The attend part's split: the sink+window rows (128 pages each, static) cut into S chunks;
    // printed after this table.
    if (batch == 16) {
      const int32_t max_s = 16;
      float* partial = nullptr;
      CHECK(cudaMalloc(&partial, sizeof(float) * lil::cuda::SplitPartialFloats(batch, kKvHeads, kDim, max_s)));
      char line[256];
      std::snprintf(line, sizeof(line), "| %d | backend's choice: %d | %d | %.1f | %.1f | %.2fx |\n", batch,
                    window[0].split.max_splits, batch * kKvHeads * window[0].split.max_splits, sw_ms * 1e3, floor_sw,
                    sw_ms * 1e3 / floor_sw);
      split_table += line;
      for (int32_t splits : {2, 4, 6, 8, 12, 16}) {
        const double ms = MedianMs([&](int i) {
          const Launch& l = window[i % window.size()];
          lil::cuda::PagedAttentionParams ap = Params(pool, l, batch, q, out);
          ap.min_chunk_entries = 1;
          ap.max_splits = splits;
          ap.partial = partial;
          CHECK(lil::cuda::PagedAttention(ap, nullptr));
        }, 10, 7);
        std::snprintf(line, sizeof(line), "| %d | %d (%d) | %d | %.1f | %.1f | %.2fx |\n", batch, splits,
                      (budget_pages + splits - 1) / splits, batch * kKvHeads * splits, ms * 1e3, floor_sw, ms * 1e3 / floor_sw);
        split_table += line;
      }
      CHECK(cudaFree(partial));
    }
  }

  std::printf("\n## The 2,048-token rows' split (sink+window rows, batch 16: the Quest attend part's shape)\n\n");
  std::printf("| batch | splits (chunk pages) | CTAs | time us | byte floor us | vs floor |\n|---|---|---|---|---|---|\n%s",
              split_table.c_str());

  // Prefill attention of one prompt from position 0: the tensor-core flash kernel against the
  // per-token kernel the backend runs today, same inputs. FLOPs: QK and PV over the causal
  // triangle, 4 x heads x head_dim x n(n+1)/2.
  std::printf("\n## Prefill attention, one prompt from position 0 (32/8 heads, d 128)\n\n");
  std::printf("| prompt | per-token kernel ms | flash (tensor cores) ms | speedup | flash TFLOP/s |\n|---|---|---|---|---|\n");
  for (int32_t n : quick ? std::vector<int32_t>{1024} : std::vector<int32_t>{1024, 4096, 8192}) {
    const int32_t npages = n / kPage;
    std::vector<int32_t> pos(n), seq(n, 0), all(npages);
    std::iota(pos.begin(), pos.end(), 0);
    std::iota(all.begin(), all.end(), 0);
    const Launch l = UploadLaunch(pos, seq, {std::vector<int32_t>(perm.begin(), perm.begin() + npages)}, {all}, target);
    float* pq = nullptr;
    bf16* pout = nullptr;
    CHECK(cudaMalloc(&pq, sizeof(float) * n * kHeads * kDim));
    CHECK(cudaMalloc(&pout, sizeof(bf16) * n * kHeads * kDim));
    {
      std::vector<float> hq(static_cast<size_t>(n) * kHeads * kDim);
      for (float& x : hq) x = std::uniform_real_distribution<float>(-1, 1)(rng);
      CHECK(cudaMemcpy(pq, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
    }
    const lil::cuda::PagedAttentionParams ap = Params(pool, l, n, pq, pout);
    const std::vector<int32_t> tiles = lil::cuda::FlashPrefillTiles(seq, kHeads / kKvHeads);
    lil::cuda::FlashPrefillParams fp;
    fp.attn = ap;
    fp.tiles = Upload(tiles);
    fp.num_tiles = static_cast<int32_t>(tiles.size() / 3);
    const double old_ms = MedianMs([&](int) { CHECK(lil::cuda::PagedAttention(ap, nullptr)); }, 3, 5);
    const double flash_ms = MedianMs([&](int) { CHECK(lil::cuda::FlashPrefill(fp, nullptr)); }, 3, 5);
    const double flops = 4.0 * kHeads * kDim * (static_cast<double>(n) * (n + 1) / 2);
    std::printf("| %d | %.3f | %.3f | %.1fx | %.1f |\n", n, old_ms, flash_ms, old_ms / flash_ms, flops / (flash_ms * 1e-3) / 1e12);
    CHECK(cudaFree(pq));
    CHECK(cudaFree(pout));
  }
  return 0;
}
