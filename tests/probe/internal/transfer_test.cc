// transfer_test.cc: the libcurl transport on its own (worker + curl
// transfer), through TransferHarness rather than the engine: response checks
// (valid statuses, body patterns and cap, redirects), what reaches the
// target, timings, and how each network failure is reported.  Targets are
// loopback servers (tests/support/target_server.h); names resolve only
// through the test's own DNS server, never the machine's resolver.  Every
// test waits on the probes' reports, never on sleeps.

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "probe/probe.h"
#include "tests/probe/engine_test_util.h"
#include "tests/probe/internal/transfer_harness.h"
#include "tests/support/dns_server.h"
#include "tests/support/target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::ByIndex;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TargetStats;
using ::fanprobe::testing::TransferHarness;
using ::fanprobe::testing::TransferRun;
using ::fanprobe::testing::UnresponsivePort;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = *std::move(dns);
    harness_ = MakeHarness({.workers = 2});
  }

  // A harness of `options.workers` lanes whose names resolve only through
  // the test's DNS server.
  std::unique_ptr<TransferHarness> MakeHarness(EngineOptions options) {
    testing::ResolveOnlyThrough(dns_->address(), &options);
    return std::make_unique<TransferHarness>(std::move(options));
  }

  // Runs the targets on `harness` (the test's by default) and waits for
  // every report.
  TransferRun Run(std::vector<ProbeTarget> targets,
                  TransferHarness* harness = nullptr) {
    return (harness ? *harness : *harness_).Run(std::move(targets));
  }

  // Declared first, destroyed last: each run's transport has stopped (and
  // closed its connections) before Run returned.
  TargetServer server_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<TransferHarness> harness_;
};

// --- Response checks --------------------------------------------------------

TEST_F(TransferTest, BodyPatterns) {
  auto must = [](std::vector<std::string> p) {
    return Options([&](ProbeOptions& o) { o.body_must_match = p; });
  };
  auto must_not = [](std::vector<std::string> p) {
    return Options([&](ProbeOptions& o) { o.body_must_not_match = p; });
  };
  TransferRun run = Run({
      Target(server_.url("/match"), must({R"(quick brown \w+)", "lazy dog"})),
      Target(server_.url("/match"), must({"purple fox"})),
      Target(server_.url("/match"), must_not({"unicorn"})),
      Target(server_.url("/match"), must_not({"lazy dog"})),
      Target(server_.url("/body/abc123"), must({R"(^abc\d+$)"})),
  });
  ASSERT_EQ(run.results.size(), 5u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kOk) << r[0].error;
  EXPECT_EQ(r[1].outcome, Outcome::kBodyMismatch);
  EXPECT_EQ(r[1].status_code, 200);
  EXPECT_THAT(r[1].error, HasSubstr("purple fox"));
  EXPECT_EQ(r[2].outcome, Outcome::kOk) << r[2].error;
  EXPECT_EQ(r[3].outcome, Outcome::kBodyMismatch);
  EXPECT_THAT(r[3].error, HasSubstr("lazy dog"));
  EXPECT_EQ(r[4].outcome, Outcome::kOk) << r[4].error;
}

TEST_F(TransferTest, BodySizeCap) {
  auto cap_1000 = Options([](ProbeOptions& o) { o.max_body_bytes = 1000; });
  TransferRun run = Run({Target(server_.url("/bytes/1000"), cap_1000),
                         Target(server_.url("/bytes/1001"), cap_1000),
                         Target(server_.url("/bytes/100000"), cap_1000),
                         Target(server_.url("/bytes/65536")),
                         Target(server_.url("/bytes/65537")),
                         Target(server_.url("/chunked/1000"), cap_1000),
                         Target(server_.url("/chunked/100000"), cap_1000)});
  ASSERT_EQ(run.results.size(), 7u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kOk) << r[0].error;
  EXPECT_EQ(r[0].body_bytes, 1000u);
  EXPECT_EQ(r[1].outcome, Outcome::kBodyTooLarge);
  // A declared Content-Length over the cap may fail before any body byte.
  EXPECT_EQ(r[2].outcome, Outcome::kBodyTooLarge);
  EXPECT_LE(r[2].body_bytes, 1000u);
  EXPECT_EQ(r[3].outcome, Outcome::kOk) << r[3].error;  // default 64 KiB
  EXPECT_EQ(r[3].body_bytes, 65536u);
  EXPECT_EQ(r[4].outcome, Outcome::kBodyTooLarge);
  // Without a declared length the cap is enforced while receiving: the
  // transfer stops soon after the cap, not at the end of the body.
  EXPECT_EQ(r[5].outcome, Outcome::kOk) << r[5].error;
  EXPECT_EQ(r[5].body_bytes, 1000u);
  EXPECT_EQ(r[6].outcome, Outcome::kBodyTooLarge);
  EXPECT_GT(r[6].body_bytes, 1000u);
  EXPECT_LT(r[6].body_bytes, 100000u);
}

