// File: tests/gpu/gpu_backend_wide_test.cc
// Part of gpu_backend_test: one-token steps of few long rows in 8-warp CTAs over split rows
// (kernels/cuda/attention.h WideSplit). Greedy decode steps replayed from CUDA graphs, on a model
// with 8 KV heads at head_dim 128, at batch 1 (8 rows, 16 chunks a row on 132 SMs: the rule's
// shape) and 2 (16 rows: past kWideSplitMaxRows, so the 4-warp split throughout, two sequences):
// one sequence grows past kWideSplitMinRowTokens mid-run, the other stays short (150 tokens).
// They give the same tokens as the 4-warp split ($LILSERVE_TC_WIDE=0) with log-probabilities as
// close as ExpectSame asks of the CPU (the kernels round P to bf16 against each warp's running
// max, and the chunks differ); eager steps in between return logits, whose distance to the CPU
// backend's must stay within the 4-warp split's (a chunk dropped or read twice moves the
// attention output by that chunk's share of the softmax, far more than the rounding does).
// Within the rule the crossing captures a second graph for the same batch size (GraphKey), and
// only then; past it, no second graph.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "engine/cpu_backend.h"
#include "engine/cuda/cuda_backend.h"
#include "kernels/cuda/attention.h"
#include "tests/gpu/backend_test_util.h"
#include "tests/testing/tiny_model.h"

namespace lil {
namespace {

class CudaBackendWide : public ::testing::TestWithParam<int> {};

TEST_P(CudaBackendWide, SplitGraphStepsMatchFourWarpSplit) {
  LIL_SKIP_WITHOUT_GPU();
  const int batch = GetParam();
  ModelConfig c = testing::TinyConfig(testing::GpuTinyOptions(ModelFamily::kLlama, 128, 8));
  c.max_position_embeddings = 8192;
  const HostWeights w = testing::ConditionedBf16Weights(c, 7);
  KvCacheOptions kv;
  kv.page_size = 16;
  constexpr int32_t kPagesEach = 300;
  kv.num_pages = kPagesEach * batch;
  auto make = [&](const char* tc_wide) -> std::unique_ptr<cuda::CudaBackend> {
    if (tc_wide != nullptr) setenv("LILSERVE_TC_WIDE", tc_wide, 1);
    setenv("LILSERVE_CUBLASLT", "0", 1);  // the same GEMM algorithms in both (GraphReplay)
    auto dw = cuda::UploadWeights(c, w);
    EXPECT_TRUE(dw.ok()) << dw.status();
    auto b = dw.ok() ? cuda::CudaBackend::Create(c, std::move(*dw), kv, {})
                     : absl::StatusOr<std::unique_ptr<cuda::CudaBackend>>(dw.status());
    unsetenv("LILSERVE_TC_WIDE");
    unsetenv("LILSERVE_CUBLASLT");
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  };
  auto wide = make(nullptr), four = make("0");
  auto cpu = CpuBackend::Create(c, w, kv);
  ASSERT_TRUE(wide && four && cpu.ok());
  // Sequence 0: 4,070 prompt tokens, 255 pages (4,080 tokens of rows) until position 4,080, 256
  // after. Sequence i > 0: 50 + 100 i tokens. Each on its own pages.
  std::vector<ScheduledSeq> seqs;
  for (int i = 0; i < batch; ++i) {
    std::vector<int32_t> pages(kPagesEach);
    std::iota(pages.begin(), pages.end(), i * kPagesEach);
    seqs.push_back(testing::RandomSeq(i + 1, 0, i == 0 ? 4070 : 50 + 100 * i, pages, c.vocab_size));
  }
  const int32_t ps = kv.page_size;
  int wide_steps = 0;
  for (int step = 0; step < 20; ++step) {
    StepPlan plan;
    plan.seqs = seqs;
    for (ScheduledSeq& q : plan.seqs) {
      q.page_table.resize((q.start_pos + q.tokens.size() + ps - 1) / ps);
      // Odd steps (and the prompt) eager with logits; even decode steps replay graphs.
      q.return_logits = step % 2 == 1 || step == 0;
    }
    SCOPED_TRACE("step " + std::to_string(step) + " at position " + std::to_string(seqs[0].start_pos));
    auto a = wide->Execute(plan);
    auto b = four->Execute(plan);
    StepPlan with_logits = plan;
    for (ScheduledSeq& q : with_logits.seqs) q.return_logits = true;
    auto r = (*cpu)->Execute(with_logits);
    ASSERT_TRUE(a.ok() && b.ok() && r.ok()) << a.status() << b.status() << r.status();
    for (int i = 0; i < batch; ++i) {
      SCOPED_TRACE("sequence " + std::to_string(i));
      EXPECT_EQ(a->seqs[i].token, b->seqs[i].token);
      EXPECT_NEAR(a->seqs[i].logprob, b->seqs[i].logprob, 0.1);
      if (plan.seqs[i].return_logits) {
        const double ea = testing::RelL2(a->seqs[i].logits, r->seqs[i].logits);
        const double eb = testing::RelL2(b->seqs[i].logits, r->seqs[i].logits);
        EXPECT_LT(ea, 5e-2);
        EXPECT_LT(ea, 1.5 * eb + 2e-3) << "8-warp split " << ea << ", 4-warp split " << eb;
      }
    }
    if (step > 0 && static_cast<int32_t>(plan.seqs[0].page_table.size()) * ps >= cuda::kWideSplitMinRowTokens) {
      ++wide_steps;
    }
    for (int i = 0; i < batch; ++i) {
      seqs[i].start_pos += static_cast<int32_t>(seqs[i].tokens.size());
      seqs[i].tokens = {b->seqs[i].token};
    }
  }
  EXPECT_EQ(wide_steps, 9);
  // Within the rule: this batch size over the 4-warp split, then over the 8-warp one.
  const bool in_rule = batch * c.num_kv_heads <= cuda::kWideSplitMaxRows;
  EXPECT_EQ(wide->graphs_captured(), in_rule ? 2 : 1);
  EXPECT_EQ(four->graphs_captured(), 1);
}

INSTANTIATE_TEST_SUITE_P(Batches, CudaBackendWide, ::testing::Values(1, 2),
                         [](const auto& info) { return "batch" + std::to_string(info.param); });

}  // namespace
}  // namespace lil
