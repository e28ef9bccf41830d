// File: engine/cuda/gemm.cc
// The few cuBLAS entry points we use, declared here with their documented C signatures and
// enum values (cublas_api.h), resolved with dlsym.
#include "engine/cuda/gemm.h"

#include <dlfcn.h>
#include <library_types.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/dl_open.h"
#include "kernels/cuda/gemm_skinny.h"

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

// cuBLASLt, declared the same way (cublasLt.h): descriptors are opaque pointers, enums ints.
constexpr int kLtDescTransA = 3, kLtDescTransB = 4;  // cublasLtMatmulDescAttributes_t
constexpr int kLtPrefMaxWorkspaceBytes = 1;          // cublasLtMatmulPreferenceAttributes_t (uint64_t)
constexpr int kLtPrefMinAlignA = 5;                  // ..._MIN_ALIGNMENT_{A,B,C,D}_BYTES = 5..8 (uint32_t)
constexpr uint32_t kLtAlignBytes = 16;               // what CublasGemm checks before using a plan
constexpr int kLtCandidates = 8;

struct LtAlgo {
  uint64_t data[8];
};
struct LtHeuristic {  // cublasLtMatmulHeuristicResult_t
  LtAlgo algo;
  size_t workspace;
  int state;
  float waves;
  int reserved[4];
};

using LtCreateFn = int (*)(void** handle);
using LtDestroyFn = int (*)(void* object);
using LtDescCreateFn = int (*)(void** desc, int compute_type, cudaDataType scale_type);
using LtSetFn = int (*)(void* object, int attr, const void* buf, size_t bytes);
using LtLayoutCreateFn = int (*)(void** layout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
using LtHeuristicFn = int (*)(void* handle, void* desc, void* a, void* b, void* c, void* d, void* pref,
                              int requested, LtHeuristic* results, int* returned);
using LtMatmulFn = int (*)(void* handle, void* desc, const void* alpha, const void* a, void* a_layout,
                           const void* b, void* b_layout, const void* beta, const void* c, void* c_layout, void* d,
                           void* d_layout, const LtAlgo* algo, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream);

struct CublasLt {
  LtCreateFn create = nullptr, pref_create = nullptr;
  LtDestroyFn destroy = nullptr, desc_destroy = nullptr, layout_destroy = nullptr, pref_destroy = nullptr;
  LtDescCreateFn desc_create = nullptr;
  LtSetFn desc_set = nullptr, pref_set = nullptr;
  LtLayoutCreateFn layout_create = nullptr;
  LtHeuristicFn heuristic = nullptr;
  LtMatmulFn matmul = nullptr;
};

// *fn = the symbol `name` of library h; whether it was there.
template <typename Fn>
bool Bind(void* h, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(dlsym(h, name));
  return *fn != nullptr;
}

absl::StatusOr<CublasLt> OpenCublasLt() {
  CublasLt c;
  std::string path;
  const absl::Status s = OpenLibrary("LILSERVE_CUBLASLT_LIB", {"libcublasLt.so.13", "libcublasLt.so"}, [&](void* h) {
    return Bind(h, "cublasLtCreate", &c.create) && Bind(h, "cublasLtDestroy", &c.destroy) &&
           Bind(h, "cublasLtMatmulDescCreate", &c.desc_create) &&
           Bind(h, "cublasLtMatmulDescDestroy", &c.desc_destroy) &&
           Bind(h, "cublasLtMatmulDescSetAttribute", &c.desc_set) &&
           Bind(h, "cublasLtMatrixLayoutCreate", &c.layout_create) &&
           Bind(h, "cublasLtMatrixLayoutDestroy", &c.layout_destroy) &&
           Bind(h, "cublasLtMatmulPreferenceCreate", &c.pref_create) &&
           Bind(h, "cublasLtMatmulPreferenceDestroy", &c.pref_destroy) &&
           Bind(h, "cublasLtMatmulPreferenceSetAttribute", &c.pref_set) &&
           Bind(h, "cublasLtMatmulAlgoGetHeuristic", &c.heuristic) && Bind(h, "cublasLtMatmul", &c.matmul);
  }, &path);
  if (!s.ok()) return absl::NotFoundError(absl::StrCat("cuBLASLt not found (", s.message(), ")"));
  return c;
}

const absl::StatusOr<CublasLt>& GetCublasLt() {
  static const absl::StatusOr<CublasLt> lt = OpenCublasLt();
  return lt;
}

}  // namespace

