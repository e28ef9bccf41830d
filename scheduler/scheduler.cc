// File: scheduler/scheduler.cc
// Scheduler set-up, admission and the Schedule() side of the step (Update() is in
// scheduler_update.cc).
#include "scheduler/scheduler.h"

#include <algorithm>

#include "scheduler/sparse_policy.h"

namespace lil {
namespace {

// Sort key: higher priority first, then earlier arrival, then earlier AddRequest.
bool Before(const Request* a, const Request* b) {
  if (a->priority != b->priority) return a->priority > b->priority;
  if (a->arrival_micros != b->arrival_micros) return a->arrival_micros < b->arrival_micros;
  return a->seq_no < b->seq_no;
}

absl::Status ValidateOptions(const SchedulerOptions& o) {
  if (o.page_size <= 0) return InvalidArgument("page_size must be > 0, got ", o.page_size);
  if (o.num_pages <= 0) return InvalidArgument("num_pages must be > 0, got ", o.num_pages);
  if (o.max_running_seqs <= 0) {
    return InvalidArgument("max_running_seqs must be > 0, got ", o.max_running_seqs);
  }
  if (o.max_batched_tokens <= 0) {
    return InvalidArgument("max_batched_tokens must be > 0, got ", o.max_batched_tokens);
  }
  if (o.max_model_len <= 1) {
    return InvalidArgument("max_model_len must be > 1, got ", o.max_model_len);
  }
  if (!(o.h2o_decay > 0.0f && o.h2o_decay <= 1.0f)) {
    return InvalidArgument("h2o_decay must be in (0, 1], got ", o.h2o_decay);
  }
  return ValidateSparseParams(o.default_sparse, o.page_size);
}

absl::Status ValidateSampling(const SamplingParams& s) {
  if (!(s.temperature >= 0.0f)) return InvalidArgument("temperature must be >= 0, got ", s.temperature);
  if (s.top_k < 0) return InvalidArgument("top_k must be >= 0, got ", s.top_k);
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return InvalidArgument("top_p must be in (0, 1], got ", s.top_p);
  if (!(s.min_p >= 0.0f && s.min_p < 1.0f)) return InvalidArgument("min_p must be in [0, 1), got ", s.min_p);
  if (!(s.repetition_penalty > 0.0f)) {
    return InvalidArgument("repetition_penalty must be > 0, got ", s.repetition_penalty);
  }
  if (s.logprobs < 0) return InvalidArgument("logprobs must be >= 0, got ", s.logprobs);
  return absl::OkStatus();
}

absl::Status ValidateStopping(const StoppingParams& s) {
  if (s.max_tokens <= 0) return InvalidArgument("max_tokens must be > 0, got ", s.max_tokens);
  if (s.min_tokens < 0 || s.min_tokens > s.max_tokens) {
    return InvalidArgument("min_tokens must be in [0, max_tokens=", s.max_tokens, "], got ",
                           s.min_tokens);
  }
  if (s.time_limit_ms < 0) return InvalidArgument("time_limit_ms must be >= 0, got ", s.time_limit_ms);
  for (size_t i = 0; i < s.stop.size(); ++i) {
    if (s.stop[i].empty()) return InvalidArgument("stop[", i, "] is an empty string");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(SchedulerOptions options) {
  LIL_RETURN_IF_ERROR(ValidateOptions(options));
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(options)));
}

Scheduler::Scheduler(SchedulerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : SystemClock::Get()),
      blocks_(options_.num_pages) {}

absl::Status Scheduler::AddRequest(SchedulerRequest r) {
  if (requests_.contains(r.id)) return absl::AlreadyExistsError(absl::StrCat(r.id.value, " is already live"));
  const int32_t prompt_len = static_cast<int32_t>(r.prompt.size());
  if (prompt_len == 0) return InvalidArgument("request ", r.id.value, ": prompt is empty");
  if (prompt_len >= options_.max_model_len) {
    return InvalidArgument("request ", r.id.value, ": prompt has ", prompt_len,
                           " tokens; max_model_len is ", options_.max_model_len,
                           " (room for one generated token is needed)");
  }
  const int32_t pages_needed = PagesForTokens(prompt_len + 1, options_.page_size);
  if (pages_needed > options_.num_pages) {
    return InvalidArgument("request ", r.id.value, ": prompt of ", prompt_len, " tokens needs ",
                           pages_needed, " KV pages; the pool has ", options_.num_pages);
  }
  if (!options_.enable_chunked_prefill && prompt_len > options_.max_batched_tokens) {
    return InvalidArgument("request ", r.id.value, ": prompt has ", prompt_len,
                           " tokens, more than max_batched_tokens ", options_.max_batched_tokens,
                           " with chunked prefill off");
  }
  LIL_RETURN_IF_ERROR(ValidateSampling(r.sampling));
  LIL_RETURN_IF_ERROR(ValidateStopping(r.stopping));
  const SparseParams sparse = r.sparse.value_or(options_.default_sparse);
  LIL_RETURN_IF_ERROR(ValidateSparseParams(sparse, options_.page_size));
  if (r.monitor.mode != MonitorMode::kOff) LIL_RETURN_IF_ERROR(InfoMonitor::Validate(r.monitor));
  if (r.monitor.mode == MonitorMode::kConclude) {
    if (!r.monitor.conclusion_text.empty() && !options_.tokenize) {
      return absl::FailedPreconditionError(
          "monitor mode conclude with a conclusion_text needs SchedulerOptions::tokenize");
    }
    if (r.monitor.conclusion_max_tokens < 0) {
      return InvalidArgument("monitor conclusion_max_tokens must be >= 0, got ",
                             r.monitor.conclusion_max_tokens);
    }
  }

  auto req = std::make_unique<Request>(r.id, std::move(r.prompt), r.stopping.stop);
  req->sampling = r.sampling;
  req->stopping = std::move(r.stopping);
  req->sparse = RoundSparseParams(sparse, options_.page_size);
  req->monitor_params = r.monitor;
  if (r.monitor.mode != MonitorMode::kOff) req->monitor = std::make_unique<InfoMonitor>(r.monitor);
  req->priority = r.priority;
  req->arrival_micros = r.arrival_micros >= 0 ? r.arrival_micros : clock_->NowMicros();
  req->deadline_micros = r.deadline_micros;
  if (req->stopping.time_limit_ms > 0) {
    const int64_t limit = req->arrival_micros + req->stopping.time_limit_ms * 1000;
    if (req->deadline_micros == 0 || limit < req->deadline_micros) req->deadline_micros = limit;
  }
  req->seq_no = next_seq_++;
  if (req->deadline_micros > 0) {
    auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
    if (deadlines_.size() > 2 * requests_.size() + 64) {
      // Entries of requests that ended early pile up with far deadlines: drop them.
      std::erase_if(deadlines_, [&](const auto& e) { return !requests_.contains(e.second); });
      std::make_heap(deadlines_.begin(), deadlines_.end(), later);
    }
    deadlines_.emplace_back(req->deadline_micros, req->id);
    std::push_heap(deadlines_.begin(), deadlines_.end(), later);
  }
  if (options_.enable_prefix_caching) {
    const int32_t ps = options_.page_size;
    uint64_t h = 0;
    for (int32_t i = 0; i + ps <= prompt_len; i += ps) {
      h = BlockManager::PageHash(h, req->tokens.data() + i, ps);
      req->prompt_page_hashes.push_back(h);
    }
  }
  Request* raw = req.get();
  requests_.emplace(raw->id, std::move(req));
  InsertSorted(waiting_, raw);
  return absl::OkStatus();
}

absl::Status Scheduler::Cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->state == RequestState::kFinished) {
    return absl::NotFoundError(absl::StrCat("request ", id.value, " is not live"));
  }
  if (it->second->kill == KillFlag::kNone) {
    it->second->kill = KillFlag::kCancel;
    kill_pending_.push_back(id);
  }
  return absl::OkStatus();
}

