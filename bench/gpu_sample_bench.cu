// File: bench/gpu_sample_bench.cu
// The GPU sampler alone (kernels/cuda/sample.h) on Llama-3's vocabulary (128,256 logits a
// row) at 1, 32 and 128 rows: Greedy (argmax, what every step runs) and Greedy followed by
// SampleFiltered for temperature, top-p, top-k and min-p draws and top logprobs, median us per
// launch. Beside each: one read of the logits at the HBM read ceiling of this run (the floor
// if the row came from HBM; it sits in the L2 after the LM head, so the kernels can beat it)
// and, for the other modes, the time SampleFiltered adds to Greedy. The PyTorch peer on the
// same shapes is bench/sample_peer.py (sort-based top-p as transformers does it, then multinomial).
// Logits are N(0, 3^2) (the flat end: many tokens survive each cut). Usage: gpu_sample_bench
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "kernels/cuda/sample.h"

namespace {

using lil::bench::MedianMs;

constexpr int32_t kVocab = 128256;

__global__ void NormalFill(float* p, size_t n, uint32_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    const float u1 = (static_cast<float>(h >> 8) + 1.0f) / 16777217.0f;
    h *= 3266489917u;
    h ^= h >> 16;
    const float u2 = static_cast<float>(h >> 8) / 16777216.0f;
    p[i] = 3.0f * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
  }
}

struct Mode {
  const char* name;
  float temperature, top_p, min_p;
  int32_t top_k, logprobs = 0;
};

int32_t Bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof(i));
  return i;
}

}  // namespace

int main() {
  const double read_tbs = lil::bench::PrintReadTbs();
  const int32_t max_rows = 128;
  float* logits = nullptr;
  int32_t *args = nullptr, *token = nullptr;
  float *logprob = nullptr, *top_lps = nullptr;
  int32_t* top_ids = nullptr;
  CHECK(cudaMalloc(&top_ids, sizeof(int32_t) * max_rows * lil::cuda::kMaxTopLogprobs));
  CHECK(cudaMalloc(&top_lps, sizeof(float) * max_rows * lil::cuda::kMaxTopLogprobs));
  CHECK(cudaMalloc(&logits, sizeof(float) * max_rows * kVocab));
  CHECK(cudaMalloc(&args, sizeof(int32_t) * max_rows * lil::cuda::kSampleArgs));
  CHECK(cudaMalloc(&token, sizeof(int32_t) * max_rows));
  CHECK(cudaMalloc(&logprob, sizeof(float) * max_rows));
  NormalFill<<<lil::bench::SmCount() * 8, 256>>>(logits, static_cast<size_t>(max_rows) * kVocab, 5);
  CHECK(cudaGetLastError());
  const Mode modes[] = {{"greedy", 0.0f, 1.0f, 0.0f, 0},        {"temperature 0.8", 0.8f, 1.0f, 0.0f, 0},
                        {"top-p 0.9, T 0.8", 0.8f, 0.9f, 0.0f, 0}, {"top-k 50", 1.0f, 1.0f, 0.0f, 50},
                        {"min-p 0.05", 1.0f, 1.0f, 0.05f, 0},     {"top-k 400 + top-p 0.5", 1.3f, 0.5f, 0.0f, 400},
                        {"greedy + top 20 logprobs", 0.0f, 1.0f, 0.0f, 0, 20},
                        {"top-p 0.9, T 0.8 + top 5 logprobs", 0.8f, 0.9f, 0.0f, 0, 5}};
  std::printf("Median us per launch, %d logits a row (fp32)\n\n", kVocab);
  std::printf("| rows | mode | us | one logits read at ceiling, us | ratio | SampleFiltered adds, us |\n"
              "|---|---|---|---|---|---|\n");
  for (const int32_t rows : {1, 32, 128}) {
    const double read_us = static_cast<double>(rows) * kVocab * sizeof(float) / (read_tbs * 1e12) * 1e6;
    double greedy_us = 0.0;
    for (const Mode& m : modes) {
      const bool sampled = m.temperature > 0.0f || m.logprobs > 0;
      std::vector<int32_t> a(static_cast<size_t>(rows) * lil::cuda::kSampleArgs, 0);
      for (int32_t r = 0; r < rows && sampled; ++r) {
        int32_t* x = a.data() + static_cast<size_t>(r) * lil::cuda::kSampleArgs;
        const double u = (r + 0.37) / (rows + 1.0);
        uint64_t ub;
        std::memcpy(&ub, &u, sizeof(ub));
        x[0] = m.temperature > 0.0f ? 1 : 0;
        x[1] = Bits(m.temperature);
        x[2] = m.top_k;
        x[3] = Bits(m.top_p);
        x[4] = Bits(m.min_p);
        x[5] = static_cast<int32_t>(static_cast<uint32_t>(ub));
        x[6] = static_cast<int32_t>(static_cast<uint32_t>(ub >> 32));
        x[7] = m.logprobs;
      }
      CHECK(cudaMemcpy(args, a.data(), sizeof(int32_t) * a.size(), cudaMemcpyHostToDevice));
      const double us = 1e3 * MedianMs([&](int) {
        CHECK(lil::cuda::Greedy({logits, rows, kVocab, token, logprob}, nullptr));
        if (sampled) {
          CHECK(lil::cuda::SampleFiltered({logits, rows, kVocab, args, token, logprob, top_ids, top_lps}, nullptr));
        }
      }, 20, 7);
      if (!sampled) greedy_us = us;
      std::printf("| %d | %s | %.1f | %.2f | %.1fx |", rows, m.name, us, read_us, us / read_us);
      if (sampled) {
        std::printf(" %.1f |\n", us - greedy_us);
      } else {
        std::printf(" |\n");
      }
    }
  }
  CHECK(cudaFree(logits));
  CHECK(cudaFree(args));
  CHECK(cudaFree(token));
  CHECK(cudaFree(logprob));
  CHECK(cudaFree(top_ids));
  CHECK(cudaFree(top_lps));
  return 0;
}
