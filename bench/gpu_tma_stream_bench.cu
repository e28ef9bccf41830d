// File: bench/gpu_tma_stream_bench.cu
// How fast 2-D TMA boxes stream an 8B weight matrix with no arithmetic at all: the load side
// of the skinny GEMM (kernels/cuda/gemm_skinny.cu) alone. A persistent grid (1 or 2 CTAs an
// SM) splits the matrix's (row block, k block) boxes into equal contiguous ranges
// (stream-K, as the GEMM does); one producer lane keeps every stage of a ring of boxes in
// flight (full / empty mbarriers), one consumer warp waits for each box, reads a word of it
// and releases it. Box shapes and ring depths are swept; each row is set beside the HBM read
// ceiling measured in the same run. If a shape streams near the ceiling here but the GEMM
// built on it does not, the GEMM's own work is what costs; if not, the box shape or depth is.
// Session 12 wrote this after the GEMM stayed at 30-61% of the ceiling (docs/PERF.md); its first
// run (session 13): gate_up 86-90%, o 60-64% whatever the box, so the GEMM's own work is the
// gap. Usage: gpu_tma_stream_bench
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/tma.cuh"

namespace {

using lil::bench::FillKernel;
using lil::bench::MedianMs;
using lil::bench::bf16;

constexpr int kThreads = 64;  // warp 0 consumes, warp 1's lane 0 produces

template <int kRows, int kCols, int kStages>
constexpr size_t SmemBytes() { return size_t{kStages} * kRows * kCols * 2 + 1024 + 16 * kStages; }

template <int kRows, int kCols, int kStages>
__global__ void __launch_bounds__(kThreads) StreamKernel(const __grid_constant__ CUtensorMap map, int32_t row_blocks,
                                                        int32_t k_blocks, float* sink) {
  using namespace lil::cuda;
  constexpr uint32_t kBoxBytes = kRows * kCols * 2;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* ring = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + size_t{kStages} * kBoxBytes);
  uint64_t* empty = full + kStages;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t work = int64_t{row_blocks} * k_blocks, g = gridDim.x;
  const int64_t a = blockIdx.x * work / g, n = (blockIdx.x + 1) * work / g - a;
  if (threadIdx.x < kStages) {
    MbarInit(&full[threadIdx.x], 1);
    MbarInit(&empty[threadIdx.x], 1);
  }
  __syncthreads();
  if (warp == 1) {
    if (lane != 0) return;
    for (int64_t i = 0; i < n; ++i) {
      if (i >= kStages) MbarWait(&empty[i % kStages], static_cast<uint32_t>((i / kStages - 1) & 1));
      const int64_t s = a + i;
      MbarArriveExpectTx(&full[i % kStages], kBoxBytes);
      TmaLoad2d(ring + (i % kStages) * kBoxBytes, &map, static_cast<int32_t>((s % k_blocks) * kCols),
                static_cast<int32_t>(s / k_blocks) * kRows, &full[i % kStages]);
    }
    return;
  }
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    MbarWait(&full[i % kStages], static_cast<uint32_t>((i / kStages) & 1));
    acc += reinterpret_cast<const float*>(ring + (i % kStages) * kBoxBytes)[lane];
    __syncwarp();
    if (lane == 0) MbarArrive(&empty[i % kStages]);
  }
  if (acc == 12345.678f) *sink = acc;  // keeps the reads; practically never true
}

struct Matrix {
  const char* name;
  int32_t rows, cols;
};

