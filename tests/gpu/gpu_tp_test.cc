// File: tests/gpu/gpu_tp_test.cc
// Tensor parallelism on GPUs (engine/cuda/tp_cuda_backend): N ranks over NCCL against the
// one-GPU CudaBackend on tiny random models (Llama GQA, Qwen2 qkv bias, Qwen3 q/k norm) with
// uneven intermediate (3 head_dim + 5) and vocabulary (97) splits: logits of a batch mixing
// prefill, chunked prefill and decode, a Quest decode and a freed page, h2o page mass, then
// decode steps replayed from CUDA graphs (with the NCCL calls captured) giving the same greedy
// tokens; a group whose very first step is graph-captured (and fused: one token; greedy
// through the ranks' partial bests, logprobs too); sampled
// steps after greedy ones (every rank captures at the same steps); the
// all-reduce into the residual (one-shot and NCCL, one call and calls back to back); the
// one-token GEMV's own all-reduce against it; the step watchdog ending a step whose ranks fell
// out of step. Skips without N GPUs. Also: N beyond the GPUs present is INVALID_ARGUMENT.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/nccl_comm.h"
#include "engine/cuda/tp_cuda_backend.h"
#include "kernels/cuda/ops.h"
#include "tests/gpu/backend_test_util.h"
#include "tests/testing/tiny_model.h"

