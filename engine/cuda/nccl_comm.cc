// File: engine/cuda/nccl_comm.cc
// The NCCL entry points we use, declared with their documented C signatures and enum values
// (nccl.h: ncclResult_t ncclSuccess 0 / ncclInProgress 7, ncclFloat32 7, ncclInt8 0,
// ncclSum 0, ncclUniqueId = 128 bytes), resolved with dlsym from libnccl.so.2.
#include "engine/cuda/nccl_comm.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/log.h"
#include "common/status.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/dl_open.h"
#include "kernels/cuda/ops.h"

namespace lil::cuda {
namespace {

constexpr int kNcclSuccess = 0;
constexpr int kNcclInProgress = 7;
constexpr int kNcclInt8 = 0;
constexpr int kNcclFloat32 = 7;
constexpr int kNcclSum = 0;

struct NcclIdBytes {
  char internal[128];
};

using GetUniqueIdFn = int (*)(NcclIdBytes* id);
using CommInitRankFn = int (*)(void** comm, int nranks, NcclIdBytes id, int rank);
using CommDestroyFn = int (*)(void* comm);
using CommAbortFn = int (*)(void* comm);
using CommGetAsyncErrorFn = int (*)(void* comm, int* async_error);
using GetErrorStringFn = const char* (*)(int result);
using AllReduceFn = int (*)(const void* send, void* recv, size_t count, int dtype, int op,
                            void* comm, cudaStream_t stream);
using AllGatherFn = int (*)(const void* send, void* recv, size_t count, int dtype, void* comm,
                            cudaStream_t stream);
using BroadcastFn = int (*)(const void* send, void* recv, size_t count, int dtype, int root,
                            void* comm, cudaStream_t stream);

struct Nccl {
  GetUniqueIdFn get_unique_id = nullptr;
  CommInitRankFn comm_init_rank = nullptr;
  CommDestroyFn comm_destroy = nullptr;
  CommAbortFn comm_abort = nullptr;
  CommGetAsyncErrorFn comm_get_async_error = nullptr;
  GetErrorStringFn get_error_string = nullptr;
  AllReduceFn all_reduce = nullptr;
  AllGatherFn all_gather = nullptr;
  BroadcastFn broadcast = nullptr;
};

absl::StatusOr<Nccl> OpenNccl() {
  Nccl n;
  const absl::Status s = OpenLibrary("LILSERVE_NCCL", {"libnccl.so.2", "libnccl.so"}, [&](void* h) {
    n.get_unique_id = reinterpret_cast<GetUniqueIdFn>(dlsym(h, "ncclGetUniqueId"));
    n.comm_init_rank = reinterpret_cast<CommInitRankFn>(dlsym(h, "ncclCommInitRank"));
    n.comm_destroy = reinterpret_cast<CommDestroyFn>(dlsym(h, "ncclCommDestroy"));
    n.comm_abort = reinterpret_cast<CommAbortFn>(dlsym(h, "ncclCommAbort"));
    n.comm_get_async_error = reinterpret_cast<CommGetAsyncErrorFn>(dlsym(h, "ncclCommGetAsyncError"));
    n.get_error_string = reinterpret_cast<GetErrorStringFn>(dlsym(h, "ncclGetErrorString"));
    n.all_reduce = reinterpret_cast<AllReduceFn>(dlsym(h, "ncclAllReduce"));
    n.all_gather = reinterpret_cast<AllGatherFn>(dlsym(h, "ncclAllGather"));
    n.broadcast = reinterpret_cast<BroadcastFn>(dlsym(h, "ncclBroadcast"));
    return n.get_unique_id && n.comm_init_rank && n.comm_destroy && n.comm_abort && n.comm_get_async_error &&
           n.get_error_string && n.all_reduce && n.all_gather && n.broadcast;
  }, nullptr);
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("NCCL is needed for tensor parallelism on GPUs and does not load: ", s.message()));
  }
  return n;
}

const absl::StatusOr<Nccl>& GetNccl() {
  static std::once_flag once;
  static absl::StatusOr<Nccl>* nccl = nullptr;
  std::call_once(once, [] {
    // NVLink multicast (NVLS) off before NCCL reads its environment (docs/PARALLEL.md);
    // an operator's explicit setting wins. Peers connected at init, not at a collective's
    // first call (NCCL >= 2.22 connects lazily by default): a rank's first all-gather is
    // often inside a CUDA graph capture (a one-token first step), and a connection made
    // there left the captured ring kernel reading a null buffer (seen on 2 x H200).
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    setenv("NCCL_RUNTIME_CONNECT", "0", 0);
    nccl = new absl::StatusOr<Nccl>(OpenNccl());
  });
  return *nccl;
}

}  // namespace

