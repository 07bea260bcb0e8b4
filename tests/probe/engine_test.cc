// engine_test.cc: the probe engine against loopback target servers
// (tests/support/target_server.h).  Every test waits on events (a batch's
// on_done, a counter the target server keeps), never on sleeps; the only
// timed waits are the ones that check that something does NOT happen.  What
// one probe's transfer does once started (response checks, what reaches the
// target, network failures) is tested without the engine, in
// internal/transfer_test.cc.

#include "probe/engine.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/probe.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/target_server.h"

namespace fanprobe {

namespace {

using ::fanprobe::testing::BatchRecorder;
using ::fanprobe::testing::BatchRun;
using ::fanprobe::testing::ByIndex;
using ::fanprobe::testing::ExpectConsistent;
using ::fanprobe::testing::Indices;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::Targets;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { engine_ = MakeEngine({.workers = 2}); }

  static std::unique_ptr<Engine> MakeEngine(EngineOptions options) {
    return testing::MakeEngine(std::move(options));
  }

  // Submits a batch and waits for it to end.
  BatchRun Run(std::vector<ProbeTarget> targets,
               const BatchOptions& options = {}, Engine* engine = nullptr,
               absl::Duration patience = kPatience) {
    return testing::RunBatch(engine ? *engine : *engine_, std::move(targets),
                             options, patience);
  }

  bool WaitForServer(const std::function<bool(const TargetStats&)>& condition,
                     absl::Duration timeout = kPatience) {
    return server_.WaitFor(condition, timeout);
  }

  // Declared first, destroyed last: engines close their connections first.
  TargetServer server_;
  std::unique_ptr<Engine> engine_;
};

// --- Return-when rules ------------------------------------------------------

TEST_F(EngineTest, EmptyBatchEndsAtOnceAsAllCompleted) {
  BatchRun run = Run({});
  EXPECT_EQ(run.summary.reason, EndReason::kAllCompleted);
  EXPECT_EQ(run.summary.total, 0u);
  EXPECT_EQ(run.summary.completed, 0u);
  EXPECT_THAT(run.summary.pending_indices, IsEmpty());
  EXPECT_THAT(run.results, IsEmpty());
}

TEST_F(EngineTest, AllCompletedReportsEveryProbeInCompletionOrder) {
  // All on the raw listener: under TSan, cpp-httplib's once answered a
  // 1 s delay more than a second late, which reordered the results.
  BatchRun run = Run({Target(server_.raw_url("/delay/3000")),
                      Target(server_.raw_url("/delay/1000")),
                      Target(server_.raw_url("/status/404")),
                      Target(server_.raw_url("/delay/2000"))});
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kAllCompleted);
  EXPECT_EQ(run.summary.total, 4u);
  EXPECT_EQ(run.summary.completed, 4u);
  EXPECT_EQ(run.summary.succeeded, 3u);
  EXPECT_EQ(run.summary.failed, 1u);
  EXPECT_EQ(run.summary.cancelled, 0u);
  EXPECT_GE(run.summary.elapsed, absl::Seconds(3));
  EXPECT_THAT(Indices(run.results), ElementsAre(2, 1, 3, 0));
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[2].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[2].status_code, 404);
  EXPECT_EQ(r[0].outcome, Outcome::kOk);
  EXPECT_EQ(r[3].outcome, Outcome::kOk);
}

TEST_F(EngineTest, FirstCompletedEndsAtFastestAndClosesSlowConnections) {
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstCompleted;
  BatchRun run =
      Run({Target(server_.raw_url("/delay/5000")),
           Target(server_.raw_url("/hang")), Target(server_.url("/delay/50")),
           Target(server_.raw_url("/delay/6000"))},
          options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kFirstCompleted);
  EXPECT_EQ(run.summary.completed, 1u);
  EXPECT_EQ(run.summary.cancelled, 3u);
  EXPECT_THAT(run.summary.pending_indices, ElementsAre(0, 1, 3));
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].index, 2u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kOk);
  EXPECT_GE(run.summary.elapsed, absl::Milliseconds(50));
  EXPECT_LT(run.summary.elapsed, absl::Seconds(4));
  // The three slow probes' connections are closed by the engine before
  // their answers were due (the first at 5 s).
  EXPECT_TRUE(WaitForServer(
      [](const TargetStats& s) {
        return s.raw.abandoned == 3 && s.raw.open_connections == 0;
      },
      absl::Seconds(4)))
      << "abandoned=" << server_.Stats().raw.abandoned;
}

