// File: kernels/cuda/mlp_fused.cu
// One CTA an SM (persistent: the grid is the SM count), 32 warps at 64 registers. CTA c owns
// intermediate units [u0, u0 + n), a contiguous run of 8-unit groups (the groups split as
// evenly as the SM count allows: 14,336 / 8 = 1,792 groups on 132 SMs is 13 or 14 groups,
// 104 or 112 units).
//  A. Its 2n gate_up rows are one contiguous block of memory: the warps stream it in rounds of
//     4 KiB (8 16-byte chunks a lane in flight, round r to warp r % 32; the first round goes
//     out before the PDL wait), dot each chunk with x from shared memory and add the sums into
//     per-row accumulators (a warp sum when the round lies in one row, as every round does
//     when hidden is a multiple of 2,048; else shared-memory atomics).
//  B. h = bf16(silu(gate * s) * (up * s)), s the norm's rsqrt(mean(x^2) + eps) (as the GEMV's
//     swiglu_out rounds it), into shared memory; meanwhile each warp's first round of down's
//     slice is in flight (it depends on nothing).
//  C. down's columns [u0, u0 + n) of every output row (2n contiguous bytes a row): lanes 2j and
//     2j + 1 share a row (its even and odd 16-byte chunks, so each load instruction reads whole
//     32-byte sectors), a round takes 16 (or 32, for slices of at most 8 chunks) rows a warp;
//     the pair's sum is the CTA's partial of that output, stored in a shared row of hidden
//     floats (one pair owns each row: no atomics).
//  D. That row is added into y with global float4 atomics (one per 4 outputs a CTA).
// Measured (docs/PERF.md, session 21): alone, 87.3 us a Llama-3-8B MLP block against the two
// GEMVs' 85.0 (83.2 on a slice-major copy of down); in the decode step 7-8% slower, as one CTA
// holding a whole SM blocks the PDL overlap with the kernels before and after it. Opt-in.
#include "kernels/cuda/mlp_fused.h"

#include "kernels/cuda/bf16x8.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/smem_opt_in.h"

#include <algorithm>
#include <atomic>

namespace lil::cuda {
namespace {

constexpr int kThreads = 1024, kWarps = kThreads / 32;
constexpr int kLoads = 8;              // 16-byte chunks a lane has in flight in a round
constexpr int kRound = 32 * kLoads;    // chunks a warp reads in a round (4 KiB)

struct Slice {
  int32_t u0, n, nmax;  // first unit, units, the most any CTA has (shared memory is sized by it)
};

__device__ __forceinline__ Slice SliceOf(int32_t inter) {
  const int64_t groups = inter / 8, c = blockIdx.x, ctas = gridDim.x;
  const int32_t g0 = static_cast<int32_t>(c * groups / ctas), g1 = static_cast<int32_t>((c + 1) * groups / ctas);
  return {8 * g0, 8 * (g1 - g0), static_cast<int32_t>(8 * ((groups + ctas - 1) / ctas))};
}

// Shared memory: x (bf16, hidden), the row accumulators (2 nmax floats), the output partials
// (hidden floats), h (bf16, nmax).
inline size_t SmemBytes(int32_t hidden, int32_t nmax) {
  return sizeof(bf16) * hidden + sizeof(float) * (2 * nmax + hidden) + sizeof(bf16) * nmax;
}

// Round r of a stream of `chunks` 16-byte chunks: lane l reads chunks r * kRound + i * 32 + l.
// at(q) is chunk q's address.
template <typename At>
__device__ __forceinline__ void LoadRound(int32_t r, int32_t chunks, int lane, const At& at, uint4 (&v)[kLoads]) {
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int32_t q = r * kRound + i * 32 + lane;
    if (q < chunks) v[i] = __ldcs(at(q));
  }
}

// Adds this lane's products of round r into acc[row] (row = q / per_row): a warp sum when the
// whole round lies in one row, else one shared-memory atomic per run of the lane's chunks in a
// row. other(q) is the 16-byte vector chunk q multiplies.
template <typename Other>
__device__ __forceinline__ void AccumulateRound(int32_t r, int32_t chunks, int32_t per_row, int lane,
                                                const uint4 (&v)[kLoads], const Other& other, float* acc) {
  const int32_t first = r * kRound, last = min(first + kRound, chunks) - 1;
  if (first / per_row == last / per_row) {
    const int32_t c0 = first % per_row;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      if (first + i * 32 + lane < chunks) s += Dot8(v[i], other(c0 + i * 32 + lane));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) atomicAdd(acc + first / per_row, s);  // other warps may hold rounds of this row
    return;
  }
  float s = 0.0f;
  int32_t row = -1;
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int32_t q = first + i * 32 + lane;
    if (q >= chunks) break;
    const int32_t qr = q / per_row;
    if (qr != row) {
      if (row >= 0) atomicAdd(acc + row, s);
      row = qr;
      s = 0.0f;
    }
    s += Dot8(v[i], other(q % per_row));
  }
  if (row >= 0) atomicAdd(acc + row, s);
}

