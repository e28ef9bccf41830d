// File: scheduler/scheduler_output.h
// What Scheduler::Update returns each step: per-request deltas (tokens, streamable text,
// finish reason, usage) and the step's stats. Plain values; server/ turns them into
// stream messages and Prometheus series.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/finish_reason.h"
#include "common/ids.h"
#include "scheduler/monitor.h"
#include "scheduler/step_plan.h"

namespace lil {

inline constexpr int kNumFinishReasons = static_cast<int>(FinishReason::kError) + 1;

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;  // generated tokens, forced conclusion tokens included
  int32_t cached_tokens = 0;      // prompt tokens served by the prefix cache (first admission)
  // enforce / conclude early stops: max_tokens - completion_tokens; shadow: tokens generated
  // after the point where the monitor would have stopped; 0 otherwise.
  int32_t tokens_saved = 0;
};

// One request's news from one step. A request appears when it has new tokens, new text or
// finished; a finished request appears exactly once with `finished` set.
struct RequestOutput {
  RequestId id;
  std::vector<TokenId> new_tokens;        // sampled and forced tokens appended this step
  std::vector<float> logprobs;            // per sampled token in new_tokens (forced: 0)
  // Parallel to logprobs when sampling.logprobs > 0 (forced tokens: empty); else empty.
  std::vector<std::vector<TokenLogprob>> top_logprobs;
  // Streamable UTF-8 delta: text that may still turn into a stop string is held back until
  // it cannot; a matched stop string and everything after it are never sent.
  std::string text;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  Usage usage;                            // set when finished
  int64_t queue_micros = -1;              // set when finished: arrival to first scheduled (-1: never ran)
  std::string stop_match;                 // kStopSequence: the stop string that matched
  TokenId stop_token = -1;                // kStop: the EOS / stop token id that ended it
  std::vector<MonitorCheck> monitor_trace;  // set when finished (monitor not off)
  std::optional<int32_t> monitor_stop_at;   // generated-token index where the monitor said stop
};

// Counters of one step (gauges are the state after the step's Update).
struct SchedulerStats {
  int64_t step = 0;
  // Requests.
  int32_t num_running = 0;
  int32_t num_waiting = 0;    // includes preempted requests waiting to resume
  int32_t num_preempted = 0;  // waiting requests that were preempted at least once
  int32_t preemptions = 0;    // preemptions this step
  // Pages: used + free + cached == total.
  int32_t pages_total = 0;
  int32_t pages_used = 0;     // reference count > 0
  int32_t pages_free = 0;     // on the free list
  int32_t pages_cached = 0;   // reference count 0 but kept for the prefix cache (evictable)
  int32_t pages_evicted = 0;  // cached pages evicted this step to satisfy allocations
  int32_t pages_freed_by_policy = 0;  // sink / h2o pages released this step
  int32_t prefix_cache_hit_tokens = 0;  // prompt tokens served from the cache this step
  // Tokens.
  int32_t tokens_scheduled = 0;  // input tokens in this step's plan (<= max_batched_tokens)
  int32_t prefill_tokens = 0;    // of which in multi-token chunks
  int32_t decode_seqs = 0;       // sequences with a one-token decode step
  // Sparse selection on decode steps: pages the engine attended (from StepResult) and pages
  // resident in those sequences' tables.
  int64_t decode_pages_attended = 0;
  int64_t decode_pages_resident = 0;
  // Information-monitor checks run this step and their time on the scheduler's clock.
  int32_t monitor_checks = 0;
  int64_t monitor_check_micros = 0;
  // Finishes this step, indexed by static_cast<int>(FinishReason).
  std::array<int32_t, kNumFinishReasons> finished_by_reason{};
};

struct UpdateOutput {
  std::vector<RequestOutput> requests;
  SchedulerStats stats;
};

}  // namespace lil