absl::Status Scheduler::Abort(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->state == RequestState::kFinished) {
    return absl::NotFoundError(absl::StrCat("request ", id.value, " is not live"));
  }
  if (it->second->kill == KillFlag::kNone) {
    it->second->kill = KillFlag::kAbort;
    kill_pending_.push_back(id);
  }
  return absl::OkStatus();
}

std::optional<RequestState> Scheduler::GetState(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second->state;
}

std::vector<PageId> Scheduler::PageTable(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return {};
  return it->second->page_table;
}

StepPlan Scheduler::Schedule() {
  // Reuse a recycled plan's buffers: fresh page-table and token vectors for every sequence
  // each step were the largest cost at 1,024 running requests (allocation + cold stores).
  if (plan_outstanding_) {
    // A second Schedule without Update would run tokens twice; plan nothing instead.
    StepPlan none;
    none.step = -1;
    return none;
  }
  StepPlan plan = std::move(spare_plan_);
  spare_plan_ = StepPlan{};
  plan.released.clear();
  plan.step = ++step_;
  step_stats_ = SchedulerStats{};
  step_stats_.step = step_;
  evicted_at_step_start_ = blocks_.num_evicted_total();
  in_flight_.clear();
  FinishKilledAndExpired();
  in_flight_.reserve(std::min<size_t>(running_.size() + waiting_.size(),
                                      static_cast<size_t>(options_.max_running_seqs)));
  plan.seqs.reserve(in_flight_.capacity());
  int32_t budget = options_.max_batched_tokens;
  ScheduleRunning(plan, budget, /*decodes=*/true);
  ScheduleRunning(plan, budget, /*decodes=*/false);
  ScheduleWaiting(plan, budget);
  // Drop the seqs of requests preempted after they were planned, keeping order.
  size_t w = 0;
  for (size_t i = 0; i < in_flight_.size(); ++i) {
    if (in_flight_[i] == nullptr) continue;
    if (w != i) {
      plan.seqs[w] = std::move(plan.seqs[i]);
      in_flight_[w] = in_flight_[i];
    }
    in_flight_[w]->plan_slot = static_cast<int32_t>(w);
    const ScheduledSeq& seq = plan.seqs[w];
    const int32_t n = static_cast<int32_t>(seq.tokens.size());
    step_stats_.tokens_scheduled += n;
    if (n == 1 && seq.start_pos >= in_flight_[w]->num_prompt_tokens) {
      ++step_stats_.decode_seqs;
    } else {
      step_stats_.prefill_tokens += n;
    }
    ++w;
  }
  plan.seqs.resize(w);
  in_flight_.resize(w);
  plan.released.swap(released_);
  released_.clear();
  EraseFinished();
  plan_outstanding_ = true;
  return plan;
}

