// The Prometheus Operator component (deploy/kubernetes/components/
// prometheus-operator) against a real Prometheus (Debian's) and the real
// fanprobe-server, all on loopback.
//
// No Operator runs here.  The test writes out the scrape config the
// Operator generates from the shipped Probe object (prometheus-operator's
// generateProbeConfig): job "probe/<namespace>/<name>", metrics_path from
// prober.path, params module=[<module>], the static targets labelled with
// the Probe's labels and its namespace, then the relabelling
//   job -> __tmp_prometheus_job_name, job <- jobName,
//   __address__ -> __param_target -> instance, __address__ <- prober.url.
// Only what a test must change is changed: prober.url's host becomes the
// loopback server (its port checked against the shipped one), the static
// targets become loopback targets, the interval 1 s.  The ServiceMonitor's
// endpoints discovery cannot run without a cluster; its job stands in as
// the one replica, with the path and the job label the Operator would give
// it.  The PrometheusRule's groups are the rule file, as the Operator
// mounts them.
//
// Then Prometheus must have stored probe_success 1 for the good target and
// 0 for the failing one under the Probe's job and labels, loaded every rule
// and evaluated it without error, put ProbeFailing in pending for the
// failing target only, and hold a series for every metric the rules name.

#include <csignal>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "tests/support/prometheus.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"
#include "yaml-cpp/yaml.h"

