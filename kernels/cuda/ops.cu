// File: kernels/cuda/ops.cu
// Element-wise ops: one block per row (norms, embedding), one warp per head vector (RoPE).
#include "kernels/cuda/ops.h"
#include "kernels/cuda/pdl.h"
#include "kernels/cuda/rope_kv.cuh"

#include <cmath>
#include <cstdlib>

namespace lil::cuda {
namespace {

constexpr int kThreads = 256;

// Whether a pointer (null counts as aligned) suits vector loads of `bytes`.
bool Aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

__device__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ float BlockSum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = lane < nw ? partial[lane] : 0.0f;
  return WarpSum(v);
}

__global__ void EmbeddingKernel(EmbeddingParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t r = blockIdx.x;
  const int32_t id = p.ids[r];
  float* out = p.out + static_cast<int64_t>(r) * p.dim;
  const bool ok = id >= 0 && id < p.vocab;
  const bf16* row = p.table + static_cast<int64_t>(ok ? id : 0) * p.dim;
  bf16* out_bf16 = p.out_bf16 != nullptr ? p.out_bf16 + static_cast<int64_t>(r) * p.dim : nullptr;
  for (int32_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const bf16 v = ok ? row[i] : __float2bfloat16(0.0f);
    out[i] = __bfloat162float(v);
    if (out_bf16 != nullptr) out_bf16[i] = v;
  }
}

__global__ void AddRmsNormKernel(AddRmsNormParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t r = blockIdx.x;
  const int64_t xr = p.row_index != nullptr ? p.row_index[r] : r;
  float* x = p.x + xr * p.dim;
  const float* res = p.residual != nullptr ? p.residual + xr * p.dim : nullptr;
  float ss = 0.0f;
  for (int32_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    float v = x[i];
    if (res != nullptr) {
      v += res[i];
      x[i] = v;
    }
    ss += v * v;
  }
  const float inv = rsqrtf(BlockSum(ss) / p.dim + p.eps);
  bf16* out = p.out + static_cast<int64_t>(r) * p.dim;
  for (int32_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    out[i] = __float2bfloat16(x[i] * inv * (p.weight != nullptr ? p.weight[i] : 1.0f));
  }
}

// AddRmsNormKernel with the row held in registers: each of kNormThreads threads loads up to
// kNormVec float4 of x (and of the residual) at once, so a row costs one round of loads instead
// of dim / blockDim dependent ones, and x is not read back for the output. For dim % 4 == 0 and
// dim <= 4 * kNormVec * kNormThreads (8192: a Llama-3-70B row); AddRmsNorm picks it. The sum of
// squares is added in another order than the scalar kernel's (fp32 rounding only).
constexpr int kNormThreads = 256, kNormVec = 8;
__global__ void __launch_bounds__(kNormThreads) AddRmsNormVecKernel(AddRmsNormParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t r = blockIdx.x, n4 = p.dim / 4;
  const int64_t xr = p.row_index != nullptr ? p.row_index[r] : r;
  float4* x = reinterpret_cast<float4*>(p.x + xr * p.dim);
  const float4* res = p.residual != nullptr ? reinterpret_cast<const float4*>(p.residual + xr * p.dim) : nullptr;
  float4 v[kNormVec], d[kNormVec];
#pragma unroll
  for (int k = 0; k < kNormVec; ++k) {  // every load issued before any is used
    const int32_t i = threadIdx.x + k * kNormThreads;
    if (i < n4) {
      v[k] = x[i];
      if (res != nullptr) d[k] = res[i];
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kNormVec; ++k) {
    const int32_t i = threadIdx.x + k * kNormThreads;
    if (i < n4) {
      if (res != nullptr) {
        v[k].x += d[k].x;
        v[k].y += d[k].y;
        v[k].z += d[k].z;
        v[k].w += d[k].w;
        x[i] = v[k];
      }
      ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    }
  }
  const float inv = rsqrtf(BlockSum(ss) / p.dim + p.eps);
  uint2* out = reinterpret_cast<uint2*>(p.out + static_cast<int64_t>(r) * p.dim);
  const float4* wt = reinterpret_cast<const float4*>(p.weight);
#pragma unroll
  for (int k = 0; k < kNormVec; ++k) {
    const int32_t i = threadIdx.x + k * kNormThreads;
    if (i < n4) {
      const float4 g = wt != nullptr ? wt[i] : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
      const __nv_bfloat162 lo = __floats2bfloat162_rn(v[k].x * inv * g.x, v[k].y * inv * g.y);
      const __nv_bfloat162 hi = __floats2bfloat162_rn(v[k].z * inv * g.z, v[k].w * inv * g.w);
      out[i] = make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
    }
  }
}

__global__ void ScaleColumnsKernel(bf16* w, const float* g, int64_t n, int32_t cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    w[i] = __float2bfloat16(__bfloat162float(w[i]) * g[i % cols]);
  }
}

// One warp per (token, head vector); head vectors are q heads, then k heads, then v heads.
// The vector is staged in shared memory so RoPE pairs (i, i + d/2) work for any head_dim.
__global__ void QkvRopeWriteKernel(QkvRopeWriteParams p) {
  PdlWait();
  PdlTrigger();
  extern __shared__ float stage[];  // [warps][head_dim]
  const int32_t t = blockIdx.x;
  const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int32_t d = p.kv.head_dim, hq = p.num_heads, hkv = p.kv.num_kv_heads;
  const int32_t width = (hq + 2 * hkv) * d;
  float* v = stage + warp * d;
  const int32_t half = d / 2;
  // blockIdx.y picks this CTA's share of the head vectors: a one-token step runs on
  // (hq + 2 hkv) / warps SMs instead of one.
  for (int32_t hv = blockIdx.y * nw + warp; hv < hq + 2 * hkv; hv += nw * gridDim.y) {
    const int32_t col0 = hv * d;
    const bool pairs = p.pairs_adjacent && hv < hq + hkv;
    for (int32_t i = lane; i < d; i += 32) {
      const int32_t col = col0 + (pairs ? (i < half ? 2 * i : 2 * (i - half) + 1) : i);
      float x = p.qkv[static_cast<int64_t>(t) * width + col];
      if (p.bias != nullptr) x += p.bias[col];
      v[i] = x;
    }
    __syncwarp();
    const bool is_q = hv < hq, is_k = !is_q && hv < hq + hkv;
    const float* norm = is_q ? p.q_norm : (is_k ? p.k_norm : nullptr);
    if (norm != nullptr) {
      float ss = 0.0f;
      for (int32_t i = lane; i < d; i += 32) ss += v[i] * v[i];
      const float inv = rsqrtf(WarpSum(ss) / d + p.eps);
      __syncwarp();
      for (int32_t i = lane; i < d; i += 32) v[i] = v[i] * inv * norm[i];
      __syncwarp();
    }
    if (is_q || is_k) {
      for (int32_t i = lane; i < half; i += 32) RotatePair(v[i], v[i + half], p.pos[t], p.inv_freq[i]);
      __syncwarp();
    }
    if (is_q) {
      float* q = p.q_out + (static_cast<int64_t>(t) * hq + hv) * d;
      for (int32_t i = lane; i < d; i += 32) q[i] = v[i];
    } else {
      const KvSlot slot = LocateKvSlot(p, t, hv);
      for (int32_t i = lane; i < d; i += 32) StoreKv(slot, d, i, v[i]);
    }
    __syncwarp();
  }
}

// QkvRopeWriteKernel for pairs_adjacent and head_dim a multiple of 4 up to 128: lane l of the
// warp holds columns 4l .. 4l + 3 of its head vector in registers (one float4 load, no shared
// memory staging), which for a q or k head are two whole RoPE pairs (dims 2l and 2l + 1, each
// with its partner d / 2 further on), so the rotation and the stores need no exchange between
// lanes. The same per-element steps as QkvRopeWriteKernel (RotatePair, StoreKv): without a q / k
// norm its outputs are bit-identical; with one, the sum of squares is added in another order.
__global__ void QkvRopeWriteVecKernel(QkvRopeWriteParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t t = blockIdx.x;
  const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  const int32_t d = p.kv.head_dim, hq = p.num_heads, hkv = p.kv.num_kv_heads, half = d / 2;
  const int32_t width = (hq + 2 * hkv) * d, c = 4 * lane;
  const bool live = c < d;
  const int32_t pos = p.pos[t];
  for (int32_t hv = blockIdx.y * nw + warp; hv < hq + 2 * hkv; hv += nw * gridDim.y) {
    const int32_t col = hv * d + c;
    const bool is_q = hv < hq, is_k = !is_q && hv < hq + hkv;
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (live) {
      const float4 a = *reinterpret_cast<const float4*>(p.qkv + static_cast<int64_t>(t) * width + col);
      x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w;
      if (p.bias != nullptr) {
        const float4 b = *reinterpret_cast<const float4*>(p.bias + col);
        x[0] += b.x, x[1] += b.y, x[2] += b.z, x[3] += b.w;
      }
    }
    // Dims of the four columns: q / k heads (j, j + d/2, j + 1, j + 1 + d/2) with j = c / 2, v heads c .. c + 3.
    const int32_t j = c / 2;
    const int32_t dim[4] = {j, j + half, j + 1, j + 1 + half};
    const float* norm = is_q ? p.q_norm : (is_k ? p.k_norm : nullptr);
    if (norm != nullptr) {
      const float inv = rsqrtf(WarpSum(x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]) / d + p.eps);
      if (live) {
#pragma unroll
        for (int e = 0; e < 4; ++e) x[e] = x[e] * inv * norm[dim[e]];
      }
    }
    if (!live) continue;
    if (is_q || is_k) {
      RotatePair(x[0], x[1], pos, p.inv_freq[j]);
      RotatePair(x[2], x[3], pos, p.inv_freq[j + 1]);
    }
    if (is_q) {
      float* q = p.q_out + (static_cast<int64_t>(t) * hq + hv) * d;
      *reinterpret_cast<float2*>(q + j) = make_float2(x[0], x[2]);
      *reinterpret_cast<float2*>(q + j + half) = make_float2(x[1], x[3]);
    } else {
      const KvSlot slot = LocateKvSlot(p, t, hv);
#pragma unroll
      for (int e = 0; e < 4; ++e) StoreKv(slot, d, is_k ? dim[e] : c + e, x[e]);
    }
  }
}

