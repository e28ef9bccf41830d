// File: kernels/cuda/attention.cu
// Two paged attention kernels. The vectorized split-KV kernel (below) serves head_dim 8..128
// (powers of two) without h2o mass. The scalar kernel (first) serves the rest: flash-style online softmax per warp over a strided share of the page
// list, then a shared-memory merge of the warps' (max, sum, acc) states. Each lane holds
// head_dim/32 elements of q, k, v (kPerLane), and all G query heads of the KV head, so every
// key and value is read once per CTA.
#include "kernels/cuda/attention.h"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/split_merge.cuh"

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace lil::cuda {
namespace {

constexpr int kWarps = kSplitWarps;
constexpr int kMaxGroup = 8;

__device__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int kPerLane>
__global__ void __launch_bounds__(kWarps * 32) PagedAttentionKernel(PagedAttentionParams p) {
  PdlWait();
  PdlTrigger();
  __shared__ float s_max[kWarps][kMaxGroup], s_sum[kWarps][kMaxGroup];
  __shared__ float s_acc[kMaxGroup][kPerLane * 32];
  __shared__ float s_final_max[kMaxGroup], s_final_sum[kMaxGroup];
  const int32_t t = blockIdx.x, kvh = blockIdx.y;
  const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const PagedKvViewBf16& kv = p.kv;
  const int32_t d = kv.head_dim, ps = kv.page_size;
  const int32_t group = p.num_heads / kv.num_kv_heads;
  const int32_t row = RowOf(p, p.token_seq[t], kvh);
  const int32_t begin = p.row_indptr[row], end = p.row_indptr[row + 1];
  const int32_t pos = p.token_pos[t];

  float q[kMaxGroup][kPerLane], acc[kMaxGroup][kPerLane], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int i = lane + 32 * j;
      const bool live = g < group && i < d;
      q[g][j] = live ? p.q[(static_cast<int64_t>(t) * p.num_heads + kvh * group + g) * d + i] * p.scale : 0.0f;
      acc[g][j] = 0.0f;
    }
  }
  for (int32_t e = begin + warp; e < end; e += kWarps) {
    const int32_t n = min(ps, pos - p.row_logical[e] * ps + 1);
    const bf16* kp = kv.k + kv.Offset(p.row_pages[e], kvh, 0);
    const bf16* vp = kv.v + kv.Offset(p.row_pages[e], kvh, 0);
    for (int32_t s = 0; s < n; ++s) {
      float kr[kPerLane], vr[kPerLane];
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const int i = lane + 32 * j;
        kr[j] = i < d ? __bfloat162float(kp[s * d + i]) : 0.0f;
        vr[j] = i < d ? __bfloat162float(vp[s * d + i]) : 0.0f;
      }
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g >= group) break;
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) dot += q[g][j] * kr[j];
        dot = WarpSum(dot);
        const float nm = fmaxf(m[g], dot);
        const float corr = __expf(m[g] - nm), w = __expf(dot - nm);
        l[g] = l[g] * corr + w;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) acc[g][j] = acc[g][j] * corr + w * vr[j];
        m[g] = nm;
      }
    }
  }
  // Merge the warps: global max per head, then rescaled sums into shared memory.
  if (lane == 0) {
    for (int g = 0; g < group; ++g) {
      s_max[warp][g] = m[g];
      s_sum[warp][g] = l[g];
    }
  }
  for (int idx = threadIdx.x; idx < kMaxGroup * kPerLane * 32; idx += blockDim.x) (&s_acc[0][0])[idx] = 0.0f;
  __syncthreads();
  if (threadIdx.x < group) {
    float mx = -FLT_MAX, sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, s_max[w][threadIdx.x]);
    for (int w = 0; w < kWarps; ++w) sum += s_sum[w][threadIdx.x] * __expf(s_max[w][threadIdx.x] - mx);
    s_final_max[threadIdx.x] = mx;
    s_final_sum[threadIdx.x] = sum;
  }
  __syncthreads();
  for (int g = 0; g < group; ++g) {
    const float f = l[g] > 0.0f ? __expf(m[g] - s_final_max[g]) : 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) atomicAdd(&s_acc[g][lane + 32 * j], acc[g][j] * f);
  }
  __syncthreads();
  for (int g = 0; g < group; ++g) {
    const float sum = s_final_sum[g];
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // nothing visible: zeros, like the CPU
    bf16* out = p.out + (static_cast<int64_t>(t) * p.num_heads + kvh * group + g) * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) out[i] = __float2bfloat16(s_acc[g][i] * inv);
  }
  if (p.page_mass == nullptr) return;
  // Second pass for h2o: the normalized probability mass on each entry, summed over heads.
  for (int32_t e = begin + warp; e < end; e += kWarps) {
    const int32_t n = min(ps, pos - p.row_logical[e] * ps + 1);
    if (n <= 0) continue;
    const bf16* kp = kv.k + kv.Offset(p.row_pages[e], kvh, 0);
    float mass = 0.0f;
    for (int32_t s = 0; s < n; ++s) {
      float kr[kPerLane];
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const int i = lane + 32 * j;
        kr[j] = i < d ? __bfloat162float(kp[s * d + i]) : 0.0f;
      }
      for (int g = 0; g < group; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) dot += q[g][j] * kr[j];
        dot = WarpSum(dot);
        mass += __expf(dot - s_final_max[g]) / s_final_sum[g];
      }
    }
    if (lane == 0) atomicAdd(p.page_mass + e, mass);
  }
}

