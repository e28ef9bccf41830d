// File: tests/testing/tiny_model.cc
#include "tests/testing/tiny_model.h"

#include <random>

namespace lil::testing {
namespace {

std::vector<float> Random(size_t n, std::mt19937_64& rng, float mean, float stddev) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

ModelConfig TinyConfig(const TinyModelOptions& o) {
  ModelConfig c;
  c.family = o.family;
  c.architecture = "tiny";
  c.vocab_size = o.vocab;
  c.hidden_size = o.hidden;
  c.intermediate_size = o.inter;
  c.num_layers = o.layers;
  c.num_heads = o.heads;
  c.num_kv_heads = o.kv_heads;
  c.head_dim = o.head_dim;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.max_position_embeddings = 4096;
  c.attention_bias = o.family == ModelFamily::kQwen2;
  c.qk_norm = o.family == ModelFamily::kQwen3;
  c.eos_token_ids = {0};
  return c;
}

HostWeights TinyWeights(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  const float s = 0.3f;
  HostWeights w;
  w.embed = Random(c.vocab_size * h, rng, 0.0f, 1.0f);
  w.final_norm = Random(h, rng, 1.0f, 0.1f);
  w.lm_head = Random(c.vocab_size * h, rng, 0.0f, s);
  for (int32_t i = 0; i < c.num_layers; ++i) {
    HostLayerWeights l;
    l.attn_norm = Random(h, rng, 1.0f, 0.1f);
    l.qkv = Random((q + 2 * kv) * h, rng, 0.0f, s);
    if (c.attention_bias) l.qkv_bias = Random(q + 2 * kv, rng, 0.0f, 0.1f);
    if (c.qk_norm) {
      l.q_norm = Random(c.head_dim, rng, 1.0f, 0.1f);
      l.k_norm = Random(c.head_dim, rng, 1.0f, 0.1f);
    }
    l.o_proj = Random(h * q, rng, 0.0f, s);
    l.mlp_norm = Random(h, rng, 1.0f, 0.1f);
    l.gate_up = Random(2 * inter * h, rng, 0.0f, s);
    l.down = Random(h * inter, rng, 0.0f, s);
    w.layers.push_back(std::move(l));
  }
  return w;
}

}  // namespace lil::testing
