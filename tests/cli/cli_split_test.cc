// cli_split_test.cc: `fanprobe probe` given several --server addresses,
// run as a child process against two in-process servers: the batch is
// split into shares, the rows keep their original indices, one merged
// summary ends the output, and the return-when rules, the timeout and RPC
// errors keep their meaning across the split.

#include <signal.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/run_cli.h"
#include "tests/support/target_server.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::CliBinary;
using ::fanprobe::testing::CliRun;
using ::fanprobe::testing::JsonlEvents;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Lines;
using ::fanprobe::testing::ParseJsonl;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::RunCli;
using ::fanprobe::testing::Subprocess;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TestServer;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// Every share fits a server only because the batch is split: each server
// takes at most kShareLimit targets, fewer than the whole batch.
constexpr int kShareLimit = 3;

server::ServerOptions LimitedServer() {
  server::ServerOptions options;
  options.service.limits.max_batch_targets = kShareLimit;
  return options;
}

class CliSplitTest : public ::testing::Test {
 protected:
  std::string Servers() const {
    return absl::StrCat("--server=", a_.address(), ",", b_.address());
  }

  TargetServer target_;
  TestServer a_{LimitedServer()};
  TestServer b_{LimitedServer()};
};

TEST_F(CliSplitTest, EveryProbeReportedOnceWithItsOriginalIndex) {
  const std::vector<int> codes = {200, 201, 202, 500, 204};
  std::vector<std::string> args = {
      "probe", absl::StrCat("--server=", a_.address()),
      absl::StrCat("--server=", b_.address()), "--format=jsonl"};
  for (int code : codes) {
    args.push_back(target_.url(absl::StrCat("/status/", code)));
  }
  const CliRun run = RunCli(args);
  EXPECT_EQ(run.code, 1) << run.err;  // index 3 answered 500
  EXPECT_THAT(run.err, IsEmpty());
  const JsonlEvents events = ParseJsonl(run.out);
  std::multiset<uint32_t> indices;
  for (const v1::ProbeResult& result : events.results) {
    indices.insert(result.index());
    ASSERT_LT(result.index(), codes.size());
    EXPECT_EQ(result.status_code(), codes[result.index()])
        << "index " << result.index();
    EXPECT_EQ(result.url(),
              target_.url(absl::StrCat("/status/", codes[result.index()])));
  }
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(events.summary.reason(), v1::END_REASON_ALL_COMPLETED);
  EXPECT_EQ(events.summary.total(), 5u);
  EXPECT_EQ(events.summary.completed(), 5u);
  EXPECT_EQ(events.summary.succeeded(), 4u);
  EXPECT_EQ(events.summary.failed(), 1u);
  EXPECT_EQ(events.summary.cancelled(), 0u);
  EXPECT_THAT(events.summary.pending_indices(), IsEmpty());
  EXPECT_EQ(target_.Stats().http.requests, 5);
}

TEST_F(CliSplitTest, TableMergesRowsAndSummaryAndExitsZero) {
  std::vector<std::string> args = {"probe", Servers()};
  for (int i = 0; i < 2 * kShareLimit; ++i) {
    args.push_back(target_.url("/status/200"));
  }
  const CliRun run = RunCli(args);
  EXPECT_EQ(run.code, 0) << run.err;
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 2u + 2 * kShareLimit) << run.out;
  EXPECT_THAT(lines.front(), HasSubstr("INDEX"));
  std::set<std::string> first_columns;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    first_columns.insert(std::string(lines[i].substr(0, lines[i].find(' '))));
  }
  EXPECT_THAT(first_columns,
              UnorderedElementsAre("0", "1", "2", "3", "4", "5"));
  EXPECT_THAT(lines.back(),
              AllOf(HasSubstr("ALL_COMPLETED in "),
                    HasSubstr("6 probes, 6 completed (6 ok, 0 failed), 0 "
                              "cancelled")));
}

