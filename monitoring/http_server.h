// http_server.h: fanprobe's HTTP side, on libmicrohttpd, for monitoring
// pipelines that speak Prometheus:
//
//   /metrics   fanprobe's own metrics (metrics.h), Prometheus text format
//   /probe     ?target=URL&module=NAME, compatible with blackbox_exporter's
//              http prober (blackbox_modules.h, blackbox_report.h);
//              repeated target= parameters are probed concurrently and
//              every series gets a target label; debug=true explains the
//              probe instead
//   /healthz   200 while the process serves HTTP at all (liveness)
//   /readyz    200 when serving and not saturated, else 503 and why
//   /-/reload  POST: reads the modules file again (blackbox_exporter's
//              route); 200, or 500 listing every problem, the old modules
//              kept; another method is a 405
//
// /probe runs its probes through the Engine it is given -- the server passes
// a MeteredEngine over the same engine the gRPC service uses -- so both APIs
// share one admission cap.  Its deadline is blackbox_exporter's: the
// X-Prometheus-Scrape-Timeout-Seconds header less `timeout_offset`, or the
// module's timeout when shorter.  Answers:
//   200  the metrics (probe_success 0 for a failed probe: a failed probe is
//        data, not an HTTP error)
//   400  no target, an unknown module, a module of another prober (tcp,
//        icmp, dns, grpc), too many targets, a timeout header that is not a
//        finite positive number, attempts= or retry_backoff= unusable
//   503  shutting down, or more pending /probe probes than max_pending_probes
//
// A module with an option fanprobe cannot honour (BlackboxModule::
// unsupported) is answered at once, each probe failed UNSUPPORTED_OPTION,
// without sending anything.  hostname= sets the Host header, over the
// module's, as blackbox_exporter's does.  attempts= and retry_backoff= are
// fanprobe's own (ApplyRetryParameters): retries within the deadline, each
// attempt counted in probe_fanprobe_attempts.
//
// Modules the engine refuses (Engine::CheckOptions: a header value with
// CR/LF, more headers than the server allows) would fail every probe: Start
// refuses them, and a reload (POST /-/reload, or SIGHUP through the same
// store) of a file with one keeps the modules in use and says why.
//
// Example (server/server.cc does this):
//   auto http = HttpServer::Start(options, metered_engine, metrics,
//                                 [] { return absl::OkStatus(); }).value();
//   ... GET http://<http->address()>/probe?target=example.com ...
//   http->BeginShutdown();  // /readyz and new /probe: 503
//   if (!http->WaitUntilIdle(deadline)) http->CancelAll();
//   http->Stop();
//
// Hostile clients (issue 13).  The side runs on libmicrohttpd's event loop
// (`threads` epoll loops), not a thread per connection, so what a client
// holds costs memory, not a thread:
//   - connections are bounded per client address
//     (max_connections_per_client: a connection beyond it is closed as
//     soon as it is accepted) and in total (max_connections: beyond it the
//     listener is not polled, and new connections wait in the kernel's
//     accept queue until one closes);
//   - a request's line and headers must arrive within header_timeout of
//     the connection opening (or the previous answer): a client dripping
//     its headers a byte a second is cut off then;
//   - a /probe waits for its batch suspended, holding no thread, so
//     /healthz and /metrics are never starved by probes;
//   - a scraper that hangs up while its probes run (the connection's peer
//     closes: EPOLLRDHUP) cancels them at once.  A client that half-closes
//     its side after the request and still reads the answer is taken for
//     gone too; HTTP/1.1 scrapers (Prometheus, curl) do not.
// cpp-httplib 0.11 could not do this (tests/monitoring/http_hostile_test.cc
// has the figures): its thread pool serves one connection per thread,
// headers are read with a per-read timeout only, and a handler cannot see
// its connection close.
//
// Threading: all methods may be called from any thread; the engine's
// callbacks and the side's own threads never block on a request.  The
// engine and the metrics must outlive the server.

#ifndef FANPROBE_MONITORING_HTTP_SERVER_H_
#define FANPROBE_MONITORING_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "monitoring/blackbox_modules.h"
#include "monitoring/metrics.h"
#include "probe/engine.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace fanprobe::monitoring {

class TlsIdentity;  // http_tls.h

