// split_test.cc: splitting a batch into shares and merging their streams
// (cli/split.h), with fake shares: no sockets, no servers.  The one-share
// run must print exactly what the server sent; across shares the
// return-when rules, timeouts, interrupts and failed streams keep the
// meaning one server gives them.

#include "cli/split.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cli/output.h"
#include "cli/progress.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/cli/run_cli.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::JsonlEvents;
using ::fanprobe::testing::ParseJsonl;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ProbeEvent Result(uint32_t index, v1::Outcome outcome) {
  v1::ProbeEvent event;
  event.mutable_result()->set_index(index);
  event.mutable_result()->set_url(absl::StrCat("http://t/", index));
  event.mutable_result()->set_outcome(outcome);
  return event;
}

v1::ProbeEvent Summary(const std::string& text) {
  v1::ProbeEvent event;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      text, event.mutable_summary()))
      << text;
  return event;
}

v1::ProbeBatchRequest Request(int targets, v1::ReturnWhen rule) {
  v1::ProbeBatchRequest request;
  for (int i = 0; i < targets; ++i) {
    request.add_targets()->set_url(absl::StrCat("http://t/", i));
  }
  request.set_return_when(rule);
  request.set_max_concurrency(3);
  return request;
}

// A share that sends scripted events, then ends as scripted or waits to be
// cancelled.  Cancelled before it runs, it ends at once, as a gRPC call
// whose context was cancelled does.
class FakeShare : public Share {
 public:
  struct Script {
    std::vector<v1::ProbeEvent> events;
    bool hang = false;  // after the events, wait for Cancel
    absl::Status end;   // else end with this
  };

  FakeShare(std::string name, Script script)
      : name_(std::move(name)), script_(std::move(script)) {}

  const std::string& name() const override { return name_; }

  absl::Status Run(
      const v1::ProbeBatchRequest& request,
      const std::function<void(v1::ProbeEvent event)>& on_event) override {
    {
      absl::MutexLock lock(&mu_);
      request_ = request;
      if (cancelled_) return absl::CancelledError("cancelled before start");
    }
    for (const v1::ProbeEvent& event : script_.events) on_event(event);
    if (!script_.hang) return script_.end;
    absl::MutexLock lock(&mu_);
    hanging_ = true;
    mu_.Await(absl::Condition(&cancelled_));
    return absl::CancelledError("cancelled");
  }

  void Cancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  bool cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  std::optional<v1::ProbeBatchRequest> request() {
    absl::MutexLock lock(&mu_);
    return request_;
  }
  // Until every scripted event was passed on and Run waits to be cancelled.
  void WaitUntilHanging() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&hanging_));
  }

 private:
  const std::string name_;
  const Script script_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool hanging_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::ProbeBatchRequest> request_ ABSL_GUARDED_BY(mu_);
};

// Where a run prints: jsonl rows and summary into out_, notes into err_.
class CapturedOutput : public ::testing::Test {
 protected:
  std::ostringstream out_;
  std::ostringstream err_;
  Printer printer_{Format::kJsonl, out_, err_};
  Progress progress_{false, 0, err_};
};

// A split run over fake shares.
class SplitRunTest : public CapturedOutput {
 protected:
  FakeShare* AddShare(FakeShare::Script script) {
    auto share = std::make_unique<FakeShare>(
        absl::StrCat("share", shares_.size()), std::move(script));
    fakes_.push_back(share.get());
    shares_.push_back(std::move(share));
    return fakes_.back();
  }

  // Kept in run_, so the shares outlive the run for the checks.
  SplitOutcome Run(const v1::ProbeBatchRequest& request) {
    run_ = std::make_unique<SplitRun>(request, std::move(shares_), printer_,
                                      progress_);
    return run_->Run();
  }

  JsonlEvents Printed() const { return ParseJsonl(out_.str()); }

  std::vector<std::unique_ptr<Share>> shares_;
  std::vector<FakeShare*> fakes_;
  std::unique_ptr<SplitRun> run_;
};

TEST(SplitContiguousTest, ContiguousSharesDifferingByAtMostOne) {
  EXPECT_THAT(SplitContiguous(5, 2),
              ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3, 4)));
  EXPECT_THAT(SplitContiguous(3, 1), ElementsAre(ElementsAre(0, 1, 2)));
  EXPECT_THAT(SplitContiguous(2, 3),
              ElementsAre(IsEmpty(), ElementsAre(0), ElementsAre(1)));
}

