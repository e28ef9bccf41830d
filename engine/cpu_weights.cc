// File: engine/cpu_weights.cc
#include "engine/cpu_weights.h"

#include <cstring>

#include "common/status.h"
#include "engine/parallel_layers.h"

namespace lil {
namespace {

std::optional<cpu::QType> KernelType(DType t) {
  switch (t) {
    case DType::kF32: return cpu::QType::kF32;
    case DType::kF16: return cpu::QType::kF16;
    case DType::kBF16: return cpu::QType::kBF16;
    case DType::kQ8_0: return cpu::QType::kQ8_0;
    case DType::kQ4_0: return cpu::QType::kQ4_0;
    case DType::kQ4_1: return cpu::QType::kQ4_1;
    default: return std::nullopt;
  }
}

// Reads a [rows, cols] matrix keeping its format when the kernels support it (else fp32),
// with llama.cpp's q/k row permutation undone on whole rows.
absl::StatusOr<CpuMatrix> ReadMatrix(const ModelFiles& f, const std::string& name, int64_t rows,
                                     int64_t cols, bool force_f32) {
  const TensorView* t = f.Find(name);
  std::optional<cpu::QType> kt = t != nullptr ? KernelType(t->dtype) : std::nullopt;
  if (force_f32 || !kt || t->shape != std::vector<int64_t>{rows, cols} ||
      (cpu::QTypeIsBlock(*kt) && cols % 32 != 0)) {
    LIL_ASSIGN_OR_RETURN(std::vector<float> w, f.ReadF32(name, {rows, cols}));  // errors named there
    return CpuMatrixFromF32(w, rows, cols);
  }
  CpuMatrix m;
  m.type = *kt;
  m.rows = rows;
  m.cols = cols;
  const size_t rb = cpu::QRowBytes(m.type, cols);
  if (t->nbytes != rb * rows) {
    return DataLoss(f.path(), ": tensor ", name, " holds ", t->nbytes, " bytes, expected ", rb * rows);
  }
  m.bytes.assign(t->data, t->data + t->nbytes);
  if (const int64_t heads = f.PermutedHeads(name); heads > 0) {
    const int64_t d = rows / heads, half = d / 2;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        for (int64_t j = 0; j < 2; ++j) {
          std::memcpy(m.bytes.data() + (h * d + j * half + i) * rb, t->data + (h * d + i * 2 + j) * rb, rb);
        }
      }
    }
  }
  return m;
}

// Stacks matrices with the same columns into one (rows concatenated); falls back to fp32
// for all of them when their formats differ.
absl::StatusOr<CpuMatrix> ReadStacked(const ModelFiles& f, const std::vector<std::string>& names,
                                      const std::vector<int64_t>& rows, int64_t cols) {
  std::vector<CpuMatrix> parts;
  for (size_t i = 0; i < names.size(); ++i) {
    LIL_ASSIGN_OR_RETURN(CpuMatrix m, ReadMatrix(f, names[i], rows[i], cols, false));
    parts.push_back(std::move(m));
  }
  bool same = true;
  for (const CpuMatrix& p : parts) same &= p.type == parts[0].type;
  if (!same) {
    parts.clear();
    for (size_t i = 0; i < names.size(); ++i) {
      LIL_ASSIGN_OR_RETURN(CpuMatrix m, ReadMatrix(f, names[i], rows[i], cols, true));
      parts.push_back(std::move(m));
    }
  }
  CpuMatrix out;
  out.type = parts[0].type;
  out.cols = cols;
  for (CpuMatrix& p : parts) {
    out.rows += p.rows;
    out.bytes.insert(out.bytes.end(), p.bytes.begin(), p.bytes.end());
  }
  return out;
}

