// The engine's admission and batch life without sockets: a fake transport
// runs the probes until the test finishes them, so caps, fairness,
// return-when rules and exactly-once are checked event by event, with no
// target server and no clock.

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/probe/internal/fake_transport.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class AdmissionTest : public ::testing::Test {
 protected:
  void StartEngine(int lanes, uint32_t max_in_flight = 10000) {
    EngineOptions options;
    options.workers = lanes;
    options.max_in_flight = max_in_flight;
    options.transport = std::make_shared<FakeTransportFactory>(probes_);
    engine_ = MakeEngine(std::move(options));
    ASSERT_NE(engine_, nullptr);
  }

  // `count` targets on distinct hosts h<first>.test ... (no name is ever
  // resolved: the fake transport opens nothing).
  static std::vector<ProbeTarget> Hosts(int count, int first = 0,
                                        absl::string_view domain = "test") {
    std::vector<ProbeTarget> targets;
    for (int i = first; i < first + count; ++i) {
      targets.push_back(Target(absl::StrCat("http://h", i, ".", domain, "/")));
    }
    return targets;
  }

  // Finishes the oldest running probe with `outcome` and waits until its
  // lane has reported it; nullopt if none ran.
  std::optional<FakeProbe> FinishOldest(Outcome outcome = Outcome::kOk) {
    std::vector<FakeProbe> running = probes_->Running();
    if (running.empty()) return std::nullopt;
    const FakeProbe oldest = running.front();
    probes_->Finish(oldest.id, outcome);
    const bool reported = probes_->WaitFor(
        [&oldest](const std::vector<FakeProbe>& now) {
          return std::none_of(now.begin(), now.end(), [&](const FakeProbe& p) {
            return p.id == oldest.id;
          });
        },
        kPatience);
    if (!reported) return std::nullopt;
    return oldest;
  }

  std::shared_ptr<FakeProbes> probes_ = std::make_shared<FakeProbes>();
  std::unique_ptr<Engine> engine_;
};

TEST_F(AdmissionTest, BatchConcurrencyBoundsWhatRuns) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 3;
  engine_->Submit(Hosts(10), options, recorder.Callbacks());

  ASSERT_TRUE(probes_->WaitForRunning(3, kPatience));
  // Each finished probe lets exactly one more start, never a fourth.
  for (uint64_t finished = 1; finished <= 10; ++finished) {
    ASSERT_TRUE(FinishOldest());
    ASSERT_TRUE(recorder.WaitForResults(finished));
    const uint64_t next = std::min<uint64_t>(10, 3 + finished);
    ASSERT_TRUE(probes_->WaitForStarted(next, kPatience));
    ASSERT_TRUE(probes_->WaitForRunning(next - finished, kPatience));
  }
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kAllCompleted);
  EXPECT_EQ(summary->succeeded, 10u);
  EXPECT_EQ(probes_->max_running(), 3u);
  EXPECT_EQ(probes_->started(), 10u);
  ExpectConsistent({*summary, recorder.Results()});
}

TEST_F(AdmissionTest, EngineCapHoldsAcrossBatches) {
  StartEngine(/*lanes=*/2, /*max_in_flight=*/4);
  BatchRecorder a;
  BatchRecorder b;
  engine_->Submit(Hosts(6, 0), {}, a.Callbacks());
  engine_->Submit(Hosts(6, 100), {}, b.Callbacks());
  ASSERT_TRUE(probes_->WaitForRunning(4, kPatience));
  for (int finished = 0; finished < 12; ++finished) {
    ASSERT_TRUE(probes_->WaitFor(
        [](const std::vector<FakeProbe>& r) { return !r.empty(); }, kPatience))
        << "nothing runs after " << finished << " of 12";
    ASSERT_TRUE(FinishOldest());
  }
  EXPECT_EQ(probes_->max_running(), 4u);
  EXPECT_EQ(probes_->started(), 12u);
  EXPECT_EQ(a.WaitDone()->succeeded, 6u);
  EXPECT_EQ(b.WaitDone()->succeeded, 6u);
}

