// engine_share_test.cc: a share run by the probe engine in-process
// (cli/engine_share.h) against loopback targets: its events as the server
// would stream them, the request's options applied, a cancel before or
// during the run, a request the server would refuse, and the engine's
// options from the flags (the destination policy, the DNS servers -- the
// test's own, so no lookup leaves loopback).

#include "cli/engine_share.h"

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/support/batches.h"
#include "tests/support/dns_server.h"
#include "tests/support/target_server.h"
#include "tests/support/wait.h"

namespace fanprobe::cli {
namespace {

using ::fanprobe::testing::BatchRequest;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::RecordedRequest;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::unique_ptr<Engine> NewEngine(EngineOptions options = {}) {
  options.workers = 1;
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return *std::move(engine);
}

struct ShareRun {
  absl::Status status;
  std::vector<v1::ProbeEvent> events;
};

ShareRun RunShare(EngineShare& share, const v1::ProbeBatchRequest& request) {
  ShareRun run;
  run.status = share.Run(request, [&](v1::ProbeEvent event) {
    run.events.push_back(std::move(event));
  });
  return run;
}

TEST(EngineShareTest, PassesEveryResultThenTheSummaryAsTheServerWould) {
  TargetServer target;
  std::unique_ptr<Engine> engine = NewEngine();
  EngineShare share(*engine);
  EXPECT_EQ(share.name(), "the in-process engine");
  v1::ProbeBatchRequest request =
      BatchRequest({target.url("/status/200"), target.url("/status/503")});
  request.mutable_targets(1)->set_id("b");
  (*request.mutable_targets(1)->mutable_labels())["env"] = "test";
  const ShareRun run = RunShare(share, request);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.events.size(), 3u);
  std::vector<uint32_t> indices;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(run.events[i].has_result());
    const v1::ProbeResult& result = run.events[i].result();
    indices.push_back(result.index());
    if (result.index() == 0) {
      EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);
      EXPECT_EQ(result.status_code(), 200u);
    } else {
      EXPECT_EQ(result.outcome(), v1::OUTCOME_UNEXPECTED_STATUS);
      EXPECT_EQ(result.status_code(), 503u);
      EXPECT_EQ(result.id(), "b");
      EXPECT_EQ(result.labels().at("env"), "test");
      EXPECT_EQ(result.error(), "status 503 is not a valid status");
    }
    EXPECT_EQ(result.remote_ip(), "127.0.0.1");
    EXPECT_EQ(result.remote_port(), static_cast<uint32_t>(target.port()));
    EXPECT_EQ(result.http_version(), "HTTP/1.1");
  }
  EXPECT_THAT(indices, ::testing::UnorderedElementsAre(0, 1));
  ASSERT_TRUE(run.events[2].has_summary());
  const v1::BatchSummary& summary = run.events[2].summary();
  EXPECT_EQ(summary.reason(), v1::END_REASON_ALL_COMPLETED);
  EXPECT_EQ(summary.total(), 2u);
  EXPECT_EQ(summary.succeeded(), 1u);
  EXPECT_EQ(summary.failed(), 1u);
  EXPECT_THAT(summary.pending_indices(), IsEmpty());
}

TEST(EngineShareTest, AppliesTheDefaultsAndEachTargetsOwnOptions) {
  TargetServer target;
  std::unique_ptr<Engine> engine = NewEngine();
  EngineShare share(*engine);
  v1::ProbeBatchRequest request =
      BatchRequest({target.url("/echo_headers"), target.url("/echo_headers")});
  request.set_max_concurrency(1);  // in order, so the records line up
  request.mutable_defaults()->set_method("PUT");
  request.mutable_defaults()->set_body("x=1");
  request.mutable_defaults()->set_user_agent("cli-test/1");
  request.mutable_targets(1)->mutable_options()->set_method("HEAD");
  request.mutable_targets(1)->mutable_options()->set_body("");
  const ShareRun run = RunShare(share, request);
  ASSERT_TRUE(run.status.ok()) << run.status;
  const std::vector<RecordedRequest> seen = target.Requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].body, "x=1");
  EXPECT_THAT(seen[0].headers,
              ::testing::Contains(::testing::Pair("User-Agent", "cli-test/1")));
  EXPECT_EQ(seen[1].method, "HEAD");
  EXPECT_EQ(seen[1].body, "");
}

