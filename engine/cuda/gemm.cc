// File: engine/cuda/gemm.cc
// The few cuBLAS entry points we use, declared here with their documented C signatures and
// enum values (cublas_api.h), resolved with dlsym.
#include "engine/cuda/gemm.h"

#include <dlfcn.h>
#include <library_types.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/dl_open.h"

namespace lil::cuda {
namespace {

constexpr int kCublasOpN = 0;
constexpr int kCublasOpT = 1;
constexpr int kCublasCompute32F = 68;  // CUBLAS_COMPUTE_32F
constexpr int kCublasGemmDefault = -1;

using CreateFn = int (*)(void** handle);
using DestroyFn = int (*)(void* handle);
using SetStreamFn = int (*)(void* handle, cudaStream_t stream);
using SetWorkspaceFn = int (*)(void* handle, void* workspace, size_t bytes);
using GemmExFn = int (*)(void* handle, int transa, int transb, int m, int n, int k,
                         const void* alpha, const void* a, cudaDataType a_type, int lda,
                         const void* b, cudaDataType b_type, int ldb, const void* beta, void* c,
                         cudaDataType c_type, int ldc, int compute_type, int algo);

struct Cublas {
  CreateFn create = nullptr;
  DestroyFn destroy = nullptr;
  SetStreamFn set_stream = nullptr;
  GemmExFn gemm_ex = nullptr;
  SetWorkspaceFn set_workspace = nullptr;  // optional (cuBLAS >= 11)
  std::string path;
};

absl::StatusOr<Cublas> OpenCublas() {
  Cublas c;
  const absl::Status s = OpenLibrary("LILSERVE_CUBLAS", {"libcublas.so.13", "libcublas.so"}, [&](void* h) {
    c.create = reinterpret_cast<CreateFn>(dlsym(h, "cublasCreate_v2"));
    c.destroy = reinterpret_cast<DestroyFn>(dlsym(h, "cublasDestroy_v2"));
    c.set_stream = reinterpret_cast<SetStreamFn>(dlsym(h, "cublasSetStream_v2"));
    c.gemm_ex = reinterpret_cast<GemmExFn>(dlsym(h, "cublasGemmEx"));
    c.set_workspace = reinterpret_cast<SetWorkspaceFn>(dlsym(h, "cublasSetWorkspace_v2"));
    return c.create && c.destroy && c.set_stream && c.gemm_ex;
  }, &c.path);
  if (!s.ok()) return absl::NotFoundError(absl::StrCat("cuBLAS not found (", s.message(), ")"));
  return c;
}

const absl::StatusOr<Cublas>& GetCublas() {
  static const absl::StatusOr<Cublas> cublas = OpenCublas();
  return cublas;
}

}  // namespace

absl::StatusOr<Gemm> Gemm::Create(cudaStream_t stream, bool force_fallback) {
  Gemm g;
  g.stream_ = stream;
  g.library_ = "fallback kernel";
  if (force_fallback) return g;
  g.use_gemv_ = !EnvIs("LILSERVE_GEMV", "0");
  g.tune_gemv_ = EnvIs("LILSERVE_GEMV_VARIANT", "auto");
  // A variant named explicitly (or auto) covers every row count the GEMV takes.
  if (g.tune_gemv_ || GemvVariantFromEnv() >= 0) g.gemv_max_rows_ = kGemvMaxRows;
  const auto& cublas = GetCublas();
  if (!cublas.ok()) {
    static std::once_flag warned;
    std::call_once(warned, [&] {
      LIL_LOG_WARN("CUDA backend: {}; using the slow fallback GEMM kernel",
                   std::string(cublas.status().message()));
    });
    return g;
  }
  void* handle = nullptr;
  if (int rc = cublas->create(&handle); rc != 0) {
    return absl::InternalError(absl::StrCat("cublasCreate failed with status ", rc));
  }
  if (int rc = cublas->set_stream(handle, stream); rc != 0) {
    cublas->destroy(handle);
    return absl::InternalError(absl::StrCat("cublasSetStream failed with status ", rc));
  }
  g.handle_ = handle;
  g.library_ = cublas->path;
  // A workspace of our own, so cuBLAS never allocates while a CUDA graph is being captured.
  if (cublas->set_workspace != nullptr) {
    if (cudaMalloc(&g.workspace_, kWorkspaceBytes) == cudaSuccess) {
      if (cublas->set_workspace(handle, g.workspace_, kWorkspaceBytes) != 0) {
        cudaFree(g.workspace_);
        g.workspace_ = nullptr;
      }
    } else {
      cudaGetLastError();
      g.workspace_ = nullptr;
    }
  }
  return g;
}

Gemm::Gemm(Gemm&& o) noexcept
    : stream_(o.stream_), handle_(std::exchange(o.handle_, nullptr)), library_(std::move(o.library_)),
      use_gemv_(o.use_gemv_), tune_gemv_(o.tune_gemv_), gemv_max_rows_(o.gemv_max_rows_), gemv_choice_(std::move(o.gemv_choice_)),
      workspace_(std::exchange(o.workspace_, nullptr)) {}

Gemm& Gemm::operator=(Gemm&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) GetCublas()->destroy(handle_);
    if (workspace_ != nullptr) cudaFree(workspace_);
    workspace_ = std::exchange(o.workspace_, nullptr);
    stream_ = o.stream_;
    handle_ = std::exchange(o.handle_, nullptr);
    library_ = std::move(o.library_);
    use_gemv_ = o.use_gemv_;
    tune_gemv_ = o.tune_gemv_;
    gemv_max_rows_ = o.gemv_max_rows_;
    gemv_choice_ = std::move(o.gemv_choice_);
  }
  return *this;
}