TEST_F(EngineTest, FirstExceptionEndsAtFirstFailure) {
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstException;
  BatchRun run = Run({Target(server_.url("/delay/20")),
                      Target(server_.url("/delay/1000?status=500")),
                      Target(server_.raw_url("/delay/6000")),
                      Target(server_.raw_url("/hang"))},
                     options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kFirstException);
  EXPECT_EQ(run.summary.completed, 2u);
  EXPECT_EQ(run.summary.succeeded, 1u);
  EXPECT_EQ(run.summary.failed, 1u);
  EXPECT_THAT(run.summary.pending_indices, ElementsAre(2, 3));
  EXPECT_THAT(Indices(run.results), ElementsAre(0, 1));
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kOk);
  EXPECT_EQ(r[1].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[1].status_code, 500);
  EXPECT_GE(run.summary.elapsed, absl::Seconds(1));
  EXPECT_LT(run.summary.elapsed, absl::Seconds(5));
  EXPECT_TRUE(WaitForServer(
      [](const TargetStats& s) {
        return s.raw.abandoned == 2 && s.raw.open_connections == 0;
      },
      absl::Seconds(4)));
}

TEST_F(EngineTest, FirstExceptionCountsAnInvalidTarget) {
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstException;
  BatchRun run =
      Run({Target(server_.raw_url("/hang")), Target("ftp://127.0.0.1/file")},
          options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kFirstException);
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].index, 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kInvalidTarget);
  EXPECT_THAT(run.summary.pending_indices, ElementsAre(0));
  EXPECT_LT(run.summary.elapsed, absl::Seconds(5));
}

TEST_F(EngineTest, FirstExceptionWithoutFailureEndsAsAllCompleted) {
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstException;
  BatchRun run =
      Run({Target(server_.url("/delay/10")), Target(server_.url("/delay/50")),
           Target(server_.raw_url("/delay/100"))},
          options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kAllCompleted);
  EXPECT_EQ(run.summary.completed, 3u);
  EXPECT_EQ(run.summary.succeeded, 3u);
  EXPECT_THAT(run.summary.pending_indices, IsEmpty());
}

// --- Timeouts ---------------------------------------------------------------

TEST_F(EngineTest, ProbeTimeoutEndsTheProbeAsTimeout) {
  auto options =
      Options([](ProbeOptions& o) { o.timeout = absl::Milliseconds(200); });
  BatchRun run = Run({Target(server_.raw_url("/hang"), options)});
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kAllCompleted);
  ASSERT_EQ(run.results.size(), 1u);
  const ProbeResult& r = run.results[0];
  EXPECT_EQ(r.outcome, Outcome::kTimeout);
  EXPECT_EQ(r.status_code, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_GE(r.timings.total, absl::Milliseconds(190));
  EXPECT_LT(r.timings.total, absl::Seconds(5));
  EXPECT_LT(run.summary.elapsed, absl::Seconds(5));
  EXPECT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.abandoned == 1; }));
}

TEST_F(EngineTest, ProbeTimeoutClockStartsWhenTheProbeStarts) {
  // Three 1 s probes one at a time take 3 s; each has 2 s of its own,
  // which would run out if the clock counted time in the queue (and leaves
  // a loaded machine a second to spare).
  auto options = Options([](ProbeOptions& o) { o.timeout = absl::Seconds(2); });
  BatchOptions batch_options;
  batch_options.max_concurrency = 1;
  BatchRun run = Run({Target(server_.raw_url("/delay/1000"), options),
                      Target(server_.raw_url("/delay/1000"), options),
                      Target(server_.raw_url("/delay/1000"), options)},
                     batch_options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 3u);
  EXPECT_GE(run.summary.elapsed, absl::Seconds(3));
  EXPECT_EQ(server_.Stats().raw.max_in_flight, 1);
}

TEST_F(EngineTest, BatchTimeoutCoversQueuedProbes) {
  BatchOptions options;
  options.max_concurrency = 1;
  options.timeout = absl::Milliseconds(300);
  std::vector<ProbeTarget> targets = Targets(5, server_.raw_url("/delay/5000"));
  BatchRun run = Run(std::move(targets), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kTimeout);
  EXPECT_EQ(run.summary.completed, 0u);
  EXPECT_EQ(run.summary.cancelled, 5u);
  EXPECT_THAT(run.summary.pending_indices, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_GE(run.summary.elapsed, absl::Milliseconds(300));
  EXPECT_LT(run.summary.elapsed, absl::Seconds(4));
  // Only the first probe ever started; its connection is closed.
  EXPECT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.abandoned == 1; }));
  EXPECT_EQ(server_.Stats().raw.requests, 1);
}

TEST_F(EngineTest, BatchTimeoutKeepsResultsThatCompleted) {
  BatchOptions options;
  // Long enough for the two fast probes on a loaded machine.
  options.timeout = absl::Seconds(2);
  BatchRun run =
      Run({Target(server_.url("/status/200")), Target(server_.raw_url("/hang")),
           Target(server_.url("/delay/50")), Target(server_.raw_url("/hang"))},
          options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kTimeout);
  EXPECT_EQ(run.summary.completed, 2u);
  EXPECT_EQ(run.summary.succeeded, 2u);
  EXPECT_THAT(run.summary.pending_indices, ElementsAre(1, 3));
  EXPECT_GE(run.summary.elapsed, absl::Seconds(2));
  EXPECT_LT(run.summary.elapsed, absl::Seconds(6));
  EXPECT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.abandoned == 2; }));
}

