// File: engine/cuda/device_weights.cc
// Two passes over the same tensor list: the first lays out offsets (256-byte aligned), the
// second fetches each tensor as fp32 and copies it to its place, as bf16 or fp32.
#include "engine/cuda/device_weights.h"

#include <algorithm>
#include <functional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "common/status.h"
#include "engine/format/dequant.h"

namespace lil::cuda {
namespace {

// Fills `out` (numel floats) with the tensor `name` of `shape`.
using Fetch = std::function<absl::Status(const std::string& name, const std::vector<int64_t>& shape,
                                         float* out)>;

struct Piece {
  std::string name;
  std::vector<int64_t> shape;
  bool bf16 = true;
  int64_t offset = 0;  // bytes from the start of the allocation
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
};

// The tensor list; each fused matrix is several pieces placed back to back.
struct Plan {
  std::vector<Piece> pieces;
  int64_t bytes = 0;
  int64_t Add(const std::string& name, std::vector<int64_t> shape, bool bf16, bool contiguous = false) {
    Piece p{name, std::move(shape), bf16, 0};
    if (!contiguous) bytes = (bytes + 255) / 256 * 256;
    p.offset = bytes;
    bytes += p.numel() * (bf16 ? 2 : 4);
    pieces.push_back(p);
    return p.offset;
  }
};

struct Offsets {
  int64_t embed, final_norm, lm_head = -1, inv_freq;
  struct Layer {
    int64_t attn_norm, qkv, qkv_bias = -1, q_norm = -1, k_norm = -1, o_proj, mlp_norm, gate_up, down;
  };
  std::vector<Layer> layers;
};

Offsets Layout(const ModelConfig& c, bool has_lm_head, Plan& plan) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  Offsets o;
  o.embed = plan.Add("model.embed_tokens.weight", {c.vocab_size, h}, true);
  o.final_norm = plan.Add("model.norm.weight", {h}, false);
  if (has_lm_head) o.lm_head = plan.Add("lm_head.weight", {c.vocab_size, h}, true);
  for (int32_t i = 0; i < c.num_layers; ++i) {
    auto n = [&](const char* s) { return LayerTensorName(i, s); };
    Offsets::Layer l;
    l.attn_norm = plan.Add(n("input_layernorm.weight"), {h}, false);
    l.qkv = plan.Add(n("self_attn.q_proj.weight"), {q, h}, true);
    plan.Add(n("self_attn.k_proj.weight"), {kv, h}, true, true);
    plan.Add(n("self_attn.v_proj.weight"), {kv, h}, true, true);
    if (c.attention_bias) {
      l.qkv_bias = plan.Add(n("self_attn.q_proj.bias"), {q}, false);
      plan.Add(n("self_attn.k_proj.bias"), {kv}, false, true);
      plan.Add(n("self_attn.v_proj.bias"), {kv}, false, true);
    }
    if (c.qk_norm) {
      l.q_norm = plan.Add(n("self_attn.q_norm.weight"), {c.head_dim}, false);
      l.k_norm = plan.Add(n("self_attn.k_norm.weight"), {c.head_dim}, false);
    }
    l.o_proj = plan.Add(n("self_attn.o_proj.weight"), {h, q}, true);
    l.mlp_norm = plan.Add(n("post_attention_layernorm.weight"), {h}, false);
    l.gate_up = plan.Add(n("mlp.gate_proj.weight"), {inter, h}, true);
    plan.Add(n("mlp.up_proj.weight"), {inter, h}, true, true);
    l.down = plan.Add(n("mlp.down_proj.weight"), {h, inter}, true);
    o.layers.push_back(l);
  }
  o.inv_freq = plan.Add("", {c.head_dim / 2}, false);  // computed, not fetched
  return o;
}

absl::Status CopyPiece(const Piece& p, const Fetch& fetch, char* base, std::vector<float>& f32,
                       std::vector<uint16_t>& b16) {
  f32.resize(p.numel());
  LIL_RETURN_IF_ERROR(fetch(p.name, p.shape, f32.data()));
  if (!p.bf16) {
    return CudaStatus(cudaMemcpy(base + p.offset, f32.data(), f32.size() * 4, cudaMemcpyHostToDevice),
                      p.name.c_str());
  }
  b16.resize(f32.size());
  for (size_t i = 0; i < f32.size(); ++i) b16[i] = F32ToBF16(f32[i]);
  return CudaStatus(cudaMemcpy(base + p.offset, b16.data(), b16.size() * 2, cudaMemcpyHostToDevice),
                    p.name.c_str());
}

absl::StatusOr<DeviceWeights> Upload(const ModelConfig& c, bool has_lm_head, const Fetch& fetch) {
  Plan plan;
  const Offsets o = Layout(c, has_lm_head, plan);
  DeviceWeights w;
  LIL_RETURN_IF_ERROR(w.storage.Reserve(plan.bytes));
  w.bytes = plan.bytes;
  char* base = w.storage.get<char>();
  // Threads share the pieces round-robin: conversion (dequantization) dominates.
  const int32_t threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::vector<absl::Status> status(threads);
  std::vector<std::thread> pool;
  int device = 0;
  LIL_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  const size_t fetched = plan.pieces.size() - 1;  // the last piece is inv_freq
  for (int32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      cudaSetDevice(device);
      std::vector<float> f32;
      std::vector<uint16_t> b16;
      for (size_t i = t; i < fetched && status[t].ok(); i += threads) {
        status[t] = CopyPiece(plan.pieces[i], fetch, base, f32, b16);
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& s : status) LIL_RETURN_IF_ERROR(s);
  const std::vector<float> inv_freq = c.RopeInvFreq();
  LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(base + o.inv_freq, inv_freq.data(), inv_freq.size() * 4,
                                      cudaMemcpyHostToDevice));
  auto f = [&](int64_t off) { return off < 0 ? nullptr : reinterpret_cast<const float*>(base + off); };
  auto b = [&](int64_t off) { return off < 0 ? nullptr : reinterpret_cast<const bf16*>(base + off); };
  w.embed = b(o.embed);
  w.final_norm = f(o.final_norm);
  w.lm_head = has_lm_head ? b(o.lm_head) : w.embed;
  w.inv_freq = f(o.inv_freq);
  for (const auto& l : o.layers) {
    w.layers.push_back({f(l.attn_norm), b(l.qkv), f(l.qkv_bias), f(l.q_norm), f(l.k_norm),
                        b(l.o_proj), f(l.mlp_norm), b(l.gate_up), b(l.down)});
  }
  return w;
}

}  // namespace

