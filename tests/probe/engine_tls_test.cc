// engine_tls_test.cc: https probes against a loopback HTTPS target with
// real certificates (tests/support/tls_target_server.h): verification
// against the probe's CA, a full handshake for every fresh probe, the TLS
// details a result carries, each way a handshake fails, the TLS version
// range a probe allows, and a server name of its own (SNI) for a target
// dialled by address.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "probe/engine.h"
#include "tests/probe/engine_test_util.h"
#include "tests/support/dns_server.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_target_server.h"

namespace fanprobe {
namespace {

using ::fanprobe::testing::BatchRun;
using ::fanprobe::testing::DnsServer;
using ::fanprobe::testing::ExpectConsistent;
using ::fanprobe::testing::IssueOptions;
using ::fanprobe::testing::KeyAndCert;
using ::fanprobe::testing::kPatience;
using ::fanprobe::testing::Options;
using ::fanprobe::testing::Target;
using ::fanprobe::testing::Targets;
using ::fanprobe::testing::TestCa;
using ::fanprobe::testing::TlsStallPort;
using ::fanprobe::testing::TlsTargetOptions;
using ::fanprobe::testing::TlsTargetServer;
using ::fanprobe::testing::TlsTargetStats;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

class EngineTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DnsServer>> dns = DnsServer::Start();
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = *std::move(dns);
    dns_->AddWildcardA("tls.test", "127.0.0.1");
    EngineOptions options;
    options.workers = 2;
    testing::ResolveOnlyThrough(dns_->address(), &options);
    engine_ = testing::MakeEngine(options);
  }

  // Options that trust `ca` only.
  static std::shared_ptr<const ProbeOptions> Trusting(
      const TestCa& ca, std::function<void(ProbeOptions&)> edit = nullptr) {
    return Options([&](ProbeOptions& o) {
      o.ca_pem = ca.cert_pem();
      o.timeout = absl::Seconds(5);
      if (edit) edit(o);
    });
  }

  BatchRun Run(std::vector<ProbeTarget> targets,
               const BatchOptions& options = {}) {
    return testing::RunBatch(*engine_, std::move(targets), options);
  }

  ProbeResult RunOne(ProbeTarget target) {
    BatchRun run = Run({std::move(target)});
    EXPECT_EQ(run.results.size(), 1u);
    return run.results.empty() ? ProbeResult{} : run.results[0];
  }

  TestCa ca_{"fanprobe test CA"};
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTlsTest, VerifiedProbeReportsItsHandshake) {
  IssueOptions issue;
  issue.dns_names = {"web.tls.test", "*.web.tls.test"};
  issue.ip_addresses = {"127.0.0.1"};
  KeyAndCert identity = ca_.Issue("web.tls.test", issue);
  TlsTargetServer server(identity);
  ProbeResult r =
      RunOne(Target(server.url("web.tls.test", "/status/200"), Trusting(ca_)));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  ASSERT_TRUE(r.tls.has_value());
  EXPECT_EQ(r.tls->version, "TLSv1.3");
  EXPECT_THAT(r.tls->cipher, ::testing::StartsWith("TLS_AES_"));
  EXPECT_FALSE(r.tls->resumed);
  // The verified chain: the leaf, then the CA.
  ASSERT_THAT(r.tls->chain, SizeIs(2));
  EXPECT_EQ(r.tls->chain[0].subject, "CN=web.tls.test,O=fanprobe");
  EXPECT_EQ(r.tls->chain[0].issuer, "CN=fanprobe test CA,O=fanprobe");
  EXPECT_EQ(r.tls->chain[1].subject, "CN=fanprobe test CA,O=fanprobe");
  EXPECT_EQ(r.tls->chain[0].sha256_fingerprint.size(), 64u);
  EXPECT_FALSE(r.tls->chain[0].serial.empty());
  EXPECT_LT(r.tls->chain[0].not_before, absl::Now());
  EXPECT_GT(r.tls->chain[0].not_after, absl::Now());
  // The DNS names only, in certificate order; the IP address is no DNS name.
  EXPECT_EQ(r.tls->chain[0].dns_names,
            (std::vector<std::string>{"web.tls.test", "*.web.tls.test"}));
  EXPECT_THAT(r.tls->chain[1].dns_names, ::testing::IsEmpty());
  ASSERT_TRUE(r.cert_expiry.has_value());
  EXPECT_LE(*r.cert_expiry, r.tls->chain[0].not_after);
  EXPECT_GT(r.timings.tls, r.timings.connect);
  EXPECT_EQ(server.Stats().server_names,
            std::vector<std::string>{"web.tls.test"});
}