// kPairRows: rows a lane pair takes in one of down's rounds (2 when a CTA's slice has at most
// 8 chunks a row, else 1: up to 16).
template <int kPairRows>
__global__ void __launch_bounds__(kThreads, 1) FusedMlpKernel(FusedMlpParams p) {
  extern __shared__ uint4 smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const Slice sl = SliceOf(p.inter);
  bf16* xs = reinterpret_cast<bf16*>(smem);
  float* rows = reinterpret_cast<float*>(xs + p.hidden);  // hidden % 8 == 0: 16-byte aligned
  float* outs = rows + 2 * sl.nmax;
  bf16* hs = reinterpret_cast<bf16*>(outs + p.hidden);
  const int32_t cpr = p.hidden / 8, a_chunks = 2 * sl.n * cpr;  // gate_up: 2n rows of cpr chunks
  // down: hidden rows of cps chunks; lanes 2j and 2j + 1 share a row (its even and odd chunks:
  // each load instruction reads whole 32-byte sectors), a round takes rows_per_round rows.
  constexpr int kSlots = kLoads / kPairRows;  // loads a lane has for each of its rows in a round
  const int32_t cps = sl.n / 8;
  const int32_t rows_per_round = 16 * kPairRows;
  const int32_t a_rounds = (a_chunks + kRound - 1) / kRound, b_rounds = (p.hidden + rows_per_round - 1) / rows_per_round;
  const uint4* a_src = reinterpret_cast<const uint4*>(p.gate_up + int64_t{2} * sl.u0 * p.hidden);
  const int64_t b_stride = p.down_slice_major ? sl.n : p.inter;  // elements between down rows
  const bf16* b_src = p.down + (p.down_slice_major ? int64_t{sl.u0} * p.hidden : sl.u0);
  auto a_at = [&](int32_t q) { return a_src + q; };
  uint4 v[kLoads];
  // Load i of this lane in down's round r: row r * rows_per_round + 16 * (i / kSlots) + lane / 2,
  // chunk 2 * (i % kSlots) + lane % 2.
  auto load_b = [&](int32_t r) {
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int32_t k = 2 * (i % kSlots) + (lane & 1), row = r * rows_per_round + 16 * (i / kSlots) + (lane >> 1);
      if (k < cps && row < p.hidden) {
        v[i] = __ldcs(reinterpret_cast<const uint4*>(b_src + row * b_stride) + k);
      }
    }
  };
  // The weights depend on nothing the kernels before wrote: the first round goes out now.
  if (warp < a_rounds) LoadRound(warp, a_chunks, lane, a_at, v);
  for (int32_t i = threadIdx.x; i < 2 * sl.n; i += kThreads) rows[i] = 0.0f;
  for (int32_t i = threadIdx.x; i < p.hidden; i += kThreads) outs[i] = 0.0f;
  PdlWait();
  PdlTrigger();
  __shared__ float s_warp[kWarps];
  __shared__ float s_scale;
  float ss = 0.0f;
  const uint4* x4 = reinterpret_cast<const uint4*>(p.x);
  uint4* xs4 = reinterpret_cast<uint4*>(xs);
  for (int32_t c = threadIdx.x; c < cpr; c += kThreads) {
    const uint4 xv = __ldg(x4 + c);
    xs4[c] = xv;
    ss += Dot8(xv, xv);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (lane == 0) s_warp[warp] = ss;
  __syncthreads();  // x, the zeroed accumulators, the warps' sums
  if (threadIdx.x == 0) {
    float t = 0.0f;
    for (int w = 0; w < kWarps; ++w) t += s_warp[w];
    s_scale = rsqrtf(t / static_cast<float>(p.hidden) + p.norm_eps);
  }
  auto x_of = [&](int32_t c) { return xs4[c]; };
  for (int32_t r = warp; r < a_rounds; r += kWarps) {
    if (r != warp) LoadRound(r, a_chunks, lane, a_at, v);
    AccumulateRound(r, a_chunks, cpr, lane, v, x_of, rows);
  }
  // down's first round for this warp goes out before the barrier: it needs no h.
  if (warp < b_rounds) load_b(warp);
  __syncthreads();  // every gate / up row summed, s_scale set
  const float scale = s_scale;
  for (int32_t j = threadIdx.x; j < sl.n; j += kThreads) {
    const float g = rows[2 * j] * scale, u = rows[2 * j + 1] * scale;
    hs[j] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
  }
  __syncthreads();
  const uint4* hs4 = reinterpret_cast<const uint4*>(hs);
  for (int32_t r = warp; r < b_rounds; r += kWarps) {
    if (r != warp) load_b(r);
    float s[kPairRows] = {};
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int32_t k = 2 * (i % kSlots) + (lane & 1);
      if (k < cps) s[i / kSlots] += Dot8(v[i], hs4[k]);
    }
#pragma unroll
    for (int j = 0; j < kPairRows; ++j) {
      const float t = s[j] + __shfl_xor_sync(0xffffffffu, s[j], 1);
      const int32_t row = r * rows_per_round + 16 * j + (lane >> 1);
      if ((lane & 1) == 0 && row < p.hidden) outs[row] = t;  // one pair owns each row: no atomics
    }
  }
  __syncthreads();
  if (sl.n == 0) return;
  for (int32_t i = 4 * threadIdx.x; i < p.hidden; i += 4 * kThreads) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float4*>(p.y + i), make_float4(outs[i], outs[i + 1], outs[i + 2], outs[i + 3]));
