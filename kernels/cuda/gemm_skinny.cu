// File: kernels/cuda/gemm_skinny.cu
// The skinny tensor-core GEMM (gemm_skinny.h). x [rows, in] bf16 (rows padded to 16 MT with
// zeros), w [out, in] bf16, y [rows, out] fp32.
//
// Work: the products of kBN-column tiles over kBK-deep k steps, tiles x steps in all, cut
// into one contiguous range per CTA of a persistent grid (kCtasPerSm CTAs an SM: "stream-K"),
// so every CTA streams the same number of weight bytes whatever the shape; a range may start
// or end inside a tile. A CTA keeps kStages - 1 steps in flight (two CTAs: 128 KiB of weights
// an SM), each stage two 2-D box copies by the TMA engine (a 16 KiB weight box, an x box)
// stored with the 128-byte swizzle and counted in bytes on the stage's mbarrier; the pipeline
// runs on across tile boundaries, and a CTA-wide barrier a stage frees the buffer refilled.
// Session 12 measured five designs on the 8B matrices, each slower than cuBLAS (the step's
// matrices at 32 rows, fraction of the read ceiling; docs/PERF.md): a grid of whole 64-column
// tiles, two CTAs an SM with three 16 KiB cp.async stages each (35-59%: a partial second wave
// on most shapes); this persistent grid, one CTA an SM, with 16-byte cp.async pieces eight
// stages deep (28-42%); one 1-D bulk copy a row (14-16%: copies too small for the TMA engine);
// 2-D TMA boxes, one CTA an SM, ten stages (27-48%); the same, two CTAs an SM, five stages
// (30-61%, this file). A producer warp refilling each stage as soon as every consumer warp
// released it (an "empty" mbarrier a stage, no CTA-wide barrier) was measured on top of this
// and was slower (28-53%). cuBLAS's kernels for these shapes also use wgmma and multicast x
// across a cluster of two.
// Warp w of eight owns the tile's 16 columns 16w.. (two m16n8k16 n-tiles) for every row tile.
// A tile finished inside one CTA goes straight to the epilogue; a tile cut between CTAs leaves
// each piece's accumulators (and its rows' partial sums of squares, for norm_eps) in the CTA's
// workspace slot, and the last piece to arrive (a counter per tile) sums the pieces in CTA
// order (deterministic) and runs the epilogue.
// The swizzle also spreads a warp's 32-bit fragment reads (row gid, word tig) over 32 banks.
#include "kernels/cuda/gemm_skinny.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>

#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/rope_kv.cuh"
#include "kernels/cuda/smem_opt_in.h"
#include "kernels/cuda/tma.cuh"

