// File: kernels/cuda/tma.cuh
// 2-D TMA box copies (sm_90): the device side (a box of a tensor map into shared memory,
// counted in bytes on an mbarrier: kernels/cuda/cp_async.cuh) and the host side (tensor maps
// made through the driver's cuTensorMapEncodeTiled, reached through the runtime, so nothing
// links libcuda; kernels/cuda/tma.cu). Used by gemm_skinny.cu and bench/gpu_tma_stream_bench.cu.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cp_async.cuh"

namespace lil::cuda {

// Box (c0 = inner coordinate, c1 = row) of `map` into dst, counted on bar.
__device__ __forceinline__ void TmaLoad2d(void* dst, const CUtensorMap* map, int32_t c0, int32_t c1, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          SmemAddr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(SmemAddr(bar))
      : "memory");
#endif
}

// Whether the driver offers cuTensorMapEncodeTiled.
bool TmaAvailable();
// The map of a row-major bf16 [outer][inner] matrix at `base` in boxes of box_rows x
// box_inner elements (rows past `outer` read as zeros), with the 128-byte swizzle or none;
// made once per (address, shape, box, swizzle) and cached (weights and activation buffers live
// as long as the backend). False when the driver lacks TMA or refuses the shape.
bool TensorMap2d(const void* base, int32_t inner, int32_t outer, int32_t box_inner, int32_t box_rows, bool swizzle128,
                 CUtensorMap* out);

}  // namespace lil::cuda
