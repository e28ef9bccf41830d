// File: engine/cuda/nccl_comm.h
// NCCL behind the Communicator interface (engine/parallel/communicator.h), for the data
// plane of tensor parallelism on GPUs (docs/PARALLEL.md).
//
// NCCL is opened with dlopen (libnccl.so.2) the first time a group is made, like cuBLAS: the
// module still loads, and one GPU still serves, where NCCL is missing. The few entry points
// used are declared in nccl_comm.cc from NCCL's documented C API.
//
// Differences from the interface's contract, on purpose:
//   - pointers are DEVICE pointers and every call is enqueued on the rank's stream (given at
//     creation) and returns at once; completion is in stream order, like a kernel;
//   - AllReduceSum gives every rank bitwise the same result (NCCL's ring and tree finish by
//     propagating one reduced copy), but not the rank-ordered sum; TP=N therefore differs
//     from TP=1 by summation order, like any GPU tensor-parallel engine;
//   - disagreement between ranks is not detected (NCCL has no such check): the driver
//     (tp_cuda_backend) makes every rank run the same plan, so every rank makes the same
//     calls.
// One object per rank, used from that rank's thread.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cuda/cuda_util.h"
#include "engine/parallel/communicator.h"
#include "kernels/cuda/allreduce.h"

namespace lil::cuda {

// ncclUniqueId: 128 opaque bytes made by rank 0 and handed to every rank.
using NcclUniqueId = std::array<char, 128>;

// A new unique id (rank 0, before the ranks init). FAILED_PRECONDITION when NCCL is missing.
absl::StatusOr<NcclUniqueId> NcclNewUniqueId();

class NcclCommunicator final : public Communicator {
 public:
  // Collective: every rank of the group calls it at the same time from its own thread, with
  // its device current (cudaSetDevice) and the same id. Blocks until all ranks have joined.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(const NcclUniqueId& id,
                                                                  int32_t rank, int32_t world,
                                                                  cudaStream_t stream);
  ~NcclCommunicator() override;

  int32_t rank() const override { return rank_; }
  int32_t world_size() const override { return world_; }
  absl::Status AllReduceSum(float* data, int64_t n) override;
  // residual[i] += (sum over ranks of data[i]); residual_bf16[i] = bf16(residual[i]) (device
  // pointers, n floats; residual 16-byte and residual_bf16 8-byte aligned). One kernel through
  // the one-shot path when it is on and n fits; else NCCL then two small kernels. data's
  // contents afterwards are unspecified. Every rank must pass the same residual values.
  absl::Status AllReduceIntoResidual(float* data, int64_t n, float* residual, __nv_bfloat16* residual_bf16);
  // The same sum done inside the GEMV that makes the partial (GemmParams::reduce; allreduce.h
  // GemvAllReduce): the descriptor for adding into residual / residual_bf16, or nullopt (one
  // rank, the one-shot kernels off, or EnableOneShot's gemv_allreduce false). GemvSupported says whether
  // a GEMV's shape and buffers fit it; where not, the GEMV writes its partial and
  // AllReduceIntoResidual follows.
  std::optional<GemvAllReduce> GemvAllReduceFor(float* residual, __nv_bfloat16* residual_bf16) const;
  absl::Status AllGather(const float* in, int64_t n, float* out) override;
  absl::Status Broadcast(void* data, int64_t bytes, int32_t root) override;
  // Enqueues a one-element all-reduce and waits for the stream.
  absl::Status Barrier() override;

  // Aborts the communicator: collectives in flight on any rank of the group return with an
  // error instead of waiting forever for this rank, and so do this rank's one-shot and GEMV
  // all-reduce waits (the error word set to kOneShotAbortedWord). Thread-safe; later calls fail.
  void Abort();
  // OK, or the asynchronous error NCCL recorded (a peer that died, a network fault).
  absl::Status AsyncError() const;

  // Small all-reduces (<= cap_bytes) through the one-shot kernel (kernels/cuda/allreduce.h)
  // instead of NCCL, for every rank of an in-process group: enables peer access between all
  // the GPUs and allocates each rank's receive slots and flags on its GPU. Call once from
  // any one thread while no rank runs; `comms[r]` is rank r's and runs on devices[r]. Returns
  // false (NCCL stays) when a pair of GPUs cannot access each other or the group has more
  // than kOneShotMaxRanks ranks. $LILSERVE_ONESHOT_ALLREDUCE=0 keeps NCCL for everything.
  // gemv_allreduce: also GemvAllReduceFor's slots (TensorParallelCudaBackend: at TP=2 unless
  // $LILSERVE_GEMV_ALLREDUCE=0, wider groups with $LILSERVE_GEMV_ALLREDUCE=1).
  static absl::StatusOr<bool> EnableOneShot(const std::vector<NcclCommunicator*>& comms,
                                            const std::vector<int32_t>& devices, int64_t cap_bytes,
                                            bool gemv_allreduce = false);

 private:
  NcclCommunicator(void* comm, int32_t rank, int32_t world, cudaStream_t stream)
      : comm_(comm), rank_(rank), world_(world), stream_(stream) {}
  absl::Status Check(int result, const char* what) const;
  // One eager all-reduce and all-gather at creation, waited for: a broken group fails at
  // startup, and the first collective a rank runs is never one inside a graph capture.
  absl::Status WarmUp();

  void* comm_;  // ncclComm_t
  int32_t rank_, world_;
  cudaStream_t stream_;
  OneShotParams one_shot_;        // cap 0: off
  GemvAllReduce gemv_;            // world 0: off
  DeviceBuffer one_shot_memory_;  // this rank's slots, flags and epochs
  PinnedBuffer one_shot_error_;   // host-mapped timeout word (OneShotParams::error)
  std::atomic<bool> aborted_{false};
};

}  // namespace lil::cuda
