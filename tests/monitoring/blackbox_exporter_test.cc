// fanprobe's /probe next to the real thing: Debian's
// prometheus-blackbox-exporter and fanprobe's HTTP side (http_side.h) run
// with the same modules file, probe the same loopback targets, and must
// answer with the same metric families and the same success, status code,
// redirects, regex flag, TLS flag, HTTP version, address, content length,
// decoded body length and Last-Modified figures -- header rules, basic,
// bearer and authorization credentials, gzip, TLS targets and a proxy
// included.  Also:
// the modules file is one blackbox_exporter itself accepts, Debian's own
// files load in both with the same modules, and an option fanprobe cannot
// honour loads and fails its probes naming it.

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/blackbox_modules.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/proxy_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_target_server.h"
#include "tests/support/wait.h"
#include "yaml-cpp/yaml.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kStartPatience = absl::Seconds(30);

// Every option fanprobe supports appears in some module.
constexpr char kModules[] = R"(modules:
  http_2xx:
    prober: http
    timeout: 5s
  expect_404:
    prober: http
    http:
      valid_status_codes: [404]
      preferred_ip_protocol: ip4
  no_redirects:
    prober: http
    http:
      follow_redirects: false
  old_no_redirects:
    prober: http
    http:
      no_follow_redirects: true
  post_echo:
    prober: http
    http:
      method: POST
      headers:
        X-Probe: compare
      body: hello
      fail_if_body_not_matches_regexp: ["X-Probe: compare", "hello$"]
  body_forbidden:
    prober: http
    http:
      fail_if_body_matches_regexp: ["quick brown"]
  require_tls:
    prober: http
    http:
      fail_if_not_ssl: true
  forbid_tls:
    prober: http
    http:
      fail_if_ssl: true
      tls_config:
        insecure_skip_verify: true
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
  api_v2:
    prober: http
    http:
      fail_if_header_not_matches:
        - {header: X-Api-Version, regexp: '^2\.'}
      fail_if_header_matches:
        - {header: Set-Cookie, regexp: '.*', allow_missing: true}
  basic:
    prober: http
    http:
      basic_auth: {username: alice, password: s3cret}
  bearer:
    prober: http
    http:
      bearer_token: tok
  token:
    prober: http
    http:
      authorization: {credentials: tok}
  gzip:
    prober: http
    http:
      compression: gzip
      fail_if_body_not_matches_regexp: ["^fanprobe fanprobe"]
)";

class BlackboxExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::string> exporter =
        FindTool("prometheus-blackbox-exporter");
    if (!exporter.has_value()) {
      GTEST_SKIP() << "prometheus-blackbox-exporter is not installed: apt-get "
                      "install prometheus-blackbox-exporter (make test "
                      "installs it)";
    }
    exporter_binary_ = *exporter;
    modules_ = dir_.Write("modules.yml", kModules);
  }

  // fanprobe's HTTP side with the modules file; returns its address.
  std::string StartFanprobe() {
    absl::StatusOr<monitoring::BlackboxModules> modules =
        monitoring::LoadBlackboxModules(modules_);
    EXPECT_TRUE(modules.ok()) << modules.status();
    if (!modules.ok()) return "";
    fanprobe_ = std::make_unique<HttpSide>(
        monitoring::HttpServerOptions{.modules = *std::move(modules)},
        EngineOptions{.workers = 1});
    return fanprobe_->address();
  }

  std::string StartExporter() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::string address = absl::StrCat("127.0.0.1:", FreePort());
      exporter_ = std::make_unique<Subprocess>(
          std::vector<std::string>{
              exporter_binary_, "--config.file=" + modules_,
              "--web.listen-address=" + address, "--log.level=warn"},
          SubprocessOptions{.output_file = dir_.File("blackbox.log")});
      bool exited = false;
      EXPECT_TRUE(WaitUntil(
          [&] {
            exited = exporter_->TryWait(absl::ZeroDuration()).has_value();
            return exited || HttpGet(address, "/-/healthy").status == 200;
          },
          kStartPatience, absl::Milliseconds(50)))
          << exporter_->OutputFile();
      if (!exited) return address;
    }
    ADD_FAILURE() << "blackbox_exporter did not start: "
                  << exporter_->OutputFile();
    return "";
  }

  TempDir dir_;
  std::string exporter_binary_;
  std::string modules_;
  std::unique_ptr<HttpSide> fanprobe_;
  std::unique_ptr<Subprocess> exporter_;
};