// --- Admission --------------------------------------------------------------

TEST_F(EngineTest, PerHostLimitObservedByTarget) {
  BatchOptions options;
  options.max_per_host = 3;
  std::vector<ProbeTarget> targets;
  for (int i = 0; i < 12; ++i) {
    targets.push_back(Target(server_.url("/delay/100")));
    targets.push_back(Target(server_.raw_url("/delay/100")));
  }
  BatchRun run = Run(std::move(targets), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 24u);
  // The two listeners are two hosts (different ports): each sees at most 3.
  TargetStats stats = server_.Stats();
  EXPECT_EQ(stats.http.max_in_flight, 3);
  EXPECT_EQ(stats.raw.max_in_flight, 3);
  EXPECT_GE(run.summary.elapsed, absl::Milliseconds(400));
}

TEST_F(EngineTest, MaxConcurrencyObservedByTarget) {
  BatchOptions options;
  options.max_concurrency = 4;
  std::vector<ProbeTarget> targets = Targets(12, server_.raw_url("/delay/100"));
  BatchRun run = Run(std::move(targets), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 12u);
  EXPECT_EQ(server_.Stats().raw.max_in_flight, 4);
  EXPECT_GE(run.summary.elapsed, absl::Milliseconds(300));
}

TEST_F(EngineTest, EngineWideCapAcrossBatches) {
  std::unique_ptr<Engine> engine =
      MakeEngine({.workers = 2, .max_in_flight = 3});
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->Stats().max_in_flight, 3u);
  BatchRecorder first, second;
  std::vector<ProbeTarget> targets = Targets(6, server_.raw_url("/delay/300"));
  std::shared_ptr<Batch> a = engine->Submit(targets, {}, first.Callbacks());
  std::shared_ptr<Batch> b = engine->Submit(targets, {}, second.Callbacks());
  ASSERT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.in_flight == 3; }));
  EngineStats stats = engine->Stats();
  EXPECT_EQ(stats.probes_in_flight, 3u);
  EXPECT_EQ(stats.probes_queued, 9u);
  EXPECT_EQ(stats.batches_active, 2u);
  std::optional<BatchSummary> sa = first.WaitDone();
  std::optional<BatchSummary> sb = second.WaitDone();
  ASSERT_TRUE(sa && sb);
  EXPECT_EQ(sa->succeeded, 6u);
  EXPECT_EQ(sb->succeeded, 6u);
  EXPECT_EQ(server_.Stats().raw.max_in_flight, 3);
  stats = engine->Stats();
  EXPECT_EQ(stats.probes_in_flight, 0u);
  EXPECT_EQ(stats.probes_queued, 0u);
  EXPECT_EQ(stats.batches_active, 0u);
}

TEST_F(EngineTest, FdBudgetCapsAdmission) {
  // SetUp's engine already raised the soft limit to the hard one.
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_NE(limit.rlim_cur, RLIM_INFINITY);
  uint64_t open_fds = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++open_fds;
  }
  // Leave room for about 5 probes.
  const uint64_t reserve = limit.rlim_cur - open_fds - 5;
  std::unique_ptr<Engine> engine =
      MakeEngine({.workers = 2, .fd_reserve = static_cast<uint32_t>(reserve)});
  ASSERT_NE(engine, nullptr);
  const uint64_t cap = engine->Stats().max_in_flight;
  EXPECT_GE(cap, 1u);
  EXPECT_LE(cap, 5u);
  std::vector<ProbeTarget> targets = Targets(20, server_.raw_url("/delay/50"));
  BatchRun run = Run(std::move(targets), {}, engine.get());
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 20u);  // queued, not failed with EMFILE
  EXPECT_LE(static_cast<uint64_t>(server_.Stats().raw.max_in_flight), cap);
}

TEST_F(EngineTest, SmallBatchIsNotStarvedByAHugeSlowBatch) {
  std::unique_ptr<Engine> engine =
      MakeEngine({.workers = 2, .max_in_flight = 4});
  ASSERT_NE(engine, nullptr);
  BatchRecorder big, small;
  std::vector<ProbeTarget> big_targets =
      Targets(40, server_.url("/delay/1000"));
  BatchOptions big_options;
  big_options.max_concurrency = 0;  // the engine's cap
  std::shared_ptr<Batch> big_batch =
      engine->Submit(std::move(big_targets), big_options, big.Callbacks());
  // The big batch holds every slot before the small one arrives.
  ASSERT_TRUE(WaitForServer(
      [](const TargetStats& s) { return s.http.in_flight == 4; }));
  std::vector<ProbeTarget> small_targets =
      Targets(4, server_.url("/status/200"));
  std::shared_ptr<Batch> small_batch =
      engine->Submit(std::move(small_targets), {}, small.Callbacks());
  std::optional<BatchSummary> small_summary = small.WaitDone();
  ASSERT_TRUE(small_summary);
  EXPECT_EQ(small_summary->succeeded, 4u);
  // The big batch needs 10 rounds of 1 s; the small one gets a share of
  // the slots as soon as they free up, in the first round or two.
  EXPECT_LT(small_summary->elapsed, absl::Seconds(5));
  EXPECT_FALSE(big.done());
  big_batch->Cancel();
  std::optional<BatchSummary> big_summary = big.WaitDone();
  ASSERT_TRUE(big_summary);
  EXPECT_EQ(big_summary->reason, EndReason::kCancelled);
  EXPECT_GT(big_summary->cancelled, 0u);
}

