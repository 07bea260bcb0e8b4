// blackbox_exporter's options that map onto the engine, end to end: a real
// modules file, /probe through the HTTP side, and a loopback target
// (tests/support) that says what it received -- header rules
// (fail_if_header_matches / _not_matches), basic_auth, bearer_token(_file),
// authorization, compression, client certificates (tls_config cert_file /
// key_file), the series blackbox_exporter reports for them
// (probe_http_uncompressed_body_length,
// probe_http_last_modified_timestamp_seconds), and that no secret shows in
// debug=true.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/blackbox_modules.h"
#include "monitoring/http_server.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/prom_text.h"
#include "tests/support/proxy_server.h"
#include "tests/support/target_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_target_server.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ModulesMappedTest : public ::testing::Test {
 protected:
  // Serves `yaml` (written to modules.yml) through a fresh HTTP side.
  void Start(const std::string& yaml) {
    const std::string path = dir_.Write("modules.yml", yaml);
    absl::StatusOr<monitoring::BlackboxModules> modules =
        monitoring::LoadBlackboxModules(path);
    ASSERT_TRUE(modules.ok()) << modules.status();
    side_ = std::make_unique<HttpSide>(
        monitoring::HttpServerOptions{
            .module_store = std::make_shared<monitoring::BlackboxModulesStore>(
                path, *std::move(modules))},
        EngineOptions{.workers = 1});
  }

  Exposition Probe(const std::string& target, const std::string& module) {
    HttpReply reply = HttpGet(side_->address(), ProbePath({target}, module));
    EXPECT_EQ(reply.status, 200) << reply.body;
    return ParseOrFail(reply.body);
  }

  std::string Debug(const std::string& target, const std::string& module) {
    return HttpGet(side_->address(),
                   ProbePath({target}, module) + "&debug=true")
        .body;
  }

  // The values of header `name` of the requests the target got for `path`.
  std::vector<std::string> Received(const std::string& path,
                                    absl::string_view name) {
    std::vector<std::string> values;
    for (const RecordedRequest& request : target_.Requests()) {
      if (request.path != path) continue;
      for (const auto& [header, value] : request.headers) {
        if (absl::EqualsIgnoreCase(header, name)) values.push_back(value);
      }
    }
    return values;
  }

  static double Outcome(const Exposition& m, const std::string& outcome) {
    return m.Value("probe_fanprobe_outcome_info", {{"outcome", outcome}})
        .value_or(0);
  }

  TempDir dir_;
  TargetServer target_;
  std::unique_ptr<HttpSide> side_;
};

TEST_F(ModulesMappedTest, HeaderRulesJudgeTheResponseHeaders) {
  Start(R"(modules:
  api_v2:
    prober: http
    http:
      fail_if_header_not_matches:
        - {header: X-Api-Version, regexp: '^2\.'}
  no_cookies:
    prober: http
    http:
      fail_if_header_matches:
        - {header: set-cookie, regexp: '.*', allow_missing: true}
)");
  const Exposition good =
      Probe(target_.url("/headers?X-Api-Version=2.1"), "api_v2");
  EXPECT_EQ(good.Value("probe_success"), 1);
  EXPECT_EQ(good.Value("probe_failed_due_to_regex"), 0);

  const Exposition old =
      Probe(target_.url("/headers?X-Api-Version=1.9"), "api_v2");
  EXPECT_EQ(old.Value("probe_success"), 0);
  EXPECT_EQ(old.Value("probe_failed_due_to_regex"), 1);
  EXPECT_EQ(Outcome(old, "HEADER_MISMATCH"), 1);
  EXPECT_EQ(old.Value("probe_http_status_code"), 200);
  // Missing, without allow_missing: a failure too, as blackbox_exporter.
  const Exposition missing = Probe(target_.url("/status/200"), "api_v2");
  EXPECT_EQ(Outcome(missing, "HEADER_MISMATCH"), 1);

  // Names are matched without regard to case; missing is allowed here.
  EXPECT_EQ(
      Probe(target_.url("/status/200"), "no_cookies").Value("probe_success"),
      1);
  const Exposition cookie =
      Probe(target_.url("/headers?Set-Cookie=id%3D1"), "no_cookies");
  EXPECT_EQ(cookie.Value("probe_success"), 0);
  EXPECT_EQ(Outcome(cookie, "HEADER_MISMATCH"), 1);
}