// The one-share case: the output is the server's stream, summary included.
TEST_F(SplitRunTest, OneSharePrintsExactlyWhatItsServerSent) {
  const std::vector<v1::ProbeEvent> stream = {
      Result(1, v1::OUTCOME_OK),
      Result(0, v1::OUTCOME_CONNECT_ERROR),
      Summary(R"pb(reason: END_REASON_FIRST_EXCEPTION
                   total: 3
                   completed: 2
                   succeeded: 1
                   failed: 1
                   cancelled: 1
                   pending_indices: 2
                   elapsed { nanos: 4500000 })pb"),
  };
  AddShare({.events = stream});
  const SplitOutcome outcome = Run(Request(3, v1::RETURN_WHEN_FIRST_EXCEPTION));
  EXPECT_FALSE(outcome.share_failed);
  std::ostringstream direct;
  Printer printer(Format::kJsonl, direct, direct);
  for (const v1::ProbeEvent& event : stream) printer.Print(event);
  EXPECT_EQ(out_.str(), direct.str());
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_TRUE(
      MessageDifferencer::Equals(*outcome.summary, stream.back().summary()));
  EXPECT_FALSE(fakes_[0]->cancelled());  // its server ended it by the rule
  EXPECT_EQ(err_.str(), "");
}

TEST_F(SplitRunTest, EachShareGetsItsSliceWithTheBatchOptions) {
  AddShare({.events = {Summary("reason: END_REASON_ALL_COMPLETED")}});
  AddShare({.events = {Summary("reason: END_REASON_ALL_COMPLETED")}});
  AddShare({.events = {Summary("reason: END_REASON_ALL_COMPLETED")}});
  const v1::ProbeBatchRequest request =
      Request(2, v1::RETURN_WHEN_ALL_COMPLETED);
  Run(request);
  EXPECT_EQ(fakes_[0]->request(), std::nullopt);  // an empty share: no call
  for (int k : {1, 2}) {
    const std::optional<v1::ProbeBatchRequest> sent = fakes_[k]->request();
    ASSERT_TRUE(sent.has_value()) << k;
    ASSERT_EQ(sent->targets_size(), 1);
    EXPECT_EQ(sent->targets(0).url(), request.targets(k - 1).url());
    EXPECT_EQ(sent->max_concurrency(), 3u);
  }
}

TEST_F(SplitRunTest, ResultsKeepTheirOriginalIndex) {
  // Shares: {0, 1} and {2, 3, 4}.
  AddShare({.events = {Result(1, v1::OUTCOME_OK), Result(0, v1::OUTCOME_OK),
                       Summary("reason: END_REASON_ALL_COMPLETED")}});
  AddShare({.events = {Result(2, v1::OUTCOME_TIMEOUT),
                       Result(0, v1::OUTCOME_OK), Result(1, v1::OUTCOME_OK),
                       Summary("reason: END_REASON_ALL_COMPLETED")}});
  const SplitOutcome outcome = Run(Request(5, v1::RETURN_WHEN_ALL_COMPLETED));
  const JsonlEvents printed = Printed();
  std::multiset<uint32_t> indices;
  for (const v1::ProbeResult& result : printed.results) {
    indices.insert(result.index());
    EXPECT_EQ(result.outcome() == v1::OUTCOME_TIMEOUT, result.index() == 4);
  }
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3, 4));
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->reason(), v1::END_REASON_ALL_COMPLETED);
  EXPECT_EQ(outcome.summary->completed(), 5u);
  EXPECT_EQ(outcome.summary->succeeded(), 4u);
  EXPECT_EQ(outcome.summary->failed(), 1u);
  EXPECT_THAT(outcome.summary->pending_indices(), IsEmpty());
  EXPECT_TRUE(MessageDifferencer::Equals(printed.summary, *outcome.summary));
}

