// File: engine/cuda/cuda_backend.cc
// Creation, KV sizing and one Execute: flatten the plan on the host (cuda_step.h), one
// upload of the int arrays, the step's kernels (cuda_forward.cc) eagerly or from a CUDA
// graph, then the sampled tokens back (cuda_sampling.cc). $LILSERVE_STEP_TRACE:
// cuda_step_trace.cc.
#include "engine/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "engine/cuda/cuda_work.h"
#include "engine/plan_check.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/mlp_fused.h"
#include "kernels/cuda/quest.h"
#include "kernels/cuda/sample.h"

namespace lil::cuda {
namespace {

// Bump allocator over the step's work buffer (256-byte aligned pieces).
struct Carve {
  char* base = nullptr;
  size_t used = 0;
  template <typename T>
  T* Take(int64_t n) {
    T* p = reinterpret_cast<T*>(base == nullptr ? nullptr : base + used);
    used += (static_cast<size_t>(n) * sizeof(T) + 255) / 256 * 256;
    return p;
  }
};

// Device memory left outside the KV pool when it is sized from a memory fraction.
constexpr int64_t kWorkReserveBytes = 2LL << 30;

}  // namespace


CudaBackend::CudaBackend(const ModelConfig& config, const CudaBackendOptions& options,
                         DeviceWeights weights, int32_t num_pages, int32_t page_size,
                         cudaStream_t stream, bool own_stream, Gemm gemm)
    : config_(config), device_(options.device), rank_(options.rank), world_(options.world),
      comm_(options.world > 1 ? options.comm : nullptr), w_(std::move(weights)),
      num_pages_(num_pages), page_size_(page_size), stream_(stream), own_stream_(own_stream),
      gemm_(std::move(gemm)) {
  for (int32_t r = 0; r < world_; ++r) shards_.push_back(MakeTpShard(config, r, world_));
  local_ = ShardConfig(config, shards_[rank_]);
  // Sampling is rank 0's; every rank draws the same seeds anyway.
  seed_base_ = std::random_device{}();
}

CudaBackend::~CudaBackend() {
  if (step_trace_) LogStepTrace();
  ResetGraphs();
  if (stream_ != nullptr && own_stream_) cudaStreamDestroy(stream_);
}

bool CudaBackend::QuestFp8(const ModelConfig& local) {
  return QuestE4m3Requested() && local.head_dim % 8 == 0;
}

int64_t CudaBackend::BytesPerPage(const ModelConfig& local, int32_t page_size) {
  // Pages hold bf16 K and V plus the Quest min/max per (page, KV head), bf16 or e4m3.
  const int64_t meta_per_page = (QuestFp8(local) ? 1LL : 2LL) * local.num_layers * local.num_kv_heads * 2 * local.head_dim;
  return KvBytesPerPage(local, page_size, 2) + meta_per_page;
}

absl::StatusOr<int64_t> CudaBackend::PagesFor(const ModelConfig& local, const KvCacheOptions& kv) {
  if (kv.page_size <= 0) return InvalidArgument("page_size must be positive, got ", kv.page_size);
  const int64_t per_page = BytesPerPage(local, kv.page_size);
  int64_t kv_bytes = kv.kv_bytes;
  if (kv.num_pages <= 0 && kv.memory_fraction > 0.0) {
    if (kv.memory_fraction > 1.0) {
      return InvalidArgument("memory_fraction must be in (0, 1], got ", kv.memory_fraction);
    }
    // The weights are resident already; keep a reserve for the step's work buffers (activations
    // of a full chunked-prefill step, logits, cuBLAS workspace).
    size_t free_b = 0, total_b = 0;
    LIL_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_b, &total_b));
    const int64_t used = static_cast<int64_t>(total_b - free_b);
    const int64_t reserve = kWorkReserveBytes;
    kv_bytes = static_cast<int64_t>(kv.memory_fraction * static_cast<double>(total_b)) - used - reserve;
    if (kv_bytes < per_page) {
      return InvalidArgument("memory_fraction ", kv.memory_fraction, " of ", total_b >> 20, " MiB leaves no room for the KV cache (",
                             used >> 20, " MiB in use, ", reserve >> 20, " MiB working reserve)");
    }
  }
  const int64_t pages = kv.num_pages > 0 ? kv.num_pages : kv_bytes / per_page;
  if (pages < 1) {
    return InvalidArgument("KV memory of ", kv_bytes, " bytes holds no page of ", kv.page_size,
                           " tokens (one page needs ", per_page, " bytes on the GPU)");
  }
  return pages;
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const ModelConfig& c,
                                                                 DeviceWeights weights,
                                                                 const KvCacheOptions& kv,
                                                                 const CudaBackendOptions& options) {
  if (kv.page_size <= 0) return InvalidArgument("page_size must be positive, got ", kv.page_size);
  if (c.num_heads % c.num_kv_heads != 0 || c.num_heads / c.num_kv_heads > 8 || c.head_dim > 128 ||
      c.head_dim % 2 != 0) {
    return absl::UnimplementedError(absl::StrCat(
        "CUDA backend: attention supports head_dim <= 128 (even) and GQA groups <= 8; model has "
        "head_dim ", c.head_dim, ", ", c.num_heads, " heads, ", c.num_kv_heads, " KV heads"));
  }
  if (options.world > 1) {
    LIL_RETURN_IF_ERROR(CheckTensorParallel(c, options.world));
    if (options.comm == nullptr || options.comm->world_size() != options.world ||
        options.comm->rank() != options.rank) {
      return InvalidArgument("CUDA backend rank ", options.rank, " of ", options.world,
                             " needs that rank's communicator");
    }
  }
  const ModelConfig local = ShardConfig(c, MakeTpShard(c, options.rank, std::max(1, options.world)));
  LIL_ASSIGN_OR_RETURN(const int64_t pages, PagesFor(local, kv));
  const int64_t per_page = BytesPerPage(local, kv.page_size);
  LIL_LOG_INFO("CUDA KV cache{}: {} pages of {} tokens ({} MiB{})",
               options.world > 1 ? absl::StrCat(" (rank ", options.rank, " of ", options.world, ")") : std::string(),
               pages, kv.page_size, (pages * per_page) >> 20,
               kv.memory_fraction > 0.0 && kv.num_pages <= 0 ? absl::StrCat(", from memory fraction ", kv.memory_fraction) : std::string());
  cudaStream_t stream = options.stream;
  const bool own_stream = stream == nullptr;
  if (own_stream) LIL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  auto gemm = Gemm::Create(stream, options.force_fallback_gemm);
  if (!gemm.ok()) {
    if (own_stream) cudaStreamDestroy(stream);
    return gemm.status();
  }
  std::unique_ptr<CudaBackend> b(new CudaBackend(c, options, std::move(weights), static_cast<int32_t>(pages),
                                                 kv.page_size, stream, own_stream, std::move(*gemm)));
  LIL_RETURN_IF_ERROR(b->kv_pool_.Reserve(static_cast<size_t>(pages) * per_page));
  int sms = 0;
  LIL_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, options.device));
  // Decode attention on tensor cores where the shape allows, unless $LILSERVE_TC_DECODE=0.
  b->tc_decode_ = !EnvIs("LILSERVE_TC_DECODE", "0") &&
                  TcDecodeSupported(local.head_dim, local.num_heads / local.num_kv_heads);
  if (const char* e = std::getenv("LILSERVE_TC_MIN_TOKENS"); e != nullptr && std::atoi(e) > 0) {
    b->tc_min_tokens_ = std::atoi(e);
  }
  b->sms_ = sms;
  b->wide_rows_ = EnvIs("LILSERVE_TC_WIDE", "0")   ? WideRows::kNever
                 : EnvIs("LILSERVE_TC_WIDE", "1") ? WideRows::kAlways
                                                  : WideRows::kAuto;
  b->quest_split_ = EnvIs("LILSERVE_QUEST_SPLIT", "0")   ? QuestSplit::kNever
                   : EnvIs("LILSERVE_QUEST_SPLIT", "1") ? QuestSplit::kAlways
                                                         : QuestSplit::kAuto;
  if (const char* e = std::getenv("LILSERVE_QUEST_PREFETCH"); e != nullptr && std::atoi(e) >= 0) {
    b->quest_prefetch_ = std::atoi(e);
  }
  b->quest_fp8_ = QuestFp8(local);
  if (b->quest_fp8_) LIL_LOG_INFO("CUDA backend: Quest metadata in e4m3, rounded outward (LILSERVE_QUEST_FP8=1)");
  b->tc_tiles_ = EnvIs("LILSERVE_TC_REGS", "0") ? TcTiles::kCpAsync : TcTiles::kRegisters;
  // Two cp.async stages only for the cp.async tiles (the register path has two of its own).
  b->tc_stages_ = b->tc_tiles_ == TcTiles::kCpAsync && EnvIs("LILSERVE_TC_STAGES", "2") ? 2 : 3;
  b->step_trace_ = EnvIs("LILSERVE_STEP_TRACE", "1");
  b->rows_per_seq_ = !EnvIs("LILSERVE_SEQ_ROWS", "0");
  b->gpu_sampling_ = !EnvIs("LILSERVE_GPU_SAMPLING", "0") && b->config_.vocab_size <= kSampleFilteredMaxVocab;
  if (!EnvIs("LILSERVE_SPLIT_KV", "0")) {
    const int32_t group = local.num_heads / local.num_kv_heads;
    b->split_target_tc_ = SplitResidentCtas(local.head_dim, group, sms, b->tc_decode_, b->tc_tiles_, b->tc_stages_);
    b->split_target_cc_ = SplitResidentCtas(local.head_dim, group, sms, false);
  }
  // Graph steps' page lists are laid out for this many entries from the start: every page of
  // the pool in one row per KV head, what the rows of all sequences can hold while no page is
  // shared between sequences (a few MB at most). Sized from the first step instead, the lists
  // outgrew it as contexts grew, and each time every graph was dropped and recaptured (tens of
  // ms with the eager tuning step; in gpu_decode_bench one recapture inside the timed steps of
  // batch 64 and 128 at 1k added 0.3-0.4 ms a step). Shared pages can still exceed it: then it
  // doubles as before.
  b->graph_nnz_cap_ = std::max<int64_t>(4096, int64_t{pages} * local.num_kv_heads);
  // Graph steps share one split workspace: the largest any graph batch size asks for.
  b->graph_partial_floats_ = 1;
  for (int32_t t = 1; t <= kMaxGraphBatch && b->SplitTarget(t) > 0; ++t) {
    const SplitChoice sc = ChooseSplit(t * local.num_kv_heads, kv.page_size, b->SplitTarget(t));
    const SplitChoice wide = WideSplit(t * local.num_kv_heads, kWideSplitMinRowTokens, kv.page_size, sms);
    for (const SplitChoice& s : {sc, wide}) {
      if (s.min_chunk_entries > 0) {
        b->graph_partial_floats_ = std::max(b->graph_partial_floats_,
                                            SplitPartialFloats(t, local.num_kv_heads, local.head_dim, s.max_splits));
      }
    }
  }
  // Both default on since session 7 (docs/PERF.md: 8B batch-1 decode 4.85 -> 4.44 ms with the
  // fused path, 4k prefill 10.4k -> 22.3k tokens/s with the flash kernel); "0" turns each off.
  const bool fused_off = EnvIs("LILSERVE_FUSED_NORM", "0");
  const bool fused_fits = b->gemm_.GemvAvailable(1, local.hidden_size) && local.q_dim() % 8 == 0 &&
                          local.intermediate_size % 8 == 0 && local.rms_norm_eps > 0.0f;
  if (!fused_off && !fused_fits) {
    LIL_LOG_INFO("CUDA backend: norms not fused into the GEMVs (the GEMV is off or the model's shapes do not fit it)");
  } else if (!fused_off) {
    // DeviceWeights owns these device buffers; nothing has read them yet.
    for (const DeviceLayerWeights& lw : b->w_.layers) {
      LIL_CUDA_RETURN_IF_ERROR(ScaleColumns(const_cast<bf16*>(lw.qkv), lw.attn_norm,
                                            local.q_dim() + 2 * local.kv_dim(), local.hidden_size, stream));
      LIL_CUDA_RETURN_IF_ERROR(ScaleColumns(const_cast<bf16*>(lw.gate_up), lw.mlp_norm,
                                            2 * local.intermediate_size, local.hidden_size, stream));
      LIL_CUDA_RETURN_IF_ERROR(InterleaveRowHalves(const_cast<bf16*>(lw.gate_up), local.intermediate_size,
                                                   local.hidden_size, stream));
    }
    // The final norm's weight into the LM head too, when the head is a matrix of its own (a
    // tied head is the embedding table, which the embedding reads unscaled): a one-token step's
    // LM head GEMV then normalizes xb itself (no final norm kernel); other steps run the norm
    // with a unit weight before the product.
    const bf16* embed_end = b->w_.embed + int64_t{c.vocab_size} * c.hidden_size;
    if (b->w_.lm_head != nullptr && (b->w_.lm_head < b->w_.embed || b->w_.lm_head >= embed_end)) {
      LIL_CUDA_RETURN_IF_ERROR(ScaleColumns(const_cast<bf16*>(b->w_.lm_head), b->w_.final_norm, local.vocab_size,
                                            local.hidden_size, stream));
      b->head_norm_folded_ = true;
    }
    // RoPE + KV write in the qkv GEMV's epilogue: each q / k head's RoPE pairs side by side
    // (QkvRopeWriteParams::pairs_adjacent). Not with q / k norm (Qwen3), which needs the whole head.
    const bool rope_fits = !b->w_.layers.empty() && local.head_dim % 2 == 0 &&
                           b->w_.layers.front().q_norm == nullptr && b->w_.layers.front().k_norm == nullptr;
    if (rope_fits && !EnvIs("LILSERVE_FUSED_ROPE", "0")) {
      const int32_t heads = local.num_heads + local.num_kv_heads;  // the q and k row blocks
      for (const DeviceLayerWeights& lw : b->w_.layers) {
        LIL_CUDA_RETURN_IF_ERROR(InterleaveRowHalves(const_cast<bf16*>(lw.qkv), local.head_dim / 2, local.hidden_size,
                                                     stream, heads));
        if (lw.qkv_bias != nullptr) {
          LIL_CUDA_RETURN_IF_ERROR(InterleaveRowHalves(const_cast<float*>(lw.qkv_bias), local.head_dim / 2, 1, stream,
                                                       heads));
        }
      }
      b->rope_pairs_ = true;
    }
    LIL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    b->fused_norm_ = true;
    // Opt-in: slower than the two GEMVs so far (docs/PERF.md, session 21).
    b->fused_mlp_ = EnvIs("LILSERVE_FUSED_MLP", "1");
    for (const DeviceLayerWeights& lw : b->w_.layers) {  // the shapes and the weights' alignment (x, y: the work buffer's)
      b->fused_mlp_ = b->fused_mlp_ && FusedMlpSupported({nullptr, lw.gate_up, lw.down, nullptr, local.hidden_size,
                                                          local.intermediate_size, local.rms_norm_eps});
    }
    LIL_LOG_INFO("CUDA backend: RMSNorm weights folded into qkv and gate_up (gate and up rows interleaved){}; "
                 "fused steps (one token; up to 32 on one GPU with LILSERVE_SKINNY=1) run the norms, residual adds "
                 "and SwiGLU inside the products{}{}",
                 b->head_norm_folded_ ? ", the final norm's into the LM head" : "",
                 b->rope_pairs_ ? ", and RoPE + the KV write in the qkv product (q / k RoPE pairs side by side)" : "",
                 b->fused_mlp_ ? "; one-token steps on one GPU run each MLP block as one kernel" : "");
  }
  if (!EnvIs("LILSERVE_FLASH_PREFILL", "0")) {
    b->flash_prefill_ = FlashPrefillSupported(local.head_dim, local.num_heads / local.num_kv_heads);
    if (!b->flash_prefill_) {
      LIL_LOG_INFO("CUDA backend: prefill attention on the per-token kernel (the tensor-core kernel serves "
                   "head_dim 64 or 128 and GQA groups 1, 2, 4, 8; this model: {} / {})",
                   local.head_dim, local.num_heads / local.num_kv_heads);
    }
  }
  b->graphs_enabled_ = !EnvIs("LILSERVE_CUDA_GRAPHS", "0");
  b->tp_greedy_ = !EnvIs("LILSERVE_TP_GREEDY", "0");
  // Zeroed so a page read before it is written (never in a valid plan) holds no NaNs.
  LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(b->kv_pool_.get(), 0, b->kv_pool_.bytes(), stream));
  return b;
}

