// File: kernels/cuda/gemm_stream.cu
// The streaming GEMM (gemm_stream.h): weights straight into mma.sync B fragments, x staged in
// shared memory, optional split-K summed by the last CTA of a column block.
#include "kernels/cuda/gemm_stream.h"

#include <cuda_bf16.h>

#include <atomic>

#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/smem_opt_in.h"

namespace lil::cuda {
namespace {

constexpr int kWarps = 8, kThreads = 32 * kWarps;
// Shared memory a CTA may take and still leave room for a second one on the SM.
constexpr size_t kTwoCtaSmem = 113 * 1024;
// The opt-in limit (227 KiB on sm_90) less room for the kernel's static shared memory.
constexpr size_t kMaxSmem = 226 * 1024;

// x's slice is stored [16 MT rows][stride] bf16. Lanes 0-7 of a 16-byte load read rows gid 0
// and 1, 64 bytes each: a row stride of 64 bytes modulo 128 puts them on different banks.
__host__ __device__ constexpr int32_t XStride(int32_t ks) { return ks % 64 == 0 ? ks + 32 : ks; }
__host__ __device__ constexpr size_t SmemBytes(int mt, int32_t ks) {
  return sizeof(bf16) * 16 * static_cast<size_t>(mt) * XStride(ks);
}

// The CTA's column block and k split: consecutive CTAs take consecutive splits of one block, so
// the CTAs running at once read whole weight rows between them (DRAM pages opened once).
struct StreamPlace {
  int32_t block, split, nsplit;
};
__device__ __forceinline__ StreamPlace Place(int32_t nsplit) {
  return {static_cast<int32_t>(blockIdx.x) / nsplit, static_cast<int32_t>(blockIdx.x) % nsplit, nsplit};
}

// KW false: warp w owns R n-tiles of its own (the CTA's block is 64 R columns) over the CTA's
// whole k slice. KW true: every warp owns the same R n-tiles (a block of 8 R columns) over an
// eighth of the slice, and the CTA sums its warps' accumulators in shared memory, so at any
// moment a CTA reads 8 pieces of each of its rows instead of 1.
template <int MT, int R, int U, bool KW>
__global__ void __launch_bounds__(kThreads, 2)
    StreamGemmKernel(const bf16* __restrict__ x, const bf16* __restrict__ w, float* __restrict__ y, int32_t rows,
                     int32_t in, int32_t out, int32_t ks, int32_t nsplit_arg, float* partial, int32_t* counters) {
  extern __shared__ __align__(16) unsigned char stream_smem[];
  bf16* xs = reinterpret_cast<bf16*>(stream_smem);
  __shared__ int s_last;
  constexpr int32_t kBlockCols = KW ? 8 * R : 64 * R;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;
  const StreamPlace pl = Place(nsplit_arg);
  const int32_t k0 = pl.split * ks, stride = XStride(ks);
  // This warp's k range inside the slice ([kw, kw + nc chunks)) and its first column.
  const int32_t kw = KW ? warp * (ks / kWarps) : 0, nc = (KW ? ks / kWarps : ks) / kStreamChunk;
  const int32_t n0 = pl.block * kBlockCols + (KW ? 0 : warp * 8 * R);

  // Lane (gid, tig) reads weight row n0 + 8j + gid, k 8tig..8tig+7 of each chunk.
  const bf16* wr[R];
  bool live[R];
#pragma unroll
  for (int j = 0; j < R; ++j) {
    live[j] = n0 + 8 * j < out;  // out is a multiple of 8: a tile is all in or all out
    wr[j] = w + static_cast<int64_t>(live[j] ? n0 + 8 * j + gid : 0) * in + k0 + kw + 8 * tig;
  }
  uint4 buf[U][R];
  auto load = [&](int u, int32_t c) {
#pragma unroll
    for (int j = 0; j < R; ++j) {
      buf[u][j] = live[j] ? __ldcs(reinterpret_cast<const uint4*>(wr[j] + c * kStreamChunk)) : make_uint4(0, 0, 0, 0);
    }
  };
  // The weights depend on no kernel: the first U chunks go out before the wait.
#pragma unroll
  for (int u = 0; u < U; ++u) {
    if (u < nc) load(u, u);
  }
  PdlWait();
  PdlTrigger();

  // x's slice (rows past `rows` zero-filled) into shared memory.
  const int32_t vecs = ks / 8;
  for (int32_t i = threadIdx.x; i < 16 * MT * vecs; i += kThreads) {
    const int32_t r = i / vecs, v = i % vecs;
    const bool valid = r < rows;
    CpAsync16(xs + r * stride + v * 8, x + static_cast<int64_t>(valid ? r : 0) * in + k0 + v * 8, valid);
  }
  CpAsyncCommit();
  CpAsyncWaitAll();
  __syncthreads();

  float acc[MT][R][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int j = 0; j < R; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mt][j][e] = 0.0f;
    }
  }
  for (int32_t c0 = 0; c0 < nc; c0 += U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int32_t c = c0 + u;
      if (c < nc) {
        const bf16* xc = xs + kw + c * kStreamChunk + 8 * tig;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const uint4 xa = *reinterpret_cast<const uint4*>(xc + (16 * mt + gid) * stride);
          const uint4 xb = *reinterpret_cast<const uint4*>(xc + (16 * mt + gid + 8) * stride);
          const uint32_t a0[4] = {xa.x, xb.x, xa.y, xb.y}, a1[4] = {xa.z, xb.z, xa.w, xb.w};
#pragma unroll
          for (int j = 0; j < R; ++j) {
            MmaBf16(acc[mt][j], a0, buf[u][j].x, buf[u][j].y);
            MmaBf16(acc[mt][j], a1, buf[u][j].z, buf[u][j].w);
          }
        }
        if (c + U < nc) load(u, c + U);
      }
    }
  }

  if constexpr (KW) {
    // The warps' accumulators, summed in warp order, into warp 0's registers (x's slice is
    // done with: its space holds them, MT R 4 KiB <= x's 32 MT stride bytes).
    float* red = reinterpret_cast<float*>(stream_smem);
    constexpr int kE = MT * R * 4;
    __syncthreads();
    if (warp > 0) {
#pragma unroll
      for (int e = 0; e < kE; ++e) red[((warp - 1) * kE + e) * 32 + lane] = (&acc[0][0][0])[e];
    }
    __syncthreads();
    if (warp > 0) return;
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      float v = (&acc[0][0][0])[e];
      for (int ww = 1; ww < kWarps; ++ww) v += red[((ww - 1) * kE + e) * 32 + lane];
      (&acc[0][0][0])[e] = v;
    }
  }

  // acc[mt][j]: rows 16mt + gid (elements 0, 1) and + 8 (2, 3), columns n0 + 8j + 2tig, + 1.
  float* dst = pl.nsplit == 1 ? y : partial + static_cast<int64_t>(pl.split) * rows * out;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int j = 0; j < R; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int32_t m = 16 * mt + gid + 8 * h;
        if (live[j] && m < rows) {
          *reinterpret_cast<float2*>(dst + static_cast<int64_t>(m) * out + n0 + 8 * j + 2 * tig) =
              make_float2(acc[mt][j][2 * h], acc[mt][j][2 * h + 1]);
        }
      }
    }
  }
  if (pl.nsplit == 1) return;
  // The threads still running (all, or warp 0 with KW) fence and count.
  constexpr int kLive = KW ? 32 : kThreads;
  __threadfence();
  if constexpr (KW) {
    __syncwarp();
  } else {
    __syncthreads();
  }
  if (threadIdx.x == 0) s_last = atomicAdd(counters + pl.block, 1) == pl.nsplit - 1;
  if constexpr (KW) {
    __syncwarp();
  } else {
    __syncthreads();
  }
  if (!s_last) return;
  __threadfence();
  // The last CTA of the block: y = the splits' partials summed in split order.
  constexpr int kQuads = kBlockCols / 4;  // float4s of a row of the block
  const int32_t nb = pl.block * kBlockCols;
  for (int32_t i = threadIdx.x; i < rows * kQuads; i += kLive) {
    const int32_t m = i / kQuads, n = nb + 4 * (i % kQuads);
    if (n >= out) continue;
    float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int32_t sp = 0; sp < pl.nsplit; ++sp) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(partial + (static_cast<int64_t>(sp) * rows + m) * out + n));
      s.x += v.x;
      s.y += v.y;
      s.z += v.z;
      s.w += v.w;
    }
    *reinterpret_cast<float4*>(y + static_cast<int64_t>(m) * out + n) = s;
  }
  if (threadIdx.x == 0) counters[pl.block] = 0;
}

