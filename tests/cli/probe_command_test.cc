// probe_command_test.cc: what `fanprobe probe`'s flags resolve to
// (cli/probe_command.h): where the batch runs (in-process without --server,
// else one share per server), the engine's options, the output, the
// request, the flags that do not apply where the batch runs; and the exit
// status of each way a run can end.  Running it is tested on the binary
// (cli_test.cc, cli_embedded_test.cc, cli_split_test.cc) and piecewise in
// split_test.cc, engine_share_test.cc and remote_share_test.cc.

#include "cli/probe_command.h"

#include <optional>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/exit_code.h"
#include "cli/flags.h"
#include "cli/input.h"
#include "cli/output.h"
#include "cli/split.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "probe/destination_policy.h"

namespace fanprobe::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

absl::StatusOr<ProbeCommand> Resolve(const ProbeFlags& flags,
                                     const std::string& stdin_text = "",
                                     bool stdin_is_terminal = true) {
  std::istringstream stream(stdin_text);
  Stdin in{stream, stdin_is_terminal};
  return ResolveProbeCommand(flags, in);
}

TEST(ResolveProbeCommandTest, WithoutServerTheEngineRunsInProcess) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  absl::StatusOr<ProbeCommand> command = Resolve(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_THAT(command->servers, IsEmpty());
  EXPECT_EQ(command->format, Format::kTable);
  EXPECT_EQ(command->output, "");
  ASSERT_EQ(command->request.targets_size(), 1);
  EXPECT_EQ(command->request.targets(0).url(), "http://a/");
  // The server's default destination policy.
  const DestinationPolicy& policy = command->engine.destination_policy;
  EXPECT_FALSE(policy.deny_private);
  EXPECT_FALSE(policy.deny_loopback);
  EXPECT_THAT(policy.allow, IsEmpty());
  EXPECT_THAT(policy.deny, IsEmpty());
}

