// monitoring/http_server.h end to end on its own: the HTTP side over a
// metered engine (http_side.h) probing loopback targets, asked over HTTP:
// /probe in all its forms, its refusals, its deadline, /healthz, /readyz
// and /metrics.  With the gRPC side beside it (one engine, one /metrics,
// tokens, readiness, shutdown) it is tests/server/http_side_test.cc's.

#include "monitoring/http_server.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/target_server.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class HttpServerTest : public ::testing::Test {
 protected:
  TargetServer target_;
  HttpSide side_;
  const std::string& http() { return side_.address(); }
};

TEST_F(HttpServerTest, HealthzAndIndex) {
  HttpReply health = HttpGet(http(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  HttpReply index = HttpGet(http(), "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(index.body, HasSubstr("/probe"));
  EXPECT_EQ(HttpGet(http(), "/nope").status, 404);
}

TEST_F(HttpServerTest, ProbeAGoodTarget) {
  HttpReply reply = HttpGet(http(), ProbePath({target_.url("/status/200")}));
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
  Exposition m = ParseOrFail(reply.body);
  EXPECT_EQ(m.Value("probe_success"), 1);
  EXPECT_EQ(m.Value("probe_http_status_code"), 200);
  EXPECT_EQ(m.Value("probe_http_version"), 1.1);
  EXPECT_EQ(m.Value("probe_ip_protocol"), 4);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info", {{"outcome", "OK"}}), 1);
  EXPECT_GT(*m.Value("probe_duration_seconds"), 0);
  EXPECT_GT(*m.Value("probe_http_duration_seconds", {{"phase", "processing"}}),
            0);
  // The target saw one GET, as a scrape of blackbox_exporter would send.
  EXPECT_EQ(target_.Stats().http.requests_by_path.at("/status/200"), 1);
}

TEST_F(HttpServerTest, ProbeFailuresAreDataNotHttpErrors) {
  RefusedPort refused;
  HttpReply bad = HttpGet(http(), ProbePath({target_.url("/status/503")}));
  ASSERT_EQ(bad.status, 200);
  Exposition m = ParseOrFail(bad.body);
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(m.Value("probe_http_status_code"), 503);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info",
                    {{"outcome", "UNEXPECTED_STATUS"}}),
            1);

  HttpReply down = HttpGet(http(), ProbePath({refused.url("/")}));
  ASSERT_EQ(down.status, 200);
  Exposition d = ParseOrFail(down.body);
  EXPECT_EQ(d.Value("probe_success"), 0);
  EXPECT_EQ(d.Value("probe_http_status_code"), 0);
  EXPECT_EQ(
      d.Value("probe_fanprobe_outcome_info", {{"outcome", "CONNECT_ERROR"}}),
      1);
}

TEST_F(HttpServerTest, AttemptsAllowRetriesAndTheMetricsCountThem) {
  // Without the parameter a probe has one attempt: the reset is final.
  const std::string flaky = target_.raw_url("/reset_first/1");
  HttpReply once = HttpGet(http(), ProbePath({flaky}));
  ASSERT_EQ(once.status, 200) << once.body;
  Exposition m = ParseOrFail(once.body);
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(m.Value("probe_fanprobe_attempts"), 1);

  // The same target, failing once more then recovering, is a success on
  // the second of three attempts.
  const std::string recovers = target_.raw_url("/reset_first/2");
  HttpReply retried =
      HttpGet(http(), ProbePath({recovers}) + "&attempts=3&retry_backoff=10ms");
  ASSERT_EQ(retried.status, 200) << retried.body;
  m = ParseOrFail(retried.body);
  EXPECT_EQ(m.Value("probe_success"), 1);
  EXPECT_EQ(m.Value("probe_fanprobe_attempts"), 3);
  EXPECT_EQ(m.Value("probe_http_status_code"), 200);
  EXPECT_EQ(target_.Stats().raw.requests_by_path.at("/reset_first/2"), 3);

  Exposition metrics = ParseOrFail(HttpGet(http(), "/metrics").body);
  EXPECT_EQ(metrics.Value("fanprobe_probe_attempts_total",
                          {{"api", "http"}, {"outcome", "IO_ERROR"}}),
            3);
  EXPECT_EQ(metrics.Value("fanprobe_probe_attempts_total",
                          {{"api", "http"}, {"outcome", "OK"}}),
            1);
  EXPECT_EQ(metrics.Value("fanprobe_probes_total",
                          {{"api", "http"}, {"outcome", "OK"}}),
            1);
}

TEST_F(HttpServerTest, UnusableRetryParametersAre400) {
  const std::string path = ProbePath({target_.url("/status/200")});
  struct Case {
    std::string query;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"&attempts=0", "attempts: want a whole number, 1 or more, got \"0\""},
      {"&attempts=two", "attempts: want a whole number, 1 or more"},
      {"&attempts=11",
       "attempts: retry.max_attempts: 11 is above this "
       "server's limit of 10"},
      {"&retry_backoff=-1s", "retry_backoff: want a duration such as 200ms"},
      {"&retry_backoff=soon", "retry_backoff: want a duration such as 200ms"},
  };
  for (const Case& c : cases) {
    HttpReply reply = HttpGet(http(), path + c.query);
    EXPECT_EQ(reply.status, 400) << c.query;
    EXPECT_THAT(reply.body, HasSubstr(c.message)) << c.query;
  }
  EXPECT_EQ(target_.Stats().http.requests, 0);  // nothing was probed
}