int32_t BlockCols(const StreamConfig& c) { return c.kw ? 8 * c.r : 64 * c.r; }

template <int MT, int R, int U, bool KW>
cudaError_t Launch(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws, cudaStream_t stream) {
  static std::atomic<uint64_t> configured{0};
  const int32_t ks = p.in / c.splits;
  const size_t smem = SmemBytes(MT, ks);
  if (const cudaError_t e = OptInDynamicSmem(reinterpret_cast<const void*>(StreamGemmKernel<MT, R, U, KW>), kMaxSmem,
                                             configured);
      e != cudaSuccess) {
    return e;
  }
  const int32_t blocks = (p.out + BlockCols(c) - 1) / BlockCols(c);
  return LaunchPdl(StreamGemmKernel<MT, R, U, KW>, dim3(blocks * c.splits), kThreads, smem, stream, p.x, p.w, p.y,
                   p.rows, p.in, p.out, ks, c.splits, ws.partial, ws.counters);
}

template <int MT, bool KW>
cudaError_t LaunchRu(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws, cudaStream_t stream) {
  if (c.r == 1 && c.u == 8) return Launch<MT, 1, 8, KW>(p, c, ws, stream);
  if (c.r == 2 && c.u == 4) return Launch<MT, 2, 4, KW>(p, c, ws, stream);
  if (c.r == 2 && c.u == 8) return Launch<MT, 2, 8, KW>(p, c, ws, stream);
  return cudaErrorInvalidValue;
}

