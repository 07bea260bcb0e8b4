// Unit tests of monitoring/blackbox_report.h: how a ProbeResult becomes
// blackbox_exporter's metrics under a module, and the debug=true text.

#include "monitoring/blackbox_report.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/blackbox_modules.h"
#include "monitoring/prometheus_text.h"
#include "tests/support/prom_text.h"

namespace fanprobe::monitoring {
namespace {

using ::fanprobe::testing::Exposition;
using ::fanprobe::testing::ParseExposition;
using ::fanprobe::testing::ParseOrFail;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

ProbeResult Completed(Outcome outcome, int status) {
  ProbeResult r;
  r.url = "http://127.0.0.1:8080/x";
  r.final_url = "http://127.0.0.1:8080/y";
  r.outcome = outcome;
  r.status_code = status;
  r.http_version =
      status > 0 ? ResponseVersion::kHttp1_1 : ResponseVersion::kNone;
  r.remote_ip = "127.0.0.1";
  r.remote_port = 8080;
  r.redirects = 1;
  r.body_bytes = 42;
  r.decoded_body_bytes = 42;
  r.content_length = 42;
  r.timings.dns = absl::Microseconds(10);
  r.timings.connect = absl::Microseconds(40);
  r.timings.first_byte = absl::Milliseconds(2);
  r.timings.total = absl::Milliseconds(3);
  return r;
}

TEST(ReportTest, CompletedProbeInBlackboxTerms) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  ProbeReport r =
      ReportProbe(module, "127.0.0.1:8080/x", Completed(Outcome::kOk, 200));
  EXPECT_TRUE(r.success);
  EXPECT_EQ(r.outcome, "OK");
  EXPECT_EQ(r.status_code, 200);
  EXPECT_DOUBLE_EQ(r.http_version, 1.1);
  EXPECT_EQ(r.ip_protocol, 4);
  EXPECT_EQ(r.ip_addr_hash, 3668918509u);  // blackbox_exporter's value
  EXPECT_FALSE(r.ssl);
  EXPECT_FALSE(r.failed_due_to_regex);
  EXPECT_EQ(r.duration, absl::Milliseconds(3));

  ProbeReport mismatch =
      ReportProbe(module, "t", Completed(Outcome::kBodyMismatch, 200));
  EXPECT_FALSE(mismatch.success);
  EXPECT_TRUE(mismatch.failed_due_to_regex);
  ProbeReport header_mismatch =
      ReportProbe(module, "t", Completed(Outcome::kHeaderMismatch, 200));
  EXPECT_FALSE(header_mismatch.success);
  EXPECT_EQ(header_mismatch.outcome, "HEADER_MISMATCH");
  EXPECT_TRUE(header_mismatch.failed_due_to_regex);

  ProbeResult v6 = Completed(Outcome::kOk, 200);
  v6.remote_ip = "::1";
  v6.http_version = ResponseVersion::kHttp2;
  ProbeReport r6 = ReportProbe(module, "t", v6);
  EXPECT_EQ(r6.ip_protocol, 6);
  EXPECT_DOUBLE_EQ(r6.http_version, 2);
}

TEST(ReportTest, AddressOfAFailedConnectionIsTheFirstItCouldHaveBeen) {
  // blackbox_exporter reports the address it resolved even when the
  // connection then failed: the first of the first request's addresses
  // (the engine lists the preferred family first).
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  ProbeResult refused;
  refused.outcome = Outcome::kConnectError;
  refused.url = "http://web.test:1/x";
  refused.hops.emplace_back().addresses = {"127.0.0.1"};
  ProbeReport r = ReportProbe(module, refused.url, refused);
  EXPECT_EQ(r.ip_protocol, 4);
  EXPECT_EQ(r.ip_addr_hash, 3668918509u);
  refused.hops[0].addresses = {"::1", "127.0.0.1"};
  EXPECT_EQ(ReportProbe(module, refused.url, refused).ip_protocol, 6);
  // The lookup failed: no address.
  refused.hops[0].addresses.clear();
  r = ReportProbe(module, refused.url, refused);
  EXPECT_EQ(r.ip_protocol, 0);
  EXPECT_EQ(r.ip_addr_hash, 0u);
}

// The last request of `result` answered `status`, with `location` (empty:
// no Location header).
void LastHop(ProbeResult& result, int status, std::string location) {
  Hop hop;
  hop.status_code = status;
  hop.location = std::move(location);
  result.hops.push_back(std::move(hop));
}

TEST(ReportTest, AnUnfollowedRedirectCountsAsOneAndItsBodyAsNothing) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  module.options.follow_redirects = false;
  ProbeResult moved = Completed(Outcome::kUnexpectedStatus, 302);
  moved.redirects = 0;
  LastHop(moved, 302, "http://127.0.0.1:8080/y");
  const ProbeReport report = ReportProbe(module, "t", moved);
  EXPECT_EQ(report.redirects, 1);
  // blackbox_exporter does not read the body of a redirect it refused.
  EXPECT_EQ(report.uncompressed_body_bytes, 0u);
  EXPECT_EQ(report.content_length, 42);
  ProbeResult not_a_redirect = Completed(Outcome::kUnexpectedStatus, 304);
  not_a_redirect.redirects = 0;
  LastHop(not_a_redirect, 304, "");
  EXPECT_EQ(ReportProbe(module, "t", not_a_redirect).redirects, 0);
  // A 302 without Location is no redirect to Go's client either.
  ProbeResult nowhere = Completed(Outcome::kUnexpectedStatus, 302);
  nowhere.redirects = 0;
  LastHop(nowhere, 302, "");
  EXPECT_EQ(ReportProbe(module, "t", nowhere).redirects, 0);
  EXPECT_EQ(ReportProbe(module, "t", nowhere).uncompressed_body_bytes, 42u);
  module.options.follow_redirects = true;  // followed ones are the engine's
  EXPECT_EQ(ReportProbe(module, "t", moved).redirects, 0);
  EXPECT_EQ(ReportProbe(module, "t", moved).uncompressed_body_bytes, 42u);
}

