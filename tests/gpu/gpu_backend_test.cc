// File: tests/gpu/gpu_backend_test.cc
// The CUDA backend against the CPU backend on tiny random models (Llama GQA, Qwen2 bias,
// Qwen3 q/k norm) with bf16-exact weights: logits of a batch mixing prefill, chunked
// prefill after cached pages and decode, over shuffled pages with a freed one; Quest decode
// reads the same number of pages (also a step of only Quest sequences at head_dim 128, through
// either scoring path); h2o page mass; greedy tokens; malformed plans.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <tuple>

#include "engine/cpu_backend.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/sampler.h"
#include "tests/gpu/backend_test_util.h"
#include "tests/testing/tiny_model.h"

namespace lil {
namespace {

struct Pair {
  std::unique_ptr<CpuBackend> cpu;
  std::unique_ptr<cuda::CudaBackend> gpu;
};

// `inter` > 0 replaces the tiny model's MLP width (its default, 3 x head_dim + 5, is odd on
// purpose; the GEMV fusions need a multiple of 8).
Pair MakePair(ModelFamily family, int32_t head_dim, int32_t page_size, bool fallback_gemm, int32_t inter = 0) {
  testing::TinyModelOptions o = testing::GpuTinyOptions(family, head_dim, 2);
  if (inter > 0) o.inter = inter;
  const ModelConfig c = testing::TinyConfig(o);
  HostWeights w = testing::ConditionedBf16Weights(c, 42);
  KvCacheOptions kv;
  kv.page_size = page_size;
  kv.num_pages = 96;
  Pair p;
  auto cpu = CpuBackend::Create(c, w, kv);
  EXPECT_TRUE(cpu.ok()) << cpu.status();
  p.cpu = std::move(*cpu);
  auto dw = cuda::UploadWeights(c, w);
  EXPECT_TRUE(dw.ok()) << dw.status();
  cuda::CudaBackendOptions opt;
  opt.force_fallback_gemm = fallback_gemm;
  auto gpu = cuda::CudaBackend::Create(c, std::move(*dw), kv, opt);
  EXPECT_TRUE(gpu.ok()) << gpu.status();
  p.gpu = std::move(*gpu);
  return p;
}

// MakePair (head_dim 64, 16-token pages, cuBLAS) with $name = value while the backends are made.
Pair MakePairWithEnv(const char* name, const char* value, ModelFamily family, int32_t inter) {
  setenv(name, value, 1);
  Pair b = MakePair(family, 64, 16, false, inter);
  unsetenv(name);
  return b;
}

using testing::RelL2;
ScheduledSeq Seq(uint64_t id, int32_t start, int32_t n, const std::vector<int32_t>& pages, int vocab) {
  return testing::RandomSeq(id, start, n, pages, vocab);
}

void ExpectSame(const StepResult& gpu, const StepResult& cpu, double tol, const std::string& what) {
  ASSERT_EQ(gpu.seqs.size(), cpu.seqs.size());
  for (size_t s = 0; s < cpu.seqs.size(); ++s) {
    SCOPED_TRACE(what + " seq " + std::to_string(s));
    ASSERT_EQ(gpu.seqs[s].logits.size(), cpu.seqs[s].logits.size());
    EXPECT_LT(RelL2(gpu.seqs[s].logits, cpu.seqs[s].logits), tol);
    EXPECT_EQ(gpu.seqs[s].token, cpu.seqs[s].token);
    EXPECT_NEAR(gpu.seqs[s].logprob, cpu.seqs[s].logprob, 0.1);
    EXPECT_EQ(gpu.seqs[s].pages_attended, cpu.seqs[s].pages_attended);
    ASSERT_EQ(gpu.seqs[s].page_mass.size(), cpu.seqs[s].page_mass.size());
    for (size_t i = 0; i < cpu.seqs[s].page_mass.size(); ++i) {
      EXPECT_NEAR(gpu.seqs[s].page_mass[i], cpu.seqs[s].page_mass[i], 0.02) << "page " << i;
    }
  }
}

// The same step on both backends, compared (ExpectSame).
void RunBoth(const Pair& b, const StepPlan& plan, double tol, const std::string& what) {
  auto g = b.gpu->Execute(plan);
  auto c = b.cpu->Execute(plan);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_TRUE(c.ok()) << c.status();
  ExpectSame(*g, *c, tol, what);
}

// The 96 pages of MakePair's pools in a shuffled order.
std::vector<int32_t> ShuffledPages(uint32_t seed) {
  std::vector<int32_t> perm(96);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  return perm;
}

struct Config {
  ModelFamily family;
  int32_t head_dim, page_size;
  bool fallback_gemm;
  bool seq_rows = false;  // dense layouts with a page list per sequence (else $LILSERVE_SEQ_ROWS=0)
};

class CudaBackendParity : public ::testing::TestWithParam<Config> {};

TEST_P(CudaBackendParity, MatchesCpuBackendStepByStep) {
  LIL_SKIP_WITHOUT_GPU();
  const Config cfg = GetParam();
  setenv("LILSERVE_SEQ_ROWS", cfg.seq_rows ? "1" : "0", 1);
  Pair b = MakePair(cfg.family, cfg.head_dim, cfg.page_size, cfg.fallback_gemm);
  unsetenv("LILSERVE_SEQ_ROWS");
  ASSERT_TRUE(b.cpu && b.gpu);
  const int32_t ps = cfg.page_size, vocab = b.cpu->config().vocab_size;
  const std::vector<int32_t> perm = ShuffledPages(5);
  auto pages = [&](int32_t first, int32_t n) { return std::vector<int32_t>(perm.begin() + first, perm.begin() + first + n); };
  const int32_t a_len = 3 * ps + 2, b_len = 2 * ps + 1;
  const auto a_pages = pages(0, 40 / ps + 6), b_pages = pages(40, 40 / ps + 6);
  auto run = [&](const StepPlan& plan, double tol, const std::string& what) { RunBoth(b, plan, tol, what); };
  // Step 1: two prompts. Step 2: a chunk of A after its cached pages, a decode of B.
  StepPlan p1;
  p1.seqs = {Seq(1, 0, a_len, a_pages, vocab), Seq(2, 0, b_len, b_pages, vocab)};
  for (auto& s : p1.seqs) s.page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
  run(p1, 2e-2, "prefill");
  StepPlan p2;
  p2.seqs = {Seq(1, a_len, 5, a_pages, vocab), Seq(2, b_len, 1, b_pages, vocab)};
  p2.seqs[1].collect_page_mass = true;
  for (auto& s : p2.seqs) s.page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
  run(p2, 2e-2, "chunk+decode");
  // Step 3: decode both; B's logical page 1 freed (sink/h2o), A in Quest mode over 2 pages.
  StepPlan p3;
  p3.seqs = {Seq(1, a_len + 5, 1, a_pages, vocab), Seq(2, b_len + 1, 1, b_pages, vocab)};
  for (auto& s : p3.seqs) s.page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
  p3.seqs[1].page_table[1] = kNoPage;
  p3.seqs[1].collect_page_mass = true;
  p3.seqs[0].sparse.mode = SparseMode::kQuest;
  p3.seqs[0].sparse.budget_tokens = 2 * ps;
  p3.seqs[0].sparse.dense_layers = 1;
  run(p3, 5e-2, "quest+hole");
}

INSTANTIATE_TEST_SUITE_P(Models, CudaBackendParity,
                         ::testing::Values(Config{ModelFamily::kLlama, 32, 16, false},
                                           Config{ModelFamily::kQwen2, 64, 3, false},
                                           Config{ModelFamily::kQwen3, 128, 17, false},
                                           Config{ModelFamily::kLlama, 8, 1, true},
                                           Config{ModelFamily::kLlama, 64, 3, false, true},
                                           Config{ModelFamily::kQwen3, 128, 16, false, true}));

// A decode step whose every sequence reads Quest pages, at head_dim 128 / 16-token pages (the
// shape of ScoreOctets and its folded first pass), with the scoring in the selection CTAs
// ($LILSERVE_QUEST_SPLIT=0) and in its own kernel (=1), and the first again with the attention
// in one 8-warp CTA a row ($LILSERVE_TC_WIDE=1, which WideTcRows picks for batch 16's rows on an
// H200; these two rows alone would not be): each against the CPU backend.
TEST(CudaBackendQuest, AllQuestDecodeStepMatchesCpu) {
  LIL_SKIP_WITHOUT_GPU();
  // The suite may run under $LILSERVE_QUEST_SPLIT (an A/B of every test): restored after.
  const char* outer = std::getenv("LILSERVE_QUEST_SPLIT");
  const std::string saved = outer != nullptr ? outer : "";
  for (const char* variant : {"0", "1", "0 wide"}) {
    const std::string split(variant, 1);
    const bool wide = std::string(variant).size() > 1;
    SCOPED_TRACE(std::string("LILSERVE_QUEST_SPLIT=") + split + (wide ? ", LILSERVE_TC_WIDE=1" : ""));
    setenv("LILSERVE_QUEST_SPLIT", split.c_str(), 1);
    if (wide) setenv("LILSERVE_TC_WIDE", "1", 1);
    Pair b = MakePair(ModelFamily::kQwen3, 128, 16, false);
    unsetenv("LILSERVE_TC_WIDE");
    if (outer != nullptr) {
      setenv("LILSERVE_QUEST_SPLIT", saved.c_str(), 1);
    } else {
      unsetenv("LILSERVE_QUEST_SPLIT");
    }
    ASSERT_TRUE(b.cpu && b.gpu);
    const int32_t ps = 16, vocab = b.cpu->config().vocab_size;
    const std::vector<int32_t> perm = ShuffledPages(9);
    const int32_t a_len = 5 * ps + 3, b_len = 4 * ps + 7;
    const std::vector<int32_t> a_pages(perm.begin(), perm.begin() + 8), b_pages(perm.begin() + 8, perm.begin() + 16);
    auto run = [&](const StepPlan& plan, double tol, const std::string& what) { RunBoth(b, plan, tol, what); };
    StepPlan p1;
    p1.seqs = {Seq(1, 0, a_len, a_pages, vocab), Seq(2, 0, b_len, b_pages, vocab)};
    for (auto& s : p1.seqs) s.page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
    run(p1, 2e-2, "prefill");
    for (int32_t step = 0; step < 2; ++step) {  // two decode steps: the newest page fills
      StepPlan p2;
      p2.seqs = {Seq(1, a_len + step, 1, a_pages, vocab), Seq(2, b_len + step, 1, b_pages, vocab)};
      for (auto& s : p2.seqs) {
        s.page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
        s.sparse.mode = SparseMode::kQuest;
        s.sparse.budget_tokens = 3 * ps;  // 3 of 6 and of 5 pages
        s.sparse.dense_layers = 1;
      }
      run(p2, 5e-2, "quest decode " + std::to_string(step));
    }
  }
}

// Decode steps replayed from CUDA graphs give bit-identical tokens and logprobs to the same
// steps launched eagerly, and the CPU backend's greedy tokens: batch 3 over 3-token pages
// (page lists grow every few steps, so replays see new lengths), then batch 2 (a second
// graph), with a freed page in one sequence. Also with the graphs' layouts a page list per
// sequence ($LILSERVE_SEQ_ROWS=1) against eager per-head lists: still bit-identical.
class GraphReplay : public ::testing::TestWithParam<bool> {};

TEST_P(GraphReplay, MatchesEagerLaunches) {
  LIL_SKIP_WITHOUT_GPU();
  // Bit-identical needs the same GEMM algorithms: each backend times cuBLASLt's candidates per
  // shape and may pick another on timing noise (a flake seen in session 16), so both take
  // cublasGemmEx's default here.
  setenv("LILSERVE_CUBLASLT", "0", 1);
  setenv("LILSERVE_SEQ_ROWS", GetParam() ? "1" : "0", 1);
  Pair graphs = MakePair(ModelFamily::kLlama, 64, 3, false);
  unsetenv("LILSERVE_SEQ_ROWS");
  setenv("LILSERVE_CUDA_GRAPHS", "0", 1);
  Pair eager = MakePair(ModelFamily::kLlama, 64, 3, false);
  unsetenv("LILSERVE_CUDA_GRAPHS");
  unsetenv("LILSERVE_CUBLASLT");
  ASSERT_TRUE(graphs.gpu && eager.gpu && graphs.cpu);
  const int32_t ps = 3, vocab = graphs.cpu->config().vocab_size;
  std::vector<ScheduledSeq> seqs;
  for (int32_t s = 0; s < 3; ++s) {
    std::vector<int32_t> table(30);
    std::iota(table.begin(), table.end(), 30 * s);
    seqs.push_back(Seq(s + 1, 0, 4 + 3 * s, table, vocab));
    seqs.back().return_logits = false;
  }
  for (int step = 0; step < 14; ++step) {
    StepPlan plan;
    for (const auto& s : seqs) {
      if (step >= 8 && s.id.value == 2) continue;  // batch 3, then 2
      plan.seqs.push_back(s);
      auto& q = plan.seqs.back();
      q.page_table.resize((q.start_pos + q.tokens.size() + ps - 1) / ps);
      if (step > 0 && q.id.value == 3) q.page_table[1] = kNoPage;  // freed by a sparse policy
    }
    auto g = graphs.gpu->Execute(plan);
    auto e = eager.gpu->Execute(plan);
    auto c = graphs.cpu->Execute(plan);
    ASSERT_TRUE(g.ok() && e.ok() && c.ok()) << g.status() << e.status() << c.status();
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      SCOPED_TRACE("step " + std::to_string(step) + " seq " + std::to_string(i));
      EXPECT_EQ(g->seqs[i].token, e->seqs[i].token);
      EXPECT_EQ(g->seqs[i].logprob, e->seqs[i].logprob);
      EXPECT_EQ(g->seqs[i].token, c->seqs[i].token);
    }
    for (size_t i = 0, j = 0; i < seqs.size(); ++i) {
      if (j < plan.seqs.size() && plan.seqs[j].id == seqs[i].id) {
        seqs[i].start_pos += static_cast<int32_t>(seqs[i].tokens.size());
        seqs[i].tokens = {g->seqs[j].token};
        ++j;
      }
    }
  }
  EXPECT_EQ(graphs.gpu->graphs_captured(), 2);  // batch 3 and batch 2
  EXPECT_EQ(eager.gpu->graphs_captured(), 0);
}

INSTANTIATE_TEST_SUITE_P(SeqRows, GraphReplay, ::testing::Bool());

// Sampled rows follow engine/sampler.h on the GPU's logits, whether the sequence also returns
// its logits or not, while other rows stay on the GPU's greedy path: A returns logits and
// samples with top_p, C samples with top_k / min_p without returning logits (checked against
// the same step run again with them returned), D is greedy with top logprobs, B greedy on the
// GPU. The GPU samples A and C and finds A's and D's top logprobs, or with
// $LILSERVE_GPU_SAMPLING=0 the host (SampleFiltered: the same definition; float rounding could
// move a cut, not in this case).
class SampledRows : public ::testing::TestWithParam<bool> {};

TEST_P(SampledRows, FollowTheSampler) {
  LIL_SKIP_WITHOUT_GPU();
  Pair b = MakePairWithEnv("LILSERVE_GPU_SAMPLING", GetParam() ? "1" : "0", ModelFamily::kLlama, 0);
  ASSERT_TRUE(b.gpu && b.cpu);
  const int32_t vocab = b.cpu->config().vocab_size;
  StepPlan plan;
  for (int32_t s = 0; s < 4; ++s) plan.seqs.push_back(Seq(s + 1, 0, 5 + s, {4 * s, 4 * s + 1}, vocab));
  ScheduledSeq& a = plan.seqs[0];
  a.sampling.temperature = 0.8f;
  a.sampling.top_p = 0.9f;
  a.sampling.seed = 11;
  a.sampling.logprobs = 2;
  plan.seqs[1].return_logits = false;
  ScheduledSeq& c = plan.seqs[2];
  c.return_logits = false;
  c.sampling.temperature = 1.0f;
  c.sampling.top_k = 5;
  c.sampling.min_p = 0.05f;
  c.sampling.seed = 12;
  ScheduledSeq& d = plan.seqs[3];
  d.sampling.logprobs = 3;
  auto first = b.gpu->Execute(plan);
  ASSERT_TRUE(first.ok()) << first.status();
  auto last_row = [&](const SeqOutput& o, int32_t len) {
    EXPECT_EQ(o.logits.size(), static_cast<size_t>(len) * vocab);
    return absl::MakeConstSpan(o.logits.data() + static_cast<int64_t>(len - 1) * vocab, vocab);
  };
  const SampleOutput want_a = Sample(last_row(first->seqs[0], 5), a.sampling, a.tokens, 11, 0);
  EXPECT_EQ(first->seqs[0].token, want_a.token);
  EXPECT_NEAR(first->seqs[0].logprob, want_a.logprob, 1e-4);
  const SampleOutput want_d = Sample(last_row(first->seqs[3], 8), d.sampling, d.tokens, 0, 0);
  EXPECT_EQ(first->seqs[3].token, want_d.token);
  EXPECT_EQ(first->seqs[3].top_logprobs[0].token, want_d.token);
  for (const auto& [got, want] : {std::pair(&first->seqs[0], &want_a), std::pair(&first->seqs[3], &want_d)}) {
    ASSERT_EQ(got->top_logprobs.size(), want->top_logprobs.size());
    for (size_t i = 0; i < want->top_logprobs.size(); ++i) {
      EXPECT_EQ(got->top_logprobs[i].token, want->top_logprobs[i].token) << i;
      EXPECT_NEAR(got->top_logprobs[i].logprob, want->top_logprobs[i].logprob, 1e-4) << i;
    }
  }
  EXPECT_TRUE(first->seqs[1].logits.empty());
  EXPECT_TRUE(first->seqs[2].logits.empty());
  // The same step again (the same KV written at the same places), C now returning its logits.
  c.return_logits = true;
  auto again = b.gpu->Execute(plan);
  ASSERT_TRUE(again.ok()) << again.status();
  const SampleOutput want_c = Sample(last_row(again->seqs[2], 7), c.sampling, c.tokens, 12, 0);
  EXPECT_EQ(again->seqs[2].token, want_c.token);
  EXPECT_EQ(first->seqs[2].token, want_c.token);
  EXPECT_EQ(first->seqs[1].token, again->seqs[1].token);
}

INSTANTIATE_TEST_SUITE_P(GpuSampling, SampledRows, ::testing::Bool());

// Decode steps that draw on the GPU (SampleFiltered) replay from their own graph
// (GraphKey) and draw what eager launches draw: three seeded sequences (top_p, top_k + min_p,
// plain temperature with top logprobs) and a greedy one with top logprobs over 8 decode steps,
// against a backend without graphs.
TEST(CudaBackend, FilteredDrawsReplayInGraphs) {
  LIL_SKIP_WITHOUT_GPU();
  setenv("LILSERVE_GPU_SAMPLING", "1", 1);
  setenv("LILSERVE_CUBLASLT", "0", 1);  // the same GEMM algorithms in both (GraphReplay)
  Pair graphs = MakePair(ModelFamily::kLlama, 64, 16, false);
  setenv("LILSERVE_CUDA_GRAPHS", "0", 1);
  Pair eager = MakePair(ModelFamily::kLlama, 64, 16, false);
  unsetenv("LILSERVE_CUDA_GRAPHS");
  unsetenv("LILSERVE_CUBLASLT");
  unsetenv("LILSERVE_GPU_SAMPLING");
  ASSERT_TRUE(graphs.gpu && eager.gpu && graphs.cpu);
  const int32_t vocab = graphs.cpu->config().vocab_size;
  StepPlan plan;
  for (int32_t s = 0; s < 4; ++s) {
    plan.seqs.push_back(Seq(s + 1, 0, 6, {5 * s, 5 * s + 1, 5 * s + 2}, vocab));
    ScheduledSeq& q = plan.seqs.back();
    q.return_logits = false;
    q.sampling.seed = 40 + s;
    q.sampling.temperature = s == 3 ? 0.0f : 0.9f;
    if (s == 0) q.sampling.top_p = 0.8f;
    if (s == 1) {
      q.sampling.top_k = 20;
      q.sampling.min_p = 0.02f;
    }
    if (s >= 2) q.sampling.logprobs = 3 + s;  // top logprobs on a drawn row and on the greedy one
  }
  for (int step = 0; step < 9; ++step) {  // the prompts, then 8 decode steps
    auto g = graphs.gpu->Execute(plan);
    auto e = eager.gpu->Execute(plan);
    ASSERT_TRUE(g.ok() && e.ok()) << g.status() << e.status();
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      EXPECT_EQ(g->seqs[i].token, e->seqs[i].token) << "step " << step << " seq " << i;
      EXPECT_EQ(g->seqs[i].logprob, e->seqs[i].logprob) << "step " << step << " seq " << i;
      ASSERT_EQ(g->seqs[i].top_logprobs.size(), static_cast<size_t>(plan.seqs[i].sampling.logprobs));
      ASSERT_EQ(e->seqs[i].top_logprobs.size(), g->seqs[i].top_logprobs.size());
      for (size_t k = 0; k < g->seqs[i].top_logprobs.size(); ++k) {
        EXPECT_EQ(g->seqs[i].top_logprobs[k].token, e->seqs[i].top_logprobs[k].token) << "step " << step;
        EXPECT_EQ(g->seqs[i].top_logprobs[k].logprob, e->seqs[i].top_logprobs[k].logprob) << "step " << step;
      }
      ScheduledSeq& q = plan.seqs[i];
      q.start_pos += static_cast<int32_t>(q.tokens.size());
      q.tokens = {g->seqs[i].token};
      ++q.num_generated;
    }
  }
  EXPECT_GE(graphs.gpu->graphs_captured(), 1);
  EXPECT_EQ(eager.gpu->graphs_captured(), 0);
}