Exposition ProbeThrough(const std::string& address, const std::string& module,
                        const std::string& target) {
  HttpReply reply = HttpGet(
      address,
      absl::StrCat("/probe?module=", module, "&target=", UrlEncode(target)),
      {{"X-Prometheus-Scrape-Timeout-Seconds", "5"}});
  EXPECT_EQ(reply.status, 200) << address << " " << reply.body;
  return ParseOrFail(reply.body);
}

// fanprobe's families without its own additions (the outcome, the
// attempts), each of which it must have written.
std::set<std::string> BlackboxFamilies(const Exposition& ours) {
  std::set<std::string> families = ours.FamilyNames();
  for (const char* own :
       {"probe_fanprobe_attempts", "probe_fanprobe_outcome_info"}) {
    EXPECT_EQ(families.erase(own), 1u) << own;
  }
  return families;
}

TEST_F(BlackboxExporterTest, SameTargetsSameModulesSameAnswers) {
  TargetServer target;
  RefusedPort refused;
  const std::string fanprobe = StartFanprobe();
  const std::string exporter = StartExporter();
  ASSERT_FALSE(fanprobe.empty());
  ASSERT_FALSE(exporter.empty());

  struct Case {
    std::string module;
    std::string target;
    double success;  // what both must say
  };
  const std::vector<Case> cases = {
      {"http_2xx", target.url("/status/200"), 1},
      {"http_2xx", target.url("/status/503"), 0},
      {"http_2xx", target.url("/status/302"), 0},  // no Location: not followed
      {"http_2xx", target.url("/redirect/2"), 1},
      {"http_2xx", refused.url("/"), 0},
      {"expect_404", target.url("/status/404"), 1},
      {"expect_404", target.url("/status/200"), 0},
      {"no_redirects", target.url("/redirect/1"), 0},
      {"old_no_redirects", target.url("/redirect/1"), 0},
      {"post_echo", target.url("/echo_headers"), 1},
      {"body_forbidden", target.url("/match"), 0},
      {"body_forbidden", target.url("/status/200"), 1},
      {"require_tls", target.url("/status/200"), 0},
      {"forbid_tls", target.url("/status/200"), 1},
      {"api_v2", target.url("/headers?X-Api-Version=2.1"), 1},
      {"api_v2", target.url("/headers?X-Api-Version=1.9"), 0},
      {"api_v2", target.url("/status/200"), 0},  // missing
      {"api_v2", target.url("/headers?X-Api-Version=2.0&Set-Cookie=a"), 0},
      {"basic", target.url("/basic_auth/alice/s3cret"), 1},
      {"basic", target.url("/basic_auth/alice/other"), 0},
      {"bearer", target.url("/bearer/tok"), 1},
      {"token", target.url("/bearer/tok"), 1},
      {"bearer", target.url("/bearer/other"), 0},
      {"gzip", target.url("/gzip/4000"), 1},
      {"http_2xx", target.url("/last_modified"), 1},
  };
  // Compared exactly; the phase timings, the duration and (for bodies
  // that echo the request) the lengths legitimately differ.
  const std::vector<std::string> exact = {
      "probe_success",        "probe_http_status_code",
      "probe_http_redirects", "probe_failed_due_to_regex",
      "probe_http_ssl",       "probe_http_version",
      "probe_ip_protocol",    "probe_ip_addr_hash",
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.module, " ", c.target));
    Exposition ours = ProbeThrough(fanprobe, c.module, c.target);
    Exposition theirs = ProbeThrough(exporter, c.module, c.target);
    std::set<std::string> our_families = BlackboxFamilies(ours);
    EXPECT_EQ(our_families, theirs.FamilyNames());
    EXPECT_EQ(ours.Value("probe_success"), c.success);
    for (const std::string& name : exact) {
      EXPECT_EQ(ours.Value(name), theirs.Value(name)) << name;
    }
    if (c.module != "post_echo") {
      EXPECT_EQ(ours.Value("probe_http_content_length"),
                theirs.Value("probe_http_content_length"));
      EXPECT_EQ(ours.Value("probe_http_uncompressed_body_length"),
                theirs.Value("probe_http_uncompressed_body_length"));
    }
    EXPECT_EQ(ours.Value("probe_http_last_modified_timestamp_seconds"),
              theirs.Value("probe_http_last_modified_timestamp_seconds"));
    // Both split the probe into the same five phases.
    for (const char* phase :
         {"resolve", "connect", "tls", "processing", "transfer"}) {
      EXPECT_TRUE(ours.Value("probe_http_duration_seconds", {{"phase", phase}})
                      .has_value())
          << phase;
    }
  }
  // The POST went out with its header and body, as blackbox_exporter's did.
  int posts = 0;
  for (const RecordedRequest& request : target.Requests()) {
    if (request.path != "/echo_headers") continue;
    ++posts;
    EXPECT_EQ(request.method, "POST");
    EXPECT_EQ(request.body, "hello");
  }
  EXPECT_EQ(posts, 2);
}

