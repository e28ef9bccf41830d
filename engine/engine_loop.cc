// File: engine/engine_loop.cc
#include "engine/engine_loop.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

namespace lil {

EngineLoop::EngineLoop(Model* model, EngineLoopOptions options)
    : model_(model), options_(std::move(options)) {}

EngineLoop::~EngineLoop() { Stop(); }

absl::Status EngineLoop::Start() {
  SchedulerOptions so = options_.scheduler;
  Backend& backend = model_->backend();
  so.page_size = backend.page_size();
  so.num_pages = backend.num_pages();
  if (so.eos_token_ids.empty()) so.eos_token_ids = model_->eos_ids();
  so.max_model_len = std::min(so.max_model_len, model_->config().max_position_embeddings);
  const Tokenizer* tok = &model_->tokenizer();
  if (!so.tokenize) {
    so.tokenize = [tok](std::string_view text) { return tok->Encode(text, false); };
  }
  LIL_ASSIGN_OR_RETURN(scheduler_, Scheduler::Create(std::move(so)));
  {
    absl::MutexLock lock(&mu_);
    load_.pages_total = backend.num_pages();
    load_.pages_free = backend.num_pages();
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void EngineLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::shared_ptr<RequestStream>> EngineLoop::Submit(SchedulerRequest request) {
  if (request.id.value == 0) request.id = RequestId{next_id_.fetch_add(1)};
  auto stream = std::make_shared<RequestStream>(request.id);
  absl::MutexLock lock(&mu_);
  if (stop_) return absl::UnavailableError("the engine is stopping");
  if (load_.waiting + inbox_size_ >= options_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the waiting queue is full (", options_.max_waiting, " requests); retry later"));
  }
  inbox_.requests.emplace_back(std::move(request), stream);
  ++inbox_size_;
  return stream;
}

void EngineLoop::Cancel(RequestId id) {
  absl::MutexLock lock(&mu_);
  inbox_.cancels.push_back(id);
}

void EngineLoop::Abort(RequestId id) {
  absl::MutexLock lock(&mu_);
  inbox_.aborts.push_back(id);
}

EngineLoop::Load EngineLoop::load() const {
  absl::MutexLock lock(&mu_);
  Load l = load_;
  l.waiting += inbox_size_;
  return l;
}

void EngineLoop::DrainInbox() {
  Inbox in;
  {
    // Admission counts load_.waiting + inbox_size_. The requests leave the inbox here but
    // reach the published waiting count only at the end of the step, so count them now:
    // without this, every step reopened the whole --max-waiting allowance for the time it
    // ran and the queue grew by that much per step (seen: 62 queued with --max-waiting 48).
    absl::MutexLock lock(&mu_);
    std::swap(in, inbox_);
    load_.waiting += inbox_size_;
    inbox_size_ = 0;
  }
  for (auto& [req, stream] : in.requests) {
    const RequestId id = req.id;
    absl::Status s = scheduler_->AddRequest(std::move(req));
    if (!s.ok()) {
      stream->Fail(s);
      continue;
    }
    streams_[id] = stream;
    detok_[id] = std::make_unique<IncrementalDetokenizer>(model_->tokenizer(), true);
  }
  // Unknown or already-finished ids are fine: Abort is idempotent.
  for (RequestId id : in.cancels) scheduler_->Cancel(id).IgnoreError();
  for (RequestId id : in.aborts) scheduler_->Abort(id).IgnoreError();
}

void EngineLoop::FailPlan(const StepPlan& plan, const absl::Status& status) {
  LIL_LOG_ERROR("engine step failed, failing its {} requests: {}", plan.seqs.size(),
                std::string(status.message()));
  for (const ScheduledSeq& seq : plan.seqs) scheduler_->Abort(seq.id).IgnoreError();
  for (const ScheduledSeq& seq : plan.seqs) {
    auto it = streams_.find(seq.id);
    if (it != streams_.end()) it->second->Fail(absl::InternalError(status.message()));
  }
}

void EngineLoop::Step() {
  const int64_t t0 = SystemClock::Get()->NowMicros();
  StepPlan plan = scheduler_->Schedule();
  StepResult result;
  const int64_t t1 = SystemClock::Get()->NowMicros();
  if (!plan.seqs.empty() || !plan.released.empty()) {
    auto r = model_->backend().Execute(plan);
    if (!r.ok()) {
      FailPlan(plan, r.status());
      if (absl::Status usable = model_->backend().Usable(); !usable.ok() && !backend_lost_reported_) {
        backend_lost_reported_ = true;
        LIL_LOG_ERROR("the backend stopped for good; every later step fails: {}", std::string(usable.message()));
        if (backend_lost_) backend_lost_(usable);
      }
      result.seqs.resize(plan.seqs.size());
      for (size_t i = 0; i < plan.seqs.size(); ++i) result.seqs[i].id = plan.seqs[i].id;
    } else {
      result = std::move(*r);
    }
  }
  const int64_t t2 = SystemClock::Get()->NowMicros();
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    if (!plan.seqs[i].sample || result.seqs[i].token < 0) continue;
    auto it = detok_.find(plan.seqs[i].id);
    if (it != detok_.end()) result.seqs[i].text = it->second->Push(result.seqs[i].token);
  }
  auto update = scheduler_->Update(plan, result);
  if (!update.ok()) {
    LIL_LOG_ERROR("scheduler update failed: {}", std::string(update.status().message()));
    return;
  }
  StepReport report;
  report.stats = update->stats;
  // The load snapshot is updated before any output is pushed, so a consumer that sees its
  // request finish also sees the pages it freed.
  {
    absl::MutexLock lock(&mu_);
    load_.running = report.stats.num_running;
    load_.waiting = report.stats.num_waiting;
    load_.pages_used = report.stats.pages_used;
    load_.pages_free = report.stats.pages_free;
    load_.pages_cached = report.stats.pages_cached;
    load_.pages_total = report.stats.pages_total;
  }
  for (RequestOutput& out : update->requests) {
    auto it = streams_.find(out.id);
    if (it == streams_.end()) continue;
    std::shared_ptr<RequestStream> stream = it->second;
    if (out.finished) {
      report.finished.push_back(out);
      streams_.erase(it);
      detok_.erase(out.id);
    }
    stream->Push(std::move(out));
  }
  report.execute_micros = t2 - t1;
  report.step_micros = SystemClock::Get()->NowMicros() - t0;
  if (observer_) observer_(report);
}

void EngineLoop::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || inbox_size_ > 0 || !inbox_.cancels.empty() || !inbox_.aborts.empty();
      };
      if (!scheduler_->HasUnfinished()) mu_.Await(absl::Condition(&wake));
      if (stop_) break;
    }
    DrainInbox();
    Step();
  }
  // Stopping: cancel everything still live and report it once.
  DrainInbox();
  for (const auto& [id, stream] : streams_) scheduler_->Cancel(id).IgnoreError();
  while (scheduler_->HasUnfinished()) {
    StepPlan plan = scheduler_->Schedule();
    if (!plan.seqs.empty()) {
      // Requests still scheduled are cancelled at the next pass; run nothing more.
      StepResult empty;
      empty.seqs.resize(plan.seqs.size());
      for (size_t i = 0; i < plan.seqs.size(); ++i) empty.seqs[i].id = plan.seqs[i].id;
      for (const ScheduledSeq& seq : plan.seqs) scheduler_->Abort(seq.id).IgnoreError();
      auto u = scheduler_->Update(plan, empty);
      if (u.ok()) {
        for (RequestOutput& out : u->requests) {
          auto it = streams_.find(out.id);
          if (it != streams_.end()) it->second->Push(std::move(out));
        }
      }
      continue;
    }
    auto u = scheduler_->Update(plan, StepResult{});
    if (!u.ok()) break;
    for (RequestOutput& out : u->requests) {
      auto it = streams_.find(out.id);
      if (it != streams_.end()) it->second->Push(std::move(out));
    }
  }
  for (const auto& [id, stream] : streams_) stream->Fail(absl::CancelledError("engine stopped"));
  streams_.clear();
}

}  // namespace lil