TEST(ReportTest, ContentLengthAsGoReadsIt) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  ProbeResult chunked = Completed(Outcome::kOk, 200);
  chunked.content_length.reset();
  EXPECT_EQ(ReportProbe(module, "t", chunked).content_length, -1);
  ProbeResult no_content = Completed(Outcome::kOk, 204);
  no_content.content_length.reset();
  EXPECT_EQ(ReportProbe(module, "t", no_content).content_length, 0);
  ProbeResult none = Completed(Outcome::kConnectError, 0);
  none.content_length.reset();
  EXPECT_EQ(ReportProbe(module, "t", none).content_length, 0);
  // HEAD: what the header announced, though no body came.
  module.options.method = "HEAD";
  ProbeResult head = Completed(Outcome::kOk, 200);
  head.content_length = 1234;
  head.decoded_body_bytes = 0;
  EXPECT_EQ(ReportProbe(module, "t", head).content_length, 1234);
  EXPECT_EQ(ReportProbe(module, "t", head).uncompressed_body_bytes, 0u);
  head.content_length.reset();
  EXPECT_EQ(ReportProbe(module, "t", head).content_length, -1);
}

TEST(WriteProbeMetricsTest, DecodedLengthAndLastModified) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  ProbeResult gzip = Completed(Outcome::kOk, 200);
  gzip.decoded_body_bytes = 4000;
  gzip.last_modified = absl::FromUnixSeconds(1445412480);
  MetricsWriter out;
  WriteProbeMetrics({ReportProbe(module, "t", gzip)},
                    /*target_labels=*/false, out);
  absl::StatusOr<Exposition> m = ParseExposition(out.text());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Value("probe_http_content_length"), 42);
  EXPECT_EQ(m->Value("probe_http_uncompressed_body_length"), 4000);
  EXPECT_EQ(m->Value("probe_http_last_modified_timestamp_seconds"), 1445412480);
  // Without a Last-Modified the family is absent, as in blackbox_exporter.
  MetricsWriter plain;
  WriteProbeMetrics({ReportProbe(module, "t", Completed(Outcome::kOk, 200))},
                    /*target_labels=*/false, plain);
  EXPECT_FALSE(ParseOrFail(plain.text())
                   .FamilyNames()
                   .contains("probe_http_last_modified_timestamp_seconds"));
}

TEST(ReportTest, TlsRulesOverrideAGoodOutcome) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  module.fail_if_not_ssl = true;
  ProbeReport plain = ReportProbe(module, "t", Completed(Outcome::kOk, 200));
  EXPECT_FALSE(plain.success);
  EXPECT_EQ(plain.outcome, "FAIL_IF_NOT_SSL");

  module.fail_if_not_ssl = false;
  module.fail_if_ssl = true;
  ProbeResult tls = Completed(Outcome::kOk, 200);
  tls.final_url = "https://127.0.0.1:8443/";
  tls.tls.emplace();  // the final hop's handshake completed
  ProbeReport secure = ReportProbe(module, "t", tls);
  EXPECT_TRUE(secure.ssl);
  EXPECT_FALSE(secure.success);
  EXPECT_EQ(secure.outcome, "FAIL_IF_SSL");

  // A probe that failed anyway keeps its own outcome.
  ProbeReport failed =
      ReportProbe(module, "t", Completed(Outcome::kUnexpectedStatus, 500));
  EXPECT_EQ(failed.outcome, "UNEXPECTED_STATUS");
}