PagedKvViewBf16 CudaBackend::LayerView(int32_t layer) const {
  PagedKvViewBf16 v;
  v.num_pages = num_pages_;
  v.num_kv_heads = local_.num_kv_heads;
  v.page_size = page_size_;
  v.head_dim = local_.head_dim;
  const size_t pool = v.ElementsPerPool();
  const size_t meta = static_cast<size_t>(num_pages_) * v.num_kv_heads * 2 * v.head_dim;  // elements
  // Layers of [K | V | metadata]; e4m3 metadata (1 byte an element, head_dim % 8 == 0) keeps
  // every K / V pool 16-byte aligned.
  uint8_t* base = kv_pool_.get<uint8_t>() + layer * (2 * pool * sizeof(bf16) + meta * (quest_fp8_ ? 1 : sizeof(bf16)));
  v.k = reinterpret_cast<bf16*>(base);
  v.v = v.k + pool;
  if (quest_fp8_) {
    v.quest_fp8 = reinterpret_cast<uint8_t*>(v.v + pool);
  } else {
    v.quest = v.v + pool;
  }
  return v;
}

namespace {
// Entries of a layout's longest row.
int32_t LongestRowEntries(const RowLayout& l) {
  int32_t longest = 0;
  for (size_t r = 0; r + 1 < l.indptr.size(); ++r) longest = std::max(longest, l.indptr[r + 1] - l.indptr[r]);
  return longest;
}
}  // namespace

