// File: engine/cuda/cuda_forward.cc
// The kernels of one step (capturable: no host synchronization, no allocation): embedding,
// then per layer norm -> QKV GEMM -> q/k norm + RoPE + paged KV write -> Quest metadata ->
// (Quest selection) -> paged attention (split-KV, or the tensor-core prefill kernel) -> O GEMM
// -> residual + norm -> gate/up GEMM -> SwiGLU -> down GEMM (unless LILSERVE_FUSED_NORM=0,
// one-token steps run the norms, residual adds and SwiGLU inside the GEMVs (under tensor
// parallelism the residual add inside the all-reduce), the KV write keeps the Quest metadata,
// and the qkv GEMV applies RoPE and writes the KV slots itself); final norm of the logits rows, LM head
// (vocab-parallel under TP), greedy on the GPU. A one-token fused step runs no norm kernel: the
// embedding writes xb for layer 0's qkv GEMV, and the LM head's GEMV normalizes xb when the final
// norm's weight is folded into it (head_norm_folded_).
#include <cmath>

#include "common/status.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_work.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/mlp_fused.h"
#include "kernels/cuda/quest.h"
#include "kernels/cuda/sample.h"

namespace lil::cuda {

absl::Status CudaBackend::Attention(int32_t layer, const StepInputs& in, const Work& w) {
  const ModelConfig& c = local_;
  const Work::Layout& l = w.layouts[in.layer_layout[layer]];
  const PagedKvViewBf16 view = LayerView(layer);
  int32_t* pages = w.pages_rw + l.pages;
  int32_t* logical = w.pages_rw + l.logical;
  const bool mass = in.mass_size > 0;
  const bool split = !mass && l.split.min_chunk_entries > 0;  // the attention below is split
  if (l.num_quest > 0) {
    QuestSelectParams qp;
    qp.q = w.q;
    qp.kv = view;
    qp.num_seqs = l.num_quest;
    qp.num_heads = c.num_heads;
    qp.q_row = w.I(l.q_row);
    qp.cand_begin = w.I(l.cand_begin);
    qp.cand_count = w.I(l.cand_count);
    qp.cand_pages = w.I(w.cand_pages);
    qp.cand_logical = w.I(w.cand_logical);
    qp.budget_pages = w.I(l.budget);
    qp.out_begin = w.I(l.out_begin);
    qp.out_pages = pages;
    qp.out_logical = logical;
    qp.key_stride = l.max_cand;  // also sizes a selection CTA's own key buffer
    if (l.quest_split) qp.keys = w.quest_keys;
    if (split) qp.attend_split = l.split;
    qp.prefetch_entries = quest_prefetch_ >= 0 ? quest_prefetch_ : QuestPrefetchEntries(l.wide ? kWideWarps : kSplitWarps);
    LIL_CUDA_RETURN_IF_ERROR(QuestSelect(qp, stream_));
  }
  if (mass) LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(w.entry_mass, 0, sizeof(float) * std::max(1, l.nnz), stream_));
  PagedAttentionParams ap;
  ap.q = w.q;
  ap.out = w.attn;
  ap.kv = view;
  ap.num_tokens = in.num_tokens;
  ap.num_heads = c.num_heads;
  ap.token_pos = w.I(w.pos);
  ap.token_seq = w.I(w.seq);
  ap.row_indptr = w.I(l.indptr);
  ap.rows_per_seq = l.per_seq;
  ap.row_pages = pages;
  ap.row_logical = logical;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  ap.page_mass = mass ? w.entry_mass : nullptr;
  ap.rows_static = l.num_quest == 0;  // else QuestSelect (the kernel just before) wrote the rows
  ap.tensor_cores = TensorCoreAttention(in.num_tokens);  // the kernel SplitTarget sized the split for
  ap.tc_stages = tc_stages_;
  ap.tc_tiles = tc_tiles_;
  ap.tc_warps = l.wide ? kWideWarps : kSplitWarps;
  if (split) {
    SetSplit(ap, l.split);
    ap.partial = w.split_partial;
    ap.counters = w.split_counters;
  }
  if (w.num_flash_tiles > 0 && l.num_quest == 0 && !mass) {
    FlashPrefillParams fp;
    fp.attn = ap;
    fp.tiles = w.I(w.flash_tiles);
    fp.num_tiles = w.num_flash_tiles;
    LIL_CUDA_RETURN_IF_ERROR(FlashPrefill(fp, stream_));
  } else {
    LIL_CUDA_RETURN_IF_ERROR(PagedAttention(ap, stream_));
  }
  if (mass) {
    LIL_CUDA_RETURN_IF_ERROR(ScatterAdd({w.entry_mass, w.I(l.entry_seq), logical, w.I(w.mass_offset),
                                         w.seq_mass, l.nnz}, stream_));
  }
  return absl::OkStatus();
}

