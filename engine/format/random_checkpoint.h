// File: engine/format/random_checkpoint.h
// Writes a HuggingFace model directory with random weights in a real family's shapes
// (config.json, generation_config.json, tokenizer, safetensors shards + index), streamed and
// multi-threaded so an 8B checkpoint never sits in memory. Used for speed work and tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/model_family.h"

namespace lil {

struct RandomCheckpointOptions {
  ModelFamilyConfig config;
  DType dtype = DType::kBF16;                // BF16, F16 or F32
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 4000ull << 20;  // shard when the weights exceed this
  int threads = 0;                           // 0: hardware concurrency
  bool dry_run = false;                      // write configs and tokenizer, list tensors only
};

struct RandomCheckpointResult {
  std::vector<std::string> files;  // every file written, relative to the directory
  uint64_t weight_bytes = 0;
  int64_t num_params = 0;
  int64_t tokenizer_tokens = 0;
  double seconds = 0;
  std::vector<TensorSpec> tensors;  // every tensor of the checkpoint, in file order
};

// Values: linear weights and embeddings ~ N(0, 0.02^2), norm weights 1 + N(0, 0.02^2),
// biases N(0, 0.01^2). The normal is approximated by a sum of four uniforms (tails cut at
// 3.46 sigma), from a SplitMix64 stream per 1M-element chunk seeded by (seed, tensor, chunk):
// the output is the same for any thread count.
absl::StatusOr<RandomCheckpointResult> WriteRandomCheckpoint(const std::string& dir,
                                                             const RandomCheckpointOptions& options);

}  // namespace lil
