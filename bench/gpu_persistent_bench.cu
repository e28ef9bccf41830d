// File: bench/gpu_persistent_bench.cu
// Where the batch-1 decode step's kernel boundaries cost time, and whether a persistent layer
// kernel would take them out (issue 6, goal 1; docs/GPU.md "Missing / next" 1). Three tables:
// default: the four weight products of a Llama-3-8B layer (qkv 6,144 x 4,096 with the RMSNorm,
//   o 4,096 x 4,096 + residual, gate_up 28,672 x 4,096 as (gate, up) row pairs with the norm and
//   SwiGLU, down 4,096 x 14,336 + residual) over --layers layers, with an attention stand-in
//   between qkv and o (a kernel that copies q to the attention output after spinning --attn-ns,
//   default 0 and 5,000: the latency chain the real attention keeps after its wait), each layer's
//   time beside its weights' bytes at the read ceiling of this run, two ways:
//     kernels    the step's way: the backend's GEMV (lil::cuda::Gemv with its fusions and its
//                variant choice) and the stand-in, launched with PDL in one CUDA graph;
//     persistent a prototype: one kernel, one CTA an SM for the whole run, every warp streaming
//                its rows' weights through its own ring of shared-memory stages (1-D bulk
//                copies on mbarriers) that runs ahead across the grid barriers between phases;
//                the phase's input (8-28 KiB) is copied to shared memory after each barrier.
//                Rows: ring shapes, units in contiguous blocks per SM, with the dot products or
//                the barriers left out (the stream alone), and with the units drawn at run time
//                from a counter per phase instead of a static split.
//   Both ways end with the same residual x; the table prints their relative difference.
// --o-probe: the stand-in then the o GEMV alone, weights per layer (HBM) or one copy (L2): how
//   much of o's time after a stall its HBM stream is.
// --probe: when a PDL dependent's CTAs start and when its wait returns, against a 10 us kernel.
// Prints Markdown tables. Results: docs/PERF.md, session 22.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "kernels/cuda/bf16x8.cuh"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/pdl.h"

namespace {

using lil::bench::bf16;
using lil::cuda::Dot8;

constexpr int kHidden = 4096, kQkv = 6144, kInter = 14336;
constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr size_t kXBytes = size_t{kInter} * sizeof(bf16);  // the largest phase input (down's)
constexpr float kEps = 1e-5f;

struct Weights {
  const bf16* qkv;   // [layers][kQkv][kHidden]
  const bf16* o;     // [layers][kHidden][kHidden]
  const bf16* gu;    // [layers][2 kInter][kHidden], rows (gate j, up j) side by side
  const bf16* down;  // [layers][kHidden][kInter]
};

struct State {
  float* x;      // residual [kHidden]
  bf16* xb;      // its bf16 copy
  float* scratch;  // fp32 outputs nobody reads (the GEMV's y for bf16-only products)
  bf16* qkv;     // [kQkv]
  bf16* attn;    // [kHidden]
  bf16* h;       // SwiGLU [kInter]
};

__device__ __forceinline__ unsigned long long GlobalNs() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ void Spin(long long ns) {
  if (ns <= 0) return;
  const unsigned long long end = GlobalNs() + static_cast<unsigned long long>(ns);
  while (GlobalNs() < end) {
  }
}

// ---- the step's way: PDL kernels ------------------------------------------------------------

// The attention stand-in: 128 CTAs of 128 threads holding 96 KiB of shared memory each (the
// tensor-core attention holds 70 KiB and 208 registers a thread), so the o GEMV after it finds
// an SM about as full as the real attention leaves it.
__global__ void __launch_bounds__(128) StandInKernel(const bf16* q, bf16* out, long long ns) {
  lil::cuda::PdlWait();
  lil::cuda::PdlTrigger();
  if (threadIdx.x == 0) Spin(ns);
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kHidden; i += gridDim.x * blockDim.x) out[i] = q[i];
}
constexpr size_t kStandInSmem = 96 * 1024;

// A one-row GEMV adding x w^T into the residual (o, down), the fusions the backend uses.
lil::cuda::GemmParams ResidualGemv(const bf16* x, const bf16* w, const State& s, int in) {
  lil::cuda::GemmParams p{};
  p.rows = 1;
  p.x = x;
  p.w = w;
  p.y = s.x;
  p.add_to_y = true;
  p.y_bf16 = s.xb;
  p.in = in;
  p.out = kHidden;
  return p;
}

