// File: engine/cuda/cuda_step_trace.cc
// $LILSERVE_STEP_TRACE=1 (CudaBackend::step_trace_): each graph-replayed step's host times,
// recorded at the end of Execute and summarized per batch size when the backend is destroyed.
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_util.h"

namespace lil::cuda {

void CudaBackend::RecordStepTrace(int32_t num_seqs, bool graph) {
  const int64_t end = SystemClock::Get()->NowMicros();
  // Graph replays only; a batch size gets its list with its first replay, so LogStepTrace never
  // meets an empty one (an eager step used to add it, and the summary took the median of none).
  if (graph && step_trace_prev_end_us_ > 0) {
    auto& rows = step_trace_rows_[num_seqs];
    if (rows.size() < (1u << 16)) {
      const StepClock& k = last_clock_;
      rows.push_back({k.begin_us - step_trace_prev_end_us_, k.built_us - k.begin_us, k.uploaded_us - k.built_us,
                      k.launched_us - k.uploaded_us, k.synced_us - k.launched_us, end - k.synced_us});
    }
  }
  step_trace_prev_end_us_ = end;
}

void CudaBackend::LogStepTrace() const {
  std::vector<int32_t> batches;
  for (const auto& [batch, rows] : step_trace_rows_) batches.push_back(batch);
  std::sort(batches.begin(), batches.end());
  for (int32_t batch : batches) {
    const auto& rows = step_trace_rows_.at(batch);
    std::array<int64_t, kTraceFields> med{};
    for (int k = 0; k < kTraceFields; ++k) {
      std::vector<int64_t> v;
      for (const auto& r : rows) v.push_back(r[k]);
      med[k] = MedianOf(std::move(v));
    }
    // The whole step (entry to return) too, as median / mean / max: a mean well above the
    // median is a few slow steps, not a slow path every step.
    std::vector<int64_t> total;
    size_t slowest = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      total.push_back(r[1] + r[2] + r[3] + r[4] + r[5]);
      if (total.back() > total[slowest]) slowest = i;
    }
    const auto& w = rows[slowest];
    const int64_t worst = total[slowest];
    std::sort(total.begin(), total.end());
    int64_t sum = 0;
    for (int64_t x : total) sum += x;
    LIL_LOG_INFO("step trace, batch {} ({} steps), median us: caller {}, Execute to inputs built {}, to uploads "
                 "enqueued {}, to graph enqueued {}, enqueued to synced {}, synced to return {}; whole Execute "
                 "median {} mean {}; the slowest (replay {}): {} = {} + {} + {} + {} + {}",
                 batch, rows.size(), med[0], med[1], med[2], med[3], med[4], med[5], total[total.size() / 2],
                 sum / static_cast<int64_t>(total.size()), slowest, worst, w[1], w[2], w[3], w[4], w[5]);
  }
}

}  // namespace lil::cuda
