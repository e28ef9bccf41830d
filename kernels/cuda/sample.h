// File: kernels/cuda/sample.h
// Sampling on the GPU. Greedy: argmax (ties to the lowest id, like engine/sampler.h) and the
// token's log-probability under the raw logits. SampleFiltered: temperature with top-k /
// top-p / min-p, as engine/sampler.h defines them (TemperedKept, the draw over the kept
// tokens in id order), and top logprobs, on the rows marked for it, after Greedy. A
// repetition penalty runs on the host.
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
  // Tensor parallel (vocab-parallel LM head): with gather set, each row's partial result over
  // this rank's vocabulary slice (max logit, sum of exp(logit - max), id + id_offset, as floats:
  // ids below 2^24 are exact) goes to gather[row][rank][0..2] and zeros to every other rank's
  // four floats of the row; token / logprob are not written. An all-reduce sum of gather
  // (rows x world x 4 floats) then hands every rank all partials (a sum of one value and
  // zeros is exact), and GreedyCombine merges them. Nothing but these few floats crosses
  // between the GPUs, instead of every rank's logits.
  float* gather = nullptr;
  int32_t rank = 0, world = 1, id_offset = 0;
};
cudaError_t Greedy(const GreedyParams& p, cudaStream_t stream);

// Merges the world partials of each row (Greedy's gather, summed over the ranks) into the
// token and its logprob: the same result as Greedy over the whole row (ties to the lower id;
// a row of NaNs gives token 0 and a NaN logprob).
struct GreedyCombineParams {
  const float* gather;  // [rows, world, 4]
  int32_t rows = 0, world = 1;
  int32_t* token;   // [rows]
  float* logprob;   // [rows]
};
cudaError_t GreedyCombine(const GreedyCombineParams& p, cudaStream_t stream);

// Per row, kSampleArgs int32: [0] 1 = draw this row here (else the row keeps Greedy's token),
// [1] temperature (float bits, > 0), [2] top_k (0: off), [3] top_p (float bits, in (0, 1]),
// [4] min_p (float bits), [5] / [6] the low / high words of the uniform draw in [0, 1) (a
// double: UniformDraw(seed, draw index)), [7] top logprobs wanted (0 .. kMaxTopLogprobs).
inline constexpr int kSampleArgs = 8;
inline constexpr int kMaxTopLogprobs = 20;
inline constexpr int32_t kSampleFilteredMaxVocab = 262144;  // larger vocabularies sample on the host
struct SampleFilteredParams {
  const float* logits;      // [rows, vocab]
  int32_t rows = 0;
  int32_t vocab = 0;
  const int32_t* args;      // [rows, kSampleArgs]
  int32_t* token;           // [rows]: in, Greedy's argmax; out, the drawn token on drawn rows
  float* logprob;           // [rows]: in, Greedy's log-probability; out, the drawn token's
  // [rows, kMaxTopLogprobs]: on rows with args[7] = n > 0, the n best tokens by raw logit (ties
  // to the lower id), best first, and their log-probabilities (engine/sampler.h's top_logprobs).
  int32_t* top_ids = nullptr;
  float* top_logprobs = nullptr;
};
// A row is cut into slices over a thread-block cluster. The cuts are radix selections over the
// logits' order (four 8-bit rounds, then the tied logits in id order), the weights
// exp((logit - best) / T) summed as 2^-40 fixed-point integers so every run and every slicing
// sums them alike (a seed gives the same token every time), and the draw a prefix sum over the
// kept tokens in id order. The kept set equals TemperedKept's but for float rounding at a cut
// (the GPU's expf, the sums' order). Top logprobs: the same selection by count.
cudaError_t SampleFiltered(const SampleFilteredParams& p, cudaStream_t stream);

}  // namespace lil::cuda