TEST_F(TransferTest, RedirectsAreFollowedAndCounted) {
  auto max_2 = Options([](ProbeOptions& o) { o.max_redirects = 2; });
  auto max_3 = Options([](ProbeOptions& o) { o.max_redirects = 3; });
  TransferRun run = Run({Target(server_.url("/redirect/3")),
                         Target(server_.url("/redirect/3"), max_2),
                         Target(server_.url("/redirect/3"), max_3)});
  ASSERT_EQ(run.results.size(), 3u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kOk) << r[0].error;
  EXPECT_EQ(r[0].status_code, 200);
  EXPECT_EQ(r[0].redirects, 3);
  EXPECT_EQ(r[0].url, server_.url("/redirect/3"));
  EXPECT_EQ(r[0].final_url, server_.url("/status/200"));
  EXPECT_GT(r[0].timings.redirect, absl::ZeroDuration());
  EXPECT_EQ(r[1].outcome, Outcome::kTooManyRedirects);
  EXPECT_EQ(r[2].outcome, Outcome::kOk) << r[2].error;
  EXPECT_EQ(r[2].redirects, 3);
}

TEST_F(TransferTest, RedirectAcrossHostsReportsTheLastHop) {
  std::string to = server_.raw_url("/status/200");
  TransferRun run = Run({Target(server_.url("/redirect_to?url=" + to))});
  ASSERT_EQ(run.results.size(), 1u);
  const ProbeResult& r = run.results[0];
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.redirects, 1);
  EXPECT_EQ(r.final_url, to);
  EXPECT_EQ(r.remote_ip, "127.0.0.1");
  EXPECT_EQ(r.remote_port, server_.raw_port());
  EXPECT_EQ(server_.Stats().raw.requests_by_path["/status/200"], 1);
}

// The refused hop's outcome is left open: the transfer reports
// kInvalidTarget, whose doc says "nothing was sent", while a request was
// sent and answered 302.  What matters is that the hop never happens.
TEST_F(TransferTest, RedirectsOnlyToHttpOrHttps) {
  TransferRun run = Run(
      {Target(server_.url(absl::StrCat(
           "/redirect_to?url=ftp://127.0.0.1:", server_.raw_port(), "/file"))),
       Target(server_.url("/redirect_to?url=file:///etc/passwd"))});
  ASSERT_EQ(run.results.size(), 2u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  for (uint32_t i = 0; i < 2; ++i) {
    EXPECT_NE(r[i].outcome, Outcome::kOk) << "index " << i;
    EXPECT_EQ(r[i].status_code, 302) << "index " << i;
    EXPECT_EQ(r[i].body_bytes, 0u) << "index " << i;
    EXPECT_FALSE(r[i].error.empty()) << "index " << i;
  }
  // No FTP client ever connected to the raw listener.
  EXPECT_EQ(server_.Stats().raw.connections, 0);
}

TEST_F(TransferTest, RedirectLoopIsTooManyRedirects) {
  TransferRun run = Run({Target(server_.url("/loop"))});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kTooManyRedirects);
  EXPECT_FALSE(run.results[0].error.empty());
  // The first request and max_redirects (10) more; no more than that.
  EXPECT_EQ(server_.Stats().http.requests_by_path["/loop"], 11);
}

TEST_F(TransferTest, RedirectNotFollowedWhenDisabled) {
  auto no_follow = Options([](ProbeOptions& o) { o.follow_redirects = false; });
  auto no_follow_2xx = Options([](ProbeOptions& o) {
    o.follow_redirects = false;
    o.valid_status = {{200, 299}};
  });
  TransferRun run = Run({Target(server_.url("/redirect/1"), no_follow),
                         Target(server_.url("/redirect/1"), no_follow_2xx)});
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kOk) << r[0].error;  // 302 is in 200-399
  EXPECT_EQ(r[0].status_code, 302);
  EXPECT_EQ(r[0].redirects, 0);
  EXPECT_EQ(r[0].final_url, server_.url("/redirect/1"));
  EXPECT_EQ(r[1].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[1].status_code, 302);
  EXPECT_EQ(server_.Stats().http.requests_by_path.count("/status/200"), 0u);
}