namespace lil {
namespace {

int32_t GpuCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

struct TinyModel {
  ModelConfig config;
  HostWeights weights;
};

TinyModel MakeModel(ModelFamily family, int32_t head_dim) {
  const testing::TinyModelOptions o = testing::GpuTinyOptions(family, head_dim, 4);
  TinyModel s;
  s.config = testing::TinyConfig(o);
  s.weights = testing::ConditionedBf16Weights(s.config, 42);
  return s;
}

// A tiny Llama whose shapes the fused one-token path takes at TP=2 (each rank's intermediate a
// multiple of 8), and a 16-page KV cache of 16-token pages.
TinyModel MakeFusedModel(uint32_t seed) {
  testing::TinyModelOptions opt = testing::GpuTinyOptions(ModelFamily::kLlama, 64, 4);
  opt.inter = 4 * 64;
  TinyModel m;
  m.config = testing::TinyConfig(opt);
  m.weights = testing::ConditionedBf16Weights(m.config, seed);
  return m;
}
KvCacheOptions SixteenPages() {
  KvCacheOptions kv;
  kv.page_size = 16;
  kv.num_pages = 16;
  return kv;
}

// The model on GPU 0 alone and split over GPUs 0..world-1.
struct Backends {
  std::unique_ptr<cuda::CudaBackend> one;
  std::unique_ptr<cuda::TensorParallelCudaBackend> tp;
};
void MakeBackends(const TinyModel& m, const KvCacheOptions& kv, int32_t world, Backends* b) {
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  auto dw = cuda::UploadWeights(m.config, m.weights);
  ASSERT_TRUE(dw.ok()) << dw.status();
  auto one = cuda::CudaBackend::Create(m.config, std::move(*dw), kv, {});
  ASSERT_TRUE(one.ok()) << one.status();
  auto tp = cuda::TensorParallelCudaBackend::Create(
      m.config, [&](const TpShard& shard) { return cuda::UploadWeights(m.config, m.weights, &shard); }, kv, world);
  ASSERT_TRUE(tp.ok()) << tp.status();
  b->one = std::move(*one);
  b->tp = std::move(*tp);
}

using testing::RelL2;
ScheduledSeq Seq(uint64_t id, int32_t start, int32_t n, const std::vector<int32_t>& pages, int vocab) {
  return testing::RandomSeq(id, start, n, pages, vocab);
}

struct TpCase {
  ModelFamily family;
  int32_t head_dim, page_size, world;
};

class CudaTensorParallel : public ::testing::TestWithParam<TpCase> {};

TEST_P(CudaTensorParallel, MatchesOneGpu) {
  const TpCase tc = GetParam();
  if (GpuCount() < tc.world) GTEST_SKIP() << "needs " << tc.world << " GPUs, have " << GpuCount();
  const TinyModel m = MakeModel(tc.family, tc.head_dim);
  const ModelConfig& c = m.config;
  KvCacheOptions kv;
  kv.page_size = tc.page_size;
  kv.num_pages = 96;
  Backends b;
  ASSERT_NO_FATAL_FAILURE(MakeBackends(m, kv, tc.world, &b));
  const auto& one = b.one;
  const auto& tp = b.tp;
  EXPECT_EQ(tp->name(), "cuda-tp" + std::to_string(tc.world));
  EXPECT_EQ(tp->num_pages(), 96);
  EXPECT_EQ(tp->config().vocab_size, c.vocab_size);
  EXPECT_EQ(tp->rank_backend(1).local().num_kv_heads, c.num_kv_heads / tc.world);

  const int32_t ps = tc.page_size, vocab = c.vocab_size;
  std::vector<int32_t> perm(96);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(5));
  auto pages = [&](int32_t first, int32_t n) { return std::vector<int32_t>(perm.begin() + first, perm.begin() + first + n); };
  const int32_t a_len = 3 * ps + 2, b_len = 2 * ps + 1;
  const auto a_pages = pages(0, 40 / ps + 8), b_pages = pages(44, 40 / ps + 8);
  auto run = [&](const StepPlan& plan, const std::string& what) {
    SCOPED_TRACE(what);
    auto t = tp->Execute(plan);
    auto o = one->Execute(plan);
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_TRUE(o.ok()) << o.status();
    ASSERT_EQ(t->seqs.size(), o->seqs.size());
    for (size_t s = 0; s < o->seqs.size(); ++s) {
      SCOPED_TRACE("seq " + std::to_string(s));
      ASSERT_EQ(t->seqs[s].logits.size(), o->seqs[s].logits.size());
      // Both bf16; only the order of the fp32 sums (o_proj, down) and bf16 roundings after them
      // differ.
      EXPECT_LT(RelL2(t->seqs[s].logits, o->seqs[s].logits), 1e-2);
      EXPECT_EQ(t->seqs[s].token, o->seqs[s].token);
      EXPECT_NEAR(t->seqs[s].logprob, o->seqs[s].logprob, 0.05);
      EXPECT_EQ(t->seqs[s].pages_attended, o->seqs[s].pages_attended);
      ASSERT_EQ(t->seqs[s].page_mass.size(), o->seqs[s].page_mass.size());
      for (size_t i = 0; i < o->seqs[s].page_mass.size(); ++i) {
        EXPECT_NEAR(t->seqs[s].page_mass[i], o->seqs[s].page_mass[i], 0.01) << "page " << i;
      }
    }
  };
  auto fit = [&](StepPlan& p) {
    for (auto& s : p.seqs) s.page_table.resize((s.start_pos + s.tokens.size() + ps - 1) / ps);
  };
  StepPlan p1;
  p1.seqs = {Seq(1, 0, a_len, a_pages, vocab), Seq(2, 0, b_len, b_pages, vocab)};
  fit(p1);
  run(p1, "prefill");
  StepPlan p2;
  p2.seqs = {Seq(1, a_len, 5, a_pages, vocab), Seq(2, b_len, 1, b_pages, vocab)};
  p2.seqs[1].collect_page_mass = true;
  fit(p2);
  run(p2, "chunk+decode, h2o mass");
  StepPlan p3;
  p3.seqs = {Seq(1, a_len + 5, 1, a_pages, vocab), Seq(2, b_len + 1, 1, b_pages, vocab)};
  fit(p3);
  p3.seqs[1].page_table[1] = kNoPage;
  p3.seqs[1].collect_page_mass = true;
  p3.seqs[0].sparse.mode = SparseMode::kQuest;
  p3.seqs[0].sparse.budget_tokens = 2 * ps;
  p3.seqs[0].sparse.dense_layers = 1;
  run(p3, "quest+hole");
  // Greedy decode-only steps: CUDA graphs on every rank (the all-reduces and the all-gather
  // captured), the same tokens as one GPU.
  std::vector<ScheduledSeq> seqs = {Seq(1, a_len + 6, 1, a_pages, vocab), Seq(2, b_len + 2, 1, b_pages, vocab)};
  for (auto& s : seqs) s.return_logits = false;
  for (int step = 0; step < 10; ++step) {
    StepPlan plan;
    plan.seqs = seqs;
    fit(plan);
    auto t = tp->Execute(plan);
    auto o = one->Execute(plan);
    ASSERT_TRUE(t.ok() && o.ok()) << t.status() << o.status();
    for (size_t i = 0; i < seqs.size(); ++i) {
      SCOPED_TRACE("graph step " + std::to_string(step) + " seq " + std::to_string(i));
      EXPECT_EQ(t->seqs[i].token, o->seqs[i].token);
      seqs[i].start_pos += 1;
      seqs[i].tokens = {o->seqs[i].token};
    }
  }
  if (std::getenv("LILSERVE_CUDA_GRAPHS") == nullptr) {
    for (int32_t r = 0; r < tc.world; ++r) EXPECT_EQ(tp->rank_backend(r).graphs_captured(), 1) << "rank " << r;
  }
  // A malformed plan is refused on rank 0 before any rank sees it; the group goes on.
  StepPlan bad;
  bad.seqs = {Seq(9, 0, 4, {9999}, vocab)};
  EXPECT_EQ(tp->Execute(bad).status().code(), absl::StatusCode::kInvalidArgument);
  StepPlan again = p1;
  for (auto& s : again.seqs) s.id = RequestId{s.id.value + 100};
  run(again, "after a refused plan");
}

INSTANTIATE_TEST_SUITE_P(Models, CudaTensorParallel,
                         ::testing::Values(TpCase{ModelFamily::kLlama, 64, 16, 2},
                                           TpCase{ModelFamily::kQwen2, 64, 3, 2},
                                           TpCase{ModelFamily::kQwen3, 128, 17, 2},
                                           TpCase{ModelFamily::kLlama, 64, 16, 4}));

// A fresh group whose first step is graph-captured (a one-token prompt: the first collective
// any rank runs is inside a capture). Session 10 saw exactly this fail on 2 x H200 (the
// captured all-gather read a null NCCL buffer) in the daemon's first request. One sequence,
// so every step is also the fused one-token path (the all-reduce adding into the residual);
// the last steps return logits (eager) and compare them too.
TEST(CudaTensorParallelGraphs, FirstStepCapturedOneToken) {
  if (GpuCount() < 2) GTEST_SKIP() << "needs 2 GPUs, have " << GpuCount();
  const TinyModel m = MakeFusedModel(43);
  const ModelConfig& c = m.config;
  const KvCacheOptions kv = SixteenPages();
  Backends b;
  ASSERT_NO_FATAL_FAILURE(MakeBackends(m, kv, 2, &b));
  const auto& one = b.one;
  const auto& tp = b.tp;
  ScheduledSeq seq = Seq(1, 0, 1, {3, 4}, c.vocab_size);
  for (int step = 0; step < 10; ++step) {
    StepPlan plan;
    plan.seqs = {seq};
    plan.seqs[0].return_logits = step >= 8;
    plan.seqs[0].page_table.resize(seq.start_pos / kv.page_size + 1);
    auto t = tp->Execute(plan);
    auto o = one->Execute(plan);
    ASSERT_TRUE(t.ok()) << "step " << step << ": " << t.status();
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(t->seqs[0].token, o->seqs[0].token) << "step " << step;
    // Steps 0-7: the partial-greedy path (TpGreedyStep; logits stay on their ranks) must give
    // the token's logprob too.
    EXPECT_NEAR(t->seqs[0].logprob, o->seqs[0].logprob, 2e-2) << "step " << step;
    if (step >= 8) {
      EXPECT_LT(RelL2(t->seqs[0].logits, o->seqs[0].logits), 1e-2) << "step " << step;
    }
    seq.start_pos += 1;
    seq.tokens = {o->seqs[0].token};
  }
  if (std::getenv("LILSERVE_CUDA_GRAPHS") == nullptr) {
    for (int32_t r = 0; r < 2; ++r) EXPECT_EQ(tp->rank_backend(r).graphs_captured(), 1) << "rank " << r;
  }
  // Unless $LILSERVE_FUSED_NORM=0 (or the GEMV is off): both sides took the fused path.
  if (std::getenv("LILSERVE_FUSED_NORM") == nullptr && std::getenv("LILSERVE_GEMV") == nullptr) {
    EXPECT_TRUE(tp->rank_backend(1).fused_norm());
    EXPECT_TRUE(one->fused_norm());
  }
}

// Greedy decode steps, then sampled ones at the same batch size (SampleFiltered on rank 0),
// then greedy again: every rank captures a graph for each kind, at the same steps. Rank 0 used
// to key its graphs by whether it draws on the GPU while the other ranks (which never draw)
// did not, so rank 0 alone captured at the first sampled step; with autotuning a capture runs
// the step eagerly first, so rank 0 ran one forward pass more than rank 1 and their
// all-reduces paired the wrong passes (the TP daemon hung on its first sampled request).
TEST(CudaTensorParallelGraphs, SampledStepsAfterGreedyOnes) {
  if (GpuCount() < 2) GTEST_SKIP() << "needs 2 GPUs, have " << GpuCount();
  const TinyModel m = MakeFusedModel(44);
  const KvCacheOptions kv = SixteenPages();
  Backends b;
  ASSERT_NO_FATAL_FAILURE(MakeBackends(m, kv, 2, &b));
  ScheduledSeq seq = Seq(1, 0, 1, {3, 4}, m.config.vocab_size);
  for (int step = 0; step < 12; ++step) {
    const bool sampled = step >= 4 && step < 8;
    StepPlan plan;
    plan.seqs = {seq};
    plan.seqs[0].page_table.resize(seq.start_pos / kv.page_size + 1);
    plan.seqs[0].return_logits = false;  // graph steps only
    plan.seqs[0].sampling.temperature = sampled ? 1.0f : 0.0f;
    plan.seqs[0].sampling.top_p = sampled ? 0.9f : 1.0f;
    auto t = b.tp->Execute(plan);
    auto o = b.one->Execute(plan);
    ASSERT_TRUE(t.ok()) << "step " << step << (sampled ? " (sampled)" : " (greedy)") << ": " << t.status();
    ASSERT_TRUE(o.ok()) << o.status();
    if (!sampled) {
      EXPECT_EQ(t->seqs[0].token, o->seqs[0].token) << "step " << step;
    }
    EXPECT_GE(t->seqs[0].token, 0);
    EXPECT_LT(t->seqs[0].token, m.config.vocab_size);
    seq.start_pos += 1;
    seq.tokens = {o->seqs[0].token};
  }
  if (std::getenv("LILSERVE_CUDA_GRAPHS") == nullptr && std::getenv("LILSERVE_GPU_SAMPLING") == nullptr) {
    for (int32_t r = 0; r < 2; ++r) EXPECT_EQ(b.tp->rank_backend(r).graphs_captured(), 2) << "rank " << r;
  }
}

// Two ranks on GPUs 0 and 1, each with its own thread, stream and NcclCommunicator.
struct RankGroup {
  static constexpr int32_t kWorld = 2;
  std::vector<std::unique_ptr<cuda::NcclCommunicator>> comms{kWorld};
  std::vector<cudaStream_t> streams{kWorld};