TEST_F(EngineTest, PauseAdmissionStopsNewProbesUntilResumed) {
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 2;
  std::vector<ProbeTarget> targets = Targets(6, server_.raw_url("/delay/300"));
  std::shared_ptr<Batch> batch =
      engine_->Submit(std::move(targets), options, recorder.Callbacks());
  EXPECT_EQ(batch->size(), 6u);
  ASSERT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.in_flight == 2; }));
  batch->PauseAdmission();
  batch->PauseAdmission();  // nested: needs two resumes
  // The running probes go on...
  ASSERT_TRUE(recorder.WaitForResults(2));
  // ...but no new one starts.
  auto more_than_two = [](const TargetStats& s) { return s.raw.requests > 2; };
  EXPECT_FALSE(WaitForServer(more_than_two, absl::Milliseconds(400)));
  batch->ResumeAdmission();
  EXPECT_FALSE(WaitForServer(more_than_two, absl::Milliseconds(300)));
  EXPECT_FALSE(recorder.done());
  batch->ResumeAdmission();
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kAllCompleted);
  EXPECT_EQ(summary->succeeded, 6u);
  EXPECT_EQ(server_.Stats().raw.requests, 6);
  EXPECT_LE(server_.Stats().raw.max_in_flight, 2);
}

TEST_F(EngineTest, OnStartRunsFirstWithTheHandle) {
  // on_start hands over the batch before anything else runs: before the
  // first result (an unusable target completes inside Submit), and before
  // on_done of a batch that ends inside Submit (no targets).
  for (const int size : {0, 1, 50}) {
    std::vector<ProbeTarget> targets =
        Targets(size, server_.raw_url("/status/200"));
    if (size > 0) targets[0] = Target("ftp://127.0.0.1/file");
    absl::Mutex mu;
    std::shared_ptr<Batch> started;
    int starts = 0;
    int callbacks_before_start = 0;
    absl::Notification done;
    std::shared_ptr<Batch> batch =
        engine_->Submit(std::move(targets), {},
                        {.on_start =
                             [&](std::shared_ptr<Batch> handle) {
                               absl::MutexLock lock(&mu);
                               started = std::move(handle);
                               ++starts;
                             },
                         .on_result =
                             [&](ProbeResult) {
                               absl::MutexLock lock(&mu);
                               if (started == nullptr) ++callbacks_before_start;
                             },
                         .on_done =
                             [&](BatchSummary) {
                               {
                                 absl::MutexLock lock(&mu);
                                 if (started == nullptr)
                                   ++callbacks_before_start;
                               }
                               done.Notify();
                             }});
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(kPatience));
    absl::MutexLock lock(&mu);
    EXPECT_EQ(starts, 1) << size << " targets";
    EXPECT_EQ(started, batch) << size << " targets";
    EXPECT_EQ(callbacks_before_start, 0) << size << " targets";
  }
}

