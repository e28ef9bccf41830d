// File: engine/cuda/cuda_backend.h
// The CUDA backend: bf16 weights and KV, fp32 residual stream and accumulation, cuBLAS
// GEMMs, own kernels (kernels/cuda). Same plan semantics as CpuBackend: page tables with
// holes, Quest per (sequence, KV head) past dense_layers for one-token steps, h2o page mass,
// return_logits. Engine thread only (not thread-safe).
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "engine/backend.h"
#include "engine/sampler_state.h"
#include "engine/cuda/cuda_step.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/nccl_comm.h"
#include "engine/parallel/communicator.h"
#include "engine/parallel/tp_shard.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/quest.h"

namespace lil::cuda {

struct CudaBackendOptions {
  int32_t device = 0;
  bool force_fallback_gemm = false;  // tests: the tiled kernel instead of cuBLAS
  // Tensor parallelism (docs/PARALLEL.md): this backend is rank `rank` of `world`, holds the
  // weights UploadWeights made for MakeTpShard(config, rank, world) and that shard's KV heads,
  // and calls `comm` (on this backend's stream: see stream below) after o_proj and down
  // (all-reduce; on the fused one-token path the all-reduce adds into the residual itself),
  // for the vocab-parallel logits (all-gather) and the h2o page mass (all-reduce). Only rank
  // 0 samples; the other ranks' results carry no tokens.
  int32_t rank = 0;
  int32_t world = 1;
  NcclCommunicator* comm = nullptr;
  // The stream the backend runs on (the communicator must enqueue on the same one); null:
  // the backend makes its own.
  cudaStream_t stream = nullptr;
};

class CudaBackend final : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const ModelConfig& config,
                                                             DeviceWeights weights,
                                                             const KvCacheOptions& kv,
                                                             const CudaBackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  // The whole model's config (also at world > 1; local() is the rank's share).
  const ModelConfig& config() const override { return config_; }
  const ModelConfig& local() const { return local_; }
  int32_t num_pages() const override { return num_pages_; }
  int32_t page_size() const override { return page_size_; }
  absl::StatusOr<StepResult> Execute(const StepPlan& plan) override;
  const Gemm& gemm() const { return gemm_; }
  // KV pages `kv` asks for on the current device for a rank computing `local` (its shard's
  // config): from num_pages, else kv_bytes, else memory_fraction of the device. The
  // tensor-parallel driver gives every rank the smallest of the ranks' answers.
  static absl::StatusOr<int64_t> PagesFor(const ModelConfig& local, const KvCacheOptions& kv);
  static int64_t BytesPerPage(const ModelConfig& local, int32_t page_size);
  // Quest metadata in e4m3 rounded outward (kernels/quest_fp8.h) instead of bf16:
  // $LILSERVE_QUEST_FP8=1, for head_dim a multiple of 8. Half the bytes the Quest scoring
  // reads; the bounds are looser (3 mantissa bits), so selections can differ from bf16's.
  static bool QuestFp8(const ModelConfig& local);
  // Captured CUDA graphs: one per decode batch size, and per batch size apart for steps where
  // SampleFiltered runs (GraphKey) (tests, logs).
  int32_t graphs_captured() const { return static_cast<int32_t>(graphs_.size()); }
  // Graph captures since the backend was made, recaptures after the graphs were dropped
  // included (tests: growing page lists must not drop them).
  int64_t graph_captures() const { return graph_captures_; }
  // Host times (SystemClock, us) of the last Execute: entered, its inputs built
  // (BuildStepInputs), packed and their copies enqueued, its kernels or graph enqueued, its
  // stream synchronized. For the tensor-parallel driver's $LILSERVE_TP_TRACE.
  struct StepClock {
    int64_t begin_us = 0, built_us = 0, uploaded_us = 0, launched_us = 0, synced_us = 0;
  };
  const StepClock& last_clock() const { return last_clock_; }
  // Whether the fused decode path is on (fused_norm_ below).
  bool fused_norm() const { return fused_norm_; }
  // Whether a step of t tokens runs the fused path: fused_norm_, and one token, or with
  // $LILSERVE_SKINNY=1 on one GPU 2 .. kSkinnyMaxRows tokens through the skinny tensor-core
  // GEMM (Gemm::RunFused) when the model's widths suit it.
  bool FusedStep(int32_t t) const;
  // Whether a fused step of t tokens runs its MLP blocks as one kernel each (fused_mlp_: one
  // token on one GPU).
  bool FusedMlpStep(int32_t t) const;

