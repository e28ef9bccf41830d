// File: tests/gpu/gpu_gemm_test.cc
// The products against the CPU (kernels/cpu/linear.h), on awkward shapes with NaN-poisoned
// outputs: cuBLAS and the fallback GEMM, the decode GEMV in every variant, the skinny
// tensor-core GEMM (kernels/cuda/gemm_skinny.h) with and without split-K, and the decode
// fusions the GEMV and the skinny GEMM share (norm_eps, add_to_y with y_bf16, swiglu_out,
// rope_epilogue; x_f32 the GEMV's alone), and the fused MLP against the GEMVs it replaces.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/cuda/gemm.h"
#include "kernels/cpu/linear.h"
#include "kernels/cuda/gemm_skinny.h"
#include "kernels/cuda/mlp_fused.h"
#include "kernels/cuda/ops.h"
#include "tests/gpu/gpu_test_util.h"

namespace lil {
namespace {

using cuda::bf16;
using testing::AllClose;
using testing::DeviceArray;

// The skinny GEMM's split-K workspace (counters zero at rest).
struct SkinnyScratch {
  DeviceArray<float> partial = DeviceArray<float>::Poisoned(cuda::kSkinnyPartialFloats);
  DeviceArray<int32_t> counters{std::vector<int32_t>(cuda::kSkinnyCounters, 0)};
  cuda::SkinnyWorkspace View() {
    return {partial.get(), cuda::kSkinnyPartialFloats, counters.get(), cuda::kSkinnyCounters};
  }
};

// One way to run a GemmParams product with its fusions: a GEMV variant or the skinny GEMM.
struct Launcher {
  std::string name;
  std::function<bool(const cuda::GemmParams&)> supported;
  std::function<cudaError_t(const cuda::GemmParams&)> run;
};
std::vector<Launcher> Launchers(SkinnyScratch& scratch) {
  std::vector<Launcher> out;
  for (int v = 0; v < cuda::kGemvVariants; ++v) {
    out.push_back({"GEMV variant " + std::to_string(v), cuda::GemvSupported,
                   [v](const cuda::GemmParams& p) { return cuda::GemvVariant(p, v, nullptr); }});
  }
  out.push_back({"skinny GEMM", cuda::SkinnySupported,
                 [&scratch](const cuda::GemmParams& p) { return cuda::SkinnyGemm(p, scratch.View(), nullptr); }});
  return out;
}

TEST(GpuGemm, GemmMatchesCpuWithCublasAndFallback) {
  LIL_SKIP_WITHOUT_GPU();
  for (const auto& [rows, in, out] : {std::tuple{7, 333, 129}, std::tuple{64, 512, 264},
                                       std::tuple{cuda::Gemm::kLtMaxRows + 44, 256, 72}}) {
    const auto x = testing::RandomBf16Values(rows * in, 1), w = testing::RandomBf16Values(out * in, 2);
    std::vector<float> ref(rows * out);
    cpu::Linear({x.data(), w.data(), nullptr, ref.data(), rows, in, out});
    DeviceArray<bf16> dx(testing::ToBf16(x)), dw(testing::ToBf16(w));
    for (bool fallback : {false, true}) {
      auto gemm = cuda::Gemm::Create(nullptr, fallback);
      ASSERT_TRUE(gemm.ok()) << gemm.status();
      if (!fallback && !gemm->uses_cublas()) {
        ADD_FAILURE() << "cuBLAS did not load (set LILSERVE_CUBLAS or LD_LIBRARY_PATH)";
        continue;
      }
      for (int call = 0; call < 2; ++call) {
        auto y = DeviceArray<float>::Poisoned(ref.size());
        ASSERT_TRUE(gemm->Run(dx.get(), dw.get(), y.get(), rows, in, out).ok());
        EXPECT_TRUE(AllClose(y.Download(), ref, 1e-3f, 1e-3f))
            << gemm->library() << " rows " << rows << " in " << in << " out " << out << " call " << call;
      }
    }
  }
}

// The decode GEMV on 1..4 rows, odd output counts (the last warp owns fewer rows), `in` a
// multiple of 8 that is not a multiple of the unrolled step; every work-split variant.
TEST(GpuGemm, GemvMatchesCpu) {
  LIL_SKIP_WITHOUT_GPU();
  for (const auto& [in, out] : {std::pair{1176, 129}, std::pair{64, 17}, std::pair{4096, 33}, std::pair{520, 46}}) {
    for (int32_t rows = 1; rows <= cuda::kGemvMaxRows; ++rows) {
      const auto x = testing::RandomBf16Values(rows * in, 3 + rows), w = testing::RandomBf16Values(out * in, 4);
      std::vector<float> ref(rows * out);
      cpu::Linear({x.data(), w.data(), nullptr, ref.data(), rows, in, out});
      DeviceArray<bf16> dx(testing::ToBf16(x)), dw(testing::ToBf16(w));
      auto y = DeviceArray<float>::Poisoned(ref.size());
      const cuda::GemmParams p{dx.get(), dw.get(), y.get(), rows, in, out};
      ASSERT_TRUE(cuda::GemvSupported(p));
      ASSERT_EQ(cuda::Gemv(p, nullptr), cudaSuccess);
      EXPECT_TRUE(AllClose(y.Download(), ref, 1e-3f, 1e-3f)) << "rows " << rows << " in " << in << " out " << out;
      for (int v = 0; v < cuda::kGemvVariants; ++v) {
        auto yv = DeviceArray<float>::Poisoned(ref.size());
        const cuda::GemmParams pv{dx.get(), dw.get(), yv.get(), rows, in, out};
        ASSERT_EQ(cuda::GemvVariant(pv, v, nullptr), cudaSuccess);
        EXPECT_TRUE(AllClose(yv.Download(), ref, 1e-3f, 1e-3f))
            << "variant " << v << " rows " << rows << " in " << in << " out " << out;
      }
    }
  }
  EXPECT_FALSE(cuda::GemvSupported({nullptr, nullptr, nullptr, 1, 12, 8}));  // in % 8 != 0
  EXPECT_FALSE(cuda::GemvSupported({nullptr, nullptr, nullptr, cuda::kGemvMaxRows + 1, 16, 8}));
}

// Every fusion of one product through `l` against the CPU: the plain product, norm_eps (each
// row scaled by rsqrt(mean(x^2) + eps), x as the bf16 the kernel reads), add_to_y (y += x w^T)
// with y_bf16 (the new y rounded to bf16), swiglu_out (rows 2j, 2j + 1 are gate j, up j, on the
// normed product) when `out` is even.
void CheckFusions(const Launcher& l, int32_t rows, int32_t in, int32_t out, uint64_t seed) {
  const float eps = 1e-5f;
  const std::string where = l.name + " rows " + std::to_string(rows) + " in " + std::to_string(in) + " out " +
                            std::to_string(out);
  const auto x = testing::RandomBf16Values(rows * in, seed), w = testing::RandomBf16Values(out * in, seed + 1);
  const auto y0 = testing::RandomBf16Values(rows * out, seed + 2, 4.0f);
  std::vector<float> prod(rows * out), normed(rows * out), added(rows * out);
  cpu::Linear({x.data(), w.data(), nullptr, prod.data(), rows, in, out});
  for (int32_t m = 0; m < rows; ++m) {
    double ss = 0.0;
    for (int32_t k = 0; k < in; ++k) ss += static_cast<double>(x[m * in + k]) * x[m * in + k];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / in) + eps);
    for (int32_t o = 0; o < out; ++o) {
      normed[m * out + o] = prod[m * out + o] * inv;
      added[m * out + o] = y0[m * out + o] + prod[m * out + o];
    }
  }
  DeviceArray<bf16> dx(testing::ToBf16(x)), dw(testing::ToBf16(w));
  auto yp = DeviceArray<float>::Poisoned(prod.size());
  const cuda::GemmParams pp{dx.get(), dw.get(), yp.get(), rows, in, out};
  ASSERT_TRUE(l.supported(pp)) << where;
  ASSERT_EQ(l.run(pp), cudaSuccess) << where;
  EXPECT_TRUE(AllClose(yp.Download(), prod, 1e-3f, 1e-3f)) << "product, " << where;
  auto yn = DeviceArray<float>::Poisoned(prod.size());
  cuda::GemmParams pn{dx.get(), dw.get(), yn.get(), rows, in, out};
  pn.norm_eps = eps;
  ASSERT_EQ(l.run(pn), cudaSuccess) << where;
  EXPECT_TRUE(AllClose(yn.Download(), normed, 1e-3f, 1e-3f)) << "norm_eps, " << where;
  {  // x_f32 (GEMV only): fp32 values within half a bf16 step of x give exactly the same products
    std::vector<float> xf(x.size());
    for (size_t i = 0; i < x.size(); ++i) xf[i] = x[i] * (1.0f + 1.0f / 1024);
    DeviceArray<float> dxf(xf);
    auto yx = DeviceArray<float>::Poisoned(prod.size());
    cuda::GemmParams px{nullptr, dw.get(), yx.get(), rows, in, out};
    px.norm_eps = eps;
    px.x_f32 = dxf.get();
    const bool gemv = l.name.rfind("GEMV", 0) == 0 && rows == 1;
    EXPECT_EQ(l.supported(px), gemv) << "x_f32, " << where;
    if (gemv) {
      ASSERT_EQ(l.run(px), cudaSuccess) << where;
      EXPECT_TRUE(AllClose(yx.Download(), yn.Download(), 0.0f, 0.0f)) << "x_f32, " << where;
    }
  }
  DeviceArray<float> ya(y0);
  auto yb = DeviceArray<bf16>::Poisoned(prod.size());
  cuda::GemmParams pa{dx.get(), dw.get(), ya.get(), rows, in, out};
  pa.add_to_y = true;
  pa.y_bf16 = yb.get();
  ASSERT_EQ(l.run(pa), cudaSuccess) << where;
  const auto got = ya.Download();
  EXPECT_TRUE(AllClose(got, added, 1e-3f, 1e-3f)) << "add_to_y, " << where;
  EXPECT_TRUE(AllClose(testing::ToF32(yb.Download()), testing::ToF32(testing::ToBf16(got)), 0.0f, 0.0f))
      << "y_bf16 is not the new y rounded, " << where;
  if (out % 2 != 0) return;
  auto ys = DeviceArray<bf16>::Poisoned(rows * out / 2);
  cuda::GemmParams ps{dx.get(), dw.get(), yn.get(), rows, in, out};
  ps.norm_eps = eps;
  ps.swiglu_out = ys.get();
  ASSERT_EQ(l.run(ps), cudaSuccess) << where;
  std::vector<float> ref(rows * out / 2);
  for (int32_t m = 0; m < rows; ++m) {
    for (int32_t j = 0; j < out / 2; ++j) {
      const float g = normed[m * out + 2 * j], u = normed[m * out + 2 * j + 1];
      ref[m * out / 2 + j] = g / (1.0f + std::exp(-g)) * u;
    }
  }
  EXPECT_TRUE(AllClose(testing::ToF32(ys.Download()), ref, 1e-2f, 1e-2f)) << "swiglu_out, " << where;
}