absl::StatusOr<CpuLayerWeights> LoadLayer(const ModelFiles& f, int32_t i) {
  const ModelConfig& c = f.config();
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  auto name = [&](const char* suffix) { return LayerTensorName(i, suffix); };
  CpuLayerWeights w;
  LIL_ASSIGN_OR_RETURN(w.attn_norm, f.ReadF32(name("input_layernorm.weight"), {h}));
  LIL_ASSIGN_OR_RETURN(w.qkv, ReadStacked(f, {name("self_attn.q_proj.weight"), name("self_attn.k_proj.weight"),
                                              name("self_attn.v_proj.weight")}, {q, kv, kv}, h));
  if (c.attention_bias) {
    for (const char* b : {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}) {
      const int64_t n = std::string(b).find("q_proj") != std::string::npos ? q : kv;
      LIL_ASSIGN_OR_RETURN(std::vector<float> v, f.ReadF32(name(b), {n}));
      w.qkv_bias.insert(w.qkv_bias.end(), v.begin(), v.end());
    }
  }
  if (c.qk_norm) {
    LIL_ASSIGN_OR_RETURN(w.q_norm, f.ReadF32(name("self_attn.q_norm.weight"), {c.head_dim}));
    LIL_ASSIGN_OR_RETURN(w.k_norm, f.ReadF32(name("self_attn.k_norm.weight"), {c.head_dim}));
  }
  LIL_ASSIGN_OR_RETURN(w.o_proj, ReadMatrix(f, name("self_attn.o_proj.weight"), h, q, false));
  LIL_ASSIGN_OR_RETURN(w.mlp_norm, f.ReadF32(name("post_attention_layernorm.weight"), {h}));
  LIL_ASSIGN_OR_RETURN(w.gate_up, ReadStacked(f, {name("mlp.gate_proj.weight"), name("mlp.up_proj.weight")},
                                              {inter, inter}, h));
  LIL_ASSIGN_OR_RETURN(w.down, ReadMatrix(f, name("mlp.down_proj.weight"), h, inter, false));
  return w;
}

}  // namespace

CpuMatrix CpuMatrixFromF32(const std::vector<float>& w, int64_t rows, int64_t cols) {
  CpuMatrix m;
  m.type = cpu::QType::kF32;
  m.rows = rows;
  m.cols = cols;
  m.bytes.resize(w.size() * sizeof(float));
  std::memcpy(m.bytes.data(), w.data(), m.bytes.size());
  return m;
}

absl::StatusOr<CpuWeights> LoadCpuWeights(const ModelFiles& f) {
  const ModelConfig& c = f.config();
  CpuWeights w;
  LIL_ASSIGN_OR_RETURN(w.embed, ReadMatrix(f, "model.embed_tokens.weight", c.vocab_size, c.hidden_size, false));
  LIL_ASSIGN_OR_RETURN(w.final_norm, f.ReadF32("model.norm.weight", {c.hidden_size}));
  if (!c.tie_word_embeddings) {
    if (f.Find("lm_head.weight") == nullptr) {
      return absl::NotFoundError(absl::StrCat(f.path(), ": tensor lm_head.weight is missing and ",
                                              "tie_word_embeddings is false"));
    }
    LIL_ASSIGN_OR_RETURN(w.lm_head, ReadMatrix(f, "lm_head.weight", c.vocab_size, c.hidden_size, false));
  }
  LIL_ASSIGN_OR_RETURN(w.layers, LoadLayersInParallel<CpuLayerWeights>(c.num_layers, [&](int32_t i) { return LoadLayer(f, i); }));
  return w;
}

CpuWeights CpuWeightsFromHost(const HostWeights& h, const ModelConfig& c) {
  CpuWeights w;
  w.embed = CpuMatrixFromF32(h.embed, c.vocab_size, c.hidden_size);
  w.final_norm = h.final_norm;
  if (!h.lm_head.empty()) w.lm_head = CpuMatrixFromF32(h.lm_head, c.vocab_size, c.hidden_size);
  for (const HostLayerWeights& l : h.layers) {
    CpuLayerWeights o;
    o.attn_norm = l.attn_norm;
    o.qkv = CpuMatrixFromF32(l.qkv, c.q_dim() + 2 * c.kv_dim(), c.hidden_size);
    o.qkv_bias = l.qkv_bias;
    o.q_norm = l.q_norm;
    o.k_norm = l.k_norm;
    o.o_proj = CpuMatrixFromF32(l.o_proj, c.hidden_size, c.q_dim());
    o.mlp_norm = l.mlp_norm;
    o.gate_up = CpuMatrixFromF32(l.gate_up, 2 * c.intermediate_size, c.hidden_size);
    o.down = CpuMatrixFromF32(l.down, c.hidden_size, c.intermediate_size);
    w.layers.push_back(std::move(o));
  }
  return w;
}

}  // namespace lil
