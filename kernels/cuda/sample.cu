// File: kernels/cuda/sample.cu
// One pass over the logits: each thread keeps a running (max, argmax, sum of
// exp(logit - max)) and rescales its sum when the max moves (the online softmax), with 8
// loads in flight per step; the threads' triples are then merged, and the slices' (below). The profile had
// the two-pass version at 102 us a step over Llama-3's 128,256 logits: 500 dependent
// load round trips per thread (docs/PERF.md, session 6).
#include "kernels/cuda/sample.h"
#include "kernels/cuda/pdl.h"

#include <cooperative_groups.h>

#include <cfloat>

namespace lil::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kInFlight = 8;
constexpr int kNoId = 0x7fffffff;

struct Best {
  float max = -FLT_MAX;
  float sum = 0.0f;  // sum of exp(v - max) over the values seen
  int id = kNoId;    // the lowest id holding max
};

// Values must come in increasing id order per thread (a tie keeps the earlier, lower id).
// A NaN never becomes the max and turns the sum into NaN, like the host sampler's log-softmax.
__device__ __forceinline__ void Add(Best& b, float v, int id) {
  if (v > b.max) {
    b.sum = b.sum * expf(b.max - v) + 1.0f;
    b.max = v;
    b.id = id;
  } else {
    b.sum += expf(v - b.max);
  }
}

__device__ __forceinline__ Best Merge(const Best& a, const Best& b) {
  Best r;
  r.max = fmaxf(a.max, b.max);
  r.sum = a.sum * expf(a.max - r.max) + b.sum * expf(b.max - r.max);
  r.id = a.max > b.max || (a.max == b.max && a.id < b.id) ? a.id : b.id;
  return r;
}

// A row is cut into kSlices vocabulary slices, one CTA each, the CTAs of a row forming one
// thread-block cluster: each CTA reduces its slice, then CTA 0 of the cluster merges the
// others' results through distributed shared memory (no workspace, no second launch). One CTA
// per row took ~25 us on Llama-3's 128,256 logits (~4 dependent load rounds per thread now
// instead of ~32; docs/PERF.md, session 10). Merge is order-free (ties to the lower id), so
// the result does not depend on the cut.
constexpr int kSlices = 8;  // the portable cluster size

__global__ void __launch_bounds__(kThreads) GreedyKernel(GreedyParams p) {
  PdlWait();
  PdlTrigger();
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  __shared__ Best s_best[kThreads / 32];
  __shared__ Best s_slice;
  const float* row = p.logits + static_cast<int64_t>(blockIdx.x) * p.vocab;
  const int slice = static_cast<int>(cluster.block_rank());
  const int per = (p.vocab + kSlices - 1) / kSlices;
  const int begin = slice * per, end = min(p.vocab, begin + per);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  Best b;
  int i = begin + threadIdx.x;
  for (; i + (kInFlight - 1) * kThreads < end; i += kInFlight * kThreads) {
    float v[kInFlight];
#pragma unroll
    for (int j = 0; j < kInFlight; ++j) v[j] = row[i + j * kThreads];
#pragma unroll
    for (int j = 0; j < kInFlight; ++j) Add(b, v[j], i + j * kThreads);
  }
  for (; i < end; i += kThreads) Add(b, row[i], i);
  for (int o = 16; o > 0; o >>= 1) {
    Best other;
    other.max = __shfl_xor_sync(0xffffffffu, b.max, o);
    other.sum = __shfl_xor_sync(0xffffffffu, b.sum, o);
    other.id = __shfl_xor_sync(0xffffffffu, b.id, o);
    b = Merge(b, other);
  }
  if (lane == 0) s_best[warp] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    Best total = s_best[0];
    for (int w = 1; w < kThreads / 32; ++w) total = Merge(total, s_best[w]);
    s_slice = total;
  }
  cluster.sync();  // every slice's result is in its CTA's shared memory
  if (slice == 0 && threadIdx.x == 0) {
    Best total = s_slice;
    for (int r = 1; r < kSlices; ++r) total = Merge(total, *cluster.map_shared_rank(&s_slice, r));
    if (p.gather != nullptr) {
      float* g = p.gather + static_cast<int64_t>(blockIdx.x) * p.world * 4;
      for (int r = 0; r < p.world * 4; ++r) g[r] = 0.0f;
      g[p.rank * 4 + 0] = total.max;
      g[p.rank * 4 + 1] = total.sum;
      g[p.rank * 4 + 2] = total.id == kNoId ? -1.0f : static_cast<float>(total.id + p.id_offset);
    } else {
      p.token[blockIdx.x] = total.id == kNoId ? 0 : total.id;  // all-NaN row: id 0
      p.logprob[blockIdx.x] = -logf(total.sum);              // logit[token] - max is 0
    }
  }
  cluster.sync();  // no CTA leaves while CTA 0 may still read its shared memory
}

__global__ void GreedyCombineKernel(GreedyCombineParams p) {
  PdlWait();
  PdlTrigger();
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= p.rows) return;
  const float* g = p.gather + static_cast<int64_t>(row) * p.world * 4;
  Best total;
  for (int r = 0; r < p.world; ++r) {  // rank order: ids ascend, so a tie keeps the lower id
    Best b;
    b.max = g[r * 4 + 0];
    b.sum = g[r * 4 + 1];
    b.id = g[r * 4 + 2] < 0.0f ? kNoId : static_cast<int>(g[r * 4 + 2]);
    total = Merge(total, b);
  }
  p.token[row] = total.id == kNoId ? 0 : total.id;
  p.logprob[row] = -logf(total.sum);
}

}  // namespace

cudaError_t Greedy(const GreedyParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.gather != nullptr && (p.world < 1 || p.rank < 0 || p.rank >= p.world ||
                              int64_t{p.id_offset} + p.vocab > (int64_t{1} << 24))) {
    return cudaErrorInvalidValue;  // ids travel as floats: exact below 2^24
  }
  return LaunchPdlCluster(GreedyKernel, dim3(p.rows, kSlices), dim3(kThreads), 0, kSlices, stream, p);
}

cudaError_t GreedyCombine(const GreedyCombineParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.world < 1) return cudaErrorInvalidValue;
  return LaunchPdl(GreedyCombineKernel, dim3((p.rows + 127) / 128), dim3(128), 0, stream, p);
}

}  // namespace lil::cuda
