// Tests of the loopback HTTPS target and the TLS stall port, with libcurl's
// easy interface as the client: what a verifying client sees of each kind
// of certificate, and what the server records of each handshake.  Names are
// mapped to 127.0.0.1 with CURLOPT_RESOLVE, so no lookup leaves the process.

#include "tests/support/tls_target_server.h"

#include <curl/curl.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_certs.h"

namespace fanprobe::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Generous: a loaded 2-core machine under ASan.
constexpr absl::Duration kWait = absl::Seconds(10);

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct Fetch {
  std::string url;
  std::string ca_pem;        // the only trust anchors
  std::string resolve_host;  // mapped to 127.0.0.1 at the URL's port
  int port = 0;
  long ssl_version = CURL_SSLVERSION_TLSv1_2;  // minimum, maybe | a maximum
  bool fresh_connection = false;  // a new connection even if one is cached
  long connect_timeout_ms = 0;
};

struct Fetched {
  CURLcode code = CURLE_OK;
  std::string error;  // CURLOPT_ERRORBUFFER
  long status = 0;
  std::string body;
};

size_t Append(char* data, size_t size, size_t n, void* body) {
  static_cast<std::string*>(body)->append(data, size * n);
  return size * n;
}

// One transfer on `easy`, whose TLS session cache outlives it (so a later
// transfer on the same handle may resume).
Fetched Get(CURL* easy, const Fetch& fetch) {
  Fetched fetched;
  char error[CURL_ERROR_SIZE] = {};
  curl_blob ca{.data = const_cast<char*>(fetch.ca_pem.data()),
               .len = fetch.ca_pem.size(),
               .flags = CURL_BLOB_COPY};
  SlistPtr resolve;
  if (!fetch.resolve_host.empty()) {
    resolve.reset(curl_slist_append(
        nullptr, absl::StrCat(fetch.resolve_host, ":", fetch.port, ":127.0.0.1")
                     .c_str()));
  }
  curl_easy_setopt(easy, CURLOPT_URL, fetch.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROXY, "");  // ignore *_proxy variables
  curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &ca);
  curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr);
  curl_easy_setopt(easy, CURLOPT_SSLVERSION, fetch.ssl_version);
  curl_easy_setopt(easy, CURLOPT_RESOLVE, resolve.get());
  curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT,
                   fetch.fresh_connection ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, fetch.connect_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30'000L);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &fetched.body);
  fetched.code = curl_easy_perform(easy);
  fetched.error = error;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &fetched.status);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(easy, CURLOPT_RESOLVE, nullptr);
  return fetched;
}

// One transfer on a handle of its own (no session to resume).
Fetched Get(const Fetch& fetch) {
  EasyPtr easy(curl_easy_init());
  return Get(easy.get(), fetch);
}

class TlsTargetServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  TestCa ca_{"fanprobe tls target test CA"};
};

TEST_F(TlsTargetServerTest, VerifiedHandshakeServesTheTargetRoutes) {
  TlsTargetServer server(ca_);
  EasyPtr easy(curl_easy_init());

  Fetched status = Get(
      easy.get(), {.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});
  ASSERT_EQ(status.code, CURLE_OK) << status.error;
  EXPECT_EQ(status.status, 200);
  EXPECT_EQ(status.body, "status 200\n");

  Fetched body = Get(
      easy.get(), {.url = server.url("/body/hello"), .ca_pem = ca_.cert_pem()});
  ASSERT_EQ(body.code, CURLE_OK) << body.error;
  EXPECT_EQ(body.body, "hello");

  // Relative redirects stay on the HTTPS listener.
  Fetched redirected = Get(
      easy.get(), {.url = server.url("/redirect/2"), .ca_pem = ca_.cert_pem()});
  ASSERT_EQ(redirected.code, CURLE_OK) << redirected.error;
  EXPECT_EQ(redirected.status, 200);
  char* effective = nullptr;
  curl_easy_getinfo(easy.get(), CURLINFO_EFFECTIVE_URL, &effective);
  EXPECT_EQ(std::string(effective), server.url("/status/200"));

  const TlsTargetStats stats = server.Stats();
  // libcurl kept its one connection for all five requests.
  EXPECT_EQ(stats.connections, 1);
  EXPECT_EQ(stats.handshakes, 1);
  EXPECT_EQ(stats.resumed_handshakes, 0);
  EXPECT_EQ(stats.last_protocol, "TLSv1.3");
  // A client connecting to an IP address sends no SNI.
  EXPECT_THAT(stats.server_names, ElementsAre(""));
  EXPECT_THAT(stats.alerts_received, IsEmpty());
  EXPECT_EQ(stats.requests, 5);
  EXPECT_EQ(stats.requests_by_path.at("/status/200"), 2);
  EXPECT_EQ(stats.requests_by_path.at("/redirect/1"), 1);

  easy.reset();  // closes the connection
  EXPECT_TRUE(server.WaitFor(
      [](const TlsTargetStats& s) { return s.connections_closed == 1; },
      kWait));
}

