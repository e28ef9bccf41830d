// File: engine/parallel/plan_codec.h
// The StepPlan as bytes, for rank 0 to broadcast to the other ranks of a tensor-parallel
// group through Communicator::Broadcast (in one process or, later, across processes).
// It carries what the forward pass reads: ids, tokens, positions, page tables, sparse
// parameters, which rows need logits, released requests. Sampling parameters stay on rank 0,
// the only rank that samples, so a worker rank cannot make a sampling decision of its own.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/step_plan.h"

namespace lil {

std::string EncodePlanForRanks(const StepPlan& plan);
// DATA_LOSS when the bytes are truncated or malformed.
absl::StatusOr<StepPlan> DecodePlanForRanks(const std::string& bytes);

}  // namespace lil