namespace lil::cuda {
namespace {

constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kBN = kSkinnyColumns, kBK = kSkinnyK, kStages = 5;
constexpr int kCtasPerSm = 2;
static_assert(kBN == 16 * kWarps, "a warp owns 16 columns");
static_assert(kBK * sizeof(bf16) == 128, "a stage row is one 128-byte swizzle row");
constexpr int kWBytes = kBN * kBK * sizeof(bf16);  // a weight stage: 16 KiB
template <int MT>
__host__ __device__ constexpr int XBytes() { return 16 * MT * kBK * sizeof(bf16); }
// Stages, 1 KiB aligned (the 128-byte swizzle repeats every 1 KiB): the weight boxes, then the
// x boxes, then one mbarrier a stage.
template <int MT>
__host__ __device__ constexpr size_t Smem() { return size_t{kStages} * (kWBytes + XBytes<MT>()) + 1024 + 8 * kStages; }
// Byte offset of element (r, c) in a box of 128-byte rows stored with the 128-byte swizzle:
// 16-byte chunk c / 8 of row r sits at chunk (c / 8) ^ (r % 8).
__device__ __forceinline__ uint32_t Swz(int r, int c) {
  return static_cast<uint32_t>(r * 128 + ((((c >> 3) ^ r) & 7) << 4) + (c & 7) * 2);
}
// A piece of a tile: every thread's accumulators (MT x 2 n-tiles x 4), then the rows' sums of
// squares. Two slots a CTA (its range's first and last tile).
template <int MT>
__host__ __device__ constexpr int SlotFloats() { return kThreads * MT * 8 + 16 * MT; }

// The stream-K partition: CTA c of g takes steps [Start(c), Start(c + 1)) of `work`.
__host__ __device__ inline int64_t Start(int64_t c, int64_t work, int64_t g) { return c * work / g; }

template <int MT>
__device__ __forceinline__ void Epilogue(const GemmParams& p, const float (&acc)[MT][2][4], int32_t n0,
                                         const float* scale) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;
  // Thread holds rows 16 mt + gid (+ 8), columns (c, c + 1), c even: a SwiGLU (gate, up) pair
  // or a RoPE pair as the GEMV's epilogue reads them.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int32_t c = n0 + 16 * warp + 8 * nt + 2 * tig;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int32_t m = 16 * mt + gid + 8 * h;
        if (m >= p.rows || c >= p.out) continue;
        const float v0 = acc[mt][nt][2 * h] * scale[m], v1 = acc[mt][nt][2 * h + 1] * scale[m];
        if (p.rope_epilogue) {
          if (c + 1 < p.out) RopeStorePair(p.rope, m, c, v0, v1);
          continue;
        }
        if (p.swiglu_out != nullptr) {
          if (c + 1 < p.out) {
            p.swiglu_out[static_cast<int64_t>(m) * (p.out / 2) + c / 2] = __float2bfloat16(v0 / (1.0f + __expf(-v0)) * v1);
          }
          continue;
        }
        const int64_t i = static_cast<int64_t>(m) * p.out + c;
        const float y0 = v0 + (p.add_to_y ? p.y[i] : 0.0f);
        p.y[i] = y0;
        if (p.y_bf16 != nullptr) p.y_bf16[i] = __float2bfloat16(y0);
        if (c + 1 < p.out) {
          const float y1 = v1 + (p.add_to_y ? p.y[i + 1] : 0.0f);
          p.y[i + 1] = y1;
          if (p.y_bf16 != nullptr) p.y_bf16[i + 1] = __float2bfloat16(y1);
        }
      }
    }
  }
}