void EnqueueKernels(const Weights& w, const State& s, int layers, long long attn_ns, cudaStream_t st) {
  for (int l = 0; l < layers; ++l) {
    lil::cuda::GemmParams p{};
    p.rows = 1;
    // qkv: the norm folded (its weight would be in w's columns), bf16 out.
    p.x = s.xb;
    p.w = w.qkv + static_cast<size_t>(l) * kQkv * kHidden;
    p.y = s.scratch;
    p.y_bf16 = s.qkv;
    p.in = kHidden;
    p.out = kQkv;
    p.norm_eps = kEps;
    CHECK(lil::cuda::Gemv(p, st));
    CHECK(lil::cuda::LaunchPdl(StandInKernel, dim3(128), dim3(128), kStandInSmem, st, s.qkv, s.attn, attn_ns));
    CHECK(lil::cuda::Gemv(ResidualGemv(s.attn, w.o + static_cast<size_t>(l) * kHidden * kHidden, s, kHidden), st));  // o
    // gate_up: norm, SwiGLU.
    p = lil::cuda::GemmParams{};
    p.rows = 1;
    p.x = s.xb;
    p.w = w.gu + static_cast<size_t>(l) * 2 * kInter * kHidden;
    p.y = s.scratch;
    p.swiglu_out = s.h;
    p.in = kHidden;
    p.out = 2 * kInter;
    p.norm_eps = kEps;
    CHECK(lil::cuda::Gemv(p, st));
    CHECK(lil::cuda::Gemv(ResidualGemv(s.h, w.down + static_cast<size_t>(l) * kHidden * kInter, s, kInter), st));  // down
  }
}

// ---- the persistent kernel -------------------------------------------------------------------

// The four products in the order a layer runs them.
enum Phase { kPhaseQkv = 0, kPhaseO = 1, kPhaseGu = 2, kPhaseDown = 3, kPhases = 4 };

struct PhaseShape {
  int units, rows_per_unit, in;
};
__device__ __forceinline__ PhaseShape ShapeOf(int phase) {
  switch (phase) {
    case kPhaseQkv: return {kQkv, 1, kHidden};
    case kPhaseO: return {kHidden, 1, kHidden};
    case kPhaseGu: return {kInter, 2, kHidden};
    default: return {kHidden, 1, kInter};
  }
}
__device__ __forceinline__ const bf16* MatrixOf(const Weights& w, int layer, int phase) {
  switch (phase) {
    case kPhaseQkv: return w.qkv + static_cast<size_t>(layer) * kQkv * kHidden;
    case kPhaseO: return w.o + static_cast<size_t>(layer) * kHidden * kHidden;
    case kPhaseGu: return w.gu + static_cast<size_t>(layer) * 2 * kInter * kHidden;
    default: return w.down + static_cast<size_t>(layer) * kHidden * kInter;
  }
}

// A warp's place in its own stream of pieces: units u = sm + G (warp + 8 i) of each phase (so
// each SM holds floor or ceil of units / G), each unit's rows, each row's 8 KiB pieces, phase
// after phase, layer after layer. The producer lane and the consumers each walk one.
// Modes (PersistentKernel's `mode` bits): kBlocked gives each SM a contiguous block of each
// phase's units (its warps interleaved inside it) instead of units sm + G (warp + 8 i);
// kNoCompute skips the dot products (the stream alone); kNoBarrier skips the grid barriers
// (wrong results: how fast the stream runs with nothing stopping it).
constexpr int kBlocked = 1, kNoCompute = 2, kNoBarrier = 4;

template <int kPieceBytes>
struct Cursor {
  int layer = 0, phase = 0, i = 0, row = 0, piece = 0;
  bool done = false, blocked = false;

  __device__ __forceinline__ int Unit() const {
    const int w = static_cast<int>(threadIdx.x >> 5), g = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
    if (!blocked) return b + g * (w + kWarps * i);
    const int n = ShapeOf(phase).units, lo = static_cast<int>(static_cast<long long>(n) * b / g),
              hi = static_cast<int>(static_cast<long long>(n) * (b + 1) / g), u = lo + w + kWarps * i;
    return u < hi ? u : n;  // n: past the phase's units
  }
  // Moves to the first valid unit at or after (layer, phase, i).
  __device__ __forceinline__ void Settle(int layers) {
    while (!done && Unit() >= ShapeOf(phase).units) {
      i = 0;
      row = 0;
      piece = 0;
      if (++phase == kPhases) {
        phase = 0;
        if (++layer == layers) done = true;
      }
    }
  }
  __device__ __forceinline__ int Pieces() const { return (ShapeOf(phase).in * 2 + kPieceBytes - 1) / kPieceBytes; }
  __device__ __forceinline__ int PieceBytes() const {
    const int row_bytes = ShapeOf(phase).in * 2;
    return min(kPieceBytes, row_bytes - piece * kPieceBytes);
  }
  __device__ __forceinline__ const bf16* Src(const Weights& w) const {
    const PhaseShape s = ShapeOf(phase);
    const size_t r = static_cast<size_t>(Unit()) * s.rows_per_unit + row;
    return MatrixOf(w, layer, phase) + r * s.in + static_cast<size_t>(piece) * (kPieceBytes / 2);
  }
  __device__ __forceinline__ void Next(int layers) {
    if (++piece < Pieces()) return;
    piece = 0;
    if (++row < ShapeOf(phase).rows_per_unit) return;
    row = 0;
    ++i;
    Settle(layers);
  }
};

