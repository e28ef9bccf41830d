// File: bench/gpu_boundary_bench.cu
// What a kernel boundary of the decode step costs, and whether a ready counter beats
// griddepcontrol.wait. A graph of 64 dependent kernels (each CTA reads every CTA's output of
// the kernel before it, so the dependency is grid-wide, like a GEMV reading the whole
// activation), timed per kernel in three modes:
//   plain   no PDL: the stream orders the kernels;
//   pdl     the step's pattern (kernels/cuda/pdl.h): weights issued, griddepcontrol.wait,
//           launch_dependents;
//   counter the producer's CTAs each raise a counter after their stores (fence + atomic); the
//           consumer polls it (acquire) instead of waiting for the grid's completion, then
//           lets its own dependents launch. Counters are zeroed by a memset node at the start
//           of the graph; deadlock-free because a PDL dependent only launches once every CTA
//           of the kernel before it has started.
// Two kernel bodies: "tiny" (no weights: the boundary alone) and "stream" (each kernel first
// issues its own 8 MiB of weights, distinct per kernel and 512 MiB in all, past the L2, as a
// GEMV does before its wait), beside the weights' time at the read ceiling of this run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "kernels/cuda/pdl.h"

namespace {

constexpr int kKernels = 64, kThreads = 256, kMaxVecs = 8;

enum Mode { kPlain = 0, kPdl = 1, kCounter = 2 };

__device__ __forceinline__ unsigned LoadAcquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// vecs: uint4 weights a thread streams (0: tiny).
template <int kMode>
__global__ void __launch_bounds__(kThreads) ChainKernel(const uint4* w, int vecs, const float* prev, int nprev, float* cur,
                                                        const unsigned* ready_prev, unsigned* ready_cur) {
  uint4 r[kMaxVecs];
  const uint4* wp = w + (static_cast<size_t>(blockIdx.x) * kThreads + threadIdx.x) * kMaxVecs;
#pragma unroll
  for (int i = 0; i < kMaxVecs; ++i) r[i] = i < vecs ? __ldcs(wp + i) : make_uint4(0, 0, 0, 0);
  if constexpr (kMode == kPdl) {
    lil::cuda::PdlWait();
    lil::cuda::PdlTrigger();
  } else if constexpr (kMode == kCounter) {
    if (ready_prev != nullptr && threadIdx.x == 0) {
      while (LoadAcquire(ready_prev) < static_cast<unsigned>(nprev)) __nanosleep(20);
    }
    __syncthreads();
    lil::cuda::PdlTrigger();
  }
  float acc = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxVecs; ++i) acc += __uint_as_float(r[i].x) + __uint_as_float(r[i].w);
  if (prev != nullptr) {
    for (int i = threadIdx.x; i < nprev; i += kThreads) acc += __ldcg(prev + i);
  }
  __shared__ float s;
  if (threadIdx.x == 0) s = 0.0f;
  __syncthreads();
  atomicAdd(&s, acc * 1e-30f);
  __syncthreads();
  if (threadIdx.x == 0) {
    cur[blockIdx.x] = s;
    if constexpr (kMode == kCounter) {
      __threadfence();
      atomicAdd(ready_cur, 1u);
    }
  }
}