struct HttpServerOptions {
  // host:port to serve on (--http_address), plain HTTP.  Port 0 picks a
  // free port; address() tells which.  Empty: the server runs no HTTP side
  // (Server::Start skips it; HttpServer::Start refuses it).
  std::string address;
  // The /probe modules (--modules_file); by default http_2xx only.  Used
  // when `module_store` is null.
  BlackboxModules modules = DefaultBlackboxModules();
  // Where /probe reads its modules and what POST /-/reload reloads; the
  // server shares it with SIGHUP and /metrics.  Null: a store holding
  // `modules`, with no file to reload.  The server checks its modules with
  // the engine from Start() until Stop(), on every reload too.
  std::shared_ptr<BlackboxModulesStore> module_store;
  // Taken off the scrape's timeout so the answer reaches Prometheus in time
  // (--probe_timeout_offset; blackbox_exporter's --timeout-offset).
  absl::Duration timeout_offset = absl::Milliseconds(500);
  // The longest scrape timeout honoured (--http_max_scrape_timeout): a
  // larger X-Prometheus-Scrape-Timeout-Seconds, or a module's longer
  // timeout, is held to it, so no scrape holds its probes longer.
  absl::Duration max_scrape_timeout = kDefaultMaxScrapeTimeout;
  // Distinct target= values one /probe may carry; more is a 400.  (A
  // request's line and headers are at most 32 KiB anyway, libmicrohttpd's
  // per-connection memory: a longer request line is a 414.)
  uint32_t max_targets_per_request = 100;
  // Probes of all /probe requests in progress together; a request beyond
  // it is a 503, and /readyz reports saturation at it.
  uint64_t max_pending_probes = 100000;
  // Event-loop threads serving the connections (libmicrohttpd's thread
  // pool).  No request holds one for longer than it takes to parse it or
  // render its answer.
  int threads = 2;
  // Connections open at once, in total and from one client address.  A
  // connection beyond max_connections_per_client is closed as soon as it
  // is accepted; beyond max_connections, new ones wait in the accept queue
  // until one closes.  Each of the `threads` loops gets an equal share of
  // max_connections.  One Prometheus scraping many targets through /probe
  // opens a connection per concurrent scrape: keep
  // max_connections_per_client above that.
  uint32_t max_connections = 1024;
  uint32_t max_connections_per_client = 256;
  // A request's line and headers must have arrived this long after the
  // connection opened (or its previous answer was sent); else the
  // connection is closed.  Whole seconds are enough; the check runs every
  // 100 ms.
  absl::Duration header_timeout = absl::Seconds(5);
  // A connection on which nothing moves (an idle keep-alive connection, a
  // client that stopped reading) is closed after this; whole seconds, at
  // least 1.
  absl::Duration keep_alive_timeout = absl::Seconds(2);
  // TLS on the HTTP side: the server's certificate chain and private key,
  // PEM text (the server reads --http_tls_cert and --http_tls_key).  Both
  // empty: plain HTTP.  What Start() is given; ReloadTls() swaps in
  // renewed ones (and a renewed client CA) for the handshakes after it.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // PEM text of the CAs whose client certificates are accepted
  // (--http_client_ca).  Set: every request but /healthz and /readyz (a
  // kubelet sends no certificate) must come with a client certificate one
  // of them signed, else 403.  Needs TLS.
  std::string client_ca_pem;
  // Checks the Authorization header's value (empty when absent) of every
  // request but /healthz and /readyz, which a kubelet calls without one;
  // not OK: 401 with the status's message.  Null: no check.  The server
  // wires a TokenAuthenticator here for --http_auth_token_file.
  std::function<absl::Status(absl::string_view authorization)> authorize;
};

// Live figures, for metrics and readiness.
struct HttpStats {
  uint64_t probe_requests_active = 0;  // /probe requests being served
  uint64_t pending_probes = 0;         // their probes
  uint64_t connections = 0;            // connections open
  uint64_t header_timeouts = 0;        // connections closed for slow headers
  uint64_t scrapes_abandoned = 0;      // /probe requests whose client left
};

class HttpServer {
 public:
  // Why the server is not ready beyond its own reasons (engine or gRPC
  // side saturated): OK when ready, else a status whose message says why.
  using ReadinessCheck = std::function<absl::Status()>;

