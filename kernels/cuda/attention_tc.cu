// File: kernels/cuda/attention_tc.cu
// Split-KV decode attention on tensor cores (head_dim 64 or 128, GQA group 1..8). The grid,
// the split and the merge are those of the CUDA-core kernel in attention.cu (one CTA per
// (token, KV head, split), four warps striding over the split's pages, MergeSplits at the
// end); what changes is the inner loop. The CUDA-core kernel issues about 1,100 warp
// instructions per 16-key tile (counted from its code, not profiled: dot products and their
// shuffle reductions for each head), which at batch 16 left it at 0.79 of the read bandwidth
// (docs/PERF.md, session 6). Here a warp's tile is 16 keys of one page: S = Q K^T is
// 2 x D/16 mma.sync m16n8k16 (the group's query heads are the A rows, padded to 16 with
// zeros), O += P V another D/8, about 150 instructions in all (counted the same way). K and V
// tiles reach shared memory through cp.async, S stages per warp (PagedAttentionParams::
// tc_stages, 2 or 3), so the next S - 1 tiles are in flight while this one is multiplied;
// each warp owns its stages, so only __syncwarp orders them (since session 17 the default moves
// tiles through registers instead: kRegs below). Three stages hold 104 KiB a CTA
// at head_dim 128 (two CTAs an SM, 16 tiles in flight) against two stages' 70 KiB (three
// CTAs, 12 tiles). q and P are rounded to bf16 (as in FlashInfer's and flash_prefill.cu's tensor-core
// paths); fp32 accumulation.
//
// Fragment layouts: kernels/cuda/mma.cuh. K tiles stay [key][dim] (B of Q K^T reads a key
// row); V tiles are [key][dim] too and ldmatrix.trans hands out V^T fragments. Rows are padded
// by 16 bytes, which makes both the 32-bit K reads and the ldmatrix row reads free of bank
// conflicts. Measured (session 7): 0.87 / 0.89 of the read ceiling at batch 16, 16k / 32k.
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cp_async.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/smem_opt_in.h"
#include "kernels/cuda/split_merge.cuh"
#include "kernels/cuda/timer.cuh"

#include <cuda_bf16.h>

#include <atomic>
#include <cstdint>

