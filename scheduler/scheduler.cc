// File: scheduler/scheduler.cc
// The Schedule() side of the step: sweeps, admission, token budget, page allocation,
// preemption and sparse page freeing (intake is in scheduler_requests.cc, Update() in
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

}  // namespace

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
  if (req.first_scheduled_micros < 0) req.first_scheduled_micros = clock_->NowMicros();
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