TEST_F(TlsTargetServerTest, CertificateOfAnotherCaFailsVerification) {
  TlsTargetServer server(ca_);
  TestCa other("another CA");

  Fetched fetched =
      Get({.url = server.url("/status/200"), .ca_pem = other.cert_pem()});

  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_THAT(fetched.error,
              HasSubstr("unable to get local issuer certificate"));
  // The client said why, with an alert, before the handshake completed.
  EXPECT_TRUE(server.WaitFor(
      [](const TlsTargetStats& s) {
        return s.alerts_received.size() == 1 && s.connections_closed == 1;
      },
      kWait));
  const TlsTargetStats stats = server.Stats();
  EXPECT_THAT(stats.alerts_received, ElementsAre("unknown CA"));
  EXPECT_EQ(stats.handshakes, 0);
  EXPECT_EQ(stats.requests, 0);
}

TEST_F(TlsTargetServerTest, ExpiredCertificateFailsVerification) {
  TlsTargetServer server(ca_.Issue(
      "localhost",
      {.not_before = -absl::Hours(48), .not_after = -absl::Hours(24)}));

  Fetched fetched =
      Get({.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});

  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_THAT(fetched.error, HasSubstr("certificate has expired"));
  EXPECT_TRUE(server.WaitFor(
      [](const TlsTargetStats& s) { return s.alerts_received.size() == 1; },
      kWait));
  EXPECT_THAT(server.Stats().alerts_received,
              ElementsAre("certificate expired"));
}

TEST_F(TlsTargetServerTest, NotYetValidCertificateFailsVerification) {
  TlsTargetServer server(
      ca_.Issue("localhost",
                {.not_before = absl::Hours(24), .not_after = absl::Hours(48)}));

  Fetched fetched =
      Get({.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});

  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_THAT(fetched.error, HasSubstr("certificate is not yet valid"));
}

