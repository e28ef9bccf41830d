// File: kernels/cuda/gemv.cu
// y[rows, out] = x[rows, in] * w[out, in]^T for rows <= kGemvMaxRows (decode): a
// memory-bound weight stream. Each warp owns R consecutive output rows and walks `in` with
// 16-byte loads, U per row in flight per lane; the x slice it needs is loaded once per step
// and used for all R rows. fp32 accumulation, one warp reduction per output at the end.
//
// Variants (GemvVariant, $LILSERVE_GEMV_VARIANT picks the one Gemv uses, default 4; gpu_gemv_bench
// times them all on the Llama-3-8B shapes beside the HBM read ceiling):
//   0  R=2, U=4, load then compute (each warp idles one memory latency per step)
//   1  R=2, U=4, pipelined: the next step's loads go out before this step's math
//   2  R=4, U=2, pipelined (the same bytes in flight, x read half as often)
//   3  R=2, U=8, load then compute (twice the bytes in flight per warp)
//   4  R=2, U=4, K split over S=4 warps per row pair (partial sums added in shared memory):
//      4x the warps on a matrix, each with a quarter of the row, so small matrices (O, QKV)
//      fill every SM and each warp's loads go out in about one round
//   5  R=2, U=4, K split over S=2 warps, pipelined
//   6  R=2, U=4, K split over S=2 warps: variant 4 for `in` of 2048 (a tensor-parallel o
//      projection), where four warps would leave two idle (a warp's slice is U * 256 wide)
// Variants 4 and 6 at one row are held to 64 registers (__launch_bounds__ minimum 4 CTAs an
// SM; 72 and 77 without, three CTAs), so a third more loads are in flight, also before the PDL
// wait: session 13, 8B batch 1 at 1k 4.253 -> 4.168 ms, TP=2 2.775 -> 2.677 (docs/PERF.md).
// Gemv's default (FittedVariant): variant 4, and for `in` below 4 * 1024 the split that keeps
// every warp busy: 6 from 2048, 0 below; at one row also 6 where that makes the grid one wave
// ($LILSERVE_GEMV_WAVE=0 turns that off).
#include <cstdlib>

#include "common/env.h"
#include "kernels/cuda/bf16x8.cuh"
#include "kernels/cuda/ll.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/rope_kv.cuh"

namespace lil::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
// CTAs an SM that variants 4 and 6 must fit at one row (their __launch_bounds__ minimum).
constexpr int kOneRowCtasPerSm = 4;

// Loads the U 16-byte chunks of each of the R rows that this lane reads at step kb.
template <int R, int U>
__device__ __forceinline__ void LoadStep(const bf16* const (&w)[R], int32_t kb, int32_t k_dim, uint4 (&v)[R][U]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int32_t k = kb + u * 256;
    if (k < k_dim) {
#pragma unroll
      for (int r = 0; r < R; ++r) v[r][u] = __ldcs(reinterpret_cast<const uint4*>(w[r] + k));
    }
  }
}

// x[m, k .. k + 7] as bf16: from x, or (kXf32, a template parameter so the usual kernels keep
// their code) rounded from x_f32.
template <bool kXf32>
__device__ __forceinline__ uint4 LoadX(const GemmParams& p, int m, int32_t k) {
  const int64_t at = static_cast<int64_t>(m) * p.in + k;
  if constexpr (!kXf32) return __ldg(reinterpret_cast<const uint4*>(p.x + at));
  const float4* src = reinterpret_cast<const float4*>(p.x_f32 + at);
  const float4 a = __ldg(src), b = __ldg(src + 1);
  const __nv_bfloat162 h[4] = {__floats2bfloat162_rn(a.x, a.y), __floats2bfloat162_rn(a.z, a.w),
                               __floats2bfloat162_rn(b.x, b.y), __floats2bfloat162_rn(b.z, b.w)};
  uint4 v;
  v.x = *reinterpret_cast<const uint32_t*>(&h[0]);
  v.y = *reinterpret_cast<const uint32_t*>(&h[1]);
  v.z = *reinterpret_cast<const uint32_t*>(&h[2]);
  v.w = *reinterpret_cast<const uint32_t*>(&h[3]);
  return v;
}

