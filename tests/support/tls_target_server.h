// tls_target_server.h: loopback HTTPS targets for the engine's TLS tests,
// and what they saw of each handshake, so a test can assert that a probe
// made a full handshake, resumed one, sent SNI or rejected a certificate.
//
// A TlsTargetServer serves HTTPS on 127.0.0.1 (an ephemeral port) with an
// ECDSA P-256 certificate: by default one for "localhost" (SANs localhost
// and 127.0.0.1) issued by the TestCa it is given, or any key and
// certificate the test passes (expired, wildcard, self-signed: see
// test_certs.h).  Its routes are TargetServer's HTTP listener's (/status/,
// /delay/, /bytes/, /chunked/, /redirect/, /loop, /redirect_to?url=, /body/,
// /match, /echo_headers; see target_server.h), redirects relative, so a
// chain stays on HTTPS.  TLS 1.2 and 1.3 by default; `max_version` forces
// TLS 1.2.
//
// A TlsStallPort accepts TCP connections and never sends a byte: a TLS
// handshake to it stalls until the client gives up.
//
// Example:
//   TestCa ca("fanprobe test CA");
//   TlsTargetServer server(ca, {.allow_resumption = false});
//   ... probe server.url("/status/200") twice, trusting ca.cert_pem() ...
//   EXPECT_TRUE(server.WaitFor(
//       [](const TlsTargetStats& s) { return s.handshakes == 2; },
//       absl::Seconds(5)));
//   EXPECT_EQ(server.Stats().resumed_handshakes, 0);
//
//   // By name: map web.tls.test to 127.0.0.1 in the client (or the test DNS
//   // server), never through the machine's resolver.
//   TlsTargetServer web(ca.Issue("web", {.dns_names = {"*.tls.test"}}));
//   std::string url = web.url("web.tls.test", "/status/200");
//
// Thread-safety: all methods may be called from any thread.  Constructing a
// TlsTargetServer sets SIGPIPE to SIG_IGN for the process, as TargetServer
// does: cpp-httplib writes without MSG_NOSIGNAL.

#ifndef FANPROBE_TESTS_SUPPORT_TLS_TARGET_SERVER_H_
#define FANPROBE_TESTS_SUPPORT_TLS_TARGET_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/support/test_certs.h"

namespace fanprobe::testing {

enum class TlsVersion { kTls12, kTls13 };

// Fields in declaration order, as designated initializers need them.
struct TlsTargetOptions {
  // On: session tickets (TLS 1.2 and 1.3) and a server-side session cache,
  // so a client that kept its session resumes it.  Off: no tickets, no
  // cache, every handshake is full.
  bool allow_resumption = true;
  // The protocol versions the server accepts; {kTls12, kTls12} makes a
  // TLS 1.2 server, {kTls13, kTls13} a TLS 1.3-only one.
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
  // Connections served at once (each holds a pool thread for its lifetime,
  // handshake included); more wait in the accept queue.
  int threads = 64;
  // Non-empty: mutual TLS.  A client must present a certificate that these
  // CAs (PEM) issued, or the handshake fails.
  std::string client_ca_pem;
};

// What a TlsTargetServer has seen since it started.
struct TlsTargetStats {
  // TCP connections accepted, and those the server has finished with
  // (closed by either side, or by a failed handshake).
  int connections = 0;
  int connections_closed = 0;
  // Handshakes that completed as the server sees it (it read the client's
  // Finished), each connection counted once, and how many of them resumed
  // a session.  A client that checks the host name only after the handshake
  // (libcurl does) completes one even when it then rejects the certificate.
  int handshakes = 0;
  int resumed_handshakes = 0;
  // The protocol version the last completed handshake negotiated, as
  // OpenSSL names it ("TLSv1.3", "TLSv1.2"); empty before the first.
  std::string last_protocol;
  // The server name (SNI) each ClientHello carried, in arrival order; "" for
  // one without (a client connecting to an IP address sends none).
  std::vector<std::string> server_names;
  // The fatal alerts clients sent, as OpenSSL describes them ("unknown CA",
  // "certificate expired", ...), in arrival order: a client that rejects the
  // certificate during the handshake says why here.
  std::vector<std::string> alerts_received;
  // With client_ca_pem: the subject (RFC 2253) of the certificate each
  // completed handshake's client presented, in order.
  std::vector<std::string> client_subjects;
  // Requests handled, in total and by path (without the query); counted
  // before the response is sent, so a client holding its response sees
  // its request counted.
  int requests = 0;
  std::map<std::string, int> requests_by_path;
};

class TlsTargetServer {
 public:
  // Serves a certificate for "localhost" (SANs localhost and 127.0.0.1)
  // issued by `ca`.
  explicit TlsTargetServer(const TestCa& ca, TlsTargetOptions options = {});
  // Serves `identity`: its key, and its certificate followed by any
  // intermediates (PEM).
  explicit TlsTargetServer(KeyAndCert identity, TlsTargetOptions options = {});
  // Both start serving before they return, and abort the test binary if the
  // key or certificate does not load or the loopback interface refuses a
  // socket.

