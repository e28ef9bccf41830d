// File: bench/gpu_attention_sparse.cu
// gpu_attention_bench's sparse tables (gpu_attention_bench.cuh: SparseTables): Quest (scoring,
// selection, attention over the selected pages) and sink+window page lists at 32k context with
// a 2,048-token budget, beside dense attention and each one's byte floor at the read ceiling
// measured in the same run; A/B rows (scoring inside the selection CTA, e4m3 metadata and the
// overlap of its choice with bf16's, two cp.async stages); the metadata's blocks, and each
// selection CTA's 512-byte pieces, read alone (the scoring's access patterns without the
// scoring); the 2,048-token rows' split sweep; one 8-warp CTA a row against the 4-warp split over
// row lengths (WideTcRows); the selection CTAs' timeline (QuestSelectParams::timeline).
#include <algorithm>
#include <cstdio>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "bench/gpu_attention_bench.cuh"
#include "kernels/cuda/quest.h"

namespace lil::bench::attention {
namespace {

// The Quest scoring's memory access alone: each warp reads whole 4 KiB metadata blocks (every
// KV head of one candidate page at 128 dims in bf16: 8 loads of 512 contiguous bytes), two a
// warp in flight, and only sums them: how fast this gather of random blocks goes at all.
constexpr int kMetaBlockBytes = kKvHeads * 2 * kDim * 2;  // a page's (min, max) rows, every KV head
static_assert(kMetaBlockBytes == 8 * 512, "a warp reads a block in 8 loads of 512 bytes");
__global__ void GatherBlocksKernel(const uint8_t* meta, const int32_t* pages, int32_t count, float* out) {
  constexpr int kInFlight = 2;
  const int lane = threadIdx.x & 31;
  const int32_t warps = gridDim.x * (blockDim.x / 32), w = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  float s = 0.0f;
  for (int32_t i = w * kInFlight; i < count; i += warps * kInFlight) {
    uint4 v[kInFlight][8];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const uint8_t* b = meta + static_cast<size_t>(pages[min(i + u, count - 1)]) * kMetaBlockBytes + lane * 16;
#pragma unroll
      for (int j = 0; j < 8; ++j) v[u][j] = __ldcs(reinterpret_cast<const uint4*>(b + j * 512));
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
#pragma unroll
      for (int j = 0; j < 8; ++j) s += __uint_as_float(v[u][j].x) + __uint_as_float(v[u][j].w);
    }
  }
  if (s == 12345.678f) *out = s;  // keeps the loads
}

// The selection CTAs' own reads alone (the in-CTA scoring's access pattern, no scoring): CTA
// (s, h, z) reads KV head h's 512 bytes (min and max rows) of each candidate page of sequence s
// in its z-th share, eight lanes a page and 16 pages a warp in flight, the next pages' ids a
// round ahead. gridDim.z 1: one CTA a row, as the selection kernel; more: the same pieces over
// more CTAs. Tells whether 512-byte pieces or the one CTA a row caps that scoring.
__global__ void GatherHeadKernel(const uint8_t* meta, const int32_t* pages, int32_t pages_per_seq, float* out) {
  const int32_t s = blockIdx.x, h = blockIdx.y;
  const int32_t share = (pages_per_seq + gridDim.z - 1) / gridDim.z, first = blockIdx.z * share,
                end = min(pages_per_seq, first + share);
  const int lane = threadIdx.x & 31, sub = lane & 7, slot = lane >> 3, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int32_t* pg = pages + static_cast<int64_t>(s) * pages_per_seq;
  float acc = 0.0f;
  int32_t c = first + warp * 16;
  int32_t ids[4];
#pragma unroll
  for (int u = 0; u < 4; ++u) ids[u] = pg[min(c + 4 * u + slot, end - 1)];
  for (; c < end; c += nw * 16) {
    uint4 v[4][4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const uint8_t* b = meta + static_cast<size_t>(ids[u]) * kMetaBlockBytes + h * 512 + sub * 16;
#pragma unroll
      for (int j = 0; j < 4; ++j) v[u][j] = __ldcs(reinterpret_cast<const uint4*>(b + j * 128));
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) ids[u] = pg[min(c + nw * 16 + 4 * u + slot, end - 1)];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc += __uint_as_float(v[u][j].x) + __uint_as_float(v[u][j].w);
    }
  }
  if (acc == 12345.678f) *out = acc;  // keeps the loads
}

