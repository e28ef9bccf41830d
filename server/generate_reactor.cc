// File: server/generate_reactor.cc
#include "server/generate_reactor.h"

#include <chrono>
#include <cstdlib>

#include "common/clock.h"
#include "common/log.h"

namespace lil {
namespace {
namespace v1 = ::lilserve::v1;

int64_t NowMicros() { return SystemClock::Get()->NowMicros(); }

// ThreadSanitizer builds only (tools/sanitize.sh tsan-planted): with LILSERVE_TSAN_PLANTED_RACE
// set, the engine thread's notifier and gRPC's write completion both touch one unguarded
// counter, a race that TSan must still report with gRPC's start-batch/completion edge annotated
// (tests/reliability/tsan_grpc_batch.cc) and the suppressions on. Nothing outside TSan builds.
#if defined(__SANITIZE_THREAD__)
const bool kPlantRace = std::getenv("LILSERVE_TSAN_PLANTED_RACE") != nullptr;
int64_t planted_race_counter = 0;
void PlantedRace() {
  if (kPlantRace) ++planted_race_counter;
}
#else
void PlantedRace() {}
#endif

}  // namespace

GenerateReactor::GenerateReactor(ServerCore* core, grpc::CallbackServerContext* ctx,
                                 const v1::GenerateRequest* request)
    : core_(core), ctx_(ctx), arrival_micros_(NowMicros()), link_(std::make_shared<Link>()) {
  {
    absl::MutexLock lock(&link_->mu);
    link_->reactor = this;
  }
  grpc::Status s = Start(*request);
  if (!s.ok()) {
    core_->metrics->OnRejected(std::string(absl::StatusCodeToString(
        static_cast<absl::StatusCode>(s.error_code()))));
    absl::MutexLock lock(&mu_);
    FinishOnce(s);
    return;
  }
  Pump();  // outputs may have arrived before the notifier was set
}

int64_t GenerateReactor::DeadlineMicros() const {
  const auto deadline = ctx_->deadline();
  const auto now = std::chrono::system_clock::now();
  if (deadline > now + std::chrono::hours(24 * 365)) return 0;  // no deadline
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
  return NowMicros() + std::max<int64_t>(1, left.count());
}

grpc::Status GenerateReactor::Start(const v1::GenerateRequest& request) {
  grpc::Status admit = core_->Admit(ctx_);
  if (!admit.ok()) return admit;
  auto converted = ConvertRequest(request, core_->limits, core_->codec);
  if (!converted.ok()) return ToGrpc(converted.status());
  SchedulerRequest req = std::move(*converted);
  logprobs_ = request.sampling().has_logprobs();
  monitor_mode_ = req.monitor.mode;
  name_ = request.request_id().empty() ? core_->registry.NewName() : request.request_id();
  absl::Status reserved = core_->registry.Reserve(name_);
  if (!reserved.ok()) return ToGrpc(reserved);
  reserved_ = true;
  req.arrival_micros = arrival_micros_;
  req.deadline_micros = DeadlineMicros();
  auto stream = core_->engine->Submit(std::move(req));
  if (!stream.ok()) return ToGrpc(stream.status());
  stream_ = std::move(*stream);
  queue_s_ = (NowMicros() - arrival_micros_) * 1e-6;
  core_->registry.Bind(name_, stream_->id());
  stream_->SetNotifier([link = link_] {
    PlantedRace();
    absl::MutexLock lock(&link->mu);
    if (link->reactor != nullptr) link->reactor->Pump();
  });
  return grpc::Status::OK;
}

void GenerateReactor::Drain() {
  if (final_taken_ || !stream_) return;
  // Deltas are appended to the chunk that waits for the write in flight (one is opened when
  // none waits), so a client that stops reading costs one queued message holding the tokens it
  // has not read, never a message per engine step. FillChunk appends (text included: a
  // Chunk::MergeFrom would replace the text).
  v1::Chunk* chunk = nullptr;
  RequestOutput out, final_out;
  bool got_final = false;
  int32_t new_tokens = 0;
  while (!got_final && stream_->TryNext(&out)) {
    new_tokens += static_cast<int32_t>(out.new_tokens.size());
    if (!broken_ && (!out.new_tokens.empty() || !out.text.empty())) {
      if (chunk == nullptr) {
        if (pending_.empty() || !pending_.back().has_chunk()) {
          pending_.emplace_back().set_request_id(name_);
        }
        chunk = pending_.back().mutable_chunk();
      }
      FillChunk(out, logprobs_, chunk);
    }
    if (out.finished) {
      final_out = std::move(out);
      got_final = true;
    }
  }
  if (new_tokens > 0) timing_.OnTokens(core_->metrics, new_tokens, NowMicros());
  if (got_final) OnFinal(final_out);
}

void GenerateReactor::OnFinal(const RequestOutput& out) {
  final_taken_ = true;
  const absl::Status error = stream_->error();
  const int64_t now = NowMicros();
  core_->metrics->OnRequest(timing_.Record(out, monitor_mode_, arrival_micros_, queue_s_, now));
  if (reserved_) core_->registry.Release(name_);
  reserved_ = false;
  v1::GenerateResponse msg;
  msg.set_request_id(name_);
  if (!error.ok()) {
    if (pending_.empty() && timing_.first_token_micros < 0) {
      final_status_ = ToGrpc(error);
      return;
    }
    v1::Error* e = msg.mutable_error();
    e->set_code(static_cast<int>(error.code()));
    e->set_message(std::string(error.message()));
    e->set_retryable(error.code() == absl::StatusCode::kUnavailable);
  } else {
    FillFinished(out, msg.mutable_finished());
  }
  pending_.push_back(std::move(msg));
}

void GenerateReactor::Pump() {
  enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    Drain();
    if (writing_) return;
    if (broken_) {
      // The client is gone: nothing more is written; wait for the engine's finish (which
      // frees the pages) before ending the call.
      if (!final_taken_) return;
      pending_.clear();
      status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      finished_ = true;
      action = Action::kFinish;
    } else if (!pending_.empty()) {
      in_flight_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      action = Action::kWrite;
    } else if (final_taken_) {
      status = final_status_;
      finished_ = true;
      action = Action::kFinish;
    }
  }
  if (action == Action::kWrite) StartWrite(&in_flight_);
  if (action == Action::kFinish) Finish(status);
}

void GenerateReactor::FinishOnce(const grpc::Status& s) {
  if (finished_) return;
  finished_ = true;
  Finish(s);
}

void GenerateReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !broken_) {
      broken_ = true;
      if (stream_ && !final_taken_) core_->engine->Cancel(stream_->id());
    }
  }
  Pump();
  PlantedRace();
}

void GenerateReactor::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    if (broken_) return;
    broken_ = true;
    if (stream_ && !final_taken_) core_->engine->Cancel(stream_->id());
  }
  Pump();
}

void GenerateReactor::OnDone() {
  {
    absl::MutexLock lock(&link_->mu);
    link_->reactor = nullptr;
  }
  if (reserved_) core_->registry.Release(name_);
  delete this;
}

}  // namespace lil