TEST(EngineShareTest, ARequestTheServerWouldRefuseSendsNothing) {
  TargetServer target;
  std::unique_ptr<Engine> engine = NewEngine();
  EngineShare share(*engine);
  v1::ProbeBatchRequest request = BatchRequest({target.url("/status/200")});
  request.mutable_defaults()->mutable_timeout()->set_seconds(-1);
  const ShareRun run = RunShare(share, request);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(run.status.message()),
              ::testing::StartsWith(
                  "the request: defaults.timeout: must not be negative"));
  EXPECT_THAT(run.events, IsEmpty());
  EXPECT_EQ(target.Stats().http.requests, 0);
}

TEST(EngineShareTest, CancelledBeforeTheRunItEndsAtOnce) {
  TargetServer target;
  std::unique_ptr<Engine> engine = NewEngine();
  EngineShare share(*engine);
  share.Cancel();
  const ShareRun run = RunShare(share, BatchRequest({target.raw_url("/hang")}));
  EXPECT_EQ(run.status.code(), absl::StatusCode::kCancelled) << run.status;
  EXPECT_THAT(run.events, IsEmpty());
  EXPECT_EQ(target.Stats().raw.connections, 0);
}

TEST(EngineShareTest, CancelDuringTheRunEndsTheBatchWithItsSummary) {
  TargetServer target;
  std::unique_ptr<Engine> engine = NewEngine();
  EngineShare share(*engine);
  ShareRun run;
  std::thread runner(
      [&] { run = RunShare(share, BatchRequest({target.raw_url("/hang")})); });
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.in_flight == 1; }, kPatience));
  share.Cancel();
  runner.join();
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.events.size(), 1u);
  ASSERT_TRUE(run.events[0].has_summary());
  const v1::BatchSummary& summary = run.events[0].summary();
  EXPECT_EQ(summary.reason(), v1::END_REASON_CANCELLED);
  EXPECT_THAT(summary.pending_indices(), ElementsAre(0));
  EXPECT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
}

TEST(CheckProbeOptionsTest, NamesTheDefaultsOrTheFirstTargetTheEngineRefuses) {
  EngineOptions options;
  options.limits.max_body_bytes = 1000;
  std::unique_ptr<Engine> engine = NewEngine(options);
  v1::ProbeBatchRequest request = BatchRequest(
      {"http://127.0.0.1:1/", "http://127.0.0.1:1/", "http://127.0.0.1:1/"});
  request.mutable_defaults()->set_max_body_bytes(1000);
  EXPECT_EQ(CheckProbeOptions(*engine, request), std::nullopt);

  // Targets 1 and 2 have options of their own the engine refuses: the
  // first is named.
  request.mutable_targets(1)->mutable_options()->set_max_body_bytes(1001);
  request.mutable_targets(2)
      ->mutable_options()
      ->mutable_body_must_match()
      ->add_patterns("(");
  std::optional<OptionsProblem> problem = CheckProbeOptions(*engine, request);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->target, 1);
  EXPECT_EQ(problem->status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(problem->status.message()),
              ::testing::StartsWith("max_body_bytes: "));

  // The defaults come first: every target without options has them.
  request.mutable_defaults()->mutable_body_must_not_match()->add_patterns(
      "[z-a]");
  problem = CheckProbeOptions(*engine, request);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->target, -1);
  EXPECT_THAT(std::string(problem->status.message()),
              ::testing::StartsWith("body_must_not_match[0]: "));
}

