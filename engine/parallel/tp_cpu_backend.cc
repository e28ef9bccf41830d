// File: engine/parallel/tp_cpu_backend.cc
#include "engine/parallel/tp_cpu_backend.h"

#include "common/log.h"
#include "common/status.h"
#include "engine/parallel/plan_codec.h"
#include "engine/parallel/tp_shard.h"
#include "engine/plan_check.h"

namespace lil {

absl::StatusOr<std::unique_ptr<TensorParallelCpuBackend>> TensorParallelCpuBackend::Create(
    const ModelConfig& config, const HostWeights& weights, const KvCacheOptions& kv,
    int32_t world) {
  return Create(config, CpuWeightsFromHost(weights, config), kv, world);
}

absl::StatusOr<std::unique_ptr<TensorParallelCpuBackend>> TensorParallelCpuBackend::Create(
    const ModelConfig& config, const CpuWeights& weights, const KvCacheOptions& kv, int32_t world) {
  LIL_RETURN_IF_ERROR(CheckTensorParallel(config, world));
  auto tp = std::unique_ptr<TensorParallelCpuBackend>(new TensorParallelCpuBackend());
  LIL_ASSIGN_OR_RETURN(tp->group_, InProcessGroup::Create(world));
  for (int32_t r = 0; r < world; ++r) {
    LIL_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, tp->group_->ForRank(r));
    CpuRankOptions rank;
    rank.rank = r;
    rank.world = world;
    rank.comm = comm.get();
    LIL_ASSIGN_OR_RETURN(
        std::unique_ptr<CpuBackend> backend,
        CpuBackend::Create(config, ShardCpuWeights(weights, config, MakeTpShard(config, r, world)),
                           kv, rank));
    tp->comms_.push_back(std::move(comm));
    tp->ranks_.push_back(std::move(backend));
  }
  for (int32_t r = 1; r < world; ++r)
    tp->workers_.emplace_back([p = tp.get(), r] { p->WorkerLoop(r); });
  return tp;
}

TensorParallelCpuBackend::~TensorParallelCpuBackend() {
  if (!workers_.empty()) {
    // Fails at once when the group is aborted; the workers have then left their loops.
    const absl::Status s = BroadcastStop(*comms_[0]);
    if (!s.ok()) group_->Abort(s);
  }
  for (std::thread& t : workers_) t.join();
}

std::string TensorParallelCpuBackend::name() const {
  return world_size() == 1 ? "cpu" : absl::StrCat("cpu-tp", world_size());
}

absl::StatusOr<StepResult> TensorParallelCpuBackend::Execute(const StepPlan& plan) {
  if (absl::Status aborted = group_->aborted(); !aborted.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the tensor-parallel CPU backend stopped after an earlier error: ", aborted.message()));
  }
  // A malformed plan is answered here, before any rank sees it (no state changes).
  LIL_RETURN_IF_ERROR(CheckPlan(plan, config(), num_pages(), page_size()));
  if (world_size() > 1) {
    if (absl::Status s = BroadcastPlan(*comms_[0], plan); !s.ok()) {
      group_->Abort(s);
      return s;
    }
  }
  absl::StatusOr<StepResult> result = ranks_[0]->Execute(plan);
  if (!result.ok()) group_->Abort(result.status());
  return result;
}

void TensorParallelCpuBackend::WorkerLoop(int32_t rank) {
  Communicator& comm = *comms_[rank];
  while (true) {
    absl::StatusOr<std::optional<StepPlan>> plan = ReceivePlan(comm);
    if (plan.ok() && !plan->has_value()) return;  // stop
    // A failed broadcast means the group was aborted: nothing more to report.
    if (!plan.ok() && !group_->aborted().ok()) return;
    absl::Status s = plan.status();
    if (plan.ok()) s = ranks_[rank]->Execute(**plan).status();
    if (!s.ok()) {
      LIL_LOG_ERROR("tensor-parallel rank {}: {}", rank, std::string(s.message()));
      group_->Abort(absl::Status(s.code(), absl::StrCat("rank ", rank, ": ", s.message())));
      return;
    }
  }
}

}  // namespace lil