absl::StatusOr<NcclUniqueId> NcclNewUniqueId() {
  const auto& nccl = GetNccl();
  if (!nccl.ok()) return nccl.status();
  NcclIdBytes id{};
  if (int r = nccl->get_unique_id(&id); r != kNcclSuccess) {
    return absl::InternalError(absl::StrCat("ncclGetUniqueId: ", nccl->get_error_string(r)));
  }
  NcclUniqueId out;
  std::memcpy(out.data(), id.internal, out.size());
  return out;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(const NcclUniqueId& id,
                                                                         int32_t rank, int32_t world,
                                                                         cudaStream_t stream) {
  const auto& nccl = GetNccl();
  if (!nccl.ok()) return nccl.status();
  if (world < 1 || rank < 0 || rank >= world) {
    return InvalidArgument("NCCL rank ", rank, " of world ", world);
  }
  NcclIdBytes raw;
  std::memcpy(raw.internal, id.data(), id.size());
  void* comm = nullptr;
  if (int r = nccl->comm_init_rank(&comm, world, raw, rank); r != kNcclSuccess) {
    return absl::InternalError(absl::StrCat("ncclCommInitRank(rank ", rank, " of ", world,
                                            "): ", nccl->get_error_string(r)));
  }
  auto c = std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, rank, world, stream));
  LIL_RETURN_IF_ERROR(c->WarmUp());
  return c;
}

absl::Status NcclCommunicator::WarmUp() {
  DeviceBuffer buffer;
  LIL_RETURN_IF_ERROR(buffer.Reserve(sizeof(float) * (world_ + 1)));
  float* d = buffer.get<float>();
  LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d, 0, sizeof(float) * (world_ + 1), stream_));
  LIL_RETURN_IF_ERROR(Check(GetNccl()->all_reduce(d, d, 1, kNcclFloat32, kNcclSum, comm_, stream_),
                            "ncclAllReduce (warm-up)"));
  LIL_RETURN_IF_ERROR(Check(GetNccl()->all_gather(d, d + 1, 1, kNcclFloat32, comm_, stream_),
                            "ncclAllGather (warm-up)"));
  LIL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return AsyncError();
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ == nullptr) return;
  const auto& nccl = GetNccl();
  if (aborted_.load()) return;  // ncclCommAbort freed it
  nccl->comm_destroy(comm_);
}

void NcclCommunicator::Abort() {
  if (aborted_.exchange(true)) return;
  // The one-shot and GEMV all-reduce waits on this rank's GPU read this word (PollBudget):
  // they end as well, instead of each running out its own timeout.
  if (uint32_t* word = one_shot_error_.get<uint32_t>(); word != nullptr) {
    *reinterpret_cast<volatile uint32_t*>(word) = kOneShotAbortedWord;
  }
  GetNccl()->comm_abort(comm_);
}

absl::Status NcclCommunicator::Check(int result, const char* what) const {
  if (result == kNcclSuccess || result == kNcclInProgress) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " (rank ", rank_, " of ", world_, "): ",
                                          GetNccl()->get_error_string(result)));
}

absl::Status NcclCommunicator::AsyncError() const {
  if (aborted_.load()) return absl::AbortedError("the NCCL communicator was aborted");
  if (one_shot_.error != nullptr) {
    const uint32_t peer = *reinterpret_cast<volatile uint32_t*>(one_shot_error_.get<uint32_t>());
    if (peer != 0) {
      return absl::DeadlineExceededError(absl::StrCat("one-shot all-reduce on rank ", rank_, " waited over ",
                                                      kOneShotTimeoutNs / 1000000000, " s for rank ", peer - 1));
    }
  }
  int async = kNcclSuccess;
  LIL_RETURN_IF_ERROR(Check(GetNccl()->comm_get_async_error(comm_, &async), "ncclCommGetAsyncError"));
  return Check(async, "NCCL asynchronous error");
}

