// File: bench/scheduler_bench.cc
// Scheduler host time per decode step (Schedule + Update with a fake engine result) at 256
// and 1,024 running requests, against a 10 ms GPU decode step (the goal: under 5%).
//
//   scheduler_bench [--steps N] [--context TOKENS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "scheduler/scheduler.h"

namespace lil {
namespace {

struct Case {
  const char* name;
  SparseMode sparse;
  MonitorMode monitor;
};

struct Result {
  double median_us = 0, mean_us = 0, p99_us = 0;
  double plan_pages = 0;  // page-table entries copied into the plan per step
};

// Fills an engine result the way a real engine would (not timed: it is the engine's work).
StepResult FakeResult(const StepPlan& plan) {
  StepResult r;
  r.seqs.resize(plan.seqs.size());
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    SeqOutput& o = r.seqs[i];
    o.id = s.id;
    if (s.sample) {
      // Varied text so the monitor sees output that keeps carrying information.
      o.token = 100 + static_cast<TokenId>((s.id.value * 31 + s.num_generated * 7) % 1000);
      o.text = " w" + std::to_string(o.token * 2654435761u % 100000);
    }
    if (s.collect_page_mass) {
      o.page_mass.resize(s.page_table.size());
      for (size_t p = 0; p < o.page_mass.size(); ++p) o.page_mass[p] = float((p * 7919) % 97);
    }
    o.pages_attended = static_cast<int32_t>(s.page_table.size());
  }
  return r;
}

Result RunCase(int running, int context, int steps, const Case& c) {
  FakeClock clock;
  SchedulerOptions o;
  o.page_size = 16;
  o.max_running_seqs = running;
  o.max_batched_tokens = 16384;
  o.max_model_len = context + steps + 64;
  o.num_pages = running * ((o.max_model_len + 15) / 16 + 1);
  o.enable_prefix_caching = true;
  o.eos_token_ids = {2};
  o.clock = &clock;
  std::unique_ptr<Scheduler> sched = std::move(*Scheduler::Create(o));
  for (int i = 0; i < running; ++i) {
    SchedulerRequest r;
    r.id = RequestId{static_cast<uint64_t>(i + 1)};
    for (int t = 0; t < context; ++t) r.prompt.push_back(3 + (i * 131 + t * 17) % 30000);
    r.stopping.max_tokens = steps + 32;
    r.stopping.ignore_eos = true;
    r.sparse = SparseParams{};
    r.sparse->mode = c.sparse;
    r.sparse->sink_tokens = 64;
    r.sparse->window_tokens = 256;
    r.sparse->budget_tokens = 512;
    r.monitor.mode = c.monitor;
    if (!sched->AddRequest(std::move(r)).ok()) std::abort();
  }
  // Prefill everything first: the figure is for steady-state decode.
  for (int guard = 0; guard < 100000; ++guard) {
    StepPlan plan = sched->Schedule();
    bool all_decode = sched->num_running() == running && sched->num_waiting() == 0;
    for (const auto& s : plan.seqs) all_decode = all_decode && s.tokens.size() == 1;
    if (!sched->Update(plan, FakeResult(plan)).ok()) std::abort();
    if (all_decode) break;
  }
  std::vector<double> us;
  double pages = 0;
  for (int i = 0; i < steps; ++i) {
    clock.AdvanceMicros(10000);
    auto t0 = std::chrono::steady_clock::now();
    StepPlan plan = sched->Schedule();
    auto t1 = std::chrono::steady_clock::now();
    StepResult result = FakeResult(plan);
    auto t2 = std::chrono::steady_clock::now();
    auto up = sched->Update(plan, result);
    auto t3 = std::chrono::steady_clock::now();
    if (!up.ok() || static_cast<int>(plan.seqs.size()) != running) std::abort();
    us.push_back(std::chrono::duration<double, std::micro>((t1 - t0) + (t3 - t2)).count());
    for (const auto& s : plan.seqs) pages += s.page_table.size();
  }
  std::sort(us.begin(), us.end());
  Result r;
  r.median_us = us[us.size() / 2];
  r.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  for (double u : us) r.mean_us += u / us.size();
  r.plan_pages = pages / steps;
  return r;
}

}  // namespace
}  // namespace lil

int main(int argc, char** argv) {
  int steps = 200, context = 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--context")) context = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s (use --steps N --context TOKENS)\n", argv[i]);
      return 2;
    }
  }
  if (steps < 1 || context < 1) {
    std::fprintf(stderr, "--steps and --context must be >= 1\n");
    return 2;
  }
  using lil::MonitorMode;
  using lil::SparseMode;
  const lil::Case cases[] = {
      {"dense", SparseMode::kDense, MonitorMode::kOff},
      {"sink", SparseMode::kSink, MonitorMode::kOff},
      {"quest", SparseMode::kQuest, MonitorMode::kOff},
      {"h2o", SparseMode::kH2O, MonitorMode::kOff},
      {"dense+monitor", SparseMode::kDense, MonitorMode::kEnforce},
  };
  constexpr double kGpuStepUs = 10000.0;  // assumed GPU decode step
  std::printf("scheduler host time per decode step (Schedule + Update, fake engine), context %d, "
              "%d steps\n",
              context, steps);
  std::printf("%-8s %-14s %12s %12s %12s %14s %12s\n", "running", "policy", "median_us",
              "mean_us", "p99_us", "pages_in_plan", "%_of_10ms");
  for (int running : {256, 1024}) {
    for (const auto& c : cases) {
      lil::Result r = lil::RunCase(running, context, steps, c);
      std::printf("%-8d %-14s %12.1f %12.1f %12.1f %14.0f %11.2f%%\n", running, c.name,
                  r.median_us, r.mean_us, r.p99_us, r.plan_pages,
                  100.0 * r.median_us / kGpuStepUs);
    }
  }
  return 0;
}
