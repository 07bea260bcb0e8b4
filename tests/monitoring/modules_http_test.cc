// The modules file as /probe and /-/reload serve it (http_server.h over
// blackbox_modules.h): a module of another prober is a 400 naming it, one
// with an option fanprobe cannot honour fails its probe naming the option
// (and is counted), valid_http_versions judges the response, hostname= is
// the Host header the target sees, and POST /-/reload swaps the modules or
// keeps them when the file is bad -- or when the engine refuses a module of
// it.  SIGHUP and the reload gauges on the binary are
// tests/server/modules_reload_test.cc's.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/blackbox_modules.h"
#include "monitoring/http_server.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kModules[] = R"(modules:
  http_2xx:
    prober: http
  vhost:
    prober: http
    http:
      headers:
        Host: module.test
  ping:
    prober: icmp
  with_proxy:
    prober: http
    http:
      proxy_url: "socks5://127.0.0.1:1080"
  http1_only:
    prober: http
    http:
      valid_http_versions: ["HTTP/1.1"]
  http2_only:
    prober: http
    http:
      valid_http_versions: ["HTTP/2.0"]
)";

class ModulesHttpTest : public ::testing::Test {
 protected:
  ModulesHttpTest()
      : path_(dir_.Write("modules.yml", kModules)),
        store_(MakeStore(path_)),
        side_(monitoring::HttpServerOptions{.module_store = store_},
              EngineOptions{.workers = 1}) {}

  static std::shared_ptr<monitoring::BlackboxModulesStore> MakeStore(
      const std::string& path) {
    absl::StatusOr<monitoring::BlackboxModules> modules =
        monitoring::LoadBlackboxModules(path);
    EXPECT_TRUE(modules.ok()) << modules.status();
    return std::make_shared<monitoring::BlackboxModulesStore>(
        path,
        modules.ok() ? *std::move(modules) : monitoring::BlackboxModules());
  }

  int RequestsTo(const std::string& path) {
    int count = 0;
    for (const RecordedRequest& request : target_.Requests()) {
      if (request.path == path) ++count;
    }
    return count;
  }

  TempDir dir_;
  const std::string path_;
  std::shared_ptr<monitoring::BlackboxModulesStore> store_;
  TargetServer target_;
  HttpSide side_;
};

TEST_F(ModulesHttpTest, AModuleOfAnotherProberIs400NamingTheProber) {
  HttpReply reply =
      HttpGet(side_.address(), ProbePath({target_.url("/status/200")}, "ping"));
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("Module \"ping\" uses prober \"icmp\""));
  EXPECT_EQ(RequestsTo("/status/200"), 0);
}

TEST_F(ModulesHttpTest, AnUnsupportedOptionFailsTheProbeNamingIt) {
  HttpReply reply = HttpGet(
      side_.address(), ProbePath({target_.url("/status/200")}, "with_proxy"));
  ASSERT_EQ(reply.status, 200) << reply.body;
  Exposition m = ParseOrFail(reply.body);
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(m.Value("probe_fanprobe_outcome_info",
                    {{"outcome", "UNSUPPORTED_OPTION"}}),
            1);
  // Nothing was sent: without its proxy the request would ask something
  // else than the module does.
  EXPECT_EQ(RequestsTo("/status/200"), 0);

  HttpReply debug = HttpGet(
      side_.address(),
      ProbePath({target_.url("/status/200")}, "with_proxy") + "&debug=true");
  EXPECT_THAT(debug.body,
              HasSubstr("modules.with_proxy.http.proxy_url: a proxy other "
                        "than http:// (https, SOCKS) is not supported by "
                        "fanprobe yet"));
  const auto counts = side_.http().modules().UnsupportedCounts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts.begin()->first.first, "with_proxy");
  EXPECT_EQ(counts.begin()->first.second, "modules.with_proxy.http.proxy_url");
  EXPECT_EQ(counts.begin()->second, 2u);
}

