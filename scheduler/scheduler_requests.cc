// File: scheduler/scheduler_requests.cc
// Scheduler set-up and request intake: option and request validation (errors name the
// field and value), AddRequest, Cancel / Abort and the introspection accessors.
#include "scheduler/scheduler.h"

#include <algorithm>

#include "scheduler/sparse_policy.h"

namespace lil {
namespace {

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

}  // namespace lil
