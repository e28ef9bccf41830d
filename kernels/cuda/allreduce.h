// File: kernels/cuda/allreduce.h
// One-shot all-reduce for decode-sized messages between the GPUs of one process
// (GPU-NOTES.md section 6): every rank pushes its partial into a slot of every rank's
// receive buffer over NVLink (peer access), raises one flag per (block, peer) with a
// system-scope release, waits for every peer's flag with a system-scope acquire, then sums
// the slots in rank order. The sum is therefore the same bits on every rank AND the
// rank-ordered sum of engine/parallel/communicator.h's contract (NCCL gives neither order).
// Small messages take a variant with the epoch beside every value (OneShotParams::ll_cap).
// Launch arguments never change between calls (an epoch counter per block lives in device
// memory), so the kernel is captured into CUDA graphs like any other.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lil::cuda {

inline constexpr int32_t kOneShotMaxRanks = 8;
inline constexpr int32_t kOneShotMaxBlocks = 32;  // the grid, always

struct OneShotParams {
  float* data = nullptr;  // [n], this rank's partial in, the sum out (in place)
  // Optional, both or neither (the fused decode path under tensor parallelism): instead of
  // writing the sum to data, residual[i] += sum and residual_bf16[i] = bf16(residual[i]);
  // data keeps this rank's partial. Every rank holds the same residual and adds the same
  // rank-ordered sum, so the residual stream stays bitwise equal across ranks.
  float* residual = nullptr;
  __nv_bfloat16* residual_bf16 = nullptr;
  int64_t n = 0;          // <= cap
  int32_t rank = 0, world = 1;
  // slots[p]: rank p's receive buffer, [2 parities][world sources][cap] floats.
  float* slots[kOneShotMaxRanks] = {};
  // flags[p]: rank p's flags, [2 parities][world sources][kOneShotMaxBlocks].
  uint32_t* flags[kOneShotMaxRanks] = {};
  uint32_t* epoch = nullptr;  // this rank's, [kOneShotMaxBlocks], zero at start
  int64_t cap = 0;            // floats per (parity, source) slot; a multiple of 4
  // Host-mapped word set to 1 + the peer's rank when a wait outlasts kOneShotTimeoutNs (a
  // rank that died or went its own way): the kernel then gives up instead of hanging the GPU.
  uint32_t* error = nullptr;
  // Messages of n <= ll_cap floats take the flag-in-every-word variant (NCCL's "LL" idea):
  // each 16-byte store carries two (value, epoch) pairs, so a receiver polls the data itself
  // and no fence, barrier or separate flag round trip is needed; it moves twice the bytes,
  // so it serves decode sizes only. ll_slots[p]: rank p's, [2 parities][world sources]
  // [ll_cap / 2] uint4. ll_cap 0 (or ll_slots null): always the slot + flag kernel.
  uint4* ll_slots[kOneShotMaxRanks] = {};
  int64_t ll_cap = 0;  // a multiple of 4, <= cap
};

// Largest message the flag-in-every-word variant serves by default (NcclCommunicator).
inline constexpr int64_t kOneShotLlBytes = 256 << 10;

inline constexpr uint64_t kOneShotTimeoutNs = 30ull * 1000 * 1000 * 1000;

cudaError_t OneShotAllReduce(const OneShotParams& p, cudaStream_t stream);

}  // namespace lil::cuda