template <int MT>
cudaError_t LaunchMt(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws, cudaStream_t stream) {
  return c.kw ? LaunchRu<MT, true>(p, c, ws, stream) : LaunchRu<MT, false>(p, c, ws, stream);
}

bool Aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

std::string StreamConfigName(const StreamConfig& c) {
  return std::string("stream ") + (c.kw ? "kw " : "") + "r" + std::to_string(c.r) + " u" + std::to_string(c.u) + " s" +
         std::to_string(c.splits);
}

bool StreamGemmSupported(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws) {
  const bool shape = !p.fused() && p.rows >= 1 && p.rows <= kStreamMaxRows && p.out > 0 && p.out % 8 == 0 &&
                     c.splits >= 1 && c.splits <= 64 && p.in > 0 &&
                     p.in % (c.splits * kStreamChunk * (c.kw ? kWarps : 1)) == 0 &&
                     ((c.r == 1 && c.u == 8) || (c.r == 2 && (c.u == 4 || c.u == 8))) && Aligned16(p.x) &&
                     Aligned16(p.w) && Aligned16(p.y);
  if (!shape || SmemBytes((p.rows + 15) / 16, p.in / c.splits) > kMaxSmem) return false;
  if (c.splits == 1) return true;
  const int32_t blocks = (p.out + BlockCols(c) - 1) / BlockCols(c);
  return ws.partial != nullptr && ws.counters != nullptr && blocks <= ws.num_counters &&
         int64_t{c.splits} * p.rows * p.out <= ws.partial_floats;
}

std::vector<StreamConfig> StreamGemmCandidates(const GemmParams& p, const StreamWorkspace& ws, int32_t sms) {
  std::vector<StreamConfig> out;
  for (bool kw : {false, true}) {
    for (const auto& [r, u] : {std::pair{1, 8}, std::pair{2, 4}, std::pair{2, 8}}) {
      for (int32_t splits : {1, 2, 4, 8, 16}) {
        const StreamConfig c{r, u, splits, kw};
        if (!StreamGemmSupported(p, c, ws) || SmemBytes((p.rows + 15) / 16, p.in / splits) > kTwoCtaSmem) continue;
        const int64_t ctas = int64_t{(p.out + BlockCols(c) - 1) / BlockCols(c)} * splits;
        if (ctas >= sms && ctas <= int64_t{32} * sms) out.push_back(c);
      }
    }
  }
  return out;
}

cudaError_t StreamGemm(const GemmParams& p, const StreamConfig& c, const StreamWorkspace& ws, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!StreamGemmSupported(p, c, ws)) return cudaErrorInvalidValue;
  switch ((p.rows + 15) / 16) {
    case 1: return LaunchMt<1>(p, c, ws, stream);
    case 2: return LaunchMt<2>(p, c, ws, stream);
    case 3: return LaunchMt<3>(p, c, ws, stream);
    default: return LaunchMt<4>(p, c, ws, stream);
  }
}

}  // namespace lil::cuda
