// engine_proxy_test.cc: probes through a loopback HTTP proxy
// (tests/support/proxy_server.h), names served by the test's DNS server: an
// http target in absolute form and an https one through a CONNECT tunnel,
// each asked for the address the engine resolved (or for the name, when the
// proxy resolves), credentials and CONNECT headers to the proxy only,
// no_proxy, the destination policy on the proxy's address and the
// target's, and each way a proxy fails -- every failure followed by a
// success.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/dns_server.h"
#include "tests/support/proxy_server.h"
#include "tests/support/target_server.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::KeyAndCert;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::ProxyRequest;
using ::fanprobe::testing::ProxyServer;
using ::fanprobe::testing::ProxyServerOptions;
using ::fanprobe::testing::RefusedPort;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::TargetServer;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TlsTargetServer;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

class EngineProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = *std::move(dns);
    dns_->AddA("web.test", "127.0.0.1");
    dns_->AddA("proxy.test", "127.0.0.1");
    dns_->SetRcode("nowhere.test", 3);
    engine_ = MakeEngine({});
  }

  std::unique_ptr<Engine> MakeEngine(EngineOptions options) {
    options.workers = 1;
    testing::ResolveOnlyThrough(dns_->address(), &options);
    return testing::MakeEngine(options);
  }

  // Options that go through `proxy_url`, trusting ca_.
  std::shared_ptr<const ProbeOptions> Proxied(
      const std::string& proxy_url,
      std::function<void(ProbeOptions&)> edit = nullptr) {
    return Options([&](ProbeOptions& o) {
      o.proxy = ProxyOptions{.url = proxy_url};
      o.ca_pem = ca_.cert_pem();
      o.timeout = absl::Seconds(5);
      if (edit) edit(o);
    });
  }

  ProbeResult RunOne(ProbeTarget target, Engine* engine = nullptr) {
    testing::BatchRun run =
        testing::RunBatch(engine ? *engine : *engine_, {std::move(target)});
    EXPECT_EQ(run.results.size(), 1u);
    return run.results.empty() ? ProbeResult{} : run.results[0];
  }

  std::string WebUrl(const std::string& path) const {
    return absl::StrCat("http://web.test:", target_.port(), path);
  }
  static std::string ProxyUrl(const ProxyServer& proxy,
                              const std::string& userinfo = "") {
    return absl::StrCat("http://", userinfo, "proxy.test:", proxy.port());
  }
  static std::string Header(const ProxyRequest& request,
                            const std::string& name) {
    for (const auto& [key, value] : request.headers) {
      if (absl::EqualsIgnoreCase(key, name)) return value;
    }
    return "";
  }

  TestCa ca_{"fanprobe test CA"};
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<Engine> engine_;
  TargetServer target_;
};

TEST_F(EngineProxyTest, AnHttpTargetIsAskedOfTheProxyByItsAddress) {
  ProxyServer proxy;
  ProbeResult r = RunOne(
      Target(WebUrl("/echo_headers"),
             Proxied(ProxyUrl(proxy, "probe:s3cret@"), [&](ProbeOptions& o) {
               // The target sees its own name, and nothing meant for the proxy.
               o.body_must_match = {
                   absl::StrCat("\nHost: web.test:", target_.port(), "\n")};
               o.body_must_not_match = {"(?i)proxy-"};
             })));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.final_url, WebUrl("/echo_headers"));
  // What the engine connected to: the proxy.
  EXPECT_EQ(r.remote_ip, "127.0.0.1");
  EXPECT_EQ(r.remote_port, proxy.port());
  ASSERT_THAT(r.hops, SizeIs(1));
  EXPECT_THAT(r.hops[0].addresses, ::testing::ElementsAre("127.0.0.1"));
  const std::vector<ProxyRequest> asked = proxy.Requests();
  ASSERT_THAT(asked, SizeIs(1));
  EXPECT_EQ(asked[0].method, "GET");
  EXPECT_EQ(asked[0].target,
            absl::StrCat("http://127.0.0.1:", target_.port(), "/echo_headers"));
  // "probe:s3cret", base64.
  EXPECT_EQ(Header(asked[0], "Proxy-Authorization"), "Basic cHJvYmU6czNjcmV0");
  EXPECT_EQ(dns_->QueryCount("web.test", DnsServer::kTypeA), 1u);
}

TEST_F(EngineProxyTest, AnHttpsTargetGoesThroughATunnelToItsAddress) {
  TlsTargetServer web(ca_.Issue("web", {.dns_names = {"web.test"}}));
  ProxyServer proxy;
  ProbeResult r = RunOne(Target(web.url("web.test", "/status/200"),
                                Proxied(ProxyUrl(proxy), [](ProbeOptions& o) {
                                  o.proxy->connect_headers = {
                                      {"Proxy-Authorization", "Bearer t0ken"},
                                      {"X-Proxy-Note", "probe"}};
                                })));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  ASSERT_TRUE(r.tls.has_value());
  // The handshake names the target, and its certificate is verified.
  EXPECT_THAT(web.Stats().server_names, ::testing::ElementsAre("web.test"));
  const std::vector<ProxyRequest> asked = proxy.Requests();
  ASSERT_THAT(asked, SizeIs(1));
  EXPECT_EQ(asked[0].method, "CONNECT");
  EXPECT_EQ(asked[0].target, absl::StrCat("127.0.0.1:", web.port()));
  EXPECT_EQ(Header(asked[0], "Proxy-Authorization"), "Bearer t0ken");
  EXPECT_EQ(Header(asked[0], "X-Proxy-Note"), "probe");
}

