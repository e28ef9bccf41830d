// File: kernels/cuda/flash_prefill.cu
// Prefill attention on tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate), flash-style:
// one CTA per (tile of a sequence's query tokens, KV head). The tile's rows are its (token,
// query head of the GQA group) pairs, 64 of them (64 / group tokens), so every K/V tile loaded
// to shared memory serves the whole group: 64 query rows per key read, where the decode
// kernel, run once per query token, re-reads the prefix for every token (docs/PERF.md,
// session 6: 42 ms a layer for 64 x 1,024 tokens). Four warps own 16 rows each. Per 64-key
// tile: S = Q K^T (scaled, causal mask by logical position), an online softmax per row in
// registers, O += P V with P rounded to bf16 as the A operand straight from the S
// accumulators (their layouts line up). K is kept as [key][dim] (rows padded) and V
// transposed as [dim][key] (key pairs swizzled, VtIndex) in shared memory, so the fragment
// loads and the transposing stores avoid bank conflicts.
//
// Fragment layouts of mma.m16n8k16: kernels/cuda/mma.cuh.
#include "kernels/cuda/attention.h"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/pdl.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>

namespace lil::cuda {
namespace {

constexpr int kFlashWarps = 4;
constexpr int kFlashRows = 16 * kFlashWarps;  // query rows per CTA
constexpr int kFlashKeys = 64;                // keys per K/V tile
constexpr float kLog2eFlash = 1.4426950408889634f;

// Element index of V[key][d] in the transposed tile vt_s ([d][key], kFlashKeys + 8 per row),
// its 32-bit words (key pairs) XOR-swizzled by d / 8: a warp storing 16 chunks of one key
// (d = 8c + j) then hits 16 banks instead of one, and the B-fragment reads (8 rows d, 4 key
// pairs) stay conflict-free; a pair stays in one word.
__device__ __forceinline__ int VtIndex(int d, int key) {
  return d * (kFlashKeys + 8) + 2 * ((key >> 1) ^ ((d >> 3) & 15)) + (key & 1);
}

template <int D>
__global__ void __launch_bounds__(kFlashWarps * 32) FlashPrefillKernel(FlashPrefillParams fp) {
  PdlWait();
  PdlTrigger();
  constexpr int kKStride = D + 8, kVStride = kFlashKeys + 8;  // bf16 elements per smem row
  static_assert(D / 8 <= 16 && kFlashKeys / 2 <= 32, "VtIndex's swizzle stays inside a row");
  __shared__ __align__(16) bf16 k_s[kFlashKeys * kKStride];
  __shared__ __align__(16) bf16 vt_s[D * kVStride];
  __shared__ int32_t kpos_s[kFlashKeys];  // logical position of each key, INT_MAX past the list
  __shared__ int32_t max_pos_s;

  const PagedAttentionParams& p = fp.attn;
  const int32_t hkv = p.kv.num_kv_heads, ps = p.kv.page_size, group = p.num_heads / hkv;
  const int32_t kvh = blockIdx.y;
  const int32_t seq = fp.tiles[3 * blockIdx.x], t0 = fp.tiles[3 * blockIdx.x + 1], ntok = fp.tiles[3 * blockIdx.x + 2];
  const int32_t row_id = RowOf(p, seq, kvh);
  const int32_t begin = p.row_indptr[row_id], end = p.row_indptr[row_id + 1];
  const int32_t nkeys = (end - begin) * ps;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3;

  if (warp == 0) {  // the tile's last position: keys past it are masked for every row
    int32_t mp = -1;
    for (int32_t i = lane; i < ntok; i += 32) mp = max(mp, p.token_pos[t0 + i]);
    for (int o = 16; o > 0; o >>= 1) mp = max(mp, __shfl_xor_sync(0xffffffffu, mp, o));
    if (lane == 0) max_pos_s = mp;
  }

  // This thread's two rows (gid and gid + 8 of its warp's 16): their token, head, position.
  int32_t pos[2];
  int64_t off[2];  // element offset of the row's q / out vector
  bool live[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int32_t r = warp * 16 + gid + 8 * h, tok = r / group, head = r % group;
    live[h] = tok < ntok;
    const int32_t t = t0 + (live[h] ? tok : 0);
    pos[h] = live[h] ? p.token_pos[t] : -1;
    off[h] = (static_cast<int64_t>(t) * p.num_heads + kvh * group + head) * D;
  }
  // Q as A fragments, bf16, for every 16-wide slice of head_dim.
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int s = 0; s < D / 16; ++s) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // cols 2tig (regs 0, 1) and 2tig + 8 (regs 2, 3)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float2 v = make_float2(0.0f, 0.0f);
        if (live[h]) v = *reinterpret_cast<const float2*>(p.q + off[h] + 16 * s + 8 * half + 2 * tig);
        qa[s][2 * half + h] = PackBf16x2(v.x, v.y);
      }
    }
  }
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this thread's share of the row sum
  const float scale = p.scale * kLog2eFlash;
  __syncthreads();
  const int32_t max_pos = max_pos_s;

  for (int32_t k0 = 0; k0 < nkeys; k0 += kFlashKeys) {
    // Entries are in ascending logical order (the backend builds dense prefill rows so), so
    // once a tile starts past the last query position every later one does too.
    if (p.row_logical[begin + k0 / ps] * ps + k0 % ps > max_pos) break;
    // Load the K tile ([key][dim]) and the V tile transposed ([dim][key]), 16 bytes a step.
    for (int c = threadIdx.x; c < kFlashKeys * (D / 8); c += kFlashWarps * 32) {
      const int32_t key = c / (D / 8), d0 = (c % (D / 8)) * 8, k = k0 + key;
      uint4 kv4 = make_uint4(0, 0, 0, 0), vv4 = make_uint4(0, 0, 0, 0);
      int32_t kp = INT_MAX;
      if (k < nkeys) {
        const int32_t e = begin + k / ps, slot = k % ps;
        const size_t src = p.kv.Offset(p.row_pages[e], kvh, slot) + d0;
        kv4 = __ldg(reinterpret_cast<const uint4*>(p.kv.k + src));
        vv4 = __ldg(reinterpret_cast<const uint4*>(p.kv.v + src));
        kp = p.row_logical[e] * ps + slot;
      }
      *reinterpret_cast<uint4*>(k_s + key * kKStride + d0) = kv4;
      const bf16* vh = reinterpret_cast<const bf16*>(&vv4);
#pragma unroll
      for (int j = 0; j < 8; ++j) vt_s[VtIndex(d0 + j, key)] = vh[j];
      if (d0 == 0) kpos_s[key] = kp;
    }
    __syncthreads();

    // S = Q K^T for this warp's 16 rows x 64 keys: 8 tiles of 8 keys.
    float sc[kFlashKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kFlashKeys / 8; ++j) {
      sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
      const bf16* krow = k_s + (8 * j + gid) * kKStride + 2 * tig;
#pragma unroll
      for (int s = 0; s < D / 16; ++s) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + 16 * s);
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + 16 * s + 8);
        MmaBf16(sc[j], qa[s], b0, b1);
      }
    }
    // Mask, scale to log2 units, and the online softmax per row (a row's 64 scores sit in
    // the 4 lanes of a quad, 16 each).
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kFlashKeys / 8; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int h = c >> 1;
        const int32_t kp = kpos_s[8 * j + 2 * tig + (c & 1)];
        sc[j][c] = live[h] && kp <= pos[h] ? sc[j][c] * scale : -INFINITY;
        tile_max[h] = fmaxf(tile_max[h], sc[j][c]);
      }
    }
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
      const float mn = fmaxf(m[h], tile_max[h]);
      corr[h] = mn == -INFINITY ? 1.0f : exp2f(m[h] - mn);  // no key yet: nothing to rescale
      m[h] = mn;
      l[h] *= corr[h];
    }
