// File: tests/gpu/backend_test_util.h
// What the CUDA backend tests share: tiny random models with bf16-exact, conditioned weights
// (both sides of a comparison hold identical values), plan rows, and the logits distance.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "engine/host_weights.h"
#include "scheduler/step_plan.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/testing/tiny_model.h"

namespace lil::testing {

// The tiny model shape the GPU backend tests use: 8 query heads, 3 layers, hidden 4 x head_dim
// and an intermediate size (3 x head_dim + 5) that splits unevenly over ranks.
inline TinyModelOptions GpuTinyOptions(ModelFamily family, int32_t head_dim, int32_t kv_heads) {
  TinyModelOptions o;
  o.family = family;
  o.head_dim = head_dim;
  o.hidden = 4 * head_dim;
  o.inter = 3 * head_dim + 5;
  o.heads = 8;
  o.kv_heads = kv_heads;
  o.layers = 3;
  return o;
}

// TinyWeights, rounded to bf16; the matrices scaled by 0.25. TinyWeights' N(0, 0.3^2) makes
// q.k scores of ~10 at hidden 128, where bf16 keys alone move the softmax by several percent;
// real checkpoints are conditioned (scores of a few units), and so is the model after this.
inline HostWeights ConditionedBf16Weights(const ModelConfig& c, uint64_t seed) {
  HostWeights w = TinyWeights(c, seed);
  auto round = [](std::vector<float>& v, float scale) {
    for (float& x : v) x = RoundBf16(x * scale);
  };
  round(w.embed, 1.0f);
  round(w.lm_head, 1.0f);
  for (auto& l : w.layers) {
    for (auto* v : {&l.qkv, &l.o_proj, &l.gate_up, &l.down}) round(*v, 0.25f);
  }
  return w;
}

// A sequence of n random tokens from `start` over `pages`, greedy, returning logits.
inline ScheduledSeq RandomSeq(uint64_t id, int32_t start, int32_t n, const std::vector<int32_t>& pages, int vocab) {
  ScheduledSeq s;
  s.id = RequestId{id};
  std::mt19937 rng(static_cast<uint32_t>(id * 1000 + start));
  for (int32_t i = 0; i < n; ++i) s.tokens.push_back(static_cast<TokenId>(rng() % vocab));
  s.start_pos = start;
  for (int32_t p : pages) s.page_table.push_back(PageId{p});
  s.return_logits = true;
  s.sample = true;
  s.sampling.temperature = 0.0f;
  return s;
}

// ||a - b|| / ||b|| over the whole vector; infinity when a has a non-finite value.
inline double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace lil::testing