TEST_F(AdmissionTest, PerHostLimitHoldsAndOtherHostsGoOn) {
  StartEngine(/*lanes=*/2);
  std::vector<ProbeTarget> targets;
  for (int i = 0; i < 4; ++i) targets.push_back(Target("http://a.test/"));
  for (int i = 0; i < 4; ++i) targets.push_back(Target("http://b.test/"));
  BatchRecorder recorder;
  BatchOptions options;
  options.max_per_host = 1;
  engine_->Submit(std::move(targets), options, recorder.Callbacks());

  // One of each host at once, although a's four come first.
  ASSERT_TRUE(probes_->WaitFor(
      [](const std::vector<FakeProbe>& running) {
        std::set<std::string> hosts;
        for (const FakeProbe& p : running) hosts.insert(p.host_key);
        return running.size() == 2 && hosts.size() == 2;
      },
      kPatience));
  for (uint64_t finished = 1; finished <= 8; ++finished) {
    ASSERT_TRUE(probes_->WaitFor(
        [](const std::vector<FakeProbe>& r) { return !r.empty(); }, kPatience));
    ASSERT_TRUE(FinishOldest());
    ASSERT_TRUE(recorder.WaitForResults(finished));
  }
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->succeeded, 8u);
  EXPECT_EQ(probes_->max_running_per_host(), 1u);
  EXPECT_EQ(probes_->max_running(), 2u);
}

// Batches take turns at the engine's free slots: a small batch submitted
// behind a big one does not wait for the big one to drain.
TEST_F(AdmissionTest, SmallBatchTakesTurnsWithABigOne) {
  StartEngine(/*lanes=*/2, /*max_in_flight=*/2);
  BatchRecorder big;
  BatchRecorder small;
  std::shared_ptr<Batch> big_batch =
      engine_->Submit(Hosts(100, 0, "big.test"), {}, big.Callbacks());
  ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  engine_->Submit(Hosts(2, 0, "small.test"), {}, small.Callbacks());

  // Slots free up one at a time.  The batches take them in turns, so the
  // small batch's two probes start within the next four, not after the big
  // batch's 98 waiting ones.
  for (uint64_t started = 3; started <= 6; ++started) {
    ASSERT_TRUE(FinishOldest());
    ASSERT_TRUE(probes_->WaitForStarted(started, kPatience));
    ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  }
  std::vector<std::string> order = probes_->StartOrder();
  ASSERT_EQ(order.size(), 6u);
  EXPECT_THAT(std::vector<std::string>(order.begin() + 2, order.end()),
              ::testing::IsSupersetOf(
                  {"http://h0.small.test/", "http://h1.small.test/"}));
  big_batch->Cancel();
  EXPECT_EQ(big.WaitDone()->reason, EndReason::kCancelled);
}

TEST_F(AdmissionTest, FirstCompletedDropsTheRunningRest) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstCompleted;
  engine_->Submit(Hosts(5), options, recorder.Callbacks());
  ASSERT_TRUE(probes_->WaitForRunning(5, kPatience));
  const FakeProbe first = probes_->Running()[2];
  probes_->Finish(first.id, Outcome::kOk);

  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kFirstCompleted);
  EXPECT_EQ(summary->completed, 1u);
  EXPECT_EQ(summary->cancelled, 4u);
  EXPECT_EQ(summary->pending_indices.size(), 4u);
  EXPECT_THAT(Indices(recorder.Results()), ElementsAre(first.index));
  // The transport was told to stop the other four.
  ASSERT_TRUE(probes_->WaitForRunning(0, kPatience));
  EXPECT_EQ(probes_->dropped(), 4u);
  ExpectConsistent({*summary, recorder.Results()});
}