// The TLS series over real handshakes: a CA-signed target, verified and
// not, one that wants a client certificate, and a self-signed one nobody
// trusts.
TEST_F(BlackboxExporterTest, TlsTargetsSameSeries) {
  TestCa ca("fanprobe side-by-side CA");
  IssueOptions server;
  server.dns_names = {"localhost", "web.tls.test"};
  server.ip_addresses = {"127.0.0.1"};
  TlsTargetServer verified(ca.Issue("localhost", server));
  TlsTargetServer mutual(ca.Issue("localhost", server),
                         TlsTargetOptions{.client_ca_pem = ca.cert_pem()});
  IssueOptions self_signed_options = server;
  self_signed_options.self_signed = true;
  TlsTargetServer self_signed(ca.Issue("localhost", self_signed_options));
  const KeyAndCert client = ca.Issue("prober", IssueOptions{.server = false});
  const std::string ca_file = dir_.Write("ca.pem", ca.cert_pem());
  const std::string cert_file = dir_.Write("client.pem", client.cert_pem);
  const std::string key_file = dir_.Write("client.key", client.key_pem);
  modules_ = dir_.Write(
      "tls.yml", absl::StrCat("modules:\n"
                              "  http_2xx:\n"
                              "    prober: http\n"
                              "  verified:\n"
                              "    prober: http\n"
                              "    http:\n"
                              "      tls_config: {ca_file: ",
                              ca_file,
                              "}\n"
                              "  insecure:\n"
                              "    prober: http\n"
                              "    http:\n"
                              "      tls_config: {insecure_skip_verify: true}\n"
                              "  client_cert:\n"
                              "    prober: http\n"
                              "    http:\n"
                              "      tls_config:\n"
                              "        ca_file: ",
                              ca_file, "\n        cert_file: ", cert_file,
                              "\n        key_file: ", key_file, "\n"));
  const std::string fanprobe = StartFanprobe();
  const std::string exporter = StartExporter();
  ASSERT_FALSE(fanprobe.empty());
  ASSERT_FALSE(exporter.empty());

  struct Case {
    std::string module;
    std::string target;
    double success;
  };
  const std::vector<Case> cases = {
      {"verified", verified.url("/status/200"), 1},
      {"insecure", verified.url("/status/200"), 1},
      {"verified", verified.url("/status/503"), 0},
      {"client_cert", mutual.url("/status/200"), 1},
      {"verified", mutual.url("/status/200"), 0},  // no client certificate
      {"http_2xx", self_signed.url("/status/200"), 0},
      {"insecure", self_signed.url("/status/200"), 1},
  };
  const std::vector<std::string> exact = {
      "probe_success",
      "probe_http_status_code",
      "probe_http_ssl",
      "probe_http_version",
      "probe_ssl_earliest_cert_expiry",
      "probe_ssl_last_chain_expiry_timestamp_seconds",
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.module, " ", c.target));
    Exposition ours = ProbeThrough(fanprobe, c.module, c.target);
    Exposition theirs = ProbeThrough(exporter, c.module, c.target);
    EXPECT_EQ(ours.Value("probe_success"), c.success);
    std::set<std::string> our_families = BlackboxFamilies(ours);
    std::set<std::string> their_families = theirs.FamilyNames();
    // Newer blackbox_exporter releases than Debian's 0.23 write the cipher
    // too, and no chain expiry where nothing verified (0.23 writes year 1
    // there: -62135596800).
    our_families.erase("probe_tls_cipher_info");
    if (c.module == "insecure") {
      EXPECT_EQ(
          their_families.erase("probe_ssl_last_chain_expiry_timestamp_seconds"),
          1u);
      EXPECT_EQ(theirs.Value("probe_ssl_last_chain_expiry_timestamp_seconds"),
                -62135596800.0);
    }
    EXPECT_EQ(our_families, their_families);
    for (const std::string& name : exact) {
      if (!their_families.contains(name)) continue;
      EXPECT_EQ(ours.Value(name), theirs.Value(name)) << name;
    }
    // The same version, and the same leaf certificate: Debian's release
    // has no serial number label yet, so only the labels it has.
    std::vector<Sample> our_version = ours.Samples("probe_tls_version_info");
    std::vector<Sample> their_version =
        theirs.Samples("probe_tls_version_info");
    ASSERT_EQ(our_version.size(), their_version.size());
    if (our_version.empty()) continue;
    EXPECT_EQ(our_version[0].labels, their_version[0].labels);
    EXPECT_EQ(our_version[0].labels.at("version"), "TLS 1.3");
    std::vector<Sample> our_leaf = ours.Samples("probe_ssl_last_chain_info");
    std::vector<Sample> their_leaf =
        theirs.Samples("probe_ssl_last_chain_info");
    ASSERT_EQ(our_leaf.size(), 1u);
    ASSERT_EQ(their_leaf.size(), 1u);
    LabelSet our_labels = our_leaf[0].labels;
    EXPECT_FALSE(our_labels["serialnumber"].empty());
    if (!their_leaf[0].labels.contains("serialnumber")) {
      our_labels.erase("serialnumber");
    }
    EXPECT_EQ(our_labels, their_leaf[0].labels);
    EXPECT_EQ(our_labels["subjectalternative"], "localhost,web.tls.test");
    EXPECT_THAT(ours.Samples("probe_tls_cipher_info"), ::testing::SizeIs(1));
  }
}