// The GEMV's fusions in every variant on the GEMV shapes, and the fallback GEMM refusing them.
TEST(GpuGemm, GemvFusionsMatchCpu) {
  LIL_SKIP_WITHOUT_GPU();
  SkinnyScratch scratch;
  const std::vector<Launcher> launchers = Launchers(scratch);
  for (const auto& [in, out] : {std::pair{1176, 129}, std::pair{64, 17}, std::pair{4096, 33}, std::pair{520, 46}}) {
    for (int32_t rows = 1; rows <= cuda::kGemvMaxRows; ++rows) {
      for (int v = 0; v < cuda::kGemvVariants; ++v) CheckFusions(launchers[v], rows, in, out, 11 + rows);
      DeviceArray<bf16> dx(testing::ToBf16(testing::RandomBf16Values(rows * in, 5)));
      DeviceArray<bf16> dw(testing::ToBf16(testing::RandomBf16Values(out * in, 6)));
      auto yf = DeviceArray<float>::Poisoned(rows * out);
      cuda::GemmParams pf{dx.get(), dw.get(), yf.get(), rows, in, out};
      pf.add_to_y = true;
      EXPECT_EQ(cuda::GemmFallback(pf, nullptr), cudaErrorInvalidValue);
    }
  }
}

// The fused MLP (kernels/cuda/mlp_fused.h) against the two decode GEMVs it replaces (gate_up
// with norm_eps and swiglu_out, then down with add_to_y), y starting at random values: the 8B
// shape (every round inside one row), hidden 5,120 (rounds across rows), and shapes with fewer
// 8-unit groups than SMs (a grid of one group a CTA) or uneven groups a CTA.
TEST(GpuGemm, FusedMlpMatchesTheGemvs) {
  LIL_SKIP_WITHOUT_GPU();
  const float eps = 1e-5f;
  for (const auto& [hidden, inter] : {std::pair{4096, 14336}, std::pair{5120, 1384}, std::pair{64, 200},
                                      std::pair{1176, 2056}, std::pair{8, 8}}) {
    const std::string where = "hidden " + std::to_string(hidden) + " inter " + std::to_string(inter);
    // Weights scaled so gate, up, h and the MLP's output are all of order one.
    const auto x = testing::RandomBf16Values(hidden, 31);
    const auto gu = testing::RandomBf16Values(int64_t{2} * inter * hidden, 32, 2.0f / std::sqrt(float(hidden)));
    const auto down = testing::RandomBf16Values(int64_t{hidden} * inter, 33, 2.0f / std::sqrt(float(inter)));
    const auto y0 = testing::RandomBf16Values(hidden, 34, 4.0f);
    DeviceArray<bf16> dx(testing::ToBf16(x)), dgu(testing::ToBf16(gu)), ddown(testing::ToBf16(down));
    auto act = DeviceArray<bf16>::Poisoned(inter);
    auto scratch = DeviceArray<float>::Poisoned(2 * inter);
    cuda::GemmParams pg{dx.get(), dgu.get(), scratch.get(), 1, hidden, 2 * inter};
    pg.norm_eps = eps;
    pg.swiglu_out = act.get();
    ASSERT_EQ(cuda::Gemv(pg, nullptr), cudaSuccess) << where;
    DeviceArray<float> yref(y0), yfused(y0);
    cuda::GemmParams pd{act.get(), ddown.get(), yref.get(), 1, inter, hidden};
    pd.add_to_y = true;
    ASSERT_EQ(cuda::Gemv(pd, nullptr), cudaSuccess) << where;
    const cuda::FusedMlpParams pf{dx.get(), dgu.get(), ddown.get(), yfused.get(), hidden, inter, eps};
    ASSERT_TRUE(cuda::FusedMlpSupported(pf)) << where;
    ASSERT_EQ(cuda::FusedMlp(pf, nullptr), cudaSuccess) << where;
    const auto ref = yref.Download(), got = yfused.Download();
    // h may round to the neighbouring bf16 where the two kernels sum gate / up in other orders.
    EXPECT_TRUE(AllClose(got, ref, 1e-2f, 1e-3f)) << where;
    double moved = 0.0;
    for (int32_t i = 0; i < hidden; ++i) moved += std::fabs(ref[i] - y0[i]);
    EXPECT_GT(moved, 0.05 * hidden) << "the MLP added almost nothing: the comparison would not see a mistake, " << where;
  }
  EXPECT_FALSE(cuda::FusedMlpSupported({nullptr, nullptr, nullptr, nullptr, 4096, 14330, 1e-5f}));  // inter % 8
  EXPECT_FALSE(cuda::FusedMlpSupported({nullptr, nullptr, nullptr, nullptr, 16384, 14336, 1e-5f}));  // hidden too large
}

