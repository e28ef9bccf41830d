// File: tests/gpu/gpu_ops_test.cc
// Element-wise kernels and greedy sampling against the CPU references (kernels/cpu,
// engine/sampler.h), on odd sizes, with NaN-poisoned outputs. The products (cuBLAS, the
// GEMV, the skinny GEMM) and their fusions: gpu_gemm_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "absl/base/casts.h"
#include "absl/types/span.h"
#include "engine/sampler.h"
#include "kernels/cpu/kv_write.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/sample.h"
#include "kernels/quest_fp8.h"
#include "tests/gpu/gpu_test_util.h"

namespace lil {
namespace {

using cuda::bf16;
using testing::AllClose;
using testing::DeviceArray;

// Odd widths take the scalar kernel, multiples of 4 up to 8192 the register-held vector one
// (4096 and 8192: Llama-3-8B's and -70B's hidden size), 8196 the scalar one again; each with
// and without the residual, and through row_index (the final norm's gather of logit rows).
TEST(GpuOps, AddRmsNormMatchesCpu) {
  LIL_SKIP_WITHOUT_GPU();
  for (const int32_t dim : {577, 12, 576, 4096, 8192, 8196}) {
    for (const bool with_residual : {true, false}) {
      SCOPED_TRACE("dim " + std::to_string(dim) + (with_residual ? " + residual" : ""));
      const int32_t rows = 5;
      auto x = testing::RandomBf16Values(rows * dim, 1), res = testing::RandomBf16Values(rows * dim, 2);
      const auto w = testing::RandomBf16Values(dim, 3);
      DeviceArray<float> dx(x), dres(res), dw(w);
      auto out = DeviceArray<bf16>::Poisoned(rows * dim);
      ASSERT_EQ(cuda::AddRmsNorm({dx.get(), with_residual ? dres.get() : nullptr, dw.get(), out.get(), rows, dim, 1e-5f},
                                 nullptr),
                cudaSuccess);
      if (with_residual) {
        for (size_t i = 0; i < x.size(); ++i) x[i] += res[i];
      }
      std::vector<float> ref(x.size());
      cpu::RmsNorm({x.data(), w.data(), ref.data(), rows, dim, 1e-5f});
      EXPECT_TRUE(AllClose(dx.Download(), x, 1e-6f, 1e-6f));
      EXPECT_TRUE(AllClose(testing::ToF32(out.Download()), ref, 1e-3f, 8e-3f));
      // Rows 3 and 0 gathered (x is not changed without a residual).
      const std::vector<int32_t> pick = {3, 0};
      DeviceArray<int32_t> dpick(pick);
      auto gathered = DeviceArray<bf16>::Poisoned(2 * dim);
      cuda::AddRmsNormParams gp{dx.get(), nullptr, dw.get(), gathered.get(), 2, dim, 1e-5f, dpick.get()};
      ASSERT_EQ(cuda::AddRmsNorm(gp, nullptr), cudaSuccess);
      std::vector<float> want(ref.begin() + 3 * dim, ref.begin() + 4 * dim);
      want.insert(want.end(), ref.begin(), ref.begin() + dim);
      EXPECT_TRUE(AllClose(testing::ToF32(gathered.Download()), want, 1e-3f, 8e-3f));
    }
  }
}

// q/k/v split, Qwen2 bias, Qwen3 q/k norm, RoPE and paged KV write with Quest metadata,
// against cpu::RmsNorm + cpu::Rope + cpu::KvWrite (applied in token order).
TEST(GpuOps, QkvRopeWriteMatchesCpu) {
  LIL_SKIP_WITHOUT_GPU();
  for (int32_t d : {64, 128}) {
    for (int32_t ps : {1, 3, 16, 17}) {
      const int32_t tokens = 7, hq = 8, hkv = 2, width = (hq + 2 * hkv) * d, num_pages = 9;
      const auto qkv = testing::RandomBf16Values(tokens * width, d + ps);
      const auto bias = testing::RandomBf16Values(width, 5, 0.1f);
      const auto qn = testing::RandomBf16Values(d, 6), kn = testing::RandomBf16Values(d, 7);
      std::vector<float> inv_freq(d / 2);
      for (int32_t i = 0; i < d / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / d);
      std::vector<int32_t> pos(tokens), page(tokens), slot(tokens);
      for (int32_t t = 0; t < tokens; ++t) {
        pos[t] = 1000 + t;  // large angles
        page[t] = (3 + pos[t] / ps) % num_pages;
        slot[t] = pos[t] % ps;
      }
      // CPU reference.
      std::vector<float> q(tokens * hq * d), k(tokens * hkv * d), v(tokens * hkv * d);
      for (int32_t t = 0; t < tokens; ++t) {
        for (int32_t i = 0; i < width; ++i) {
          const float x = qkv[t * width + i] + bias[i];
          if (i < hq * d) q[t * hq * d + i] = x;
          else if (i < (hq + hkv) * d) k[t * hkv * d + i - hq * d] = x;
          else v[t * hkv * d + i - (hq + hkv) * d] = x;
        }
      }
      cpu::RmsNorm({q.data(), qn.data(), q.data(), tokens * hq, d, 1e-6f});
      cpu::RmsNorm({k.data(), kn.data(), k.data(), tokens * hkv, d, 1e-6f});
      cpu::Rope({q.data(), pos.data(), inv_freq.data(), tokens, hq, d, d});
      cpu::Rope({k.data(), pos.data(), inv_freq.data(), tokens, hkv, d, d});
      const size_t pool = static_cast<size_t>(num_pages) * hkv * ps * d;
      std::vector<float> kp(pool, 0.0f), vp(pool, 0.0f), meta(static_cast<size_t>(num_pages) * hkv * 2 * d, 0.0f);
      // Round k, v to bf16 first: the GPU stores bf16 and its metadata is of the stored keys.
      std::vector<float> kr(k.size()), vr(v.size());
      for (size_t i = 0; i < k.size(); ++i) kr[i] = testing::RoundBf16(k[i]);
      for (size_t i = 0; i < v.size(); ++i) vr[i] = testing::RoundBf16(v[i]);
      cpu::KvWrite({kr.data(), vr.data(), {kp.data(), vp.data(), meta.data(), num_pages, hkv, ps, d}, tokens,
                    page.data(), slot.data()});

      // pairs_adjacent: each q / k head's columns (and bias) reordered so RoPE pairs sit side by
      // side (column 2j = dim j, 2j + 1 = dim j + d / 2), the vector kernel's layout; same results.
      for (const bool pairs : {false, true}) {
        std::vector<float> qkv_in = qkv, bias_in = bias;
        if (pairs) {
          for (int32_t hv = 0; hv < hq + hkv; ++hv) {
            for (int32_t j = 0; j < d / 2; ++j) {
              for (int32_t t = 0; t <= tokens; ++t) {  // t == tokens: the bias
                std::vector<float>& dst = t < tokens ? qkv_in : bias_in;
                const std::vector<float>& src = t < tokens ? qkv : bias;
                const int64_t row = t < tokens ? int64_t{t} * width : 0;
                dst[row + hv * d + 2 * j] = src[row + hv * d + j];
                dst[row + hv * d + 2 * j + 1] = src[row + hv * d + j + d / 2];
              }
            }
          }
        }
        DeviceArray<float> dqkv(qkv_in), dbias(bias_in), dqn(qn), dkn(kn), dinv(inv_freq);
        DeviceArray<int32_t> dpos(pos), dpage(page), dslot(slot);
        auto dq = DeviceArray<float>::Poisoned(q.size());
        DeviceArray<bf16> dk(std::vector<bf16>(pool, __float2bfloat16(0.0f))), dv(std::vector<bf16>(pool, __float2bfloat16(0.0f)));
        auto dmeta = DeviceArray<bf16>::Poisoned(meta.size());
        cuda::QkvRopeWriteParams p;
        p.qkv = dqkv.get();
        p.bias = dbias.get();
        p.q_norm = dqn.get();
        p.k_norm = dkn.get();
        p.pos = dpos.get();
        p.inv_freq = dinv.get();
        p.q_out = dq.get();
        p.kv = {dk.get(), dv.get(), dmeta.get(), num_pages, hkv, ps, d};
        p.dst_page = dpage.get();
        p.dst_slot = dslot.get();
        p.tokens = tokens;
        p.num_heads = hq;
        p.pairs_adjacent = pairs;
        ASSERT_EQ(cuda::QkvRopeWrite(p, nullptr), cudaSuccess);
        // Touched pages and their highest slot, as cuda_step.cc computes them.
        std::vector<int32_t> touched, last;
        for (int32_t t = 0; t < tokens; ++t) {
          auto it = std::find(touched.begin(), touched.end(), page[t]);
          if (it == touched.end()) {
            touched.push_back(page[t]);
            last.push_back(slot[t]);
          } else {
            last[it - touched.begin()] = std::max(last[it - touched.begin()], slot[t]);
          }
        }
        DeviceArray<int32_t> dtouched(touched), dlast(last);
        ASSERT_EQ(cuda::QuestMeta({p.kv, dtouched.get(), dlast.get(), static_cast<int32_t>(touched.size())}, nullptr),
                  cudaSuccess);
        SCOPED_TRACE("d=" + std::to_string(d) + " ps=" + std::to_string(ps) + (pairs ? " pairs" : ""));
        EXPECT_TRUE(AllClose(dq.Download(), q, 1e-4f, 1e-4f));
        EXPECT_TRUE(AllClose(testing::ToF32(dk.Download()), kp, 1e-2f, 8e-3f));
        EXPECT_TRUE(AllClose(testing::ToF32(dv.Download()), vp, 0.0f, 0.0f));
        // Metadata of the touched pages only (the rest stays poisoned on purpose).
        const auto got_meta = testing::ToF32(dmeta.Download());
        for (int32_t pg : touched) {
          for (int32_t h = 0; h < hkv; ++h) {
            const size_t o = (static_cast<size_t>(pg) * hkv + h) * 2 * d;
            std::vector<float> g(got_meta.begin() + o, got_meta.begin() + o + 2 * d), r(meta.begin() + o, meta.begin() + o + 2 * d);
            EXPECT_TRUE(AllClose(g, r, 1e-2f, 8e-3f)) << "page " << pg << " head " << h;
          }
        }
        // The same metadata in e4m3 (kv.quest_fp8): the bf16 min / max rounded outward, exactly.
        auto dmeta8 = DeviceArray<uint8_t>::Poisoned(meta.size());
        cuda::PagedKvViewBf16 kv8 = p.kv;
        kv8.quest = nullptr;
        kv8.quest_fp8 = dmeta8.get();
        ASSERT_EQ(cuda::QuestMeta({kv8, dtouched.get(), dlast.get(), static_cast<int32_t>(touched.size())}, nullptr),
                  cudaSuccess);
        const auto got_meta8 = dmeta8.Download();
        for (int32_t pg : touched) {
          for (int32_t h = 0; h < hkv; ++h) {
            const size_t o = (static_cast<size_t>(pg) * hkv + h) * 2 * d;
            for (int32_t i = 0; i < d; ++i) {
              ASSERT_EQ(got_meta8[o + i], E4m3RoundDown(got_meta[o + i])) << "page " << pg << " head " << h << " min " << i;
              ASSERT_EQ(got_meta8[o + d + i], E4m3RoundUp(got_meta[o + d + i])) << "page " << pg << " head " << h << " max " << i;
            }
          }
        }
      }
    }
  }
}

// A decode step's KV write with quest_update (each token on its own page) keeps the Quest
// min/max itself: bit-identical to QkvRopeWrite + QuestMeta, over 40 positions of one
// sequence written one token per step (slot 0 resets, later slots widen), then a step of two
// tokens on two pages; bf16 metadata, and e4m3 (kv.quest_fp8) in a second pool pair.
TEST(GpuOps, QkvRopeWriteKeepsQuestMetaOnDecodeSteps) {
  LIL_SKIP_WITHOUT_GPU();
  for (int32_t d : {64, 128}) {
    for (int32_t ps : {1, 3, 16, 17}) {
      SCOPED_TRACE("d=" + std::to_string(d) + " ps=" + std::to_string(ps));
      const int32_t hq = 4, hkv = 2, width = (hq + 2 * hkv) * d, steps = 40, num_pages = 48;
      const auto qkv = testing::RandomBf16Values((steps + 2) * width, 31 + d + ps);
      std::vector<float> inv_freq(d / 2);
      for (int32_t i = 0; i < d / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / d);
      const size_t pool = static_cast<size_t>(num_pages) * hkv * ps * d, metas = static_cast<size_t>(num_pages) * hkv * 2 * d;
      DeviceArray<float> dqkv(qkv), dinv(inv_freq);
      auto dq = DeviceArray<float>::Poisoned(static_cast<size_t>(2) * hq * d);
      const std::vector<bf16> zeros(pool, __float2bfloat16(0.0f));
      DeviceArray<bf16> k_a(zeros), v_a(zeros), k_b(zeros), v_b(zeros);
      auto meta_a = DeviceArray<bf16>::Poisoned(metas), meta_b = DeviceArray<bf16>::Poisoned(metas);
      auto meta8_a = DeviceArray<uint8_t>::Poisoned(metas), meta8_b = DeviceArray<uint8_t>::Poisoned(metas);
      // One step: tokens at (pos, page, slot); a fused (quest_update) and a reference pool.
      auto step = [&](int32_t first_row, const std::vector<int32_t>& pos, const std::vector<int32_t>& page) {
        std::vector<int32_t> slot(pos.size());
        for (size_t i = 0; i < pos.size(); ++i) slot[i] = pos[i] % ps;
        DeviceArray<int32_t> dpos(pos), dpage(page), dslot(slot);
        cuda::QkvRopeWriteParams p;
        p.qkv = dqkv.get() + static_cast<int64_t>(first_row) * width;
        p.pos = dpos.get();
        p.inv_freq = dinv.get();
        p.q_out = dq.get();
        p.dst_page = dpage.get();
        p.dst_slot = dslot.get();
        p.tokens = static_cast<int32_t>(pos.size());
        p.num_heads = hq;
        for (bool fp8 : {false, true}) {  // the K / V pools are rewritten with the same values
          p.kv = {k_a.get(), v_a.get(), fp8 ? nullptr : meta_a.get(), num_pages, hkv, ps, d, fp8 ? meta8_a.get() : nullptr};
          p.quest_update = true;
          ASSERT_EQ(cuda::QkvRopeWrite(p, nullptr), cudaSuccess);
          p.kv = {k_b.get(), v_b.get(), fp8 ? nullptr : meta_b.get(), num_pages, hkv, ps, d, fp8 ? meta8_b.get() : nullptr};
          p.quest_update = false;
          ASSERT_EQ(cuda::QkvRopeWrite(p, nullptr), cudaSuccess);
          ASSERT_EQ(cuda::QuestMeta({p.kv, dpage.get(), dslot.get(), p.tokens}, nullptr), cudaSuccess);
        }
      };
      for (int32_t t = 0; t < steps; ++t) step(t, {t}, {3 + t / ps});
      step(steps, {steps, 0}, {3 + steps / ps, 1});  // a second sequence's first token on page 1
      const auto a = testing::ToF32(meta_a.Download()), b = testing::ToF32(meta_b.Download());
      for (int32_t pg : {1, 3, 3 + steps / ps, 3 + (steps - 1) / ps}) {
        const size_t o = static_cast<size_t>(pg) * hkv * 2 * d;
        const std::vector<float> ga(a.begin() + o, a.begin() + o + hkv * 2 * d), gb(b.begin() + o, b.begin() + o + hkv * 2 * d);
        EXPECT_TRUE(AllClose(ga, gb, 0.0f, 0.0f)) << "page " << pg;
      }
      EXPECT_EQ(meta8_a.Download(), meta8_b.Download()) << "e4m3 metadata";
      EXPECT_TRUE(AllClose(testing::ToF32(k_a.Download()), testing::ToF32(k_b.Download()), 0.0f, 0.0f));
    }
  }
}

// SiluMul: inter 1001 takes the scalar kernel, 1024 and 14336 (Llama-3-8B's) the four-column one.
TEST(GpuOps, SiluMulAndEmbeddingMatchCpu) {
  LIL_SKIP_WITHOUT_GPU();
  const int32_t vocab = 50, dim = 97;
  for (const int32_t inter : {1001, 1024, 14336}) {
    SCOPED_TRACE("inter " + std::to_string(inter));
    const int32_t rows = 3;
    const auto gu = testing::RandomBf16Values(rows * 2 * inter, 1, 4.0f);
    std::vector<float> ref(rows * inter);
    cpu::SiluMul({gu.data(), ref.data(), rows, inter});
    DeviceArray<float> dgu(gu);
    auto out = DeviceArray<bf16>::Poisoned(ref.size());
    ASSERT_EQ(cuda::SiluMul({dgu.get(), out.get(), rows, inter}, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(testing::ToF32(out.Download()), ref, 1e-3f, 8e-3f));
    // The same values with gate and up interleaved per unit, as the GEMM over interleaved rows writes them.
    std::vector<float> gu_pairs(gu.size());
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t c = 0; c < inter; ++c) {
        gu_pairs[r * 2 * inter + 2 * c] = gu[r * 2 * inter + c];
        gu_pairs[r * 2 * inter + 2 * c + 1] = gu[r * 2 * inter + inter + c];
      }
    }
    DeviceArray<float> dpairs(gu_pairs);
    auto out_pairs = DeviceArray<bf16>::Poisoned(ref.size());
    ASSERT_EQ(cuda::SiluMul({dpairs.get(), out_pairs.get(), rows, inter, true}, nullptr), cudaSuccess);
    EXPECT_TRUE(AllClose(testing::ToF32(out_pairs.Download()), testing::ToF32(out.Download()), 0.0f, 0.0f));
  }

