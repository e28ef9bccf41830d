// File: tests/engine/cpu/cpu_backend_test.cc
// The CPU backend on a tiny in-memory model: batching, chunked prefill, page placement and
// Quest at full budget change nothing; sparse page lists are honoured; bad plans are errors.
#include "engine/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "tests/testing/tiny_model.h"

namespace lil {
namespace {

using testing::TinyConfig;
using testing::TinyModelOptions;
using testing::TinyWeights;

std::unique_ptr<CpuBackend> MakeBackend(ModelFamily family, int32_t page_size, int32_t pages = 64) {
  TinyModelOptions o;
  o.family = family;
  ModelConfig c = TinyConfig(o);
  KvCacheOptions kv;
  kv.page_size = page_size;
  kv.num_pages = pages;
  auto b = CpuBackend::Create(c, TinyWeights(c, 42), kv);
  EXPECT_TRUE(b.ok()) << b.status();
  return std::move(*b);
}

std::vector<TokenId> RandomTokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(rng() % vocab);
  return t;
}

ScheduledSeq Seq(uint64_t id, std::vector<TokenId> tokens, int32_t start, std::vector<int32_t> pages) {
  ScheduledSeq s;
  s.id = RequestId{id};
  s.tokens = std::move(tokens);
  s.start_pos = start;
  for (int32_t p : pages) s.page_table.push_back(PageId{p});
  s.return_logits = true;
  s.sample = true;
  s.sampling.temperature = 0.0f;
  return s;
}

float MaxRelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float diff = 0, mx = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_FALSE(std::isnan(a[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
    mx = std::max(mx, std::abs(b[i]));
  }
  return diff / mx;
}

class CpuBackendFamilyTest : public ::testing::TestWithParam<ModelFamily> {};

// A prompt run in one step equals the same prompt run in chunks of 1, 3 and 7 tokens.
TEST_P(CpuBackendFamilyTest, ChunkedPrefillEqualsWholePrefill) {
  const int32_t ps = 4;
  auto whole = MakeBackend(GetParam(), ps);
  const auto prompt = RandomTokens(23, 97, 1);
  std::vector<int32_t> pages = {5, 2, 9, 0, 11, 3};
  StepPlan plan;
  plan.seqs.push_back(Seq(1, prompt, 0, pages));
  auto ref = whole->Execute(plan);
  ASSERT_TRUE(ref.ok()) << ref.status();
  for (int chunk : {1, 3, 7}) {
    auto b = MakeBackend(GetParam(), ps);
    std::vector<float> logits;
    for (int start = 0; start < 23; start += chunk) {
      const int n = std::min(chunk, 23 - start);
      StepPlan p;
      p.seqs.push_back(Seq(1, {prompt.begin() + start, prompt.begin() + start + n}, start, pages));
      auto r = b->Execute(p);
      ASSERT_TRUE(r.ok()) << r.status();
      logits.insert(logits.end(), r->seqs[0].logits.begin(), r->seqs[0].logits.end());
    }
    EXPECT_LT(MaxRelDiff(logits, ref->seqs[0].logits), 1e-4) << "chunk " << chunk;
  }
}

// Three sequences in one batch give the same logits as each alone, wherever their pages are.
TEST_P(CpuBackendFamilyTest, BatchEqualsAlone) {
  const int32_t ps = 3;
  std::vector<ScheduledSeq> seqs = {
      Seq(1, RandomTokens(10, 97, 2), 0, {7, 1, 4, 20}),
      Seq(2, RandomTokens(1, 97, 3), 0, {13}),
      Seq(3, RandomTokens(17, 97, 4), 0, {2, 3, 5, 6, 8, 9}),
  };
  auto batched = MakeBackend(GetParam(), ps);
  StepPlan plan;
  plan.seqs = seqs;
  auto r = batched->Execute(plan);
  ASSERT_TRUE(r.ok()) << r.status();
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto alone = MakeBackend(GetParam(), ps);
    StepPlan p;
    p.seqs.push_back(seqs[i]);
    // Place it on other pages: page placement must not matter.
    for (auto& page : p.seqs[0].page_table) page.value = 63 - page.value;
    auto a = alone->Execute(p);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_LT(MaxRelDiff(r->seqs[i].logits, a->seqs[0].logits), 1e-5) << "seq " << i;
    EXPECT_EQ(r->seqs[i].token, a->seqs[0].token);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, CpuBackendFamilyTest,
                         ::testing::Values(ModelFamily::kLlama, ModelFamily::kQwen2,
                                           ModelFamily::kQwen3));

// Decode with Quest: a budget covering every page equals dense; a small budget changes the
// result and reads exactly budget pages.
TEST(CpuBackendTest, QuestFullBudgetEqualsDenseAndSmallBudgetReadsBudgetPages) {
  const int32_t ps = 4;
  const auto prompt = RandomTokens(40, 97, 5);
  std::vector<int32_t> pages(11);
  std::iota(pages.begin(), pages.end(), 0);
  auto run = [&](SparseMode mode, int32_t budget_tokens, int32_t* attended) {
    auto b = MakeBackend(ModelFamily::kLlama, ps);
    StepPlan p;
    p.seqs.push_back(Seq(1, prompt, 0, pages));
    EXPECT_TRUE(b->Execute(p).ok());
    StepPlan d;
    d.seqs.push_back(Seq(1, {17}, 40, pages));
    d.seqs[0].sparse.mode = mode;
    d.seqs[0].sparse.budget_tokens = budget_tokens;
    d.seqs[0].sparse.dense_layers = 1;
    auto r = b->Execute(d);
    EXPECT_TRUE(r.ok()) << r.status();
    *attended = r->seqs[0].pages_attended;
    return r->seqs[0].logits;
  };
  int32_t dense_pages = 0, full_pages = 0, small_pages = 0;
  const auto dense = run(SparseMode::kDense, 0, &dense_pages);
  const auto full = run(SparseMode::kQuest, 44, &full_pages);
  const auto small = run(SparseMode::kQuest, 8, &small_pages);
  EXPECT_EQ(dense_pages, 11);
  EXPECT_EQ(full_pages, 11);
  EXPECT_EQ(small_pages, 2);
  EXPECT_LT(MaxRelDiff(full, dense), 1e-6);
  EXPECT_GT(MaxRelDiff(small, dense), 1e-3);
}

// Freed slots (kNoPage) are skipped: equal to attending a sequence whose tokens there are
// masked, i.e. different from dense but finite, and h2o page masses sum to ~1 per layer/head.
TEST(CpuBackendTest, PageMassSumsToOneAndFreedPagesAreNotRead) {
  const int32_t ps = 4;
  auto b = MakeBackend(ModelFamily::kLlama, ps);
  std::vector<int32_t> pages = {0, 1, 2, 3, 4, 5};
  StepPlan p;
  p.seqs.push_back(Seq(1, RandomTokens(21, 97, 6), 0, pages));
  ASSERT_TRUE(b->Execute(p).ok());
  StepPlan d;
  d.seqs.push_back(Seq(1, {5}, 21, pages));
  d.seqs[0].collect_page_mass = true;
  auto r = b->Execute(d);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->seqs[0].page_mass.size(), 6u);
  float total = 0;
  for (float m : r->seqs[0].page_mass) total += m;
  EXPECT_NEAR(total, 1.0f, 1e-4);
  // Free logical pages 1 and 2: they get no mass and are not attended.
  d.seqs[0].page_table[1] = kNoPage;
  d.seqs[0].page_table[2] = kNoPage;
  d.seqs[0].tokens = {5};
  auto r2 = b->Execute(d);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->seqs[0].page_mass[1], 0.0f);
  EXPECT_EQ(r2->seqs[0].page_mass[2], 0.0f);
  EXPECT_EQ(r2->seqs[0].pages_attended, 4);
  EXPECT_GT(MaxRelDiff(r2->seqs[0].logits, r->seqs[0].logits), 1e-4);
}

TEST(CpuBackendTest, MalformedPlansAreClearErrors) {
  auto b = MakeBackend(ModelFamily::kLlama, 4, 8);
  StepPlan p;
  p.seqs.push_back(Seq(1, {1, 2, 3, 4, 5}, 0, {0}));  // needs 2 pages
  auto r = b->Execute(p);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("page_table"), std::string::npos) << r.status();
  p.seqs[0] = Seq(1, {1, 200}, 0, {0});  // token out of vocab
  r = b->Execute(p);
  EXPECT_NE(r.status().message().find("token id 200"), std::string::npos) << r.status();
  p.seqs[0] = Seq(1, {1, 2}, 0, {8});  // page outside the pool
  r = b->Execute(p);
  EXPECT_NE(r.status().message().find("outside the pool"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace lil