__device__ __forceinline__ void BulkCopy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   lil::cuda::SmemAddr(dst)),
               "l"(src), "r"(bytes), "r"(lil::cuda::SmemAddr(bar))
               : "memory");
#endif
}

__device__ __forceinline__ unsigned LoadAcquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Every CTA's writes before it, visible to every CTA after it (the cooperative-groups pattern).
__device__ __forceinline__ void GridBarrier(unsigned* counter, unsigned& target) {
  __syncthreads();
  target += gridDim.x;
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
    while (LoadAcquire(counter) < target) {
    }
    __threadfence();
  }
  __syncthreads();
}

// The attention stand-in as a phase: spin, then copy q to the attention output.
__device__ __forceinline__ void StandInPhase(const State& s, long long attn_ns) {
  if (threadIdx.x == 0) Spin(attn_ns);
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kHidden; i += gridDim.x * blockDim.x) s.attn[i] = __ldcg(s.qkv + i);
}

// The phase's input into shared memory (through the L2: another SM wrote it); returns the
// RMSNorm scale for the normed products (qkv, gate_up), else 1.
__device__ __forceinline__ float StageInput(int phase, const State& s, bf16* xs, float* s_ss) {
  const PhaseShape shape = ShapeOf(phase);
  const bf16* in = phase == kPhaseO ? s.attn : phase == kPhaseDown ? s.h : s.xb;
  const bool norm = phase == kPhaseQkv || phase == kPhaseGu;
  if (threadIdx.x == 0) *s_ss = 0.0f;
  __syncthreads();
  float ss = 0.0f;
  for (int c = threadIdx.x; c < shape.in / 8; c += kThreads) {
    const uint4 v = __ldcg(reinterpret_cast<const uint4*>(in) + c);
    reinterpret_cast<uint4*>(xs)[c] = v;
    if (norm) ss += Dot8(v, v);
  }
  if (norm) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) atomicAdd(s_ss, ss);
  }
  __syncthreads();
  return norm ? rsqrtf(*s_ss / static_cast<float>(shape.in) + kEps) : 1.0f;
}

// A unit's outputs from its rows' sums (lane 0).
__device__ __forceinline__ void Epilogue(int phase, int unit, const float (&acc)[2], float scale, const State& s) {
  if (phase == kPhaseQkv) {
    s.qkv[unit] = __float2bfloat16(acc[0] * scale);
  } else if (phase == kPhaseGu) {
    const float g = acc[0] * scale, u = acc[1] * scale;
    s.h[unit] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
  } else {
    const float y = __ldcg(s.x + unit) + acc[0];
    s.x[unit] = y;
    s.xb[unit] = __float2bfloat16(y);
  }
}

