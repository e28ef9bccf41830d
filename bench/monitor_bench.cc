// File: bench/monitor_bench.cc
// Cost of the information monitor per check and per generated token at 1k-128k generated
// tokens (healthy text and a loop), for the windowed and exact-stream growth, beside the
// naive peer (recompressing the whole output at each check) and their ratio; then the
// overhead of 256 concurrent monitors fed one token per step. Prints tables.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "scheduler/deflate_size.h"
#include "scheduler/monitor.h"

namespace lil {
namespace {

using Clock = std::chrono::steady_clock;
double MicrosSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::string LoadText(const std::string& path) {
  std::string text;
  if (!path.empty()) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  if (FILE* pipe = popen("bible -f 'Gen1:1-Rev22:21' 2>/dev/null", "r")) {
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) text.append(buf, n);
    pclose(pipe);
  }
  return text;
}

// Word-sized pieces (~4 bytes): optional space + up to 6 letters, up to 3 digits, or a byte.
std::vector<std::string> Split(const std::string& text, size_t max_pieces) {
  std::vector<std::string> pieces;
  auto alpha = [&](size_t k) { return k < text.size() && std::isalpha((unsigned char)text[k]); };
  auto digit = [&](size_t k) { return k < text.size() && std::isdigit((unsigned char)text[k]); };
  for (size_t i = 0; i < text.size() && pieces.size() < max_pieces;) {
    size_t start = i;
    if (text[i] == ' ' && (alpha(i + 1) || digit(i + 1))) ++i;
    if (alpha(i)) {
      for (size_t lim = i + 6; i < lim && alpha(i);) ++i;
    } else if (digit(i)) {
      for (size_t lim = i + 3; i < lim && digit(i);) ++i;
    } else {
      ++i;
    }
    pieces.push_back(text.substr(start, i - start));
  }
  return pieces;
}

MonitorParams NeverStop(int32_t interval) {
  MonitorParams p;
  p.interval_tokens = interval;
  p.min_gain_bytes = -1'000'000'000;  // keeps checking, so the cost at every length shows
  return p;
}

struct Timeline {
  std::vector<double> check_us;     // time of each Observe that checked
  std::vector<double> cumulative_us;  // total Observe time up to each token
};

Timeline RunMonitor(const std::vector<std::string>& pieces, int32_t interval,
                    MonitorGrowth growth) {
  InfoMonitor m(NeverStop(interval), growth);
  Timeline t;
  double total = 0;
  for (const std::string& p : pieces) {
    size_t checks = m.trace().size();
    auto t0 = Clock::now();
    m.Observe(p, 1);
    double us = MicrosSince(t0);
    total += us;
    if (m.trace().size() > checks) t.check_us.push_back(us);
    t.cumulative_us.push_back(total);
  }
  return t;
}

// The naive peer: the whole output recompressed at each check.
Timeline RunNaive(const std::vector<std::string>& pieces, int32_t interval) {
  DeflateSizer sizer;
  Timeline t;
  std::string text;
  double total = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto t0 = Clock::now();
    text += pieces[i];
    if ((i + 1) % interval == 0) {
      (void)sizer.Size(text);
      double us = MicrosSince(t0);
      t.check_us.push_back(us);
      total += us;
    } else {
      total += MicrosSince(t0);
    }
    t.cumulative_us.push_back(total);
  }
  return t;
}

