// File: tests/engine/parallel/tensor_parallel_test.cc
// Tensor parallelism on the CPU with simulated ranks: TP = 2 and 4 give TP = 1's logits,
// greedy tokens, Quest selections and h2o page masses over chunked prefill and decode
// steps (fp32, 1e-5 relative); shards of quantized weights; the plan broadcast codec; clear
// errors for an N that does not divide the heads; the real default model through Model::Load.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "engine/cpu_backend.h"
#include "engine/model.h"
#include "engine/parallel/plan_codec.h"
#include "engine/parallel/tp_cpu_backend.h"
#include "engine/parallel/tp_shard.h"
#include "engine/plan_check.h"
#include "tests/testing/paths.h"
#include "tests/testing/tiny_model.h"

namespace lil {
namespace {

using testing::TinyConfig;
using testing::TinyModelOptions;
using testing::TinyWeights;

constexpr float kTolerance = 1e-5f;  // max |a - b| / max |b|

// 8 query heads, 4 KV heads (N = 1, 2, 4 divide both); intermediate 50 and vocab 97 split
// unevenly over 4 ranks (12/13, 24/25); head_dim 8 so q_dim 64 (32-aligned slices at N = 2).
ModelConfig TpConfig(ModelFamily family) {
  TinyModelOptions o;
  o.family = family;
  o.heads = 8;
  o.kv_heads = 4;
  o.hidden = 40;
  o.inter = 50;
  o.layers = 3;
  return TinyConfig(o);
}

float MaxRelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float diff = 0, mx = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_FALSE(std::isnan(a[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
    mx = std::max(mx, std::abs(b[i]));
  }
  return mx > 0 ? diff / mx : diff;
}

std::unique_ptr<Backend> MakeBackend(const ModelConfig& c, const CpuWeights& w, int32_t world) {
  KvCacheOptions kv;
  kv.page_size = 4;
  kv.num_pages = 64;
  if (world == 1) {  // the reference is the plain CPU backend
    auto b = CpuBackend::Create(c, w, kv);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  }
  auto b = TensorParallelCpuBackend::Create(c, w, kv, world);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? std::move(*b) : nullptr;
}

std::vector<TokenId> RandomTokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(rng() % vocab);
  return t;
}

// Three requests in one batch: 1 dense (prompt in two chunks), 2 Quest (2-page budget from
// layer 1 on), 3 h2o (page masses). Then decode steps feeding back the greedy tokens; the
// last step releases request 3. Returns every step's result.
std::vector<StepResult> RunScenario(Backend& b, int32_t vocab) {
  struct Req {
    std::vector<TokenId> prompt;
    std::vector<PageId> pages;
    int32_t done = 0;  // tokens computed
    TokenId next = -1;
  };
  std::vector<Req> reqs(3);
  const int32_t prompt_len[3] = {21, 19, 9};
  std::vector<int32_t> perm(10);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
  for (int i = 0; i < 3; ++i) {
    reqs[i].prompt = RandomTokens(prompt_len[i], vocab, 10 + i);
    for (int32_t p : perm) reqs[i].pages.push_back(PageId{20 * i + p});
  }
  std::vector<StepResult> results;
  for (int step = 0; step < 8; ++step) {
    StepPlan plan;
    plan.step = step;
    for (int i = 0; i < 3; ++i) {
      Req& r = reqs[i];
      if (step == 7 && i == 2) {
        plan.released.push_back(RequestId{3});
        continue;
      }
      ScheduledSeq s;
      s.id = RequestId{static_cast<uint64_t>(i + 1)};
      s.start_pos = r.done;
      const int32_t len = static_cast<int32_t>(r.prompt.size());
      if (r.done < len) {  // prefill; request 1 in chunks of 13 then 8
        const int32_t n = i == 0 && r.done == 0 ? 13 : len - r.done;
        s.tokens.assign(r.prompt.begin() + r.done, r.prompt.begin() + r.done + n);
      } else {
        s.tokens = {r.next};
      }
      s.page_table = r.pages;
      s.sample = true;
      s.return_logits = true;
      s.num_generated = std::max(0, r.done - len);
      s.sampling.temperature = 0.0f;
      if (i == 1) {
        s.sparse.mode = SparseMode::kQuest;
        s.sparse.budget_tokens = 8;
        s.sparse.dense_layers = 1;
      }
      s.collect_page_mass = i == 2;
      r.done += static_cast<int32_t>(s.tokens.size());
      plan.seqs.push_back(std::move(s));
    }
    auto res = b.Execute(plan);
    EXPECT_TRUE(res.ok()) << "step " << step << ": " << res.status();
    if (!res.ok()) break;
    for (size_t k = 0; k < plan.seqs.size(); ++k)
      reqs[plan.seqs[k].id.value - 1].next = res->seqs[k].token;
    results.push_back(std::move(*res));
  }
  return results;
}

void ExpectSameResults(const std::vector<StepResult>& tp, const std::vector<StepResult>& ref,
                       int32_t world) {
  ASSERT_EQ(tp.size(), ref.size());
  int quest_steps = 0, mass_steps = 0;
  for (size_t step = 0; step < ref.size(); ++step) {
    ASSERT_EQ(tp[step].seqs.size(), ref[step].seqs.size());
    for (size_t s = 0; s < ref[step].seqs.size(); ++s) {
      const SeqOutput& a = tp[step].seqs[s];
      const SeqOutput& b = ref[step].seqs[s];
      SCOPED_TRACE(::testing::Message()
                   << "TP " << world << " step " << step << " request " << b.id.value);
      EXPECT_EQ(a.id, b.id);
      ASSERT_FALSE(b.logits.empty());
      EXPECT_LT(MaxRelDiff(a.logits, b.logits), kTolerance);
      EXPECT_EQ(a.token, b.token);
      EXPECT_NEAR(a.logprob, b.logprob, 1e-5);
      EXPECT_EQ(a.pages_attended, b.pages_attended);
      EXPECT_EQ(a.page_mass.size(), b.page_mass.size());
      if (!b.page_mass.empty()) {
        EXPECT_LT(MaxRelDiff(a.page_mass, b.page_mass), kTolerance);
        ++mass_steps;
      }
      if (b.id.value == 2 && step >= 1) {
        EXPECT_EQ(b.pages_attended, 2) << "Quest did not select";
        ++quest_steps;
      }
    }
  }
  EXPECT_EQ(quest_steps, 7);
  EXPECT_EQ(mass_steps, 7);
}

class TpParityTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(TpParityTest, TwoAndFourRanksMatchOneRank) {
  const ModelConfig c = TpConfig(GetParam());
  const CpuWeights w = CpuWeightsFromHost(TinyWeights(c, 42), c);
  auto ref_backend = MakeBackend(c, w, 1);
  const std::vector<StepResult> ref = RunScenario(*ref_backend, c.vocab_size);
  for (int32_t world : {2, 4}) {
    auto tp = MakeBackend(c, w, world);
    ASSERT_NE(tp, nullptr);
    EXPECT_EQ(tp->name(), absl::StrCat("cpu-tp", world));
    EXPECT_EQ(tp->num_pages(), 64);
    ExpectSameResults(RunScenario(*tp, c.vocab_size), ref, world);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TpParityTest,
                         ::testing::Values(ModelFamily::kLlama, ModelFamily::kQwen2,
                                           ModelFamily::kQwen3));

// Q8_0 with every block scale 1/64 (exact in fp16) and q = round(64 w).
CpuMatrix ToQ8(const CpuMatrix& f32) {
  const float* w = reinterpret_cast<const float*>(f32.bytes.data());
  CpuMatrix m;
  m.type = cpu::QType::kQ8_0;
  m.rows = f32.rows;
  m.cols = f32.cols;
  for (int64_t i = 0; i < f32.rows * f32.cols; i += 32) {
    const uint16_t d = 0x2400;  // fp16 2^-6
    m.bytes.push_back(d & 0xff);
    m.bytes.push_back(d >> 8);
    for (int j = 0; j < 32; ++j) {
      const int q = std::clamp(static_cast<int>(std::lround(w[i + j] * 64.0f)), -127, 127);
      m.bytes.push_back(static_cast<uint8_t>(static_cast<int8_t>(q)));
    }
  }
  return m;
}

// Quantized matrices are sliced in their format when the slice falls on 32-weight blocks
// (N = 2: q_dim 64 -> 32, inter 64 -> 32) and expanded to fp32 when not (N = 4: 16 columns).
TEST(TensorParallelTest, QuantizedShardsMatchOneRank) {
  TinyModelOptions o;
  o.heads = 8;
  o.kv_heads = 4;
  o.hidden = 64;
  o.inter = 64;
  const ModelConfig c = TinyConfig(o);
  CpuWeights w = CpuWeightsFromHost(TinyWeights(c, 5), c);
  for (CpuLayerWeights& l : w.layers) {
    l.qkv = ToQ8(l.qkv);
    l.o_proj = ToQ8(l.o_proj);
    l.gate_up = ToQ8(l.gate_up);
    l.down = ToQ8(l.down);
  }
  const CpuWeights half = ShardCpuWeights(w, c, MakeTpShard(c, 1, 2));
  EXPECT_EQ(half.layers[0].o_proj.type, cpu::QType::kQ8_0);
  EXPECT_EQ(half.layers[0].down.type, cpu::QType::kQ8_0);
  EXPECT_EQ(half.layers[0].qkv.rows, 64 / 2 + 2 * 32 / 2);
  const CpuWeights quarter = ShardCpuWeights(w, c, MakeTpShard(c, 3, 4));
  EXPECT_EQ(quarter.layers[0].o_proj.type, cpu::QType::kF32);
  EXPECT_EQ(quarter.layers[0].o_proj.cols, 16);
  EXPECT_EQ(quarter.layers[0].gate_up.type, cpu::QType::kQ8_0);  // rows slice in format

  auto ref_backend = MakeBackend(c, w, 1);
  const std::vector<StepResult> ref = RunScenario(*ref_backend, c.vocab_size);
  for (int32_t world : {2, 4}) {
    auto tp = MakeBackend(c, w, world);
    ASSERT_NE(tp, nullptr);
    ExpectSameResults(RunScenario(*tp, c.vocab_size), ref, world);
  }
}

TEST(TensorParallelTest, ShardsCoverTheModelExactlyOnce) {
  const ModelConfig c = TpConfig(ModelFamily::kLlama);
  int32_t vocab = 0, inter = 0;
  for (int32_t r = 0; r < 4; ++r) {
    const TpShard s = MakeTpShard(c, r, 4);
    EXPECT_EQ(s.heads_begin, 2 * r);
    EXPECT_EQ(s.num_heads, 2);
    EXPECT_EQ(s.kv_heads_begin, r);
    EXPECT_EQ(s.num_kv_heads, 1);
    EXPECT_EQ(s.vocab_begin, vocab);
    EXPECT_EQ(s.inter_begin, inter);
    EXPECT_LE(s.vocab_size, s.vocab_stride);
    vocab += s.vocab_size;
    inter += s.inter_size;
  }
  EXPECT_EQ(vocab, 97);
  EXPECT_EQ(inter, 50);
  EXPECT_EQ(MakeTpShard(c, 3, 4).vocab_size, 25);
  EXPECT_EQ(MakeTpShard(c, 0, 4).vocab_stride, 25);
}

TEST(TensorParallelTest, RanksThatDoNotDivideTheHeadsAreClearErrors) {
  const ModelConfig c = TpConfig(ModelFamily::kLlama);  // 8 heads, 4 KV heads
  const CpuWeights w = CpuWeightsFromHost(TinyWeights(c, 1), c);
  KvCacheOptions kv;
  kv.num_pages = 8;
  for (int32_t world : {3, 8}) {
    auto b = TensorParallelCpuBackend::Create(c, w, kv, world);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(
        b.status().message(),
        absl::StrCat(
            "tensor_parallel ", world, " does not divide the model's heads (num_heads 8, ",
            "num_kv_heads 4): each rank must hold whole query and KV heads; use a divisor of 4"));
  }
  auto zero = TensorParallelCpuBackend::Create(c, w, kv, 0);
  EXPECT_EQ(zero.status().message(), "tensor_parallel must be >= 1, got 0");
  EXPECT_TRUE(TensorParallelCpuBackend::Create(c, w, kv, 1).ok());
}

// A bad plan is refused by rank 0 before any rank runs it; the group keeps working.
TEST(TensorParallelTest, MalformedPlanIsAnErrorAndTheBackendStaysUsable) {
  const ModelConfig c = TpConfig(ModelFamily::kLlama);
  const CpuWeights w = CpuWeightsFromHost(TinyWeights(c, 1), c);
  auto tp = MakeBackend(c, w, 2);
  ASSERT_NE(tp, nullptr);
  StepPlan bad;
  ScheduledSeq s;
  s.id = RequestId{1};
  s.tokens = {1, 2, 3, 4, 5};
  s.page_table = {PageId{0}};  // needs 2 pages of 4
  bad.seqs.push_back(s);
  auto r = tp->Execute(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("page_table"), std::string::npos) << r.status();
  EXPECT_TRUE(tp->Usable().ok()) << tp->Usable();
  bad.seqs[0].page_table.push_back(PageId{1});
  bad.seqs[0].sample = true;
  r = tp->Execute(bad);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->seqs[0].token, 0);
}

TEST(TensorParallelTest, PlanCodecRoundTripsWhatTheForwardReads) {
  StepPlan p;
  p.step = 41;
  p.released = {RequestId{7}, RequestId{9}};
  ScheduledSeq s;
  s.id = RequestId{12345678901ull};
  s.tokens = {3, 1, 4, 1, 5};
  s.start_pos = 17;
  s.page_table = {PageId{2}, kNoPage, PageId{30}};
  s.sample = true;
  s.num_generated = 6;
  s.sparse.mode = SparseMode::kQuest;
  s.sparse.budget_tokens = 64;
  s.sparse.sink_tokens = 4;
  s.sparse.window_tokens = 32;
  s.sparse.dense_layers = 3;
  s.collect_page_mass = true;
  s.return_logits = false;
  s.sampling.temperature = 0.7f;
  s.sampling.top_k = 40;
  s.sampling.top_p = 0.9f;
  s.sampling.min_p = 0.05f;
  s.sampling.repetition_penalty = 1.1f;
  s.sampling.logprobs = 3;
  s.sampling.seed = 0xfedcba9876543210ull;
  p.seqs = {s, ScheduledSeq{}};
  const std::string bytes = EncodePlanForRanks(p);
  auto d = DecodePlanForRanks(bytes);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->step, 41);
  EXPECT_EQ(d->released, p.released);
  ASSERT_EQ(d->seqs.size(), 2u);
  const ScheduledSeq& e = d->seqs[0];
  EXPECT_EQ(e.id, s.id);
  EXPECT_EQ(e.tokens, s.tokens);
  EXPECT_EQ(e.start_pos, 17);
  EXPECT_EQ(e.page_table, s.page_table);
  EXPECT_TRUE(e.sample);
  EXPECT_EQ(e.num_generated, 6);
  EXPECT_EQ(e.sparse.mode, SparseMode::kQuest);
  EXPECT_EQ(e.sparse.budget_tokens, 64);
  EXPECT_EQ(e.sparse.sink_tokens, 4);
  EXPECT_EQ(e.sparse.window_tokens, 32);
  EXPECT_EQ(e.sparse.dense_layers, 3);
  EXPECT_TRUE(e.collect_page_mass);
  EXPECT_FALSE(e.return_logits);
  // Sampling parameters too: every rank must see the step rank 0 sees (plan_codec.h).
  EXPECT_EQ(e.sampling.temperature, 0.7f);
  EXPECT_EQ(e.sampling.top_k, 40);
  EXPECT_EQ(e.sampling.top_p, 0.9f);
  EXPECT_EQ(e.sampling.min_p, 0.05f);
  EXPECT_EQ(e.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(e.sampling.logprobs, 3);
  EXPECT_EQ(e.sampling.seed, s.sampling.seed);
  EXPECT_FALSE(d->seqs[1].sampling.seed.has_value());
  EXPECT_EQ(d->seqs[1].sampling.temperature, SamplingParams{}.temperature);
  for (size_t cut : {size_t{0}, size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_EQ(DecodePlanForRanks(bytes.substr(0, cut)).status().code(), absl::StatusCode::kDataLoss)
        << cut;
  }
  EXPECT_EQ(DecodePlanForRanks(bytes + "x").status().code(), absl::StatusCode::kDataLoss);
}

// The real default model (SmolLM2-135M, Q4_1 GGUF: 9 heads, 3 KV heads) through
// Model::Load: tensor_parallel 3 gives tensor_parallel 1's logits and greedy tokens;
// 2 is refused with the head counts before any weight is read.
// The Quest candidate limit (a rank would refuse the step, and an error inside a rank stops a
// tensor-parallel group, so the CUDA driver checks it before the broadcast): only a one-token
// Quest step past its dense layers with a budget below its resident pages counts them.
TEST(PlanCheck, QuestOverTooManyResidentPagesIsRefusedBeforeAnyRank) {
  ModelConfig c;
  c.num_layers = 4;
  const int32_t ps = 4, limit = 8;
  ScheduledSeq s;
  s.id = RequestId{77};
  s.tokens = {1};
  s.start_pos = 39;  // positions 0..39: 10 pages
  for (int32_t p = 0; p < 10; ++p) s.page_table.push_back(PageId{p});
  s.sparse.mode = SparseMode::kQuest;
  s.sparse.budget_tokens = 8;  // 2 pages
  s.sparse.dense_layers = 2;
  StepPlan plan;
  plan.seqs = {s};
  const absl::Status refused = CheckQuestCandidates(plan, c, ps, limit);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(refused.message().find("sequence 77"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("(10)"), std::string::npos) << refused;
  auto variant = [&](auto change) {
    StepPlan p = plan;
    change(p.seqs[0]);
    return CheckQuestCandidates(p, c, ps, limit);
  };
  EXPECT_TRUE(variant([](ScheduledSeq& q) { q.page_table[3] = kNoPage; q.page_table[4] = kNoPage; }).ok());  // 8 left
  EXPECT_TRUE(variant([](ScheduledSeq& q) { q.sparse.budget_tokens = 40; }).ok());   // budget covers every page
  EXPECT_TRUE(variant([](ScheduledSeq& q) { q.sparse.dense_layers = 4; }).ok());     // no Quest layer
  EXPECT_TRUE(variant([](ScheduledSeq& q) { q.sparse.mode = SparseMode::kDense; }).ok());
  EXPECT_TRUE(variant([](ScheduledSeq& q) {  // a prompt chunk: Quest only selects for one token
    q.tokens = {1, 2};
    q.start_pos = 38;
  }).ok());
  EXPECT_TRUE(CheckQuestCandidates(plan, c, ps, 10).ok());
}

TEST(TensorParallelTest, DefaultModelThroughModelLoad) {
  const std::string path = testing::DefaultModelPath();
  if (path.empty()) GTEST_SKIP() << "default model not present";
  LoadOptions o;
  o.kv.page_size = 16;
  o.kv.num_pages = 8;
  o.tensor_parallel = 2;
  auto bad = Model::Load(path, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find(
                "tensor_parallel 2 does not divide the model's heads (num_heads 9, "
                "num_kv_heads 3)"),
            std::string::npos)
      << bad.status();
  // On GPUs: N ranks over NCCL where 3 GPUs exist; else a clear error (no GPU: the CUDA
  // module's FAILED_PRECONDITION; fewer GPUs: INVALID_ARGUMENT naming both counts), never a
  // silent CPU or single-GPU fallback.
  o.tensor_parallel = 3;
  o.device = DeviceKind::kCuda;
  auto cuda = Model::Load(path, o);
  if (cuda.ok()) {
    EXPECT_EQ((*cuda)->backend().name(), "cuda-tp3");
  } else if (cuda.status().code() == absl::StatusCode::kInvalidArgument) {
    EXPECT_NE(cuda.status().message().find("tensor_parallel 3 needs 3 GPUs"), std::string::npos) << cuda.status();
  } else {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition) << cuda.status();
  }
  o.device = DeviceKind::kCpu;

  std::vector<std::vector<TokenId>> tokens;
  std::vector<std::vector<float>> logits;
  for (int32_t tp : {1, 3}) {
    o.tensor_parallel = tp;
    auto m = Model::Load(path, o);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ((*m)->backend().name(), tp == 1 ? "cpu" : "cpu-tp3");
    std::vector<TokenId> ids = (*m)->tokenizer().Encode("The capital of France is", false);
    std::vector<PageId> pages;
    for (int32_t p = 0; p < 8; ++p) pages.push_back(PageId{p});
    std::vector<TokenId> out;
    std::vector<float> all_logits;
    int32_t pos = 0;
    for (int step = 0; step < 6; ++step) {
      StepPlan plan;
      ScheduledSeq s;
      s.id = RequestId{1};
      s.tokens = step == 0 ? ids : std::vector<TokenId>{out.back()};
      s.start_pos = pos;
      s.page_table = pages;
      s.sample = true;
      s.return_logits = true;
      s.sampling.temperature = 0.0f;
      plan.seqs.push_back(s);
      auto r = (*m)->backend().Execute(plan);
      ASSERT_TRUE(r.ok()) << r.status();
      pos += static_cast<int32_t>(s.tokens.size());
      out.push_back(r->seqs[0].token);
      all_logits.insert(all_logits.end(), r->seqs[0].logits.begin(), r->seqs[0].logits.end());
    }
    tokens.push_back(out);
    logits.push_back(std::move(all_logits));
  }
  EXPECT_EQ(tokens[1], tokens[0]);
  EXPECT_LT(MaxRelDiff(logits[1], logits[0]), kTolerance);
}

}  // namespace
}  // namespace lil