TEST_F(HttpServerTest, SeveralTargetsRunConcurrentlyWithATargetLabel) {
  const std::vector<std::string> targets = {
      target_.url("/delay/300"), target_.url("/delay/301"),
      target_.url("/delay/302?status=500"), target_.url("/delay/300")};
  HttpReply reply = HttpGet(http(), ProbePath(targets));
  ASSERT_EQ(reply.status, 200) << reply.body;
  Exposition m = ParseOrFail(reply.body);
  // The repeated target is probed once; all three were in flight together.
  EXPECT_EQ(target_.Stats().http.requests, 3);
  EXPECT_EQ(target_.Stats().http.max_in_flight, 3);
  for (const Sample& sample : m.samples) {
    EXPECT_TRUE(sample.labels.contains("target")) << sample.name;
  }
  EXPECT_EQ(m.Samples("probe_success").size(), 3u);
  EXPECT_EQ(m.Value("probe_success", {{"target", targets[0]}}), 1);
  EXPECT_EQ(m.Value("probe_success", {{"target", targets[1]}}), 1);
  EXPECT_EQ(m.Value("probe_success", {{"target", targets[2]}}), 0);
  EXPECT_EQ(m.Value("probe_http_status_code", {{"target", targets[2]}}), 500);
}

TEST_F(HttpServerTest, BadRequestsAre400AndCounted) {
  struct Case {
    std::string path;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"/probe", "Target parameter is missing"},
      {"/probe?target=", "Target parameter is missing"},
      {ProbePath({target_.url("/")}, "nope"), "Unknown module \"nope\""},
  };
  for (const Case& c : cases) {
    HttpReply reply = HttpGet(http(), c.path);
    EXPECT_EQ(reply.status, 400) << c.path.substr(0, 80);
    EXPECT_THAT(reply.body, HasSubstr(c.message));
  }
  HttpReply header = HttpGet(http(), ProbePath({target_.url("/")}),
                             {{"X-Prometheus-Scrape-Timeout-Seconds", "soon"}});
  EXPECT_EQ(header.status, 400);
  EXPECT_THAT(header.body, HasSubstr("Failed to parse timeout"));

  Exposition metrics = ParseOrFail(HttpGet(http(), "/metrics").body);
  EXPECT_EQ(metrics.Value("fanprobe_requests_rejected_total",
                          {{"api", "http"}, {"reason", "INVALID_ARGUMENT"}}),
            4);
  EXPECT_EQ(target_.Stats().http.requests, 0);  // nothing was probed
}

TEST_F(HttpServerTest, ScrapeTimeoutHeaderLessTheOffsetIsTheDeadline) {
  // 3 s scrape timeout - 2 s offset: the probe gets 1 s, and the answer
  // has 2 s to beat the scrape timeout, a margin no scheduling delay eats.
  monitoring::HttpServerOptions options;
  options.timeout_offset = absl::Seconds(2);
  HttpSide side(options);
  const absl::Time start = absl::Now();
  HttpReply reply =
      HttpGet(side.address(), ProbePath({target_.raw_url("/hang")}),
              {{"X-Prometheus-Scrape-Timeout-Seconds", "3"}});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(reply.status, 200);
  Exposition m = ParseOrFail(reply.body);
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info", {{"outcome", "TIMEOUT"}}),
            1);
  EXPECT_GE(*m.Value("probe_duration_seconds"), 0.95);
  EXPECT_LT(*m.Value("probe_duration_seconds"), 3);
  EXPECT_LT(took, absl::Seconds(3));  // the answer beats the scrape timeout
  // The target saw the probe give up.
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
}

// Issue 13: "inf", "nan" and "1e308" removed the limit (the target's
// connection was still open after 124 s, the server spinning two cores).
TEST_F(HttpServerTest, ScrapeTimeoutHeaderMustBeAFinitePositiveNumber) {
  for (const char* header : {"inf", "nan", "-inf", "1e309", "-1"}) {
    HttpReply reply = HttpGet(http(), ProbePath({target_.raw_url("/hang")}),
                              {{"X-Prometheus-Scrape-Timeout-Seconds", header}},
                              absl::Seconds(5));
    EXPECT_EQ(reply.status, 400) << header;
    EXPECT_THAT(reply.body, HasSubstr("Failed to parse timeout")) << header;
  }
  EXPECT_EQ(target_.Stats().raw.requests, 0);  // nothing was probed
}

