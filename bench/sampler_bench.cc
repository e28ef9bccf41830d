// File: bench/sampler_bench.cc
// The host sampler (engine/sampler.h) on one row of logits of the Llama-3 (128,256) and
// SmolLM2 (49,152) vocabularies: ms a row for the sampling modes clients send, beside the
// textbook way measured in the same run (every token's weight in double, the whole
// vocabulary sorted, the sorted prefix walked: what lil::Sample did until session 15). Both
// give the same kept set (sampler_test); the draw order differs (ids against rank), not the
// distribution. Usage: sampler_bench [--reps N]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace {

// The textbook sampler: sort by logit, temper in double, cut top-k / top-p / min-p on the
// sorted order, walk it; and the sampled token's log-probability (a log-sum-exp over the row,
// as lil::Sample reports it). No repetition penalty (off in both).
int32_t SortedSample(const std::vector<float>& logits, const lil::SamplingParams& p, double u01, double* logprob) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  const float mx = *std::max_element(logits.begin(), logits.end());
  double z = 0.0;
  for (float x : logits) z += std::exp(double{x} - mx);
  const double lse = mx + std::log(z);
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  int32_t n = vocab;
  if (p.top_k > 0 && p.top_k < vocab) {
    std::nth_element(order.begin(), order.begin() + p.top_k, order.end(), better);
    n = p.top_k;
  }
  std::sort(order.begin(), order.begin() + n, better);
  std::vector<double> w(n);
  double total = 0.0;
  for (int32_t i = 0; i < n; ++i) total += w[i] = std::exp((double{logits[order[i]]} - logits[order[0]]) / p.temperature);
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    int32_t keep = 0;
    while (keep < n && (keep == 0 || cum < p.top_p * total)) cum += w[keep++];
    n = keep;
  }
  int32_t keep = 1;
  while (keep < n && w[keep] >= p.min_p) ++keep;
  double kept = 0.0;
  for (int32_t i = 0; i < keep; ++i) kept += w[i];
  double cum = 0.0;
  int32_t token = order[keep - 1];
  for (int32_t i = 0; i < keep; ++i) {
    cum += w[i];
    if (u01 * kept < cum) {
      token = order[i];
      break;
    }
  }
  *logprob = logits[token] - lse;
  return token;
}

template <typename F>
double MedianMs(int reps, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f(r);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 15;
  CLI::App app{"The host sampler against a full-sort sampler, ms a row"};
  app.add_option("--reps", reps, "timed rows per figure (median)")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  struct Mode {
    const char* name;
    float temperature, top_p, min_p;
    int32_t top_k;
  };
  const Mode modes[] = {{"temperature 0.7", 0.7f, 1.0f, 0.0f, 0},
                        {"temperature 0.7, top_p 0.9", 0.7f, 0.9f, 0.0f, 0},
                        {"temperature 1.0, top_k 50", 1.0f, 1.0f, 0.0f, 50},
                        {"temperature 0.8, top_p 0.95, min_p 0.05", 0.8f, 0.95f, 0.05f, 0}};
  std::printf("Host sampler, one row (median ms of %d)\n\n", reps);
  std::printf("| vocabulary | mode | lil::Sample ms | full-sort sampler ms | speed-up |\n|---|---|---|---|---|\n");
  for (const int32_t vocab : {128256, 49152}) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 3.0f);  // a spread like an LLM's logits
    std::vector<float> logits(vocab);
    for (float& x : logits) x = nd(rng);
    for (const Mode& m : modes) {
      lil::SamplingParams p;
      p.temperature = m.temperature;
      p.top_p = m.top_p;
      p.min_p = m.min_p;
      p.top_k = m.top_k;
      long sink = 0;
      const double ours = MedianMs(reps, [&](int r) { sink += lil::Sample(logits, p, {}, 7, r).token; });
      double logprob = 0.0;
      const double sorted =
          MedianMs(reps, [&](int r) { sink += SortedSample(logits, p, lil::UniformDraw(7, r), &logprob); });
      std::printf("| %d | %s | %.2f | %.2f | %.1fx |\n", vocab, m.name, ours, sorted, sorted / ours);
      if (sink == -1) std::printf("(unreachable)\n");
    }
  }
  return 0;
}