// One step with the selection CTAs' timeline on (`step(buffer)` runs it; QuestSelectParams::
// timeline): the CTAs' start and end spread from the earliest start (us, %globaltimer), each
// phase's length (clock64 cycles at the cycles a ns of the start -> end span) and the threshold
// search's passes, min / median / max over the CTAs, as table rows headed `label`.
template <typename Step>
std::string TimelineRows(const char* label, int32_t ctas, Step step) {
  constexpr int kPoints = lil::cuda::kQuestTimelinePoints, kWords = lil::cuda::kQuestTimelineWords;
  uint64_t* d = nullptr;
  CHECK(cudaMalloc(&d, sizeof(uint64_t) * kWords * ctas));
  CHECK(cudaMemset(d, 0, sizeof(uint64_t) * kWords * ctas));
  step(d);
  CHECK(cudaDeviceSynchronize());
  std::vector<uint64_t> h(static_cast<size_t>(kWords) * ctas);
  CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(uint64_t), cudaMemcpyDeviceToHost));
  CHECK(cudaFree(d));
  auto at = [&](int32_t c, int w) { return static_cast<double>(h[static_cast<size_t>(c) * kWords + w]); };
  double t0 = 1e300, cyc = 0.0, ns = 0.0;
  for (int32_t c = 0; c < ctas; ++c) {
    t0 = std::min(t0, at(c, kPoints));
    cyc += at(c, kPoints - 1) - at(c, 0);
    ns += at(c, kPoints + 1) - at(c, kPoints);
  }
  const double ghz = ns > 0 ? cyc / ns : 1.0;
  std::string rows;
  auto row = [&](const std::string& name, auto value) {
    std::vector<double> v;
    for (int32_t c = 0; c < ctas; ++c) v.push_back(value(c));
    std::sort(v.begin(), v.end());
    char line[256];
    std::snprintf(line, sizeof(line), "| %s | %s | %.2f | %.2f | %.2f |\n", label, name.c_str(), v.front(), v[v.size() / 2], v.back());
    rows += line;
  };
  row("start (us after the first)", [&](int32_t c) { return (at(c, kPoints) - t0) * 1e-3; });
  row("end (us after the first start)", [&](int32_t c) { return (at(c, kPoints + 1) - t0) * 1e-3; });
  const char* points[kPoints] = {"start", "PDL wait done", "keys complete", "threshold found", "scan done",
                                 "thread 0's outputs written", "all outputs written"};
  for (int i = 0; i + 1 < kPoints; ++i) {
    row(std::string(points[i]) + " -> " + points[i + 1] + " (us)",
        [&](int32_t c) { return (at(c, i + 1) - at(c, i)) / ghz * 1e-3; });
  }
  row("keys complete -> all outputs written (us)", [&](int32_t c) { return (at(c, kPoints - 1) - at(c, 2)) / ghz * 1e-3; });
  row("threshold search passes", [&](int32_t c) { return at(c, kPoints + 2); });
  char line[200];
  std::snprintf(line, sizeof(line), "| %s | SM clock (cycles a ns) | | %.3f | |\n", label, ghz);
  rows += line;
  // Whether the slow scorers sit on the same SMs from run to run: the 8 slowest CTAs' SMs.
  std::vector<std::pair<double, int>> scoring;
  for (int32_t c = 0; c < ctas; ++c) scoring.push_back({at(c, 2) - at(c, 1), static_cast<int>(at(c, kPoints + 3))});
  std::sort(scoring.rbegin(), scoring.rend());
  rows += std::string("| ") + label + " | the 8 slowest scorers' SMs |";
  for (size_t i = 0; i < std::min<size_t>(8, scoring.size()); ++i) rows += " " + std::to_string(scoring[i].second);
  rows += " | | |\n";
  return rows;
}

}  // namespace

