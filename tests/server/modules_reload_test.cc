// fanprobe-server's modules file over its life, on the binary:
// --config.check (every problem, the engine's included, exit 0/1, nothing
// served), a start with Debian's own blackbox_exporter files, SIGHUP and
// POST /-/reload with a good and a bad file (the bad one, or one with a
// module the engine refuses, keeps the modules in use), and the reload
// gauges and the unsupported-option counter on /metrics.

#include <signal.h>

#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDebianConfig[] = "/etc/prometheus/blackbox.yml";
constexpr char kDebianExample[] =
    "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml";

bool DebianFilesMissing() {
  return !std::ifstream(kDebianConfig) || !std::ifstream(kDebianExample);
}

TEST(ConfigCheckTest, ABadFileIsExit1WithEveryProblemAndNothingServed) {
  TempDir dir;
  const std::string path = dir.Write("modules.yml", R"(modules:
  a:
    prober: http
    http:
      foo: 1
      tls_config: {bar: true}
  b:
    prober: http
    timeout: soon
)");
  const ProcessRun run = RunToExit(
      {FANPROBE_SERVER_BINARY, "--config.check", "--modules_file=" + path,
       "--http_address=127.0.0.1:0", "--grpc_address=127.0.0.1:0"},
      absl::Seconds(30));
  EXPECT_EQ(run.code, 1) << run.out << run.err;
  EXPECT_THAT(run.err, HasSubstr(path + ": 3 problems:"));
  EXPECT_THAT(run.err, HasSubstr("modules.a.http.foo: unknown key"));
  EXPECT_THAT(run.err, HasSubstr("modules.a.http.tls_config.bar: unknown key"));
  EXPECT_THAT(run.err, HasSubstr("modules.b.timeout: not a duration"));
  EXPECT_THAT(run.out + run.err, Not(HasSubstr("listening")));
}

TEST(ConfigCheckTest, ModulesTheEngineRefusesAreExit1LikeAtStart) {
  // Both parse; the engine refuses both, with the limits the flags give: a
  // file --config.check passes is one the server starts with.
  TempDir dir;
  const std::string path = dir.Write(
      "modules.yml",
      absl::StrCat("modules:\n  inject:\n    prober: http\n    http:\n"
                   "      headers:\n        X-A: \"a\\r\\nX-Injected: yes\"\n"
                   "  big:\n    prober: http\n    http:\n      headers:\n"
                   "        X-Big: ",
                   std::string(2000, 'b'), "\n  fine:\n    prober: http\n"));
  const ProcessRun run =
      RunToExit({FANPROBE_SERVER_BINARY, "--config.check",
                 "--modules_file=" + path, "--max_request_header_bytes=1024"},
                absl::Seconds(30));
  EXPECT_EQ(run.code, 1) << run.out << run.err;
  EXPECT_THAT(run.err, HasSubstr("fanprobe-server: --modules_file: " + path +
                                 ": 2 modules the engine refuses:"));
  EXPECT_THAT(run.err, HasSubstr("module \"inject\": headers[0].value"));
  EXPECT_THAT(run.err, HasSubstr("module \"big\": "));
  EXPECT_THAT(run.err, Not(HasSubstr("module \"fine\"")));

  // With the server's default limits only the injection is refused.
  const ProcessRun defaults = RunToExit(
      {FANPROBE_SERVER_BINARY, "--config.check", "--modules_file=" + path},
      absl::Seconds(30));
  EXPECT_EQ(defaults.code, 1) << defaults.out << defaults.err;
  EXPECT_THAT(defaults.err, HasSubstr("module \"inject\": headers[0].value"));
  EXPECT_THAT(defaults.err, Not(HasSubstr("module \"big\"")));
}

