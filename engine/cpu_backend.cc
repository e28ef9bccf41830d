// File: engine/cpu_backend.cc
#include "engine/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/status.h"
#include "engine/plan_check.h"
#include "engine/sampler.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/kv_write.h"
#include "kernels/cpu/qmatrix.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quest.h"

namespace lil {

// The flattened inputs and the workspaces of one step.
struct CpuBackend::Batch {
  int32_t num_tokens = 0;
  std::vector<TokenId> tokens;
  std::vector<int32_t> pos, seq, dst_page, dst_slot;
  std::vector<int32_t> seq_first, seq_len;                  // per seq: first token row, count
  std::vector<int32_t> cand_indptr, cand_pages, cand_logical;  // resident pages per seq
  std::vector<int32_t> quest_budget;                        // per seq: pages, 0 = dense
  std::vector<int32_t> quest_dense_layers;
  std::vector<int32_t> row_indptr, row_pages, row_logical;  // this layer's attention rows
  std::vector<int32_t> entry_seq;                           // seq of each row entry
  std::vector<float> entry_mass;
  std::vector<std::vector<float>> page_mass;                // per seq, per logical page
  std::vector<bool> want_mass;
  std::vector<int32_t> pages_attended;                      // per seq, last layer, head 0
  std::vector<float> h, qkv, q, k, v, attn, o, gate_up, act;
};

CpuBackend::CpuBackend(const ModelConfig& config, CpuWeights weights, int32_t num_pages,
                       int32_t page_size, const TpShard& shard, Communicator* comm)
    : config_(config),
      shard_(shard),
      local_(ShardConfig(config, shard)),
      comm_(comm),
      w_(std::move(weights)),
      num_pages_(num_pages),
      page_size_(page_size) {
  inv_freq_ = config_.RopeInvFreq();
  quest_e4m3_ = QuestE4m3Requested();
  const size_t pool =
      static_cast<size_t>(num_pages) * local_.num_kv_heads * page_size * config.head_dim;
  const size_t meta = static_cast<size_t>(num_pages) * local_.num_kv_heads * 2 * config.head_dim;
  k_pool_.assign(config.num_layers, std::vector<float>(pool));
  v_pool_.assign(config.num_layers, std::vector<float>(pool));
  quest_pool_.assign(config.num_layers, std::vector<float>(meta));
  seed_base_ = std::random_device{}();
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const ModelConfig& config,
                                                               const HostWeights& weights,
                                                               const KvCacheOptions& kv) {
  return Create(config, CpuWeightsFromHost(weights, config), kv);
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const ModelConfig& config,
                                                               CpuWeights weights,
                                                               const KvCacheOptions& kv,
                                                               const CpuRankOptions& rank) {
  if (kv.page_size <= 0) return InvalidArgument("page_size must be positive, got ", kv.page_size);
  LIL_RETURN_IF_ERROR(CheckTensorParallel(config, rank.world));
  if (rank.rank < 0 || rank.rank >= rank.world) {
    return InvalidArgument("rank ", rank.rank, " is outside [0, ", rank.world, ")");
  }
  if (rank.world > 1 && (rank.comm == nullptr || rank.comm->world_size() != rank.world ||
                         rank.comm->rank() != rank.rank)) {
    return InvalidArgument("rank ", rank.rank, " of ", rank.world,
                           " needs a Communicator of that rank and size");
  }
  const TpShard shard = MakeTpShard(config, rank.rank, rank.world);
  const ModelConfig local = ShardConfig(config, shard);
  int64_t pages = kv.num_pages;
  if (pages <= 0) pages = kv.kv_bytes / KvBytesPerPage(local, kv.page_size, sizeof(float));
  if (pages < 1) {
    return InvalidArgument("KV memory of ", kv.kv_bytes, " bytes holds no page of ", kv.page_size,
                           " tokens (one page needs ", KvBytesPerPage(local, kv.page_size, 4), ")");
  }
  return std::unique_ptr<CpuBackend>(new CpuBackend(
      config, std::move(weights), static_cast<int32_t>(pages), kv.page_size, shard, rank.comm));
}

absl::Status CpuBackend::AllReduce(float* data, int64_t n) {
  return shard_.world > 1 ? comm_->AllReduceSum(data, n) : absl::OkStatus();
}

PagedKvView CpuBackend::LayerView(int32_t layer) {
  PagedKvView v;
  v.k = k_pool_[layer].data();
  v.v = v_pool_[layer].data();
  v.quest = quest_pool_[layer].data();
  v.num_pages = num_pages_;
  v.num_kv_heads = local_.num_kv_heads;
  v.page_size = page_size_;
  v.head_dim = config_.head_dim;
  return v;
}

// Dense rows list every resident page for each KV head; Quest sequences (decode tokens in
// layers past dense_layers) list their own selection per KV head.
void CpuBackend::BuildAttentionRows(int32_t layer, Batch& b) {
  const int32_t hkv = local_.num_kv_heads;
  const int32_t num_seqs = static_cast<int32_t>(b.seq_first.size());
  b.row_indptr.assign(1, 0);
  b.row_pages.clear();
  b.row_logical.clear();
  b.entry_seq.clear();
  std::vector<int32_t> sel_indptr(hkv + 1), sel_pages, sel_logical;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const int32_t c0 = b.cand_indptr[s], c1 = b.cand_indptr[s + 1];
    const bool quest = b.quest_budget[s] > 0 && layer >= b.quest_dense_layers[s] &&
                       b.seq_len[s] == 1 && b.quest_budget[s] < c1 - c0;
    if (quest) {
      const int32_t budget = b.quest_budget[s];
      sel_pages.resize(static_cast<size_t>(hkv) * budget);
      sel_logical.resize(sel_pages.size());
      cpu::QuestSelectParams qp;
      qp.q = b.q.data() + static_cast<int64_t>(b.seq_first[s]) * local_.q_dim();
      qp.kv = LayerView(layer);
      qp.num_seqs = 1;
      qp.num_heads = local_.num_heads;
      const int32_t cand_indptr[2] = {0, c1 - c0};
      qp.cand_indptr = cand_indptr;
      qp.cand_pages = b.cand_pages.data() + c0;
      qp.cand_logical = b.cand_logical.data() + c0;
      qp.budget_pages = &budget;
      qp.out_indptr = sel_indptr.data();
      qp.out_pages = sel_pages.data();
      qp.out_logical = sel_logical.data();
      cpu::QuestSelect(qp);
      for (int32_t h = 0; h < hkv; ++h) {
        for (int32_t e = sel_indptr[h]; e < sel_indptr[h + 1]; ++e) {
          b.row_pages.push_back(sel_pages[e]);
          b.row_logical.push_back(sel_logical[e]);
          b.entry_seq.push_back(s);
        }
        b.row_indptr.push_back(static_cast<int32_t>(b.row_pages.size()));
      }
    } else {
      for (int32_t h = 0; h < hkv; ++h) {
        b.row_pages.insert(b.row_pages.end(), b.cand_pages.begin() + c0, b.cand_pages.begin() + c1);
        b.row_logical.insert(b.row_logical.end(), b.cand_logical.begin() + c0,
                             b.cand_logical.begin() + c1);
        b.entry_seq.insert(b.entry_seq.end(), c1 - c0, s);
        b.row_indptr.push_back(static_cast<int32_t>(b.row_pages.size()));
      }
    }
    b.pages_attended[s] = b.row_indptr[s * hkv + 1] - b.row_indptr[s * hkv];
  }
}