// A probe over TLS: the leaf, then the CA that issued it.
ProbeResult OverTls() {
  ProbeResult r = Completed(Outcome::kOk, 200);
  r.final_url = "https://web.test/";
  r.tls.emplace();
  r.tls->version = "TLSv1.2";
  r.tls->cipher = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
  r.tls->chain.push_back({.subject = "CN=web.test,O=Fan\\, Probe",
                          .issuer = "CN=Test CA",
                          .serial = "0a1b",
                          .sha256_fingerprint = "00ff",
                          .not_after = absl::FromUnixSeconds(1900000000),
                          .dns_names = {"web.test", "*.web.test"}});
  r.tls->chain.push_back({.subject = "CN=Test CA",
                          .issuer = "CN=Test CA",
                          .not_after = absl::FromUnixSeconds(1800000000)});
  r.cert_expiry = absl::FromUnixSeconds(1800000000);
  return r;
}

TEST(WriteProbeMetricsTest, TlsSeriesAsBlackboxExporterWritesThem) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  MetricsWriter out;
  WriteProbeMetrics({ReportProbe(module, "t", OverTls())},
                    /*target_labels=*/false, out);
  Exposition m = ParseOrFail(out.text());
  EXPECT_EQ(m.Value("probe_tls_version_info", {{"version", "TLS 1.2"}}), 1);
  EXPECT_EQ(m.Value("probe_tls_cipher_info",
                    {{"cipher", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}),
            1);
  // The leaf's facts; its DNS names joined by commas, as Go's DNSNames.
  EXPECT_EQ(m.Value("probe_ssl_last_chain_info",
                    {{"fingerprint_sha256", "00ff"},
                     {"issuer", "CN=Test CA"},
                     {"serialnumber", "0a1b"},
                     {"subject", "CN=web.test,O=Fan\\, Probe"},
                     {"subjectalternative", "web.test,*.web.test"}}),
            1);
  // The earliest expiry of the verified chain: the CA's here.
  EXPECT_EQ(m.Value("probe_ssl_last_chain_expiry_timestamp_seconds"),
            1800000000);
  EXPECT_EQ(m.Value("probe_ssl_earliest_cert_expiry"), 1800000000);

  // Without verification there is no verified chain, so no chain expiry
  // (blackbox_exporter 0.23 wrote year 1 there, -62135596800; later
  // releases leave it out); the rest stays.
  module.options.tls_verify = false;
  MetricsWriter insecure;
  WriteProbeMetrics({ReportProbe(module, "t", OverTls())},
                    /*target_labels=*/false, insecure);
  std::set<std::string> families = ParseOrFail(insecure.text()).FamilyNames();
  EXPECT_FALSE(
      families.contains("probe_ssl_last_chain_expiry_timestamp_seconds"));
  EXPECT_TRUE(families.contains("probe_ssl_last_chain_info"));
  EXPECT_TRUE(families.contains("probe_tls_version_info"));

  // A handshake that completed before the request failed (the server
  // wanted a client certificate): no response came over TLS, so none.
  ProbeResult refused = OverTls();
  refused.outcome = Outcome::kTlsError;
  refused.status_code = 0;
  MetricsWriter failed;
  WriteProbeMetrics({ReportProbe(module, "t", refused)},
                    /*target_labels=*/false, failed);
  EXPECT_FALSE(ParseOrFail(failed.text())
                   .FamilyNames()
                   .contains("probe_ssl_earliest_cert_expiry"));

  // Over plain http, none of them.
  module.options.tls_verify = true;
  MetricsWriter plain;
  WriteProbeMetrics({ReportProbe(module, "t", Completed(Outcome::kOk, 200))},
                    /*target_labels=*/false, plain);
  families = ParseOrFail(plain.text()).FamilyNames();
  for (const char* name : {"probe_ssl_earliest_cert_expiry",
                           "probe_ssl_last_chain_expiry_timestamp_seconds",
                           "probe_ssl_last_chain_info", "probe_tls_cipher_info",
                           "probe_tls_version_info"}) {
    EXPECT_FALSE(families.contains(name)) << name;
  }
}

