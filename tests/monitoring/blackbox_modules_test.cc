// Unit tests of monitoring/blackbox_modules.h: the modules file (each
// option honoured, each loaded but unsupported, every problem of a bad file
// at once, Debian's own files whole), the store's reload, and
// blackbox_exporter's deadline rule.

#include "monitoring/blackbox_modules.h"

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace fanprobe::monitoring {
namespace {

using ::fanprobe::testing::TempDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

BlackboxModule ParseOne(const std::string& yaml, const std::string& name) {
  absl::StatusOr<BlackboxModules> modules = ParseBlackboxModules(yaml);
  EXPECT_TRUE(modules.ok()) << modules.status();
  if (!modules.ok() || !modules->contains(name)) return {};
  return modules->at(name);
}

absl::Status ParseError(const std::string& yaml) {
  return ParseBlackboxModules(yaml).status();
}

TEST(BlackboxModulesTest, DefaultsAreBlackboxExportersNotTheEngines) {
  BlackboxModules defaults = DefaultBlackboxModules();
  ASSERT_TRUE(defaults.contains("http_2xx"));
  const ProbeOptions& o = defaults.at("http_2xx").options;
  ASSERT_EQ(o.valid_status.size(), 1u);
  EXPECT_EQ(o.valid_status[0].min, 200);
  EXPECT_EQ(o.valid_status[0].max, 299);  // 2xx, not the engine's 200-399
  EXPECT_TRUE(o.follow_redirects);
  EXPECT_EQ(o.method, "GET");
  EXPECT_GT(o.max_body_bytes, uint64_t{1} << 40);  // no body size limit
  EXPECT_EQ(defaults.at("http_2xx").timeout, absl::ZeroDuration());

  // A module that sets nothing gets the same.
  BlackboxModule bare = ParseOne("modules:\n  m:\n    prober: http\n", "m");
  EXPECT_EQ(bare.options.valid_status[0].max, 299);
  EXPECT_EQ(bare.options.ip_family, IpFamily::kAny);
}

TEST(BlackboxModulesTest, EverySupportedOption) {
  BlackboxModule m = ParseOne(R"(
modules:
  full:
    prober: http
    timeout: 1m30s
    http:
      valid_status_codes: [200, 204, 404]
      method: POST
      headers:
        Content-Type: application/json
        X-Token: "abc: def"
      body: '{"ping": true}'
      no_follow_redirects: true
      fail_if_ssl: true
      fail_if_body_matches_regexp: ["error", "fail(ed)?"]
      fail_if_body_not_matches_regexp: ["ok"]
      tls_config:
        insecure_skip_verify: true
      preferred_ip_protocol: ip4
)",
                              "full");
  EXPECT_EQ(m.name, "full");
  EXPECT_EQ(m.timeout, absl::Seconds(90));
  std::vector<std::pair<int, int>> ranges;
  for (const StatusRange& r : m.options.valid_status) {
    ranges.emplace_back(r.min, r.max);
  }
  EXPECT_THAT(ranges,
              ElementsAre(Pair(200, 200), Pair(204, 204), Pair(404, 404)));
  EXPECT_EQ(m.options.method, "POST");
  EXPECT_THAT(m.options.headers,
              ElementsAre(Pair("Content-Type", "application/json"),
                          Pair("X-Token", "abc: def")));
  EXPECT_EQ(m.options.body, R"({"ping": true})");
  EXPECT_FALSE(m.options.follow_redirects);
  EXPECT_TRUE(m.fail_if_ssl);
  EXPECT_FALSE(m.fail_if_not_ssl);
  EXPECT_THAT(m.options.body_must_not_match, ElementsAre("error", "fail(ed)?"));
  EXPECT_THAT(m.options.body_must_match, ElementsAre("ok"));
  EXPECT_FALSE(m.options.tls_verify);
  EXPECT_EQ(m.options.ip_family, IpFamily::kIpv4);
  EXPECT_THAT(m.config_yaml, HasSubstr("valid_status_codes"));
}

TEST(BlackboxModulesTest, RedirectsAndIpProtocolVariants) {
  EXPECT_FALSE(ParseOne("modules: {m: {prober: http, http: "
                        "{follow_redirects: false}}}",
                        "m")
                   .options.follow_redirects);
  EXPECT_TRUE(ParseOne("modules: {m: {prober: http, http: "
                       "{no_follow_redirects: false}}}",
                       "m")
                  .options.follow_redirects);
  EXPECT_EQ(ParseOne("modules: {m: {prober: http, http: "
                     "{preferred_ip_protocol: ip6, ip_protocol_fallback: "
                     "false}}}",
                     "m")
                .options.ip_family,
            IpFamily::kIpv6);
  EXPECT_EQ(ParseOne("modules: {m: {prober: http, http: "
                     "{preferred_ip_protocol: ip6}}}",
                     "m")
                .options.ip_family,
            IpFamily::kAny);
  EXPECT_TRUE(ParseOne("modules: {m: {prober: http, http: "
                       "{fail_if_not_ssl: true}}}",
                       "m")
                  .fail_if_not_ssl);
  EXPECT_EQ(
      ParseOne("modules: {m: {prober: http, timeout: 500ms}}", "m").timeout,
      absl::Milliseconds(500));
}

TEST(BlackboxModulesTest, BadFilesAreRefusedNamingThePath) {
  struct Case {
    std::string yaml;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"modules: {m: {prober: http, http: {foo: 1}}}",
       "modules.m.http.foo: unknown key"},
      {"modules: {m: {prober: http, http: {tls_config: {foo: 1}}}}",
       "modules.m.http.tls_config.foo: unknown key"},
      {"modules: {m: {prober: http, http: {basic_auth: {user: u}}}}",
       "modules.m.http.basic_auth.user: unknown key"},
      {"modules: {m: {prober: gopher}}",
       "modules.m.prober: unknown prober \"gopher\""},
      {"modules: {m: {http: {}}}", "modules.m: prober is missing"},
      {"modules: {m: {prober: http, retries: 3}}",
       "modules.m.retries: unknown key"},
      {"modules: {m: {prober: http, timeout: 5}}",
       "modules.m.timeout: not a duration"},
      {"modules: {m: {prober: http, http: {valid_status_codes: [2xx]}}}",
       "modules.m.http.valid_status_codes[0]: want an HTTP status code"},
      {"modules: {m: {prober: http, http: {fail_if_body_matches_regexp: "
       "[\"(unclosed\"]}}}",
       "modules.m.http.fail_if_body_matches_regexp[0]: not a valid regexp"},
      {"modules: {m: {prober: http, http: {fail_if_header_matches: "
       "[{header: X, regexp: \"(\"}]}}}",
       "modules.m.http.fail_if_header_matches[0].regexp: not a valid regexp"},
      {"modules: {m: {prober: http, http: {fail_if_header_matches: "
       "[{regexp: x}]}}}",
       "modules.m.http.fail_if_header_matches[0]: header name must be set"},
      {"modules: {m: {prober: http, http: {preferred_ip_protocol: ip5}}}",
       "modules.m.http.preferred_ip_protocol: want ip4 or ip6"},
      {"modules: {m: {prober: http, http: {fail_if_ssl: maybe}}}",
       "modules.m.http.fail_if_ssl: want true or false"},
      {"modules: {m: {prober: http, http: {body_size_limit: lots}}}",
       "modules.m.http.body_size_limit: want a size"},
      {"modules: {m: {prober: http, http: {compression: zip}}}",
       "modules.m.http.compression: want gzip, br, deflate or identity"},
      {"modules: {m: {prober: http, http: {tls_config: {min_version: "
       "TLS14}}}}",
       "modules.m.http.tls_config.min_version: want TLS10"},
      {"modules: {m: {prober: http, http: {body: x, body_file: /dev/null}}}",
       "modules.m.http: body and body_file are mutually exclusive"},
      {"modules: {m: {prober: http, http: {follow_redirects: true, "
       "no_follow_redirects: true}}}",
       "contradict"},
      {"modules: {m: {prober: http, http: {basic_auth: {username: u}, "
       "bearer_token: t}}}",
       "modules.m.http: at most one of basic_auth, oauth2, bearer_token"},
      {"modules: {m: {prober: http, http: {bearer_token: t, "
       "bearer_token_file: f}}}",
       "at most one of bearer_token & bearer_token_file"},
      {"modules: {m: {prober: http, http: {authorization: {credentials: c}, "
       "basic_auth: {username: u}}}}",
       "at most one of basic_auth, oauth2 & authorization"},
      {"modules: {m: {prober: http, http: {authorization: {type: Basic}}}}",
       "modules.m.http.authorization.type: cannot be \"basic\""},
      {"modules: {m: {prober: http, http: {basic_auth: {password: p, "
       "password_file: f}}}}",
       "modules.m.http.basic_auth: at most one of password & password_file"},
      {"modules: {m: {prober: http, http: {tls_config: {cert_file: c}}}}",
       "modules.m.http.tls_config: a client certificate (cert or cert_file) "
       "needs its key"},
      {"modules: {m: {prober: http, http: {tls_config: {key: k}}}}",
       "needs its certificate"},
      {"modules: {m: {prober: http, http: {compression: gzip, headers: "
       "{Accept-Encoding: \"br, identity\"}}}}",
       "modules.m.http.compression: \"gzip\" is not acceptable to the "
       "module's Accept-Encoding header"},
      {"probers: {}", "probers: unknown key"},
      {"modules: [", "not valid YAML"},
  };
  for (const Case& c : cases) {
    absl::Status status = ParseError(c.yaml);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.yaml;
  }
}

