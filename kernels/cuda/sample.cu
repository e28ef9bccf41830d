// File: kernels/cuda/sample.cu
// One CTA per row: a max/argmax reduction, then the log-sum-exp around that max.
#include "kernels/cuda/sample.h"
#include "kernels/cuda/pdl.h"

#include <cfloat>

namespace lil::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) GreedyKernel(GreedyParams p) {
  PdlWait();
  PdlTrigger();
  __shared__ float s_val[kThreads / 32];
  __shared__ int s_idx[kThreads / 32];
  __shared__ float s_sum[kThreads / 32];
  const float* row = p.logits + static_cast<int64_t>(blockIdx.x) * p.vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float best = -FLT_MAX;
  int idx = 0x7fffffff;
  for (int i = threadIdx.x; i < p.vocab; i += blockDim.x) {
    const float v = row[i];
    if (v > best) {  // i grows, so a tie keeps the lower id
      best = v;
      idx = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > best || (ov == best && oi < idx)) {
      best = ov;
      idx = oi;
    }
  }
  if (lane == 0) {
    s_val[warp] = best;
    s_idx[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) {
      if (s_val[w] > s_val[0] || (s_val[w] == s_val[0] && s_idx[w] < s_idx[0])) {
        s_val[0] = s_val[w];
        s_idx[0] = s_idx[w];
      }
    }
  }
  __syncthreads();
  const float mx = s_val[0];
  float sum = 0.0f;
  for (int i = threadIdx.x; i < p.vocab; i += blockDim.x) sum += expf(row[i] - mx);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) s_sum[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) total += s_sum[w];
    p.token[blockIdx.x] = s_idx[0] == 0x7fffffff ? 0 : s_idx[0];  // all-NaN row: id 0
    p.logprob[blockIdx.x] = -logf(total);  // logit[token] - max is 0
  }
}

}  // namespace

cudaError_t Greedy(const GreedyParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  return LaunchPdl(GreedyKernel, p.rows, kThreads, 0, stream, p);
}

}  // namespace lil::cuda
