// File: scheduler/scheduler.h
// The continuous-batching scheduler: a deterministic step function over requests and KV
// pages (no threads, no I/O, time from an injected Clock). Engine-thread only.
//
//   loop:  plan = Schedule();  result = engine.Execute(plan);  (detokenize result text)
//          out = Update(plan, result);   // always, even when plan.seqs is empty
//
// A request has num_computed_tokens catching up to num_tokens (prompt + generated +
// forced) under a per-step token budget, so chunked prefill, decode and recompute after
// preemption are one rule. See docs/SCHEDULER.md.
#pragma once

#include <cstdint>
#include <utility>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/status.h"
#include "scheduler/block_manager.h"
#include "scheduler/request.h"
#include "scheduler/request_params.h"
#include "scheduler/scheduler_output.h"
#include "scheduler/step_plan.h"

namespace lil {

struct SchedulerOptions {
  int32_t page_size = 16;             // tokens per KV page
  int32_t num_pages = 4096;           // pages in the pool (the engine allocates as many)
  int32_t max_running_seqs = 256;     // sequences in one step at most
  int32_t max_batched_tokens = 2048;  // input tokens in one step at most
  int32_t max_model_len = 8192;       // prompt + generated tokens at most
  bool enable_chunked_prefill = true;  // off: a prompt is admitted only if it fits whole
  bool enable_prefix_caching = true;
  std::vector<TokenId> eos_token_ids;  // end a request unless ignore_eos
  SparseParams default_sparse;         // used when a request has no override
  // h2o: accumulated page mass = decay * mass + new mass each step (1.0: plain sum, as in
  // the H2O paper's accumulated attention score).
  float h2o_decay = 1.0f;
  // Conclude mode: turns a request's conclusion_text into tokens (forced input). Required
  // only for requests in conclude mode with a non-empty conclusion_text.
  std::function<std::vector<TokenId>(std::string_view)> tokenize;
  const Clock* clock = nullptr;  // nullptr: SystemClock::Get()
};

// What the server hands the scheduler for one new request.
struct SchedulerRequest {
  RequestId id;
  std::vector<TokenId> prompt;
  SamplingParams sampling;
  StoppingParams stopping;
  std::optional<SparseParams> sparse;  // nullopt: SchedulerOptions::default_sparse
  MonitorParams monitor;
  int32_t priority = 0;          // higher runs first; equal priority is FCFS by arrival
  int64_t arrival_micros = -1;   // -1: the clock's now
  int64_t deadline_micros = 0;   // absolute (e.g. the gRPC deadline); 0: none. The earlier
                                 // of this and arrival + stopping.time_limit_ms applies.
};

class Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(SchedulerOptions options);

  // Validates and queues a request: InvalidArgument names the field and value (empty
  // prompt, prompt longer than max_model_len, max_tokens <= 0, a sparse budget too small
  // for its sink + window, ...); AlreadyExists for a live id.
  absl::Status AddRequest(SchedulerRequest request);

  // Cancel (client went away) and Abort (Abort RPC): take effect at the next Schedule or
  // Update, which reports the finish once. NotFound when the id is unknown or finished.
  absl::Status Cancel(RequestId id);
  absl::Status Abort(RequestId id);

  // Plans one step: running requests first (decodes, then unfinished prefill chunks), then
  // waiting ones by priority and arrival, within max_running_seqs and max_batched_tokens.
  // Preempts (recompute) the lowest-priority newest running request when pages run out.
  StepPlan Schedule();

  // Applies the engine's result for `plan` (the last plan Schedule returned): appends
  // tokens, checks stop conditions, runs the monitor, frees pages of finished requests.
  // FailedPrecondition / InvalidArgument when the plan is stale or the result does not
  // match it (nothing is applied then).
  absl::StatusOr<UpdateOutput> Update(const StepPlan& plan, const StepResult& result);

