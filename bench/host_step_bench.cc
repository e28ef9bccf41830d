// File: bench/host_step_bench.cc
// The host side of a CUDA decode step, which runs before the step's graph is enqueued while the
// GPU idles (docs/PARALLEL.md's TP trace measures it on the GPU machine): CheckPlan and
// BuildStepInputs (engine/cuda/cuda_step.h) on decode plans of the Llama-3-8B shape, batch
// 1-128 at 1k context, 16-token pages. BuildStepInputs into one StepInputs reused step after
// step (what the backend does since session 14) beside a fresh StepInputs each step (before),
// in the same run; and with rows_per_seq (the backend's default since session 16; one page list
// per sequence instead of one per (sequence, KV head)). No GPU needed. Usage: host_step_bench [--context N] [--reps N]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/cuda/cuda_step.h"
#include "engine/format/model_family.h"
#include "engine/model_config.h"
#include "engine/plan_check.h"
#include "scheduler/step_plan.h"

namespace {

template <typename F>
double MedianUs(int reps, F&& f) {
  std::vector<double> t;
  for (int s = 0; s < 7; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int32_t context = 1024;
  int reps = 50;
  CLI::App app("host time of a CUDA decode step's input building, reused against fresh inputs");
  app.add_option("--context", context, "tokens already in each sequence");
  app.add_option("--reps", reps, "calls per timed sample (7 samples, median)");
  CLI11_PARSE(app, argc, argv);
  // Llama-3-8B's shape from the family table make-random-model uses (what the step building reads).
  const absl::StatusOr<lil::ModelFamilyConfig> family = lil::ModelFamilyLike("llama3-8b");
  if (!family.ok()) return 1;
  lil::ModelConfig c;
  c.vocab_size = static_cast<int32_t>(family->vocab_size);
  c.hidden_size = static_cast<int32_t>(family->hidden_size);
  c.intermediate_size = static_cast<int32_t>(family->intermediate_size);
  c.num_layers = static_cast<int32_t>(family->num_layers);
  c.num_heads = static_cast<int32_t>(family->num_heads);
  c.num_kv_heads = static_cast<int32_t>(family->num_kv_heads);
  c.head_dim = static_cast<int32_t>(family->head_dim);
  c.max_position_embeddings = static_cast<int32_t>(family->max_position);
  constexpr int32_t kPage = 16;
  const int32_t pages = (context + 1 + kPage - 1) / kPage;
  std::printf("Host side of a decode step, 8B shape, context %d, %d-token pages (median us of 7 x %d)\n\n", context,
              kPage, reps);
  std::printf("| batch | page entries | CheckPlan | BuildStepInputs, reused | BuildStepInputs, fresh | fresh / reused "
              "| rows per sequence: entries | BuildStepInputs, reused | reused / rows per sequence |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  for (int32_t batch : {1, 8, 32, 64, 128}) {
    lil::StepPlan plan;
    for (int32_t s = 0; s < batch; ++s) {
      lil::ScheduledSeq q;
      q.id = lil::RequestId{static_cast<uint64_t>(s + 1)};
      q.tokens = {42};
      q.start_pos = context;
      q.sample = true;
      for (int32_t p = 0; p < pages; ++p) q.page_table.push_back(lil::PageId{s * pages + p});
      plan.seqs.push_back(q);
    }
    const int32_t num_pages = batch * pages;
    if (const absl::Status s = lil::CheckPlan(plan, c, num_pages, kPage); !s.ok()) {
      std::fprintf(stderr, "host_step_bench: the plan is refused: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    size_t sink = 0;
    const double check = MedianUs(reps, [&] { sink += lil::CheckPlan(plan, c, num_pages, kPage).ok(); });
    lil::cuda::StepInputs reused;
    const double warm = MedianUs(reps, [&] {
      lil::cuda::BuildStepInputs(plan, c, kPage, &reused);
      sink += reused.layouts.size();
    });
    const double fresh = MedianUs(reps, [&] {
      lil::cuda::StepInputs in;
      lil::cuda::BuildStepInputs(plan, c, kPage, &in);
      sink += in.layouts.size();
    });
    lil::cuda::StepInputs per_seq;  // the default layouts: a page list per sequence
    const double seq_rows = MedianUs(reps, [&] {
      lil::cuda::BuildStepInputs(plan, c, kPage, &per_seq, /*rows_per_seq=*/true);
      sink += per_seq.layouts.size();
    });
    std::printf("| %d | %zu | %.1f | %.1f | %.1f | %.1fx | %zu | %.1f | %.1fx |\n", batch, reused.layouts[0].pages.size(),
                check, warm, fresh, fresh / warm, per_seq.layouts[0].pages.size(), seq_rows, warm / seq_rows);
    if (sink == 0) std::printf("(no work)\n");
  }
  return 0;
}
