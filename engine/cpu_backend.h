// File: engine/cpu_backend.h
// The CPU backend: fp32 math, OpenBLAS for the matrix products, OpenMP threads for attention
// and element-wise ops. One Execute runs a batch mixing prefill chunks and decode tokens of
// several sequences over the paged KV pools. Engine thread only (not thread-safe).
#pragma once

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/backend.h"
#include "engine/cpu_weights.h"
#include "engine/host_weights.h"
#include "kernels/paged_kv.h"

namespace lil {

class CpuBackend final : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const ModelConfig& config,
                                                            CpuWeights weights,
                                                            const KvCacheOptions& kv);
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
  struct SeqState {
    std::vector<TokenId> history;  // every input token so far (prompt + generated)
    uint64_t seed = 0;
  };
  struct Batch;  // flattened inputs of one step (cpu_backend.cc)

  CpuBackend(const ModelConfig& config, CpuWeights weights, int32_t num_pages, int32_t page_size);
  PagedKvView LayerView(int32_t layer);
  void RunLayer(int32_t layer, Batch& b, std::vector<float>& x);
  void BuildAttentionRows(int32_t layer, Batch& b);
  void Sample(const StepPlan& plan, Batch& b, const std::vector<float>& x, StepResult& result);

  ModelConfig config_;
  CpuWeights w_;
  int32_t num_pages_;
  int32_t page_size_;
  std::vector<float> inv_freq_;
  std::vector<std::vector<float>> k_pool_, v_pool_, quest_pool_;  // per layer
  absl::flat_hash_map<RequestId, SeqState> seqs_;
  uint64_t seed_base_;
};

}  // namespace lil
