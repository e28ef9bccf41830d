// File: engine/format/model_family.cc
// Family table (from the published config.json of Llama-3.1-8B, Qwen2.5-7B, Qwen3-8B and
// SmolLM2-135M) and the tensor list / config.json writer for each.
#include "engine/format/model_family.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace lil {
namespace {

using json = nlohmann::json;

std::vector<ModelFamilyConfig> Families() {
  ModelFamilyConfig llama{"llama3-8b", "LlamaForCausalLM", "llama", 4096, 14336, 32, 32, 8, 128,
                          128256, 131072, 500000.0, 1e-5};
  llama.llama3_rope_scaling = true;
  llama.tokenizer_style = TokenizerStyle::kLlama3;
  ModelFamilyConfig qwen25{"qwen2.5-7b", "Qwen2ForCausalLM", "qwen2", 3584, 18944, 28, 28, 4, 128,
                           152064, 131072, 1000000.0, 1e-6};
  qwen25.attention_bias = true;
  qwen25.tokenizer_style = TokenizerStyle::kQwen2;
  ModelFamilyConfig qwen3{"qwen3-8b", "Qwen3ForCausalLM", "qwen3", 4096, 12288, 36, 32, 8, 128,
                          151936, 40960, 1000000.0, 1e-6};
  qwen3.qk_norm = true;
  qwen3.tokenizer_style = TokenizerStyle::kQwen3;
  ModelFamilyConfig smol{"smollm2-135m", "LlamaForCausalLM", "llama", 576, 1536, 30, 9, 3, 64,
                         49152, 8192, 100000.0, 1e-5};
  smol.tie_word_embeddings = true;
  smol.tokenizer_style = TokenizerStyle::kSmolLM2;
  return {llama, qwen25, qwen3, smol};
}

}  // namespace

std::vector<std::string> ModelFamilyNames() {
  std::vector<std::string> names;
  for (const auto& f : Families()) names.push_back(f.family);
  return names;
}

absl::StatusOr<ModelFamilyConfig> ModelFamilyLike(std::string_view family) {
  for (const auto& f : Families()) {
    if (f.family == family) return f;
  }
  return InvalidArgument("unknown model family \"", std::string(family), "\" (known: ",
                         absl::StrJoin(ModelFamilyNames(), ", "), ")");
}

absl::Status ValidateModelFamilyConfig(const ModelFamilyConfig& c) {
  const std::pair<const char*, int64_t> sizes[] = {
      {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
      {"num_layers", c.num_layers}, {"num_heads", c.num_heads}, {"num_kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim}, {"vocab_size", c.vocab_size}, {"max_position", c.max_position}};
  for (const auto& [name, v] : sizes) {
    if (v <= 0 || v > (int64_t{1} << 24)) return InvalidArgument(name, " must be in [1, 2^24], got ", v);
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return InvalidArgument("num_heads (", c.num_heads, ") must be a multiple of num_kv_heads (",
                           c.num_kv_heads, ")");
  }
  if (c.head_dim % 2 != 0) return InvalidArgument("head_dim must be even for RoPE, got ", c.head_dim);
  if (c.model_type == "qwen2" && c.head_dim * c.num_heads != c.hidden_size) {
    // transformers' Qwen2 derives head_dim = hidden_size / num_attention_heads.
    return InvalidArgument("qwen2 needs head_dim * heads == hidden_size, got ", c.head_dim, " * ",
                           c.num_heads, " != ", c.hidden_size);
  }
  return absl::OkStatus();
}

std::vector<TensorSpec> ModelTensorSpecs(const ModelFamilyConfig& c, DType dtype) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  std::vector<TensorSpec> t;
  t.push_back({"model.embed_tokens.weight", dtype, {c.vocab_size, h}});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    t.push_back({p + "input_layernorm.weight", dtype, {h}});
    t.push_back({p + "self_attn.q_proj.weight", dtype, {q, h}});
    t.push_back({p + "self_attn.k_proj.weight", dtype, {kv, h}});
    t.push_back({p + "self_attn.v_proj.weight", dtype, {kv, h}});
    if (c.attention_bias) {
      t.push_back({p + "self_attn.q_proj.bias", dtype, {q}});
      t.push_back({p + "self_attn.k_proj.bias", dtype, {kv}});
      t.push_back({p + "self_attn.v_proj.bias", dtype, {kv}});
    }
    if (c.qk_norm) {
      t.push_back({p + "self_attn.q_norm.weight", dtype, {c.head_dim}});
      t.push_back({p + "self_attn.k_norm.weight", dtype, {c.head_dim}});
    }
    t.push_back({p + "self_attn.o_proj.weight", dtype, {h, q}});
    t.push_back({p + "post_attention_layernorm.weight", dtype, {h}});
    t.push_back({p + "mlp.gate_proj.weight", dtype, {c.intermediate_size, h}});
    t.push_back({p + "mlp.up_proj.weight", dtype, {c.intermediate_size, h}});
    t.push_back({p + "mlp.down_proj.weight", dtype, {h, c.intermediate_size}});
  }
  t.push_back({"model.norm.weight", dtype, {h}});
  if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", dtype, {c.vocab_size, h}});
  return t;
}

namespace {

json EosJson(const SpecialTokenIds& ids) {
  if (ids.eos.size() == 1) return ids.eos[0];
  return ids.eos;
}
json IdOrNull(int64_t id) { return id >= 0 ? json(id) : json(nullptr); }

}  // namespace

std::string ConfigJson(const ModelFamilyConfig& c, DType dtype, const SpecialTokenIds& ids) {
  json j = {
      {"architectures", {c.architecture}},
      {"model_type", c.model_type},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.rms_norm_eps},
      {"hidden_act", "silu"},
      {"initializer_range", 0.02},
      {"attention_dropout", 0.0},
      {"attention_bias", c.attention_bias},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"use_cache", true},
      {"torch_dtype", dtype == DType::kF32 ? "float32" : dtype == DType::kF16 ? "float16" : "bfloat16"},
      {"bos_token_id", IdOrNull(ids.bos)},
      {"eos_token_id", EosJson(ids)},
      {"rope_scaling", nullptr},
  };
  if (c.model_type == "llama") {
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  if (c.llama3_rope_scaling) {
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  }
  if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = c.num_layers;
  }
  return j.dump(2) + "\n";
}

std::string GenerationConfigJson(const SpecialTokenIds& ids) {
  json j = {{"bos_token_id", IdOrNull(ids.bos)}, {"eos_token_id", EosJson(ids)},
            {"do_sample", true}, {"temperature", 0.6}, {"top_p", 0.9}};
  if (ids.pad >= 0) j["pad_token_id"] = ids.pad;
  return j.dump(2) + "\n";
}

}  // namespace lil
