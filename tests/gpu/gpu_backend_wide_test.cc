// File: tests/gpu/gpu_backend_wide_test.cc
// Part of gpu_backend_test: one-token steps of few long rows in 8-warp CTAs over split rows
// (kernels/cuda/attention.h WideSplit). Batch-1 greedy decode steps replayed from CUDA graphs,
// on a model with 8 KV heads at head_dim 128 (8 rows, the measured shape) whose row grows past
// kWideSplitMinRowTokens mid-run, give the same tokens as the 4-warp split ($LILSERVE_TC_WIDE=0)
// with log-probabilities as close as ExpectSame asks of the CPU (the kernels round P to bf16
// against each warp's running max, and the chunks differ); eager steps in between return logits,
// whose distance to the CPU backend's must stay within the 4-warp split's (a chunk dropped or
// read twice moves the attention output by that chunk's share of the softmax, far more than the
// rounding does). The crossing captures a second graph for the same batch size (GraphKey), and
// only then.
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

TEST(CudaBackendWide, SplitGraphStepsMatchFourWarpSplit) {
  LIL_SKIP_WITHOUT_GPU();
  ModelConfig c = testing::TinyConfig(testing::GpuTinyOptions(ModelFamily::kLlama, 128, 8));
  c.max_position_embeddings = 8192;
  const HostWeights w = testing::ConditionedBf16Weights(c, 7);
  KvCacheOptions kv;
  kv.page_size = 16;
  kv.num_pages = 300;
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
  std::vector<int32_t> pages(kv.num_pages);
  std::iota(pages.begin(), pages.end(), 0);
  // 4,070 prompt tokens: 255 pages (4,080 tokens of rows) until position 4,080, 256 after.
  ScheduledSeq s = testing::RandomSeq(1, 0, 4070, pages, c.vocab_size);
  const int32_t ps = kv.page_size;
  int wide_steps = 0;
  for (int step = 0; step < 20; ++step) {
    StepPlan plan;
    plan.seqs = {s};
    plan.seqs[0].page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
    // Odd steps (and the prompt) eager with logits; even decode steps replay graphs.
    const bool logits = step % 2 == 1 || step == 0;
    plan.seqs[0].return_logits = logits;
    SCOPED_TRACE("step " + std::to_string(step) + " at position " + std::to_string(s.start_pos));
    auto a = wide->Execute(plan);
    auto b = four->Execute(plan);
    StepPlan with_logits = plan;
    with_logits.seqs[0].return_logits = true;
    auto r = (*cpu)->Execute(with_logits);
    ASSERT_TRUE(a.ok() && b.ok() && r.ok()) << a.status() << b.status() << r.status();
    EXPECT_EQ(a->seqs[0].token, b->seqs[0].token);
    EXPECT_NEAR(a->seqs[0].logprob, b->seqs[0].logprob, 0.1);
    if (logits) {
      const double ea = testing::RelL2(a->seqs[0].logits, r->seqs[0].logits);
      const double eb = testing::RelL2(b->seqs[0].logits, r->seqs[0].logits);
      EXPECT_LT(ea, 5e-2);
      EXPECT_LT(ea, 1.5 * eb + 2e-3) << "8-warp split " << ea << ", 4-warp split " << eb;
    }
    if (step > 0 && static_cast<int32_t>(plan.seqs[0].page_table.size()) * ps >= cuda::kWideSplitMinRowTokens) {
      ++wide_steps;
    }
    s.start_pos += static_cast<int32_t>(s.tokens.size());
    s.tokens = {b->seqs[0].token};
  }
  EXPECT_EQ(wide_steps, 9);
  EXPECT_EQ(wide->graphs_captured(), 2);  // batch 1 over the 4-warp split, then over the 8-warp one
  EXPECT_EQ(four->graphs_captured(), 1);
}

}  // namespace
}  // namespace lil
