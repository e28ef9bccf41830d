// File: engine/parallel/tp_cpu_backend.h
// Tensor parallelism on the CPU: N ranks on N threads of this process, each a CpuBackend
// holding its shard of the weights and of the KV cache (docs/PARALLEL.md).
//
// Design decision: the forward pass is NOT duplicated here. CpuBackend itself is
// rank-aware (CpuRankOptions: rank, world, Communicator*): at world 1 it is the plain CPU
// backend, at world N it computes its heads / intermediate slice / vocab slice and calls the
// Communicator after o_proj, after down, for the embedding, the logits and the h2o masses.
// This class only owns the group: the communicators, the N rank backends and the N - 1
// worker threads, and the plan broadcast. The CUDA backend is meant to plug in the same way
// (one CudaBackend per GPU rank, an NCCL Communicator, this same driver loop).
//
//   engine thread (rank 0)                  worker thread r (1..N-1)
//   Execute(plan):                          loop:
//     CheckPlan (a bad plan stops here)       Broadcast(header) <- rank 0
//     Broadcast(header, plan bytes) ------>   Broadcast(plan bytes); decode
//     rank 0 forward  <- AllReduce / AllGather ->  rank r forward (same collectives)
//     sample on gathered logits; return       (result dropped)
//
// Rank 0 owns every decision (scheduling, sampling, aborts, deadlines, early stops): the
// workers only execute what rank 0 broadcast, so ranks cannot disagree and hang.
// Any error inside a rank aborts the group; the backend then answers every Execute with
// FAILED_PRECONDITION (the daemon keeps running and reports it). Engine thread only.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu_backend.h"
#include "engine/cpu_weights.h"
#include "engine/host_weights.h"
#include "engine/parallel/communicator.h"

namespace lil {

class TensorParallelCpuBackend final : public Backend {
 public:
  // Splits the whole model's `weights` over `world` ranks (world 1 works too: one rank, no
  // thread). INVALID_ARGUMENT naming the head counts when world does not divide them.
  // kv.kv_bytes is each rank's KV memory (as for one GPU per rank); kv.num_pages, when set,
  // is the page count of every rank.
  static absl::StatusOr<std::unique_ptr<TensorParallelCpuBackend>> Create(const ModelConfig& config,
                                                                          const CpuWeights& weights,
                                                                          const KvCacheOptions& kv,
                                                                          int32_t world);
  static absl::StatusOr<std::unique_ptr<TensorParallelCpuBackend>> Create(
      const ModelConfig& config, const HostWeights& weights, const KvCacheOptions& kv,
      int32_t world);
  ~TensorParallelCpuBackend() override;  // stops and joins the worker threads

  std::string name() const override;
  const ModelConfig& config() const override { return ranks_[0]->config(); }
  int32_t num_pages() const override { return ranks_[0]->num_pages(); }
  int32_t page_size() const override { return ranks_[0]->page_size(); }
  int32_t world_size() const { return static_cast<int32_t>(ranks_.size()); }
  absl::StatusOr<StepResult> Execute(const StepPlan& plan) override;
  // The group's abort reason once a rank failed (every later Execute then fails).
  absl::Status Usable() const override { return group_->aborted(); }

 private:
  TensorParallelCpuBackend() = default;
  void WorkerLoop(int32_t rank);

  std::shared_ptr<InProcessGroup> group_;
  std::vector<std::unique_ptr<Communicator>> comms_;  // [rank]; comms_[r] used by rank r's thread
  std::vector<std::unique_ptr<CpuBackend>> ranks_;    // [rank]; ranks_[r] run by rank r's thread
  std::vector<std::thread> workers_;                  // ranks 1..N-1
};

}  // namespace lil
