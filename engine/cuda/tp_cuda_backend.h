// File: engine/cuda/tp_cuda_backend.h
// Tensor parallelism on GPUs: one rank per GPU, one host thread per rank, NCCL for the
// activations and a host broadcast for the plan (docs/PARALLEL.md). The same shape as the CPU
// driver (engine/parallel/tp_cpu_backend.h): the forward is CudaBackend's own, made
// rank-aware by CudaBackendOptions {rank, world, comm}; this class owns the group.
//
//   engine thread (rank 0, GPU 0)            worker thread r (GPU r)
//   Execute(plan):                           loop:
//     CheckPlan (a bad plan stops here)        host Broadcast(header) <- rank 0
//     host Broadcast(header, plan bytes) --->  host Broadcast(plan bytes); decode
//     rank 0 step <- ncclAllReduce / AllGather ->  rank r step (same collectives, same order)
//     sample on the gathered logits; return    (result dropped)
//
// Rank 0 owns every decision (scheduling, sampling, aborts, deadlines, early stops); the other
// ranks execute what it broadcast, so they make the same NCCL calls in the same order. An
// error on any rank aborts the host group AND every NCCL communicator (ncclCommAbort), so a
// rank waiting in a collective returns instead of hanging; every later Execute is then
// FAILED_PRECONDITION naming the first error (the daemon keeps running, reports it, and turns
// NOT_SERVING). A step watchdog ($LILSERVE_TP_STEP_TIMEOUT_S, default 120 s; 0: off) aborts the
// same way when a step runs past it: ranks whose collectives fell out of step (session 18's
// hang; session 19 fixed its cause in the plan codec) wait in NCCL forever otherwise.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/nccl_comm.h"
#include "engine/parallel/communicator.h"

namespace lil::cuda {

class TensorParallelCudaBackend final : public Backend {
 public:
  // Builds rank r's weights on GPU r (called on that rank's thread, device current).
  using UploadFn = std::function<absl::StatusOr<DeviceWeights>(const TpShard& shard)>;

  // GPUs 0..world-1. INVALID_ARGUMENT when world does not divide the heads or exceeds the
  // GPUs present (naming both). kv.kv_bytes / memory_fraction are per GPU; every rank gets
  // the smallest page count any rank can hold.
  static absl::StatusOr<std::unique_ptr<TensorParallelCudaBackend>> Create(
      const ModelConfig& config, const UploadFn& upload, const KvCacheOptions& kv, int32_t world);
  ~TensorParallelCudaBackend() override;  // stops the workers, then frees each GPU's state

  std::string name() const override;
  const ModelConfig& config() const override { return ranks_[0].backend->config(); }
  int32_t num_pages() const override { return ranks_[0].backend->num_pages(); }
  int32_t page_size() const override { return ranks_[0].backend->page_size(); }
  int32_t world_size() const { return static_cast<int32_t>(ranks_.size()); }
  absl::StatusOr<StepResult> Execute(const StepPlan& plan) override;
  absl::Status Usable() const override { return group_->aborted(); }
  // Tests: rank r's backend.
  CudaBackend& rank_backend(int32_t r) { return *ranks_[r].backend; }
  // Tests: worker rank r (>= 1) drops the next plan it receives and runs nothing, so rank 0's
  // step waits in its collectives for a pass that never comes (the watchdog's case).
  void DropNextPlanOnRankForTest(int32_t r) { drop_plan_rank_.store(r); }

 private:
  struct Rank {
    int32_t device = 0;
    cudaStream_t stream = nullptr;
    std::unique_ptr<NcclCommunicator> nccl;
    std::unique_ptr<CudaBackend> backend;
  };

  TensorParallelCudaBackend() = default;
  void WorkerLoop(int32_t rank);
  // First error wins: the host group and every NCCL communicator are aborted.
  void AbortAll(const absl::Status& why);

  // $LILSERVE_TP_TRACE=1: each rank's host times a step (SystemClock us; rank 0: Execute
  // entered and its plan broadcast, the others: plan received), with the rank's
  // CudaBackend::StepClock, for the first 2^20 steps; summarized in the log when the backend is
  // destroyed.
  struct TraceRow {
    int64_t entered_us = 0, planned_us = 0;
    CudaBackend::StepClock clock;
  };
  void LogTrace() const;
  bool trace_ = false;
  std::vector<std::vector<TraceRow>> trace_rows_;  // [rank][step], each written by its rank's thread

  std::shared_ptr<InProcessGroup> group_;          // host control plane (plans)
  std::vector<std::unique_ptr<Communicator>> host_;  // [rank]
  std::vector<Rank> ranks_;                          // [rank]
  std::vector<std::thread> workers_;                 // ranks 1..N-1
  std::once_flag abort_once_;
  std::atomic<int32_t> drop_plan_rank_{-1};

  // The step watchdog: a thread that wakes every second (or a quarter of the timeout) and
  // aborts the group once rank 0's Execute has run longer than step_timeout_us_.
  void WatchdogLoop();
  int64_t step_timeout_us_ = 0;           // 0: no watchdog
  std::atomic<int64_t> step_began_us_{0};  // rank 0's Execute in progress since (0: none)
  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool watchdog_stop_ = false;  // guarded by watchdog_mu_
  std::thread watchdog_;
};

}  // namespace lil::cuda