TEST_F(BlackboxExporterTest, ProxiedTargetsSameSeries) {
  TargetServer target;
  TestCa ca("fanprobe side-by-side CA");
  IssueOptions server;
  server.dns_names = {"localhost"};
  server.ip_addresses = {"127.0.0.1"};
  TlsTargetServer tls(ca.Issue("localhost", server));
  ProxyServer proxy;
  const std::string ca_file = dir_.Write("ca.pem", ca.cert_pem());
  modules_ =
      dir_.Write("proxy.yml", absl::StrCat("modules:\n"
                                           "  proxied:\n"
                                           "    prober: http\n"
                                           "    http:\n"
                                           "      proxy_url: \"",
                                           proxy.url(),
                                           "\"\n"
                                           "      tls_config: {ca_file: ",
                                           ca_file, "}\n"));
  const std::string fanprobe = StartFanprobe();
  const std::string exporter = StartExporter();
  ASSERT_FALSE(fanprobe.empty());
  ASSERT_FALSE(exporter.empty());

  struct Case {
    std::string module;
    std::string target;
    double success;
    int proxied;  // requests each prober makes of the proxy
  };
  const std::vector<Case> cases = {
      {"proxied", target.url("/status/200"), 1, 1},
      {"proxied", target.url("/redirect/2"), 1, 3},
      {"proxied", target.url("/status/404"), 0, 1},
      {"proxied", tls.url("/status/200"), 1, 1},
  };
  const std::vector<std::string> exact = {
      "probe_success",
      "probe_http_status_code",
      "probe_http_ssl",
      "probe_http_redirects",
      "probe_http_version",
      "probe_ip_protocol",
      "probe_failed_due_to_regex",
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.module, " ", c.target));
    const size_t before = proxy.Requests().size();
    Exposition ours = ProbeThrough(fanprobe, c.module, c.target);
    const size_t between = proxy.Requests().size();
    Exposition theirs = ProbeThrough(exporter, c.module, c.target);
    const size_t after = proxy.Requests().size();
    EXPECT_EQ(between - before, static_cast<size_t>(c.proxied));
    EXPECT_EQ(after - between, static_cast<size_t>(c.proxied));
    EXPECT_EQ(ours.Value("probe_success"), c.success);
    std::set<std::string> our_families = BlackboxFamilies(ours);
    our_families.erase("probe_tls_cipher_info");  // as in TlsTargetsSameSeries
    EXPECT_EQ(our_families, theirs.FamilyNames());
    for (const std::string& name : exact) {
      EXPECT_EQ(ours.Value(name), theirs.Value(name)) << name;
    }
  }
  // The https target through a tunnel to its address, by both.
  int tunnels = 0;
  for (const ProxyRequest& request : proxy.Requests()) {
    if (request.method == "CONNECT") {
      EXPECT_EQ(request.target, absl::StrCat("127.0.0.1:", tls.port()));
      ++tunnels;
    }
  }
  EXPECT_EQ(tunnels, 2);
}

TEST_F(BlackboxExporterTest, BlackboxExporterAcceptsTheModulesFile) {
  ProcessRun check = RunToExit(
      {exporter_binary_, "--config.check", "--config.file=" + modules_},
      absl::Seconds(30));
  EXPECT_EQ(check.code, 0) << check.out << check.err;
}