// ---- Vectorized split-KV kernel ------------------------------------------------------------
// Lane layout: kLpt = D / 8 lanes cover one token's head_dim with 16-byte loads (8 bf16 each),
// so a warp reads kTpi = 32 / kLpt tokens per load instruction and kU of those per tile. Keys
// and values of a tile are loaded together (up to 16 x 16 B in flight per lane), scores are
// reduced over the kLpt lanes of a token, the softmax state is kept per warp (all lanes hold
// the same m and l; acc is per lane: its token lane's share of its 8 dims). Scores are in the
// log2 domain (q pre-scaled by scale * log2 e) so exp2f is the only transcendental.
// Chunks hold at least 64 tokens (four 16-token pages: one per warp). FlashInfer's floor is
// 128; with the L2 prefetch a warp's second page costs little, but at 1k context a 64-token
// floor still halves each CTA's serial work (session 7 measured both: docs/PERF.md).
constexpr int kMinChunkTokens = 64;
constexpr int kLongChunkTokens = 4096;  // ChooseSplit's long rows: chunks of at least this many
constexpr int kLongRowMaxSplits = 4;    // ... when the wave rule asks for this few splits

__device__ __forceinline__ void Bf16x8ToFloat(const uint4& u, float* f) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

template <int D, int G>
__global__ void __launch_bounds__(kWarps * 32) SplitAttentionKernel(PagedAttentionParams p) {
  // The row's shape, its split and pos are the host's, read before the wait (PDL); with
  // rows_static the row lists are too, so this CTA also reads them and starts its first pages'
  // L2 prefetches before it: at short contexts those round trips are most of the kernel's time.
  constexpr int kLpt = D / 8, kTpi = 32 / kLpt;
  constexpr int kTileTokens = G >= 8 ? 8 : 16;
  constexpr int kU = kTileTokens / kTpi > 0 ? kTileTokens / kTpi : 1;
  constexpr int kTile = kTpi * kU;
  __shared__ float s_m[kWarps][G], s_l[kWarps][G];
  __shared__ float s_acc[kWarps][G][D];

  const int32_t ps = p.kv.page_size;
  SplitRow r;
  if (!LocateSplit(p, r)) return;  // an exited CTA counts as waited and triggered
  const int32_t t = r.t, kvh = r.kvh, group = r.group, cb = r.cb, ce = r.ce;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane % kLpt, tl = lane / kLpt;
  const int32_t pos = p.token_pos[t];
  if (!p.rows_static) {  // Quest's row lists come from the kernel before
    PdlWait();
    PdlTrigger();
  }
  // With rows_static each warp's first two pages go to the L2 before the wait, while the
  // previous kernel still runs. (Prefetching further pages inside the loop, and keeping the
  // next page id in registers, were measured slower at batch 16: more registers, and the L2
  // holding too many pages in flight; session 7, docs/PERF.md.)
  if (p.rows_static) {
    PrefetchFirstPages<D>(p, cb, ce, kvh, pos);
    PdlWait();
    PdlTrigger();
  }

  float q[G][8], acc[G][8], m[G], l[G];
  const float qs = p.scale * kLog2e;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
    const bool live = g < group;
    const float4* qp = reinterpret_cast<const float4*>(
        p.q + (static_cast<int64_t>(t) * p.num_heads + kvh * group + (live ? g : 0)) * D + sub * 8);
    const float4 a = live ? qp[0] : make_float4(0, 0, 0, 0), b = live ? qp[1] : make_float4(0, 0, 0, 0);
    q[g][0] = a.x * qs; q[g][1] = a.y * qs; q[g][2] = a.z * qs; q[g][3] = a.w * qs;
    q[g][4] = b.x * qs; q[g][5] = b.y * qs; q[g][6] = b.z * qs; q[g][7] = b.w * qs;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[g][j] = 0.0f;
  }

  for (int32_t e = cb + warp; e < ce; e += kWarps) {
    const int32_t n = min(ps, pos - p.row_logical[e] * ps + 1);
    if (n <= 0) continue;
    const size_t base = p.kv.Offset(p.row_pages[e], kvh, 0) + sub * 8;
    const bf16* kp = p.kv.k + base;
    const bf16* vp = p.kv.v + base;
    for (int32_t t0 = 0; t0 < n; t0 += kTile) {
      uint4 kr[kU], vr[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int32_t tok = t0 + u * kTpi + tl;
        if (tok < n) {
          kr[u] = __ldg(reinterpret_cast<const uint4*>(kp + static_cast<size_t>(tok) * D));
          vr[u] = __ldg(reinterpret_cast<const uint4*>(vp + static_cast<size_t>(tok) * D));
        } else {
          kr[u] = make_uint4(0, 0, 0, 0);
          vr[u] = make_uint4(0, 0, 0, 0);
        }
      }
      float s[G][kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        float kf[8];
        Bf16x8ToFloat(kr[u], kf);
        const bool valid = t0 + u * kTpi + tl < n;
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float dot = 0.0f;
#pragma unroll
          for (int j = 0; j < 8; ++j) dot = fmaf(q[g][j], kf[j], dot);
#pragma unroll
          for (int o = kLpt / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
          s[g][u] = valid ? dot : -INFINITY;
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float mx = s[g][0];
#pragma unroll
        for (int u = 1; u < kU; ++u) mx = fmaxf(mx, s[g][u]);
#pragma unroll
        for (int o = kLpt; o < 32; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float mn = fmaxf(m[g], mx);  // finite: token t0 of the tile is valid
        const float corr = exp2f(m[g] - mn);
        float sum = 0.0f;
#pragma unroll
        for (int u = 0; u < kU; ++u) {
          s[g][u] = exp2f(s[g][u] - mn);  // the score becomes its probability weight
          sum += s[g][u];
        }
#pragma unroll
        for (int o = kLpt; o < 32; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        l[g] = l[g] * corr + sum;
        m[g] = mn;
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[g][j] *= corr;
      }
      // Each value vector is converted once and used by every head of the group.
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        float vf[8];
        Bf16x8ToFloat(vr[u], vf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[g][j] = fmaf(s[g][u], vf[j], acc[g][j]);
        }
      }
    }
  }
  // Warp: sum acc over the token lanes; then the CTA merges its warps in shared memory.
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int o = kLpt; o < 32; o <<= 1) acc[g][j] += __shfl_xor_sync(0xffffffffu, acc[g][j], o);
    }
    if (tl == 0) {
#pragma unroll
      for (int j = 0; j < 8; ++j) s_acc[warp][g][sub * 8 + j] = acc[g][j];
    }
    if (lane == 0) {
      s_m[warp][g] = m[g];
      s_l[warp][g] = l[g];
    }
  }
  __syncthreads();
  MergeSplits<D, G>(p, r, &s_acc[0][0][0], s_m, s_l);
}

