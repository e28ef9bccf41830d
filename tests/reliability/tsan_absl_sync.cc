// File: tests/reliability/tsan_absl_sync.cc
// ThreadSanitizer builds only (LILSERVE_TSAN): teaches TSan about absl::Mutex / absl::CondVar.
// Debian's Abseil (and gRPC, whose grpc_core::Mutex is an absl::Mutex) is not built with TSan,
// so its lock operations are atomics and futexes that TSan cannot see, and every access
// guarded by an absl::Mutex would look like a race. This shared library defines the lock
// entry points; being linked before libabsl_synchronization, its definitions interpose for
// every caller (our code and gRPC's). Each wraps the real function (dlsym RTLD_NEXT) in
// TSan's mutex annotations: the real call happens between pre_lock and post_lock, where TSan
// ignores memory accesses (absl evaluates Conditions there, under the real lock), and
// post_lock/pre_unlock carry the happens-before edges. Await and CondVar waits release the
// mutex first (annotated unlock), then re-acquire it (annotated lock around the real call).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"

namespace {

#define LIL_STR2(x) #x
#define LIL_STR(x) LIL_STR2(x)

// Itanium mangling of absl::<inline namespace>::<rest>.
void* Real(const char* rest) {
  const std::string ns = LIL_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = "_ZN4absl" + std::to_string(ns.size()) + ns + rest;
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found\n", name.c_str());
    std::abort();
  }
  return f;
}

template <typename F>
F RealFn(const char* rest) {
  return reinterpret_cast<F>(Real(rest));
}

// The real functions call each other (CondVar::WaitWithTimeout calls WaitWithDeadline through
// the PLT, so into this file again): only the outermost call is annotated.
thread_local int depth = 0;
struct Outer {
  const bool outer = depth == 0;
  Outer() { ++depth; }
  ~Outer() { --depth; }
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = RealFn<void (*)(Mutex*)>("5Mutex4LockEv");
  Outer guard;
  if (!guard.outer) return real(this);
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::Unlock() {
  static auto real = RealFn<void (*)(Mutex*)>("5Mutex6UnlockEv");
  Outer guard;
  if (!guard.outer) return real(this);
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

bool Mutex::TryLock() {
  static auto real = RealFn<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  Outer guard;
  if (!guard.outer) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool ok = real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_try_lock | (ok ? 0 : __tsan_mutex_try_lock_failed), 0);
  return ok;
}

void Mutex::ReaderLock() {
  static auto real = RealFn<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  Outer guard;
  if (!guard.outer) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

void Mutex::ReaderUnlock() {
  static auto real = RealFn<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  Outer guard;
  if (!guard.outer) return real(this);
  __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

bool Mutex::ReaderTryLock() {
  static auto real = RealFn<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  Outer guard;
  if (!guard.outer) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool ok = real(this);
  __tsan_mutex_post_lock(this, ok ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  return ok;
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real = RealFn<void (*)(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  Outer guard;
  if (!guard.outer) return real(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = RealFn<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outer guard;
  if (!guard.outer) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, 0);
  const bool r = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return r;
}

void Mutex::Await(const Condition& cond) {
  static auto real = RealFn<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  Outer guard;
  if (!guard.outer) return real(this, cond);
  __tsan_mutex_pre_unlock(this, 0);
  __tsan_mutex_post_unlock(this, 0);
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = RealFn<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outer guard;
  if (!guard.outer) return real(this, cond, timeout);
  __tsan_mutex_pre_unlock(this, 0);
  __tsan_mutex_post_unlock(this, 0);
  __tsan_mutex_pre_lock(this, 0);
  const bool r = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return r;
}

void CondVar::Wait(Mutex* mu) {
  static auto real = RealFn<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Outer guard;
  if (!guard.outer) return real(this, mu);
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
  real(this, mu);
  __tsan_mutex_post_lock(mu, 0, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = RealFn<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Outer guard;
  if (!guard.outer) return real(this, mu, timeout);
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
  const bool r = real(this, mu, timeout);
  __tsan_mutex_post_lock(mu, 0, 0);
  return r;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = RealFn<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Outer guard;
  if (!guard.outer) return real(this, mu, deadline);
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
  const bool r = real(this, mu, deadline);
  __tsan_mutex_post_lock(mu, 0, 0);
  return r;
}

ABSL_NAMESPACE_END
}  // namespace absl