TEST(BlackboxModulesTest, EveryProblemOfAFileIsReportedAtOnce) {
  const absl::Status status = ParseError(R"(
modules:
  a:
    prober: http
    http:
      foo: 1
      fail_if_ssl: maybe
      tls_config:
        bar: true
  b:
    prober: http
    timeout: soon
  c:
    prober: http
)");
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("4 problems:"));
  for (const char* line :
       {"modules.a.http.foo: unknown key", "modules.a.http.fail_if_ssl: want",
        "modules.a.http.tls_config.bar: unknown key",
        "modules.b.timeout: not a duration"}) {
    EXPECT_THAT(status.message(), HasSubstr(line));
  }
}

TEST(BlackboxModulesTest, OtherProbersLoadWithOneWarningEach) {
  absl::StatusOr<BlackboxConfig> config = ParseBlackboxConfig(R"(
modules:
  web: {prober: http}
  ping: {prober: icmp, icmp: {ttl: 5}}
  ssh: {prober: tcp, tcp: {query_response: [{expect: "^SSH-2.0-"}]}}
  ns: {prober: dns, dns: {query_name: example.test}}
  rpc: {prober: grpc, grpc: {tls: true}}
  sock: {prober: unix, unix: {query_response: [{expect: "^ok"}]}}
  ws: {prober: websocket, websocket: {query_response: [{expect: "^hi"}]}}
)");
  // unix (blackbox_exporter 0.28) and websocket (unreleased): in its
  // example.yml.
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->modules.size(), 7u);
  EXPECT_EQ(config->modules.at("ping").prober, "icmp");
  EXPECT_EQ(config->modules.at("web").prober, "http");
  EXPECT_EQ(config->modules.at("ws").prober, "websocket");
  ASSERT_EQ(config->warnings.size(), 6u);
  EXPECT_THAT(config->warnings,
              ::testing::Contains(HasSubstr(
                  "modules.ssh: prober \"tcp\" is not supported by fanprobe")));
}

