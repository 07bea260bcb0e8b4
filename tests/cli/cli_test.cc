// cli_test.cc: the fanprobe binary, run as a child process against an
// in-process server (--server): output formats, flags, exit codes and
// messages.  Without --server: cli_embedded_test.cc, which also runs every
// return-when rule and the timeout both ways and compares them (exit codes
// included), and the progress line; output_test.cc tests the table's text.

#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/cli/run_cli.h"
#include "tests/support/batches.h"
#include "tests/support/target_server.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::CliRun;
using ::fanprobe::testing::JsonlEvents;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Lines;
using ::fanprobe::testing::ParseJsonl;
using ::fanprobe::testing::RecordedRequest;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::RunCli;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TestServer;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;

class CliTest : public ::testing::Test {
 protected:
  std::string ServerFlag() const {
    return absl::StrCat("--server=", server_.address());
  }

  TargetServer target_;
  TestServer server_;
};

TEST_F(CliTest, TablePrintsARowPerResultThenTheSummaryAndExitsZero) {
  const CliRun run = RunCli({"probe", ServerFlag(), target_.url("/status/200"),
                             target_.url("/status/204")});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.err, IsEmpty());  // not a terminal: no progress line
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 4u) << run.out;
  EXPECT_THAT(lines[0], AllOf(StartsWith("INDEX"), HasSubstr("OUTCOME"),
                              HasSubstr("STATUS"), HasSubstr("URL")));
  EXPECT_THAT(lines[1], AllOf(HasSubstr("OK"), HasSubstr("/status/")));
  EXPECT_THAT(lines[2], AllOf(HasSubstr("OK"), HasSubstr("/status/")));
  EXPECT_THAT(lines[3],
              AllOf(StartsWith("ALL_COMPLETED in "),
                    HasSubstr("2 probes, 2 completed (2 ok, 0 failed), 0 "
                              "cancelled")));
}

TEST_F(CliTest, JsonlPrintsOneProbeEventPerLine) {
  const CliRun run =
      RunCli({"probe", ServerFlag(), "--format=jsonl",
              target_.url("/status/200"), target_.url("/status/500")});
  EXPECT_EQ(run.code, 1) << run.err;
  ASSERT_EQ(Lines(run.out).size(), 3u) << run.out;
  // Each line a ProbeEvent: two results, then the summary.
  const JsonlEvents events = ParseJsonl(run.out);
  EXPECT_EQ(events.results.size(), 2u);
  EXPECT_EQ(events.summary.reason(), v1::END_REASON_ALL_COMPLETED);
  EXPECT_EQ(events.summary.failed(), 1u);
  EXPECT_THAT(run.out, HasSubstr(R"("outcome":"OUTCOME_UNEXPECTED_STATUS")"));
  EXPECT_THAT(run.out, HasSubstr(R"("status_code":500)"));
}

TEST_F(CliTest, ReadsUrlsFromStdin) {
  const std::string input =
      absl::StrCat("# targets\n\n", target_.url("/status/200"), "\n  ",
                   target_.url("/status/201"), "  \n");
  for (const std::vector<std::string>& where :
       {std::vector<std::string>{"--file=-"}, std::vector<std::string>{"-"},
        std::vector<std::string>{}}) {
    std::vector<std::string> args = {"probe", ServerFlag(), "--format=jsonl"};
    args.insert(args.end(), where.begin(), where.end());
    const int before = target_.Stats().http.requests;
    const CliRun run = RunCli(args, {.stdin_data = input});
    EXPECT_EQ(run.code, 0) << run.err;
    EXPECT_EQ(Lines(run.out).size(), 3u) << run.out;
    EXPECT_EQ(target_.Stats().http.requests, before + 2);
  }
}

TEST_F(CliTest, ShowsNoProgressForASmallBatch) {
  const CliRun run = RunCli({"probe", ServerFlag(), target_.url("/status/200")},
                            {.stderr_is_terminal = true});
  EXPECT_EQ(run.code, 0);
  EXPECT_THAT(run.err, IsEmpty());
}

TEST_F(CliTest, SendsMethodHeadersAndChecksExpectedStatus) {
  const CliRun run =
      RunCli({"probe", ServerFlag(), "--method=DELETE", "--header=X-One: a, b",
              "--header", "X-Two:c", "--expect=404,500-599",
              target_.url("/status/404")});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  const std::vector<RecordedRequest> seen = target_.Requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "DELETE");
  EXPECT_THAT(seen[0].headers, Contains(Pair("X-One", "a, b")));
  EXPECT_THAT(seen[0].headers, Contains(Pair("X-Two", "c")));
}

struct UsageCase {
  const char* name;
  std::vector<std::string> args;
  const char* message;
};