void SparseTables(const Bench& b) {
  const Pool& pool = b.pool;
  float* q = b.q;
  bf16* out = b.out;
  const double read_tbs = b.read_tbs;
  const int32_t target = b.target;
  const bool quick = b.quick;
  // Quest and sink+window at 32k, budget 2,048 tokens (128 pages), batch 16 (and 1).
  std::printf("\n## Sparse decode at 32k context, 2,048-token budget\n\n");
  std::printf("| batch | mode | time us | dense us | speedup | byte floor us | vs floor |\n|---|---|---|---|---|---|---|\n");
  const int32_t context = quick ? 8192 : 32768, budget_pages = 128;
  std::string split_table, prefetch_table, timeline_table, wide_table;
  for (int32_t batch : {16, 1}) {
    auto sets = MakeSets(b, batch, context);
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
    // The backend's default for the attention's CTAs (QuestPrefetchEntries).
    const int32_t default_prefetch = lil::cuda::QuestPrefetchEntries(quest[0].wide ? lil::cuda::kWideWarps : lil::cuda::kSplitWarps);
    int32_t prefetch = default_prefetch;
    uint64_t* timeline = nullptr;
    bool narrow = false;  // the attention in 4-warp split CTAs whatever WideTcRows says
    auto run = [&](std::vector<Launch>& ls, bool select) {
      return MedianMs([&](int i) {
        const size_t k = i % ls.size();
        Launch lk = ls[k];
        lk.wide = lk.wide && !narrow;
        lil::cuda::PagedAttentionParams ap = Params(pool, lk, batch, q, out, stages2);
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
          qp.key_stride = pages_per_seq;  // as the backend: the longest row
          qp.timeline = timeline;
          if (split_scoring) {
            qp.keys = score_keys;
            qp.score_staged = score_staged;
            qp.keys_ready = keys_ready;
          }
          if (attend) {  // as the backend: the selection sends the attention's first pages to the L2
            qp.attend_split = {ap.min_chunk_entries, ap.max_splits, ap.row_splits, ap.long_chunk_entries};
            qp.prefetch_entries = prefetch;
          }
          CHECK(lil::cuda::QuestSelect(qp, nullptr));
        }
        if (!attend) return;
        ap.rows_static = !select;  // Quest's rows come from the selection kernel
        CHECK(lil::cuda::PagedAttention(ap, nullptr));
      }, 10, 7);
    };
    const double dense_ms = run(dense, false);
    // Quest and its attention with the backend's attention CTAs and with 4-warp split ones
    // ($LILSERVE_TC_WIDE=0), interleaved over two rounds.
    std::string narrow_rows;
    if (quest[0].wide) {
      split_scoring = lil::cuda::QuestSplitScoringPays(batch * kKvHeads, false);
      double us[2][2][2];  // [narrow][quest, attend][round]
      for (int r = 0; r < 2; ++r) {
        for (int n = 0; n < 2; ++n) {
          narrow = n == 1;
          prefetch = lil::cuda::QuestPrefetchEntries(narrow ? lil::cuda::kSplitWarps : lil::cuda::kWideWarps);
          us[n][0][r] = run(quest, true) * 1e3;
          us[n][1][r] = run(quest, false) * 1e3;
        }
      }
      narrow = false;
      prefetch = default_prefetch;
      split_scoring = true;
      char line[300];
      for (int n = 0; n < 2; ++n) {
        std::snprintf(line, sizeof(line), "| %d | quest, %s (2 rounds) | %.1f / %.1f | %.1f | %.2fx | | |\n| %d | quest: attend alone, %s | %.1f / %.1f | | | | |\n",
                      batch, n ? "attention in 4-warp split CTAs (LILSERVE_TC_WIDE=0)" : "attention in one 8-warp CTA a row (the default here)",
                      us[n][0][0], us[n][0][1], dense_ms * 1e3, dense_ms * 1e3 / std::min(us[n][0][0], us[n][0][1]), batch,
                      n ? "4-warp split CTAs" : "8-warp CTAs", us[n][1][0], us[n][1][1]);
        narrow_rows += line;
      }
    }
    // The selection CTAs' timeline (QuestSelectParams::timeline) on the backend's path, with its
    // L2 prefetch and (batch 16) without.
    split_scoring = lil::cuda::QuestSplitScoringPays(batch * kKvHeads, false);
    for (int32_t pf : {default_prefetch, 0}) {
      if (pf == 0 && batch != 16) continue;
      prefetch = pf;
      const std::string label = std::to_string(batch) + ", prefetch " + std::to_string(pf);
      timeline_table += TimelineRows(label.c_str(), batch * kKvHeads, [&](uint64_t* t) {
        timeline = t;
        run(quest, true);
        timeline = nullptr;
      });
    }
    prefetch = default_prefetch;
    split_scoring = true;
    const double sw_ms = run(window, false);
    // The backend's choice (QuestSplitScoringPays): the split scoring, or each selection CTA
    // scoring its own row where the rows fill one wave. The rows below that time the parts are
    // the split scoring's.
    const bool auto_split = lil::cuda::QuestSplitScoringPays(batch * kKvHeads, false);
    split_scoring = auto_split;
    const double quest_ms = run(quest, true);
    split_scoring = true;
    const double quest_split_ms = auto_split ? quest_ms : run(quest, true);
    // The parts: the selected rows are left in `quest` by the runs above, so the attention
    // over them alone is the attend part.
    const double quest_attend_ms = run(quest, false);
    attend = false;
    const double quest_select_ms = run(quest, true);
    keys_ready = true;  // the keys of the runs above: the selection kernel alone
    const double select_alone_ms = run(quest, true);
    keys_ready = false;
    // The scoring's access pattern alone (GatherBlocksKernel over every candidate's block, four
    // 8-warp CTAs an SM): the practical floor of its metadata read for random 4 KiB blocks, beside
    // the byte floor at the streaming read ceiling.
    double gather_ms = 0.0, gather_head_ms[2] = {0.0, 0.0};
    {
      float* sink = nullptr;
      CHECK(cudaMalloc(&sink, sizeof(float)));
      gather_ms = MedianMs([&](int i) {
        GatherBlocksKernel<<<4 * SmCount(), 256>>>(reinterpret_cast<const uint8_t*>(pool.quest),
                                                   qins[i % qins.size()].cand_pages, batch * pages_per_seq, sink);
      }, 10, 7);
      for (int z : {1, 4}) {
        gather_head_ms[z == 1 ? 0 : 1] = MedianMs([&](int i) {
          GatherHeadKernel<<<dim3(batch, kKvHeads, z), 512>>>(reinterpret_cast<const uint8_t*>(pool.quest),
                                                               qins[i % qins.size()].cand_pages, pages_per_seq, sink);
        }, 10, 7);
      }
      CHECK(cudaFree(sink));
    }

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
    split_scoring = false;
    const double quest_fp8_one_ms = run(quest, true);
    split_scoring = true;
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
    stages2 = true;  // the attention with 2 cp.async stages (LILSERVE_TC_REGS=0 LILSERVE_TC_STAGES=2)
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
    const double kv_sel = static_cast<double>(batch) * budget_pages * kPage * kKvHeads * kDim * 2 * 2;
    const double meta = static_cast<double>(batch) * pages_per_seq * kKvHeads * 2 * kDim * 2;
    const double floor_sw = kv_sel / (read_tbs * 1e12) * 1e6, floor_q = (kv_sel + meta) / (read_tbs * 1e12) * 1e6;
    std::printf("| %d | dense | %.1f | %.1f | 1.00x | %.1f | %.2fx |\n", batch, dense_ms * 1e3, dense_ms * 1e3,
                static_cast<double>(batch) * context * kKvHeads * kDim * 4 / (read_tbs * 1e12) * 1e6,
                dense_ms * 1e3 / (static_cast<double>(batch) * context * kKvHeads * kDim * 4 / (read_tbs * 1e12) * 1e6));
    std::printf("| %d | sink+window | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch, sw_ms * 1e3, dense_ms * 1e3,
                dense_ms / sw_ms, floor_sw, sw_ms * 1e3 / floor_sw);
    std::printf("| %d | quest (score+select+attend; %s) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                auto_split ? "split scoring" : "scoring in the selection CTAs", quest_ms * 1e3, dense_ms * 1e3,
                dense_ms / quest_ms, floor_q, quest_ms * 1e3 / floor_q);
    std::printf("%s", narrow_rows.c_str());
    std::printf("| %d | quest, split scoring (LILSERVE_QUEST_SPLIT=1) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                quest_split_ms * 1e3, dense_ms * 1e3, dense_ms / quest_split_ms, floor_q, quest_split_ms * 1e3 / floor_q);
    const double floor_meta = meta / (read_tbs * 1e12) * 1e6;
    std::printf("| %d | quest: score+select alone | %.1f | | | %.1f (metadata) | %.2fx |\n", batch,
                quest_select_ms * 1e3, floor_meta, quest_select_ms * 1e3 / floor_meta);
    std::printf("| %d | quest: selection kernel alone (keys ready) | %.1f | | | | |\n", batch, select_alone_ms * 1e3);
    std::printf("| %d | quest: the metadata's 4 KiB blocks read alone (no scoring) | %.1f | | | %.1f (metadata) | %.2fx |\n",
                batch, gather_ms * 1e3, floor_meta, gather_ms * 1e3 / floor_meta);

    std::printf("| %d | quest: each selection CTA's 512-byte pieces read alone (one CTA a row, no scoring) | %.1f | | | %.1f (metadata) | %.2fx |\n",
                batch, gather_head_ms[0] * 1e3, floor_meta, gather_head_ms[0] * 1e3 / floor_meta);
    std::printf("| %d | quest: the same pieces over 4 CTAs a row | %.1f | | | %.1f (metadata) | %.2fx |\n",
                batch, gather_head_ms[1] * 1e3, floor_meta, gather_head_ms[1] * 1e3 / floor_meta);
    std::printf("| %d | quest: score+select alone, metadata through registers (not staged) | %.1f | | | %.1f (metadata) | %.2fx |\n",
                batch, quest_select_regs_ms * 1e3, floor_meta, quest_select_regs_ms * 1e3 / floor_meta);
    std::printf("| %d | quest: attend alone (selected pages) | %.1f | | | %.1f | %.2fx |\n", batch,
                quest_attend_ms * 1e3, floor_sw, quest_attend_ms * 1e3 / floor_sw);
    std::printf("| %d | quest, scoring in the selection CTAs (LILSERVE_QUEST_SPLIT=0) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n",
                batch, quest_one_ms * 1e3, dense_ms * 1e3, dense_ms / quest_one_ms, floor_q, quest_one_ms * 1e3 / floor_q);
    std::printf("| %d | quest, LILSERVE_QUEST_SPLIT=0: score+select alone | %.1f | | | %.1f (metadata) | %.2fx |\n", batch,
                quest_select_one_ms * 1e3, floor_meta, quest_select_one_ms * 1e3 / floor_meta);
    const double floor_q8 = (kv_sel + meta / 2) / (read_tbs * 1e12) * 1e6, floor_meta8 = floor_meta / 2;
    std::printf("| %d | quest, e4m3 metadata (LILSERVE_QUEST_FP8=1) | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                quest_fp8_ms * 1e3, dense_ms * 1e3, dense_ms / quest_fp8_ms, floor_q8, quest_fp8_ms * 1e3 / floor_q8);
    std::printf("| %d | quest, e4m3: score+select alone | %.1f | | | %.1f (metadata) | %.2fx |\n", batch,
                quest_fp8_select_ms * 1e3, floor_meta8, quest_fp8_select_ms * 1e3 / floor_meta8);
    std::printf("| %d | quest, e4m3, scoring in the selection CTAs | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                quest_fp8_one_ms * 1e3, dense_ms * 1e3, dense_ms / quest_fp8_one_ms, floor_q8, quest_fp8_one_ms * 1e3 / floor_q8);
    std::printf("| %d | quest, e4m3: pages also chosen with bf16 metadata | %.1f%% | | | | |\n", batch,
                100.0 * same / std::max<size_t>(1, sel_bf16.size()));
    std::printf("| %d | sink+window, cp.async 2 stages | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch,
                sw2_ms * 1e3, dense_ms * 1e3, dense_ms / sw2_ms, floor_sw, sw2_ms * 1e3 / floor_sw);
    std::printf("| %d | quest: attend alone, cp.async 2 stages | %.1f | | | %.1f | %.2fx |\n", batch,
                quest2_attend_ms * 1e3, floor_sw, quest2_attend_ms * 1e3 / floor_sw);
    std::printf("| %d | quest, cp.async 2 stages | %.1f | %.1f | %.2fx | %.1f | %.2fx |\n", batch, quest2_ms * 1e3,
                dense_ms * 1e3, dense_ms / quest2_ms, floor_q, quest2_ms * 1e3 / floor_q);
    // The selection's L2 prefetch of the attention's first pages (QuestSelectParams::
    // prefetch_entries), the backend's scoring choice, bf16 and e4m3: entries a chunk in
    // rounds, each round every count once, so a drifting clock moves them all alike.
    if (batch == 16) {
      const int32_t counts[] = {0, 4, 8, 16, 32, 64};
      constexpr int kRounds = 3;
      for (bool f8 : {false, true}) {
        fp8 = f8;
        split_scoring = lil::cuda::QuestSplitScoringPays(batch * kKvHeads, f8);
        std::vector<std::vector<double>> us(std::size(counts));
        for (int r = 0; r < kRounds; ++r) {
          for (size_t c = 0; c < std::size(counts); ++c) {
            prefetch = counts[c];
            us[c].push_back(run(quest, true) * 1e3);
          }
        }
        for (size_t c = 0; c < std::size(counts); ++c) {
          char line[256];
          const double best = *std::min_element(us[c].begin(), us[c].end());
          std::snprintf(line, sizeof(line), "| %s | %d | %.1f / %.1f / %.1f | %.1f | %.2fx |\n", f8 ? "e4m3" : "bf16",
                        counts[c], us[c][0], us[c][1], us[c][2], best, dense_ms * 1e3 / best);
          prefetch_table += line;
        }
      }
      fp8 = false;
      split_scoring = true;
      prefetch = default_prefetch;
    }
    CHECK(cudaFree(score_keys));  // after the sweep above, which scores through it where the backend splits
    // The attend part's split: the sink+window rows (128 pages each, static) cut into S chunks;
    // printed after this table.
    if (batch == 16) {
      const int32_t max_s = 16;
      float* partial = nullptr;
      CHECK(cudaMalloc(&partial, sizeof(float) * lil::cuda::SplitPartialFloats(batch, kKvHeads, kDim, max_s)));
      char line[256];
      std::snprintf(line, sizeof(line), "| %d | backend's choice: %d | %d | %.1f | %.1f | %.2fx |\n", batch,
                    LaunchSplits(window[0], budget_pages), batch * kKvHeads * LaunchSplits(window[0], budget_pages), sw_ms * 1e3, floor_sw,
                    sw_ms * 1e3 / floor_sw);
      split_table += line;
      for (int32_t splits : {1, 2, 4, 6, 8, 12, 16}) {
        const double ms = MedianMs([&](int i) {
          const Launch& l = window[i % window.size()];
          lil::cuda::PagedAttentionParams ap = Params(pool, l, batch, q, out);
          ap.min_chunk_entries = 1;
          ap.max_splits = splits;
          ap.row_splits = ap.long_chunk_entries = 0;  // every row in `splits` chunks (not the long-row rule)
          ap.partial = partial;
          CHECK(lil::cuda::PagedAttention(ap, nullptr));
        }, 10, 7);
        std::snprintf(line, sizeof(line), "| %d | %d (%d) | %d | %.1f | %.1f | %.2fx |\n", batch, splits,
                      (budget_pages + splits - 1) / splits, batch * kKvHeads * splits, ms * 1e3, floor_sw, ms * 1e3 / floor_sw);
        split_table += line;
      }
      CHECK(cudaFree(partial));
      // WideTcRows' length limit: rows of the newest 32-512 pages (0.5k-8k tokens, the sink+window
      // shape without sinks), the backend's 4-warp split against one 8-warp CTA a row, interleaved.
      for (int32_t row_pages : {32, 64, 128, 256, 512}) {
        std::vector<Launch> ls;
        for (auto& tables : sets) {
          std::vector<std::vector<int32_t>> rr(batch);
          for (int32_t s = 0; s < batch; ++s) {
            for (int32_t lp = pages_per_seq - row_pages; lp < pages_per_seq; ++lp) rr[s].push_back(lp);
          }
          ls.push_back(MakeLaunch(tables, rr, context, target));
        }
        double us[2][2];
        for (int r = 0; r < 2; ++r) {
          for (int w = 0; w < 2; ++w) {
            us[w][r] = 1e3 * MedianMs([&](int i) {
              Launch l = ls[i % ls.size()];
              l.wide = w == 1;
              CHECK(lil::cuda::PagedAttention(Params(pool, l, batch, q, out), nullptr));
            }, 10, 7);
          }
        }
        const double floor_us = static_cast<double>(batch) * row_pages * kPage * kKvHeads * kDim * 4 / (read_tbs * 1e12) * 1e6;
        std::snprintf(line, sizeof(line), "| %d | %d | %s | %.1f / %.1f | %.1f / %.1f | %.1f | %.2fx |\n", row_pages,
                      row_pages * kPage, ls[0].wide ? "8 warps" : "4-warp split", us[0][0], us[0][1], us[1][0], us[1][1],
                      floor_us, std::min(us[0][0], us[0][1]) / std::min(us[1][0], us[1][1]));
        wide_table += line;
      }
    }
  }

  std::printf("\n## The 2,048-token rows' split (sink+window rows, batch 16: the Quest attend part's shape)\n\n");
  std::printf("| batch | splits (chunk pages) | CTAs | time us | byte floor us | vs floor |\n|---|---|---|---|---|---|\n%s",
              split_table.c_str());
  std::printf("\n## One 8-warp CTA a row against the 4-warp split (batch 16 x 8 KV heads = 128 rows; WideTcRows)\n\n");
  std::printf("| row pages | tokens | the backend's choice | 4-warp split us (2 rounds) | 8 warps us | byte floor us | "
              "4-warp / 8-warp |\n|---|---|---|---|---|---|---|\n%s", wide_table.c_str());
  std::printf("\n## The selection CTAs' timeline (one step of the backend's Quest path; thread 0 of each CTA, "
              "QuestSelectParams::timeline; us from %%globaltimer, the phases from clock64 at the cycles a ns measured)\n\n");
  std::printf("| batch, entries prefetched a chunk | point or phase | min | median | max |\n|---|---|---|---|---|\n%s",
              timeline_table.c_str());
  std::printf("\n## Quest's selection sending the attention's first pages to the L2 (batch 16, 32k; vs the dense above)\n\n");
  std::printf("| metadata | entries a chunk | us, 3 rounds | best us | vs dense |\n|---|---|---|---|---|\n%s",
              prefetch_table.c_str());
}

}  // namespace lil::bench::attention