// At world > 1 `c` holds this rank's heads and intermediate slice; the row-parallel o_proj and
// down produce partial sums that the all-reduces complete.
absl::Status CpuBackend::RunLayer(int32_t layer, Batch& b, std::vector<float>& x) {
  const ModelConfig& c = local_;
  const CpuLayerWeights& w = w_.layers[layer];
  const int32_t t = b.num_tokens, hid = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim();
  const int32_t hd = c.head_dim, inter = c.intermediate_size;

  cpu::RmsNorm({x.data(), w.attn_norm.data(), b.h.data(), t, hid, c.rms_norm_eps});
  cpu::QLinear({b.h.data(), w.qkv.view(), w.qkv_bias.empty() ? nullptr : w.qkv_bias.data(),
                b.qkv.data(), t});
  for (int32_t i = 0; i < t; ++i) {
    const float* row = b.qkv.data() + static_cast<int64_t>(i) * (qd + 2 * kvd);
    std::copy_n(row, qd, b.q.data() + static_cast<int64_t>(i) * qd);
    std::copy_n(row + qd, kvd, b.k.data() + static_cast<int64_t>(i) * kvd);
    std::copy_n(row + qd + kvd, kvd, b.v.data() + static_cast<int64_t>(i) * kvd);
  }
  if (c.qk_norm) {
    cpu::RmsNorm({b.q.data(), w.q_norm.data(), b.q.data(), t * c.num_heads, hd, c.rms_norm_eps});
    cpu::RmsNorm({b.k.data(), w.k_norm.data(), b.k.data(), t * c.num_kv_heads, hd, c.rms_norm_eps});
  }
  cpu::Rope({b.q.data(), b.pos.data(), inv_freq_.data(), t, c.num_heads, hd, hd});
  cpu::Rope({b.k.data(), b.pos.data(), inv_freq_.data(), t, c.num_kv_heads, hd, hd});

  const PagedKvView view = LayerView(layer);
  cpu::KvWrite({b.k.data(), b.v.data(), view, t, b.dst_page.data(), b.dst_slot.data(), quest_e4m3_});
  BuildAttentionRows(layer, b);
  const bool any_mass = std::any_of(b.want_mass.begin(), b.want_mass.end(), [](bool m) { return m; });
  b.entry_mass.assign(any_mass ? b.row_pages.size() : 0, 0.0f);
  cpu::PagedAttentionParams ap;
  ap.q = b.q.data();
  ap.out = b.attn.data();
  ap.kv = view;
  ap.num_tokens = t;
  ap.num_heads = c.num_heads;
  ap.token_pos = b.pos.data();
  ap.token_seq = b.seq.data();
  ap.row_indptr = b.row_indptr.data();
  ap.row_pages = b.row_pages.data();
  ap.row_logical = b.row_logical.data();
  ap.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ap.page_mass = any_mass ? b.entry_mass.data() : nullptr;
  cpu::PagedAttention(ap);
  for (size_t e = 0; e < b.entry_mass.size(); ++e) {
    const int32_t s = b.entry_seq[e];
    if (b.want_mass[s]) b.page_mass[s][b.row_logical[e]] += b.entry_mass[e];
  }

  cpu::QLinear({b.attn.data(), w.o_proj.view(), nullptr, b.o.data(), t});
  LIL_RETURN_IF_ERROR(AllReduce(b.o.data(), static_cast<int64_t>(t) * hid));
  cpu::AddInPlace(x.data(), b.o.data(), static_cast<int64_t>(t) * hid);
  cpu::RmsNorm({x.data(), w.mlp_norm.data(), b.h.data(), t, hid, c.rms_norm_eps});
  cpu::QLinear({b.h.data(), w.gate_up.view(), nullptr, b.gate_up.data(), t});
  cpu::SiluMul({b.gate_up.data(), b.act.data(), t, inter});
  cpu::QLinear({b.act.data(), w.down.view(), nullptr, b.o.data(), t});
  LIL_RETURN_IF_ERROR(AllReduce(b.o.data(), static_cast<int64_t>(t) * hid));
  cpu::AddInPlace(x.data(), b.o.data(), static_cast<int64_t>(t) * hid);
  return absl::OkStatus();
}