TEST(HttpServerAloneTest, AHugeScrapeTimeoutIsHeldToTheServersMaximum) {
  TargetServer target;
  HttpSide side({.max_scrape_timeout = absl::Seconds(1)});
  const absl::Time start = absl::Now();
  // 1e308 s is held to 1 s, less the 0.5 s offset.
  HttpReply reply =
      HttpGet(side.address(), ProbePath({target.raw_url("/hang")}),
              {{"X-Prometheus-Scrape-Timeout-Seconds", "1e308"}});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(reply.status, 200) << reply.body;
  Exposition m = ParseOrFail(reply.body);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info", {{"outcome", "TIMEOUT"}}),
            1);
  EXPECT_GE(*m.Value("probe_duration_seconds"), 0.45);
  EXPECT_LT(*m.Value("probe_duration_seconds"), 0.9);
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
}

// A batch can end before its request is suspended (an invalid target fails
// at once): it is answered then, and not under the request's own lock (the
// first libmicrohttpd version took that lock twice and hung).
TEST_F(HttpServerTest, ABatchThatEndsAtOnceIsAnswered) {
  for (int i = 0; i < 20; ++i) {
    HttpReply reply = HttpGet(http(), ProbePath({"not a url"}));
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_EQ(ParseOrFail(reply.body).Value("probe_success"), 0);
  }
}

TEST_F(HttpServerTest, DebugExplainsTheProbe) {
  HttpReply reply =
      HttpGet(http(), ProbePath({target_.url("/status/404")}) + "&debug=true");
  ASSERT_EQ(reply.status, 200);
  EXPECT_THAT(reply.content_type, StartsWith("text/plain"));
  EXPECT_THAT(reply.body, StartsWith("Logs for the probe:\n"));
  EXPECT_THAT(reply.body, HasSubstr("outcome=UNEXPECTED_STATUS success=false "
                                    "status_code=404 error=\"status 404"));
  EXPECT_THAT(reply.body, HasSubstr("probe_http_status_code 404"));
  EXPECT_THAT(reply.body, HasSubstr("Module configuration:\nprober: http"));
}

// The HTTP side alone, over a bare engine: what BeginShutdown changes.
TEST(HttpServerAloneTest, BeginShutdownRefusesProbesButKeepsMetrics) {
  auto engine = Engine::Create({.workers = 1}).value();
  monitoring::ServerMetrics metrics;
  auto http = monitoring::HttpServer::Start({.address = "127.0.0.1:0"}, *engine,
                                            metrics, nullptr)
                  .value();
  TargetServer target;
  EXPECT_EQ(HttpGet(http->address(), "/readyz").status, 200);
  http->BeginShutdown();
  HttpReply ready = HttpGet(http->address(), "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "not ready: shutting down\n");
  HttpReply probe =
      HttpGet(http->address(), ProbePath({target.url("/status/200")}));
  EXPECT_EQ(probe.status, 503);
  EXPECT_EQ(HttpGet(http->address(), "/healthz").status, 200);
  Exposition m = ParseOrFail(HttpGet(http->address(), "/metrics").body);
  EXPECT_EQ(m.Value("fanprobe_requests_rejected_total",
                    {{"api", "http"}, {"reason", "UNAVAILABLE"}}),
            1);
  EXPECT_EQ(target.Stats().http.requests, 0);
}

TEST(HttpServerAloneTest, TooManyTargetsIs400) {
  auto engine = Engine::Create({.workers = 1}).value();
  monitoring::ServerMetrics metrics;
  auto http = monitoring::HttpServer::Start(
                  {.address = "127.0.0.1:0", .max_targets_per_request = 2},
                  *engine, metrics, nullptr)
                  .value();
  TargetServer target;
  HttpReply reply =
      HttpGet(http->address(),
              ProbePath({target.url("/status/200"), target.url("/status/201"),
                         target.url("/status/202")}));
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(reply.body, "Too many targets: 3 (at most 2)\n");
  EXPECT_EQ(target.Stats().http.requests, 0);
}

TEST(HttpServerAloneTest, OverloadIs503) {
  auto engine = Engine::Create({.workers = 1}).value();
  monitoring::ServerMetrics metrics;
  auto http = monitoring::HttpServer::Start(
                  {.address = "127.0.0.1:0", .max_pending_probes = 2}, *engine,
                  metrics, nullptr)
                  .value();
  TargetServer target;
  HttpReply reply =
      HttpGet(http->address(),
              ProbePath({target.url("/status/200"), target.url("/status/201"),
                         target.url("/status/202")}));
  EXPECT_EQ(reply.status, 503);
  EXPECT_THAT(reply.body, HasSubstr("exceed the limit of 2"));
  EXPECT_EQ(HttpGet(http->address(), ProbePath({target.url("/status/200"),
                                                target.url("/status/201")}))
                .status,
            200);
}

TEST(HttpServerAloneTest, AnAddressInUseIsUnavailable) {
  auto engine = Engine::Create({.workers = 1}).value();
  monitoring::ServerMetrics metrics;
  auto first = monitoring::HttpServer::Start({.address = "127.0.0.1:0"},
                                             *engine, metrics, nullptr)
                   .value();
  absl::StatusOr<std::unique_ptr<monitoring::HttpServer>> second =
      monitoring::HttpServer::Start({.address = first->address()}, *engine,
                                    metrics, nullptr);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(monitoring::HttpServer::Start({.address = "no-port"}, *engine,
                                          metrics, nullptr)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fanprobe::testing