TEST_F(EngineTlsTest, EveryFreshProbeDoesAFullHandshake) {
  TlsTargetOptions resumable;
  resumable.allow_resumption = true;
  TlsTargetServer server(ca_, resumable);
  BatchOptions one_at_a_time;
  one_at_a_time.max_concurrency = 1;
  BatchRun run =
      Run(Targets(20, server.url("/status/200"), Trusting(ca_)), one_at_a_time);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 20u);
  for (const ProbeResult& r : run.results) {
    ASSERT_TRUE(r.tls.has_value());
    EXPECT_FALSE(r.tls->resumed);
  }
  ASSERT_TRUE(server.WaitFor(
      [](const TlsTargetStats& s) { return s.handshakes == 20; }, kPatience));
  EXPECT_EQ(server.Stats().resumed_handshakes, 0);
  EXPECT_EQ(server.Stats().connections, 20);
}

TEST_F(EngineTlsTest, ReusedConnectionsMayResumeSessions) {
  TlsTargetServer server(ca_);
  auto reuse = Trusting(ca_, [](ProbeOptions& o) {
    o.reuse_connections = true;
    o.http_version = HttpVersion::kHttp1_1;
  });
  BatchOptions one_at_a_time;
  one_at_a_time.max_concurrency = 1;
  BatchRun run =
      Run(Targets(10, server.url("/status/200"), reuse), one_at_a_time);
  ExpectConsistent(run);
  EXPECT_EQ(run.summary.succeeded, 10u);
  // Kept connections: at most one handshake per worker.
  EXPECT_LE(server.Stats().connections, 2);
}

TEST_F(EngineTlsTest, CaPemReplacesTheSystemTrust) {
  TlsTargetServer server(ca_);
  TestCa other("another CA");
  ProbeResult wrong_ca =
      RunOne(Target(server.url("/status/200"), Trusting(other)));
  EXPECT_EQ(wrong_ca.outcome, Outcome::kTlsError) << wrong_ca.error;
  // The system's CAs do not know a throwaway CA either.
  ProbeResult system = RunOne(
      Target(server.url("/status/200"),
             Options([](ProbeOptions& o) { o.timeout = absl::Seconds(5); })));
  EXPECT_EQ(system.outcome, Outcome::kTlsError) << system.error;
  ProbeResult right = RunOne(Target(server.url("/status/200"), Trusting(ca_)));
  EXPECT_EQ(right.outcome, Outcome::kOk) << right.error;
}

TEST_F(EngineTlsTest, BadCertificatesAreTlsErrors) {
  struct Case {
    const char* name;
    IssueOptions issue;
  };
  IssueOptions expired;
  expired.dns_names = {"web.tls.test"};
  expired.not_before = -absl::Hours(48);
  expired.not_after = -absl::Hours(24);
  IssueOptions wrong_name;
  wrong_name.dns_names = {"other.tls.test"};
  IssueOptions self_signed;
  self_signed.dns_names = {"web.tls.test"};
  self_signed.self_signed = true;
  for (const Case& c : std::vector<Case>{{"expired", expired},
                                         {"wrong name", wrong_name},
                                         {"self-signed", self_signed}}) {
    SCOPED_TRACE(c.name);
    TlsTargetServer server(ca_.Issue("web.tls.test", c.issue));
    ProbeResult r = RunOne(
        Target(server.url("web.tls.test", "/status/200"), Trusting(ca_)));
    EXPECT_EQ(r.outcome, Outcome::kTlsError) << r.error;
    EXPECT_EQ(r.status_code, 0);
    // Without verification the same certificate is fine.
    ProbeResult unverified = RunOne(
        Target(server.url("web.tls.test", "/status/200"),
               Trusting(ca_, [](ProbeOptions& o) { o.tls_verify = false; })));
    EXPECT_EQ(unverified.outcome, Outcome::kOk) << unverified.error;
    ASSERT_TRUE(unverified.tls.has_value());
    EXPECT_FALSE(unverified.tls->chain.empty());
  }
}