namespace fanprobe::testing {
namespace {

constexpr char kComponent[] =
    FANPROBE_SOURCE_DIR "/deploy/kubernetes/components/prometheus-operator";
constexpr char kConfig[] = FANPROBE_SOURCE_DIR "/deploy/kubernetes/config";
// The namespace an overlay would put the objects in (the one the shipped
// prober.url names).
constexpr char kNamespace[] = "probes";
// Prometheus starts, scrapes every second and evaluates rules every second;
// on a loaded 2-core machine all of it is well within this.
constexpr absl::Duration kPrometheusPatience = absl::Seconds(60);
constexpr absl::Duration kPoll = absl::Milliseconds(100);

YAML::Node LoadObject(const std::string& file) {
  return YAML::LoadFile(absl::StrCat(kComponent, "/", file));
}

YAML::Node Relabel(std::vector<std::string> sources, const std::string& target,
                   std::optional<std::string> replacement = std::nullopt) {
  YAML::Node relabel;
  for (const std::string& source : sources) {
    relabel["source_labels"].push_back(source);
  }
  relabel["target_label"] = target;
  if (replacement.has_value()) relabel["replacement"] = *replacement;
  return relabel;
}

// The scrape config prometheus-operator generates for `probe` (a Probe
// with static targets) in kNamespace, with `fanprobe` for prober.url's
// host:port and `targets` for its static targets.
YAML::Node OperatorProbeJob(const YAML::Node& probe,
                            const std::string& fanprobe,
                            const std::vector<std::string>& targets) {
  const YAML::Node spec = probe["spec"];
  YAML::Node job;
  job["job_name"] = absl::StrCat("probe/", kNamespace, "/",
                                 probe["metadata"]["name"].as<std::string>());
  job["honor_timestamps"] = true;
  // The CRD's default path is /probe.
  job["metrics_path"] = spec["prober"]["path"]
                            ? spec["prober"]["path"].as<std::string>()
                            : std::string("/probe");
  if (spec["prober"]["scheme"]) job["scheme"] = spec["prober"]["scheme"];
  // spec.interval and spec.scrapeTimeout, shortened for the test.
  job["scrape_interval"] = "1s";
  job["scrape_timeout"] = "1s";
  job["params"]["module"].push_back(spec["module"].as<std::string>());

  YAML::Node static_config;
  for (const std::string& target : targets) {
    static_config["targets"].push_back(target);
  }
  YAML::Node labels =
      spec["targets"]["staticConfig"]["labels"]
          ? YAML::Clone(spec["targets"]["staticConfig"]["labels"])
          : YAML::Node(YAML::NodeType::Map);
  if (!labels["namespace"]) labels["namespace"] = kNamespace;
  static_config["labels"] = labels;
  job["static_configs"].push_back(static_config);

  YAML::Node relabels;
  relabels.push_back(Relabel({"job"}, "__tmp_prometheus_job_name"));
  if (spec["jobName"]) {
    relabels.push_back(Relabel({}, "job", spec["jobName"].as<std::string>()));
  }
  relabels.push_back(Relabel({"__address__"}, "__param_target"));
  relabels.push_back(Relabel({"__param_target"}, "instance"));
  relabels.push_back(Relabel({}, "__address__", fanprobe));
  job["relabel_configs"] = relabels;
  return job;
}

// The ServiceMonitor's job with its one replica at `fanprobe`: the path of
// its endpoint, and the job the Operator takes from the Service's label
// named by jobLabel.
YAML::Node ServiceMonitorJob(const YAML::Node& monitor,
                             const YAML::Node& service,
                             const std::string& fanprobe) {
  const YAML::Node spec = monitor["spec"];
  const YAML::Node endpoint = spec["endpoints"][0];
  YAML::Node job;
  job["job_name"] =
      absl::StrCat("serviceMonitor/", kNamespace, "/",
                   monitor["metadata"]["name"].as<std::string>(), "/0");
  job["metrics_path"] = endpoint["path"].as<std::string>();
  job["scrape_interval"] = "1s";
  job["scrape_timeout"] = "1s";
  job["static_configs"][0]["targets"].push_back(fanprobe);
  const std::string job_label = spec["jobLabel"].as<std::string>();
  job["relabel_configs"].push_back(Relabel(
      {}, "job", service["metadata"]["labels"][job_label].as<std::string>()));
  return job;
}

// The metric names a PromQL expression selects: its identifiers, less
// strings, label matchers, functions, keywords and durations.
std::set<std::string> MetricNames(std::string expr) {
  RE2::GlobalReplace(&expr, R"("[^"]*")", "");
  RE2::GlobalReplace(&expr, R"(\{[^}]*\})", "");
  RE2::GlobalReplace(&expr, R"(\[[^\]]*\])", "");
  RE2::GlobalReplace(&expr, R"(\b(by|without|on|ignoring)\s*\([^)]*\))", "");
  static const std::set<std::string> kNotMetrics = {
      "and", "or", "unless", "sum", "rate", "histogram_quantile", "time"};
  std::set<std::string> names;
  re2::StringPiece input(expr);
  std::string name;
  while (RE2::FindAndConsume(&input, R"(([a-zA-Z_:][a-zA-Z0-9_:]*))", &name)) {
    if (!kNotMetrics.contains(name)) names.insert(name);
  }
  return names;
}

TEST(MetricNamesTest, KeepsMetricsOnly) {
  EXPECT_THAT(
      MetricNames(R"(sum by (instance, api) (rate(x_total{reason=~"A|B"}[5m]))
                     > 0 and y_seconds_bucket unless on (job) up{job="a_b"})"),
      ::testing::ElementsAre("up", "x_total", "y_seconds_bucket"));
}

// fanprobe-server with the Kubernetes flags file and modules, on loopback
// ports; its log goes to `dir`/server.log.
class FanprobeServer {
 public:
  explicit FanprobeServer(const TempDir& dir)
      : process_({FANPROBE_SERVER_BINARY,
                  absl::StrCat("--flagfile=", kConfig, "/server.flags"),
                  // The pod's addresses and mount, moved to this machine.
                  "--grpc_address=127.0.0.1:0", "--http_address=127.0.0.1:0",
                  absl::StrCat("--modules_file=", kConfig, "/modules.yaml"),
                  "--shutdown_grace=1s"},
                 SubprocessOptions{.output_file = dir.File("server.log")}) {
    WaitUntil(
        [&] {
          return RE2::PartialMatch(
                     process_.OutputFile(),
                     R"re("event":"listening".*"http_address":"([^"]+)")re",
                     &http_address_) ||
                 process_.TryWait(absl::ZeroDuration()).has_value();
        },
        kPrometheusPatience, kPoll);
  }
  ~FanprobeServer() {
    process_.Signal(SIGTERM);
    process_.Wait(kPrometheusPatience);
  }

  // host:port of /metrics and /probe; empty if it did not start.
  const std::string& http_address() const { return http_address_; }
  std::string Log() const { return process_.OutputFile(); }

 private:
  Subprocess process_;
  std::string http_address_;
};

TEST(PrometheusOperatorTest,
     ShippedProbeAsTheOperatorScrapesItSeesProbeSuccess) {
  std::optional<std::string> prometheus_binary = FindTool("prometheus");
  if (!prometheus_binary.has_value()) {
    GTEST_SKIP() << "prometheus is not installed: apt-get install prometheus "
                    "(make test installs it)";
  }
  TempDir dir;
  TargetServer target;
  const std::string good = target.url("/status/200");
  const std::string failing = target.url("/status/503");
  FanprobeServer fanprobe(dir);
  ASSERT_FALSE(fanprobe.http_address().empty()) << fanprobe.Log();

  const YAML::Node probe = LoadObject("probe.yaml");
  const YAML::Node monitor = LoadObject("servicemonitor.yaml");
  const YAML::Node rule = LoadObject("prometheusrule.yaml");
  const YAML::Node service = YAML::LoadFile(
      FANPROBE_SOURCE_DIR "/deploy/kubernetes/service-headless.yaml");
  ASSERT_EQ(probe["kind"].as<std::string>(), "Probe");
  // prober.url is <Service>.<namespace>.svc:<port>: the port is the one
  // the server's flags file serves /probe on, and the host is what the
  // test moves to loopback.
  const std::vector<std::string> prober =
      absl::StrSplit(probe["spec"]["prober"]["url"].as<std::string>(), ':');
  ASSERT_EQ(prober.size(), 2u);
  EXPECT_EQ(prober[0], absl::StrCat("fanprobe.", kNamespace, ".svc"));
  EXPECT_EQ(prober[1], "9116");

  YAML::Node config;
  config["global"]["scrape_interval"] = "1s";
  config["global"]["scrape_timeout"] = "1s";
  config["global"]["evaluation_interval"] = "1s";
  config["rule_files"].push_back(dir.File("fanprobe.rules.yml"));
  config["scrape_configs"].push_back(
      OperatorProbeJob(probe, fanprobe.http_address(), {good, failing}));
  config["scrape_configs"].push_back(
      ServiceMonitorJob(monitor, service, fanprobe.http_address()));
  YAML::Emitter config_text;
  config_text << config;
  dir.Write("prometheus.yml", config_text.c_str());
  YAML::Node rule_file;
  rule_file["groups"] = rule["spec"]["groups"];
  YAML::Emitter rule_text;
  rule_text << rule_file;
  dir.Write("fanprobe.rules.yml", rule_text.c_str());

  std::unique_ptr<Prometheus> prometheus =
      Prometheus::Start(*prometheus_binary, dir, kPrometheusPatience);
  ASSERT_NE(prometheus, nullptr);

  // probe_success under the Probe's job, one series per target, labelled
  // as the Operator labels them.
  const std::string job = probe["spec"]["jobName"].as<std::string>();
  std::vector<Prometheus::Series> success;
  ASSERT_TRUE(WaitUntil(
      [&] {
        success =
            prometheus->Query(absl::StrCat("probe_success{job=\"", job, "\"}"))
                .value_or(success);
        return success.size() == 2;
      },
      kPrometheusPatience, kPoll))
      << success.size() << " series\n"
      << prometheus->Log() << "\n"
      << fanprobe.Log();
  const std::string team =
      probe["spec"]["targets"]["staticConfig"]["labels"]["team"]
          .as<std::string>();
  EXPECT_EQ(Prometheus::ValueWith(success, {{"instance", good},
                                            {"namespace", kNamespace},
                                            {"team", team}}),
            1);
  EXPECT_EQ(Prometheus::ValueWith(success, {{"instance", failing}}), 0);
  // And fanprobe's own metrics, under the job the rules expect.
  std::vector<Prometheus::Series> up;
  ASSERT_TRUE(WaitUntil(
      [&] {
        up = prometheus->Query("up{job=\"fanprobe\"}").value_or(up);
        return up.size() == 1;
      },
      kPrometheusPatience, kPoll))
      << prometheus->Log();
  EXPECT_EQ(up[0].value, 1);

  // Every rule loaded and, once evaluated, without error.
  size_t shipped_rules = 0;
  std::set<std::string> metrics;
  for (const YAML::Node& group : rule["spec"]["groups"]) {
    for (const YAML::Node& r : group["rules"]) {
      ++shipped_rules;
      for (const std::string& name : MetricNames(r["expr"].as<std::string>())) {
        metrics.insert(name);
      }
    }
  }
  std::vector<std::string> unhealthy;
  size_t evaluated = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::optional<google::protobuf::Value> rules =
            prometheus->Data("/api/v1/rules");
        if (!rules.has_value()) return false;
        unhealthy.clear();
        evaluated = 0;
        for (const auto& group : rules->struct_value()
                                     .fields()
                                     .at("groups")
                                     .list_value()
                                     .values()) {
          for (const auto& r : group.struct_value()
                                   .fields()
                                   .at("rules")
                                   .list_value()
                                   .values()) {
            const auto& fields = r.struct_value().fields();
            const std::string health = fields.at("health").string_value();
            if (health == "ok") {
              ++evaluated;
            } else if (health != "unknown") {
              unhealthy.push_back(
                  absl::StrCat(fields.at("name").string_value(), ": ",
                               fields.contains("lastError")
                                   ? fields.at("lastError").string_value()
                                   : health));
            }
          }
        }
        return !unhealthy.empty() || evaluated == shipped_rules;
      },
      kPrometheusPatience, kPoll))
      << evaluated << " of " << shipped_rules << " rules evaluated\n"
      << prometheus->Log();
  EXPECT_THAT(unhealthy, ::testing::IsEmpty());