absl::StatusOr<bool> NcclCommunicator::EnableOneShot(const std::vector<NcclCommunicator*>& comms,
                                                     const std::vector<int32_t>& devices, int64_t cap_bytes,
                                                     bool gemv_allreduce) {
  const int32_t world = static_cast<int32_t>(comms.size());
  if (EnvIs("LILSERVE_ONESHOT_ALLREDUCE", "0")) {
    LIL_LOG_INFO("one-shot all-reduce off ($LILSERVE_ONESHOT_ALLREDUCE=0): NCCL for every size");
    return false;
  }
  if (world < 2 || world > kOneShotMaxRanks || devices.size() != comms.size()) return false;
  int previous = 0;
  LIL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&previous));
  for (int32_t a = 0; a < world; ++a) {
    for (int32_t b = 0; b < world; ++b) {
      int can = 0;
      if (a != b) LIL_CUDA_RETURN_IF_ERROR(cudaDeviceCanAccessPeer(&can, devices[a], devices[b]));
      if (a != b && can == 0) {
        LIL_LOG_INFO("one-shot all-reduce off: GPU {} cannot access GPU {}; NCCL for every size", devices[a], devices[b]);
        return false;
      }
    }
  }
  const int64_t cap = std::max<int64_t>(4, cap_bytes / 4 / 4 * 4);
  const int64_t slot_floats = 2 * world * cap;
  const int64_t flag_words = 2 * world * kOneShotMaxBlocks;
  // The flag-in-every-word variant up to kOneShotLlBytes (decode at batch <= 16 of an
  // 8B-class model), unless $LILSERVE_ONESHOT_LL=0.
  const int64_t ll_cap = EnvIs("LILSERVE_ONESHOT_LL", "0") ? 0 : std::min<int64_t>(cap, kOneShotLlBytes / 4);
  const int64_t ll_bytes = 2 * world * (ll_cap / 2) * static_cast<int64_t>(sizeof(uint4));
  // The GEMV's own all-reduce (GemvAllReduceFor) for messages up to kGemvAllReduceFloats, with
  // the LL variant and only when asked (gemv_allreduce; experimental: 2% faster at TP=2 batch 1
  // and bitwise equal to the kernel path in gpu_tp_test, but the TP=2 daemon's e2e test hung
  // with it on in session 18, cause not isolated: docs/PARALLEL.md): its own slots and state, so
  // its epochs never meet the one-shot kernels'.
  const int64_t gemv_cap = ll_cap > 0 && gemv_allreduce ? kGemvAllReduceFloats : 0;
  const int64_t gemv_bytes = 2 * world * (gemv_cap / 2) * static_cast<int64_t>(sizeof(uint4));
  OneShotParams shared;
  GemvAllReduce gemv;
  gemv.world = gemv_cap > 0 ? world : 0;
  gemv.cap = gemv_cap;
  shared.world = world;
  shared.cap = cap;
  for (int32_t r = 0; r < world; ++r) {
    LIL_CUDA_RETURN_IF_ERROR(cudaSetDevice(devices[r]));
    for (int32_t q = 0; q < world; ++q) {
      if (q == r) continue;
      const cudaError_t e = cudaDeviceEnablePeerAccess(devices[q], 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError();
      } else if (e != cudaSuccess) {
        return CudaStatus(e, "cudaDeviceEnablePeerAccess");
      }
    }
    NcclCommunicator& c = *comms[r];
    // [GEMV slots][LL slots][slots][flags][epochs][GEMV state]: the 16-byte slots first keep
    // their alignment.
    const size_t bytes = gemv_bytes + ll_bytes + sizeof(float) * slot_floats +
                         sizeof(uint32_t) * (flag_words + kOneShotMaxBlocks + 2);
    LIL_RETURN_IF_ERROR(c.one_shot_memory_.Reserve(bytes));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemset(c.one_shot_memory_.get(), 0, bytes));
    char* base = c.one_shot_memory_.get<char>();
    gemv.slots[r] = gemv_cap > 0 ? reinterpret_cast<uint4*>(base) : nullptr;
    shared.ll_slots[r] = ll_cap > 0 ? reinterpret_cast<uint4*>(base + gemv_bytes) : nullptr;
    shared.slots[r] = reinterpret_cast<float*>(base + gemv_bytes + ll_bytes);
    shared.flags[r] = reinterpret_cast<uint32_t*>(shared.slots[r] + slot_floats);
  }
  shared.ll_cap = ll_cap;
  for (int32_t r = 0; r < world; ++r) {
    NcclCommunicator& c = *comms[r];
    c.one_shot_ = shared;
    c.one_shot_.rank = r;
    c.one_shot_.epoch = shared.flags[r] + flag_words;
    c.gemv_ = gemv;
    c.gemv_.rank = r;
    c.gemv_.state = c.one_shot_.epoch + kOneShotMaxBlocks;
    // Pinned memory is mapped into every device's address space (unified addressing).
    LIL_RETURN_IF_ERROR(c.one_shot_error_.Reserve(sizeof(uint32_t)));
    *c.one_shot_error_.get<uint32_t>() = 0;
    void* mapped = nullptr;
    LIL_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(&mapped, c.one_shot_error_.get(), 0));
    c.one_shot_.error = static_cast<uint32_t*>(mapped);
    c.gemv_.error = c.one_shot_.error;
  }
  LIL_CUDA_RETURN_IF_ERROR(cudaSetDevice(previous));
  LIL_LOG_INFO("one-shot all-reduce on for messages up to {} KiB ({} ranks; the epoch beside every value up to {} KiB; "
               "inside the one-token GEMVs up to {} KiB); NCCL above",
               cap * 4 / 1024, world, ll_cap * 4 / 1024, gemv_cap * 4 / 1024);
  return true;
}

