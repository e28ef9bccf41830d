// File: engine/parallel/communicator.cc
#include "engine/parallel/communicator.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace lil {
namespace {

const char* OpName(int op) {
  static const char* const kNames[] = {"AllReduceSum", "AllGather", "Broadcast", "Barrier",
                                       "the release of a collective"};
  return kNames[op];
}

}  // namespace

absl::StatusOr<std::shared_ptr<InProcessGroup>> InProcessGroup::Create(int32_t world_size, int64_t spin_micros) {
  if (world_size < 1) return InvalidArgument("world size must be >= 1, got ", world_size);
  return std::shared_ptr<InProcessGroup>(new InProcessGroup(world_size, spin_micros));
}

absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> InProcessGroup::CreateCommunicators(
    int32_t world_size) {
  LIL_ASSIGN_OR_RETURN(std::shared_ptr<InProcessGroup> group, Create(world_size));
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int32_t r = 0; r < world_size; ++r) {
    LIL_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, group->ForRank(r));
    comms.push_back(std::move(comm));
  }
  return comms;
}

InProcessGroup::InProcessGroup(int32_t world_size, int64_t spin_micros)
    : world_(world_size), spin_micros_(spin_micros), posts_(world_size), posted_(world_size, false) {}

absl::StatusOr<std::unique_ptr<Communicator>> InProcessGroup::ForRank(int32_t rank) {
  if (rank < 0 || rank >= world_) {
    return InvalidArgument("rank ", rank, " is outside the group's [0, ", world_, ")");
  }
  return std::unique_ptr<Communicator>(new InProcessCommunicator(shared_from_this(), rank));
}

void InProcessGroup::Abort(const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  if (!aborted_.ok()) return;
  const absl::StatusCode code = why.ok() ? absl::StatusCode::kAborted : why.code();
  aborted_ = absl::Status(code, absl::StrCat("tensor-parallel group aborted: ",
                                             why.ok() ? "no reason given" : why.message()));
  aborted_seen_.store(true, std::memory_order_release);
  cv_.SignalAll();
}

absl::Status InProcessGroup::aborted() const {
  absl::MutexLock lock(&mu_);
  return aborted_;
}

absl::Status InProcessGroup::CompleteRound() {
  const Post& first = posts_[0];
  const char* name = OpName(static_cast<int>(first.op));
  for (int32_t r = 1; r < world_; ++r) {
    if (posts_[r].op != first.op) {
      return InvalidArgument("collective mismatch: rank 0 called ", name, ", rank ", r, " called ",
                             OpName(static_cast<int>(posts_[r].op)));
    }
  }
  if (first.op == Op::kBarrier || first.op == Op::kRelease) return absl::OkStatus();
  const char* unit = first.op == Op::kBroadcast ? "byte" : "element";
  for (int32_t r = 0; r < world_; ++r) {
    const Post& p = posts_[r];
    if (p.count < 0)
      return InvalidArgument(name, ": rank ", r, " passed a negative ", unit, " count ", p.count);
    if (p.count != first.count) {
      return InvalidArgument(name, ": ranks disagree on the ", unit, " count: rank 0 has ",
                             first.count, ", rank ", r, " has ", p.count);
    }
    if (p.count > 0 && (p.out == nullptr || (first.op != Op::kBroadcast && p.in == nullptr))) {
      return InvalidArgument(name, ": rank ", r, " passed a null buffer for ", p.count, " ", unit,
                             "s");
    }
    if (first.op == Op::kBroadcast) {
      if (p.root < 0 || p.root >= world_) {
        return InvalidArgument("Broadcast: rank ", r, " names root ", p.root, ", outside [0, ",
                               world_, ")");
      }
      if (p.root != first.root) {
        return InvalidArgument("Broadcast: ranks disagree on the root: rank 0 names ", first.root,
                               ", rank ", r, " names ", p.root);
      }
    }
  }
  if (first.op == Op::kAllReduceSum) {
    // Fixed rank order: ((r0 + r1) + r2) + ... is what every rank receives.
    const int64_t n = first.count;
    const float* r0 = static_cast<const float*>(posts_[0].in);
    sum_.assign(r0, r0 + n);
    for (int32_t r = 1; r < world_; ++r) {
      const float* in = static_cast<const float*>(posts_[r].in);
      for (int64_t i = 0; i < n; ++i) sum_[i] += in[i];
    }
  }
  return absl::OkStatus();
}

