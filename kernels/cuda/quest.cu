// File: kernels/cuda/quest.cu
// One CTA per (sequence, KV head): scores into shared memory, then each candidate's rank
// (pages scoring higher, ties to the lower index) decides membership, and a block scan
// compacts the chosen pages in logical order. The rank pass is O(n^2 / threads): fine for
// a few thousand pages; a radix select is the next step (GPU-NOTES.md item 7).
#include "kernels/cuda/quest.h"

#include <cub/block/block_scan.cuh>

namespace lil::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) QuestSelectKernel(QuestSelectParams p) {
  extern __shared__ float score[];  // [n - 1]
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int s_base;
  const int32_t s = blockIdx.x, h = blockIdx.y;
  const int32_t hkv = p.kv.num_kv_heads, d = p.kv.head_dim, group = p.num_heads / hkv;
  const int32_t n = p.cand_count[s], c0 = p.cand_begin[s];
  const int32_t keep = min(n, max(1, p.budget_pages[s]));
  const int32_t out0 = p.out_begin[s * hkv + h];
  if (keep >= n) {  // everything fits: copy the candidates
    for (int32_t c = threadIdx.x; c < n; c += blockDim.x) {
      p.out_pages[out0 + c] = p.cand_pages[c0 + c];
      p.out_logical[out0 + c] = p.cand_logical[c0 + c];
    }
    return;
  }
  const float* q = p.q + (static_cast<int64_t>(p.q_row[s]) * p.num_heads + h * group) * d;
  for (int32_t c = threadIdx.x; c < n - 1; c += blockDim.x) {
    const bf16* mn = p.kv.quest + p.kv.QuestOffset(p.cand_pages[c0 + c], h);
    const bf16* mx = mn + d;
    float total = 0.0f;
    for (int32_t g = 0; g < group; ++g) {
      for (int32_t i = 0; i < d; ++i) {
        const float qi = q[g * d + i];
        total += fmaxf(qi * __bfloat162float(mn[i]), qi * __bfloat162float(mx[i]));
      }
    }
    score[c] = total;
  }
  __syncthreads();
  if (threadIdx.x == 0) s_base = 0;
  __syncthreads();
  // Chunks of kThreads candidates, in order, so the scan keeps logical order.
  for (int32_t c_base = 0; c_base < n; c_base += kThreads) {
    const int32_t c = c_base + threadIdx.x;
    int chosen = 0;
    if (c == n - 1) {
      chosen = 1;  // the newest page is always attended
    } else if (c < n - 1) {
      const float mine = score[c];
      int32_t rank = 0;
      for (int32_t o = 0; o < n - 1 && rank < keep - 1; ++o) {
        const float other = score[o];
        rank += (other > mine || (other == mine && o < c)) ? 1 : 0;
      }
      chosen = rank < keep - 1 ? 1 : 0;
    }
    int offset = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(chosen, offset, total);
    if (chosen) {
      p.out_pages[out0 + s_base + offset] = p.cand_pages[c0 + c];
      p.out_logical[out0 + s_base + offset] = p.cand_logical[c0 + c];
    }
    __syncthreads();
    if (threadIdx.x == 0) s_base += total;
    __syncthreads();
  }
}

}  // namespace

cudaError_t QuestSelect(const QuestSelectParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  if (p.kv.quest == nullptr || p.num_heads % p.kv.num_kv_heads != 0) return cudaErrorInvalidValue;
  const size_t smem = sizeof(float) * kQuestMaxCandidates;
  static bool configured = false;
  if (!configured) {
    cudaFuncSetAttribute(QuestSelectKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    configured = true;
  }
  QuestSelectKernel<<<dim3(p.num_seqs, p.kv.num_kv_heads), kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace lil::cuda
