// File: scheduler/monitor.cc
// The information monitor's rule (see monitor.h and docs/MONITOR.md).
#include "scheduler/monitor.h"

#include <algorithm>

#include "common/status.h"
#include "scheduler/deflate_size.h"

namespace lil {

absl::Status InfoMonitor::Validate(const MonitorParams& params) {
  if (params.interval_tokens < 1) {
    return InvalidArgument("monitor interval_tokens must be >= 1, got ", params.interval_tokens);
  }
  if (params.min_gain_bytes < 0) {
    return InvalidArgument("monitor min_gain_bytes must be >= 0, got ", params.min_gain_bytes);
  }
  return absl::OkStatus();
}

InfoMonitor::InfoMonitor(const MonitorParams& params) : params_(params) {
  params_.interval_tokens = std::max(params_.interval_tokens, 1);
}

MonitorDecision InfoMonitor::Observe(std::string_view text, int32_t num_tokens) {
  if (stop_at_token_.has_value()) {
    // Stopped: keep counting (the scheduler may run on in shadow mode) but hold no text.
    if (num_tokens > 0) generated_tokens_ += num_tokens;
    return MonitorDecision::kStop;
  }
  text_.append(text);
  if (num_tokens <= 0) return MonitorDecision::kContinue;
  generated_tokens_ += num_tokens;
  // One check per call however many check points it crossed; the threshold is scaled to
  // the tokens since the previous check.
  if (generated_tokens_ - checked_tokens_ >= params_.interval_tokens) Check();
  return stop_at_token_.has_value() ? MonitorDecision::kStop : MonitorDecision::kContinue;
}

bool InfoMonitor::BelowThreshold(int64_t gain_bytes, int32_t tokens_since_check) const {
  return gain_bytes * params_.interval_tokens <
         static_cast<int64_t>(params_.min_gain_bytes) * tokens_since_check;
}

void InfoMonitor::Check() {
  DeflateSizer& sizer = DeflateSizer::ThreadLocal();
  const int32_t tokens_since_check = generated_tokens_ - checked_tokens_;
  MonitorCheck check;
  check.generated_tokens = generated_tokens_;
  if (last_compressed_ < 0) {
    // First check: text_ still holds the whole output. It only records.
    absl::StatusOr<int64_t> size = sizer.Size(text_);
    if (!size.ok()) {
      if (status_.ok()) status_ = size.status();
      return;
    }
    check.compressed_bytes = *size;
  } else {
    const size_t history_start =
        checked_bytes_ > kDeflateWindowBytes ? checked_bytes_ - kDeflateWindowBytes : 0;
    std::string_view all(text_);
    absl::StatusOr<DeflatePairSizes> sizes =
        sizer.PairSizes(all.substr(history_start, checked_bytes_ - history_start),
                        all.substr(checked_bytes_));
    if (!sizes.ok()) {
      if (status_.ok()) status_ = sizes.status();
      return;
    }
    check.gain_bytes = sizes->whole_bytes - sizes->prefix_bytes;
    check.compressed_bytes = last_compressed_ + check.gain_bytes;
    if (BelowThreshold(check.gain_bytes, tokens_since_check)) {
      stop_at_token_ = generated_tokens_;
    }
  }
  trace_.push_back(check);
  last_compressed_ = check.compressed_bytes;
  checked_tokens_ = generated_tokens_;
  // Keep only the window the next check needs as history.
  if (text_.size() > kDeflateWindowBytes) text_.erase(0, text_.size() - kDeflateWindowBytes);
  checked_bytes_ = text_.size();
  if (stop_at_token_.has_value()) {
    text_.clear();
    text_.shrink_to_fit();
    checked_bytes_ = 0;
  }
}

}  // namespace lil
