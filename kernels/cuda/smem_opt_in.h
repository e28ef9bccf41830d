// File: kernels/cuda/smem_opt_in.h
// Dynamic shared memory above 48 KB must be opted into per kernel, and the attribute belongs
// to the function on each device: tensor-parallel ranks launch the same kernel from several
// threads on several GPUs, so the opt-in is made once per (kernel, device).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lil::cuda {

// Sets `kernel`'s maximum dynamic shared memory to `bytes` on the current device unless
// `configured` (the caller's one set of device bits for this kernel) says it is done.
inline cudaError_t OptInDynamicSmem(const void* kernel, size_t bytes, std::atomic<uint64_t>& configured) {
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  const uint64_t bit = uint64_t{1} << (device & 63);
  if ((configured.load(std::memory_order_acquire) & bit) != 0) return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e == cudaSuccess) configured.fetch_or(bit, std::memory_order_acq_rel);
  return e;
}

}  // namespace lil::cuda