TEST_F(SplitRunTest, FirstCompletedOnOneShareCancelsTheOthers) {
  // Shares {0, 1} (hang) and {2, 3}: the latter's first result ends all.
  AddShare({.hang = true});
  AddShare({.events = {Result(0, v1::OUTCOME_UNEXPECTED_STATUS),
                       Summary(R"pb(reason: END_REASON_FIRST_COMPLETED)pb")}});
  const SplitOutcome outcome = Run(Request(4, v1::RETURN_WHEN_FIRST_COMPLETED));
  EXPECT_FALSE(outcome.share_failed) << err_.str();
  EXPECT_TRUE(fakes_[0]->cancelled());
  EXPECT_FALSE(fakes_[1]->cancelled());
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->reason(), v1::END_REASON_FIRST_COMPLETED);
  EXPECT_EQ(outcome.summary->completed(), 1u);
  EXPECT_EQ(outcome.summary->cancelled(), 3u);
  EXPECT_THAT(outcome.summary->pending_indices(), ElementsAre(0, 1, 3));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(SplitRunTest, FirstExceptionOnOneShareCancelsTheOthers) {
  AddShare({.hang = true});
  AddShare({.events = {Result(1, v1::OUTCOME_OK),
                       Result(0, v1::OUTCOME_CONNECT_ERROR),
                       Summary("reason: END_REASON_FIRST_EXCEPTION")}});
  const SplitOutcome outcome = Run(Request(4, v1::RETURN_WHEN_FIRST_EXCEPTION));
  EXPECT_TRUE(fakes_[0]->cancelled());
  EXPECT_FALSE(fakes_[1]->cancelled());
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->reason(), v1::END_REASON_FIRST_EXCEPTION);
  EXPECT_EQ(outcome.summary->succeeded(), 1u);
  EXPECT_EQ(outcome.summary->failed(), 1u);
  EXPECT_THAT(outcome.summary->pending_indices(), ElementsAre(0, 1));
}