absl::Status InProcessGroup::Rendezvous(int32_t rank, const Post& post, std::vector<Post>* posts) {
  absl::MutexLock lock(&mu_);
  if (!aborted_.ok()) return aborted_;
  if (posted_[rank]) {
    // Two threads share one rank's Communicator: the call order is lost, nothing can recover.
    const absl::Status s = absl::FailedPreconditionError(
        absl::StrCat("rank ", rank, " entered ", OpName(static_cast<int>(post.op)),
                     " while its previous collective (", OpName(static_cast<int>(posts_[rank].op)),
                     ") is still waiting: one Communicator is used from two threads"));
    aborted_ = s;
    cv_.SignalAll();
    return s;
  }
  posts_[rank] = post;
  posted_[rank] = true;
  const uint64_t generation = generation_;
  if (++arrived_ == world_) {
    round_status_ = CompleteRound();
    round_posts_ = posts_;
    arrived_ = 0;
    posted_.assign(world_, false);
    ++generation_;
    generation_seen_.store(generation_, std::memory_order_release);
    cv_.SignalAll();
  } else {
    if (spin_micros_ > 0) {
      // Poll without the lock for a while; the loop below then finds the round done, or waits.
      mu_.Unlock();
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_micros_);
      while (generation_seen_.load(std::memory_order_acquire) == generation &&
             !aborted_seen_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) {
      }
      mu_.Lock();
    }
    while (generation_ == generation && aborted_.ok()) cv_.Wait(&mu_);
    if (generation_ == generation) return aborted_;
  }
  // Faster ranks may already have posted their next round into posts_; round_posts_ and
  // round_status_ stay this round's until this rank arrives again (no round completes
  // without it).
  if (posts != nullptr) *posts = round_posts_;
  return round_status_;
}

absl::Status InProcessGroup::Gather(int32_t rank, const Post& post, std::vector<Post>* posts) {
  return Rendezvous(rank, post, posts);
}

absl::Status InProcessGroup::Release(int32_t rank) {
  Post p;
  p.op = Op::kRelease;
  return Rendezvous(rank, p, nullptr);
}

InProcessCommunicator::InProcessCommunicator(std::shared_ptr<InProcessGroup> group, int32_t rank)
    : group_(std::move(group)), rank_(rank) {}

absl::Status InProcessCommunicator::AllReduceSum(float* data, int64_t n) {
  InProcessGroup::Post p;
  p.op = InProcessGroup::Op::kAllReduceSum;
  p.in = data;
  p.out = data;
  p.count = n;
  LIL_RETURN_IF_ERROR(group_->Gather(rank_, p, nullptr));
  if (n > 0) std::memcpy(data, group_->sum_.data(), sizeof(float) * n);
  return group_->Release(rank_);
}

absl::Status InProcessCommunicator::AllGather(const float* in, int64_t n, float* out) {
  InProcessGroup::Post p;
  p.op = InProcessGroup::Op::kAllGather;
  p.in = in;
  p.out = out;
  p.count = n;
  std::vector<InProcessGroup::Post> posts;
  LIL_RETURN_IF_ERROR(group_->Gather(rank_, p, &posts));
  for (int32_t r = 0; r < world_size() && n > 0; ++r) {
    float* dst = out + static_cast<int64_t>(r) * n;
    const float* src = static_cast<const float*>(posts[r].in);
    if (dst != src) std::memmove(dst, src, sizeof(float) * n);  // in may alias out[rank]
  }
  return group_->Release(rank_);
}

absl::Status InProcessCommunicator::Broadcast(void* data, int64_t bytes, int32_t root) {
  InProcessGroup::Post p;
  p.op = InProcessGroup::Op::kBroadcast;
  p.in = data;
  p.out = data;
  p.count = bytes;
  p.root = root;
  std::vector<InProcessGroup::Post> posts;
  LIL_RETURN_IF_ERROR(group_->Gather(rank_, p, &posts));
  if (rank_ != root && bytes > 0) std::memcpy(data, posts[root].out, bytes);
  return group_->Release(rank_);
}

absl::Status InProcessCommunicator::Barrier() {
  InProcessGroup::Post p;
  p.op = InProcessGroup::Op::kBarrier;
  return group_->Gather(rank_, p, nullptr);
}

}  // namespace lil
