// File: engine/request_stream.cc
#include "engine/request_stream.h"

namespace lil {

void RequestStream::Push(RequestOutput out) {
  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;  // exactly one finish; nothing after it
    finished_ = out.finished;
    queue_.push_back(std::move(out));
    notify = notify_;
  }
  if (notify) notify();
}

bool RequestStream::Next(RequestOutput* out, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return false;
  *out = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

bool RequestStream::TryNext(RequestOutput* out) {
  absl::MutexLock lock(&mu_);
  if (queue_.empty()) return false;
  *out = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void RequestStream::SetNotifier(std::function<void()> notify) {
  absl::MutexLock lock(&mu_);
  notify_ = std::move(notify);
}

bool RequestStream::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

void RequestStream::Fail(absl::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    error_ = std::move(status);
  }
  RequestOutput out;
  out.id = id_;
  out.finished = true;
  out.finish_reason = FinishReason::kError;
  Push(std::move(out));
}

absl::Status RequestStream::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

size_t RequestStream::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace lil