TEST(ResolveProbeCommandTest, TheDestinationPolicyFlagsMeanWhatTheServersDo) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.deny_private = true;
  flags.deny_loopback = true;
  flags.allow_cidrs = {"127.0.0.2/32, ::1", "10.1.0.0/16"};
  flags.deny_cidrs = {"10.1.2.0/24"};
  absl::StatusOr<ProbeCommand> command = Resolve(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  const DestinationPolicy& policy = command->engine.destination_policy;
  EXPECT_TRUE(policy.deny_private);
  EXPECT_TRUE(policy.deny_loopback);
  ASSERT_EQ(policy.allow.size(), 3u);
  EXPECT_EQ(policy.allow[1].ToString(), "::1/128");
  ASSERT_EQ(policy.deny.size(), 1u);
  EXPECT_EQ(policy.deny[0].ToString(), "10.1.2.0/24");
  // So 127.0.0.2 is allowed, 127.0.0.1 denied, 10.1.2.3 denied.
  EXPECT_TRUE(policy.Check(*IpAddress::Parse("127.0.0.2")).ok());
  EXPECT_EQ(policy.Check(*IpAddress::Parse("127.0.0.1")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(policy.Check(*IpAddress::Parse("10.1.2.3")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(policy.Check(*IpAddress::Parse("10.1.3.3")).ok());

  flags.deny_cidrs = {"10.0.0.0/33"};
  EXPECT_THAT(std::string(Resolve(flags).status().message()),
              ::testing::StartsWith("--deny_cidr=10.0.0.0/33: "));
}

TEST(ResolveProbeCommandTest, ServerListsAreSplitAtCommas) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.servers = {"a:1, b:2,", "c:3"};
  flags.format = "jsonl";
  flags.output = "out.jsonl";
  flags.connection.tls_ca = "ca.pem";
  absl::StatusOr<ProbeCommand> command = Resolve(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_THAT(command->servers, ElementsAre("a:1", "b:2", "c:3"));
  EXPECT_EQ(command->format, Format::kJsonl);
  EXPECT_EQ(command->output, "out.jsonl");
  EXPECT_EQ(command->connection.tls_ca, "ca.pem");
}

TEST(ResolveProbeCommandTest, OutputDashIsStdout) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.output = "-";
  absl::StatusOr<ProbeCommand> command = Resolve(flags);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->output, "");
}

TEST(ResolveProbeCommandTest, TargetsFromAPipedStdin) {
  ProbeFlags flags;
  absl::StatusOr<ProbeCommand> command =
      Resolve(flags, "http://a/\n# no\nhttp://b/\n", false);
  ASSERT_TRUE(command.ok()) << command.status();
  ASSERT_EQ(command->request.targets_size(), 2);
  EXPECT_EQ(command->request.targets(1).url(), "http://b/");
}

TEST(ResolveProbeCommandTest, FlagsThatDoNotApplyWhereTheBatchRuns) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.servers = {"a:1"};
  flags.deny_loopback = true;
  EXPECT_EQ(Resolve(flags).status().message(),
            "--deny_loopback is for probes run in-process; with --server the "
            "server's own destination policy and DNS servers hold");
  flags.deny_loopback = false;
  flags.allow_cidrs = {"10.0.0.0/8"};
  EXPECT_EQ(Resolve(flags).status().message(),
            "--allow_cidr is for probes run in-process; with --server the "
            "server's own destination policy and DNS servers hold");

  flags = ProbeFlags{};
  flags.urls = {"http://a/"};
  flags.connection.tls_ca = "ca.pem";
  EXPECT_EQ(Resolve(flags).status().message(),
            "--tls_ca is for the connection to a --server; without one the "
            "probes run in-process (the targets' CA is --cacert)");
  flags.connection = {};
  flags.connection.auth_token_file = "token";
  EXPECT_EQ(Resolve(flags).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveProbeCommandTest, UsageErrors) {
  ProbeFlags flags;
  flags.urls = {"http://a/"};
  flags.servers = {" , "};
  EXPECT_EQ(Resolve(flags).status().message(), "--server= is empty");
  flags.servers.clear();
  flags.format = "xml";
  EXPECT_EQ(Resolve(flags).status().message(),
            "--format=xml: want table, jsonl or csv");
  flags.format.reset();
  flags.output = "";
  EXPECT_EQ(Resolve(flags).status().message(), "--output= is empty");
  flags.output.reset();
  flags.urls.clear();
  EXPECT_EQ(Resolve(flags).status().code(), absl::StatusCode::kInvalidArgument);
}

SplitOutcome Outcome(const std::string& summary, bool share_failed = false) {
  SplitOutcome outcome;
  outcome.summary.emplace();
  EXPECT_TRUE(
      google::protobuf::TextFormat::ParseFromString(summary, &*outcome.summary))
      << summary;
  outcome.share_failed = share_failed;
  return outcome;
}

TEST(OptionsProblemMessageTest, NamesTheFlagOrTheLine) {
  const TargetOrigins origins = {"", "targets.jsonl:7"};
  EXPECT_EQ(
      OptionsProblemMessage(
          {-1, absl::InvalidArgumentError("ca_pem: no certificate")}, origins),
      "--cacert: ca_pem: no certificate");
  EXPECT_EQ(
      OptionsProblemMessage(
          {-1, absl::InvalidArgumentError("headers[0].value: holds a CR")},
          origins),
      "-H: headers[0].value: holds a CR");
  EXPECT_EQ(OptionsProblemMessage(
                {-1, absl::InvalidArgumentError(
                         "source_address: \"eth0\" is not an IP address")},
                origins),
            "--interface: source_address: \"eth0\" is not an IP address");
  EXPECT_EQ(OptionsProblemMessage(
                {-1, absl::InvalidArgumentError("max_body_bytes: too many")},
                origins),
            "--max-filesize: max_body_bytes: too many");
  EXPECT_EQ(
      OptionsProblemMessage(
          {1, absl::InvalidArgumentError("body_must_match[0]: bad")}, origins),
      "targets.jsonl:7: options.body_must_match[0]: bad");
  // A URL argument has no line; it has no options of its own either, but
  // the message stays whole.
  EXPECT_EQ(OptionsProblemMessage(
                {0, absl::InvalidArgumentError("method: bad")}, origins),
            "target 0: options.method: bad");
}

TEST(ProbeExitStatusTest, EachWayARunEnds) {
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_ALL_COMPLETED
                                         total: 2
                                         completed: 2
                                         succeeded: 2)pb")),
            kExitOk);
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_ALL_COMPLETED
                                         total: 2
                                         completed: 2
                                         succeeded: 1
                                         failed: 1)pb")),
            kExitProbeFailed);
  // Probes the rule itself cancelled are not failures...
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_FIRST_COMPLETED
                                         total: 3
                                         completed: 1
                                         succeeded: 1
                                         cancelled: 2)pb")),
            kExitOk);
  // ... but the probe that ended the batch may be one.
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_FIRST_COMPLETED
                                         total: 3
                                         completed: 1
                                         failed: 1
                                         cancelled: 2)pb")),
            kExitProbeFailed);
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_FIRST_EXCEPTION
                                         total: 3
                                         completed: 1
                                         failed: 1
                                         cancelled: 2)pb")),
            kExitProbeFailed);
  // A timeout with probes pending wins over a failure.
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_TIMEOUT
                                         total: 3
                                         completed: 2
                                         succeeded: 1
                                         failed: 1
                                         cancelled: 1)pb")),
            kExitTimedOut);
  // A cancel wins over a timeout and a failure.
  EXPECT_EQ(ProbeExitStatus(Outcome(R"pb(reason: END_REASON_CANCELLED
                                         total: 2
                                         completed: 1
                                         failed: 1
                                         cancelled: 1)pb")),
            kExitCancelled);
  // A failed share wins over everything.
  EXPECT_EQ(
      ProbeExitStatus(Outcome(
          R"pb(reason: END_REASON_CANCELLED total: 2 cancelled: 2)pb", true)),
      kExitUsage);
  EXPECT_EQ(ProbeExitStatus(SplitOutcome{}), kExitUsage);
  EXPECT_EQ(kExitTimedOut, 124);
  EXPECT_EQ(kExitCancelled, 130);
}

}  // namespace
}  // namespace fanprobe::cli