// Page lists that grow step after step keep the graph: batch 8 on one-token pages, 100 to 300
// positions, so a step's lists grow from 1,600 to 4,800 entries (2 KV heads), past both twice
// the first graph step's and the 4,096 floor the capacity was once sized from (each time it
// was outgrown, every graph was dropped and captured again). One capture in all.
TEST(CudaBackend, GrowingPageListsKeepTheGraph) {
  LIL_SKIP_WITHOUT_GPU();
  const ModelConfig c = testing::TinyConfig(testing::GpuTinyOptions(ModelFamily::kLlama, 64, 2));
  auto dw = cuda::UploadWeights(c, testing::ConditionedBf16Weights(c, 42));
  ASSERT_TRUE(dw.ok()) << dw.status();
  KvCacheOptions kv;
  kv.page_size = 1;
  kv.num_pages = 2500;
  auto gpu = cuda::CudaBackend::Create(c, std::move(*dw), kv, {});
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  const int32_t batch = 8, per_seq = 310, vocab = c.vocab_size;
  StepPlan plan;
  for (int32_t s = 0; s < batch; ++s) {
    std::vector<int32_t> pages(per_seq);
    std::iota(pages.begin(), pages.end(), s * per_seq);
    plan.seqs.push_back(Seq(s + 1, 0, 100, pages, vocab));
    plan.seqs.back().return_logits = false;
  }
  for (int step = 0; step <= 200; ++step) {  // the prompts, then 200 decode steps
    auto r = (*gpu)->Execute(plan);
    ASSERT_TRUE(r.ok()) << "step " << step << ": " << r.status();
    for (int32_t s = 0; s < batch; ++s) {
      ScheduledSeq& q = plan.seqs[s];
      q.start_pos += static_cast<int32_t>(q.tokens.size());
      q.tokens = {r->seqs[s].token};
    }
  }
  EXPECT_EQ(plan.seqs[0].start_pos, 300);
  EXPECT_EQ((*gpu)->graphs_captured(), 1);
  EXPECT_EQ((*gpu)->graph_captures(), 1);
}