 private:
  struct Work;  // device pointers of one step (cuda_work.h)

  CudaBackend(const ModelConfig& config, const CudaBackendOptions& options, DeviceWeights weights,
              int32_t num_pages, int32_t page_size, cudaStream_t stream, bool own_stream, Gemm gemm);
  PagedKvViewBf16 LayerView(int32_t layer) const;
  absl::Status RunLayer(int32_t layer, const StepInputs& in, const Work& w);
  absl::Status Attention(int32_t layer, const StepInputs& in, const Work& w);
  // The kernels of one step (capturable: no host synchronization, no allocation).
  absl::Status LaunchForward(const StepInputs& in, const Work& w);
  absl::Status LaunchSampling(const StepInputs& in, const Work& w);
  // Copies the sampled tokens back (the step's one synchronization) and samples non-greedy
  // rows on the host.
  absl::Status FinishSampling(const StepPlan& plan, const StepInputs& in, const Work& w,
                              StepResult& result);
  bool Graphable(const StepPlan& plan, const StepInputs& in) const;
  // cuda_sampling.cc: whether a row of the step draws through SampleFiltered (the same answer
  // on every tensor-parallel rank, though rank 0 alone launches it: graphs are keyed by it, and
  // every rank must capture at the same steps), and the per-row arguments it reads, added to
  // pack_ on rank 0 (a region of tok_cap rows in graph steps).
  bool StepDrawsOnGpu(const StepPlan& plan, const StepInputs& in) const;
  // Tensor parallel: whether every logits row of the step only needs Greedy's token and
  // logprob (no logits returned, no host sampling, no top logprobs): each rank then finds its
  // vocabulary slice's best and only those partials cross between the GPUs (GreedyParams::
  // gather) instead of the all-gathered logits. The same answer on every rank (GraphKey).
  bool TpGreedyStep(const StepPlan& plan, const StepInputs& in) const;
  void PackSampleArgs(const StepPlan& plan, const StepInputs& in, bool gpu_sampled, int64_t tok_cap, Work* w);
  absl::Status CaptureGraph(const StepInputs& in, const Work& w, cudaGraphExec_t* exec);
  void ResetGraphs();