TEST_F(EngineProxyTest, AProxyThatResolvesIsAskedForTheName) {
  TlsTargetServer web(ca_.Issue("web", {.dns_names = {"web.test"}}));
  ProxyServer proxy({.hosts = {{"web.test", "127.0.0.1"}}});
  auto resolving = Proxied(
      ProxyUrl(proxy), [](ProbeOptions& o) { o.proxy->proxy_resolves = true; });
  ProbeResult https =
      RunOne(Target(web.url("web.test", "/status/200"), resolving));
  ASSERT_EQ(https.outcome, Outcome::kOk) << https.error;
  ProbeResult http = RunOne(Target(WebUrl("/status/200"), resolving));
  ASSERT_EQ(http.outcome, Outcome::kOk) << http.error;
  const std::vector<ProxyRequest> asked = proxy.Requests();
  ASSERT_THAT(asked, SizeIs(2));
  EXPECT_EQ(asked[0].target, absl::StrCat("web.test:", web.port()));
  EXPECT_EQ(asked[1].target, WebUrl("/status/200"));
  // Only the proxy's name was looked up here.
  EXPECT_EQ(dns_->QueryCount("web.test", DnsServer::kTypeA), 0u);
  EXPECT_EQ(http.hops[0].timings.dns, absl::ZeroDuration());
}

TEST_F(EngineProxyTest, RedirectsGoThroughTheProxyToo) {
  ProxyServer proxy;
  ProbeResult r =
      RunOne(Target(WebUrl("/redirect/2"), Proxied(ProxyUrl(proxy))));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(r.redirects, 2);
  EXPECT_EQ(r.final_url, WebUrl("/status/200"));
  EXPECT_THAT(proxy.Requests(), SizeIs(3));
}

TEST_F(EngineProxyTest, NoProxyHostsAreReachedDirectly) {
  ProxyServer proxy;
  const auto bypassing = [&](std::vector<std::string> no_proxy) {
    return Proxied(ProxyUrl(proxy), [&](ProbeOptions& o) {
      o.proxy->no_proxy = std::move(no_proxy);
    });
  };
  for (const std::vector<std::string>& rules :
       std::vector<std::vector<std::string>>{
           {"web.test"},
           {"other.test", ".test"},
           {"*"},
           {absl::StrCat("web.test:", target_.port())}}) {
    SCOPED_TRACE(rules.back());
    ProbeResult r = RunOne(Target(WebUrl("/status/200"), bypassing(rules)));
    EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
    EXPECT_EQ(r.remote_port, target_.port());
  }
  EXPECT_THAT(proxy.Requests(), IsEmpty());
  // A rule for another port, or for the name's address, does not match a
  // target named by name.
  ProbeResult proxied = RunOne(
      Target(WebUrl("/status/200"), bypassing({"web.test:1", "127.0.0.0/8"})));
  EXPECT_EQ(proxied.outcome, Outcome::kOk) << proxied.error;
  EXPECT_EQ(proxied.remote_port, proxy.port());
  // By address, the block matches.
  ProbeResult direct = RunOne(
      Target(absl::StrCat("http://127.0.0.1:", target_.port(), "/status/200"),
             bypassing({"127.0.0.0/8"})));
  EXPECT_EQ(direct.remote_port, target_.port());
  EXPECT_THAT(proxy.Requests(), SizeIs(1));
}

TEST_F(EngineProxyTest, ARefusedTunnelIsAConnectErrorAndTheNextProbePasses) {
  TlsTargetServer web(ca_.Issue("web", {.dns_names = {"web.test"}}));
  TlsTargetServer other(ca_.Issue("web", {.dns_names = {"web.test"}}));
  ProxyServer proxy({.refused = {absl::StrCat("127.0.0.1:", web.port())}});
  ProbeResult refused = RunOne(
      Target(web.url("web.test", "/status/200"), Proxied(ProxyUrl(proxy))));
  EXPECT_EQ(refused.outcome, Outcome::kConnectError) << refused.error;
  EXPECT_EQ(refused.error, "the proxy answered CONNECT with 403");
  EXPECT_EQ(refused.status_code, 0);
  EXPECT_EQ(web.Stats().connections, 0);
  ProbeResult ok = RunOne(
      Target(other.url("web.test", "/status/200"), Proxied(ProxyUrl(proxy))));
  EXPECT_EQ(ok.outcome, Outcome::kOk) << ok.error;

  // An http target's refusal is the proxy's answer, as any other response.
  ProxyServer strict({.refused = {absl::StrCat("127.0.0.1:", target_.port())}});
  ProbeResult forbidden =
      RunOne(Target(WebUrl("/status/200"), Proxied(ProxyUrl(strict))));
  EXPECT_EQ(forbidden.outcome, Outcome::kUnexpectedStatus) << forbidden.error;
  EXPECT_EQ(forbidden.status_code, 403);
}

