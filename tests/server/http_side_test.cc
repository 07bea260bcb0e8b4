// http_side_test.cc: the HTTP side as the server wires it -- beside the
// gRPC side on one engine and one /metrics, behind --http_auth_token_file,
// ready only while neither side is saturated, and drained by the server's
// shutdown.  The HTTP side on its own is tests/monitoring/'s.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fanprobe/v1/prober.grpc.pb.h"
#include "fanprobe/v1/prober.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "server/server.h"
#include "tests/support/batches.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;

server::ServerOptions WithHttp(server::ServerOptions options = {}) {
  options.http.address = "127.0.0.1:0";
  return options;
}

class HttpSideTest : public ::testing::Test {
 protected:
  TargetServer target_;
  TestServer server_{WithHttp()};
  const std::string& http() { return server_.server().http_address(); }
};

TEST_F(HttpSideTest, MetricsCountBothApisThroughOneEngine) {
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

  Exposition m = ParseOrFail(HttpGet(http(), "/metrics").body);
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

TEST_F(HttpSideTest, StreamsActiveAndQueueWaits) {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::ProbeEvent>> stream =
      server_.stub().StreamProbes(
          &context,
          BatchRequest({target_.url("/status/200"), target_.raw_url("/hang")}));
  v1::ProbeEvent event;
  ASSERT_TRUE(stream->Read(&event));  // the /status/200 result
  Exposition during = ParseOrFail(HttpGet(http(), "/metrics").body);
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
  Exposition after = ParseOrFail(HttpGet(http(), "/metrics").body);
  EXPECT_EQ(
      after.Value("fanprobe_batches_total", {{"api", "grpc"},
                                             {"return_when", "ALL_COMPLETED"},
                                             {"reason", "CANCELLED"}}),
      1);
  EXPECT_EQ(after.Value("fanprobe_probes_cancelled_total", {{"api", "grpc"}}),
            1);
}

TEST(HttpSideAuthTest, TokensGuardMetricsAndProbeButNotHealth) {
  TempDir dir;
  server::ServerOptions options = WithHttp();
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
  EXPECT_EQ(ParseOrFail(probed.body).Value("probe_success"), 1);
  EXPECT_EQ(target.Stats().http.requests, 1);
  const HttpReply metrics =
      HttpGet(http, "/metrics", {{"Authorization", "bearer old-token"}});
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_EQ(ParseOrFail(metrics.body)
                .Value("fanprobe_requests_rejected_total",
                       {{"api", "http"}, {"reason", "UNAUTHENTICATED"}}),
            6);
}

// --http_tls_cert / --http_tls_key / --http_client_ca reach the HTTP side
// (the HTTPS exchanges themselves: tests/monitoring/http_tls_test.cc).
class HttpSideTlsTest : public ::testing::Test {
 protected:
  // The HTTP side with TLS from files in dir_.
  server::ServerOptions TlsOptions() {
    const KeyAndCert cert = ca_.Issue("localhost", {.server = true});
    server::ServerOptions options = WithHttp();
    options.security.http_tls_cert_file = dir_.Write("http.crt", cert.cert_pem);
    options.security.http_tls_key_file = dir_.Write("http.key", cert.key_pem);
    return options;
  }

  TempDir dir_;
  TestCa ca_{"fanprobe http test CA"};
};

TEST_F(HttpSideTlsTest, TlsFilesAreReadAtStart) {
  server::ServerOptions options = TlsOptions();
  options.security.http_client_ca_file = dir_.File("missing-ca.pem");
  absl::StatusOr<std::unique_ptr<server::Server>> refused =
      server::Server::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("--http_client_ca=" + dir_.File("missing-ca.pem")));

  options.security.http_client_ca_file = dir_.Write("ca.pem", ca_.cert_pem());
  TestServer server(options);
  // The HTTP side speaks TLS only: a plain request gets no answer.
  EXPECT_EQ(
      HttpGet(server.server().http_address(), "/healthz", {}, absl::Seconds(5))
          .status,
      0);
}

