// File: engine/parallel/communicator.h
// Collectives between the ranks of a tensor-parallel group (docs/PARALLEL.md). The forward
// pass talks only to this interface: InProcessCommunicator runs N ranks on N threads of one
// process (CPU tests, the CPU TP backend); the CUDA side implements it over NCCL.
//
// Contract, for every implementation:
//   - every rank calls the same collectives in the same order with the same sizes (and the
//     same root); a rank that disagrees makes that collective fail on EVERY rank with an
//     INVALID_ARGUMENT naming the ranks and the values, and moves no data;
//   - AllReduceSum adds the ranks' buffers in rank order ((r0 + r1) + r2) + ..., so every
//     rank gets bitwise the same result whatever the thread timing;
//   - each Communicator object belongs to one thread (its rank's); the N objects of a group
//     are called concurrently from N threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace lil {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int32_t rank() const = 0;
  virtual int32_t world_size() const = 0;
  // data[0, n) := sum over ranks of their data[0, n), in place, summed in rank order.
  virtual absl::Status AllReduceSum(float* data, int64_t n) = 0;
  // out[r * n, (r + 1) * n) := rank r's in[0, n) (rank-major); out holds world_size * n.
  virtual absl::Status AllGather(const float* in, int64_t n, float* out) = 0;
  // data[0, bytes) := root's data[0, bytes) on every rank.
  virtual absl::Status Broadcast(void* data, int64_t bytes, int32_t root) = 0;
  virtual absl::Status Barrier() = 0;
};

// The shared state of N in-process ranks: a generation-counted rendezvous under one mutex.
// Every collective is two rendezvous: (1) all ranks post their buffers; the last to arrive
// checks that the posts agree and, for a sum, reduces them in rank order into one buffer;
// (2) after each rank has copied what it needs, a release so no rank reuses or overwrites a
// buffer another rank is still reading. Create once, then hand ForRank(r) to thread r.
class InProcessGroup : public std::enable_shared_from_this<InProcessGroup> {
 public:
  // INVALID_ARGUMENT unless world_size >= 1. spin_micros > 0: a rank that waits for the
  // others first polls for up to that long before it sleeps on the condition variable (a
  // sleeping thread wakes tens of microseconds after the signal; the CUDA tensor-parallel
  // driver's plan broadcast pays that on every step, while its ranks' cores are otherwise
  // idle). 0 (the CPU backend, whose ranks compute on the cores a spin would take): sleep at once.
  static absl::StatusOr<std::shared_ptr<InProcessGroup>> Create(int32_t world_size, int64_t spin_micros = 0);
  // World size 1..N communicators, element r for rank r.
  static absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> CreateCommunicators(
      int32_t world_size);

  int32_t world_size() const { return world_; }
  // The communicator of `rank`; it keeps the group alive. INVALID_ARGUMENT outside
  // [0, world_size).
  absl::StatusOr<std::unique_ptr<Communicator>> ForRank(int32_t rank);

  // Fails every waiting and every later collective with `why` (the first call wins). A rank
  // that dies outside a collective calls this so the others do not wait for it forever.
  void Abort(const absl::Status& why) ABSL_LOCKS_EXCLUDED(mu_);
  // OK until Abort.
  absl::Status aborted() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class InProcessCommunicator;
  enum class Op { kAllReduceSum, kAllGather, kBroadcast, kBarrier, kRelease };
  struct Post {
    Op op = Op::kBarrier;
    const void* in = nullptr;
    void* out = nullptr;
    int64_t count = 0;  // elements (floats) or bytes for Broadcast
    int32_t root = 0;
  };

  InProcessGroup(int32_t world_size, int64_t spin_micros);
  // Phase 1: posts this rank's buffers and waits for every rank's; on success `posts` holds
  // all of them (rank order) and, for a sum, sum_ holds the reduction.
  absl::Status Gather(int32_t rank, const Post& post, std::vector<Post>* posts);
  // Phase 2: waits until every rank is done with the others' buffers (and with sum_).
  absl::Status Release(int32_t rank);
  absl::Status Rendezvous(int32_t rank, const Post& post, std::vector<Post>* posts)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Run by the last rank to arrive: the round's status, and the reduction for a sum.
  absl::Status CompleteRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int32_t world_;
  const int64_t spin_micros_;
  // generation_'s value, also readable without mu_ (the spin before a wait).
  std::atomic<uint64_t> generation_seen_{0};
  std::atomic<bool> aborted_seen_{false};  // set with aborted_: a spin ends at once
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  int32_t arrived_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Post> posts_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> posted_ ABSL_GUARDED_BY(mu_);
  std::vector<Post> round_posts_ ABSL_GUARDED_BY(mu_);  // the last completed round's posts
  absl::Status round_status_ ABSL_GUARDED_BY(mu_);
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
  // Written under mu_ by the last rank of an all-reduce's phase 1, read without the lock by
  // every rank between phase 1 and phase 2 (the phases order those accesses).
  std::vector<float> sum_;
};

// One rank's handle on an InProcessGroup. Thread of that rank only.
class InProcessCommunicator final : public Communicator {
 public:
  InProcessCommunicator(std::shared_ptr<InProcessGroup> group, int32_t rank);
  int32_t rank() const override { return rank_; }
  int32_t world_size() const override { return group_->world_size(); }
  absl::Status AllReduceSum(float* data, int64_t n) override;
  absl::Status AllGather(const float* in, int64_t n, float* out) override;
  absl::Status Broadcast(void* data, int64_t bytes, int32_t root) override;
  absl::Status Barrier() override;

 private:
  std::shared_ptr<InProcessGroup> group_;
  int32_t rank_;
};

}  // namespace lil