__global__ void QuestMetaKernel(QuestMetaParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t page = p.pages[blockIdx.x], h = blockIdx.y, last = p.last_slot[blockIdx.x];
  const int32_t d = p.kv.head_dim;
  const bf16* k = p.kv.k + p.kv.Offset(page, h, 0);
  bf16* meta = p.kv.quest != nullptr ? p.kv.quest + p.kv.QuestOffset(page, h) : nullptr;
  uint8_t* meta8 = p.kv.quest_fp8 != nullptr ? p.kv.quest_fp8 + p.kv.QuestOffset(page, h) : nullptr;
  for (int32_t i = threadIdx.x; i < d; i += blockDim.x) {
    float mn = __bfloat162float(k[i]), mx = mn;
    for (int32_t s = 1; s <= last; ++s) {
      const float x = __bfloat162float(k[static_cast<int64_t>(s) * d + i]);
      mn = fminf(mn, x);
      mx = fmaxf(mx, x);
    }
    if (meta != nullptr) {
      meta[i] = __float2bfloat16(mn);  // exact: min/max of bf16 values are bf16 values
      meta[d + i] = __float2bfloat16(mx);
    }
    if (meta8 != nullptr) {  // rounded outward (kernels/quest_fp8.h)
      meta8[i] = E4m3RoundDown(mn);
      meta8[d + i] = E4m3RoundUp(mx);
    }
  }
}