TEST_F(AdmissionTest, FirstExceptionEndsOnTheFirstFailureOnly) {
  StartEngine(/*lanes=*/1);
  BatchRecorder recorder;
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstException;
  options.max_concurrency = 1;  // one at a time: the order is the test's
  engine_->Submit(Hosts(4), options, recorder.Callbacks());
  ASSERT_TRUE(probes_->WaitForStarted(1, kPatience));
  ASSERT_TRUE(FinishOldest(Outcome::kOk));
  ASSERT_TRUE(probes_->WaitForStarted(2, kPatience));
  ASSERT_TRUE(FinishOldest(Outcome::kConnectError));

  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kFirstException);
  EXPECT_EQ(summary->succeeded, 1u);
  EXPECT_EQ(summary->failed, 1u);
  EXPECT_THAT(summary->pending_indices, ElementsAre(2, 3));
  EXPECT_EQ(probes_->started(), 2u);  // the rest never started
  ExpectConsistent({*summary, recorder.Results()});
}

TEST_F(AdmissionTest, BatchTimeoutDropsWhatRunsAndListsWhatWaits) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 2;
  options.timeout = absl::Milliseconds(50);
  engine_->Submit(Hosts(5), options, recorder.Callbacks());
  // Nothing is ever finished: only the batch's timeout ends it.
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kTimeout);
  EXPECT_EQ(summary->completed, 0u);
  EXPECT_THAT(summary->pending_indices, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(recorder.Results(), IsEmpty());
  ASSERT_TRUE(probes_->WaitForRunning(0, kPatience));
  EXPECT_EQ(probes_->started(), probes_->dropped());
  EXPECT_LE(probes_->started(), 2u);
}

TEST_F(AdmissionTest, PausedBatchStartsNothingUntilResumed) {
  StartEngine(/*lanes=*/1);
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 2;
  std::shared_ptr<Batch> batch =
      engine_->Submit(Hosts(4), options, recorder.Callbacks());
  ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  batch->PauseAdmission();
  ASSERT_TRUE(FinishOldest());
  ASSERT_TRUE(FinishOldest());
  ASSERT_TRUE(recorder.WaitForResults(2));
  // Both slots are free, but the batch is paused: nothing starts.  (A
  // bounded wait for what must not happen; a slow machine can only make it
  // miss a bug, never fail a correct engine.)
  EXPECT_FALSE(probes_->WaitForStarted(3, absl::Milliseconds(200)));
  batch->ResumeAdmission();
  ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  ASSERT_TRUE(FinishOldest());
  ASSERT_TRUE(FinishOldest());
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->succeeded, 4u);
  EXPECT_EQ(probes_->started(), 4u);
}

// Finishes from two threads race a cancel over a big batch; every probe is
// reported exactly once, as a result or as pending, and the transport is
// left with nothing running.  The cancel comes from inside on_result, once
// enough results are in, so it always lands while probes still finish.
TEST_F(AdmissionTest, ExactlyOnceWhileFinishesRaceACancel) {
  StartEngine(/*lanes=*/2);
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    BatchRecorder recorder;
    BatchOptions options;
    options.max_concurrency = 64;
    const uint32_t cancel_at = 300 * seed;
    BatchCallbacks callbacks = recorder.Callbacks();
    std::shared_ptr<Batch> batch;
    callbacks.on_start = [&batch](std::shared_ptr<Batch> b) { batch = b; };
    callbacks.on_result =
        [&batch, cancel_at, results = uint32_t{0},
         inner = callbacks.on_result](ProbeResult result) mutable {
          inner(std::move(result));
          if (++results == cancel_at) batch->Cancel();
        };
    engine_->Submit(Hosts(2000), options, std::move(callbacks));
    std::atomic<bool> stop{false};
    auto finisher = [&](uint32_t thread_seed) {
      std::mt19937 random(thread_seed);
      while (!stop.load()) {
        std::vector<FakeProbe> running = probes_->Running();
        if (running.empty()) {
          std::this_thread::yield();
          continue;
        }
        const FakeProbe& p = running[random() % running.size()];
        probes_->Finish(
            p.id, random() % 3 == 0 ? Outcome::kConnectError : Outcome::kOk);
      }
    };
    std::thread one(finisher, seed * 2);
    std::thread two(finisher, seed * 2 + 1);
    std::optional<BatchSummary> summary = recorder.WaitDone();
    stop = true;
    one.join();
    two.join();
    ASSERT_TRUE(summary);
    EXPECT_EQ(summary->reason, EndReason::kCancelled);
    EXPECT_GE(summary->completed, cancel_at);
    EXPECT_LT(summary->completed, 2000u);
    EXPECT_EQ(recorder.violations(), 0);
    ExpectConsistent({*summary, recorder.Results()});
    // Starts posted before the cancel reach their lanes after it and are
    // dropped there.
    ASSERT_TRUE(probes_->WaitForRunning(0, kPatience));
    EXPECT_TRUE(
        WaitUntil([&] { return engine_->Stats().probes_in_flight == 0; }));
  }
}

