// monitoring/http_server.h with TLS (issue 13): bearer tokens no longer
// cross the network in the clear.  The client is libcurl, verifying the
// server against a test CA, with or without a client certificate.

#include <curl/curl.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "monitoring/http_server.h"
#include "tests/monitoring/http_side.h"
#include "tests/support/http_client.h"
#include "tests/support/target_server.h"
#include "tests/support/test_certs.h"

namespace fanprobe::testing {
namespace {

using ::testing::HasSubstr;

struct HttpsReply {
  CURLcode code = CURLE_OK;
  long status = 0;  // 0 when the exchange failed
  std::string body;
};

// GET https://127.0.0.1:<port><path>, trusting `ca_pem`, presenting
// `client` when given.
HttpsReply HttpsGet(int port, const std::string& path,
                    const std::string& ca_pem,
                    const KeyAndCert* client = nullptr) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(),
                                                           &curl_easy_cleanup);
  HttpsReply reply;
  const std::string url = absl::StrCat("https://127.0.0.1:", port, path);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_blob ca{const_cast<char*>(ca_pem.data()), ca_pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(curl.get(), CURLOPT_CAINFO_BLOB, &ca);
  curl_blob cert{}, key{};
  if (client != nullptr) {
    cert = {const_cast<char*>(client->cert_pem.data()), client->cert_pem.size(),
            CURL_BLOB_COPY};
    key = {const_cast<char*>(client->key_pem.data()), client->key_pem.size(),
           CURL_BLOB_COPY};
    curl_easy_setopt(curl.get(), CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(curl.get(), CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl.get(), CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(curl.get(), CURLOPT_SSLKEYTYPE, "PEM");
  }
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION,
      +[](char* data, size_t size, size_t n, void* out) -> size_t {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &reply.body);
  reply.code = curl_easy_perform(curl.get());
  if (reply.code == CURLE_OK) {
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &reply.status);
  }
  return reply;
}

class HttpTlsTest : public ::testing::Test {
 protected:
  HttpTlsTest()
      : ca_("fanprobe http test CA"),
        server_cert_(ca_.Issue("localhost", {.server = true})) {}

  monitoring::HttpServerOptions TlsOptions() const {
    return {.tls_cert_pem = server_cert_.cert_pem,
            .tls_key_pem = server_cert_.key_pem};
  }

  TestCa ca_;
  KeyAndCert server_cert_;
  TargetServer target_;
};

TEST_F(HttpTlsTest, ServesHttpsAndNoPlainHttp) {
  HttpSide side(TlsOptions());
  const int port = side.http().port();
  HttpsReply health = HttpsGet(port, "/healthz", ca_.cert_pem());
  ASSERT_EQ(health.code, CURLE_OK) << curl_easy_strerror(health.code);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  HttpsReply probe =
      HttpsGet(port, ProbePath({target_.url("/status/200")}), ca_.cert_pem());
  EXPECT_EQ(probe.status, 200);
  EXPECT_THAT(probe.body, HasSubstr("probe_success 1"));
  // Plain HTTP gets no answer, and a client trusting another CA refuses.
  EXPECT_EQ(HttpGet(side.address(), "/healthz", {}, absl::Seconds(5)).status,
            0);
  TestCa other("another CA");
  EXPECT_EQ(HttpsGet(port, "/healthz", other.cert_pem()).code,
            CURLE_PEER_FAILED_VERIFICATION);
}

TEST_F(HttpTlsTest, ClientCaWantsAClientCertificateButNotForHealth) {
  monitoring::HttpServerOptions options = TlsOptions();
  options.client_ca_pem = ca_.cert_pem();
  HttpSide side(options);
  const int port = side.http().port();
  const KeyAndCert client = ca_.Issue("prometheus", {.server = false});
  TestCa other("another CA");
  const KeyAndCert stranger = other.Issue("prometheus", {.server = false});

  EXPECT_EQ(HttpsGet(port, "/metrics", ca_.cert_pem(), &client).status, 200);
  HttpsReply without = HttpsGet(port, "/metrics", ca_.cert_pem());
  EXPECT_EQ(without.status, 403);
  EXPECT_THAT(without.body, HasSubstr("client certificate"));
  EXPECT_EQ(HttpsGet(port, "/metrics", ca_.cert_pem(), &stranger).status, 403);
  // A kubelet's probe comes without one.
  EXPECT_EQ(HttpsGet(port, "/healthz", ca_.cert_pem()).status, 200);
  EXPECT_EQ(HttpsGet(port, "/readyz", ca_.cert_pem()).status, 200);
}

TEST_F(HttpTlsTest, ARenewedCertificateServesTheConnectionsAfterIt) {
  HttpSide side(TlsOptions());
  const int port = side.http().port();
  ASSERT_EQ(HttpsGet(port, "/healthz", ca_.cert_pem()).status, 200);

  TestCa renewed_ca("renewed CA");
  const KeyAndCert renewed = renewed_ca.Issue("localhost", {.server = true});
  ASSERT_TRUE(
      side.http().ReloadTls(renewed.cert_pem, renewed.key_pem, "").ok());
  EXPECT_EQ(HttpsGet(port, "/healthz", renewed_ca.cert_pem()).status, 200);
  EXPECT_EQ(HttpsGet(port, "/healthz", ca_.cert_pem()).code,
            CURLE_PEER_FAILED_VERIFICATION);

  // A certificate renewed before its key: refused, the renewed pair stays.
  const KeyAndCert next = renewed_ca.Issue("localhost", {.server = true});
  absl::Status mismatched =
      side.http().ReloadTls(next.cert_pem, renewed.key_pem, "");
  EXPECT_EQ(mismatched.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mismatched.message(),
            "the key does not belong to the chain's first certificate");
  EXPECT_EQ(side.http().ReloadTls("not PEM", renewed.key_pem, "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpsGet(port, "/healthz", renewed_ca.cert_pem()).status, 200);

  // Asking for client certificates is decided at start.
  EXPECT_EQ(side.http()
                .ReloadTls(renewed.cert_pem, renewed.key_pem, ca_.cert_pem())
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(HttpTlsTest, ARenewedClientCaDecidesWhoIsLetIn) {
  monitoring::HttpServerOptions options = TlsOptions();
  options.client_ca_pem = ca_.cert_pem();
  HttpSide side(options);
  const int port = side.http().port();
  const KeyAndCert old_client = ca_.Issue("prometheus", {.server = false});
  TestCa renewed_ca("renewed client CA");
  const KeyAndCert new_client =
      renewed_ca.Issue("prometheus", {.server = false});
  EXPECT_EQ(HttpsGet(port, "/metrics", ca_.cert_pem(), &old_client).status,
            200);
  EXPECT_EQ(HttpsGet(port, "/metrics", ca_.cert_pem(), &new_client).status,
            403);

  ASSERT_TRUE(side.http()
                  .ReloadTls(server_cert_.cert_pem, server_cert_.key_pem,
                             renewed_ca.cert_pem())
                  .ok());
  EXPECT_EQ(HttpsGet(port, "/metrics", ca_.cert_pem(), &new_client).status,
            200);
  EXPECT_EQ(HttpsGet(port, "/metrics", ca_.cert_pem(), &old_client).status,
            403);
  // Dropping the client CA would let everyone in: refused.
  EXPECT_EQ(side.http()
                .ReloadTls(server_cert_.cert_pem, server_cert_.key_pem, "")
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(HttpTlsPlainTest, APlainServerTakesNoCertificate) {
  HttpSide side;
  TestCa ca("fanprobe http test CA");
  const KeyAndCert cert = ca.Issue("localhost", {.server = true});
  EXPECT_EQ(side.http().ReloadTls(cert.cert_pem, cert.key_pem, "").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(HttpGet(side.address(), "/healthz").status, 200);
}

TEST(HttpTlsOptionsTest, HalfAConfigurationIsRefused) {
  auto engine = Engine::Create({.workers = 1}).value();
  monitoring::ServerMetrics metrics;
  TestCa ca("fanprobe http test CA");
  const KeyAndCert cert = ca.Issue("localhost", {.server = true});
  const auto start = [&](monitoring::HttpServerOptions options) {
    options.address = "127.0.0.1:0";
    return monitoring::HttpServer::Start(std::move(options), *engine, metrics,
                                         nullptr)
        .status()
        .code();
  };
  EXPECT_EQ(start({.tls_cert_pem = cert.cert_pem}),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.client_ca_pem = ca.cert_pem()}),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start({.tls_cert_pem = cert.cert_pem, .tls_key_pem = "not a key"}),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fanprobe::testing