TEST_F(EngineProxyTest, AProxyThatCannotBeReachedFailsItsProbesOnly) {
  // Its name does not resolve; nothing listens on its port.
  ProbeResult unnamed = RunOne(
      Target(WebUrl("/status/200"), Proxied("http://nowhere.test:3128")));
  EXPECT_EQ(unnamed.outcome, Outcome::kConnectError) << unnamed.error;
  EXPECT_THAT(unnamed.error,
              ::testing::StartsWith("the proxy nowhere.test does not resolve"));
  // A port held bound but not listening: refused, and no other test's.
  RefusedPort closed;
  ProbeResult refused =
      RunOne(Target(WebUrl("/status/200"),
                    Proxied(absl::StrCat("http://127.0.0.1:", closed.port()))));
  EXPECT_EQ(refused.outcome, Outcome::kConnectError) << refused.error;
  ProxyServer proxy;
  EXPECT_EQ(
      RunOne(Target(WebUrl("/status/200"), Proxied(ProxyUrl(proxy)))).outcome,
      Outcome::kOk);
}

TEST_F(EngineProxyTest, ThePolicyChecksTheProxysAddressAndTheTargets) {
  ProxyServer proxy;
  // The proxy at 127.0.0.1 is denied; the target is allowed.
  EngineOptions deny_proxy;
  deny_proxy.destination_policy.deny.push_back(*Cidr::Parse("127.0.0.1/32"));
  std::unique_ptr<Engine> engine = MakeEngine(deny_proxy);
  dns_->AddA("allowed.test", "127.0.0.2");
  ProbeResult proxy_denied =
      RunOne(Target(absl::StrCat("http://allowed.test:", target_.port(), "/"),
                    Proxied(ProxyUrl(proxy))),
             engine.get());
  EXPECT_EQ(proxy_denied.outcome, Outcome::kDenied) << proxy_denied.error;
  EXPECT_THAT(proxy_denied.error,
              HasSubstr("every address of the proxy proxy.test is denied"));
  // The target at 127.0.0.3 is denied, named or by address; the proxy is
  // allowed.
  EngineOptions deny_target;
  deny_target.destination_policy.deny.push_back(*Cidr::Parse("127.0.0.3/32"));
  engine = MakeEngine(deny_target);
  dns_->AddA("denied.test", "127.0.0.3");
  ProbeResult named =
      RunOne(Target(absl::StrCat("http://denied.test:", target_.port(), "/"),
                    Proxied(ProxyUrl(proxy))),
             engine.get());
  EXPECT_EQ(named.outcome, Outcome::kDenied) << named.error;
  ProbeResult by_address =
      RunOne(Target(absl::StrCat("http://127.0.0.3:", target_.port(), "/"),
                    Proxied(ProxyUrl(proxy))),
             engine.get());
  EXPECT_EQ(by_address.outcome, Outcome::kDenied) << by_address.error;
  EXPECT_EQ(proxy.connections(), 0);
  // And a healthy probe after them passes.
  EXPECT_EQ(RunOne(Target(WebUrl("/status/200"), Proxied(ProxyUrl(proxy))),
                   engine.get())
                .outcome,
            Outcome::kOk);
}

TEST_F(EngineProxyTest, BadProxyOptionsAreRefusedWithoutQuotingTheUrl) {
  struct Case {
    ProxyOptions proxy;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{.url = "socks5://user:s3cret@proxy.test:1080"},
       "proxy.url: want http://[user:password@]host[:port] (an HTTP proxy)"},
      {{.url = "https://user:s3cret@proxy.test"},
       "proxy.url: want http://[user:password@]host[:port] (an HTTP proxy)"},
      {{.url = "proxy.test:3128"},
       "proxy.url: want http://[user:password@]host[:port] (an HTTP proxy)"},
      {{.url = "http://proxy.test", .connect_headers = {{"X-Bad", "a\r\nb"}}},
       "proxy.connect_headers[0].value: the value of \"X-Bad\" holds CR, LF, "
       "NUL or another control character"},
      {{.url = "http://proxy.test", .no_proxy = {"web.test", "a b"}},
       "proxy.no_proxy[1]: \"a b\" is not *, an address, a CIDR block or a "
       "domain (each with an optional :port)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    ProbeOptions options;
    options.proxy = c.proxy;
    const absl::Status status = engine_->CheckOptions(options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), c.message);
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("s3cret")));
  }
}

}  // namespace
}  // namespace fanprobe