TEST_F(AdmissionTest, EngineShutdownEndsEveryBatchAsCancelled) {
  StartEngine(/*lanes=*/2);
  BatchRecorder a;
  BatchRecorder b;
  engine_->Submit(Hosts(10), {}, a.Callbacks());
  engine_->Submit(Hosts(10, 10), {}, b.Callbacks());
  ASSERT_TRUE(probes_->WaitForRunning(20, kPatience));
  std::optional<FakeProbe> finished = FinishOldest();
  ASSERT_TRUE(finished);
  // a's targets are h<index>, b's h<index + 10>.
  BatchRecorder& owner =
      finished->url == absl::StrCat("http://h", finished->index, ".test/") ? a
                                                                           : b;
  ASSERT_TRUE(owner.WaitForResults(1));
  engine_.reset();
  for (BatchRecorder* recorder : {&a, &b}) {
    std::optional<BatchSummary> summary = recorder->WaitDone();
    ASSERT_TRUE(summary);
    EXPECT_EQ(summary->reason, EndReason::kCancelled);
    ExpectConsistent({*summary, recorder->Results()});
  }
  EXPECT_THAT(probes_->Running(), IsEmpty());
  EXPECT_EQ(probes_->dropped(), 19u);
}

// Open batches (ProbeStream): targets come in over time.

TEST_F(AdmissionTest, AnOpenBatchRunsWhatIsAddedAndEndsOnlyOnceClosed) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  std::shared_ptr<Batch> batch = engine_->Open({}, recorder.Callbacks());
  batch->Add(Hosts(3));
  ASSERT_TRUE(probes_->WaitForRunning(3, kPatience));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(FinishOldest());
  ASSERT_TRUE(recorder.WaitForResults(3));
  // Every target added has completed, but more may come.
  EXPECT_EQ(recorder.done_calls(), 0);
  EXPECT_EQ(engine_->Stats().batches_active, 1u);

  // Indices go on from the last target added; an unusable one completes at
  // once, as in a submitted batch.
  std::vector<ProbeTarget> more = Hosts(2, 3);
  more.push_back(Target("ftp://h5.test/"));
  batch->Add(std::move(more));
  ASSERT_TRUE(recorder.WaitForResults(4));
  EXPECT_EQ(recorder.Results()[3].index, 5u);
  EXPECT_EQ(recorder.Results()[3].outcome, Outcome::kInvalidTarget);
  ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  std::vector<uint32_t> indices;
  for (const FakeProbe& probe : probes_->Running()) {
    indices.push_back(probe.index);
  }
  EXPECT_THAT(indices, UnorderedElementsAre(3u, 4u));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(FinishOldest());
  ASSERT_TRUE(recorder.WaitForResults(6));
  EXPECT_EQ(recorder.done_calls(), 0);
  EXPECT_EQ(batch->size(), 6u);

  batch->Close();
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kAllCompleted);
  EXPECT_EQ(summary->total, 6u);
  EXPECT_EQ(summary->succeeded, 5u);
  EXPECT_EQ(summary->failed, 1u);
  ExpectConsistent({*summary, recorder.Results()});
  // Adding after the end changes nothing.
  batch->Add(Hosts(1, 6));
  EXPECT_EQ(batch->size(), 6u);
  EXPECT_EQ(probes_->started(), 5u);
}

