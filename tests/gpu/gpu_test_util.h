// File: tests/gpu/gpu_test_util.h
// Helpers of the GPU tests: skip without a GPU, device arrays, bf16-rounded random data
// (so the CPU reference and the kernel see exactly the same inputs), NaN-poisoned outputs.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace lil::testing {

inline bool HaveGpu() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) cudaGetLastError();
  return e == cudaSuccess && n > 0;
}

#define LIL_SKIP_WITHOUT_GPU() \
  if (!::lil::testing::HaveGpu()) GTEST_SKIP() << "no CUDA device"

// A device copy of a host vector; Download() reads it back.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : n_(host.size()) {
    EXPECT_EQ(cudaMalloc(&p_, std::max<size_t>(1, n_) * sizeof(T)), cudaSuccess);
    if (n_ > 0) {
      EXPECT_EQ(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    }
  }
  // Filled with 0xFF bytes: NaN for float and bf16, -1 for ints (poisoned outputs).
  static DeviceArray Poisoned(size_t n) {
    std::vector<T> host(n);
    std::memset(static_cast<void*>(host.data()), 0xFF, n * sizeof(T));
    return DeviceArray(host);
  }
  ~DeviceArray() { cudaFree(p_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
  T* get() const { return p_; }
  std::vector<T> Download() const {
    std::vector<T> host(n_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (n_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    }
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

inline float RoundBf16(float x) { return __bfloat162float(__float2bfloat16(x)); }

// Uniform in [-scale, scale], rounded to bf16.
inline std::vector<float> RandomBf16Values(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = RoundBf16(u(rng));
  return v;
}

inline std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __float2bfloat16(v[i]);
  return out;
}

inline std::vector<float> ToF32(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __bfloat162float(v[i]);
  return out;
}

// Every element finite and within atol + rtol * |ref| of the reference; reports the worst.
inline ::testing::AssertionResult AllClose(const std::vector<float>& got, const std::vector<float>& ref,
                                           float atol, float rtol) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << ref.size();
  }
  size_t bad = 0, worst = 0;
  float worst_excess = 0.0f;
  for (size_t i = 0; i < got.size(); ++i) {
    const float tol = atol + rtol * std::fabs(ref[i]);
    const float err = std::fabs(got[i] - ref[i]);
    if (!std::isfinite(got[i]) || !(err <= tol)) {
      ++bad;
      const float excess = std::isfinite(got[i]) ? err - tol : std::numeric_limits<float>::infinity();
      if (bad == 1 || excess > worst_excess) {
        worst = i;
        worst_excess = excess;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements differ; worst at "
                                       << worst << ": got " << got[worst] << ", want " << ref[worst];
}

}  // namespace lil::testing
