// promtool (Debian's prometheus package) on what fanprobe serves and ships:
// `promtool check metrics` (the text format plus Prometheus' naming lint) on
// /probe answers, and `promtool check config` / `check rules` / `test
// rules` on deploy/prometheus/.  /metrics after traffic on both APIs is
// checked in tests/server/http_side_test.cc.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"

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
    const absl::Status clean = PromtoolCheckMetrics(text);
    EXPECT_TRUE(clean.ok()) << clean << "\n--- input:\n" << text;
  }

  std::string promtool_;
};

TEST_F(PromtoolTest, ProbeAnswersPass) {
  TargetServer target;
  HttpSide side;
  const std::string& http = side.address();
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
  ProcessRun config = RunToExit(
      {promtool_, "check", "config", dir + "/prometheus.yml"}, kToolTimeout);
  EXPECT_EQ(config.code, 0) << config.out + config.err;
  EXPECT_THAT(config.out + config.err,
              HasSubstr("SUCCESS: 1 rule files found"));
  ProcessRun rules = RunToExit(
      {promtool_, "check", "rules", dir + "/rules/fanprobe.yml"}, kToolTimeout);
  EXPECT_EQ(rules.code, 0) << rules.out + rules.err;
}

TEST_F(PromtoolTest, AlertsFireOnWhatTheyDescribe) {
  TempDir dir;
  const std::string rules =
      FANPROBE_SOURCE_DIR "/deploy/prometheus/rules/fanprobe.yml";
  // A probe failing for 6 minutes and a saturated fanprobe for 11; a /probe
  // scrape failing for 6 minutes; a certificate 7 days from expiry for an
  // hour (and one 100 days away); 90% of the descriptors for 11 minutes.
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
      - series: 'up{job="fanprobe_http_2xx",instance="https://a/"}'
        values: '1 0x6'
      - series: 'up{job="fanprobe_http_2xx",instance="https://b/"}'
        values: '1x6'
      - series: 'probe_ssl_earliest_cert_expiry{job="fanprobe_http_2xx",instance="https://a/"}'
        values: '604800x70'
      - series: 'probe_ssl_earliest_cert_expiry{job="fanprobe_http_2xx",instance="https://b/"}'
        values: '8640000x70'
      - series: 'process_open_fds{job="fanprobe",instance="f:9116"}'
        values: '900x11'
      - series: 'process_max_fds{job="fanprobe",instance="f:9116"}'
        values: '1000x11'
      - series: 'fanprobe_config_last_reload_successful{job="fanprobe",instance="f:9116"}'
        values: '1 0x6'
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
      - eval_time: 6m
        alertname: ProbeNotAnswered
        exp_alerts:
          - exp_labels:
              severity: page
              job: fanprobe_http_2xx
              instance: https://a/
            exp_annotations:
              summary: >-
                fanprobe does not answer fanprobe_http_2xx's /probe for
                https://a/
              description: >-
                Prometheus got no /probe answer from fanprobe (down,
                unreachable, a token it lacks, or slower than the scrape
                timeout): the target's own state is unknown.
      - eval_time: 59m
        alertname: ProbeCertificateExpiresSoon
        exp_alerts: []
      - eval_time: 61m
        alertname: ProbeCertificateExpiresSoon
        exp_alerts:
          - exp_labels:
              severity: ticket
              job: fanprobe_http_2xx
              instance: https://a/
            exp_annotations:
              summary: https://a/'s TLS certificate expires in 6d 22h 59m 0s
      - eval_time: 11m
        alertname: FanprobeFileDescriptorsNearLimit
        exp_alerts:
          - exp_labels:
              severity: ticket
              job: fanprobe
              instance: f:9116
            exp_annotations:
              summary: fanprobe f:9116 uses 90% of its descriptors
      - eval_time: 5m
        alertname: FanprobeModulesReloadFailed
        exp_alerts: []
      - eval_time: 7m
        alertname: FanprobeModulesReloadFailed
        exp_alerts:
          - exp_labels:
              severity: ticket
              job: fanprobe
              instance: f:9116
            exp_annotations:
              summary: >-
                fanprobe f:9116 cannot reload its modules file; it still uses
                the last one that loaded
)"));
  ProcessRun result =
      RunToExit({promtool_, "test", "rules", test}, kToolTimeout);
  EXPECT_EQ(result.code, 0) << result.out + result.err;
  EXPECT_THAT(result.out + result.err, HasSubstr("SUCCESS"));
}

}  // namespace
}  // namespace fanprobe::testing