TEST_F(BlackboxExporterTest, DebiansFilesLoadInBothAndAgreeOnTheModules) {
  // The files Debian's package ships, whole: blackbox_exporter accepts
  // them, and so does fanprobe, with the same module names (other probers'
  // included: fanprobe warns about those and answers 400 for them).
  for (const std::string path :
       {"/etc/prometheus/blackbox.yml",
        "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml"}) {
    SCOPED_TRACE(path);
    ProcessRun check =
        RunToExit({exporter_binary_, "--config.check", "--config.file=" + path},
                  absl::Seconds(30));
    EXPECT_EQ(check.code, 0) << check.out << check.err;
    absl::StatusOr<monitoring::BlackboxConfig> config =
        monitoring::LoadBlackboxConfig(path);
    ASSERT_TRUE(config.ok()) << config.status();
    YAML::Node file = YAML::LoadFile(path);
    std::set<std::string> names;
    for (const auto& module : file["modules"]) {
      names.insert(module.first.Scalar());
    }
    std::set<std::string> ours;
    for (const auto& [name, module] : config->modules) ours.insert(name);
    EXPECT_EQ(ours, names);
  }
}

TEST_F(BlackboxExporterTest, DebiansHttpModulesSameSeries) {
  // Every http module of the files Debian ships, as they are, against the
  // same loopback targets.  Two cannot be compared here, by design of the
  // example: http_with_proxy's proxy (127.0.0.1:3128) is whatever this
  // machine runs there, and http_custom_ca_example's CA file does not
  // exist (both probers fail it; ProxiedTargetsSameSeries and
  // TlsTargetsSameSeries compare those options).  And http_gzip, which
  // sends no Accept-Encoding, is compared only where the answer is gzip
  // whatever was asked: for the rest, fanprobe asks for gzip and decodes
  // what comes, blackbox_exporter asks nothing and fails what does not
  // decode (README: the differences, intended).
  TargetServer target;
  const std::set<std::string> skipped = {"http_with_proxy",
                                         "http_custom_ca_example"};
  const std::vector<std::string> exact = {
      "probe_success",
      "probe_http_status_code",
      "probe_http_redirects",
      "probe_failed_due_to_regex",
      "probe_http_ssl",
      "probe_http_version",
      "probe_ip_protocol",
      "probe_http_content_length",
      "probe_http_uncompressed_body_length",
  };
  int compared = 0;
  for (const std::string path :
       {"/etc/prometheus/blackbox.yml",
        "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml"}) {
    SCOPED_TRACE(path);
    modules_ = path;
    const std::string fanprobe = StartFanprobe();
    const std::string exporter = StartExporter();
    ASSERT_FALSE(fanprobe.empty());
    ASSERT_FALSE(exporter.empty());
    for (const auto& module : YAML::LoadFile(path)["modules"]) {
      const std::string name = module.first.Scalar();
      if (module.second["prober"].Scalar() != "http" || skipped.contains(name))
        continue;
      for (const std::string& url :
           {target.url("/status/200"), target.url("/redirect/1"),
            target.url("/status/404"), target.url("/gzip/300")}) {
        if (name == "http_gzip" && !absl::StrContains(url, "/gzip/")) continue;
        SCOPED_TRACE(absl::StrCat(name, " ", url));
        Exposition ours = ProbeThrough(fanprobe, name, url);
        Exposition theirs = ProbeThrough(exporter, name, url);
        std::set<std::string> our_families = BlackboxFamilies(ours);
        EXPECT_EQ(our_families, theirs.FamilyNames());
        for (const std::string& family : exact) {
          EXPECT_EQ(ours.Value(family), theirs.Value(family)) << family;
        }
        ++compared;
      }
    }
    exporter_.reset();
    fanprobe_.reset();
  }
  EXPECT_GE(compared, 4 * 6 + 1);
}

TEST_F(BlackboxExporterTest, AnUnsupportedOptionLoadsAndItsProbeFailsNamingIt) {
  // Valid for blackbox_exporter; fanprobe cannot honour oauth2 yet, so the
  // module loads and its probe fails, saying why, instead of probing
  // without its token.
  const std::string modules = dir_.Write("unsupported.yml", R"(modules:
  http_2xx:
    prober: http
  private:
    prober: http
    http:
      oauth2:
        client_id: probe
        client_secret: s3cret
        token_url: "http://127.0.0.1:1/token"
)");
  ProcessRun check = RunToExit(
      {exporter_binary_, "--config.check", "--config.file=" + modules},
      absl::Seconds(30));
  EXPECT_EQ(check.code, 0) << check.out << check.err;

  absl::StatusOr<monitoring::BlackboxModules> loaded =
      monitoring::LoadBlackboxModules(modules);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(loaded->at("private").unsupported,
              ::testing::ElementsAre(
                  HasSubstr("modules.private.http.oauth2: OAuth 2.0 is "
                            "not supported by fanprobe yet")));
}

}  // namespace
}  // namespace fanprobe::testing
