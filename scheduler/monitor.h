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

#include "absl/status/status.h"
#include "scheduler/deflate_size.h"
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

// How a check measures the growth of the output's compressed size (docs/MONITOR.md).
enum class MonitorGrowth {
  // size(H + C) - size(H), where C is the text since the previous check and H the last
  // 32 KiB before it. O(64 KiB) per check however long the output; holds H + C only.
  // DEFLATE cannot match further back than 32 KiB, but its block boundaries and Huffman
  // codes still depend on older text, so past 32 KiB of output this differs from the
  // whole-output growth by a few bytes (measured: docs/MONITOR.md).
  kWindowed,
  // A live DEFLATE stream of the whole output, forked and finished at each check: exactly
  // the whole-output size, for the chunk's compression plus a ~256 KiB state copy per
  // check, and ~268 KiB of zlib state per request.
  kExactStream,
};

// With kWindowed only H + C is kept in memory, so `compressed_bytes` in the trace is the
// first check's whole-output size plus the running sum of gains since then; with
// kExactStream it is the whole output's size.
class InfoMonitor {
 public:
  // Parameters the rule can run with: interval_tokens >= 1 (the constructor clamps a bad
  // value to 1 so a monitor never divides by zero; callers validate first).
  static absl::Status Validate(const MonitorParams& params);

  explicit InfoMonitor(const MonitorParams& params,
                       MonitorGrowth growth = MonitorGrowth::kExactStream);

  // Feeds the detokenized UTF-8 text of `num_tokens` newly generated tokens (text may be
  // empty while a multi-byte character is incomplete). Returns kStop when a check finds the
  // gain below the (scaled) threshold; once stopped it keeps returning kStop.
  MonitorDecision Observe(std::string_view text, int32_t num_tokens);

  int32_t generated_tokens() const { return generated_tokens_; }
  const std::vector<MonitorCheck>& trace() const { return trace_; }
  // The generated-token count at which the rule first said stop, if it has.
  std::optional<int32_t> stop_at_token() const { return stop_at_token_; }
  // OK unless zlib failed (out of memory); the monitor then stops checking (it never stops
  // the request) and keeps the error here.
  const absl::Status& status() const { return status_; }
  // Bytes of text held: 32 KiB + the text of one interval at most (kWindowed), the text of
  // one interval (kExactStream, which also holds ~268 KiB of zlib state).
  size_t held_bytes() const { return text_.size(); }

 private:
  void Check();
  // The output's compressed size now (for kWindowed: the previous size plus the windowed
  // growth); both consume the text since the previous check.
  absl::StatusOr<int64_t> MeasureWindowed();
  absl::StatusOr<int64_t> MeasureExact();
  // gain * interval < min_gain * tokens, in integers: the threshold scaled to the tokens
  // since the previous check.
  bool BelowThreshold(int64_t gain_bytes, int32_t tokens_since_check) const;

  MonitorParams params_;
  MonitorGrowth growth_;
  DeflateStream stream_;  // kExactStream only
  // kWindowed: the last <= 32 KiB of text before the previous check, then the text since
  // it; kExactStream: the text since the previous check.
  std::string text_;
  size_t checked_bytes_ = 0;       // offset in text_ of the previous check point
  int32_t generated_tokens_ = 0;
  int32_t checked_tokens_ = 0;     // generated_tokens_ at the previous check
  int64_t last_compressed_ = -1;   // compressed size at the previous check (-1: none yet)
  std::vector<MonitorCheck> trace_;
  std::optional<int32_t> stop_at_token_;
  absl::Status status_;
};

}  // namespace lil
