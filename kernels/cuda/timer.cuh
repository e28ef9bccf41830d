// File: kernels/cuda/timer.cuh
// The device clocks the kernels' diagnostics read: %globaltimer (ns, one clock for every SM, so
// CTAs and launches can be set side by side) and %smid. The phases inside a CTA use clock64.
#pragma once

#include <cstdint>

namespace lil::cuda {

__device__ __forceinline__ uint64_t GlobalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ uint32_t SmId() {
  uint32_t sm;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
  return sm;
}

}  // namespace lil::cuda