template <int MT>
__global__ void __launch_bounds__(kThreads, kCtasPerSm)
    SkinnyGemmKernel(GemmParams p, SkinnyWorkspace ws, const __grid_constant__ CUtensorMap tw,
                     const __grid_constant__ CUtensorMap tx) {
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  unsigned char* w_st = smem;                                  // [kStages][kBN][128 B], swizzled
  unsigned char* x_st = w_st + kStages * kWBytes;              // [kStages][16 MT][128 B], swizzled
  uint64_t* bars = reinterpret_cast<uint64_t*>(x_st + kStages * XBytes<MT>());
  __shared__ float s_ss[16 * MT], s_scale[16 * MT];
  __shared__ int s_last;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gid = lane >> 2, tig = lane & 3;
  const int32_t nk = p.in / kBK, tiles = (p.out + kBN - 1) / kBN;
  const int64_t work = int64_t{tiles} * nk, g = gridDim.x, cta = blockIdx.x;
  const int64_t a = Start(cta, work, g), n = Start(cta + 1, work, g) - a;
  const bool norm = p.norm_eps > 0.0f;
  if (tid < 16 * MT) s_ss[tid] = 0.0f;
  // Each stage is two boxes (weights: kBN rows x kBK; x: 16 MT rows x kBK; rows past the
  // matrix read as zeros and count as bytes too), copied by the TMA engine and counted in
  // bytes on the stage's mbarrier; thread 0 issues them. Local step i is global step a + i:
  // tile (a + i) / nk, k step (a + i) % nk.
  if (tid < kStages) MbarInit(&bars[tid], 1);
  __syncthreads();
  auto issue_w = [&](int64_t i) {  // thread 0: the byte count, then the weight box
    if (i >= n) return;
    const int64_t s = a + i;
    MbarArriveExpectTx(&bars[i % kStages], kWBytes + XBytes<MT>());
    TmaLoad2d(w_st + (i % kStages) * kWBytes, &tw, static_cast<int32_t>((s % nk) * kBK), static_cast<int32_t>(s / nk) * kBN,
              &bars[i % kStages]);
  };
  auto issue_x = [&](int64_t i) {
    if (i >= n) return;
    TmaLoad2d(x_st + (i % kStages) * XBytes<MT>(), &tx, static_cast<int32_t>(((a + i) % nk) * kBK), 0, &bars[i % kStages]);
  };
  // The first stages' weights go out before the wait (they depend on nothing the previous
  // kernel writes), x after it.
  if (tid == 0) {
    for (int i = 0; i < kStages - 1; ++i) issue_w(i);
  }
  PdlWait();
  PdlTrigger();
  if (tid == 0) {
    for (int i = 0; i < kStages - 1; ++i) issue_x(i);
  }

  float acc[MT][2][4];
  auto zero = [&] {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;
    }
  };
  zero();
  // norm_eps: thread tid sums the squares of row tid % (16 MT), its share of each stage's k.
  constexpr int kParts = kThreads / (16 * MT), kPartLen = kBK / kParts;
  const int ss_row = tid % (16 * MT), ss_part = tid / (16 * MT);
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    MbarWait(&bars[i % kStages], static_cast<uint32_t>((i / kStages) & 1));
    __syncthreads();  // every thread is done with stage i - 1, whose buffers are refilled below
    if (tid == 0) {
      FenceProxyAsync();
      issue_w(i + kStages - 1);
      issue_x(i + kStages - 1);
    }
    const unsigned char* wt = w_st + (i % kStages) * kWBytes;
    const unsigned char* xt = x_st + (i % kStages) * XBytes<MT>();
    if (norm) {
#pragma unroll
      for (int j = 0; j < kPartLen; j += 2) {
        const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(xt + Swz(ss_row, ss_part * kPartLen + j)));
        ss = fmaf(v.x, v.x, fmaf(v.y, v.y, ss));
      }
    }
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int r = 16 * mt + gid, c = 16 * ks + 2 * tig;
        af[mt][0] = *reinterpret_cast<const uint32_t*>(xt + Swz(r, c));
        af[mt][1] = *reinterpret_cast<const uint32_t*>(xt + Swz(r + 8, c));
        af[mt][2] = *reinterpret_cast<const uint32_t*>(xt + Swz(r, c + 8));
        af[mt][3] = *reinterpret_cast<const uint32_t*>(xt + Swz(r + 8, c + 8));
      }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int r = 16 * warp + 8 * nt + gid, c = 16 * ks + 2 * tig;
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(wt + Swz(r, c));
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(wt + Swz(r, c + 8));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) MmaBf16(acc[mt][nt], af[mt], b0, b1);
      }
    }
    // The end of a piece: the tile's last k step or the range's last step.
    const int64_t s = a + i;
    const int32_t tile = static_cast<int32_t>(s / nk);
    if (s % nk != nk - 1 && i != n - 1) continue;
    if (norm) atomicAdd(&s_ss[ss_row], ss);
    ss = 0.0f;
    __syncthreads();
    const int64_t t0 = int64_t{tile} * nk, t1 = t0 + nk;
    if (a > t0 || a + n < t1) {
      // A piece of a tile cut between CTAs: to this CTA's slot (0: its range's first tile,
      // 1: its last), then the last piece to arrive sums them all.
      const int slot_idx = tile == a / nk ? 0 : 1;
      float* slot = ws.partial + (cta * 2 + slot_idx) * SlotFloats<MT>();
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          reinterpret_cast<float4*>(slot)[(mt * 2 + nt) * kThreads + tid] =
              make_float4(acc[mt][nt][0], acc[mt][nt][1], acc[mt][nt][2], acc[mt][nt][3]);
        }
      }
      if (tid < 16 * MT) slot[kThreads * MT * 8 + tid] = s_ss[tid];
      // The CTAs whose ranges meet the tile: first .. last (ascending starts).
      int64_t first = t0 * g / work > 0 ? t0 * g / work - 1 : 0;
      while (Start(first + 1, work, g) <= t0) ++first;
      int64_t last = first;
      while (last + 1 < g && Start(last + 1, work, g) < t1) ++last;
      __threadfence();
      __syncthreads();
      if (tid == 0) s_last = atomicAdd(ws.counters + tile, 1) == static_cast<int>(last - first);
      __syncthreads();
      if (!s_last) {
        zero();
        if (tid < 16 * MT) s_ss[tid] = 0.0f;
        continue;
      }
      __threadfence();
      zero();
      float ss_sum = 0.0f;
      for (int64_t c = first; c <= last; ++c) {
        const int idx = tile == Start(c, work, g) / nk ? 0 : 1;
        const float* sl = ws.partial + (c * 2 + idx) * SlotFloats<MT>();
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
          for (int nt = 0; nt < 2; ++nt) {
            const float4 v = __ldcg(reinterpret_cast<const float4*>(sl) + (mt * 2 + nt) * kThreads + tid);
            acc[mt][nt][0] += v.x;
            acc[mt][nt][1] += v.y;
            acc[mt][nt][2] += v.z;
            acc[mt][nt][3] += v.w;
          }
        }
        if (tid < 16 * MT) ss_sum += __ldcg(sl + kThreads * MT * 8 + tid);
      }
      if (tid == 0) ws.counters[tile] = 0;
      __syncthreads();  // every thread read s_ss above before it is replaced
      if (tid < 16 * MT) s_ss[tid] = ss_sum;
      __syncthreads();
    }
    if (tid < 16 * MT) {
      s_scale[tid] = norm ? rsqrtf(s_ss[tid] / static_cast<float>(p.in) + p.norm_eps) : 1.0f;
      s_ss[tid] = 0.0f;  // for the next piece (only these threads read it)
    }
    __syncthreads();
    Epilogue<MT>(p, acc, tile * kBN, s_scale);
    zero();
  }
}

