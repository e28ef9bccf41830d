// File: bench/gpu_attention_bench.cu
// Decode attention alone on the GPU, Llama-3-8B heads (32 query / 8 KV heads, head_dim 128,
// 16-token pages): dense paged attention at batch 1 and 16 over 4k-32k contexts, and Quest
// (2,048-token budget) and sink+window page lists at 32k, each beside the HBM read
// bandwidth measured by this program in the same run (a streaming sum over 4 GiB). Every
// timed launch reads a different set of pages (rotated past 4x the L2), and page tables are
// shuffled as a long-running server's would be. A/B rows: the tensor-core kernel with two
// cp.async stages (LILSERVE_TC_REGS=0 LILSERVE_TC_STAGES=2) beside the default (tiles through
// registers), Quest with e4m3 metadata (LILSERVE_QUEST_FP8=1) and the overlap of its choice
// with bf16's, the 2,048-token rows cut into other split counts; batch 1 at 1k (the 8B batch-1 step's latency-bound shape) with the
// split chunk swept for both kernels. Then prefill attention of one 1k-8k prompt: the
// tensor-core flash kernel against the per-token kernel. Prints Markdown tables. The sparse
// tables live in gpu_attention_sparse.cu, what both files share in gpu_attention_bench.cuh.
// --contiguous: only the dense table, each sequence's pages in physical order (how much of the
// gap to the read ceiling is the shuffled pages' scattered 4 KiB blocks). --batched: only the
// table of goal 2's batched steps (batch 8-128 at 1k, 8 and 32 at 8k). --profile BATCH CONTEXT:
// only 12 launches of the backend's dense kernel at that shape, each on its own pages, for a
// profiler (`ncu -k regex:Split --launch-skip 4`; a fourth argument `cp.async`: that tile path
// instead of registers). --tiles: only the table of the two tile paths. --wide: 8-warp CTAs with
// forced splits at batch 1, 2, 4, 8 and 16. --sparse: only the
// sparse tables (Quest's scoring paths; `ncu -k regex:QuestScore` profiles them). --dense: only
// the dense table (shuffled pages). --timeline: where a launch's time goes, from its CTAs'
// clocks (PagedAttentionParams::timeline), at batch 1 (1k-32k), 16 (32k), 32 and 128 (1k).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/gpu_attention_bench.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/quest.h"

