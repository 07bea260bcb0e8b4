// engine_retry_test.cc: probes that try again (ProbeOptions::retry) against
// real loopback targets: one that fails and recovers is reported OK with
// its failed attempt listed, the probe's timeout bounds every attempt
// together, and without a retry policy a failure is final.  When attempts
// begin, the slots they hold and what a batch's end does to them are the
// admission tests' (tests/probe/internal/admission_test.cc).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::Options;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::testing::IsEmpty;

std::shared_ptr<const ProbeOptions> Retrying(int max_attempts,
                                             absl::Duration backoff,
                                             absl::Duration timeout) {
  return Options([&](ProbeOptions& o) {
    o.timeout = timeout;
    o.retry.max_attempts = max_attempts;
    o.retry.initial_backoff = backoff;
    o.retry.backoff_multiplier = 1;
  });
}

class EngineRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.workers = 2;
    engine_ = testing::MakeEngine(options);
    ASSERT_NE(engine_, nullptr);
  }

  ProbeResult RunOne(ProbeTarget target) {
    testing::BatchRun run = testing::RunBatch(*engine_, {std::move(target)});
    EXPECT_EQ(run.results.size(), 1u);
    return run.results.empty() ? ProbeResult{} : run.results[0];
  }

  int Requests(const std::string& path) const {
    const auto& by_path = target_.Stats().raw.requests_by_path;
    auto it = by_path.find(path);
    return it == by_path.end() ? 0 : it->second;
  }

  TargetServer target_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineRetryTest, ATargetThatRecoversIsOkWithItsFailedAttemptListed) {
  const ProbeResult result =
      RunOne(Target(target_.raw_url("/reset_first/1"),
                    Retrying(3, absl::Milliseconds(10), absl::Seconds(10))));
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.error;
  EXPECT_EQ(result.status_code, 200);
  ASSERT_EQ(result.attempts.size(), 2u);
  const Attempt& reset = result.attempts[0];
  EXPECT_EQ(reset.outcome, Outcome::kIoError);
  EXPECT_EQ(reset.status_code, 0);
  EXPECT_FALSE(reset.error.empty());
  EXPECT_EQ(reset.remote_ip, "127.0.0.1");
  EXPECT_EQ(reset.remote_port, target_.raw_port());
  EXPECT_EQ(reset.start, absl::ZeroDuration());
  const Attempt& answered = result.attempts[1];
  EXPECT_EQ(answered.outcome, Outcome::kOk);
  EXPECT_EQ(answered.status_code, 200);
  EXPECT_EQ(answered.error, "");
  EXPECT_EQ(answered.remote_port, target_.raw_port());
  // It began after the first one ended and the shortest backoff passed.
  EXPECT_GE(answered.start, reset.timings.total + absl::Milliseconds(8));
  // The result's own timings are the last attempt's.
  EXPECT_EQ(result.timings.total, answered.timings.total);
  EXPECT_EQ(Requests("/reset_first/1"), 2);
}

TEST_F(EngineRetryTest, WithoutARetryPolicyAFailureIsFinal) {
  const std::string url = target_.raw_url("/reset_first/1");
  const ProbeResult failed = RunOne(Target(url));
  EXPECT_EQ(failed.outcome, Outcome::kIoError);
  EXPECT_THAT(failed.attempts, IsEmpty());
  EXPECT_EQ(Requests("/reset_first/1"), 1);
  // The target has recovered: the next probe finds it so.
  const ProbeResult next = RunOne(Target(url));
  EXPECT_EQ(next.outcome, Outcome::kOk) << next.error;
  EXPECT_THAT(next.attempts, IsEmpty());
}

TEST_F(EngineRetryTest, AnAttemptThatUsesTheWholeTimeoutIsTheLast) {
  const ProbeResult result =
      RunOne(Target(target_.raw_url("/hang"),
                    Retrying(3, absl::Milliseconds(10), absl::Seconds(1))));
  EXPECT_EQ(result.outcome, Outcome::kTimeout);
  ASSERT_EQ(result.attempts.size(), 1u);
  EXPECT_EQ(result.attempts[0].outcome, Outcome::kTimeout);
  EXPECT_EQ(Requests("/hang"), 1);
}

TEST_F(EngineRetryTest, AttemptsBeginOnlyWithinTheProbesTimeout) {
  RefusedPort refused;
  const absl::Duration timeout = absl::Seconds(1);
  // A refusal is immediate, so attempts come about every 250 ms (200 to
  // 300): about four fit in the second, never the ten allowed.
  const ProbeResult result = RunOne(
      Target(refused.url("/"), Retrying(10, absl::Milliseconds(250), timeout)));
  EXPECT_EQ(result.outcome, Outcome::kConnectError);
  EXPECT_GE(result.attempts.size(), 2u);
  EXPECT_LT(result.attempts.size(), 10u);
  for (const Attempt& attempt : result.attempts) {
    EXPECT_EQ(attempt.outcome, Outcome::kConnectError);
    EXPECT_FALSE(attempt.error.empty());
    EXPECT_LT(attempt.start, timeout);
  }
}

}  // namespace
}  // namespace fanprobe