TEST_F(TransferTest, ValidStatusRanges) {
  auto valid = [](std::vector<StatusRange> ranges) {
    return Options([&](ProbeOptions& o) { o.valid_status = ranges; });
  };
  TransferRun run = Run({
      Target(server_.url("/status/404")),
      Target(server_.url("/status/404"), valid({{400, 404}})),
      Target(server_.url("/status/200"), valid({{201, 299}})),
      Target(server_.url("/status/503"), valid({{100, 199}, {500, 503}})),
      Target(server_.url("/status/204"), valid({})),  // empty: 200-399
      Target(server_.url("/status/404"), valid({})),
      Target(server_.url("/status/500")),
  });
  ASSERT_EQ(run.results.size(), 7u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[0].status_code, 404);
  EXPECT_THAT(r[0].error, HasSubstr("404"));
  EXPECT_EQ(r[1].outcome, Outcome::kOk) << r[1].error;
  EXPECT_EQ(r[2].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[2].status_code, 200);
  EXPECT_EQ(r[3].outcome, Outcome::kOk) << r[3].error;
  EXPECT_EQ(r[3].status_code, 503);
  EXPECT_EQ(r[4].outcome, Outcome::kOk) << r[4].error;
  EXPECT_EQ(r[4].status_code, 204);
  EXPECT_EQ(r[5].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[6].outcome, Outcome::kUnexpectedStatus);
  EXPECT_EQ(r[6].status_code, 500);
}

// --- What reaches the target ------------------------------------------------

const ::fanprobe::testing::RecordedRequest* FindRequest(
    const std::vector<::fanprobe::testing::RecordedRequest>& requests,
    absl::string_view method) {
  for (const auto& r : requests) {
    if (r.method == method) return &r;
  }
  return nullptr;
}

std::string Header(const ::fanprobe::testing::RecordedRequest& request,
                   absl::string_view name) {
  for (const auto& [n, v] : request.headers) {
    if (absl::EqualsIgnoreCase(n, name)) return v;
  }
  return "<missing>";
}

TEST_F(TransferTest, MethodHeadersBodyAndUserAgentReachTheTarget) {
  auto post = Options([](ProbeOptions& o) {
    o.method = "POST";
    o.headers = {{"X-Probe", "abc"}, {"X-Other", "1 2 3"}};
    o.body = "payload=1";
    o.user_agent = "custom-agent/1.0";
    o.body_must_match = {"(?m)^X-Probe: abc$", "payload=1$"};
  });
  auto put = Options([](ProbeOptions& o) {
    o.method = "PUT";
    o.body = "x";  // httplib answers a body-less PUT only at its read timeout
  });
  TransferRun run = Run({Target(server_.url("/echo_headers"), post),
                         Target(server_.url("/echo_headers"), put),
                         Target(server_.url("/echo_headers"))});
  ASSERT_EQ(run.results.size(), 3u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kOk) << r[0].error;
  EXPECT_EQ(r[1].outcome, Outcome::kOk) << r[1].error;
  EXPECT_EQ(r[2].outcome, Outcome::kOk) << r[2].error;

  auto requests = server_.Requests();
  ASSERT_EQ(requests.size(), 3u);
  const auto* p = FindRequest(requests, "POST");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->path, "/echo_headers");
  EXPECT_EQ(p->body, "payload=1");
  EXPECT_EQ(Header(*p, "X-Probe"), "abc");
  EXPECT_EQ(Header(*p, "X-Other"), "1 2 3");
  EXPECT_EQ(Header(*p, "User-Agent"), "custom-agent/1.0");
  ASSERT_NE(FindRequest(requests, "PUT"), nullptr);
  const auto* g = FindRequest(requests, "GET");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->body, "");
  EXPECT_EQ(Header(*g, "User-Agent"), std::string(DefaultUserAgent()));
  EXPECT_THAT(std::string(DefaultUserAgent()), StartsWith("fanprobe/"));
}

TEST_F(TransferTest, HeadRequestReadsNoBody) {
  auto head = Options([](ProbeOptions& o) { o.method = "HEAD"; });
  TransferRun run = Run({Target(server_.url("/bytes/5000"), head)});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kOk) << run.results[0].error;
  EXPECT_EQ(run.results[0].status_code, 200);
  EXPECT_EQ(run.results[0].body_bytes, 0u);
  auto requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "HEAD");
}