// ss[m] (norm mode) collects sum(x[m]^2) over the x chunks this warp reads: the S warps of a
// row group read every chunk of x exactly once between them, so their sum is the norm's.
template <int M, int R, int U, bool kXf32>
__device__ __forceinline__ void MathStep(const GemmParams& p, int32_t kb, const uint4 (&v)[R][U], float (&acc)[R][M],
                                         float (&ss)[M]) {
  const bool norm = p.norm_eps > 0.0f;
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int32_t k = kb + u * 256;
    if (k < p.in) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        if (m >= p.rows) break;  // rows 3 of the M = 4 kernel
        const uint4 xv = LoadX<kXf32>(p, m, k);
        if (norm) ss[m] += Dot8(xv, xv);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][m] += Dot8(v[r][u], xv);
      }
    }
  }
}

// GemmParams::reduce (allreduce.h GemvAllReduce; one row): the end of the grid's last
// kGemvTailCtas CTAs, after their warps sent their pairs. Tail CTA j of `tail` owns slice j of
// the message's pairs: it waits for every rank's pairs there, its own rank's included (every CTA
// sends its pairs to itself too, flagged like a peer's, so no fence orders them), and adds their
// rank-ordered sum into the residual; each thread issues all ranks' loads of a pair before it
// waits for any, so a slice costs about one round trip. The tail CTA that finishes last
// advances the epoch: by then every pair has arrived, so every CTA that sends has read it.
constexpr int kGemvTailCtas = 8;

__device__ __forceinline__ void GemvReduceTail(const GemmParams& p, uint32_t e, int j, int tail) {
  const GemvAllReduce& a = p.reduce;
  __syncthreads();  // this CTA's sends are issued
  const uint32_t flag = FlagOf(e);
  const int64_t half_cap = a.cap / 2, pairs = p.out / 2, per = (pairs + tail - 1) / tail;
  const int64_t lo = j * per, hi = lo + per < pairs ? lo + per : pairs;
  const uint4* mine = a.slots[a.rank] + static_cast<int64_t>(e & 1) * a.world * half_cap;
  PollBudget budget(a.error);
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    uint4 w[kOneShotMaxRanks];
#pragma unroll
    for (int q = 0; q < kOneShotMaxRanks; ++q) {
      if (q < a.world) w[q] = LoadLl(mine + q * half_cap + i);
    }
    float2* res = reinterpret_cast<float2*>(a.residual) + i;
    const float2 r0 = *res;
    float2 acc = make_float2(0.0f, 0.0f);
#pragma unroll
    for (int q = 0; q < kOneShotMaxRanks; ++q) {  // rank order: the same bits on every rank
      if (q >= a.world) break;
      while ((w[q].y != flag || w[q].w != flag) && !budget.Spent(q)) w[q] = LoadLl(mine + q * half_cap + i);
      const float v0 = __uint_as_float(w[q].x), v1 = __uint_as_float(w[q].z);
      acc.x = q == 0 ? v0 : acc.x + v0;
      acc.y = q == 0 ? v1 : acc.y + v1;
    }
    const float2 r = make_float2(r0.x + acc.x, r0.y + acc.y);
    *res = r;
    reinterpret_cast<__nv_bfloat162*>(a.residual_bf16)[i] = __floats2bfloat162_rn(r.x, r.y);
  }
  __syncthreads();  // every thread is past its reads of this parity
  if (threadIdx.x == 0 && atomicAdd(a.state + 1, 1u) == static_cast<uint32_t>(tail - 1)) {
    a.state[1] = 0;
    a.state[0] = e;
  }
}