__global__ void SiluMulKernel(SiluMulParams p) {
  PdlWait();
  PdlTrigger();
  const int64_t n = static_cast<int64_t>(p.rows) * p.inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.inter, c = i % p.inter;
    const float* row = p.gate_up + r * 2 * p.inter;
    const float g = p.interleaved ? row[2 * c] : row[c], u = p.interleaved ? row[2 * c + 1] : row[p.inter + c];
    p.out[i] = __float2bfloat16(g / (1.0f + expf(-g)) * u);
  }
}

// SiluMulKernel four columns a thread: a 2-D grid (blockIdx.y the row, so no 64-bit division
// an element), the gate and up values as two float4 loads, the four outputs as one 8-byte store.
// The same per-element expression as SiluMulKernel (bit-identical outputs). For inter % 4 == 0
// and rows <= 65535; SiluMul picks it.
__global__ void SiluMulVecKernel(SiluMulParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t r = blockIdx.y, c = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= p.inter) return;
  const float* row = p.gate_up + static_cast<int64_t>(r) * 2 * p.inter;
  float g[4], u[4];
  if (p.interleaved) {  // (gate, up) pairs: columns c .. c + 3 are floats 2c .. 2c + 7
    const float4 a = *reinterpret_cast<const float4*>(row + 2 * c), b = *reinterpret_cast<const float4*>(row + 2 * c + 4);
    g[0] = a.x, u[0] = a.y, g[1] = a.z, u[1] = a.w, g[2] = b.x, u[2] = b.y, g[3] = b.z, u[3] = b.w;
  } else {
    const float4 a = *reinterpret_cast<const float4*>(row + c), b = *reinterpret_cast<const float4*>(row + p.inter + c);
    g[0] = a.x, g[1] = a.y, g[2] = a.z, g[3] = a.w, u[0] = b.x, u[1] = b.y, u[2] = b.z, u[3] = b.w;
  }
  float y[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) y[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
  const __nv_bfloat162 lo = __floats2bfloat162_rn(y[0], y[1]), hi = __floats2bfloat162_rn(y[2], y[3]);
  *reinterpret_cast<uint2*>(p.out + static_cast<int64_t>(r) * p.inter + c) =
      make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
}