// The fused decode path (default; $LILSERVE_FUSED_NORM=0 turns it off): the norm weights
// folded into qkv / gate_up and gate_up's rows interleaved (every path), one-token steps with
// the norms, residual adds and SwiGLU inside the GEMVs and the Quest metadata kept by the KV
// write (on Llama and Qwen2 also RoPE + the KV write in the qkv GEMV's epilogue; Qwen3's q/k
// norm keeps the QkvRopeWrite kernel), against the CPU backend, on and off: a prompt (the
// unfused kernels on folded weights), then one-token decode steps (eager: the test reads
// logits, which graph steps do not return), on Llama, Qwen2 (qkv bias) and Qwen3 (q/k norm); also
// with $LILSERVE_FUSED_MLP=1 (each MLP block one kernel, the next products reading x in fp32).
// The layer-0 qkv GEMV normalizes the embedding's bf16 copy and the LM head's GEMV the residual
// (the final norm folded into the untied head). The GPU tests' decode benchmark stage measures
// the graph path.
TEST(CudaBackend, FusedNormMatchesCpuOnOneTokenSteps) {
  LIL_SKIP_WITHOUT_GPU();
  for (const ModelFamily family : {ModelFamily::kLlama, ModelFamily::kQwen2, ModelFamily::kQwen3}) {
    for (const int mode : {0, 1, 2}) {  // unfused, fused, fused with the MLP as one kernel
      const bool on = mode > 0;
      SCOPED_TRACE("family " + std::to_string(static_cast<int>(family)) +
                   (mode == 0 ? " unfused" : mode == 1 ? " fused" : " fused, LILSERVE_FUSED_MLP=1"));
      if (mode == 2) setenv("LILSERVE_FUSED_MLP", "1", 1);
      Pair b = MakePairWithEnv("LILSERVE_FUSED_NORM", on ? "1" : "0", family, 200);
      unsetenv("LILSERVE_FUSED_MLP");
      ASSERT_TRUE(b.cpu && b.gpu);
      ASSERT_EQ(b.gpu->fused_norm(), on) << "the fused path did not follow $LILSERVE_FUSED_NORM for this model";
      const int32_t ps = 16, vocab = b.cpu->config().vocab_size;
      std::vector<int32_t> table(8);
      std::iota(table.begin(), table.end(), 5);
      ScheduledSeq seq = Seq(1, 0, 21, table, vocab);
      for (int step = 0; step < 10; ++step) {
        StepPlan plan;
        plan.seqs = {seq};
        auto& q = plan.seqs.back();
        q.page_table.resize((q.start_pos + q.tokens.size() + ps - 1) / ps);
        auto g = b.gpu->Execute(plan);
        auto c = b.cpu->Execute(plan);
        ASSERT_TRUE(g.ok() && c.ok()) << g.status() << c.status();
        ExpectSame(*g, *c, 2e-2, "step " + std::to_string(step));
        seq.start_pos += static_cast<int32_t>(seq.tokens.size());
        seq.tokens = {c->seqs[0].token};  // the CPU's token, so a near-tie cannot fork the runs
      }
    }
  }
}