  // Optional: hands back an applied plan so the next Schedule reuses its buffers (page
  // tables and token vectors keep their capacity). Cuts Schedule's time at 1,024 running
  // requests by avoiding ~2,000 allocations per step; see bench/scheduler_bench.cc.
  void Recycle(StepPlan plan) { spare_plan_ = std::move(plan); }

  // Introspection (tests, stats, the server's load report).
  bool HasUnfinished() const { return !requests_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int32_t num_pages_used() const { return blocks_.num_used(); }
  int32_t num_pages_free() const { return blocks_.num_free(); }
  int32_t num_pages_cached() const { return blocks_.num_cached(); }
  std::optional<RequestState> GetState(RequestId id) const;
  // The request's page table (kNoPage for freed slots); empty when unknown.
  std::vector<PageId> PageTable(RequestId id) const;
  const SchedulerOptions& options() const { return options_; }
  const BlockManager& block_manager() const { return blocks_; }

 private:
  explicit Scheduler(SchedulerOptions options);

  // Schedule side (scheduler.cc).
  void FinishKilledAndExpired();
  void ScheduleRunning(StepPlan& plan, int32_t& budget, bool decodes);
  void ScheduleWaiting(StepPlan& plan, int32_t& budget);
  int32_t TakePrefixHits(Request& req);
  bool AllocateFor(Request& req, int32_t num_tokens);
  // Makes room for `req` to run `num_tokens`; false when req itself was preempted/finished.
  bool MakeRoom(StepPlan& plan, int32_t& budget, Request& req, int32_t num_tokens);
  void Preempt(StepPlan& plan, int32_t& budget, Request& req);
  void ApplySparsePolicy(Request& req, int32_t len);
  void AddToPlan(StepPlan& plan, Request& req, int32_t num_tokens);
  void InsertSorted(std::deque<Request*>& q, Request* req);
  void InsertRunning(Request* req);
  void ReleasePages(Request& req);

  // Update side (scheduler_update.cc).
  absl::Status ValidateResult(const StepPlan& plan, const StepResult& result) const;
  void ApplySeq(const ScheduledSeq& seq, const SeqOutput& out, Request& req);
  bool CheckStops(Request& req, const SeqOutput& out, RequestOutput& o);
  void RunMonitor(Request& req, const SeqOutput& out);
  void StartConclusion(Request& req);
  void RegisterFullPromptPages(Request& req);
  void Finish(Request& req, FinishReason reason);
  RequestOutput& OutputFor(Request& req);
  void EraseFinished();
  void FillStats(SchedulerStats& stats) const;
  bool Expired(const Request& req, int64_t now) const {
    return req.deadline_micros > 0 && now >= req.deadline_micros;
  }

  SchedulerOptions options_;
  const Clock* clock_;
  BlockManager blocks_;
  absl::flat_hash_map<RequestId, std::unique_ptr<Request>> requests_;
  // Both sorted by priority desc, arrival asc, seq_no asc: the back of running_ is the
  // preemption victim, the front of waiting_ the next admission.
  std::deque<Request*> waiting_;
  std::deque<Request*> running_;
  std::vector<Request*> in_flight_;  // parallel to the outstanding plan's seqs
  int64_t step_ = 0;
  uint64_t next_seq_ = 0;
  bool plan_outstanding_ = false;
  StepPlan spare_plan_;
  // Outputs of the step in progress (finishes found in Schedule wait here for Update).
  std::vector<RequestOutput> outputs_;
  uint64_t output_epoch_ = 1;  // outputs_ belongs to this epoch (bumped by each Update)
  std::vector<RequestId> released_;   // for the next plan
  std::vector<RequestId> finished_;   // to erase at the end of the pass
  SchedulerStats step_stats_;         // counters of the step in progress
  // Sweeps touch only these, not every request: ids with a pending Cancel/Abort, and a
  // min-heap of (deadline, id) over requests that have a deadline.
  std::vector<RequestId> kill_pending_;
  std::vector<std::pair<int64_t, RequestId>> deadlines_;
  int64_t evicted_at_step_start_ = 0;
};

}  // namespace lil
