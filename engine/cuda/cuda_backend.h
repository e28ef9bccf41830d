// File: engine/cuda/cuda_backend.h
// The CUDA backend: bf16 weights and KV, fp32 residual stream and accumulation, cuBLAS
// GEMMs, own kernels (kernels/cuda). Same plan semantics as CpuBackend: page tables with
// holes, Quest per (sequence, KV head) past dense_layers for one-token steps, h2o page mass,
// return_logits. Engine thread only (not thread-safe).
#pragma once

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "engine/backend.h"
#include "engine/sampler_state.h"
#include "engine/cuda/cuda_step.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/gemm.h"

namespace lil::cuda {

struct CudaBackendOptions {
  int32_t device = 0;
  bool force_fallback_gemm = false;  // tests: the tiled kernel instead of cuBLAS
};

class CudaBackend final : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const ModelConfig& config,
                                                             DeviceWeights weights,
                                                             const KvCacheOptions& kv,
                                                             const CudaBackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  const ModelConfig& config() const override { return config_; }
  int32_t num_pages() const override { return num_pages_; }
  int32_t page_size() const override { return page_size_; }
  absl::StatusOr<StepResult> Execute(const StepPlan& plan) override;
  const Gemm& gemm() const { return gemm_; }
  // Decode batch sizes with a captured CUDA graph (tests, logs).
  int32_t graphs_captured() const { return static_cast<int32_t>(graphs_.size()); }

 private:
  struct Work;  // device pointers of one step (cuda_backend.cc)

  CudaBackend(const ModelConfig& config, DeviceWeights weights, int32_t num_pages,
              int32_t page_size, cudaStream_t stream, Gemm gemm);
  PagedKvViewBf16 LayerView(int32_t layer) const;
  absl::Status RunLayer(int32_t layer, const StepInputs& in, const Work& w);
  absl::Status Attention(int32_t layer, const StepInputs& in, const Work& w);
  // The kernels of one step (capturable: no host synchronization, no allocation).
  absl::Status LaunchForward(const StepInputs& in, const Work& w);
  absl::Status LaunchSampling(const StepInputs& in, const Work& w);
  // Copies the sampled tokens back (the step's one synchronization) and samples non-greedy
  // rows on the host.
  absl::Status FinishSampling(const StepPlan& plan, const StepInputs& in, const Work& w,
                              StepResult& result);
  bool Graphable(const StepPlan& plan, const StepInputs& in) const;
  absl::Status CaptureGraph(const StepInputs& in, const Work& w, cudaGraphExec_t* exec);
  void ResetGraphs();

  ModelConfig config_;
  DeviceWeights w_;
  int32_t num_pages_;
  int32_t page_size_;
  cudaStream_t stream_;
  Gemm gemm_;
  DeviceBuffer kv_pool_;     // [layers][K | V | Quest] per layer, see LayerView
  DeviceBuffer ints_, work_;
  PinnedBuffer staging_;         // the step's int inputs on their way up
  // CUDA graphs of decode steps, one per batch size (<= kMaxGraphBatch), all over graph_work_
  // laid out for kMaxGraphBatch tokens and graph_nnz_cap_ page-list entries; growing either
  // drops the graphs. $LILSERVE_CUDA_GRAPHS=0 turns them off.
  static constexpr int32_t kMaxGraphBatch = 128;
  bool graphs_enabled_ = true;
  DeviceBuffer graph_work_;
  int64_t graph_nnz_cap_ = 0;
  int64_t graph_partial_floats_ = 1;
  absl::flat_hash_map<int32_t, cudaGraphExec_t> graphs_;
  absl::flat_hash_set<int32_t> graph_failed_;
  int32_t split_target_ctas_ = 0;  // 0: split-KV off ($LILSERVE_SPLIT_KV=0)
  absl::flat_hash_map<RequestId, SamplerState> seqs_;
  uint64_t seed_base_;
};

}  // namespace lil::cuda
