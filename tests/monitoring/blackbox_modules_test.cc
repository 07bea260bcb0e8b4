// Unit tests of monitoring/blackbox_modules.h: the modules file (each
// supported option and the start-up error for everything else) and
// blackbox_exporter's deadline rule.

#include "monitoring/blackbox_modules.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fanprobe::monitoring {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
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

TEST(BlackboxModulesTest, UnsupportedOptionsAreStartUpErrorsNamingTheKey) {
  struct Case {
    std::string yaml;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"modules: {m: {prober: http, http: {basic_auth: {username: u}}}}",
       "modules.m.http.basic_auth: not supported by fanprobe"},
      {"modules: {m: {prober: http, http: {valid_http_versions: "
       "[HTTP/1.1]}}}",
       "modules.m.http.valid_http_versions: not supported"},
      {"modules: {m: {prober: http, http: {fail_if_header_matches: []}}}",
       "modules.m.http.fail_if_header_matches: not supported"},
      {"modules: {m: {prober: http, http: {tls_config: {ca_file: x.pem}}}}",
       "modules.m.http.tls_config.ca_file: not supported"},
      {"modules: {m: {prober: tcp}}",
       "modules.m.prober: \"tcp\" is not supported by fanprobe"},
      {"modules: {m: {prober: http, tcp: {}}}",
       "modules.m.tcp: not supported by fanprobe, which probes over HTTP only"},
      {"modules: {m: {http: {}}}", "modules.m: prober is missing"},
      {"modules: {m: {prober: http, retries: 3}}",
       "modules.m.retries: not a module option fanprobe supports"},
      {"modules: {m: {prober: http, timeout: 5}}",
       "modules.m.timeout: not a duration"},
      {"modules: {m: {prober: http, http: {valid_status_codes: [2xx]}}}",
       "modules.m.http.valid_status_codes[0]: want an HTTP status code"},
      {"modules: {m: {prober: http, http: {fail_if_body_matches_regexp: "
       "[\"(unclosed\"]}}}",
       "modules.m.http.fail_if_body_matches_regexp[0]: not a valid regexp"},
      {"modules: {m: {prober: http, http: {preferred_ip_protocol: ip5}}}",
       "modules.m.http.preferred_ip_protocol: want ip4 or ip6"},
      {"modules: {m: {prober: http, http: {fail_if_ssl: maybe}}}",
       "modules.m.http.fail_if_ssl: want true or false"},
      {"modules: {m: {prober: http, http: {follow_redirects: true, "
       "no_follow_redirects: true}}}",
       "contradict"},
      {"probers: {}", "probers: unknown key"},
      {"modules: [", "not valid YAML"},
  };
  for (const Case& c : cases) {
    absl::Status status = ParseError(c.yaml);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.yaml;
  }
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