TEST_F(EngineTlsTest, AStalledHandshakeIsATimeout) {
  TlsStallPort stall;
  ProbeResult r =
      RunOne(Target(stall.url("/"), Trusting(ca_, [](ProbeOptions& o) {
                      o.timeout = absl::Milliseconds(400);
                    })));
  EXPECT_EQ(r.outcome, Outcome::kTimeout) << r.error;
  EXPECT_TRUE(stall.WaitFor(
      [](const auto& s) { return s.closed_by_client == 1; }, kPatience));
}

TEST_F(EngineTlsTest, Tls12ServerIsReportedAsSuch) {
  TlsTargetOptions tls12;
  tls12.max_version = testing::TlsVersion::kTls12;
  TlsTargetServer server(ca_, tls12);
  ProbeResult r = RunOne(Target(server.url("/status/200"), Trusting(ca_)));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  ASSERT_TRUE(r.tls.has_value());
  EXPECT_EQ(r.tls->version, "TLSv1.2");
  // IANA's name, not OpenSSL's ("ECDHE-ECDSA-...").
  EXPECT_THAT(r.tls->cipher, ::testing::StartsWith("TLS_ECDHE_ECDSA_WITH_"));
}

TEST_F(EngineTlsTest, TheProbesTlsFloorAndCeilingBoundTheHandshake) {
  TlsTargetOptions only12;
  only12.max_version = testing::TlsVersion::kTls12;
  TlsTargetServer tls12(ca_, only12);
  TlsTargetOptions only13;
  only13.min_version = testing::TlsVersion::kTls13;
  TlsTargetServer tls13(ca_, only13);
  auto floor13 = Trusting(
      ca_, [](ProbeOptions& o) { o.tls_min_version = TlsVersion::kTls1_3; });
  auto cap12 = Trusting(
      ca_, [](ProbeOptions& o) { o.tls_max_version = TlsVersion::kTls1_2; });
  BatchRun run = Run({Target(tls12.url("/status/200"), floor13),
                      Target(tls13.url("/status/200"), floor13),
                      Target(tls12.url("/status/200"), cap12),
                      Target(tls13.url("/status/200"), cap12),
                      // A failure is followed by a success on the same
                      // engine, with the default range.
                      Target(tls12.url("/status/200"), Trusting(ca_))});
  ExpectConsistent(run);
  ASSERT_THAT(run.results, SizeIs(5));
  std::map<uint32_t, ProbeResult> r = testing::ByIndex(run.results);
  EXPECT_EQ(r[0].outcome, Outcome::kTlsError) << r[0].error;
  EXPECT_EQ(r[0].status_code, 0);
  ASSERT_EQ(r[1].outcome, Outcome::kOk) << r[1].error;
  EXPECT_EQ(r[1].tls->version, "TLSv1.3");
  ASSERT_EQ(r[2].outcome, Outcome::kOk) << r[2].error;
  EXPECT_EQ(r[2].tls->version, "TLSv1.2");
  EXPECT_EQ(r[3].outcome, Outcome::kTlsError) << r[3].error;
  ASSERT_EQ(r[4].outcome, Outcome::kOk) << r[4].error;
  EXPECT_EQ(r[4].tls->version, "TLSv1.2");
  EXPECT_EQ(tls12.Stats().requests, 2);
  EXPECT_EQ(tls13.Stats().requests, 1);

  ProbeOptions upside_down;
  upside_down.tls_min_version = TlsVersion::kTls1_3;
  upside_down.tls_max_version = TlsVersion::kTls1_2;
  const absl::Status status = engine_->CheckOptions(upside_down);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "tls_min_version: TLSv1.3 is above tls_max_version TLSv1.2");
}

