// File: kernels/cuda/cp_async.cuh
// cp.async (sm_80+) helpers shared by the kernels that stage global data in shared memory
// without holding it in registers: attention_tc.cu (K / V tiles), quest.cu (page metadata).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace lil::cuda {

// 16 bytes global -> shared, asynchronously; `valid` false writes zeros (src-size 0; src is
// not read but must still be a mapped address).
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void CpAsyncWaitOne() { CpAsyncWait<1>(); }
__device__ __forceinline__ void CpAsyncWaitAll() { CpAsyncWait<0>(); }

}  // namespace lil::cuda