template <typename T>
__global__ void InterleaveRowsKernel(const T* src, T* dst, int64_t half_rows, int32_t cols, int32_t blocks) {
  const int64_t block = 2 * half_rows * cols, n = block * blocks;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / block, r = i % block / cols, c = i % cols;  // destination row r of block b holds source row s
    const int64_t s = (r % 2 == 0 ? 0 : half_rows) + r / 2;
    dst[i] = src[b * block + s * cols + c];
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  PdlWait();
  PdlTrigger();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] += y[i];
  }
}

__global__ void ScatterAddKernel(ScatterAddParams p) {
  PdlWait();
  PdlTrigger();
  const int32_t e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= p.n) return;
  const int32_t off = p.seq_offset[p.entry_seq[e]];
  if (off >= 0) atomicAdd(p.dst + off + p.entry_logical[e], p.src[e]);
}

__global__ void ToBf16Kernel(const float* src, bf16* dst, int64_t n) {
  PdlWait();
  PdlTrigger();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = __float2bfloat16(src[i]);
  }
}

// 16x16 output tiles, K staged through shared memory in steps of 16.
__global__ void GemmFallbackKernel(GemmParams p) {
  PdlWait();
  PdlTrigger();
  __shared__ float xs[16][17], ws[16][17];
  const int32_t r = blockIdx.y * 16 + threadIdx.y, o = blockIdx.x * 16 + threadIdx.x;
  float acc = 0.0f;
  for (int32_t k0 = 0; k0 < p.in; k0 += 16) {
    const int32_t kx = k0 + threadIdx.x;
    const int32_t xr = blockIdx.y * 16 + threadIdx.y, wr = blockIdx.x * 16 + threadIdx.y;
    xs[threadIdx.y][threadIdx.x] = (xr < p.rows && kx < p.in) ? __bfloat162float(p.x[static_cast<int64_t>(xr) * p.in + kx]) : 0.0f;
    ws[threadIdx.y][threadIdx.x] = (wr < p.out && kx < p.in) ? __bfloat162float(p.w[static_cast<int64_t>(wr) * p.in + kx]) : 0.0f;
    __syncthreads();
    for (int32_t k = 0; k < 16; ++k) acc += xs[threadIdx.y][k] * ws[threadIdx.x][k];
    __syncthreads();
  }
  if (r < p.rows && o < p.out) p.y[static_cast<int64_t>(r) * p.out + o] = acc;
}

int Blocks(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

}  // namespace

int32_t CurrentSmCount() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    return 132;
  }
  return sms;
}

cudaError_t Embedding(const EmbeddingParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  return LaunchPdl(EmbeddingKernel, p.rows, kThreads, 0, stream, p);
}

cudaError_t AddRmsNorm(const AddRmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.dim % 4 == 0 && p.dim <= 4 * kNormVec * kNormThreads && Aligned(p.x, 16) && Aligned(p.residual, 16) &&
      Aligned(p.weight, 16) && Aligned(p.out, 8)) {
    return LaunchPdl(AddRmsNormVecKernel, p.rows, kNormThreads, 0, stream, p);
  }
  return LaunchPdl(AddRmsNormKernel, p.rows, p.dim >= 1024 ? 512 : 128, 0, stream, p);
}

cudaError_t ScaleColumns(bf16* w, const float* g, int64_t rows, int32_t cols, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return cudaSuccess;
  ScaleColumnsKernel<<<Blocks(n), kThreads, 0, stream>>>(w, g, n, cols);
  return cudaGetLastError();
}

