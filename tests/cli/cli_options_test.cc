// cli_options_test.cc: every probe option's flag, curl's spellings first,
// run end to end by the fanprobe binary with the engine in-process against
// loopback targets -- what the target received, or the outcome the option
// makes -- and the in-process engine's flags (destination policy, DNS
// servers: the test's own).

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/run_cli.h"
#include "tests/support/dns_server.h"
#include "tests/support/proxy_server.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/tls_target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::CliRun;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::JsonlEvents;
using ::fanprobe::testing::ParseJsonl;
using ::fanprobe::testing::ProxyRequest;
using ::fanprobe::testing::ProxyServer;
using ::fanprobe::testing::RecordedRequest;
using ::fanprobe::testing::RunCli;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TempDir;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TestServer;
using ::fanprobe::testing::TlsTargetServer;
using ::fanprobe::testing::UnresponsivePort;
using ::fanprobe::testing::WriteFileAtomically;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;

// The one result of `fanprobe probe --format=jsonl <args> <url>`.
v1::ProbeResult ProbeOne(std::vector<std::string> args, const std::string& url,
                         CliRun* run_out = nullptr) {
  args.insert(args.begin(), {"probe", "--format=jsonl"});
  args.push_back(url);
  const CliRun run = RunCli(args);
  if (run_out != nullptr) *run_out = run;
  const JsonlEvents events = ParseJsonl(run.out);
  EXPECT_EQ(events.results.size(), 1u) << run.out << run.err;
  if (events.results.empty()) return {};
  // Exit status and outcome agree.
  EXPECT_EQ(run.code, events.results[0].outcome() == v1::OUTCOME_OK ? 0 : 1)
      << run.err;
  return events.results[0];
}

class CliOptionsTest : public ::testing::Test {
 protected:
  TargetServer target_;
};

TEST_F(CliOptionsTest, MethodHeadersBodyAndUserAgentAsCurlSendsThem) {
  TempDir dir;
  WriteFileAtomically(dir.File("form"), "b=2\n");
  const v1::ProbeResult result =
      ProbeOne({"-d", "a=1", "-d", "@" + dir.File("form"), "-H", "X-One: a, b",
                "--header", "X-Two:c", "-A", "cli-test/1"},
               target_.url("/echo_headers"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);
  const std::vector<RecordedRequest> seen = target_.Requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");  // -d without -X, as curl
  EXPECT_EQ(seen[0].body, "a=1&b=2");
  EXPECT_THAT(seen[0].headers, Contains(Pair("X-One", "a, b")));
  EXPECT_THAT(seen[0].headers, Contains(Pair("X-Two", "c")));
  EXPECT_THAT(seen[0].headers, Contains(Pair("User-Agent", "cli-test/1")));
  EXPECT_THAT(
      seen[0].headers,
      Contains(Pair("Content-Type", "application/x-www-form-urlencoded")));
}

TEST_F(CliOptionsTest, DashXAndDataBinary) {
  TempDir dir;
  WriteFileAtomically(dir.File("body"), "line 1\nline 2\n");
  ProbeOne({"-X", "PUT", "--data-binary", "@" + dir.File("body")},
           target_.url("/echo_headers"));
  const std::vector<RecordedRequest> seen = target_.Requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "PUT");
  EXPECT_EQ(seen[0].body, "line 1\nline 2\n");
}

TEST_F(CliOptionsTest, DashIAsksForTheHeadOnly) {
  const v1::ProbeResult result = ProbeOne({"-I"}, target_.url("/bytes/100"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);
  EXPECT_EQ(result.body_bytes(), 0u);
  const std::vector<RecordedRequest> seen = target_.Requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "HEAD");
}

