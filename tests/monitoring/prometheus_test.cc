// A real Prometheus (Debian's prometheus package) with the scrape config
// shipped in deploy/prometheus/, pointed at fanprobe's HTTP side
// (in-process, http_side.h) probing
// loopback targets.  What Prometheus stored, asked through its own query
// API, must say probe_success 1 for the good target and 0 for the failing
// one -- for the blackbox-style job (one target per scrape) and for the
// several-targets-in-one-scrape job -- and it must have ingested /metrics.
//
// The config is the shipped one with only what a test must change: the
// fanprobe address, the targets, and a 1 s scrape interval.

#include "tests/support/prometheus.h"

#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/wait.h"
#include "yaml-cpp/yaml.h"

namespace fanprobe::testing {
namespace {

constexpr char kShippedAddress[] = "127.0.0.1:9116";
// Prometheus starts, scrapes every second and answers queries well within
// this on a loaded 2-core machine.
constexpr absl::Duration kPrometheusPatience = absl::Seconds(45);
// How often it is asked meanwhile.
constexpr absl::Duration kPoll = absl::Milliseconds(50);

// deploy/prometheus/prometheus.yml with fanprobe at `fanprobe`, the
// blackbox-style job's targets in targets/http_2xx.yml, the several-target
// job probing `multi`, and a 1 s scrape interval.
void WriteConfig(const TempDir& dir, const std::string& fanprobe,
                 const std::vector<std::string>& one_per_scrape,
                 const std::vector<std::string>& multi) {
  const std::string shipped = FANPROBE_SOURCE_DIR "/deploy/prometheus";
  YAML::Node config = YAML::LoadFile(shipped + "/prometheus.yml");
  config["global"]["scrape_interval"] = "1s";
  config["global"]["scrape_timeout"] = "1s";
  config["global"]["evaluation_interval"] = "1s";
  int replaced = 0;
  for (YAML::Node job : config["scrape_configs"]) {
    for (YAML::Node static_config : job["static_configs"]) {
      for (YAML::Node target : static_config["targets"]) {
        if (target.as<std::string>() == kShippedAddress) {
          target = fanprobe;
          ++replaced;
        }
      }
    }
    for (YAML::Node relabel : job["relabel_configs"]) {
      if (relabel["replacement"] &&
          relabel["replacement"].as<std::string>() == kShippedAddress) {
        relabel["replacement"] = fanprobe;
        ++replaced;
      }
    }
    if (job["job_name"].as<std::string>() == "fanprobe_multi") {
      YAML::Node targets(YAML::NodeType::Sequence);
      for (const std::string& url : multi) targets.push_back(url);
      job["params"]["target"] = targets;
    }
  }
  // /metrics, the blackbox-style job and the several-target job.
  ASSERT_EQ(replaced, 3) << "deploy/prometheus/prometheus.yml changed shape";
  YAML::Emitter out;
  out << config;
  dir.Write("prometheus.yml", out.c_str());

  YAML::Node group;
  for (const std::string& url : one_per_scrape) group["targets"].push_back(url);
  YAML::Node groups(YAML::NodeType::Sequence);
  groups.push_back(group);
  YAML::Emitter targets;
  targets << groups;
  dir.Write("targets/http_2xx.yml", targets.c_str());

  std::ifstream rules(shipped + "/rules/fanprobe.yml");
  std::stringstream text;
  text << rules.rdbuf();
  dir.Write("rules/fanprobe.yml", text.str());
}

TEST(PrometheusTest, ShippedScrapeConfigSeesProbeSuccessThroughFanprobe) {
  std::optional<std::string> prometheus_binary = FindTool("prometheus");
  if (!prometheus_binary.has_value()) {
    GTEST_SKIP() << "prometheus is not installed: apt-get install prometheus "
                    "(make test installs it)";
  }
  TargetServer target;
  HttpSide fanprobe;
  const std::string good = target.url("/status/200");
  const std::string failing = target.url("/status/503");

  TempDir dir;
  WriteConfig(dir, fanprobe.address(), {good, failing}, {good, failing});
  std::unique_ptr<Prometheus> prometheus =
      Prometheus::Start(*prometheus_binary, dir, kPrometheusPatience);
  ASSERT_NE(prometheus, nullptr);

  // Two blackbox-style series (instance = the target) and two from the
  // several-target scrape (target = the target).
  std::vector<Prometheus::Series> success;
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::optional<std::vector<Prometheus::Series>> result =
            prometheus->Query("probe_success");
        if (result.has_value()) success = *result;
        return success.size() == 4;
      },
      kPrometheusPatience, kPoll))
      << success.size() << " probe_success series\n"
      << prometheus->Log();
  EXPECT_EQ(Prometheus::ValueWith(
                success, {{"job", "fanprobe_http_2xx"}, {"instance", good}}),
            1);
  EXPECT_EQ(Prometheus::ValueWith(
                success, {{"job", "fanprobe_http_2xx"}, {"instance", failing}}),
            0);
  EXPECT_EQ(Prometheus::ValueWith(
                success, {{"job", "fanprobe_multi"}, {"target", good}}),
            1);
  EXPECT_EQ(Prometheus::ValueWith(
                success, {{"job", "fanprobe_multi"}, {"target", failing}}),
            0);

  std::optional<std::vector<Prometheus::Series>> status =
      prometheus->Query("probe_http_status_code{job=\"fanprobe_http_2xx\"}");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(Prometheus::ValueWith(*status, {{"instance", failing}}), 503);
  std::optional<std::vector<Prometheus::Series>> outcome = prometheus->Query(
      "probe_fanprobe_outcome_info{job=\"fanprobe_http_2xx\"}");
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(Prometheus::ValueWith(*outcome, {{"instance", failing},
                                             {"outcome", "UNEXPECTED_STATUS"}}),
            1);

  // Prometheus took /metrics too, and (once a scrape of /metrics follows a
  // /probe) it counts the /probe batches.
  std::vector<Prometheus::Series> up;
  EXPECT_TRUE(WaitUntil(
      [&] {
        up = prometheus->Query("up{job=\"fanprobe\"}").value_or(up);
        return !up.empty();
      },
      kPrometheusPatience, kPoll));
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].value, 1);
  double batches = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::optional<std::vector<Prometheus::Series>> result =
            prometheus->Query(
                "fanprobe_batches_total{api=\"http\",reason=\"ALL_COMPLETED\","
                "return_when=\"ALL_COMPLETED\"}");
        if (result.has_value() && result->size() == 1) {
          batches = (*result)[0].value;
        }
        return batches >= 1;
      },
      kPrometheusPatience, kPoll))
      << batches;
}