// The skinny GEMM on 1..32 rows (one and two 16-row tiles, partial tiles), column counts that
// leave the last tile part empty, `in` from one k step up; grids where every CTA holds whole
// tiles and grids that cut tiles between CTAs (the pieces summed by the last to arrive, whose
// counter must be back at zero for the next call: each shape runs four products in a row).
TEST(GpuGemm, SkinnyMatchesCpu) {
  LIL_SKIP_WITHOUT_GPU();
  SkinnyScratch scratch;
  const Launcher skinny = Launchers(scratch).back();
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  bool cut_seen = false, whole_seen = false;
  for (const auto& [in, out] : {std::pair{128, 130}, std::pair{4096, 72}, std::pair{1152, 46}, std::pair{640, 2},
                                std::pair{2048, 4097}, std::pair{4096, 28672}}) {
    const int32_t ctas = cuda::SkinnyCtas(out, in, sms), tiles = (out + cuda::kSkinnyColumns - 1) / cuda::kSkinnyColumns;
    (ctas > 1 && int64_t{tiles} % ctas != 0 ? cut_seen : whole_seen) = true;
    for (int32_t rows : {1, 2, 5, 16, 17, 32}) {
      SCOPED_TRACE("CTAs " + std::to_string(ctas) + " tiles " + std::to_string(tiles));
      CheckFusions(skinny, rows, in, out, 31 + rows);
    }
  }
  EXPECT_TRUE(cut_seen && whole_seen) << "the shapes should cover tiles cut between CTAs and whole ones";
  EXPECT_FALSE(cuda::SkinnySupported({nullptr, nullptr, nullptr, 2, 96, 8}));  // in % 64 != 0
  EXPECT_FALSE(cuda::SkinnySupported({nullptr, nullptr, nullptr, cuda::kSkinnyMaxRows + 1, 128, 8}));
}