// Microseconds per kernel of the 64-kernel graph in `mode`, `vecs` weight vectors a thread.
double UsPerKernel(int mode, int vecs, int ctas, const uint4* weights, float* acts, unsigned* ready) {
  cudaStream_t st;
  CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaGraph_t graph;
  CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  CHECK(cudaMemsetAsync(ready, 0, sizeof(unsigned) * kKernels, st));
  const size_t per_kernel = static_cast<size_t>(ctas) * kThreads * kMaxVecs;
  for (int k = 0; k < kKernels; ++k) {
    const uint4* w = weights + per_kernel * k;
    const float* prev = k > 0 ? acts + (k - 1) * ctas : nullptr;
    float* cur = acts + k * ctas;
    const unsigned* rp = k > 0 ? ready + k - 1 : nullptr;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(ctas);
    cfg.blockDim = dim3(kThreads);
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = mode == kPlain || k == 0 ? 0 : 1;
    const int nprev = k > 0 ? ctas : 0;
    if (mode == kPlain) {
      CHECK(cudaLaunchKernelEx(&cfg, ChainKernel<kPlain>, w, vecs, prev, nprev, cur, rp, ready + k));
    } else if (mode == kPdl) {
      CHECK(cudaLaunchKernelEx(&cfg, ChainKernel<kPdl>, w, vecs, prev, nprev, cur, rp, ready + k));
    } else {
      CHECK(cudaLaunchKernelEx(&cfg, ChainKernel<kCounter>, w, vecs, prev, nprev, cur, rp, ready + k));
    }
  }
  CHECK(cudaStreamEndCapture(st, &graph));
  cudaGraphExec_t exec;
  CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<double> us;
  CHECK(cudaGraphLaunch(exec, st));
  CHECK(cudaStreamSynchronize(st));
  for (int s = 0; s < 9; ++s) {
    CHECK(cudaEventRecord(a, st));
    for (int r = 0; r < 10; ++r) CHECK(cudaGraphLaunch(exec, st));
    CHECK(cudaEventRecord(b, st));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    us.push_back(ms * 1e3 / 10 / kKernels);
  }
  // Every kernel ran: the counters reached their CTA counts.
  std::vector<unsigned> seen(kKernels);
  CHECK(cudaMemcpy(seen.data(), ready, sizeof(unsigned) * kKernels, cudaMemcpyDeviceToHost));
  if (mode == kCounter) {
    for (int k = 0; k < kKernels; ++k) {
      if (seen[k] != static_cast<unsigned>(ctas)) {
        std::fprintf(stderr, "counter %d reached %u, expected %d\n", k, seen[k], ctas);
        std::exit(1);
      }
    }
  }
  CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaGraphDestroy(graph));
  CHECK(cudaStreamDestroy(st));
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main() {
  const int sms = lil::bench::SmCount();
  const double read_tbs = lil::bench::PrintReadTbs();
  const int max_ctas = 2 * sms;
  const size_t weight_vecs = static_cast<size_t>(max_ctas) * kThreads * kMaxVecs * kKernels;
  uint4* weights = nullptr;
  float* acts = nullptr;
  unsigned* ready = nullptr;
  CHECK(cudaMalloc(&weights, weight_vecs * sizeof(uint4)));
  CHECK(cudaMemset(weights, 0, weight_vecs * sizeof(uint4)));
  CHECK(cudaMalloc(&acts, sizeof(float) * max_ctas * kKernels));
  CHECK(cudaMalloc(&ready, sizeof(unsigned) * kKernels));
  std::printf("\n## Kernel boundaries: 64 dependent kernels in one graph, us per kernel\n\n");
  std::printf("| body | CTAs | weights MiB a kernel | floor us | plain | pdl | counter | counter vs pdl |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (int vecs : {0, kMaxVecs}) {
    for (int ctas : {sms, 2 * sms}) {
      const double bytes = static_cast<double>(ctas) * kThreads * vecs * sizeof(uint4);
      const double floor_us = bytes / (read_tbs * 1e12) * 1e6;
      const double plain = UsPerKernel(kPlain, vecs, ctas, weights, acts, ready);
      const double pdl = UsPerKernel(kPdl, vecs, ctas, weights, acts, ready);
      const double counter = UsPerKernel(kCounter, vecs, ctas, weights, acts, ready);
      std::printf("| %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %.2fx |\n", vecs == 0 ? "tiny" : "stream", ctas,
                  bytes / (1 << 20), floor_us, plain, pdl, counter, counter / pdl);
    }
  }
  return 0;
}