TEST(BlackboxModulesTest, HttpHeadersBecomeRequestHeaders) {
  TempDir dir;
  const std::string token = dir.Write("token", "  from-file\n");
  const BlackboxModule m = ParseOne(absl::StrCat(R"(
modules:
  m:
    prober: http
    http:
      headers: {X-A: first}
      http_headers:
        X-A: {values: [second, third]}
        X-Token: {secrets: [hidden], files: [)",
                                                 token, R"(]}
        X-Empty:
)"),
                                    "m");
  EXPECT_THAT(m.unsupported, ::testing::IsEmpty());
  // Every value a header line of its own, after the module's headers; a
  // file's content less the whitespace around it.
  EXPECT_THAT(m.options.headers,
              ElementsAre(Pair("X-A", "first"), Pair("X-A", "second"),
                          Pair("X-A", "third"), Pair("X-Token", "hidden"),
                          Pair("X-Token", "from-file")));
}

TEST(BlackboxModulesTest, HttpHeadersAsPrometheusCommonRefusesThem) {
  absl::StatusOr<BlackboxModules> bad = ParseBlackboxModules(R"(
modules:
  m:
    prober: http
    http:
      http_headers:
        user-agent: {values: [me]}
        Host: {values: [h.test]}
        X-List: [a]
        X-Odd: {value: [a]}
        X-Map: {values: {a: b}}
)");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              AllOf(HasSubstr("modules.m.http.http_headers.user-agent: setting "
                              "header \"user-agent\" is not allowed"),
                    HasSubstr("modules.m.http.http_headers.Host: setting "
                              "header \"Host\" is not allowed"),
                    HasSubstr("modules.m.http.http_headers.X-List: want a map "
                              "of values, secrets and files"),
                    HasSubstr("modules.m.http.http_headers.X-Odd.value: "
                              "unknown key"),
                    HasSubstr("modules.m.http.http_headers.X-Map.values: "
                              "want a list")));
  // A file that cannot be read: the module loads, its probes fail naming it.
  const BlackboxModule missing = ParseOne(R"(
modules:
  m:
    prober: http
    http:
      http_headers: {X-Token: {files: [/nonexistent/token]}}
)",
                                          "m");
  EXPECT_THAT(missing.unsupported,
              ElementsAre(HasSubstr("modules.m.http.http_headers.X-Token."
                                    "files[0]: cannot read "
                                    "\"/nonexistent/token\"")));
}