template <int D>
cudaError_t LaunchSplit(const PagedAttentionParams& p, int group, cudaStream_t stream) {
  const dim3 grid(p.num_tokens * p.kv.num_kv_heads, p.min_chunk_entries > 0 ? p.max_splits : 1);
  if (group == 1) {
    if (cudaError_t e = LaunchPdl(SplitAttentionKernel<D, 1>, grid, kWarps * 32, 0, stream, p); e != cudaSuccess) return e;
  } else if (group == 2) {
    if (cudaError_t e = LaunchPdl(SplitAttentionKernel<D, 2>, grid, kWarps * 32, 0, stream, p); e != cudaSuccess) return e;
  } else if (group <= 4) {
    if (cudaError_t e = LaunchPdl(SplitAttentionKernel<D, 4>, grid, kWarps * 32, 0, stream, p); e != cudaSuccess) return e;
  } else {
    if (cudaError_t e = LaunchPdl(SplitAttentionKernel<D, 8>, grid, kWarps * 32, 0, stream, p); e != cudaSuccess) return e;
  }
  return cudaGetLastError();
}

}  // namespace

SplitChoice ChooseSplit(int32_t rows, int32_t page_size, int32_t resident_ctas) {
  SplitChoice c;
  if (rows <= 0 || resident_ctas <= 0) return c;
  auto efficiency = [&](int32_t s) {
    const double waves = static_cast<double>(rows) * s / resident_ctas;
    return waves / std::ceil(waves);
  };
  double best = 0.0;
  for (int32_t s = 1; s <= kMaxSplits; ++s) best = std::max(best, efficiency(s));
  int32_t splits = 1;
  while (splits < kMaxSplits && efficiency(splits) < 0.85 * best) ++splits;
  if (splits == 1) return c;
  c.min_chunk_entries = std::max(1, (kMinChunkTokens + page_size - 1) / page_size);
  c.max_splits = splits;
  if (splits <= kLongRowMaxSplits) {  // the two-wave rule for long rows
    c.row_splits = splits;
    c.max_splits = std::min(kMaxSplits, 2 * splits);
    c.long_chunk_entries = std::max(1, (kLongChunkTokens + page_size - 1) / page_size);
  }
  return c;
}