// With $LILSERVE_SKINNY=1 decode batches of 2..32 sequences run the fused path through the
// skinny GEMM (FusedStep): against the CPU backend on a model whose widths are multiples of
// its stage (hidden 256, q 512, MLP 384), batches of 20 (two 16-row tiles) and 5, and with
// $LILSERVE_SKINNY=0 (the default unfused path: cuBLAS, norm, SwiGLU and RoPE kernels); Llama,
// Qwen2 (qkv bias) and Qwen3 (q / k norm: RoPE stays a kernel of its own).
TEST(CudaBackend, FusedBatchesMatchCpu) {
  LIL_SKIP_WITHOUT_GPU();
  for (const ModelFamily family : {ModelFamily::kLlama, ModelFamily::kQwen2, ModelFamily::kQwen3}) {
    for (const bool skinny : {true, false}) {
      SCOPED_TRACE("family " + std::to_string(static_cast<int>(family)) + (skinny ? " skinny" : " unfused"));
      Pair b = MakePairWithEnv("LILSERVE_SKINNY", skinny ? "1" : "0", family, 384);
      ASSERT_TRUE(b.cpu && b.gpu);
      ASSERT_TRUE(b.gpu->fused_norm());
      for (int32_t t : {2, 4, 20, 32}) {
        ASSERT_EQ(b.gpu->FusedStep(t), skinny) << t << " tokens: the fused path exactly when the skinny GEMM is on";
      }
      ASSERT_FALSE(b.gpu->FusedStep(33));
      ASSERT_TRUE(b.gpu->FusedStep(1));
      const int32_t ps = 16, vocab = b.cpu->config().vocab_size;
      std::vector<ScheduledSeq> seqs;
      for (int32_t i = 0; i < 20; ++i) seqs.push_back(Seq(i + 1, 0, 3 + i, {2 * i, 2 * i + 1}, vocab));
      // Step 0 prefills every prompt (more than 32 tokens: unfused either way); then decode
      // steps of all 20 sequences, then of the first 5.
      for (int step = 0; step < 6; ++step) {
        const int32_t n = step < 4 ? 20 : 5;
        StepPlan plan;
        for (int32_t i = 0; i < n; ++i) {
          plan.seqs.push_back(seqs[i]);
          auto& q = plan.seqs.back();
          q.page_table.resize((q.start_pos + q.tokens.size() + ps - 1) / ps);
        }
        auto g = b.gpu->Execute(plan);
        auto c = b.cpu->Execute(plan);
        ASSERT_TRUE(g.ok() && c.ok()) << g.status() << c.status();
        ASSERT_EQ(g->seqs.size(), c->seqs.size());
        for (size_t i = 0; i < c->seqs.size(); ++i) {
          // This model's logits are less separated than the conditioned ones above: the GPU's
          // bf16 products may pick the other of two near-tied tokens (the unfused path too).
          SCOPED_TRACE("step " + std::to_string(step) + " seq " + std::to_string(i));
          const std::vector<float>& cl = c->seqs[i].logits;
          EXPECT_LT(RelL2(g->seqs[i].logits, cl), 2e-2);
          std::vector<float> top(cl);
          std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
          if (top[0] - top[1] > 0.05f * std::fabs(top[0])) {
            EXPECT_EQ(g->seqs[i].token, c->seqs[i].token);
          }
        }
        for (int32_t i = 0; i < n; ++i) {
          seqs[i].start_pos += static_cast<int32_t>(seqs[i].tokens.size());
          seqs[i].tokens = {c->seqs[i].token};  // the CPU's token, so a near-tie cannot fork the runs
        }
      }
    }
  }
}

