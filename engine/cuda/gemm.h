// File: engine/cuda/gemm.h
// y[rows, out] (fp32) = x[rows, in] (bf16) * w[out, in]^T (bf16), fp32 accumulation, through
// cuBLAS (cublasGemmEx). cuBLAS is opened with dlopen (libcublas.so.13, or $LILSERVE_CUBLAS)
// so building the module needs no cuBLAS; without it the simple tiled kernel of
// kernels/cuda/ops.h runs instead, with a warning (correct, much slower). Which decode-sized
// products run our GEMV kernel (kernels/cuda/gemv.cu) instead of cuBLAS:
//   default                        one row, in variant kGemvDefaultVariant (its K split
//                                  fitted to `in` below 4096: gemv.cu); 2-4 rows go to
//                                  cuBLAS (on H200 cuBLAS beat every variant on every 8B
//                                  matrix at 4 rows, and every variant beat cuBLAS at one:
//                                  the choices `auto` made, docs/PERF.md)
//   $LILSERVE_GEMV_VARIANT=0..6    rows <= kGemvMaxRows in that variant
//   $LILSERVE_GEMV_VARIANT=auto    every variant and cuBLAS are timed the first time a
//                                  (rows, in, out) shape runs outside a graph capture, each
//                                  launch after a 64 MiB write that evicts the weights from
//                                  the L2; the fastest is kept for that shape and logged
//                                  (captures before that use the default variant)
//   $LILSERVE_GEMV=0               never (cuBLAS for every product)
// Products of kGemvMaxRows + 1 .. kLtMaxRows rows (decode batches) that go to cuBLAS take the
// fastest of cublasGemmEx's default and up to 8 cuBLASLt heuristic candidates, timed once per
// (rows, in, out) the first time the shape runs outside a graph capture (each launch after a
// 64 MiB write that evicts the weights; the choice is logged; a capture before that uses the
// default). The choice can differ between runs (timing), so results can too, by rounding;
// $LILSERVE_CUBLASLT=0 keeps cublasGemmEx's default everywhere.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

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
  // A decode product with GemmParams' fusions (norm_eps, add_to_y, y_bf16, swiglu_out,
  // rope_epilogue), which cuBLAS cannot do: one row through our GEMV in the default (or
  // numbered) variant, never `auto`'s timing (it writes y, which add_to_y reads); with
  // $LILSERVE_SKINNY=1, 2 .. kSkinnyMaxRows rows through the skinny tensor-core GEMM
  // (kernels/cuda/gemm_skinny.h; off by default: slower than cuBLAS plus the separate kernels,
  // docs/PERF.md session 12), else no product of several rows. FailedPrecondition when
  // FusedAvailable is false for it.
  absl::Status RunFused(const GemmParams& p) const;
  bool FusedAvailable(int32_t rows, int32_t in) const;
  bool GemvAvailable(int32_t rows, int32_t in) const {
    return use_gemv_ && rows >= 1 && rows <= kGemvMaxRows && in % 8 == 0;
  }
  bool uses_cublas() const { return handle_ != nullptr; }
  // Whether shapes are timed at first use ($LILSERVE_GEMV_VARIANT=auto, or cuBLASLt): a caller
  // about to capture a graph runs the step once outside the capture first.
  // Decided from process-wide facts (environment, libraries), so every tensor-parallel rank
  // answers the same and runs the same eager steps (with the same collectives).
  bool tunes() const { return tune_gemv_ || lt_wanted_; }
  static constexpr int32_t kLtMaxRows = 256;
  const std::string& library() const { return library_; }

 private:
  Gemm() = default;
  cudaStream_t stream_ = nullptr;
  void* handle_ = nullptr;  // cublasHandle_t
  std::string library_;
  // p through cuBLAS (handle_ must be set): cublasGemmEx's default, or the cuBLASLt algorithm
  // chosen for its shape; the cuBLAS status.
  int CublasGemm(const GemmParams& p) const;
  int DefaultGemmEx(const GemmParams& p) const;
  // Median microseconds of each of n candidates (launch(i) enqueues candidate i on stream_ and
  // says whether it did; one that did not gets +inf), each run 6 times after a 64 MiB write
  // that evicts the L2, the first run a warm-up. Empty on a CUDA error.
  std::vector<float> TimeCandidates(int n, const std::function<bool(int)>& launch) const;
  // The GEMV variant (0..kGemvVariants-1) or -1 (cuBLAS) for a decode shape, timed once.
  int TunedGemv(const GemmParams& p) const;
  bool use_gemv_ = false;
  bool tune_gemv_ = false;
  int32_t gemv_max_rows_ = 1;  // products with more rows go to cuBLAS (when loaded)
  mutable std::map<std::tuple<int32_t, int32_t, int32_t>, int> gemv_choice_;
  static constexpr size_t kWorkspaceBytes = 32u << 20;
  void* workspace_ = nullptr;  // cuBLAS workspace (cublasSetWorkspace), capture-safe
  struct LtState;              // gemm.cc: the cuBLASLt handle and a plan per tuned shape
  std::unique_ptr<LtState> lt_;
  struct SkinnyBuffers;        // gemm.cc: the skinny GEMM's workspace (null: off)
  std::unique_ptr<SkinnyBuffers> skinny_;
  bool lt_wanted_ = false;  // cuBLASLt loaded and not switched off
};

}  // namespace lil::cuda