Gemm::~Gemm() {
  if (handle_ != nullptr) GetCublas()->destroy(handle_);
  if (workspace_ != nullptr) cudaFree(workspace_);
}

int Gemm::CublasGemm(const GemmParams& p) const {
  // Column-major view: Y^T[out, rows] = W[out, in] (stored as W^T col-major) * X^T[in, rows].
  const float alpha = 1.0f, beta = 0.0f;
  return GetCublas()->gemm_ex(handle_, kCublasOpT, kCublasOpN, p.out, p.rows, p.in, &alpha, p.w, CUDA_R_16BF, p.in,
                              p.x, CUDA_R_16BF, p.in, &beta, p.y, CUDA_R_32F, p.out, kCublasCompute32F,
                              kCublasGemmDefault);
}

int Gemm::TunedGemv(const GemmParams& p) const {
  const auto key = std::make_tuple(p.rows, p.in, p.out);
  if (auto it = gemv_choice_.find(key); it != gemv_choice_.end()) return it->second;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) {
    return kGemvDefaultVariant;
  }
  // Candidates: every GEMV variant, then cuBLAS (-1) when it is loaded. Each is timed 5 times,
  // each launch after a 64 MiB write that evicts the weights (a decode step reads them from
  // HBM); the median decides.
  constexpr size_t kFlushBytes = size_t{64} << 20;
  void* flush = nullptr;
  cudaEvent_t a = nullptr, b = nullptr;
  if (cudaMalloc(&flush, kFlushBytes) != cudaSuccess || cudaEventCreate(&a) != cudaSuccess ||
      cudaEventCreate(&b) != cudaSuccess) {
    cudaFree(flush);
    cudaGetLastError();
    return gemv_choice_[key] = kGemvDefaultVariant;
  }
  int best = kGemvDefaultVariant;
  float best_us = 0.0f;
  std::string table;
  const int first = handle_ != nullptr ? -1 : 0;
  for (int v = first; v < kGemvVariants; ++v) {
    std::vector<float> us;
    for (int rep = 0; rep < 6; ++rep) {
      cudaMemsetAsync(flush, rep, kFlushBytes, stream_);
      cudaEventRecord(a, stream_);
      if (v >= 0) {
        GemvVariant(p, v, stream_);
      } else {
        CublasGemm(p);
      }
      cudaEventRecord(b, stream_);
      cudaEventSynchronize(b);
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, a, b);
      if (rep > 0) us.push_back(ms * 1e3f);  // the first launch of each is a warm-up
    }
    std::sort(us.begin(), us.end());
    const float med = us[us.size() / 2];
    absl::StrAppend(&table, table.empty() ? "" : ", ", v >= 0 ? absl::StrCat("v", v) : "cuBLAS", " ",
                    absl::SixDigits(med), " us");
    if (v == first || med < best_us) {
      best = v;
      best_us = med;
    }
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaFree(flush);
  if (cudaGetLastError() != cudaSuccess) best = kGemvDefaultVariant;
  LIL_LOG_INFO("GEMV autotune rows={} in={} out={}: {} ({})", p.rows, p.in, p.out,
               best >= 0 ? absl::StrCat("variant ", best) : std::string("cuBLAS"), table);
  return gemv_choice_[key] = best;
}

absl::Status Gemm::RunGemv(const GemmParams& p) const {
  if (!GemvAvailable(p.rows, p.in) || !GemvSupported(p)) {
    return absl::FailedPreconditionError(absl::StrCat("GEMV cannot run rows=", p.rows, " in=", p.in, " out=", p.out,
                                                      use_gemv_ ? "" : " ($LILSERVE_GEMV=0 or no GEMV)"));
  }
  // The default (or numbered) variant, never `auto`'s timing: timing writes y, which
  // add_to_y reads.
  LIL_CUDA_RETURN_IF_ERROR(Gemv(p, stream_));
  return absl::OkStatus();
}

absl::Status Gemm::Run(const bf16* x, const bf16* w, float* y, int32_t rows, int32_t in,
                       int32_t out) const {
  if (rows == 0) return absl::OkStatus();
  const GemmParams gp{x, w, y, rows, in, out};
  // Without cuBLAS the GEMV beats the fallback kernel at any row count it takes.
  if (use_gemv_ && (rows <= gemv_max_rows_ || handle_ == nullptr) && GemvSupported(gp)) {
    const int v = tune_gemv_ ? TunedGemv(gp) : -2;
    if (v != -1) {
      LIL_CUDA_RETURN_IF_ERROR(v >= 0 ? GemvVariant(gp, v, stream_) : Gemv(gp, stream_));
      return absl::OkStatus();
    }
  }
  if (handle_ == nullptr) {
    LIL_CUDA_RETURN_IF_ERROR(GemmFallback({x, w, y, rows, in, out}, stream_));
    return absl::OkStatus();
  }
  const int rc = CublasGemm(gp);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cublasGemmEx(rows=", rows, ", in=", in, ", out=", out,
                                            ") failed with status ", rc));
  }
  return absl::OkStatus();
}

}  // namespace lil::cuda