TEST_F(AdmissionTest, AnOpenBatchListsWhatIsLeftBehindASlowTargetWhenItEnds) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 2;
  std::shared_ptr<Batch> batch = engine_->Open(options, recorder.Callbacks());
  batch->Add(Hosts(6));
  ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  // Index 0 stays running while the ones behind it complete: they are done
  // though index 0 is not, and must not be listed as pending.
  const uint32_t slow = probes_->Running().front().index;
  for (int finished = 1; finished <= 3; ++finished) {
    std::vector<FakeProbe> running = probes_->Running();
    ASSERT_EQ(running.size(), 2u);
    const FakeProbe& other = running[0].index == slow ? running[1] : running[0];
    probes_->Finish(other.id, Outcome::kOk);
    ASSERT_TRUE(recorder.WaitForResults(static_cast<size_t>(finished)));
    ASSERT_TRUE(probes_->WaitForRunning(2, kPatience));
  }
  batch->Add(Hosts(2, 6));
  batch->Cancel();
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kCancelled);
  EXPECT_EQ(summary->total, 8u);
  EXPECT_EQ(summary->completed, 3u);
  // The slow one, the one running beside it, the one queued, and the two
  // added last.
  EXPECT_EQ(summary->pending_indices.size(), 5u);
  EXPECT_EQ(summary->pending_indices.front(), slow);
  EXPECT_THAT(summary->pending_indices,
              ::testing::IsSupersetOf({slow, 5u, 6u, 7u}));
  ExpectConsistent({*summary, recorder.Results()});
}

TEST_F(AdmissionTest, AnOpenBatchFedAsResultsReturnHoldsFewTargets) {
  // A feeder that adds a chunk whenever fewer than a window's worth are
  // outstanding, as ProbeStream does: 10,000 targets pass through, and the
  // engine never holds more than that window plus one chunk.
  StartEngine(/*lanes=*/2);
  constexpr int kTotal = 10000;
  constexpr int kChunk = 100;
  constexpr uint32_t kWindow = 200;
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 50;
  std::shared_ptr<Batch> batch = engine_->Open(options, recorder.Callbacks());
  int added = 0;
  uint64_t peak_queued = 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  for (;;) {
    ASSERT_LT(absl::Now(), give_up) << recorder.result_count() << " results";
    const size_t completed = recorder.result_count();
    if (completed == static_cast<size_t>(kTotal)) break;
    if (added < kTotal && added - completed < kWindow) {
      batch->Add(Hosts(kChunk, added));
      added += kChunk;
      const EngineStats stats = engine_->Stats();
      peak_queued =
          std::max(peak_queued, stats.probes_queued + stats.probes_in_flight);
      continue;
    }
    for (const FakeProbe& probe : probes_->Running()) {
      probes_->Finish(probe.id, Outcome::kOk);
    }
    // Starts reach the lanes, and results the recorder, asynchronously:
    // wait for a result, or a moment for queued probes to start.
    recorder.WaitForResults(completed + 1, absl::Milliseconds(20));
  }
  batch->Close();
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kAllCompleted);
  EXPECT_EQ(summary->total, static_cast<uint32_t>(kTotal));
  EXPECT_EQ(summary->succeeded, static_cast<uint32_t>(kTotal));
  EXPECT_LE(peak_queued, kWindow + kChunk);
  ExpectConsistent({*summary, recorder.Results()});
}