TEST_F(TransferTest, TimingsAndConnectionDetails) {
  ProbeTarget target = Target(server_.url("/bytes/1234"));
  target.id = "web-1";
  target.labels = {{"zone", "a"}, {"tier", "front"}};
  TransferRun run = Run({target});
  ASSERT_EQ(run.results.size(), 1u);
  const ProbeResult& r = run.results[0];
  EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.index, 0u);
  EXPECT_EQ(r.id, "web-1");
  EXPECT_EQ(r.labels, target.labels);
  EXPECT_EQ(r.url, server_.url("/bytes/1234"));
  EXPECT_EQ(r.final_url, server_.url("/bytes/1234"));
  EXPECT_EQ(r.status_code, 200);
  EXPECT_EQ(r.http_version, ResponseVersion::kHttp1_1);
  EXPECT_EQ(r.remote_ip, "127.0.0.1");
  EXPECT_EQ(r.remote_port, server_.port());
  EXPECT_EQ(r.body_bytes, 1234u);
  EXPECT_EQ(r.redirects, 0);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.cert_expiry.has_value());
  const Timings& t = r.timings;
  EXPECT_GE(t.dns, absl::ZeroDuration());
  EXPECT_LE(t.dns, t.connect);
  EXPECT_GT(t.connect, absl::ZeroDuration());
  EXPECT_EQ(t.tls, absl::ZeroDuration());  // http://
  EXPECT_LE(t.connect, t.first_byte);
  EXPECT_LE(t.first_byte, t.total);
  EXPECT_GT(t.total, absl::ZeroDuration());
  EXPECT_EQ(t.redirect, absl::ZeroDuration());
  EXPECT_LE(t.total, run.elapsed);
}

// --- Network failures -------------------------------------------------------

TEST_F(TransferTest, ConnectionRefusedIsConnectError) {
  RefusedPort refused;
  TransferRun run = Run({Target(refused.url("/"))});
  ASSERT_EQ(run.results.size(), 1u);
  const ProbeResult& r = run.results[0];
  EXPECT_EQ(r.outcome, Outcome::kConnectError);
  EXPECT_EQ(r.status_code, 0);
  EXPECT_EQ(r.http_version, ResponseVersion::kNone);
  EXPECT_FALSE(r.error.empty());
}

TEST_F(TransferTest, ConnectTimeoutIsTimeout) {
  UnresponsivePort unresponsive;
  auto connect_200ms = Options([](ProbeOptions& o) {
    o.connect_timeout = absl::Milliseconds(200);
    o.timeout = absl::Seconds(5);
  });
  auto total_300ms =
      Options([](ProbeOptions& o) { o.timeout = absl::Milliseconds(300); });
  TransferRun run = Run({Target(unresponsive.url("/"), connect_200ms),
                         Target(unresponsive.url("/"), total_300ms)});
  ASSERT_EQ(run.results.size(), 2u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kTimeout) << r[0].error;
  EXPECT_GE(r[0].timings.total, absl::Milliseconds(190));
  EXPECT_LT(r[0].timings.total, absl::Seconds(4));  // not the 5 s total
  EXPECT_EQ(r[1].outcome, Outcome::kTimeout) << r[1].error;
  EXPECT_GE(r[1].timings.total, absl::Milliseconds(290));
  EXPECT_LT(r[1].timings.total, absl::Seconds(4));
  EXPECT_LT(run.elapsed, absl::Seconds(4));
}

TEST_F(TransferTest, DeniedDestinationIsNeverContacted) {
  EngineOptions options{.workers = 2};
  options.destination_policy.deny_loopback = true;
  std::unique_ptr<TransferHarness> harness = MakeHarness(std::move(options));
  TransferRun run = Run({Target(server_.raw_url("/status/200")),
                         Target(server_.url("/status/200"))},
                        harness.get());
  ASSERT_EQ(run.results.size(), 2u);
  std::map<uint32_t, ProbeResult> r = ByIndex(run.results);
  for (uint32_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r[i].outcome, Outcome::kDenied) << "index " << i;
    EXPECT_FALSE(r[i].error.empty()) << "index " << i;
    EXPECT_EQ(r[i].status_code, 0) << "index " << i;
  }
  TargetStats stats = server_.Stats();
  EXPECT_EQ(stats.raw.connections, 0);
  EXPECT_EQ(stats.http.requests, 0);
}

TEST_F(TransferTest, ConnectionResetIsIoError) {
  TransferRun run = Run({Target(server_.raw_url("/reset"))});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kIoError) << run.results[0].error;
  EXPECT_EQ(run.results[0].status_code, 0);
  EXPECT_EQ(server_.Stats().raw.requests_by_path["/reset"], 1);
}

TEST_F(TransferTest, UnresolvableHostIsDnsError) {
  // RFC 6761: .invalid never resolves.  The test's DNS server says so
  // (NXDOMAIN for every name it does not hold): the machine's resolver is
  // never asked.
  auto options = Options([](ProbeOptions& o) { o.timeout = absl::Seconds(5); });
  TransferRun run = Run({Target("http://no-such-host.invalid/", options)});
  ASSERT_EQ(run.results.size(), 1u);
  EXPECT_EQ(run.results[0].outcome, Outcome::kDnsError) << run.results[0].error;
  EXPECT_EQ(run.results[0].dns_failure, DnsFailure::kNxDomain);
  EXPECT_GE(dns_->QueryCount("no-such-host.invalid"), 1u);
}

}  // namespace
}  // namespace fanprobe