  ModelConfig config_;  // the whole model
  ModelConfig local_;   // this rank's heads, KV heads, intermediate slice and vocabulary slice
  int32_t device_, rank_, world_;
  NcclCommunicator* comm_;  // null at world 1
  std::vector<TpShard> shards_;  // every rank's share (where its logits go in the gather)
  DeviceWeights w_;
  int32_t num_pages_;
  int32_t page_size_;
  cudaStream_t stream_;
  bool own_stream_;
  Gemm gemm_;
  DeviceBuffer kv_pool_;     // [layers][K | V | Quest] per layer, see LayerView
  DeviceBuffer ints_, work_;
  StepInputs step_inputs_;       // the step's inputs, rebuilt in place each step (Execute)
  PinnedBuffer host_logits_;     // logits rows the host samples or returns (FinishSampling)
  std::vector<int32_t> sample_args_;  // SampleFilteredParams::args of the step (Execute)
  // The step's int inputs and writable page lists (Execute), in page-locked memory: the
  // step's copies to the GPU read them directly.
  using PinnedIntPack = BasicIntPack<PinnedAllocator<int32_t>>;
  PinnedIntPack pack_, rw_;
  // CUDA graphs of decode steps, one per batch size (<= kMaxGraphBatch), all over graph_work_
  // laid out for kMaxGraphBatch tokens and graph_nnz_cap_ page-list entries; growing either
  // drops the graphs. $LILSERVE_CUDA_GRAPHS=0 turns them off.
  static constexpr int32_t kMaxGraphBatch = 128;
  StepClock last_clock_;
  // $LILSERVE_STEP_TRACE=1: each step's host times by batch size (us: from the previous
  // Execute's return to this one's entry, entry to inputs built, built to uploads enqueued,
  // to the graph / kernels enqueued, enqueued to synced, synced to return), their medians
  // logged when the backend is destroyed (LogStepTrace). Graph replays only (decode steps), the
  // first 2^16 of each batch size.
  static constexpr int kTraceFields = 6;
  bool step_trace_ = false;
  // BuildStepInputs' rows_per_seq: dense layouts share one page list among a sequence's KV
  // heads (num_kv_heads times fewer entries to build and upload; $LILSERVE_SEQ_ROWS=0: one
  // list per (sequence, KV head), for A/B).
  bool rows_per_seq_ = true;
  // Rows sampled with temperature, top-k, top-p and min-p, and rows asking for top logprobs
  // (no repetition penalty), go through SampleFiltered on the GPU instead of the host; graphs
  // of such steps are kept apart (GraphKey), on every rank. Tensor parallel: the key must not
  // depend on the rank. A capture with tuning runs the step once eagerly first, collectives
  // included, so a rank capturing where another replays would run one forward pass more than
  // its peers and every later all-reduce would pair the wrong passes (the TP daemon's first
  // sampled request hung that way). $LILSERVE_GPU_SAMPLING=0: the host does them, for A/B.
  bool gpu_sampling_ = true;
  static int32_t GraphKey(int32_t batch, bool gpu_sampled, bool tp_greedy, bool wide_split) {
    return batch + (gpu_sampled ? 1 << 16 : 0) + (tp_greedy ? 1 << 17 : 0) + (wide_split ? 1 << 18 : 0);
  }
  // TpGreedyStep's path, unless $LILSERVE_TP_GREEDY=0 (the all-gather of every rank's logits
  // and Greedy over the whole row on rank 0, for A/B).
  bool tp_greedy_ = true;
  int64_t step_trace_prev_end_us_ = 0;
  absl::flat_hash_map<int32_t, std::vector<std::array<int64_t, kTraceFields>>> step_trace_rows_;
  void RecordStepTrace(int32_t num_seqs, bool graph);  // at the end of Execute (cuda_step_trace.cc)
  void LogStepTrace() const;
  bool graphs_enabled_ = true;
  DeviceBuffer graph_work_;
  int64_t graph_nnz_cap_ = 0;
  int64_t graph_captures_ = 0;
  int64_t graph_partial_floats_ = 1;
  absl::flat_hash_map<int32_t, cudaGraphExec_t> graphs_;
  absl::flat_hash_set<int32_t> graph_failed_;
  // Resident CTAs of the decode attention kernel a step uses (SplitResidentCtas), which size
  // its split-KV: the tensor-core kernel's (2 an SM with 3 stages) and the CUDA-core
  // kernel's, for one-token steps (session 9 gave those the tensor-core count too: 264
  // instead of the kernel's own, the CUDA-core bench column 0.63-0.72 -> 0.46-0.49 of the
  // read ceiling). 0: split-KV off ($LILSERVE_SPLIT_KV=0).
  int32_t split_target_tc_ = 0, split_target_cc_ = 0;
  // One 8-warp CTA a row for eager tensor-core steps whose rows WideTcRows picks (Quest's
  // selected rows at batch 16: PagedAttentionParams::tc_warps; graph steps keep the 4-warp
  // split, as their rows grow past the rule's length inside one captured graph), and 8-warp
  // CTAs over split rows for steps of few long rows (WideSplit: up to 8 rows, i.e. batch 1 at
  // 8 KV heads, from 4k tokens; graph steps too, keyed on it). $LILSERVE_TC_WIDE=0: neither;
  // =1: every eager step with register tiles unsplit (tests).
  enum class WideRows { kAuto, kAlways, kNever };
  WideRows wide_rows_ = WideRows::kAuto;
  // The 8-warp split (WideSplit) for layout l of a step, unless $LILSERVE_TC_WIDE=0; no choice
  // (min_chunk_entries 0) where it does not apply. The same answer on every rank (it reads the
  // rows' lengths and this rank's KV heads, which every rank has as many of).
  SplitChoice WideSplitFor(const StepInputs& in, const RowLayout& l) const;
  // Whether a step may take 8-warp CTAs at all: tensor-core register tiles, no h2o mass, and
  // $LILSERVE_TC_WIDE not 0 (both forms above ask it).
  bool WideCtasAllowed(const StepInputs& in) const;
  int32_t sms_ = 0;
  bool TensorCoreAttention(int32_t num_tokens) const { return tc_decode_ && num_tokens >= tc_min_tokens_; }
  int32_t SplitTarget(int32_t num_tokens) const {
    return TensorCoreAttention(num_tokens) ? split_target_tc_ : split_target_cc_;
  }
  // Quest scoring in its own kernel over (sequence, KV head, chunk of candidates) CTAs
  // (QuestSelectParams::keys): where QuestSplitScoringPays (kAuto, the default), always with
  // $LILSERVE_QUEST_SPLIT=1, never with =0. Split since session 8: at 32k, batch 1 scoring +
  // selection + attention 97.8 -> 47.4 us; the 8B decode step at 16k, batch 4, 7.27 -> 6.79 ms
  // (docs/PERF.md); session 23 keeps rows that fill one wave in the selection CTAs.
  enum class QuestSplit { kAuto, kAlways, kNever };
  QuestSplit quest_split_ = QuestSplit::kAuto;
  // Entries at the start of each attention chunk a Quest selection CTA sends to the L2
  // (QuestSelectParams::prefetch_entries): -1, QuestPrefetchEntries of the step's attention
  // CTAs; or $LILSERVE_QUEST_PREFETCH.
  int32_t quest_prefetch_ = -1;
  bool quest_fp8_ = false;  // QuestFp8(local_): LayerView's metadata is quest_fp8
  // Decode attention on tensor cores ($LILSERVE_TC_DECODE=0: off) for steps of at least
  // tc_min_tokens_ tokens ($LILSERVE_TC_MIN_TOKENS, default 1: every step). At one token the
  // CUDA-core kernel was faster inside the step until the tiles went through registers
  // (session 7: 8B at 8k, 5.08 against 5.43 ms); session 18 (ABAB, docs/PERF.md): the tensor
  // cores give TP=2 batch 1 at 1k -5%, TP=1 1k -1%, TP=1 8k +0.6%.
  bool tc_decode_ = false;
  int32_t tc_min_tokens_ = 1;
  // cp.async stages of the tensor-core decode kernel's cp.async path ($LILSERVE_TC_REGS=0): 3,
  // or 2 with $LILSERVE_TC_STAGES=2 (PagedAttentionParams::tc_stages; 3 since session 9).
  int32_t tc_stages_ = 3;
  // PagedAttentionParams::tc_tiles: registers, $LILSERVE_TC_REGS=0 cp.async.
  TcTiles tc_tiles_ = TcTiles::kRegisters;
  // One GPU, unless $LILSERVE_FUSED_NORM=0: the attention and MLP RMSNorm weights are folded
  // into the qkv and gate_up columns at load (every norm then runs with a unit weight) and
  // gate_up's rows are interleaved (gate j, up j); a fused step (FusedStep: batch-1 decode, and
  // with $LILSERVE_SKINNY=1 decode batches up to 32 on one GPU) runs no norm, add or SwiGLU
  // kernel after layer 0: the o and down GEMVs add into the residual
  // stream and write its bf16 copy (GemmParams::add_to_y, y_bf16), the qkv and gate_up GEMVs
  // normalize that copy themselves (norm_eps) and gate_up writes silu(gate) * up (swiglu_out).
  // Default since session 7's GPU run (docs/GPU.md, PERF.md).
  bool fused_norm_ = false;
  // With fused_norm_ and an LM head of its own (not tied to the embedding): the final norm's
  // weight is folded into the LM head's columns, so every final norm runs with a unit weight
  // and a one-token step's LM head GEMV normalizes xb itself (LaunchSampling). With fused_norm_
  // the embedding also writes xb, so a fused step's layer-0 qkv GEMV normalizes it like any
  // other layer's: no norm kernel runs in a one-token step on one GPU.
  bool head_norm_folded_ = false;
  // With fused_norm_ and $LILSERVE_FUSED_MLP=1 (off by default: 93 us against the GEMVs' 85 a
  // Llama-3-8B layer, docs/PERF.md session 21), where the shapes fit FusedMlpSupported:
  // a one-token step on one GPU runs each MLP block as one kernel (kernels/cuda/mlp_fused.h:
  // gate_up, SwiGLU and down, adding into x with atomics), and the next qkv GEMV and the LM
  // head read x in fp32 (GemmParams::x_f32), as no kernel wrote its bf16 copy.
  bool fused_mlp_ = false;
  // With fused_norm_, unless $LILSERVE_FUSED_ROPE=0 or the model has q / k norm: the qkv
  // weight's q and k rows hold each head's RoPE pairs side by side (InterleaveRowHalves per
  // head at load; QkvRopeWriteParams::pairs_adjacent for every step), and a one-token step's
  // qkv GEMV applies RoPE and writes q and the KV page slots itself (GemmParams::rope_epilogue).
  bool rope_pairs_ = false;
  // Unless $LILSERVE_FLASH_PREFILL=0: eager steps with a multi-token sequence run their
  // attention through the tensor-core FlashPrefill kernel (kernels/cuda/flash_prefill.cu)
  // instead of the per-token kernel, where it serves the head_dim and GQA group.
  bool flash_prefill_ = false;
  absl::flat_hash_map<RequestId, SamplerState> seqs_;
  uint64_t seed_base_;
};

}  // namespace lil::cuda