  // Stops serving: pending /delay requests end at once; a connection still
  // in its handshake or between requests is closed within 2 s (the read
  // timeout).
  ~TlsTargetServer();

  TlsTargetServer(const TlsTargetServer&) = delete;
  TlsTargetServer& operator=(const TlsTargetServer&) = delete;

  int port() const { return port_; }
  // "https://127.0.0.1:<port><path>".
  std::string url(absl::string_view path) const;
  // "https://<host>:<port><path>": the client must map `host` to 127.0.0.1
  // itself (e.g. CURLOPT_RESOLVE "<host>:<port>:127.0.0.1").
  std::string url(absl::string_view host, absl::string_view path) const;
  // The key and certificate served.
  const KeyAndCert& identity() const { return identity_; }

  TlsTargetStats Stats() const;
  // Blocks until `condition` holds on the stats or `timeout` passes; returns
  // whether it holds.  `condition` runs under the server's lock: it must
  // only read its argument.
  bool WaitFor(const std::function<bool(const TlsTargetStats&)>& condition,
               absl::Duration timeout) const;

 private:
  class Listener;
  friend class Listener;  // records into stats_

  mutable absl::Mutex mu_;
  TlsTargetStats stats_ ABSL_GUARDED_BY(mu_);

  // Constant after construction.  The listener is declared after the state
  // it records into, so it stops before that is destroyed.
  KeyAndCert identity_;
  std::unique_ptr<Listener> listener_;
  int port_ = 0;
};

// What a TlsStallPort has seen since it started.
struct StallStats {
  int connections = 0;         // accepted
  int open_connections = 0;    // accepted and not yet closed
  int closed_by_client = 0;    // ended with the client's FIN or RST
  int64_t bytes_received = 0;  // read and dropped (a ClientHello, say)
};

// A loopback port that accepts TCP connections, reads what the client sends
// and never answers: a TLS handshake (or an HTTP request) to it stalls until
// the client gives up.  One thread, poll(); connections still open when it
// is destroyed are closed then.
//
// Example:
//   TlsStallPort stall;
//   ... probe stall.url("/") with a 500 ms timeout: a timeout in TLS ...
//   EXPECT_TRUE(stall.WaitFor(
//       [](const StallStats& s) { return s.closed_by_client == 1; },
//       absl::Seconds(5)));
class TlsStallPort {
 public:
  TlsStallPort();
  ~TlsStallPort();

  TlsStallPort(const TlsStallPort&) = delete;
  TlsStallPort& operator=(const TlsStallPort&) = delete;

  int port() const { return port_; }
  // "https://127.0.0.1:<port><path>".
  std::string url(absl::string_view path) const;

  StallStats Stats() const;
  // As TlsTargetServer::WaitFor.
  bool WaitFor(const std::function<bool(const StallStats&)>& condition,
               absl::Duration timeout) const;

 private:
  class Loop;
  friend class Loop;  // records into stats_

  mutable absl::Mutex mu_;
  StallStats stats_ ABSL_GUARDED_BY(mu_);

  // Constant after construction; declared after stats_ (see above).
  std::unique_ptr<Loop> loop_;
  int port_ = 0;
};

}  // namespace fanprobe::testing

#endif  // FANPROBE_TESTS_SUPPORT_TLS_TARGET_SERVER_H_
