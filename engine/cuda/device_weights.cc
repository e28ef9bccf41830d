// File: engine/cuda/device_weights.cc
// Two passes over the same tensor list: the first lays out offsets (256-byte aligned), the
// second fetches each tensor as fp32 and copies it to its place, as bf16 or fp32.
#include "engine/cuda/device_weights.h"

#include <algorithm>
#include <cstring>
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

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// A tensor, or the block [row0, row0 + shape[0]) x [col0, col0 + shape[1]) of the tensor of
// shape `full` (a tensor-parallel slice; 1-D tensors slice rows only).
struct Piece {
  std::string name;
  std::vector<int64_t> shape;  // what is stored
  bool bf16 = true;
  int64_t offset = 0;  // bytes from the start of the allocation
  std::vector<int64_t> full;  // what is fetched; empty: shape
  int64_t row0 = 0, col0 = 0;
  int64_t numel() const { return Numel(shape); }
};

// The tensor list; each fused matrix is several pieces placed back to back.
struct Plan {
  std::vector<Piece> pieces;
  int64_t bytes = 0;
  int64_t Add(const std::string& name, std::vector<int64_t> shape, bool bf16, bool contiguous = false,
              std::vector<int64_t> full = {}, int64_t row0 = 0, int64_t col0 = 0) {
    Piece p{name, std::move(shape), bf16, 0, std::move(full), row0, col0};
    if (p.full == p.shape) p.full.clear();
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

Offsets Layout(const ModelConfig& c, bool has_lm_head, const TpShard& s, Plan& plan) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  const int64_t hd = c.head_dim, sq = int64_t{s.num_heads} * hd, skv = int64_t{s.num_kv_heads} * hd;
  const int64_t q0 = int64_t{s.heads_begin} * hd, kv0 = int64_t{s.kv_heads_begin} * hd;
  const int64_t si = s.inter_size, i0 = s.inter_begin;
  Offsets o;
  o.embed = plan.Add("model.embed_tokens.weight", {c.vocab_size, h}, true);
  o.final_norm = plan.Add("model.norm.weight", {h}, false);
  if (has_lm_head) {
    o.lm_head = plan.Add("lm_head.weight", {s.vocab_size, h}, true, false, {c.vocab_size, h}, s.vocab_begin);
  }
  for (int32_t i = 0; i < c.num_layers; ++i) {
    auto n = [&](const char* name) { return LayerTensorName(i, name); };
    Offsets::Layer l;
    l.attn_norm = plan.Add(n("input_layernorm.weight"), {h}, false);
    l.qkv = plan.Add(n("self_attn.q_proj.weight"), {sq, h}, true, false, {q, h}, q0);
    plan.Add(n("self_attn.k_proj.weight"), {skv, h}, true, true, {kv, h}, kv0);
    plan.Add(n("self_attn.v_proj.weight"), {skv, h}, true, true, {kv, h}, kv0);
    if (c.attention_bias) {
      l.qkv_bias = plan.Add(n("self_attn.q_proj.bias"), {sq}, false, false, {q}, q0);
      plan.Add(n("self_attn.k_proj.bias"), {skv}, false, true, {kv}, kv0);
      plan.Add(n("self_attn.v_proj.bias"), {skv}, false, true, {kv}, kv0);
    }
    if (c.qk_norm) {
      l.q_norm = plan.Add(n("self_attn.q_norm.weight"), {c.head_dim}, false);
      l.k_norm = plan.Add(n("self_attn.k_norm.weight"), {c.head_dim}, false);
    }
    l.o_proj = plan.Add(n("self_attn.o_proj.weight"), {h, sq}, true, false, {h, q}, 0, q0);
    l.mlp_norm = plan.Add(n("post_attention_layernorm.weight"), {h}, false);
    l.gate_up = plan.Add(n("mlp.gate_proj.weight"), {si, h}, true, false, {inter, h}, i0);
    plan.Add(n("mlp.up_proj.weight"), {si, h}, true, true, {inter, h}, i0);
    l.down = plan.Add(n("mlp.down_proj.weight"), {h, si}, true, false, {h, inter}, 0, i0);
    o.layers.push_back(l);
  }
  o.inv_freq = plan.Add("", {c.head_dim / 2}, false);  // computed, not fetched
  return o;
}

absl::Status CopyPiece(const Piece& p, const Fetch& fetch, char* base, std::vector<float>& f32,
                       std::vector<uint16_t>& b16) {
  if (p.full.empty()) {
    f32.resize(p.numel());
    LIL_RETURN_IF_ERROR(fetch(p.name, p.shape, f32.data()));
  } else {
    // Fetch the whole tensor, keep the block (rows in place, so no second buffer is needed:
    // each kept row moves to an earlier or equal position).
    f32.resize(Numel(p.full));
    LIL_RETURN_IF_ERROR(fetch(p.name, p.full, f32.data()));
    const int64_t rows = p.shape[0], cols = p.shape.size() > 1 ? p.shape[1] : 1;
    const int64_t full_cols = p.full.size() > 1 ? p.full[1] : 1;
    for (int64_t r = 0; r < rows; ++r) {
      std::memmove(f32.data() + r * cols, f32.data() + (p.row0 + r) * full_cols + p.col0, sizeof(float) * cols);
    }
    f32.resize(p.numel());
  }
  if (!p.bf16) {
    return CudaStatus(cudaMemcpy(base + p.offset, f32.data(), f32.size() * 4, cudaMemcpyHostToDevice),
                      p.name.c_str());
  }
  b16.resize(f32.size());
  for (size_t i = 0; i < f32.size(); ++i) b16[i] = F32ToBF16(f32[i]);
  return CudaStatus(cudaMemcpy(base + p.offset, b16.data(), b16.size() * 2, cudaMemcpyHostToDevice),
                    p.name.c_str());
}

absl::StatusOr<DeviceWeights> Upload(const ModelConfig& c, bool has_lm_head, const TpShard* shard,
                                     const Fetch& fetch) {
  const TpShard s = shard != nullptr ? *shard : MakeTpShard(c, 0, 1);
  Plan plan;
  const Offsets o = Layout(c, has_lm_head, s, plan);
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
  w.lm_head = has_lm_head ? b(o.lm_head) : w.embed + int64_t{s.vocab_begin} * c.hidden_size;
  w.inv_freq = f(o.inv_freq);
  for (const auto& l : o.layers) {
    w.layers.push_back({f(l.attn_norm), b(l.qkv), f(l.qkv_bias), f(l.q_norm), f(l.k_norm),
                        b(l.o_proj), f(l.mlp_norm), b(l.gate_up), b(l.down)});
  }
  return w;
}

}  // namespace

absl::StatusOr<DeviceWeights> UploadWeights(const ModelFiles& files, const TpShard* shard) {
  const ModelConfig& c = files.config();
  const bool has_lm_head = !c.tie_word_embeddings;
  if (has_lm_head && files.Find("lm_head.weight") == nullptr) {
    return absl::NotFoundError(absl::StrCat(files.path(), ": tensor lm_head.weight is missing and ",
                                            "tie_word_embeddings is false"));
  }
  return Upload(c, has_lm_head, shard, [&](const std::string& name, const std::vector<int64_t>& shape,
                                           float* out) { return files.ReadF32(name, shape, out); });
}

absl::StatusOr<DeviceWeights> UploadWeights(const ModelConfig& c, const HostWeights& w,
                                            const TpShard* shard) {
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
  return Upload(c, !w.lm_head.empty(), shard, [&](const std::string& name, const std::vector<int64_t>& shape,
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