template <int M, int R, int U, bool kPipelined, int S, int kMinBlocks, bool kXf32 = false>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, M == 1 ? kMinBlocks : 1) GemvKernel(GemmParams p) {
  static_assert(kWarpsPerBlock % S == 0, "a block holds whole row groups");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, slice = warp % S;
  const int32_t n0 = (blockIdx.x * (kWarpsPerBlock / S) + warp / S) * R;
  // With S > 1 (or a reduce) every warp reaches the barriers below, so none returns early.
  const bool active = n0 < p.out, reduce = p.reduce.world > 0;
  if (S == 1 && !active && !reduce) return;
  const int32_t k_dim = p.in, step = 32 * 8 * U, stride = step * S, k0 = lane * 8 + slice * step;
  const bf16* w[R];
#pragma unroll
  for (int r = 0; r < R; ++r) w[r] = p.w + static_cast<int64_t>(active && n0 + r < p.out ? n0 + r : 0) * k_dim;
  float acc[R][M], ss[M];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    ss[m] = 0.0f;
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r][m] = 0.0f;
  }
  // The first weight loads go out before the wait for the previous kernel (PDL): they depend
  // on nothing it writes, so this kernel's stream starts while that one drains.
  uint4 cur[R][U];
  if (active) LoadStep<R, U>(w, k0, k_dim, cur);
  PdlWait();
  PdlTrigger();
  // The call's epoch (advanced once every CTA's pairs arrived, so after every CTA that sends
  // read it: GemvReduceTail).
  const uint32_t epoch = reduce ? __ldcg(p.reduce.state) + 1 : 0;
  for (int32_t kb = k0; active && kb < k_dim; kb += stride) {
    if constexpr (kPipelined) {
      uint4 next[R][U];
      if (kb + stride < k_dim) LoadStep<R, U>(w, kb + stride, k_dim, next);
      MathStep<M, R, U, kXf32>(p, kb, cur, acc, ss);
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int u = 0; u < U; ++u) cur[r][u] = next[r][u];
      }
    } else {
      if (kb != k0) LoadStep<R, U>(w, kb, k_dim, cur);
      MathStep<M, R, U, kXf32>(p, kb, cur, acc, ss);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      ss[m] += __shfl_xor_sync(0xffffffffu, ss[m], o);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][m] += __shfl_xor_sync(0xffffffffu, acc[r][m], o);
    }
  }
  if constexpr (S > 1) {  // the S warps of a row group add their slices' sums
    __shared__ float partial[kWarpsPerBlock][R + 1][M];  // [R] holds ss
    if (lane == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        partial[warp][R][m] = ss[m];
#pragma unroll
        for (int r = 0; r < R; ++r) partial[warp][r][m] = acc[r][m];
      }
    }
    __syncthreads();
    if (slice == 0) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