// The first target completes while Submit() is still adding the rest (an
// unusable one completes as soon as it is checked), so the batch ends
// before most are added; the summary lists every one of them anyway.
TEST_F(AdmissionTest, ABatchThatEndsWhileSubmitAddsListsEveryTarget) {
  StartEngine(/*lanes=*/2);
  constexpr int kTargets = 5000;
  std::vector<ProbeTarget> targets = Hosts(kTargets);
  targets[0] = Target("ftp://h0.test/");
  BatchRecorder recorder;
  BatchOptions options;
  options.return_when = ReturnWhen::kFirstCompleted;
  engine_->Submit(std::move(targets), options, recorder.Callbacks());
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kFirstCompleted);
  EXPECT_EQ(summary->total, static_cast<uint32_t>(kTargets));
  EXPECT_EQ(summary->completed, 1u);
  EXPECT_EQ(summary->cancelled, static_cast<uint32_t>(kTargets - 1));
  std::vector<uint32_t> rest(kTargets - 1);
  std::iota(rest.begin(), rest.end(), 1u);
  EXPECT_EQ(summary->pending_indices, rest);
  ExpectConsistent({*summary, recorder.Results()});
}

// A batch can end before Submit has added anything: cancelled from on_start
// here, or by a zero timeout or the engine stopping.  Its targets never ran,
// and are pending all the same.
TEST_F(AdmissionTest, ABatchThatEndsBeforeItsTargetsAreAddedListsThemAll) {
  StartEngine(/*lanes=*/1);
  constexpr int kTargets = 100;
  BatchRecorder recorder;
  BatchCallbacks callbacks = recorder.Callbacks();
  callbacks.on_start = [](std::shared_ptr<Batch> batch) { batch->Cancel(); };
  engine_->Submit(Hosts(kTargets), BatchOptions{}, std::move(callbacks));
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->reason, EndReason::kCancelled);
  EXPECT_EQ(summary->total, static_cast<uint32_t>(kTargets));
  EXPECT_EQ(summary->cancelled, static_cast<uint32_t>(kTargets));
  std::vector<uint32_t> every(kTargets);
  std::iota(every.begin(), every.end(), 0u);
  EXPECT_EQ(summary->pending_indices, every);
  EXPECT_EQ(probes_->started(), 0u);
  EXPECT_EQ(engine_->Stats().batches_active, 0u);
}

// Retries (ProbeOptions::retry): a failed attempt that may be retried is
// begun again on a lane, as a new running probe of the same index.

std::shared_ptr<const ProbeOptions> Retrying(
    int max_attempts, absl::Duration backoff,
    absl::Duration timeout = absl::Minutes(5)) {
  return Options([&](ProbeOptions& o) {
    o.timeout = timeout;
    o.retry.max_attempts = max_attempts;
    o.retry.initial_backoff = backoff;
  });
}

std::vector<Outcome> AttemptOutcomes(const ProbeResult& result) {
  std::vector<Outcome> outcomes;
  for (const Attempt& attempt : result.attempts) {
    outcomes.push_back(attempt.outcome);
  }
  return outcomes;
}

// Waits until target `index` runs its attempt `attempt`, then finishes it
// with `outcome`; false if it did not run.
bool FinishAttempt(FakeProbes& probes, uint32_t index, int attempt,
                   Outcome outcome) {
  uint64_t id = 0;
  if (!probes.WaitFor(
          [&](const std::vector<FakeProbe>& running) {
            for (const FakeProbe& p : running) {
              if (p.index == index && p.attempt == attempt) id = p.id;
            }
            return id != 0;
          },
          kPatience)) {
    return false;
  }
  probes.Finish(id, outcome);
  return true;
}

TEST_F(AdmissionTest, ARetriedProbeEndsWithItsLastAttemptAndListsEveryOne) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  engine_->Submit(
      {Target("http://h0.test/", Retrying(3, absl::Milliseconds(1)))}, {},
      recorder.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kConnectError));
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 2, Outcome::kIoError));
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 3, Outcome::kOk));
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->succeeded, 1u);
  EXPECT_EQ(probes_->started(), 3u);
  std::vector<ProbeResult> results = recorder.Results();
  ASSERT_EQ(results.size(), 1u);
  const ProbeResult& result = results[0];
  EXPECT_EQ(result.outcome, Outcome::kOk);
  EXPECT_EQ(result.status_code, 200);
  EXPECT_THAT(
      AttemptOutcomes(result),
      ElementsAre(Outcome::kConnectError, Outcome::kIoError, Outcome::kOk));
  ASSERT_EQ(result.attempts.size(), 3u);
  EXPECT_EQ(result.attempts[0].start, absl::ZeroDuration());
  EXPECT_EQ(result.attempts[0].status_code, 503);
  EXPECT_EQ(result.attempts[2].status_code, 200);
  // Each begins at least the shortest backoff (four fifths of 1 ms) after
  // the one before.
  EXPECT_GE(result.attempts[1].start, absl::Microseconds(800));
  EXPECT_GE(result.attempts[2].start - result.attempts[1].start,
            absl::Microseconds(1600));
  ExpectConsistent({*summary, results});
}