TEST(ConfigCheckTest, DebiansFilesPassWithAWarningPerOtherProber) {
  if (DebianFilesMissing()) {
    GTEST_SKIP() << "apt-get install prometheus-blackbox-exporter";
  }
  // blackbox_exporter's own spelling of both flags.
  const ProcessRun config =
      RunToExit({FANPROBE_SERVER_BINARY, "--config.check",
                 std::string("--config.file=") + kDebianConfig},
                absl::Seconds(30));
  EXPECT_EQ(config.code, 0) << config.out << config.err;
  EXPECT_THAT(
      config.out,
      HasSubstr("modules.tcp_connect: prober \"tcp\" is not supported"));
  EXPECT_THAT(config.out, HasSubstr("modules.icmp: prober \"icmp\""));
  EXPECT_THAT(config.out, HasSubstr(std::string(kDebianConfig) + ": OK: "));

  const ProcessRun example =
      RunToExit({FANPROBE_SERVER_BINARY, "--config_check",
                 std::string("--modules_file=") + kDebianExample},
                absl::Seconds(30));
  EXPECT_EQ(example.code, 0) << example.out << example.err;
  EXPECT_THAT(example.out,
              HasSubstr("modules.dns_soa: prober \"dns\" is not supported"));
  // Its proxy module is honoured; what cannot be (a CA file this machine
  // lacks) is listed, not refused.
  EXPECT_THAT(example.out, Not(HasSubstr("http_with_proxy")));
  EXPECT_THAT(example.out,
              HasSubstr("modules.http_custom_ca_example.http.tls_config."
                        "ca_file: cannot read"));
  EXPECT_THAT(example.out, HasSubstr("(its probes fail)"));
}

class ServerModulesTest : public ::testing::Test {
 protected:
  // Starts the binary with `modules` as its file; returns the HTTP address.
  std::string Start(const std::string& modules) {
    server_.emplace(std::vector<std::string>{
        FANPROBE_SERVER_BINARY, "--grpc_address=127.0.0.1:0",
        "--http_address=127.0.0.1:0", "--workers=1",
        "--modules_file=" + modules});
    const std::optional<std::string> listening = server_->WaitForStderrLine(
        [](absl::string_view line) {
          return absl::StrContains(line, R"("event":"listening")");
        },
        kPatience);
    EXPECT_TRUE(listening.has_value()) << server_->Stderr();
    std::string address;
    if (listening.has_value()) {
      RE2::PartialMatch(*listening, R"re("http_address":"([^"]+)")re",
                        &address);
    }
    return address;
  }

  bool WaitForEvent(absl::string_view event) {
    const std::string wanted = absl::StrCat(R"("event":")", event, "\"");
    return server_
        ->WaitForStderrLine(
            [&](absl::string_view line) {
              return absl::StrContains(line, wanted);
            },
            kPatience)
        .has_value();
  }

  std::optional<double> Gauge(const std::string& address,
                              const std::string& name) {
    return ParseOrFail(HttpGet(address, "/metrics").body).Value(name);
  }

  TempDir dir_;
  TargetServer target_;
  std::optional<Subprocess> server_;
};

TEST_F(ServerModulesTest, SighupSwapsTheModulesAndABadFileKeepsThem) {
  const std::string path =
      dir_.Write("modules.yml", "modules:\n  first:\n    prober: http\n");
  const std::string http = Start(path);
  ASSERT_FALSE(http.empty());
  const auto status_of = [&](const std::string& module) {
    return HttpGet(http, ProbePath({target_.url("/status/200")}, module))
        .status;
  };
  EXPECT_EQ(status_of("first"), 200);
  EXPECT_EQ(Gauge(http, "fanprobe_config_last_reload_successful"), 1);
  const std::optional<double> loaded_at =
      Gauge(http, "fanprobe_config_last_reload_success_timestamp_seconds");
  ASSERT_TRUE(loaded_at.has_value());
  EXPECT_GT(*loaded_at, 1.6e9);

  dir_.Write("modules.yml", "modules:\n  second:\n    prober: http\n");
  server_->Signal(SIGHUP);
  ASSERT_TRUE(WaitForEvent("modules_reloaded")) << server_->Stderr();
  EXPECT_EQ(status_of("second"), 200);
  EXPECT_EQ(status_of("first"), 400);
  EXPECT_EQ(Gauge(http, "fanprobe_config_last_reload_successful"), 1);

  dir_.Write("modules.yml",
             "modules:\n  third:\n    prober: http\n    http: {nope: 1}\n");
  server_->Signal(SIGHUP);
  ASSERT_TRUE(WaitForEvent("modules_reload_failed")) << server_->Stderr();
  EXPECT_THAT(server_->Stderr(), HasSubstr("modules.third.http.nope"));
  EXPECT_EQ(status_of("second"), 200);  // the old modules serve on
  EXPECT_EQ(status_of("third"), 400);
  EXPECT_EQ(Gauge(http, "fanprobe_config_last_reload_successful"), 0);

  // The same file made good again, by POST this time.
  dir_.Write("modules.yml", "modules:\n  third:\n    prober: http\n");
  EXPECT_EQ(HttpPost(http, "/-/reload").status, 200);
  EXPECT_EQ(status_of("third"), 200);
  EXPECT_EQ(Gauge(http, "fanprobe_config_last_reload_successful"), 1);

  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(kPatience).code, 0) << server_->Stderr();
}

