// File: engine/request_stream.h
// The per-request outbox between the engine loop thread (producer) and whoever serves the
// request (a gRPC reactor, lilctl): a thread-safe queue of RequestOutput deltas that ends
// with exactly one finished output. The consumer either blocks in Next() or, like a gRPC
// reactor that must never block, registers a notifier and drains with TryNext().
#pragma once

#include <deque>
#include <functional>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/scheduler_output.h"

namespace lil {

class RequestStream {
 public:
  explicit RequestStream(RequestId id) : id_(id) {}
  RequestId id() const { return id_; }

  // Engine thread: appends a delta (merging is the consumer's business).
  void Push(RequestOutput out);

  // Consumer: blocks until a delta is available (true) or `timeout` passes (false).
  bool Next(RequestOutput* out, absl::Duration timeout = absl::InfiniteDuration());
  // Consumer: takes a delta if one is queued.
  bool TryNext(RequestOutput* out);
  // Consumer: called (on the engine thread, without the lock held) after each Push.
  // Must not block. Set it before the request is submitted or check TryNext after setting.
  void SetNotifier(std::function<void()> notify);
  bool finished() const;
  size_t queued() const;
  // Engine thread: ends the request with kError and this status (e.g. a rejected request).
  void Fail(absl::Status status);
  // Why the request failed (OK unless Fail was called).
  absl::Status error() const;

 private:
  const RequestId id_;
  mutable absl::Mutex mu_;
  std::deque<RequestOutput> queue_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::function<void()> notify_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lil
