// File: engine/plan_check.h
// Validates a StepPlan against a backend's model and KV pool before anything runs, so a bad
// plan is a clear error and never an out-of-bounds access.
#pragma once

#include "absl/status/status.h"
#include "engine/model_config.h"
#include "scheduler/step_plan.h"

namespace lil {

absl::Status CheckPlan(const StepPlan& plan, const ModelConfig& config, int32_t num_pages,
                       int32_t page_size);

// UNIMPLEMENTED naming the sequence when a Quest decode step (one token, a budget below its
// resident pages, past its dense layers) has more than max_candidates resident pages: the
// CUDA backend scores a sequence's candidates in shared memory (kQuestMaxCandidates). Run
// on a plan CheckPlan accepted. The tensor-parallel driver checks it before the broadcast,
// because an error inside a rank stops the whole group.
absl::Status CheckQuestCandidates(const StepPlan& plan, const ModelConfig& config, int32_t page_size,
                                  int32_t max_candidates);

}  // namespace lil