template <int kStages, int kPieceBytes>
__global__ void __launch_bounds__(kThreads, 1)
    PersistentKernel(Weights w, State s, int layers, long long attn_ns, unsigned* counter, int mode) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* ring = smem + (threadIdx.x >> 5) * kStages * kPieceBytes;   // this warp's stages
  bf16* xs = reinterpret_cast<bf16*>(smem + kWarps * kStages * kPieceBytes);  // the phase's input
  __shared__ __align__(8) uint64_t bars[kWarps][kStages];
  __shared__ float s_ss;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    for (int k = 0; k < kStages; ++k) lil::cuda::MbarInit(&bars[warp][k], 1);
  }
  __syncthreads();

  // The producer (lane 0) issues piece n into stage n % kStages; the consumers wait on its
  // mbarrier with parity (n / kStages) & 1.
  Cursor<kPieceBytes> prod, cons;
  prod.blocked = cons.blocked = (mode & kBlocked) != 0;
  const bool compute = (mode & kNoCompute) == 0, barriers = (mode & kNoBarrier) == 0;
  prod.Settle(layers);
  cons.Settle(layers);
  long long issued = 0, consumed = 0;
  auto issue = [&]() {
    if (prod.done) return;
    const int k = static_cast<int>(issued % kStages);
    const uint32_t bytes = static_cast<uint32_t>(prod.PieceBytes());
    lil::cuda::MbarArriveExpectTx(&bars[warp][k], bytes);
    BulkCopy(ring + k * kPieceBytes, prod.Src(w), bytes, &bars[warp][k]);
    ++issued;
    prod.Next(layers);
  };
  if (lane == 0) {
    for (int k = 0; k < kStages; ++k) issue();
  }

  unsigned target = 0;
  for (int layer = 0; layer < layers; ++layer) {
    for (int phase = 0; phase < kPhases; ++phase) {
      if (phase == kPhaseO) {  // the attention stand-in, between two barriers
        if (barriers) GridBarrier(counter, target);
        StandInPhase(s, attn_ns);
      }
      if (barriers && (layer > 0 || phase > 0)) GridBarrier(counter, target);
      const PhaseShape shape = ShapeOf(phase);
      const float scale = StageInput(phase, s, xs, &s_ss);

      // This warp's units of the phase.
      while (!cons.done && cons.layer == layer && cons.phase == phase) {
        const int unit = cons.Unit();
        float acc[2] = {0.0f, 0.0f};
        for (int r = 0; r < shape.rows_per_unit; ++r) {
          const int pieces = cons.Pieces();
          for (int pc = 0; pc < pieces; ++pc) {
            const int k = static_cast<int>(consumed % kStages);
            const int chunks = cons.PieceBytes() / 16;
            lil::cuda::MbarWait(&bars[warp][k], static_cast<uint32_t>((consumed / kStages) & 1));
            const uint4* wp = reinterpret_cast<const uint4*>(ring + k * kPieceBytes);
            const uint4* xp = reinterpret_cast<const uint4*>(xs) + pc * (kPieceBytes / 16);
            float a = 0.0f;
#pragma unroll 4
            for (int c = lane; compute && c < chunks; c += 32) a += Dot8(wp[c], xp[c]);
            acc[r] += a;
            __syncwarp();
            ++consumed;
            cons.Next(layers);
            if (lane == 0) {
              lil::cuda::FenceProxyAsync();  // the lanes' reads of the stage before the copy into it
              issue();
            }
          }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
          acc[0] += __shfl_xor_sync(0xffffffffu, acc[0], o);
          acc[1] += __shfl_xor_sync(0xffffffffu, acc[1], o);
        }
        if (lane == 0) Epilogue(phase, unit, acc, scale, s);
      }
    }
  }
}

