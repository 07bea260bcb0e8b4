// service/http_server.h end to end: a real server (gRPC and HTTP, one
// engine) probing loopback targets, asked over HTTP: /probe in all its
// forms, its refusals, its deadline, /metrics after traffic on both APIs,
// /healthz and /readyz through saturation and shutdown.

#include "service/http_server.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "service/metrics.h"
#include "service/server.h"
#include "tests/monitoring/prom_text.h"
#include "tests/monitoring/tools.h"
#include "tests/service/test_util.h"
#include "tests/support/target_server.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

service::ServerOptions WithHttp(service::ServerOptions options = {}) {
  options.http.address = "127.0.0.1:0";
  return options;
}

Exposition Parse(const HttpReply& reply) {
  absl::StatusOr<Exposition> parsed = ParseExposition(reply.body);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << reply.body;
  return parsed.value_or(Exposition{});
}

std::string ProbePath(const std::vector<std::string>& targets,
                      const std::string& module = "") {
  std::string path = "/probe?";
  for (const std::string& target : targets) {
    absl::StrAppend(&path, "target=", UrlEncode(target), "&");
  }
  if (!module.empty()) absl::StrAppend(&path, "module=", module);
  return path;
}

class HttpServerTest : public ::testing::Test {
 protected:
  TargetServer target_;
  TestServer server_{WithHttp()};
  const std::string& http() { return server_.server().http_address(); }
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
  Exposition m = Parse(reply);
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
  Exposition m = Parse(bad);
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(m.Value("probe_http_status_code"), 503);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info",
                    {{"outcome", "UNEXPECTED_STATUS"}}),
            1);

  HttpReply down = HttpGet(http(), ProbePath({refused.url("/")}));
  ASSERT_EQ(down.status, 200);
  Exposition d = Parse(down);
  EXPECT_EQ(d.Value("probe_success"), 0);
  EXPECT_EQ(d.Value("probe_http_status_code"), 0);
  EXPECT_EQ(
      d.Value("probe_fanprobe_outcome_info", {{"outcome", "CONNECT_ERROR"}}),
      1);
}

TEST_F(HttpServerTest, SeveralTargetsRunConcurrentlyWithATargetLabel) {
  const std::vector<std::string> targets = {
      target_.url("/delay/300"), target_.url("/delay/301"),
      target_.url("/delay/302?status=500"), target_.url("/delay/300")};
  HttpReply reply = HttpGet(http(), ProbePath(targets));
  ASSERT_EQ(reply.status, 200) << reply.body;
  Exposition m = Parse(reply);
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

  Exposition metrics = Parse(HttpGet(http(), "/metrics"));
  EXPECT_EQ(metrics.Value("fanprobe_requests_rejected_total",
                          {{"api", "http"}, {"reason", "INVALID_ARGUMENT"}}),
            4);
  EXPECT_EQ(target_.Stats().http.requests, 0);  // nothing was probed
}