TEST_F(CliSplitTest, FirstCompletedOnOneServerCancelsTheOtherServersProbes) {
  // Shares: a_ gets 0 and 1 (both hang), b_ gets 2 (answers after 300 ms)
  // and 3 (hangs).  b_'s first result ends the whole batch: the CLI cancels
  // a_'s RPC, whose probes would otherwise hang forever.
  const absl::Time start = absl::Now();
  const CliRun run =
      RunCli({"probe", Servers(), "--return_when=first", "--format=jsonl",
              target_.raw_url("/hang"), target_.raw_url("/hang"),
              target_.raw_url("/delay/300"), target_.raw_url("/hang")});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(run.code, 0) << run.err;  // the first probe succeeded
  EXPECT_THAT(run.err, IsEmpty());
  EXPECT_LT(took, absl::Seconds(5));
  const JsonlEvents events = ParseJsonl(run.out);
  ASSERT_EQ(events.results.size(), 1u) << run.out;
  EXPECT_EQ(events.results[0].index(), 2u);
  EXPECT_EQ(events.summary.reason(), v1::END_REASON_FIRST_COMPLETED);
  EXPECT_EQ(events.summary.completed(), 1u);
  EXPECT_EQ(events.summary.cancelled(), 3u);
  EXPECT_THAT(events.summary.pending_indices(), ElementsAre(0, 1, 3));
  // Every hanging connection is closed by its server once cancelled.
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) {
        return s.raw.in_flight == 0 && s.raw.abandoned == 3;
      },
      kPatience))
      << "raw in flight: " << target_.Stats().raw.in_flight
      << ", abandoned: " << target_.Stats().raw.abandoned;
}

TEST_F(CliSplitTest, FirstExceptionOnOneServerEndsTheWholeBatch) {
  // a_ gets 0 (hangs), b_ gets 1 (fails).
  const CliRun run =
      RunCli({"probe", Servers(), "--return_when=first_exception",
              target_.raw_url("/hang"), target_.raw_url("/status/503")});
  EXPECT_EQ(run.code, 1) << run.err;
  EXPECT_THAT(run.out, AllOf(HasSubstr("FIRST_EXCEPTION in "),
                             HasSubstr("2 probes, 1 completed (0 ok, 1 "
                                       "failed), 1 cancelled"),
                             HasSubstr("pending: 0\n")));
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 0; }, kPatience));
}

TEST_F(CliSplitTest, TimeoutAppliesToEveryShare) {
  // a_ gets 0 (answers), b_ gets 1 (hangs until the shared deadline).
  const CliRun run =
      RunCli({"probe", Servers(), "--timeout=300ms",
              target_.raw_url("/status/200"), target_.raw_url("/hang")});
  EXPECT_EQ(run.code, 124) << run.err;
  EXPECT_THAT(run.out,
              AllOf(HasSubstr("TIMEOUT in "),
                    HasSubstr("2 probes, 1 completed (1 ok, 0 failed), 1 "
                              "cancelled"),
                    HasSubstr("pending: 1\n")));
}

TEST_F(CliSplitTest, RpcErrorOnOneServerListsItsShareAsPendingAndExitsTwo) {
  RefusedPort refused;
  const std::string refused_address =
      absl::StrCat("127.0.0.1:", refused.port());
  const CliRun run = RunCli(
      {"probe", absl::StrCat("--server=", a_.address()),
       absl::StrCat("--server=", refused_address), target_.url("/status/200"),
       target_.url("/status/200"), target_.url("/status/200")});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err,
              AllOf(HasSubstr(absl::StrCat("StreamProbes on ", refused_address,
                                           " failed: UNAVAILABLE")),
                    Not(HasSubstr(a_.address()))));
  // a_'s share (index 0) is still printed; the refused share is pending.
  EXPECT_THAT(run.out, AllOf(HasSubstr("\n0 "),
                             HasSubstr("3 probes, 1 completed (1 ok, 0 "
                                       "failed), 2 cancelled"),
                             HasSubstr("pending: 1, 2\n")));
}

TEST_F(CliSplitTest, InterruptCancelsEveryShareAndPrintsTheMergedSummary) {
  Subprocess cli({CliBinary(), "probe", Servers(), "--format=jsonl",
                  target_.raw_url("/hang"), target_.raw_url("/hang")});
  ASSERT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 2; }, kPatience));
  cli.Signal(SIGINT);
  const Subprocess::Exit exit = cli.Wait(kPatience);
  EXPECT_EQ(exit.code, 130) << cli.Stderr();
  const JsonlEvents events = ParseJsonl(cli.Stdout());
  EXPECT_THAT(events.results, IsEmpty());
  EXPECT_EQ(events.summary.reason(), v1::END_REASON_CANCELLED);
  EXPECT_THAT(events.summary.pending_indices(), ElementsAre(0, 1));
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 2; }, kPatience));
}

TEST(CliSplitUsageTest, EmptyServerListIsAUsageError) {
  const CliRun run = RunCli({"probe", "--server=,", "http://127.0.0.1:1/"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--server= is empty"));
  EXPECT_THAT(run.out, IsEmpty());
}

}  // namespace
}  // namespace fanprobe