struct Gemm::SkinnyBuffers {
  SkinnyWorkspace ws;
  ~SkinnyBuffers() {
    if (ws.partial != nullptr) cudaFree(ws.partial);
    if (ws.counters != nullptr) cudaFree(ws.counters);
  }
};

struct Gemm::LtState {
  // One shape's cuBLASLt descriptors and the algorithm timed fastest (use_lt false:
  // cublasGemmEx won, and the descriptors are not kept).
  struct Plan {
    bool use_lt = false;
    void* desc = nullptr;
    void* a = nullptr;  // w: bf16 [in x out] column-major (op T)
    void* b = nullptr;  // x: bf16 [in x rows]
    void* c = nullptr;  // y: fp32 [out x rows]
    LtAlgo algo{};
  };
  void* handle = nullptr;
  std::map<std::tuple<int32_t, int32_t, int32_t>, Plan> plans;

  static void Release(Plan& plan) {
    const CublasLt& lt = *GetCublasLt();
    if (plan.desc != nullptr) lt.desc_destroy(plan.desc);
    for (void* l : {plan.a, plan.b, plan.c}) {
      if (l != nullptr) lt.layout_destroy(l);
    }
    plan.desc = plan.a = plan.b = plan.c = nullptr;
  }
  // cublasLtMatmul of p with a shape's descriptors and one algorithm; the cuBLAS status.
  int Matmul(const Plan& plan, const LtAlgo& algo, const GemmParams& p, void* workspace, size_t workspace_bytes,
             cudaStream_t stream) const {
    const float alpha = 1.0f, beta = 0.0f;
    return GetCublasLt()->matmul(handle, plan.desc, &alpha, p.w, plan.a, p.x, plan.b, &beta, p.y, plan.c, p.y, plan.c,
                                 &algo, workspace, workspace_bytes, stream);
  }
  ~LtState() {
    for (auto& [shape, plan] : plans) Release(plan);
    if (handle != nullptr) GetCublasLt()->destroy(handle);
  }
};

absl::StatusOr<Gemm> Gemm::Create(cudaStream_t stream, bool force_fallback) {
  Gemm g;
  g.stream_ = stream;
  g.library_ = "fallback kernel";
  if (force_fallback) return g;
  g.use_gemv_ = !EnvIs("LILSERVE_GEMV", "0");
  // The skinny GEMM only on request ($LILSERVE_SKINNY=1): slower than cuBLAS plus the separate
  // norm / RoPE / SwiGLU kernels on an H200 (docs/PERF.md, session 12).
  if (g.use_gemv_ && EnvIs("LILSERVE_SKINNY", "1")) {
    auto sk = std::make_unique<SkinnyBuffers>();
    if (cudaMalloc(&sk->ws.partial, sizeof(float) * kSkinnyPartialFloats) == cudaSuccess &&
        cudaMalloc(&sk->ws.counters, sizeof(int32_t) * kSkinnyCounters) == cudaSuccess &&
        cudaMemset(sk->ws.counters, 0, sizeof(int32_t) * kSkinnyCounters) == cudaSuccess) {
      sk->ws.partial_floats = kSkinnyPartialFloats;
      sk->ws.num_counters = kSkinnyCounters;
      g.skinny_ = std::move(sk);
    } else {
      cudaGetLastError();  // no workspace: the skinny GEMM stays off
    }
  }
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
  g.lt_wanted_ = !EnvIs("LILSERVE_CUBLASLT", "0") && GetCublasLt().ok();
  if (g.lt_wanted_ && g.workspace_ != nullptr) {
    auto lt = std::make_unique<LtState>();
    if (GetCublasLt()->create(&lt->handle) == 0) {
      g.lt_ = std::move(lt);
    } else {
      lt->handle = nullptr;
    }
  }
  return g;
}

Gemm::Gemm(Gemm&& o) noexcept
    : stream_(o.stream_), handle_(std::exchange(o.handle_, nullptr)), library_(std::move(o.library_)),
      use_gemv_(o.use_gemv_), tune_gemv_(o.tune_gemv_), gemv_max_rows_(o.gemv_max_rows_), gemv_choice_(std::move(o.gemv_choice_)),
      workspace_(std::exchange(o.workspace_, nullptr)), lt_(std::move(o.lt_)), skinny_(std::move(o.skinny_)),
      lt_wanted_(o.lt_wanted_) {}

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
    lt_ = std::move(o.lt_);
    skinny_ = std::move(o.skinny_);
    lt_wanted_ = o.lt_wanted_;
  }
  return *this;
}