// Renewed files reach the HTTP side without a restart (what a renewal
// changes in the handshakes: tests/monitoring/http_tls_test.cc).
TEST_F(HttpSideTlsTest, RenewedTlsFilesAreTakenAndABadPairIsLogged) {
  server::ServerOptions options = TlsOptions();
  options.security.reload_interval = absl::Milliseconds(100);
  TestServer server(options);
  auto lines = [&server](absl::string_view event) {
    int count = 0;
    for (const std::string& line : server.log().Lines()) {
      count += absl::StrContains(line, absl::StrCat("\"", event, "\""));
    }
    return count;
  };

  // The certificate first: for a moment it does not match the key.
  const KeyAndCert renewed = ca_.Issue("localhost", {.server = true});
  WriteFileAtomically(dir_.File("http.crt"), renewed.cert_pem);
  ASSERT_TRUE(WaitUntil([&] { return lines("http_tls_reload_failed") == 1; }));
  std::vector<std::string> log = server.log().Lines();
  EXPECT_THAT(log.back(), HasSubstr("the key does not belong to the chain's "
                                    "first certificate"));
  WriteFileAtomically(dir_.File("http.key"), renewed.key_pem);
  EXPECT_TRUE(WaitUntil([&] { return lines("http_tls_reloaded") == 1; }));
  EXPECT_EQ(lines("http_tls_reload_failed"), 1);
}

TEST(HttpSideReadinessTest, NotReadyWhileTheEngineIsSaturated) {
  TargetServer target;
  server::ServerOptions options = WithHttp();
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

TEST(HttpSideShutdownTest, RunningProbesAnswer503AfterTheGrace) {
  TargetServer target;
  server::ServerOptions options = WithHttp();
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

TEST(HttpSidePromtoolTest, MetricsPassAfterTrafficOnBothApis) {
  if (!FindTool("promtool").has_value()) {
    GTEST_SKIP() << "promtool is not installed: apt-get install prometheus "
                    "(make test installs it)";
  }
  TargetServer target;
  TestServer server(WithHttp());
  const std::string& http = server.server().http_address();
  // Something in every family: gRPC batches ending several ways, a refused
  // request, a stream, /probe successes and failures.
  for (const v1::ReturnWhen rule :
       {v1::RETURN_WHEN_ALL_COMPLETED, v1::RETURN_WHEN_FIRST_COMPLETED}) {
    v1::ProbeBatchRequest request =
        BatchRequest({target.url("/status/200"), target.url("/status/503"),
                      target.raw_url("/delay/200")});
    request.set_return_when(rule);
    grpc::ClientContext context;
    v1::ProbeBatchResponse response;
    ASSERT_TRUE(server.stub().ProbeBatch(&context, request, &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::ProbeBatchResponse response;
    server.stub().ProbeBatch(&context, v1::ProbeBatchRequest(), &response);
  }
  {
    grpc::ClientContext context;
    auto stream = server.stub().StreamProbes(
        &context, BatchRequest({target.url("/redirect/2")}));
    v1::ProbeEvent event;
    while (stream->Read(&event)) {
    }
    ASSERT_TRUE(stream->Finish().ok());
  }
  ASSERT_EQ(HttpGet(http, absl::StrCat("/probe?target=",
                                       UrlEncode(target.url("/status/500"))))
                .status,
            200);
  ASSERT_EQ(HttpGet(http, "/probe").status, 400);

  HttpReply metrics = HttpGet(http, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body,
              HasSubstr("fanprobe_batches_total{api=\"grpc\",return_when="
                        "\"FIRST_COMPLETED\",reason=\"FIRST_COMPLETED\"} 1"));
  ASSERT_FALSE(metrics.body.empty());
  const absl::Status clean = PromtoolCheckMetrics(metrics.body);
  EXPECT_TRUE(clean.ok()) << clean << "\n--- input:\n" << metrics.body;
}

}  // namespace
}  // namespace fanprobe::testing