namespace lil::cuda {
namespace {

constexpr int kTileKeys = 16;  // keys per warp tile (one m16n8k16 k-slice of P V)

template <int D>
__host__ __device__ constexpr int RowStride() { return D + 8; }  // bf16 per smem row: 16 bytes of padding
template <int D>
__host__ __device__ constexpr int TileElems() { return kTileKeys * RowStride<D>(); }
// The two ways a tile reaches shared memory (the kernel's kPath: TcTiles as an int).
constexpr int kPathCpAsync = static_cast<int>(TcTiles::kCpAsync), kPathRegs = static_cast<int>(TcTiles::kRegisters);
// W: warps a CTA (kSplitWarps, or kWideWarps for PagedAttentionParams::tc_warps 8).
template <int D, int S, int W>
__host__ __device__ constexpr size_t DynamicSmem() { return sizeof(bf16) * W * S * 2 * TileElems<D>(); }

__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], const bf16* row) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// kRegs (the default since session 17; S must be 2): a tile travels through registers (16-byte
// loads, then shared-memory stores) instead of cp.async, the tile after next's loads in flight
// while this one is multiplied. Nsight Compute (docs/PERF.md, session 17): a warp's cp.async
// copy of 512 contiguous bytes into these padded rows cost the L2 24 sectors where 16 hold the
// data (1.5x the L2 work per DRAM byte, the L2 at ~90% busy, DRAM at 81%); the plain loads cost
// 16 (DRAM at 88%). Batch 16 at 16k / 32k: 0.88 / 0.89 -> 0.94 / 0.94 of the read ceiling.
template <int D, int S, int kPath, int W>
__global__ void __launch_bounds__(W * 32)
    TcSplitAttentionKernel(PagedAttentionParams p) {
  constexpr bool kRegs = kPath == kPathRegs;
  constexpr int G = kSlotGroup;  // state arrays sized for the largest group
  constexpr int kStride = RowStride<D>(), kTile = TileElems<D>(), kChunks = D / 8;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  __shared__ float s_m[W][G], s_l[W][G];

  // Diagnostics (PagedAttentionParams::timeline): thread 0 notes clock64 at each AttnPoint (after
  // storing `dep`, a value the point waits for, so the clock is read once it has arrived) and
  // %globaltimer at its start.
  __shared__ uint64_t s_clock[kAttnTimelinePoints + 1];
  __shared__ uint32_t s_sink;
  const bool timed = p.timeline != nullptr;
  auto stamp = [&](int i, uint32_t dep) {
    if (timed && threadIdx.x == 0) {
      s_sink = dep;
      s_clock[i] = clock64();
    }
  };
  if (timed && threadIdx.x == 0) s_clock[kAttnTimelinePoints] = GlobalTimerNs();
  stamp(kAtStart, 0);

  const int32_t ps = p.kv.page_size;
  SplitRow r;
  if (!LocateSplit(p, r)) return;  // an exited CTA counts as waited and triggered
  const int32_t t = r.t, kvh = r.kvh, group = r.group, cb = r.cb, ce = r.ce;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;
  const int32_t pos = p.token_pos[t];
  // The row's shape, its split and pos are the host's (PagedAttentionParams::rows_static); only
  // Quest's row lists come from the kernel before, so the wait goes just before them.
  if (!p.rows_static) {
    stamp(kAtRowKnown, static_cast<uint32_t>(r.ce));
    PdlWait();
    PdlTrigger();
    stamp(kAtWaited, 0);
  }

  // The tile iterator: (ie, it0) is the next tile to issue, ipage / in_ its entry's page and
  // visible keys (min(page size, pos - first position + 1); <= 0: none), fpage / fn those of
  // the warp's entry after it, loaded one entry ahead.
  auto load_entry = [&](int32_t e, int32_t& page, int32_t& n) {
    page = 0;
    n = 0;
    if (e < ce) {
      page = p.row_pages[e];
      n = min(ps, pos - p.row_logical[e] * ps + 1);
    }
  };
  int32_t ie = cb + warp, it0 = 0, ipage, in_, fpage, fn;
  load_entry(ie, ipage, in_);
  load_entry(ie + W, fpage, fn);
  if (p.rows_static) {
    PrefetchFirstPages<D, W>(p, cb, ce, kvh, pos);
    stamp(kAtRowKnown, static_cast<uint32_t>(ipage + fpage));
    PdlWait();
    PdlTrigger();
    stamp(kAtWaited, 0);
  }

  // This warp's stages: [S][K tile, V tile].
  bf16* stages = reinterpret_cast<bf16*>(tc_smem) + warp * S * 2 * kTile;
  // Moves the iterator past the tile just issued.
  auto next_tile = [&]() {
    it0 += kTileKeys;
    if (it0 >= in_) {
      ie += W;
      it0 = 0;
      ipage = fpage;
      in_ = fn;
      load_entry(ie + W, fpage, fn);
    }
  };
  // Issues the next tile into `stage` (K then V, zero-filled past the visible keys) and
  // returns its visible key count, or -1 when the warp has no tile left; commits a group
  // either way, so "all but the newest group" is always the tile about to be used.
  auto issue = [&](int stage) -> int32_t {
    int32_t visible = -1;
    if (ie < ce) {
      bf16* ks = stages + stage * 2 * kTile;
      bf16* vs = ks + kTile;
      const size_t base = p.kv.Offset(ipage, kvh, 0);
      visible = max(0, min(kTileKeys, in_ - it0));
#pragma unroll
      for (int c = lane; c < kTileKeys * kChunks; c += 32) {
        const int key = c / kChunks, ch = c % kChunks;
        const bool valid = key < visible;
        const size_t off = valid ? base + static_cast<size_t>(it0 + key) * D + ch * 8 : base;
        CpAsync16</*kL2Block=*/true>(ks + key * kStride + ch * 8, p.kv.k + off, valid);
        CpAsync16</*kL2Block=*/true>(vs + key * kStride + ch * 8, p.kv.v + off, valid);
      }
      next_tile();
    }
    CpAsyncCommit();
    return visible;
  };
  // kRegs: the lane's 8 chunks of K and of V of the tile in flight, and their stores.
  uint4 rk[kRegs ? kTileKeys * kChunks / 32 : 1], rv[kRegs ? kTileKeys * kChunks / 32 : 1];
  auto load_regs = [&]() -> int32_t {
    int32_t visible = -1;
    if (ie < ce) {
      const size_t base = p.kv.Offset(ipage, kvh, 0);
      visible = max(0, min(kTileKeys, in_ - it0));
#pragma unroll
      for (int i = 0; i < kTileKeys * kChunks / 32; ++i) {
        const int c = lane + 32 * i, key = c / kChunks, ch = c % kChunks;
        const size_t off = base + static_cast<size_t>(it0 + key) * D + ch * 8;
        rk[i] = key < visible ? __ldcs(reinterpret_cast<const uint4*>(p.kv.k + off)) : make_uint4(0, 0, 0, 0);
        rv[i] = key < visible ? __ldcs(reinterpret_cast<const uint4*>(p.kv.v + off)) : make_uint4(0, 0, 0, 0);
      }
      next_tile();
    }
    return visible;
  };
  auto store_regs = [&](int stage) {
    bf16* ks = stages + stage * 2 * kTile;
    bf16* vs = ks + kTile;
#pragma unroll
    for (int i = 0; i < kTileKeys * kChunks / 32; ++i) {
      const int c = lane + 32 * i, key = c / kChunks, ch = c % kChunks;
      *reinterpret_cast<uint4*>(ks + key * kStride + ch * 8) = rk[i];
      *reinterpret_cast<uint4*>(vs + key * kStride + ch * 8) = rv[i];
    }
  };

  // The first tile's loads go out before q's, so both are in flight together (at one token a
  // step a warp has one or two tiles, and this kernel is a chain of round trips).
  int32_t v0 = -1;  // kRegs: the visible key count of the tile in rk / rv
  int32_t ahead[S - 1];  // cp.async: see the loop below
  if constexpr (kRegs) {
    v0 = load_regs();
  } else {
#pragma unroll
    for (int i = 0; i < S - 1; ++i) ahead[i] = issue(i);
  }

  // Q (pre-scaled to log2 units) as A fragments: row gid is query head gid of the group
  // (rows >= group and all rows gid + 8 are zero padding).
  uint32_t qa[D / 16][4];
  {
    const float qs = p.scale * kLog2e;
    const bool live = gid < group;
    const float* qrow = p.q + (static_cast<int64_t>(t) * p.num_heads + kvh * group + (live ? gid : 0)) * D;
#pragma unroll
    for (int s = 0; s < D / 16; ++s) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float2 v = make_float2(0.0f, 0.0f);
        if (live) v = *reinterpret_cast<const float2*>(qrow + 16 * s + 8 * half + 2 * tig);
        qa[s][2 * half] = PackBf16x2(v.x * qs, v.y * qs);
        qa[s][2 * half + 1] = 0u;
      }
    }
  }
  stamp(kAtQReady, qa[D / 16 - 1][2]);
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // row gid's running max (log2 units) and this lane's share of the sum

  // One tile's S = Q K^T, online softmax and O += P V from stage st (v visible keys, > 0).
  auto compute = [&](int st, int32_t v) {
    const bf16* ks = stages + st * 2 * kTile;
    const bf16* vs = ks + kTile;
    // The 32-bit pair (row, col) of a K tile; col even.
    const auto kpair = [&](int row, int col) -> uint32_t {
      return *reinterpret_cast<const uint32_t*>(ks + row * kStride + col);
    };
    float sc[2][4];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll
      for (int s = 0; s < D / 16; ++s) {
        MmaBf16(sc[j], qa[s], kpair(8 * j + gid, 16 * s + 2 * tig), kpair(8 * j + gid, 16 * s + 8 + 2 * tig));
      }
    }
    float tmax = -INFINITY;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        if (8 * j + 2 * tig + c >= v) sc[j][c] = -INFINITY;
        tmax = fmaxf(tmax, sc[j][c]);
      }
    }
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
    const float mn = fmaxf(m, tmax);  // finite: key 0 of the tile is visible
    const float corr = exp2f(m - mn);
    m = mn;
    l *= corr;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        sc[j][c] = exp2f(sc[j][c] - mn);
        l += sc[j][c];
      }
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= corr;
      o[n][1] *= corr;
    }
    // P (row gid; rows gid + 8 zero) as the A fragment of the tile's one 16-key slice.
    const uint32_t pa[4] = {PackBf16x2(sc[0][0], sc[0][1]), 0u, PackBf16x2(sc[1][0], sc[1][1]), 0u};
    // V^T fragments: lane supplies row (key) lane % 8 + 8 ((lane / 8) & 1) at dims 16u + 8 (lane / 16).
    const int vr = (lane & 7) + 8 * ((lane >> 3) & 1);