TEST_F(ModulesMappedTest, BasicAuthFromTheFileAndFromAPasswordFile) {
  // A password file as a secret mount writes it: with a trailing newline,
  // which prometheus/common trims.
  const std::string password_file = dir_.Write("password", "s3cret-file\n");
  Start(absl::StrCat(R"(modules:
  inline:
    prober: http
    http:
      basic_auth: {username: alice, password: "s3cret-inline"}
  from_file:
    prober: http
    http:
      basic_auth:
        username: bob
        password_file: )",
                     password_file, "\n"));
  EXPECT_EQ(Probe(target_.url("/basic_auth/alice/s3cret-inline"), "inline")
                .Value("probe_success"),
            1);
  EXPECT_EQ(Probe(target_.url("/basic_auth/bob/s3cret-file"), "from_file")
                .Value("probe_success"),
            1);
  // The target checks the credentials: wrong ones are its 401.
  const Exposition wrong =
      Probe(target_.url("/basic_auth/alice/other"), "inline");
  EXPECT_EQ(wrong.Value("probe_success"), 0);
  EXPECT_EQ(wrong.Value("probe_http_status_code"), 401);
  EXPECT_THAT(Received("/basic_auth/alice/s3cret-inline", "Authorization"),
              ::testing::ElementsAre(absl::StrCat(
                  "Basic ", absl::Base64Escape("alice:s3cret-inline"))));
}

TEST_F(ModulesMappedTest, BearerTokenAndAuthorization) {
  const std::string token_file = dir_.Write("token", "  tok-from-file\n");
  const std::string credentials_file = dir_.Write("credentials", "abc123\n");
  Start(absl::StrCat(R"(modules:
  bearer:
    prober: http
    http:
      bearer_token: tok-inline
  bearer_file:
    prober: http
    http:
      bearer_token_file: )",
                     token_file, R"(
  authorization_default:
    prober: http
    http:
      authorization: {credentials: tok-auth}
  authorization_token:
    prober: http
    http:
      authorization:
        type: Token
        credentials_file: )",
                     credentials_file, R"(
  own_header:
    prober: http
    http:
      headers: {Authorization: "Bearer from-header"}
      bearer_token: ignored
)"));
  EXPECT_EQ(
      Probe(target_.url("/bearer/tok-inline"), "bearer").Value("probe_success"),
      1);
  EXPECT_EQ(Probe(target_.url("/bearer/tok-from-file"), "bearer_file")
                .Value("probe_success"),
            1);
  // authorization's type is Bearer unless the file says.
  EXPECT_EQ(Probe(target_.url("/bearer/tok-auth"), "authorization_default")
                .Value("probe_success"),
            1);
  EXPECT_EQ(Probe(target_.url("/bearer/other"), "bearer")
                .Value("probe_http_status_code"),
            401);
  // Another type is sent as "<type> <credentials>".
  Probe(target_.url("/echo_headers"), "authorization_token");
  EXPECT_THAT(Received("/echo_headers", "Authorization"),
              ::testing::ElementsAre("Token abc123"));
  // The module's own Authorization header wins, as in prometheus/common.
  EXPECT_EQ(Probe(target_.url("/bearer/from-header"), "own_header")
                .Value("probe_success"),
            1);
}

