// File: scheduler/monitor.cc
// The information monitor's rule (see monitor.h and docs/MONITOR.md).
#include "scheduler/monitor.h"

#include <algorithm>

#include "common/status.h"

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

InfoMonitor::InfoMonitor(const MonitorParams& params, MonitorGrowth growth)
    : params_(params), growth_(growth) {
  params_.interval_tokens = std::max(params_.interval_tokens, 1);
}

MonitorDecision InfoMonitor::Observe(std::string_view text, int32_t num_tokens) {
  if (stop_at_token_.has_value()) {
    // Stopped: keep counting (the scheduler may run on in shadow mode) but hold no text.
    if (num_tokens > 0) generated_tokens_ += num_tokens;
    return MonitorDecision::kStop;
  }
  // A monitor whose compressor failed (out of memory) never stops the request.
  if (!status_.ok()) return MonitorDecision::kContinue;
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

absl::StatusOr<int64_t> InfoMonitor::MeasureWindowed() {
  DeflateSizer& sizer = DeflateSizer::ThreadLocal();
  // First check: text_ still holds the whole output.
  if (last_compressed_ < 0) return sizer.Size(text_);
  const size_t history_start =
      checked_bytes_ > kDeflateWindowBytes ? checked_bytes_ - kDeflateWindowBytes : 0;
  std::string_view all(text_);
  LIL_ASSIGN_OR_RETURN(DeflatePairSizes sizes,
                       sizer.PairSizes(all.substr(history_start, checked_bytes_ - history_start),
                                       all.substr(checked_bytes_)));
  return last_compressed_ + (sizes.whole_bytes - sizes.prefix_bytes);
}

absl::StatusOr<int64_t> InfoMonitor::MeasureExact() {
  LIL_RETURN_IF_ERROR(stream_.Append(text_));
  return stream_.FinishedSize();
}

void InfoMonitor::Check() {
  absl::StatusOr<int64_t> size =
      growth_ == MonitorGrowth::kWindowed ? MeasureWindowed() : MeasureExact();
  if (!size.ok()) {
    status_ = size.status();
    text_.clear();
    text_.shrink_to_fit();
    return;
  }
  const int32_t tokens_since_check = generated_tokens_ - checked_tokens_;
  MonitorCheck check;
  check.generated_tokens = generated_tokens_;
  check.compressed_bytes = *size;
  if (last_compressed_ >= 0) {  // the first check only records
    check.gain_bytes = *size - last_compressed_;
    if (BelowThreshold(check.gain_bytes, tokens_since_check)) {
      stop_at_token_ = generated_tokens_;
    }
  }
  trace_.push_back(check);
  last_compressed_ = check.compressed_bytes;
  checked_tokens_ = generated_tokens_;
  // Keep only what the next check needs: the window before this check point (kWindowed)
  // or nothing (kExactStream: the stream has it). Once stopped, nothing.
  const size_t keep = growth_ == MonitorGrowth::kWindowed && !stop_at_token_.has_value()
                          ? std::min(text_.size(), kDeflateWindowBytes)
                          : 0;
  text_.erase(0, text_.size() - keep);
  if (keep == 0) text_.shrink_to_fit();
  checked_bytes_ = text_.size();
}

}  // namespace lil
