// File: engine/engine_loop.h
// The engine loop: one thread owns the Scheduler and the model's Backend (DESIGN.md §3).
// Requests enter through a thread-safe inbox; each step the loop admits them, plans, runs,
// detokenizes and applies the result; deltas leave through per-request RequestStreams.
// Cancel/Abort reach the scheduler at the start of the next step.
//
//   any thread:  Submit(req) -> inbox --+
//                Cancel/Abort(id) ------+--> [engine thread] Schedule -> Execute -> Update
//   consumers  <- RequestStream (outbox) <----------------------------------------+
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "engine/model.h"
#include "engine/request_stream.h"
#include "scheduler/scheduler.h"

namespace lil {

struct EngineLoopOptions {
  SchedulerOptions scheduler;  // page_size / num_pages are taken from the backend
  int32_t max_waiting = 4096;  // Submit fails with RESOURCE_EXHAUSTED beyond this many queued
};

// What the engine did in one step, for metrics (server/ turns it into Prometheus series).
struct StepReport {
  SchedulerStats stats;
  int64_t step_micros = 0;      // Schedule + Execute + Update
  int64_t execute_micros = 0;   // the backend alone
  std::vector<RequestOutput> finished;  // requests that finished this step (copies)
};

class EngineLoop {
 public:
  EngineLoop(Model* model, EngineLoopOptions options);
  ~EngineLoop();  // Stop()s

  absl::Status Start();
  // Cancels every live request (kCancelled) and joins the thread.
  void Stop();

  // Any thread. Assigns request.id when it is zero. Fails fast (RESOURCE_EXHAUSTED) when the
  // inbox is full; field validation happens on the engine thread and a rejection arrives as
  // the stream's error (RequestStream::error()) with finish reason kError.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(SchedulerRequest request);
  void Cancel(RequestId id);
  void Abort(RequestId id);

  // Any thread: called on the engine thread after every step that did work. Set before Start.
  void SetStepObserver(std::function<void(const StepReport&)> observer) { observer_ = std::move(observer); }
  // Called once, on the engine thread, when a failed step leaves the backend unusable for good
  // (Backend::Usable: a tensor-parallel group aborted); the server turns NOT_SERVING. Set
  // before Start.
  void SetBackendLostObserver(std::function<void(const absl::Status&)> observer) {
    backend_lost_ = std::move(observer);
  }

  // Any thread: a snapshot of the load.
  struct Load {
    int32_t running = 0, waiting = 0, pages_used = 0, pages_free = 0, pages_cached = 0;
    int32_t pages_total = 0;
  };
  Load load() const;
  Model& model() { return *model_; }

 private:
  struct Inbox {
    std::vector<std::pair<SchedulerRequest, std::shared_ptr<RequestStream>>> requests;
    std::vector<RequestId> cancels, aborts;
  };
  void Run();
  void DrainInbox();
  void Step();
  void FailPlan(const StepPlan& plan, const absl::Status& status);
  std::function<void(const absl::Status&)> backend_lost_;
  bool backend_lost_reported_ = false;  // engine thread only

  Model* model_;
  EngineLoopOptions options_;
  std::unique_ptr<Scheduler> scheduler_;  // engine thread only
  absl::flat_hash_map<RequestId, std::shared_ptr<RequestStream>> streams_;      // engine thread only
  absl::flat_hash_map<RequestId, std::unique_ptr<IncrementalDetokenizer>> detok_;  // engine thread only
  std::function<void(const StepReport&)> observer_;

  mutable absl::Mutex mu_;
  Inbox inbox_ ABSL_GUARDED_BY(mu_);
  int32_t inbox_size_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Load load_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_id_{1};
  std::thread thread_;
};

}  // namespace lil