TEST_F(SplitRunTest, AShareTimeoutIsWhyTheBatchEndedAndTheLongestElapsed) {
  AddShare({.events = {Result(0, v1::OUTCOME_OK),
                       Summary(R"pb(reason: END_REASON_ALL_COMPLETED
                                    elapsed { nanos: 2000000 })pb")}});
  AddShare({.events = {Summary(R"pb(reason: END_REASON_TIMEOUT
                                    elapsed { nanos: 300000000 })pb")}});
  const SplitOutcome outcome = Run(Request(2, v1::RETURN_WHEN_ALL_COMPLETED));
  EXPECT_FALSE(fakes_[0]->cancelled());
  EXPECT_FALSE(fakes_[1]->cancelled());
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->reason(), v1::END_REASON_TIMEOUT);
  EXPECT_EQ(outcome.summary->elapsed().nanos(), 300000000);
  EXPECT_THAT(outcome.summary->pending_indices(), ElementsAre(1));
}

TEST_F(SplitRunTest, AFailedShareIsReportedAndItsTargetsListedPending) {
  AddShare({.end = absl::UnavailableError(
                "StreamProbes on share0 failed: UNAVAILABLE: refused")});
  AddShare({.events = {Result(0, v1::OUTCOME_OK),
                       Summary("reason: END_REASON_ALL_COMPLETED")}});
  const SplitOutcome outcome = Run(Request(2, v1::RETURN_WHEN_ALL_COMPLETED));
  EXPECT_TRUE(outcome.share_failed);
  EXPECT_EQ(err_.str(),
            "fanprobe: StreamProbes on share0 failed: UNAVAILABLE: refused\n");
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->completed(), 1u);
  EXPECT_THAT(outcome.summary->pending_indices(), ElementsAre(0));
  EXPECT_EQ(Printed().summary.total(), 2u);
}

TEST_F(SplitRunTest, WhenEveryShareFailedThereIsNoSummary) {
  AddShare({.end = absl::UnavailableError("StreamProbes on a failed: x")});
  const SplitOutcome outcome = Run(Request(2, v1::RETURN_WHEN_ALL_COMPLETED));
  EXPECT_TRUE(outcome.share_failed);
  EXPECT_EQ(outcome.summary, std::nullopt);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(), "fanprobe: StreamProbes on a failed: x\n");
}

TEST_F(SplitRunTest, AStreamEndingWithoutASummaryIsAFailure) {
  AddShare({.events = {Result(0, v1::OUTCOME_OK)}});
  AddShare({.events = {Result(0, v1::OUTCOME_OK),
                       Summary("reason: END_REASON_ALL_COMPLETED")}});
  const SplitOutcome outcome = Run(Request(2, v1::RETURN_WHEN_ALL_COMPLETED));
  EXPECT_TRUE(outcome.share_failed);
  EXPECT_EQ(err_.str(),
            "fanprobe: share0 ended the stream without a summary\n");
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->completed(), 2u);
}

TEST_F(SplitRunTest, InterruptCancelsEveryShareAndSummarizes) {
  AddShare({.hang = true});
  AddShare({.events = {Result(0, v1::OUTCOME_OK)}, .hang = true});
  FakeShare* first = fakes_[0];
  FakeShare* second = fakes_[1];
  SplitRun run(Request(4, v1::RETURN_WHEN_ALL_COMPLETED), std::move(shares_),
               printer_, progress_);
  std::optional<SplitOutcome> outcome;
  std::thread runner([&] { outcome = run.Run(); });
  first->WaitUntilHanging();
  second->WaitUntilHanging();
  run.Interrupt();
  runner.join();
  EXPECT_TRUE(first->cancelled());
  EXPECT_TRUE(second->cancelled());
  ASSERT_TRUE(outcome.has_value());
  EXPECT_FALSE(outcome->share_failed) << err_.str();
  ASSERT_TRUE(outcome->summary.has_value());
  EXPECT_EQ(outcome->summary->reason(), v1::END_REASON_CANCELLED);
  EXPECT_EQ(outcome->summary->completed(), 1u);
  EXPECT_THAT(outcome->summary->pending_indices(), ElementsAre(0, 1, 3));
}

TEST_F(SplitRunTest, InterruptBeforeTheRunEndsItAtOnce) {
  AddShare({.hang = true});
  SplitRun run(Request(2, v1::RETURN_WHEN_ALL_COMPLETED), std::move(shares_),
               printer_, progress_);
  run.Interrupt();
  const SplitOutcome outcome = run.Run();
  ASSERT_TRUE(outcome.summary.has_value());
  EXPECT_EQ(outcome.summary->reason(), v1::END_REASON_CANCELLED);
  EXPECT_THAT(outcome.summary->pending_indices(), ElementsAre(0, 1));
}

// The merger on its own, on one thread.
class SplitMergerTest : public CapturedOutput {
 protected:
  std::vector<size_t> cancelled_;
  const absl::Time start_ = absl::FromUnixSeconds(1'000'000);
  SplitMerger merger_{v1::RETURN_WHEN_FIRST_COMPLETED,
                      {{0, 1}, {2, 3}},
                      printer_,
                      progress_,
                      [this](size_t share) { cancelled_.push_back(share); },
                      start_};
};

TEST_F(SplitMergerTest, ResultsAfterTheBatchEndedAreDropped) {
  merger_.OnResult(1, Result(1, v1::OUTCOME_OK).result());
  EXPECT_THAT(cancelled_, ElementsAre(0));
  EXPECT_TRUE(merger_.Cancelled(0));
  EXPECT_FALSE(merger_.Cancelled(1));
  merger_.OnResult(0, Result(0, v1::OUTCOME_OK).result());  // too late
  merger_.Interrupt();  // the batch has ended already: changes nothing
  EXPECT_THAT(cancelled_, ElementsAre(0));
  const v1::BatchSummary summary =
      merger_.Summary(start_ + absl::Milliseconds(7));
  EXPECT_EQ(summary.reason(), v1::END_REASON_FIRST_COMPLETED);
  EXPECT_EQ(summary.completed(), 1u);
  EXPECT_THAT(summary.pending_indices(), ElementsAre(0, 1, 2));
  // Not every share summarized itself: the elapsed time is the client's.
  EXPECT_EQ(summary.elapsed().nanos(), 7'000'000);
  EXPECT_EQ(ParseJsonl(out_.str()).results.size(), 1u);
}

class SplitMergerAllCompletedTest : public CapturedOutput {};

TEST_F(SplitMergerAllCompletedTest, DropsUnknownAndRepeatedIndices) {
  SplitMerger merger(v1::RETURN_WHEN_ALL_COMPLETED, {{0, 1}}, printer_,
                     progress_, [](size_t) {});
  merger.OnResult(0, Result(1, v1::OUTCOME_OK).result());
  merger.OnResult(0, Result(1, v1::OUTCOME_OK).result());  // again
  merger.OnResult(0, Result(2, v1::OUTCOME_OK).result());  // not in it
  const v1::BatchSummary summary = merger.Summary();
  EXPECT_EQ(summary.completed(), 1u);
  EXPECT_THAT(summary.pending_indices(), ElementsAre(0));
  EXPECT_EQ(ParseJsonl(out_.str()).results.size(), 1u);
}

}  // namespace
}  // namespace fanprobe::cli
