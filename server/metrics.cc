// File: server/metrics.cc
#include "server/metrics.h"

#include <algorithm>

#include <prometheus/text_serializer.h>

namespace lil {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using Buckets = prometheus::Histogram::BucketBoundaries;

std::string ModeName(MonitorMode m) {
  switch (m) {
    case MonitorMode::kOff: return "off";
    case MonitorMode::kEnforce: return "enforce";
    case MonitorMode::kShadow: return "shadow";
    case MonitorMode::kConclude: return "conclude";
  }
  return "unknown";
}

// vLLM's finished_reason label: stop, length or abort.
std::string VllmReason(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
    case FinishReason::kStopSequence:
    case FinishReason::kEarlyStop: return "stop";
    case FinishReason::kLength: return "length";
    default: return "abort";
  }
}

}  // namespace

// Sub-100 ms buckets first: CPU decode steps are ~10-50 ms, GPU ones ~5-20 ms.
Buckets LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
          1,     2.5,    5,     10,   20,   40,    80,   160,   320, 640};
}

// vLLM's series, names, labels and buckets (vllm/v1/metrics/loggers.py).
struct Metrics::Vllm {
  prometheus::Gauge *running, *waiting, *kv_usage;
  prometheus::Histogram *ttft, *tpot, *itl, *e2e, *queue, *prompt_hist, *gen_hist;
  prometheus::Histogram *prefill, *decode, *inference;  // phases after the queue
  prometheus::Histogram* max_gen_hist;  // n = 1: the generation tokens
  prometheus::Counter *prompt_tokens, *gen_tokens, *preemptions;
  prometheus::Family<prometheus::Counter>* success;
  std::map<std::string, std::string> labels;