// Final norm + LM head for the rows that need logits, then sampling. At world > 1 each rank
// computes its vocabulary slice, the slices are gathered, and only rank 0 samples.
absl::Status CpuBackend::Sample(const StepPlan& plan, Batch& b, const std::vector<float>& x,
                                StepResult& result) {
  const ModelConfig& c = config_;
  const int32_t num_seqs = static_cast<int32_t>(plan.seqs.size());
  std::vector<int32_t> rows;           // token rows that need logits
  std::vector<int32_t> first_row(num_seqs, -1);
  for (int32_t s = 0; s < num_seqs; ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    if (seq.return_logits) {
      first_row[s] = static_cast<int32_t>(rows.size());
      for (int32_t j = 0; j < b.seq_len[s]; ++j) rows.push_back(b.seq_first[s] + j);
    } else if (seq.sample) {
      first_row[s] = static_cast<int32_t>(rows.size());
      rows.push_back(b.seq_first[s] + b.seq_len[s] - 1);
    }
  }
  if (rows.empty()) return absl::OkStatus();
  const int32_t r = static_cast<int32_t>(rows.size()), hid = c.hidden_size, vocab = c.vocab_size;
  std::vector<float> hs(static_cast<size_t>(r) * hid),
      logits(static_cast<size_t>(r) * local_.vocab_size);
  for (int32_t i = 0; i < r; ++i) {
    std::copy_n(x.data() + static_cast<int64_t>(rows[i]) * hid, hid, hs.data() + static_cast<int64_t>(i) * hid);
  }
  cpu::RmsNorm({hs.data(), w_.final_norm.data(), hs.data(), r, hid, c.rms_norm_eps});
  cpu::QLinear({hs.data(), w_.lm_head_or_embed().view(), nullptr, logits.data(), r});
  if (shard_.world > 1) {
    std::vector<float> local = std::move(logits);
    LIL_RETURN_IF_ERROR(GatherVocabParallel(*comm_, config_, shard_, local.data(), r, &logits));
    if (shard_.rank != 0) return absl::OkStatus();
  }

  for (int32_t s = 0; s < num_seqs; ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    SeqOutput& out = result.seqs[s];
    if (first_row[s] < 0) continue;
    const float* lg = logits.data() + static_cast<int64_t>(first_row[s]) * vocab;
    if (seq.return_logits) {
      out.logits.assign(lg, lg + static_cast<int64_t>(b.seq_len[s]) * vocab);
      lg += static_cast<int64_t>(b.seq_len[s] - 1) * vocab;
    }
    if (!seq.sample) continue;
    const SamplerState& st = seqs_[seq.id];
    SampleOutput so = lil::Sample(absl::MakeConstSpan(lg, vocab), seq.sampling, st.history,
                                  st.seed, seq.num_generated);
    out.token = so.token;
    out.logprob = so.logprob;
    out.top_logprobs = std::move(so.top_logprobs);
  }
  return absl::OkStatus();
}

