// File: kernels/cuda/attention.cu
// Flash-style paged attention: online softmax per warp over a strided share of the page
// list, then a shared-memory merge of the warps' (max, sum, acc) states. Each lane holds
// head_dim/32 elements of q, k, v (kPerLane), and all G query heads of the KV head, so every
// key and value is read once per CTA.
#include "kernels/cuda/attention.h"

#include <cfloat>

namespace lil::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;

__device__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int kPerLane>
__global__ void __launch_bounds__(kWarps * 32) PagedAttentionKernel(PagedAttentionParams p) {
  __shared__ float s_max[kWarps][kMaxGroup], s_sum[kWarps][kMaxGroup];
  __shared__ float s_acc[kMaxGroup][kPerLane * 32];
  __shared__ float s_final_max[kMaxGroup], s_final_sum[kMaxGroup];
  const int32_t t = blockIdx.x, kvh = blockIdx.y;
  const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const PagedKvViewBf16& kv = p.kv;
  const int32_t d = kv.head_dim, ps = kv.page_size;
  const int32_t group = p.num_heads / kv.num_kv_heads;
  const int32_t row = p.token_seq[t] * kv.num_kv_heads + kvh;
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

}  // namespace

cudaError_t PagedAttention(const PagedAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int32_t d = p.kv.head_dim;
  if (p.kv.num_kv_heads <= 0 || p.num_heads % p.kv.num_kv_heads != 0 ||
      p.num_heads / p.kv.num_kv_heads > kMaxGroup) {
    return cudaErrorInvalidValue;
  }
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