bool CudaBackend::WideCtasAllowed(const StepInputs& in) const {
  return in.mass_size == 0 && wide_rows_ != WideRows::kNever && TensorCoreAttention(in.num_tokens) &&
         tc_tiles_ == TcTiles::kRegisters;
}

SplitChoice CudaBackend::WideSplitFor(const StepInputs& in, const RowLayout& l) const {
  const int32_t rows = in.num_tokens * local_.num_kv_heads;
  // WideSplit checks the row count too; asked here first, a step of many rows (every batched
  // step) skips the scan for the longest row.
  if (!WideCtasAllowed(in) || SplitTarget(in.num_tokens) <= 0 || !SplitSupported(local_.head_dim) ||
      rows > kWideSplitMaxRows) {
    return {};
  }
  return WideSplit(rows, LongestRowEntries(l) * page_size_, page_size_, sms_);
}

bool CudaBackend::Graphable(const StepPlan& plan, const StepInputs& in) const {
  if (!graphs_enabled_ || in.num_tokens > kMaxGraphBatch || in.mass_size > 0 || in.layouts.size() != 1 ||
      !in.layouts[0].quest_seqs.empty() || static_cast<int32_t>(in.logit_rows.size()) != in.num_tokens ||
      static_cast<int32_t>(in.touched_pages.size()) != in.num_tokens) {
    return false;
  }
  for (const ScheduledSeq& seq : plan.seqs) {
    if (seq.tokens.size() != 1 || seq.return_logits || !seq.sample) return false;
  }
  return true;
}