TEST_F(AdmissionTest, OnlyTheListedOutcomesAreRetried) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  auto on_status = Options([](ProbeOptions& o) {
    o.retry.max_attempts = 2;
    o.retry.initial_backoff = absl::Milliseconds(1);
    o.retry.retry_on = {Outcome::kUnexpectedStatus};
  });
  engine_->Submit(
      {// The default list: failures to get an answer, not verdicts on one.
       Target("http://h0.test/", Retrying(2, absl::Milliseconds(1))),
       Target("http://h1.test/", on_status),
       // Without retries a result lists no attempts.
       Target("http://h2.test/")},
      {}, recorder.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kUnexpectedStatus));
  ASSERT_TRUE(FinishAttempt(*probes_, 1, 1, Outcome::kUnexpectedStatus));
  ASSERT_TRUE(FinishAttempt(*probes_, 1, 2, Outcome::kUnexpectedStatus));
  ASSERT_TRUE(FinishAttempt(*probes_, 2, 1, Outcome::kConnectError));
  ASSERT_TRUE(recorder.WaitDone());
  std::map<uint32_t, ProbeResult> by_index = ByIndex(recorder.Results());
  EXPECT_THAT(AttemptOutcomes(by_index[0]),
              ElementsAre(Outcome::kUnexpectedStatus));
  EXPECT_THAT(
      AttemptOutcomes(by_index[1]),
      ElementsAre(Outcome::kUnexpectedStatus, Outcome::kUnexpectedStatus));
  EXPECT_EQ(by_index[2].outcome, Outcome::kConnectError);
  EXPECT_THAT(by_index[2].attempts, IsEmpty());
  EXPECT_EQ(probes_->started(), 4u);
}

TEST_F(AdmissionTest, AProbeKeepsItsSlotWhileItWaitsToBeRetried) {
  StartEngine(/*lanes=*/2);
  BatchRecorder recorder;
  BatchOptions options;
  options.max_concurrency = 1;
  engine_->Submit(
      {Target("http://h0.test/", Retrying(2, absl::Milliseconds(200))),
       Target("http://h1.test/")},
      options, recorder.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kTimeout));
  // The next probe to run is the retry, not the target queued behind it.
  ASSERT_TRUE(probes_->WaitForStarted(2, kPatience));
  std::vector<FakeProbe> running = probes_->Running();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].index, 0u);
  EXPECT_EQ(running[0].attempt, 2);
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 2, Outcome::kOk));
  ASSERT_TRUE(FinishAttempt(*probes_, 1, 1, Outcome::kOk));
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->succeeded, 2u);
  EXPECT_EQ(probes_->max_running(), 1u);
}

TEST_F(AdmissionTest, AttemptsStopAtMaxAttempts) {
  StartEngine(/*lanes=*/1);
  BatchRecorder recorder;
  engine_->Submit(
      {Target("http://h0.test/", Retrying(2, absl::Milliseconds(1)))}, {},
      recorder.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kTimeout));
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 2, Outcome::kTimeout));
  std::optional<BatchSummary> summary = recorder.WaitDone();
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->failed, 1u);
  std::vector<ProbeResult> results = recorder.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kTimeout);
  EXPECT_THAT(AttemptOutcomes(results[0]),
              ElementsAre(Outcome::kTimeout, Outcome::kTimeout));
  EXPECT_EQ(probes_->started(), 2u);
}