// GemmParams::rope_epilogue in every GEMV variant and the skinny GEMM: the qkv product over a
// weight whose q / k head rows were reordered into RoPE pairs (InterleaveRowHalves per head)
// writes the same q, K, V and Quest min / max as the plain GEMV + QkvRopeWrite on the
// original weight, and as the plain GEMV + QkvRopeWrite(pairs_adjacent) on the reordered one
// (prefill's path). Tokens on their own pages at slot 0 (reset) and later slots (widening
// metadata already there), with and without a bias, GQA 4 and 1, head_dim 64 and 128, page
// sizes 1 and 17; `in` a multiple of the skinny GEMM's stage but not of the GEMV's step.
TEST(GpuGemm, RopeEpilogueMatchesQkvRopeWrite) {
  LIL_SKIP_WITHOUT_GPU();
  const int32_t in = 384, num_pages = 11;
  SkinnyScratch scratch;
  for (int32_t d : {64, 128}) {
    for (const auto& [hq, hkv] : {std::pair{8, 2}, std::pair{4, 4}}) {
      for (int32_t ps : {1, 17}) {
        for (bool with_bias : {false, true}) {
          const int32_t width = (hq + 2 * hkv) * d, rows = 3;
          const auto x = testing::RandomBf16Values(rows * in, 41 + d), w = testing::RandomBf16Values(width * in, 42 + hq);
          const auto bias = testing::RandomBf16Values(width, 43, 0.1f);
          std::vector<float> inv_freq(d / 2);
          for (int32_t i = 0; i < d / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / d);
          const std::vector<int32_t> pos = {700, 16 * ps + 3, 9 * ps}, page = {2, 5, 9};
          std::vector<int32_t> slot(rows);
          for (int32_t t = 0; t < rows; ++t) slot[t] = pos[t] % ps;
          const size_t pool = static_cast<size_t>(num_pages) * hkv * ps * d, metas = static_cast<size_t>(num_pages) * hkv * 2 * d;
          const auto meta0 = testing::ToBf16(testing::RandomBf16Values(metas, 44));
          DeviceArray<bf16> dx(testing::ToBf16(x)), dw(testing::ToBf16(w)), dwp(testing::ToBf16(w));
          DeviceArray<float> dbias(bias), dbiasp(bias), dinv(inv_freq);
          DeviceArray<int32_t> dpos(pos), dpage(page), dslot(slot);
          ASSERT_EQ(cuda::InterleaveRowHalves(dwp.get(), d / 2, in, nullptr, hq + hkv), cudaSuccess);
          ASSERT_EQ(cuda::InterleaveRowHalves(dbiasp.get(), d / 2, 1, nullptr, hq + hkv), cudaSuccess);
          struct Out {
            DeviceArray<float> q;
            DeviceArray<bf16> k, v, meta;
          };
          auto fresh = [&] {
            const std::vector<bf16> zeros(pool, __float2bfloat16(0.0f));
            return Out{DeviceArray<float>::Poisoned(static_cast<size_t>(rows) * hq * d), DeviceArray<bf16>(zeros),
                       DeviceArray<bf16>(zeros), DeviceArray<bf16>(meta0)};
          };
          auto rope = [&](Out& o, bool pairs) {
            cuda::QkvRopeWriteParams rp;
            rp.bias = with_bias ? (pairs ? dbiasp.get() : dbias.get()) : nullptr;
            rp.pos = dpos.get();
            rp.inv_freq = dinv.get();
            rp.q_out = o.q.get();
            rp.kv = {o.k.get(), o.v.get(), o.meta.get(), num_pages, hkv, ps, d};
            rp.dst_page = dpage.get();
            rp.dst_slot = dslot.get();
            rp.tokens = rows;
            rp.num_heads = hq;
            rp.quest_update = true;
            rp.pairs_adjacent = pairs;
            return rp;
          };
          // The plain GEMV then QkvRopeWrite, on the original weight (pairs false: the
          // reference) or on the reordered one (pairs true: prefill's path).
          auto unfused = [&](Out& o, const bf16* weight, bool pairs) {
            auto y = DeviceArray<float>::Poisoned(static_cast<size_t>(rows) * width);
            ASSERT_EQ(cuda::Gemv({dx.get(), weight, y.get(), rows, in, width}, nullptr), cudaSuccess);
            cuda::QkvRopeWriteParams rp = rope(o, pairs);
            rp.qkv = y.get();
            ASSERT_EQ(cuda::QkvRopeWrite(rp, nullptr), cudaSuccess);
          };
          Out ref = fresh();
          unfused(ref, dw.get(), false);
          const auto rq = ref.q.Download();
          const auto rk = testing::ToF32(ref.k.Download()), rv = testing::ToF32(ref.v.Download());
          const auto rm = testing::ToF32(ref.meta.Download());
          auto check = [&](Out& o, const std::string& where) {
            EXPECT_TRUE(AllClose(o.q.Download(), rq, 1e-4f, 1e-5f)) << "q, " << where;
            EXPECT_TRUE(AllClose(testing::ToF32(o.k.Download()), rk, 1e-6f, 8e-3f)) << "k, " << where;
            // One bf16 step where another summation order rounds the product the other way.
            EXPECT_TRUE(AllClose(testing::ToF32(o.v.Download()), rv, 1e-6f, 8e-3f)) << "v, " << where;
            EXPECT_TRUE(AllClose(testing::ToF32(o.meta.Download()), rm, 1e-6f, 8e-3f)) << "Quest min/max, " << where;
          };
          const std::string shape = "d=" + std::to_string(d) + " hq=" + std::to_string(hq) + " hkv=" +
                                    std::to_string(hkv) + " ps=" + std::to_string(ps) + (with_bias ? " bias" : "");
          {
            Out o = fresh();
            unfused(o, dwp.get(), true);
            check(o, "pairs_adjacent QkvRopeWrite, " + shape);
          }
          for (const Launcher& l : Launchers(scratch)) {
            Out o = fresh();
            cuda::GemmParams gp{dx.get(), dwp.get(), nullptr, rows, in, width};
            gp.rope_epilogue = true;
            gp.rope = rope(o, true);
            ASSERT_TRUE(l.supported(gp)) << l.name;
            ASSERT_EQ(l.run(gp), cudaSuccess) << l.name;
            check(o, "epilogue, " + l.name + ", " + shape);
          }
        }
      }
    }
  }
  cuda::GemmParams bad{nullptr, nullptr, nullptr, 1, 128, 24};
  bad.rope_epilogue = true;
  EXPECT_FALSE(cuda::GemvSupported(bad));  // rope.pairs_adjacent not set
  EXPECT_FALSE(cuda::SkinnySupported(bad));
}

}  // namespace
}  // namespace lil
