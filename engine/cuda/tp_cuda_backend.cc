// File: engine/cuda/tp_cuda_backend.cc
#include "engine/cuda/tp_cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <optional>

#include "absl/cleanup/cleanup.h"

#include "common/clock.h"
#include "common/env.h"
#include "common/log.h"
#include "common/status.h"
#include "engine/parallel/plan_codec.h"
#include "engine/plan_check.h"
#include "kernels/cuda/quest.h"

namespace lil::cuda {

namespace {
// Where the one-shot all-reduce stops and NCCL takes over (nccl_allreduce_bench, docs/PERF.md):
// at TP=2 one-shot wins up to 4 MiB; at TP=4 it pushes 3 copies and loses from 1 MiB on.
int64_t OneShotBytes(int32_t world) { return world <= 2 ? (2 << 20) : (512 << 10); }
// The one-token o / down GEMVs all-reduce their own partials (NcclCommunicator::GemvAllReduceFor)
// by default at TP=2, where it was measured (session 19, ABAB x4 on 2 x H200: 8B batch 1 / 1k
// 2.454-2.477 against 2.494-2.534 ms, -2.0%; bitwise the one-shot kernel's sum, gpu_tp_test;
// the gRPC e2e test passes with it). Wider groups only with $LILSERVE_GEMV_ALLREDUCE=1 (every CTA
// then sends to N ranks: not measured); $LILSERVE_GEMV_ALLREDUCE=0 turns it off.
bool GemvAllReduceWanted(int32_t world) {
  if (EnvIs("LILSERVE_GEMV_ALLREDUCE", "0")) return false;
  return world == 2 || EnvIs("LILSERVE_GEMV_ALLREDUCE", "1");
}
// How long a rank's host thread polls in a plan broadcast's rendezvous before sleeping
// ($LILSERVE_TP_SPIN=0: never): the four rendezvous of one broadcast follow each other within
// microseconds, and the first is where the workers sit between steps.
constexpr int64_t kPlanSpinMicros = 200;
// $LILSERVE_TP_TRACE keeps the first this many steps (48 bytes a rank each).
constexpr size_t kTraceMaxSteps = size_t{1} << 20;
// The step watchdog's default ($LILSERVE_TP_STEP_TIMEOUT_S): far past any real step (the first
// steps' cuBLASLt timing and graph captures take seconds; an 8k-token prefill of a 70B model at
// TP=4 about one), short enough that a wedged daemon turns NOT_SERVING within minutes.
constexpr int64_t kDefaultStepTimeoutSeconds = 120;
}  // namespace

absl::StatusOr<std::unique_ptr<TensorParallelCudaBackend>> TensorParallelCudaBackend::Create(
    const ModelConfig& config, const UploadFn& upload, const KvCacheOptions& kv, int32_t world) {
  LIL_RETURN_IF_ERROR(CheckTensorParallel(config, world));
  const std::optional<int64_t> timeout_s = EnvInt("LILSERVE_TP_STEP_TIMEOUT_S", kDefaultStepTimeoutSeconds);
  if (!timeout_s.has_value() || *timeout_s < 0 || *timeout_s > 86400) {
    return InvalidArgument("LILSERVE_TP_STEP_TIMEOUT_S is '", std::getenv("LILSERVE_TP_STEP_TIMEOUT_S"),
                           "'; want whole seconds from 0 (no step watchdog) to 86400");
  }
  int devices = 0;
  if (cudaError_t e = cudaGetDeviceCount(&devices); e != cudaSuccess) {
    cudaGetLastError();
    return CudaStatus(e, "cudaGetDeviceCount");
  }
  if (world > devices) {
    return InvalidArgument("tensor_parallel ", world, " needs ", world, " GPUs, but ", devices,
                           devices == 1 ? " is" : " are", " present");
  }
  LIL_ASSIGN_OR_RETURN(const NcclUniqueId id, NcclNewUniqueId());
  auto tp = std::unique_ptr<TensorParallelCudaBackend>(new TensorParallelCudaBackend());
  // Ranks poll up to kPlanSpinMicros for the next plan before they sleep (InProcessGroup).
  LIL_ASSIGN_OR_RETURN(tp->group_, InProcessGroup::Create(world, EnvIs("LILSERVE_TP_SPIN", "0") ? 0 : kPlanSpinMicros));
  for (int32_t r = 0; r < world; ++r) {
    LIL_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> c, tp->group_->ForRank(r));
    tp->host_.push_back(std::move(c));
  }
  tp->ranks_.resize(world);