#pragma unroll
        for (int r = 0; r <= R; ++r) {
          float sum = 0.0f;
#pragma unroll
          for (int j = 0; j < S; ++j) sum += partial[warp + j][r][m];
          if (r < R) {
            acc[r][m] = sum;
          } else {
            ss[m] = sum;
          }
        }
      }
    }
  }
  if (lane == 0 && active && slice == 0) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (m >= p.rows) break;
      const float scale = p.norm_eps > 0.0f ? rsqrtf(ss[m] / static_cast<float>(p.in) + p.norm_eps) : 1.0f;
      if (p.rope_epilogue) {  // rows (n0 + r, n0 + r + 1): one RoPE pair (n0 is even)
#pragma unroll
        for (int r = 0; r + 1 < R; r += 2) {
          if (n0 + r + 1 < p.out) RopeStorePair(p.rope, m, n0 + r, acc[r][m] * scale, acc[r + 1][m] * scale);
        }
        continue;
      }
      if (p.swiglu_out != nullptr) {  // rows (n0 + r, n0 + r + 1) are (gate, up) of one unit
#pragma unroll
        for (int r = 0; r + 1 < R; r += 2) {
          if (n0 + r + 1 >= p.out) continue;
          const float g = acc[r][m] * scale, u = acc[r + 1][m] * scale;
          p.swiglu_out[static_cast<int64_t>(m) * (p.out / 2) + (n0 + r) / 2] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
        }
        continue;
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (n0 + r >= p.out) continue;
        const int64_t i = static_cast<int64_t>(m) * p.out + n0 + r;
        const float y = acc[r][m] * scale + (p.add_to_y ? p.y[i] : 0.0f);
        p.y[i] = y;
        if (p.y_bf16 != nullptr) p.y_bf16[i] = __float2bfloat16(y);
      }
      if (reduce) {  // one row, n0 even: rows (n0 + r, n0 + r + 1) are pair (n0 + r) / 2 of the message
        const GemvAllReduce& a = p.reduce;
        const int64_t at = (static_cast<int64_t>(epoch & 1) * a.world + a.rank) * (a.cap / 2);
#pragma unroll
        for (int r = 0; r + 1 < R; r += 2) {
          if (n0 + r + 1 >= p.out) continue;
          for (int q = 0; q < a.world; ++q) {  // this rank's own slots too
            StoreLl(a.slots[q] + at + (n0 + r) / 2, acc[r][m] * scale, acc[r + 1][m] * scale, FlagOf(epoch));
          }
        }
      }
    }
  }
  if (reduce) {
    const int tail = gridDim.x < kGemvTailCtas ? static_cast<int>(gridDim.x) : kGemvTailCtas;
    const int j = static_cast<int>(blockIdx.x) - (static_cast<int>(gridDim.x) - tail);
    if (j >= 0) GemvReduceTail(p, epoch, j, tail);
  }
}

// kMinBlocks: CTAs an SM the one-row kernel must fit (__launch_bounds__; 1: no cap).
template <int R, int U, bool kPipelined, int S = 1, int kMinBlocks = 1>
cudaError_t LaunchGemv(const GemmParams& p, cudaStream_t stream) {
  const int rows_per_block = kWarpsPerBlock / S * R;
  const dim3 grid((p.out + rows_per_block - 1) / rows_per_block);
  const int threads = kWarpsPerBlock * 32;
  switch (p.rows) {
    case 1:  // x_f32: one row only (GemvSupported)
      if (p.x_f32 != nullptr) return LaunchPdl(GemvKernel<1, R, U, kPipelined, S, kMinBlocks, true>, grid, threads, 0, stream, p);
      return LaunchPdl(GemvKernel<1, R, U, kPipelined, S, kMinBlocks>, grid, threads, 0, stream, p);
    case 2: return LaunchPdl(GemvKernel<2, R, U, kPipelined, S, 1>, grid, threads, 0, stream, p);
    case 3:
    case 4: return LaunchPdl(GemvKernel<4, R, U, kPipelined, S, 1>, grid, threads, 0, stream, p);
    default: return cudaErrorInvalidValue;
  }
}

// The variant Gemv runs for p: $LILSERVE_GEMV_VARIANT when set, else variant 4's split fitted
// to p.in (above); $LILSERVE_GEMV_FIT=0 keeps variant 4 whatever p.in.
int FittedVariant(const GemmParams& p) {
  static const int env = GemvVariantFromEnv();
  static const bool fit = !EnvIs("LILSERVE_GEMV_FIT", "0");
  static const bool one_wave = !EnvIs("LILSERVE_GEMV_WAVE", "0");
  if (env >= 0) return env;
  if (fit && p.in < 4 * 1024) return p.in >= 2048 ? 6 : 0;
  // One row: where variant 4's grid (4 rows a CTA) needs more than one wave of the SMs' slots
  // but variant 6's (8 rows a CTA, K over two warps) fits in one, take 6: every CTA is resident
  // from the start with its first loads out before the PDL wait, where variant 4's second wave
  // could start only as the first left. The Llama-3-8B o and down GEMVs (4,096 rows): 8B
  // batch 1 at 1k -1% (docs/PERF.md, session 22; the o GEMV after a 5 us stall 9.96 -> 8.99 us).
  if (fit && one_wave && p.rows == 1) {
    static const int64_t slots = int64_t{kOneRowCtasPerSm} * CurrentSmCount();
    const int64_t v4 = (p.out + 3) / 4, v6 = (p.out + 7) / 8;
    if (v4 > slots && v6 <= slots) return 6;
  }
  return kGemvDefaultVariant;
}

}  // namespace

