// promtool (Debian's prometheus package) on what fanprobe serves and ships:
// `promtool check metrics` (the text format plus Prometheus' naming lint) on
// /metrics after traffic on both APIs and on /probe answers, and `promtool
// check config` / `check rules` / `test rules` on deploy/prometheus/.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/server.h"
#include "tests/monitoring/tools.h"
#include "tests/service/test_util.h"
#include "tests/support/target_server.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kToolTimeout = absl::Seconds(60);

class PromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::string> promtool = FindTool("promtool");
    if (!promtool.has_value()) {
      GTEST_SKIP() << "promtool is not installed: apt-get install prometheus "
                      "(make test installs it)";
    }
    promtool_ = *promtool;
  }

  // promtool check metrics on `text`: exit 0 and nothing to say.
  void ExpectCleanMetrics(const std::string& text) {
    ASSERT_FALSE(text.empty());
    RunResult result =
        RunCommand({promtool_, "check", "metrics"}, text, kToolTimeout);
    EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input:\n" << text;
    EXPECT_EQ(result.output, "") << text;
  }

  std::string promtool_;
};

service::ServerOptions WithHttp() {
  service::ServerOptions options;
  options.http.address = "127.0.0.1:0";
  return options;
}

TEST_F(PromtoolTest, MetricsPassAfterTrafficOnBothApis) {
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
  ExpectCleanMetrics(metrics.body);
}

TEST_F(PromtoolTest, ProbeAnswersPass) {
  TargetServer target;
  TestServer server(WithHttp());
  const std::string& http = server.server().http_address();
  RefusedPort refused;
  const std::string one = absl::StrCat("/probe?module=http_2xx&target=",
                                       UrlEncode(target.url("/redirect/1")));
  const std::string several =
      absl::StrCat(one, "&target=", UrlEncode(target.url("/status/404")),
                   "&target=", UrlEncode(refused.url("/")));
  for (const std::string& path : {one, several}) {
    HttpReply reply = HttpGet(http, path);
    ASSERT_EQ(reply.status, 200) << reply.body;
    ExpectCleanMetrics(reply.body);
  }
}

TEST_F(PromtoolTest, ShippedPrometheusConfigAndRulesAreValid) {
  const std::string dir = FANPROBE_SOURCE_DIR "/deploy/prometheus";
  RunResult config =
      RunCommand({promtool_, "check", "config", dir + "/prometheus.yml"}, "",
                 kToolTimeout);
  EXPECT_EQ(config.exit_code, 0) << config.output;
  EXPECT_THAT(config.output, HasSubstr("SUCCESS: 1 rule files found"));
  RunResult rules =
      RunCommand({promtool_, "check", "rules", dir + "/rules/fanprobe.yml"}, "",
                 kToolTimeout);
  EXPECT_EQ(rules.exit_code, 0) << rules.output;
}

TEST_F(PromtoolTest, AlertsFireOnWhatTheyDescribe) {
  TempDir dir;
  const std::string rules =
      FANPROBE_SOURCE_DIR "/deploy/prometheus/rules/fanprobe.yml";
  // A probe failing for 6 minutes and a saturated fanprobe for 11.
  const std::string test =
      dir.Write("fanprobe_test.yml", absl::StrCat(R"(
rule_files: [)",
                                                  rules, R"(]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'probe_success{job="fanprobe_http_2xx",instance="https://a/"}'
        values: '1 0x6'
      - series: 'probe_success{job="fanprobe_http_2xx",instance="https://b/"}'
        values: '1x6'
      - series: 'fanprobe_probes_in_flight{instance="f:9116"}'
        values: '10x11'
      - series: 'fanprobe_probes_max_in_flight{instance="f:9116"}'
        values: '10x11'
      - series: 'fanprobe_probes_queued{instance="f:9116"}'
        values: '5x11'
    alert_rule_test:
      - eval_time: 6m
        alertname: ProbeFailing
        exp_alerts:
          - exp_labels:
              severity: page
              job: fanprobe_http_2xx
              instance: https://a/
            exp_annotations:
              summary: https://a/ fails its probe
              description: >-
                probe_fanprobe_outcome_info for the same series says why
                (UNEXPECTED_STATUS, CONNECT_ERROR, TIMEOUT, ...); /probe with
                debug=true shows the error text.
      - eval_time: 11m
        alertname: FanprobeSaturated
        exp_alerts:
          - exp_labels:
              severity: ticket
              instance: f:9116
            exp_annotations:
              summary: >-
                fanprobe f:9116 has had probes queued for 10m; add replicas or
                raise --max_in_flight
)"));
  RunResult result =
      RunCommand({promtool_, "test", "rules", test}, "", kToolTimeout);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("SUCCESS"));
}

}  // namespace
}  // namespace fanprobe::testing
