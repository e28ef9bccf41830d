// File: engine/backend.h
// A backend runs StepPlans on one device: it owns the weights on that device, the paged KV
// pools and the per-request state it needs (token history for repetition penalty, seeds).
// The CPU backend is built in; the CUDA backend lives in a module loaded at run time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "scheduler/step_plan.h"

namespace lil {

struct KvCacheOptions {
  int32_t page_size = 16;
  int32_t num_pages = 0;          // 0: derive from kv_bytes
  int64_t kv_bytes = 256LL << 20;  // pool size when num_pages is 0
  // GPU backends: when > 0, the share of the device's total memory the process may use
  // (weights, activations and KV together, like vLLM's --gpu-memory-utilization); the KV pool
  // gets what is left after the weights and a working reserve. Beats kv_bytes. CPU: ignored.
  double memory_fraction = 0.0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual int32_t num_pages() const = 0;
  virtual int32_t page_size() const = 0;
  // Runs one step. A malformed plan is an INVALID_ARGUMENT naming the sequence and field;
  // it changes no state.
  virtual absl::StatusOr<StepResult> Execute(const StepPlan& plan) = 0;
  // OK while steps can run; the reason once the backend stopped for good (a tensor-parallel
  // group aborted after a rank's error or a step past its watchdog): every later Execute
  // fails, and the daemon reports NOT_SERVING (EngineLoop::SetBackendLostObserver).
  virtual absl::Status Usable() const { return absl::OkStatus(); }
};

// Bytes of KV (keys + values, all layers) one page holds at this element size.
int64_t KvBytesPerPage(const ModelConfig& c, int32_t page_size, int32_t bytes_per_element);

// $LILSERVE_QUEST_FP8=1: both backends keep Quest's page min / max as e4m3 values rounded
// outward (kernels/quest_fp8.h; the CUDA backend only for head_dim a multiple of 8).
bool QuestE4m3Requested();

}  // namespace lil