void Scheduler::FinishKilledAndExpired() {
  // In-flight requests are left to Update, which discards their step's result.
  auto finishable = [](const Request* r) {
    return r != nullptr && r->state != RequestState::kFinished && r->plan_slot < 0;
  };
  auto find = [&](RequestId id) -> Request* {
    auto it = requests_.find(id);
    return it == requests_.end() ? nullptr : it->second.get();
  };
  std::vector<RequestId> keep;
  for (RequestId id : kill_pending_) {
    Request* r = find(id);
    if (r == nullptr || r->state == RequestState::kFinished) continue;
    if (!finishable(r)) {
      keep.push_back(id);
      continue;
    }
    Finish(*r, r->kill == KillFlag::kAbort ? FinishReason::kAborted : FinishReason::kCancelled);
  }
  kill_pending_ = std::move(keep);
  const int64_t now = clock_->NowMicros();
  auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
  std::vector<std::pair<int64_t, RequestId>> in_flight;
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    std::pop_heap(deadlines_.begin(), deadlines_.end(), later);
    const auto entry = deadlines_.back();
    deadlines_.pop_back();
    Request* r = find(entry.second);
    if (r == nullptr || r->state == RequestState::kFinished) continue;
    if (!finishable(r)) {
      in_flight.push_back(entry);
      continue;
    }
    Finish(*r, FinishReason::kDeadline);
  }
  for (const auto& e : in_flight) {
    deadlines_.push_back(e);
    std::push_heap(deadlines_.begin(), deadlines_.end(), later);
  }
}

