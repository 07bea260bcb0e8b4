// tsan_absl_annotations.cc: makes ThreadSanitizer see absl::Mutex and
// absl::CondVar, for the TSan build only (FANPROBE_SANITIZE=thread links it
// into every executable).
//
// Why: Debian's libabsl is not built with TSan, so its Mutex (atomics and
// futexes, no pthread calls TSan could intercept) is invisible to TSan, and
// every access guarded by one would be reported as a race.  gRPC's own
// locks are absl::Mutex too (gpr_mu), so it would be worse still.  This
// file interposes the exported Mutex and CondVar entry points: each calls
// the real one (found with dlsym(RTLD_NEXT)) and tells TSan what it means
// for ordering -- a lock acquires, an unlock releases, a wait releases and
// then acquires.  Executables' symbols come first in the dynamic lookup
// order, so this wins over libabsl_synchronization.so for our calls and for
// gRPC's and absl's own (they call through the PLT).
//
// What it cannot see stays invisible: lock-free code inside gRPC and absl.
// tests/tsan.supp lists what that leaves.

#if defined(__SANITIZE_THREAD__)
#define FANPROBE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FANPROBE_TSAN 1
#endif
#endif

#ifdef FANPROBE_TSAN

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* address);
void __tsan_release(void* address);
}

namespace {

// The real function behind `mangled`, the next definition after ours.
template <typename Fn>
Fn Real(const char* mangled) {
  void* symbol = dlsym(RTLD_NEXT, mangled);
  if (symbol == nullptr) {
    std::fprintf(stderr, "tsan_absl_annotations: no %s\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(symbol);
}

#define FANPROBE_REAL(type, mangled) \
  static const auto real = Real<type>(mangled)

// absl evaluates a waiter's condition inside the lock functions, holding
// the mutex, at moments our annotations around the call do not mark (before
// it blocks, after each wake-up, sometimes on the unlocking thread).  So the
// evaluation is its own little critical section: acquire, read, release.
// The wrapper itself lives on the waiter's stack and may be read by the
// unlocking thread, which learns of it through absl's queue, invisible to
// TSan: publishing it is a release on its address, and evaluating it starts
// with an acquire there.  The Condition is built with the untyped (void*)
// constructor, whose caller lives in the uninstrumented library, so no
// instrumented code reads the Condition before that acquire.
class AnnotatedCondition {
 public:
  AnnotatedCondition(const absl::Condition& condition, absl::Mutex* mu)
      : condition_(&condition),
        mu_(mu),
        wrapped_(&Eval, static_cast<void*>(this)) {
    __tsan_release(this);
  }
  AnnotatedCondition(const AnnotatedCondition&) = delete;
  AnnotatedCondition& operator=(const AnnotatedCondition&) = delete;

  const absl::Condition& wrapped() const { return wrapped_; }

 private:
  static bool Eval(void* arg) {
    __tsan_acquire(arg);
    const auto* self = static_cast<const AnnotatedCondition*>(arg);
    __tsan_acquire(self->mu_);
    const bool result = self->condition_->Eval();
    __tsan_release(self->mu_);
    return result;
  }

  const absl::Condition* const condition_;
  absl::Mutex* const mu_;
  const absl::Condition wrapped_;
};

}  // namespace

// These are the lock functions themselves: the analysis cannot follow the
// call through a pointer.
#pragma clang diagnostic ignored "-Wthread-safety-analysis"

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  FANPROBE_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  FANPROBE_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  FANPROBE_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  FANPROBE_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  FANPROBE_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  FANPROBE_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::LockWhen(const Condition& condition) {
  FANPROBE_REAL(void (*)(Mutex*, const Condition&),
                "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  const AnnotatedCondition annotated(condition, this);
  real(this, annotated.wrapped());
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& condition) {
  FANPROBE_REAL(void (*)(Mutex*, const Condition&),
                "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  const AnnotatedCondition annotated(condition, this);
  real(this, annotated.wrapped());
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& condition,
                                absl::Duration timeout) {
  FANPROBE_REAL(
      bool (*)(Mutex*, const Condition&, absl::Duration),
      "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_"
      "8DurationE");
  const AnnotatedCondition annotated(condition, this);
  const bool result = real(this, annotated.wrapped(), timeout);
  __tsan_acquire(this);  // held either way
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& condition,
                                 absl::Time deadline) {
  FANPROBE_REAL(
      bool (*)(Mutex*, const Condition&, absl::Time),
      "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_"
      "4TimeE");
  const AnnotatedCondition annotated(condition, this);
  const bool result = real(this, annotated.wrapped(), deadline);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& condition,
                                      absl::Duration timeout) {
  FANPROBE_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
                "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_"
                "9ConditionENS0_8DurationE");
  const AnnotatedCondition annotated(condition, this);
  const bool result = real(this, annotated.wrapped(), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& condition,
                                       absl::Time deadline) {
  FANPROBE_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
                "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_"
                "9ConditionENS0_4TimeE");
  const AnnotatedCondition annotated(condition, this);
  const bool result = real(this, annotated.wrapped(), deadline);
  __tsan_acquire(this);
  return result;
}

// A wait lets go of the mutex and takes it again.
void Mutex::Await(const Condition& condition) {
  FANPROBE_REAL(void (*)(Mutex*, const Condition&),
                "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  const AnnotatedCondition annotated(condition, this);
  __tsan_release(this);
  real(this, annotated.wrapped());
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& condition,
                             absl::Duration timeout) {
  FANPROBE_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
                "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_"
                "8DurationE");
  const AnnotatedCondition annotated(condition, this);
  __tsan_release(this);
  const bool result = real(this, annotated.wrapped(), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& condition, absl::Time deadline) {
  FANPROBE_REAL(
      bool (*)(Mutex*, const Condition&, absl::Time),
      "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_"
      "4TimeE");
  const AnnotatedCondition annotated(condition, this);
  __tsan_release(this);
  const bool result = real(this, annotated.wrapped(), deadline);
  __tsan_acquire(this);
  return result;
}

void CondVar::Wait(Mutex* mu) {
  FANPROBE_REAL(void (*)(CondVar*, Mutex*),
                "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  FANPROBE_REAL(
      bool (*)(CondVar*, Mutex*, absl::Duration),
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool result = real(this, mu, timeout);
  __tsan_acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  FANPROBE_REAL(
      bool (*)(CondVar*, Mutex*, absl::Time),
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool result = real(this, mu, deadline);
  __tsan_acquire(mu);
  return result;
}

ABSL_NAMESPACE_END
}  // namespace absl

#endif  // FANPROBE_TSAN