TEST_F(HttpServerTest, ScrapeTimeoutHeaderLessTheOffsetIsTheDeadline) {
  const absl::Time start = absl::Now();
  // 1 s scrape timeout - 0.5 s offset: the probe gets 0.5 s.
  HttpReply reply = HttpGet(http(), ProbePath({target_.raw_url("/hang")}),
                            {{"X-Prometheus-Scrape-Timeout-Seconds", "1"}});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(reply.status, 200);
  Exposition m = Parse(reply);
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info", {{"outcome", "TIMEOUT"}}),
            1);
  EXPECT_GE(*m.Value("probe_duration_seconds"), 0.45);
  EXPECT_LT(*m.Value("probe_duration_seconds"), 0.9);
  EXPECT_LT(took, absl::Seconds(1));  // the answer beats the scrape timeout
  // The target saw the probe give up.
  EXPECT_TRUE(target_.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
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

TEST_F(HttpServerTest, MetricsCountBothApisThroughOneEngine) {
  // One gRPC batch, one refused gRPC request, one /probe.
  {
    grpc::ClientContext context;
    v1::ProbeBatchResponse response;
    ASSERT_TRUE(server_.stub()
                    .ProbeBatch(&context,
                                BatchRequest({target_.url("/status/200"),
                                              target_.url("/status/500")}),
                                &response)
                    .ok());
  }
  {
    grpc::ClientContext context;
    v1::ProbeBatchResponse response;
    EXPECT_EQ(server_.stub()
                  .ProbeBatch(&context, v1::ProbeBatchRequest(), &response)
                  .error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  ASSERT_EQ(HttpGet(http(), ProbePath({target_.url("/status/200")})).status,
            200);

  Exposition m = Parse(HttpGet(http(), "/metrics"));
  EXPECT_EQ(m.Value("fanprobe_batches_total", {{"api", "grpc"},
                                               {"return_when", "ALL_COMPLETED"},
                                               {"reason", "ALL_COMPLETED"}}),
            1);
  EXPECT_EQ(m.Value("fanprobe_batches_total", {{"api", "http"},
                                               {"return_when", "ALL_COMPLETED"},
                                               {"reason", "ALL_COMPLETED"}}),
            1);
  EXPECT_EQ(
      m.Value("fanprobe_probes_total", {{"api", "grpc"}, {"outcome", "OK"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_probes_total",
                    {{"api", "grpc"}, {"outcome", "UNEXPECTED_STATUS"}}),
            1);
  EXPECT_EQ(
      m.Value("fanprobe_probes_total", {{"api", "http"}, {"outcome", "OK"}}),
      1);
  EXPECT_EQ(m.Value("fanprobe_requests_rejected_total",
                    {{"api", "grpc"}, {"reason", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(m.Value("fanprobe_probe_duration_seconds_count"), 3);
  EXPECT_EQ(m.Value("fanprobe_probes_in_flight"), 0);
  EXPECT_EQ(m.Value("fanprobe_http_probe_requests_active"), 0);
  EXPECT_GT(*m.Value("fanprobe_probes_max_in_flight"), 0);
  EXPECT_GE(*m.Value("process_open_fds"), 3);
  EXPECT_GT(*m.Value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_EQ(m.Samples("fanprobe_build_info").size(), 1u);
  EXPECT_EQ(m.Samples("fanprobe_build_info")[0].labels.at("version"),
            FANPROBE_VERSION);
}

TEST_F(HttpServerTest, StreamsActiveAndQueueWaits) {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> stream =
      server_.stub().StreamProbes(
          &context,
          BatchRequest({target_.url("/status/200"), target_.raw_url("/hang")}));
  v1::ProbeEvent event;
  ASSERT_TRUE(stream->Read(&event));  // the /status/200 result
  Exposition during = Parse(HttpGet(http(), "/metrics"));
  EXPECT_EQ(during.Value("fanprobe_streams_active"), 1);
  EXPECT_EQ(during.Value("fanprobe_probes_in_flight"), 1);  // /hang
  EXPECT_EQ(during.Value("fanprobe_stream_queue_wait_seconds_count"), 1);
  context.TryCancel();
  while (stream->Read(&event)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitUntil([this] {
    return server_.server().metrics().Render().find(
               "\nfanprobe_streams_active 0\n") != std::string::npos;
  }));
  Exposition after = Parse(HttpGet(http(), "/metrics"));
  EXPECT_EQ(
      after.Value("fanprobe_batches_total", {{"api", "grpc"},
                                             {"return_when", "ALL_COMPLETED"},
                                             {"reason", "CANCELLED"}}),
      1);
  EXPECT_EQ(after.Value("fanprobe_probes_cancelled_total", {{"api", "grpc"}}),
            1);
}

TEST(HttpServerAuthTest, TokensGuardMetricsAndProbeButNotHealth) {
  TempDir dir;
  service::ServerOptions options = WithHttp();
  options.security.http_auth_token_file =
      dir.Write("http_tokens", "# scrapers\nold-token\nnew-token\n");
  TestServer server(options);
  TargetServer target;
  const std::string& http = server.server().http_address();
  const std::string probe = ProbePath({target.url("/status/200")});
  for (const std::string& path :
       {std::string("/metrics"), probe, std::string("/")}) {
    const HttpReply none = HttpGet(http, path);
    EXPECT_EQ(none.status, 401) << path;
    EXPECT_EQ(none.www_authenticate, R"(Bearer realm="fanprobe")") << path;
    EXPECT_THAT(none.body, HasSubstr("missing credentials")) << path;
    const HttpReply wrong =
        HttpGet(http, path, {{"Authorization", "Bearer not-a-token"}});
    EXPECT_EQ(wrong.status, 401) << path;
    EXPECT_THAT(wrong.body, HasSubstr("invalid bearer token")) << path;
  }
  EXPECT_EQ(target.Stats().http.requests, 0);  // no probe ran
  // A kubelet's probes need no token.
  EXPECT_EQ(HttpGet(http, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(http, "/readyz").status, 200);

  // Either token of the file is good (a rotation lists both for a while).
  const HttpReply probed =
      HttpGet(http, probe, {{"Authorization", "Bearer new-token"}});
  ASSERT_EQ(probed.status, 200) << probed.body;
  EXPECT_EQ(Parse(probed).Value("probe_success"), 1);
  EXPECT_EQ(target.Stats().http.requests, 1);
  const HttpReply metrics =
      HttpGet(http, "/metrics", {{"Authorization", "bearer old-token"}});
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_EQ(
      Parse(metrics).Value("fanprobe_requests_rejected_total",
                           {{"api", "http"}, {"reason", "UNAUTHENTICATED"}}),
      6);
}

TEST(HttpServerReadinessTest, NotReadyWhileTheEngineIsSaturated) {
  TargetServer target;
  service::ServerOptions options = WithHttp();
  options.engine.max_in_flight = 1;
  TestServer server(options);
  const std::string& http = server.server().http_address();
  EXPECT_EQ(HttpGet(http, "/readyz").body, "ready\n");

  grpc::ClientContext context;
  auto stream = server.stub().StreamProbes(
      &context,
      BatchRequest({target.raw_url("/hang"), target.raw_url("/hang")}));
  ASSERT_TRUE(WaitUntil([&server] {
    EngineStats stats = server.server().engine().Stats();
    return stats.probes_in_flight == 1 && stats.probes_queued == 1;
  }));
  HttpReply busy = HttpGet(http, "/readyz");
  EXPECT_EQ(busy.status, 503);
  EXPECT_THAT(busy.body, HasSubstr("not ready: saturated: 1 probes in flight "
                                   "(the cap) and 1 queued"));

  context.TryCancel();
  v1::ProbeEvent event;
  while (stream->Read(&event)) {
  }
  stream->Finish();
  EXPECT_TRUE(WaitUntil([&server] {
    return server.server().engine().Stats().batches_active == 0;
  }));
  EXPECT_EQ(HttpGet(http, "/readyz").status, 200);
}

TEST(HttpServerShutdownTest, RunningProbesAnswer503AfterTheGrace) {
  TargetServer target;
  service::ServerOptions options = WithHttp();
  options.shutdown_grace = absl::Milliseconds(300);
  TestServer server(options);
  const std::string http = server.server().http_address();

  HttpReply hung;
  std::thread scrape(
      [&] { hung = HttpGet(http, ProbePath({target.raw_url("/hang")})); });
  ASSERT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.requests == 1; }, kPatience));
  const absl::Time start = absl::Now();
  server.server().Shutdown();
  scrape.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(hung.status, 503);
  EXPECT_THAT(hung.body, HasSubstr("shutting down"));
  // The probe's connection was closed, not left to hang.
  EXPECT_TRUE(target.WaitFor(
      [](const TargetStats& s) { return s.raw.abandoned == 1; }, kPatience));
  EXPECT_EQ(HttpGet(http, "/healthz", {}, absl::Seconds(1)).status, 0);
}

// The HTTP side alone, over a bare engine: what BeginShutdown changes.
TEST(HttpServerAloneTest, BeginShutdownRefusesProbesButKeepsMetrics) {
  auto engine = Engine::Create({.workers = 1}).value();
  service::ServerMetrics metrics;
  auto http = service::HttpServer::Start({.address = "127.0.0.1:0"}, *engine,
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
  Exposition m = Parse(HttpGet(http->address(), "/metrics"));
  EXPECT_EQ(m.Value("fanprobe_requests_rejected_total",
                    {{"api", "http"}, {"reason", "UNAVAILABLE"}}),
            1);
  EXPECT_EQ(target.Stats().http.requests, 0);
}

TEST(HttpServerAloneTest, TooManyTargetsIs400) {
  auto engine = Engine::Create({.workers = 1}).value();
  service::ServerMetrics metrics;
  auto http = service::HttpServer::Start(
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
  service::ServerMetrics metrics;
  auto http = service::HttpServer::Start(
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
  service::ServerMetrics metrics;
  auto first = service::HttpServer::Start({.address = "127.0.0.1:0"}, *engine,
                                          metrics, nullptr)
                   .value();
  absl::StatusOr<std::unique_ptr<service::HttpServer>> second =
      service::HttpServer::Start({.address = first->address()}, *engine,
                                 metrics, nullptr);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(service::HttpServer::Start({.address = "no-port"}, *engine, metrics,
                                       nullptr)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fanprobe::testing