TEST(BlackboxModulesTest, ProxyOptionsBecomeTheProbesProxy) {
  const BlackboxModule m = ParseOne(R"(
modules:
  m:
    prober: http
    http:
      proxy_url: "http://user:pw@proxy.test:3128"
      no_proxy: "web.test, .internal.test,10.0.0.0/8"
      proxy_connect_header:
        Proxy-Authorization: ["Bearer a", "Bearer b"]
        X-Note: [probe]
      skip_resolve_phase_with_proxy: true
)",
                                    "m");
  EXPECT_THAT(m.unsupported, ::testing::IsEmpty());
  ASSERT_TRUE(m.options.proxy.has_value());
  EXPECT_EQ(m.options.proxy->url, "http://user:pw@proxy.test:3128");
  EXPECT_THAT(m.options.proxy->no_proxy,
              ElementsAre("web.test", ".internal.test", "10.0.0.0/8"));
  EXPECT_THAT(m.options.proxy->connect_headers,
              ElementsAre(::testing::Pair("Proxy-Authorization", "Bearer a"),
                          ::testing::Pair("Proxy-Authorization", "Bearer b"),
                          ::testing::Pair("X-Note", "probe")));
  EXPECT_TRUE(m.options.proxy->proxy_resolves);
  EXPECT_THAT(m.config_yaml, Not(HasSubstr("Bearer a")));
  EXPECT_THAT(m.config_yaml, Not(HasSubstr(":pw@")));
}

TEST(BlackboxModulesTest, ProxyCombinationsPrometheusCommonRefusesAreRefused) {
  for (const auto& [http, message] :
       std::vector<std::pair<std::string, std::string>>{
           {"{no_proxy: web.test}",
            "if no_proxy is configured, proxy_url must also be configured"},
           {"{proxy_connect_header: {X-A: [b]}}",
            "if proxy_connect_header is configured, proxy_url or "
            "proxy_from_environment must also be configured"},
           {"{proxy_from_environment: true, proxy_url: \"http://p.test\"}",
            "if proxy_from_environment is configured, proxy_url must not be "
            "configured"},
           {"{proxy_connect_header: {X-A: b}, proxy_url: \"http://p.test\"}",
            "modules.m.http.proxy_connect_header.X-A: want a list of "
            "values"}}) {
    SCOPED_TRACE(http);
    absl::StatusOr<BlackboxModules> modules = ParseBlackboxModules(
        absl::StrCat("modules: {m: {prober: http, http: ", http, "}}"));
    EXPECT_EQ(modules.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(modules.status().message(), HasSubstr(message));
  }
}

TEST(BlackboxModulesTest, OptionsFanprobeCannotHonourLoadAndAreListed) {
  const BlackboxModule m = ParseOne(R"(
modules:
  m:
    prober: http
    http:
      oauth2: {client_id: i, token_url: "http://127.0.0.1:1/token"}
      proxy_url: "socks5://127.0.0.1:1080"
      skip_resolve_phase_with_proxy: true
      fail_if_body_json_matches_cel: 'body.ok == false'
      tls_config: {max_version: TLS11}
)",
                                    "m");
  EXPECT_THAT(
      m.unsupported,
      ElementsAre(HasSubstr("modules.m.http.oauth2: OAuth 2.0"),
                  HasSubstr("modules.m.http.fail_if_body_json_matches_cel:"),
                  HasSubstr("modules.m.http.tls_config.max_version: a TLS "
                            "version cap below TLS 1.2"),
                  HasSubstr("modules.m.http.proxy_url: a proxy other than "
                            "http:// (https, SOCKS)")));
  EXPECT_FALSE(m.options.proxy.has_value());
  // identity is no compression at all: nothing unsupported.
  EXPECT_THAT(ParseOne("modules: {m: {prober: http, http: {compression: "
                       "identity}}}",
                       "m")
                  .unsupported,
              ::testing::IsEmpty());
}

TEST(BlackboxModulesTest, HeaderRulesAreTheEnginesHeaderRules) {
  const BlackboxModule m = ParseOne(R"(
modules:
  m:
    prober: http
    http:
      fail_if_header_matches:
        - {header: Set-Cookie, regexp: '.*', allow_missing: true}
      fail_if_header_not_matches:
        - {header: Access-Control-Allow-Origin, regexp: '(\*|example\.com)'}
)",
                                    "m");
  EXPECT_THAT(m.unsupported, ::testing::IsEmpty());
  ASSERT_EQ(m.options.header_must_not_match.size(), 1u);
  EXPECT_EQ(m.options.header_must_not_match[0].name, "Set-Cookie");
  EXPECT_EQ(m.options.header_must_not_match[0].pattern, ".*");
  EXPECT_TRUE(m.options.header_must_not_match[0].allow_missing);
  ASSERT_EQ(m.options.header_must_match.size(), 1u);
  EXPECT_EQ(m.options.header_must_match[0].name, "Access-Control-Allow-Origin");
  EXPECT_EQ(m.options.header_must_match[0].pattern, "(\\*|example\\.com)");
  EXPECT_FALSE(m.options.header_must_match[0].allow_missing);
}