#pragma unroll
    for (int u = 0; u < D / 16; ++u) {
      uint32_t b[4];
      LdMatrixX4Trans(b, vs + vr * kStride + 16 * u + 8 * (lane >> 4));
      MmaBf16(o[2 * u], pa, b[0], b[1]);
      MmaBf16(o[2 * u + 1], pa, b[2], b[3]);
    }
  };

  if constexpr (kRegs) {
    // Tile k is in stage k % 2; tile k + 1 waits in registers until its stage is free, tile
    // k + 2's loads go out before tile k is multiplied.
    if (v0 >= 0) store_regs(0);
    stamp(kAtFirstTile, rk[0].x ^ rv[0].x);
    int32_t v1 = load_regs();
    for (int k = 0; v0 >= 0; ++k) {
      __syncwarp();  // tile k's stores are visible to the warp; tile k - 1's stage is free
      if (v1 >= 0) store_regs((k + 1) & 1);
      const int32_t v = v0;
      v0 = v1;
      v1 = load_regs();
      if (v > 0) compute(k & 1, v);
    }
  } else {
    // Tile k lives in stage k % S; ahead[i] is the visible key count of tile k + i (issued,
    // not yet used; -1: none); "all but the newest S - 1 commit groups" is tile k.
    for (int k = 0; ahead[0] >= 0; ++k) {
      const int st = k % S;
      const int32_t v = ahead[0];
      __syncwarp();  // every lane is done reading the stage the next issue overwrites
#pragma unroll
      for (int i = 0; i + 1 < S - 1; ++i) ahead[i] = ahead[i + 1];
      ahead[S - 2] = issue((k + S - 1) % S);
      CpAsyncWait<S - 1>();
      __syncwarp();  // the tile landed for every lane of the warp
      if (v > 0) compute(st, v);
    }
  }
  CpAsyncWaitAll();  // only empty groups can remain; nothing may land after the aliasing below
  stamp(kAtLoopDone, __float_as_uint(o[0][0]));

  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  __syncthreads();  // every warp is out of its stages: s_acc below reuses them
  float* s_acc = reinterpret_cast<float*>(tc_smem);  // [W][G][D]
  if (gid < group) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      s_acc[(warp * G + gid) * D + 8 * n + 2 * tig] = o[n][0];
      s_acc[(warp * G + gid) * D + 8 * n + 2 * tig + 1] = o[n][1];
    }
    if (tig == 0) {
      s_m[warp][gid] = m;
      s_l[warp][gid] = l;
    }
  }
  __syncthreads();
  stamp(kAtWarpsDone, 0);
  const bool merged = MergeSplits<D, G, W>(p, r, s_acc, s_m, s_l, timed ? s_clock : nullptr);
  if (timed && threadIdx.x == 0) {
    s_clock[kAtEnd] = clock64();
    uint64_t* out = p.timeline + (static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x) * kAttnTimelineWords;
    for (int i = 0; i <= kAttnTimelinePoints; ++i) out[i] = s_clock[i];
    out[kAttnTimelinePoints + 1] = GlobalTimerNs();
    out[kAttnTimelinePoints + 2] = static_cast<uint64_t>(r.nsplit);
    out[kAttnTimelinePoints + 3] = merged ? 1u : 0u;
    out[kAttnTimelinePoints + 4] = SmId();
  }
}