// The same phases with the units handed out at run time: each warp's producer lane draws its
// next unit of the phase from a counter (atomicAdd, drawn one unit ahead so the round trip is
// hidden), so SMs that stream faster take more units and a phase ends within about one unit
// on every SM. Each stage carries its piece's descriptor (phase, unit, row, piece), which the
// consumers read to know where the warp's part of the phase ends. `units` holds a counter per
// (layer, phase), zeroed before the launch.
template <int kStages, int kPieceBytes>
__global__ void __launch_bounds__(kThreads, 1)
    PersistentDynamicKernel(Weights w, State s, int layers, long long attn_ns, unsigned* counter, unsigned* units) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* ring = smem + (threadIdx.x >> 5) * kStages * kPieceBytes;
  bf16* xs = reinterpret_cast<bf16*>(smem + kWarps * kStages * kPieceBytes);
  __shared__ __align__(8) uint64_t bars[kWarps][kStages];
  __shared__ int4 desc[kWarps][kStages];  // (layer * kPhases + phase, unit, row, piece); x < 0: no more pieces
  __shared__ float s_ss;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    for (int k = 0; k < kStages; ++k) lil::cuda::MbarInit(&bars[warp][k], 1);
  }
  __syncthreads();

  // Producer state (lane 0): the piece to issue next, and the unit drawn ahead.
  int p_lp = 0, p_unit = 0, p_row = 0, p_piece = 0;
  unsigned p_next = 0;
  bool p_done = false;
  auto draw = [&](int lp) { return atomicAdd(units + lp, 1u); };
  // Moves to the first phase (from lp on) with a unit left, drawing it and the one after.
  auto settle = [&]() {
    while (!p_done && p_unit >= ShapeOf(p_lp % kPhases).units) {
      if (++p_lp == layers * kPhases) {
        p_done = true;
        break;
      }
      p_unit = static_cast<int>(draw(p_lp));
      p_next = draw(p_lp);
    }
  };
  long long issued = 0, consumed = 0;
  auto issue = [&]() {
    const int k = static_cast<int>(issued % kStages);
    if (p_done) {
      desc[warp][k] = make_int4(-1, 0, 0, 0);
      return;
    }
    const int phase = p_lp % kPhases, layer = p_lp / kPhases;
    const PhaseShape shape = ShapeOf(phase);
    const int row_bytes = shape.in * 2;
    const uint32_t bytes = static_cast<uint32_t>(min(kPieceBytes, row_bytes - p_piece * kPieceBytes));
    desc[warp][k] = make_int4(p_lp, p_unit, p_row, p_piece);
    const bf16* src = MatrixOf(w, layer, phase) + (static_cast<size_t>(p_unit) * shape.rows_per_unit + p_row) * shape.in +
                      static_cast<size_t>(p_piece) * (kPieceBytes / 2);
    lil::cuda::MbarArriveExpectTx(&bars[warp][k], bytes);
    BulkCopy(ring + k * kPieceBytes, src, bytes, &bars[warp][k]);
    ++issued;
    if (++p_piece * kPieceBytes < row_bytes) return;
    p_piece = 0;
    if (++p_row < shape.rows_per_unit) return;
    p_row = 0;
    p_unit = static_cast<int>(p_next);  // the unit drawn ahead
    if (p_unit < shape.units) {
      p_next = draw(p_lp);
    } else {
      settle();
    }
  };
  if (lane == 0) {
    p_unit = static_cast<int>(draw(0));
    p_next = draw(0);
    settle();
    for (int k = 0; k < kStages; ++k) issue();
  }
  __syncwarp();

  unsigned target = 0;
  for (int layer = 0; layer < layers; ++layer) {
    for (int phase = 0; phase < kPhases; ++phase) {
      if (phase == kPhaseO) {
        GridBarrier(counter, target);
        StandInPhase(s, attn_ns);
      }
      if (layer > 0 || phase > 0) GridBarrier(counter, target);
      const PhaseShape shape = ShapeOf(phase);
      const float scale = StageInput(phase, s, xs, &s_ss);
      const int lp = layer * kPhases + phase, pieces = (shape.in * 2 + kPieceBytes - 1) / kPieceBytes;
      float acc[2] = {0.0f, 0.0f};
      for (;;) {
        const int k = static_cast<int>(consumed % kStages);
        const int4 d = desc[warp][k];
        if (d.x != lp) break;  // this warp's part of the phase is done (or the stream is)
        const int chunks = min(kPieceBytes, shape.in * 2 - d.w * kPieceBytes) / 16;
        lil::cuda::MbarWait(&bars[warp][k], static_cast<uint32_t>((consumed / kStages) & 1));
        const uint4* wp = reinterpret_cast<const uint4*>(ring + k * kPieceBytes);
        const uint4* xp = reinterpret_cast<const uint4*>(xs) + d.w * (kPieceBytes / 16);
        float a = 0.0f;
#pragma unroll 4
        for (int c = lane; c < chunks; c += 32) a += Dot8(wp[c], xp[c]);
        if (d.z == 0) {
          acc[0] += a;
        } else {
          acc[1] += a;
        }
        __syncwarp();
        ++consumed;
        if (lane == 0) {
          lil::cuda::FenceProxyAsync();
          issue();
        }
        __syncwarp();  // the new descriptor is visible to every lane
        if (d.w == pieces - 1 && d.z == shape.rows_per_unit - 1) {  // the unit's last piece
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) {
            acc[0] += __shfl_xor_sync(0xffffffffu, acc[0], o);
            acc[1] += __shfl_xor_sync(0xffffffffu, acc[1], o);
          }
          if (lane == 0) Epilogue(phase, d.y, acc, scale, s);
          acc[0] = acc[1] = 0.0f;
        }
      }
    }
  }
}

template <int kStages, int kPieceBytes>
size_t PersistentSmem() {
  return size_t{kWarps} * kStages * kPieceBytes + kXBytes;
}

__global__ void ScaledFill(bf16* p, size_t n, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2bfloat16((static_cast<float>(h & 0xffff) / 65536.0f - 0.5f) * 2.0f * scale);
  }
}

__global__ void InitX(float* x, bf16* xb) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kHidden; i += gridDim.x * blockDim.x) {
    const float v = sinf(0.37f * static_cast<float>(i)) + 0.1f;
    x[i] = v;
    xb[i] = __float2bfloat16(v);
  }
}


// ---- --probe: when do a PDL dependent's CTAs start? ------------------------------------------

// ProbeSpin (132 CTAs, launched with PDL like the stand-in) records when each CTA starts and
// when its spin ends; ProbeNext (PDL, `ctas` CTAs of 256 threads, a GEMV's shape) records when
// each CTA starts (before its wait) and when its wait returns. ns since a common origin.
__global__ void __launch_bounds__(128) ProbeSpin(long long ns, unsigned long long* t) {
  const unsigned long long t0 = GlobalNs();
  lil::cuda::PdlWait();
  lil::cuda::PdlTrigger();
  if (threadIdx.x == 0) Spin(ns);
  __syncthreads();
  if (threadIdx.x == 0) {
    t[2 * blockIdx.x] = t0;
    t[2 * blockIdx.x + 1] = GlobalNs();
  }
}
__global__ void __launch_bounds__(256) ProbeNext(unsigned long long* t) {
  const unsigned long long t0 = GlobalNs();
  lil::cuda::PdlWait();
  const unsigned long long t1 = GlobalNs();
  lil::cuda::PdlTrigger();
  if (threadIdx.x == 0) {
    t[2 * blockIdx.x] = t0;
    t[2 * blockIdx.x + 1] = t1;
  }
}