TEST(EngineOptionsFromFlagsTest, TheDestinationPolicyHoldsForTheProbes) {
  TargetServer target;
  ProbeFlags flags;
  flags.deny_loopback = true;
  absl::StatusOr<EngineOptions> options = EngineOptionsFromFlags(flags);
  ASSERT_TRUE(options.ok()) << options.status();
  std::unique_ptr<Engine> engine = NewEngine(*options);
  EngineShare share(*engine);
  const ShareRun run =
      RunShare(share, BatchRequest({target.url("/status/200")}));
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.events.size(), 2u);
  EXPECT_EQ(run.events[0].result().outcome(), v1::OUTCOME_DENIED);
  EXPECT_THAT(run.events[0].result().error(), HasSubstr("127.0.0.1"));
  EXPECT_EQ(target.Stats().http.requests, 0);
}

TEST(EngineOptionsFromFlagsTest, ABadCidrNamesItsFlag) {
  ProbeFlags flags;
  flags.allow_cidrs = {"10.0.0.0/8,bogus"};
  EXPECT_THAT(std::string(EngineOptionsFromFlags(flags).status().message()),
              ::testing::StartsWith("--allow_cidr=bogus: "));
  EXPECT_EQ(EngineOnlyFlagGiven(flags), "--allow_cidr");
  EXPECT_EQ(EngineOnlyFlagGiven(ProbeFlags{}), "");
}

TEST(EngineOptionsFromFlagsTest, NamesResolveThroughTheDnsServersGiven) {
  absl::StatusOr<std::unique_ptr<DnsServer>> started = DnsServer::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  DnsServer& dns = **started;
  dns.AddA("web.test", "127.0.0.1");
  TargetServer target;
  ProbeFlags flags;
  // A comma list with blanks, as a shell user writes it.
  flags.dns_servers = {absl::StrCat(" ", dns.address(), " ")};
  absl::StatusOr<EngineOptions> options = EngineOptionsFromFlags(flags);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->dns_servers, ElementsAre(dns.address()));
  std::unique_ptr<Engine> engine = NewEngine(*options);
  EngineShare share(*engine);
  const std::string port = absl::StrCat(target.port());
  const ShareRun run = RunShare(
      share,
      BatchRequest({absl::StrCat("http://web.test:", port, "/status/200"),
                    absl::StrCat("http://gone.test:", port, "/")}));
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.events.size(), 3u);
  std::optional<v1::ProbeResult> web;
  std::optional<v1::ProbeResult> gone;
  for (int i = 0; i < 2; ++i) {
    const v1::ProbeResult& result = run.events[i].result();
    (result.index() == 0 ? web : gone) = result;
  }
  ASSERT_TRUE(web.has_value() && gone.has_value());
  EXPECT_EQ(web->outcome(), v1::OUTCOME_OK) << web->error();
  EXPECT_EQ(web->remote_ip(), "127.0.0.1");
  EXPECT_EQ(gone->outcome(), v1::OUTCOME_DNS_ERROR);
  EXPECT_THAT(gone->error(), HasSubstr("gone.test"));
  EXPECT_GE(dns.QueryCount("web.test", DnsServer::kTypeA), 1u);
  EXPECT_GE(dns.QueryCount("gone.test"), 1u);
  EXPECT_EQ(target.Stats().http.requests, 1);
}

TEST(EngineOptionsFromFlagsTest, ABadDnsServerNamesItsFlag) {
  // probe/address_flags_test.cc tests the parse; here, that the CLI's flag
  // goes through it under its own name.
  ProbeFlags flags;
  flags.dns_servers = {"127.0.0.1, [::1]", "::1:5353"};
  absl::StatusOr<EngineOptions> options = EngineOptionsFromFlags(flags);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->dns_servers,
              ElementsAre("127.0.0.1:53", "[::1]:53", "[::1:5353]:53"));
  flags.dns_servers = {"dns.test"};
  const absl::Status status = EngineOptionsFromFlags(flags).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "--dns-servers=dns.test: not an IP address (want an IP address "
            "with an optional port: 10.0.0.2, 10.0.0.2:5353, fd00::53 or "
            "[fd00::53]:5353)");
  flags.dns_servers = {","};
  EXPECT_EQ(EngineOptionsFromFlags(flags).status().message(),
            "--dns-servers= is empty");
  EXPECT_EQ(EngineOnlyFlagGiven(flags), "--dns-servers");
}

}  // namespace
}  // namespace fanprobe::cli
