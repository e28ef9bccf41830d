// File: kernels/cuda/allreduce.cu
// Block b owns the slice [b * chunk, (b + 1) * chunk) of the message on every rank, so each
// block synchronizes only with the same block of the other ranks: no grid-wide barrier.
// Call k uses parity k & 1 of the slots and flags (every call runs all kOneShotMaxBlocks
// blocks, so all epochs agree). A rank writes call k + 2's data into a
// peer's parity slot only after that peer raised its flag for call k + 1, which it does only
// after finishing call k (stream order), so no slot is overwritten while still being read.
#include "kernels/cuda/allreduce.h"
#include "kernels/cuda/ll.cuh"
#include "kernels/cuda/pdl.h"

namespace lil::cuda {
namespace {

constexpr int kThreads = 512;

__device__ __forceinline__ void StoreRelease(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t LoadAcquire(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// What both kernels start with: the PDL handshake, this call's epoch for block b (read by one
// thread, so thread 0 may store the next one whenever it is done) and parity, and block b's
// slice [lo, hi) of the message (a multiple of 4 floats long, so pairs and float4s stay whole).
struct CallSlice {
  uint32_t e;
  uint32_t flag;  // e with its top bit set: never 0 (the flags' and slots' initial contents),
                  // also when the 32-bit epoch wraps; consecutive calls of one parity differ
  int par;
  int64_t lo, hi;
};

// Block b's slice [lo, hi) of the message: a multiple of 4 floats long, so pairs and float4s
// stay whole.
__device__ __forceinline__ void BlockSlice(const OneShotParams& p, int64_t* lo, int64_t* hi) {
  const int64_t chunk = ((p.n + gridDim.x - 1) / gridDim.x + 3) / 4 * 4;
  *lo = blockIdx.x * chunk;
  *hi = *lo + chunk < p.n ? *lo + chunk : p.n;
}

__device__ __forceinline__ CallSlice BeginCall(const OneShotParams& p) {
  PdlWait();
  PdlTrigger();
  __shared__ uint32_t s_epoch;
  if (threadIdx.x == 0) s_epoch = p.epoch[blockIdx.x] + 1;
  __syncthreads();
  CallSlice c;
  c.e = s_epoch;
  c.flag = FlagOf(c.e);
  c.par = c.e & 1;
  BlockSlice(p, &c.lo, &c.hi);
  return c;
}

// Element i's sum: into data, or added into the residual and its bf16 copy.
// Element i's sum into data, or (p.residual) added to the residual value res the caller read
// (early, to overlap the peers' reads) into the residual and its bf16 copy.
__device__ __forceinline__ void StoreSumWith(const OneShotParams& p, int64_t i, float sum, float res) {
  if (p.residual == nullptr) {
    p.data[i] = sum;
  } else {
    const float r = res + sum;
    p.residual[i] = r;
    p.residual_bf16[i] = __float2bfloat16_rn(r);
  }
}
__device__ __forceinline__ void StoreSum(const OneShotParams& p, int64_t i, float sum) {
  StoreSumWith(p, i, sum, p.residual != nullptr ? p.residual[i] : 0.0f);
}

__global__ void __launch_bounds__(kThreads) OneShotKernel(OneShotParams p) {
  const int b = blockIdx.x;
  const CallSlice call = BeginCall(p);
  const uint32_t e = call.e;
  const int par = call.par;
  const int64_t lo = call.lo, hi = call.hi;
  const int64_t len = hi > lo ? hi - lo : 0;
  const int64_t vec_hi = lo + (len / 4) * 4;
  const int64_t slot_off = (static_cast<int64_t>(par) * p.world + p.rank) * p.cap;
  // Push this rank's slice into slot [par][rank] of every rank (its own included).
  for (int64_t i = lo + 4 * threadIdx.x; i < vec_hi; i += 4 * kThreads) {
    const float4 v = *reinterpret_cast<const float4*>(p.data + i);
    for (int q = 0; q < p.world; ++q) *reinterpret_cast<float4*>(p.slots[q] + slot_off + i) = v;
  }
  for (int64_t i = vec_hi + threadIdx.x; i < hi; i += kThreads) {
    const float v = p.data[i];
    for (int q = 0; q < p.world; ++q) p.slots[q][slot_off + i] = v;
  }
  __threadfence_system();
  __syncthreads();
  const int64_t flag_row = static_cast<int64_t>(par) * p.world;
  if (threadIdx.x < p.world) {
    StoreRelease(p.flags[threadIdx.x] + (flag_row + p.rank) * kOneShotMaxBlocks + b, call.flag);
    const uint32_t* mine = p.flags[p.rank] + (flag_row + threadIdx.x) * kOneShotMaxBlocks + b;
    PollBudget budget(p.error);
    while (LoadAcquire(mine) != call.flag && !budget.Spent(static_cast<int>(threadIdx.x))) {
    }
  }
  __syncthreads();
  // Sum the slots in rank order (L2 loads: the data arrived from other GPUs).
  const float* own = p.slots[p.rank] + static_cast<int64_t>(par) * p.world * p.cap;
  for (int64_t i = lo + 4 * threadIdx.x; i < vec_hi; i += 4 * kThreads) {
    float4 acc = __ldcg(reinterpret_cast<const float4*>(own + i));
    for (int q = 1; q < p.world; ++q) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(own + q * p.cap + i));
      acc.x += v.x;
      acc.y += v.y;
      acc.z += v.z;
      acc.w += v.w;
    }
    if (p.residual == nullptr) {
      *reinterpret_cast<float4*>(p.data + i) = acc;
      continue;
    }
    float4 r = *reinterpret_cast<const float4*>(p.residual + i);
    r.x += acc.x;
    r.y += acc.y;
    r.z += acc.z;
    r.w += acc.w;
    *reinterpret_cast<float4*>(p.residual + i) = r;
    // 8-byte aligned: i is a multiple of 4.
    __nv_bfloat162* out = reinterpret_cast<__nv_bfloat162*>(p.residual_bf16 + i);
    out[0] = __floats2bfloat162_rn(r.x, r.y);
    out[1] = __floats2bfloat162_rn(r.z, r.w);
  }
  for (int64_t i = vec_hi + threadIdx.x; i < hi; i += kThreads) {
    float acc = __ldcg(own + i);
    for (int q = 1; q < p.world; ++q) acc += __ldcg(own + q * p.cap + i);
    StoreSum(p, i, acc);
  }
  if (threadIdx.x == 0) p.epoch[b] = e;
}

// The flag-in-every-word variant (OneShotParams::ll_cap). Thread i of block b owns value
// pairs lo/2 + i, lo/2 + i + kThreads, ... of block b's slice: it sends each as one 16-byte
// store {v0, f, v1, f} (f: CallSlice::flag; ll.cuh) to every peer, then polls its own slots
// until both flags of each peer's pair read f. Slot reuse: the argument above, with "raised
// its flag for call k + 1" read as "sent call k + 1's data".
__global__ void __launch_bounds__(kThreads) OneShotLlKernel(OneShotParams p) {
  // The epoch is read twice: a guess before the PDL wait (in a decode step the previous call
  // ended kernels ago) that addresses a first, speculative read of the peers' pairs, and the
  // truth after the wait, loaded together with that read, this rank's partial and the
  // residual: when the peers' data is already there the call is one round of loads. A wrong
  // guess (calls back to back, the previous one still running) costs one more read, never a
  // wrong value: only a pair at the true epoch's address with its flags is taken.
  const int b = blockIdx.x;
  const uint32_t guess = __ldcg(p.epoch + b) + 1;
  PdlWait();
  PdlTrigger();
  const uint32_t e = __ldcg(p.epoch + b) + 1;
  const uint32_t flag = FlagOf(e);
  int64_t lo, hi;
  BlockSlice(p, &lo, &hi);
  const int64_t half_cap = p.ll_cap / 2, parity_stride = static_cast<int64_t>(p.world) * half_cap;
  const int64_t send_off = ((e & 1) * p.world + p.rank) * half_cap;
  for (int64_t i = lo + 2 * threadIdx.x; i < hi; i += 2 * kThreads) {
    const float v0 = p.data[i], v1 = i + 1 < hi ? p.data[i + 1] : 0.0f;
    for (int q = 0; q < p.world; ++q) {
      if (q != p.rank) StoreLl(p.ll_slots[q] + send_off + i / 2, v0, v1, flag);
    }
  }
  const uint4* mine = p.ll_slots[p.rank] + (e & 1) * parity_stride;
  const uint4* guessed = p.ll_slots[p.rank] + (guess & 1) * parity_stride;
  PollBudget budget(p.error);
  for (int64_t i = lo + 2 * threadIdx.x; i < hi; i += 2 * kThreads) {
    const bool two = i + 1 < hi;
    const float own0 = p.data[i], own1 = two ? p.data[i + 1] : 0.0f;
    float res0 = 0.0f, res1 = 0.0f;
    if (p.residual != nullptr) {
      res0 = p.residual[i];
      res1 = two ? p.residual[i + 1] : 0.0f;
    }
    float acc0 = 0.0f, acc1 = 0.0f;
    for (int q = 0; q < p.world; ++q) {  // rank order: the same bits on every rank
      float v0 = own0, v1 = own1;
      if (q != p.rank) {
        const int64_t at = static_cast<int64_t>(q) * half_cap + i / 2;
        uint4 w = LoadLl(guessed + at);
        if (guess != e) w = LoadLl(mine + at);
        while ((w.y != flag || w.w != flag) && !budget.Spent(q)) w = LoadLl(mine + at);
        v0 = __uint_as_float(w.x);
        v1 = __uint_as_float(w.z);
      }
      acc0 = q == 0 ? v0 : acc0 + v0;
      acc1 = q == 0 ? v1 : acc1 + v1;
    }
    StoreSumWith(p, i, acc0, res0);
    if (two) StoreSumWith(p, i + 1, acc1, res1);
  }
  // Every thread read the epoch before this barrier, so none can see the next one.
  __syncthreads();
  if (threadIdx.x == 0) p.epoch[b] = e;
}

}  // namespace

cudaError_t OneShotAllReduce(const OneShotParams& p, cudaStream_t stream) {
  if (p.n == 0) return cudaSuccess;
  if (p.n < 0 || p.n > p.cap || p.world < 1 || p.world > kOneShotMaxRanks || p.cap % 4 != 0 ||
      reinterpret_cast<uintptr_t>(p.data) % 16 != 0 || (p.residual == nullptr) != (p.residual_bf16 == nullptr) ||
      reinterpret_cast<uintptr_t>(p.residual) % 16 != 0 || reinterpret_cast<uintptr_t>(p.residual_bf16) % 8 != 0 ||
      p.ll_cap % 4 != 0 || p.ll_cap > p.cap) {
    return cudaErrorInvalidValue;
  }
  // Always the full grid: every block's epoch then moves with every call, so the parity
  // (and the slot-reuse argument above) holds for the whole message whatever its size.
  if (p.n <= p.ll_cap && p.ll_slots[p.rank] != nullptr) {
    return LaunchPdl(OneShotLlKernel, kOneShotMaxBlocks, kThreads, 0, stream, p);
  }
  return LaunchPdl(OneShotKernel, kOneShotMaxBlocks, kThreads, 0, stream, p);
}

}  // namespace lil::cuda
