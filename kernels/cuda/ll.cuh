// File: kernels/cuda/ll.cuh
// The device pieces of the flag-in-every-word exchange (allreduce.h): the 16-byte
// {v0, flag, v1, flag} store and load, the flag of an epoch, and the budget every wait for a
// peer runs on. Shared by the one-shot all-reduce (allreduce.cu) and the GEMV that all-reduces
// its own output (gemv.cu, GemvAllReduce).
#pragma once

#include <cstdint>

#include "kernels/cuda/allreduce.h"
#include "kernels/cuda/timer.cuh"

namespace lil::cuda {

// An epoch with its top bit set: never 0 (the slots' initial contents), also when the 32-bit
// epoch wraps; consecutive calls of one parity differ.
__device__ __forceinline__ uint32_t FlagOf(uint32_t e) { return e | 0x80000000u; }

// A 16-byte store is not promised to land at once, but each aligned 8-byte half is, so a
// receiver checks each value beside its own flag.
__device__ __forceinline__ void StoreLl(uint4* p, float v0, float v1, uint32_t flag) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(__float_as_uint(v0)), "r"(flag),
               "r"(__float_as_uint(v1)), "r"(flag)
               : "memory");
}

// A wait for peers that ends: after kOneShotTimeoutNs (recording 1 + the peer in the
// host-mapped error word, which NcclCommunicator::AsyncError reports), or once that word is
// already set, read every 1024 failed polls (a wait that succeeds within microseconds never
// reads it). A rank that timed out has left the ranks out of step, so every later wait of the
// step would time out too; with the word they give up within about a millisecond each and the
// step returns its error in well under a minute instead of one timeout a call.
class PollBudget {
 public:
  __device__ explicit PollBudget(uint32_t* error) : error_(error), start_(GlobalTimerNs()) {}
  // Call after a poll of `peer`'s data failed: true once the wait is over (and from then on).
  __device__ bool Spent(int peer) {
    if (spent_) return true;
    if ((++polls_ & 1023u) == 0 && error_ != nullptr && *reinterpret_cast<volatile uint32_t*>(error_) != 0) {
      spent_ = true;
    } else if (GlobalTimerNs() - start_ > kOneShotTimeoutNs) {
      if (error_ != nullptr) atomicExch(error_, 1u + static_cast<uint32_t>(peer));
      spent_ = true;
    }
    return spent_;
  }

 private:
  uint32_t* error_;
  uint64_t start_;
  uint32_t polls_ = 0;
  bool spent_ = false;
};

__device__ __forceinline__ uint4 LoadLl(const uint4* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

}  // namespace lil::cuda