  // Binds options.address and starts serving.  kUnavailable when it cannot
  // listen there, kInvalidArgument for a module the engine refuses
  // ("--modules_file: module \"NAME\": why", every such module), an empty
  // or malformed address, a key without a certificate (or the other way
  // round), a client CA without TLS, or a certificate and key TLS cannot
  // use.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      HttpServerOptions options, Engine& engine, ServerMetrics& metrics,
      ReadinessCheck readiness);

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  // Cancels what still runs and stops.
  ~HttpServer();

  // host:port with the port actually bound.
  const std::string& address() const { return address_; }
  int port() const { return port_; }

  // /readyz answers 503 and new /probe requests get 503; /metrics and
  // /healthz go on, and so do /probe requests already running.
  void BeginShutdown();
  // Blocks until no /probe request is running or `deadline` passes; true
  // when idle.
  bool WaitUntilIdle(absl::Time deadline);
  // Cancels the batches of every running /probe request (they answer 503),
  // and of any that starts from now on.
  void CancelAll();
  // Cancels what still runs, closes the listener and joins its threads.
  // Idempotent.
  void Stop();

  HttpStats Stats() const;

  // Takes a renewed certificate chain, key and client CA (PEM text) for
  // every handshake from now on; connections already open keep theirs.
  // kInvalidArgument, and the ones in use stay, when they do not parse or
  // the key does not match; kFailedPrecondition when the server serves
  // plain HTTP, or when a client CA would be added or dropped (whether the
  // handshake asks for a client certificate is set at Start()).
  absl::Status ReloadTls(absl::string_view cert_pem, absl::string_view key_pem,
                         absl::string_view client_ca_pem)
      ABSL_LOCKS_EXCLUDED(tls_mu_);
  // The identity the next handshake presents; null for plain HTTP.
  std::shared_ptr<const TlsIdentity> CurrentTls() const
      ABSL_LOCKS_EXCLUDED(tls_mu_);

  // The modules /probe serves.
  BlackboxModulesStore& modules() const { return *modules_; }

 private:
  struct Reply;
  struct ProbeRequest;
  class HangupWatcher;

  HttpServer(HttpServerOptions options, Engine& engine, ServerMetrics& metrics,
             ReadinessCheck readiness);

  // libmicrohttpd's callbacks; `cls` is the HttpServer.
  static int OnRequest(void* cls, MHD_Connection* connection, const char* url,
                       const char* method, void** request_state);
  static void OnConnection(void* cls, MHD_Connection* connection, bool opened);
  static void OnRequestDone(void* cls, MHD_Connection* connection,
                            void** request_state);

  // The first call for a request (its headers are in): answers at once,
  // or starts a /probe and suspends the connection until its batch ends.
  int Route(MHD_Connection* connection, absl::string_view path,
            absl::string_view method, void** request_state);
  Reply HandleReady();
  // POST /-/reload.  Runs on the event loop: reading a modules file (and
  // the files it names, each bounded) takes about as long as rendering
  // /metrics.
  Reply HandleReload();
  // Starts the /probe batch; a Reply when the request is answered at once
  // instead (refused, or its module cannot run).
  std::optional<Reply> StartProbe(MHD_Connection* connection,
                                  std::shared_ptr<ProbeRequest>& probe);
  // fanprobe's own /probe parameters, which a blackbox_exporter scrape
  // config may add: attempts=<n> allows n attempts in all (retries of the
  // failures that retry by default, within the probe's deadline) and
  // retry_backoff=<duration> sets the wait before the first retry.
  absl::Status ApplyRetryParameters(MHD_Connection* connection,
                                    ProbeOptions& options) const;
  void ProbeDone(const std::shared_ptr<ProbeRequest>& probe,
                 BatchSummary summary);
  // The answer for a /probe whose batch has ended; none when the client
  // has gone (the connection is closed instead).
  std::optional<Reply> ProbeReply(ProbeRequest& probe);
  Reply Reject(absl::StatusCode code, const std::string& message);
  // Closes connections whose headers are late, every 100 ms until Stop.
  void ReapSlowHeaders();

  // Constant after Start().
  const HttpServerOptions options_;
  Engine& engine_;
  ServerMetrics& metrics_;
  const ReadinessCheck readiness_;
  const std::shared_ptr<BlackboxModulesStore> modules_;
  // The listening socket, owned: libmicrohttpd only borrows it (Stop()
  // quiesces the daemon first), and the destructor closes it.
  int listen_fd_ = -1;
  MHD_Daemon* daemon_ = nullptr;
  std::unique_ptr<HangupWatcher> hangups_;
  std::thread reaper_;
  absl::Notification stop_reaper_;
  std::string address_;
  int port_ = 0;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_all_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::shared_ptr<Batch>> batches_ ABSL_GUARDED_BY(mu_);
  uint64_t active_requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pending_probes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t scrapes_abandoned_ ABSL_GUARDED_BY(mu_) = 0;

  // The open connections, for the header deadline.  Protected by conn_mu_:
  // libmicrohttpd reports a connection closed before it closes the socket,
  // so the reaper may shut a socket down under conn_mu_ without racing a
  // reuse of its descriptor.
  struct ConnectionState {
    int fd = -1;
    absl::Time since;  // opened, or its previous answer was sent
    bool awaiting_headers = true;
  };
  mutable absl::Mutex conn_mu_;
  absl::flat_hash_map<MHD_Connection*, ConnectionState> connections_
      ABSL_GUARDED_BY(conn_mu_);
  uint64_t header_timeouts_ ABSL_GUARDED_BY(conn_mu_) = 0;

  // The TLS identity handshakes get.  Those it replaced are kept until the
  // server goes: GnuTLS holds on to what the certificate callback returned
  // for as long as a session it began lives (renewals are rare, each a few
  // KiB).
  mutable absl::Mutex tls_mu_;
  std::shared_ptr<const TlsIdentity> tls_ ABSL_GUARDED_BY(tls_mu_);
  std::vector<std::shared_ptr<const TlsIdentity>> tls_replaced_
      ABSL_GUARDED_BY(tls_mu_);
};

}  // namespace fanprobe::monitoring

#endif  // FANPROBE_MONITORING_HTTP_SERVER_H_