  // Runs f(rank) on every rank's own thread with its device current; the first error.
  absl::Status OnRanks(const std::function<absl::Status(int32_t)>& f) {
    std::vector<absl::Status> status(kWorld);
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < kWorld; ++r) {
      threads.emplace_back([&, r] {
        const cudaError_t e = cudaSetDevice(r);
        status[r] = e == cudaSuccess ? f(r) : cuda::CudaStatus(e, "cudaSetDevice");
      });
    }
    for (std::thread& t : threads) t.join();
    for (int32_t r = 0; r < kWorld; ++r) {
      if (!status[r].ok()) return absl::Status(status[r].code(), absl::StrCat("rank ", r, ": ", status[r].message()));
    }
    return absl::OkStatus();
  }
  // The communicators, with the one-shot kernels when one_shot (false in *on: no peer access),
  // and GemvAllReduce's slots with gemv_allreduce.
  absl::Status Create(bool one_shot, bool* on, bool gemv_allreduce = false) {
    LIL_ASSIGN_OR_RETURN(const cuda::NcclUniqueId id, cuda::NcclNewUniqueId());
    LIL_RETURN_IF_ERROR(OnRanks([&](int32_t r) -> absl::Status {
      LIL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking));
      LIL_ASSIGN_OR_RETURN(comms[r], cuda::NcclCommunicator::Create(id, r, kWorld, streams[r]));
      return absl::OkStatus();
    }));
    *on = true;
    if (one_shot) {
      LIL_ASSIGN_OR_RETURN(*on, cuda::NcclCommunicator::EnableOneShot({comms[0].get(), comms[1].get()}, {0, 1}, 1 << 20,
                                                                      gemv_allreduce));
    }
    return absl::OkStatus();
  }
  ~RankGroup() {
    (void)OnRanks([&](int32_t r) -> absl::Status {
      comms[r].reset();
      return streams[r] == nullptr ? absl::OkStatus() : cuda::CudaStatus(cudaStreamDestroy(streams[r]), "cudaStreamDestroy");
    });
  }
};

