// File: kernels/cuda/mma.cuh
// Tensor-core helpers shared by flash_prefill.cu and attention_tc.cu: bf16 pair packing and
// mma.sync m16n8k16 (bf16 in, fp32 accumulate). Fragment layouts (lane = 4 * gid + tig):
// A 16x16 row-major {row gid, cols 2tig..+1}, {row gid+8, same}, {row gid, cols 2tig+8..+9},
// {row gid+8, same}; B 16x8 (k x n) {k 2tig..+1, n gid}, {k 2tig+8..+9, n gid}; C 16x8
// {row gid, cols 2tig..+1}, {row gid+8, same}.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace lil::cuda {

// Two floats as a bf16 pair in one 32-bit register, `lo` in the low half.
__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// c += a * b for one m16n8k16 tile.
__device__ __forceinline__ void MmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace lil::cuda