TEST_F(ModulesHttpTest, ValidHttpVersionsJudgeTheResponse) {
  // The target answers HTTP/1.1 (plain http: no HTTP/2).
  Exposition ok =
      ParseOrFail(HttpGet(side_.address(),
                          ProbePath({target_.url("/status/200")}, "http1_only"))
                      .body);
  EXPECT_EQ(ok.Value("probe_success"), 1);
  Exposition wrong =
      ParseOrFail(HttpGet(side_.address(),
                          ProbePath({target_.url("/status/200")}, "http2_only"))
                      .body);
  EXPECT_EQ(wrong.Value("probe_success"), 0);
  EXPECT_EQ(wrong.Value("probe_fanprobe_outcome_info",
                        {{"outcome", "INVALID_HTTP_VERSION"}}),
            1);
  EXPECT_EQ(wrong.Value("probe_http_status_code"), 200);
}

TEST_F(ModulesHttpTest, HostnameIsTheHostHeaderTheTargetSees) {
  const auto host_of = [this](const std::string& path) {
    std::vector<std::string> hosts;
    for (const RecordedRequest& request : target_.Requests()) {
      if (request.path != path) continue;
      for (const auto& [name, value] : request.headers) {
        if (name == "Host" || name == "host") hosts.push_back(value);
      }
    }
    return hosts;
  };
  HttpReply plain =
      HttpGet(side_.address(),
              ProbePath({target_.url("/status/200")}) + "&hostname=vhost.test");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(ParseOrFail(plain.body).Value("probe_success"), 1);
  EXPECT_THAT(host_of("/status/200"), ::testing::ElementsAre("vhost.test"));

  // A module with a Host header of its own takes the same hostname=, and
  // refuses another, as blackbox_exporter does; without hostname= the
  // module's is sent.
  HttpGet(side_.address(), ProbePath({target_.url("/status/204")}, "vhost") +
                               "&hostname=module.test");
  EXPECT_THAT(host_of("/status/204"), ::testing::ElementsAre("module.test"));
  HttpReply conflict = HttpGet(
      side_.address(), ProbePath({target_.url("/status/203")}, "vhost") +
                           "&hostname=param.test");
  EXPECT_EQ(conflict.status, 400);
  EXPECT_THAT(conflict.body,
              HasSubstr("host header defined both in module configuration "
                        "(module.test) and with URL-parameter 'hostname' "
                        "(param.test)"));
  EXPECT_EQ(RequestsTo("/status/203"), 0);
  HttpGet(side_.address(), ProbePath({target_.url("/status/202")}, "vhost"));
  EXPECT_THAT(host_of("/status/202"), ::testing::ElementsAre("module.test"));
}

TEST_F(ModulesHttpTest, PostReloadSwapsTheModulesAndABadFileKeepsThem) {
  const std::string probe_new =
      ProbePath({target_.url("/status/200")}, "fresh");
  EXPECT_EQ(HttpGet(side_.address(), probe_new).status, 400);  // unknown

  dir_.Write("modules.yml",
             "modules:\n  fresh:\n    prober: http\n  tcp:\n    prober: tcp\n");
  HttpReply good = HttpPost(side_.address(), "/-/reload");
  EXPECT_EQ(good.status, 200) << good.body;
  EXPECT_THAT(good.body,
              HasSubstr("warning: " + path_ + ": modules.tcp: prober \"tcp\""));
  EXPECT_EQ(HttpGet(side_.address(), probe_new).status, 200);
  EXPECT_EQ(HttpGet(side_.address(),
                    ProbePath({target_.url("/status/200")}, "with_proxy"))
                .status,
            400);  // gone with the old file
  EXPECT_TRUE(side_.http().modules().State().last_successful);

  dir_.Write("modules.yml",
             "modules:\n  fresh:\n    prober: http\n    http: {nope: 1}\n"
             "  other:\n    prober: http\n    timeout: soon\n");
  HttpReply bad = HttpPost(side_.address(), "/-/reload");
  EXPECT_EQ(bad.status, 500);
  EXPECT_THAT(bad.body, HasSubstr("failed to reload config: " + path_));
  EXPECT_THAT(bad.body, HasSubstr("modules.fresh.http.nope: unknown key"));
  EXPECT_THAT(bad.body, HasSubstr("modules.other.timeout: not a duration"));
  EXPECT_EQ(HttpGet(side_.address(), probe_new).status, 200);  // kept
  EXPECT_FALSE(side_.http().modules().State().last_successful);
}