void RunProbe(int sms) {
  constexpr int kSpinCtas = 128, kNextCtas = 1024, kReps = 5;
  unsigned long long *ts = nullptr, *tn = nullptr;
  CHECK(cudaMalloc(&ts, 2 * kSpinCtas * sizeof(unsigned long long)));
  CHECK(cudaMalloc(&tn, 2 * kNextCtas * sizeof(unsigned long long)));
  cudaStream_t st;
  CHECK(cudaStreamCreate(&st));
  CHECK(cudaFuncSetAttribute(ProbeSpin, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024));
  std::printf("PDL probe: a 10 us spin kernel (%d CTAs of 128 threads) then a dependent of %d CTAs of 256 threads "
              "(%d SMs); us from the spin's first CTA start, the median of %d launches\n\n",
              kSpinCtas, kNextCtas, sms, kReps);
  std::printf("| launched | spin's shared memory | spin's last start | spin's last end | dependent's first start | dependent "
              "CTAs started before the spin's end | dependent's first wait return | its last wait return |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (int graph = 0; graph < 2; ++graph) {
    for (const size_t spin_smem : {size_t{0}, size_t{96} * 1024}) {
      auto enqueue = [&]() {
        CHECK(lil::cuda::LaunchPdl(ProbeSpin, dim3(kSpinCtas), dim3(128), spin_smem, st, 10000LL, ts));
        CHECK(lil::cuda::LaunchPdl(ProbeNext, dim3(kNextCtas), dim3(256), 0, st, tn));
      };
      cudaGraphExec_t exec = nullptr;
      if (graph) {
        cudaGraph_t g;
        CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        enqueue();
        CHECK(cudaStreamEndCapture(st, &g));
        CHECK(cudaGraphInstantiate(&exec, g, 0));
        CHECK(cudaGraphDestroy(g));
      }
      std::vector<std::array<double, 6>> runs;
      for (int rep = 0; rep <= kReps; ++rep) {  // rep 0: warm-up
        if (graph) {
          CHECK(cudaGraphLaunch(exec, st));
        } else {
          enqueue();
        }
        CHECK(cudaStreamSynchronize(st));
        std::vector<unsigned long long> a(2 * kSpinCtas), b(2 * kNextCtas);
        CHECK(cudaMemcpy(a.data(), ts, a.size() * sizeof(a[0]), cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(b.data(), tn, b.size() * sizeof(b[0]), cudaMemcpyDeviceToHost));
        unsigned long long s0 = ~0ull, s_last = 0, e_last = 0, n0 = ~0ull, w0 = ~0ull, w_last = 0;
        for (int i = 0; i < kSpinCtas; ++i) {
          s0 = std::min(s0, a[2 * i]);
          s_last = std::max(s_last, a[2 * i]);
          e_last = std::max(e_last, a[2 * i + 1]);
        }
        int early = 0;
        for (int i = 0; i < kNextCtas; ++i) {
          n0 = std::min(n0, b[2 * i]);
          early += b[2 * i] < e_last ? 1 : 0;
          w0 = std::min(w0, b[2 * i + 1]);
          w_last = std::max(w_last, b[2 * i + 1]);
        }
        auto us = [&](unsigned long long t) { return (static_cast<double>(t) - static_cast<double>(s0)) / 1e3; };
        if (rep > 0) runs.push_back({us(s_last), us(e_last), us(n0), static_cast<double>(early), us(w0), us(w_last)});
      }
      std::array<double, 6> med{};
      for (int k = 0; k < 6; ++k) {
        std::vector<double> col;
        for (const auto& r : runs) col.push_back(r[k]);
        std::sort(col.begin(), col.end());
        med[k] = col[col.size() / 2];
      }
      std::printf("| %s | %zu KiB | %.2f | %.2f | %.2f | %.0f | %.2f | %.2f |\n", graph ? "graph" : "stream", spin_smem / 1024,
                  med[0], med[1], med[2], med[3], med[4], med[5]);
      if (exec != nullptr) CHECK(cudaGraphExecDestroy(exec));
    }
  }
  std::printf("\n");
  CHECK(cudaFree(ts));
  CHECK(cudaFree(tn));
}

// --o-probe: the attention stand-in then the o GEMV alone, `layers` times in a graph, with o's
// weights distinct per layer (read from HBM) or one layer's for all (left in the L2 by the
// previous repetition): how much of o's time after the stand-in is its HBM stream.
void RunOProbe(const Weights& w, const State& s, int layers, double floor_o_us) {
  cudaStream_t st;
  CHECK(cudaStreamCreate(&st));
  std::printf("| stand-in (ns) | o weights | us a (stand-in, o) pair | minus the stand-in's spin | o's bytes at the read ceiling |\n|---|---|---|---|---|\n");
  for (const long long ns : {0LL, 5000LL, 10000LL}) {
    for (int hot = 0; hot < 2; ++hot) {
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
      for (int l = 0; l < layers; ++l) {
        CHECK(lil::cuda::LaunchPdl(StandInKernel, dim3(128), dim3(128), kStandInSmem, st, s.qkv, s.attn, ns));
        CHECK(lil::cuda::Gemv(ResidualGemv(s.attn, w.o + static_cast<size_t>(hot ? 0 : l) * kHidden * kHidden, s, kHidden), st));
      }
      CHECK(cudaStreamEndCapture(st, &graph));
      CHECK(cudaGraphInstantiate(&exec, graph, 0));
      const double us = lil::bench::MedianMs([&](int) { CHECK(cudaGraphLaunch(exec, st)); }, 10, 9) * 1e3 / layers;
      std::printf("| %lld | %s | %.2f | %.2f | %.2f |\n", ns, hot ? "one copy (L2)" : "per layer (HBM)", us, us - ns / 1e3,
                  floor_o_us);
      CHECK(cudaGraphExecDestroy(exec));
      CHECK(cudaGraphDestroy(graph));
    }
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lil::bench;
  int layers = 8;
  bool o_probe = false;
  std::vector<long long> attn_ns = {0, 5000};
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--layers" && a + 1 < argc) {
      layers = std::atoi(argv[++a]);
    } else if (arg == "--probe") {
      RunProbe(SmCount());
      return 0;
    } else if (arg == "--o-probe") {
      o_probe = true;
    } else if (arg == "--attn-ns" && a + 1 < argc) {
      attn_ns = {std::atoll(argv[++a])};
    } else {
      std::fprintf(stderr, "usage: gpu_persistent_bench [--layers N] [--attn-ns NS | --o-probe] | --probe\n");
      return 2;
    }
  }
  if (layers < 1 || layers > 64) {
    std::fprintf(stderr, "--layers must be 1..64, got %d\n", layers);
    return 2;
  }
  const double tbs = PrintReadTbs();
  const int sms = SmCount();

  const size_t n_qkv = size_t{kQkv} * kHidden, n_o = size_t{kHidden} * kHidden, n_gu = size_t{2} * kInter * kHidden,
               n_down = size_t{kHidden} * kInter;
  const size_t per_layer = n_qkv + n_o + n_gu + n_down;
  bf16* wbuf = nullptr;
  CHECK(cudaMalloc(&wbuf, per_layer * layers * sizeof(bf16)));
  ScaledFill<<<sms * 8, 512>>>(wbuf, per_layer * layers, 7u, 0.02f);
  CHECK(cudaGetLastError());
  Weights w;
  w.qkv = wbuf;
  w.o = w.qkv + n_qkv * layers;
  w.gu = w.o + n_o * layers;
  w.down = w.gu + n_gu * layers;

  State s{};
  CHECK(cudaMalloc(&s.x, kHidden * sizeof(float)));
  CHECK(cudaMalloc(&s.xb, kHidden * sizeof(bf16)));
  CHECK(cudaMalloc(&s.scratch, 2 * kInter * sizeof(float)));
  CHECK(cudaMalloc(&s.qkv, kQkv * sizeof(bf16)));
  CHECK(cudaMalloc(&s.attn, kHidden * sizeof(bf16)));
  CHECK(cudaMalloc(&s.h, kInter * sizeof(bf16)));
  unsigned *counter = nullptr, *units = nullptr;
  CHECK(cudaMalloc(&counter, sizeof(unsigned)));
  CHECK(cudaMalloc(&units, sizeof(unsigned) * layers * kPhases));
  CHECK(cudaFuncSetAttribute(StandInKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kStandInSmem)));
  cudaStream_t st;
  CHECK(cudaStreamCreate(&st));  // blocking: MedianMs records its events on the legacy stream

  if (o_probe) {
    RunOProbe(w, s, layers, static_cast<double>(n_o) * sizeof(bf16) / (tbs * 1e12) * 1e6);
    return 0;
  }
  const double bytes = static_cast<double>(per_layer) * sizeof(bf16);
  const double floor_us = bytes / (tbs * 1e12) * 1e6;
  std::printf("Llama-3-8B layer products at batch 1 (%d layers a launch, %.1f MB of weights a layer; floor %.2f us a "
              "layer at the read ceiling)\n\n",
              layers, bytes / 1e6, floor_us);
  std::printf("| attention stand-in (ns) | way | us a layer | of the floor | vs kernels | x vs kernels (rel. L2) |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::vector<float> ref(kHidden), got(kHidden);
  for (const long long ns : attn_ns) {
    // The step's way, one graph.
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    EnqueueKernels(w, s, layers, ns, st);
    CHECK(cudaStreamEndCapture(st, &graph));
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    InitX<<<16, 256, 0, st>>>(s.x, s.xb);
    CHECK(cudaGraphLaunch(exec, st));
    CHECK(cudaStreamSynchronize(st));
    CHECK(cudaMemcpy(ref.data(), s.x, kHidden * sizeof(float), cudaMemcpyDeviceToHost));
    const double k_ms = MedianMs([&](int) { CHECK(cudaGraphLaunch(exec, st)); }, 10, 9);
    const double k_us = k_ms * 1e3 / layers;
    std::printf("| %lld | kernels (PDL graph) | %.2f | %.3fx | 1.000x | - |\n", ns, k_us, k_us / floor_us);
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));

    struct Variant {
      const char* name;
      void (*kernel)(Weights, State, int, long long, unsigned*, int);  // or null: dynamic
      void (*dynamic)(Weights, State, int, long long, unsigned*, unsigned*);
      size_t smem;
      int mode;
    };
    const Variant variants[] = {
        {"2 x 8 KiB stages a warp", PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(), 0},
        {"3 x 8 KiB", PersistentKernel<3, 8192>, nullptr, PersistentSmem<3, 8192>(), 0},
        {"4 x 4 KiB", PersistentKernel<4, 4096>, nullptr, PersistentSmem<4, 4096>(), 0},
        {"6 x 4 KiB", PersistentKernel<6, 4096>, nullptr, PersistentSmem<6, 4096>(), 0},
        {"2 x 8 KiB, blocked units", PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(), kBlocked},
        {"2 x 8 KiB, no dot products", PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(), kNoCompute},
        {"2 x 8 KiB, no dot products, no barriers", PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(),
         kNoCompute | kNoBarrier},
        {"units drawn at run time, 2 x 8 KiB", nullptr, PersistentDynamicKernel<2, 8192>, PersistentSmem<2, 8192>(), 0},
        {"units drawn at run time, 3 x 8 KiB", nullptr, PersistentDynamicKernel<3, 8192>, PersistentSmem<3, 8192>(), 0},
        {"units drawn at run time, 6 x 4 KiB", nullptr, PersistentDynamicKernel<6, 4096>, PersistentSmem<6, 4096>(), 0},
    };
    for (const Variant& v : variants) {
      const void* fn = v.kernel != nullptr ? reinterpret_cast<const void*>(v.kernel) : reinterpret_cast<const void*>(v.dynamic);
      CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(v.smem)));
      int per_sm = 0;
      CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, kThreads, v.smem));
      if (per_sm < 1) {
        std::printf("| %lld | persistent, %s | does not fit an SM | | | |\n", ns, v.name);
        continue;
      }
      auto run = [&]() {
        CHECK(cudaMemsetAsync(counter, 0, sizeof(unsigned), st));
        if (v.kernel != nullptr) {
          v.kernel<<<sms, kThreads, v.smem, st>>>(w, s, layers, ns, counter, v.mode);
        } else {
          CHECK(cudaMemsetAsync(units, 0, sizeof(unsigned) * layers * kPhases, st));
          v.dynamic<<<sms, kThreads, v.smem, st>>>(w, s, layers, ns, counter, units);
        }
        CHECK(cudaGetLastError());
      };
      InitX<<<16, 256, 0, st>>>(s.x, s.xb);
      run();
      CHECK(cudaStreamSynchronize(st));
      CHECK(cudaMemcpy(got.data(), s.x, kHidden * sizeof(float), cudaMemcpyDeviceToHost));
      double num = 0.0, den = 0.0;
      bool finite = true;
      for (int i = 0; i < kHidden; ++i) {
        finite = finite && std::isfinite(got[i]) && std::isfinite(ref[i]);
        num += (got[i] - ref[i]) * static_cast<double>(got[i] - ref[i]);
        den += ref[i] * static_cast<double>(ref[i]);
      }
      const double rel = finite && den > 0.0 ? std::sqrt(num / den) : INFINITY;
      const double p_ms = MedianMs([&](int) { run(); }, 10, 9);
      const double p_us = p_ms * 1e3 / layers;
      const bool checked = v.mode == 0 || v.mode == kBlocked;
      std::printf("| %lld | persistent, %s | %.2f | %.3fx | %.3fx | %.2e%s |\n", ns, v.name, p_us, p_us / floor_us,
                  p_us / k_us, rel, !checked ? " (not comparable)" : rel < 2e-2 ? "" : " MISMATCH");
    }
  }
  std::printf("\n(persistent rows include the counters' memset nodes; the kernels' rows the graph launch)\n");
  CHECK(cudaFree(wbuf));
  return 0;
}
