// File: tests/testing/tiny_model.h
// A tiny random Llama/Qwen model built in memory (no files), for engine tests.
#pragma once

#include <cstdint>

#include "engine/host_weights.h"
#include "engine/model_config.h"

namespace lil::testing {

struct TinyModelOptions {
  ModelFamily family = ModelFamily::kLlama;
  int32_t vocab = 97;
  int32_t hidden = 32;
  int32_t inter = 48;
  int32_t layers = 2;
  int32_t heads = 4;
  int32_t kv_heads = 2;
  int32_t head_dim = 8;
  uint64_t seed = 1;
};

ModelConfig TinyConfig(const TinyModelOptions& o);
// Weights ~ N(0, 0.3^2) so logits are well separated (greedy is stable), norms ~ 1.
HostWeights TinyWeights(const ModelConfig& c, uint64_t seed);

}  // namespace lil::testing
