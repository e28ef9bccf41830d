// File: engine/host_weights.cc
#include "engine/host_weights.h"


#include "common/status.h"
#include "engine/parallel_layers.h"

namespace lil {
namespace {

// Reads `name` of `shape` into rows [row_offset, row_offset + shape[0]) of `dst`.
absl::Status ReadInto(const ModelFiles& f, const std::string& name,
                      const std::vector<int64_t>& shape, std::vector<float>& dst,
                      int64_t row_offset) {
  const int64_t cols = shape.size() > 1 ? shape[1] : 1;
  return f.ReadF32(name, shape, dst.data() + row_offset * cols);
}

absl::StatusOr<HostLayerWeights> LoadLayer(const ModelFiles& f, int32_t i) {
  const ModelConfig& c = f.config();
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  auto name = [&](const char* suffix) { return LayerTensorName(i, suffix); };
  HostLayerWeights w;
  LIL_ASSIGN_OR_RETURN(w.attn_norm, f.ReadF32(name("input_layernorm.weight"), {h}));
  w.qkv.resize((q + 2 * kv) * h);
  LIL_RETURN_IF_ERROR(ReadInto(f, name("self_attn.q_proj.weight"), {q, h}, w.qkv, 0));
  LIL_RETURN_IF_ERROR(ReadInto(f, name("self_attn.k_proj.weight"), {kv, h}, w.qkv, q));
  LIL_RETURN_IF_ERROR(ReadInto(f, name("self_attn.v_proj.weight"), {kv, h}, w.qkv, q + kv));
  if (c.attention_bias) {
    w.qkv_bias.resize(q + 2 * kv);
    LIL_RETURN_IF_ERROR(ReadInto(f, name("self_attn.q_proj.bias"), {q}, w.qkv_bias, 0));
    LIL_RETURN_IF_ERROR(ReadInto(f, name("self_attn.k_proj.bias"), {kv}, w.qkv_bias, q));
    LIL_RETURN_IF_ERROR(ReadInto(f, name("self_attn.v_proj.bias"), {kv}, w.qkv_bias, q + kv));
  }
  if (c.qk_norm) {
    LIL_ASSIGN_OR_RETURN(w.q_norm, f.ReadF32(name("self_attn.q_norm.weight"), {c.head_dim}));
    LIL_ASSIGN_OR_RETURN(w.k_norm, f.ReadF32(name("self_attn.k_norm.weight"), {c.head_dim}));
  }
  LIL_ASSIGN_OR_RETURN(w.o_proj, f.ReadF32(name("self_attn.o_proj.weight"), {h, q}));
  LIL_ASSIGN_OR_RETURN(w.mlp_norm, f.ReadF32(name("post_attention_layernorm.weight"), {h}));
  w.gate_up.resize(2 * inter * h);
  LIL_RETURN_IF_ERROR(ReadInto(f, name("mlp.gate_proj.weight"), {inter, h}, w.gate_up, 0));
  LIL_RETURN_IF_ERROR(ReadInto(f, name("mlp.up_proj.weight"), {inter, h}, w.gate_up, inter));
  LIL_ASSIGN_OR_RETURN(w.down, f.ReadF32(name("mlp.down_proj.weight"), {h, inter}));
  return w;
}

}  // namespace

absl::StatusOr<HostWeights> LoadHostWeights(const ModelFiles& f) {
  const ModelConfig& c = f.config();
  HostWeights w;
  LIL_ASSIGN_OR_RETURN(w.embed, f.ReadF32("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}));
  LIL_ASSIGN_OR_RETURN(w.final_norm, f.ReadF32("model.norm.weight", {c.hidden_size}));
  if (!c.tie_word_embeddings && f.Find("lm_head.weight") != nullptr) {
    LIL_ASSIGN_OR_RETURN(w.lm_head, f.ReadF32("lm_head.weight", {c.vocab_size, c.hidden_size}));
  } else if (!c.tie_word_embeddings) {
    return absl::NotFoundError(absl::StrCat(f.path(), ": tensor lm_head.weight is missing and ",
                                            "tie_word_embeddings is false"));
  }
  LIL_ASSIGN_OR_RETURN(w.layers, LoadLayersInParallel<HostLayerWeights>(c.num_layers, [&](int32_t i) { return LoadLayer(f, i); }));
  return w;
}

}  // namespace lil