#else
    for (int j = 0; j < 4; ++j) atomicAdd(p.y + i + j, outs[i + j]);
#endif
  }
}

std::atomic<uint64_t> g_smem_configured[2] = {};
constexpr size_t kSmemCap = 160 * 1024;  // the opt-in, made once: every shape's need below it

// FusedMlpSupported on a GPU of `sms` SMs.
bool SupportedOn(const FusedMlpParams& p, int32_t sms) {
  auto aligned = [](const void* a) { return reinterpret_cast<uintptr_t>(a) % 16 == 0; };
  return p.hidden > 0 && p.hidden % 8 == 0 && p.hidden <= kFusedMlpMaxHidden && p.inter > 0 && p.inter % 8 == 0 &&
         p.norm_eps > 0.0f && aligned(p.x) && aligned(p.gate_up) && aligned(p.down) && aligned(p.y) &&
         // Chunk indices in 32 bits: a CTA's 2n x hidden / 8.
         int64_t{p.inter} * p.hidden / 4 < (int64_t{1} << 31) &&
         // A lane pair holds a whole row of down's slice in one round: at most 2 x kLoads = 16
         // groups (128 units) a CTA.
         (p.inter / 8 + sms - 1) / sms <= 2 * kLoads;
}

}  // namespace

bool FusedMlpSupported(const FusedMlpParams& p) { return SupportedOn(p, CurrentSmCount()); }

cudaError_t FusedMlp(const FusedMlpParams& p, cudaStream_t stream) {
  const int32_t sms = CurrentSmCount();
  if (!SupportedOn(p, sms)) return cudaErrorInvalidValue;
  const int32_t groups = p.inter / 8, ctas = std::min(sms, groups);
  const int32_t nmax = 8 * ((groups + ctas - 1) / ctas);
  const size_t smem = SmemBytes(p.hidden, nmax);
  if (smem > kSmemCap) return cudaErrorInvalidValue;  // SupportedOn bounded nmax / 8 by 2 * kLoads
  const bool two = nmax / 8 <= kLoads;  // a row's slice in half the slots
  const void* kernel = two ? reinterpret_cast<const void*>(FusedMlpKernel<2>) : reinterpret_cast<const void*>(FusedMlpKernel<1>);
  if (const cudaError_t e = OptInDynamicSmem(kernel, kSmemCap, two ? g_smem_configured[1] : g_smem_configured[0]);
      e != cudaSuccess) {
    return e;
  }
  return two ? LaunchPdl(FusedMlpKernel<2>, dim3(ctas), dim3(kThreads), smem, stream, p)
             : LaunchPdl(FusedMlpKernel<1>, dim3(ctas), dim3(kThreads), smem, stream, p);
}

}  // namespace lil::cuda
