// File: bench/gpu_bench_util.cuh
// What the GPU kernel benchmarks share: CHECK for CUDA calls, a deterministic bf16 fill, the
// median time of a launch repeated in CUDA-event-timed batches, and the HBM read ceiling of
// this run (a streaming sum over 4 GiB: reading alone, the figure every kernel is set beside).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace lil::bench {

using bf16 = __nv_bfloat16;

#define CHECK(x)                                                                        \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

static __global__ void SumKernel(const uint4* p, size_t n, float* out) {
  float s = 0.0f;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(p + i);
    s += __uint_as_float(v.x) + __uint_as_float(v.y) + __uint_as_float(v.z) + __uint_as_float(v.w);
  }
  if (s == 12345.678f) *out = s;  // keeps the loads; practically never true
}

static __global__ void FillKernel(bf16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16((static_cast<float>(h & 0xffff) / 65536.0f - 0.5f) * 2.0f);
  }
}

template <typename F>
double MedianMs(F&& launch, int reps, int samples) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  launch(0);
  CHECK(cudaDeviceSynchronize());
  std::vector<double> ms;
  int it = 1;
  for (int s = 0; s < samples; ++s) {
    CHECK(cudaEventRecord(a));
    for (int r = 0; r < reps; ++r) launch(it++);
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t / reps);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The device's SM count.
inline int SmCount() {
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  return sms;
}

inline double ReadTbs() {
  const size_t bytes = size_t{4} << 30;
  void* p = nullptr;
  float* out = nullptr;
  CHECK(cudaMalloc(&p, bytes));
  CHECK(cudaMalloc(&out, 4));
  CHECK(cudaMemset(p, 0, bytes));
  const int sms = SmCount();
  const double ms = MedianMs([&](int) { SumKernel<<<sms * 8, 512>>>(static_cast<const uint4*>(p), bytes / 16, out); }, 5, 7);
  CHECK(cudaFree(p));
  CHECK(cudaFree(out));
  return bytes / (ms * 1e-3) / 1e12;
}

// ReadTbs(), printed as the run's ceiling line.
inline double PrintReadTbs() {
  const double tbs = ReadTbs();
  std::printf("HBM read bandwidth (streaming sum over 4 GiB, this run): %.3f TB/s\n\n", tbs);
  return tbs;
}

}  // namespace lil::bench
