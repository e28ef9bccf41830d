// File: server/metrics.h
// The daemon's Prometheus series (DESIGN.md §7): engine step reports and per-request
// records become native `lilserve_*` series in base units and, with --metrics-compat=vllm,
// also vLLM's names, labels and buckets so existing dashboards and autoscalers work.
// Thread-safe: the engine thread reports steps, gRPC threads report requests.
#pragma once

#include <array>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "engine/engine_loop.h"
#include "scheduler/request_params.h"

namespace lil {

struct MetricsOptions {
  bool vllm_compat = false;
  std::string model_name;  // vLLM's model_name label
};

// One finished request, as its reactor saw it.
struct RequestRecord {
  FinishReason reason = FinishReason::kNone;
  MonitorMode monitor_mode = MonitorMode::kOff;
  Usage usage;
  bool monitor_fired = false;  // the monitor said stop (shadow: would have)
  double queue_s = -1;         // arrival to the first step that ran it (< 0: unknown)
  double ttft_s = -1;          // arrival to the first token (< 0: no token)
  double e2e_s = 0;            // arrival to finish
};

class Metrics {
 public:
  explicit Metrics(MetricsOptions options);
  ~Metrics();

  // Engine thread, after every step.
  void OnStep(const StepReport& report);
  // Any thread: `n` tokens arrived `gap_s` after the previous ones (inter-token latency is
  // the gap divided over the tokens).
  void OnTokens(double gap_s, int32_t n);
  void OnRequest(const RequestRecord& record);
  // Requests rejected before reaching the engine, by gRPC status code name.
  void OnRejected(const std::string& code);
  void SetReady(bool ready, bool draining);

  // The text exposition of every series.
  std::string Serialize() const;
  prometheus::Registry& registry() { return *registry_; }

 private:
  struct Vllm;
  void AddNative();

  MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Counter>* rejected_ = nullptr;
  std::array<prometheus::Counter*, kNumFinishReasons> by_reason_{};
  prometheus::Counter *prompt_tokens_, *generation_tokens_, *cached_tokens_;
  prometheus::Family<prometheus::Counter>* tokens_saved_ = nullptr;
  prometheus::Family<prometheus::Counter>* early_stops_ = nullptr;
  prometheus::Counter* shadow_would_save_;
  prometheus::Histogram *ttft_, *itl_, *e2e_, *queue_, *step_, *selected_pages_;
  prometheus::Gauge *running_, *waiting_, *pages_used_, *pages_free_, *pages_cached_, *pages_total_;
  prometheus::Gauge *ready_, *draining_;
  prometheus::Counter *pages_evicted_, *pages_freed_policy_, *preemptions_, *steps_;
  prometheus::Counter *monitor_checks_, *monitor_check_seconds_;
  prometheus::Counter *pages_attended_, *pages_resident_;
  std::unique_ptr<Vllm> vllm_;
};

// Bucket boundaries, exposed for the naming test.
prometheus::Histogram::BucketBoundaries LatencyBuckets();

}  // namespace lil