// NcclCommunicator::AllReduceIntoResidual on 2 GPUs, through both one-shot kernels (the
// epoch-in-every-word one up to kOneShotLlBytes, the slot + flag one above) and through NCCL:
// residual += d0 + d1 exactly (two ranks: every order gives the same fp32 sum), its bf16 copy
// rounded from it; n odd so the kernels' tails run too. With calls > 1 the calls run back to
// back (data keeps the partial, so each adds the sum again): a call then starts while the one
// before still runs (PDL), and the epoch-in-every-word kernel's epoch read before its wait is
// stale, so its re-read path runs.
struct ResidualCase {
  bool one_shot;
  int64_t n;
  int calls = 1;
};
class ResidualAllReduce : public ::testing::TestWithParam<ResidualCase> {};

TEST_P(ResidualAllReduce, AddsTheSumIntoTheResidual) {
  if (GpuCount() < 2) GTEST_SKIP() << "needs 2 GPUs, have " << GpuCount();
  const int64_t n = GetParam().n;
  RankGroup g;
  bool on = false;
  ASSERT_TRUE(g.Create(GetParam().one_shot, &on).ok());
  if (!on) GTEST_SKIP() << "no peer access between GPUs 0 and 1";
  constexpr int32_t kWorld = RankGroup::kWorld;
  std::vector<float> residual(n), want(n);
  std::vector<std::vector<float>> part(kWorld, std::vector<float>(n));
  for (int64_t i = 0; i < n; ++i) {
    residual[i] = 5.0f * std::cos(0.11f * i);
    for (int32_t r = 0; r < kWorld; ++r) part[r][i] = 3.0f * std::sin(0.37f * i + r);
    want[i] = residual[i];
    for (int c = 0; c < GetParam().calls; ++c) want[i] += part[0][i] + part[1][i];
  }
  std::vector<std::vector<float>> got(kWorld, std::vector<float>(n));
  std::vector<std::vector<cuda::bf16>> got_bf16(kWorld, std::vector<cuda::bf16>(n));
  const absl::Status s = g.OnRanks([&](int32_t r) -> absl::Status {
    cuda::DeviceBuffer data, res, res_bf16;
    LIL_RETURN_IF_ERROR(data.Reserve(sizeof(float) * n));
    LIL_RETURN_IF_ERROR(res.Reserve(sizeof(float) * n));
    LIL_RETURN_IF_ERROR(res_bf16.Reserve(sizeof(cuda::bf16) * n));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(data.get(), part[r].data(), sizeof(float) * n, cudaMemcpyHostToDevice));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(res.get(), residual.data(), sizeof(float) * n, cudaMemcpyHostToDevice));
    for (int c = 0; c < GetParam().calls; ++c) {
      LIL_RETURN_IF_ERROR(
          g.comms[r]->AllReduceIntoResidual(data.get<float>(), n, res.get<float>(), res_bf16.get<cuda::bf16>()));
    }
    LIL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(g.streams[r]));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(got[r].data(), res.get(), sizeof(float) * n, cudaMemcpyDeviceToHost));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(got_bf16[r].data(), res_bf16.get(), sizeof(cuda::bf16) * n, cudaMemcpyDeviceToHost));
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  for (int32_t r = 0; r < kWorld; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(got[r][i], want[i]) << "rank " << r << " element " << i;
      ASSERT_EQ(__bfloat162float(got_bf16[r][i]), __bfloat162float(__float2bfloat16_rn(want[i])))
          << "rank " << r << " element " << i;
    }
  }
}