void Scheduler::ScheduleRunning(StepPlan& plan, int32_t& budget, bool decodes) {
  // Victims are taken from the back of running_, so index iteration stays valid: the
  // only element removed at or before i is running_[i] itself, and then it was the last.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Request& req = *running_[i];
    if (req.plan_slot >= 0) continue;
    const int32_t remaining = req.num_tokens() - req.num_computed_tokens;
    if ((remaining == 1) != decodes) continue;
    int32_t n = std::min(remaining, budget);
    if (!options_.enable_chunked_prefill && n < remaining) continue;
    if (decodes && req.num_computed_tokens >= req.num_prompt_tokens) {
      ApplySparsePolicy(req, req.num_computed_tokens + 1);
    }
    if (!MakeRoom(plan, budget, req, n)) break;
    AddToPlan(plan, req, n);
    budget -= n;
  }
}

bool Scheduler::MakeRoom(StepPlan& plan, int32_t& budget, Request& req, int32_t num_tokens) {
  while (!AllocateFor(req, num_tokens)) {
    Request* victim = running_.back();
    if (victim == &req) {
      if (running_.size() == 1) {
        // Alone and still out of pages: the pool is this request's context limit.
        Finish(req, FinishReason::kLength);
      } else {
        Preempt(plan, budget, req);
      }
      return false;
    }
    Preempt(plan, budget, *victim);
  }
  return true;
}

void Scheduler::ScheduleWaiting(StepPlan& plan, int32_t& budget) {
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int32_t>(running_.size()) < options_.max_running_seqs) {
    Request& req = *waiting_.front();
    const int32_t hits = TakePrefixHits(req);
    const int32_t remaining = req.num_tokens() - req.num_computed_tokens;
    const int32_t n = std::min(remaining, budget);
    if (remaining == 1 && req.num_computed_tokens >= req.num_prompt_tokens) {
      ApplySparsePolicy(req, req.num_computed_tokens + 1);  // a decode after a prefix hit
    }
    if ((!options_.enable_chunked_prefill && n < remaining) || !AllocateFor(req, n)) {
      ReleasePages(req);  // give back the prefix hits; they stay cached
      if (running_.empty() && n == remaining) {
        // Every page is free or cached and it still does not fit: it never will.
        Finish(req, FinishReason::kLength);
        continue;
      }
      break;
    }
    waiting_.pop_front();
    if (!req.admitted_once) req.cached_tokens = hits * options_.page_size;
    req.admitted_once = true;
    step_stats_.prefix_cache_hit_tokens += hits * options_.page_size;
    req.state = RequestState::kRunning;
    InsertRunning(&req);
    AddToPlan(plan, req, n);
    budget -= n;
  }
}

int32_t Scheduler::TakePrefixHits(Request& req) {
  if (!req.page_table.empty() || req.num_computed_tokens != 0) return 0;
  int32_t hits = 0;
  for (uint64_t h : req.prompt_page_hashes) {
    std::optional<PageId> page = blocks_.LookupAndRef(h);
    if (!page.has_value()) break;
    req.page_table.push_back(*page);
    ++hits;
  }
  // At least one token must run to produce logits: never take the whole sequence.
  if (hits > 0 && hits * options_.page_size >= req.num_tokens()) {
    blocks_.Release(req.page_table.back());
    req.page_table.pop_back();
    --hits;
  }
  req.num_computed_tokens = hits * options_.page_size;
  req.num_registered_pages = hits;
  return hits;
}

bool Scheduler::AllocateFor(Request& req, int32_t num_tokens) {
  const int32_t want = PagesForTokens(req.num_computed_tokens + num_tokens, options_.page_size);
  const int32_t have = static_cast<int32_t>(req.page_table.size());
  if (want <= have) return true;
  if (blocks_.num_available() < want - have) return false;
  for (int32_t i = have; i < want; ++i) req.page_table.push_back(blocks_.Allocate());
  return true;
}