TEST_F(EngineTest, PauseFromOnResultBoundsWhatStillArrives) {
  // A consumer that pauses from inside on_result (as a full gRPC stream
  // does) gets at most max_concurrency - 1 more results: a probe's slot
  // frees only when on_result for it returns.  Before that rule, results the
  // engine had finished but not handed over kept arriving past the bound.
  constexpr int kPauseAt = 10;
  constexpr uint32_t kConcurrency = 4;
  std::vector<ProbeTarget> targets =
      Targets(200, server_.raw_url("/status/200"));
  absl::Mutex mu;
  int results = 0;
  int results_at_pause = 0;
  std::shared_ptr<Batch> handle;  // from on_start, before any result
  absl::Notification done;
  BatchOptions options;
  options.max_concurrency = kConcurrency;
  std::shared_ptr<Batch> batch =
      engine_->Submit(std::move(targets), options,
                      {.on_start =
                           [&](std::shared_ptr<Batch> started) {
                             absl::MutexLock lock(&mu);
                             handle = std::move(started);
                           },
                       .on_result =
                           [&](ProbeResult) {
                             absl::MutexLock lock(&mu);
                             if (++results == kPauseAt) {
                               handle->PauseAdmission();
                               results_at_pause = results;
                             }
                           },
                       .on_done = [&](BatchSummary) { done.Notify(); }});
  // Wait until nothing runs any more: the pause holds.
  ASSERT_TRUE(WaitForServer([](const TargetStats& s) {
    return s.raw.in_flight == 0 && s.raw.requests >= kPauseAt;
  }));
  absl::Time deadline = absl::Now() + kPatience;
  while (engine_->Stats().probes_in_flight > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const int requests_paused = server_.Stats().raw.requests;
  // One thread at a time hands a batch's results over, so a probe no longer
  // in flight may still have its result on the way: wait for it (bounded)
  // before comparing.
  {
    auto all_delivered = [&] {
      mu.AssertReaderHeld();
      return results >= requests_paused;
    };
    absl::MutexLock lock(&mu);
    mu.AwaitWithDeadline(absl::Condition(&all_delivered), deadline);
    EXPECT_EQ(results_at_pause, kPauseAt);
    EXPECT_LE(results, kPauseAt + static_cast<int>(kConcurrency) - 1);
    EXPECT_EQ(requests_paused, results);
  }
  EXPECT_FALSE(done.HasBeenNotified());
  batch->ResumeAdmission();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kPatience));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(results, 200);
}

// --- Cancellation -----------------------------------------------------------

TEST_F(EngineTest, CancelStopsRunningAndQueuedProbes) {
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 3;
  std::vector<ProbeTarget> targets = Targets(6, server_.raw_url("/hang"));
  std::shared_ptr<Batch> batch =
      engine_->Submit(std::move(targets), options, recorder.Callbacks());
  ASSERT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.in_flight == 3; }));
  absl::Time cancelled_at = absl::Now();
  batch->Cancel();
  batch->Cancel();  // harmless
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(3));
  EXPECT_EQ(summary->reason, EndReason::kCancelled);
  EXPECT_EQ(summary->total, 6u);
  EXPECT_EQ(summary->completed, 0u);
  EXPECT_EQ(summary->cancelled, 6u);
  EXPECT_THAT(summary->pending_indices, ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_THAT(recorder.Results(), IsEmpty());
  EXPECT_TRUE(WaitForServer([](const TargetStats& s) {
    return s.raw.abandoned == 3 && s.raw.open_connections == 0;
  }));
  EXPECT_EQ(server_.Stats().raw.requests, 3);  // the queued never started
  EXPECT_EQ(recorder.done_calls(), 1);
  EXPECT_EQ(recorder.violations(), 0);
}

TEST_F(EngineTest, CancelAfterDoneIsANoOp) {
  BatchRecorder recorder;
  std::shared_ptr<Batch> batch = engine_->Submit(
      {Target(server_.url("/status/200"))}, {}, recorder.Callbacks());
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  batch->Cancel();
  batch->PauseAdmission();
  batch->ResumeAdmission();
  // Neither on_done nor on_result runs again.
  EXPECT_FALSE(recorder.WaitForDoneCalls(2, absl::Milliseconds(200)));
  EXPECT_EQ(recorder.Results().size(), 1u);
  EXPECT_EQ(recorder.done_calls(), 1);
  EXPECT_EQ(recorder.violations(), 0);
  EXPECT_EQ(summary->reason, EndReason::kAllCompleted);
  EXPECT_EQ(summary->succeeded, 1u);
  EXPECT_EQ(recorder.WaitDone()->reason, EndReason::kAllCompleted);
}

TEST_F(EngineTest, EngineDestructionCancelsRunningBatch) {
  std::unique_ptr<Engine> engine = MakeEngine({.workers = 2});
  ASSERT_NE(engine, nullptr);
  BatchRecorder recorder;
  std::shared_ptr<Batch> batch = engine->Submit(
      {Target(server_.raw_url("/hang")), Target(server_.raw_url("/hang")),
       Target(server_.raw_url("/hang"))},
      {}, recorder.Callbacks());
  ASSERT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.in_flight == 3; }));
  engine.reset();
  // on_done ran before the destructor returned.
  ASSERT_TRUE(recorder.done());
  std::optional<BatchSummary> summary = recorder.WaitDone();
  EXPECT_EQ(summary->reason, EndReason::kCancelled);
  EXPECT_EQ(summary->cancelled, 3u);
  EXPECT_THAT(summary->pending_indices, ElementsAre(0, 1, 2));
  EXPECT_EQ(recorder.violations(), 0);
  EXPECT_TRUE(WaitForServer([](const TargetStats& s) {
    return s.raw.abandoned == 3 && s.raw.open_connections == 0;
  }));
}