TEST(ReportTest, TlsVersionsAsGoNamesThem) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  for (const auto& [openssl, go] :
       std::vector<std::pair<std::string, std::string>>{{"TLSv1.3", "TLS 1.3"},
                                                        {"TLSv1.2", "TLS 1.2"},
                                                        {"TLSv1.1", "TLS 1.1"},
                                                        {"TLSv1", "TLS 1.0"},
                                                        {"SSLv3", "unknown"}}) {
    ProbeResult r = OverTls();
    r.tls->version = openssl;
    EXPECT_EQ(ReportProbe(module, "t", r).tls_version, go) << openssl;
  }
}

TEST(WriteProbeMetricsTest, OneTargetHasBlackboxExportersShape) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  MetricsWriter out;
  WriteProbeMetrics(
      {ReportProbe(module, "t", Completed(Outcome::kUnexpectedStatus, 503))},
      /*target_labels=*/false, out);
  absl::StatusOr<Exposition> m = ParseExposition(out.text());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Value("probe_success"), 0);
  EXPECT_EQ(m->Value("probe_http_status_code"), 503);
  EXPECT_EQ(m->Value("probe_http_redirects"), 1);
  EXPECT_EQ(m->Value("probe_http_version"), 1.1);
  EXPECT_EQ(m->Value("probe_http_content_length"), 42);
  EXPECT_EQ(m->Value("probe_ip_protocol"), 4);
  EXPECT_EQ(m->Value("probe_fanprobe_outcome_info",
                     {{"outcome", "UNEXPECTED_STATUS"}}),
            1);
  EXPECT_EQ(m->Value("probe_http_duration_seconds", {{"phase", "tls"}}), 0);
  EXPECT_DOUBLE_EQ(
      *m->Value("probe_http_duration_seconds", {{"phase", "transfer"}}), 0.001);
  EXPECT_EQ(m->Samples("probe_ssl_earliest_cert_expiry").size(), 0u);
  for (const auto& [family, type] : m->types) {
    EXPECT_EQ(type, "gauge") << family;
  }
}

TEST(WriteProbeMetricsTest, SeveralTargetsLabelEverySeries) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  ProbeResult tls = Completed(Outcome::kOk, 200);
  tls.final_url = "https://a.example/";
  tls.tls.emplace();
  tls.cert_expiry = absl::FromUnixSeconds(1900000000);
  MetricsWriter out;
  WriteProbeMetrics({ReportProbe(module, "https://a.example/", tls),
                     ReportUnfinished("http://b.example/", "TIMEOUT",
                                      "did not complete", absl::Seconds(2))},
                    /*target_labels=*/true, out);
  absl::StatusOr<Exposition> m = ParseExposition(out.text());
  ASSERT_TRUE(m.ok()) << m.status();
  for (const auto& sample : m->samples) {
    EXPECT_TRUE(sample.labels.contains("target")) << sample.name;
  }
  EXPECT_EQ(m->Value("probe_success", {{"target", "https://a.example/"}}), 1);
  EXPECT_EQ(m->Value("probe_http_ssl", {{"target", "https://a.example/"}}), 1);
  EXPECT_EQ(m->Value("probe_ssl_earliest_cert_expiry",
                     {{"target", "https://a.example/"}}),
            1900000000);
  EXPECT_EQ(m->Value("probe_success", {{"target", "http://b.example/"}}), 0);
  EXPECT_EQ(
      m->Value("probe_duration_seconds", {{"target", "http://b.example/"}}), 2);
  EXPECT_EQ(m->Value("probe_fanprobe_outcome_info",
                     {{"target", "http://b.example/"}, {"outcome", "TIMEOUT"}}),
            1);
  // One # TYPE per family, whatever the number of targets.
  EXPECT_EQ(std::count(out.text().begin(), out.text().end(), '#'),
            2 * static_cast<long>(m->types.size()));
}

TEST(ProbeDebugTextTest, ExplainsTheProbe) {
  BlackboxModule module = DefaultBlackboxModules().at("http_2xx");
  std::string text = ProbeDebugText(
      module, {ReportProbe(module, "t", Completed(Outcome::kTimeout, 0))},
      absl::Seconds(2), "probe_success 0\n");
  EXPECT_THAT(text, HasSubstr("Logs for the probe:"));
  EXPECT_THAT(text, HasSubstr("target=t outcome=TIMEOUT success=false"));
  EXPECT_THAT(text, HasSubstr("timeout_seconds=2"));
  EXPECT_THAT(text, HasSubstr("Metrics that would have been returned:\n"
                              "probe_success 0"));
  EXPECT_THAT(text, HasSubstr("Module configuration:\nprober: http"));
}

}  // namespace
}  // namespace fanprobe::monitoring