cudaError_t QkvRopeWrite(const QkvRopeWriteParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.kv.head_dim % 2 != 0) return cudaErrorInvalidValue;
  const int warps = 4, vectors = p.num_heads + 2 * p.kv.num_kv_heads;
  const dim3 grid(p.tokens, (vectors + warps - 1) / warps);
  if (p.pairs_adjacent && p.kv.head_dim % 4 == 0 && p.kv.head_dim <= 128 && Aligned(p.qkv, 16) &&
      Aligned(p.bias, 16) && Aligned(p.q_out, 8)) {
    return LaunchPdl(QkvRopeWriteVecKernel, grid, warps * 32, 0, stream, p);
  }
  return LaunchPdl(QkvRopeWriteKernel, grid, warps * 32, warps * p.kv.head_dim * sizeof(float), stream, p);
}

namespace {

template <typename T>
cudaError_t InterleaveRows(T* w, int64_t half_rows, int32_t cols, cudaStream_t stream, int32_t blocks) {
  const int64_t n = 2 * half_rows * cols * blocks;
  if (n == 0) return cudaSuccess;
  T* copy = nullptr;
  if (cudaError_t e = cudaMallocAsync(&copy, n * sizeof(T), stream); e != cudaSuccess) return e;
  if (cudaError_t e = cudaMemcpyAsync(copy, w, n * sizeof(T), cudaMemcpyDeviceToDevice, stream); e != cudaSuccess) {
    cudaFreeAsync(copy, stream);
    return e;
  }
  InterleaveRowsKernel<<<Blocks(n), kThreads, 0, stream>>>(copy, w, half_rows, cols, blocks);
  const cudaError_t launch = cudaGetLastError();
  const cudaError_t freed = cudaFreeAsync(copy, stream);
  return launch != cudaSuccess ? launch : freed;
}

}  // namespace

cudaError_t InterleaveRowHalves(bf16* w, int64_t half_rows, int32_t cols, cudaStream_t stream, int32_t blocks) {
  return InterleaveRows(w, half_rows, cols, stream, blocks);
}

cudaError_t InterleaveRowHalves(float* w, int64_t half_rows, int32_t cols, cudaStream_t stream, int32_t blocks) {
  return InterleaveRows(w, half_rows, cols, stream, blocks);
}

cudaError_t QuestMeta(const QuestMetaParams& p, cudaStream_t stream) {
  if (p.num_pages == 0 || (p.kv.quest == nullptr && p.kv.quest_fp8 == nullptr)) return cudaSuccess;
  return LaunchPdl(QuestMetaKernel, dim3(p.num_pages, p.kv.num_kv_heads), 128, 0, stream, p);
}

cudaError_t SiluMul(const SiluMulParams& p, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(p.rows) * p.inter;
  if (n == 0) return cudaSuccess;
  if (p.inter % 4 == 0 && p.rows <= 65535 && Aligned(p.gate_up, 16) && Aligned(p.out, 8)) {
    const dim3 grid((p.inter / 4 + kThreads - 1) / kThreads, p.rows);
    return LaunchPdl(SiluMulVecKernel, grid, kThreads, 0, stream, p);
  }
  return LaunchPdl(SiluMulKernel, Blocks(n), kThreads, 0, stream, p);
}

cudaError_t AddInPlace(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  return LaunchPdl(AddKernel, Blocks(n), kThreads, 0, stream, x, y, n);
}

cudaError_t ScatterAdd(const ScatterAddParams& p, cudaStream_t stream) {
  if (p.n == 0) return cudaSuccess;
  ScatterAddKernel<<<(p.n + kThreads - 1) / kThreads, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t GemmFallback(const GemmParams& p, cudaStream_t stream) {
  if (p.fused()) return cudaErrorInvalidValue;  // the decode fusions are the GEMV's
  if (p.rows == 0 || p.out == 0) return cudaSuccess;
  GemmFallbackKernel<<<dim3((p.out + 15) / 16, (p.rows + 15) / 16), dim3(16, 16), 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t ToBf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ToBf16Kernel<<<Blocks(n), kThreads, 0, stream>>>(src, dst, n);
  return cudaGetLastError();
}

}  // namespace lil::cuda

namespace lil::cuda {

bool PdlEnabled() {
  static const bool on = [] {
    const char* env = std::getenv("LILSERVE_PDL");
    return !(env != nullptr && env[0] == '0');
  }();
  return on;
}

}  // namespace lil::cuda
