// File: scheduler/request.h
// One request's scheduler-side state. The sequence is prompt + generated (+ forced
// conclusion) tokens; num_computed_tokens is how much of it has KV in the pages.
//
//   tokens:  [ prompt ........ | generated/forced ... ]
//            ^0                ^num_prompt_tokens     ^num_tokens()
//   computed [0, num_computed_tokens)   next step runs [num_computed, num_computed + n)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/finish_reason.h"
#include "common/ids.h"
#include "scheduler/monitor.h"
#include "scheduler/request_params.h"
#include "scheduler/stop_strings.h"

namespace lil {

enum class RequestState { kWaiting, kRunning, kPreempted, kFinished };

enum class KillFlag { kNone, kCancel, kAbort };

struct Request {
  Request(RequestId id, std::vector<TokenId> prompt, std::vector<std::string> stops)
      : id(id), tokens(std::move(prompt)), stop_matcher(std::move(stops)) {
    num_prompt_tokens = static_cast<int32_t>(tokens.size());
  }

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t num_generated() const { return num_tokens() - num_prompt_tokens; }

  RequestId id;
  std::vector<TokenId> tokens;
  int32_t num_prompt_tokens = 0;
  int32_t num_computed_tokens = 0;

  SamplingParams sampling;
  StoppingParams stopping;
  SparseParams sparse;  // rounded to pages
  MonitorParams monitor_params;
  int32_t priority = 0;
  int64_t arrival_micros = 0;
  int64_t first_scheduled_micros = -1;  // when a plan first included it (queue time ends)
  int64_t deadline_micros = 0;  // 0: none
  uint64_t seq_no = 0;          // arrival order tiebreak

  RequestState state = RequestState::kWaiting;
  bool ever_preempted = false;
  int32_t plan_slot = -1;  // index in the plan being built / outstanding; -1 when none
  uint64_t output_epoch = 0;  // output_slot is valid while this equals the scheduler's epoch
  int32_t output_slot = -1;
  int32_t plan_resident_pages = 0;  // valid slots in the planned page table (decode stats)
  KillFlag kill = KillFlag::kNone;

  std::vector<PageId> page_table;  // logical page -> PageId (kNoPage: freed / none)
  std::vector<uint64_t> prompt_page_hashes;  // chained hashes of full prompt pages
  int32_t num_registered_pages = 0;          // prompt pages offered to the prefix cache
  int32_t cached_tokens = 0;                 // prefix-cache hit at first admission
  bool admitted_once = false;
  std::vector<float> page_mass;              // h2o accumulated attention mass per page
  bool policy_dirty = true;                  // sink/h2o: run a full pass at the next decode

  StopStringMatcher stop_matcher;
  std::unique_ptr<InfoMonitor> monitor;  // null when the mode is off
  bool concluding = false;               // conclude mode: monitor fired, text appended
  int32_t conclusion_tokens_left = 0;    // sampled tokens still allowed after the text
};

}  // namespace lil