TEST_F(TlsTargetServerTest, HostNameMismatchFailsAndSniIsRecorded) {
  TlsTargetServer server(ca_);  // localhost and 127.0.0.1 only

  Fetched fetched = Get({.url = server.url("web.tls.test", "/status/200"),
                         .ca_pem = ca_.cert_pem(),
                         .resolve_host = "web.tls.test",
                         .port = server.port()});

  EXPECT_EQ(fetched.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_THAT(fetched.error,
              HasSubstr("no alternative certificate subject name matches "
                        "target host name 'web.tls.test'"));
  EXPECT_TRUE(server.WaitFor(
      [](const TlsTargetStats& s) { return s.connections_closed == 1; },
      kWait));
  const TlsTargetStats stats = server.Stats();
  EXPECT_THAT(stats.server_names, ElementsAre("web.tls.test"));
  // libcurl checks the name after the handshake: it completed, then the
  // client hung up without a request.
  EXPECT_EQ(stats.handshakes, 1);
  EXPECT_EQ(stats.requests, 0);
}

TEST_F(TlsTargetServerTest, WildcardNameCoversExactlyOneLabel) {
  TlsTargetServer server(ca_.Issue("tls.test", {.dns_names = {"*.tls.test"}}));

  Fetched one_label = Get({.url = server.url("web.tls.test", "/status/200"),
                           .ca_pem = ca_.cert_pem(),
                           .resolve_host = "web.tls.test",
                           .port = server.port()});
  ASSERT_EQ(one_label.code, CURLE_OK) << one_label.error;
  EXPECT_EQ(one_label.status, 200);

  Fetched two_labels = Get({.url = server.url("a.web.tls.test", "/status/200"),
                            .ca_pem = ca_.cert_pem(),
                            .resolve_host = "a.web.tls.test",
                            .port = server.port()});
  EXPECT_EQ(two_labels.code, CURLE_PEER_FAILED_VERIFICATION);

  // Only the SANs asked for: no default 127.0.0.1.
  Fetched by_ip =
      Get({.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});
  EXPECT_EQ(by_ip.code, CURLE_PEER_FAILED_VERIFICATION);

  EXPECT_THAT(server.Stats().server_names,
              ElementsAre("web.tls.test", "a.web.tls.test", ""));
}

TEST_F(TlsTargetServerTest, IpAddressSans) {
  TlsTargetServer server(
      ca_.Issue("ip", {.ip_addresses = {"127.0.0.2", "127.0.0.1"}}));

  Fetched fetched =
      Get({.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});
  ASSERT_EQ(fetched.code, CURLE_OK) << fetched.error;

  // No DNS SAN, not even the default localhost.
  Fetched by_name = Get({.url = server.url("localhost", "/status/200"),
                         .ca_pem = ca_.cert_pem(),
                         .resolve_host = "localhost",
                         .port = server.port()});
  EXPECT_EQ(by_name.code, CURLE_PEER_FAILED_VERIFICATION);
}

TEST_F(TlsTargetServerTest, SelfSignedLeafIsTrustedOnlyAsItself) {
  TlsTargetServer server(ca_.Issue("localhost", {.self_signed = true}));

  Fetched with_ca =
      Get({.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});
  EXPECT_EQ(with_ca.code, CURLE_PEER_FAILED_VERIFICATION);
  EXPECT_THAT(with_ca.error, HasSubstr("self-signed certificate"));

  Fetched pinned = Get(
      {.url = server.url("/status/200"), .ca_pem = server.identity().cert_pem});
  ASSERT_EQ(pinned.code, CURLE_OK) << pinned.error;
  EXPECT_EQ(pinned.status, 200);
}

TEST_F(TlsTargetServerTest, Tls12MaxNegotiatesTls12) {
  TlsTargetServer server(ca_, {.max_version = TlsVersion::kTls12});

  Fetched fetched =
      Get({.url = server.url("/status/200"), .ca_pem = ca_.cert_pem()});

  ASSERT_EQ(fetched.code, CURLE_OK) << fetched.error;
  EXPECT_EQ(server.Stats().last_protocol, "TLSv1.2");
}

TEST_F(TlsTargetServerTest, Tls13OnlyRefusesATls12Client) {
  TlsTargetServer server(ca_, {.min_version = TlsVersion::kTls13});

  Fetched fetched = Get({.url = server.url("/status/200"),
                         .ca_pem = ca_.cert_pem(),
                         .ssl_version = long{CURL_SSLVERSION_TLSv1_2} |
                                        long{CURL_SSLVERSION_MAX_TLSv1_2}});

  EXPECT_EQ(fetched.code, CURLE_SSL_CONNECT_ERROR);
  EXPECT_THAT(fetched.error, HasSubstr("protocol version"));
  EXPECT_EQ(server.Stats().handshakes, 0);
}

struct ResumptionCase {
  TlsVersion version;
  bool allow_resumption;
};

class ResumptionTest : public TlsTargetServerTest,
                       public ::testing::WithParamInterface<ResumptionCase> {};

// Two handshakes in a row from one libcurl handle, which offers the session
// it kept from the first: resumed if and only if the server allows it.
TEST_P(ResumptionTest, SecondHandshakeResumesOnlyIfAllowed) {
  const ResumptionCase c = GetParam();
  TlsTargetServer server(ca_, {.allow_resumption = c.allow_resumption,
                               .min_version = c.version,
                               .max_version = c.version});
  EasyPtr easy(curl_easy_init());

  for (int i = 0; i < 2; ++i) {
    Fetched fetched = Get(easy.get(), {.url = server.url("/status/200"),
                                       .ca_pem = ca_.cert_pem(),
                                       .fresh_connection = true});
    ASSERT_EQ(fetched.code, CURLE_OK) << fetched.error;
  }

  const TlsTargetStats stats = server.Stats();
  EXPECT_EQ(stats.connections, 2);
  EXPECT_EQ(stats.handshakes, 2);
  EXPECT_EQ(stats.resumed_handshakes, c.allow_resumption ? 1 : 0);
  EXPECT_EQ(stats.last_protocol,
            c.version == TlsVersion::kTls12 ? "TLSv1.2" : "TLSv1.3");
}

INSTANTIATE_TEST_SUITE_P(
    Versions, ResumptionTest,
    ::testing::Values(ResumptionCase{TlsVersion::kTls13, true},
                      ResumptionCase{TlsVersion::kTls13, false},
                      ResumptionCase{TlsVersion::kTls12, true},
                      ResumptionCase{TlsVersion::kTls12, false}),
    [](const auto& info) {
      return absl::StrCat(
          info.param.version == TlsVersion::kTls12 ? "Tls12" : "Tls13",
          info.param.allow_resumption ? "Allowed" : "Disallowed");
    });

// Timing is what is tested here: the attempt ends at the client's connect
// timeout (which covers the handshake in libcurl), not before and not much
// after.
TEST_F(TlsTargetServerTest, StallPortHoldsAHandshakeUntilTheClientGivesUp) {
  TlsStallPort stall;
  constexpr long kConnectTimeoutMs = 500;

  const absl::Time start = absl::Now();
  Fetched fetched = Get({.url = stall.url("/"),
                         .ca_pem = ca_.cert_pem(),
                         .connect_timeout_ms = kConnectTimeoutMs});
  const absl::Duration elapsed = absl::Now() - start;

  EXPECT_EQ(fetched.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_THAT(fetched.error, HasSubstr("SSL connection timeout"));
  EXPECT_GE(elapsed, absl::Milliseconds(kConnectTimeoutMs));
  EXPECT_LT(elapsed, absl::Seconds(10));
  // The ClientHello arrived, was never answered, and the client closed.
  EXPECT_TRUE(stall.WaitFor(
      [](const StallStats& s) { return s.closed_by_client == 1; }, kWait));
  const StallStats stats = stall.Stats();
  EXPECT_EQ(stats.connections, 1);
  EXPECT_EQ(stats.open_connections, 0);
  EXPECT_GT(stats.bytes_received, 0);
}

TEST_F(TlsTargetServerTest, StallPortClosesWhatIsStillOpenWhenDestroyed) {
  auto stall = std::make_unique<TlsStallPort>();
  EasyPtr easy(curl_easy_init());
  // CONNECT_ONLY without TLS: a plain TCP connection that stays open.
  const std::string url = absl::StrCat("http://127.0.0.1:", stall->port());
  curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy.get(), CURLOPT_PROXY, "");
  curl_easy_setopt(easy.get(), CURLOPT_CONNECT_ONLY, 1L);
  ASSERT_EQ(curl_easy_perform(easy.get()), CURLE_OK);
  EXPECT_TRUE(stall->WaitFor(
      [](const StallStats& s) { return s.open_connections == 1; }, kWait));

  stall.reset();  // must not wait for the client

  // The server closed it: the client reads EOF at once.
  curl_socket_t sock = CURL_SOCKET_BAD;
  ASSERT_EQ(curl_easy_getinfo(easy.get(), CURLINFO_ACTIVESOCKET, &sock),
            CURLE_OK);
  pollfd p{sock, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, absl::ToInt64Milliseconds(kWait)), 1);
  char byte;
  EXPECT_EQ(::recv(sock, &byte, 1, 0), 0);
}

}  // namespace
}  // namespace fanprobe::testing
