// File: engine/parallel/tp_shard.h
// How a model is split over the `world` ranks of a tensor-parallel group (Megatron-style;
// the table is in docs/PARALLEL.md) and the slicing of CPU weights for one rank:
//
//   fused qkv  [q | k | v] rows     column-parallel: rank r keeps its query heads and its KV heads
//   o_proj     [hidden, q_dim]      row-parallel: columns of its query heads, then AllReduceSum
//   gate_up    [gate | up] rows     column-parallel: its intermediate slice of gate and of up
//   down       [hidden, inter]      row-parallel: columns of its intermediate slice, AllReduceSum
//   embed      [vocab, hidden]      vocab-parallel: its vocab rows; a token outside them reads
//                                   zeros, then AllReduceSum (exact: the other ranks add 0)
//   lm_head    [vocab, hidden]      vocab-parallel rows (the embed slice when tied), AllGather
//   norms                           replicated
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/cpu_weights.h"
#include "engine/model_config.h"
#include "engine/parallel/communicator.h"

namespace lil {

struct TpShard {
  int32_t rank = 0;
  int32_t world = 1;
  int32_t heads_begin = 0, num_heads = 0;        // query heads [heads_begin, +num_heads)
  int32_t kv_heads_begin = 0, num_kv_heads = 0;  // KV heads (and their pages' storage)
  int32_t inter_begin = 0, inter_size = 0;       // intermediate features
  int32_t vocab_begin = 0, vocab_size = 0;       // vocabulary rows (embedding and LM head)
  int32_t vocab_stride = 0;  // ceil(vocab / world): each rank's width in gathered logits
};

// INVALID_ARGUMENT naming the head counts when `world` does not divide num_heads and
// num_kv_heads (or is < 1, or exceeds the vocabulary / intermediate size).
absl::Status CheckTensorParallel(const ModelConfig& c, int32_t world);

// Rank `rank`'s share. Heads split evenly (CheckTensorParallel holds); the intermediate
// features and the vocabulary split as evenly as they can: rank r gets
// [floor(n r / world), floor(n (r + 1) / world)).
TpShard MakeTpShard(const ModelConfig& c, int32_t rank, int32_t world);

// The config the rank's forward pass computes with: heads, KV heads, intermediate size and
// vocabulary of the shard; everything else as `c`.
ModelConfig ShardConfig(const ModelConfig& c, const TpShard& s);

// The rank's slice of the whole model's weights (quantized matrices stay quantized; a column
// slice that does not fall on 32-weight blocks is expanded to fp32).
CpuWeights ShardCpuWeights(const CpuWeights& full, const ModelConfig& c, const TpShard& s);

// Vocab-parallel logits -> full logits. `local` is [rows, s.vocab_size]; on return `full`
// is [rows, vocab] on every rank. One AllGather of [rows, vocab_stride] per rank (padded).
absl::Status GatherVocabParallel(Communicator& comm, const ModelConfig& c, const TpShard& s,
                                 const float* local, int32_t rows, std::vector<float>* full);

}  // namespace lil
