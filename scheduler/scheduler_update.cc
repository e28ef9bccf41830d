// File: scheduler/scheduler_update.cc
// The Update() side of the step: apply the engine's result, check stop conditions in
// order, run the information monitor, finish requests and free their pages in one pass.
#include "scheduler/scheduler.h"

#include <algorithm>
#include <cmath>

#include "scheduler/sparse_policy.h"

namespace lil {

absl::Status Scheduler::ValidateResult(const StepPlan& plan, const StepResult& result) const {
  if (!plan_outstanding_ || plan.step != step_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Update for plan step ", plan.step, " but the outstanding plan is ",
        plan_outstanding_ ? absl::StrCat("step ", step_) : std::string("none")));
  }
  if (plan.seqs.size() != in_flight_.size() || result.seqs.size() != plan.seqs.size()) {
    return InvalidArgument("StepResult has ", result.seqs.size(), " seqs; plan step ", plan.step,
                           " has ", in_flight_.size());
  }
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    if (result.seqs[i].id != in_flight_[i]->id || plan.seqs[i].id != in_flight_[i]->id) {
      return InvalidArgument("StepResult seqs[", i, "].id ", result.seqs[i].id.value,
                             " does not match plan id ", in_flight_[i]->id.value);
    }
    // A killed request's result is discarded by ApplySeq (the engine kills every request of a
    // step the backend failed, and has no token to report for them).
    if (plan.seqs[i].sample && result.seqs[i].token < 0 && in_flight_[i]->kill == KillFlag::kNone) {
      return InvalidArgument("StepResult seqs[", i, "] (request ", in_flight_[i]->id.value,
                             "): sampled token ", result.seqs[i].token, " is negative");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<UpdateOutput> Scheduler::Update(const StepPlan& plan, const StepResult& result) {
  LIL_RETURN_IF_ERROR(ValidateResult(plan, result));
  plan_outstanding_ = false;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    Request& req = *in_flight_[i];
    req.plan_slot = -1;
    ApplySeq(plan.seqs[i], result.seqs[i], req);
  }
  in_flight_.clear();
  // Cancels and deadlines of requests outside this plan take effect now too.
  FinishKilledAndExpired();
  EraseFinished();
  UpdateOutput out;
  out.requests = std::move(outputs_);
  outputs_.clear();
  ++output_epoch_;
  FillStats(step_stats_);
  out.stats = step_stats_;
  return out;
}

void Scheduler::ApplySeq(const ScheduledSeq& seq, const SeqOutput& out, Request& req) {
  if (req.kill != KillFlag::kNone) {
    Finish(req, req.kill == KillFlag::kAbort ? FinishReason::kAborted : FinishReason::kCancelled);
    return;
  }
  if (Expired(req, clock_->NowMicros())) {
    Finish(req, FinishReason::kDeadline);
    return;
  }
  const int32_t n = static_cast<int32_t>(seq.tokens.size());
  req.num_computed_tokens += n;
  if (n == 1 && seq.start_pos >= req.num_prompt_tokens) {
    step_stats_.decode_pages_attended += out.pages_attended;
    step_stats_.decode_pages_resident += req.plan_resident_pages;
  }
  if (seq.collect_page_mass && !out.page_mass.empty()) {
    if (req.page_mass.size() < req.page_table.size()) req.page_mass.resize(req.page_table.size());
    const size_t m = std::min(out.page_mass.size(), req.page_mass.size());
    const float decay = options_.h2o_decay;
    if (decay != 1.0f) {
      for (float& v : req.page_mass) v *= decay;
    }
    const float* add = out.page_mass.data();
    float* mass = req.page_mass.data();
    for (size_t i = 0; i < m; ++i) {
      // Non-finite mass from the engine would break the ordering h2o sorts by.
      if (std::isfinite(add[i])) mass[i] += add[i];
    }
  }
  RegisterFullPromptPages(req);
  if (!seq.sample) return;

  req.tokens.push_back(out.token);
  RequestOutput& o = OutputFor(req);
  o.new_tokens.push_back(out.token);
  o.logprobs.push_back(out.logprob);
  if (req.sampling.logprobs > 0) o.top_logprobs.push_back(out.top_logprobs);
  if (req.concluding) --req.conclusion_tokens_left;
  if (CheckStops(req, out, o)) return;
  if (req.monitor != nullptr && !req.concluding) RunMonitor(req, out);
}