TEST(BlackboxModulesTest, AuthOptionsBecomeTheEnginesCredentials) {
  TempDir dir;
  const std::string user = dir.Write("user", "bob\n");
  const std::string password = dir.Write("password", "  pw-from-file \n");
  const std::string token = dir.Write("token", "tok-from-file\n");
  const BlackboxModules modules = *ParseBlackboxModules(absl::StrCat(
      "modules:\n"
      "  basic: {prober: http, http: {basic_auth: {username: alice, "
      "password: pw}}}\n"
      "  basic_files: {prober: http, http: {basic_auth: {username_file: ",
      user, ", password_file: ", password,
      "}}}\n"
      "  bearer: {prober: http, http: {bearer_token: tok}}\n"
      "  bearer_file: {prober: http, http: {bearer_token_file: ",
      token,
      "}}\n"
      "  authorization: {prober: http, http: {authorization: {credentials: "
      "c1}}}\n"
      "  token_type: {prober: http, http: {authorization: {type: Token, "
      "credentials_file: ",
      token,
      "}}}\n"
      "  own_header: {prober: http, http: {headers: {authorization: mine}, "
      "basic_auth: {username: u, password: p}}}\n"));
  const auto& basic = modules.at("basic").options;
  ASSERT_TRUE(basic.basic_auth.has_value());
  EXPECT_EQ(basic.basic_auth->username, "alice");
  EXPECT_EQ(basic.basic_auth->password, "pw");
  // Files are read at load, trimmed as prometheus/common trims them.
  const auto& files = modules.at("basic_files").options;
  ASSERT_TRUE(files.basic_auth.has_value());
  EXPECT_EQ(files.basic_auth->username, "bob");
  EXPECT_EQ(files.basic_auth->password, "pw-from-file");
  EXPECT_EQ(modules.at("bearer").options.bearer_token, "tok");
  EXPECT_EQ(modules.at("bearer_file").options.bearer_token, "tok-from-file");
  EXPECT_EQ(modules.at("authorization").options.bearer_token, "c1");
  const auto& token_type = modules.at("token_type").options;
  EXPECT_TRUE(token_type.bearer_token.empty());
  EXPECT_THAT(token_type.headers,
              ElementsAre(Pair("Authorization", "Token tok-from-file")));
  const auto& own = modules.at("own_header").options;
  EXPECT_FALSE(own.basic_auth.has_value());
  EXPECT_THAT(own.headers, ElementsAre(Pair("authorization", "mine")));
  for (const auto& [name, module] : modules) {
    EXPECT_THAT(module.unsupported, ::testing::IsEmpty()) << name;
  }

  // A file that cannot be read: the probes fail naming it.
  const BlackboxModule lost = ParseOne(
      "modules: {m: {prober: http, http: {basic_auth: {username: u, "
      "password_file: /nonexistent/pw}}}}",
      "m");
  EXPECT_FALSE(lost.options.basic_auth.has_value());
  EXPECT_THAT(lost.unsupported,
              ElementsAre(HasSubstr("modules.m.http.basic_auth.password_file: "
                                    "cannot read \"/nonexistent/pw\"")));
}

TEST(BlackboxModulesTest, CompressionIsTheEnginesAcceptEncoding) {
  EXPECT_EQ(
      ParseOne("modules: {m: {prober: http, http: {compression: gzip}}}", "m")
          .options.accept_encoding,
      "gzip");
  EXPECT_EQ(ParseOne("modules: {m: {prober: http, http: {compression: "
                     "deflate}}}",
                     "m")
                .options.accept_encoding,
            "deflate");
  // The module's own header: its acceptable codings, without q-values (the
  // engine sets the header itself); identity;q=0 is not asked for.
  const BlackboxModule with_header = ParseOne(
      "modules: {m: {prober: http, http: {compression: gzip, headers: "
      "{Accept-Encoding: \"gzip;q=0.9, deflate, identity;q=0\", X-A: b}}}}",
      "m");
  EXPECT_THAT(with_header.unsupported, ::testing::IsEmpty());
  EXPECT_EQ(with_header.options.accept_encoding, "gzip, deflate");
  EXPECT_THAT(with_header.options.headers, ElementsAre(Pair("X-A", "b")));
  // A coding the transport cannot decode is not asked for.
  const BlackboxModule star = ParseOne(
      "modules: {m: {prober: http, http: {compression: gzip, headers: "
      "{Accept-Encoding: \"*\"}}}}",
      "m");
  EXPECT_THAT(star.unsupported,
              ElementsAre(HasSubstr("modules.m.http.compression: compression "
                                    "with Accept-Encoding \"*\"")));
  // Without compression the header is the module's to send, undecoded.
  const BlackboxModule header_only = ParseOne(
      "modules: {m: {prober: http, http: {headers: {Accept-Encoding: br}}}}",
      "m");
  EXPECT_TRUE(header_only.options.accept_encoding.empty());
  EXPECT_THAT(header_only.options.headers,
              ElementsAre(Pair("Accept-Encoding", "br")));
}