static_assert(4099 * 4 < cuda::kOneShotLlBytes && 70001 * 4 > cuda::kOneShotLlBytes && 70001 * 4 < (1 << 20));
INSTANTIATE_TEST_SUITE_P(Paths, ResidualAllReduce,
                         ::testing::Values(ResidualCase{true, 4099}, ResidualCase{true, 4099, 5},
                                           ResidualCase{true, 70001}, ResidualCase{false, 4099}),
                         [](const ::testing::TestParamInfo<ResidualCase>& i) {
                           return std::string(i.param.one_shot ? "OneShot" : "Nccl") + std::to_string(i.param.n) +
                                  (i.param.calls > 1 ? "x" + std::to_string(i.param.calls) : "");
                         });

// GemmParams::reduce (the one-token o / down GEMV all-reducing its own partial) against the
// GEMV followed by AllReduceIntoResidual, on 2 GPUs: the same residual bits, its bf16 copy too.
// Shapes that take each GEMV split (in 7168: four warps a row pair; 2048: two; 1024: one, with
// a last CTA partly past `out`), one after another on one stream with the kernel path between
// them, so epochs and parities run across many calls.
TEST(GemvAllReduce, MatchesTheAllReduceKernel) {
  if (GpuCount() < 2) GTEST_SKIP() << "needs 2 GPUs, have " << GpuCount();
  RankGroup g;
  bool on = false;
  ASSERT_TRUE(g.Create(true, &on, /*gemv_allreduce=*/true).ok());
  if (!on) GTEST_SKIP() << "no peer access between GPUs 0 and 1";
  struct Shape {
    int32_t in, out;
  };
  const std::vector<Shape> shapes = {{7168, 4096}, {2048, 4096}, {1024, 4098}, {7168, 4096}, {2048, 4096}};
  constexpr int kRounds = 3;
  std::vector<std::vector<float>> got(RankGroup::kWorld), want(RankGroup::kWorld);
  std::vector<std::vector<cuda::bf16>> got_bf16(RankGroup::kWorld), want_bf16(RankGroup::kWorld);
  const absl::Status s = g.OnRanks([&](int32_t r) -> absl::Status {
    std::mt19937 rng(17 + r);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const int32_t max_in = 7168, max_out = 4098;
    std::vector<cuda::bf16> w(static_cast<size_t>(max_in) * max_out), x(max_in);
    for (auto& v : w) v = __float2bfloat16(0.05f * u(rng));
    for (auto& v : x) v = __float2bfloat16(u(rng));
    std::vector<float> residual(max_out);
    for (int32_t i = 0; i < max_out; ++i) residual[i] = 2.0f * std::cos(0.3f * i);  // the same on both ranks
    cuda::DeviceBuffer dw, dx, delta, res_a, res_b, bf_a, bf_b;
    LIL_RETURN_IF_ERROR(dw.Reserve(sizeof(cuda::bf16) * w.size()));
    LIL_RETURN_IF_ERROR(dx.Reserve(sizeof(cuda::bf16) * x.size()));
    LIL_RETURN_IF_ERROR(delta.Reserve(sizeof(float) * max_out));
    for (cuda::DeviceBuffer* b : {&res_a, &res_b}) LIL_RETURN_IF_ERROR(b->Reserve(sizeof(float) * max_out));
    for (cuda::DeviceBuffer* b : {&bf_a, &bf_b}) LIL_RETURN_IF_ERROR(b->Reserve(sizeof(cuda::bf16) * max_out));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(dw.get(), w.data(), sizeof(cuda::bf16) * w.size(), cudaMemcpyHostToDevice));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(dx.get(), x.data(), sizeof(cuda::bf16) * x.size(), cudaMemcpyHostToDevice));
    for (cuda::DeviceBuffer* b : {&res_a, &res_b}) {
      LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(b->get(), residual.data(), sizeof(float) * max_out, cudaMemcpyHostToDevice));
    }
    cuda::NcclCommunicator& c = *g.comms[r];
    for (int round = 0; round < kRounds; ++round) {
      for (const Shape& sh : shapes) {
        cuda::GemmParams p{dx.get<cuda::bf16>(), dw.get<cuda::bf16>(), delta.get<float>(), 1, sh.in, sh.out};
        LIL_CUDA_RETURN_IF_ERROR(cuda::Gemv(p, g.streams[r]));
        LIL_RETURN_IF_ERROR(c.AllReduceIntoResidual(delta.get<float>(), sh.out, res_a.get<float>(), bf_a.get<cuda::bf16>()));
        auto reduce = c.GemvAllReduceFor(res_b.get<float>(), bf_b.get<cuda::bf16>());
        if (!reduce.has_value()) return absl::InternalError("no GemvAllReduce slots");
        p.reduce = *reduce;
        if (!cuda::GemvSupported(p)) return absl::InternalError("GemvSupported refused the reduce");
        LIL_CUDA_RETURN_IF_ERROR(cuda::Gemv(p, g.streams[r]));
      }
    }
    LIL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(g.streams[r]));
    LIL_RETURN_IF_ERROR(c.AsyncError());
    for (auto* v : {&got[r], &want[r]}) v->resize(max_out);
    for (auto* v : {&got_bf16[r], &want_bf16[r]}) v->resize(max_out);
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(want[r].data(), res_a.get(), sizeof(float) * max_out, cudaMemcpyDeviceToHost));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpy(got[r].data(), res_b.get(), sizeof(float) * max_out, cudaMemcpyDeviceToHost));
    LIL_CUDA_RETURN_IF_ERROR(
        cudaMemcpy(want_bf16[r].data(), bf_a.get(), sizeof(cuda::bf16) * max_out, cudaMemcpyDeviceToHost));
    LIL_CUDA_RETURN_IF_ERROR(
        cudaMemcpy(got_bf16[r].data(), bf_b.get(), sizeof(cuda::bf16) * max_out, cudaMemcpyDeviceToHost));
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  for (int32_t r = 0; r < RankGroup::kWorld; ++r) {
    for (int32_t i = 0; i < 4098; ++i) {
      ASSERT_EQ(got[r][i], want[r][i]) << "rank " << r << " element " << i;
      ASSERT_EQ(__bfloat162float(got_bf16[r][i]), __bfloat162float(want_bf16[r][i])) << "rank " << r << " element " << i;
      ASSERT_EQ(got[r][i], got[0][i]) << "ranks differ at " << i;
    }
  }
  // The residual moved: 15 calls of sums that are not all zero.
  EXPECT_NE(got[0][0], 2.0f);
}