TEST_F(ModulesHttpTest, AReloadWithAModuleTheEngineRefusesKeepsTheModules) {
  // Parses, but every probe of `inject` would fail INVALID_TARGET: the
  // header would inject a second header line.  The reload is refused as a
  // file that does not parse is, naming every such module.
  dir_.Write("modules.yml",
             "modules:\n  fresh:\n    prober: http\n"
             "  inject:\n    prober: http\n    http:\n      headers:\n"
             "        X-A: \"a\\r\\nX-Injected: yes\"\n"
             "  inject2:\n    prober: http\n    http:\n      headers:\n"
             "        X-B: \"b\\nX-Injected: yes\"\n");
  HttpReply bad = HttpPost(side_.address(), "/-/reload");
  EXPECT_EQ(bad.status, 500);
  EXPECT_THAT(bad.body, HasSubstr("failed to reload config: " + path_ +
                                  ": 2 modules the engine refuses:"));
  EXPECT_THAT(bad.body, HasSubstr("module \"inject\": headers[0].value: the "
                                  "value of \"X-A\" holds CR, LF"));
  EXPECT_THAT(bad.body, HasSubstr("module \"inject2\": headers[0].value: the "
                                  "value of \"X-B\" holds CR, LF"));
  EXPECT_FALSE(side_.http().modules().State().last_successful);
  // The old modules are served; the new file's are not.
  EXPECT_EQ(
      HttpGet(side_.address(), ProbePath({target_.url("/status/200")}, "fresh"))
          .status,
      400);
  EXPECT_EQ(HttpGet(side_.address(),
                    ProbePath({target_.url("/status/200")}, "http1_only"))
                .status,
            200);

  // Fixed, it loads.
  dir_.Write("modules.yml", "modules:\n  fresh:\n    prober: http\n");
  HttpReply good = HttpPost(side_.address(), "/-/reload");
  EXPECT_EQ(good.status, 200) << good.body;
  EXPECT_TRUE(side_.http().modules().State().last_successful);
  EXPECT_EQ(
      HttpGet(side_.address(), ProbePath({target_.url("/status/200")}, "fresh"))
          .status,
      200);
}

TEST_F(ModulesHttpTest, ReloadIsPostOnly) {
  // blackbox_exporter's answer to another method; nothing is reloaded.
  dir_.Write("modules.yml", "modules:\n  fresh:\n    prober: http\n");
  HttpReply get = HttpGet(side_.address(), "/-/reload");
  EXPECT_EQ(get.status, 405);
  EXPECT_THAT(get.body, HasSubstr("requires a POST request"));
  EXPECT_EQ(
      HttpGet(side_.address(), ProbePath({target_.url("/status/200")}, "fresh"))
          .status,
      400);
  EXPECT_THAT(HttpGet(side_.address(), "/").body, HasSubstr("/-/reload  POST"));
}

TEST_F(ModulesHttpTest, AHostnameThatWouldInjectAHeaderIs400) {
  HttpReply reply = HttpGet(
      side_.address(), ProbePath({target_.url("/status/200")}) +
                           "&hostname=" + UrlEncode("a.test\r\nX-Injected: 1"));
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("hostname: "));
  EXPECT_THAT(reply.body, HasSubstr("holds CR, LF"));
  EXPECT_EQ(RequestsTo("/status/200"), 0);
}

TEST(ModulesHttpStartTest, AModuleTheEngineRefusesStopsTheStart) {
  // As tests/server/server_flags_test.cc checks on the binary, but through
  // a store: what Start() refuses, a reload would refuse too.
  absl::StatusOr<monitoring::BlackboxModules> modules =
      monitoring::ParseBlackboxModules(
          "modules:\n  inject:\n    prober: http\n    http:\n"
          "      headers:\n        X-A: \"a\\nb\"\n");
  ASSERT_TRUE(modules.ok()) << modules.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(EngineOptions{.workers = 1});
  ASSERT_TRUE(engine.ok()) << engine.status();
  monitoring::ServerMetrics metrics;
  auto store = std::make_shared<monitoring::BlackboxModulesStore>(
      "", *std::move(modules));
  absl::StatusOr<std::unique_ptr<monitoring::HttpServer>> http =
      monitoring::HttpServer::Start(
          {.address = "127.0.0.1:0", .module_store = store}, **engine, metrics,
          nullptr);
  EXPECT_EQ(http.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(http.status().message(),
              HasSubstr("--modules_file: module \"inject\": headers[0].value"));
}

}  // namespace
}  // namespace fanprobe::testing
