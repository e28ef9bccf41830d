// File: bench/gpu_persistent_bench.cu
// Where the batch-1 decode step's kernel boundaries cost time, and whether a persistent layer
// kernel would take them out (issue 6, goal 1; docs/GPU.md "Missing / next" 1). Three tables:
// default: the four weight products of a Llama-3-8B layer (qkv 6,144 x 4,096 with the RMSNorm,
//   o 4,096 x 4,096 + residual, gate_up 28,672 x 4,096 as (gate, up) row pairs with the norm and
//   SwiGLU, down 4,096 x 14,336 + residual) over --layers layers, with an attention stand-in
//   between qkv and o (a kernel that copies q to the attention output after spinning --attn-ns,
//   default 0 and 5,000: the latency chain the real attention keeps after its wait), each layer's
//   time beside its weights' bytes at the read ceiling of this run, two ways:
//     kernels    the step's way: the backend's GEMV (lil::cuda::Gemv with its fusions and its
//                variant choice) and the stand-in, launched with PDL in one CUDA graph;
//     persistent a prototype: one kernel, one CTA an SM for the whole run, every warp streaming
//                its rows' weights through its own ring of shared-memory stages (1-D bulk
//                copies on mbarriers) that runs ahead across the grid barriers between phases;
//                the phase's input (8-28 KiB) is copied to shared memory after each barrier.
//                Rows: ring shapes, units in contiguous blocks per SM, with the dot products or
//                the barriers left out (the stream alone), and with the units drawn at run time
//                from a counter per phase instead of a static split.
//   Both ways end with the same residual x; the table prints their relative difference.
// --o-probe: the stand-in then the o GEMV alone, weights per layer (HBM) or one copy (L2): how
//   much of o's time after a stall its HBM stream is.
// --probe: when a PDL dependent's CTAs start and when its wait returns, against a 10 us kernel.
// Prints Markdown tables. Results: docs/PERF.md, session 22. The prototype's kernels are in
// gpu_persistent_kernels.cu, the probes in gpu_persistent_probes.cu, what they share in
// gpu_persistent_bench.cuh.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "bench/gpu_persistent_bench.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/pdl.h"

namespace lil::bench::persistent {

// The attention stand-in: 128 CTAs of 128 threads holding 96 KiB of shared memory each (the
// tensor-core attention holds 70 KiB and 208 registers a thread), so the o GEMV after it finds
// an SM about as full as the real attention leaves it.
__global__ void __launch_bounds__(128) StandInKernel(const bf16* q, bf16* out, long long ns) {
  lil::cuda::PdlWait();
  lil::cuda::PdlTrigger();
  if (threadIdx.x == 0) Spin(ns);
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kHidden; i += gridDim.x * blockDim.x) out[i] = q[i];
}

lil::cuda::GemmParams ResidualGemv(const bf16* x, const bf16* w, const State& s, int in) {
  lil::cuda::GemmParams p{};
  p.rows = 1;
  p.x = x;
  p.w = w;
  p.y = s.x;
  p.add_to_y = true;
  p.y_bf16 = s.xb;
  p.in = in;
  p.out = kHidden;
  return p;
}

namespace {

void EnqueueKernels(const Weights& w, const State& s, int layers, long long attn_ns, cudaStream_t st) {
  for (int l = 0; l < layers; ++l) {
    lil::cuda::GemmParams p{};
    p.rows = 1;
    // qkv: the norm folded (its weight would be in w's columns), bf16 out.
    p.x = s.xb;
    p.w = w.qkv + static_cast<size_t>(l) * kQkv * kHidden;
    p.y = s.scratch;
    p.y_bf16 = s.qkv;
    p.in = kHidden;
    p.out = kQkv;
    p.norm_eps = kEps;
    CHECK(lil::cuda::Gemv(p, st));
    CHECK(lil::cuda::LaunchPdl(StandInKernel, dim3(128), dim3(128), kStandInSmem, st, s.qkv, s.attn, attn_ns));
    CHECK(lil::cuda::Gemv(ResidualGemv(s.attn, w.o + static_cast<size_t>(l) * kHidden * kHidden, s, kHidden), st));  // o
    // gate_up: norm, SwiGLU.
    p = lil::cuda::GemmParams{};
    p.rows = 1;
    p.x = s.xb;
    p.w = w.gu + static_cast<size_t>(l) * 2 * kInter * kHidden;
    p.y = s.scratch;
    p.swiglu_out = s.h;
    p.in = kHidden;
    p.out = 2 * kInter;
    p.norm_eps = kEps;
    CHECK(lil::cuda::Gemv(p, st));
    CHECK(lil::cuda::Gemv(ResidualGemv(s.h, w.down + static_cast<size_t>(l) * kHidden * kInter, s, kInter), st));  // down
  }
}

__global__ void ScaledFill(bf16* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16((static_cast<float>(h & 0xffff) / 65536.0f - 0.5f) * 2.0f * scale);
  }
}

__global__ void InitX(float* x, bf16* xb) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kHidden; i += gridDim.x * blockDim.x) {
    const float v = sinf(0.37f * static_cast<float>(i)) + 0.1f;
    x[i] = v;
    xb[i] = __float2bfloat16(v);
  }
}

}  // namespace
}  // namespace lil::bench::persistent