static_assert(sizeof(float) * kSplitWarps * kSlotGroup * 128 <= DynamicSmem<128, 2, kSplitWarps>(), "s_acc fits");
static_assert(sizeof(float) * kSplitWarps * kSlotGroup * 64 <= DynamicSmem<64, 2, kSplitWarps>(), "s_acc fits");
static_assert(sizeof(float) * kWideWarps * kSlotGroup * 128 <= DynamicSmem<128, 2, kWideWarps>(), "s_acc fits");
static_assert(sizeof(float) * kWideWarps * kSlotGroup * 64 <= DynamicSmem<64, 2, kWideWarps>(), "s_acc fits");

template <int D, int S, int kPath, int W>
const void* Kernel() {
  return reinterpret_cast<const void*>(TcSplitAttentionKernel<D, S, kPath, W>);
}

// The >48 KB opt-in, once per device and kernel (smem_opt_in.h).
template <int D, int S, int kPath, int W>
cudaError_t AllowSmem() {
  static std::atomic<uint64_t> configured{0};
  return OptInDynamicSmem(Kernel<D, S, kPath, W>(), DynamicSmem<D, S, W>(), configured);
}

template <int D, int S, int kPath>
int32_t ResidentPerSm() {
  int per_sm = 0;
  if (AllowSmem<D, S, kPath, kSplitWarps>() != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel<D, S, kPath, kSplitWarps>(), kSplitWarps * 32,
                                                    DynamicSmem<D, S, kSplitWarps>()) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return per_sm;
}