  // One thread per rank: NCCL's init blocks until every rank has joined, and each rank's
  // weights load in parallel. Every thread reaches the latch, failed or not, so a rank that
  // fails after the NCCL init cannot leave the others waiting for its page count.
  std::vector<absl::Status> status(world);
  std::vector<int64_t> pages(world, -1);
  std::latch counted(world);
  std::vector<std::thread> loaders;
  for (int32_t r = 0; r < world; ++r) {
    loaders.emplace_back([&, r] {
      Rank& rank = tp->ranks_[r];
      rank.device = r;
      DeviceWeights weights;
      const TpShard shard = MakeTpShard(config, r, world);
      status[r] = [&]() -> absl::Status {
        LIL_CUDA_RETURN_IF_ERROR(cudaSetDevice(r));
        LIL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&rank.stream, cudaStreamNonBlocking));
        LIL_ASSIGN_OR_RETURN(rank.nccl, NcclCommunicator::Create(id, r, world, rank.stream));
        LIL_ASSIGN_OR_RETURN(weights, upload(shard));
        LIL_ASSIGN_OR_RETURN(pages[r], CudaBackend::PagesFor(ShardConfig(config, shard), kv));
        return absl::OkStatus();
      }();
      counted.arrive_and_wait();
      if (!status[r].ok()) return;
      int64_t fewest = pages[0];
      for (int64_t p : pages) fewest = std::min(fewest, p);
      if (fewest < 1) return;  // another rank failed; its status says why
      KvCacheOptions rank_kv = kv;
      rank_kv.num_pages = fewest;
      CudaBackendOptions options;
      options.device = r;
      options.rank = r;
      options.world = world;
      options.comm = rank.nccl.get();
      options.stream = rank.stream;
      auto backend = CudaBackend::Create(config, std::move(weights), rank_kv, options);
      if (!backend.ok()) {
        status[r] = backend.status();
        return;
      }
      rank.backend = std::move(*backend);
    });
  }
  for (std::thread& t : loaders) t.join();
  for (int32_t r = 0; r < world; ++r) {
    if (!status[r].ok()) {
      return absl::Status(status[r].code(), absl::StrCat("tensor-parallel rank ", r, " (GPU ", r, "): ",
                                                         status[r].message()));
    }
  }
  // Decode-sized all-reduces (up to batch 128 x hidden 4096 fp32) through the one-shot kernel.
  std::vector<NcclCommunicator*> comms;
  std::vector<int32_t> rank_devices;
  for (Rank& rank : tp->ranks_) {
    comms.push_back(rank.nccl.get());
    rank_devices.push_back(rank.device);
  }
  LIL_ASSIGN_OR_RETURN(const bool one_shot, NcclCommunicator::EnableOneShot(comms, rank_devices, OneShotBytes(world),
                                                                            GemvAllReduceWanted(world)));
  LIL_CUDA_RETURN_IF_ERROR(cudaSetDevice(0));
  LIL_LOG_INFO("CUDA tensor parallelism: {} ranks on GPUs 0-{}, {} KV pages per GPU, all-reduce {}", world,
               world - 1, tp->ranks_[0].backend->num_pages(),
               one_shot ? absl::StrCat("one-shot up to ", OneShotBytes(world) >> 10, " KiB, NCCL above") : "NCCL");
  tp->trace_ = EnvIs("LILSERVE_TP_TRACE", "1");
  tp->trace_rows_.resize(world);
  for (int32_t r = 1; r < world; ++r) tp->workers_.emplace_back([p = tp.get(), r] { p->WorkerLoop(r); });
  tp->step_timeout_us_ = *timeout_s * 1000000;
  if (*timeout_s > 0) tp->watchdog_ = std::thread([p = tp.get()] { p->WatchdogLoop(); });
  return tp;
}

void TensorParallelCudaBackend::WatchdogLoop() {
  const auto tick = std::chrono::microseconds(std::min<int64_t>(1000000, step_timeout_us_ / 4 + 1));
  std::unique_lock lock(watchdog_mu_);
  while (!watchdog_cv_.wait_for(lock, tick, [this] { return watchdog_stop_; })) {
    const int64_t began = step_began_us_.load();
    if (began == 0) continue;
    const int64_t ran = SystemClock::Get()->NowMicros() - began;
    if (ran <= step_timeout_us_) continue;
    AbortAll(absl::DeadlineExceededError(absl::StrCat(
        "a tensor-parallel step ran ", ran / 1000, " ms, past the step watchdog's ", step_timeout_us_ / 1000000,
        " s ($LILSERVE_TP_STEP_TIMEOUT_S): the ranks' collectives are out of step or a GPU stopped")));
    return;
  }
}

TensorParallelCudaBackend::~TensorParallelCudaBackend() {
  if (watchdog_.joinable()) {
    {
      std::lock_guard lock(watchdog_mu_);
      watchdog_stop_ = true;
    }
    watchdog_cv_.notify_all();
    watchdog_.join();
  }
  if (!workers_.empty()) {
    const absl::Status s = BroadcastStop(*host_[0]);
    if (!s.ok()) group_->Abort(s);
  }
  for (std::thread& t : workers_) t.join();
  if (trace_) LogTrace();
  for (Rank& rank : ranks_) {
    cudaSetDevice(rank.device);
    rank.backend.reset();
    rank.nccl.reset();
    if (rank.stream != nullptr) cudaStreamDestroy(rank.stream);
  }
}

std::string TensorParallelCudaBackend::name() const { return absl::StrCat("cuda-tp", world_size()); }