// Issue 13: a real Prometheus scrapes the HTTP side over mutual TLS with a
// tls_config; a job without a client certificate is refused (up 0).
TEST(PrometheusTest, ScrapesTheHttpSideOverMutualTls) {
  std::optional<std::string> prometheus_binary = FindTool("prometheus");
  if (!prometheus_binary.has_value()) {
    GTEST_SKIP() << "prometheus is not installed: apt-get install prometheus "
                    "(make test installs it)";
  }
  TargetServer target;
  TestCa ca("fanprobe http test CA");
  const KeyAndCert server_cert = ca.Issue("localhost", {.server = true});
  const KeyAndCert client = ca.Issue("prometheus", {.server = false});
  HttpSide fanprobe({.tls_cert_pem = server_cert.cert_pem,
                     .tls_key_pem = server_cert.key_pem,
                     .client_ca_pem = ca.cert_pem()});

  TempDir dir;
  const std::string ca_file = dir.Write("ca.pem", ca.cert_pem());
  const std::string cert_file = dir.Write("client.crt", client.cert_pem);
  const std::string key_file = dir.Write("client.key", client.key_pem);
  YAML::Node config;
  config["global"]["scrape_interval"] = "1s";
  config["global"]["scrape_timeout"] = "1s";
  YAML::Node with_cert;
  with_cert["job_name"] = "fanprobe_tls";
  with_cert["scheme"] = "https";
  with_cert["metrics_path"] = "/probe";
  with_cert["params"]["target"].push_back(target.url("/status/200"));
  with_cert["tls_config"]["ca_file"] = ca_file;
  with_cert["tls_config"]["cert_file"] = cert_file;
  with_cert["tls_config"]["key_file"] = key_file;
  with_cert["static_configs"][0]["targets"].push_back(fanprobe.address());
  YAML::Node without_cert;
  without_cert["job_name"] = "fanprobe_no_cert";
  without_cert["scheme"] = "https";
  without_cert["tls_config"]["ca_file"] = ca_file;
  without_cert["static_configs"][0]["targets"].push_back(fanprobe.address());
  config["scrape_configs"].push_back(with_cert);
  config["scrape_configs"].push_back(without_cert);
  YAML::Emitter out;
  out << config;
  dir.Write("prometheus.yml", out.c_str());

  std::unique_ptr<Prometheus> prometheus =
      Prometheus::Start(*prometheus_binary, dir, kPrometheusPatience);
  ASSERT_NE(prometheus, nullptr);
  std::optional<double> success, refused;
  EXPECT_TRUE(WaitUntil(
      [&] {
        success = Prometheus::ValueWith(
            prometheus->Query("probe_success")
                .value_or(std::vector<Prometheus::Series>()),
            {{"job", "fanprobe_tls"}});
        refused = Prometheus::ValueWith(
            prometheus->Query("up").value_or(std::vector<Prometheus::Series>()),
            {{"job", "fanprobe_no_cert"}});
        return success.has_value() && refused.has_value();
      },
      kPrometheusPatience, kPoll))
      << prometheus->Log();
  EXPECT_EQ(success, 1);
  EXPECT_EQ(refused, 0);
}

}  // namespace
}  // namespace fanprobe::testing