bool CudaBackend::FusedMlpStep(int32_t t) const { return fused_mlp_ && comm_ == nullptr && t == 1; }

bool CudaBackend::FusedStep(int32_t t) const {
  if (!fused_norm_ || t < 1) return false;
  if (t == 1) return true;
  const ModelConfig& c = local_;
  return comm_ == nullptr && gemm_.FusedAvailable(t, c.hidden_size) && gemm_.FusedAvailable(t, c.q_dim()) &&
         gemm_.FusedAvailable(t, c.intermediate_size);
}

absl::Status CudaBackend::RunLayer(int32_t layer, const StepInputs& in, const Work& w) {
  const ModelConfig& c = local_;
  const DeviceLayerWeights& lw = w_.layers[layer];
  const int32_t t = in.num_tokens, hid = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim();
  const int32_t inter = c.intermediate_size;
  // Fused decode step (FusedStep): x is already current and w.xb is its bf16 copy.
  const bool fuse = FusedStep(t);
  const float* attn_norm = fused_norm_ ? nullptr : lw.attn_norm;  // folded into qkv
  const float* mlp_norm = fused_norm_ ? nullptr : lw.mlp_norm;    // folded into gate_up
  // Layer 0 too: the embedding wrote xb. After a fused MLP (FusedMlpStep) only x is current:
  // the GEMV rounds it as it reads.
  const bool mlp_fused = FusedMlpStep(t);
  GemmParams qkv{fuse ? w.xb : w.h, lw.qkv, w.qkv, t, hid, qd + 2 * kvd};
  if (fuse) {
    qkv.norm_eps = c.rms_norm_eps;
    if (mlp_fused && layer > 0) qkv.x_f32 = w.x;
  } else {
    // The previous layer's down projection is still in delta: fused into this norm.
    LIL_CUDA_RETURN_IF_ERROR(AddRmsNorm({w.x, layer == 0 ? nullptr : w.delta, attn_norm, w.h, t, hid,
                                         c.rms_norm_eps}, stream_));
  }
  QkvRopeWriteParams rp;
  rp.qkv = w.qkv;
  rp.bias = lw.qkv_bias;
  rp.q_norm = lw.q_norm;
  rp.k_norm = lw.k_norm;
  rp.eps = c.rms_norm_eps;
  rp.pos = w.I(w.pos);
  rp.inv_freq = w_.inv_freq;
  rp.q_out = w.q;
  rp.kv = LayerView(layer);
  rp.dst_page = w.I(w.dst_page);
  rp.dst_slot = w.I(w.dst_slot);
  rp.tokens = t;
  rp.num_heads = c.num_heads;
  rp.pairs_adjacent = rope_pairs_;
  // Each token on its own page (decode): the KV write keeps the Quest min/max current itself.
  rp.quest_update = static_cast<int32_t>(in.touched_pages.size()) == t;
  qkv.rope_epilogue = fuse && rope_pairs_;  // the qkv GEMV applies RoPE and writes q and the KV slots
  if (qkv.rope_epilogue) qkv.rope = rp;
  if (fuse) {
    LIL_RETURN_IF_ERROR(gemm_.RunFused(qkv));
  } else {
    LIL_RETURN_IF_ERROR(gemm_.Run(qkv.x, qkv.w, qkv.y, t, hid, qkv.out));
  }
  if (!qkv.rope_epilogue) LIL_CUDA_RETURN_IF_ERROR(QkvRopeWrite(rp, stream_));
  if (!rp.quest_update) {
    LIL_CUDA_RETURN_IF_ERROR(QuestMeta({LayerView(layer), w.I(w.touched_pages), w.I(w.touched_last),
                                        static_cast<int32_t>(in.touched_pages.size())}, stream_));
  }
  LIL_RETURN_IF_ERROR(Attention(layer, in, w));
  if (fuse) {
    // One GPU: o and down add into x and round it to xb themselves. Tensor parallel: they
    // write this rank's partial to delta, and the all-reduce adds the sum into x and xb.
    // Tensor parallel with the GEMV all-reduce (TP=2 by default; tp_cuda_backend.cc): the GEMV
    // all-reduces its own partial (no all-reduce kernel); else the one-shot kernel after it.
    auto project = [&](const bf16* in, const bf16* weight, int32_t in_dim) -> absl::Status {
      GemmParams g{in, weight, comm_ == nullptr ? w.x : w.delta, t, in_dim, hid};
      if (comm_ == nullptr) {
        g.add_to_y = true;
        g.y_bf16 = w.xb;
      } else if (auto reduce = comm_->GemvAllReduceFor(w.x, w.xb); reduce.has_value()) {
        GemmParams with = g;
        with.reduce = *reduce;
        if (GemvSupported(with)) return gemm_.RunFused(with);
      }
      LIL_RETURN_IF_ERROR(gemm_.RunFused(g));
      return comm_ == nullptr ? absl::OkStatus() : comm_->AllReduceIntoResidual(w.delta, int64_t{t} * hid, w.x, w.xb);
    };
    LIL_RETURN_IF_ERROR(project(w.attn, lw.o_proj, qd));
    if (mlp_fused) {  // gate_up, SwiGLU and down in one kernel, adding into x (mlp_fused.h)
      LIL_CUDA_RETURN_IF_ERROR(FusedMlp({w.xb, lw.gate_up, lw.down, w.x, hid, inter, c.rms_norm_eps}, stream_));
      return absl::OkStatus();
    }
    GemmParams gate_up{w.xb, lw.gate_up, w.gate_up, t, hid, 2 * inter};
    gate_up.norm_eps = c.rms_norm_eps;
    gate_up.swiglu_out = w.act;  // rows interleaved at load: (gate j, up j) side by side
    LIL_RETURN_IF_ERROR(gemm_.RunFused(gate_up));
    return project(w.act, lw.down, inter);
  }
  LIL_RETURN_IF_ERROR(gemm_.Run(w.attn, lw.o_proj, w.delta, t, qd, hid));
  if (comm_ != nullptr) LIL_RETURN_IF_ERROR(comm_->AllReduceSum(w.delta, int64_t{t} * hid));
  LIL_CUDA_RETURN_IF_ERROR(AddRmsNorm({w.x, w.delta, mlp_norm, w.h, t, hid, c.rms_norm_eps}, stream_));
  LIL_RETURN_IF_ERROR(gemm_.Run(w.h, lw.gate_up, w.gate_up, t, hid, 2 * inter));
  LIL_CUDA_RETURN_IF_ERROR(SiluMul({w.gate_up, w.act, t, inter, /*interleaved=*/fused_norm_}, stream_));
  LIL_RETURN_IF_ERROR(gemm_.Run(w.act, lw.down, w.delta, t, inter, hid));
  if (comm_ != nullptr) LIL_RETURN_IF_ERROR(comm_->AllReduceSum(w.delta, int64_t{t} * hid));
  return absl::OkStatus();
}