Gemm::~Gemm() {
  lt_.reset();
  if (handle_ != nullptr) GetCublas()->destroy(handle_);
  if (workspace_ != nullptr) cudaFree(workspace_);
}

int Gemm::DefaultGemmEx(const GemmParams& p) const {
  // Column-major view: Y^T[out, rows] = W[out, in] (stored as W^T col-major) * X^T[in, rows].
  const float alpha = 1.0f, beta = 0.0f;
  return GetCublas()->gemm_ex(handle_, kCublasOpT, kCublasOpN, p.out, p.rows, p.in, &alpha, p.w, CUDA_R_16BF, p.in,
                              p.x, CUDA_R_16BF, p.in, &beta, p.y, CUDA_R_32F, p.out, kCublasCompute32F,
                              kCublasGemmDefault);
}

int Gemm::CublasGemm(const GemmParams& p) const {
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % kLtAlignBytes == 0; };
  if (lt_ == nullptr || p.rows <= kGemvMaxRows || p.rows > kLtMaxRows || !aligned(p.x) || !aligned(p.w) ||
      !aligned(p.y)) {
    return DefaultGemmEx(p);
  }
  const auto key = std::make_tuple(p.rows, p.in, p.out);
  auto it = lt_->plans.find(key);
  if (it == lt_->plans.end()) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) {
      cudaGetLastError();
      return DefaultGemmEx(p);  // not timed yet: never inside a capture
    }
    it = lt_->plans.emplace(key, LtState::Plan{}).first;
    LtState::Plan& plan = it->second;
    const CublasLt& lt = *GetCublasLt();
    const int32_t op_t = kCublasOpT, op_n = kCublasOpN;
    const uint64_t ws = kWorkspaceBytes;
    void* pref = nullptr;
    LtHeuristic found[kLtCandidates];
    int returned = 0;
    bool ok = lt.desc_create(&plan.desc, kCublasCompute32F, CUDA_R_32F) == 0 &&
              lt.desc_set(plan.desc, kLtDescTransA, &op_t, sizeof(op_t)) == 0 &&
              lt.desc_set(plan.desc, kLtDescTransB, &op_n, sizeof(op_n)) == 0 &&
              lt.layout_create(&plan.a, CUDA_R_16BF, p.in, p.out, p.in) == 0 &&
              lt.layout_create(&plan.b, CUDA_R_16BF, p.in, p.rows, p.in) == 0 &&
              lt.layout_create(&plan.c, CUDA_R_32F, p.out, p.rows, p.out) == 0 && lt.pref_create(&pref) == 0 &&
              lt.pref_set(pref, kLtPrefMaxWorkspaceBytes, &ws, sizeof(ws)) == 0;
    for (int i = 0; ok && i < 4; ++i) {
      ok = lt.pref_set(pref, kLtPrefMinAlignA + i, &kLtAlignBytes, sizeof(kLtAlignBytes)) == 0;
    }
    ok = ok && lt.heuristic(lt_->handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, kLtCandidates, found,
                            &returned) == 0;
    if (pref != nullptr) lt.pref_destroy(pref);
    std::vector<LtAlgo> algos;
    for (int i = 0; ok && i < returned; ++i) {
      if (found[i].state == 0 && found[i].workspace <= kWorkspaceBytes) algos.push_back(found[i].algo);
    }
    // Candidate 0: cublasGemmEx's default; 1..: cuBLASLt's.
    const std::vector<float> us = TimeCandidates(1 + static_cast<int>(algos.size()), [&](int c) {
      const int rc = c == 0 ? DefaultGemmEx(p) : lt_->Matmul(plan, algos[c - 1], p, workspace_, kWorkspaceBytes, stream_);
      return rc == 0;
    });
    int best = 0;
    std::string table;
    for (size_t c = 0; c < us.size(); ++c) {
      absl::StrAppend(&table, c == 0 ? "cublasGemmEx " : ", Lt#", c == 0 ? "" : absl::StrCat(c), c == 0 ? "" : " ",
                      absl::SixDigits(us[c]), " us");
      if (us[c] < us[best]) best = static_cast<int>(c);
    }
    plan.use_lt = best > 0;
    if (plan.use_lt) {
      plan.algo = algos[best - 1];
    } else {
      LtState::Release(plan);
    }
    LIL_LOG_INFO("cuBLAS tune rows={} in={} out={}: {} ({})", p.rows, p.in, p.out,
                 plan.use_lt ? absl::StrCat("cuBLASLt candidate ", best) : std::string("cublasGemmEx"),
                 table.empty() ? std::string("not timed") : table);
  }
  const LtState::Plan& plan = it->second;
  return plan.use_lt ? lt_->Matmul(plan, plan.algo, p, workspace_, kWorkspaceBytes, stream_) : DefaultGemmEx(p);
}