template <int D, int S, int kPath, int W = kSplitWarps>
cudaError_t Launch(const PagedAttentionParams& p, cudaStream_t stream) {
  if (cudaError_t e = AllowSmem<D, S, kPath, W>(); e != cudaSuccess) return e;
  const dim3 grid(p.num_tokens * p.kv.num_kv_heads, p.min_chunk_entries > 0 ? p.max_splits : 1);
  return LaunchPdl(TcSplitAttentionKernel<D, S, kPath, W>, grid, W * 32, DynamicSmem<D, S, W>(), stream, p);
}

// p.tc_tiles' kernel (TcTiles); the register path has two stages whatever tc_stages says, and
// takes tc_warps 8 (the cp.async path always 4).
template <int D>
cudaError_t LaunchFor(const PagedAttentionParams& p, cudaStream_t stream) {
  switch (p.tc_tiles) {
    case TcTiles::kCpAsync:
      return p.tc_stages == 3 ? Launch<D, 3, kPathCpAsync>(p, stream) : Launch<D, 2, kPathCpAsync>(p, stream);
    case TcTiles::kRegisters:
      return p.tc_warps == kWideWarps ? Launch<D, 2, kPathRegs, kWideWarps>(p, stream) : Launch<D, 2, kPathRegs>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

bool TcDecodeSupported(int32_t head_dim, int32_t group) {
  return (head_dim == 64 || head_dim == 128) && group >= 1 && group <= kSlotGroup;
}

int32_t TcResidentPerSm(int32_t head_dim, TcTiles tiles, int32_t stages) {
  if (tiles == TcTiles::kRegisters) {  // two stages of its own
    return head_dim == 128 ? ResidentPerSm<128, 2, kPathRegs>() : ResidentPerSm<64, 2, kPathRegs>();
  }
  if (head_dim == 128) return stages == 3 ? ResidentPerSm<128, 3, kPathCpAsync>() : ResidentPerSm<128, 2, kPathCpAsync>();
  return stages == 3 ? ResidentPerSm<64, 3, kPathCpAsync>() : ResidentPerSm<64, 2, kPathCpAsync>();
}

cudaError_t TcSplitAttention(const PagedAttentionParams& p, cudaStream_t stream) {
  if ((p.tc_stages != 2 && p.tc_stages != 3) || (p.tc_warps != kSplitWarps && p.tc_warps != kWideWarps)) {
    return cudaErrorInvalidValue;
  }
  return p.kv.head_dim == 128 ? LaunchFor<128>(p, stream) : LaunchFor<64>(p, stream);
}

}  // namespace lil::cuda