absl::Status CudaBackend::LaunchSampling(const StepInputs& in, const Work& w) {
  const ModelConfig& c = config_;
  const int32_t r = static_cast<int32_t>(in.logit_rows.size()), vocab = c.vocab_size;
  if (r == 0) return absl::OkStatus();
  // A one-token step with the final norm's weight folded into the head (which implies the fused
  // path, FusedStep(1)): the head's GEMV normalizes xb (the residual stream's bf16 copy the last
  // down product wrote) itself. Its one logit row is token 0 (the plan check bounds the rows).
  const bool head_norms = head_norm_folded_ && in.num_tokens == 1 && r == 1;
  if (!head_norms) {
    LIL_CUDA_RETURN_IF_ERROR(AddRmsNorm({w.x, nullptr, head_norm_folded_ ? nullptr : w_.final_norm, w.h, r,
                                         c.hidden_size, c.rms_norm_eps, w.I(w.logit_rows)}, stream_));
  }
  auto head = [&](float* out, int32_t rows_out) -> absl::Status {
    if (!head_norms) return gemm_.Run(w.h, w_.lm_head, out, r, c.hidden_size, rows_out);
    GemmParams g{w.xb, w_.lm_head, out, r, c.hidden_size, rows_out};
    g.norm_eps = c.rms_norm_eps;
    if (FusedMlpStep(1) && c.num_layers > 0) g.x_f32 = w.x;  // the last MLP left only x current
    return gemm_.RunFused(g);
  };
  if (comm_ == nullptr) {
    LIL_RETURN_IF_ERROR(head(w.logits, vocab));
  } else if (w.tp_greedy) {
    // Every row greedy (TpGreedyStep): each rank's best over its vocabulary slice, summed into
    // every rank's gather (a few floats a row), merged on rank 0, which alone samples.
    LIL_RETURN_IF_ERROR(head(w.logits_local, local_.vocab_size));
    GreedyParams g{w.logits_local, r, local_.vocab_size, nullptr, nullptr};
    g.gather = w.greedy_gather;
    g.rank = rank_;
    g.world = world_;
    g.id_offset = shards_[rank_].vocab_begin;
    LIL_CUDA_RETURN_IF_ERROR(Greedy(g, stream_));
    LIL_RETURN_IF_ERROR(comm_->AllReduceSum(w.greedy_gather, int64_t{r} * world_ * 4));
    if (rank_ != 0) return absl::OkStatus();
    LIL_CUDA_RETURN_IF_ERROR(GreedyCombine({w.greedy_gather, r, world_, w.token_out, w.logprob}, stream_));
    return absl::OkStatus();
  } else {
    // Vocab-parallel LM head: each rank's [r, its vocab] block, gathered (padded to the widest
    // share), then laid out as [r, vocab] on rank 0, which alone samples.
    const int64_t stride = shards_[0].vocab_stride;
    LIL_RETURN_IF_ERROR(head(w.logits_local, local_.vocab_size));
    LIL_RETURN_IF_ERROR(comm_->AllGather(w.logits_local, r * stride, w.logits_gather));
    if (rank_ != 0) return absl::OkStatus();
    for (const TpShard& s : shards_) {
      if (s.vocab_size == 0) continue;
      LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(
          w.logits + s.vocab_begin, sizeof(float) * vocab, w.logits_gather + s.rank * r * stride,
          sizeof(float) * s.vocab_size, sizeof(float) * s.vocab_size, r, cudaMemcpyDeviceToDevice, stream_));
    }
  }
  LIL_CUDA_RETURN_IF_ERROR(Greedy({w.logits, r, vocab, w.token_out, w.logprob}, stream_));
  if (w.gpu_sampled) {
    LIL_CUDA_RETURN_IF_ERROR(SampleFiltered(
        {w.logits, r, vocab, w.I(w.sample_args), w.token_out, w.logprob, w.top_ids, w.top_logprobs}, stream_));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::LaunchForward(const StepInputs& in, const Work& w) {
  const ModelConfig& c = config_;
  const int64_t t = in.num_tokens;
  EmbeddingParams ep{w_.embed, w.I(w.tokens), w.x, in.num_tokens, c.hidden_size, c.vocab_size};
  if (FusedStep(static_cast<int32_t>(t))) ep.out_bf16 = w.xb;  // layer 0's qkv GEMV normalizes it
  LIL_CUDA_RETURN_IF_ERROR(Embedding(ep, stream_));
  for (int32_t layer = 0; layer < c.num_layers; ++layer) LIL_RETURN_IF_ERROR(RunLayer(layer, in, w));
  if (c.num_layers > 0 && !FusedStep(static_cast<int32_t>(t))) {  // fused: the down products added already
    LIL_CUDA_RETURN_IF_ERROR(AddInPlace(w.x, w.delta, t * c.hidden_size, stream_));
  }
  // h2o: each rank summed its own heads' attention; the policy on rank 0 needs all of them.
  if (comm_ != nullptr && in.mass_size > 0) LIL_RETURN_IF_ERROR(comm_->AllReduceSum(w.seq_mass, in.mass_size));
  return LaunchSampling(in, w);
}

}  // namespace lil::cuda