TEST_F(EngineTest, BatchHandleMayOutliveTheEngine) {
  // Submit hands out a shared_ptr, so a caller (a gRPC reactor finishing
  // late) may still hold it, and call it, after the engine is gone.
  std::unique_ptr<Engine> engine = MakeEngine({.workers = 2});
  ASSERT_NE(engine, nullptr);
  BatchRecorder recorder;
  std::shared_ptr<Batch> batch = engine->Submit(
      {Target(server_.raw_url("/hang"))}, {}, recorder.Callbacks());
  ASSERT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.in_flight == 1; }));
  engine.reset();
  ASSERT_TRUE(recorder.done());
  EXPECT_EQ(batch->size(), 1u);
  batch->PauseAdmission();
  batch->ResumeAdmission();
  batch->Cancel();
  EXPECT_EQ(recorder.done_calls(), 1);
}

// Lets a callback reach its own batch's handle, which Submit returns only
// after callbacks may already have run.
struct BatchHolder {
  std::shared_ptr<Batch> Get() {
    absl::MutexLock lock(&mu);
    return batch;
  }
  void Set(std::shared_ptr<Batch> b) {
    absl::MutexLock lock(&mu);
    batch = std::move(b);
  }
  absl::Mutex mu;
  std::shared_ptr<Batch> batch ABSL_GUARDED_BY(mu);
};

TEST_F(EngineTest, CancelFromInsideOnResult) {
  auto holder = std::make_shared<BatchHolder>();
  BatchRecorder recorder;
  BatchCallbacks callbacks = recorder.Callbacks();
  callbacks.on_result = [holder, inner = callbacks.on_result](ProbeResult r) {
    inner(std::move(r));
    if (std::shared_ptr<Batch> batch = holder->Get()) batch->Cancel();
  };
  holder->Set(engine_->Submit(
      {Target(server_.url("/delay/50")), Target(server_.raw_url("/hang")),
       Target(server_.raw_url("/hang"))},
      {}, std::move(callbacks)));
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kCancelled);
  EXPECT_EQ(summary->completed, 1u);
  EXPECT_THAT(summary->pending_indices, ElementsAre(1, 2));
  EXPECT_EQ(recorder.violations(), 0);
  EXPECT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.abandoned == 2; }));
}

TEST_F(EngineTest, OnDoneMayDropTheLastReferenceToItsBatch) {
  auto holder = std::make_shared<BatchHolder>();
  BatchRecorder recorder;
  BatchCallbacks callbacks = recorder.Callbacks();
  callbacks.on_done = [holder, inner = callbacks.on_done](BatchSummary s) {
    holder->Set(nullptr);  // the handle may be the last reference
    inner(std::move(s));
  };
  BatchOptions options;
  // Long enough for the fast probe on a loaded machine.
  options.timeout = absl::Seconds(2);
  holder->Set(engine_->Submit(
      {Target(server_.raw_url("/hang")), Target(server_.url("/status/200"))},
      options, std::move(callbacks)));
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kTimeout);
  EXPECT_THAT(summary->pending_indices, ElementsAre(0));
  EXPECT_EQ(holder->Get(), nullptr);
}

TEST_F(EngineTest, ExactlyOnceWhileCancelsRaceCompletions) {
  // Cancel lands at a different point of the batch each round: while
  // results are being delivered, between probes, with probes queued.
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    std::vector<ProbeTarget> targets;
    for (int i = 0; i < 100; ++i) {
      targets.push_back(Target(i % 2 == 0 ? server_.url("/status/200")
                                          : server_.raw_url("/delay/5")));
    }
    BatchRecorder recorder;
    BatchOptions options;
    options.max_concurrency = 10;
    std::shared_ptr<Batch> batch =
        engine_->Submit(std::move(targets), options, recorder.Callbacks());
    ASSERT_TRUE(recorder.WaitForResults(round * 4));
    batch->Cancel();
    std::optional<BatchSummary> summary = recorder.WaitDone();
    ASSERT_TRUE(summary);
    EXPECT_EQ(recorder.violations(), 0);
    ExpectConsistent({*summary, recorder.Results()});
    if (summary->completed < 100) {
      EXPECT_EQ(summary->reason, EndReason::kCancelled);
    }
  }
}

// --- Exactly once -----------------------------------------------------------

// Index i of the mixed batch below, by i % 10.
Outcome MixedOutcome(uint32_t i) {
  switch (i % 10) {
    case 6:
      return Outcome::kUnexpectedStatus;
    case 7:
      return Outcome::kConnectError;
    case 8:
      return Outcome::kInvalidTarget;
    case 9:
      return Outcome::kTimeout;
    default:
      return Outcome::kOk;
  }
}