TEST(BlackboxModulesTest, ClientCertificateFilesAreRead) {
  TempDir dir;
  const std::string cert = dir.Write("client.pem", "CERT PEM\n");
  const std::string key = dir.Write("client.key", "KEY PEM\n");
  const BlackboxModule m =
      ParseOne(absl::StrCat("modules: {m: {prober: http, http: {tls_config: "
                            "{cert_file: ",
                            cert, ", key_file: ", key, "}}}}"),
               "m");
  EXPECT_THAT(m.unsupported, ::testing::IsEmpty());
  ASSERT_TRUE(m.options.client_certificate.has_value());
  EXPECT_EQ(m.options.client_certificate->cert_pem, "CERT PEM\n");
  EXPECT_EQ(m.options.client_certificate->key_pem, "KEY PEM\n");
  const BlackboxModule missing =
      ParseOne(absl::StrCat("modules: {m: {prober: http, http: {tls_config: "
                            "{cert_file: ",
                            cert, ", key_file: /nonexistent/client.key}}}}"),
               "m");
  EXPECT_FALSE(missing.options.client_certificate.has_value());
  EXPECT_THAT(
      missing.unsupported,
      ElementsAre(HasSubstr("modules.m.http.tls_config.key_file: "
                            "cannot read \"/nonexistent/client.key\"")));
}

TEST(BlackboxModulesTest, ConfigYamlShowsNoSecret) {
  const BlackboxModules modules = *ParseBlackboxModules(R"(
modules:
  m:
    prober: http
    http:
      headers: {Authorization: hdr-secret-1, X-Visible: shown-value}
      basic_auth: {username: alice, password: pw-secret-2}
      tls_config: {cert: CERT, key: key-secret-3}
      proxy_url: "http://user:proxy-secret-4@127.0.0.1:3128"
  n:
    prober: http
    http:
      oauth2:
        client_id: id
        client_secret: oauth-secret-6
        token_url: "http://127.0.0.1:1/token"
      http_headers:
        X-Token: {secrets: [hh-secret-7]}
  o:
    prober: http
    http:
      bearer_token: bearer-secret-5
)");
  const std::string shown = modules.at("m").config_yaml +
                            modules.at("n").config_yaml +
                            modules.at("o").config_yaml;
  for (const char* secret :
       {"hdr-secret-1", "pw-secret-2", "key-secret-3", "proxy-secret-4",
        "bearer-secret-5", "oauth-secret-6", "hh-secret-7"}) {
    EXPECT_THAT(shown, Not(HasSubstr(secret))) << shown;
  }
  EXPECT_THAT(shown, HasSubstr("<secret>"));
  EXPECT_THAT(shown, HasSubstr("shown-value"));
  EXPECT_THAT(shown, HasSubstr("alice"));
  EXPECT_THAT(shown, HasSubstr("127.0.0.1:3128"));
}

// The files Debian's prometheus-blackbox-exporter ships (the Makefile
// installs it), whole.
constexpr char kDebianConfig[] = "/etc/prometheus/blackbox.yml";
constexpr char kDebianExample[] =
    "/usr/share/doc/prometheus-blackbox-exporter/examples/example.yml";