bool WideTcRows(int32_t rows, int32_t max_row_tokens, int32_t sms) {
  return max_row_tokens <= kWideMaxRowTokens && rows <= sms && 10 * rows >= 9 * sms;
}

SplitChoice WideSplit(int32_t rows, int32_t max_row_tokens, int32_t page_size, int32_t sms) {
  SplitChoice c;
  if (rows <= 0 || rows > kWideSplitMaxRows || max_row_tokens < kWideSplitMinRowTokens || page_size <= 0) return c;
  const int32_t splits = std::min(kMaxSplits, sms / rows);
  if (splits < 2) return c;
  c.min_chunk_entries = std::max(1, (kMinChunkTokens + page_size - 1) / page_size);
  c.max_splits = splits;
  return c;
}

int32_t SplitResidentCtas(int32_t head_dim, int32_t group, int32_t sms, bool tensor_cores, TcTiles tc_tiles,
                          int32_t tc_stages) {
  if (tensor_cores && TcDecodeSupported(head_dim, group)) {
    const int32_t per_sm = TcResidentPerSm(head_dim, tc_tiles, tc_stages);
    return (per_sm > 0 ? per_sm : 2) * sms;
  }
  int per_sm = 0;
  const void* fn = nullptr;
  const int g = group <= 1 ? 1 : group == 2 ? 2 : group <= 4 ? 4 : 8;
  switch (head_dim * 16 + g) {
#define LIL_SPLIT_FN(D, G) \
  case D * 16 + G:         \
    fn = reinterpret_cast<const void*>(SplitAttentionKernel<D, G>); \
    break;
    LIL_SPLIT_FN(64, 1) LIL_SPLIT_FN(64, 2) LIL_SPLIT_FN(64, 4) LIL_SPLIT_FN(64, 8)
    LIL_SPLIT_FN(128, 1) LIL_SPLIT_FN(128, 2) LIL_SPLIT_FN(128, 4) LIL_SPLIT_FN(128, 8)
#undef LIL_SPLIT_FN
    default: return 4 * sms;
  }
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, kWarps * 32, 0) != cudaSuccess || per_sm <= 0) {
    cudaGetLastError();
    return 4 * sms;
  }
  return per_sm * sms;
}

int64_t SplitPartialFloats(int32_t num_tokens, int32_t num_kv_heads, int32_t head_dim, int32_t max_splits) {
  return static_cast<int64_t>(num_tokens) * num_kv_heads * max_splits * SlotFloats(head_dim);
}

cudaError_t PagedAttention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int32_t d = p.kv.head_dim;
  if (p.kv.num_kv_heads <= 0 || p.num_heads % p.kv.num_kv_heads != 0 ||
      p.num_heads / p.kv.num_kv_heads > kMaxGroup) {
    return cudaErrorInvalidValue;
  }
  const int group = p.num_heads / p.kv.num_kv_heads;
  const bool split = p.min_chunk_entries > 0;
  if (p.rows_per_seq && p.page_mass != nullptr) return cudaErrorInvalidValue;  // mass entries are per head
  if (split && (p.partial == nullptr || p.counters == nullptr || p.max_splits < 1 || p.max_splits > kMaxSplits)) {
    return cudaErrorInvalidValue;
  }
  if (split && p.long_chunk_entries > 0 && (p.row_splits < 1 || p.row_splits > p.max_splits)) {
    return cudaErrorInvalidValue;
  }
  if (p.page_mass == nullptr && p.tensor_cores && TcDecodeSupported(d, group)) return TcSplitAttention(p, stream);
  if (p.page_mass == nullptr) {
    switch (d) {
      case 8: return LaunchSplit<8>(p, group, stream);
      case 16: return LaunchSplit<16>(p, group, stream);
      case 32: return LaunchSplit<32>(p, group, stream);
      case 64: return LaunchSplit<64>(p, group, stream);
      case 128: return LaunchSplit<128>(p, group, stream);
      default: break;
    }
  }
  if (split) return cudaErrorInvalidValue;  // the scalar kernel does not split
  const dim3 grid(p.num_tokens, p.kv.num_kv_heads);
  if (d <= 32) {
    PagedAttentionKernel<1><<<grid, kWarps * 32, 0, stream>>>(p);
  } else if (d <= 64) {
    PagedAttentionKernel<2><<<grid, kWarps * 32, 0, stream>>>(p);
  } else if (d <= 128) {
    PagedAttentionKernel<4><<<grid, kWarps * 32, 0, stream>>>(p);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace lil::cuda