std::vector<ProbeTarget> MixedTargets(
    const TargetServer& server, const RefusedPort& refused, uint32_t count,
    absl::Duration hang_timeout = absl::Milliseconds(300)) {
  auto short_timeout =
      Options([&](ProbeOptions& o) { o.timeout = hang_timeout; });
  std::vector<ProbeTarget> targets;
  for (uint32_t i = 0; i < count; ++i) {
    ProbeTarget t;
    switch (i % 10) {
      case 6:
        t = Target(server.url("/status/404"));
        break;
      case 7:
        t = Target(refused.url("/"));
        break;
      case 8:
        t = Target(i % 20 == 8 ? "http://[::1" : "ftp://127.0.0.1/x");
        break;
      case 9:
        t = Target(server.raw_url("/hang"), short_timeout);
        break;
      default:
        t = Target(server.url("/status/200"));
    }
    t.id = absl::StrCat("p", i);
    targets.push_back(std::move(t));
  }
  return targets;
}

TEST_F(EngineTest, OnResultCallsOfABatchNeverOverlap) {
  // Two workers finish fast probes at the same time (before the engine
  // serialized delivery, two calls were seen at once here); a consumer that
  // takes a little while per result must still see one call at a time.
  std::vector<ProbeTarget> targets =
      Targets(2000, server_.raw_url("/status/200"));
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  std::atomic<int> calls{0};
  absl::Notification done;
  BatchOptions options;
  options.max_concurrency = 200;
  engine_->Submit(std::move(targets), options,
                  {.on_result =
                       [&](ProbeResult r) {
                         const int now = ++inside;
                         int seen = most_inside.load();
                         while (now > seen &&
                                !most_inside.compare_exchange_weak(seen, now)) {
                         }
                         ++calls;
                         // A slow consumer widens the window for an overlapping
                         // call.
                         absl::SleepFor(absl::Microseconds(50));
                         --inside;
                       },
                   .on_done = [&](BatchSummary) { done.Notify(); }});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kPatience));
  EXPECT_EQ(calls.load(), 2000);
  EXPECT_EQ(most_inside.load(), 1);
}

TEST_F(EngineTest, ExactlyOnceOnAThousandProbesWithMixedOutcomes) {
  RefusedPort refused;
  BatchOptions options;
  options.max_concurrency = 200;
  // What is tested is exactly once, not speed: under TSan at load 20 the
  // batch took longer than the 10 s every other batch gets.
  BatchRun run = Run(MixedTargets(server_, refused, 1000), options, nullptr,
                     absl::Seconds(100));
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kAllCompleted);
  EXPECT_EQ(run.summary.total, 1000u);
  EXPECT_EQ(run.summary.completed, 1000u);
  EXPECT_EQ(run.summary.succeeded, 600u);
  EXPECT_EQ(run.summary.failed, 400u);
  EXPECT_EQ(run.summary.cancelled, 0u);
  std::map<uint32_t, ProbeResult> by_index = ByIndex(run.results);
  ASSERT_EQ(by_index.size(), 1000u);
  std::map<Outcome, int> counts;
  for (const auto& [i, r] : by_index) {
    EXPECT_EQ(r.outcome, MixedOutcome(i)) << "index " << i << ": " << r.error;
    EXPECT_EQ(r.id, absl::StrCat("p", i));
    ++counts[r.outcome];
  }
  EXPECT_THAT(counts, ElementsAre(Pair(Outcome::kOk, 600),
                                  Pair(Outcome::kUnexpectedStatus, 100),
                                  Pair(Outcome::kConnectError, 100),
                                  Pair(Outcome::kTimeout, 100),
                                  Pair(Outcome::kInvalidTarget, 100)));
  TargetStats stats = server_.Stats();
  EXPECT_EQ(stats.http.requests, 700);
  // None sent twice.  Not all 100 need arrive: on a loaded machine a probe
  // may time out while still connecting (under ASan at load 20, 99 of 100
  // reached the never-answering target, and no more did in 10 s after).
  EXPECT_LE(stats.raw.requests, 100);
}

TEST_F(EngineTest, ExactlyOnceWhenABigBatchEndsEarly) {
  RefusedPort refused;
  BatchOptions options;
  options.max_concurrency = 100;
  options.timeout = absl::Milliseconds(400);
  // The hanging probes outlast the batch and fill its slots, so the batch
  // times out with probes running and queued.
  BatchRun run =
      Run(MixedTargets(server_, refused, 1000, absl::Seconds(5)), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kTimeout);
  EXPECT_EQ(run.summary.total, 1000u);
  EXPECT_GT(run.summary.completed, 0u);
  EXPECT_GT(run.summary.cancelled, 0u);
  for (const ProbeResult& r : run.results) {
    EXPECT_EQ(r.outcome, MixedOutcome(r.index)) << "index " << r.index;
  }
  EXPECT_TRUE(WaitForServer(
      [](const TargetStats& s) { return s.raw.open_connections == 0; }));
}

// --- Bad input --------------------------------------------------------------

