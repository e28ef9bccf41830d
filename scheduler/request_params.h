// File: scheduler/request_params.h
// Per-request options as plain values: sampling, stopping, sparse attention and the
// information monitor. The server fills them from the API (unset fields take the server's
// defaults); the scheduler and the engine read them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ids.h"

namespace lil {

struct SamplingParams {
  float temperature = 1.0f;         // 0 means greedy
  int32_t top_k = 0;                // 0 means off
  float top_p = 1.0f;               // in (0, 1]
  float min_p = 0.0f;               // in [0, 1)
  float repetition_penalty = 1.0f;  // > 0; 1 means off (HF semantics, over prompt + output)
  std::optional<uint64_t> seed;     // same seed, same output, whatever the batch
  int32_t logprobs = 0;             // top logprobs to return per token (0: only the sampled one's)
};

struct StoppingParams {
  int32_t max_tokens = 256;             // generated tokens at most
  int32_t min_tokens = 0;               // EOS and stop strings are ignored before this many
  std::vector<std::string> stop;        // stop strings, matched on detokenized text
  std::vector<TokenId> stop_token_ids;  // extra token ids that end the request
  bool ignore_eos = false;
  int64_t time_limit_ms = 0;            // 0 means none; otherwise a deadline from arrival
};

enum class SparseMode { kDense = 0, kSink, kQuest, kH2O };

// Budgets are in tokens and rounded to whole pages by the scheduler.
struct SparseParams {
  SparseMode mode = SparseMode::kDense;
  int32_t budget_tokens = 0;   // quest / h2o: tokens attended (quest) or kept (h2o)
  int32_t sink_tokens = 0;     // sink / h2o: first tokens always kept
  int32_t window_tokens = 0;   // sink / h2o: most recent tokens always kept
  int32_t dense_layers = 2;    // quest: the first layers attend densely
};

enum class MonitorMode { kOff = 0, kEnforce, kShadow, kConclude };

// The information monitor's rule, see ../shared/DESIGN.md section 1.
struct MonitorParams {
  MonitorMode mode = MonitorMode::kOff;
  int32_t interval_tokens = 250;
  int32_t min_gain_bytes = 20;
  std::string conclusion_text;         // conclude mode: appended on a stop
  int32_t conclusion_max_tokens = 64;  // conclude mode: tokens allowed after the text
};

}  // namespace lil