TEST_F(ServerModulesTest, ASighupWithAModuleTheEngineRefusesKeepsTheModules) {
  // The file parses, but the engine would fail every probe of `inject`:
  // refused as at start, the modules in use serve on.
  const std::string path =
      dir_.Write("modules.yml", "modules:\n  first:\n    prober: http\n");
  const std::string http = Start(path);
  ASSERT_FALSE(http.empty());
  dir_.Write("modules.yml",
             "modules:\n  second:\n    prober: http\n"
             "  inject:\n    prober: http\n    http:\n      headers:\n"
             "        X-A: \"a\\nX-Injected: yes\"\n");
  server_->Signal(SIGHUP);
  ASSERT_TRUE(WaitForEvent("modules_reload_failed")) << server_->Stderr();
  EXPECT_THAT(server_->Stderr(),
              HasSubstr(R"(module \"inject\": headers[0].value)"));
  EXPECT_EQ(
      HttpGet(http, ProbePath({target_.url("/status/200")}, "first")).status,
      200);
  EXPECT_EQ(
      HttpGet(http, ProbePath({target_.url("/status/200")}, "second")).status,
      400);
  EXPECT_EQ(Gauge(http, "fanprobe_config_last_reload_successful"), 0);
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(kPatience).code, 0) << server_->Stderr();
}

TEST_F(ServerModulesTest, ServesDebiansExampleAndCountsUnsupportedProbes) {
  if (DebianFilesMissing()) {
    GTEST_SKIP() << "apt-get install prometheus-blackbox-exporter";
  }
  const std::string http = Start(kDebianExample);
  ASSERT_FALSE(http.empty());
  // The warnings come after the listening line: waited for, not assumed.
  EXPECT_TRUE(server_
                  ->WaitForStderrLine(
                      [](absl::string_view line) {
                        return absl::StrContains(
                            line,
                            R"(modules.icmp_example: prober \"icmp\" is not )"
                            "supported");
                      },
                      kPatience)
                  .has_value())
      << server_->Stderr();
  const std::string target = target_.url("/status/200");
  // An http module fanprobe honours probes.
  Exposition post = ParseOrFail(
      HttpGet(http, ProbePath({target_.url("/echo_headers")}, "http_post_2xx"))
          .body);
  EXPECT_EQ(post.Value("probe_success"), 1);
  // A tcp one is a 400 naming its prober.
  HttpReply tcp = HttpGet(http, ProbePath({target}, "tcp_connect_example"));
  EXPECT_EQ(tcp.status, 400);
  EXPECT_THAT(tcp.body, HasSubstr("prober \"tcp\""));
  // One with a proxy goes through it (127.0.0.1:3128), whatever answers
  // there: it is not an option fanprobe cannot honour.
  Exposition proxied =
      ParseOrFail(HttpGet(http, ProbePath({target}, "http_with_proxy")).body);
  EXPECT_FALSE(proxied
                   .Value("probe_fanprobe_outcome_info",
                          {{"outcome", "UNSUPPORTED_OPTION"}})
                   .has_value());
  EXPECT_TRUE(ParseOrFail(HttpGet(http, "/metrics").body)
                  .Samples("fanprobe_http_probe_unsupported_option_total")
                  .empty());
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(kPatience).code, 0) << server_->Stderr();
}

}  // namespace
}  // namespace fanprobe::testing
