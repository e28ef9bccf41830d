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

}  // namespace lil
