// File: engine/cuda/gemm.h
// y[rows, out] (fp32) = x[rows, in] (bf16) * w[out, in]^T (bf16), fp32 accumulation, through
// cuBLAS (cublasGemmEx). cuBLAS is opened with dlopen (libcublas.so.13, or $LILSERVE_CUBLAS)
// so building the module needs no cuBLAS; without it the simple tiled kernel of
// kernels/cuda/ops.h runs instead, with a warning (correct, much slower). Decode-sized
// products (rows <= kGemvMaxRows) run our GEMV kernel unless $LILSERVE_GEMV=0, in the work
// split $LILSERVE_GEMV_VARIANT names (default 0). $LILSERVE_GEMV_VARIANT=auto times every
// variant and cuBLAS the first time a (rows, in, out) shape runs outside a graph capture,
// each launch after a 64 MiB write that evicts the weights from the L2, keeps the fastest
// for that shape and logs the choice (captures before that use variant 0).
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "kernels/cuda/ops.h"

namespace lil::cuda {

class Gemm {
 public:
  // Binds to `stream`; prefers cuBLAS unless `force_fallback`.
  static absl::StatusOr<Gemm> Create(cudaStream_t stream, bool force_fallback = false);
  Gemm(Gemm&& o) noexcept;
  Gemm& operator=(Gemm&& o) noexcept;
  ~Gemm();

  absl::Status Run(const bf16* x, const bf16* w, float* y, int32_t rows, int32_t in,
                   int32_t out) const;
  bool uses_cublas() const { return handle_ != nullptr; }
  // Whether decode shapes are timed at first use ($LILSERVE_GEMV_VARIANT=auto): a caller about
  // to capture a graph runs the step once outside the capture first.
  bool tunes_gemv() const { return tune_gemv_; }
  const std::string& library() const { return library_; }

 private:
  Gemm() = default;
  cudaStream_t stream_ = nullptr;
  void* handle_ = nullptr;  // cublasHandle_t
  std::string library_;
  // cublasGemmEx on p (handle_ must be set); its status.
  int CublasGemm(const GemmParams& p) const;
  // The GEMV variant (0..kGemvVariants-1) or -1 (cuBLAS) for a decode shape, timed once.
  int TunedGemv(const GemmParams& p) const;
  bool use_gemv_ = false;
  bool tune_gemv_ = false;
  mutable std::map<std::tuple<int32_t, int32_t, int32_t>, int> gemv_choice_;
  static constexpr size_t kWorkspaceBytes = 32u << 20;
  void* workspace_ = nullptr;  // cuBLAS workspace (cublasSetWorkspace), capture-safe  // rows <= kGemvMaxRows through kernels/cuda/gemv.cu ($LILSERVE_GEMV=0: off)
};

}  // namespace lil::cuda
