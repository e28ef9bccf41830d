// File: kernels/cuda/cp_async.cuh
// cp.async (sm_80+) helpers shared by the kernels that stage global data in shared memory
// without holding it in registers: attention_tc.cu (K / V tiles), quest.cu (page metadata);
// the sm_90 mbarrier helpers that TMA copies complete on (gemm_skinny.cu: weight and x
// boxes); and the L2 prefetch the split attention (split_merge.cuh) and Quest's selection use.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace lil::cuda {

// Asks the L2 to fetch [ptr, ptr + bytes) (TMA bulk prefetch, sm_90; bytes a multiple of 16).
// Nothing comes back to registers, so it is safe on data another kernel is still writing: the
// L2 is where those writes land.
__device__ __forceinline__ void PrefetchL2(const void* ptr, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(ptr), "r"(bytes) : "memory");
#endif
}

// 16 bytes global -> shared, asynchronously; `valid` false writes zeros (src-size 0; src is
// not read but must still be a mapped address). kL2Block: the L2 fetches the whole 256-byte
// block around src on a miss (.L2::256B), for streams that read every byte of long contiguous
// runs (KV pages).
template <bool kL2Block = false>
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, bool valid) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  if constexpr (kL2Block) {
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0) : "memory");
  }
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void CpAsyncWaitOne() { CpAsyncWait<1>(); }
__device__ __forceinline__ void CpAsyncWaitAll() { CpAsyncWait<0>(); }


// ---- sm_90: mbarriers (TMA copies count their bytes on one) ---------------------------
__device__ __forceinline__ uint32_t SmemAddr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
// An mbarrier expecting `count` arrivals a phase (then __syncthreads before any use).
__device__ __forceinline__ void MbarInit(uint64_t* bar, uint32_t count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SmemAddr(bar)), "r"(count) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// One arrival that also announces `bytes` of bulk copies this phase waits for.
__device__ __forceinline__ void MbarArriveExpectTx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(SmemAddr(bar)), "r"(bytes) : "memory");
#endif
}
// One plain arrival.
__device__ __forceinline__ void MbarArrive(uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(SmemAddr(bar)) : "memory");
#endif
}
// Waits until the phase with parity `parity` of `bar` completed.
__device__ __forceinline__ void MbarWait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "wait_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra wait_%=;\n"
      "}\n" ::"r"(SmemAddr(bar)),
      "r"(parity)
      : "memory");
#endif
}
// Orders this thread's earlier shared-memory accesses (generic proxy) before later TMA copies
// into the same buffers (async proxy).
__device__ __forceinline__ void FenceProxyAsync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

}  // namespace lil::cuda
