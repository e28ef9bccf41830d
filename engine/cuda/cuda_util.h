// File: engine/cuda/cuda_util.h
// CUDA errors as absl::Status (one macro), environment switches, and a grow-only device buffer.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/env.h"  // EnvIs, for the backend's A/B switches

namespace lil::cuda {

inline absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": CUDA error ", cudaGetErrorName(e), " (",
                                          cudaGetErrorString(e), ")"));
}

// Returns a Status naming the expression when a CUDA call fails.
#define LIL_CUDA_RETURN_IF_ERROR(expr) \
  LIL_RETURN_IF_ERROR(::lil::cuda::CudaStatus((expr), #expr))

// Owns one cudaMalloc allocation; Reserve only ever grows it (contents are not kept).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Free(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Free();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }

  absl::Status Reserve(size_t bytes) {
    if (bytes <= bytes_) return absl::OkStatus();
    Free();
    const cudaError_t e = cudaMalloc(&ptr_, bytes);
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      cudaGetLastError();
      return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", bytes, " bytes failed: ",
                                                       cudaGetErrorString(e)));
    }
    bytes_ = bytes;
    return absl::OkStatus();
  }
  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void Free() {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// The median of host timings (the traces' summaries: LILSERVE_STEP_TRACE, LILSERVE_TP_TRACE);
// v not empty.
inline int64_t MedianOf(std::vector<int64_t> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// A std::allocator stand-in that hands out page-locked host memory (cudaMallocHost), for
// vectors the GPU copies from asynchronously (the backend's BasicIntPack). Where the driver
// refuses (pinned memory exhausted), pageable memory instead: the copies then still work,
// staged through a driver buffer.
template <typename T>
struct PinnedAllocator {
  using value_type = T;
  PinnedAllocator() = default;
  template <typename U>
  PinnedAllocator(const PinnedAllocator<U>&) {}  // NOLINT: converting, as allocators are
  T* allocate(size_t n) {
    void* p = nullptr;
    if (cudaMallocHost(&p, n * sizeof(T)) != cudaSuccess) {
      cudaGetLastError();
      p = std::malloc(n * sizeof(T));
      if (p == nullptr) throw std::bad_alloc();
    }
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) {
    unsigned int flags = 0;
    if (cudaHostGetFlags(&flags, p) == cudaSuccess) {
      cudaFreeHost(p);
    } else {
      cudaGetLastError();
      std::free(p);
    }
  }
  template <typename U>
  bool operator==(const PinnedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const PinnedAllocator<U>&) const { return false; }
};

// Page-locked host memory, grow-only like DeviceBuffer (the one-shot all-reduce's host-mapped
// error word, nccl_comm.h; the logits rows the host samples, CudaBackend::FinishSampling; the
// step's upload uses PinnedAllocator above).
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { Free(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  absl::Status Reserve(size_t bytes) {
    if (bytes <= bytes_) return absl::OkStatus();
    Free();
    const size_t want = bytes + bytes / 2;
    const cudaError_t e = cudaMallocHost(&ptr_, want);
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      cudaGetLastError();
      return absl::ResourceExhaustedError(absl::StrCat("cudaMallocHost of ", want, " bytes failed: ",
                                                       cudaGetErrorString(e)));
    }
    bytes_ = want;
    return absl::OkStatus();
  }
  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }

 private:
  void Free() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace lil::cuda