// EOS, stop token ids, stop strings, length, conclusion budget; true when finished.
bool Scheduler::CheckStops(Request& req, const SeqOutput& out, RequestOutput& o) {
  const StoppingParams& st = req.stopping;
  const int32_t generated = req.num_generated();
  // After a conclude-mode stop every natural end is still the monitor's early stop.
  auto reason = [&](FinishReason r) { return req.concluding ? FinishReason::kEarlyStop : r; };
  if (generated >= st.min_tokens) {
    const bool eos = !st.ignore_eos && std::find(options_.eos_token_ids.begin(),
                                                 options_.eos_token_ids.end(),
                                                 out.token) != options_.eos_token_ids.end();
    if (eos || std::find(st.stop_token_ids.begin(), st.stop_token_ids.end(), out.token) !=
                   st.stop_token_ids.end()) {
      o.stop_token = out.token;
      Finish(req, reason(FinishReason::kStop));
      return true;
    }
  }
  StopStringMatcher::Result m = req.stop_matcher.Append(out.text, generated >= st.min_tokens);
  o.text += m.emit;
  if (m.matched) {
    o.stop_match = m.match;
    Finish(req, reason(FinishReason::kStopSequence));
    return true;
  }
  if (generated >= st.max_tokens || req.num_tokens() >= options_.max_model_len) {
    Finish(req, reason(FinishReason::kLength));
    return true;
  }
  if (req.concluding && req.conclusion_tokens_left <= 0) {
    Finish(req, FinishReason::kEarlyStop);
    return true;
  }
  return false;
}

void Scheduler::RunMonitor(Request& req, const SeqOutput& out) {
  const size_t checks_before = req.monitor->trace().size();
  const int64_t start = clock_->NowMicros();
  const MonitorDecision d = req.monitor->Observe(out.text, 1);
  if (req.monitor->trace().size() != checks_before) {
    ++step_stats_.monitor_checks;
    step_stats_.monitor_check_micros += clock_->NowMicros() - start;
  }
  if (d != MonitorDecision::kStop) return;
  switch (req.monitor_params.mode) {
    case MonitorMode::kEnforce:
      Finish(req, FinishReason::kEarlyStop);
      break;
    case MonitorMode::kConclude:
      StartConclusion(req);
      break;
    default:  // shadow: never stops; stop_at_token() records where it would have
      break;
  }
}

void Scheduler::StartConclusion(Request& req) {
  req.concluding = true;
  const std::string& text = req.monitor_params.conclusion_text;
  std::vector<TokenId> forced;
  if (!text.empty()) forced = options_.tokenize(text);
  const int32_t room = std::min(req.stopping.max_tokens - req.num_generated(),
                                options_.max_model_len - req.num_tokens());
  if (static_cast<int32_t>(forced.size()) >= room) {
    // No room for the closing text plus one answer token: stop here.
    Finish(req, FinishReason::kEarlyStop);
    return;
  }
  RequestOutput& o = OutputFor(req);
  req.tokens.insert(req.tokens.end(), forced.begin(), forced.end());
  o.new_tokens.insert(o.new_tokens.end(), forced.begin(), forced.end());
  o.logprobs.insert(o.logprobs.end(), forced.size(), 0.0f);
  if (req.sampling.logprobs > 0) o.top_logprobs.resize(o.logprobs.size());
  StopStringMatcher::Result m = req.stop_matcher.Append(text, /*may_match=*/false);
  o.text += m.emit;
  req.conclusion_tokens_left =
      std::min(req.monitor_params.conclusion_max_tokens, room - static_cast<int32_t>(forced.size()));
  if (req.conclusion_tokens_left <= 0) Finish(req, FinishReason::kEarlyStop);
}

