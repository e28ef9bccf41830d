// File: kernels/cuda/sample.h
// Greedy sampling on the GPU: argmax (ties to the lowest id, like engine/sampler.h) and the
// token's log-probability under the raw logits. Other sampling modes run on the host.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lil::cuda {

struct GreedyParams {
  const float* logits;      // [rows, vocab]
  int32_t rows = 0;
  int32_t vocab = 0;
  int32_t* token;           // [rows]
  float* logprob;           // [rows]
};
cudaError_t Greedy(const GreedyParams& p, cudaStream_t stream);

}  // namespace lil::cuda