  const auto table = testing::RandomBf16Values(vocab * dim, 2);
  const std::vector<int32_t> ids = {0, 49, 7, 7, 13};
  std::vector<float> eref(ids.size() * dim);
  cpu::Embedding({table.data(), ids.data(), eref.data(), static_cast<int32_t>(ids.size()), dim});
  DeviceArray<bf16> dtable(testing::ToBf16(table));
  DeviceArray<int32_t> dids(ids);
  auto eout = DeviceArray<float>::Poisoned(eref.size());
  ASSERT_EQ(cuda::Embedding({dtable.get(), dids.get(), eout.get(), static_cast<int32_t>(ids.size()), dim, vocab}, nullptr),
            cudaSuccess);
  EXPECT_TRUE(AllClose(eout.Download(), eref, 0.0f, 0.0f));
  // With the bf16 copy (the fused decode path's x for layer 0): both outputs, exactly; an id
  // outside the vocabulary gives zeros in both.
  std::vector<int32_t> ids2 = ids;
  ids2.push_back(vocab);
  std::vector<float> eref2 = eref;
  eref2.resize(ids2.size() * dim, 0.0f);
  DeviceArray<int32_t> dids2(ids2);
  auto eout2 = DeviceArray<float>::Poisoned(eref2.size());
  auto eout_bf16 = DeviceArray<bf16>::Poisoned(eref2.size());
  cuda::EmbeddingParams ep{dtable.get(), dids2.get(), eout2.get(), static_cast<int32_t>(ids2.size()), dim, vocab};
  ep.out_bf16 = eout_bf16.get();
  ASSERT_EQ(cuda::Embedding(ep, nullptr), cudaSuccess);
  EXPECT_TRUE(AllClose(eout2.Download(), eref2, 0.0f, 0.0f));
  EXPECT_TRUE(AllClose(testing::ToF32(eout_bf16.Download()), eref2, 0.0f, 0.0f));
}

// cuBLAS (with its cuBLASLt choice for 5..kLtMaxRows rows: timed at the first call of a shape,
// the chosen plan reused at the second) and the fallback kernel, on an odd shape (ld not a
// multiple of 8), a decode-batch shape and one past kLtMaxRows.
// ScaleColumns folds a norm weight into a matrix: w[r, c] * g[c], rounded to bf16; and
// AddRmsNorm with a null weight is the norm with weight 1 (what then runs before it).
TEST(GpuOps, ScaleColumnsAndUnitNorm) {
  LIL_SKIP_WITHOUT_GPU();
  const int32_t rows = 37, cols = 577;
  const auto w = testing::RandomBf16Values(rows * cols, 21), g = testing::RandomBf16Values(cols, 22, 2.0f);
  DeviceArray<bf16> dw(testing::ToBf16(w));
  DeviceArray<float> dg(g);
  ASSERT_EQ(cuda::ScaleColumns(dw.get(), dg.get(), rows, cols, nullptr), cudaSuccess);
  std::vector<float> ref(w.size());
  for (size_t i = 0; i < w.size(); ++i) ref[i] = w[i] * g[i % cols];
  EXPECT_TRUE(AllClose(testing::ToF32(dw.Download()), testing::ToF32(testing::ToBf16(ref)), 0.0f, 0.0f));
  // InterleaveRowHalves: rows [0, h) and [h, 2h) of a [2h, cols] matrix become pairs (j, h + j).
  const int32_t h = 19;
  const auto gu = testing::RandomBf16Values(2 * h * cols, 24);
  DeviceArray<bf16> dgu(testing::ToBf16(gu));
  ASSERT_EQ(cuda::InterleaveRowHalves(dgu.get(), h, cols, nullptr), cudaSuccess);
  std::vector<float> pairs(gu.size());
  for (int32_t r = 0; r < 2 * h; ++r) {
    const int32_t src = (r % 2 == 0 ? 0 : h) + r / 2;
    std::copy(gu.begin() + src * cols, gu.begin() + (src + 1) * cols, pairs.begin() + r * cols);
  }
  EXPECT_TRUE(AllClose(testing::ToF32(dgu.Download()), pairs, 0.0f, 0.0f));

  for (const int32_t width : {cols, 4096}) {  // the scalar and the vector kernel
    const int32_t n = 3;
    const auto x = testing::RandomBf16Values(n * width, 23);
    const std::vector<float> ones(width, 1.0f);
    DeviceArray<float> dx(x);
    auto out = DeviceArray<bf16>::Poisoned(n * width);
    ASSERT_EQ(cuda::AddRmsNorm({dx.get(), nullptr, nullptr, out.get(), n, width, 1e-5f}, nullptr), cudaSuccess);
    std::vector<float> unit(x.size());
    cpu::RmsNorm({x.data(), ones.data(), unit.data(), n, width, 1e-5f});
    EXPECT_TRUE(AllClose(testing::ToF32(out.Download()), unit, 1e-3f, 8e-3f)) << "width " << width;
  }
}

// The kernel cuts each row into 8 slices (a thread-block cluster): a tie across slices, and a
// vocabulary smaller than the slice count (empty slices).
TEST(GpuOps, GreedyMatchesHostSampler) {
  LIL_SKIP_WITHOUT_GPU();
  for (const int32_t vocab : {49157, 5}) {
    SCOPED_TRACE("vocab " + std::to_string(vocab));
    const int32_t rows = 3;
    auto logits = testing::RandomBf16Values(rows * vocab, 3, 8.0f);
    if (vocab > 40000) logits[1 * vocab + 100] = logits[1 * vocab + 40000] = 20.0f;  // a tie: the lower id wins
    DeviceArray<float> dl(logits);
    auto tok = DeviceArray<int32_t>::Poisoned(rows);
    auto lp = DeviceArray<float>::Poisoned(rows);
    ASSERT_EQ(cuda::Greedy({dl.get(), rows, vocab, tok.get(), lp.get()}, nullptr), cudaSuccess);
    const auto got_tok = tok.Download();
    const auto got_lp = lp.Download();
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    for (int32_t r = 0; r < rows; ++r) {
      const SampleOutput ref = Sample(absl::MakeConstSpan(logits.data() + r * vocab, vocab), greedy, {}, 1, 0);
      EXPECT_EQ(got_tok[r], ref.token) << "row " << r;
      EXPECT_NEAR(got_lp[r], ref.logprob, 1e-4f) << "row " << r;
    }
    if (vocab > 40000) {
      EXPECT_EQ(got_tok[1], 100);
    }
  }
}

// Tensor parallel greedy: the vocabulary cut into uneven rank slices (one of them empty), each
// slice's partial written to its rank's place in a gather buffer (poisoned first: the kernel
// must zero the other ranks' places), the ranks' buffers summed on the host as the all-reduce
// would, then GreedyCombine: the same token and logprob as Greedy over the whole row,
// including a tie across two slices (the lower id wins) and a row of NaNs.
TEST(GpuOps, GreedyPartialsCombineToTheWholeRow) {
  LIL_SKIP_WITHOUT_GPU();
  const int32_t vocab = 30011, rows = 4;
  const std::vector<int32_t> begin = {0, 11000, 11000, 20000}, end = {11000, 11000, 20000, 30011};
  const int32_t world = static_cast<int32_t>(begin.size());
  auto logits = testing::RandomBf16Values(rows * vocab, 5, 8.0f);
  logits[1 * vocab + 10999] = logits[1 * vocab + 25000] = 30.0f;  // a tie across slices
  for (int32_t v = 0; v < vocab; ++v) logits[3 * vocab + v] = std::nanf("");
  DeviceArray<float> dl(logits);
  auto want_tok = DeviceArray<int32_t>::Poisoned(rows);
  auto want_lp = DeviceArray<float>::Poisoned(rows);
  ASSERT_EQ(cuda::Greedy({dl.get(), rows, vocab, want_tok.get(), want_lp.get()}, nullptr), cudaSuccess);
  std::vector<float> sum(static_cast<size_t>(rows) * world * 4, 0.0f);
  for (int32_t r = 0; r < world; ++r) {
    const int32_t n = end[r] - begin[r];
    std::vector<float> slice(static_cast<size_t>(rows) * std::max(n, 1));
    for (int32_t row = 0; row < rows; ++row) {
      for (int32_t v = 0; v < n; ++v) slice[row * n + v] = logits[row * vocab + begin[r] + v];
    }
    DeviceArray<float> ds(slice);
    auto gather = DeviceArray<float>::Poisoned(rows * world * 4);
    cuda::GreedyParams g{ds.get(), rows, n, nullptr, nullptr};
    g.gather = gather.get();
    g.rank = r;
    g.world = world;
    g.id_offset = begin[r];
    ASSERT_EQ(cuda::Greedy(g, nullptr), cudaSuccess);
    const auto got = gather.Download();
    for (int32_t row = 0; row < rows; ++row) {
      for (int32_t q = 0; q < world; ++q) {
        for (int32_t k = 0; k < 4; ++k) {
          const float v = got[(row * world + q) * 4 + k];
          if (q != r || k == 3) {
            EXPECT_EQ(v, 0.0f) << "row " << row << " rank " << r << " wrote rank " << q << "'s float " << k;
          }
          sum[(row * world + q) * 4 + k] += v;
        }
      }
    }
  }
  DeviceArray<float> summed(sum);
  auto tok = DeviceArray<int32_t>::Poisoned(rows);
  auto lp = DeviceArray<float>::Poisoned(rows);
  ASSERT_EQ(cuda::GreedyCombine({summed.get(), rows, world, tok.get(), lp.get()}, nullptr), cudaSuccess);
  const auto got_tok = tok.Download(), ref_tok = want_tok.Download();
  const auto got_lp = lp.Download(), ref_lp = want_lp.Download();
  for (int32_t row = 0; row < rows; ++row) {
    EXPECT_EQ(got_tok[row], ref_tok[row]) << "row " << row;
    if (row == 3) {
      EXPECT_TRUE(std::isnan(got_lp[row]));
    } else {
      EXPECT_NEAR(got_lp[row], ref_lp[row], 1e-5f) << "row " << row;
    }
  }
  EXPECT_EQ(got_tok[1], 10999);
  EXPECT_EQ(got_tok[3], 0);
}

// SampleFiltered against the host sampler on the same logits and uniforms: every drawn token
// is in TemperedKept's kept set, nearly every one is the host's (the two differ only where
// float rounding moves a cut or the draw's boundary: the GPU's expf and its sums' order), the
// log-probability is the token's, undrawn rows keep Greedy's token, a second run draws the
// same tokens, and rows asking for top logprobs (drawn or not) get the host's, in its order.
// Rows of one value throughout take the tie path (more tied logits than GatherCut holds). Rows
// of 5,000 logits from 40 values (ties across every cut) and of Llama-3's 128,256;
// temperatures, top-k, top-p and min-p in combination.
TEST(GpuOps, FilteredSamplingFollowsTheHostSampler) {
  LIL_SKIP_WITHOUT_GPU();
  struct Mode {
    float temperature, top_p, min_p;
    int32_t top_k;
  };
  const Mode modes[] = {{1.0f, 1.0f, 0.0f, 0},  {0.7f, 0.9f, 0.0f, 0},   {1.0f, 1.0f, 0.0f, 50},
                        {0.8f, 0.95f, 0.05f, 0}, {1.3f, 0.5f, 0.0f, 400}, {0.5f, 0.01f, 0.0f, 0},
                        {2.0f, 1.0f, 0.3f, 7}};
  for (const int32_t vocab : {5000, 4999, 128256}) {  // 4999: rows not 16-byte aligned (scalar loads)
    SCOPED_TRACE("vocab " + std::to_string(vocab));
    const int32_t rows = 64;
    std::mt19937 rng(vocab);
    std::vector<float> logits(static_cast<size_t>(rows) * vocab);
    for (float& x : logits) {
      x = vocab < 10000 ? -4.0f + 0.25f * static_cast<float>(rng() % 40) : std::normal_distribution<float>(0.0f, 3.0f)(rng);
    }
    if (vocab == 4999) {  // every fifth row one value throughout: every cut falls inside 4,999 tied logits
      for (int32_t r = 4; r < rows; r += 5) std::fill_n(logits.begin() + static_cast<size_t>(r) * vocab, vocab, 1.5f);
    }
    std::vector<int32_t> args(static_cast<size_t>(rows) * cuda::kSampleArgs, 0);
    std::vector<SamplingParams> params(rows);
    for (int32_t r = 0; r < rows; ++r) {
      int32_t* a = args.data() + static_cast<size_t>(r) * cuda::kSampleArgs;
      // Top logprobs on every third row, drawn or not (1 .. 20 of them).
      if (r % 3 == 0) a[7] = params[r].logprobs = 1 + r % cuda::kMaxTopLogprobs;
      if (r % 9 == 8) continue;  // not drawn: Greedy's token stays
      const Mode& m = modes[r % 7];
      SamplingParams& sp = params[r];
      sp.temperature = m.temperature;
      sp.top_k = m.top_k;
      sp.top_p = m.top_p;
      sp.min_p = m.min_p;
      const uint64_t u = absl::bit_cast<uint64_t>(UniformDraw(99, r));
      a[0] = 1;
      a[1] = absl::bit_cast<int32_t>(sp.temperature);
      a[2] = sp.top_k;
      a[3] = absl::bit_cast<int32_t>(sp.top_p);
      a[4] = absl::bit_cast<int32_t>(sp.min_p);
      a[5] = static_cast<int32_t>(static_cast<uint32_t>(u));
      a[6] = static_cast<int32_t>(static_cast<uint32_t>(u >> 32));
    }
    DeviceArray<float> dl(logits);
    DeviceArray<int32_t> dargs(args);
    std::vector<std::vector<int32_t>> runs;
    std::vector<float> lp_got, top_lps;
    std::vector<int32_t> top_ids;
    // Launches of 64, 64, 20 and 7 rows: clusters of 2, 2, 4 and 8 slices a row. The sums are
    // integers, so how the row is sliced changes nothing.
    for (const int32_t n : {rows, rows, 20, 7}) {
      auto tok = DeviceArray<int32_t>::Poisoned(rows);
      auto lp = DeviceArray<float>::Poisoned(rows);
      auto tid = DeviceArray<int32_t>::Poisoned(rows * cuda::kMaxTopLogprobs);
      auto tlp = DeviceArray<float>::Poisoned(rows * cuda::kMaxTopLogprobs);
      ASSERT_EQ(cuda::Greedy({dl.get(), n, vocab, tok.get(), lp.get()}, nullptr), cudaSuccess);
      const cuda::SampleFilteredParams sp{dl.get(), n, vocab, dargs.get(), tok.get(), lp.get(), tid.get(), tlp.get()};
      ASSERT_EQ(cuda::SampleFiltered(sp, nullptr), cudaSuccess);
      runs.push_back(tok.Download());
      if (n == rows) {
        lp_got = lp.Download();
        top_ids = tid.Download();
        top_lps = tlp.Download();
      }
    }
    EXPECT_EQ(runs[0], runs[1]) << "a second run drew other tokens";
    for (const int k : {2, 3}) {
      const size_t n = k == 2 ? 20 : 7;
      EXPECT_EQ(std::vector<int32_t>(runs[0].begin(), runs[0].begin() + n),
                std::vector<int32_t>(runs[k].begin(), runs[k].begin() + n))
          << "the first " << n << " rows drew other tokens in a launch of " << n << " rows";
    }
    int32_t same = 0, marked = 0;
    for (int32_t r = 0; r < rows; ++r) {
      const auto row = absl::MakeConstSpan(logits.data() + static_cast<size_t>(r) * vocab, vocab);
      const int32_t got = runs[0][r];
      ASSERT_GE(got, 0);
      ASSERT_LT(got, vocab);
      SamplingParams greedy;
      greedy.temperature = 0.0f;
      const SampleOutput argmax = Sample(row, greedy, {}, 1, 0);
      EXPECT_NEAR(lp_got[r], row[got] - (row[argmax.token] - argmax.logprob), 1e-3f) << "row " << r;
      if (params[r].logprobs > 0) {  // the host's top logprobs: the same ids in the same order
        SamplingParams top;
        top.temperature = 0.0f;
        top.logprobs = params[r].logprobs;
        const SampleOutput want = Sample(row, top, {}, 1, 0);
        for (int32_t i = 0; i < top.logprobs; ++i) {
          const size_t at = static_cast<size_t>(r) * cuda::kMaxTopLogprobs + i;
          EXPECT_EQ(top_ids[at], want.top_logprobs[i].token) << "row " << r << ", top logprob " << i;
          EXPECT_NEAR(top_lps[at], want.top_logprobs[i].logprob, 1e-3f) << "row " << r << ", top logprob " << i;
        }
      }
      if (args[static_cast<size_t>(r) * cuda::kSampleArgs] == 0) {
        EXPECT_EQ(got, argmax.token) << "undrawn row " << r;
        continue;
      }
      ++marked;
      const std::vector<float> kept = TemperedKept(row, params[r], {});
      EXPECT_GT(kept[got], 0.0f) << "row " << r << ": token " << got << " is cut on the host";
      same += got == Sample(row, params[r], {}, 99, r).token;
    }
    EXPECT_GE(same, marked - 2) << same << " of " << marked << " drawn rows match the host";
  }
}

}  // namespace
}  // namespace lil
