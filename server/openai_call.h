// File: server/openai_call.h
// One OpenAI-API generation on an HTTP worker thread: the same steps as a gRPC Generate
// (server/generate_reactor.h) on the same ServerCore: admission, ConvertRequest, the request
// registry (Control.Abort and draining find it), EngineLoop::Submit, and the same Metrics
// calls (rejections by code, tokens, one RequestRecord at the finish). HTTP workers may block:
// a worker sleeps in poll() on both the request's outputs (an eventfd the engine's notifier
// bumps) and the client's socket, so a client that hangs up, even while its request waits or
// prefills, is cancelled at once and the engine drops it at its next step.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "engine/request_stream.h"
#include "server/openai_request.h"
#include "server/server_core.h"

namespace lil {

// Not thread-safe: one HTTP worker thread owns it (the handler, then its content provider);
// only the Wakeup is shared, with the engine thread's notifier.
class OpenAiCall {
 public:
  // `socket_fd`: the client's connection, polled for a hang-up (-1: not known; then only a
  // failed write tells that the client left).
  OpenAiCall(ServerCore* core, int socket_fd);
  // Cancels the request if it still runs, waits for the engine's finish and records it.
  ~OpenAiCall();
  OpenAiCall(const OpenAiCall&) = delete;
  OpenAiCall& operator=(const OpenAiCall&) = delete;

  // Validates and submits. `request_id`: the client's X-Request-Id (empty: a fresh one).
  // On failure fills `error` and counts the rejection (lilserve_requests_rejected_total).
  bool Start(const OpenAiRequest& request, const std::string& request_id, OpenAiError* error);

  // Blocks for the next outputs and merges everything queued into `merged` (which ends
  // with the finish when it came). False once the finish was taken.
  bool Next(RequestOutput* merged);
  // The client is gone (a write failed): cancel; the destructor waits for the finish.
  void Cancel();

  // Set once the finish was taken: OK, or why the request failed (finish reason error).
  const absl::Status& error() const { return error_; }
  bool finished() const { return final_taken_; }
  bool client_gone() const { return cancelled_; }
  const std::string& request_id() const { return name_; }
  int64_t arrival_unix_s() const { return arrival_unix_s_; }

 private:
  struct Wakeup;
  bool PeerClosed() const;
  // Sleeps until an output is queued or the client hangs up (then cancels).
  void Wait();
  void OnFinal(const RequestOutput& out);

  ServerCore* core_;
  const int socket_fd_;
  const int64_t arrival_micros_;  // SystemClock (monotonic), as the gRPC path measures
  const int64_t arrival_unix_s_;
  std::string name_;
  bool reserved_ = false;
  MonitorMode monitor_mode_ = MonitorMode::kOff;
  std::shared_ptr<RequestStream> stream_;
  std::shared_ptr<Wakeup> wakeup_;  // shared with the stream's notifier
  double queue_s_ = -1;
  RequestTiming timing_;
  bool final_taken_ = false;
  bool cancelled_ = false;
  absl::Status error_;
};

// The accepted connection whose addresses these are (cpp-httplib does not hand handlers
// their socket); -1 when none matches. Linux: scans /proc/self/fd.
int FindConnectionSocket(const std::string& local_ip, int local_port, const std::string& remote_ip,
                         int remote_port);

}  // namespace lil
