// File: engine/parallel/tp_shard.cc
#include "engine/parallel/tp_shard.h"

#include <cstring>

#include "common/status.h"

namespace lil {
namespace {

int32_t SplitBegin(int32_t n, int32_t rank, int32_t world) {
  return static_cast<int32_t>(static_cast<int64_t>(n) * rank / world);
}

// Rows [row0, row0 + n) of each (start, n) range, stacked in order.
CpuMatrix TakeRows(const CpuMatrix& m, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const size_t rb = cpu::QRowBytes(m.type, m.cols);
  CpuMatrix out;
  out.type = m.type;
  out.cols = m.cols;
  for (const auto& [row0, n] : ranges) {
    out.rows += n;
    out.bytes.insert(out.bytes.end(), m.bytes.begin() + row0 * rb,
                     m.bytes.begin() + (row0 + n) * rb);
  }
  return out;
}

// Columns [col0, col0 + n) of every row. Byte slices when the columns fall on whole elements
// (fp32/fp16/bf16) or whole 32-weight blocks; else the rows are expanded to fp32.
CpuMatrix TakeColumns(const CpuMatrix& m, int64_t col0, int64_t n) {
  CpuMatrix out;
  out.rows = m.rows;
  out.cols = n;
  if (!cpu::QTypeIsBlock(m.type) || (col0 % 32 == 0 && n % 32 == 0)) {
    out.type = m.type;
    const size_t rb = cpu::QRowBytes(m.type, m.cols), skip = cpu::QRowBytes(m.type, col0);
    const size_t take = cpu::QRowBytes(m.type, n);
    out.bytes.resize(take * m.rows);
    for (int64_t r = 0; r < m.rows; ++r) {
      std::memcpy(out.bytes.data() + r * take, m.bytes.data() + r * rb + skip, take);
    }
    return out;
  }
  out.type = cpu::QType::kF32;
  out.bytes.resize(sizeof(float) * n * m.rows);
  std::vector<float> row(m.cols);
  for (int64_t r = 0; r < m.rows; ++r) {
    cpu::QDequantRows(m.view(), r, 1, row.data());
    std::memcpy(out.bytes.data() + r * n * sizeof(float), row.data() + col0, n * sizeof(float));
  }
  return out;
}

template <typename T>
std::vector<T> Slice(const std::vector<T>& v,
                     const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  std::vector<T> out;
  for (const auto& [first, n] : ranges)
    out.insert(out.end(), v.begin() + first, v.begin() + first + n);
  return out;
}

}  // namespace

absl::Status CheckTensorParallel(const ModelConfig& c, int32_t world) {
  if (world < 1) return InvalidArgument("tensor_parallel must be >= 1, got ", world);
  if (c.num_heads % world != 0 || c.num_kv_heads % world != 0) {
    return InvalidArgument(
        "tensor_parallel ", world, " does not divide the model's heads (num_heads ", c.num_heads,
        ", num_kv_heads ", c.num_kv_heads,
        "): each rank must hold whole query and KV heads; use a divisor of ", c.num_kv_heads);
  }
  if (c.intermediate_size < world || c.vocab_size < world) {
    return InvalidArgument("tensor_parallel ", world, " exceeds the model's intermediate_size (",
                           c.intermediate_size, ") or vocab_size (", c.vocab_size, ")");
  }
  return absl::OkStatus();
}

TpShard MakeTpShard(const ModelConfig& c, int32_t rank, int32_t world) {
  TpShard s;
  s.rank = rank;
  s.world = world;
  s.num_heads = c.num_heads / world;
  s.heads_begin = rank * s.num_heads;
  s.num_kv_heads = c.num_kv_heads / world;
  s.kv_heads_begin = rank * s.num_kv_heads;
  s.inter_begin = SplitBegin(c.intermediate_size, rank, world);
  s.inter_size = SplitBegin(c.intermediate_size, rank + 1, world) - s.inter_begin;
  s.vocab_begin = SplitBegin(c.vocab_size, rank, world);
  s.vocab_size = SplitBegin(c.vocab_size, rank + 1, world) - s.vocab_begin;
  s.vocab_stride = (c.vocab_size + world - 1) / world;
  return s;
}

ModelConfig ShardConfig(const ModelConfig& c, const TpShard& s) {
  ModelConfig l = c;
  l.num_heads = s.num_heads;
  l.num_kv_heads = s.num_kv_heads;
  l.intermediate_size = s.inter_size;
  l.vocab_size = s.vocab_size;
  return l;
}

CpuWeights ShardCpuWeights(const CpuWeights& full, const ModelConfig& c, const TpShard& s) {
  const int64_t hd = c.head_dim, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  const int64_t q0 = s.heads_begin * hd, qn = s.num_heads * hd;
  const int64_t kv0 = s.kv_heads_begin * hd, kvn = s.num_kv_heads * hd;
  const std::vector<std::pair<int64_t, int64_t>> qkv_rows = {
      {q0, qn}, {q + kv0, kvn}, {q + kv + kv0, kvn}};
  const std::vector<std::pair<int64_t, int64_t>> gate_up_rows = {
      {s.inter_begin, s.inter_size}, {inter + s.inter_begin, s.inter_size}};
  const std::vector<std::pair<int64_t, int64_t>> vocab_rows = {{s.vocab_begin, s.vocab_size}};
  CpuWeights w;
  w.embed = TakeRows(full.embed, vocab_rows);
  if (!full.lm_head.empty()) w.lm_head = TakeRows(full.lm_head, vocab_rows);
  w.final_norm = full.final_norm;
  for (const CpuLayerWeights& l : full.layers) {
    CpuLayerWeights o;
    o.attn_norm = l.attn_norm;
    o.qkv = TakeRows(l.qkv, qkv_rows);
    if (!l.qkv_bias.empty()) o.qkv_bias = Slice(l.qkv_bias, qkv_rows);
    o.q_norm = l.q_norm;
    o.k_norm = l.k_norm;
    o.o_proj = TakeColumns(l.o_proj, q0, qn);
    o.mlp_norm = l.mlp_norm;
    o.gate_up = TakeRows(l.gate_up, gate_up_rows);
    o.down = TakeColumns(l.down, s.inter_begin, s.inter_size);
    w.layers.push_back(std::move(o));
  }
  return w;
}

absl::Status GatherVocabParallel(Communicator& comm, const ModelConfig& c, const TpShard& s,
                                 const float* local, int32_t rows, std::vector<float>* full) {
  const int64_t stride = s.vocab_stride, vocab = c.vocab_size;
  std::vector<float> padded(static_cast<size_t>(rows) * stride, 0.0f);
  for (int32_t i = 0; i < rows; ++i) {
    std::memcpy(padded.data() + i * stride, local + static_cast<int64_t>(i) * s.vocab_size,
                sizeof(float) * s.vocab_size);
  }
  std::vector<float> gathered(padded.size() * s.world);
  LIL_RETURN_IF_ERROR(
      comm.AllGather(padded.data(), static_cast<int64_t>(padded.size()), gathered.data()));
  full->resize(static_cast<size_t>(rows) * vocab);
  for (int32_t r = 0; r < s.world; ++r) {
    const int64_t begin = SplitBegin(c.vocab_size, r, s.world);
    const int64_t n = SplitBegin(c.vocab_size, r + 1, s.world) - begin;
    const float* part = gathered.data() + static_cast<int64_t>(r) * padded.size();
    for (int32_t i = 0; i < rows; ++i) {
      std::memcpy(full->data() + i * vocab + begin, part + i * stride, sizeof(float) * n);
    }
  }
  return absl::OkStatus();
}

}  // namespace lil
