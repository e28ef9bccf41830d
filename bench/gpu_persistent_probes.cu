// File: bench/gpu_persistent_probes.cu
// gpu_persistent_bench's two probes: --probe (when a PDL dependent's CTAs start and when its wait
// returns, against a 10 us kernel, launched on a stream and in a graph) and --o-probe (the
// attention stand-in then the o GEMV alone, its weights per layer or one copy left in the L2).
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "bench/gpu_persistent_bench.cuh"
#include "kernels/cuda/pdl.h"

namespace lil::bench::persistent {
namespace {

// ProbeSpin (128 CTAs, launched with PDL like the stand-in) records when each CTA starts and
// when its spin ends; ProbeNext (PDL, `ctas` CTAs of 256 threads, a GEMV's shape) records when
// each CTA starts (before its wait) and when its wait returns. ns since a common origin.
__global__ void __launch_bounds__(128) ProbeSpin(long long ns, unsigned long long* t) {
  const unsigned long long t0 = GlobalNs();
  lil::cuda::PdlWait();
  lil::cuda::PdlTrigger();
  if (threadIdx.x == 0) Spin(ns);
  __syncthreads();
  if (threadIdx.x == 0) {
    t[2 * blockIdx.x] = t0;
    t[2 * blockIdx.x + 1] = GlobalNs();
  }
}
__global__ void __launch_bounds__(256) ProbeNext(unsigned long long* t) {
  const unsigned long long t0 = GlobalNs();
  lil::cuda::PdlWait();
  const unsigned long long t1 = GlobalNs();
  lil::cuda::PdlTrigger();
  if (threadIdx.x == 0) {
    t[2 * blockIdx.x] = t0;
    t[2 * blockIdx.x + 1] = t1;
  }
}

}  // namespace

void RunProbe(int sms) {
  constexpr int kSpinCtas = 128, kNextCtas = 1024, kReps = 5;
  unsigned long long *ts = nullptr, *tn = nullptr;
  CHECK(cudaMalloc(&ts, 2 * kSpinCtas * sizeof(unsigned long long)));
  CHECK(cudaMalloc(&tn, 2 * kNextCtas * sizeof(unsigned long long)));
  cudaStream_t st;
  CHECK(cudaStreamCreate(&st));
  CHECK(cudaFuncSetAttribute(ProbeSpin, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024));
  std::printf("PDL probe: a 10 us spin kernel (%d CTAs of 128 threads) then a dependent of %d CTAs of 256 threads "
              "(%d SMs); us from the spin's first CTA start, the median of %d launches\n\n",
              kSpinCtas, kNextCtas, sms, kReps);
  std::printf("| launched | spin's shared memory | spin's last start | spin's last end | dependent's first start | dependent "
              "CTAs started before the spin's end | dependent's first wait return | its last wait return |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (int graph = 0; graph < 2; ++graph) {
    for (const size_t spin_smem : {size_t{0}, size_t{96} * 1024}) {
      auto enqueue = [&]() {
        CHECK(lil::cuda::LaunchPdl(ProbeSpin, dim3(kSpinCtas), dim3(128), spin_smem, st, 10000LL, ts));
        CHECK(lil::cuda::LaunchPdl(ProbeNext, dim3(kNextCtas), dim3(256), 0, st, tn));
      };
      cudaGraphExec_t exec = nullptr;
      if (graph) {
        cudaGraph_t g;
        CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        enqueue();
        CHECK(cudaStreamEndCapture(st, &g));
        CHECK(cudaGraphInstantiate(&exec, g, 0));
        CHECK(cudaGraphDestroy(g));
      }
      std::vector<std::array<double, 6>> runs;
      for (int rep = 0; rep <= kReps; ++rep) {  // rep 0: warm-up
        if (graph) {
          CHECK(cudaGraphLaunch(exec, st));
        } else {
          enqueue();
        }
        CHECK(cudaStreamSynchronize(st));
        std::vector<unsigned long long> a(2 * kSpinCtas), b(2 * kNextCtas);
        CHECK(cudaMemcpy(a.data(), ts, a.size() * sizeof(a[0]), cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(b.data(), tn, b.size() * sizeof(b[0]), cudaMemcpyDeviceToHost));
        unsigned long long s0 = ~0ull, s_last = 0, e_last = 0, n0 = ~0ull, w0 = ~0ull, w_last = 0;
        for (int i = 0; i < kSpinCtas; ++i) {
          s0 = std::min(s0, a[2 * i]);
          s_last = std::max(s_last, a[2 * i]);
          e_last = std::max(e_last, a[2 * i + 1]);
        }
        int early = 0;
        for (int i = 0; i < kNextCtas; ++i) {
          n0 = std::min(n0, b[2 * i]);
          early += b[2 * i] < e_last ? 1 : 0;
          w0 = std::min(w0, b[2 * i + 1]);
          w_last = std::max(w_last, b[2 * i + 1]);
        }
        auto us = [&](unsigned long long t) { return (static_cast<double>(t) - static_cast<double>(s0)) / 1e3; };
        if (rep > 0) runs.push_back({us(s_last), us(e_last), us(n0), static_cast<double>(early), us(w0), us(w_last)});
      }
      std::array<double, 6> med{};
      for (int k = 0; k < 6; ++k) {
        std::vector<double> col;
        for (const auto& r : runs) col.push_back(r[k]);
        std::sort(col.begin(), col.end());
        med[k] = col[col.size() / 2];
      }
      std::printf("| %s | %zu KiB | %.2f | %.2f | %.2f | %.0f | %.2f | %.2f |\n", graph ? "graph" : "stream", spin_smem / 1024,
                  med[0], med[1], med[2], med[3], med[4], med[5]);
      if (exec != nullptr) CHECK(cudaGraphExecDestroy(exec));
    }
  }
  std::printf("\n");
  CHECK(cudaFree(ts));
  CHECK(cudaFree(tn));
}

// --o-probe: the attention stand-in then the o GEMV alone, `layers` times in a graph, with o's
// weights distinct per layer (read from HBM) or one layer's for all (left in the L2 by the
// previous repetition): how much of o's time after the stand-in is its HBM stream.
void RunOProbe(const Weights& w, const State& s, int layers, double floor_o_us) {
  cudaStream_t st;
  CHECK(cudaStreamCreate(&st));
  std::printf("| stand-in (ns) | o weights | us a (stand-in, o) pair | minus the stand-in's spin | o's bytes at the read ceiling |\n|---|---|---|---|---|\n");
  for (const long long ns : {0LL, 5000LL, 10000LL}) {
    for (int hot = 0; hot < 2; ++hot) {
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      for (int l = 0; l < layers; ++l) {
        CHECK(lil::cuda::LaunchPdl(StandInKernel, dim3(128), dim3(128), kStandInSmem, st, s.qkv, s.attn, ns));
        CHECK(lil::cuda::Gemv(ResidualGemv(s.attn, w.o + static_cast<size_t>(hot ? 0 : l) * kHidden * kHidden, s, kHidden), st));
      }
      CHECK(cudaStreamEndCapture(st, &graph));
      CHECK(cudaGraphInstantiate(&exec, graph, 0));
      const double us = lil::bench::MedianMs([&](int) { CHECK(cudaGraphLaunch(exec, st)); }, 10, 9) * 1e3 / layers;
      std::printf("| %lld | %s | %.2f | %.2f | %.2f |\n", ns, hot ? "one copy (L2)" : "per layer (HBM)", us, us - ns / 1e3,
                  floor_o_us);
      CHECK(cudaGraphExecDestroy(exec));
      CHECK(cudaGraphDestroy(graph));
    }
  }
  std::printf("\n");
}

}  // namespace lil::bench::persistent