TEST_F(AdmissionTest, NoAttemptBeginsAfterTheProbesTimeout) {
  StartEngine(/*lanes=*/1);
  BatchRecorder recorder;
  // The shortest backoff, 8 s, ends after the probe's 1 s: the first
  // attempt is the last.
  engine_->Submit({Target("http://h0.test/",
                          Retrying(5, absl::Seconds(10), absl::Seconds(1)))},
                  {}, recorder.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kConnectError));
  ASSERT_TRUE(recorder.WaitDone());
  std::vector<ProbeResult> results = recorder.Results();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kConnectError);
  EXPECT_THAT(AttemptOutcomes(results[0]), ElementsAre(Outcome::kConnectError));
  EXPECT_EQ(probes_->started(), 1u);
}

TEST_F(AdmissionTest, BackoffGrowsByItsMultiplier) {
  StartEngine(/*lanes=*/1);
  BatchRecorder recorder;
  auto options = Options([](ProbeOptions& o) {
    o.retry.max_attempts = 3;
    o.retry.initial_backoff = absl::Milliseconds(100);
    o.retry.backoff_multiplier = 4;
  });
  engine_->Submit({Target("http://h0.test/", options)}, {},
                  recorder.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kIoError));
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 2, Outcome::kIoError));
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 3, Outcome::kIoError));
  ASSERT_TRUE(recorder.WaitDone());
  std::vector<ProbeResult> results = recorder.Results();
  ASSERT_EQ(results.size(), 1u);
  ASSERT_EQ(results[0].attempts.size(), 3u);
  const std::vector<Attempt>& attempts = results[0].attempts;
  // 100 ms, then 400 ms, each at least four fifths of that.
  EXPECT_GE(attempts[1].start, absl::Milliseconds(80));
  EXPECT_GE(attempts[2].start - attempts[1].start, absl::Milliseconds(320));
}

TEST_F(AdmissionTest, EndingABatchDropsItsProbesThatWaitToBeRetried) {
  StartEngine(/*lanes=*/2, /*max_in_flight=*/1);
  for (bool cancel : {true, false}) {
    SCOPED_TRACE(cancel ? "cancelled" : "timed out");
    // Before the submit: its first attempt may start at once.
    const uint64_t started = probes_->started();
    BatchRecorder recorder;
    BatchOptions options;
    if (!cancel) options.timeout = absl::Seconds(2);
    std::shared_ptr<Batch> batch =
        engine_->Submit({Target("http://h0.test/",
                                Retrying(3, absl::Hours(1), absl::Hours(2)))},
                        options, recorder.Callbacks());
    ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kConnectError));
    ASSERT_TRUE(WaitUntil([&] {
      return recorder.done() || engine_->Stats().probes_backing_off == 1;
    }));
    if (cancel) {
      EXPECT_EQ(engine_->Stats().probes_in_flight, 1u);
      batch->Cancel();
    }
    std::optional<BatchSummary> summary = recorder.WaitDone();
    ASSERT_TRUE(summary);
    EXPECT_EQ(summary->reason,
              cancel ? EndReason::kCancelled : EndReason::kTimeout);
    EXPECT_EQ(summary->completed, 0u);
    EXPECT_THAT(summary->pending_indices, ElementsAre(0u));
    EXPECT_THAT(recorder.Results(), IsEmpty());
    EngineStats stats = engine_->Stats();
    EXPECT_EQ(stats.probes_backing_off, 0u);
    EXPECT_EQ(stats.probes_in_flight, 0u);
    EXPECT_EQ(probes_->started(), started + 1);
  }
  // The engine's one slot is free again.
  BatchRecorder next;
  engine_->Submit({Target("http://h1.test/")}, {}, next.Callbacks());
  ASSERT_TRUE(FinishAttempt(*probes_, 0, 1, Outcome::kOk));
  ASSERT_TRUE(next.WaitDone());
}

}  // namespace
}  // namespace fanprobe::testing