#pragma unroll
    for (int j = 0; j < kFlashKeys / 8; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int h = c >> 1;
        sc[j][c] = m[h] == -INFINITY ? 0.0f : exp2f(sc[j][c] - m[h]);  // masked: exp2(-inf) = 0
        l[h] += sc[j][c];
      }
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= corr[0];
      o[n][1] *= corr[0];
      o[n][2] *= corr[1];
      o[n][3] *= corr[1];
    }
    // O += P V: P's C fragments of key tiles 2s and 2s + 1 are the A fragment of key slice s.
#pragma unroll
    for (int s = 0; s < kFlashKeys / 16; ++s) {
      const uint32_t pa[4] = {PackBf16x2(sc[2 * s][0], sc[2 * s][1]), PackBf16x2(sc[2 * s][2], sc[2 * s][3]),
                              PackBf16x2(sc[2 * s + 1][0], sc[2 * s + 1][1]),
                              PackBf16x2(sc[2 * s + 1][2], sc[2 * s + 1][3])};
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        const uint32_t b0 = *reinterpret_cast<const uint32_t*>(vt_s + VtIndex(8 * n + gid, 16 * s + 2 * tig));
        const uint32_t b1 = *reinterpret_cast<const uint32_t*>(vt_s + VtIndex(8 * n + gid, 16 * s + 8 + 2 * tig));
        MmaBf16(o[n], pa, b0, b1);
      }
    }
    __syncthreads();  // the next tile overwrites k_s / vt_s
  }

  // Row sums across the quad, then out = O / l (a row with no key at all writes zeros).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (!live[h]) continue;
    const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<__nv_bfloat162*>(p.out + off[h] + 8 * n + 2 * tig) =
          __floats2bfloat162_rn(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
    }
  }
}

}  // namespace

bool FlashPrefillSupported(int32_t head_dim, int32_t group) {
  return (head_dim == 64 || head_dim == 128) && (group == 1 || group == 2 || group == 4 || group == 8);
}

std::vector<int32_t> FlashPrefillTiles(const std::vector<int32_t>& token_seq, int32_t group) {
  std::vector<int32_t> tiles;
  const int32_t per_tile = kFlashRows / group;
  for (size_t i = 0; i < token_seq.size();) {
    size_t j = i;
    while (j < token_seq.size() && token_seq[j] == token_seq[i]) ++j;  // one sequence's run
    for (size_t t = i; t < j; t += per_tile) {
      tiles.insert(tiles.end(), {token_seq[i], static_cast<int32_t>(t),
                                 static_cast<int32_t>(std::min<size_t>(per_tile, j - t))});
    }
    i = j;
  }
  return tiles;
}

cudaError_t FlashPrefill(const FlashPrefillParams& fp, cudaStream_t stream) {
  const PagedAttentionParams& p = fp.attn;
  if (fp.num_tiles == 0) return cudaSuccess;
  const int32_t hkv = p.kv.num_kv_heads;
  if (hkv <= 0 || p.num_heads % hkv != 0 || !FlashPrefillSupported(p.kv.head_dim, p.num_heads / hkv) ||
      p.page_mass != nullptr) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(fp.num_tiles, hkv);
  return p.kv.head_dim == 128 ? LaunchPdl(FlashPrefillKernel<128>, grid, kFlashWarps * 32, 0, stream, fp)
                              : LaunchPdl(FlashPrefillKernel<64>, grid, kFlashWarps * 32, 0, stream, fp);
}

}  // namespace lil::cuda
