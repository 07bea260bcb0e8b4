// engine_test_util.h: what the engine tests share: a recorder of one
// batch's callbacks that also checks the engine's callback guarantees, a
// way to run a batch to its end, and the arithmetic every summary must obey.
//
// Example:
//   BatchRun run = RunBatch(*engine, {Target(url)});
//   ExpectConsistent(run);
//   EXPECT_EQ(run.results[0].outcome, Outcome::kOk);
//
// Thread-safety: a BatchRecorder's callbacks may run on any engine thread.

#ifndef FANPROBE_TESTS_PROBE_ENGINE_TEST_UTIL_H_
#define FANPROBE_TESTS_PROBE_ENGINE_TEST_UTIL_H_

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "tests/support/wait.h"  // kPatience

namespace fanprobe {

// Readable enums in gtest failure messages.
inline void PrintTo(Outcome outcome, std::ostream* os) {
  *os << OutcomeName(outcome);
}
inline void PrintTo(EndReason reason, std::ostream* os) {
  *os << EndReasonName(reason);
}

namespace testing {

// Collects one batch's callbacks.  Its state is shared with the callbacks,
// so an engine that outlives the recorder (a failing test) stays safe.  It
// also checks the engine's callback guarantees: no on_result after on_done,
// no on_done while an on_result is still running, on_done exactly once.
class BatchRecorder {
 public:
  BatchCallbacks Callbacks() const {
    return {.on_result =
                [state = state_](ProbeResult result) {
                  state->OnResult(std::move(result));
                },
            .on_done =
                [state = state_](BatchSummary summary) {
                  state->OnDone(std::move(summary));
                }};
  }

  // The summary, once on_done ran; nullopt if it did not within `timeout`.
  std::optional<BatchSummary> WaitDone(absl::Duration timeout = kPatience) {
    WaitForDoneCalls(1, timeout);
    absl::MutexLock lock(&state_->mu);
    return state_->summary;
  }

  bool WaitForResults(size_t count, absl::Duration timeout = kPatience) {
    absl::MutexLock lock(&state_->mu);
    auto enough = [this, count] {
      state_->mu.AssertReaderHeld();
      return state_->results.size() >= count;
    };
    return state_->mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  bool WaitForDoneCalls(int count, absl::Duration timeout) {
    absl::MutexLock lock(&state_->mu);
    auto enough = [this, count] {
      state_->mu.AssertReaderHeld();
      return state_->done_calls >= count;
    };
    return state_->mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  std::vector<ProbeResult> Results() const {
    absl::MutexLock lock(&state_->mu);
    return state_->results;
  }
  bool done() const {
    absl::MutexLock lock(&state_->mu);
    return state_->done_calls > 0;
  }
  size_t result_count() const {
    absl::MutexLock lock(&state_->mu);
    return state_->results.size();
  }
  int done_calls() const {
    absl::MutexLock lock(&state_->mu);
    return state_->done_calls;
  }
  int violations() const {
    absl::MutexLock lock(&state_->mu);
    return state_->violations;
  }

 private:
  struct State {
    void OnResult(ProbeResult result) {
      active_results.fetch_add(1);
      {
        absl::MutexLock lock(&mu);
        if (done_calls > 0) ++violations;
        results.push_back(std::move(result));
      }
      active_results.fetch_sub(1);
    }
    void OnDone(BatchSummary s) {
      absl::MutexLock lock(&mu);
      if (active_results.load() != 0 || done_calls > 0) ++violations;
      ++done_calls;
      summary = std::move(s);
    }

    std::atomic<int> active_results{0};
    absl::Mutex mu;
    std::vector<ProbeResult> results ABSL_GUARDED_BY(mu);
    std::optional<BatchSummary> summary ABSL_GUARDED_BY(mu);
    int done_calls ABSL_GUARDED_BY(mu) = 0;
    int violations ABSL_GUARDED_BY(mu) = 0;
  };

  std::shared_ptr<State> state_ = std::make_shared<State>();
};

struct BatchRun {
  BatchSummary summary;
  std::vector<ProbeResult> results;  // in completion order
};

// Results by index; fails the test on a duplicate index.
inline std::map<uint32_t, ProbeResult> ByIndex(
    const std::vector<ProbeResult>& all) {
  std::map<uint32_t, ProbeResult> by_index;
  for (const ProbeResult& r : all) {
    EXPECT_TRUE(by_index.emplace(r.index, r).second)
        << "index " << r.index << " reported twice";
  }
  return by_index;
}

inline std::vector<uint32_t> Indices(const std::vector<ProbeResult>& all) {
  std::vector<uint32_t> indices;
  for (const ProbeResult& r : all) indices.push_back(r.index);
  return indices;
}

inline std::shared_ptr<const ProbeOptions> Options(
    const std::function<void(ProbeOptions&)>& edit) {
  auto options = std::make_shared<ProbeOptions>();
  edit(*options);
  return options;
}

inline ProbeTarget Target(
    std::string url, std::shared_ptr<const ProbeOptions> options = nullptr) {
  return ProbeTarget{.url = std::move(url), .options = std::move(options)};
}

// `count` probes of one URL.
inline std::vector<ProbeTarget> Targets(
    int count, std::string url,
    std::shared_ptr<const ProbeOptions> options = nullptr) {
  return std::vector<ProbeTarget>(count,
                                  Target(std::move(url), std::move(options)));
}

// Submits a batch to `engine` and waits for it to end (cancelling it, and
// failing the test, if it does not within `patience`).
BatchRun RunBatch(Engine& engine, std::vector<ProbeTarget> targets,
                  const BatchOptions& options = {},
                  absl::Duration patience = kPatience);

// Checks the summary's arithmetic against the results it came with: every
// probe reported exactly once, as a result or as pending.
void ExpectConsistent(const BatchRun& run);

// An engine for tests; fails the test (and returns null) if it cannot start.
std::unique_ptr<Engine> MakeEngine(EngineOptions options);

// Makes `options` resolve through the DNS server at `address` ("ip:port")
// and nothing else: no hosts file, and a resolv.conf of the test's own
// without search domains, so no query ever reaches the machine's resolver
// and none is multiplied by the machine's search list.
void ResolveOnlyThrough(const std::string& address, EngineOptions* options);

}  // namespace testing
}  // namespace fanprobe

#endif  // FANPROBE_TESTS_PROBE_ENGINE_TEST_UTIL_H_