TEST_F(EngineTlsTest, ATlsServerNameIsSentAndVerifiedWhileTheUrlsHostIsDialed) {
  // A virtual host known by name only: its certificate names vhost.test,
  // and the probe dials 127.0.0.1 (blackbox_exporter's hostname= and
  // tls_config.server_name).
  const KeyAndCert vhost = ca_.Issue("vhost", {.dns_names = {"vhost.test"}});
  TlsTargetServer server(vhost);
  const std::string authority = absl::StrCat("127.0.0.1:", server.port());
  auto named = Trusting(ca_, [&](ProbeOptions& o) {
    o.tls_server_name = "vhost.test";
    // The Host header still names the URL's host.
    o.body_must_match = {absl::StrCat("\nHost: ", authority, "\n")};
  });
  ProbeResult by_ip =
      RunOne(Target(server.url("/echo_headers"), Trusting(ca_)));
  EXPECT_EQ(by_ip.outcome, Outcome::kTlsError) << by_ip.error;
  ProbeResult ok = RunOne(Target(server.url("/echo_headers"), named));
  ASSERT_EQ(ok.outcome, Outcome::kOk) << ok.error;
  EXPECT_EQ(ok.final_url, server.url("/echo_headers"));
  EXPECT_EQ(ok.remote_ip, "127.0.0.1");
  ASSERT_TRUE(ok.tls.has_value());
  EXPECT_THAT(ok.tls->chain.front().dns_names, ElementsAre("vhost.test"));
  EXPECT_THAT(server.Stats().server_names, ElementsAre("", "vhost.test"));

  // A Host header of the options' own is the one sent.
  ProbeResult host = RunOne(
      Target(server.url("/echo_headers"), Trusting(ca_, [](ProbeOptions& o) {
               o.tls_server_name = "vhost.test";
               o.headers = {{"Host", "vhost.test"}};
               o.body_must_match = {"\nHost: vhost.test\n"};
             })));
  EXPECT_EQ(host.outcome, Outcome::kOk) << host.error;

  // A relative redirect stays on the target's host, and so does the name;
  // every hop's URL is the target's own.
  ProbeResult redirected = RunOne(
      Target(server.url("/redirect/2"), Trusting(ca_, [](ProbeOptions& o) {
               o.tls_server_name = "vhost.test";
             })));
  ASSERT_EQ(redirected.outcome, Outcome::kOk) << redirected.error;
  ASSERT_THAT(redirected.hops, SizeIs(3));
  for (const Hop& hop : redirected.hops) {
    EXPECT_THAT(hop.url, StartsWith(absl::StrCat("https://", authority, "/")));
  }
  EXPECT_THAT(redirected.hops[0].location,
              StartsWith(absl::StrCat("https://", authority, "/")));
  EXPECT_EQ(redirected.final_url, server.url("/status/200"));

  ProbeOptions bad;
  bad.tls_server_name = "vhost.test:443";
  const absl::Status status = engine_->CheckOptions(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "tls_server_name: \"vhost.test:443\" is not a host name or IP "
            "address");
}

TEST_F(EngineTlsTest, KeptConnectionsAreNotSharedAcrossTargetsOfOneServerName) {
  // Two targets behind one name: with connections kept, each probe still
  // reaches the address its URL names.
  const KeyAndCert vhost = ca_.Issue("vhost", {.dns_names = {"vhost.test"}});
  TlsTargetServer a(vhost);
  TlsTargetServer b(vhost);
  auto kept = Trusting(ca_, [](ProbeOptions& o) {
    o.tls_server_name = "vhost.test";
    o.reuse_connections = true;
  });
  std::vector<ProbeTarget> targets;
  for (int i = 0; i < 3; ++i) {
    targets.push_back(Target(a.url("/status/200"), kept));
    targets.push_back(Target(b.url("/status/200"), kept));
  }
  BatchOptions one_at_a_time;
  one_at_a_time.max_concurrency = 1;
  BatchRun run = Run(std::move(targets), one_at_a_time);
  ExpectConsistent(run);
  for (const ProbeResult& r : run.results) {
    EXPECT_EQ(r.outcome, Outcome::kOk) << r.error;
  }
  EXPECT_EQ(a.Stats().requests, 3);
  EXPECT_EQ(b.Stats().requests, 3);
}

// A mutual-TLS target: it asks for a certificate issued by `client_ca`.
TlsTargetOptions MutualTls(
    const TestCa& client_ca,
    testing::TlsVersion max_version = testing::TlsVersion::kTls13) {
  TlsTargetOptions options;
  options.client_ca_pem = client_ca.cert_pem();
  options.max_version = max_version;
  return options;
}