void Scheduler::RegisterFullPromptPages(Request& req) {
  const int32_t ps = options_.page_size;
  const int32_t n = static_cast<int32_t>(req.prompt_page_hashes.size());
  while (req.num_registered_pages < n &&
         (req.num_registered_pages + 1) * ps <= req.num_computed_tokens) {
    const int32_t i = req.num_registered_pages++;
    if (i < static_cast<int32_t>(req.page_table.size()) && req.page_table[i].valid()) {
      blocks_.Register(req.page_table[i], req.prompt_page_hashes[i]);
    }
  }
}

void Scheduler::Finish(Request& req, FinishReason reason) {
  if (req.state == RequestState::kFinished) return;
  auto drop = [&](std::deque<Request*>& q) {
    auto it = std::find(q.begin(), q.end(), &req);
    if (it != q.end()) q.erase(it);
  };
  if (req.state == RequestState::kRunning) {
    drop(running_);
  } else {
    drop(waiting_);
  }
  if (req.plan_slot >= 0 && req.plan_slot < static_cast<int32_t>(in_flight_.size()) &&
      in_flight_[req.plan_slot] == &req && !plan_outstanding_) {
    in_flight_[req.plan_slot] = nullptr;  // finished while its plan is being built
  }
  req.plan_slot = -1;
  ReleasePages(req);
  req.state = RequestState::kFinished;

  RequestOutput& o = OutputFor(req);
  o.finished = true;
  o.finish_reason = reason;
  if (reason != FinishReason::kStopSequence) o.text += req.stop_matcher.Flush();
  o.usage.prompt_tokens = req.num_prompt_tokens;
  o.usage.completion_tokens = req.num_generated();
  o.usage.cached_tokens = req.cached_tokens;
  o.queue_micros = req.first_scheduled_micros >= 0 ? req.first_scheduled_micros - req.arrival_micros : -1;
  const MonitorMode mode = req.monitor_params.mode;
  if (reason == FinishReason::kEarlyStop &&
      (mode == MonitorMode::kEnforce || mode == MonitorMode::kConclude)) {
    o.usage.tokens_saved = std::max(0, req.stopping.max_tokens - req.num_generated());
  }
  if (req.monitor != nullptr) {
    o.monitor_trace = req.monitor->trace();
    o.monitor_stop_at = req.monitor->stop_at_token();
    if (mode == MonitorMode::kShadow && o.monitor_stop_at.has_value()) {
      o.usage.tokens_saved = std::max(0, req.num_generated() - *o.monitor_stop_at);
    }
  }
  ++step_stats_.finished_by_reason[static_cast<int>(reason)];
  released_.push_back(req.id);
  finished_.push_back(req.id);
}

RequestOutput& Scheduler::OutputFor(Request& req) {
  if (req.output_epoch != output_epoch_) {
    req.output_epoch = output_epoch_;
    req.output_slot = static_cast<int32_t>(outputs_.size());
    if (outputs_.capacity() == 0) outputs_.reserve(running_.size() + 16);
    outputs_.emplace_back().id = req.id;
  }
  return outputs_[req.output_slot];
}

void Scheduler::EraseFinished() {
  for (RequestId id : finished_) requests_.erase(id);
  finished_.clear();
}

void Scheduler::FillStats(SchedulerStats& s) const {
  s.num_running = static_cast<int32_t>(running_.size());
  s.num_waiting = static_cast<int32_t>(waiting_.size());
  s.num_preempted = 0;
  for (const Request* r : waiting_) s.num_preempted += r->ever_preempted;
  s.pages_total = blocks_.num_pages();
  s.pages_used = blocks_.num_used();
  s.pages_free = blocks_.num_free();
  s.pages_cached = blocks_.num_cached();
  s.pages_evicted = static_cast<int32_t>(blocks_.num_evicted_total() - evicted_at_step_start_);
}

}  // namespace lil