TEST(BlackboxModulesTest, DebiansBlackboxYmlLoadsWhole) {
  if (!std::ifstream(kDebianConfig)) {
    GTEST_SKIP() << kDebianConfig
                 << " is missing: apt-get install prometheus-blackbox-exporter";
  }
  absl::StatusOr<BlackboxConfig> config = LoadBlackboxConfig(kDebianConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  int http = 0, others = 0;
  for (const auto& [name, module] : config->modules) {
    (module.prober == "http" ? http : others)++;
    EXPECT_THAT(module.unsupported, ::testing::IsEmpty()) << name;
  }
  EXPECT_GE(http, 2);  // http_2xx, http_post_2xx
  EXPECT_EQ(config->modules.at("http_post_2xx").options.method, "POST");
  EXPECT_EQ(static_cast<int>(config->warnings.size()), others);
  EXPECT_GT(others, 0);
}

TEST(BlackboxModulesTest, DebiansExampleYmlLoadsWhole) {
  if (!std::ifstream(kDebianExample)) {
    GTEST_SKIP() << kDebianExample
                 << " is missing: apt-get install prometheus-blackbox-exporter";
  }
  absl::StatusOr<BlackboxConfig> config = LoadBlackboxConfig(kDebianExample);
  ASSERT_TRUE(config.ok()) << config.status();
  int others = 0;
  for (const auto& [name, module] : config->modules) {
    if (module.prober != "http") ++others;
  }
  EXPECT_EQ(static_cast<int>(config->warnings.size()), others);
  EXPECT_GT(others, 0);
  // What the example asks for is what each module carries.
  const BlackboxModule& example = config->modules.at("http_2xx_example");
  EXPECT_THAT(example.valid_http_versions, ElementsAre("HTTP/1.1", "HTTP/2.0"));
  EXPECT_EQ(example.options.ip_family, IpFamily::kIpv4);
  EXPECT_EQ(example.timeout, absl::Seconds(5));
  EXPECT_THAT(example.unsupported, ::testing::IsEmpty());
  EXPECT_EQ(example.options.header_must_not_match.size(), 1u);
  EXPECT_EQ(example.options.header_must_match.size(), 1u);
  EXPECT_EQ(config->modules.at("http_post_2xx").options.body, "{}");
  const BlackboxModule& basic = config->modules.at("http_basic_auth_example");
  EXPECT_THAT(basic.unsupported, ::testing::IsEmpty());
  ASSERT_TRUE(basic.options.basic_auth.has_value());
  EXPECT_EQ(basic.options.basic_auth->username, "username");
  EXPECT_THAT(basic.config_yaml, Not(HasSubstr("mysecret")));
  EXPECT_EQ(config->modules.at("http_gzip").options.accept_encoding, "gzip");
  EXPECT_EQ(config->modules.at("http_gzip_with_accept_encoding")
                .options.accept_encoding,
            "gzip");
  const BlackboxModule& proxied = config->modules.at("http_with_proxy");
  EXPECT_THAT(proxied.unsupported, ::testing::IsEmpty());
  ASSERT_TRUE(proxied.options.proxy.has_value());
  EXPECT_EQ(proxied.options.proxy->url, "http://127.0.0.1:3128");
  EXPECT_TRUE(proxied.options.proxy->proxy_resolves);
}

TEST(BlackboxModulesStoreTest, AReloadSwapsTheModulesAndABadFileKeepsThem) {
  TempDir dir;
  const std::string path =
      dir.Write("modules.yml", "modules: {one: {prober: http}}\n");
  BlackboxModulesStore store(
      path, *ParseBlackboxModules("modules: {one: {prober: http}}\n"));
  const std::shared_ptr<const BlackboxModules> before = store.Get();
  EXPECT_TRUE(store.State().last_successful);

  dir.Write("modules.yml",
            "modules: {two: {prober: http}, ping: {prober: icmp}}\n");
  absl::StatusOr<std::vector<std::string>> good = store.Reload();
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_THAT(*good, ElementsAre(HasSubstr("modules.ping: prober \"icmp\"")));
  EXPECT_TRUE(store.Get()->contains("two"));
  EXPECT_FALSE(store.Get()->contains("one"));
  EXPECT_TRUE(before->contains("one"));  // a holder keeps what it had
  const absl::Time success = store.State().last_success;

  dir.Write("modules.yml", "modules: {three: {prober: http, bad: 1}}\n");
  absl::StatusOr<std::vector<std::string>> bad = store.Reload();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr(path + ": modules.three.bad: unknown key"));
  EXPECT_TRUE(store.Get()->contains("two"));
  EXPECT_FALSE(store.State().last_successful);
  EXPECT_EQ(store.State().last_success, success);
}

TEST(BlackboxModulesStoreTest, TheCheckGuardsEveryReloadUntilRemoved) {
  TempDir dir;
  const std::string path =
      dir.Write("modules.yml", "modules: {one: {prober: http}}\n");
  BlackboxModulesStore store(
      path, *ParseBlackboxModules("modules: {one: {prober: http}}\n"));
  // A check that refuses any module named "bad", as the engine refuses a
  // module it cannot run.
  const auto no_bad = [](const BlackboxModules& modules) {
    return modules.contains("bad")
               ? absl::InvalidArgumentError("module \"bad\": refused")
               : absl::OkStatus();
  };
  const auto refuse_all = [](const BlackboxModules&) {
    return absl::InvalidArgumentError("refused");
  };
  // Installed only when what is held passes it.
  EXPECT_EQ(store.SetCheck(refuse_all).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store.SetCheck(no_bad).ok());

  dir.Write("modules.yml",
            "modules: {two: {prober: http}, bad: {prober: http}}\n");
  absl::StatusOr<std::vector<std::string>> refused = store.Reload();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(), path + ": module \"bad\": refused");
  EXPECT_TRUE(store.Get()->contains("one"));
  EXPECT_FALSE(store.Get()->contains("two"));
  EXPECT_FALSE(store.State().last_successful);

  // Removed, the same file loads: only parsing judges it.
  ASSERT_TRUE(store.SetCheck(nullptr).ok());
  ASSERT_TRUE(store.Reload().ok());
  EXPECT_TRUE(store.Get()->contains("bad"));
  EXPECT_TRUE(store.State().last_successful);
}