// The tensor-core prefill (default; $LILSERVE_FLASH_PREFILL=0 turns it off), against the
// CPU backend: two prompts (one long enough for several query tiles and 64-key tiles), then a
// chunk after cached pages beside a decode token (one tile of one token), on head dims 64 and
// 128 and page sizes 16 and 3.
TEST(CudaBackend, FlashPrefillMatchesCpu) {
  LIL_SKIP_WITHOUT_GPU();
  for (const auto& [family, head_dim, ps] : {std::tuple{ModelFamily::kLlama, 64, 16},
                                             std::tuple{ModelFamily::kQwen3, 128, 3}}) {
    SCOPED_TRACE("head_dim " + std::to_string(head_dim) + " page size " + std::to_string(ps));
    setenv("LILSERVE_FLASH_PREFILL", "1", 1);
    Pair b = MakePair(family, head_dim, ps, false);
    unsetenv("LILSERVE_FLASH_PREFILL");
    ASSERT_TRUE(b.cpu && b.gpu);
    const int32_t vocab = b.cpu->config().vocab_size;
    std::vector<int32_t> a_pages(96 / 2), b_pages(96 / 2);
    std::iota(a_pages.begin(), a_pages.end(), 0);
    std::iota(b_pages.begin(), b_pages.end(), 96 / 2);
    const int32_t a_len = std::min(130, (96 / 2 - 4) * ps), b_len = 2 * ps + 1;
    auto run = [&](StepPlan plan, const std::string& what) {
      for (auto& q : plan.seqs) q.page_table.resize((q.start_pos + q.tokens.size() + ps - 1) / ps);
      auto g = b.gpu->Execute(plan);
      auto c = b.cpu->Execute(plan);
      ASSERT_TRUE(g.ok() && c.ok()) << g.status() << c.status();
      ExpectSame(*g, *c, 3e-2, what);
    };
    StepPlan p1;
    p1.seqs = {Seq(1, 0, a_len, a_pages, vocab), Seq(2, 0, b_len, b_pages, vocab)};
    run(p1, "two prompts");
    StepPlan p2;
    p2.seqs = {Seq(1, a_len, 3, a_pages, vocab), Seq(2, b_len, 1, b_pages, vocab)};
    run(p2, "chunk + decode");
  }
}

TEST(CudaBackend, MalformedPlanIsAnErrorAndChangesNothing) {
  LIL_SKIP_WITHOUT_GPU();
  Pair b = MakePair(ModelFamily::kLlama, 32, 16, false);
  StepPlan bad;
  bad.seqs = {Seq(1, 0, 4, {9999}, b.gpu->config().vocab_size)};
  auto r = b.gpu->Execute(bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

}  // namespace
}  // namespace lil