std::vector<float> Gemm::TimeCandidates(int n, const std::function<bool(int)>& launch) const {
  constexpr size_t kFlushBytes = size_t{64} << 20;
  void* flush = nullptr;
  cudaEvent_t a = nullptr, b = nullptr;
  std::vector<float> medians;
  if (cudaMalloc(&flush, kFlushBytes) == cudaSuccess && cudaEventCreate(&a) == cudaSuccess &&
      cudaEventCreate(&b) == cudaSuccess) {
    for (int i = 0; i < n; ++i) {
      std::vector<float> us;
      bool launched = true;
      for (int rep = 0; rep < 6 && launched; ++rep) {
        cudaMemsetAsync(flush, rep, kFlushBytes, stream_);
        cudaEventRecord(a, stream_);
        launched = launch(i);
        cudaEventRecord(b, stream_);
        cudaEventSynchronize(b);
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, a, b);
        if (rep > 0) us.push_back(ms * 1e3f);  // the first launch of each is a warm-up
      }
      std::sort(us.begin(), us.end());
      // A candidate that refused to launch (a status, not a CUDA error) never wins.
      medians.push_back(launched ? us[us.size() / 2] : std::numeric_limits<float>::infinity());
    }
  }
  if (a != nullptr) cudaEventDestroy(a);
  if (b != nullptr) cudaEventDestroy(b);
  cudaFree(flush);
  if (cudaGetLastError() != cudaSuccess) medians.clear();
  return medians;
}

int Gemm::TunedGemv(const GemmParams& p) const {
  const auto key = std::make_tuple(p.rows, p.in, p.out);
  if (auto it = gemv_choice_.find(key); it != gemv_choice_.end()) return it->second;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) {
    return kGemvDefaultVariant;
  }
  // Candidates: cuBLAS (-1) when it is loaded, then every GEMV variant; the median of each
  // (TimeCandidates) decides.
  const int first = handle_ != nullptr ? -1 : 0;
  const std::vector<float> us = TimeCandidates(kGemvVariants - first, [&](int i) {
    const int v = first + i;
    return v >= 0 ? GemvVariant(p, v, stream_) == cudaSuccess : CublasGemm(p) == 0;
  });
  int best = kGemvDefaultVariant;
  std::string table;
  for (size_t i = 0; i < us.size(); ++i) {
    const int v = first + static_cast<int>(i);
    absl::StrAppend(&table, table.empty() ? "" : ", ", v >= 0 ? absl::StrCat("v", v) : "cuBLAS", " ",
                    absl::SixDigits(us[i]), " us");
    if (i == 0 || us[i] < us[best - first]) best = v;
  }
  LIL_LOG_INFO("GEMV autotune rows={} in={} out={}: {} ({})", p.rows, p.in, p.out,
               best >= 0 ? absl::StrCat("variant ", best) : std::string("cuBLAS"), table);
  return gemv_choice_[key] = best;
}

bool Gemm::FusedAvailable(int32_t rows, int32_t in) const {
  // Several rows only through the skinny GEMM: the GEMV takes up to 4, but cuBLAS plus the
  // separate kernels beat it there (docs/PERF.md).
  if (rows >= 2) return skinny_ != nullptr && rows <= kSkinnyMaxRows && in % kSkinnyK == 0;
  return GemvAvailable(rows, in);
}

absl::Status Gemm::RunFused(const GemmParams& p) const {
  if (p.rows >= 2) {
    if (!FusedAvailable(p.rows, p.in) || !SkinnySupported(p)) {
      return absl::FailedPreconditionError(absl::StrCat("no fused GEMM for rows=", p.rows, " in=", p.in, " out=", p.out,
                                                        skinny_ == nullptr ? " (LILSERVE_SKINNY is not 1)" : ""));
    }
    LIL_CUDA_RETURN_IF_ERROR(SkinnyGemm(p, skinny_->ws, stream_));
    return absl::OkStatus();
  }
  if (!GemvAvailable(p.rows, p.in) || !GemvSupported(p)) {
    return absl::FailedPreconditionError(absl::StrCat("no fused GEMM for rows=", p.rows, " in=", p.in, " out=", p.out,
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