TEST(BlackboxModulesTest, LoadNamesTheFile) {
  absl::StatusOr<BlackboxModules> missing =
      LoadBlackboxModules("/nonexistent/modules.yml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("/nonexistent/modules.yml"));
}

TEST(ProbeTimeoutTest, BlackboxExportersRule) {
  const absl::Duration offset = absl::Milliseconds(500);
  // The scrape's timeout less the offset...
  EXPECT_EQ(*ProbeTimeout("10", absl::ZeroDuration(), offset),
            absl::Milliseconds(9500));
  EXPECT_EQ(*ProbeTimeout("2.5", absl::ZeroDuration(), offset),
            absl::Seconds(2));
  // ...or the module's timeout when shorter...
  EXPECT_EQ(*ProbeTimeout("10", absl::Seconds(3), offset), absl::Seconds(3));
  EXPECT_EQ(*ProbeTimeout("2", absl::Seconds(3), offset),
            absl::Milliseconds(1500));
  // ...120 s without the header (or with 0)...
  EXPECT_EQ(*ProbeTimeout("", absl::ZeroDuration(), offset),
            absl::Milliseconds(119500));
  EXPECT_EQ(*ProbeTimeout("0", absl::ZeroDuration(), offset),
            absl::Milliseconds(119500));
  // ...and the module's timeout when the offset eats the scrape's.
  EXPECT_EQ(*ProbeTimeout("0.2", absl::Seconds(1), offset), absl::Seconds(1));
  EXPECT_EQ(ProbeTimeout("soon", absl::ZeroDuration(), offset).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Issue 13: "inf", "nan" or "1e308" removed the limit (a probe's target
// connection was still open after 124 s).  The header must be a finite
// positive number; a huge one is held to the server's maximum.
TEST(ProbeTimeoutTest, HeaderMustBeFiniteAndPositive) {
  const absl::Duration offset = absl::Milliseconds(500);
  const absl::Duration max = absl::Seconds(30);
  for (const char* header :
       {"inf", "+inf", "-inf", "Infinity", "nan", "NaN", "-nan", "-1", "-0.5",
        "1e309", "soon", "1s", "0x", " "}) {
    absl::StatusOr<absl::Duration> timeout =
        ProbeTimeout(header, absl::ZeroDuration(), offset, max);
    EXPECT_EQ(timeout.status().code(), absl::StatusCode::kInvalidArgument)
        << header << " -> " << timeout.value_or(absl::ZeroDuration());
  }
  EXPECT_THAT(
      ProbeTimeout("inf", absl::ZeroDuration(), offset, max).status().message(),
      HasSubstr("not a finite number"));
  EXPECT_THAT(
      ProbeTimeout("-1", absl::ZeroDuration(), offset, max).status().message(),
      HasSubstr("must be positive"));
}

TEST(ProbeTimeoutTest, ClampedToTheServersMaximum) {
  const absl::Duration offset = absl::Milliseconds(500);
  const absl::Duration max = absl::Seconds(30);
  // A finite but huge header, and the 120 s default, are held to the maximum
  // before the offset comes off.
  EXPECT_EQ(*ProbeTimeout("1e308", absl::ZeroDuration(), offset, max),
            absl::Milliseconds(29500));
  EXPECT_EQ(*ProbeTimeout("", absl::ZeroDuration(), offset, max),
            absl::Milliseconds(29500));
  EXPECT_EQ(*ProbeTimeout("0", absl::ZeroDuration(), offset, max),
            absl::Milliseconds(29500));
  // A module's longer timeout is held to it too.
  EXPECT_EQ(*ProbeTimeout("0.2", absl::Minutes(5), offset, max),
            absl::Seconds(30));
  // Below the maximum nothing changes.
  EXPECT_EQ(*ProbeTimeout("10", absl::ZeroDuration(), offset, max),
            absl::Milliseconds(9500));
  EXPECT_EQ(*ProbeTimeout("10", absl::Seconds(3), offset, max),
            absl::Seconds(3));
}

}  // namespace
}  // namespace fanprobe::monitoring