TEST_F(EngineTest, InvalidTargetsFailAloneAndTheBatchGoesOn) {
  auto crlf_value = Options([](ProbeOptions& o) {
    o.headers = {{"X-Bad", "a\r\nInjected: 1"}};
  });
  auto lf_name = Options([](ProbeOptions& o) {
    o.headers = {{"X-Bad\nInjected", "1"}};
  });
  // A body pattern that does not compile is caught with the options, before
  // the probe reaches a transport.
  auto bad_pattern =
      Options([](ProbeOptions& o) { o.body_must_match = {"(unclosed"}; });
  BatchRun run = Run(
      {Target("http://"),
       Target(absl::StrCat("ftp://127.0.0.1:", server_.port(), "/status/200")),
       Target(server_.url("/status/201"), crlf_value),
       Target(server_.url("/status/202"), lf_name), Target("http://[::1"),
       Target("file:///etc/passwd"),
       Target(server_.url("/body/invalid-regex"), bad_pattern),
       Target(server_.url("/status/200"))});
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.reason, EndReason::kAllCompleted);
  EXPECT_EQ(run.summary.completed, 8u);
  EXPECT_EQ(run.summary.succeeded, 1u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  for (uint32_t i = 0; i < 7; ++i) {
    EXPECT_EQ(r[i].outcome, Outcome::kInvalidTarget) << "index " << i;
    EXPECT_FALSE(r[i].error.empty()) << "index " << i;
    EXPECT_EQ(r[i].status_code, 0) << "index " << i;
  }
  EXPECT_EQ(r[7].outcome, Outcome::kOk);
  // Nothing was sent for the invalid ones.
  TargetStats stats = server_.Stats();
  EXPECT_EQ(stats.http.requests, 1);
  EXPECT_EQ(stats.http.requests_by_path["/status/200"], 1);
  EXPECT_EQ(stats.http.requests_by_path.count("/body/invalid-regex"), 0u);
}

TEST_F(EngineTest, UrlWithoutSchemeIsHttp) {
  std::string url = absl::StrCat("127.0.0.1:", server_.port(), "/status/200");
  BatchRun run = Run({Target(url)});
  ASSERT_EQ(run.results.size(), 1u);
  const ProbeResult& r = run.results[0];
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.status_code, 200);
  EXPECT_EQ(r.url, url);
  EXPECT_EQ(r.final_url, server_.url("/status/200"));
  EXPECT_EQ(server_.Stats().http.requests_by_path["/status/200"], 1);
}

TEST_F(EngineTest, InvalidTargetsCompleteAtOnceWhenTheEngineIsSaturated) {
  // engine.h: "an unusable target completes at once as kInvalidTarget".
  // Nothing is sent for it, so it must not wait for an engine slot.
  std::unique_ptr<Engine> engine =
      MakeEngine({.workers = 2, .max_in_flight = 1});
  ASSERT_NE(engine, nullptr);
  auto hang_30s =
      Options([](ProbeOptions& o) { o.timeout = absl::Seconds(30); });
  BatchRecorder busy, invalid;
  std::shared_ptr<Batch> busy_batch = engine->Submit(
      {Target(server_.raw_url("/hang"), hang_30s)}, {}, busy.Callbacks());
  ASSERT_TRUE(
      WaitForServer([](const TargetStats& s) { return s.raw.in_flight == 1; }));
  absl::Time submitted = absl::Now();
  engine->Submit({Target("ftp://127.0.0.1/x"), Target("http://")}, {},
                 invalid.Callbacks());
  std::optional<BatchSummary> summary = invalid.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_LT(absl::Now() - submitted, absl::Seconds(5))
      << "invalid targets waited for the busy batch's slot";
  EXPECT_EQ(summary->reason, EndReason::kAllCompleted);
  EXPECT_EQ(summary->failed, 2u);
  busy_batch->Cancel();
}

// --- Connection reuse -------------------------------------------------------

TEST_F(EngineTest, ReuseConnectionsSharesConnectionsToOneHost) {
  auto reuse = Options([](ProbeOptions& o) { o.reuse_connections = true; });
  BatchOptions options;
  options.max_concurrency = 1;  // one after another
  std::vector<ProbeTarget> targets =
      Targets(10, server_.raw_url("/status/200"), reuse);
  BatchRun run = Run(std::move(targets), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 10u);
  TargetStats stats = server_.Stats();
  EXPECT_EQ(stats.raw.requests, 10);
  // At most one kept connection per worker (the engine has 2).
  EXPECT_LE(stats.raw.connections, 2);
}

TEST_F(EngineTest, WithoutReuseEachProbeOpensAndClosesItsOwnConnection) {
  BatchOptions options;
  options.max_concurrency = 1;
  std::vector<ProbeTarget> targets =
      Targets(10, server_.raw_url("/status/200"));
  BatchRun run = Run(std::move(targets), options);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 10u);
  EXPECT_EQ(server_.Stats().raw.connections, 10);
  EXPECT_TRUE(WaitForServer([](const TargetStats& s) {
    return s.raw.open_connections == 0 && s.raw.closed_by_client == 10;
  }));
}

}  // namespace
}  // namespace fanprobe