int GemvVariantFromEnv() {
  const char* e = std::getenv("LILSERVE_GEMV_VARIANT");
  if (e == nullptr) return -1;
  char* end = nullptr;
  const long x = std::strtol(e, &end, 10);
  return end != e && *end == '\0' && x >= 0 && x < kGemvVariants ? static_cast<int>(x) : -1;
}

bool GemmFusionsSupported(const GemmParams& p) {
  // swiglu_out and rope_epilogue read rows in pairs; the epilogue also needs RoPE pairs side
  // by side and no q / k norm.
  if ((p.swiglu_out != nullptr || p.rope_epilogue) && p.out % 2 != 0) return false;
  if (p.reduce.world > 0) {  // one row of whole pairs into y, no other fusion; the message fits the slots
    const GemvAllReduce& a = p.reduce;
    if (p.rows != 1 || p.out % 2 != 0 || p.out > a.cap || p.add_to_y || p.y_bf16 != nullptr ||
        p.swiglu_out != nullptr || p.rope_epilogue || a.world > kOneShotMaxRanks || a.rank < 0 || a.rank >= a.world ||
        a.state == nullptr || a.residual == nullptr || a.residual_bf16 == nullptr ||
        reinterpret_cast<uintptr_t>(p.y) % 8 != 0 || reinterpret_cast<uintptr_t>(a.residual) % 8 != 0 ||
        reinterpret_cast<uintptr_t>(a.residual_bf16) % 4 != 0) {
      return false;
    }
  }
  return !p.rope_epilogue || (p.rope.kv.head_dim % 2 == 0 && p.rope.q_norm == nullptr && p.rope.k_norm == nullptr &&
                              p.rope.pairs_adjacent);
}

bool GemvSupported(const GemmParams& p) {
  const uintptr_t x_at = p.x_f32 != nullptr ? reinterpret_cast<uintptr_t>(p.x_f32) : reinterpret_cast<uintptr_t>(p.x);
  return GemmFusionsSupported(p) && p.rows >= 1 && p.rows <= (p.x_f32 != nullptr ? 1 : kGemvMaxRows) &&
         p.in % 8 == 0 && x_at % 16 == 0 &&
         reinterpret_cast<uintptr_t>(p.w) % 16 == 0;
}

cudaError_t GemvVariant(const GemmParams& p, int variant, cudaStream_t stream) {
  if (p.rows == 0 || p.out == 0) return cudaSuccess;
  if (!GemvSupported(p)) return cudaErrorInvalidValue;
  switch (variant) {
    case 0: return LaunchGemv<2, 4, false>(p, stream);
    case 1: return LaunchGemv<2, 4, true>(p, stream);
    case 2: return LaunchGemv<4, 2, true>(p, stream);
    case 3: return LaunchGemv<2, 8, false>(p, stream);
    case 4: return LaunchGemv<2, 4, false, 4, kOneRowCtasPerSm>(p, stream);
    case 5: return LaunchGemv<2, 4, true, 2>(p, stream);
    case 6: return LaunchGemv<2, 4, false, 2, kOneRowCtasPerSm>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t Gemv(const GemmParams& p, cudaStream_t stream) { return GemvVariant(p, FittedVariant(p), stream); }

}  // namespace lil::cuda
