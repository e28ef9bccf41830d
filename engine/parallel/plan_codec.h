// File: engine/parallel/plan_codec.h
// The StepPlan as bytes, for rank 0 to broadcast to the other ranks of a tensor-parallel
// group through Communicator::Broadcast (in one process or, later, across processes).
// It carries what the forward pass reads: ids, tokens, positions, page tables, sparse
// parameters, which rows need logits, released requests, and the sampling parameters. Rank 0
// alone samples, but a backend may shape the step by them (the CUDA backend keys its graphs
// by whether a row draws on the GPU), and every rank must shape it alike: a worker that read
// default parameters (temperature 1) captured its graphs at other steps than rank 0 and the
// ranks' collectives fell out of step (the TP=2 daemon hung at its first sampled request).
#pragma once

#include <cstdint>
#include <string>

#include <optional>

#include "absl/status/statusor.h"
#include "engine/parallel/communicator.h"
#include "scheduler/step_plan.h"

namespace lil {

std::string EncodePlanForRanks(const StepPlan& plan);
// DATA_LOSS when the bytes are truncated or malformed.
absl::StatusOr<StepPlan> DecodePlanForRanks(const std::string& bytes);

// The host control plane of a tensor-parallel driver (the CPU and the CUDA one): rank 0
// broadcasts a fixed header (step or stop, payload size), then the encoded plan; the other
// ranks receive them in the same two Broadcasts. BroadcastStop ends the workers' loops.
absl::Status BroadcastPlan(Communicator& rank0, const StepPlan& plan);
absl::Status BroadcastStop(Communicator& rank0);
// A worker's side: the next plan, nullopt on stop; an error when the group was aborted or
// the bytes do not decode.
absl::StatusOr<std::optional<StepPlan>> ReceivePlan(Communicator& worker);

}  // namespace lil
