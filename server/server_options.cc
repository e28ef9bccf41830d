// File: server/server_options.cc
#include "server/server_options.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "common/status.h"

namespace lil {

absl::StatusOr<SparseMode> ParseSparseMode(const std::string& s) {
  const std::string m = absl::AsciiStrToLower(s);
  if (m == "dense") return SparseMode::kDense;
  if (m == "sink") return SparseMode::kSink;
  if (m == "quest") return SparseMode::kQuest;
  if (m == "h2o") return SparseMode::kH2O;
  return InvalidArgument("--sparse-mode must be dense, sink, quest or h2o, got \"", s, "\"");
}

absl::StatusOr<MonitorMode> ParseMonitorMode(const std::string& s) {
  const std::string m = absl::AsciiStrToLower(s);
  if (m == "off") return MonitorMode::kOff;
  if (m == "enforce") return MonitorMode::kEnforce;
  if (m == "shadow") return MonitorMode::kShadow;
  if (m == "conclude") return MonitorMode::kConclude;
  return InvalidArgument("--monitor-mode must be off, enforce, shadow or conclude, got \"", s,
                         "\"");
}

void ServerOptions::AddFlags(CLI::App& app) {
  app.set_config("--config", "", "read flags from this INI/TOML file (same names, no --)");
  app.add_option("--model", model, "HuggingFace model directory or .gguf file")
      ->capture_default_str();
  app.add_option("--device", device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  app.add_option("--host", host, "address the gRPC server binds")->capture_default_str();
  app.add_option("--port", port, "gRPC port (0 picks a free one; printed at start)")
      ->capture_default_str();
  app.add_option("--metrics-host", metrics_host, "address of the HTTP metrics server")
      ->capture_default_str();
  app.add_option("--metrics-port", metrics_port,
                 "HTTP port of /metrics, /health and /ready (0 picks a free one, -1 disables)")
      ->capture_default_str();
  app.add_option("--http-port", http_port,
                 "port of the OpenAI-compatible HTTP API, /v1/completions, /v1/chat/completions, "
                 "/v1/models (0 picks a free one, -1 disables; HTTPS with --tls-cert)")
      ->capture_default_str();
  app.add_option("--http-host", http_host, "address of the OpenAI HTTP API (default: --host)");
  app.add_option("--http-threads", http_threads,
                 "OpenAI HTTP API worker threads: connections served at once (one per stream)")
      ->capture_default_str();
  app.add_option("--max-running-seqs", max_running_seqs, "sequences batched in one step at most")
      ->capture_default_str();
  app.add_option("--max-batched-tokens", max_batched_tokens, "input tokens in one step at most")
      ->capture_default_str();
  app.add_option("--max-waiting", max_waiting,
                 "queued requests at most; beyond it Generate fails with RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--max-model-len", max_model_len,
                 "prompt + generated tokens at most (capped at the model's context)")
      ->capture_default_str();
  app.add_option("--page-size", page_size, "KV page size in tokens")->capture_default_str();
  app.add_option("--kv-mib", kv_mib, "KV cache memory in MiB (per rank with --tensor-parallel)")->capture_default_str();
  app.add_option("--gpu-memory-utilization", gpu_memory_utilization,
                 "CUDA: share of GPU memory for weights, activations and KV; the KV cache gets the rest after the "
                 "weights (beats --kv-mib); 0: use --kv-mib")
      ->capture_default_str();
  app.add_option("--tensor-parallel", tensor_parallel, "tensor-parallel ranks: GPUs 0..N-1 over NCCL on cuda, N CPU ranks on cpu (must divide the heads)")
      ->capture_default_str();
  app.add_option("--prefix-caching", prefix_caching, "reuse KV pages of shared prompt prefixes")
      ->capture_default_str();
  app.add_option("--default-max-tokens", default_max_tokens,
                 "max_tokens of a request that does not set it")
      ->capture_default_str();
  app.add_option("--max-tokens-limit", max_tokens_limit, "largest max_tokens a request may ask")
      ->capture_default_str();
  app.add_option("--max-request-bytes", max_request_bytes, "largest gRPC request message and OpenAI HTTP API body")
      ->capture_default_str();
  app.add_option("--max-prompt-chars", max_prompt_chars,
                 "largest prompt (bytes of text, all messages together)")
      ->capture_default_str();
  app.add_option("--sparse-mode", sparse_mode, "default sparse attention: dense, sink, quest, h2o")
      ->capture_default_str();
  app.add_option("--sparse-budget-tokens", sparse_budget_tokens,
                 "quest: tokens attended per decode step; h2o: tokens kept")
      ->capture_default_str();
  app.add_option("--sparse-sink-tokens", sparse_sink_tokens, "sink/h2o: first tokens kept")
      ->capture_default_str();
  app.add_option("--sparse-window-tokens", sparse_window_tokens,
                 "sink/h2o: most recent tokens kept")
      ->capture_default_str();
  app.add_option("--monitor-mode", monitor_mode,
                 "default information monitor: off, enforce, shadow, conclude")
      ->capture_default_str();
  app.add_option("--monitor-interval-tokens", monitor_interval_tokens,
                 "generated tokens between monitor checks")
      ->capture_default_str();
  app.add_option("--monitor-min-gain-bytes", monitor_min_gain_bytes,
                 "compressed-size growth per interval below which the monitor stops")
      ->capture_default_str();
  app.add_option("--monitor-conclusion-text", monitor_conclusion_text,
                 "conclude mode: text appended when the monitor stops");
  app.add_option("--monitor-conclusion-max-tokens", monitor_conclusion_max_tokens,
                 "conclude mode: tokens allowed after the conclusion text")
      ->capture_default_str();
  app.add_option("--auth-token", auth_token,
                 "require 'authorization: Bearer TOKEN' on Inference and Control calls");
  app.add_option("--auth-token-file", auth_token_file, "read the bearer token from this file");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain; enables TLS with --tls-key");
  app.add_option("--tls-key", tls_key, "PEM private key");
  app.add_option("--metrics-compat", metrics_compat,
                 "none, or vllm: also export vLLM's metric names, labels and buckets")
      ->check(CLI::IsMember({"none", "vllm"}))
      ->capture_default_str();
  app.add_option("--served-model-name", served_model_name,
                 "model_name label of the vLLM series (default: the model's file name)");
  app.add_option("--drain-grace-s", drain_grace_s,
                 "on SIGTERM, seconds running requests may finish before they are cancelled")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
}

absl::Status ServerOptions::Finalize() {
  LIL_RETURN_IF_ERROR(ParseSparseMode(sparse_mode).status());
  LIL_RETURN_IF_ERROR(ParseMonitorMode(monitor_mode).status());
  if (page_size <= 0) return InvalidArgument("--page-size must be > 0, got ", page_size);
  if (kv_mib <= 0) return InvalidArgument("--kv-mib must be > 0, got ", kv_mib);
  if (gpu_memory_utilization < 0.0 || gpu_memory_utilization > 1.0) {
    return InvalidArgument("--gpu-memory-utilization must be in [0, 1], got ", gpu_memory_utilization);
  }
  if (tensor_parallel < 1) return InvalidArgument("--tensor-parallel must be >= 1, got ", tensor_parallel);
  if (max_running_seqs <= 0) {
    return InvalidArgument("--max-running-seqs must be > 0, got ", max_running_seqs);
  }
  if (max_batched_tokens <= 0) {
    return InvalidArgument("--max-batched-tokens must be > 0, got ", max_batched_tokens);
  }
  if (default_max_tokens <= 0 || default_max_tokens > max_tokens_limit) {
    return InvalidArgument("--default-max-tokens must be in [1, --max-tokens-limit=",
                           max_tokens_limit, "], got ", default_max_tokens);
  }
  if (monitor_interval_tokens < 16) {
    return InvalidArgument("--monitor-interval-tokens must be >= 16, got ",
                           monitor_interval_tokens);
  }
  if (http_port < -1 || http_port > 65535) {
    return InvalidArgument("--http-port must be in [-1, 65535], got ", http_port);
  }
  if (http_threads < 1 || http_threads > 4096) {
    return InvalidArgument("--http-threads must be in [1, 4096], got ", http_threads);
  }
  if (http_host.empty()) http_host = host;
  if (tls_cert.empty() != tls_key.empty()) {
    return InvalidArgument("--tls-cert and --tls-key go together");
  }
  if (!auth_token_file.empty()) {
    std::ifstream in(auth_token_file);
    if (!in) return InvalidArgument("--auth-token-file: cannot read \"", auth_token_file, "\"");
    std::stringstream ss;
    ss << in.rdbuf();
    auth_token = std::string(absl::StripAsciiWhitespace(ss.str()));
    if (auth_token.empty()) {
      return InvalidArgument("--auth-token-file \"", auth_token_file, "\" is empty");
    }
  }
  return absl::OkStatus();
}

LoadOptions ServerOptions::ToLoadOptions() const {
  LoadOptions o;
  o.device = device == "cuda" ? DeviceKind::kCuda
             : device == "auto" ? DeviceKind::kAuto
                                : DeviceKind::kCpu;
  o.kv.page_size = page_size;
  o.kv.kv_bytes = kv_mib << 20;
  o.kv.memory_fraction = gpu_memory_utilization;
  o.tensor_parallel = tensor_parallel;
  return o;
}

SparseParams ServerOptions::DefaultSparse() const {
  SparseParams p;
  p.mode = ParseSparseMode(sparse_mode).value_or(SparseMode::kDense);
  p.budget_tokens = sparse_budget_tokens;
  p.sink_tokens = sparse_sink_tokens;
  p.window_tokens = sparse_window_tokens;
  return p;
}

MonitorParams ServerOptions::DefaultMonitor() const {
  MonitorParams p;
  p.mode = ParseMonitorMode(monitor_mode).value_or(MonitorMode::kOff);
  p.interval_tokens = monitor_interval_tokens;
  p.min_gain_bytes = monitor_min_gain_bytes;
  p.conclusion_text = monitor_conclusion_text;
  p.conclusion_max_tokens = monitor_conclusion_max_tokens;
  return p;
}

EngineLoopOptions ServerOptions::ToEngineOptions() const {
  EngineLoopOptions o;
  o.max_waiting = max_waiting;
  o.scheduler.max_running_seqs = max_running_seqs;
  o.scheduler.max_batched_tokens = max_batched_tokens;
  o.scheduler.max_model_len = max_model_len;
  o.scheduler.enable_prefix_caching = prefix_caching;
  o.scheduler.default_sparse = DefaultSparse();
  return o;
}

}  // namespace lil