// h2o: each rank's masses cover its own query heads; their sum over the ranks is the mass
// TP=1 measures, so the sparse policy sees the same numbers. One all-reduce for the batch.
absl::Status CpuBackend::ReducePageMass(Batch& b) {
  if (shard_.world == 1) return absl::OkStatus();
  std::vector<float> flat;
  for (size_t s = 0; s < b.page_mass.size(); ++s) {
    if (b.want_mass[s]) flat.insert(flat.end(), b.page_mass[s].begin(), b.page_mass[s].end());
  }
  if (flat.empty()) return absl::OkStatus();  // the same on every rank: it follows the plan
  LIL_RETURN_IF_ERROR(AllReduce(flat.data(), static_cast<int64_t>(flat.size())));
  size_t at = 0;
  for (size_t s = 0; s < b.page_mass.size(); ++s) {
    if (!b.want_mass[s]) continue;
    std::copy_n(flat.begin() + at, b.page_mass[s].size(), b.page_mass[s].begin());
    at += b.page_mass[s].size();
  }
  return absl::OkStatus();
}

absl::StatusOr<StepResult> CpuBackend::Execute(const StepPlan& plan) {
  LIL_RETURN_IF_ERROR(CheckPlan(plan, config_, num_pages_, page_size_));
  for (RequestId id : plan.released) seqs_.erase(id);
  const ModelConfig& c = config_;
  const int32_t num_seqs = static_cast<int32_t>(plan.seqs.size());
  StepResult result;
  result.seqs.resize(num_seqs);
  if (num_seqs == 0) return result;

  Batch b;
  b.cand_indptr.push_back(0);
  for (int32_t s = 0; s < num_seqs; ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    if (shard_.rank == 0) {  // the sampler's state; other ranks never sample
      seqs_[seq.id].Update(seq, seed_base_);
    }

    const int32_t n = static_cast<int32_t>(seq.tokens.size());
    b.seq_first.push_back(b.num_tokens);
    b.seq_len.push_back(n);
    for (int32_t j = 0; j < n; ++j) {
      const int32_t pos = seq.start_pos + j;
      b.tokens.push_back(seq.tokens[j]);
      b.pos.push_back(pos);
      b.seq.push_back(s);
      b.dst_page.push_back(seq.page_table[pos / page_size_].value);
      b.dst_slot.push_back(pos % page_size_);
    }
    b.num_tokens += n;
    const int32_t end = seq.start_pos + n;
    const int32_t pages = (end + page_size_ - 1) / page_size_;
    for (int32_t lp = 0; lp < pages; ++lp) {
      if (!seq.page_table[lp].valid()) continue;
      b.cand_pages.push_back(seq.page_table[lp].value);
      b.cand_logical.push_back(lp);
    }
    b.cand_indptr.push_back(static_cast<int32_t>(b.cand_pages.size()));
    const bool quest = seq.sparse.mode == SparseMode::kQuest && seq.sparse.budget_tokens > 0;
    b.quest_budget.push_back(
        quest ? std::max(1, (seq.sparse.budget_tokens + page_size_ - 1) / page_size_) : 0);
    b.quest_dense_layers.push_back(seq.sparse.dense_layers);
    b.want_mass.push_back(seq.collect_page_mass);
    b.page_mass.emplace_back(seq.collect_page_mass ? pages : 0, 0.0f);
  }
  b.pages_attended.assign(num_seqs, 0);
  const int64_t t = b.num_tokens;
  const ModelConfig& l = local_;
  b.h.resize(t * c.hidden_size);
  b.qkv.resize(t * (l.q_dim() + 2 * l.kv_dim()));
  b.q.resize(t * l.q_dim());
  b.k.resize(t * l.kv_dim());
  b.v.resize(t * l.kv_dim());
  b.attn.resize(t * l.q_dim());
  b.o.resize(t * c.hidden_size);
  b.gate_up.resize(t * 2 * l.intermediate_size);
  b.act.resize(t * l.intermediate_size);

  // Vocab-parallel embedding: a token outside this rank's rows reads zeros; the all-reduce
  // adds the one rank's row to zeros, which is exact.
  std::vector<float> x(t * c.hidden_size, 0.0f);
  for (int32_t i = 0; i < b.num_tokens; ++i) {
    const int32_t row = b.tokens[i] - shard_.vocab_begin;
    if (row < 0 || row >= shard_.vocab_size) continue;
    cpu::QDequantRows(w_.embed.view(), row, 1, x.data() + static_cast<int64_t>(i) * c.hidden_size);
  }
  LIL_RETURN_IF_ERROR(AllReduce(x.data(), static_cast<int64_t>(x.size())));
  for (int32_t layer = 0; layer < c.num_layers; ++layer) LIL_RETURN_IF_ERROR(RunLayer(layer, b, x));
  LIL_RETURN_IF_ERROR(Sample(plan, b, x, result));
  LIL_RETURN_IF_ERROR(ReducePageMass(b));

  for (int32_t s = 0; s < num_seqs; ++s) {
    SeqOutput& out = result.seqs[s];
    out.id = plan.seqs[s].id;
    out.pages_attended = b.pages_attended[s];
    if (b.want_mass[s]) {
      // Average over layers, query heads and query tokens: a decode step's masses sum to ~1.
      const float norm = 1.0f / (static_cast<float>(c.num_layers) * c.num_heads * b.seq_len[s]);
      for (float& m : b.page_mass[s]) m *= norm;
      out.page_mass = std::move(b.page_mass[s]);
    }
  }
  return result;
}

}  // namespace lil