int main(int argc, char** argv) {
  using namespace lil::bench;
  using namespace lil::bench::persistent;
  int layers = 8;
  bool o_probe = false;
  std::vector<long long> attn_ns = {0, 5000};
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--layers" && a + 1 < argc) {
      layers = std::atoi(argv[++a]);
    } else if (arg == "--probe") {
      RunProbe(SmCount());
      return 0;
    } else if (arg == "--o-probe") {
      o_probe = true;
    } else if (arg == "--attn-ns" && a + 1 < argc) {
      attn_ns = {std::atoll(argv[++a])};
    } else {
      std::fprintf(stderr, "usage: gpu_persistent_bench [--layers N] [--attn-ns NS | --o-probe] | --probe\n");
      return 2;
    }
  }
  if (layers < 1 || layers > 64) {
    std::fprintf(stderr, "--layers must be 1..64, got %d\n", layers);
    return 2;
  }
  const double tbs = PrintReadTbs();
  const int sms = SmCount();

  const size_t n_qkv = size_t{kQkv} * kHidden, n_o = size_t{kHidden} * kHidden, n_gu = size_t{2} * kInter * kHidden,
               n_down = size_t{kHidden} * kInter;
  const size_t per_layer = n_qkv + n_o + n_gu + n_down;
  bf16* wbuf = nullptr;
  CHECK(cudaMalloc(&wbuf, per_layer * layers * sizeof(bf16)));
  ScaledFill<<<sms * 8, 512>>>(wbuf, per_layer * layers, 7u, 0.02f);
  CHECK(cudaGetLastError());
  Weights w;
  w.qkv = wbuf;
  w.o = w.qkv + n_qkv * layers;
  w.gu = w.o + n_o * layers;
  w.down = w.gu + n_gu * layers;

  State s{};
  CHECK(cudaMalloc(&s.x, kHidden * sizeof(float)));
  CHECK(cudaMalloc(&s.xb, kHidden * sizeof(bf16)));
  CHECK(cudaMalloc(&s.scratch, 2 * kInter * sizeof(float)));
  CHECK(cudaMalloc(&s.qkv, kQkv * sizeof(bf16)));
  CHECK(cudaMalloc(&s.attn, kHidden * sizeof(bf16)));
  CHECK(cudaMalloc(&s.h, kInter * sizeof(bf16)));
  unsigned *counter = nullptr, *units = nullptr;
  CHECK(cudaMalloc(&counter, sizeof(unsigned)));
  CHECK(cudaMalloc(&units, sizeof(unsigned) * layers * kPhases));
  CHECK(cudaFuncSetAttribute(StandInKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kStandInSmem)));
  cudaStream_t st;
  CHECK(cudaStreamCreate(&st));  // blocking: MedianMs records its events on the legacy stream

  if (o_probe) {
    RunOProbe(w, s, layers, static_cast<double>(n_o) * sizeof(bf16) / (tbs * 1e12) * 1e6);
    return 0;
  }
  const double bytes = static_cast<double>(per_layer) * sizeof(bf16);
  const double floor_us = bytes / (tbs * 1e12) * 1e6;
  std::printf("Llama-3-8B layer products at batch 1 (%d layers a launch, %.1f MB of weights a layer; floor %.2f us a "
              "layer at the read ceiling)\n\n",
              layers, bytes / 1e6, floor_us);
  std::printf("| attention stand-in (ns) | way | us a layer | of the floor | vs kernels | x vs kernels (rel. L2) |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::vector<float> ref(kHidden), got(kHidden);
  for (const long long ns : attn_ns) {
    // The step's way, one graph.
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    EnqueueKernels(w, s, layers, ns, st);
    CHECK(cudaStreamEndCapture(st, &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    InitX<<<16, 256, 0, st>>>(s.x, s.xb);
    CHECK(cudaGraphLaunch(exec, st));
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaMemcpy(ref.data(), s.x, kHidden * sizeof(float), cudaMemcpyDeviceToHost));
    const double k_ms = MedianMs([&](int) { CHECK(cudaGraphLaunch(exec, st)); }, 10, 9);
    const double k_us = k_ms * 1e3 / layers;
    std::printf("| %lld | kernels (PDL graph) | %.2f | %.3fx | 1.000x | - |\n", ns, k_us, k_us / floor_us);
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));

    for (const PersistentVariant& v : PersistentVariants()) {
      if (!PersistentFits(v)) {
        std::printf("| %lld | persistent, %s | does not fit an SM | | | |\n", ns, v.name);
        continue;
      }
      auto run = [&]() { LaunchPersistent(v, w, s, layers, ns, counter, units, sms, st); };
      InitX<<<16, 256, 0, st>>>(s.x, s.xb);
      run();
      CHECK(cudaStreamSynchronize(st));
      CHECK(cudaMemcpy(got.data(), s.x, kHidden * sizeof(float), cudaMemcpyDeviceToHost));
      double num = 0.0, den = 0.0;
      bool finite = true;
      for (int i = 0; i < kHidden; ++i) {
        finite = finite && std::isfinite(got[i]) && std::isfinite(ref[i]);
        num += (got[i] - ref[i]) * static_cast<double>(got[i] - ref[i]);
        den += ref[i] * static_cast<double>(ref[i]);
      }
      const double rel = finite && den > 0.0 ? std::sqrt(num / den) : INFINITY;
      const double p_ms = MedianMs([&](int) { run(); }, 10, 9);
      const double p_us = p_ms * 1e3 / layers;
      std::printf("| %lld | persistent, %s | %.2f | %.3fx | %.3fx | %.2e%s |\n", ns, v.name, p_us, p_us / floor_us,
                  p_us / k_us, rel, !v.comparable ? " (not comparable)" : rel < 2e-2 ? "" : " MISMATCH");
    }
  }
  std::printf("\n(persistent rows include the counters' memset nodes; the kernels' rows the graph launch)\n");
  CHECK(cudaFree(wbuf));
  return 0;
}