// Ranks out of step: rank 1 drops a plan, so rank 0's step waits in its collectives for a
// pass that never comes (the one-shot / GEMV all-reduces, then NCCL's all-gather, which has no
// timeout of its own). The step watchdog ($LILSERVE_TP_STEP_TIMEOUT_S, 2 s here) aborts the
// group: the step returns an error well before the one-shot waits' own 30-s timeout, every later
// step fails naming the watchdog, and Usable() says why. A bad timeout value is refused.
TEST(CudaTensorParallelErrors, StepWatchdogEndsAStepWhoseRanksFellOutOfStep) {
  if (GpuCount() < 2) GTEST_SKIP() << "needs 2 GPUs, have " << GpuCount();
  const TinyModel m = MakeModel(ModelFamily::kLlama, 64);
  const KvCacheOptions kv = SixteenPages();
  auto upload = [&](const TpShard& shard) { return cuda::UploadWeights(m.config, m.weights, &shard); };
  setenv("LILSERVE_TP_STEP_TIMEOUT_S", "soon", 1);
  auto refused = cuda::TensorParallelCudaBackend::Create(m.config, upload, kv, 2);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("LILSERVE_TP_STEP_TIMEOUT_S is 'soon'"), std::string::npos)
      << refused.status();
  setenv("LILSERVE_TP_STEP_TIMEOUT_S", "2", 1);
  auto tp = cuda::TensorParallelCudaBackend::Create(m.config, upload, kv, 2);
  unsetenv("LILSERVE_TP_STEP_TIMEOUT_S");
  ASSERT_TRUE(tp.ok()) << tp.status();
  ScheduledSeq seq = Seq(1, 0, 1, {3, 4}, m.config.vocab_size);
  StepPlan plan;
  plan.seqs = {seq};
  plan.seqs[0].page_table.resize(1);
  ASSERT_TRUE((*tp)->Execute(plan).ok());
  EXPECT_TRUE((*tp)->Usable().ok());
  (*tp)->DropNextPlanOnRankForTest(1);
  plan.seqs[0].start_pos = 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto stuck = (*tp)->Execute(plan);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(stuck.ok());
  EXPECT_GE(seconds, 1.5);
  EXPECT_LT(seconds, 20.0) << "the watchdog, not the one-shot waits' 30-s timeout, should end it";
  const absl::Status usable = (*tp)->Usable();
  EXPECT_FALSE(usable.ok());
  EXPECT_NE(usable.message().find("step watchdog"), std::string::npos) << usable;
  auto after = (*tp)->Execute(plan);
  EXPECT_EQ(after.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(after.status().message().find("LILSERVE_TP_STEP_TIMEOUT_S"), std::string::npos) << after.status();
}

TEST(CudaTensorParallelErrors, MoreRanksThanGpus) {
  const int32_t n = GpuCount();
  if (n == 0) GTEST_SKIP() << "no CUDA device";
  const int32_t world = n + 1;
  ModelConfig c = MakeModel(ModelFamily::kLlama, 16).config;
  c.num_heads = c.num_kv_heads = world;  // divisible, so the GPU count is what fails
  KvCacheOptions kv;
  kv.page_size = 16;
  kv.num_pages = 8;
  auto tp = cuda::TensorParallelCudaBackend::Create(
      c, [&](const TpShard&) -> absl::StatusOr<cuda::DeviceWeights> { return absl::InternalError("not reached"); },
      kv, world);
  ASSERT_FALSE(tp.ok());
  EXPECT_EQ(tp.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string want = "tensor_parallel " + std::to_string(world) + " needs " + std::to_string(world) +
                           " GPUs, but " + std::to_string(n);
  EXPECT_NE(tp.status().message().find(want), std::string::npos) << tp.status();
}

}  // namespace
}  // namespace lil
