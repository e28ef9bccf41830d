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
  // rank that died or went its own way), or by the host to kOneShotAbortedWord: the kernel
  // then gives up instead of hanging the GPU.
  uint32_t* error = nullptr;
  // Messages of n <= ll_cap floats take the flag-in-every-word variant (NCCL's "LL" idea):
  // each 16-byte store carries two (value, epoch) pairs, so a receiver polls the data itself
  // and no fence, barrier or separate flag round trip is needed; it moves twice the bytes,
  // so it serves decode sizes only. ll_slots[p]: rank p's, [2 parities][world sources]
  // [ll_cap / 2] uint4. ll_cap 0 (or ll_slots null): always the slot + flag kernel.
  uint4* ll_slots[kOneShotMaxRanks] = {};
  int64_t ll_cap = 0;  // a multiple of 4, <= cap
};

// The all-reduce of a one-token decode step's o / down product done by its GEMV (GemmParams::
// reduce, kernels/cuda/gemv.cu), so the step has no all-reduce kernel and one kernel boundary a
// call fewer. Each CTA, as it finishes its output rows, sends every (even, odd) pair of them to
// every rank, its own included, as one 16-byte {v0, flag, v1, flag} store (the
// flag-in-every-word format above) and waits for nothing; the grid's last 8 CTAs then each wait
// for every rank's pairs of one slice of the message, add their rank-ordered sum into residual
// and residual_bf16 (bitwise what OneShotAllReduce with a residual computes), and the last of
// them to finish advances the epoch. No fence: the flags say what arrived. Only those CTAs
// wait, so a skew between the GPUs holds a few CTAs, not the weight stream (where an exchange
// in every warp lost: docs/PERF.md, session 13).
// Slot reuse: a rank sends call k + 2's pairs after its PDL wait, so after its own call k + 1
// completed, which needed every rank's call k + 1 pairs, which each rank sent after its call
// k completed (that call's reads included): parity k's slots are free.
struct GemvAllReduce {
  int32_t rank = 0, world = 0;  // world 0: off
  // slots[p]: rank p's receive pairs, [2 parities][world sources][cap / 2].
  uint4* slots[kOneShotMaxRanks] = {};
  int64_t cap = 0;               // floats per (parity, source); the message (GemmParams::out) fits
  uint32_t* state = nullptr;     // this rank's [epoch of the last call, tail CTAs done], zero at start
  uint32_t* error = nullptr;     // OneShotParams::error's word
  float* residual = nullptr;     // [out], += the sum
  __nv_bfloat16* residual_bf16 = nullptr;  // [out], bf16(residual)
};

// Largest message GemvAllReduce serves (NcclCommunicator's slots: a hidden size of 16,384).
inline constexpr int64_t kGemvAllReduceFloats = 16384;

// Largest message the flag-in-every-word variant serves by default (NcclCommunicator).
inline constexpr int64_t kOneShotLlBytes = 256 << 10;

inline constexpr uint64_t kOneShotTimeoutNs = 30ull * 1000 * 1000 * 1000;
// The error word's value once the host aborted the group (NcclCommunicator::Abort): waits end.
inline constexpr uint32_t kOneShotAbortedWord = 0xffffffffu;

cudaError_t OneShotAllReduce(const OneShotParams& p, cudaStream_t stream);

}  // namespace lil::cuda