void Scheduler::Preempt(StepPlan& plan, int32_t& budget, Request& req) {
  if (req.plan_slot >= 0) {
    budget += static_cast<int32_t>(plan.seqs[req.plan_slot].tokens.size());
    in_flight_[req.plan_slot] = nullptr;
    req.plan_slot = -1;
  }
  running_.erase(std::find(running_.begin(), running_.end(), &req));
  ReleasePages(req);
  req.page_mass.clear();
  req.state = RequestState::kPreempted;
  req.ever_preempted = true;
  InsertSorted(waiting_, &req);
  ++step_stats_.preemptions;
}

void Scheduler::ReleasePages(Request& req) {
  // Deepest pages first, so the LRU evicts the tail of a cached prefix before its head.
  for (auto it = req.page_table.rbegin(); it != req.page_table.rend(); ++it) {
    if (it->valid()) blocks_.Release(*it);
  }
  req.page_table.clear();
  req.num_computed_tokens = 0;
  req.num_registered_pages = 0;
  req.policy_dirty = true;
}

void Scheduler::ApplySparsePolicy(Request& req, int32_t len) {
  if (req.sparse.mode != SparseMode::kSink && req.sparse.mode != SparseMode::kH2O) return;
  // The kept set can only change when a page is added ((len - 1) % ps == 0) or the window
  // start crosses a page boundary (len % ps == 0, windows are whole pages), or after a
  // (re)prefill: skip the O(pages) pass on the other steps.
  const int32_t ps = options_.page_size;
  if (!req.policy_dirty && len % ps != 0 && (len - 1) % ps != 0) return;
  req.policy_dirty = false;
  std::vector<int32_t> drop;
  if (req.sparse.mode == SparseMode::kSink) {
    drop = SinkPagesToFree(req.page_table, len, options_.page_size, req.sparse);
  } else if (req.sparse.mode == SparseMode::kH2O) {
    drop = H2OPagesToFree(req.page_table, req.page_mass, len, options_.page_size, req.sparse);
  }
  for (int32_t i : drop) {
    blocks_.Release(req.page_table[i]);  // only this request's reference: shared pages live on
    req.page_table[i] = kNoPage;
  }
  step_stats_.pages_freed_by_policy += static_cast<int32_t>(drop.size());
}

void Scheduler::AddToPlan(StepPlan& plan, Request& req, int32_t n) {
  const size_t slot = in_flight_.size();
  ScheduledSeq& seq = slot < plan.seqs.size() ? plan.seqs[slot] : plan.seqs.emplace_back();
  seq.id = req.id;
  const int32_t start = req.num_computed_tokens;
  seq.tokens.assign(req.tokens.begin() + start, req.tokens.begin() + start + n);
  seq.start_pos = start;
  seq.page_table = req.page_table;
  seq.sample = start + n == req.num_tokens();
  seq.num_generated = req.num_generated();
  seq.sampling = req.sampling;
  seq.sparse = SparseParams{};
  seq.collect_page_mass = false;
  seq.return_logits = false;
  if (n == 1 && start >= req.num_prompt_tokens) {  // a decode step: sparsity applies
    seq.sparse = req.sparse;
    seq.collect_page_mass = req.sparse.mode == SparseMode::kH2O;
    int32_t resident = 0;
    for (PageId p : seq.page_table) resident += p.valid();
    req.plan_resident_pages = resident;
  } else {
    req.policy_dirty = true;  // several positions at once: the next decode re-checks all
  }
  req.plan_slot = static_cast<int32_t>(slot);
  in_flight_.push_back(&req);
}

void Scheduler::InsertSorted(std::deque<Request*>& q, Request* req) {
  q.insert(std::upper_bound(q.begin(), q.end(), req, Before), req);
}

void Scheduler::InsertRunning(Request* req) { InsertSorted(running_, req); }

}  // namespace lil
