// File: bench/gpu_persistent_kernels.cu
// gpu_persistent_bench's prototype of a persistent layer kernel (its header comment says what it
// measures): one CTA an SM for the whole run, every warp streaming its rows' weights through its
// own ring of shared-memory stages (1-D bulk copies on mbarriers) that runs ahead across the grid
// barriers between the phases, the phase's input copied to shared memory after each barrier.
// Two kernels: units split statically over the warps (PersistentKernel, with modes that leave
// parts out), and units drawn at run time from a counter per phase (PersistentDynamicKernel).
#include <cuda_runtime.h>

#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "bench/gpu_persistent_bench.cuh"
#include "kernels/cuda/bf16x8.cuh"
#include "kernels/cuda/cp_async.cuh"

namespace lil::bench::persistent {
namespace {

using lil::cuda::Dot8;

constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr size_t kXBytes = size_t{kInter} * sizeof(bf16);  // the largest phase input (down's)

// The four products in the order a layer runs them.
enum Phase { kPhaseQkv = 0, kPhaseO = 1, kPhaseGu = 2, kPhaseDown = 3 };

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

using StaticKernel = void (*)(Weights, State, int, long long, unsigned*, int);
using DynamicKernel = void (*)(Weights, State, int, long long, unsigned*, unsigned*);
struct Entry {
  PersistentVariant v;
  StaticKernel kernel;  // or null: `dynamic`
  DynamicKernel dynamic;
  size_t smem;
  int mode;
};
const std::vector<Entry>& Entries() {
  static const std::vector<Entry> entries = [] {
    std::vector<Entry> e = {
        {{"2 x 8 KiB stages a warp", true}, PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(), 0},
        {{"3 x 8 KiB", true}, PersistentKernel<3, 8192>, nullptr, PersistentSmem<3, 8192>(), 0},
        {{"4 x 4 KiB", true}, PersistentKernel<4, 4096>, nullptr, PersistentSmem<4, 4096>(), 0},
        {{"6 x 4 KiB", true}, PersistentKernel<6, 4096>, nullptr, PersistentSmem<6, 4096>(), 0},
        {{"2 x 8 KiB, blocked units", true}, PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(), kBlocked},
        {{"2 x 8 KiB, no dot products", false}, PersistentKernel<2, 8192>, nullptr, PersistentSmem<2, 8192>(), kNoCompute},
        {{"2 x 8 KiB, no dot products, no barriers", false}, PersistentKernel<2, 8192>, nullptr,
         PersistentSmem<2, 8192>(), kNoCompute | kNoBarrier},
        {{"units drawn at run time, 2 x 8 KiB", true}, nullptr, PersistentDynamicKernel<2, 8192>,
         PersistentSmem<2, 8192>(), 0},
        {{"units drawn at run time, 3 x 8 KiB", true}, nullptr, PersistentDynamicKernel<3, 8192>,
         PersistentSmem<3, 8192>(), 0},
        {{"units drawn at run time, 6 x 4 KiB", true}, nullptr, PersistentDynamicKernel<6, 4096>,
         PersistentSmem<6, 4096>(), 0},
    };
    for (size_t i = 0; i < e.size(); ++i) e[i].v.index = static_cast<int>(i);
    return e;
  }();
  return entries;
}

}  // namespace

std::vector<PersistentVariant> PersistentVariants() {
  std::vector<PersistentVariant> out;
  for (const Entry& e : Entries()) out.push_back(e.v);
  return out;
}

bool PersistentFits(const PersistentVariant& v) {
  const Entry& e = Entries()[v.index];
  const void* fn = e.kernel != nullptr ? reinterpret_cast<const void*>(e.kernel) : reinterpret_cast<const void*>(e.dynamic);
  CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(e.smem)));
  int per_sm = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, kThreads, e.smem));
  return per_sm >= 1;
}

void LaunchPersistent(const PersistentVariant& v, const Weights& w, const State& s, int layers, long long attn_ns,
                      unsigned* counter, unsigned* units, int sms, cudaStream_t st) {
  const Entry& e = Entries()[v.index];
  CHECK(cudaMemsetAsync(counter, 0, sizeof(unsigned), st));
  if (e.kernel != nullptr) {
    e.kernel<<<sms, kThreads, e.smem, st>>>(w, s, layers, attn_ns, counter, e.mode);
  } else {
    CHECK(cudaMemsetAsync(units, 0, sizeof(unsigned) * layers * kPhases, st));
    e.dynamic<<<sms, kThreads, e.smem, st>>>(w, s, layers, attn_ns, counter, units);
  }
  CHECK(cudaGetLastError());
}

}  // namespace lil::bench::persistent