template <int MT>
cudaError_t Launch(const GemmParams& p, const SkinnyWorkspace& ws, int32_t ctas, cudaStream_t stream) {
  static std::atomic<uint64_t> configured{0};
  if (const cudaError_t e = OptInDynamicSmem(reinterpret_cast<const void*>(SkinnyGemmKernel<MT>), Smem<MT>(), configured);
      e != cudaSuccess) {
    return e;
  }
  CUtensorMap tw, tx;
  if (!TensorMap2d(p.w, p.in, p.out, kBK, kBN, true, &tw) || !TensorMap2d(p.x, p.in, p.rows, kBK, 16 * MT, true, &tx)) {
    return cudaErrorNotSupported;
  }
  return LaunchPdl(SkinnyGemmKernel<MT>, dim3(ctas), kThreads, Smem<MT>(), stream, p, ws, tw, tx);
}

}  // namespace

bool SkinnySupported(const GemmParams& p) {
  return TmaAvailable() && p.x_f32 == nullptr && p.rows >= 1 && p.rows <= kSkinnyMaxRows && p.in > 0 &&
         p.in % kSkinnyK == 0 && p.out > 0 &&
         reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && reinterpret_cast<uintptr_t>(p.w) % 16 == 0 &&
         GemmFusionsSupported(p);
}

int32_t SkinnyCtas(int32_t out, int32_t in, int32_t sms) {
  const int64_t work = int64_t{(out + kBN - 1) / kBN} * (in / kSkinnyK);
  // kCtasPerSm CTAs an SM, each at least 8 steps (a pipeline's worth), within the workspace's
  // slots.
  const int64_t slots = kSkinnyPartialFloats / (2 * SlotFloats<2>());
  return static_cast<int32_t>(std::max<int64_t>(1, std::min<int64_t>({int64_t{kCtasPerSm} * sms, work / 8, slots})));
}

cudaError_t SkinnyGemm(const GemmParams& p, const SkinnyWorkspace& ws, cudaStream_t stream) {
  if (p.rows == 0 || p.out == 0) return cudaSuccess;
  if (!SkinnySupported(p)) return cudaErrorInvalidValue;
  const int32_t ctas = SkinnyCtas(p.out, p.in, CurrentSmCount());
  const int32_t tiles = (p.out + kBN - 1) / kBN;
  const int64_t slot = p.rows <= 16 ? SlotFloats<1>() : SlotFloats<2>();
  // A range cut inside a tile needs the workspace; one CTA never cuts one.
  if (ctas > 1 && (ws.partial == nullptr || ws.counters == nullptr || tiles > ws.num_counters ||
                   int64_t{ctas} * 2 * slot > ws.partial_floats)) {
    return cudaErrorInvalidValue;
  }
  return p.rows <= 16 ? Launch<1>(p, ws, ctas, stream) : Launch<2>(p, ws, ctas, stream);
}

}  // namespace lil::cuda