TEST_F(EngineTlsTest, ClientCertificateIsPresented) {
  TestCa client_ca("fanprobe client CA");
  TlsTargetServer server(ca_, MutualTls(client_ca));
  const KeyAndCert client = client_ca.Issue("probe-client", {.server = false});
  ProbeResult r = RunOne(
      Target(server.url("/status/200"), Trusting(ca_, [&](ProbeOptions& o) {
               o.client_certificate = ClientCertificate{
                   .cert_pem = client.cert_pem, .key_pem = client.key_pem};
             })));
  ASSERT_EQ(r.outcome, Outcome::kOk) << r.error;
  EXPECT_EQ(server.Stats().client_subjects,
            std::vector<std::string>{"CN=probe-client,O=fanprobe"});

  // Without verifying the server, the certificate is still presented.
  ProbeResult unverified =
      RunOne(Target(server.url("/status/200"), Options([&](ProbeOptions& o) {
                      o.tls_verify = false;
                      o.client_certificate =
                          ClientCertificate{.cert_pem = client.cert_pem,
                                            .key_pem = client.key_pem};
                    })));
  EXPECT_EQ(unverified.outcome, Outcome::kOk) << unverified.error;
}

TEST_F(EngineTlsTest, WithoutTheClientCertificateTheHandshakeFails) {
  TestCa client_ca("fanprobe client CA");
  TestCa stranger("a stranger's CA");
  const KeyAndCert unknown = stranger.Issue("probe-client", {.server = false});
  // TLS 1.2: the server refuses inside the handshake.
  TlsTargetServer tls12(ca_, MutualTls(client_ca, testing::TlsVersion::kTls12));
  ProbeResult none = RunOne(Target(tls12.url("/status/200"), Trusting(ca_)));
  EXPECT_EQ(none.outcome, Outcome::kTlsError) << none.error;
  EXPECT_EQ(none.status_code, 0);
  ProbeResult wrong = RunOne(
      Target(tls12.url("/status/200"), Trusting(ca_, [&](ProbeOptions& o) {
               o.client_certificate = ClientCertificate{
                   .cert_pem = unknown.cert_pem, .key_pem = unknown.key_pem};
             })));
  EXPECT_EQ(wrong.outcome, Outcome::kTlsError) << wrong.error;
  EXPECT_EQ(tls12.Stats().requests, 0);
  // TLS 1.3: the client's handshake is done before the server looks at its
  // certificate; the server's alert (or its closing the connection) ends
  // the request instead, which libcurl reports as a failed read: an I/O
  // error, or a TLS one when the alert is read in time.
  TlsTargetServer tls13(ca_, MutualTls(client_ca));
  ProbeResult late = RunOne(Target(tls13.url("/status/200"), Trusting(ca_)));
  EXPECT_THAT(late.outcome,
              ::testing::AnyOf(Outcome::kIoError, Outcome::kTlsError))
      << late.error;
  EXPECT_EQ(late.status_code, 0);
  EXPECT_EQ(tls13.Stats().requests, 0);
}

TEST_F(EngineTlsTest, ClientCertificateIsCheckedBeforeAnythingIsSent) {
  TestCa client_ca("fanprobe client CA");
  const KeyAndCert a = client_ca.Issue("a", {.server = false});
  const KeyAndCert b = client_ca.Issue("b", {.server = false});
  ProbeOptions options;
  options.client_certificate =
      ClientCertificate{.cert_pem = a.cert_pem, .key_pem = b.key_pem};
  absl::Status status = engine_->CheckOptions(options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "client_certificate.key_pem: does not match the certificate of "
            "cert_pem");
  options.client_certificate =
      ClientCertificate{.cert_pem = "not a certificate", .key_pem = a.key_pem};
  EXPECT_EQ(engine_->CheckOptions(options).message(),
            "client_certificate.cert_pem: holds no PEM certificate that "
            "parses");
  options.client_certificate =
      ClientCertificate{.cert_pem = a.cert_pem, .key_pem = "-----BEGIN x"};
  status = engine_->CheckOptions(options);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("client_certificate.key_pem: holds no unencrypted"));
  // The key never shows in a message.
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("BEGIN")));
}

}  // namespace
}  // namespace fanprobe
