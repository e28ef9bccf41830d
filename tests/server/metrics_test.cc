// File: tests/server/metrics_test.cc
// Metric naming: native series carry the lilserve_ prefix and base units, counters end in
// _total, latency histograms resolve sub-100 ms; --metrics-compat=vllm adds vLLM's names,
// labels and reasons; the exposition passes promtool (when installed).
#include "server/metrics.h"

#include <cstdio>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lil {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

RequestRecord Record(FinishReason reason, MonitorMode mode, int saved, bool fired) {
  RequestRecord r;
  r.reason = reason;
  r.monitor_mode = mode;
  r.usage = {12, 30, 4, saved};
  r.monitor_fired = fired;
  r.queue_s = 0.002;
  r.ttft_s = 0.03;
  r.e2e_s = 0.8;
  return r;
}

StepReport Step() {
  StepReport rep;
  rep.stats.num_running = 3;
  rep.stats.num_waiting = 2;
  rep.stats.pages_total = 100;
  rep.stats.pages_used = 40;
  rep.stats.pages_free = 50;
  rep.stats.pages_cached = 10;
  rep.stats.pages_evicted = 1;
  rep.stats.preemptions = 1;
  rep.stats.decode_seqs = 2;
  rep.stats.decode_pages_attended = 6;
  rep.step_micros = 12000;
  return rep;
}

std::string Fill(Metrics& m) {
  m.OnStep(Step());
  m.OnTokens(0.04, 2);
  m.OnRequest(Record(FinishReason::kEarlyStop, MonitorMode::kEnforce, 70, true));
  m.OnRequest(Record(FinishReason::kLength, MonitorMode::kShadow, 25, true));
  m.OnRequest(Record(FinishReason::kDeadline, MonitorMode::kOff, 0, false));
  m.OnRejected("INVALID_ARGUMENT");
  return m.Serialize();
}

TEST(Metrics, NativeSeriesAndValues) {
  Metrics m({});
  const std::string text = Fill(m);
  EXPECT_THAT(text, Not(HasSubstr("vllm:")));
  EXPECT_THAT(text, HasSubstr("lilserve_requests_total{finish_reason=\"early_stop\"} 1"));
  EXPECT_THAT(text, HasSubstr("lilserve_requests_total{finish_reason=\"deadline\"} 1"));
  EXPECT_THAT(text, HasSubstr("lilserve_requests_total{finish_reason=\"length\"} 1"));
  EXPECT_THAT(text, HasSubstr("lilserve_monitor_tokens_saved_total{monitor_mode=\"enforce\"} 70"));
  EXPECT_THAT(text, HasSubstr("lilserve_monitor_shadow_tokens_would_save_total 25"));
  EXPECT_THAT(text, HasSubstr("lilserve_monitor_early_stops_total{monitor_mode=\"shadow\"} 1"));
  EXPECT_THAT(text, HasSubstr("lilserve_generation_tokens_total 90"));
  EXPECT_THAT(text, HasSubstr("lilserve_num_requests_running 3"));
  EXPECT_THAT(text, HasSubstr("lilserve_kv_pages_used 40"));
  EXPECT_THAT(text, HasSubstr("lilserve_kv_pages_evicted_total 1"));
  EXPECT_THAT(text, HasSubstr("lilserve_sparse_selected_pages_sum 3"));
  EXPECT_THAT(text, HasSubstr("lilserve_inter_token_latency_seconds_count 2"));
  EXPECT_THAT(text, HasSubstr("lilserve_requests_rejected_total{code=\"INVALID_ARGUMENT\"} 1"));
  // Refusal codes exist at 0 before any refusal, so rate() sees the first burst.
  EXPECT_THAT(text, HasSubstr("lilserve_requests_rejected_total{code=\"RESOURCE_EXHAUSTED\"} 0"));
  // 30 ms TTFT lands in a sub-100 ms bucket.
  EXPECT_THAT(text, HasSubstr("lilserve_time_to_first_token_seconds_bucket{le=\"0.035\"} 3"));
}

TEST(Metrics, NamesFollowPrometheusConventions) {
  Metrics m({});
  Fill(m);
  int sub_100ms = 0;
  for (double b : LatencyBuckets()) sub_100ms += b < 0.1;
  EXPECT_GE(sub_100ms, 6);
  for (const auto& fam : m.registry().Collect()) {
    EXPECT_EQ(fam.name.rfind("lilserve_", 0), 0u) << fam.name;
    const bool total = fam.name.size() > 6 && fam.name.substr(fam.name.size() - 6) == "_total";
    EXPECT_EQ(total, fam.type == prometheus::MetricType::Counter) << fam.name;
    EXPECT_EQ(fam.name.find("millis"), std::string::npos) << fam.name;
    EXPECT_FALSE(fam.help.empty()) << fam.name;
  }
}

TEST(Metrics, VllmCompat) {
  Metrics m({.vllm_compat = true, .model_name = "smol"});
  const std::string text = Fill(m);
  EXPECT_THAT(text, HasSubstr("vllm:num_requests_running{model_name=\"smol\"} 3"));
  EXPECT_THAT(text, HasSubstr("vllm:num_requests_waiting{model_name=\"smol\"} 2"));
  EXPECT_THAT(text, HasSubstr("vllm:gpu_cache_usage_perc{model_name=\"smol\"} 0.4"));
  // Early stop is a "stop" to vLLM dashboards; a deadline is an "abort".
  EXPECT_THAT(text, HasSubstr("vllm:request_success_total{finished_reason=\"stop\",model_name=\"smol\"} 1"));
  EXPECT_THAT(text, HasSubstr("vllm:request_success_total{finished_reason=\"abort\",model_name=\"smol\"} 1"));
  EXPECT_THAT(text, HasSubstr("vllm:request_success_total{finished_reason=\"length\",model_name=\"smol\"} 1"));
  EXPECT_THAT(text, HasSubstr("vllm:time_to_first_token_seconds_bucket{model_name=\"smol\",le=\"0.04\"} 3"));
  EXPECT_THAT(text, HasSubstr("vllm:e2e_request_latency_seconds_bucket{model_name=\"smol\",le=\"0.8\"} 3"));
  EXPECT_THAT(text, HasSubstr("vllm:generation_tokens_total{model_name=\"smol\"} 90"));
  // Phases of vLLM's dashboard: prefill 0.028 s, decode 0.77 s, inference 0.798 s.
  EXPECT_THAT(text, HasSubstr("vllm:request_prefill_time_seconds_bucket{model_name=\"smol\",le=\"0.3\"} 3"));
  EXPECT_THAT(text, HasSubstr("vllm:request_decode_time_seconds_bucket{model_name=\"smol\",le=\"0.5\"} 0"));
  EXPECT_THAT(text, HasSubstr("vllm:request_decode_time_seconds_bucket{model_name=\"smol\",le=\"0.8\"} 3"));
  EXPECT_THAT(text, HasSubstr("vllm:request_inference_time_seconds_count{model_name=\"smol\"} 3"));
  EXPECT_THAT(text, HasSubstr("vllm:request_max_num_generation_tokens_sum{model_name=\"smol\"} 90"));
  EXPECT_THAT(text, HasSubstr("lilserve_requests_total"));  // native series stay
}

TEST(Metrics, PromtoolAcceptsTheNativeExposition) {
  if (std::system("command -v promtool > /dev/null 2>&1") != 0) GTEST_SKIP() << "no promtool";
  Metrics m({});
  const std::string path = ::testing::TempDir() + "/lilserve_metrics.txt";
  std::ofstream(path) << Fill(m);
  FILE* p = popen(("promtool check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace lil