void TensorParallelCudaBackend::AbortAll(const absl::Status& why) {
  std::call_once(abort_once_, [&] {
    LIL_LOG_ERROR("tensor-parallel CUDA backend stops: {}", std::string(why.message()));
    group_->Abort(why);
    for (Rank& rank : ranks_) {
      if (rank.nccl != nullptr) rank.nccl->Abort();
    }
  });
}

absl::StatusOr<StepResult> TensorParallelCudaBackend::Execute(const StepPlan& plan) {
  if (absl::Status aborted = group_->aborted(); !aborted.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the tensor-parallel CUDA backend stopped after an earlier error: ", aborted.message()));
  }
  TraceRow row;
  if (trace_) row.entered_us = SystemClock::Get()->NowMicros();
  // A malformed plan, or one a rank would refuse (Quest's candidate limit), is answered here,
  // before any rank sees it (no state changes; an error inside a rank stops the group).
  LIL_RETURN_IF_ERROR(CheckPlan(plan, config(), num_pages(), page_size()));
  LIL_RETURN_IF_ERROR(CheckQuestCandidates(plan, config(), page_size(), kQuestMaxCandidates));
  step_began_us_.store(SystemClock::Get()->NowMicros());
  absl::Cleanup step_over = [this] { step_began_us_.store(0); };
  if (absl::Status s = BroadcastPlan(*host_[0], plan); !s.ok()) {
    AbortAll(s);
    return s;
  }
  if (trace_) row.planned_us = SystemClock::Get()->NowMicros();
  absl::StatusOr<StepResult> result = ranks_[0].backend->Execute(plan);
  if (trace_ && trace_rows_[0].size() < kTraceMaxSteps) {
    row.clock = ranks_[0].backend->last_clock();
    trace_rows_[0].push_back(row);
  }
  if (result.ok()) {
    if (absl::Status s = ranks_[0].nccl->AsyncError(); !s.ok()) result = s;
  }
  if (!result.ok()) AbortAll(absl::Status(result.status().code(), absl::StrCat("rank 0: ", result.status().message())));
  return result;
}

void TensorParallelCudaBackend::WorkerLoop(int32_t rank) {
  cudaSetDevice(ranks_[rank].device);
  while (true) {
    absl::StatusOr<std::optional<StepPlan>> plan = ReceivePlan(*host_[rank]);
    if (plan.ok() && !plan->has_value()) return;  // stop
    if (!plan.ok() && !group_->aborted().ok()) return;  // the group was aborted
    if (plan.ok() && drop_plan_rank_.load() == rank) {  // tests (DropNextPlanOnRankForTest)
      drop_plan_rank_.store(-1);
      continue;
    }
    absl::Status s = plan.status();
    TraceRow row;
    if (trace_) row.entered_us = row.planned_us = SystemClock::Get()->NowMicros();
    if (plan.ok()) s = ranks_[rank].backend->Execute(**plan).status();
    if (trace_ && trace_rows_[rank].size() < kTraceMaxSteps) {
      row.clock = ranks_[rank].backend->last_clock();
      trace_rows_[rank].push_back(row);
    }
    if (s.ok()) s = ranks_[rank].nccl->AsyncError();
    if (!s.ok()) {
      AbortAll(absl::Status(s.code(), absl::StrCat("rank ", rank, ": ", s.message())));
      return;
    }
  }
}

void TensorParallelCudaBackend::LogTrace() const {
  const size_t steps = trace_rows_[0].size();
  for (const auto& rows : trace_rows_) {
    if (rows.size() != steps) {
      LIL_LOG_INFO("tp trace: ranks recorded different step counts");
      return;
    }
  }
  if (steps == 0) return;
  const auto median = MedianOf;
  std::vector<int64_t> check, enqueue0, sync0;
  for (const TraceRow& r : trace_rows_[0]) {
    check.push_back(r.planned_us - r.entered_us);
    enqueue0.push_back(r.clock.launched_us - r.clock.begin_us);
    sync0.push_back(r.clock.synced_us - r.clock.launched_us);
  }
  LIL_LOG_INFO("tp trace, {} steps, median us: rank 0 check + broadcast {}, Execute to enqueued {}, enqueued to synced {}",
               steps, median(check), median(enqueue0), median(sync0));
  for (size_t q = 1; q < trace_rows_.size(); ++q) {
    std::vector<int64_t> received, enqueue, launch_skew, sync_skew;
    for (size_t i = 0; i < steps; ++i) {
      const TraceRow& a = trace_rows_[0][i];
      const TraceRow& b = trace_rows_[q][i];
      received.push_back(b.planned_us - a.planned_us);
      enqueue.push_back(b.clock.launched_us - b.clock.begin_us);
      launch_skew.push_back(b.clock.launched_us - a.clock.launched_us);
      sync_skew.push_back(b.clock.synced_us - a.clock.synced_us);
    }
    LIL_LOG_INFO("tp trace rank {}: plan in hand {} after rank 0's broadcast returned, Execute to enqueued {}, "
                 "enqueued {} after rank 0, synced {} after rank 0 (median us)",
                 q, median(received), median(enqueue), median(launch_skew), median(sync_skew));
  }
}

}  // namespace lil::cuda