void CudaBackend::ResetGraphs() {
  for (auto& [b, exec] : graphs_) {
    if (exec != nullptr) cudaGraphExecDestroy(exec);
  }
  graphs_.clear();
}

absl::StatusOr<StepResult> CudaBackend::Execute(const StepPlan& plan) {
  last_clock_ = {};
  last_clock_.begin_us = SystemClock::Get()->NowMicros();
  LIL_RETURN_IF_ERROR(CheckPlan(plan, config_, num_pages_, page_size_));
  LIL_RETURN_IF_ERROR(CheckQuestCandidates(plan, config_, page_size_, kQuestMaxCandidates));
  if (world_ > 1) LIL_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  for (RequestId id : plan.released) seqs_.erase(id);
  const ModelConfig& c = local_;  // this rank's heads; the whole model's vocabulary is config_'s
  const int32_t num_seqs = static_cast<int32_t>(plan.seqs.size());
  StepResult result;
  result.seqs.resize(num_seqs);
  if (num_seqs == 0) return result;
  for (const ScheduledSeq& seq : plan.seqs) {
    seqs_[seq.id].Update(seq, seed_base_);
  }
  BuildStepInputs(plan, c, page_size_, &step_inputs_, rows_per_seq_);
  if (step_trace_) last_clock_.built_us = SystemClock::Get()->NowMicros();
  const StepInputs& in = step_inputs_;
  // Decode-only dense steps replay a CUDA graph captured for their batch size: every array
  // then sits at a fixed offset sized for the largest graph batch and the graph capacity of
  // page-list entries, so the same addresses serve every step of that shape. Steps where a
  // row draws on the GPU (SampleFiltered) have a graph of their own.
  const bool gpu_sampled = StepDrawsOnGpu(plan, in);
  const bool tp_greedy = TpGreedyStep(plan, in);
  // One-token steps of few long rows take the 8-warp split (WideSplit); a graph step keys its
  // graph on that, so a row that grows past the rule's length is captured once more.
  const bool wide_split = in.layouts.size() == 1 && WideSplitFor(in, in.layouts[0]).min_chunk_entries > 0;
  const int32_t key = GraphKey(in.num_tokens, gpu_sampled, tp_greedy, wide_split);  // the same on every rank
  bool graph = Graphable(plan, in) && !graph_failed_.contains(key);
  int64_t nnz_cap = 0;
  if (graph) {
    nnz_cap = graph_nnz_cap_;
    const int64_t nnz = static_cast<int64_t>(in.layouts[0].pages.size());
    if (nnz > nnz_cap) {
      nnz_cap = std::max<int64_t>(2 * nnz, 4096);
      ResetGraphs();
      graph_nnz_cap_ = nnz_cap;
    }
  }
  const int64_t tok_cap = graph ? kMaxGraphBatch : 0;
  const int64_t row_cap = graph ? int64_t{kMaxGraphBatch} * c.num_kv_heads + 1 : 0;

  // Pack the int inputs; the layouts' pages/logical also go to a writable copy.
  PinnedIntPack& pack = pack_;
  PinnedIntPack& rw = rw_;
  pack.Reset();
  rw.Reset();
  Work w;
  w.tp_greedy = tp_greedy;
  w.tokens = pack.Add(in.tokens, tok_cap);
  w.pos = pack.Add(in.pos, tok_cap);
  w.seq = pack.Add(in.seq, tok_cap);
  w.dst_page = pack.Add(in.dst_page, tok_cap);
  w.dst_slot = pack.Add(in.dst_slot, tok_cap);
  w.touched_pages = pack.Add(in.touched_pages, tok_cap);
  w.touched_last = pack.Add(in.touched_last_slot, tok_cap);
  w.mass_offset = pack.Add(in.mass_offset, tok_cap);
  w.logit_rows = pack.Add(in.logit_rows, tok_cap);
  PackSampleArgs(plan, in, gpu_sampled, tok_cap, &w);
  // The candidate lists (read by QuestSelect) and the layouts' entry_seq (read by the h2o
  // ScatterAdd) are left out of graph steps, which run neither (Graphable): a graph step then
  // uploads neither them nor their capacity padding (at batch 64 on one GPU, 0.8 of the 1.3 MB
  // a step uploaded), and the offsets after them stay put (zero-length in every graph step).
  static const std::vector<int32_t> kNotInGraphs;
  w.cand_pages = pack.Add(graph ? kNotInGraphs : in.cand_pages);
  w.cand_logical = pack.Add(graph ? kNotInGraphs : in.cand_logical);
  int32_t max_nnz = 1, max_splits = 0;
  int64_t quest_keys = 0;  // the largest split-scored layout's score keys
  const int32_t split_target = SplitTarget(in.num_tokens);  // the same kernel for every layout
  for (const RowLayout& l : in.layouts) {
    Work::Layout d;
    d.indptr = pack.Add(l.indptr, row_cap);
    d.entry_seq = pack.Add(graph ? kNotInGraphs : l.entry_seq);
    d.pages = rw.Add(l.pages, nnz_cap);
    d.logical = rw.Add(l.logical, nnz_cap);
    std::vector<int32_t> q_row, cb, cn, budget, out_begin;
    for (int32_t s : l.quest_seqs) {
      q_row.push_back(in.seq_first[s]);
      cb.push_back(in.cand_indptr[s]);
      cn.push_back(in.cand_indptr[s + 1] - in.cand_indptr[s]);
      budget.push_back(in.quest_budget[s]);
      for (int32_t h = 0; h < c.num_kv_heads; ++h) out_begin.push_back(l.indptr[s * c.num_kv_heads + h]);
    }
    d.q_row = pack.Add(q_row);
    d.cand_begin = pack.Add(cb);
    d.cand_count = pack.Add(cn);
    d.budget = pack.Add(budget);
    d.out_begin = pack.Add(out_begin);
    d.nnz = static_cast<int32_t>(l.pages.size());
    d.per_seq = l.per_seq;
    d.num_quest = static_cast<int32_t>(l.quest_seqs.size());
    d.max_cand = cn.empty() ? 0 : *std::max_element(cn.begin(), cn.end());
    // Decided once a step for every layer: the rows (sequences x KV heads) are the same in each.
    d.quest_split = d.max_cand > 0 && (quest_split_ == QuestSplit::kAlways ||
                                       (quest_split_ == QuestSplit::kAuto &&
                                        QuestSplitScoringPays(d.num_quest * c.num_kv_heads, quest_fp8_)));
    if (d.quest_split) quest_keys = std::max<int64_t>(quest_keys, int64_t{d.num_quest} * c.num_kv_heads * d.max_cand);
    max_nnz = std::max(max_nnz, d.nnz);
    d.wide = false;
    if (!graph && WideCtasAllowed(in)) {
      d.wide = wide_rows_ == WideRows::kAlways ||
               WideTcRows(in.num_tokens * c.num_kv_heads, LongestRowEntries(l) * page_size_, sms_);
    }
    const SplitChoice wide = d.wide ? SplitChoice{} : WideSplitFor(in, l);
    if (wide.min_chunk_entries > 0) {
      d.wide = true;
      d.split = wide;
      max_splits = std::max(max_splits, wide.max_splits);
    } else if (split_target > 0 && in.mass_size == 0 && SplitSupported(c.head_dim) && !d.wide) {
      d.split = ChooseSplit(in.num_tokens * c.num_kv_heads, page_size_, split_target);
      max_splits = std::max(max_splits, d.split.min_chunk_entries > 0 ? d.split.max_splits : 0);
    }
    w.layouts.push_back(d);
  }
  // Tensor-core prefill (unless $LILSERVE_FLASH_PREFILL=0): for eager steps with a multi-token
  // sequence and no h2o mass, the tiles of every sequence's tokens (last in the pack, so the
  // offsets before it are the same with or without them).
  if (flash_prefill_ && !graph && in.mass_size == 0 && in.num_tokens > static_cast<int32_t>(in.seq_len.size())) {
    const std::vector<int32_t> tiles = FlashPrefillTiles(in.seq, local_.num_heads / local_.num_kv_heads);
    w.flash_tiles = pack.Add(tiles);
    w.num_flash_tiles = static_cast<int32_t>(tiles.size() / 3);
  }

  // Work buffers: sized for this step, or for the largest graph batch in graph mode.
  const int64_t t = graph ? kMaxGraphBatch : in.num_tokens;
  const int64_t r = graph ? kMaxGraphBatch : std::max<int64_t>(1, in.logit_rows.size());
  const int64_t hmax = std::max(c.hidden_size, c.intermediate_size);
  const int64_t partial_floats = graph ? graph_partial_floats_
                                       : (max_splits > 0 ? SplitPartialFloats(in.num_tokens, c.num_kv_heads,
                                                                              c.head_dim, max_splits) : 1);
  if (graph) max_nnz = static_cast<int32_t>(std::max<int64_t>(nnz_cap, 1));
  Carve carve;
  auto carve_all = [&] {
    carve.used = 0;
    w.ints = carve.Take<int32_t>(pack.size());
    w.pages_rw = carve.Take<int32_t>(rw.size());
    w.x = carve.Take<float>(t * c.hidden_size);
    w.qkv = carve.Take<float>(t * (c.q_dim() + 2 * c.kv_dim()));
    w.q = carve.Take<float>(t * c.q_dim());
    w.delta = carve.Take<float>(t * c.hidden_size);
    w.gate_up = carve.Take<float>(t * 2 * c.intermediate_size);
    w.entry_mass = carve.Take<float>(max_nnz);
    w.seq_mass = carve.Take<float>(std::max(1, in.mass_size));
    w.logits = carve.Take<float>(r * config_.vocab_size);
    const int64_t gathered = world_ > 1 ? r * shards_[0].vocab_stride : 0;
    w.logits_local = carve.Take<float>(gathered);
    w.logits_gather = carve.Take<float>(gathered * world_);
    w.greedy_gather = carve.Take<float>(world_ > 1 ? r * world_ * 4 : 0);
    w.logprob = carve.Take<float>(r);
    w.h = carve.Take<bf16>(std::max(t, r) * hmax);
    w.attn = carve.Take<bf16>(t * c.q_dim());
    w.act = carve.Take<bf16>(t * c.intermediate_size);
    w.xb = carve.Take<bf16>(t * c.hidden_size);
    w.token_out = carve.Take<int32_t>(r);
    w.top_ids = carve.Take<int32_t>(gpu_sampling_ ? r * kMaxTopLogprobs : 0);
    w.top_logprobs = carve.Take<float>(gpu_sampling_ ? r * kMaxTopLogprobs : 0);
    w.split_partial = carve.Take<float>(partial_floats);
    w.split_counters = carve.Take<int32_t>(t * c.num_kv_heads);
    w.quest_keys = carve.Take<uint32_t>(quest_keys);
  };
  carve_all();
  DeviceBuffer& work = graph ? graph_work_ : work_;
  if (carve.used > work.bytes()) {
    if (graph) ResetGraphs();
    LIL_RETURN_IF_ERROR(work.Reserve(carve.used));
    // The split counters must be zero at rest; a fresh buffer is zeroed once.
    LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(work.get(), 0, work.bytes(), stream_));
  }
  carve.base = work.get<char>();
  carve_all();
  // The int pack and the writable page lists go up straight from their page-locked buffers
  // (the previous step ended with a stream synchronize, so nothing still reads them), the runs
  // each wrote only: not the capacity padding of graph steps.
  auto upload = [&](const PinnedIntPack& from, int32_t* dst) -> cudaError_t {
    for (const PinnedIntPack::Extent& e : from.extents()) {
      const cudaError_t err = cudaMemcpyAsync(dst + e.offset, from.data() + e.offset, sizeof(int32_t) * e.count,
                                              cudaMemcpyHostToDevice, stream_);
      if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
  };
  LIL_CUDA_RETURN_IF_ERROR(upload(pack, const_cast<int32_t*>(w.ints)));
  LIL_CUDA_RETURN_IF_ERROR(upload(rw, w.pages_rw));
  if (in.mass_size > 0) {
    LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(w.seq_mass, 0, sizeof(float) * in.mass_size, stream_));
  }
  // Split merge counters: graph steps keep theirs at a fixed place (zero at rest); eager steps
  // carve them wherever this step's sizes put them, so they are cleared here.
  if (!graph && max_splits > 0) {
    LIL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(w.split_counters, 0, sizeof(int32_t) * t * c.num_kv_heads, stream_));
  }
  if (step_trace_) last_clock_.uploaded_us = SystemClock::Get()->NowMicros();
  if (graph) {
    cudaGraphExec_t& exec = graphs_[key];
    if (exec == nullptr) {
      absl::Status captured = CaptureGraph(in, w, &exec);
      if (!captured.ok()) {
        LIL_LOG_WARN("CUDA graph capture for batch {} failed ({}); running that batch size without graphs",
                     in.num_tokens, std::string(captured.message()));
        graphs_.erase(key);
        graph_failed_.insert(key);
        graph = false;
      }
    }
    if (graph) LIL_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(graphs_[key], stream_));
  }
  if (!graph) LIL_RETURN_IF_ERROR(LaunchForward(in, w));
  last_clock_.launched_us = SystemClock::Get()->NowMicros();
  std::vector<float> mass(in.mass_size);
  if (in.mass_size > 0) {
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(mass.data(), w.seq_mass, sizeof(float) * in.mass_size,
                                             cudaMemcpyDeviceToHost, stream_));
  }
  LIL_RETURN_IF_ERROR(FinishSampling(plan, in, w, result));
  LIL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  last_clock_.synced_us = SystemClock::Get()->NowMicros();

  const RowLayout* last = c.num_layers > 0 ? &in.layouts[in.layer_layout.back()] : nullptr;
  for (int32_t s = 0; s < num_seqs; ++s) {
    SeqOutput& out = result.seqs[s];
    out.id = plan.seqs[s].id;
    if (last != nullptr) {
      const int32_t row = last->per_seq ? s : s * c.num_kv_heads;
      out.pages_attended = last->indptr[row + 1] - last->indptr[row];
    }
    if (in.mass_offset[s] >= 0) {
      const int32_t pages = (plan.seqs[s].start_pos + in.seq_len[s] + page_size_ - 1) / page_size_;
      const float norm = 1.0f / (static_cast<float>(c.num_layers) * config_.num_heads * in.seq_len[s]);
      out.page_mass.assign(mass.begin() + in.mass_offset[s], mass.begin() + in.mass_offset[s] + pages);
      for (float& m : out.page_mass) m *= norm;
    }
  }
  if (step_trace_) RecordStepTrace(num_seqs, graph);
  return result;
}

absl::Status CudaBackend::CaptureGraph(const StepInputs& in, const Work& w, cudaGraphExec_t* exec) {
  // With autotuning (GEMV variants, cuBLASLt) the step runs once eagerly first so every shape is timed
  // outside the capture; the graph's replay then rewrites the same K/V, page metadata and
  // outputs (a decode step is idempotent on its inputs).
  if (gemm_.tunes()) LIL_RETURN_IF_ERROR(LaunchForward(in, w));
  LIL_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  const absl::Status launched = LaunchForward(in, w);
  cudaGraph_t g = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &g);
  if (!launched.ok() || ended != cudaSuccess) {
    if (g != nullptr) cudaGraphDestroy(g);
    cudaGetLastError();
    return launched.ok() ? CudaStatus(ended, "cudaStreamEndCapture") : launched;
  }
  const cudaError_t inst = cudaGraphInstantiate(exec, g, 0);
  cudaGraphDestroy(g);
  if (inst != cudaSuccess) {
    *exec = nullptr;
    cudaGetLastError();
    return CudaStatus(inst, "cudaGraphInstantiate");
  }
  ++graph_captures_;
  return absl::OkStatus();
}

}  // namespace lil::cuda
