// File: kernels/cuda/gemv.cu
// y[rows, out] = x[rows, in] * w[out, in]^T for rows <= kGemvMaxRows (decode): a
// memory-bound weight stream. Each warp owns two output rows and walks `in` with 16-byte
// loads, four per row in flight per lane; the x slice it needs is loaded once per step and
// used for both rows. fp32 accumulation, one warp reduction per output at the end.
#include "kernels/cuda/ops.h"
#include "kernels/cuda/pdl.h"

namespace lil::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kRowsPerWarp = 2;
constexpr int kUnroll = 4;

__device__ __forceinline__ float Dot8(const uint4& a, const uint4& b) {
  const uint32_t wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    s = fmaf(__uint_as_float(wa[i] << 16), __uint_as_float(wb[i] << 16), s);
    s = fmaf(__uint_as_float(wa[i] & 0xffff0000u), __uint_as_float(wb[i] & 0xffff0000u), s);
  }
  return s;
}

template <int M>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) GemvKernel(GemmParams p) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t n0 = (blockIdx.x * kWarpsPerBlock + warp) * kRowsPerWarp;
  if (n0 >= p.out) return;
  const bool has1 = n0 + 1 < p.out;
  const int32_t k_dim = p.in;
  const bf16* w0 = p.w + static_cast<int64_t>(n0) * k_dim;
  const bf16* w1 = has1 ? w0 + k_dim : w0;
  float acc0[M], acc1[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = 0.0f;
  // The first weight loads go out before the wait for the previous kernel (PDL): they depend
  // on nothing it writes, so this kernel's stream starts while that one drains.
  uint4 a[kUnroll], b[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int32_t k = lane * 8 + u * 256;
    if (k < k_dim) {
      a[u] = __ldcs(reinterpret_cast<const uint4*>(w0 + k));
      b[u] = __ldcs(reinterpret_cast<const uint4*>(w1 + k));
    }
  }
  PdlWait();
  PdlTrigger();
  for (int32_t kb = lane * 8; kb < k_dim; kb += 32 * 8 * kUnroll) {
    if (kb != lane * 8) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int32_t k = kb + u * 256;
        if (k < k_dim) {
          a[u] = __ldcs(reinterpret_cast<const uint4*>(w0 + k));
          b[u] = __ldcs(reinterpret_cast<const uint4*>(w1 + k));
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int32_t k = kb + u * 256;
      if (k < k_dim) {
#pragma unroll
        for (int m = 0; m < M; ++m) {
          if (m >= p.rows) break;  // rows 3 of the M = 4 kernel
          const uint4 xv = __ldg(reinterpret_cast<const uint4*>(p.x + static_cast<int64_t>(m) * k_dim + k));
          acc0[m] += Dot8(a[u], xv);
          acc1[m] += Dot8(b[u], xv);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      acc0[m] += __shfl_xor_sync(0xffffffffu, acc0[m], o);
      acc1[m] += __shfl_xor_sync(0xffffffffu, acc1[m], o);
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (m >= p.rows) break;
      p.y[static_cast<int64_t>(m) * p.out + n0] = acc0[m];
      if (has1) p.y[static_cast<int64_t>(m) * p.out + n0 + 1] = acc1[m];
    }
  }
}

}  // namespace

bool GemvSupported(const GemmParams& p) {
  return p.rows >= 1 && p.rows <= kGemvMaxRows && p.in % 8 == 0 &&
         reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && reinterpret_cast<uintptr_t>(p.w) % 16 == 0;
}

cudaError_t Gemv(const GemmParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.out == 0) return cudaSuccess;
  if (!GemvSupported(p)) return cudaErrorInvalidValue;
  const int rows_per_block = kWarpsPerBlock * kRowsPerWarp;
  const dim3 grid((p.out + rows_per_block - 1) / rows_per_block);
  const int threads = kWarpsPerBlock * 32;
  switch (p.rows) {
    case 1: return LaunchPdl(GemvKernel<1>, grid, threads, 0, stream, p);
    case 2: return LaunchPdl(GemvKernel<2>, grid, threads, 0, stream, p);
    case 3:
    case 4: return LaunchPdl(GemvKernel<4>, grid, threads, 0, stream, p);
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace lil::cuda
