// File: engine/cpu_backend.h
// The CPU backend: fp32 math, OpenBLAS for the matrix products, OpenMP threads for attention
// and element-wise ops. One Execute runs a batch mixing prefill chunks and decode tokens of
// several sequences over the paged KV pools. Engine thread only (not thread-safe).
//
// Tensor parallelism: a CpuBackend can also be one rank of a group (CpuRankOptions): its
// weights are that rank's shard (engine/parallel/tp_shard.h), its KV pools hold only its KV
// heads, and the forward pass all-reduces after o_proj and down and gathers the
// vocab-parallel logits through the rank's Communicator. Only rank 0 samples and returns a
// full StepResult. One forward for TP=1 and TP=N keeps them from drifting apart;
// engine/parallel/tp_cpu_backend.h drives the N ranks.
#pragma once

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/backend.h"
#include "engine/sampler_state.h"
#include "engine/cpu_weights.h"
#include "engine/host_weights.h"
#include "engine/parallel/communicator.h"
#include "engine/parallel/tp_shard.h"
#include "kernels/paged_kv.h"

namespace lil {

// Which rank of a tensor-parallel group a CpuBackend is. The default is the whole model.
struct CpuRankOptions {
  int32_t rank = 0;
  int32_t world = 1;
  Communicator* comm = nullptr;  // required when world > 1; outlives the backend
};

class CpuBackend final : public Backend {
 public:
  // `config` is the whole model's; with rank.world > 1, `weights` is the rank's shard
  // (ShardCpuWeights) and kv.kv_bytes the rank's own KV memory.
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const ModelConfig& config,
                                                            CpuWeights weights,
                                                            const KvCacheOptions& kv,
                                                            const CpuRankOptions& rank = {});
  // fp32 weights (tests build these in memory).
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const ModelConfig& config,
                                                            const HostWeights& weights,
                                                            const KvCacheOptions& kv);

  std::string name() const override { return "cpu"; }
  const ModelConfig& config() const override { return config_; }
  int32_t num_pages() const override { return num_pages_; }
  int32_t page_size() const override { return page_size_; }
  absl::StatusOr<StepResult> Execute(const StepPlan& plan) override;

 private:
  struct Batch;  // flattened inputs of one step (cpu_backend.cc)

  CpuBackend(const ModelConfig& config, CpuWeights weights, int32_t num_pages, int32_t page_size,
             const TpShard& shard, Communicator* comm);
  PagedKvView LayerView(int32_t layer);
  absl::Status RunLayer(int32_t layer, Batch& b, std::vector<float>& x);
  void BuildAttentionRows(int32_t layer, Batch& b);
  absl::Status Sample(const StepPlan& plan, Batch& b, const std::vector<float>& x,
                      StepResult& result);
  absl::Status ReducePageMass(Batch& b);
  absl::Status AllReduce(float* data, int64_t n);  // no-op at world 1

  ModelConfig config_;  // the whole model (what config() reports)
  TpShard shard_;
  ModelConfig local_;  // this rank's heads, KV heads, intermediate and vocab (= config_ at world 1)
  Communicator* comm_;
  CpuWeights w_;
  int32_t num_pages_;
  int32_t page_size_;
  std::vector<float> inv_freq_;
  std::vector<std::vector<float>> k_pool_, v_pool_, quest_pool_;  // per layer
  // Quest min / max kept as e4m3 values rounded outward ($LILSERVE_QUEST_FP8=1, as the CUDA
  // backend; kernels/cpu/kv_write.h).
  bool quest_e4m3_ = false;
  absl::flat_hash_map<RequestId, SamplerState> seqs_;
  uint64_t seed_base_;
};

}  // namespace lil