template <int kRows, int kCols, int kStages>
void Row(const Matrix& m, const std::vector<bf16*>& copies, int ctas_per_sm, int sms, double read_tbs, float* sink) {
  const bool swizzle = kCols * 2 == 128;  // 128-byte rows: the GEMM's swizzled boxes; wider: none
  std::vector<CUtensorMap> maps(copies.size());
  for (size_t c = 0; c < copies.size(); ++c) {
    if (!lil::cuda::TensorMap2d(copies[c], m.cols, m.rows, kCols, kRows, swizzle, &maps[c])) {
      std::printf("| %s | %d x %d | %d | %d | tensor map refused | | |\n", m.name, kRows, kCols * 2, kStages, ctas_per_sm);
      return;
    }
  }
  const auto kernel = StreamKernel<kRows, kCols, kStages>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(SmemBytes<kRows, kCols, kStages>())));
  int fit = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, kThreads, SmemBytes<kRows, kCols, kStages>()));
  if (fit < ctas_per_sm) {
    std::printf("| %s | %d x %d B | %d | %d | does not fit (%d an SM) | | |\n", m.name, kRows, kCols * 2, kStages, ctas_per_sm, fit);
    return;
  }
  const int32_t row_blocks = (m.rows + kRows - 1) / kRows, k_blocks = m.cols / kCols;
  const double ms = MedianMs([&](int it) {
    kernel<<<ctas_per_sm * sms, kThreads, SmemBytes<kRows, kCols, kStages>()>>>(maps[it % maps.size()], row_blocks, k_blocks, sink);
    CHECK(cudaGetLastError());
  }, 20, 7);
  const double bytes = static_cast<double>(m.rows) * m.cols * 2, tbs = bytes / (ms * 1e-3) / 1e12;
  std::printf("| %s | %d x %d B | %d | %d | %.1f | %.3f | %.0f%% |\n", m.name, kRows, kCols * 2, kStages, ctas_per_sm,
              ms * 1e3, tbs, 100.0 * tbs / read_tbs);
}

}  // namespace

int main() {
  const int sms = lil::bench::SmCount();
  const double read_tbs = lil::bench::PrintReadTbs();
  if (!lil::cuda::TmaAvailable()) {
    std::printf("no cuTensorMapEncodeTiled in this driver: nothing to measure\n");
    return 0;
  }
  float* sink = nullptr;
  CHECK(cudaMalloc(&sink, sizeof(float)));
  std::printf("\n## 2-D TMA boxes streaming an 8B matrix, no arithmetic (us per pass; read ceiling %.3f TB/s)\n\n", read_tbs);
  std::printf("| matrix | box (rows x row bytes) | stages | CTAs an SM | us | TB/s | of ceiling |\n|---|---|---|---|---|---|---|\n");
  for (const Matrix& m : {Matrix{"gate_up", 28672, 4096}, Matrix{"o", 4096, 4096}}) {
    const size_t elems = static_cast<size_t>(m.rows) * m.cols;
    const int ncopies = static_cast<int>(std::max<size_t>(2, (size_t{1} << 30) / (elems * 2) + 1));  // >= 1 GiB rotated
    std::vector<bf16*> copies(ncopies);
    for (int c = 0; c < ncopies; ++c) {
      CHECK(cudaMalloc(&copies[c], elems * 2));
      FillKernel<<<sms * 8, 256>>>(copies[c], elems, 5 + c);
    }
    CHECK(cudaDeviceSynchronize());
    Row<128, 64, 8>(m, copies, 1, sms, read_tbs, sink);    // the GEMM's weight box (T5: 10 stages)
    Row<128, 64, 12>(m, copies, 1, sms, read_tbs, sink);
    Row<128, 64, 5>(m, copies, 2, sms, read_tbs, sink);    // the shipped GEMM's depth (T6)
    Row<64, 64, 8>(m, copies, 2, sms, read_tbs, sink);
    Row<64, 256, 6>(m, copies, 1, sms, read_tbs, sink);    // 512-byte rows, no swizzle
    Row<32, 256, 6>(m, copies, 2, sms, read_tbs, sink);
    Row<256, 64, 6>(m, copies, 1, sms, read_tbs, sink);
    for (bf16* p : copies) CHECK(cudaFree(p));
  }
  CHECK(cudaFree(sink));
  return 0;
}