  // ProbeFailing is pending (for: 5m) for the failing target only.
  std::vector<std::string> pending;
  EXPECT_TRUE(WaitUntil(
      [&] {
        std::optional<google::protobuf::Value> alerts =
            prometheus->Data("/api/v1/alerts");
        if (!alerts.has_value()) return false;
        pending.clear();
        for (const auto& alert : alerts->struct_value()
                                     .fields()
                                     .at("alerts")
                                     .list_value()
                                     .values()) {
          const auto& labels = alert.struct_value()
                                   .fields()
                                   .at("labels")
                                   .struct_value()
                                   .fields();
          pending.push_back(absl::StrCat(
              labels.at("alertname").string_value(), " ",
              labels.contains("instance") ? labels.at("instance").string_value()
                                          : "",
              " ", alert.struct_value().fields().at("state").string_value()));
        }
        return !pending.empty();
      },
      kPrometheusPatience, kPoll));
  EXPECT_THAT(pending, ::testing::ElementsAre(
                           absl::StrCat("ProbeFailing ", failing, " pending")));

  // The rules name only series fanprobe exports: each has one in
  // Prometheus now -- except the certificate expiry, which /probe exports
  // for TLS targets only (tests/monitoring's blackbox_exporter_test compares
  // it with blackbox_exporter's).
  metrics.erase("probe_ssl_earliest_cert_expiry");
  ASSERT_THAT(metrics, ::testing::Contains("fanprobe_probes_queued"));
  for (const std::string& name : metrics) {
    std::optional<std::vector<Prometheus::Series>> found =
        prometheus->Query(absl::StrCat("count({__name__=\"", name, "\"})"));
    ASSERT_TRUE(found.has_value()) << name;
    EXPECT_EQ(found->size(), 1u) << name << " is not exported";
  }
}

}  // namespace
}  // namespace fanprobe::testing
