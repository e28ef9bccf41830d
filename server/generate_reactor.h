// File: server/generate_reactor.h
// One Generate call: validates and submits the request, then streams the engine's deltas.
// Nothing here blocks: the engine thread's notifier and gRPC's write completions both call
// Pump(), which merges whatever is queued into one chunk and starts at most one write.
//
//   engine thread --Push--> RequestStream --notify--> Pump --StartWrite--> client
//                                                      ^-- OnWriteDone ----'
// A client that reads slowly never holds up the engine: while a write is in flight, new
// deltas are appended to one waiting chunk, so the buffer per stream is at most the message
// being written, one chunk of unsent tokens and the final message (memory O(max_tokens)).
// Client cancellation and gRPC deadlines reach the engine (Cancel / deadline_micros); the
// reactor then waits for the engine's own finish so pages are freed and metrics recorded.
#pragma once

#include <deque>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "engine/request_stream.h"
#include "server/server_core.h"

namespace lil {

class GenerateReactor final : public grpc::ServerWriteReactor<lilserve::v1::GenerateResponse> {
 public:
  GenerateReactor(ServerCore* core, grpc::CallbackServerContext* ctx,
                  const lilserve::v1::GenerateRequest* request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Outlives the reactor: the engine's notifier holds it and finds nullptr after OnDone.
  struct Link {
    absl::Mutex mu;
    GenerateReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
  };

  grpc::Status Start(const lilserve::v1::GenerateRequest& request);
  int64_t DeadlineMicros() const;
  void Pump();
  // Takes queued outputs into pending_ (at most one chunk, then the final message); mu_ held.
  void Drain() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFinal(const RequestOutput& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishOnce(const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ServerCore* core_;
  grpc::CallbackServerContext* ctx_;
  const int64_t arrival_micros_;
  std::string name_;
  bool reserved_ = false;
  bool logprobs_ = false;
  MonitorMode monitor_mode_ = MonitorMode::kOff;
  std::shared_ptr<RequestStream> stream_;
  std::shared_ptr<Link> link_;

  absl::Mutex mu_;
  std::deque<lilserve::v1::GenerateResponse> pending_ ABSL_GUARDED_BY(mu_);  // <= 2 messages
  lilserve::v1::GenerateResponse in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool final_taken_ ABSL_GUARDED_BY(mu_) = false;   // the engine's last output was taken
  bool finished_ ABSL_GUARDED_BY(mu_) = false;      // Finish() was called
  bool broken_ ABSL_GUARDED_BY(mu_) = false;        // a write failed or the call was cancelled
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  RequestTiming timing_ ABSL_GUARDED_BY(mu_);
  double queue_s_ = -1;
};

}  // namespace lil