absl::Status NcclCommunicator::AllReduceSum(float* data, int64_t n) {
  if (aborted_.load()) return absl::AbortedError("the NCCL communicator was aborted");
  if (world_ == 1 || n == 0) return absl::OkStatus();
  if (n <= one_shot_.cap && reinterpret_cast<uintptr_t>(data) % 16 == 0) {
    OneShotParams p = one_shot_;
    p.data = data;
    p.n = n;
    return CudaStatus(OneShotAllReduce(p, stream_), "OneShotAllReduce");
  }
  return Check(GetNccl()->all_reduce(data, data, static_cast<size_t>(n), kNcclFloat32, kNcclSum,
                                     comm_, stream_), "ncclAllReduce");
}

absl::Status NcclCommunicator::AllReduceIntoResidual(float* data, int64_t n, float* residual,
                                                     __nv_bfloat16* residual_bf16) {
  if (aborted_.load()) return absl::AbortedError("the NCCL communicator was aborted");
  if (n == 0) return absl::OkStatus();
  if (world_ > 1 && n <= one_shot_.cap && reinterpret_cast<uintptr_t>(data) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(residual) % 16 == 0 && reinterpret_cast<uintptr_t>(residual_bf16) % 8 == 0) {
    OneShotParams p = one_shot_;
    p.data = data;
    p.n = n;
    p.residual = residual;
    p.residual_bf16 = residual_bf16;
    return CudaStatus(OneShotAllReduce(p, stream_), "OneShotAllReduce (into the residual)");
  }
  LIL_RETURN_IF_ERROR(AllReduceSum(data, n));
  LIL_CUDA_RETURN_IF_ERROR(AddInPlace(residual, data, n, stream_));
  return CudaStatus(ToBf16(residual, residual_bf16, n, stream_), "ToBf16 (residual)");
}

std::optional<GemvAllReduce> NcclCommunicator::GemvAllReduceFor(float* residual, __nv_bfloat16* residual_bf16) const {
  if (world_ < 2 || gemv_.world == 0 || aborted_.load()) return std::nullopt;
  GemvAllReduce a = gemv_;
  a.residual = residual;
  a.residual_bf16 = residual_bf16;
  return a;
}

absl::Status NcclCommunicator::AllGather(const float* in, int64_t n, float* out) {
  if (aborted_.load()) return absl::AbortedError("the NCCL communicator was aborted");
  if (world_ == 1) {
    if (in != out && n > 0) {
      LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out, in, sizeof(float) * n, cudaMemcpyDeviceToDevice, stream_));
    }
    return absl::OkStatus();
  }
  return Check(GetNccl()->all_gather(in, out, static_cast<size_t>(n), kNcclFloat32, comm_, stream_),
               "ncclAllGather");
}

absl::Status NcclCommunicator::Broadcast(void* data, int64_t bytes, int32_t root) {
  if (aborted_.load()) return absl::AbortedError("the NCCL communicator was aborted");
  if (root < 0 || root >= world_) return InvalidArgument("Broadcast root ", root, " of world ", world_);
  if (world_ == 1 || bytes == 0) return absl::OkStatus();
  return Check(GetNccl()->broadcast(data, data, static_cast<size_t>(bytes), kNcclInt8, root, comm_, stream_),
               "ncclBroadcast");
}

absl::Status NcclCommunicator::Barrier() {
  DeviceBuffer one;
  LIL_RETURN_IF_ERROR(one.Reserve(sizeof(float)));
  LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(one.get(), 0, sizeof(float), stream_));
  LIL_RETURN_IF_ERROR(AllReduceSum(one.get<float>(), 1));
  return CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

}  // namespace lil::cuda