namespace lil::bench::attention {
namespace {

using lil::bench::FillKernel;
using lil::bench::MedianMs;

// Dense paged attention at batch 1 and 16 over 4k-32k: the backend's kernel, the CUDA-core
// kernel with its own split, and two cp.async stages, beside the read ceiling.
void DenseTable(const Bench& b) {
  const Pool& pool = b.pool;
  std::printf("## Dense paged decode attention (32/8 heads, d 128, 16-token pages)\n\n");
  std::printf("| batch | context | KV MiB | time us | achieved TB/s | read TB/s | ratio | splits | CUDA-core kernel us | ratio "
              "| cp.async 2 stages us | ratio | splits |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<int32_t> contexts = b.quick ? std::vector<int32_t>{4096} : std::vector<int32_t>{4096, 8192, 16384, 32768};
  for (int32_t batch : {1, 16}) {
    for (int32_t context : contexts) {
      const std::vector<Launch> launches = DenseLaunches(b, batch, context);
      auto time_kernel = [&](bool tensor_cores, bool stages2 = false) {
        return MedianMs([&](int i) {
          const Launch& l = launches[i % launches.size()];
          lil::cuda::PagedAttentionParams ap = Params(pool, l, batch, b.q, b.out, stages2);
          ap.tensor_cores = tensor_cores;
          if (!tensor_cores) {  // its own split, as the backend gives one-token steps
            lil::cuda::SetSplit(ap, l.split_cc);
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
                  bytes / (1 << 20), ms * 1e3, tbs, b.read_tbs, tbs / b.read_tbs,
                  LaunchSplits(launches[0], context / kPage), cuda_core_ms * 1e3,
                  cuda_core_tbs / b.read_tbs, s2_ms * 1e3, bytes / (s2_ms * 1e-3) / 1e12 / b.read_tbs,
                  RowSplits(s2, context / kPage));
    }
  }
}

// Median ms of the tensor-core kernel over `launches` (each `batch` rows of `npages` pages)
// with the split forced to `splits` chunks: the default kernel (tiles through registers), or
// with cp_async2 the cp.async path with two stages.
double ForcedSplitMs(const Bench& b, const std::vector<Launch>& launches, int32_t batch, int32_t npages, int32_t splits,
                     bool cp_async2 = false, int32_t warps = lil::cuda::kSplitWarps) {
  return MedianMs([&](int i) {
    lil::cuda::PagedAttentionParams ap = Params(b.pool, launches[i % launches.size()], batch, b.q, b.out);
    ap.tensor_cores = true;
    ap.tc_tiles = cp_async2 ? lil::cuda::TcTiles::kCpAsync : lil::cuda::TcTiles::kRegisters;
    ap.tc_stages = cp_async2 ? 2 : 3;
    ap.min_chunk_entries = splits == 1 ? 0 : (npages + splits - 1) / splits;
    ap.max_splits = splits;
    ap.row_splits = ap.long_chunk_entries = 0;  // every row in `splits` chunks (not the long-row rule)
    ap.tc_warps = cp_async2 ? lil::cuda::kSplitWarps : warps;
    ap.partial = g_partial_alt;
    CHECK(lil::cuda::PagedAttention(ap, nullptr));
  }, 20, 9);
}

// The batched decode steps of goal 2 (batch 32-128 at 1k, 32 at 8k): the backend's kernel on
// one layer's KV, beside the read ceiling. A 1k / batch-128 layer reads 512 MB, as much as
// batch 16 at 32k, but in 1,024 rows of 64 pages instead of 128 rows of 2,048: what this table
// asks is whether the short rows' fixed costs (each CTA's first loads, its merge) cost the
// step what the long-context table does not show.
void BatchedTable(const Bench& b) {
  std::printf("\n## Batched decode shapes (goal 2's steps): one layer's attention\n\n");
  std::printf("| batch | context | KV MiB | time us | achieved TB/s | read TB/s | ratio | splits |\n"
              "|---|---|---|---|---|---|---|---|\n");
  const std::pair<int32_t, int32_t> shapes[] = {{8, 1024}, {32, 1024}, {64, 1024}, {128, 1024}, {8, 8192}, {32, 8192}};
  for (const auto& shape : shapes) {
    const int32_t batch = shape.first, context = shape.second;
    const std::vector<Launch> launches = DenseLaunches(b, batch, context);
    const double ms = MedianMs([&](int i) {
      const Launch& l = launches[i % launches.size()];
      CHECK(lil::cuda::PagedAttention(Params(b.pool, l, batch, b.q, b.out), nullptr));
    }, 20, 9);
    const double bytes = static_cast<double>(batch) * context * kKvHeads * kDim * 2 * 2;
    const double tbs = bytes / (ms * 1e-3) / 1e12;
    std::printf("| %d | %d | %.0f | %.1f | %.3f | %.3f | %.2f | %d |\n", batch, context, bytes / (1 << 20), ms * 1e3, tbs,
                b.read_tbs, tbs / b.read_tbs, LaunchSplits(launches[0], context / kPage));
  }
  // The same shapes with the split forced (chunks of context / splits tokens) and with two
  // cp.async stages (three CTAs an SM instead of two): whether more, shorter CTAs hide the
  // per-CTA fixed costs that one wave of whole rows leaves exposed.
  std::printf("\n| batch | context | tiles | splits | CTAs | time us | of read |\n|---|---|---|---|---|---|---|\n");
  for (const auto& shape : shapes) {
    const int32_t batch = shape.first, context = shape.second, npages = context / kPage;
    const std::vector<Launch> launches = DenseLaunches(b, batch, context);
    const double bytes = static_cast<double>(batch) * context * kKvHeads * kDim * 2 * 2;
    for (bool cp_async2 : {false, true}) {
      for (int32_t splits : {1, 2, 4, 8}) {
        const double ms = ForcedSplitMs(b, launches, batch, npages, splits, cp_async2);
        std::printf("| %d | %d | %s | %d | %d | %.1f | %.2f |\n", batch, context,
                    cp_async2 ? "cp.async, 2 stages" : "registers", splits,
                    batch * kKvHeads * splits, ms * 1e3, bytes / (ms * 1e-3) / 1e12 / b.read_tbs);
      }
    }
  }
}

// --wide: the register-tile kernel in 8-warp CTAs (PagedAttentionParams::tc_warps) with the
// rows cut into 1-32 chunks, beside the backend's choice (WideTcRows, else ChooseSplit's 4-warp
// split), at batch 1, 2, 4, 8 and 16, 1k-32k: where else 8-warp CTAs would pay (session 27).
void WideTable(const Bench& b) {
  std::printf("\n## 8-warp CTAs with forced splits against the backend's choice (us)\n\n");
  std::printf("| batch | context | backend's choice | us | 8 warps, 1 | 2 | 4 | 8 | 16 | 32 chunks |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
  for (int32_t batch : {1, 2, 4, 8, 16}) {
    for (int32_t context : {1024, 4096, 16384, 32768}) {
      const int32_t npages = context / kPage;
      const std::vector<Launch> launches = DenseLaunches(b, batch, context);
      const double backend = MedianMs([&](int i) {
        const Launch& l = launches[i % launches.size()];
        CHECK(lil::cuda::PagedAttention(Params(b.pool, l, batch, b.q, b.out), nullptr));
      }, 20, 9);
      std::printf("| %d | %d | %s, %d chunks | %.1f |", batch, context, launches[0].wide ? "8 warps" : "4 warps",
                  LaunchSplits(launches[0], npages), backend * 1e3);
      for (int32_t splits : {1, 2, 4, 8, 16, 32}) {
        std::printf(" %.1f |", ForcedSplitMs(b, launches, batch, npages, splits, false, lil::cuda::kWideWarps) * 1e3);
      }
      std::printf("\n");
    }
  }
}

// Session 17: the tensor-core kernel's two tile paths on goal 3's and goal 2's shapes:
// cp.async (three stages) and registers (the default since); interleaved three times, the
// fastest of each kept.
void TilePathTable(const Bench& b) {
  std::printf("\n## Tensor-core tiles: cp.async, registers (default)\n\n");
  std::printf("| batch | context | cp.async us | of read | registers us | of read |\n|---|---|---|---|---|---|\n");
  const std::pair<int32_t, int32_t> shapes[] = {{1, 4096}, {1, 32768}, {16, 4096}, {16, 16384}, {16, 32768},
                                                {32, 1024}, {128, 1024}, {32, 8192}};
  for (const auto& shape : shapes) {
    const int32_t batch = shape.first, context = shape.second;
    const std::vector<Launch> launches = DenseLaunches(b, batch, context);
    const double bytes = static_cast<double>(batch) * context * kKvHeads * kDim * 2 * 2;
    double best[2] = {1e9, 1e9};
    for (int round = 0; round < 3; ++round) {
      for (int path = 0; path < 2; ++path) {
        best[path] = std::min(best[path], MedianMs([&](int j) {
          lil::cuda::PagedAttentionParams ap = Params(b.pool, launches[j % launches.size()], batch, b.q, b.out);
          ap.tc_tiles = static_cast<lil::cuda::TcTiles>(path);  // kCpAsync, kRegisters
          CHECK(lil::cuda::PagedAttention(ap, nullptr));
        }, 20, 9));
      }
    }
    const auto of_read = [&](double ms) { return bytes / (ms * 1e-3) / 1e12 / b.read_tbs; };
    std::printf("| %d | %d | %.1f | %.3f | %.1f | %.3f |\n", batch, context, best[0] * 1e3, of_read(best[0]),
                best[1] * 1e3, of_read(best[1]));
  }
}

// Batch 1 at 1k, the 8B batch-1 step's shape: 4 MB of KV, so the time is latency. The chunk a
// split CTA reads (min_chunk_entries pages, splits = 64 / chunk) swept for both kernels; the
// CUDA-core kernel is what one-token steps run, the backend's choice is 4 pages. 64 page sets
// rotate (256 MB, past the L2), as the step reads a layer's KV from HBM. (Session 12 also timed
// each row's splits merged through a thread-block cluster instead of global partials: 8.6 us
// against 8.4 at the backend's 4-page chunk, docs/PERF.md; the experiment was removed.)
void BatchOneTables(const Bench& b) {
  const int32_t context = 1024, npages = context / kPage, nsets = 64;
  std::vector<Launch> sets;
  for (int32_t st = 0; st < nsets; ++st) {
    std::vector<int32_t> table(b.perm.begin() + st * npages, b.perm.begin() + (st + 1) * npages), all(npages);
    std::iota(all.begin(), all.end(), 0);
    sets.push_back(MakeLaunch({table}, {all}, context, g_target_cc));
  }
  auto time_us = [&](int32_t chunk, bool tensor_cores) {
    return 1e3 * MedianMs([&](int i) {
      lil::cuda::PagedAttentionParams ap = Params(b.pool, sets[i % nsets], 1, b.q, b.out);
      ap.tensor_cores = tensor_cores;
      ap.min_chunk_entries = chunk;
      ap.max_splits = npages / chunk;
      ap.partial = g_partial_alt;
      CHECK(lil::cuda::PagedAttention(ap, nullptr));
    }, 20, 9);
  };
  std::printf("\n## Batch 1, 1k context: the split chunk (latency; the backend's choice: 4 pages, 16 splits)\n\n");
  std::printf("| chunk pages | splits | CTAs | CUDA-core kernel us | tensor-core kernel us |\n|---|---|---|---|---|\n");
  for (int32_t chunk : {1, 2, 4, 8, 16, 64}) {
    std::printf("| %d | %d | %d | %.1f | %.1f |\n", chunk, npages / chunk, kKvHeads * (npages / chunk),
                time_us(chunk, false), time_us(chunk, true));
  }
}

// Batch 16 at 16k / 32k, the tensor-core kernel's split count swept: the dense table's ratio
// climbs with context (a fixed cost per launch: the first loads' latency, the slowest CTA, the
// merge), so this asks whether more, shorter splits hide it. The backend's choice is the dense
// table's "splits" column.
void SplitSweep(const Bench& b) {
  std::printf("\n## Batch 16: the tensor-core kernel's split count (the backend's choice: the dense table's)\n\n");
  std::printf("| context | splits | CTAs | time us | of read |\n|---|---|---|---|---|\n");
  for (int32_t context : {16384, 32768}) {
    const std::vector<Launch> launches = DenseLaunches(b, 16, context);
    const int32_t npages = context / kPage;
    const double bytes = 16.0 * context * kKvHeads * kDim * 2 * 2;
    for (int32_t splits : {1, 2, 3, 4, 6, 8}) {
      const double ms = ForcedSplitMs(b, launches, 16, npages, splits);
      std::printf("| %d | %d | %d | %.1f | %.2f |\n", context, splits, 16 * kKvHeads * splits, ms * 1e3,
                  bytes / (ms * 1e-3) / 1e12 / b.read_tbs);
    }
  }
}

// --timeline: where a launch's time goes (PagedAttentionParams::timeline). For each shape, 12
// launches back to back as the other tables time them; launches 10 and 11 record thread 0 of
// each CTA. Times are us from launch 10's first CTA start (%globaltimer; the points inside a CTA
// are clock64 at that CTA's cycles a ns), min / median / max over launch 10's CTAs.
void TimelineTable(const Bench& b) {
  using lil::cuda::kAttnTimelinePoints;
  constexpr int kWords = lil::cuda::kAttnTimelineWords, kStartNs = kAttnTimelinePoints, kEndNs = kStartNs + 1;
  std::printf("\n## Where a dense decode attention launch goes (thread 0 of each CTA; us)\n\n");
  std::printf("| batch | context | what | min | median | max |\n|---|---|---|---|---|---|\n");
  const std::pair<int32_t, int32_t> shapes[] = {{1, 1024}, {1, 4096}, {1, 16384}, {1, 32768},
                                                {16, 32768}, {32, 1024}, {128, 1024}};
  for (const auto& shape : shapes) {
    const int32_t batch = shape.first, context = shape.second;
    const std::vector<Launch> launches = DenseLaunches(b, batch, context);
    const lil::cuda::PagedAttentionParams p0 = Params(b.pool, launches[0], batch, b.q, b.out);
    const int32_t ctas = batch * kKvHeads * (p0.min_chunk_entries > 0 ? p0.max_splits : 1);
    uint64_t* d = nullptr;
    CHECK(cudaMalloc(&d, sizeof(uint64_t) * kWords * ctas * 2));
    CHECK(cudaMemset(d, 0, sizeof(uint64_t) * kWords * ctas * 2));
    const double us = 1e3 * MedianMs([&](int i) {
      CHECK(lil::cuda::PagedAttention(Params(b.pool, launches[i % launches.size()], batch, b.q, b.out), nullptr));
    }, 20, 9);
    for (int i = 0; i < 12; ++i) {
      lil::cuda::PagedAttentionParams ap = Params(b.pool, launches[i % launches.size()], batch, b.q, b.out);
      if (i >= 10) ap.timeline = d + static_cast<size_t>(i - 10) * kWords * ctas;
      CHECK(lil::cuda::PagedAttention(ap, nullptr));
    }
    CHECK(cudaDeviceSynchronize());
    std::vector<uint64_t> h(static_cast<size_t>(kWords) * ctas * 2);
    CHECK(cudaMemcpy(h.data(), d, h.size() * sizeof(uint64_t), cudaMemcpyDeviceToHost));
    CHECK(cudaFree(d));
    // Word w of CTA c of recorded launch l; a CTA past its row's splits wrote nothing.
    auto word = [&](int l, int32_t c, int w) { return static_cast<double>(h[(static_cast<size_t>(l) * ctas + c) * kWords + w]); };
    auto live = [&](int l, int32_t c) { return word(l, c, kEndNs) > 0; };
    // Point i of CTA c of launch l on the global timer (ns).
    auto at_ns = [&](int l, int32_t c, int i) {
      const double cyc = word(l, c, lil::cuda::kAtEnd) - word(l, c, lil::cuda::kAtStart);
      const double ns = word(l, c, kEndNs) - word(l, c, kStartNs);
      const double ghz = cyc > 0 && ns > 0 ? cyc / ns : 1.8;
      return word(l, c, kStartNs) + (word(l, c, i) - word(l, c, lil::cuda::kAtStart)) / ghz;
    };
    double t0 = 1e300, end0 = 0, t1 = 1e300;
    for (int32_t c = 0; c < ctas; ++c) {
      if (live(0, c)) {
        t0 = std::min(t0, word(0, c, kStartNs));
        end0 = std::max(end0, word(0, c, kEndNs));
      }
      if (live(1, c)) t1 = std::min(t1, word(1, c, kStartNs));
    }
    auto row = [&](const std::string& what, bool merging_only, auto value) {
      std::vector<double> v;
      for (int32_t c = 0; c < ctas; ++c) {
        if (live(0, c) && (!merging_only || word(0, c, kEndNs + 2) > 0)) v.push_back(value(c));
      }
      if (v.empty()) return;
      std::sort(v.begin(), v.end());
      std::printf("| %d | %d | %s | %.2f | %.2f | %.2f |\n", batch, context, what.c_str(), v.front(), v[v.size() / 2],
                  v.back());
    };
    std::printf("| %d | %d | a launch, median of 20 back to back (%d CTAs, %d splits a row) | | %.2f | |\n", batch,
                context, ctas, LaunchSplits(launches[0], context / kPage), us);
    std::printf("| %d | %d | the last CTA's end; the next launch's first start | | %.2f; %.2f | |\n", batch, context,
                (end0 - t0) * 1e-3, (t1 - t0) * 1e-3);
    const char* names[kAttnTimelinePoints] = {"start", "row known", "PDL wait returned", "q ready", "first tile in",
                                              "warp 0's loop done", "all warps done", "counter bumped", "end"};
    for (int i = 0; i < kAttnTimelinePoints; ++i) {
      row(names[i], false, [&](int32_t c) { return (at_ns(0, c, i) - t0) * 1e-3; });
    }
    row("merging CTAs: counter bumped -> end", true,
        [&](int32_t c) { return (at_ns(0, c, lil::cuda::kAtEnd) - at_ns(0, c, lil::cuda::kAtCounted)) * 1e-3; });
    row("merging CTAs: end", true, [&](int32_t c) { return (at_ns(0, c, lil::cuda::kAtEnd) - t0) * 1e-3; });
  }
}

// Prefill attention of one prompt from position 0: the tensor-core flash kernel against the
// per-token kernel the backend runs today, same inputs. FLOPs: QK and PV over the causal
// triangle, 4 x heads x head_dim x n(n+1)/2.
void PrefillTable(Bench& b) {
  std::printf("\n## Prefill attention, one prompt from position 0 (32/8 heads, d 128)\n\n");
  std::printf("| prompt | per-token kernel ms | flash (tensor cores) ms | speedup | flash TFLOP/s |\n|---|---|---|---|---|\n");
  for (int32_t n : b.quick ? std::vector<int32_t>{1024} : std::vector<int32_t>{1024, 4096, 8192}) {
    const int32_t npages = n / kPage;
    std::vector<int32_t> pos(n), seq(n, 0), all(npages);
    std::iota(pos.begin(), pos.end(), 0);
    std::iota(all.begin(), all.end(), 0);
    const Launch l = UploadLaunch(pos, seq, {std::vector<int32_t>(b.perm.begin(), b.perm.begin() + npages)}, {all}, b.target);
    float* pq = nullptr;
    bf16* pout = nullptr;
    CHECK(cudaMalloc(&pq, sizeof(float) * n * kHeads * kDim));
    CHECK(cudaMalloc(&pout, sizeof(bf16) * n * kHeads * kDim));
    {
      std::vector<float> hq(static_cast<size_t>(n) * kHeads * kDim);
      for (float& x : hq) x = std::uniform_real_distribution<float>(-1, 1)(b.rng);
      CHECK(cudaMemcpy(pq, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
    }
    const lil::cuda::PagedAttentionParams ap = Params(b.pool, l, n, pq, pout);
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
}

}  // namespace
}  // namespace lil::bench::attention

int main(int argc, char** argv) {
  using namespace lil::bench::attention;
  Bench b;
  b.quick = argc > 1 && std::string(argv[1]) == "--quick";
  const bool contiguous = argc > 1 && std::string(argv[1]) == "--contiguous";
  const bool batched = argc > 1 && std::string(argv[1]) == "--batched";
  const bool sparse_only = argc > 1 && std::string(argv[1]) == "--sparse";  // the sparse tables alone
  const bool dense_only = argc > 1 && std::string(argv[1]) == "--dense";    // the dense table alone
  const int sms = lil::bench::SmCount();
  b.target = lil::cuda::SplitResidentCtas(kDim, kHeads / kKvHeads, sms, kTensorCores);
  std::printf("split-KV: %d resident CTAs (%d SMs)\n", b.target, sms);
  g_target2 = lil::cuda::SplitResidentCtas(kDim, kHeads / kKvHeads, sms, true, lil::cuda::TcTiles::kCpAsync, 2);
  std::printf("split-KV, tensor cores with 2 cp.async stages (LILSERVE_TC_REGS=0 LILSERVE_TC_STAGES=2): %d resident CTAs\n", g_target2);
  g_target_cc = lil::cuda::SplitResidentCtas(kDim, kHeads / kKvHeads, sms, false);
  std::printf("split-KV, CUDA-core kernel (one-token steps): %d resident CTAs\n", g_target_cc);
  CHECK(cudaMalloc(&g_partial_alt, sizeof(float) * lil::cuda::SplitPartialFloats(kMaxTokens, kKvHeads, kDim, 128)));
  b.read_tbs = lil::bench::PrintReadTbs();

  // One pool of pages, big enough that each timed launch reads pages no other recent launch
  // touched: >= 1 GiB of KV per rotation set, the L2 is ~50-60 MB.
  const size_t pool_bytes_target = size_t{6} << 30;
  const size_t page_bytes = size_t{kKvHeads} * kPage * kDim * 2 * 2;  // K + V
  Pool& pool = b.pool;
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
  b.perm.resize(pool.num_pages);
  std::iota(b.perm.begin(), b.perm.end(), 0);
  if (!contiguous) std::shuffle(b.perm.begin(), b.perm.end(), b.rng);

  CHECK(cudaMalloc(&b.q, sizeof(float) * kMaxTokens * kHeads * kDim));
  CHECK(cudaMalloc(&b.out, sizeof(bf16) * kMaxTokens * kHeads * kDim));
  FillKernel<<<64, 256>>>(b.out, kMaxTokens * kHeads * kDim, 3);
  {
    std::vector<float> hq(kMaxTokens * kHeads * kDim);
    for (float& x : hq) x = std::uniform_real_distribution<float>(-1, 1)(b.rng);
    CHECK(cudaMemcpy(b.q, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
  }

  if (batched) {
    BatchedTable(b);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "--wide") {
    WideTable(b);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "--timeline") {
    TimelineTable(b);
    return 0;
  }
  if (argc > 1 && std::string(argv[1]) == "--tiles") {
    TilePathTable(b);
    return 0;
  }
  if (argc > 3 && std::string(argv[1]) == "--profile") {
    const int32_t batch = std::atoi(argv[2]), context = std::atoi(argv[3]);
    const std::vector<Launch> launches = DenseLaunches(b, batch, context);
    for (int i = 0; i < 12; ++i) {
      lil::cuda::PagedAttentionParams ap = Params(b.pool, launches[i % launches.size()], batch, b.q, b.out);
      const std::string path = argc > 4 ? argv[4] : "";
      ap.tc_tiles = path == "cp.async" ? lil::cuda::TcTiles::kCpAsync : lil::cuda::TcTiles::kRegisters;
      CHECK(lil::cuda::PagedAttention(ap, nullptr));
    }
    CHECK(cudaDeviceSynchronize());
    std::printf("profile: 12 launches at batch %d, context %d\n", batch, context);
    return 0;
  }
  if (sparse_only) {
    SparseTables(b);
    return 0;
  }
  DenseTable(b);
  if (contiguous || dense_only) return 0;
  BatchedTable(b);
  BatchOneTables(b);
  if (!b.quick) SplitSweep(b);
  SparseTables(b);
  PrefillTable(b);
  return 0;
}