TEST_F(ModulesMappedTest, AnUnreadableSecretFileFailsTheProbeNamingTheFile) {
  Start(R"(modules:
  lost:
    prober: http
    http:
      bearer_token_file: /nonexistent/token
)");
  const Exposition m = Probe(target_.url("/status/200"), "lost");
  EXPECT_EQ(m.Value("probe_success"), 0);
  EXPECT_EQ(Outcome(m, "UNSUPPORTED_OPTION"), 1);
  EXPECT_THAT(Debug(target_.url("/status/200"), "lost"),
              HasSubstr("modules.lost.http.bearer_token_file: cannot read "
                        "\"/nonexistent/token\""));
  EXPECT_TRUE(Received("/status/200", "Authorization").empty());
  EXPECT_EQ(target_.Stats().http.requests, 0);  // nothing was sent
}

TEST_F(ModulesMappedTest, HttpHeadersAreSentEveryValueOnItsOwnLine) {
  const std::string token_file = dir_.Write("token", "tok-from-file\n");
  Start(absl::StrCat(R"(modules:
  tagged:
    prober: http
    http:
      headers: {X-Tag: from-headers}
      http_headers:
        X-Tag: {values: [one, two]}
        X-Token: {secrets: [tok-secret], files: [)",
                     token_file, R"(]}
)"));
  EXPECT_EQ(
      Probe(target_.url("/echo_headers"), "tagged").Value("probe_success"), 1);
  EXPECT_THAT(Received("/echo_headers", "X-Tag"),
              ::testing::ElementsAre("from-headers", "one", "two"));
  EXPECT_THAT(Received("/echo_headers", "X-Token"),
              ::testing::ElementsAre("tok-secret", "tok-from-file"));
}

TEST_F(ModulesMappedTest, SecretsNeverShowInDebugOutput) {
  const std::string password_file = dir_.Write("password", "file-pass-77\n");
  Start(absl::StrCat(R"(modules:
  basic:
    prober: http
    http:
      basic_auth: {username: alice, password: inline-pass-42}
  basic_file:
    prober: http
    http:
      basic_auth: {username: bob, password_file: )",
                     password_file, R"(}
  bearer:
    prober: http
    http:
      bearer_token: bearer-tok-99
      headers: {Cookie: "session=cookie-val-11"}
  auth:
    prober: http
    http:
      authorization: {type: Token, credentials: auth-cred-33}
  http_headers:
    prober: http
    http:
      http_headers: {X-Token: {secrets: [header-secret-55]}}
)"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"basic", "inline-pass-42"}, {"basic_file", "file-pass-77"},
      {"bearer", "bearer-tok-99"}, {"bearer", "cookie-val-11"},
      {"auth", "auth-cred-33"},    {"http_headers", "header-secret-55"},
  };
  for (const auto& [module, secret] : cases) {
    SCOPED_TRACE(module);
    // A probe that fails (401) and one that succeeds: neither says it.
    for (const std::string path : {"/status/401", "/echo_headers"}) {
      const std::string debug = Debug(target_.url(path), module);
      EXPECT_THAT(debug, HasSubstr("Module configuration:"));
      EXPECT_THAT(debug, Not(HasSubstr(secret)));
    }
    if (module != "basic_file") {  // nothing secret in that file's text
      EXPECT_THAT(Debug(target_.url("/status/200"), module),
                  HasSubstr("<secret>"));
    }
  }
  // The file's path is no secret; its content is.
  EXPECT_THAT(Debug(target_.url("/status/200"), "basic_file"),
              HasSubstr(password_file));
}

TEST_F(ModulesMappedTest, CompressionIsAskedForAndDecodedBeforeMatching) {
  Start(R"(modules:
  gzip:
    prober: http
    http:
      compression: gzip
      fail_if_body_not_matches_regexp: ["^fanprobe fanprobe"]
  gzip_with_header:
    prober: http
    http:
      compression: gzip
      headers: {Accept-Encoding: "br;q=1.0, gzip;q=0.9, identity;q=0"}
  plain:
    prober: http
    http:
      fail_if_body_not_matches_regexp: ["^fanprobe fanprobe"]
)");
  const Exposition gzip = Probe(target_.url("/gzip/4000"), "gzip");
  EXPECT_EQ(gzip.Value("probe_success"), 1);
  EXPECT_EQ(gzip.Value("probe_http_uncompressed_body_length"), 4000);
  // Content-Length is what came over the wire: far less than 4000.
  ASSERT_TRUE(gzip.Value("probe_http_content_length").has_value());
  EXPECT_GT(*gzip.Value("probe_http_content_length"), 0);
  EXPECT_LT(*gzip.Value("probe_http_content_length"), 1000);
  EXPECT_THAT(Received("/gzip/4000", "Accept-Encoding"),
              ::testing::ElementsAre("gzip"));
  // Without compression the body is not decoded: the pattern sees gzip.
  EXPECT_EQ(Probe(target_.url("/gzip/4000"), "plain").Value("probe_success"),
            0);

  // The module's Accept-Encoding: its acceptable codings, asked for.
  EXPECT_EQ(Probe(target_.url("/gzip/100"), "gzip_with_header")
                .Value("probe_success"),
            1);
  const std::vector<std::string> asked =
      Received("/gzip/100", "Accept-Encoding");
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_THAT(asked[0], HasSubstr("gzip"));
  EXPECT_THAT(asked[0], Not(HasSubstr("identity")));
}

TEST_F(ModulesMappedTest, LastModifiedIsReportedWhenSent) {
  Start("modules:\n  http_2xx:\n    prober: http\n");
  const Exposition with = Probe(target_.url("/last_modified"), "http_2xx");
  EXPECT_EQ(with.Value("probe_http_last_modified_timestamp_seconds"),
            static_cast<double>(kLastModifiedUnix));
  const Exposition without = Probe(target_.url("/status/200"), "http_2xx");
  EXPECT_FALSE(without.FamilyNames().contains(
      "probe_http_last_modified_timestamp_seconds"));
  // Uncompressed, the body's length is what came.
  EXPECT_EQ(Probe(target_.url("/bytes/123"), "http_2xx")
                .Value("probe_http_uncompressed_body_length"),
            123);
}

TEST_F(ModulesMappedTest, UnfollowedRedirectsBodyIsNotCounted) {
  // blackbox_exporter reads no body of a redirect it does not follow.
  Start(R"(modules:
  no_redirects:
    prober: http
    http:
      follow_redirects: false
)");
  const Exposition m = Probe(target_.url("/redirect/1"), "no_redirects");
  EXPECT_EQ(m.Value("probe_http_status_code"), 302);
  EXPECT_EQ(m.Value("probe_http_redirects"), 1);
  EXPECT_EQ(m.Value("probe_http_uncompressed_body_length"), 0);
}

TEST_F(ModulesMappedTest, ClientCertificateFromFiles) {
  TestCa server_ca("fanprobe test CA");
  TestCa client_ca("fanprobe client CA");
  TlsTargetOptions mutual;
  mutual.client_ca_pem = client_ca.cert_pem();
  // TLS 1.2: a handshake without the certificate fails inside the
  // handshake, a TLS error (under 1.3 it may end as a failed read).
  mutual.max_version = TlsVersion::kTls12;
  TlsTargetServer tls(server_ca, mutual);
  const KeyAndCert client = client_ca.Issue("probe-client", {.server = false});
  const std::string ca_file = dir_.Write("ca.pem", server_ca.cert_pem());
  const std::string cert_file = dir_.Write("client.pem", client.cert_pem);
  const std::string key_file = dir_.Write("client.key", client.key_pem);
  Start(
      absl::StrCat("modules:\n  mtls:\n    prober: http\n    http:\n"
                   "      tls_config:\n        ca_file: ",
                   ca_file, "\n        cert_file: ", cert_file,
                   "\n        key_file: ", key_file,
                   "\n  no_cert:\n    prober: http\n    http:\n"
                   "      tls_config:\n        ca_file: ",
                   ca_file, "\n"));
  const Exposition ok = Probe(tls.url("/status/200"), "mtls");
  EXPECT_EQ(ok.Value("probe_success"), 1);
  EXPECT_EQ(ok.Value("probe_http_ssl"), 1);
  EXPECT_EQ(tls.Stats().client_subjects,
            std::vector<std::string>{"CN=probe-client,O=fanprobe"});
  // The same target refuses the handshake without a certificate.
  const Exposition refused = Probe(tls.url("/status/200"), "no_cert");
  EXPECT_EQ(refused.Value("probe_success"), 0);
  EXPECT_EQ(Outcome(refused, "TLS_ERROR"), 1);
  // The key never shows.
  EXPECT_THAT(Debug(tls.url("/status/200"), "mtls"),
              Not(HasSubstr("PRIVATE KEY")));
}

TEST_F(ModulesMappedTest, TlsVersionsBoundTheHandshake) {
  TestCa ca("fanprobe test CA");
  TlsTargetOptions only12;
  only12.max_version = TlsVersion::kTls12;
  TlsTargetServer tls12(ca, only12);
  TlsTargetServer tls13(ca);
  const std::string ca_file = dir_.Write("ca.pem", ca.cert_pem());
  Start(absl::StrCat(
      "modules:\n"
      "  floor13:\n    prober: http\n    http:\n      tls_config: {ca_file: ",
      ca_file, ", min_version: TLS13}\n",
      "  cap12:\n    prober: http\n    http:\n      tls_config: {ca_file: ",
      ca_file, ", max_version: TLS12}\n",
      "  floor10:\n    prober: http\n    http:\n      tls_config: {ca_file: ",
      ca_file, ", min_version: TLS10}\n"));
  // A TLS 1.3 floor refuses a server that speaks TLS 1.2 at most, and
  // takes one that speaks 1.3.
  const Exposition refused = Probe(tls12.url("/status/200"), "floor13");
  EXPECT_EQ(refused.Value("probe_success"), 0);
  EXPECT_EQ(Outcome(refused, "TLS_ERROR"), 1);
  EXPECT_EQ(tls12.Stats().requests, 0);
  const Exposition taken = Probe(tls13.url("/status/200"), "floor13");
  EXPECT_EQ(taken.Value("probe_success"), 1);
  EXPECT_EQ(taken.Value("probe_tls_version_info", {{"version", "TLS 1.3"}}), 1);
  // A TLS 1.2 cap makes a server that offers 1.3 agree on 1.2.
  const Exposition capped = Probe(tls13.url("/status/200"), "cap12");
  EXPECT_EQ(capped.Value("probe_success"), 1);
  EXPECT_EQ(capped.Value("probe_tls_version_info", {{"version", "TLS 1.2"}}),
            1);
  // A TLS 1.0 floor is TLS 1.2 here: both servers answer.
  EXPECT_EQ(Probe(tls12.url("/status/200"), "floor10").Value("probe_success"),
            1);
  EXPECT_EQ(Probe(tls13.url("/status/200"), "floor10")
                .Value("probe_tls_version_info", {{"version", "TLS 1.3"}}),
            1);
}

TEST_F(ModulesMappedTest, TheHandshakeNamesTheServerNameOrTheHostHeader) {
  // A virtual host whose certificate names vhost.test only, probed by
  // address, as blackbox_exporter's users do with hostname= or server_name.
  TestCa ca("fanprobe test CA");
  TlsTargetServer vhost(ca.Issue("vhost", {.dns_names = {"vhost.test"}}));
  const std::string ca_file = dir_.Write("ca.pem", ca.cert_pem());
  Start(absl::StrCat(
      "modules:\n"
      "  plain:\n    prober: http\n    http:\n      tls_config: {ca_file: ",
      ca_file, "}\n",
      "  named:\n    prober: http\n    http:\n      tls_config: {ca_file: ",
      ca_file, ", server_name: vhost.test}\n",
      "  host_header:\n    prober: http\n    http:\n"
      "      headers: {Host: \"vhost.test:443\"}\n"
      "      tls_config: {ca_file: ",
      ca_file, "}\n"));
  const std::string url = vhost.url("/status/200");
  const Exposition by_address = Probe(url, "plain");
  EXPECT_EQ(by_address.Value("probe_success"), 0);
  EXPECT_EQ(Outcome(by_address, "TLS_ERROR"), 1);
  EXPECT_EQ(Probe(url, "named").Value("probe_success"), 1);
  EXPECT_EQ(Probe(url, "host_header").Value("probe_success"), 1);
  HttpReply with_hostname = HttpGet(
      side_->address(), ProbePath({url}, "plain") + "&hostname=vhost.test");
  ASSERT_EQ(with_hostname.status, 200) << with_hostname.body;
  EXPECT_EQ(ParseOrFail(with_hostname.body).Value("probe_success"), 1);
  EXPECT_THAT(
      vhost.Stats().server_names,
      ::testing::ElementsAre("", "vhost.test", "vhost.test", "vhost.test"));
}

TEST_F(ModulesMappedTest, AProxyModuleProbesThroughItsProxy) {
  ProxyServer proxy;
  Start(absl::StrCat("modules:\n  proxied:\n    prober: http\n    http:\n",
                     "      proxy_url: \"", proxy.url(), "\"\n",
                     "      proxy_connect_header: {X-Note: [probe]}\n"));
  const Exposition m = Probe(target_.url("/status/200"), "proxied");
  EXPECT_EQ(m.Value("probe_success"), 1);
  EXPECT_EQ(m.Value("probe_http_status_code"), 200);
  const std::vector<ProxyRequest> asked = proxy.Requests();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].method, "GET");
  EXPECT_EQ(asked[0].target, target_.url("/status/200"));
}

