// File: engine/parallel/tp_cpu_backend.cc
#include "engine/parallel/tp_cpu_backend.h"

#include "common/log.h"
#include "common/status.h"
#include "engine/parallel/plan_codec.h"
#include "engine/parallel/tp_shard.h"
#include "engine/plan_check.h"

namespace lil {

struct TensorParallelCpuBackend::Header {
  enum Command : int32_t { kStep = 1, kStop = 2 };
  int32_t command = kStep;
  int64_t payload_bytes = 0;
};

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
    Header stop;
    stop.command = Header::kStop;
    // Fails at once when the group is aborted; the workers have then left their loops.
    const absl::Status s = Broadcast(stop, "");
    if (!s.ok()) group_->Abort(s);
  }
  for (std::thread& t : workers_) t.join();
}

std::string TensorParallelCpuBackend::name() const {
  return world_size() == 1 ? "cpu" : absl::StrCat("cpu-tp", world_size());
}

absl::Status TensorParallelCpuBackend::Broadcast(const Header& header, const std::string& payload) {
  Header h = header;
  LIL_RETURN_IF_ERROR(comms_[0]->Broadcast(&h, sizeof(h), 0));
  if (payload.empty()) return absl::OkStatus();
  // The root's buffer is only read.
  return comms_[0]->Broadcast(const_cast<char*>(payload.data()),
                              static_cast<int64_t>(payload.size()), 0);
}

absl::StatusOr<StepResult> TensorParallelCpuBackend::Execute(const StepPlan& plan) {
  if (absl::Status aborted = group_->aborted(); !aborted.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the tensor-parallel CPU backend stopped after an earlier error: ", aborted.message()));
  }
  // A malformed plan is answered here, before any rank sees it (no state changes).
  LIL_RETURN_IF_ERROR(CheckPlan(plan, config(), num_pages(), page_size()));
  if (world_size() > 1) {
    const std::string bytes = EncodePlanForRanks(plan);
    Header h;
    h.payload_bytes = static_cast<int64_t>(bytes.size());
    if (absl::Status s = Broadcast(h, bytes); !s.ok()) {
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
    Header h;
    if (!comm.Broadcast(&h, sizeof(h), 0).ok()) return;  // aborted
    if (h.command == Header::kStop) return;
    std::string bytes(static_cast<size_t>(h.payload_bytes), '\0');
    if (absl::Status s = comm.Broadcast(bytes.data(), h.payload_bytes, 0); !s.ok()) return;
    absl::StatusOr<StepPlan> plan = DecodePlanForRanks(bytes);
    absl::Status s = plan.status();
    if (plan.ok()) s = ranks_[rank]->Execute(*plan).status();
    if (!s.ok()) {
      LIL_LOG_ERROR("tensor-parallel rank {}: {}", rank, std::string(s.message()));
      group_->Abort(absl::Status(s.code(), absl::StrCat("rank ", rank, ": ", s.message())));
      return;
    }
  }
}

}  // namespace lil