  Vllm(prometheus::Registry& r, const std::string& model) : labels{{"model_name", model}} {
    running = &BuildGauge().Name("vllm:num_requests_running")
                   .Help("Number of requests in model execution batches.").Register(r).Add(labels);
    waiting = &BuildGauge().Name("vllm:num_requests_waiting")
                   .Help("Number of requests waiting to be processed.").Register(r).Add(labels);
    kv_usage = &BuildGauge().Name("vllm:gpu_cache_usage_perc")
                    .Help("KV-cache usage. 1 means 100 percent usage.").Register(r).Add(labels);
    ttft = &BuildHistogram().Name("vllm:time_to_first_token_seconds")
                .Help("Histogram of time to first token in seconds.").Register(r)
                .Add(labels, Buckets{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                     0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
                                     640.0, 2560.0});
    const Buckets tpot_b{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                         0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
    tpot = &BuildHistogram().Name("vllm:time_per_output_token_seconds")
                .Help("Histogram of time per output token in seconds.").Register(r)
                .Add(labels, tpot_b);
    itl = &BuildHistogram().Name("vllm:inter_token_latency_seconds")
               .Help("Histogram of inter-token latency in seconds.").Register(r)
               .Add(labels, tpot_b);
    const Buckets req_b{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                        30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
    e2e = &BuildHistogram().Name("vllm:e2e_request_latency_seconds")
               .Help("Histogram of e2e request latency in seconds.").Register(r).Add(labels, req_b);
    queue = &BuildHistogram().Name("vllm:request_queue_time_seconds")
                 .Help("Histogram of time spent in WAITING phase for request.").Register(r)
                 .Add(labels, req_b);
    prefill = &BuildHistogram().Name("vllm:request_prefill_time_seconds")
                   .Help("Histogram of time spent in PREFILL phase for request.").Register(r)
                   .Add(labels, req_b);
    decode = &BuildHistogram().Name("vllm:request_decode_time_seconds")
                  .Help("Histogram of time spent in DECODE phase for request.").Register(r)
                  .Add(labels, req_b);
    inference = &BuildHistogram().Name("vllm:request_inference_time_seconds")
                     .Help("Histogram of time spent in RUNNING phase for request.").Register(r)
                     .Add(labels, req_b);
    const Buckets tok_b{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000};
    prompt_hist = &BuildHistogram().Name("vllm:request_prompt_tokens")
                       .Help("Number of prefill tokens processed.").Register(r).Add(labels, tok_b);
    gen_hist = &BuildHistogram().Name("vllm:request_generation_tokens")
                    .Help("Number of generation tokens processed.").Register(r).Add(labels, tok_b);
    max_gen_hist = &BuildHistogram().Name("vllm:request_max_num_generation_tokens")
                        .Help("Histogram of maximum number of requested generation tokens.")
                        .Register(r).Add(labels, tok_b);
    prompt_tokens = &BuildCounter().Name("vllm:prompt_tokens_total")
                         .Help("Number of prefill tokens processed.").Register(r).Add(labels);
    gen_tokens = &BuildCounter().Name("vllm:generation_tokens_total")
                      .Help("Number of generation tokens processed.").Register(r).Add(labels);
    preemptions = &BuildCounter().Name("vllm:num_preemptions_total")
                       .Help("Cumulative number of preemption from the engine.").Register(r)
                       .Add(labels);
    success = &BuildCounter().Name("vllm:request_success_total")
                   .Help("Count of successfully processed requests.").Register(r);
    for (const char* reason : {"stop", "length", "abort"}) {
      success->Add({{"model_name", model}, {"finished_reason", reason}});
    }
  }
};

Metrics::Metrics(MetricsOptions options)
    : options_(std::move(options)), registry_(std::make_shared<prometheus::Registry>()) {
  AddNative();
  if (options_.vllm_compat) vllm_ = std::make_unique<Vllm>(*registry_, options_.model_name);
}

Metrics::~Metrics() = default;

void Metrics::AddNative() {
  auto& r = *registry_;
  requests_ = &BuildCounter().Name("lilserve_requests_total")
                   .Help("Finished requests by finish reason.").Register(r);
  for (int i = 1; i < kNumFinishReasons; ++i) {
    by_reason_[i] = &requests_->Add(
        {{"finish_reason", std::string(FinishReasonName(static_cast<FinishReason>(i)))}});
  }
  rejected_ = &BuildCounter().Name("lilserve_requests_rejected_total")
                   .Help("Generate calls refused before reaching the engine, by gRPC code.")
                   .Register(r);
  // Series that exist from the start at 0: a burst of refusals before the first scrape still
  // shows in rate()/increase() (alert LilserveHighErrorRate, deploy/).
  for (const char* code : {"INVALID_ARGUMENT", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED", "UNAVAILABLE",
                           "ALREADY_EXISTS", "INTERNAL"}) {
    rejected_->Add({{"code", code}});
  }
  prompt_tokens_ = &BuildCounter().Name("lilserve_prompt_tokens_total")
                        .Help("Prompt tokens of finished requests.").Register(r).Add({});
  generation_tokens_ = &BuildCounter().Name("lilserve_generation_tokens_total")
                            .Help("Generated tokens of finished requests.").Register(r).Add({});
  cached_tokens_ = &BuildCounter().Name("lilserve_cached_prompt_tokens_total")
                        .Help("Prompt tokens served from the prefix cache.").Register(r).Add({});
  tokens_saved_ = &BuildCounter().Name("lilserve_monitor_tokens_saved_total")
                       .Help("max_tokens - generated of requests the monitor stopped, by mode.")
                       .Register(r);
  early_stops_ = &BuildCounter().Name("lilserve_monitor_early_stops_total")
                      .Help("Requests the monitor stopped (shadow: would have), by mode.")
                      .Register(r);
  for (const char* m : {"enforce", "conclude"}) tokens_saved_->Add({{"monitor_mode", m}});
  for (const char* m : {"enforce", "shadow", "conclude"}) early_stops_->Add({{"monitor_mode", m}});
  shadow_would_save_ = &BuildCounter().Name("lilserve_monitor_shadow_tokens_would_save_total")
                            .Help("Shadow mode: tokens generated after the monitor would have stopped.")
                            .Register(r).Add({});
  auto hist = [&](const char* name, const char* help, Buckets b) {
    return &BuildHistogram().Name(name).Help(help).Register(r).Add({}, std::move(b));
  };
  ttft_ = hist("lilserve_time_to_first_token_seconds", "Arrival to the first streamed token.",
               LatencyBuckets());
  itl_ = hist("lilserve_inter_token_latency_seconds", "Gap between streamed tokens.",
              LatencyBuckets());
  e2e_ = hist("lilserve_e2e_request_latency_seconds", "Arrival to the last message.",
              LatencyBuckets());
  queue_ = hist("lilserve_request_queue_time_seconds",
                "Arrival to the engine accepting the request (validation, tokenization, inbox).",
                LatencyBuckets());
  step_ = hist("lilserve_step_duration_seconds", "One engine step (schedule + execute + update).",
               LatencyBuckets());
  selected_pages_ = hist("lilserve_sparse_selected_pages",
                         "KV pages attended per sequence on a decode step (mean over the step).",
                         Buckets{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096});
  auto gauge = [&](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  running_ = gauge("lilserve_num_requests_running", "Requests in the running batch.");
  waiting_ = gauge("lilserve_num_requests_waiting", "Requests queued or preempted.");
  pages_used_ = gauge("lilserve_kv_pages_used", "KV pages referenced by requests.");
  pages_free_ = gauge("lilserve_kv_pages_free", "KV pages on the free list.");
  pages_cached_ = gauge("lilserve_kv_pages_cached", "Unreferenced KV pages kept for prefix reuse.");
  pages_total_ = gauge("lilserve_kv_pages_capacity", "KV pages in the pool.");
  ready_ = gauge("lilserve_ready", "1 when the server accepts requests.");
  draining_ = gauge("lilserve_draining", "1 while draining after SIGTERM.");
  auto counter = [&](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  pages_evicted_ = counter("lilserve_kv_pages_evicted_total", "Cached pages evicted for reuse.");
  pages_freed_policy_ = counter("lilserve_kv_pages_freed_by_policy_total",
                                "Pages released by the sink/h2o sparse policies.");
  preemptions_ = counter("lilserve_preemptions_total", "Running requests preempted (recompute).");
  monitor_checks_ = counter("lilserve_monitor_checks_total", "Information-monitor checks run.");
  monitor_check_seconds_ = counter("lilserve_monitor_check_seconds_total",
                                   "Time spent in information-monitor checks (divide by the checks for the mean).");
  steps_ = counter("lilserve_steps_total", "Engine steps that did work.");
  pages_attended_ = counter("lilserve_decode_pages_attended_total",
                            "KV pages attended on decode steps (sparse selection).");
  pages_resident_ = counter("lilserve_decode_pages_resident_total",
                            "KV pages resident in the decoding sequences' tables.");
}

void Metrics::OnStep(const StepReport& rep) {
  const SchedulerStats& s = rep.stats;
  steps_->Increment();
  step_->Observe(rep.step_micros * 1e-6);
  running_->Set(s.num_running);
  waiting_->Set(s.num_waiting);
  pages_used_->Set(s.pages_used);
  pages_free_->Set(s.pages_free);
  pages_cached_->Set(s.pages_cached);
  pages_total_->Set(s.pages_total);
  pages_evicted_->Increment(s.pages_evicted);
  pages_freed_policy_->Increment(s.pages_freed_by_policy);
  preemptions_->Increment(s.preemptions);
  monitor_checks_->Increment(s.monitor_checks);
  monitor_check_seconds_->Increment(s.monitor_check_micros * 1e-6);
  pages_attended_->Increment(static_cast<double>(s.decode_pages_attended));
  pages_resident_->Increment(static_cast<double>(s.decode_pages_resident));
  if (s.decode_seqs > 0 && s.decode_pages_attended > 0) {
    selected_pages_->Observe(static_cast<double>(s.decode_pages_attended) / s.decode_seqs);
  }
  if (vllm_) {
    vllm_->running->Set(s.num_running);
    vllm_->waiting->Set(s.num_waiting);
    vllm_->kv_usage->Set(s.pages_total > 0 ? static_cast<double>(s.pages_used) / s.pages_total : 0);
    vllm_->preemptions->Increment(s.preemptions);
  }
}

void Metrics::OnTokens(double gap_s, int32_t n) {
  if (n <= 0) return;
  const double per = gap_s / n;
  for (int32_t i = 0; i < n; ++i) {
    itl_->Observe(per);
    if (vllm_) {
      vllm_->itl->Observe(per);
      vllm_->tpot->Observe(per);
    }
  }
}

void Metrics::OnRequest(const RequestRecord& r) {
  const int idx = static_cast<int>(r.reason);
  if (idx > 0 && idx < kNumFinishReasons) by_reason_[idx]->Increment();
  prompt_tokens_->Increment(r.usage.prompt_tokens);
  generation_tokens_->Increment(r.usage.completion_tokens);
  cached_tokens_->Increment(r.usage.cached_tokens);
  const std::string mode = ModeName(r.monitor_mode);
  if (r.monitor_fired && r.monitor_mode != MonitorMode::kOff) {
    early_stops_->Add({{"monitor_mode", mode}}).Increment();
  }
  if (r.monitor_mode == MonitorMode::kShadow) {
    shadow_would_save_->Increment(r.usage.tokens_saved);
  } else if (r.monitor_mode != MonitorMode::kOff && r.usage.tokens_saved > 0) {
    tokens_saved_->Add({{"monitor_mode", mode}}).Increment(r.usage.tokens_saved);
  }
  if (r.ttft_s >= 0) ttft_->Observe(r.ttft_s);
  if (r.queue_s >= 0) queue_->Observe(r.queue_s);
  e2e_->Observe(r.e2e_s);
  if (vllm_) {
    vllm_->success->Add({{"model_name", options_.model_name}, {"finished_reason", VllmReason(r.reason)}})
        .Increment();
    vllm_->prompt_tokens->Increment(r.usage.prompt_tokens);
    vllm_->gen_tokens->Increment(r.usage.completion_tokens);
    vllm_->prompt_hist->Observe(r.usage.prompt_tokens);
    vllm_->gen_hist->Observe(r.usage.completion_tokens);
    vllm_->max_gen_hist->Observe(r.usage.completion_tokens);
    if (r.ttft_s >= 0) vllm_->ttft->Observe(r.ttft_s);
    if (r.queue_s >= 0) vllm_->queue->Observe(r.queue_s);
    vllm_->e2e->Observe(r.e2e_s);
    // vLLM's phases: scheduled -> first token (prefill) -> last token (decode).
    if (r.ttft_s >= 0 && r.queue_s >= 0) {
      vllm_->prefill->Observe(std::max(0.0, r.ttft_s - r.queue_s));
      vllm_->decode->Observe(std::max(0.0, r.e2e_s - r.ttft_s));
      vllm_->inference->Observe(std::max(0.0, r.e2e_s - r.queue_s));
    }
  }
}

void Metrics::OnRejected(const std::string& code) { rejected_->Add({{"code", code}}).Increment(); }

void Metrics::SetReady(bool ready, bool draining) {
  ready_->Set(ready ? 1 : 0);
  draining_->Set(draining ? 1 : 0);
}

std::string Metrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace lil