// What the engine says of a modules file at start (CheckModulesWithEngine).
absl::Status CheckAtStart(const std::string& yaml) {
  absl::StatusOr<monitoring::BlackboxModules> modules =
      monitoring::ParseBlackboxModules(yaml);
  if (!modules.ok()) return modules.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Create(EngineOptions{.workers = 1});
  if (!engine.ok()) return engine.status();
  return monitoring::CheckModulesWithEngine(*modules, **engine);
}

TEST(ModulesMappedStartTest, ATlsFloorAboveTheCeilingStopsTheStart) {
  const absl::Status status = CheckAtStart(
      "modules:\n  m:\n    prober: http\n    http:\n"
      "      tls_config: {min_version: TLS13, max_version: TLS12}\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("module \"m\": tls_min_version: TLSv1.3 is above "
                        "tls_max_version TLSv1.2"));
}

TEST(ModulesMappedStartTest, AClientKeyThatDoesNotMatchStopsTheStart) {
  // Like a key blackbox_exporter cannot load: the file is refused, naming
  // the module and the field, never the key.
  TestCa ca("fanprobe client CA");
  const KeyAndCert a = ca.Issue("a", {.server = false});
  const KeyAndCert b = ca.Issue("b", {.server = false});
  TempDir dir;
  const std::string cert = dir.Write("a.pem", a.cert_pem);
  const std::string key = dir.Write("b.key", b.key_pem);
  const absl::Status status = CheckAtStart(
      absl::StrCat("modules:\n  mtls:\n    prober: http\n    http:\n"
                   "      tls_config: {cert_file: ",
                   cert, ", key_file: ", key, "}\n"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("module \"mtls\": client_certificate.key_pem"));
  EXPECT_THAT(status.message(), Not(HasSubstr("PRIVATE KEY")));
}

}  // namespace
}  // namespace fanprobe::testing