// Median time of the (up to) 8 checks ending at token `tokens`.
double CheckCostAt(const Timeline& t, size_t tokens, int32_t interval) {
  size_t last = tokens / interval;  // checks 1..last
  size_t first = last > 8 ? last - 8 : 1;
  std::vector<double> v(t.check_us.begin() + first, t.check_us.begin() + last);
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void PrintLengthTable(const char* kind, const std::vector<std::string>& pieces,
                      int32_t interval) {
  Timeline windowed = RunMonitor(pieces, interval, MonitorGrowth::kWindowed);
  Timeline exact = RunMonitor(pieces, interval, MonitorGrowth::kExactStream);
  Timeline naive = RunNaive(pieces, interval);
  std::printf("\n%s text, interval %d tokens: us per check (median of the last 8 checks) and ns "
              "per generated token (all tokens so far)\n", kind, interval);
  std::printf("%8s %9s | %9s %9s %9s | %10s %10s | %9s %9s %9s\n", "tokens", "bytes",
              "windowed", "exact", "whole", "whole/win", "whole/exact", "win ns/t",
              "exact ns/t", "whole ns/t");
  size_t bytes = 0, next = 0;
  for (size_t tokens : {1'000, 8'000, 32'000, 128'000}) {
    if (tokens > pieces.size()) break;
    for (; next < tokens; ++next) bytes += pieces[next].size();
    double w = CheckCostAt(windowed, tokens, interval);
    double e = CheckCostAt(exact, tokens, interval);
    double n = CheckCostAt(naive, tokens, interval);
    std::printf("%8zu %9zu | %9.1f %9.1f %9.1f | %10.1f %10.1f | %9.0f %9.0f %9.0f\n", tokens,
                bytes, w, e, n, n / w, n / e, 1e3 * windowed.cumulative_us[tokens - 1] / tokens,
                1e3 * exact.cumulative_us[tokens - 1] / tokens,
                1e3 * naive.cumulative_us[tokens - 1] / tokens);
  }
}

// 256 monitors (default rule, never stopping so the load stays), check points spread
// evenly as with staggered arrivals, each fed one token per step.
void PrintConcurrency(const std::vector<std::string>& pieces, int32_t interval, int requests,
                      int steps) {
  std::printf("\n%d concurrent monitors, one token each per step, %d steps, interval %d\n",
              requests, steps, interval);
  std::printf("%10s | %12s %12s %12s | %14s\n", "growth", "mean us/step", "p99 us/step",
              "max us/step", "held KiB/req");
  for (MonitorGrowth growth : {MonitorGrowth::kWindowed, MonitorGrowth::kExactStream}) {
    std::vector<InfoMonitor> monitors;
    std::vector<size_t> pos(requests);
    for (int r = 0; r < requests; ++r) {
      monitors.emplace_back(NeverStop(interval), growth);
      pos[r] = (static_cast<size_t>(r) * 7919) % (pieces.size() / 2);
      // Pre-feed so checks fall on different steps, past the first 32 KiB of output.
      int warm = 40 * interval + r * interval / requests;
      for (int i = 0; i < warm; ++i) monitors[r].Observe(pieces[pos[r]++ % pieces.size()], 1);
    }
    std::vector<double> step_us;
    for (int s = 0; s < steps; ++s) {
      auto t0 = Clock::now();
      for (int r = 0; r < requests; ++r) {
        monitors[r].Observe(pieces[pos[r]++ % pieces.size()], 1);
      }
      step_us.push_back(MicrosSince(t0));
    }
    double mean = 0;
    for (double v : step_us) mean += v / steps;
    size_t held = 0;
    for (const InfoMonitor& m : monitors) held += m.held_bytes();
    std::sort(step_us.begin(), step_us.end());
    // Exact also holds zlib's state: 64 KiB window x2, prev, head, pending (~268 KiB).
    double held_kib = held / 1024.0 / requests +
                      (growth == MonitorGrowth::kExactStream ? 268.0 : 0.0);
    std::printf("%10s | %12.1f %12.1f %12.1f | %14.0f\n",
                growth == MonitorGrowth::kWindowed ? "windowed" : "exact", mean,
                step_us[step_us.size() * 99 / 100], step_us.back(), held_kib);
  }
}

}  // namespace
}  // namespace lil

int main(int argc, char** argv) {
  CLI::App app{"monitor_bench: information monitor cost per check and per token"};
  std::string text_path;
  int32_t interval = 250;
  int requests = 256, steps = 2000;
  app.add_option("--text", text_path, "UTF-8 text file (default: `bible -f Gen1:1-Rev22:21`)");
  app.add_option("--interval-tokens", interval, "tokens between checks")->capture_default_str();
  app.add_option("--requests", requests, "concurrent monitors")->capture_default_str();
  app.add_option("--steps", steps, "steps timed with concurrent monitors")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string text = lil::LoadText(text_path);
  if (text.size() < 800'000) {
    std::fprintf(stderr, "monitor_bench: need >= 800 KB of text (install bible-kjv or pass "
                         "--text FILE), got %zu bytes\n", text.size());
    return 1;
  }
  const size_t kMaxTokens = 128'000;
  std::vector<std::string> healthy = lil::Split(text.substr(text.size() / 3), kMaxTokens);
  // A loop: 2,000 tokens of text, then a ~1 KB passage repeated.
  std::vector<std::string> loop = lil::Split(text.substr(1'000'000, 8'000), 2'000);
  std::vector<std::string> unit = lil::Split(text.substr(2'000'000, 1'000), 1'000);
  while (loop.size() < kMaxTokens) loop.insert(loop.end(), unit.begin(), unit.end());
  loop.resize(kMaxTokens);

  std::printf("monitor_bench: raw DEFLATE level 6; whole = recompress the whole output per "
              "check (the naive peer)\n");
  lil::PrintLengthTable("healthy", healthy, interval);
  lil::PrintLengthTable("loop", loop, interval);
  lil::PrintConcurrency(healthy, interval, requests, steps);
  return 0;
}