absl::StatusOr<DeviceWeights> UploadWeights(const ModelFiles& files) {
  const ModelConfig& c = files.config();
  const bool has_lm_head = !c.tie_word_embeddings;
  if (has_lm_head && files.Find("lm_head.weight") == nullptr) {
    return absl::NotFoundError(absl::StrCat(files.path(), ": tensor lm_head.weight is missing and ",
                                            "tie_word_embeddings is false"));
  }
  return Upload(c, has_lm_head, [&](const std::string& name, const std::vector<int64_t>& shape,
                                    float* out) { return files.ReadF32(name, shape, out); });
}

absl::StatusOr<DeviceWeights> UploadWeights(const ModelConfig& c, const HostWeights& w) {
  // Host tensors by canonical name; fused host matrices are sliced back into pieces.
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  absl::flat_hash_map<std::string, const float*> src;
  src["model.embed_tokens.weight"] = w.embed.data();
  src["model.norm.weight"] = w.final_norm.data();
  if (!w.lm_head.empty()) src["lm_head.weight"] = w.lm_head.data();
  for (int32_t i = 0; i < c.num_layers; ++i) {
    const HostLayerWeights& l = w.layers[i];
    auto n = [&](const char* s) { return LayerTensorName(i, s); };
    src[n("input_layernorm.weight")] = l.attn_norm.data();
    src[n("self_attn.q_proj.weight")] = l.qkv.data();
    src[n("self_attn.k_proj.weight")] = l.qkv.data() + q * h;
    src[n("self_attn.v_proj.weight")] = l.qkv.data() + (q + kv) * h;
    if (!l.qkv_bias.empty()) {
      src[n("self_attn.q_proj.bias")] = l.qkv_bias.data();
      src[n("self_attn.k_proj.bias")] = l.qkv_bias.data() + q;
      src[n("self_attn.v_proj.bias")] = l.qkv_bias.data() + q + kv;
    }
    src[n("self_attn.q_norm.weight")] = l.q_norm.data();
    src[n("self_attn.k_norm.weight")] = l.k_norm.data();
    src[n("self_attn.o_proj.weight")] = l.o_proj.data();
    src[n("post_attention_layernorm.weight")] = l.mlp_norm.data();
    src[n("mlp.gate_proj.weight")] = l.gate_up.data();
    src[n("mlp.up_proj.weight")] = l.gate_up.data() + inter * h;
    src[n("mlp.down_proj.weight")] = l.down.data();
  }
  return Upload(c, !w.lm_head.empty(), [&](const std::string& name, const std::vector<int64_t>& shape,
                                           float* out) -> absl::Status {
    auto it = src.find(name);
    if (it == src.end() || it->second == nullptr) {
      return absl::NotFoundError(absl::StrCat("host weights: tensor ", name, " is missing"));
    }
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::copy_n(it->second, n, out);
    return absl::OkStatus();
  });
}

}  // namespace lil::cuda
