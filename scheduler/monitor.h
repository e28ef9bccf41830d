// File: scheduler/monitor.h
// The information monitor ("Less is Less", arXiv 2601.03043; DESIGN.md §1): watches the
// growth of the DEFLATE-compressed size of a request's generated text and says when it has
// stalled. Pure: no threads, no I/O. The scheduler applies the request's mode (enforce,
// shadow, conclude) to its decisions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/request_params.h"

namespace lil {

// One check of the rule: at `generated_tokens`, the output compressed to `compressed_bytes`,
// `gain_bytes` more than at the previous check (the first check records gain 0).
struct MonitorCheck {
  int32_t generated_tokens = 0;
  int64_t compressed_bytes = 0;
  int64_t gain_bytes = 0;
};

enum class MonitorDecision { kContinue, kStop };

class InfoMonitor {
 public:
  explicit InfoMonitor(const MonitorParams& params);

  // Feeds the detokenized UTF-8 text of `num_tokens` newly generated tokens (text may be
  // empty while a multi-byte character is incomplete). Returns kStop when a check finds the
  // gain below the (scaled) threshold; once stopped it keeps returning kStop.
  MonitorDecision Observe(std::string_view text, int32_t num_tokens);

  int32_t generated_tokens() const { return generated_tokens_; }
  const std::vector<MonitorCheck>& trace() const { return trace_; }
  // The generated-token count at which the rule first said stop, if it has.
  std::optional<int32_t> stop_at_token() const { return stop_at_token_; }

 private:
  MonitorParams params_;
  std::string text_;  // generated text (the compressor reads only its last 32 KiB + chunk)
  size_t checked_bytes_ = 0;       // text_.size() at the previous check
  int32_t generated_tokens_ = 0;
  int32_t checked_tokens_ = 0;     // generated_tokens_ at the previous check
  int64_t last_compressed_ = -1;   // compressed size at the previous check (-1: none yet)
  std::vector<MonitorCheck> trace_;
  std::optional<int32_t> stop_at_token_;
};

}  // namespace lil