TEST_F(CliOptionsTest, RedirectsAreFollowedUnlessNoLocation) {
  v1::ProbeResult result = ProbeOne({}, target_.url("/redirect/2"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);
  EXPECT_EQ(result.status_code(), 200u);
  EXPECT_EQ(result.redirects(), 2u);
  EXPECT_EQ(result.final_url(), target_.url("/status/200"));

  result = ProbeOne({"-L"}, target_.url("/redirect/2"));
  EXPECT_EQ(result.status_code(), 200u);

  result = ProbeOne({"--no-location"}, target_.url("/redirect/2"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);  // 302 is within 200-399
  EXPECT_EQ(result.status_code(), 302u);
  EXPECT_EQ(result.redirects(), 0u);

  result = ProbeOne({"--max-redirs", "1"}, target_.url("/redirect/2"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_TOO_MANY_REDIRECTS);
}

TEST_F(CliOptionsTest, MaxTimeAndConnectTimeout) {
  v1::ProbeResult result = ProbeOne({"-m", "0.3"}, target_.url("/delay/5000"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_TIMEOUT);

  UnresponsivePort unresponsive;
  result = ProbeOne({"--connect-timeout", "0.3", "--max-time", "20"},
                    unresponsive.url("/"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_TIMEOUT);
  // The connect timeout ended it, long before --max-time.
  EXPECT_LT(result.timings().total().seconds(), 10);
}

TEST_F(CliOptionsTest, RetryAsCurlWithEveryAttemptReported) {
  // --retry 2: three attempts; the target resets twice, then answers.
  v1::ProbeResult result = ProbeOne({"--retry", "2", "--retry-delay", "0.01"},
                                    target_.raw_url("/reset_first/2"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK) << result.error();
  ASSERT_EQ(result.attempts_size(), 3);
  EXPECT_EQ(result.attempts(0).outcome(), v1::OUTCOME_IO_ERROR);
  EXPECT_EQ(result.attempts(1).outcome(), v1::OUTCOME_IO_ERROR);
  EXPECT_EQ(result.attempts(2).outcome(), v1::OUTCOME_OK);

  // A status is a verdict, retried only with --retry-all-errors.
  result = ProbeOne({"--retry", "1", "--retry-delay", "0.01"},
                    target_.url("/status/503"));
  EXPECT_EQ(result.attempts_size(), 1);
  result =
      ProbeOne({"--retry", "1", "--retry-delay", "0.01", "--retry-all-errors"},
               target_.url("/status/503"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_UNEXPECTED_STATUS);
  EXPECT_EQ(result.attempts_size(), 2);
  EXPECT_EQ(target_.Stats().http.requests_by_path.at("/status/503"), 3);

  // Without --retry, a failure is final and no attempt is listed.
  result = ProbeOne({}, target_.raw_url("/reset_first/1"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_IO_ERROR);
  EXPECT_EQ(result.attempts_size(), 0);

  CliRun run = RunCli({"probe", "--retry-delay", "1", target_.url("/")});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err,
              HasSubstr("--retry-delay and --retry-all-errors need --retry N"));
  run = RunCli({"probe", "--retry", "10", target_.url("/")});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--retry: retry.max_attempts: 11 is above "
                                 "this server's limit of 10"));
}

TEST_F(CliOptionsTest, ExpectedStatusesAndBodyChecks) {
  EXPECT_EQ(ProbeOne({"--expect=404"}, target_.url("/status/404")).outcome(),
            v1::OUTCOME_OK);
  EXPECT_EQ(
      ProbeOne({"--expect=200-299"}, target_.url("/status/302")).outcome(),
      v1::OUTCOME_UNEXPECTED_STATUS);
  EXPECT_EQ(
      ProbeOne({"--body_must_match", "quick brown"}, target_.url("/match"))
          .outcome(),
      v1::OUTCOME_OK);
  EXPECT_EQ(
      ProbeOne({"--body_must_match", "slow"}, target_.url("/match")).outcome(),
      v1::OUTCOME_BODY_MISMATCH);
  EXPECT_EQ(ProbeOne({"--body_must_not_match", "lazy"}, target_.url("/match"))
                .outcome(),
            v1::OUTCOME_BODY_MISMATCH);
  EXPECT_EQ(
      ProbeOne({"--max-filesize", "10"}, target_.url("/bytes/100")).outcome(),
      v1::OUTCOME_BODY_TOO_LARGE);
  EXPECT_EQ(
      ProbeOne({"--max-filesize", "1k"}, target_.url("/bytes/100")).outcome(),
      v1::OUTCOME_OK);
}

TEST_F(CliOptionsTest, ProxyFlagsGoThroughTheProxy) {
  ProxyServer proxy;
  const v1::ProbeResult through =
      ProbeOne({"-x", proxy.url()}, target_.url("/status/200"));
  EXPECT_EQ(through.outcome(), v1::OUTCOME_OK) << through.error();
  EXPECT_EQ(through.remote_port(), static_cast<uint32_t>(proxy.port()));
  // --noproxy sends a listed address directly.
  const v1::ProbeResult direct =
      ProbeOne({"-x", proxy.url(), "--noproxy", "127.0.0.0/8"},
               target_.url("/status/204"));
  EXPECT_EQ(direct.outcome(), v1::OUTCOME_OK) << direct.error();
  EXPECT_EQ(direct.remote_port(), static_cast<uint32_t>(target_.port()));
  const std::vector<ProxyRequest> asked = proxy.Requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].target, target_.url("/status/200"));
}

TEST_F(CliOptionsTest, TlsVerificationCacertAndInsecure) {
  TestCa ca("fanprobe CLI test CA");
  TlsTargetServer tls(ca);
  TempDir dir;
  WriteFileAtomically(dir.File("ca.pem"), ca.cert_pem());
  const v1::ProbeResult unknown_ca = ProbeOne({}, tls.url("/status/200"));
  EXPECT_EQ(unknown_ca.outcome(), v1::OUTCOME_TLS_ERROR);

  const v1::ProbeResult trusted = ProbeOne(
      {"--cacert", dir.File("ca.pem"), "--http1.1"}, tls.url("/status/200"));
  EXPECT_EQ(trusted.outcome(), v1::OUTCOME_OK) << trusted.error();
  EXPECT_EQ(trusted.http_version(), "HTTP/1.1");
  EXPECT_TRUE(trusted.has_cert_expiry());

  EXPECT_EQ(ProbeOne({"-k"}, tls.url("/status/200")).outcome(), v1::OUTCOME_OK);
}

TEST_F(CliOptionsTest, CacertVerifiesTheNameTheDnsServersResolve) {
  absl::StatusOr<std::unique_ptr<DnsServer>> started = DnsServer::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  DnsServer& dns = **started;
  dns.AddA("web.tls.test", "127.0.0.1");
  dns.AddA("other.test", "127.0.0.1");
  TestCa ca("fanprobe CLI test CA");
  TlsTargetServer web(ca.Issue("web", {.dns_names = {"*.tls.test"}}));
  TempDir dir;
  WriteFileAtomically(dir.File("ca.pem"), ca.cert_pem());
  const std::vector<std::string> flags = {
      absl::StrCat("--dns-servers=", dns.address()), "--cacert",
      dir.File("ca.pem")};
  const v1::ProbeResult named =
      ProbeOne(flags, web.url("web.tls.test", "/status/200"));
  EXPECT_EQ(named.outcome(), v1::OUTCOME_OK) << named.error();
  EXPECT_EQ(named.remote_ip(), "127.0.0.1");
  // The same server by a name its certificate does not carry.
  const v1::ProbeResult other =
      ProbeOne(flags, web.url("other.test", "/status/200"));
  EXPECT_EQ(other.outcome(), v1::OUTCOME_TLS_ERROR);
  EXPECT_THAT(other.error(), HasSubstr("other.test"));
  EXPECT_GE(dns.QueryCount("web.tls.test", DnsServer::kTypeA), 1u);
  EXPECT_GE(dns.QueryCount("other.test", DnsServer::kTypeA), 1u);
}

TEST_F(CliOptionsTest, IpFamily) {
  EXPECT_EQ(ProbeOne({"-4"}, target_.url("/status/200")).outcome(),
            v1::OUTCOME_OK);
  // An IPv4 address has no IPv6 form to connect to: nothing is sent.
  const v1::ProbeResult v6 = ProbeOne({"-6"}, target_.url("/status/200"));
  EXPECT_EQ(v6.outcome(), v1::OUTCOME_CONNECT_ERROR);
  EXPECT_EQ(v6.remote_ip(), "");
  EXPECT_EQ(target_.Stats().http.requests, 1);
}

TEST_F(CliOptionsTest, ReuseConnections) {
  const std::vector<std::string> urls = {target_.url("/status/200"),
                                         target_.url("/status/200")};
  // One at a time, so the second can find the first one's connection idle.
  CliRun run = RunCli({"probe", "--concurrency=1", urls[0], urls[1]});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(target_.Stats().http.connections, 2);
  run = RunCli(
      {"probe", "--concurrency=1", "--reuse_connections", urls[0], urls[1]});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(target_.Stats().http.connections, 3);  // one more, shared
}

TEST_F(CliOptionsTest, TheDestinationPolicyFlagsHoldInProcess) {
  CliRun run;
  v1::ProbeResult result =
      ProbeOne({"--deny_loopback"}, target_.url("/status/200"), &run);
  EXPECT_EQ(result.outcome(), v1::OUTCOME_DENIED);
  EXPECT_THAT(result.error(), HasSubstr("127.0.0.1"));
  result = ProbeOne({"--deny_cidr=10.0.0.0/8,127.0.0.0/8"},
                    target_.url("/status/200"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_DENIED);
  EXPECT_EQ(target_.Stats().http.requests, 0);  // no packet reached it

  result = ProbeOne({"--deny_loopback", "--allow_cidr", "127.0.0.1/32"},
                    target_.url("/status/200"));
  EXPECT_EQ(result.outcome(), v1::OUTCOME_OK);
  EXPECT_EQ(target_.Stats().http.requests, 1);

  run = RunCli(
      {"probe", "--allow_cidr=127.0.0.1/40", target_.url("/status/200")});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--allow_cidr=127.0.0.1/40: "));
  EXPECT_THAT(run.out, IsEmpty());
}

TEST_F(CliOptionsTest, TheSameFlagsSendTheSameRequestThroughAServer) {
  TestServer server;
  const std::vector<std::string> flags = {"-X", "PATCH",  "-d", "k=v",
                                          "-H", "X-A: 1", "-A", "same/1"};
  std::vector<std::string> local = {"probe"};
  local.insert(local.end(), flags.begin(), flags.end());
  local.push_back(target_.url("/echo_headers"));
  std::vector<std::string> remote = local;
  remote.push_back(absl::StrCat("--server=", server.address()));
  EXPECT_EQ(RunCli(local).code, 0);
  EXPECT_EQ(RunCli(remote).code, 0);
  const std::vector<RecordedRequest> seen = target_.Requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "PATCH");
  EXPECT_EQ(seen[0].method, seen[1].method);
  EXPECT_EQ(seen[0].body, "k=v");
  EXPECT_EQ(seen[0].body, seen[1].body);
  EXPECT_EQ(seen[0].headers, seen[1].headers);
}

}  // namespace
}  // namespace fanprobe