void PrintTo(const UsageCase& c, std::ostream* os) { *os << c.name; }

class CliUsageTest : public ::testing::TestWithParam<UsageCase> {};

TEST_P(CliUsageTest, ExitsTwoWithAClearMessage) {
  const CliRun run = RunCli(GetParam().args);
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr(GetParam().message));
  EXPECT_THAT(run.out, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CliUsageTest,
    ::testing::Values(
        UsageCase{"NoCommand", {}, "Usage:"},
        UsageCase{"UnknownCommand", {"frobnicate"}, "unknown command"},
        UsageCase{"NoTargets", {"probe"}, "no targets"},
        UsageCase{"UnknownFlag",
                  {"probe", "--bogus=1", "http://127.0.0.1:1/"},
                  "unknown flag --bogus"},
        UsageCase{"BadReturnWhen",
                  {"probe", "--return_when=sometimes", "http://127.0.0.1:1/"},
                  "--return_when=sometimes: want all, first or "
                  "first_exception"},
        UsageCase{"BadTimeout",
                  {"probe", "--timeout=soon", "http://127.0.0.1:1/"},
                  "--timeout=soon: want a duration"},
        UsageCase{"BadExpect",
                  {"probe", "--expect=2xx", "http://127.0.0.1:1/"},
                  "--expect=2xx: want status ranges"},
        UsageCase{"BadHeader",
                  {"probe", "--header=NoColon", "http://127.0.0.1:1/"},
                  "--header=NoColon: want 'Name: value'"},
        UsageCase{"BadFormat",
                  {"probe", "--format=xml", "http://127.0.0.1:1/"},
                  "--format=xml: want table, jsonl or csv"},
        UsageCase{"EngineFlagWithServer",
                  {"probe", "--server=127.0.0.1:1", "--deny_private",
                   "http://127.0.0.1:1/"},
                  "--deny_private is for probes run in-process"},
        UsageCase{"ConnectionFlagWithoutServer",
                  {"probe", "--tls_ca=ca.pem", "http://127.0.0.1:1/"},
                  "--tls_ca is for the connection to a --server"},
        UsageCase{"MissingValue",
                  {"probe", "http://127.0.0.1:1/", "--server"},
                  "--server needs a value"},
        UsageCase{"UnreadableFile",
                  {"probe", "--file=/nonexistent/urls"},
                  "cannot read --file=/nonexistent/urls"}),
    [](const ::testing::TestParamInfo<UsageCase>& info) {
      return info.param.name;
    });

TEST(CliRpcErrorTest, UnreachableServerExitsTwo) {
  RefusedPort refused;
  const CliRun run =
      RunCli({"probe", absl::StrCat("--server=127.0.0.1:", refused.port()),
              "http://127.0.0.1:1/"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("StreamProbes on 127.0.0.1:"));
  EXPECT_THAT(run.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(run.out, IsEmpty());
}

TEST(CliRpcErrorTest, RejectedRequestExitsTwoNamingTheField) {
  server::ServerOptions options;
  options.service.limits.max_batch_targets = 1;
  TestServer server(options);
  const CliRun run =
      RunCli({"probe", absl::StrCat("--server=", server.address()),
              "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("INVALID_ARGUMENT: targets: 2 targets"));
}

TEST_F(CliTest, HealthExitsZeroWhenServing) {
  const CliRun run = RunCli({"health", ServerFlag()});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "SERVING\n");
}

TEST(CliHealthTest, HealthExitsTwoWhenUnreachable) {
  RefusedPort refused;
  const CliRun run =
      RunCli({"health", absl::StrCat("--server=127.0.0.1:", refused.port()),
              "--timeout=2s"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("health check of 127.0.0.1:"));
}

TEST(CliHealthTest, HealthExitsOneWhenNotServing) {
  TargetServer target;
  server::ServerOptions options;
  options.shutdown_grace = absl::Seconds(10);
  TestServer server(options);
  // A running batch keeps the draining server up, NOT_SERVING.
  grpc::ClientContext running;
  auto reader = server.stub().StreamProbes(
      &running, BatchRequest({target.raw_url("/hang")}));
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  auto health = grpc::health::v1::Health::NewStub(server.channel());
  grpc::ClientContext watch_context;
  auto watch =
      health->Watch(&watch_context, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(watch->Read(&status));

  std::thread shutdown([&] { server.server().Shutdown(); });
  ASSERT_TRUE(watch->Read(&status));
  ASSERT_EQ(status.status(),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  const CliRun run =
      RunCli({"health", absl::StrCat("--server=", server.address())});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "NOT_SERVING\n");

  running.TryCancel();  // lets the drain finish at once
  shutdown.join();
  watch_context.TryCancel();
}

}  // namespace
}  // namespace fanprobe
