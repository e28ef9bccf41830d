// File: server/server_options.h
// Every setting of the lilserve daemon in one plain struct, and the CLI11 flags that fill
// it (`lilserve --help` prints them; --config reads the same keys from an INI/TOML file).
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/engine_loop.h"
#include "engine/model.h"
#include "scheduler/request_params.h"

namespace lil {

struct ServerOptions {
  // Model and device.
  std::string model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string device = "cpu";
  // Network.
  std::string host = "0.0.0.0";
  int32_t port = 50051;          // gRPC
  int32_t metrics_port = 9090;   // HTTP /metrics, /health, /ready; 0 disables it
  std::string metrics_host = "0.0.0.0";
  int32_t http_port = -1;        // OpenAI-compatible HTTP API (docs/OPENAI.md); -1 disables it
  std::string http_host;         // default: --host
  int32_t http_threads = 64;     // HTTP connections served at once
  // Batching and KV cache.
  int32_t max_running_seqs = 64;
  int32_t max_batched_tokens = 2048;
  int32_t max_waiting = 1024;
  int32_t max_model_len = 8192;  // capped at the model's context
  int32_t page_size = 16;
  int64_t kv_mib = 256;
  double gpu_memory_utilization = 0.0;  // CUDA: > 0 sizes the KV cache from a memory share
  int32_t tensor_parallel = 1;
  bool prefix_caching = true;
  // Request defaults and limits.
  int32_t default_max_tokens = 256;
  int32_t max_tokens_limit = 32768;
  int32_t max_request_bytes = 4 << 20;  // gRPC receive limit
  int32_t max_prompt_chars = 1 << 20;
  // Sparse attention defaults (per request override in SparseParams).
  std::string sparse_mode = "dense";
  int32_t sparse_budget_tokens = 512;
  int32_t sparse_sink_tokens = 64;
  int32_t sparse_window_tokens = 256;
  // Information monitor defaults.
  std::string monitor_mode = "off";
  int32_t monitor_interval_tokens = 250;
  int32_t monitor_min_gain_bytes = 20;
  std::string monitor_conclusion_text = "\n</think>\n\nFinal answer:";
  int32_t monitor_conclusion_max_tokens = 64;
  // Security.
  std::string auth_token;       // bearer token required on Inference/Control when non-empty
  std::string auth_token_file;  // read the token from this file (beats --auth-token)
  std::string tls_cert;         // PEM certificate chain; with tls_key enables TLS
  std::string tls_key;
  // Metrics.
  std::string metrics_compat = "none";  // "vllm": also export vLLM's names
  std::string served_model_name;        // model_name label of vLLM series (default: file name)
  // Lifecycle.
  double drain_grace_s = 30.0;
  std::string log_level = "info";

  // Registers every flag on `app`.
  void AddFlags(CLI::App& app);
  // Checks cross-field constraints and reads auth_token_file.
  absl::Status Finalize();

  LoadOptions ToLoadOptions() const;
  EngineLoopOptions ToEngineOptions() const;
  SparseParams DefaultSparse() const;   // valid after Finalize
  MonitorParams DefaultMonitor() const;
};

absl::StatusOr<SparseMode> ParseSparseMode(const std::string& s);
absl::StatusOr<MonitorMode> ParseMonitorMode(const std::string& s);

}  // namespace lil
